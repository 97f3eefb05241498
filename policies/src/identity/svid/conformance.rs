//! The SPIFFE conformance table: one test per requirement a validator of
//! SPIFFE IDs, JWT-SVIDs, X.509-SVIDs and trust bundles must meet.
//!
//! # Sources
//!
//! - The SPIFFE standards (github.com/spiffe/spiffe `standards/`, read at
//!   665a28f3): `SPIFFE-ID.md`, `JWT-SVID.md`, `X509-SVID.md`,
//!   `SPIFFE_Trust_Domain_and_Bundle.md`. Only the MUSTs and MUST NOTs that
//!   bind a *validator* or *consumer* are rows; those on issuers and
//!   producers are listed under "Not rows" below.
//! - The community catalogue arndt-s/spiffe-conformance-test-suite
//!   `docs/TEST_CATALOGUE.md` (version 126a3c69): JV-1..25, JB-1..8, ID-1..2,
//!   XV-1..15.
//!
//! # Rows
//!
//! Each row is one `#[test]` whose name starts with its case id: a
//! catalogue case (`jv_03_…`, `jb_05_…`, `id_1_…`, `xv_11_…`) or, for a
//! requirement the catalogue has no case for, the standard and section
//! (`spiffe_id_2_1_…`, `jwt_svid_3_2_…`, `x509_svid_3_2_…`, `bundle_4_1_1_…`).
//! A row gives the document and section, the standard's words, the input
//! (the expression modelgate is run on) and the expected outcome: `Ok` with
//! the SPIFFE ID that was accepted, or the specific refusal. A catalogue row
//! quotes the standard the catalogue cites, so it also covers that MUST.
//!
//! Expected outcomes are the standard's. Where modelgate deliberately
//! differs, the row expects modelgate's behaviour and says so in a comment
//! starting "Deliberate difference", with the standard's words and the
//! reason:
//!
//! - `jv_22_token_without_kid`: JWT-SVID §2.2 "The `kid` header is optional";
//!   modelgate requires it (`KidMissing`), as go-spiffe, py-spiffe and the
//!   providers' workload identity federation do (docs/identity.md).
//! - `spiffe_id_2_3_longer_than_2048_bytes_refused`: §2.3 only asks that IDs
//!   *up to* 2048 bytes be supported; longer ones are refused.
//! - `spiffe_id_2_4_upper_case_scheme_refused`: §2.4 calls the scheme
//!   case-insensitive; modelgate reads only the canonical `spiffe://`.
//! - `jwt_svid_4_*` rows on fractional times, `iat` in the future and a
//!   lifetime above `max_lifetime_seconds` (docs/spec-notes.md).
//! - `jwt_svid_6_1_fetched_jwt_authority_without_kid_refuses_the_bundle`.
//! - `bundle_*_inline_*`: a bundle written in the configuration is read
//!   strictly (an operator's typo is an error, not an ignored key); a
//!   fetched one is read as the standard asks a consumer to.
//!
//! A row that fails shows modelgate violating the standard; it is fixed in
//! the code, never bent to pass. The table's first run found two, both
//! fixed: a fetched element with an unknown `use` or `kty` refused the whole
//! bundle when its other members were malformed, instead of being ignored
//! (`bundle_4_2_2_an_unknown_use_is_ignored_whatever_its_members`,
//! `bundle_4_2_1_an_unknown_kty_is_ignored_whatever_its_members`).
//!
//! Two behaviours that may look like modelgate being stricter are not: an
//! upper-case trust domain is refused because SPIFFE-ID §2.1 says "The
//! `host` part of the authority MUST be lowercase" (row
//! `spiffe_id_2_1_host_must_be_lower_case`). A trust-domain-only `sub` is
//! refused (row `jwt_svid_3_1_trust_domain_only_sub_is_refused`): JWT-SVID
//! §3.1 wants the ID of a *workload*, and X.509-SVID §3.1 refuses the
//! trust domain's own ID for leaves (row `xv_14_…`); py-spiffe accepts it.
//!
//! # What Envoy enforces for X.509-SVIDs
//!
//! modelgate reads the leaf certificate Envoy already verified. The chain,
//! its signatures and validity against the CA bundle of the SVID's trust
//! domain (X509-SVID §5.1, "MUST follow RFC 5280 path validation") are
//! checked by Envoy's `envoy.tls.cert_validator.spiffe` only, before
//! modelgate sees the request; the rows below cover the leaf checks both
//! make. The XV cases that belong to Envoy:
//!
//! - XV-2, accept a chain through an intermediate: enforced by Envoy's
//!   envoy.tls.cert_validator.spiffe (`X509_verify_cert`); modelgate's leaf
//!   checks pass such a leaf (row `xv_02_…`). Not tested end to end yet:
//!   tests/test_identity.py presents no intermediate.
//! - XV-5, reject an untrusted CA claiming the trust domain: enforced by
//!   Envoy's envoy.tls.cert_validator.spiffe, tested end to end in
//!   tests/test_identity.py::test_certificates_envoy_refuses_leave_a_record
//!   (`impostor_bot`).
//! - XV-6, reject an expired leaf: enforced by Envoy's
//!   envoy.tls.cert_validator.spiffe, tested end to end in
//!   tests/test_identity.py::test_certificates_envoy_refuses_leave_a_record
//!   (`expired`); modelgate checks it again on its own clock (row `xv_06_…`).
//! - XV-7, reject a leaf not yet valid: enforced by Envoy's
//!   envoy.tls.cert_validator.spiffe, not tested end to end; modelgate
//!   checks it again (row `xv_07_…`).
//! - XV-8 and XV-9, reject `cA=true` and `keyCertSign`: enforced by Envoy's
//!   envoy.tls.cert_validator.spiffe, tested end to end in
//!   tests/test_identity.py::test_certificates_envoy_refuses_leave_a_record
//!   (`ca_leaf`, `cert_sign`); and by modelgate (rows `xv_08_…`, `xv_09_…`).
//!   XV-10 (`cRLSign`): the same precheck, tested by modelgate's row only.
//! - XV-12, XV-13, XV-14, XV-15 (no URI SAN, not `spiffe://`, no path, no
//!   bundle): Envoy's envoy.tls.cert_validator.spiffe refuses them when the
//!   first URI SAN is at fault, tested end to end in
//!   tests/test_identity.py::test_certificates_envoy_refuses_leave_a_record
//!   (`https_only`, `unknown_domain`); modelgate refuses every one whatever
//!   the order (rows `xv_12_…` to `xv_15_…`).
//!
//! XV-11 and the ID syntax, which Envoy does not check, are modelgate's
//! alone: tests/test_identity.py::test_certificates_envoy_passes_but_the_standard_refuses.
//! X509-SVID §6.2 (which `x509-svid` JWKs and which `x5c` value make the CA
//! bundle) binds whoever builds Envoy's CA bundle: modelgate reads no X.509
//! authorities, and a fetched bundle's `x509-svid` entries never disturb its
//! JWT authorities (row `x509_svid_6_2_…`).
//!
//! # Not rows
//!
//! - Issuer and producer rules: SPIFFE-ID §3.1 (authorities carry SVIDs);
//!   JWT-SVID §2 (producers include no other header — a validator refuses
//!   them anyway, rows `jwt_svid_2_…`), §3.2/§3.3 (issuers set `aud`, `exp`),
//!   §6.1 (publishers set `use` and `kid`); X509-SVID §3.2, §4.1-§4.4
//!   (issuers set cA, key usage, EKU; a validator checks only what §5.2
//!   lists, rows XV-8..10), §6.1; Trust Domain and Bundle §4.1.1/§4.1.2
//!   (publishers change the sequence), §4.2 (publishers set `kty`, `use`).
//! - Trust Domain and Bundle §5 (bundle maps: duplicate trust domain keys,
//!   the map's refresh hint): modelgate reads one bundle per trust domain,
//!   never a map.
//! - Catalogue groups EP, WA, XS, XF, JF and HX: Workload API clients and
//!   SVID sources, not a validator's work.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jwt_simple::prelude::{
    Claims, Duration, ECDSAP384KeyPairLike, ECDSAP384PublicKeyLike, ES384KeyPair, Ed25519KeyPair, EdDSAKeyPairLike,
    HS256Key, HS384Key, HS512Key, JWTClaims, MACLike, NoCustomClaims, PS256KeyPair, PS384KeyPair, PS512KeyPair,
    RS256KeyPair, RS384KeyPair, RS512KeyPair, RSAKeyPairLike,
};
use serde_json::{json, Value};

