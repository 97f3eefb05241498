//! JWT-SVID validation, per the SPIFFE JWT-SVID standard.
//!
//! Every header and claim check is made here, in this order: the token's
//! shape, its header, the subject and its trust domain (which choose the
//! keys), the types of the claims, the signature (through the
//! [`SignatureVerifier`] seam), then the claims' values — so a detail about
//! time or audience always describes a genuinely signed token. Each
//! rejection has its own [`JwtSvidError`], whose `detail()` goes in the
//! audit record.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use super::bundle::{Alg, JwtKey};
use super::trust::TrustStore;
use super::verify::{SignatureVerifier, SignedToken};
use crate::body::json;
use crate::config::svid::JwtSvidConfig;

/// A JSON object as serde_json reads it (after the strict reader).
pub type Object = serde_json::Map<String, Value>;
use crate::identity::spiffe::SpiffeId;
use crate::reason::{Denial, Reason};

/// Longest token read. SPIRE's JWT-SVIDs are well under 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The header parameters a JWT-SVID may carry. Anything else — `jku`,
/// `jwk`, `x5u`, `x5c` (which would let a token name its own key), `crit`,
/// `cty`, `b64` — is refused.
const ALLOWED_HEADER: &[&str] = &["alg", "kid", "typ"];

/// A validated JWT-SVID: what policy needs of it, never the token.
#[derive(Clone, Debug, PartialEq)]
pub struct JwtSvid {
    pub spiffe_id: SpiffeId,
    pub kid: String,
    pub exp: u64,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
    pub jti: Option<String>,
    /// The other claims whose values are strings or arrays of strings (what
    /// rule conditions on claims compare), by name; never `sub`, `aud` or
    /// the times. Kept small: the verified-SVID cache holds it.
    pub claims: Vec<(String, Vec<String>)>,
    /// Whether a claim was not kept (a value that is no string or array of
    /// strings, or past the claims kept): a condition on a claim that is
    /// not in `claims` then cannot say it is absent.
    pub unread_claims: bool,
}

/// Registered claims, read into their own fields.
const REGISTERED: &[&str] = &["sub", "aud", "exp", "nbf", "iat", "jti", "iss"];

/// At most this many other claims are kept.
const MAX_KEPT_CLAIMS: usize = 32;

/// The claims conditions can compare, and whether any other was left out.
pub(crate) fn kept_claims(claims: &Object) -> (Vec<(String, Vec<String>)>, bool) {
    let mut kept = Vec::new();
    let mut unread = false;
    for (name, value) in claims.iter().filter(|(name, _)| !REGISTERED.contains(&name.as_str())) {
        let values = match value {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                Some(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            }
            _ => None,
        };
        match values {
            Some(values) if kept.len() < MAX_KEPT_CLAIMS => kept.push((name.clone(), values)),
            _ => unread = true,
        }
    }
    (kept, unread)
}

impl JwtSvid {
    /// The time-dependent checks, against `now_secs`: made on every
    /// validation, and again on every use of a cached one.
    pub fn check_times(&self, config: &JwtSvidConfig, now_secs: u64) -> Result<()> {
        Times { exp: self.exp, nbf: self.nbf, iat: self.iat }.check(config, now_secs)
    }
}

/// Why a JWT-SVID was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtSvidError {
    TooLong,
    JsonSerialization,
    Malformed,
    MalformedHeader,
    UnknownHeader,
    AlgNotAllowed,
    BadTyp,
    MalformedClaims,
    SubjectMissing,
    SubjectNotSpiffeId,
    UntrustedDomain,
    BundleUnavailable,
    KidMissing,
    UnknownKid,
    AlgKeyMismatch,
    BadSignature,
    ExpMissing,
    Expired,
    NotYetValid,
    IssuedInFuture,
    LifetimeTooLong,
    AudienceMissing,
    AudienceMismatch,
}

