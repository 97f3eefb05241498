use super::*;

#[test]
fn prompt_is_length_and_digest_only() {
    let p = Prompt::of(b"abc", true);
    assert_eq!(p.bytes, 3);
    assert_eq!(p.sha256.as_deref(), Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_eq!(Prompt::of(b"abc", false).sha256, None);
}

#[test]
fn serializes_every_field_name_of_the_contract() {
    let v: serde_json::Value = serde_json::from_str(&Record::default().to_json()).unwrap();
    for field in [
        "time",
        "request_id",
        "trace_id",
        "decision",
        "mode",
        "would_deny",
        "reason",
        "detail",
        "rule",
        "workload",
        "provider",
        "api",
        "endpoint",
        "model",
        "response_model",
        "stream",
        "credential",
        "prompt",
        "upstream",
        "usage",
        "client",
    ] {
        assert!(v.get(field).is_some(), "{field}");
    }
}
