use super::*;
use crate::config::Secret;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn detail(r: Result<&str, Denial>) -> String {
    r.unwrap_err().detail.unwrap()
}

#[test]
fn a_sigv4_signature_is_no_identity() {
    let c = Carrier::SdkKeyHeaders;
    let sigv4 =
        "AWS4-HMAC-SHA256 Credential=AKIA/20261124/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=ab";
    assert_eq!(detail(find_svid(&c, Some(Api::Bedrock), &h(&[("authorization", sigv4)]))), "no_credential");
    assert_eq!(detail(find_svid(&c, Some(Api::OpenAi), &h(&[("authorization", sigv4)]))), "ambiguous_credentials");
    let twice = h(&[("authorization", sigv4), ("authorization", "Bearer t")]);
    assert_eq!(detail(find_svid(&c, Some(Api::Bedrock), &twice)), "ambiguous_credentials");
    assert_eq!(find_svid(&c, Some(Api::Bedrock), &h(&[("authorization", "Bearer t")])).unwrap(), "t");
}

#[test]
fn reads_the_sdk_key_headers() {
    let c = Carrier::SdkKeyHeaders;
    assert_eq!(find_svid(&c, Some(Api::OpenAi), &h(&[("authorization", "Bearer t")])).unwrap(), "t");
    assert_eq!(find_svid(&c, Some(Api::OpenAi), &h(&[("authorization", "bearer  t ")])).unwrap(), "t");
    assert_eq!(find_svid(&c, Some(Api::Anthropic), &h(&[("x-api-key", "t")])).unwrap(), "t");
    // x-api-key is no carrier for openai: it is stripped, never read.
    assert_eq!(detail(find_svid(&c, Some(Api::OpenAi), &h(&[("x-api-key", "t")]))), "no_credential");
    assert_eq!(detail(find_svid(&c, None, &h(&[]))), "no_credential");
    assert_eq!(detail(find_svid(&c, Some(Api::OpenAi), &h(&[("authorization", "Bearer ")]))), "no_credential");
}

#[test]
fn two_credentials_are_ambiguous() {
    let c = Carrier::SdkKeyHeaders;
    let both = h(&[("authorization", "Bearer a"), ("x-api-key", "b")]);
    assert_eq!(detail(find_svid(&c, Some(Api::Anthropic), &both)), "ambiguous_credentials");
    let repeated = h(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
    assert_eq!(detail(find_svid(&c, Some(Api::OpenAi), &repeated)), "ambiguous_credentials");
    let folded = h(&[("authorization", "Bearer a,Bearer b")]);
    assert_eq!(detail(find_svid(&c, Some(Api::OpenAi), &folded)), "ambiguous_credentials");
    let repeated_empty = h(&[("x-api-key", "a"), ("x-api-key", "")]);
    assert_eq!(detail(find_svid(&c, Some(Api::Anthropic), &repeated_empty)), "ambiguous_credentials");
}

#[test]
fn other_schemes_are_refused() {
    let c = Carrier::SdkKeyHeaders;
    assert_eq!(
        detail(find_svid(&c, Some(Api::OpenAi), &h(&[("authorization", "Basic dXNlcg==")]))),
        "unsupported_scheme"
    );
    assert_eq!(detail(find_svid(&c, Some(Api::OpenAi), &h(&[("authorization", "Bearertoken")]))), "unsupported_scheme");
}

#[test]
fn a_configured_header_is_the_only_carrier() {
    let c = Carrier::Header { name: "x-svid".into(), scheme: None };
    assert_eq!(find_svid(&c, Some(Api::OpenAi), &h(&[("x-svid", "t"), ("authorization", "Bearer u")])).unwrap(), "t");
    assert_eq!(detail(find_svid(&c, Some(Api::OpenAi), &h(&[("authorization", "Bearer u")]))), "no_credential");
}

#[test]
fn strips_every_carrier_and_sets_fixed_headers() {
    let provider = Provider {
        name: "anthropic".into(),
        api: Api::Anthropic,
        authorities: vec![],
        path_prefix: None,
        credential: Credential::ApiKey {
            key: Secret::new("sk-up".into()),
            header: "x-api-key".into(),
            prefix: String::new(),
        },
        headers: vec![("anthropic-workspace-id".into(), "wrkspc_gateway".into())],
        deployments: vec![],
        project: None,
        locations: vec![],
        include_usage: false,
        identity_to_provider: None,
        session_key: None,
    };
    let c = Carrier::Header { name: "x-svid".into(), scheme: None };
    let all = [
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-svid",
        "cookie",
        "x-http-method-override",
        "anthropic-workspace-id",
        "anthropic-organization-id",
    ];
    let sent: Vec<(String, String)> = all.iter().map(|n| (n.to_string(), "v".to_string())).collect();
    let r = rewrite(Some(&provider), &c, &sent);
    assert_eq!(rewrite(Some(&provider), &c, &h(&[("x-other", "v")])).remove_headers, Vec::<String>::new());
    for name in [
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-svid",
        "cookie",
        "x-http-method-override",
        "anthropic-workspace-id",
        "anthropic-organization-id",
    ] {
        assert!(r.remove_headers.iter().any(|h| h == name), "{name}");
    }
    assert_eq!(r.set_headers, h(&[("anthropic-workspace-id", "wrkspc_gateway"), ("anthropic-version", "2023-06-01")]));
    let r = rewrite(Some(&provider), &c, &h(&[("anthropic-version", "2024-01-01")]));
    assert_eq!(r.set_headers, h(&[("anthropic-workspace-id", "wrkspc_gateway")]));
    // The key itself comes from the plan.
    let tokens = TokenCache::default();
    let caller = Caller { spiffe_id: "spiffe://example.org/a", svid: None, model: None };
    assert_eq!(
        plan(&provider, &caller, &[], &tokens, 0, &|| [0; 16], &crate::identity::svid::PureRustVerifier),
        Ok(Plan::Ready(h(&[("x-api-key", "sk-up")])))
    );
}
