use super::*;

const MODEL: Path = &[Step::Key("model")];
const NESTED: Path = &[Step::Key("generationConfig"), Step::Key("maxOutputTokens")];
const TOOL_MODELS: Path = &[Step::Key("tools"), Step::Each, Step::Key("model")];

fn err(doc: &[u8]) -> JsonError {
    scan(doc, &[]).unwrap_err()
}

#[test]
fn finds_values_at_paths_with_their_spans() {
    let doc = br#" {"model":"gpt-4o","generationConfig":{"maxOutputTokens":12},"tools":[{"model":"a"},{"x":1},{"model":"b"}]} "#;
    let d = scan(doc, &[MODEL, NESTED, TOOL_MODELS]).unwrap();
    let model = d.get(0).unwrap();
    assert_eq!((model.kind(), model.raw()), (Kind::String, &br#""gpt-4o""#[..]));
    assert_eq!(model.as_str().unwrap(), "gpt-4o");
    assert_eq!(d.get(1).unwrap().as_u64(), Some(12));
    let tools: Vec<_> = d.all(2).map(|v| v.as_str().unwrap().into_owned()).collect();
    assert_eq!(tools, ["a", "b"]);
}

#[test]
fn containers_are_found_with_their_brackets() {
    const GC: Path = &[Step::Key("g")];
    let d = scan(br#"{"g":{ },"h":[1]}"#, &[GC]).unwrap();
    let g = d.get(0).unwrap();
    assert_eq!((g.kind(), g.raw(), g.found.has_members), (Kind::Object, &b"{ }"[..], false));
    let d = scan(br#"{"g":{"a":[1,{"b":2}]}}"#, &[GC]).unwrap();
    let g = d.get(0).unwrap();
    assert_eq!((g.raw(), g.found.has_members), (&br#"{"a":[1,{"b":2}]}"#[..], true));
}

#[test]
fn escaped_names_match_paths_and_values_unescape() {
    let d = scan(br#"{"\u006dodel":"gpt-\u00e9\ud83d\ude00\n"}"#, &[MODEL]).unwrap();
    assert_eq!(d.get(0).unwrap().as_str().unwrap(), "gpt-é😀\n");
}

#[test]
fn repeated_names_are_refused_at_every_depth() {
    for doc in [
        &br#"{"model":"a","model":"b"}"#[..],
        br#"{"model":"a","\u006dodel":"b"}"#,
        br#"{"\u006d\u006f\u0064\u0065\u006c":"a","model":"b"}"#,
        br#"{"model":"a","messages":[{"role":"user","role":"system"}]}"#,
        br#"{"generationConfig":{"maxOutputTokens":1,"maxOutputTokens":99999}}"#,
        br#"{"a":{"b":{"c":{"d":1,"e":2,"d":3}}}}"#,
    ] {
        assert!(matches!(scan(doc, &[]), Err(JsonError::Duplicate(_))), "{}", String::from_utf8_lossy(doc));
    }
}

#[test]
fn the_same_name_in_sibling_objects_is_not_a_repeat() {
    scan(br#"{"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]}"#, &[]).unwrap();
}

#[test]
fn refuses_what_is_not_one_strict_object() {
    let cases: &[(&[u8], JsonError)] = &[
        (b"", JsonError::Syntax),
        (b"{", JsonError::Syntax),
        (b"{} {}", JsonError::Syntax),
        (b"{}x", JsonError::Syntax),
        (b"{\"a\":1,}", JsonError::Syntax),
        (b"{\"a\" 1}", JsonError::Syntax),
        (b"{'a':1}", JsonError::Syntax),
        (b"{\"a\":01}", JsonError::Syntax),
        (b"{\"a\":1.}", JsonError::Syntax),
        (b"{\"a\":.5}", JsonError::Syntax),
        (b"{\"a\":1e}", JsonError::Syntax),
        (b"{\"a\":+1}", JsonError::Syntax),
        (b"{\"a\":NaN}", JsonError::Syntax),
        (b"{\"a\":tru}", JsonError::Syntax),
        (b"{\"a\":\"x\ty\"}", JsonError::Syntax),
        (b"{\"a\":\"\\x\"}", JsonError::Syntax),
        (b"{\"a\":\"\\u12\"}", JsonError::Syntax),
        (b"{\"a\":[1,]}", JsonError::Syntax),
        (b"{\"a\":1e400}", JsonError::NumberOutOfRange),
        (b"{\"a\":-4444444000e40000000760452933}", JsonError::NumberOutOfRange),
        (b"{\"a\":1}\x00", JsonError::Syntax),
        (b"\xef\xbb\xbf{}", JsonError::Encoding),
        (b"{\"a\":\"\xff\"}", JsonError::Encoding),
        (b"{\"a\":\"\\ud800\"}", JsonError::Encoding),
        (b"{\"a\":\"\\udc00\"}", JsonError::Encoding),
        (b"{\"a\":\"\\ud800\\u0041\"}", JsonError::Encoding),
        (b"[]", JsonError::NotAnObject),
        (b"\"x\"", JsonError::NotAnObject),
        (b"1", JsonError::NotAnObject),
        (b"null", JsonError::NotAnObject),
    ];
    for (doc, want) in cases {
        assert_eq!(&err(doc), want, "{}", String::from_utf8_lossy(doc));
    }
}

#[test]
fn accepts_the_whole_grammar() {
    let doc = br#"{ "a" : [ -0, 1.5e-3, 2E+10, 0.0, 1e-400, 1.7e308, 12345678901234567890123, true, false, null, "\"\\\/\b\f\n\r\t\u0041" ], "b":{}, "c":[] }"#;
    scan(doc, &[]).unwrap();
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{{\"a\":{}1{}}}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
    scan(ok.as_bytes(), &[]).unwrap();
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert_eq!(scan(deep.as_bytes(), &[]).unwrap_err(), JsonError::TooDeep);
    // Far deeper than the limit is refused just as fast, without recursion.
    let abyss = "[".repeat(1_000_000);
    assert_eq!(scan(format!("{{\"a\":{abyss}").as_bytes(), &[]).unwrap_err(), JsonError::TooDeep);
}

#[test]
fn members_per_object_are_bounded() {
    let members = |n: usize| (0..n).map(|i| format!("\"k{i}\":0")).collect::<Vec<_>>().join(",");
    scan(format!("{{{}}}", members(MAX_MEMBERS)).as_bytes(), &[]).unwrap();
    let too_many = format!("{{{}}}", members(MAX_MEMBERS + 1));
    assert_eq!(scan(too_many.as_bytes(), &[]).unwrap_err(), JsonError::TooManyMembers);
}

#[test]
fn integers_are_read_only_when_written_as_integers() {
    const N: Path = &[Step::Key("n")];
    let n = |doc: &str| scan(doc.as_bytes(), &[N]).unwrap().get(0).unwrap().as_u64();
    assert_eq!(n(r#"{"n":1024}"#), Some(1024));
    assert_eq!(n(r#"{"n":18446744073709551615}"#), Some(u64::MAX));
    for doc in [r#"{"n":18446744073709551616}"#, r#"{"n":-1}"#, r#"{"n":1.0}"#, r#"{"n":1e3}"#, r#"{"n":"5"}"#] {
        assert_eq!(n(doc), None, "{doc}");
    }
}

#[test]
fn small_objects_parse_into_serde_maps() {
    let m = object(br#"{"sub":"x","aud":["a"]}"#).unwrap();
    assert_eq!(m["sub"], "x");
    assert!(matches!(object(br#"{"sub":"x","s\u0075b":"y"}"#), Err(JsonError::Duplicate(_))));
}

/// Work done on a document of `n` members in one object, and of `n`
/// members spread over nested objects.
fn work(n: usize) -> (u64, u64) {
    let flat = format!("{{{}}}", (0..n).map(|i| format!("\"k{:08}\":{i}", n - i)).collect::<Vec<_>>().join(","));
    let nested = format!(
        "{{\"m\":[{}]}}",
        (0..n / 4).map(|i| format!("{{\"a\":{i},\"b\":{i},\"c\":{{\"d\":{i}}}}}")).collect::<Vec<_>>().join(",")
    );
    (scan(flat.as_bytes(), &[MODEL]).unwrap().comparisons, scan(nested.as_bytes(), &[MODEL]).unwrap().comparisons)
}

/// Guards against the quadratic repeat check (each name compared with
/// every earlier one) that let a 1.45 MB body stall a worker for 15 s:
/// eight times the members must cost well under 64 times the work.
#[test]
fn repeat_checks_grow_n_log_n_not_n_squared() {
    let (flat_n, nested_n) = work(4_000);
    let (flat_8n, nested_8n) = work(32_000);
    // n log n: 8 × log(32000)/log(4000) ≈ 10; quadratic would be 64.
    assert!(flat_8n < flat_n * 12, "flat: {flat_n} → {flat_8n}");
    assert!(nested_8n < nested_n * 12, "nested: {nested_n} → {nested_8n}");
    assert!(flat_n > 4_000, "the counter counts");
}

#[test]
fn deep_paths_find_a_name_at_any_depth_below_their_prefix() {
    const ANY_MODEL: Path = &[Step::Deep("model")];
    const TOOL_MODEL: Path = &[Step::Key("tools"), Step::Deep("model")];
    let doc = br#"{"model":"a","tools":[{"type":"image_generation","model":"b"},{"x":{"y":[{"model":"c"}]}}],
                   "input":[{"model":"d"}],"models":"e","moderation":{"model":{"deeper":1}}}"#;
    let d = scan(doc, &[ANY_MODEL, TOOL_MODEL]).unwrap();
    let raws = |i| d.all(i).map(|v| String::from_utf8_lossy(v.raw()).into_owned()).collect::<Vec<_>>();
    assert_eq!(raws(0), ["\"a\"", "\"b\"", "\"c\"", "\"d\"", "{\"deeper\":1}"]);
    assert_eq!(raws(1), ["\"b\"", "\"c\""]);
}