use super::bundle::{parse_fetched, parse_jwt_bundle, Bundle, Format};
use super::jwt::{self, JwtSvidError as J};
use super::refresh::{judge, publish, Fetched};
use super::trust::{Installed, TrustStore};
use super::x509::{self, leaf_der, X509SvidError as X};
use super::PureRustVerifier;
use crate::config::Policy;
use crate::identity::spiffe::{SpiffeId, SpiffeIdError as S, TrustDomain};
use crate::testing::{
    b64, claims, config, ec_jwk, ec_key, env, es256, header, sign_es256, svid, with, without, AUD, BOT, NOW, RSA_PEM,
};

/// `name: "document §section", "the standard's words", input => expected;`
/// makes `#[test] fn name` asserting that `input` evaluates to `expected`.
macro_rules! rows {
    ($($(#[$attr:meta])* $name:ident: $source:literal, $words:expr, $input:expr => $expected:expr;)*) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                let (actual, expected) = ($input, $expected);
                assert_eq!(actual, expected, "{}: \"{}\"", $source, $words);
            }
        )*
    };
}

/// A certificate of policies/testdata/x509 (see its README.md).
macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/x509/", $name, ".pem"))
    };
}

/// A certificate of this table's own (policies/testdata/conformance, see its
/// README.md).
macro_rules! own {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/conformance/", $name, ".pem"))
    };
}

const TD: &str = "example.org";

/// The standard's words that several rows quote.
const AUD_WORDS: &str = concat!(
    "Validators MUST reject tokens without an `aud` claim set, or if the value that the validator identifies ",
    "with is not present as an `aud` element"
);
const USE_WORDS: &str = concat!(
    "Clients encountering either a missing `use` parameter or an unknown `use` value MUST ignore the entire ",
    "JWK element"
);
const HOST_WORDS: &str = concat!(
    "The `host` part of the authority MUST contain only letters, numbers, dots, dashes, and underscores ",
    "([a-z0-9.-_])"
);
const SEGMENT_WORDS: &str = concat!(
    "Individual path segments MUST contain only letters, numbers, dots, dashes, and underscores ",
    "([a-zA-Z0-9.-_])"
);
const AUTHORITY_WORDS: &str = "The `userinfo` and `port` parts of the authority component MUST be empty";
const QUERY_WORDS: &str = "Valid SPIFFE IDs … MUST NOT include a query or fragment component";
const OTHER: &str = "spiffe://other.org/ns/a/sa/b";

fn ok<E>(id: &str) -> Result<String, E> {
    Ok(id.to_string())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// --- JWT-SVIDs -----------------------------------------------------------------------------------

/// The token's header and claims, with no signature at all.
fn unsigned(header: Value, claims: Value) -> String {
    format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
}

fn k1() -> Value {
    ec_jwk(&ec_key(1), "k1")
}

fn k2() -> Value {
    ec_jwk(&ec_key(2), "k2")
}

/// A policy whose trust domains hold these JWT authorities (inline).
fn policy_of(domains: &[(&str, Value)]) -> Policy {
    let tds: Vec<Value> =
        domains.iter().map(|(name, keys)| json!({"name": name, "jwt_bundle": {"keys": keys}})).collect();
    Policy::from_json(config(json!({"trust_domains": tds})).to_string().as_bytes(), &env).unwrap()
}

/// example.org with its key `k1`.
fn demo() -> Policy {
    policy_of(&[(TD, json!([k1()]))])
}

/// example.org (`k1`) and other.org (`k2`), which it federates with.
fn federation() -> Policy {
    policy_of(&[(TD, json!([k1()])), ("other.org", json!([k2()]))])
}

fn check(token: &str, p: &Policy, trust: &TrustStore, now: u64) -> Result<String, J> {
    jwt::validate(token, &p.jwt_svid, trust, &PureRustVerifier, now).map(|s| s.spiffe_id.as_str().to_string())
}

fn jwt_under(p: &Policy, token: &str) -> Result<String, J> {
    check(token, p, &TrustStore::new(&p.trust_domains), NOW)
}

/// Validated against example.org's `k1`, at `NOW`.
fn jwt(token: &str) -> Result<String, J> {
    jwt_at(token, NOW)
}

fn jwt_at(token: &str, now: u64) -> Result<String, J> {
    let p = demo();
    check(token, &p, &TrustStore::new(&p.trust_domains), now)
}

/// Validated against an inline example.org bundle of `keys`.
fn jwt_with_keys(keys: Value, token: &str) -> Result<String, J> {
    jwt_under(&policy_of(&[(TD, keys)]), token)
}

/// A bundle document as a bundle endpoint serves it.
fn fetch(doc: &Value) -> Bundle {
    parse_fetched(doc.to_string().as_bytes(), Format::Spiffe).unwrap()
}

/// Validated after example.org's bundle was replaced by the fetched `doc`.
fn jwt_after_fetch(doc: Value, token: &str) -> Result<String, J> {
    let p = demo();
    let mut trust = TrustStore::new(&p.trust_domains);
    assert_eq!(trust.install(TD, fetch(&doc)), Installed::Replaced);
    check(token, &p, &trust, NOW)
}

/// jwt-simple claims for `BOT`, issued at `NOW` for five minutes.
fn js_claims() -> JWTClaims<NoCustomClaims> {
    let mut c = Claims::create(Duration::from_mins(5)).with_subject(BOT).with_audience(AUD);
    c.issued_at = Some(Duration::from_secs(NOW - 10));
    c.expires_at = Some(Duration::from_secs(NOW + 300));
    c.invalid_before = None;
    c
}

/// The bundle key `r1` for policies/testdata/rsa-2048.pem.
fn rsa_jwk() -> Value {
    let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap().public_key().to_components();
    json!({"kty":"RSA","kid":"r1","use":"jwt-svid","n":b64(&rsa.n),"e":b64(&rsa.e)})
}

fn rsa_token(alg: &str) -> String {
    let c = js_claims();
    match alg {
        "RS256" => RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(c),
        "RS384" => RS384KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(c),
        "RS512" => RS512KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(c),
        "PS256" => PS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(c),
        "PS384" => PS384KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(c),
        "PS512" => PS512KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("r1").sign(c),
        other => panic!("{other}"),
    }
    .unwrap()
}

/// An RSA token under the bundle key `r1`.
fn rsa(alg: &str) -> Result<String, J> {
    jwt_with_keys(json!([rsa_jwk()]), &rsa_token(alg))
}

/// An ES384 token under a P-384 bundle key.
fn es384() -> Result<String, J> {
    let key = ES384KeyPair::generate().with_key_id("p384");
    let point = key.public_key().public_key().to_bytes_uncompressed();
    let jwk =
        json!({"kty":"EC","crv":"P-384","kid":"p384","use":"jwt-svid","x":b64(&point[1..49]),"y":b64(&point[49..97])});
    jwt_with_keys(json!([jwk]), &key.sign(js_claims()).unwrap())
}

/// An ES512 token under a P-521 bundle key (by hand: jwt-simple has no P-521).
fn es512() -> Result<String, J> {
    use p521::ecdsa::signature::Signer as _;
    let mut scalar = [7u8; 66];
    scalar[0] = 1; // below the group order, whose top byte is 0x01
    let key = p521::ecdsa::SigningKey::from_slice(&scalar).unwrap();
    let point = p521::ecdsa::VerifyingKey::from(&key).to_encoded_point(false);
    let p = point.as_bytes();
    let jwk = json!({"kty":"EC","crv":"P-521","kid":"p521","use":"jwt-svid","x":b64(&p[1..67]),"y":b64(&p[67..133])});
    let input = format!(
        "{}.{}",
        b64(json!({"alg":"ES512","kid":"p521"}).to_string().as_bytes()),
        b64(claims(BOT).to_string().as_bytes())
    );
    let sig: p521::ecdsa::Signature = key.sign(input.as_bytes());
    jwt_with_keys(json!([jwk]), &format!("{input}.{}", b64(&sig.to_bytes())))
}

/// The PEM of example.org's public key `k1`, as an HMAC secret
/// (algorithm confusion).
fn hmac_token(alg: &str) -> String {
    let keys = parse_jwt_bundle(&json!({"keys": [k1()]})).unwrap();
    let b64 = STANDARD.encode(&keys[0].spki);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"));
    let c = js_claims();
    match alg {
        "HS256" => HS256Key::from_bytes(pem.as_bytes()).with_key_id("k1").authenticate(c),
        "HS384" => HS384Key::from_bytes(pem.as_bytes()).with_key_id("k1").authenticate(c),
        "HS512" => HS512Key::from_bytes(pem.as_bytes()).with_key_id("k1").authenticate(c),
        other => panic!("{other}"),
    }
    .unwrap()
}

/// An EdDSA token whose Ed25519 key is in the (fetched) bundle.
fn eddsa_with_its_key_in_the_bundle() -> Result<String, J> {
    let key = Ed25519KeyPair::generate().with_key_id("ed");
    let jwk = json!({"kty":"OKP","crv":"Ed25519","kid":"ed","use":"jwt-svid","x":b64(&key.public_key().to_bytes())});
    jwt_after_fetch(json!({"keys": [k1(), jwk]}), &key.sign(js_claims()).unwrap())
}

fn flip_a_signature_bit(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[10] ^= 1;
    format!("{input}.{}", b64(&signature))
}

/// The token with other claims, keeping its header and signature.
fn other_claims(token: &str, claims: Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2])
}

