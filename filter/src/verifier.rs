//! Signatures verified by Envoy's BoringSSL, lent to wasm through the
//! `verify_signature` foreign function (Envoy ≥ 1.40): about 55 µs for an
//! ES256 signature against about 400 µs in the VM. RSA-PSS, which the host
//! verifies only with PKCS#1 v1.5 padding, and hosts without the function,
//! fall back to the pure-Rust verifier. Whether the host offers it is
//! learnt on the first call and kept for the VM.

use std::cell::Cell;

use modelgate_policies::svid::verify::{ecdsa_der, SignedToken};
use modelgate_policies::svid::{Alg, JwtKey, PureRustVerifier, SignatureVerifier};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, Status};

use crate::host;

#[derive(Default)]
pub struct HostVerifier {
    /// `None` until the first call tells.
    available: Cell<Option<bool>>,
}

impl HostVerifier {
    pub fn new(enabled: bool) -> Self {
        HostVerifier { available: Cell::new((!enabled).then_some(false)) }
    }
}

impl SignatureVerifier for HostVerifier {
    fn verify(&self, token: &SignedToken<'_>, key: &JwtKey) -> bool {
        let hash = match token.alg {
            Alg::ES256 | Alg::RS256 => "sha256",
            Alg::ES384 | Alg::RS384 => "sha384",
            Alg::ES512 | Alg::RS512 => "sha512",
            Alg::PS256 | Alg::PS384 | Alg::PS512 => return PureRustVerifier.verify(token, key),
        };
        if self.available.get() == Some(false) {
            return PureRustVerifier.verify(token, key);
        }
        let signature = match token.alg {
            Alg::ES256 | Alg::ES384 | Alg::ES512 => match ecdsa_der(token.signature) {
                Some(der) => der,
                None => return false,
            },
            _ => token.signature.to_vec(),
        };
        let args = arguments(hash, &key.spki, &signature, token.signing_input.as_bytes());
        match hostcalls::call_foreign_function("verify_signature", Some(&args)) {
            Ok(result) => {
                self.available.set(Some(true));
                result.is_some_and(|r| verified(&r))
            }
            Err(Status::NotFound) => {
                host::log(LogLevel::Info, "modelgate: the host has no verify_signature; verifying in the VM");
                self.available.set(Some(false));
                PureRustVerifier.verify(token, key)
            }
            // The host could not read the key or the signature: refused.
            Err(_) => false,
        }
    }
}

/// `VerifySignatureArguments { hash_function = 1; public_key = 2;
/// signature = 3; text = 4 }`, protobuf-encoded.
fn arguments(hash: &str, spki: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hash.len() + spki.len() + signature.len() + text.len() + 16);
    for (field, value) in [(1u8, hash.as_bytes()), (2, spki), (3, signature), (4, text)] {
        out.push(field << 3 | 2);
        varint(&mut out, value.len() as u64);
        out.extend_from_slice(value);
    }
    out
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// `VerifySignatureResult.result` (field 1, a bool; absent when false).
fn verified(result: &[u8]) -> bool {
    let mut i = 0;
    while i < result.len() {
        let tag = result[i];
        i += 1;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                let mut value = 0u64;
                let mut shift = 0;
                while let Some(b) = result.get(i) {
                    i += 1;
                    value |= u64::from(b & 0x7f) << shift.min(63);
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                if field == 1 {
                    return value == 1;
                }
            }
            2 => {
                let mut len = 0usize;
                let mut shift = 0;
                while let Some(b) = result.get(i) {
                    i += 1;
                    len |= usize::from(b & 0x7f) << shift.min(56);
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                i = i.saturating_add(len);
            }
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_arguments_as_protobuf() {
        let args = arguments("sha256", &[1, 2], &[3], &[0; 200]);
        assert_eq!(&args[..8], b"\x0a\x06sha256");
        assert_eq!(&args[8..12], &[0x12, 2, 1, 2]);
        assert_eq!(&args[12..15], &[0x1a, 1, 3]);
        assert_eq!(&args[15..18], &[0x22, 0xc8, 0x01]);
    }

    #[test]
    fn reads_the_result() {
        assert!(verified(&[0x08, 0x01]));
        assert!(!verified(&[]));
        assert!(!verified(&[0x12, 0x03, b'b', b'a', b'd']));
        assert!(verified(&[0x12, 0x00, 0x08, 0x01]));
        assert!(!verified(&[0x08, 0x00]));
    }
}
