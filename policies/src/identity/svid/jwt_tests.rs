//! One test per rejection class, each with a token that differs from a
//! valid one in that one respect.

use jwt_simple::prelude::*;
use serde_json::json;

use super::*;
use crate::config::Policy;
use crate::identity::svid::PureRustVerifier;
use crate::testing::*;

fn check(token: &str) -> Result<JwtSvid> {
    check_at(token, NOW)
}

fn check_at(token: &str, now: u64) -> Result<JwtSvid> {
    let p = policy(json!({}));
    validate(token, &p.jwt_svid, &crate::identity::svid::TrustStore::new(&p.trust_domains), &PureRustVerifier, now)
}

#[test]
fn accepts_a_valid_svid() {
    let svid = check(&svid(BOT)).unwrap();
    assert_eq!(svid.spiffe_id.as_str(), BOT);
    assert_eq!((svid.kid.as_str(), svid.exp, svid.jti.as_deref()), ("k1", NOW + 3600, Some("j-1")));
}

#[test]
fn accepts_typ_jose_no_typ_and_a_string_audience() {
    assert!(check(&es256(with(header(), "typ", json!("JOSE")), claims(BOT))).is_ok());
    assert!(check(&es256(without(header(), "typ"), claims(BOT))).is_ok());
    assert!(check(&es256(header(), with(claims(BOT), "aud", json!(AUD)))).is_ok());
    assert!(check(&es256(header(), with(claims(BOT), "aud", json!(["other", AUD])))).is_ok());
}

#[test]
fn accepts_rs256_and_ps256() {
    let now = Clock::now_since_epoch().as_secs();
    let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap().public_key().to_components();
    let mut cfg = config(json!({}));
    cfg["trust_domains"][0]["jwt_bundle"]["keys"] =
        json!([{"kty":"RSA","kid":"r1","use":"jwt-svid","n":b64(&rsa.n),"e":b64(&rsa.e)}]);
    let p = Policy::from_json(cfg.to_string().as_bytes(), &env).unwrap();
    let claims = || Claims::create(Duration::from_mins(5)).with_subject(BOT).with_audience(AUD);
    let rs = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(claims()).unwrap();
    let ps = PS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(claims()).unwrap();
    for token in [rs, ps] {
        validate(
            &token,
            &p.jwt_svid,
            &crate::identity::svid::TrustStore::new(&p.trust_domains),
            &PureRustVerifier,
            now,
        )
        .unwrap();
    }
    // The same RSA key cannot verify a token whose signature was altered.
    let rs = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(claims()).unwrap();
    let tampered = format!("{}A", &rs[..rs.len() - 1]);
    let tampered = if tampered == rs { format!("{}B", &rs[..rs.len() - 1]) } else { tampered };
    let e = validate(
        &tampered,
        &p.jwt_svid,
        &crate::identity::svid::TrustStore::new(&p.trust_domains),
        &PureRustVerifier,
        now,
    )
    .unwrap_err();
    assert!(matches!(e, JwtSvidError::BadSignature | JwtSvidError::Malformed), "{e:?}");
}

#[test]
fn rejects_an_overlong_token() {
    assert_eq!(check(&"a".repeat(MAX_TOKEN_BYTES + 1)), Err(JwtSvidError::TooLong));
}

#[test]
fn rejects_the_json_serialization() {
    let t = json!({"payload":"e30","protected":"e30","signature":"AA"}).to_string();
    assert_eq!(check(&t), Err(JwtSvidError::JsonSerialization));
}

#[test]
fn rejects_malformed_compact_forms() {
    let good = svid(BOT);
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        "".to_string(),
        "abc".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.x.y"),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}+/", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], "!!", parts[2]),
    ] {
        assert_eq!(check(&bad), Err(JwtSvidError::Malformed), "{bad}");
    }
}

