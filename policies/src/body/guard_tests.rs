//! At least 30 texts each detector must flag and 30 it must not: real
//! shapes, and the near misses (a checksum that fails, a prefix inside a
//! word, a length one short) that a careless pattern would flag.

use super::*;

use crate::testing::Rng;

const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn contexts(secret: &str, i: usize) -> String {
    match i % 5 {
        0 => secret.to_string(),
        1 => format!("here it is: {secret}"),
        2 => format!("use {secret} for the call"),
        3 => format!("config = \"{secret}\"\nnext line"),
        _ => format!("({secret}), thanks"),
    }
}

fn assert_family(name: &str, positives: &[String], negatives: &[String]) {
    assert!(positives.len() >= 30 && negatives.len() >= 30, "{name}: too few cases");
    let d = Detector::built_in(name).unwrap();
    for text in positives {
        assert!(d.count(text) >= 1, "{name} should flag {text:?}");
    }
    for text in negatives {
        assert_eq!(d.count(text), 0, "{name} flagged {text:?}");
    }
}

/// A card number of `len` digits with a valid Luhn digit (or not).
fn card(rng: &mut Rng, prefix: &str, len: usize, valid: bool) -> String {
    let mut digits: Vec<u32> = prefix.chars().map(|c| c.to_digit(10).unwrap()).collect();
    while digits.len() < len - 1 {
        digits.push((rng.next() % 10) as u32);
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                *d
            }
        })
        .sum();
    let check = (10 - sum % 10) % 10;
    digits.push(if valid { check } else { (check + 1 + (rng.next() % 9) as u32) % 10 });
    digits.iter().map(|d| char::from_digit(*d, 10).unwrap()).collect()
}

#[test]
fn card_numbers_pass_luhn_or_are_not_flagged() {
    let mut rng = Rng(7);
    let brands = [("4", 16), ("51", 16), ("37", 15), ("6011", 16), ("35", 16), ("4", 13), ("62", 19)];
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for i in 0..35 {
        let (prefix, len) = brands[i % brands.len()];
        let n = card(&mut rng, prefix, len, true);
        let spaced = if i % 3 == 1 && len == 16 {
            n.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ")
        } else if i % 3 == 2 && len == 16 {
            n.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("-")
        } else {
            n.clone()
        };
        positives.push(contexts(&spaced, i));
        negatives.push(contexts(&card(&mut rng, prefix, len, false), i));
    }
    negatives.extend(
        [
            "order 1234567890123456789012345",
            "0000000000000000",
            "4444444444444444",
            "phone +1 415 555 0134",
            "12 digits 123456789012",
            "version 2024.10.21.1",
            "id abc4111111111111111xyz",
        ]
        .map(String::from),
    );
    assert_family("card_number", &positives, &negatives);
}

#[test]
fn ssns_follow_the_issuing_rules() {
    let mut rng = Rng(11);
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for i in 0..32 {
        let area = 1 + rng.next() % 665;
        let group = 1 + rng.next() % 99;
        let serial = 1 + rng.next() % 9999;
        positives.push(contexts(&format!("{area:03}-{group:02}-{serial:04}"), i));
        let bad = match i % 5 {
            0 => format!("000-{group:02}-{serial:04}"),
            1 => format!("666-{group:02}-{serial:04}"),
            2 => format!("9{:02}-{group:02}-{serial:04}", rng.next() % 100),
            3 => format!("{area:03}-00-{serial:04}"),
            _ => format!("{area:03}-{group:02}-0000"),
        };
        negatives.push(contexts(&bad, i));
    }
    negatives.push("call 555-123-4567".into());
    negatives.push("part 1234-56-7890".into());
    assert_family("us_ssn", &positives, &negatives);
}

#[test]
fn aws_access_key_ids() {
    let mut rng = Rng(3);
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for i in 0..32 {
        let prefix = ["AKIA", "ASIA", "AROA", "AIDA"][i % 4];
        let body = rng.pick(UPPER_DIGITS, 16);
        positives.push(contexts(&format!("{prefix}{body}"), i));
        negatives.push(contexts(
            &match i % 4 {
                0 => format!("{prefix}{}", &body[..15]),
                1 => format!("X{prefix}{body}"),
                2 => format!("{prefix}{body}Z"),
                _ => format!("akia{}", body.to_lowercase()),
            },
            i,
        ));
    }
    assert_family("aws_access_key", &positives, &negatives);
}