impl JwtSvidError {
    /// The audit record's `detail`.
    pub fn detail(self) -> &'static str {
        match self {
            JwtSvidError::TooLong => "too_long",
            JwtSvidError::JsonSerialization => "json_serialization",
            JwtSvidError::Malformed => "malformed",
            JwtSvidError::MalformedHeader => "malformed_header",
            JwtSvidError::UnknownHeader => "unknown_header",
            JwtSvidError::AlgNotAllowed => "alg_not_allowed",
            JwtSvidError::BadTyp => "bad_typ",
            JwtSvidError::MalformedClaims => "malformed_claims",
            JwtSvidError::SubjectMissing => "subject_missing",
            JwtSvidError::SubjectNotSpiffeId => "subject_not_spiffe_id",
            JwtSvidError::UntrustedDomain => "unknown_trust_domain",
            JwtSvidError::BundleUnavailable => "bundle_unavailable",
            JwtSvidError::KidMissing => "kid_missing",
            JwtSvidError::UnknownKid => "unknown_kid",
            JwtSvidError::AlgKeyMismatch => "alg_key_mismatch",
            JwtSvidError::BadSignature => "bad_signature",
            JwtSvidError::ExpMissing => "exp_missing",
            JwtSvidError::Expired => "expired",
            JwtSvidError::NotYetValid => "not_yet_valid",
            JwtSvidError::IssuedInFuture => "issued_in_future",
            JwtSvidError::LifetimeTooLong => "lifetime_too_long",
            JwtSvidError::AudienceMissing => "audience_missing",
            JwtSvidError::AudienceMismatch => "audience_mismatch",
        }
    }

    fn message(self) -> &'static str {
        match self {
            JwtSvidError::TooLong => "the JWT-SVID is too long",
            JwtSvidError::JsonSerialization => {
                "the JWT-SVID uses the JWS JSON serialization; only the compact form is accepted"
            }
            JwtSvidError::Malformed => "the JWT-SVID is not a compact JWS of three base64url parts",
            JwtSvidError::MalformedHeader => "the JWT-SVID header is not a valid JSON object",
            JwtSvidError::UnknownHeader => "the JWT-SVID header carries a parameter other than alg, kid and typ",
            JwtSvidError::AlgNotAllowed => "the JWT-SVID algorithm is not allowed (use RS*, PS* or ES* 256/384/512)",
            JwtSvidError::BadTyp => "the JWT-SVID typ must be JWT or JOSE",
            JwtSvidError::MalformedClaims => {
                "the JWT-SVID claims are not valid (exp, nbf, iat must be integers; aud a string or array of strings)"
            }
            JwtSvidError::SubjectMissing => "the JWT-SVID has no sub claim",
            JwtSvidError::SubjectNotSpiffeId => "the JWT-SVID sub claim is not a workload's SPIFFE ID",
            JwtSvidError::UntrustedDomain => "the JWT-SVID's trust domain is not trusted by this gateway",
            JwtSvidError::BundleUnavailable => {
                "the trust bundle of the JWT-SVID's trust domain has not been loaded yet; try again shortly"
            }
            JwtSvidError::KidMissing => "the JWT-SVID header has no kid naming the key that signed it",
            JwtSvidError::UnknownKid => "the JWT-SVID was signed with a key (kid) the trust bundle does not hold",
            JwtSvidError::AlgKeyMismatch => "no key of the trust bundle fits the JWT-SVID's algorithm",
            JwtSvidError::BadSignature => "the JWT-SVID signature does not verify",
            JwtSvidError::ExpMissing => "the JWT-SVID has no exp claim",
            JwtSvidError::Expired => "the JWT-SVID has expired; fetch a fresh one from the Workload API",
            JwtSvidError::NotYetValid => "the JWT-SVID is not valid yet (nbf is in the future)",
            JwtSvidError::IssuedInFuture => "the JWT-SVID was issued in the future (iat); check the issuer's clock",
            JwtSvidError::LifetimeTooLong => "the JWT-SVID lives longer than this gateway accepts",
            JwtSvidError::AudienceMissing => "the JWT-SVID has no aud claim",
            JwtSvidError::AudienceMismatch => "the JWT-SVID audience does not name this gateway",
        }
    }

    pub fn denial(self) -> Denial {
        let reason = match self {
            JwtSvidError::UntrustedDomain => Reason::UntrustedDomain,
            JwtSvidError::BundleUnavailable => Reason::BundleUnavailable,
            _ => Reason::InvalidSvid,
        };
        Denial::new(reason, self.message()).with_detail(self.detail())
    }
}

impl std::fmt::Display for JwtSvidError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

type Result<T> = std::result::Result<T, JwtSvidError>;

/// Validates `token` against the trust domains' JWT authorities.
pub fn validate(
    token: &str,
    config: &JwtSvidConfig,
    trust: &TrustStore,
    verifier: &dyn SignatureVerifier,
    now_secs: u64,
) -> Result<JwtSvid> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtSvidError::TooLong);
    }
    if token.trim_start().starts_with('{') {
        return Err(JwtSvidError::JsonSerialization);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtSvidError::Malformed);
    };
    let header = decode_object(header_b64, JwtSvidError::MalformedHeader)?;
    let (alg, kid) = check_header(&header)?;
    let claims = decode_object(claims_b64, JwtSvidError::MalformedClaims)?;

    let spiffe_id = match claims.get("sub") {
        None => return Err(JwtSvidError::SubjectMissing),
        // A workload's ID: a trust domain's own ID (no path) names no
        // workload (JWT-SVID §3.1; X509-SVID §3.1 says so for certificates).
        Some(Value::String(sub)) => match SpiffeId::parse(sub) {
            Ok(id) if !id.path().is_empty() => id,
            _ => return Err(JwtSvidError::SubjectNotSpiffeId),
        },
        Some(_) => return Err(JwtSvidError::SubjectNotSpiffeId),
    };
    let domain = trust.domain(spiffe_id.trust_domain()).ok_or(JwtSvidError::UntrustedDomain)?;
    if !domain.available {
        return Err(JwtSvidError::BundleUnavailable);
    }
    let key = signing_key(&domain.keys, alg, &kid)?;

    let times = Times::read(&claims)?;
    let audiences = read_audiences(&claims)?;
    let jti = match claims.get("jti") {
        None => None,
        Some(Value::String(jti)) => Some(jti.clone()),
        Some(_) => return Err(JwtSvidError::MalformedClaims),
    };

    let signature = URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| JwtSvidError::Malformed)?;
    let signed =
        SignedToken { signing_input: &token[..header_b64.len() + 1 + claims_b64.len()], signature: &signature, alg };
    // A signature of the wrong length is refused before any verifier sees
    // it (JWS fixes it: 2 × the coordinate for ECDSA, the modulus for RSA).
    if signature.len() != key.signature_len() || !verifier.verify(&signed, key) {
        return Err(JwtSvidError::BadSignature);
    }

    times.check(config, now_secs)?;
    match audiences {
        None => return Err(JwtSvidError::AudienceMissing),
        Some(auds) if !auds.iter().any(|a| config.audiences.iter().any(|ours| ours == a)) => {
            return Err(JwtSvidError::AudienceMismatch)
        }
        Some(_) => {}
    }
    let (kept, unread_claims) = kept_claims(&claims);
    Ok(JwtSvid { spiffe_id, kid, exp: times.exp, nbf: times.nbf, iat: times.iat, jti, claims: kept, unread_claims })
}

