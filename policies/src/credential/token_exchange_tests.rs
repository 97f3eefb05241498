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
    let k = key("digest", None, "spiffe://example.org/a", None);
    cache.store(&k, &Token { value: "at-1".into(), expires_in: 100 }, 30, 1_000);
    assert_eq!(cache.get(&k, 70_999).as_deref(), Some("at-1"));
    assert_eq!(cache.get(&k, 71_000), None, "refreshed 30 s before expiry");
    cache.store(&k, &Token { value: "at-1".into(), expires_in: 100 }, 30, 1_000);
    // Never across workloads or models.
    assert_eq!(cache.get(&key("digest", None, "spiffe://example.org/b", None), 2_000), None);
    assert_eq!(cache.get(&key("digest", None, "spiffe://example.org/a", Some("m")), 2_000), None);
    // Another VM takes it from shared data, only for the same key.
    let other = TokenCache::default();
    let shared = cache.export(&k).unwrap();
    assert!(!other.import(&key("digest", None, "spiffe://example.org/b", None), &shared, 2_000));
    assert!(!other.import(&k, &shared, 71_000), "stale");
    assert!(other.import(&k, &shared, 2_000));
    assert_eq!(other.get(&k, 2_000).as_deref(), Some("at-1"));
    // A failure is remembered for the waiters, and replaces the token.
    let d = Denial::new(Reason::CredentialUnavailable, "x").with_detail("token_endpoint_status");
    cache.fail(&k, &d, 2_000);
    assert_eq!(cache.get(&k, 2_000), None);
    assert_eq!(cache.failure(&k, 2_000), Some(d));
    assert_eq!(cache.stats().failures, vec![("token_endpoint_status".to_string(), 1)]);
}

/// A token that lives no longer than the refresh margin is still served,
/// for half its life, to the requests that waited for it; a token another
/// VM published is believed no longer than one fetched here.
#[test]
fn a_short_lived_token_is_kept_for_half_its_life_and_imports_are_capped() {
    let cache = TokenCache::default();
    let k = key("digest", None, "spiffe://example.org/a", None);
    cache.store(&k, &Token { value: "at-short".into(), expires_in: 20 }, 30, 1_000);
    assert_eq!(cache.get(&k, 10_999).as_deref(), Some("at-short"));
    assert_eq!(cache.get(&k, 11_000), None);
    cache.store(&k, &Token { value: "at-1s".into(), expires_in: 1 }, 30, 1_000);
    assert_eq!(cache.get(&k, 1_500).as_deref(), Some("at-1s"));
    let forever = format!("{}\n{k}\nat-pinned", u64::MAX);
    let other = TokenCache::default();
    assert!(other.import(&k, forever.as_bytes(), 1_000));
    assert_eq!(other.get(&k, 1_000 + 86_400_000), None, "at most a day");
}

/// RFC 6749 §5.1: a token answer is a 200; any other 2xx is no token.
#[test]
fn only_a_200_is_a_token_answer() {
    let p = with_exchange(json!({
        "type": "token_exchange", "cluster": "sts", "authority": "sts", "path": "/t", "grant": "jwt_bearer",
        "subject": "svid"
    }));
    let body = br#"{"access_token": "at", "token_type": "Bearer", "expires_in": 60}"#.to_vec();
    for status in [201, 203, 206, 299] {
        let r = CalloutResult::Response { status, content_type: None, body: body.clone() };
        assert_eq!(read(openai(&p), &r).unwrap_err().detail.as_deref(), Some("token_endpoint_status"), "{status}");
    }
}