#[test]
fn github_tokens() {
    let mut rng = Rng(5);
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for i in 0..32 {
        let kind = ["ghp", "gho", "ghu", "ghs", "ghr"][i % 5];
        let token = if i % 6 == 5 {
            format!("github_pat_{}", rng.pick(ALNUM, 82))
        } else {
            format!("{kind}_{}", rng.pick(ALNUM, 36))
        };
        positives.push(contexts(&token, i));
        negatives.push(contexts(
            &match i % 3 {
                0 => format!("{kind}_{}", rng.pick(ALNUM, 35)),
                1 => format!("x{kind}_{}", rng.pick(ALNUM, 36)),
                _ => format!("ghx_{}", rng.pick(ALNUM, 36)),
            },
            i,
        ));
    }
    assert_family("github_token", &positives, &negatives);
}

#[test]
fn slack_tokens_and_webhooks() {
    let mut rng = Rng(9);
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for i in 0..32 {
        let token = if i % 4 == 3 {
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                rng.pick(UPPER_DIGITS, 8),
                rng.pick(UPPER_DIGITS, 8),
                rng.pick(ALNUM, 24)
            )
        } else {
            format!("xox{}-{}-{}", ["b", "p", "a"][i % 3], rng.next() % 1_000_000_000_000, rng.pick(ALNUM, 24))
        };
        positives.push(contexts(&token, i));
        negatives.push(contexts(
            &match i % 3 {
                0 => format!("xoxz-{}", rng.pick(ALNUM, 24)),
                1 => format!("xoxb-{}", rng.pick(ALNUM, 5)),
                _ => format!("https://hooks.slack.com/services/{}", rng.pick(ALNUM, 10)),
            },
            i,
        ));
    }
    assert_family("slack_token", &positives, &negatives);
}

#[test]
fn openai_and_anthropic_keys_are_told_apart() {
    let mut rng = Rng(13);
    let mut openai = Vec::new();
    let mut anthropic = Vec::new();
    let mut neither = Vec::new();
    for i in 0..32 {
        let prefix = ["sk-", "sk-proj-", "sk-svcacct-", "sk-admin-"][i % 4];
        openai.push(contexts(&format!("{prefix}{}", rng.pick(B64URL, 48)), i));
        anthropic.push(contexts(&format!("sk-ant-api03-{}", rng.pick(B64URL, 93)), i));
        neither.push(contexts(
            &match i % 4 {
                0 => format!("task-{}", rng.pick(ALNUM, 30)),
                1 => format!("sk-{}", rng.pick(ALNUM, 10)),
                2 => format!("disk-{}", rng.pick(ALNUM, 30)),
                _ => format!("ask-{}", rng.pick(ALNUM, 30)),
            },
            i,
        ));
    }
    let mut not_openai = neither.clone();
    not_openai.extend(anthropic.iter().cloned());
    assert_family("openai_key", &openai, &not_openai);
    let mut not_anthropic = neither;
    not_anthropic.extend(openai.iter().cloned());
    assert_family("anthropic_key", &anthropic, &not_anthropic);
}

#[test]
fn jwts() {
    let mut rng = Rng(17);
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for i in 0..32 {
        let header = format!("eyJ{}", rng.pick(B64URL, 30));
        let payload = format!("eyJ{}", rng.pick(B64URL, 60));
        let signature = rng.pick(B64URL, 43);
        positives.push(contexts(&format!("{header}.{payload}.{signature}"), i));
        negatives.push(contexts(
            &match i % 3 {
                0 => format!("{header}.{payload}"),
                1 => format!("abc{header}.{payload}.{signature}"),
                _ => format!("eyA{}.eyJ{}.{signature}", rng.pick(B64URL, 30), rng.pick(B64URL, 30)),
            },
            i,
        ));
    }
    assert_family("jwt", &positives, &negatives);
}

