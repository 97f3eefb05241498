use super::*;

#[test]
fn keeps_only_the_endpoints_parameters() {
    assert_eq!(sanitize("/v1/x", &[]).unwrap(), None);
    assert_eq!(sanitize("/v1/x?beta=true", &["beta"]).unwrap(), None);
    assert_eq!(sanitize("/v1/x?key=s&beta=true&api-key=t&x=1", &["beta"]).unwrap().as_deref(), Some("/v1/x?beta=true"));
    assert_eq!(sanitize("/v1/x?access_token=s&&", &[]).unwrap().as_deref(), Some("/v1/x"));
    assert_eq!(sanitize("/v1/x?", &[]).unwrap().as_deref(), Some("/v1/x"));
}

#[test]
fn a_model_in_the_query_is_refused_however_spelled() {
    for path in ["/v1/x?model=gpt-4o", "/v1/x?MODEL=a", "/v1/x?%6dodel=a", "/v1/x?mod%65l", "/v1/x?a=1&Model=b"] {
        assert_eq!(sanitize(path, &[]).unwrap_err().detail.as_deref(), Some("query_model"), "{path}");
    }
}

#[test]
fn a_repeated_parameter_is_refused() {
    assert_eq!(sanitize("/v1/x?beta=true&beta=false", &["beta"]).unwrap_err().reason, Reason::InvalidPath);
}

#[test]
fn credentials_are_stripped_however_spelled() {
    assert_eq!(strip_credentials("/v1/x?a=1&KEY=s&b=2&%6bey=t&k%65y&Api_Key=u").as_deref(), Some("/v1/x?a=1&b=2"));
    assert_eq!(strip_credentials("/v1/x?keys=1&monkey=2"), None);
}