/// Every shape a call-out's answer takes on its way from the host ends in
/// a refusal with a detail that names it, never a token.
#[test]
fn every_broken_answer_shape_is_refused() {
    use crate::credential::callout::delivered;
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

/// The openai exchange of `with_exchange`, to vary one field at a time.
fn base_exchange() -> serde_json::Value {
    json!({
        "type": "token_exchange", "cluster": "sts_a", "authority": "sts.a", "path": "/token",
        "timeout_ms": 1000, "grant": "token_exchange", "encoding": "form", "subject": "minted",
        "mint": {"env": "SIGNING_KEY", "issuer": "https://gw.example", "audience": "https://sts.a", "ttl_seconds": 60},
        "audience": "https://llm", "scope": "llm.invoke", "client_id": "gw", "params": {"resource": "r"},
        "accounts": [{"workloads": ["spiffe://example.org/ns/support/**"], "params": {"account": "a"}},
                     {"workloads": ["spiffe://example.org/**"], "params": {"account": "b"}}],
        "exchange_headers": {"x-tenant": "t1"}, "refresh_margin_seconds": 30,
        "header": "authorization", "prefix": "Bearer "
    })
}

fn digest_of(credential: &serde_json::Value, patch: serde_json::Value, key_seed: u8) -> String {
    let mut c = config(patch);
    for p in c["providers"].as_array_mut().unwrap() {
        if p["name"] == "openai" {
            p["credential"] = credential.clone();
        }
    }
    let signing = {
        let key = ec_key(key_seed);
        let mut jwk = ec_jwk(&key, "gw-1");
        jwk["d"] = json!(b64(&key.to_bytes()));
        jwk.to_string()
    };
    let p = Policy::from_json(c.to_string().as_bytes(), &|name| match name {
        "SIGNING_KEY" => Some(signing.clone()),
        other => env(other),
    })
    .unwrap();
    exchange_of(&p).digest.clone()
}

#[test]
fn every_credential_field_and_the_policy_generation_change_the_key() {
    let base = base_exchange();
    let first = digest_of(&base, json!({}), 3);
    assert_eq!(first.len(), 64);
    assert_eq!(digest_of(&base, json!({}), 3), first, "equal configurations, equal keys");
    let changes: Vec<(&str, serde_json::Value)> = vec![
        ("cluster", json!("sts_b")),
        ("authority", json!("sts.b")),
        ("path", json!("/token2")),
        ("timeout_ms", json!(2000)),
        ("grant", json!("jwt_bearer")),
        ("encoding", json!("json")),
        ("audience", json!("https://llm2")),
        ("scope", json!("llm.admin")),
        ("client_id", json!("gw2")),
        ("params", json!({"resource": "r2"})),
        ("accounts", json!([{"workloads": ["spiffe://example.org/**"], "params": {"account": "b"}}])),
        (
            "accounts",
            json!([{"workloads": ["spiffe://example.org/ns/support/**"], "params": {"account": "c"}},
                   {"workloads": ["spiffe://example.org/**"], "params": {"account": "b"}}]),
        ),
        ("exchange_headers", json!({"x-tenant": "t2"})),
        ("refresh_margin_seconds", json!(31)),
        ("header", json!("x-token")),
        ("prefix", json!("Token ")),
        ("mint", json!({"env": "SIGNING_KEY", "issuer": "https://gw2.example", "audience": "https://sts.a"})),
        ("mint", json!({"env": "SIGNING_KEY", "issuer": "https://gw.example", "audience": "https://sts.b"})),
        (
            "mint",
            json!({"env": "SIGNING_KEY", "issuer": "https://gw.example", "audience": "https://sts.a", "ttl_seconds": 61}),
        ),
    ];
    let mut seen = vec![first.clone()];
    for (field, value) in changes {
        let mut changed = base.clone();
        changed[field] = value.clone();
        let d = digest_of(&changed, json!({}), 3);
        assert!(!seen.contains(&d), "{field} = {value} left the key as it was");
        seen.push(d);
    }
    let mut svid = base.clone();
    svid["subject"] = json!("svid");
    svid.as_object_mut().unwrap().remove("mint");
    let others = [
        digest_of(&svid, json!({}), 3),
        digest_of(&base, json!({}), 4),                // another signing key
        digest_of(&base, json!({"mode": "audit"}), 3), // another policy generation
        digest_of(&base, json!({"limits": {"max_body_bytes": 1000}}), 3),
    ];
    for d in others {
        assert!(!seen.contains(&d));
        seen.push(d);
    }
}

#[test]
fn the_key_names_the_account_the_workload_and_a_bound_model() {
    let k = |d: &str, a: Option<usize>, s: &str, m: Option<&str>| key(d, a, s, m);
    let base = k("d", Some(0), "spiffe://example.org/a", Some("m"));
    assert_eq!(base, k("d", Some(0), "spiffe://example.org/a", Some("m")));
    for other in [
        k("e", Some(0), "spiffe://example.org/a", Some("m")),
        k("d", Some(1), "spiffe://example.org/a", Some("m")),
        k("d", None, "spiffe://example.org/a", Some("m")),
        k("d", Some(0), "spiffe://example.org/b", Some("m")),
        k("d", Some(0), "spiffe://example.org/a", Some("n")),
        k("d", Some(0), "spiffe://example.org/a", None),
        // Fields never run together.
        k("d", Some(0), "spiffe://example.org/a\n", Some("")),
    ] {
        assert_ne!(base, other);
    }
    // No SPIFFE ID or model shows in it.
    assert!(base.bytes().all(|b| b.is_ascii_hexdigit()) && base.len() == 64);
}

#[test]
fn plan_keys_by_the_credential_digest_and_the_chosen_account() {
    let p = with_exchange(base_exchange());
    let provider = openai(&p);
    let tokens = TokenCache::default();
    let plan_key = |spiffe_id: &str, model: Option<&str>| {
        let caller = crate::credential::Caller { spiffe_id, svid: None, model };
        match crate::credential::plan(
            provider,
            &caller,
            &[],
            &tokens,
            0,
            &|| [7; 16],
            &crate::identity::svid::PureRustVerifier,
        )
        .unwrap()
        {
            crate::credential::Plan::Fetch { key, .. } => key,
            other => panic!("{other:?}"),
        }
    };
    let te = exchange_of(&p);
    let support = "spiffe://example.org/ns/support/sa/bot";
    assert_eq!(plan_key(support, Some("m")), key(&te.digest, Some(0), support, Some("m")));
    let other = "spiffe://example.org/ns/research/sa/bot";
    assert_eq!(plan_key(other, Some("m")), key(&te.digest, Some(1), other, Some("m")));
}

#[test]
fn a_full_cache_drops_the_expired_then_the_oldest() {
    let cache = TokenCache::new(3);
    let t = |v: &str, expires_in| Token { value: v.into(), expires_in };
    cache.store("a", &t("ta", 100), 0, 0);
    cache.store("b", &t("tb", 10), 0, 0);
    cache.store("c", &t("tc", 100), 0, 0);
    // b expired at 10 s: it goes, not the oldest.
    cache.store("d", &t("td", 100), 0, 20_000);
    assert_eq!(cache.sizes().0, 3);
    assert_eq!(cache.get("a", 20_000).as_deref(), Some("ta"));
    assert_eq!(cache.get("b", 5_000), None);
    // Nothing expired: the oldest (a) goes.
    cache.store("e", &t("te", 100), 0, 21_000);
    assert_eq!(cache.get("a", 21_000), None);
    for (k, v) in [("c", "tc"), ("d", "td"), ("e", "te")] {
        assert_eq!(cache.get(k, 21_000).as_deref(), Some(v));
    }
    // Storing a key again makes it the newest.
    cache.store("c", &t("tc2", 100), 0, 22_000);
    cache.store("f", &t("tf", 100), 0, 22_000);
    assert_eq!(cache.get("d", 22_000), None);
    assert_eq!(cache.get("c", 22_000).as_deref(), Some("tc2"));
    // An expired entry is never served, and leaves when read.
    assert_eq!(cache.get("f", 200_000), None);
    assert_eq!(cache.sizes().0, 2);
}

#[test]
fn a_flood_of_keys_stays_within_the_bound() {
    let cache = TokenCache::new(64);
    for i in 0..5_000u64 {
        let k = key("d", None, "spiffe://example.org/a", Some(&format!("model-{i}")));
        cache.store(&k, &Token { value: format!("t{i}"), expires_in: 300 }, 0, i);
        assert!(cache.sizes().0 <= 64);
        assert_eq!(cache.get(&k, i).as_deref(), Some(format!("t{i}").as_str()), "the newest is kept");
    }
    assert_eq!(cache.sizes().0, 64);
    let d = Denial::new(Reason::CredentialUnavailable, "x").with_detail("token_endpoint_status");
    for i in 0..1_000u64 {
        cache.fail(&format!("k{i}"), &d, i);
        assert!(cache.sizes().1 <= MAX_FAILURES.min(64));
    }
    assert_eq!(cache.failure("k999", 999), Some(d.clone()));
    assert_eq!(cache.failure("k0", 999), None, "the oldest failure went");
    let big = TokenCache::new(1_000);
    for i in 0..1_000u64 {
        big.fail(&format!("k{i}"), &d, 0);
    }
    assert_eq!(big.sizes().1, MAX_FAILURES);
    // A failure is kept for its waiters only a while.
    assert_eq!(big.failure("k999", 59_999), Some(d));
    assert_eq!(big.failure("k999", 60_000), None);
}

#[test]
fn the_token_cache_size_is_bounded_in_the_config() {
    assert_eq!(policy(json!({})).token_cache_size, DEFAULT_CACHE_SIZE);
    assert_eq!(policy(json!({"limits": {"token_cache_size": 64}})).token_cache_size, 64);
    for bad in [0, MAX_CACHE_SIZE as u64 + 1] {
        let c = config(json!({"limits": {"token_cache_size": bad}}));
        let e = Policy::from_json(c.to_string().as_bytes(), &env).unwrap_err();
        assert_eq!(e.path, "limits.token_cache_size", "{e}");
    }
}