#[test]
fn private_keys() {
    let kinds = ["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "];
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for i in 0..36 {
        let kind = kinds[i % kinds.len()];
        positives.push(contexts(
            &format!("-----BEGIN {kind}PRIVATE KEY-----\nMIIEvQIBADAN\n-----END {kind}PRIVATE KEY-----"),
            i,
        ));
        negatives.push(contexts(
            &match i % 3 {
                0 => format!("-----BEGIN {kind}PUBLIC KEY-----\nMIIB"),
                1 => "-----BEGIN CERTIFICATE-----\nMIIB".to_string(),
                _ => format!("how do I make a {kind}private key with openssl?"),
            },
            i,
        ));
    }
    assert_family("private_key", &positives, &negatives);
}

#[test]
fn email_addresses() {
    let mut rng = Rng(19);
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for i in 0..32 {
        let user = rng.pick(b"abcdefghij", 6);
        let domain = ["example.com", "corp.example.org", "mail.co.uk", "x.io"][i % 4];
        let local = match i % 3 {
            0 => user.clone(),
            1 => format!("{user}.smith"),
            _ => format!("{user}+tag"),
        };
        positives.push(contexts(&format!("{local}@{domain}"), i));
        negatives.push(contexts(
            &match i % 4 {
                0 => format!("{user}@localhost"),
                1 => format!("@{user}"),
                2 => format!("{user} at {domain}"),
                _ => format!("{user}@{}", "x".repeat(3)),
            },
            i,
        ));
    }
    assert_family("email", &positives, &negatives);
}

#[test]
fn custom_patterns() {
    let d = Detector::custom("employee_id", r"\bEMP-\d{6}\b").unwrap();
    let positives: Vec<String> = (0..30).map(|i| contexts(&format!("EMP-{:06}", 100_000 + i * 7), i)).collect();
    let negatives: Vec<String> = (0..30).map(|i| contexts(&format!("EMP-{:05}", i), i)).collect();
    assert!(positives.iter().all(|t| d.count(t) == 1));
    assert!(negatives.iter().all(|t| d.count(t) == 0));
    assert!(Detector::custom("x", "(").is_err());
    assert!(Detector::custom("x", "a*").is_err(), "matches everything");
}

