use serde_json::json;

use super::*;
use crate::config::{Credential, Policy};
use crate::testing::*;

/// The test policy with openai's credential a token exchange.
fn with_exchange(credential: serde_json::Value) -> Policy {
    let mut c = config(json!({}));
    for p in c["providers"].as_array_mut().unwrap() {
        if p["name"] == "openai" {
            p["credential"] = credential.clone();
        }
    }
    Policy::from_json(c.to_string().as_bytes(), &|name| match name {
        "SIGNING_KEY" => Some(signing_jwk()),
        other => env(other),
    })
    .unwrap()
}

fn signing_jwk() -> String {
    let key = ec_key(3);
    let mut jwk = ec_jwk(&key, "gw-1");
    jwk["d"] = json!(b64(&key.to_bytes()));
    jwk.to_string()
}

fn exchange_of(p: &Policy) -> &TokenExchange {
    match &p.providers.iter().find(|p| p.name == "openai").unwrap().credential {
        Credential::TokenExchange(te) => te,
        other => panic!("{other:?}"),
    }
}

fn openai(p: &Policy) -> &Provider {
    p.providers.iter().find(|p| p.name == "openai").unwrap()
}

#[test]
fn the_openai_profile_speaks_rfc_8693_in_json() {
    let p = with_exchange(json!({
        "type": "token_exchange", "profile": "openai", "cluster": "openai_auth", "subject": "svid",
        "params": {"identity_provider_id": "idp_1"},
        "accounts": [{"workloads": ["spiffe://example.org/ns/support/**"], "params": {"service_account_id": "sa_1"}}]
    }));
    let te = exchange_of(&p);
    let call = request(te, "the-svid", &[("service_account_id".into(), "sa_1".into())]);
    assert_eq!((call.authority.as_str(), call.path.as_str(), call.method), ("auth.openai.com", "/oauth/token", "POST"));
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        body,
        json!({"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "the-svid",
               "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "identity_provider_id": "idp_1",
               "service_account_id": "sa_1"})
    );
    assert!(call.headers.contains(&("content-type".into(), "application/json".into())));
}

#[test]
fn the_anthropic_profile_speaks_rfc_7523_with_its_betas() {
    let p = with_exchange(json!({
        "type": "token_exchange", "profile": "anthropic", "cluster": "anthropic_auth", "subject": "minted",
        "mint": {"env": "SIGNING_KEY", "issuer": "https://gw.example", "audience": "https://api.anthropic.com"},
        "params": {"federation_rule_id": "fdrl_1", "organization_id": "org-1", "service_account_id": "svac_1"}
    }));
    let te = exchange_of(&p);
    let call = request(te, "assertion-jwt", &[]);
    assert_eq!((call.authority.as_str(), call.path.as_str()), ("api.anthropic.com", "/v1/oauth/token"));
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert_eq!(body["assertion"], "assertion-jwt");
    assert!(call.headers.contains(&("anthropic-beta".into(), "oauth-2025-04-20,oidc-federation-2026-04-01".into())));
    // The token's beta header joins the caller's own betas, once.
    let sent = vec![("anthropic-beta".to_string(), "prompt-caching-2024-07-31, oauth-2025-04-20".to_string())];
    assert_eq!(
        headers(te, "at", &sent),
        vec![
            ("authorization".to_string(), "Bearer at".to_string()),
            ("anthropic-beta".to_string(), "prompt-caching-2024-07-31,oauth-2025-04-20".to_string())
        ]
    );
}

#[test]
fn the_generic_form_is_url_encoded() {
    let p = with_exchange(json!({
        "type": "token_exchange", "cluster": "sts", "authority": "sts.internal", "path": "/token",
        "grant": "token_exchange", "subject": "svid", "audience": "https://llm internal", "scope": "a b"
    }));
    let call = request(exchange_of(&p), "t.o+k/=", &[]);
    assert_eq!(
        String::from_utf8(call.body).unwrap(),
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=t.o%2Bk%2F%3D\
         &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&audience=https%3A%2F%2Fllm+internal&scope=a+b"
    );
}

