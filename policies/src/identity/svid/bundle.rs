//! SPIFFE trust bundles (a JWK Set with SPIFFE members): the JWT authorities
//! of a trust domain.
//!
//! The same parser serves inline bundles from the configuration and, later,
//! bundles fetched from a bundle endpoint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use crate::util::der;

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
    /// The key parsed once, ready to verify.
    pub ready: ReadyKey,
    /// Its DER SubjectPublicKeyInfo, for verifiers that take one (Envoy's).
    pub spki: Vec<u8>,
}

/// A verifying key, parsed when the bundle is loaded (a point that is not
/// on its curve, or an RSA key out of bounds, is refused then).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadyKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(P521Key),
    Rsa(rsa::RsaPublicKey),
}

/// A P-521 verifying key. `p521`'s key (0.13) derives neither `Debug` nor
/// `Eq`, which [`JwtKey`] needs: both are the public point's.
#[derive(Clone)]
pub struct P521Key(pub p521::ecdsa::VerifyingKey);

impl PartialEq for P521Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_affine() == other.0.as_affine()
    }
}

impl Eq for P521Key {}

impl std::fmt::Debug for P521Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("P521Key").field(self.0.as_affine()).finish()
    }
}

impl JwtKey {
    /// The length a signature must have under this key: `2 × coordinate`
    /// for ECDSA (JWS `r || s`), the modulus' for RSA.
    pub fn signature_len(&self) -> usize {
        match &self.key {
            PublicKey::Ec { curve, .. } => 2 * curve.coordinate_len(),
            PublicKey::Rsa { n, .. } => n.len(),
        }
    }
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
/// Nor longer than this (BoringSSL's and RustCrypto's bound alike).
const MAX_RSA_BITS: usize = 8192;

/// Parses a SPIFFE bundle written in the configuration and returns its JWT
/// authorities: keys with `use: "jwt-svid"`. Keys for X.509-SVIDs are
/// skipped; a key without `use` (which a consumer of a fetched bundle must
/// ignore) is an error here, so an operator is told rather than ignored. Every JWT authority needs a unique `kid`.
/// Strict: an operator's typo is an error, never a silently ignored key.
pub fn parse_jwt_bundle(doc: &serde_json::Value) -> Result<Vec<JwtKey>, BundleError> {
    let raw: RawBundle =
        serde_path_to_error::deserialize(doc).map_err(|e| err(e.path().to_string(), e.inner().to_string()))?;
    let _ = (raw.spiffe_sequence, raw.spiffe_refresh_hint);
    let mut keys: Vec<JwtKey> = Vec::new();
    for (i, jwk) in raw.keys.iter().enumerate() {
        let at = format!("keys[{i}]");
        match jwk.use_.as_deref() {
            Some("jwt-svid") => {}
            Some("x509-svid") => continue,
            other => {
                return Err(err(
                    format!("{at}.use"),
                    match other {
                        None => "missing: a SPIFFE bundle's key has use \"jwt-svid\" or \"x509-svid\"".to_string(),
                        Some(u) => format!("unknown use {u:?}: expected \"jwt-svid\" or \"x509-svid\""),
                    },
                ))
            }
        }
        let key = parse_jwk(jwk, &at).map_err(KeyError::into_inner)?;
        add_unique(&mut keys, key, &at)?;
    }
    if keys.is_empty() {
        return Err(err("keys", "the bundle holds no JWT authority (no key with use \"jwt-svid\")"));
    }
    Ok(keys)
}

/// A bundle fetched from a bundle endpoint: its JWT authorities and the
/// SPIFFE members that say how fresh it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub keys: Vec<JwtKey>,
    pub sequence: Option<u64>,
    /// Seconds: how often the trust domain suggests the bundle is fetched.
    pub refresh_hint: Option<u64>,
    /// Keys left out because this gateway cannot use them (an unknown `kty`
    /// or curve, an RSA size out of bounds), for the log.
    pub skipped: usize,
}

/// The largest bundle document read from an endpoint.
pub const MAX_FETCHED_BUNDLE_BYTES: usize = 1 << 20;

/// What a bundle endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A SPIFFE bundle: JWT authorities are the keys with `use: "jwt-svid"`
    /// (a missing or unknown `use` is ignored, as the standard says).
    Spiffe,
    /// A plain JWK Set (an OIDC discovery provider's `jwks_uri`): JWT
    /// authorities are the keys with `use: "sig"` or no `use`.
    Jwks,
}

