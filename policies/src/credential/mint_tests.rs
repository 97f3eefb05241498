use super::*;
use crate::identity::svid::bundle::parse_fetched;
use crate::identity::svid::bundle::Format;
use crate::identity::svid::verify::{SignatureVerifier, SignedToken};
use crate::identity::svid::{Alg, PureRustVerifier};

const D: &str = "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE";

fn minter(kid: Option<&str>) -> Minter {
    let jwk = public_jwk(&SigningKey::from_slice(&URL_SAFE_NO_PAD.decode(D).unwrap()).unwrap());
    let private = json!({"kty": "EC", "crv": "P-256", "d": D, "x": jwk["x"], "y": jwk["y"]});
    Minter::new(&private.to_string(), kid.map(str::to_string), "https://gw".into(), "https://api".into(), 60).unwrap()
}

#[test]
fn a_minted_jwt_verifies_against_the_printed_jwks() {
    let m = minter(None);
    let token = m.mint("spiffe://example.org/a", Some("gpt-4o-mini"), 1_000, &[7; 16], &PureRustVerifier);
    let keys = parse_fetched(m.jwks().to_string().as_bytes(), Format::Jwks).unwrap().keys;
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let signed = SignedToken { signing_input: input, signature: &signature, alg: Alg::ES256 };
    assert!(PureRustVerifier.verify(&signed, &keys[0]));
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(
        claims,
        json!({"iss": "https://gw", "sub": "spiffe://example.org/a", "aud": "https://api", "iat": 1000,
               "exp": 1060, "jti": "BwcHBwcHBwcHBwcHBwcHBw", "model": "gpt-4o-mini"})
    );
    // The kid is the key's RFC 7638 thumbprint unless configured.
    assert_eq!(keys[0].kid, m.kid);
    assert_eq!(m.kid.len(), 43);
    assert_eq!(minter(Some("k-2026")).kid, "k-2026");
}

#[test]
fn keys_are_read_from_pem_or_jwk_and_refused_clearly() {
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let key = SigningKey::from_slice(&URL_SAFE_NO_PAD.decode(D).unwrap()).unwrap();
    let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    assert_eq!(signing_key(&pkcs8).unwrap().0, key);
    let sec1 = p256::SecretKey::from(&key).to_sec1_pem(LineEnding::LF).unwrap();
    assert_eq!(signing_key(&sec1).unwrap().0, key);
    let truncated = &pkcs8[..pkcs8.len() - 60];
    assert!(signing_key(truncated).is_err(), "a truncated key is refused");
    for bad in ["", "sk-live-123", "{\"kty\":\"RSA\"}", "{\"kty\":\"EC\",\"crv\":\"P-256\"}"] {
        assert!(signing_key(bad).is_err(), "{bad}");
    }
    let mut wrong_public = json!({"kty": "EC", "crv": "P-256", "d": D, "x": "AA", "y": "AA"});
    assert!(signing_key(&wrong_public.to_string()).unwrap_err().contains("x and y"));
    wrong_public["d"] = json!("AA");
    assert!(signing_key(&wrong_public.to_string()).is_err());
}
