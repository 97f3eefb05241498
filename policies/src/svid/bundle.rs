//! SPIFFE trust bundles (a JWK Set with SPIFFE members): the JWT authorities
//! of a trust domain.
//!
//! The same parser serves inline bundles from the configuration and, later,
//! bundles fetched from a bundle endpoint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

/// The JWS algorithms a JWT-SVID may use (the JWT-SVID standard allows the
/// RSA, RSA-PSS and ECDSA families; `none`, HMAC and EdDSA are refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
}

impl Alg {
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
        }
    }

    /// Whether a key can verify this algorithm: RSA keys for RS*/PS*, and an
    /// EC key only on the curve its ES* names.
    pub fn fits(self, key: &PublicKey) -> bool {
        matches!(
            (self, key),
            (Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512, PublicKey::Rsa { .. })
                | (Alg::ES256, PublicKey::Ec { curve: Curve::P256, .. })
                | (Alg::ES384, PublicKey::Ec { curve: Curve::P384, .. })
                | (Alg::ES512, PublicKey::Ec { curve: Curve::P521, .. })
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// A JWT authority's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// `point` is the SEC1 uncompressed encoding, `04 || x || y`.
    Ec { curve: Curve, point: Vec<u8> },
    /// Big-endian modulus and exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

/// One JWT authority of a trust domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtKey {
    pub kid: String,
    pub key: PublicKey,
    /// The JWK's `alg`, when it pins the key to one algorithm.
    pub alg: Option<Alg>,
}

/// The SPIFFE bundle document (RFC 7517 JWK Set plus SPIFFE's members).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundle {
    keys: Vec<RawJwk>,
    #[serde(default)]
    spiffe_sequence: Option<u64>,
    #[serde(default)]
    spiffe_refresh_hint: Option<u64>,
}

/// The JWK members a SPIFFE bundle may carry. Private members (`d`, `p`, …)
/// are named so that a bundle holding a private key is refused with a clear
/// error instead of an "unknown field".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(rename = "use", default)]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
    #[serde(default)]
    x5t: Option<String>,
    #[serde(rename = "x5t#S256", default)]
    x5t_s256: Option<String>,
    #[serde(default)]
    d: Option<serde_json::Value>,
    #[serde(default)]
    p: Option<serde_json::Value>,
    #[serde(default)]
    q: Option<serde_json::Value>,
    #[serde(default)]
    dp: Option<serde_json::Value>,
    #[serde(default)]
    dq: Option<serde_json::Value>,
    #[serde(default)]
    qi: Option<serde_json::Value>,
}

/// A bundle error, with the JSON path below the bundle where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> BundleError {
    BundleError { path: path.into(), message: message.into() }
}

/// RSA moduli shorter than this are refused: such keys can be factored.
const MIN_RSA_BITS: usize = 2048;

/// Parses a SPIFFE bundle and returns its JWT authorities: keys with
/// `use: "jwt-svid"`, or with no `use` at all. Keys for X.509-SVIDs are
/// skipped. Every JWT authority needs a unique `kid`.
pub fn parse_jwt_bundle(doc: &serde_json::Value) -> Result<Vec<JwtKey>, BundleError> {
    let raw: RawBundle =
        serde_path_to_error::deserialize(doc).map_err(|e| err(e.path().to_string(), e.inner().to_string()))?;
    let _ = (raw.spiffe_sequence, raw.spiffe_refresh_hint);
    let mut keys: Vec<JwtKey> = Vec::new();
    for (i, jwk) in raw.keys.iter().enumerate() {
        let at = format!("keys[{i}]");
        match jwk.use_.as_deref() {
            None | Some("jwt-svid") => {}
            Some("x509-svid") => continue,
            Some(other) => {
                return Err(err(
                    format!("{at}.use"),
                    format!("unknown use {other:?}: expected \"jwt-svid\" or \"x509-svid\""),
                ))
            }
        }
        let key = parse_jwk(jwk, &at)?;
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(err(format!("{at}.kid"), format!("duplicate kid {:?}", key.kid)));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(err("keys", "the bundle holds no JWT authority (no key with use \"jwt-svid\")"));
    }
    Ok(keys)
}