#[test]
fn rejects_a_header_that_is_not_an_object() {
    let t = format!("{}.{}.AA", b64(b"[1]"), b64(claims(BOT).to_string().as_bytes()));
    assert_eq!(check(&t), Err(JwtSvidError::MalformedHeader));
    let dup = format!("{}.{}.AA", b64(br#"{"alg":"ES256","alg":"none"}"#), b64(claims(BOT).to_string().as_bytes()));
    assert_eq!(check(&dup), Err(JwtSvidError::MalformedHeader));
}

#[test]
fn rejects_unknown_header_parameters() {
    for (name, value) in [
        ("jku", json!("https://evil.example/jwks")),
        ("jwk", ec_jwk(&ec_key(9), "k1")),
        ("x5c", json!(["AA"])),
        ("crit", json!(["exp"])),
        ("cty", json!("JWT")),
    ] {
        assert_eq!(check(&es256(with(header(), name, value), claims(BOT))), Err(JwtSvidError::UnknownHeader), "{name}");
    }
}

#[test]
fn rejects_algorithms_outside_the_standard() {
    let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims(BOT).to_string().as_bytes()));
    assert_eq!(check(&none), Err(JwtSvidError::AlgNotAllowed));
    for alg in ["none", "HS256", "EdDSA", "ES256K", "es256", ""] {
        assert_eq!(
            check(&es256(with(header(), "alg", json!(alg)), claims(BOT))),
            Err(JwtSvidError::AlgNotAllowed),
            "{alg}"
        );
    }
    assert_eq!(check(&es256(without(header(), "alg"), claims(BOT))), Err(JwtSvidError::AlgNotAllowed));
}

#[test]
fn rejects_a_key_of_another_type_or_curve() {
    for alg in ["RS256", "PS256", "ES384", "ES512"] {
        assert_eq!(
            check(&es256(with(header(), "alg", json!(alg)), claims(BOT))),
            Err(JwtSvidError::AlgKeyMismatch),
            "{alg}"
        );
    }
}

/// go-spiffe, py-spiffe and the providers' workload identity federation
/// all require `kid`; so does modelgate (docs/identity.md).
#[test]
fn rejects_a_token_without_kid() {
    assert_eq!(check(&es256(without(header(), "kid"), claims(BOT))), Err(JwtSvidError::KidMissing));
    assert_eq!(check(&sign_es256(&ec_key(2), &without(header(), "kid"), &claims(BOT))), Err(JwtSvidError::KidMissing));
}

#[test]
fn rejects_other_typ() {
    for typ in [json!("jwt+x"), json!("at+jwt"), json!(1), json!("jose")] {
        assert_eq!(check(&es256(with(header(), "typ", typ.clone()), claims(BOT))), Err(JwtSvidError::BadTyp), "{typ}");
    }
}

