//! The one seam where JWT signatures are verified.
//!
//! [`jwt`](super::jwt) makes every header and claim check itself and asks a
//! [`SignatureVerifier`] one question: does this signature over this signing
//! input verify under this key? The pure-Rust verifier answers it anywhere;
//! in Envoy a verifier backed by the host's BoringSSL (`verify_signature`)
//! can answer it faster, and a cache of verified tokens can sit in front.

use jwt_simple::prelude::*;

use super::bundle::{Alg, PublicKey};

/// A compact JWS as the verifier needs it.
#[derive(Clone, Copy, Debug)]
pub struct SignedToken<'a> {
    /// The whole compact serialization, `header.claims.signature`.
    pub compact: &'a str,
    /// `header.claims`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The decoded signature (JWS form: `r || s` for ECDSA).
    pub signature: &'a [u8],
    pub alg: Alg,
    /// Whether the header says `typ: JOSE` (as opposed to `JWT` or none).
    pub typ_jose: bool,
}

pub trait SignatureVerifier {
    /// True only when `token`'s signature verifies under `key` with
    /// `token.alg`. `key` has already been checked to fit `token.alg`.
    fn verify(&self, token: &SignedToken<'_>, key: &PublicKey, now_secs: u64) -> bool;
}

/// Verifies in pure Rust: `jwt-simple` for RS*, PS*, ES256 and ES384, the
/// `p521` crate for ES512 (which `jwt-simple` lacks).
#[derive(Clone, Copy, Debug, Default)]
pub struct PureRustVerifier;

impl SignatureVerifier for PureRustVerifier {
    fn verify(&self, token: &SignedToken<'_>, key: &PublicKey, now_secs: u64) -> bool {
        match (token.alg, key) {
            (Alg::ES512, PublicKey::Ec { point, .. }) => verify_es512(token, point),
            (alg, PublicKey::Ec { point, .. }) => verify_jwt_simple_ec(alg, token, point, now_secs),
            (alg, PublicKey::Rsa { n, e }) => verify_jwt_simple_rsa(alg, token, n, e, now_secs),
        }
    }
}

/// `jwt-simple` verifies a whole token and checks claims too. Our own checks
/// are the ones that count (and run first), so its time checks are given the
/// same clock and room enough never to disagree; its `typ` check is told the
/// `typ` the token carries, which JWT-SVID allows to be `JOSE`.
fn options(token: &SignedToken<'_>, now_secs: u64) -> VerificationOptions {
    VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(now_secs)),
        time_tolerance: Some(Duration::from_days(365)),
        accept_future: true,
        required_signature_type: token.typ_jose.then(|| "JOSE".to_string()),
        max_token_length: None,
        ..Default::default()
    }
}

fn verify_jwt_simple_ec(alg: Alg, token: &SignedToken<'_>, point: &[u8], now: u64) -> bool {
    let opts = Some(options(token, now));
    match alg {
        Alg::ES256 => ES256PublicKey::from_bytes(point)
            .and_then(|k| k.verify_token::<NoCustomClaims>(token.compact, opts))
            .is_ok(),
        Alg::ES384 => ES384PublicKey::from_bytes(point)
            .and_then(|k| k.verify_token::<NoCustomClaims>(token.compact, opts))
            .is_ok(),
        _ => false,
    }
}

fn verify_jwt_simple_rsa(alg: Alg, token: &SignedToken<'_>, n: &[u8], e: &[u8], now: u64) -> bool {
    let opts = Some(options(token, now));
    let c = token.compact;
    let result = match alg {
        Alg::RS256 => RS256PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(c, opts)),
        Alg::RS384 => RS384PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(c, opts)),
        Alg::RS512 => RS512PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(c, opts)),
        Alg::PS256 => PS256PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(c, opts)),
        Alg::PS384 => PS384PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(c, opts)),
        Alg::PS512 => PS512PublicKey::from_components(n, e).and_then(|k| k.verify_token::<NoCustomClaims>(c, opts)),
        _ => return false,
    };
    result.is_ok()
}

fn verify_es512(token: &SignedToken<'_>, point: &[u8]) -> bool {
    use p521::ecdsa::signature::Verifier as _;
    let Ok(key) = p521::ecdsa::VerifyingKey::from_sec1_bytes(point) else {
        return false;
    };
    let Ok(signature) = p521::ecdsa::Signature::from_slice(token.signature) else {
        return false;
    };
    key.verify(token.signing_input.as_bytes(), &signature).is_ok()
}