/// Signed by `key` with kid `kid`, for `sub`.
fn by(key: u8, kid: &str, sub: &str) -> String {
    sign_es256(&ec_key(key), &with(header(), "kid", json!(kid)), &claims(sub))
}

rows! {
    // --- Catalogue JV: JWT-SVID validation --------------------------------------------------------

    jv_01_accepts_a_valid_token_and_returns_sub: "JWT-SVID §3.1, §4",
        "The `sub` claim MUST be set to the SPIFFE ID of the workload to which it is issued",
        jwt(&svid(BOT)) => ok(BOT);
    jv_02_accepts_rs256: "JWT-SVID §2.1", "The supported `alg` values are: RS256 …", rsa("RS256") => ok(BOT);
    jv_02_accepts_rs384: "JWT-SVID §2.1", "The supported `alg` values are: RS384 …", rsa("RS384") => ok(BOT);
    jv_02_accepts_rs512: "JWT-SVID §2.1", "The supported `alg` values are: RS512 …", rsa("RS512") => ok(BOT);
    jv_02_accepts_ps256: "JWT-SVID §2.1", "The supported `alg` values are: PS256 …", rsa("PS256") => ok(BOT);
    jv_02_accepts_ps384: "JWT-SVID §2.1", "The supported `alg` values are: PS384 …", rsa("PS384") => ok(BOT);
    jv_02_accepts_ps512: "JWT-SVID §2.1", "The supported `alg` values are: PS512 …", rsa("PS512") => ok(BOT);
    jv_02_accepts_es256: "JWT-SVID §2.1", "The supported `alg` values are: ES256 …", jwt(&svid(BOT)) => ok(BOT);
    jv_02_accepts_es384: "JWT-SVID §2.1", "The supported `alg` values are: ES384 …", es384() => ok(BOT);
    jv_02_accepts_es512: "JWT-SVID §2.1", "The supported `alg` values are: ES512 …", es512() => ok(BOT);
    jv_03_rejects_alg_none: "JWT-SVID §2.1",
        "Validators receiving a token with the `alg` parameter set to a different value MUST reject the token",
        jwt(&unsigned(json!({"alg":"none","kid":"k1","typ":"JWT"}), claims(BOT))) => Err(J::AlgNotAllowed);
    jv_04_rejects_hs256_keyed_with_the_public_key: "JWT-SVID §2.1",
        "Validators receiving a token with the `alg` parameter set to a different value MUST reject the token",
        jwt(&hmac_token("HS256")) => Err(J::AlgNotAllowed);
    jv_04_rejects_hs384_keyed_with_the_public_key: "JWT-SVID §2.1",
        "Validators receiving a token with the `alg` parameter set to a different value MUST reject the token",
        jwt(&hmac_token("HS384")) => Err(J::AlgNotAllowed);
    jv_04_rejects_hs512_keyed_with_the_public_key: "JWT-SVID §2.1",
        "Validators receiving a token with the `alg` parameter set to a different value MUST reject the token",
        jwt(&hmac_token("HS512")) => Err(J::AlgNotAllowed);
    jv_05_rejects_eddsa_even_with_its_key_in_the_bundle: "JWT-SVID §2.1",
        "Validators receiving a token with the `alg` parameter set to a different value MUST reject the token",
        eddsa_with_its_key_in_the_bundle() => Err(J::AlgNotAllowed);
    jv_06_rejects_rs256_naming_an_ec_key: "JWT-SVID §4",
        "JWT-SVID signing and validation semantics are the same as regular JWTs/JWSs",
        jwt(&RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("k1").sign(js_claims()).unwrap())
            => Err(J::AlgKeyMismatch);
    jv_06_rejects_es384_naming_a_p256_key: "JWT-SVID §4",
        "JWT-SVID signing and validation semantics are the same as regular JWTs/JWSs",
        jwt(&ES384KeyPair::generate().with_key_id("k1").sign(js_claims()).unwrap()) => Err(J::AlgKeyMismatch);
    jv_07_rejects_a_token_without_aud: "JWT-SVID §3.2",
        "Validators MUST reject tokens without an `aud` claim set",
        jwt(&es256(header(), without(claims(BOT), "aud"))) => Err(J::AudienceMissing);
    jv_08_rejects_an_aud_without_ours: "JWT-SVID §3.2",
        AUD_WORDS,
        jwt(&es256(header(), with(claims(BOT), "aud", json!(["spiffe://example.org/other"]))))
            => Err(J::AudienceMismatch);
    jv_09_accepts_an_aud_array_holding_ours_among_others: "JWT-SVID §3.2",
        "The `aud` claim MUST be present, containing one or more values",
        jwt(&es256(header(), with(claims(BOT), "aud", json!(["other", AUD])))) => ok(BOT);
    jv_10_accepts_aud_as_a_single_string: "JWT-SVID §4 (RFC 7519 §4.1.3)",
        "The `aud` and `exp` claims MUST be present and processed according to RFC 7519 sections 4.1.3 and 4.1.4",
        jwt(&es256(header(), with(claims(BOT), "aud", json!(AUD)))) => ok(BOT);
    jv_11_rejects_a_token_without_exp: "JWT-SVID §3.3",
        "The `exp` claim MUST be set, and validators MUST reject tokens without this claim",
        jwt(&es256(header(), without(claims(BOT), "exp"))) => Err(J::ExpMissing);
    jv_12_rejects_an_expired_token: "JWT-SVID §3.3, Appendix A",
        "Must not be in the past (a small amount of leeway is acceptable). Reject otherwise.",
        jwt(&es256(header(), with(with(claims(BOT), "iat", json!(NOW - 600)), "exp", json!(NOW - 300))))
            => Err(J::Expired);
    jv_13_rejects_a_future_nbf: "JWT-SVID §4 (RFC 7519 §4.1.5)",
        "JWT-SVID signing and validation semantics are the same as regular JWTs/JWSs",
        jwt(&es256(header(), with(claims(BOT), "nbf", json!(NOW + 300)))) => Err(J::NotYetValid);
    jv_14_rejects_a_tampered_signature: "JWT-SVID §4",
        "JWT-SVID signatures are computed and validated following the steps outlined in RFC 7519 section 7",
        jwt(&flip_a_signature_bit(&svid(BOT))) => Err(J::BadSignature);
    jv_15_rejects_a_tampered_payload: "JWT-SVID §4",
        "JWT-SVID signatures are computed and validated following the steps outlined in RFC 7519 section 7",
        jwt(&other_claims(&svid(BOT), claims("spiffe://example.org/ns/admin/sa/root"))) => Err(J::BadSignature);
    jv_16_rejects_a_key_not_in_the_bundle: "JWT-SVID §4",
        "JWT-SVID signing and validation semantics are the same as regular JWTs/JWSs",
        jwt(&by(2, "k2", BOT)) => Err(J::UnknownKid);
    jv_17_rejects_sub_in_b_signed_by_the_key_of_a: "SPIFFE-ID §3; Trust Domain and Bundle §3",
        "An SVID is considered valid if it has been signed by an authority within the SPIFFE ID's trust domain",
        jwt_under(&federation(), &by(1, "k1", OTHER)) => Err(J::UnknownKid);
    jv_18_rejects_a_sub_whose_trust_domain_has_no_bundle: "SPIFFE-ID §3",
        "An SVID is considered valid if it has been signed by an authority within the SPIFFE ID's trust domain",
        jwt(&by(1, "k1", OTHER)) => Err(J::UntrustedDomain);
    jv_19_rejects_a_sub_that_is_not_a_spiffe_id: "JWT-SVID §3.1",
        "The `sub` claim MUST be set to the SPIFFE ID of the workload to which it is issued",
        jwt(&es256(header(), claims("bot@example.org"))) => Err(J::SubjectNotSpiffeId);
    jv_20_accepts_typ_jwt: "JWT-SVID §2.3", "If set, its value MUST be either `JWT` or `JOSE`",
        jwt(&es256(header(), claims(BOT))) => ok(BOT);
    jv_20_accepts_typ_jose: "JWT-SVID §2.3", "If set, its value MUST be either `JWT` or `JOSE`",
        jwt(&es256(with(header(), "typ", json!("JOSE")), claims(BOT))) => ok(BOT);
    jv_20_accepts_no_typ: "JWT-SVID §2.3", "The `typ` header is optional",
        jwt(&es256(without(header(), "typ"), claims(BOT))) => ok(BOT);
    jv_21_rejects_another_typ: "JWT-SVID §2.3", "If set, its value MUST be either `JWT` or `JOSE`",
        jwt(&es256(with(header(), "typ", json!("at+jwt")), claims(BOT))) => Err(J::BadTyp);
    /// Deliberate difference: JWT-SVID §2.2 "The `kid` header is optional",
    /// so the standard accepts this token. modelgate refuses it
    /// (`kid_missing`), as go-spiffe, py-spiffe and the providers' workload
    /// identity federation do: see docs/identity.md.
    jv_22_token_without_kid: "JWT-SVID §2.2", "The `kid` header is optional",
        jwt(&es256(without(header(), "kid"), claims(BOT))) => Err(J::KidMissing);
    jv_23_rejects_an_unknown_crit_header: "JWT-SVID §2 (RFC 7515 §4.1.11)",
        "Any header not described here, registered or private, MUST NOT be included in the JWT-SVID JOSE Header",
        jwt(&es256(with(with(header(), "crit", json!(["x-unknown"])), "x-unknown", json!(true)), claims(BOT)))
            => Err(J::UnknownHeader);
    jv_24_rejects_the_jws_json_serialization: "JWT-SVID §1, §5.1", "JWS JSON Serialization MUST NOT be used",
        jwt(&json!({"protected": b64(header().to_string().as_bytes()),
                    "payload": b64(claims(BOT).to_string().as_bytes()), "signature": "AA"}).to_string())
            => Err(J::JsonSerialization);
    jv_25_rejects_a_wrong_part_count: "JWT-SVID §5.1",
        "JWT-SVIDs MUST be serialized using the Compact Serialization method described in RFC 7515 Section 3.1",
        jwt(svid(BOT).rsplit_once('.').unwrap().0) => Err(J::Malformed);
    jv_25_rejects_invalid_base64url: "JWT-SVID §5.1",
        "JWT-SVIDs MUST be serialized using the Compact Serialization method described in RFC 7515 Section 3.1",
        jwt(&format!("{}.*{}", svid(BOT).split_once('.').unwrap().0, svid(BOT).split_once('.').unwrap().1))
            => Err(J::Malformed);
    jv_25_rejects_a_header_that_is_not_json: "JWT-SVID §5.1",
        "JWT-SVIDs MUST be serialized using the Compact Serialization method described in RFC 7515 Section 3.1",
        jwt(&format!("{}.{}", b64(b"{\"alg\":\"ES256\","), svid(BOT).split_once('.').unwrap().1))
            => Err(J::MalformedHeader);
    jv_25_rejects_claims_that_are_not_json: "JWT-SVID §5.1",
        "JWT-SVIDs MUST be serialized using the Compact Serialization method described in RFC 7515 Section 3.1",
        jwt(&format!("{}.{}.AA", b64(header().to_string().as_bytes()), b64(b"not json"))) => Err(J::MalformedClaims);

    // --- JWT-SVID: the validator's MUSTs no catalogue case covers ---------------------------------

    jwt_svid_2_rejects_a_jku_header: "JWT-SVID §2",
        "Any header not described here, registered or private, MUST NOT be included in the JWT-SVID JOSE Header",
        jwt(&es256(with(header(), "jku", json!("https://evil.example/jwks")), claims(BOT))) => Err(J::UnknownHeader);
    jwt_svid_2_rejects_an_embedded_jwk_header: "JWT-SVID §2",
        "Any header not described here, registered or private, MUST NOT be included in the JWT-SVID JOSE Header",
        jwt(&sign_es256(&ec_key(2), &with(header(), "jwk", ec_jwk(&ec_key(2), "k1")), &claims(BOT)))
            => Err(J::UnknownHeader);
    jwt_svid_2_1_rejects_a_missing_alg: "JWT-SVID §4",
        "Validators MUST ensure that the `alg` header is set to a supported value before processing",
        jwt(&es256(without(header(), "alg"), claims(BOT))) => Err(J::AlgNotAllowed);
    jwt_svid_2_1_alg_names_are_case_sensitive: "JWT-SVID §2.1 (RFC 7515 §4.1.1)",
        "Validators receiving a token with the `alg` parameter set to a different value MUST reject the token",
        jwt(&es256(with(header(), "alg", json!("es256")), claims(BOT))) => Err(J::AlgNotAllowed);
    jwt_svid_2_1_rsa_keys_under_2048_bits_are_no_authority: "JWT-SVID §2.1 (RFC 7518 §3.3)",
        "A key of size 2048 bits or larger MUST be used with these algorithms",
        parse_fetched(json!({"keys": [{"kty":"RSA","kid":"r0","use":"jwt-svid","n":b64(&[0xc5; 128]),"e":"AQAB"}]})
            .to_string().as_bytes(), Format::Spiffe).map(|b| (b.keys.len(), b.skipped)) => Ok((0, 1));
    jwt_svid_3_1_rejects_a_missing_sub: "JWT-SVID §3.1",
        "The `sub` claim MUST be set to the SPIFFE ID of the workload to which it is issued",
        jwt(&es256(header(), without(claims(BOT), "sub"))) => Err(J::SubjectMissing);
    jwt_svid_3_1_rejects_a_sub_that_is_not_a_string: "JWT-SVID §3.1",
        "The `sub` claim MUST be set to the SPIFFE ID of the workload to which it is issued",
        jwt(&es256(header(), with(claims(BOT), "sub", json!([BOT])))) => Err(J::SubjectNotSpiffeId);
    /// `spiffe://example.org` is a SPIFFE ID (SPIFFE-ID §2: "an optional
    /// path") but the trust domain's, not a workload's; X509-SVID §3.1
    /// refuses it for leaves (row `xv_14_…`). Deliberate difference:
    /// py-spiffe accepts it (docs/identity.md).
    jwt_svid_3_1_trust_domain_only_sub_is_refused: "JWT-SVID §3.1",
        "The `sub` claim MUST be set to the SPIFFE ID of the workload to which it is issued",
        jwt(&es256(header(), claims("spiffe://example.org"))) => Err(J::SubjectNotSpiffeId);
    jwt_svid_3_2_rejects_an_empty_aud_array: "JWT-SVID §3.2",
        "The `aud` claim MUST be present, containing one or more values",
        jwt(&es256(header(), with(claims(BOT), "aud", json!([])))) => Err(J::AudienceMismatch);
    jwt_svid_3_2_aud_is_compared_exactly: "JWT-SVID §3.2",
        AUD_WORDS,
        jwt(&es256(header(), with(claims(BOT), "aud", json!(AUD.to_uppercase())))) => Err(J::AudienceMismatch);
    jwt_svid_3_3_exp_within_the_leeway_is_accepted: "JWT-SVID Appendix A",
        "Must not be in the past (a small amount of leeway is acceptable)",
        jwt_at(&svid(BOT), NOW + 3600 + 29) => ok(BOT);
    jwt_svid_3_3_exp_beyond_the_leeway_is_refused: "JWT-SVID Appendix A; RFC 7519 §4.1.4",
        "the current date/time MUST be before the expiration date/time listed in the \"exp\" claim",
        jwt_at(&svid(BOT), NOW + 3600 + 30) => Err(J::Expired);
    jwt_svid_4_rejects_a_duplicate_header_parameter: "JWT-SVID §4 (RFC 7515 §4)",
        "JWS parsers MUST either reject JWSs with duplicate Header Parameter names or use … the lexically last",
        jwt(&format!("{}.{}.AA", b64(br#"{"alg":"ES256","kid":"k1","alg":"none"}"#),
                     b64(claims(BOT).to_string().as_bytes())))
            => Err(J::MalformedHeader);
    jwt_svid_4_rejects_a_duplicate_claim: "JWT-SVID §4 (RFC 7519 §4)",
        "JWT parsers MUST either reject JWTs with duplicate Claim Names or use … the lexically last",
        jwt(&format!("{}.{}.AA", b64(header().to_string().as_bytes()),
                     b64(format!(r#"{{"sub":"{BOT}","sub":"spiffe://example.org/ns/admin"}}"#).as_bytes())))
            => Err(J::MalformedClaims);
    /// Deliberate difference: RFC 7519 §2 NumericDate allows "non-integer
    /// values"; modelgate requires integer times (SPIRE never issues
    /// fractions; docs/spec-notes.md "JWT-SVIDs").
    jwt_svid_4_fractional_exp_refused: "JWT-SVID §4 (RFC 7519 §4.1.4)",
        "Its value MUST be a number containing a NumericDate value",
        jwt(&es256(header(), with(claims(BOT), "exp", json!(NOW as f64 + 300.5)))) => Err(J::MalformedClaims);
    /// Deliberate difference: JWT-SVID §3.3 sets "no hard upper limits" on
    /// `exp`; modelgate refuses tokens living longer than
    /// `max_lifetime_seconds` (default one day), a configurable bound.
    jwt_svid_4_lifetime_above_the_maximum_refused: "JWT-SVID §3.3",
        "this specification does not set any hard upper limits on its value",
        jwt(&es256(header(), with(claims(BOT), "exp", json!(NOW + 2 * 86_400)))) => Err(J::LifetimeTooLong);
    /// Deliberate difference: RFC 7519 §4.1.6 sets no check on `iat`;
    /// modelgate refuses a token issued in the future beyond the leeway (an
    /// issuer's clock off, or a token minted to outlive its bound).
    jwt_svid_4_iat_in_the_future_refused: "JWT-SVID §4 (RFC 7519 §4.1.6)",
        "The \"iat\" (issued at) claim identifies the time at which the JWT was issued",
        jwt(&es256(header(), with(claims(BOT), "iat", json!(NOW + 300)))) => Err(J::IssuedInFuture);
    jwt_svid_6_2_a_bundle_without_jwt_svid_keys_supports_no_jwt_svid: "JWT-SVID §6.2",
        "If there are no entries with the `jwt-svid` use value, then the trust domain … does not support JWT-SVID",
        jwt_after_fetch(json!({"keys": [with(k1(), "use", json!("x509-svid"))]}), &svid(BOT)) => Err(J::UnknownKid);
    /// Deliberate difference: JWT-SVID §6.1 binds the publisher ("the `kid`
    /// parameter of each JWK entry MUST be set"); no consumer rule says what
    /// to do when it is not. modelgate refuses the whole fetched document
    /// (the last good bundle stays) rather than guess which key signed.
    jwt_svid_6_1_fetched_jwt_authority_without_kid_refuses_the_bundle: "JWT-SVID §6.1",
        "Additionally, the `kid` parameter of each JWK entry MUST be set",
        fetched(json!({"keys": [without(k1(), "kid")]})) => Err("keys[0].kid".to_string());

    // --- Catalogue JB: JWT bundles ----------------------------------------------------------------

    jb_01_picks_up_a_key_added_by_an_update: "Trust Domain and Bundle §3",
        "Keys are added and revoked by issuing a new bundle with new keys included and revoked keys omitted",
        jb_01() => (Err(J::UnknownKid), Installed::Replaced, ok(BOT));
    jb_02_stops_accepting_a_key_removed_by_an_update: "Trust Domain and Bundle §3",
        "Keys are added and revoked by issuing a new bundle with new keys included and revoked keys omitted",
        jb_02() => (ok(BOT), Installed::Replaced, Err(J::UnknownKid));
    /// SHOULD in the catalogue. A trust domain leaves modelgate's trust
    /// with the configuration: the policy without it refuses its tokens.
    jb_03_stops_accepting_a_trust_domain_that_was_removed: "Trust Domain and Bundle §3",
        "validators must choose the bundle corresponding to the trust domain that the SVID resides in",
        (jwt_under(&federation(), &by(2, "k2", OTHER)), jwt_under(&demo(), &by(2, "k2", OTHER)))
            => (ok(OTHER), Err(J::UntrustedDomain));
    jb_04_selects_the_key_by_kid_among_several: "JWT-SVID §6.2 (RFC 7515 §4.1.4)",
        "Once the JWK entries are extracted, they can be used directly for JWT-SVID validation",
        jwt_with_keys(json!([ec_jwk(&ec_key(3), "ka"), ec_jwk(&ec_key(4), "kb"), ec_jwk(&ec_key(5), "kc")]),
                      &by(4, "kb", BOT))
            => ok(BOT);
    jb_05_ignores_x509_svid_keys: "JWT-SVID §6.2; Trust Domain and Bundle §4.2.2",
        "Implementations MUST extract the JWT-SVID specific keys before using them for validation purposes",
        jb_05(Some("x509-svid")) => (Err(J::UnknownKid), ok(BOT));
    /// OPT in the catalogue (126a3c69); MUST in its later version, and in
    /// the standard for a fetched bundle.
    jb_05_ignores_keys_without_use: "Trust Domain and Bundle §4.2.2",
        USE_WORDS,
        jb_05(None) => (Err(J::UnknownKid), ok(BOT));
    jb_06_ignores_an_unknown_kty_and_keeps_the_rest: "Trust Domain and Bundle §4.2.1",
        "Clients encountering an unknown key type MUST ignore the entire JWK element",
        jb_06() => (Ok(strings(&["k1"])), ok(BOT));
    jb_07_empty_keys_trust_nothing: "Trust Domain and Bundle §4.1.3",
        "workloads MUST treat all SVIDs from the trust domain as invalid and untrusted",
        jwt_after_fetch(json!({"keys": []}), &svid(BOT)) => Err(J::UnknownKid);
    jb_08_accepts_a_federated_trust_domain_by_its_own_bundle: "Trust Domain and Bundle §3",
        "validators must choose the bundle corresponding to the trust domain that the SVID resides in",
        jwt_under(&federation(), &by(2, "k2", OTHER)) => ok(OTHER);
}

/// JB-1: a token under `k2`, before and after a bundle adding `k2`.
fn jb_01() -> (Result<String, J>, Installed, Result<String, J>) {
    let p = demo();
    let mut trust = TrustStore::new(&p.trust_domains);
    let token = by(2, "k2", BOT);
    let before = check(&token, &p, &trust, NOW);
    let installed = trust.install(TD, fetch(&json!({"keys": [k1(), k2()], "spiffe_sequence": 2})));
    (before, installed, check(&token, &p, &trust, NOW))
}

/// JB-2: a token under `k1`, before and after a bundle dropping `k1`.
fn jb_02() -> (Result<String, J>, Installed, Result<String, J>) {
    let p = demo();
    let mut trust = TrustStore::new(&p.trust_domains);
    trust.install(TD, fetch(&json!({"keys": [k1(), k2()], "spiffe_sequence": 1})));
    let before = check(&svid(BOT), &p, &trust, NOW);
    let installed = trust.install(TD, fetch(&json!({"keys": [k2()], "spiffe_sequence": 2})));
    (before, installed, check(&svid(BOT), &p, &trust, NOW))
}

/// JB-5: a token under a key of the bundle whose `use` is `use_` (or
/// missing), and the bundle's JWT authority still at work.
fn jb_05(use_: Option<&str>) -> (Result<String, J>, Result<String, J>) {
    let mut other = with(ec_jwk(&ec_key(2), "kx"), "x5c", json!(["AA"]));
    other = match use_ {
        Some(u) => with(other, "use", json!(u)),
        None => without(other, "use"),
    };
    let doc = json!({"keys": [k1(), other]});
    (jwt_after_fetch(doc.clone(), &by(2, "kx", BOT)), jwt_after_fetch(doc, &svid(BOT)))
}

/// JB-6: an Ed25519 JWT authority (a key type modelgate cannot use) next
/// to `k1`.
fn jb_06() -> (Result<Vec<String>, String>, Result<String, J>) {
    let doc = json!({"keys": [{"kty":"OKP","crv":"Ed25519","kid":"ed","use":"jwt-svid","x":b64(&[9; 32])}, k1()]});
    (fetched(doc.clone()), jwt_after_fetch(doc, &svid(BOT)))
}

// --- SPIFFE IDs --------------------------------------------------------------------------------

/// `s` read by [`SpiffeId::parse`], and as the `sub` of a JWT-SVID validly
/// signed by its trust domain (trusted whenever `s` parses).
fn id(s: &str) -> (Result<(), S>, Result<String, J>) {
    let parsed = SpiffeId::parse(s);
    let td = parsed.as_ref().map_or(TD.to_string(), |id| id.trust_domain().to_string());
    let mut domains = vec![(TD, json!([k1()]))];
    if td != TD {
        domains.push((td.as_str(), json!([k1()])));
    }
    (parsed.map(|_| ()), jwt_under(&policy_of(&domains), &es256(header(), claims(s))))
}

fn accepted(s: &str) -> (Result<(), S>, Result<String, J>) {
    (Ok(()), Ok(s.to_string()))
}

fn refused(e: S) -> (Result<(), S>, Result<String, J>) {
    (Err(e), Err(J::SubjectNotSpiffeId))
}

fn id_2048() -> String {
    let prefix = "spiffe://example.org/";
    format!("{prefix}{}", "a".repeat(2048 - prefix.len()))
}

rows! {
    // --- Catalogue ID: SPIFFE ID parsing (as `sub` of a signed JWT-SVID) --------------------------

    id_1_rejects_an_empty_trust_domain: "SPIFFE-ID §2.1", "The `host` part of the authority MUST NOT be empty",
        id("spiffe:///a") => refused(S::MissingTrustDomain);
    id_1_rejects_a_port: "SPIFFE-ID §2.1", AUTHORITY_WORDS,
        id("spiffe://example.org:8080/a") => refused(S::BadTrustDomainChar);
    id_1_rejects_userinfo: "SPIFFE-ID §2.1", AUTHORITY_WORDS,
        id("spiffe://u@example.org/a") => refused(S::BadTrustDomainChar);
    id_1_rejects_a_query: "SPIFFE-ID §2", QUERY_WORDS,
        id("spiffe://example.org/a?x=1") => refused(S::BadPathChar);
    id_1_rejects_a_fragment: "SPIFFE-ID §2", QUERY_WORDS,
        id("spiffe://example.org/a#f") => refused(S::BadPathChar);
    id_1_rejects_a_percent_encoded_path: "SPIFFE-ID §2.2",
        "The path component MUST NOT include percent-encoded characters",
        id("spiffe://example.org/%41") => refused(S::BadPathChar);
    id_1_rejects_an_empty_segment: "SPIFFE-ID §2.2",
        "The path component MUST NOT include segments that are empty or are relative path modifiers",
        id("spiffe://example.org/a//b") => refused(S::EmptySegment);
    id_1_rejects_a_dot_segment: "SPIFFE-ID §2.2",
        "The path component MUST NOT include segments that are empty or are relative path modifiers (i.e. `.`, `..`)",
        id("spiffe://example.org/a/./b") => refused(S::DotSegment);
    id_1_rejects_a_dot_dot_segment: "SPIFFE-ID §2.2",
        "The path component MUST NOT include segments that are empty or are relative path modifiers (i.e. `.`, `..`)",
        id("spiffe://example.org/a/../b") => refused(S::DotSegment);
    id_1_rejects_a_trailing_slash: "SPIFFE-ID §2.2", "The path component MUST NOT include a trailing `/`",
        id("spiffe://example.org/a/") => refused(S::TrailingSlash);
    id_1_rejects_an_invalid_path_character: "SPIFFE-ID §2.2",
        SEGMENT_WORDS,
        id("spiffe://example.org/a!b") => refused(S::BadPathChar);
    id_1_rejects_an_invalid_trust_domain_character: "SPIFFE-ID §2.1",
        HOST_WORDS,
        id("spiffe://t$d/a") => refused(S::BadTrustDomainChar);
    id_2_accepts_path_characters_and_mixed_case: "SPIFFE-ID §2.2",
        SEGMENT_WORDS,
        id("spiffe://example.org/Aa-Zz_0.9/.-_/..a") => accepted("spiffe://example.org/Aa-Zz_0.9/.-_/..a");
    id_2_accepts_a_trust_domain_with_underscores_and_digits: "SPIFFE-ID §2.1",
        HOST_WORDS,
        id("spiffe://td_1.example-2/a") => accepted("spiffe://td_1.example-2/a");
    id_2_accepts_an_ipv4_like_trust_domain: "SPIFFE-ID §2.1",
        "this definition does not exclude IPv4 addresses in dotted-quad notation",
        id("spiffe://192.168.0.1/a") => accepted("spiffe://192.168.0.1/a");
    id_2_accepts_a_2048_byte_id: "SPIFFE-ID §2.3",
        "SPIFFE implementations MUST support SPIFFE URIs up to 2048 bytes in length",
        id(&id_2048()) => accepted(&id_2048());

    // --- SPIFFE-ID: the MUSTs no catalogue case covers --------------------------------------------

    spiffe_id_2_scheme_must_be_spiffe: "SPIFFE-ID §2", "Valid SPIFFE IDs MUST have the scheme set to `spiffe`",
        id("https://example.org/a") => refused(S::WrongScheme);
    spiffe_id_2_trust_domain_must_be_non_zero: "SPIFFE-ID §2", "include a non-zero trust domain name",
        id("spiffe://") => refused(S::MissingTrustDomain);
    spiffe_id_2_the_path_is_optional: "SPIFFE-ID §2",
        "a site-specific `hier-part` which includes an authority component and an optional path",
        SpiffeId::parse("spiffe://example.org").map(|id| (id.trust_domain().to_string(), id.path().to_string()))
            => Ok((TD.to_string(), String::new()));
    spiffe_id_2_rejects_a_query_without_a_path: "SPIFFE-ID §2",
        QUERY_WORDS,
        id("spiffe://example.org?x=1") => refused(S::BadTrustDomainChar);
    spiffe_id_2_rejects_a_fragment_without_a_path: "SPIFFE-ID §2",
        QUERY_WORDS,
        id("spiffe://example.org#f") => refused(S::BadTrustDomainChar);
    /// Required by the standard, not a stricter choice: §2.4 makes the trust
    /// domain name case-insensitive, but §2.1 requires it written in lower
    /// case, so `Example.org` is no valid SPIFFE ID (go-spiffe refuses it too).
    spiffe_id_2_1_host_must_be_lower_case: "SPIFFE-ID §2.1", "The `host` part of the authority MUST be lowercase",
        id("spiffe://Example.org/a") => refused(S::BadTrustDomainChar);
    spiffe_id_2_1_host_must_not_be_percent_encoded: "SPIFFE-ID §2.1",
        "The `host` part of the authority MUST NOT contain percent-encoded characters",
        id("spiffe://exa%6dple.org/a") => refused(S::BadTrustDomainChar);
    spiffe_id_2_1_ipv6_is_excluded: "SPIFFE-ID §2.1", "but does exclude IPv6 addresses",
        id("spiffe://[::1]/a") => refused(S::BadTrustDomainChar);
    spiffe_id_2_1_names_that_are_not_ip_addresses_are_read_alike: "SPIFFE-ID §2.1",
        "Implementations MUST NOT process trust domain names differently whether or not they are valid IP addresses",
        id("spiffe://999.999.999.999/a") => accepted("spiffe://999.999.999.999/a");
    spiffe_id_2_1_names_that_are_not_dns_names_are_read_alike: "SPIFFE-ID §2.1",
        "Implementations MUST NOT process trust domain names differently whether or not they are … valid DNS names",
        id("spiffe://-_.-/a") => accepted("spiffe://-_.-/a");
    spiffe_id_2_1_configured_trust_domain_names_follow_the_same_rules: "SPIFFE-ID §2.1",
        "The `host` part of the authority MUST be lowercase",
        ["example.org", "192.168.0.1", "Example.org", "example.org:443", "u@example.org", ""]
            .map(|s| TrustDomain::parse(s).map(|_| ()))
            => [Ok(()), Ok(()), Err(S::BadTrustDomainChar), Err(S::BadTrustDomainChar), Err(S::BadTrustDomainChar),
                Err(S::Empty)];
    spiffe_id_2_2_rejects_a_root_path: "SPIFFE-ID §2.2", "The path component MUST NOT include a trailing `/`",
        id("spiffe://example.org/") => refused(S::TrailingSlash);
    spiffe_id_2_2_rejects_non_ascii_letters: "SPIFFE-ID §2.2",
        SEGMENT_WORDS,
        id("spiffe://example.org/caf\u{e9}") => refused(S::BadPathChar);
    spiffe_id_2_3_trust_domain_of_255_bytes_is_accepted: "SPIFFE-ID §2.3",
        "a maximum length of a trust domain name is 255 bytes",
        id(&format!("spiffe://{}/a", "t".repeat(255))) => accepted(&format!("spiffe://{}/a", "t".repeat(255)));
    spiffe_id_2_3_trust_domain_of_256_bytes_is_refused: "SPIFFE-ID §2.3",
        "a maximum length of a trust domain name is 255 bytes",
        id(&format!("spiffe://{}/a", "t".repeat(256))) => refused(S::TooLong);
    /// Deliberate difference: §2.3 asks only that IDs up to 2048 bytes be
    /// supported ("SHOULD NOT generate URIs of length greater than 2048
    /// bytes"); modelgate refuses longer ones, which bounds what reaches the
    /// audit record and rule matching.
    spiffe_id_2_3_longer_than_2048_bytes_refused: "SPIFFE-ID §2.3",
        "MUST support SPIFFE URIs up to 2048 bytes in length and SHOULD NOT generate URIs of length greater than 2048",
        id(&format!("{}a", id_2048())) => refused(S::TooLong);
    spiffe_id_2_4_the_path_is_case_sensitive: "SPIFFE-ID §2.4", "The path is case-sensitive",
        (SpiffeId::parse(BOT).unwrap() == SpiffeId::parse("spiffe://example.org/ns/support/sa/BOT").unwrap(),
         jwt(&es256(header(), claims("spiffe://example.org/ns/support/sa/BOT"))))
            => (false, ok("spiffe://example.org/ns/support/sa/BOT"));
    /// Deliberate difference: §2.4 "The scheme … of the SPIFFE ID [is]
    /// case-insensitive", so `SPIFFE://` names the same ID; modelgate reads
    /// only the canonical spelling, so two spellings never name one workload
    /// (policies/src/spiffe.rs; go-spiffe does the same).
    spiffe_id_2_4_upper_case_scheme_refused: "SPIFFE-ID §2.4",
        "The scheme and trust domain name of the SPIFFE ID are case-insensitive",
        id("SPIFFE://example.org/a") => refused(S::WrongScheme);
}

// --- Trust bundles ------------------------------------------------------------------------------

/// The JWT authorities (kids) of a fetched bundle, or the JSON path of what
/// refused it.
fn fetched(doc: Value) -> Result<Vec<String>, String> {
    parse_fetched(doc.to_string().as_bytes(), Format::Spiffe)
        .map(|b| b.keys.iter().map(|k| k.kid.clone()).collect())
        .map_err(|e| e.path)
}

/// The same for a bundle written in the configuration.
fn inline(doc: Value) -> Result<Vec<String>, String> {
    parse_jwt_bundle(&doc).map(|keys| keys.iter().map(|k| k.kid.clone()).collect()).map_err(|e| e.path)
}

/// A fetched bundle of `keys` at `sequence`, judged against the published
/// bundle at sequence 5.
fn judged(sequence: u64, keys: Value) -> Fetched {
    let installed = json!({"keys": [k1()], "spiffe_sequence": 5}).to_string();
    let body = json!({"keys": keys, "spiffe_sequence": sequence}).to_string();
    judge(Some(&publish(Some(5), installed.as_bytes())), Some(200), body.as_bytes(), Format::Spiffe)
}

/// An older bundle (without `k2`) after a newer one (with it): what the
/// store did, and a token under `k2`.
fn older_after_newer() -> (Installed, Result<String, J>) {
    let p = demo();
    let mut trust = TrustStore::new(&p.trust_domains);
    trust.install(TD, fetch(&json!({"keys": [k1(), k2()], "spiffe_sequence": 5})));
    let installed = trust.install(TD, fetch(&json!({"keys": [k1()], "spiffe_sequence": 4})));
    (installed, check(&by(2, "k2", BOT), &p, &trust, NOW))
}

rows! {
    bundle_4_1_spiffe_members_are_not_required: "Trust Domain and Bundle §4.1",
        "SPIFFE implementations MUST NOT require their presence in order to function",
        (fetched(json!({"keys": [k1()]})), inline(json!({"keys": [k1()]})))
            => (Ok(strings(&["k1"])), Ok(strings(&["k1"])));
    bundle_4_1_other_members_are_ignored: "Trust Domain and Bundle §4.1",
        "Parameters not defined here MAY be included as implementers see fit",
        fetched(json!({"keys": [with(k1(), "x-vendor", json!(1))], "x-vendor": {"any": "thing"}}))
            => Ok(strings(&["k1"]));
    /// Deliberate difference: an inline (configured) bundle is read
    /// strictly, so an operator's typo (`spiffe_sequense`) is an error, not
    /// an ignored member. Fetched bundles ignore them (row above).
    bundle_4_1_inline_other_members_refused: "Trust Domain and Bundle §4.1",
        "Parameters not defined here MAY be included as implementers see fit",
        inline(json!({"keys": [k1()], "spiffe_sequense": 1})) => Err("spiffe_sequense".to_string());
    bundle_4_1_1_an_older_sequence_never_replaces_a_newer_one: "Trust Domain and Bundle §4.1.1",
        "When present, its value MUST be a monotonically increasing integer",
        older_after_newer() => (Installed::Older { installed: 5 }, ok(BOT));
    bundle_4_1_1_an_older_sequence_is_refused_when_fetched: "Trust Domain and Bundle §4.1.1",
        "When present, its value MUST be a monotonically increasing integer",
        judged(4, json!([k1(), k2()]))
            => Fetched::Refused("spiffe_sequence 4 is older than the installed 5".to_string());
    bundle_4_1_1_the_same_sequence_is_the_same_bundle: "Trust Domain and Bundle §4.1.1",
        "MUST be changed whenever the contents of the bundle are updated",
        judged(5, json!([k1(), k2()])) => Fetched::Unchanged { refresh_hint: None };
    bundle_4_1_1_a_sequence_must_be_an_integer: "Trust Domain and Bundle §4.1.1",
        "When present, its value MUST be a monotonically increasing integer",
        (fetched(json!({"keys": [k1()], "spiffe_sequence": "5"})),
         fetched(json!({"keys": [k1()], "spiffe_sequence": 5.5})))
            => (Err("spiffe_sequence".to_string()), Err("spiffe_sequence".to_string()));
    bundle_4_1_1_a_sequence_has_64_bits: "Trust Domain and Bundle §4.1.1",
        "Care should be taken to ensure that the resulting type has at least 64 bits of precision",
        parse_fetched(format!(r#"{{"keys": [], "spiffe_sequence": {}}}"#, u64::MAX).as_bytes(), Format::Spiffe)
            .map(|b| b.sequence).map_err(|e| e.path) => Ok(Some(u64::MAX));
    bundle_4_1_2_a_refresh_hint_must_be_an_integer: "Trust Domain and Bundle §4.1.2",
        "When set, its value MUST be an integer representing the suggested consumer refresh interval in seconds",
        fetched(json!({"keys": [k1()], "spiffe_refresh_hint": "60"})) => Err("spiffe_refresh_hint".to_string());
    bundle_4_1_3_keys_must_be_present: "Trust Domain and Bundle §4.1.3", "The parameter `keys` MUST be present",
        fetched(json!({"spiffe_sequence": 1})) => Err("keys".to_string());
    bundle_4_1_3_a_bundle_of_no_usable_keys_trusts_nothing: "Trust Domain and Bundle §4.1.3",
        "bundles which after processing yield no usable keys … MUST treat all SVIDs from the trust domain as invalid",
        jwt_after_fetch(json!({"keys": [
            {"kty":"OKP","crv":"Ed25519","kid":"k1","use":"jwt-svid","x":b64(&[9; 32])},
            {"kty":"EC","crv":"secp256k1","kid":"k1","use":"jwt-svid","x":"AA","y":"AA"},
            with(k1(), "use", json!("enc"))
        ]}), &svid(BOT)) => Err(J::UnknownKid);
    /// Deliberate difference: an inline bundle without JWT authority is a
    /// configuration error (the operator is told), where a fetched one
    /// trusts nothing (row `jb_07_…`).
    bundle_4_1_3_inline_empty_keys_refused: "Trust Domain and Bundle §4.1.3",
        "The `keys` parameter may contain an empty array",
        inline(json!({"keys": []})) => Err("keys".to_string());
    bundle_4_2_2_an_unknown_use_is_ignored: "Trust Domain and Bundle §4.2.2",
        USE_WORDS,
        fetched(json!({"keys": [with(k2(), "use", json!("wit-svid")), with(k2(), "use", json!("sig")), k1()]}))
            => Ok(strings(&["k1"]));
    /// The element's use is unknown, so nothing else in it may matter: not
    /// a `kid` of another type, not an `x5c` that is no array. Fails today:
    /// modelgate reads the element's members before its `use` and refuses
    /// the whole document (`keys[0]`), so the last good bundle stays.
    bundle_4_2_2_an_unknown_use_is_ignored_whatever_its_members: "Trust Domain and Bundle §4.2.2",
        USE_WORDS,
        fetched(json!({"keys": [{"kty":"EC","use":"wit-svid","kid":7,"x5c":"AA"}, k1()]})) => Ok(strings(&["k1"]));
    /// The element's key type is unknown, so nothing else in it may matter,
    /// not even the `kid` a JWT authority needs (JWT-SVID §6.1 binds the
    /// publisher). Fails today: modelgate checks `kid` before `kty` and
    /// refuses the whole document (`keys[0].kid`).
    bundle_4_2_1_an_unknown_kty_is_ignored_whatever_its_members: "Trust Domain and Bundle §4.2.1",
        "Clients encountering an unknown key type MUST ignore the entire JWK element",
        fetched(json!({"keys": [{"kty":"AKP","use":"jwt-svid","alg":"ML-DSA-44","pub":"AA"}, k1()]}))
            => Ok(strings(&["k1"]));
    bundle_4_2_2_use_values_are_case_sensitive: "Trust Domain and Bundle §4.2.2", "The values are case sensitive",
        fetched(json!({"keys": [with(k2(), "use", json!("JWT-SVID")), k1()]})) => Ok(strings(&["k1"]));
    /// Deliberate difference: an inline (configured) key without `use` is a
    /// configuration error rather than an ignored key; fetched bundles
    /// ignore it (row `jb_05_ignores_keys_without_use`).
    bundle_4_2_2_inline_missing_use_refused: "Trust Domain and Bundle §4.2.2",
        USE_WORDS,
        inline(json!({"keys": [k1(), without(k2(), "use")]})) => Err("keys[1].use".to_string());
    /// Deliberate difference: an inline JWT authority of a key type
    /// modelgate cannot use is a configuration error; fetched bundles skip
    /// it (row `jb_06_…`).
    bundle_4_2_1_inline_unknown_kty_refused: "Trust Domain and Bundle §4.2.1",
        "Clients encountering an unknown key type MUST ignore the entire JWK element",
        inline(json!({"keys": [k1(), {"kty":"OKP","crv":"Ed25519","kid":"ed","use":"jwt-svid","x":b64(&[9; 32])}]}))
            => Err("keys[1].kty".to_string());
    x509_svid_6_2_x509_entries_never_disturb_jwt_authorities: "X509-SVID §6.2",
        "If `x5c` is not set, or is empty, then the entry MUST be ignored … all but the first MUST be ignored",
        fetched(json!({"keys": [
            {"kty":"EC","use":"x509-svid","crv":"P-256"},
            {"kty":"EC","use":"x509-svid","x5c":[]},
            {"kty":"EC","use":"x509-svid","x5c":["AA", "not even base64"]},
            k1()
        ]})) => Ok(strings(&["k1"]));
}

// --- X.509-SVIDs --------------------------------------------------------------------------------

/// The SPIFFE ID modelgate reads from a leaf certificate (PEM) of
/// example.org, at `NOW`.
fn leaf(pem: &[u8]) -> Result<String, X> {
    leaf_in(pem, &|td| td == TD)
}

fn leaf_in(pem: &[u8], trusted: &dyn Fn(&str) -> bool) -> Result<String, X> {
    leaf_der(pem).and_then(|der| x509::validate(&der, trusted, NOW)).map(|svid| svid.spiffe_id.as_str().to_string())
}

rows! {
    // --- Catalogue XV: X.509 peer validation (modelgate's part; Envoy's: module docs) -------------

    xv_01_accepts_a_valid_peer_svid: "X509-SVID §5",
        "The procedure uses standard X.509 validation, in addition to a small set of SPIFFE-specific validation steps",
        leaf(fixture!("bot")) => ok(BOT);
    /// The chain itself is Envoy's (module docs): here, the leaf an
    /// intermediate issued passes modelgate's leaf checks.
    xv_02_accepts_a_leaf_issued_by_an_intermediate: "X509-SVID §3.2",
        "A signing certificate MAY be used to issue further signing certificates",
        leaf(own!("via_intermediate")) => ok(BOT);
    xv_03_accepts_dns_sans_next_to_the_uri_san: "X509-SVID §2",
        "An X.509 SVID MAY contain any number of other SAN field types, including DNS SANs",
        leaf(fixture!("bot")) => ok(BOT);
    xv_04_accepts_an_empty_subject_with_a_critical_uri_san: "X509-SVID §3.1",
        "the URI SAN extension MUST be marked as critical if Subject is omitted",
        leaf(own!("empty_subject")) => ok(BOT);
    xv_06_rejects_an_expired_leaf: "X509-SVID §5.1 (RFC 5280 §6.1.3)",
        "The validation of trust in a given SVID is based on standard X.509 path validation, and MUST follow RFC 5280",
        leaf(fixture!("expired")) => Err(X::Expired);
    xv_07_rejects_a_leaf_not_yet_valid: "X509-SVID §5.1 (RFC 5280 §6.1.3)",
        "The validation of trust in a given SVID is based on standard X.509 path validation, and MUST follow RFC 5280",
        leaf(fixture!("not_yet_valid")) => Err(X::NotYetValid);
    xv_08_rejects_a_leaf_with_ca_true: "X509-SVID §5.2",
        "the validator MUST ensure that the `cA` field in the basic constraints extension is set to `false`",
        leaf(fixture!("ca_leaf")) => Err(X::IsCa);
    xv_09_rejects_a_leaf_with_key_cert_sign: "X509-SVID §5.2",
        "and that `keyCertSign` and `cRLSign` are not set in the key usage extension",
        leaf(fixture!("cert_sign")) => Err(X::SigningKeyUsage);
    xv_10_rejects_a_leaf_with_crl_sign: "X509-SVID §5.2",
        "and that `keyCertSign` and `cRLSign` are not set in the key usage extension",
        leaf(fixture!("crl_sign")) => Err(X::SigningKeyUsage);
    xv_11_rejects_two_spiffe_uri_sans: "X509-SVID §2, §5.2",
        "SVIDs containing more than one URI SAN MUST be rejected",
        leaf(fixture!("two_uri_sans")) => Err(X::ManyUriSans);
    xv_11_rejects_a_spiffe_then_an_https_uri_san: "X509-SVID §2, §5.2",
        "Validators encountering an SVID containing more than one URI SAN MUST reject the SVID",
        leaf(fixture!("spiffe_then_https")) => Err(X::ManyUriSans);
    xv_11_rejects_an_https_then_a_spiffe_uri_san: "X509-SVID §2, §5.2",
        "Validators encountering an SVID containing more than one URI SAN MUST reject the SVID",
        leaf(own!("https_then_spiffe")) => Err(X::ManyUriSans);
    xv_12_rejects_a_leaf_without_uri_san: "X509-SVID §2", "An X.509 SVID MUST contain exactly one URI SAN",
        leaf(fixture!("no_uri_san")) => Err(X::NoUriSan);
    xv_13_rejects_a_uri_san_that_is_not_spiffe: "X509-SVID §5.2",
        "The validator MUST also ensure that the scheme of the SPIFFE ID is set to `spiffe`",
        leaf(fixture!("https_only")) => Err(X::NotSpiffeId);
    xv_14_rejects_a_spiffe_id_without_a_path: "X509-SVID §3.1, §5.2",
        "and MUST ensure that the SPIFFE ID has a non-root path component",
        leaf(fixture!("trust_domain_only")) => Err(X::NoPath);
    xv_15_rejects_a_trust_domain_without_a_bundle: "SPIFFE-ID §3; Trust Domain and Bundle §3",
        "validators must choose the bundle corresponding to the trust domain that the SVID resides in",
        leaf(fixture!("unknown_domain")) => Err(X::UntrustedDomain);

    // --- X509-SVID: the MUSTs no catalogue case covers --------------------------------------------

    x509_svid_3_2_a_signing_certificate_never_authenticates: "X509-SVID §3.2",
        "Signing certificates MUST NOT be used for authentication purposes",
        (leaf(fixture!("ca")), leaf(own!("intermediate"))) => (Err(X::IsCa), Err(X::IsCa));

    // --- Catalogue ID, sampled as URI SANs ----------------------------------------------------------

    id_1_x509_rejects_a_query: "SPIFFE-ID §2", QUERY_WORDS,
        leaf(own!("id_query")) => Err(X::NotSpiffeId);
    id_1_x509_rejects_a_fragment: "SPIFFE-ID §2", QUERY_WORDS,
        leaf(own!("id_fragment")) => Err(X::NotSpiffeId);
    id_1_x509_rejects_a_port: "SPIFFE-ID §2.1",
        AUTHORITY_WORDS,
        leaf(own!("id_port")) => Err(X::NotSpiffeId);
    id_1_x509_rejects_userinfo: "SPIFFE-ID §2.1",
        AUTHORITY_WORDS,
        leaf(own!("id_userinfo")) => Err(X::NotSpiffeId);
    id_1_x509_rejects_a_percent_encoded_path: "SPIFFE-ID §2.2",
        "The path component MUST NOT include percent-encoded characters",
        leaf(own!("id_percent")) => Err(X::NotSpiffeId);
    id_1_x509_rejects_an_empty_segment: "SPIFFE-ID §2.2",
        "The path component MUST NOT include segments that are empty or are relative path modifiers",
        leaf(own!("id_empty_segment")) => Err(X::NotSpiffeId);
    id_1_x509_rejects_a_dot_dot_segment: "SPIFFE-ID §2.2",
        "The path component MUST NOT include segments that are empty or are relative path modifiers (i.e. `.`, `..`)",
        leaf(fixture!("dot_segment")) => Err(X::NotSpiffeId);
    id_1_x509_rejects_a_trailing_slash: "SPIFFE-ID §2.2", "The path component MUST NOT include a trailing `/`",
        leaf(fixture!("trailing_slash")) => Err(X::NotSpiffeId);
    id_1_x509_rejects_an_upper_case_trust_domain: "SPIFFE-ID §2.1",
        "The `host` part of the authority MUST be lowercase",
        leaf(own!("id_upper_trust_domain")) => Err(X::NotSpiffeId);
    id_2_x509_accepts_edge_case_characters: "SPIFFE-ID §2.1, §2.2",
        SEGMENT_WORDS,
        leaf_in(own!("id_edge"), &|td| td == "td_1.example-2") => ok("spiffe://td_1.example-2/Aa-Zz_0.9/.-_");
    id_2_x509_accepts_a_2048_byte_id: "SPIFFE-ID §2.3",
        "SPIFFE implementations MUST support SPIFFE URIs up to 2048 bytes in length",
        leaf(own!("id_2048")) => Ok(id_2048());
}