fn decode_object(part: &str, malformed: JwtSvidError) -> Result<Object> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtSvidError::Malformed)?;
    json::object(&bytes).map_err(|_| malformed)
}

/// Returns the algorithm and the `kid` (required: see docs/identity.md);
/// `typ`, if present, must be `JWT` or `JOSE`.
fn check_header(header: &Object) -> Result<(Alg, String)> {
    if header.keys().any(|n| !ALLOWED_HEADER.contains(&n.as_str())) {
        return Err(JwtSvidError::UnknownHeader);
    }
    let alg = match header.get("alg") {
        Some(Value::String(name)) => Alg::from_name(name).ok_or(JwtSvidError::AlgNotAllowed)?,
        Some(_) => return Err(JwtSvidError::MalformedHeader),
        None => return Err(JwtSvidError::AlgNotAllowed),
    };
    let kid = match header.get("kid") {
        None => return Err(JwtSvidError::KidMissing),
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        Some(_) => return Err(JwtSvidError::MalformedHeader),
    };
    match header.get("typ") {
        None => {}
        Some(Value::String(t)) if t == "JWT" || t == "JOSE" => {}
        Some(_) => return Err(JwtSvidError::BadTyp),
    }
    Ok((alg, kid))
}

/// The key `kid` names, if it fits the algorithm.
fn signing_key<'k>(keys: &'k [JwtKey], alg: Alg, kid: &str) -> Result<&'k JwtKey> {
    let key = keys.iter().find(|k| k.kid == kid).ok_or(JwtSvidError::UnknownKid)?;
    if alg.fits(&key.key) && key.alg.is_none_or(|pinned| pinned == alg) {
        Ok(key)
    } else {
        Err(JwtSvidError::AlgKeyMismatch)
    }
}

struct Times {
    exp: u64,
    nbf: Option<u64>,
    iat: Option<u64>,
}

impl Times {
    fn read(claims: &Object) -> Result<Times> {
        // NumericDate: an integer (the JWT-SVID schema), also when written
        // `1.0`; a date before 1970 is 0. A fraction, or a number beyond
        // 64 bits, is malformed.
        let numeric = |name: &str| -> Result<Option<u64>> {
            let Some(v) = claims.get(name) else { return Ok(None) };
            if let Some(n) = v.as_u64() {
                return Ok(Some(n));
            }
            if v.as_i64().is_some() {
                return Ok(Some(0));
            }
            match v.as_f64() {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(f) if f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f.max(0.0) as u64)),
                _ => Err(JwtSvidError::MalformedClaims),
            }
        };
        let exp = numeric("exp")?.ok_or(JwtSvidError::ExpMissing)?;
        Ok(Times { exp, nbf: numeric("nbf")?, iat: numeric("iat")? })
    }

    fn check(&self, config: &JwtSvidConfig, now: u64) -> Result<()> {
        let leeway = config.leeway_seconds;
        if now >= self.exp.saturating_add(leeway) {
            return Err(JwtSvidError::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(JwtSvidError::NotYetValid);
        }
        if self.iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(JwtSvidError::IssuedInFuture);
        }
        // Without iat, the lifetime left is what can be bounded.
        let start = self.iat.unwrap_or(now);
        if self.exp.saturating_sub(start) > config.max_lifetime_seconds {
            return Err(JwtSvidError::LifetimeTooLong);
        }
        Ok(())
    }
}

fn read_audiences(claims: &Object) -> Result<Option<Vec<String>>> {
    match claims.get("aud") {
        None => Ok(None),
        Some(Value::String(a)) => Ok(Some(vec![a.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or(JwtSvidError::MalformedClaims))
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(JwtSvidError::MalformedClaims),
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
