use super::*;
use serde_json::json;

pub(crate) const EC_X: &str = "tQZlunxRuQx0JcL5nKNf2RB3ekCDXYAkN8Px6BR3s0Y";
pub(crate) const EC_Y: &str = "McGGg-fs5jXtnOK8QiWzpI2NoXdL0VVtu13j5k8zChY";

fn ec(kid: &str) -> serde_json::Value {
    json!({"kty":"EC","crv":"P-256","kid":kid,"use":"jwt-svid","x":EC_X,"y":EC_Y})
}

#[test]
fn keeps_jwt_authorities_and_skips_x509_ones() {
    let doc = json!({"keys":[ec("a"), {"kty":"EC","crv":"P-256","use":"x509-svid","x":EC_X,"y":EC_Y,"x5c":["AA"]}], "spiffe_sequence": 3});
    let keys = parse_jwt_bundle(&doc).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, "a");
    assert!(matches!(keys[0].key, PublicKey::Ec { curve: Curve::P256, ref point } if point.len() == 65));
}

#[test]
fn refuses_bad_bundles_naming_the_member() {
    let mut private = ec("a");
    private["d"] = json!("AAAA");
    let mut no_kid = ec("a");
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut no_use = ec("a");
    no_use.as_object_mut().unwrap().remove("use");
    let mut short_x = ec("a");
    short_x["x"] = json!("AAAA");
    let mut bad_alg = ec("a");
    bad_alg["alg"] = json!("RS256");
    let cases = [
        (json!({"keys":[private]}), "keys[0]"),
        (json!({"keys":[no_kid]}), "keys[0].kid"),
        (json!({"keys":[no_use]}), "keys[0].use"),
        (json!({"keys":[short_x]}), "keys[0].x"),
        (json!({"keys":[bad_alg]}), "keys[0].alg"),
        (json!({"keys":[ec("a"), ec("a")]}), "keys[1].kid"),
        (json!({"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","use":"jwt-svid","x":"AA"}]}), "keys[0].kty"),
        (json!({"keys":[{"kty":"RSA","kid":"r","use":"jwt-svid","n":"AQAB","e":"AQAB"}]}), "keys[0].n"),
        (json!({"keys":[]}), "keys"),
        (json!({"keys":[ec("a")], "extra": 1}), ""),
    ];
    for (doc, path) in cases {
        let e = parse_jwt_bundle(&doc).unwrap_err();
        assert!(e.path.starts_with(path), "{doc} → {e:?}");
    }
}

#[test]
fn keys_are_checked_and_made_ready_at_load() {
    let mut off_curve = ec("a");
    off_curve["y"] = json!(EC_X);
    assert_eq!(parse_jwt_bundle(&json!({"keys":[off_curve]})).unwrap_err().path, "keys[0].x");
    let keys = parse_jwt_bundle(&json!({"keys":[ec("a")]})).unwrap();
    assert!(matches!(keys[0].ready, ReadyKey::P256(_)));
    // The SPKI is the one every DER encoder writes for this key.
    assert_eq!(keys[0].spki.len(), 91);
    assert_eq!(&keys[0].spki[..4], &[0x30, 0x59, 0x30, 0x13]);
    assert_eq!(keys[0].signature_len(), 64);
}

#[test]
fn a_fetched_bundle_is_read_as_the_standard_asks_a_consumer_to() {
    // A SPIRE bundle endpoint's document: X.509 authorities, a JWT
    // authority, the SPIFFE members, and members this gateway ignores.
    let mut spire = ec("j1");
    spire["x-extension"] = json!({"any": "thing"});
    let doc = json!({
        "keys": [
            {"kty":"EC","crv":"P-256","use":"x509-svid","x":EC_X,"y":EC_Y,"x5c":["AA"]},
            spire,
            {"kty":"OKP","crv":"Ed25519","use":"jwt-svid","kid":"ed","x":"AA"},
            {"kty":"EC","crv":"secp256k1","use":"jwt-svid","kid":"k1","x":"AA","y":"AA"},
            {"kty":"EC","crv":"P-256","use":"enc","kid":"e","x":EC_X,"y":EC_Y}
        ],
        "spiffe_sequence": 7,
        "spiffe_refresh_hint": 60,
        "unknown_member": true
    });
    let mut no_use = ec("n");
    no_use.as_object_mut().unwrap().remove("use");
    let mut sig = ec("o1");
    sig["use"] = json!("sig");
    sig["alg"] = json!("ES256");
    let mut doc = doc;
    doc["keys"].as_array_mut().unwrap().extend([no_use.clone(), sig.clone()]);
    let b = parse_fetched(doc.to_string().as_bytes(), Format::Spiffe).unwrap();
    assert_eq!(b.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["j1"]);
    assert_eq!((b.sequence, b.refresh_hint, b.skipped), (Some(7), Some(60), 2));
    // An OIDC discovery provider's JWKS: use "sig" or none.
    let b = parse_fetched(json!({"keys": [sig, no_use, ec("s")]}).to_string().as_bytes(), Format::Jwks).unwrap();
    assert_eq!(b.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["o1", "n"]);
    assert_eq!(b.sequence, None);
    // No JWT authority at all is a bundle that trusts no token.
    assert!(parse_fetched(br#"{"keys": []}"#, Format::Spiffe).unwrap().keys.is_empty());
}

#[test]
fn a_fetched_bundle_that_is_wrong_is_refused_whole() {
    let mut no_kid = ec("a");
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut private = ec("a");
    private["d"] = json!("AAAA");
    let mut off_curve = ec("a");
    off_curve["y"] = json!(EC_X);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), ""),
        (b"[]".to_vec(), ""),
        (br#"{"key": []}"#.to_vec(), "keys"),
        (json!({"keys": [no_kid]}).to_string().into_bytes(), "keys[0].kid"),
        (json!({"keys": [private]}).to_string().into_bytes(), "keys[0]"),
        (json!({"keys": [off_curve]}).to_string().into_bytes(), "keys[0].x"),
        (json!({"keys": [ec("a"), ec("a")]}).to_string().into_bytes(), "keys[1].kid"),
        (json!({"keys": [ec("a")], "spiffe_sequence": -1}).to_string().into_bytes(), "spiffe_sequence"),
        (json!({"keys": [ec("a")], "spiffe_refresh_hint": "60"}).to_string().into_bytes(), "spiffe_refresh_hint"),
        (json!({"keys": ["a"]}).to_string().into_bytes(), "keys[0]"),
        (vec![b' '; MAX_FETCHED_BUNDLE_BYTES + 1], ""),
    ];
    for (doc, path) in cases {
        let e = parse_fetched(&doc, Format::Spiffe).unwrap_err();
        assert_eq!(e.path, path, "{e:?}");
    }
}

#[test]
fn alg_fits_only_its_key_type_and_curve() {
    let p256 = PublicKey::Ec { curve: Curve::P256, point: vec![] };
    let rsa = PublicKey::Rsa { n: vec![], e: vec![] };
    assert!(Alg::ES256.fits(&p256));
    assert!(!Alg::ES384.fits(&p256));
    assert!(!Alg::RS256.fits(&p256));
    assert!(Alg::PS512.fits(&rsa));
    assert!(!Alg::ES256.fits(&rsa));
}