/// Parses a bundle served by a SPIFFE bundle endpoint, or a plain JWKS, as
/// the trust bundle standard asks a consumer to: members it does not know
/// are ignored, keys for another use are not JWT authorities, and keys of a
/// type it cannot use are left out. What is wrong rather than
/// unknown refuses the whole document (the last good bundle stays): a JWT
/// authority without `kid` or with a duplicate one, private key material,
/// a point off its curve, a sequence or hint that is not an integer.
pub fn parse_fetched(bytes: &[u8], format: Format) -> Result<Bundle, BundleError> {
    if bytes.len() > MAX_FETCHED_BUNDLE_BYTES {
        return Err(err("", format!("{} bytes; at most {MAX_FETCHED_BUNDLE_BYTES} are read", bytes.len())));
    }
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| err("", format!("not JSON: {e}")))?;
    let serde_json::Value::Object(doc) = doc else { return Err(err("", "not a JSON object")) };
    let number = |name: &str| match doc.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| err(name, "not a non-negative integer")),
    };
    let sequence = number("spiffe_sequence")?;
    let refresh_hint = number("spiffe_refresh_hint")?;
    let Some(serde_json::Value::Array(items)) = doc.get("keys") else {
        return Err(err("keys", "missing, or not an array"));
    };
    let mut keys: Vec<JwtKey> = Vec::new();
    let mut skipped = 0;
    for (i, item) in items.iter().enumerate() {
        let at = format!("keys[{i}]");
        let serde_json::Value::Object(members) = item else { return Err(err(at, "not a JSON object")) };
        // Use and key type first: an element for another use, or of a
        // type this gateway does not know, is ignored whole, whatever
        // else it holds (trust bundle standard §4.2.1, §4.2.2).
        let text = |name: &str| members.get(name).and_then(serde_json::Value::as_str);
        let authority = match format {
            Format::Spiffe => text("use") == Some("jwt-svid"),
            Format::Jwks => members.get("use").is_none() || text("use") == Some("sig"),
        };
        if !authority {
            continue;
        }
        if !matches!(text("kty"), Some("EC" | "RSA")) {
            skipped += 1;
            continue;
        }
        let known: serde_json::Map<String, serde_json::Value> = members
            .iter()
            .filter(|(k, _)| JWK_MEMBERS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let jwk: RawJwk = serde_json::from_value(serde_json::Value::Object(known))
            .map_err(|e| err(at.clone(), format!("not a JWK: {e}")))?;
        match parse_jwk(&jwk, &at) {
            Ok(key) => add_unique(&mut keys, key, &at)?,
            Err(KeyError::Unusable(_)) => skipped += 1,
            Err(KeyError::Invalid(e)) => return Err(e),
        }
    }
    Ok(Bundle { keys, sequence, refresh_hint, skipped })
}

/// The JWK members [`RawJwk`] reads; a fetched key's other members are
/// dropped before it is read.
const JWK_MEMBERS: &[&str] = &[
    "kty", "kid", "use", "alg", "key_ops", "crv", "x", "y", "n", "e", "x5c", "x5t", "x5t#S256", "d", "p", "q", "dp",
    "dq", "qi",
];

fn add_unique(keys: &mut Vec<JwtKey>, key: JwtKey, at: &str) -> Result<(), BundleError> {
    if keys.iter().any(|k| k.kid == key.kid) {
        return Err(err(format!("{at}.kid"), format!("duplicate kid {:?}", key.kid)));
    }
    keys.push(key);
    Ok(())
}

/// Why a JWK is not a JWT authority: a key this gateway cannot use (a
/// fetched bundle leaves it out), or one that is wrong (refused).
enum KeyError {
    Unusable(BundleError),
    Invalid(BundleError),
}

impl KeyError {
    fn into_inner(self) -> BundleError {
        match self {
            KeyError::Unusable(e) | KeyError::Invalid(e) => e,
        }
    }
}

