use super::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const BOT: &str = "spiffe://example.org/ns/agents/sa/triage";
const OTHER: &str = "spiffe://example.org/ns/agents/sa/other";

#[test]
fn the_workload_that_opened_a_session_gets_the_servers_id_back() {
    let wrapped = wrap(KEY, "github", BOT, "abc-123").unwrap();
    assert!(wrapped.starts_with("abc-123.mg1."));
    assert_eq!(unwrap(KEY, "github", BOT, &wrapped), Some("abc-123"));
}

#[test]
fn another_workload_another_provider_or_another_key_finds_no_session() {
    let wrapped = wrap(KEY, "github", BOT, "abc-123").unwrap();
    assert_eq!(unwrap(KEY, "github", OTHER, &wrapped), None);
    assert_eq!(unwrap(KEY, "jira", BOT, &wrapped), None);
    assert_eq!(unwrap(b"another key, just as long, 32 b.", "github", BOT, &wrapped), None);
}

#[test]
fn altered_forged_and_bare_ids_find_no_session() {
    let wrapped = wrap(KEY, "github", BOT, "abc-123").unwrap();
    let (id, tag) = wrapped.rsplit_once(".mg1.").unwrap();
    assert_eq!(unwrap(KEY, "github", BOT, "abc-123"), None);
    assert_eq!(unwrap(KEY, "github", BOT, &format!("abc-124.mg1.{tag}")), None);
    assert_eq!(unwrap(KEY, "github", BOT, &format!("{id}.mg1.{}", &tag[1..])), None);
    assert_eq!(unwrap(KEY, "github", BOT, &format!("{id}.mg1.{tag}=")), None);
    assert_eq!(unwrap(KEY, "github", BOT, &format!("{id}.mg1.")), None);
    let mut flipped = tag.to_string().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    assert_eq!(unwrap(KEY, "github", BOT, &format!("{id}.mg1.{}", String::from_utf8(flipped).unwrap())), None);
}

#[test]
fn server_ids_the_spec_does_not_allow_are_never_bound() {
    assert_eq!(wrap(KEY, "github", BOT, ""), None);
    assert_eq!(wrap(KEY, "github", BOT, "has space"), None);
    assert_eq!(wrap(KEY, "github", BOT, "new\nline"), None);
    assert_eq!(wrap(KEY, "github", BOT, &"x".repeat(MAX_SESSION_ID + 1)), None);
    // An id holding the mark itself still round-trips.
    let odd = wrap(KEY, "github", BOT, "a.mg1.b").unwrap();
    assert_eq!(unwrap(KEY, "github", BOT, &odd), Some("a.mg1.b"));
}
