//! The one seam where JWT signatures are verified.
//!
//! [`jwt`](super::jwt) makes every header and claim check itself and asks a
//! [`SignatureVerifier`] one question: does this signature over this signing
//! input verify under this key? Keys come ready: each bundle key is parsed
//! once, when the bundle is loaded, into a verifying key (and its DER
//! SubjectPublicKeyInfo for verifiers that take one).
//!
//! Two verifiers answer it: [`PureRustVerifier`] here (RustCrypto's
//! `p256`/`p384`/`p521` and `rsa`), anywhere; and, in Envoy, the filter's
//! host verifier, which lends Envoy's BoringSSL through the
//! `verify_signature` foreign function and falls back to this one for what
//! the host cannot do. A differential test keeps their answers identical.
//!
//! The same seam signs the JWTs the gateway mints (the filter lends
//! Envoy's BoringSSL to both); the signing itself, in the VM, is
//! [`credential::sign`](crate::credential::sign)'s.

use p256::ecdsa::signature::Verifier as _;

use super::bundle::{Alg, JwtKey, ReadyKey};
use crate::credential::sign::MintKey;
use crate::util::der;

/// A compact JWS as the verifier needs it.
#[derive(Clone, Copy, Debug)]
pub struct SignedToken<'a> {
    /// `header.claims`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The decoded signature (JWS form: `r || s` for ECDSA, exactly as long
    /// as the algorithm's; the modulus' length for RSA).
    pub signature: &'a [u8],
    pub alg: Alg,
}

/// The one seam for signatures: verifying SVIDs, and signing the JWTs the
/// gateway mints (in the VM by default; the filter lends Envoy's
/// BoringSSL to both where the host offers it).
pub trait SignatureVerifier {
    /// True only when `token`'s signature verifies under `key` with
    /// `token.alg`. `key` has already been checked to fit `token.alg`, and
    /// the signature's length to fit the key.
    fn verify(&self, token: &SignedToken<'_>, key: &JwtKey) -> bool;

    /// The ES256 signature (`r || s`) of `input` under `key`; in the VM
    /// unless a verifier (the filter's) has the host sign.
    fn sign_es256(&self, key: &MintKey, input: &[u8]) -> [u8; 64] {
        key.sign_in_vm(input)
    }
}

/// Verifies in pure Rust with the keys parsed at load.
#[derive(Clone, Copy, Debug, Default)]
pub struct PureRustVerifier;

impl SignatureVerifier for PureRustVerifier {
    fn verify(&self, token: &SignedToken<'_>, key: &JwtKey) -> bool {
        let msg = token.signing_input.as_bytes();
        let sig = token.signature;
        match (&key.ready, token.alg) {
            (ReadyKey::P256(k), Alg::ES256) => {
                p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            (ReadyKey::P384(k), Alg::ES384) => {
                p384::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
            (ReadyKey::P521(k), Alg::ES512) => {
                p521::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.0.verify(msg, &s).is_ok())
            }
            (ReadyKey::Rsa(k), alg) => verify_rsa(k, alg, msg, sig),
            _ => false,
        }
    }
}

pub(crate) fn verify_rsa(key: &rsa::RsaPublicKey, alg: Alg, msg: &[u8], sig: &[u8]) -> bool {
    use rsa::{pkcs1v15, pss};
    use sha2::{Sha256, Sha384, Sha512};
    let key = key.clone();
    match alg {
        Alg::RS256 => pkcs1(pkcs1v15::VerifyingKey::<Sha256>::new(key), msg, sig),
        Alg::RS384 => pkcs1(pkcs1v15::VerifyingKey::<Sha384>::new(key), msg, sig),
        Alg::RS512 => pkcs1(pkcs1v15::VerifyingKey::<Sha512>::new(key), msg, sig),
        // RFC 7518 §3.5: the salt is as long as the hash.
        Alg::PS256 => pss(pss::VerifyingKey::<Sha256>::new_with_salt_len(key, 32), msg, sig),
        Alg::PS384 => pss(pss::VerifyingKey::<Sha384>::new_with_salt_len(key, 48), msg, sig),
        Alg::PS512 => pss(pss::VerifyingKey::<Sha512>::new_with_salt_len(key, 64), msg, sig),
        Alg::ES256 | Alg::ES384 | Alg::ES512 => false,
    }
}

fn pkcs1(key: impl rsa::signature::Verifier<rsa::pkcs1v15::Signature>, msg: &[u8], sig: &[u8]) -> bool {
    rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| rsa::signature::Verifier::verify(&key, msg, &s).is_ok())
}

fn pss(key: impl rsa::signature::Verifier<rsa::pss::Signature>, msg: &[u8], sig: &[u8]) -> bool {
    rsa::pss::Signature::try_from(sig).is_ok_and(|s| rsa::signature::Verifier::verify(&key, msg, &s).is_ok())
}

/// A JWS ECDSA signature (`r || s`, each `half` bytes) as the DER
/// `Ecdsa-Sig-Value` BoringSSL verifies: minimal, unsigned INTEGERs.
pub fn ecdsa_der(signature: &[u8]) -> Option<Vec<u8>> {
    if signature.is_empty() || !signature.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = signature.split_at(signature.len() / 2);
    let integer = |v: &[u8]| {
        let v = &v[v.iter().take_while(|b| **b == 0).count()..];
        let mut out = vec![0x02];
        let pad = v.first().is_none_or(|b| *b >= 0x80);
        der::len(&mut out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let (r, s) = (integer(r), integer(s));
    let mut out = vec![0x30];
    der::len(&mut out, r.len() + s.len());
    out.extend_from_slice(&r);
    out.extend_from_slice(&s);
    Some(out)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