fn parse_jwk(jwk: &RawJwk, at: &str) -> Result<JwtKey, KeyError> {
    use KeyError::{Invalid, Unusable};
    if jwk.d.is_some() || jwk.p.is_some() || jwk.q.is_some() || jwk.dp.is_some() || jwk.dq.is_some() || jwk.qi.is_some()
    {
        return Err(Invalid(err(at, "holds private key material; a bundle must carry public keys only")));
    }
    let kid = match jwk.kid.as_deref() {
        Some(kid) if !kid.is_empty() => kid.to_string(),
        _ => return Err(Invalid(err(format!("{at}.kid"), "every JWT authority needs a kid"))),
    };
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|op| op == "verify") {
            return Err(Unusable(err(format!("{at}.key_ops"), "the key is not for \"verify\"")));
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
                    return Err(Unusable(err(
                        format!("{at}.crv"),
                        format!("unsupported curve {other:?}: expected P-256, P-384 or P-521"),
                    )))
                }
            };
            let x = coordinate(jwk.x.as_deref(), curve, &format!("{at}.x")).map_err(Invalid)?;
            let y = coordinate(jwk.y.as_deref(), curve, &format!("{at}.y")).map_err(Invalid)?;
            let mut point = Vec::with_capacity(1 + 2 * x.len());
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::Ec { curve, point }
        }
        "RSA" => {
            let n = b64(jwk.n.as_deref(), &format!("{at}.n")).map_err(Invalid)?;
            let e = b64(jwk.e.as_deref(), &format!("{at}.e")).map_err(Invalid)?;
            let n = strip_leading_zeros(n);
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(Unusable(err(
                    format!("{at}.n"),
                    format!("RSA key of {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"),
                )));
            }
            PublicKey::Rsa { n, e: strip_leading_zeros(e) }
        }
        other => {
            return Err(Unusable(err(
                format!("{at}.kty"),
                format!("unsupported key type {other:?}: expected \"EC\" or \"RSA\""),
            )))
        }
    };
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => match Alg::from_name(name) {
            Some(alg) if alg.fits(&key) => Some(alg),
            _ => {
                return Err(Unusable(err(
                    format!("{at}.alg"),
                    format!("{name:?} is not a JWT-SVID algorithm for this key"),
                )))
            }
        },
    };
    let ready = ready(&key).ok_or_else(|| match &key {
        PublicKey::Ec { .. } => Invalid(err(format!("{at}.x"), "the point is not on the curve")),
        PublicKey::Rsa { .. } => Invalid(err(format!("{at}.e"), "the public exponent must be odd, from 3 to 2^33 - 1")),
    })?;
    let spki = spki(&key);
    Ok(JwtKey { kid, key, alg, ready, spki })
}

/// The verifying key, or `None` when the public key is not a valid one.
fn ready(key: &PublicKey) -> Option<ReadyKey> {
    match key {
        PublicKey::Ec { curve: Curve::P256, point } => {
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point).ok().map(ReadyKey::P256)
        }
        PublicKey::Ec { curve: Curve::P384, point } => {
            p384::ecdsa::VerifyingKey::from_sec1_bytes(point).ok().map(ReadyKey::P384)
        }
        PublicKey::Ec { curve: Curve::P521, point } => {
            p521::ecdsa::VerifyingKey::from_sec1_bytes(point).ok().map(|k| ReadyKey::P521(P521Key(k)))
        }
        PublicKey::Rsa { n, e } => {
            if e.last().is_none_or(|b| b % 2 == 0) {
                return None;
            }
            let (n, e) = (rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e));
            rsa::RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS).ok().map(ReadyKey::Rsa)
        }
    }
}

/// DER SubjectPublicKeyInfo (RFC 5480 for EC, RFC 8017 for RSA).
fn spki(key: &PublicKey) -> Vec<u8> {
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const RSA_ENCRYPTION: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let (algorithm, public) = match key {
        PublicKey::Ec { curve, point } => {
            let oid: &[u8] = match curve {
                Curve::P256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
                Curve::P384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
                Curve::P521 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
            };
            (tlv(0x30, &[EC_PUBLIC_KEY, oid].concat()), point.clone())
        }
        PublicKey::Rsa { n, e } => {
            let integer = |v: &[u8]| {
                let pad = v.first().is_none_or(|b| *b >= 0x80);
                tlv(0x02, &[if pad { &[0u8][..] } else { &[] }, v].concat())
            };
            (tlv(0x30, RSA_ENCRYPTION), tlv(0x30, &[integer(n), integer(e)].concat()))
        }
    };
    let bits = tlv(0x03, &[&[0u8][..], &public].concat());
    tlv(0x30, &[algorithm, bits].concat())
}

fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der::len(&mut out, value.len());
    out.extend_from_slice(value);
    out
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
#[path = "bundle_tests.rs"]
mod tests;