fn parse_jwk(jwk: &RawJwk, at: &str) -> Result<JwtKey, BundleError> {
    if jwk.d.is_some() || jwk.p.is_some() || jwk.q.is_some() || jwk.dp.is_some() || jwk.dq.is_some() || jwk.qi.is_some()
    {
        return Err(err(at, "holds private key material; a bundle must carry public keys only"));
    }
    let kid = match jwk.kid.as_deref() {
        Some(kid) if !kid.is_empty() => kid.to_string(),
        _ => return Err(err(format!("{at}.kid"), "every JWT authority needs a kid")),
    };
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|op| op == "verify") {
            return Err(err(format!("{at}.key_ops"), "the key is not for \"verify\""));
        }
    }
    let _ = (&jwk.x5c, &jwk.x5t, &jwk.x5t_s256);
    let key = match jwk.kty.as_str() {
        "EC" => {
            let curve = match jwk.crv.as_deref() {
                Some("P-256") => Curve::P256,
                Some("P-384") => Curve::P384,
                Some("P-521") => Curve::P521,
                other => {
                    return Err(err(
                        format!("{at}.crv"),
                        format!("unsupported curve {other:?}: expected P-256, P-384 or P-521"),
                    ))
                }
            };
            let x = coordinate(jwk.x.as_deref(), curve, &format!("{at}.x"))?;
            let y = coordinate(jwk.y.as_deref(), curve, &format!("{at}.y"))?;
            let mut point = Vec::with_capacity(1 + 2 * x.len());
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::Ec { curve, point }
        }
        "RSA" => {
            let n = b64(jwk.n.as_deref(), &format!("{at}.n"))?;
            let e = b64(jwk.e.as_deref(), &format!("{at}.e"))?;
            let n = strip_leading_zeros(n);
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(err(
                    format!("{at}.n"),
                    format!("RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"),
                ));
            }
            PublicKey::Rsa { n, e: strip_leading_zeros(e) }
        }
        other => {
            return Err(err(format!("{at}.kty"), format!("unsupported key type {other:?}: expected \"EC\" or \"RSA\"")))
        }
    };
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => match Alg::from_name(name) {
            Some(alg) if alg.fits(&key) => Some(alg),
            _ => return Err(err(format!("{at}.alg"), format!("{name:?} is not a JWT-SVID algorithm for this key"))),
        },
    };
    Ok(JwtKey { kid, key, alg })
}

fn b64(value: Option<&str>, at: &str) -> Result<Vec<u8>, BundleError> {
    let value = value.ok_or_else(|| err(at, "missing"))?;
    URL_SAFE_NO_PAD.decode(value).map_err(|_| err(at, "not base64url without padding"))
}

fn coordinate(value: Option<&str>, curve: Curve, at: &str) -> Result<Vec<u8>, BundleError> {
    let bytes = b64(value, at)?;
    if bytes.len() != curve.coordinate_len() {
        return Err(err(at, format!("{} bytes; the curve needs {}", bytes.len(), curve.coordinate_len())));
    }
    Ok(bytes)
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

#[cfg(test)]
mod tests {
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
        let mut short_x = ec("a");
        short_x["x"] = json!("AAAA");
        let mut bad_alg = ec("a");
        bad_alg["alg"] = json!("RS256");
        let cases = [
            (json!({"keys":[private]}), "keys[0]"),
            (json!({"keys":[no_kid]}), "keys[0].kid"),
            (json!({"keys":[short_x]}), "keys[0].x"),
            (json!({"keys":[bad_alg]}), "keys[0].alg"),
            (json!({"keys":[ec("a"), ec("a")]}), "keys[1].kid"),
            (json!({"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"AA"}]}), "keys[0].kty"),
            (json!({"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}), "keys[0].n"),
            (json!({"keys":[]}), "keys"),
            (json!({"keys":[ec("a")], "extra": 1}), ""),
        ];
        for (doc, path) in cases {
            let e = parse_jwt_bundle(&doc).unwrap_err();
            assert!(e.path.starts_with(path), "{doc} → {e:?}");
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
}