#[test]
fn rejects_malformed_claims() {
    for (k, v) in [
        ("exp", json!(1_795_003_600.5)),
        ("exp", json!("1795003600")),
        ("exp", json!(1e30)),
        ("nbf", json!(-1.5)),
        ("iat", json!(null)),
        ("aud", json!(5)),
        ("aud", json!([AUD, 5])),
        ("jti", json!(1)),
    ] {
        assert_eq!(
            check(&es256(header(), with(claims(BOT), k, v.clone()))),
            Err(JwtSvidError::MalformedClaims),
            "{k}={v}"
        );
    }
    let dup = format!(
        "{}.{}.AA",
        b64(header().to_string().as_bytes()),
        b64(format!(r#"{{"sub":"{BOT}","sub":"spiffe://example.org/x"}}"#).as_bytes())
    );
    assert_eq!(check(&dup), Err(JwtSvidError::MalformedClaims));
}

#[test]
fn rejects_a_missing_subject() {
    assert_eq!(check(&es256(header(), without(claims(BOT), "sub"))), Err(JwtSvidError::SubjectMissing));
}

#[test]
fn rejects_a_subject_that_is_not_a_spiffe_id() {
    for sub in [
        json!("bot"),
        json!("spiffe://example.org/ns/"),
        json!("spiffe://Example.org/x"),
        json!("https://example.org/x"),
        json!(5),
    ] {
        assert_eq!(
            check(&es256(header(), with(claims(BOT), "sub", sub.clone()))),
            Err(JwtSvidError::SubjectNotSpiffeId),
            "{sub}"
        );
    }
}

#[test]
fn rejects_an_untrusted_domain() {
    let t = sign_es256(&ec_key(2), &header(), &claims("spiffe://other.org/ns/support/sa/bot"));
    let e = check(&t).unwrap_err();
    assert_eq!(e, JwtSvidError::UntrustedDomain);
    assert_eq!(e.denial().reason, Reason::UntrustedDomain);
    // A look-alike domain is another domain.
    let t = es256(header(), claims("spiffe://example.org.evil.com/ns/support/sa/bot"));
    assert_eq!(check(&t), Err(JwtSvidError::UntrustedDomain));
}

#[test]
fn rejects_an_unknown_kid() {
    assert_eq!(check(&es256(with(header(), "kid", json!("k2")), claims(BOT))), Err(JwtSvidError::UnknownKid));
    assert_eq!(check(&es256(with(header(), "kid", json!("")), claims(BOT))), Err(JwtSvidError::MalformedHeader));
}

#[test]
fn rejects_a_forged_signature() {
    // Signed by a key the bundle does not hold, naming the bundle's kid.
    assert_eq!(check(&sign_es256(&ec_key(2), &header(), &claims(BOT))), Err(JwtSvidError::BadSignature));
    // A genuine signature moved onto other claims.
    let good = svid(BOT);
    let sig = good.rsplit('.').next().unwrap();
    let other = es256(header(), claims("spiffe://example.org/ns/research/sa/x"));
    let moved = format!("{}.{sig}", other.rsplit_once('.').unwrap().0);
    assert_eq!(check(&moved), Err(JwtSvidError::BadSignature));
    // An empty signature.
    assert_eq!(check(&format!("{}.", good.rsplit_once('.').unwrap().0)), Err(JwtSvidError::BadSignature));
}

#[test]
fn rejects_a_token_without_exp() {
    assert_eq!(check(&es256(header(), without(claims(BOT), "exp"))), Err(JwtSvidError::ExpMissing));
}

#[test]
fn rejects_an_expired_token_beyond_the_leeway() {
    let t = svid(BOT);
    assert!(check_at(&t, NOW + 3600 + 29).is_ok());
    assert_eq!(check_at(&t, NOW + 3600 + 30), Err(JwtSvidError::Expired));
}

#[test]
fn rejects_nbf_in_the_future_beyond_the_leeway() {
    let t = es256(header(), with(claims(BOT), "nbf", json!(NOW + 31)));
    assert_eq!(check(&t), Err(JwtSvidError::NotYetValid));
    assert!(check(&es256(header(), with(claims(BOT), "nbf", json!(NOW + 30)))).is_ok());
}

#[test]
fn rejects_iat_in_the_future_beyond_the_leeway() {
    let t = es256(header(), with(claims(BOT), "iat", json!(NOW + 31)));
    assert_eq!(check(&t), Err(JwtSvidError::IssuedInFuture));
}

#[test]
fn rejects_a_lifetime_above_the_maximum() {
    let t = es256(header(), with(with(claims(BOT), "iat", json!(NOW - 100)), "exp", json!(NOW - 100 + 86_401)));
    assert_eq!(check(&t), Err(JwtSvidError::LifetimeTooLong));
    // Without iat, the time left is bounded.
    let t = es256(header(), with(without(claims(BOT), "iat"), "exp", json!(NOW + 86_401)));
    assert_eq!(check(&t), Err(JwtSvidError::LifetimeTooLong));
}

#[test]
fn rejects_a_missing_or_foreign_audience() {
    assert_eq!(check(&es256(header(), without(claims(BOT), "aud"))), Err(JwtSvidError::AudienceMissing));
    for aud in [json!("spiffe://example.org/other"), json!([]), json!(["SPIFFE://example.org/modelgate"])] {
        assert_eq!(
            check(&es256(header(), with(claims(BOT), "aud", aud.clone()))),
            Err(JwtSvidError::AudienceMismatch),
            "{aud}"
        );
    }
}

#[test]
fn every_rejection_has_its_own_detail() {
    use std::collections::HashSet;
    let all = [
        JwtSvidError::TooLong,
        JwtSvidError::JsonSerialization,
        JwtSvidError::Malformed,
        JwtSvidError::MalformedHeader,
        JwtSvidError::UnknownHeader,
        JwtSvidError::AlgNotAllowed,
        JwtSvidError::BadTyp,
        JwtSvidError::MalformedClaims,
        JwtSvidError::SubjectMissing,
        JwtSvidError::SubjectNotSpiffeId,
        JwtSvidError::UntrustedDomain,
        JwtSvidError::BundleUnavailable,
        JwtSvidError::KidMissing,
        JwtSvidError::UnknownKid,
        JwtSvidError::AlgKeyMismatch,
        JwtSvidError::BadSignature,
        JwtSvidError::ExpMissing,
        JwtSvidError::Expired,
        JwtSvidError::NotYetValid,
        JwtSvidError::IssuedInFuture,
        JwtSvidError::LifetimeTooLong,
        JwtSvidError::AudienceMissing,
        JwtSvidError::AudienceMismatch,
    ];
    let details: HashSet<&str> = all.iter().map(|e| e.detail()).collect();
    assert_eq!(details.len(), all.len());
}

#[test]
fn accepts_es384_and_es512() {
    use p521::ecdsa::signature::Signer as _;
    let now = Clock::now_since_epoch().as_secs();
    // ES384 through jwt-simple.
    let es384 = ES384KeyPair::generate().with_key_id("p384");
    let point = es384.public_key().public_key().to_bytes_uncompressed();
    // ES512 by hand: jwt-simple has no P-521.
    let mut scalar = [7u8; 66];
    scalar[0] = 1; // below the group order, whose top byte is 0x01
    let es512 = p521::ecdsa::SigningKey::from_slice(&scalar).unwrap();
    let point521 = p521::ecdsa::VerifyingKey::from(&es512).to_encoded_point(false);
    let p521 = point521.as_bytes();
    let mut cfg = config(json!({}));
    cfg["trust_domains"][0]["jwt_bundle"]["keys"] = json!([
        {"kty":"EC","crv":"P-384","kid":"p384","use":"jwt-svid","x":b64(&point[1..49]),"y":b64(&point[49..97])},
        {"kty":"EC","crv":"P-521","kid":"p521","use":"jwt-svid","x":b64(&p521[1..67]),"y":b64(&p521[67..133])}
    ]);
    let p = Policy::from_json(cfg.to_string().as_bytes(), &env).unwrap();
    let claims = Claims::create(Duration::from_mins(5)).with_subject(BOT).with_audience(AUD);
    let t384 = es384.sign(claims).unwrap();
    validate(&t384, &p.jwt_svid, &crate::identity::svid::TrustStore::new(&p.trust_domains), &PureRustVerifier, now)
        .unwrap();

    let header = json!({"alg":"ES512","kid":"p521"});
    let body = json!({"sub": BOT, "aud": AUD, "iat": now, "exp": now + 300});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(body.to_string().as_bytes()));
    let sig: p521::ecdsa::Signature = es512.sign(input.as_bytes());
    let t512 = format!("{input}.{}", b64(&sig.to_bytes()));
    validate(&t512, &p.jwt_svid, &crate::identity::svid::TrustStore::new(&p.trust_domains), &PureRustVerifier, now)
        .unwrap();
    // The P-521 key verifies nothing else.
    let forged = format!("{input}.{}", b64(&[1u8; 132]));
    assert_eq!(
        validate(
            &forged,
            &p.jwt_svid,
            &crate::identity::svid::TrustStore::new(&p.trust_domains),
            &PureRustVerifier,
            now
        ),
        Err(JwtSvidError::BadSignature)
    );
}

#[test]
fn keeps_only_string_claims_for_conditions() {
    let mut c = claims(BOT);
    c["env"] = json!("prod");
    c["groups"] = json!(["a", "b"]);
    c["level"] = json!(3);
    c["mixed"] = json!(["a", 1]);
    let svid = check(&es256(header(), c)).unwrap();
    assert_eq!(
        svid.claims,
        vec![
            ("env".to_string(), vec!["prod".to_string()]),
            ("groups".to_string(), vec!["a".to_string(), "b".to_string()])
        ]
    );
}