#[test]
fn a_profile_without_its_parameters_is_a_config_error() {
    let mut c = config(json!({}));
    c["providers"][1]["credential"] =
        json!({"type": "token_exchange", "profile": "openai", "cluster": "c", "subject": "svid"});
    let e = Policy::from_json(c.to_string().as_bytes(), &env).unwrap_err();
    assert!(e.message.contains("identity_provider_id"), "{e}");
    for (credential, path) in [
        (json!({"type": "token_exchange", "cluster": "c", "subject": "svid"}), "authority"),
        (
            json!({"type": "token_exchange", "cluster": "c", "authority": "a", "path": "/t", "grant": "jwt_bearer",
                "subject": "x"}),
            "subject",
        ),
        (
            json!({"type": "token_exchange", "cluster": "c", "authority": "a", "path": "/t", "grant": "token_exchange",
                "subject": "minted"}),
            "mint",
        ),
        (
            json!({"type": "token_exchange", "cluster": "c", "authority": "a", "path": "/t", "grant": "jwt_bearer",
                "subject": "svid", "params": {"assertion": "x"}}),
            "params.assertion",
        ),
        (json!({"type": "minted_jwt", "env": "NOPE", "issuer": "i", "audience": "a"}), "env"),
        (json!({"type": "minted_jwt", "env": "OPENAI_API_KEY", "issuer": "i", "audience": "a"}), "env"),
        (
            json!({"type": "minted_jwt", "env": "SIGNING_KEY", "issuer": "i", "audience": "a", "ttl_seconds": 301}),
            "ttl_seconds",
        ),
    ] {
        let mut c = config(json!({}));
        c["providers"][1]["credential"] = credential;
        let e = Policy::from_json(c.to_string().as_bytes(), &|n| match n {
            "SIGNING_KEY" => Some(signing_jwk()),
            other => env(other),
        })
        .unwrap_err();
        assert!(e.path.ends_with(path), "{e}");
    }
}

#[test]
fn answers_are_read_strictly() {
    let p = with_exchange(json!({
        "type": "token_exchange", "cluster": "sts", "authority": "sts", "path": "/t", "grant": "jwt_bearer",
        "subject": "svid"
    }));
    let provider = openai(&p);
    let ok = |body: serde_json::Value| CalloutResult::Response {
        content_type: None,
        status: 200,
        body: body.to_string().into_bytes(),
    };
    assert_eq!(
        read(provider, &ok(json!({"access_token": "at", "token_type": "bearer", "expires_in": 60}))),
        Ok(Token { value: "at".into(), expires_in: 60 })
    );
    let detail = |r: &CalloutResult| read(provider, r).unwrap_err().detail.unwrap();
    assert_eq!(detail(&CalloutResult::Failed("timeout".into())), "token_endpoint_unreachable");
    assert_eq!(
        detail(&CalloutResult::Response { content_type: None, status: 500, body: vec![] }),
        "token_endpoint_status"
    );
    assert_eq!(
        detail(&CalloutResult::Response { content_type: None, status: 200, body: b"<html>".to_vec() }),
        "token_response_invalid"
    );
    for bad in [
        json!({"token_type": "Bearer", "expires_in": 60}),
        json!({"access_token": "", "token_type": "Bearer", "expires_in": 60}),
        json!({"access_token": "a b", "token_type": "Bearer", "expires_in": 60}),
        json!({"access_token": "at", "expires_in": 60}),
        json!({"access_token": "at", "token_type": "Bearer"}),
        json!({"access_token": "at", "token_type": "Bearer", "expires_in": "60"}),
        json!({"access_token": "at", "token_type": "Bearer", "expires_in": 0}),
        json!({"access_token": "at", "token_type": "Bearer", "expires_in": 1.5}),
    ] {
        assert_eq!(detail(&ok(bad.clone())), "token_response_invalid", "{bad}");
    }
    assert_eq!(
        detail(&ok(json!({"access_token": "at", "token_type": "N_A", "expires_in": 60}))),
        "token_type_unsupported"
    );
}

