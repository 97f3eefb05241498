use super::*;

fn body(reply: &LocalReply) -> serde_json::Value {
    serde_json::from_slice(&reply.body).unwrap()
}

fn header<'a>(reply: &'a LocalReply, name: &str) -> Option<&'a str> {
    reply.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn openai_shape_carries_the_reason_as_code() {
    let r = Denial::new(Reason::ModelNotAllowed, "no rule allows gpt-4o").reply(Some(Api::OpenAi), Some("rid"));
    assert_eq!(r.status, 403);
    let b = body(&r);
    assert_eq!(b["error"]["code"], "model_not_allowed");
    assert_eq!(b["error"]["type"], "modelgate_error");
    assert_eq!(header(&r, "x-modelgate-reason"), Some("model_not_allowed"));
    assert_eq!(header(&r, "x-request-id"), Some("rid"));
    assert_eq!(header(&r, "www-authenticate"), None);
}

#[test]
fn anthropic_shape_uses_its_error_types() {
    for (reason, kind) in [
        (Reason::InvalidSvid, "authentication_error"),
        (Reason::ModelNotAllowed, "permission_error"),
        (Reason::InvalidBody, "invalid_request_error"),
        (Reason::UnsupportedEncoding, "invalid_request_error"),
        (Reason::CredentialUnavailable, "api_error"),
    ] {
        let b = body(&Denial::new(reason, "x").reply(Some(Api::Anthropic), None));
        assert_eq!(b["type"], "error");
        assert_eq!(b["error"]["type"], kind, "{reason:?}");
    }
}

#[test]
fn every_401_says_how_to_authenticate() {
    for reason in [Reason::MissingIdentity, Reason::InvalidSvid, Reason::IdentityMismatch, Reason::UntrustedDomain] {
        let r = Denial::new(reason, "x").reply(None, None);
        assert_eq!(r.status, 401);
        assert_eq!(header(&r, "www-authenticate"), Some("Bearer error=\"invalid_token\""));
    }
}
