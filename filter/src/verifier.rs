//! Signatures verified by Envoy's BoringSSL, lent to wasm through the
//! `verify_signature` foreign function (Envoy ≥ 1.40): about 55 µs for an
//! ES256 signature against about 400 µs in the VM. RSA-PSS, which the host
//! verifies only with PKCS#1 v1.5 padding, and hosts without the function,
//! fall back to the pure-Rust verifier. Whether the host offers it is
//! learnt on the first call and kept for the VM.
//!
//! Minted JWTs are signed the same way, through the `sign` foreign
//! function where the host has it, in the VM otherwise.

use std::cell::Cell;

use modelgate_policies::{ecdsa_der, ecdsa_raw, MintKey, SignedToken};
use modelgate_policies::{Alg, JwtKey, PureRustVerifier, SignatureVerifier};
use proxy_wasm::types::LogLevel;

use crate::host::{self, HostStatus};

#[derive(Default)]
pub struct HostVerifier {
    /// `None` until the first call tells.
    available: Cell<Option<bool>>,
    /// The same, for `sign`.
    signs: Cell<Option<bool>>,
}

impl HostVerifier {
    pub fn new(enabled: bool) -> Self {
        HostVerifier {
            available: Cell::new((!enabled).then_some(false)),
            signs: Cell::new((!enabled).then_some(false)),
        }
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
        match host::foreign_function("verify_signature", &args) {
            Ok(result) => {
                self.available.set(Some(true));
                result.is_some_and(|r| verified(&r))
            }
            Err(HostStatus::NOT_FOUND) => {
                host::log(LogLevel::Info, "modelgate: the host has no verify_signature; verifying in the VM");
                self.available.set(Some(false));
                PureRustVerifier.verify(token, key)
            }
            // The host could not read the key or the signature: refused.
            Err(_) => false,
        }
    }

    fn sign_es256(&self, key: &MintKey, input: &[u8]) -> [u8; 64] {
        if self.signs.get() == Some(false) {
            return key.sign_in_vm(input);
        }
        // `SignArguments { hash_function = 1; private_key = 2 (PKCS#8 DER); text = 3 }`.
        let args = fields(&[(1, b"sha256"), (2, &key.pkcs8_der), (3, input)]);
        let signed = match host::foreign_function("sign", &args) {
            Ok(Some(result)) => {
                self.signs.set(Some(true));
                field_bytes(&result, 2).and_then(|der| ecdsa_raw(&der, 32))
            }
            Err(HostStatus::NOT_FOUND) => {
                host::log(LogLevel::Info, "modelgate: the host has no sign; minting in the VM");
                self.signs.set(Some(false));
                None
            }
            _ => None,
        };
        match signed.and_then(|raw| <[u8; 64]>::try_from(raw).ok()) {
            Some(raw) => raw,
            None => key.sign_in_vm(input),
        }
    }
}

/// `VerifySignatureArguments { hash_function = 1; public_key = 2;
/// signature = 3; text = 4 }`, protobuf-encoded.
fn arguments(hash: &str, spki: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    fields(&[(1, hash.as_bytes()), (2, spki), (3, signature), (4, text)])
}

/// Length-delimited protobuf fields, in order.
fn fields(values: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.iter().map(|(_, v)| v.len() + 6).sum());
    for (field, value) in values {
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
    let mut ok = false;
    walk(result, &mut |field, value| {
        if let (1, Value::Varint(v)) = (field, value) {
            ok = v == 1;
        }
    });
    ok
}

/// A length-delimited field's bytes (`SignResult.signature` is field 2),
/// when `result` (field 1) says the host succeeded.
fn field_bytes(message: &[u8], wanted: u8) -> Option<Vec<u8>> {
    let (mut ok, mut found) = (false, None);
    walk(message, &mut |field, value| match (field, value) {
        (1, Value::Varint(v)) => ok = v == 1,
        (f, Value::Bytes(b)) if f == wanted => found = Some(b.to_vec()),
        _ => {}
    });
    found.filter(|_| ok)
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Calls `visit` for each field of a protobuf message (varints and
/// length-delimited fields; anything else ends the walk).
fn walk<'a>(message: &'a [u8], visit: &mut dyn FnMut(u8, Value<'a>)) {
    let result = message;
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
                visit(field, Value::Varint(value));
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
                let end = i.saturating_add(len).min(result.len());
                visit(field, Value::Bytes(&result[i..end]));
                i = i.saturating_add(len);
            }
            _ => return,
        }
    }
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