#[test]
fn the_cache_serves_until_the_margin_and_across_vms() {
    let cache = TokenCache::default();
    let k = key("openai", "spiffe://example.org/a", None);
    cache.store(&k, &Token { value: "at-1".into(), expires_in: 100 }, 30, 1_000);
    assert_eq!(cache.get(&k, 70_999).as_deref(), Some("at-1"));
    assert_eq!(cache.get(&k, 71_000), None, "refreshed 30 s before expiry");
    // Never across workloads or models.
    assert_eq!(cache.get(&key("openai", "spiffe://example.org/b", None), 2_000), None);
    assert_eq!(cache.get(&key("openai", "spiffe://example.org/a", Some("m")), 2_000), None);
    // Another VM takes it from shared data, only for the same key.
    let other = TokenCache::default();
    let shared = cache.export(&k).unwrap();
    assert!(!other.import(&key("openai", "spiffe://example.org/b", None), &shared, 2_000));
    assert!(!other.import(&k, &shared, 71_000), "stale");
    assert!(other.import(&k, &shared, 2_000));
    assert_eq!(other.get(&k, 2_000).as_deref(), Some("at-1"));
    // A failure is remembered for the waiters, and replaces the token.
    let d = Denial::new(Reason::CredentialUnavailable, "x").with_detail("token_endpoint_status");
    cache.fail(&k, &d);
    assert_eq!(cache.get(&k, 2_000), None);
    assert_eq!(cache.failure(&k), Some(d));
    assert_eq!(cache.stats().failures, vec![("token_endpoint_status".to_string(), 1)]);
}

/// Every shape a call-out's answer takes on its way from the host ends in
/// a refusal with a detail that names it, never a token.
#[test]
fn every_broken_answer_shape_is_refused() {
    use crate::callout::delivered;
    let p = with_exchange(json!({
        "type": "token_exchange", "cluster": "sts", "authority": "sts", "path": "/t", "grant": "jwt_bearer",
        "subject": "svid"
    }));
    let provider = openai(&p);
    let good = br#"{"access_token": "at", "token_type": "Bearer", "expires_in": 60}"#.to_vec();
    let limit = MAX_RESPONSE_BYTES;
    let detail = |r: CalloutResult| read(provider, &r).unwrap_err().detail.unwrap();
    // Cut after the headers, reset, timed out after the headers: 0 headers.
    assert_eq!(detail(delivered(0, None, None, None, 0, limit)), "token_endpoint_unreachable");
    // Headers but no final status, or a body the host would not give.
    assert_eq!(detail(delivered(2, None, None, Some(good.clone()), good.len(), limit)), "token_endpoint_unreachable");
    assert_eq!(
        detail(delivered(2, Some("103"), None, Some(good.clone()), good.len(), limit)),
        "token_endpoint_unreachable"
    );
    assert_eq!(detail(delivered(2, Some("200"), None, None, good.len(), limit)), "token_endpoint_unreachable");
    // Oversized: read to one byte past the limit, refused as too large.
    let mut big = good[..good.len() - 1].to_vec();
    big.resize(limit + 1, b' ');
    let r = delivered(2, Some("200"), Some("application/json"), Some(big), 2 << 20, limit);
    assert!(read(provider, &r).unwrap_err().message.contains("too large"));
    // A good answer labelled as something else than JSON.
    assert_eq!(
        detail(delivered(2, Some("200"), Some("text/html"), Some(good.clone()), good.len(), limit)),
        "token_response_invalid"
    );
    // Broken JSON.
    assert_eq!(
        detail(delivered(2, Some("200"), Some("application/json"), Some(good[..40].to_vec()), 40, limit)),
        "token_response_invalid"
    );
    // And the good answer, labelled as JSON (with parameters) or not at all, is a token.
    for content_type in [Some("application/json; charset=utf-8"), None] {
        let r = delivered(2, Some("200"), content_type, Some(good.clone()), good.len(), limit);
        assert_eq!(read(provider, &r), Ok(Token { value: "at".into(), expires_in: 60 }));
    }
}