#[test]
fn json_text_and_member_names_are_scanned() {
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"my key is AKIAIOSFODNN7EXAMPLE and \u0041KIAIOSFODNN7EXAMPLF"}],
                    "AKIAIOSFODNN7EXAMPLE":1,"metadata":{"note":"mail bob@example.com"}}"#;
    let found = guard.scan_json(body);
    // The escaped one too, and the member name: a provider reads names too.
    assert_eq!(found.get("aws_access_key"), Some(&3));
    assert_eq!(found.get("email"), Some(&1));
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn escapes_cannot_hide_a_secret_from_the_one_pass_read() {
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let hook = br#"{"messages":[{"content":"post to https:\/\/hooks.slack.com\/services\/T0ABCDEFG\/B0ABCDEFG\/abcdefghijklmnopqrstuvwx"}]}"#;
    assert_eq!(guard.scan_json(hook).get("slack_token"), Some(&1));
    let spelled = br#"{"messages":[{"content":"\u0073k-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"}]}"#;
    assert_eq!(guard.scan_json(spelled).get("anthropic_key"), Some(&1));
    assert!(guard.scan_json(br#"{"messages":[{"content":"line one\nline two, nothing here"}]}"#).is_empty());
    let custom = Guard::new(Action::Block, vec![Detector::custom("quoted", r#"say "swordfish""#).unwrap()]);
    assert_eq!(custom.scan_json(br#"{"content":"say \"swordfish\""}"#).get("quoted"), Some(&1));
}

#[test]
fn scanning_is_linear() {
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let nasty = serde_json::json!({"messages": [{"content": "1 ".repeat(300_000) + &"a@".repeat(100_000) + &"eyJ".repeat(50_000)}]});
    let started = std::time::Instant::now();
    guard.scan_json(nasty.to_string().as_bytes());
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

/// A secret right after a JSON escape: the body spells `\n` with the word
/// character `n` before the key, the provider reads a newline. Every escape
/// is decoded before the detectors read, for every detector.
#[test]
fn a_secret_right_after_an_escape_is_found_in_what_the_provider_reads() {
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let key = format!("sk-proj-{}", "Ab3".repeat(16));
    for escape in ["\\n", "\\t", "\\r", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\u000a"] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"config:{escape}{key}"}}]}}"#);
        assert_eq!(guard.scan_json(body.as_bytes()).get("openai_key"), Some(&1), "after {escape}: {body}");
    }
    for (escape, detector, secret) in [
        ("\\n", "aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
        ("\\t", "us_ssn", "078-05-1120"),
        ("\\n", "email", "someone@example.com"),
        ("\\r", "card_number", "4111 1111 1111 1111"),
    ] {
        let body = format!(r#"{{"input":"x{escape}{secret}"}}"#);
        assert_eq!(guard.scan_json(body.as_bytes()).get(detector), Some(&1), "{detector} after {escape}");
    }
    // The same text with no escape before it: still no word boundary.
    let glued = format!(r#"{{"input":"configxn{key}"}}"#);
    assert_eq!(guard.scan_json(glued.as_bytes()).get("openai_key"), None);
}

/// A form's text fields are what the provider reads of a transcription
/// request: its `prompt` is scanned, its audio file is not.
#[test]
fn a_secret_in_a_forms_text_field_is_found() {
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let form = |prompt: &str| {
        format!(
            "--b\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --b\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\n{prompt}\r\n\
             --b\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\ncontent-type: audio/wav\r\n\r\n\
             RIFF AKIAIOSFODNN7EXAMPLE\r\n--b--\r\n"
        )
    };
    let ct = "multipart/form-data; boundary=b";
    let found = guard.scan_multipart(form("the key is AKIAIOSFODNN7EXAMPLE").as_bytes(), ct);
    assert_eq!(found.get("aws_access_key"), Some(&1), "the prompt counts, the audio does not: {found:?}");
    assert!(guard.scan_multipart(form("plain words").as_bytes(), ct).is_empty());
    let text_file = "--b\r\ncontent-disposition: form-data; name=\"file\"; filename=\"n.txt\"\r\ncontent-type: text/plain\r\n\r\nssn 078-05-1120\r\n--b--\r\n";
    assert_eq!(guard.scan_multipart(text_file.as_bytes(), ct).get("us_ssn"), Some(&1));
}

/// The decoded strings are read however deep the body nests (the strict
/// reader takes 128 levels; a recursive JSON parser stopped there and the
/// guard with it), and member names too: a tool schema's property names
/// reach the model.
#[test]
fn every_string_is_read_at_any_depth_and_names_too() {
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let deep = format!(r#"{{"content":"my key AKIAIOSFODNN7EXAMPLE","x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
    assert_eq!(guard.scan_json(deep.as_bytes()).get("aws_access_key"), Some(&1));
    let name = r#"{"tools":[{"parameters":{"properties":{"AKIAIOSFODNN7EXAMPLE":{"type":"string"}}}}]}"#;
    assert_eq!(guard.scan_json(name.as_bytes()).get("aws_access_key"), Some(&1));
    // Escapes decode: a surrogate pair, \u spelling a secret's letters.
    let spelled = r#"{"a":"\ud83d\ude00 \u0041KIAIOSFODNN7EXAMPLE"}"#;
    assert_eq!(guard.scan_json(spelled.as_bytes()).get("aws_access_key"), Some(&1));
    assert_eq!(json_string(br#"a\"b\\c\/\u00e9\ud83d\ude00" tail"#, 0).0, "a\"b\\c/\u{e9}\u{1f600}");
    // Linear: a long body of escapes.
    let long = format!(r#"{{"a":"{}"}}"#, "\\n".repeat(500_000));
    assert!(guard.scan_json(long.as_bytes()).is_empty());
}

/// What the provider decodes is read too: a text attachment sent as base64
/// (Gemini's inline_data, Anthropic's and Bedrock's documents, a data URL),
/// and a form field without a file name whatever type it declares. Binary
/// payloads are not text and are not read.
#[test]
fn attachments_and_declared_binary_fields_are_read() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let env = STANDARD.encode("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n");
    for body in [
        format!(r#"{{"contents":[{{"parts":[{{"inline_data":{{"mime_type":"text/plain","data":"{env}"}}}}]}}]}}"#),
        format!(
            r#"{{"messages":[{{"content":[{{"type":"document","source":{{"type":"base64","data":"{env}"}}}}]}}]}}"#
        ),
        format!(r#"{{"input":[{{"type":"input_file","file_data":"data:text/plain;base64,{env}"}}]}}"#),
    ] {
        assert_eq!(guard.scan_json(body.as_bytes()).get("aws_access_key"), Some(&1), "{body}");
    }
    let png = STANDARD.encode([0x89u8, b'P', b'N', b'G', 0, 0, 0, 13, 0xff, 0xfe, 0x00, 0x01].repeat(8));
    assert!(guard.scan_json(format!(r#"{{"image":"{png}"}}"#).as_bytes()).is_empty());

    let ct = "multipart/form-data; boundary=b";
    let declared = "--b\r\ncontent-disposition: form-data; name=\"prompt\"\r\ncontent-type: application/octet-stream\r\n\r\nAKIAIOSFODNN7EXAMPLE\r\n--b--\r\n";
    assert_eq!(guard.scan_multipart(declared.as_bytes(), ct).get("aws_access_key"), Some(&1));
}

#[test]
fn a_number_outside_any_string_is_read_too() {
    // A card number sent as a JSON number reaches the provider (or a tool)
    // as much as one in a string does.
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let as_number = br#"{"repo":"acme/api","number":4111111111111111}"#;
    let as_string = br#"{"repo":"acme/api","number":"4111111111111111"}"#;
    assert_eq!(guard.scan_json(as_number), guard.scan_json(as_string));
    assert!(!guard.scan_json(as_number).is_empty());
    assert!(guard.scan_json(br#"{"number":4111111111111112,"n":7}"#).is_empty(), "not Luhn-valid: nothing");
}

#[test]
fn a_number_with_an_exponent_or_fraction_is_read_as_the_integer_it_stands_for() {
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    for n in [
        "4111111111111111e0",
        "4.111111111111111e15",
        "5555555555554444E0",
        "41111111111111110e-1",
        "4111111111111111.0",
        "4.111111111111111E+15",
    ] {
        let body = format!(r#"{{"repo":"acme/api","number":{n}}}"#);
        assert!(!guard.scan_json(body.as_bytes()).is_empty(), "{n}");
    }
    assert!(guard.scan_json(br#"{"x":4.1111111111111115e15,"y":1e400,"z":1.5}"#).is_empty());
    assert_eq!(integral("12e2").as_deref(), Some("1200"));
    assert_eq!(integral("1.25e1"), None);
    assert_eq!(integral("1e99"), None, "past the bound");
    assert_eq!(integral("7"), None, "a plain integer is read as written");
}

#[test]
fn the_word_at_a_time_digit_search_finds_what_a_byte_search_finds() {
    // Every byte value at every offset of a word, and random texts.
    for b in 0..=255u8 {
        for at in 0..20 {
            let mut text = vec![b'x'; 20];
            text[at] = b;
            for from in [0, 1, at, at + 1] {
                let naive = text.get(from..).and_then(|t| t.iter().position(u8::is_ascii_digit)).map(|i| from + i);
                assert_eq!(next_digit(&text, from), naive, "byte {b:#x} at {at} from {from}");
            }
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let seed = rng.next();
        let len = (seed % 40) as usize;
        let text: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8 ^ (i as u8).wrapping_mul(37)).collect();
        for from in 0..=len {
            let naive = text[from..].iter().position(u8::is_ascii_digit).map(|i| from + i);
            assert_eq!(next_digit(&text, from), naive, "{text:?} from {from}");
        }
    }
}

/// A long payload's head settles a binary one early; the answer is the one
/// the whole decode gives, for text, binary, a character cut at the head's
/// end, a control byte past the head, and either alphabet.
#[test]
fn a_base64_payloads_head_settles_it_as_the_whole_would() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use base64::Engine as _;
    let whole = |text: &str| -> Option<String> {
        let p = text.strip_prefix("data:").map_or(Some(text), |u| u.split_once(";base64,").map(|x| x.1))?;
        let p = p.trim_end_matches('=');
        let padded = format!("{p}{}", "=".repeat((4 - p.len() % 4) % 4));
        let ok = p.len() >= MIN_BASE64
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
        let bytes = STANDARD.decode(&padded).or_else(|_| URL_SAFE.decode(&padded)).ok().filter(|_| ok)?;
        String::from_utf8(bytes).ok().filter(|t| !t.chars().any(|c| c.is_control() && !c.is_whitespace()))
    };
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut texts = 0;
    for i in 0..400 {
        let len = 700 + (rng.next() % 1200) as usize;
        let mut plain: Vec<u8> = match i % 5 {
            0 => (0..len).map(|_| rng.next() as u8).collect(),
            1 => "é".repeat(len / 2).into_bytes(),
            2 => "a€b".repeat(len / 5).into_bytes(),
            _ => rng.pick(b"abc xyz\n.,", len).into_bytes(),
        };
        if i % 7 == 3 {
            plain[len / 3 * 2] = 0x01;
        }
        for encoded in [
            STANDARD.encode(&plain),
            URL_SAFE.encode(&plain),
            format!("data:text/plain;base64,{}", STANDARD.encode(&plain)),
        ] {
            let got = base64_text(&encoded);
            assert_eq!(got, whole(&encoded), "case {i}");
            texts += usize::from(got.is_some());
        }
    }
    assert!(texts > 100, "{texts}");
}

/// Found by the attack review: an exponent of `i64::MIN` negated with
/// overflow (a panic wherever overflow is checked), and `0e4294967295`
/// asked for four billion zeros on wasm32, where `len + zeros` wrapped
/// (the VM aborted). Both are numbers the strict reader accepts.
#[test]
fn an_exponent_at_the_edges_of_its_type_expands_to_nothing() {
    for n in [
        "0e-9223372036854775808",
        "0e4294967295",
        "0.0e4294967296",
        "1.0e4294967296",
        "00e4294967295",
        "1e18446744073709551615",
    ] {
        assert_eq!(integral(n), None, "{n}");
    }
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    for body in [
        &br#"{"n":0e-9223372036854775808}"#[..],
        br#"{"messages":[{"role":"user","content":"see 0e4294967295"}]}"#,
        br#"{"model":"m","n":0e4294967295}"#,
    ] {
        assert!(guard.scan_json(body).is_empty());
    }
}

/// From the attack review: the fast path never skips a body
/// whose decoded strings or numbers hold a finding — the same body with one
/// harmless escape appended (forcing the slow path) gives the same findings.
#[test]
fn the_fast_path_agrees_with_the_slow_one() {
    const PIECES: &[&str] = &[
        "4111111111111111",
        "4111 1111 1111 1111",
        "123-45-6789",
        "a@b.com",
        "AKIAIOSFODNN7EXAMPLE",
        "sk-aaaaaaaaaaaaaaaaaaaa",
        "sk-ant-aaaaaaaaaaaaaaaaaaaa",
        "xoxb-0123456789",
        "eyJabcdefgh.eyJabcdefgh.abcdefgh",
        "-----BEGIN PRIVATE KEY-----",
        " ",
        "x",
        "é",
        "1",
        "-",
        "_",
        "@",
        ".",
        "e",
        "4.111111111111111e15",
    ];
    const NUMBERS: &[&str] =
        &["4111111111111111", "4.111111111111111e15", "41111111111111110e-1", "-4111111111111111", "1", "0e5"];
    let guard = Guard::new(Action::Block, built_in_names().filter_map(Detector::built_in).collect());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..50_000 {
        let mut members = Vec::new();
        for _ in 0..1 + rng.next() % 4 {
            let s: String = (0..rng.next() % 4).map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize]).collect();
            let n = NUMBERS[(rng.next() % NUMBERS.len() as u64) as usize];
            members.push(if rng.next().is_multiple_of(2) {
                format!(r#""{s}":"{s}""#)
            } else {
                format!(r#""{s}":[{n},"{s}"]"#)
            });
        }
        let body = format!("{{{}}}", members.join(","));
        let slow = format!(r#"{{{},"zz":"\n"}}"#, members.join(","));
        assert_eq!(guard.scan_json(body.as_bytes()), guard.scan_json(slow.as_bytes()), "{body}");
    }
}

/// From the attack review: a configured pattern is compiled to at most
/// 1 MiB (a lazy DFA runs it, so its size barely changes the cost per
/// byte); one past that is a configuration error, not a slow request.
#[test]
fn a_configured_pattern_too_large_to_compile_is_refused() {
    assert!(Detector::custom("big", "[a-z]{20000}").is_err());
    let d = Detector::custom("hex", "[A-Za-z0-9]{64}").unwrap();
    assert_eq!(d.count(&"a".repeat(64 * 1024)), 1024);
}
