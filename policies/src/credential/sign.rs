//! Signing the JWTs the gateway mints ([`mint`](super::mint)): the ES256
//! key, signed with in the VM, and the conversion of a host's DER
//! signature back to JWS form.
//!
//! Which signs — the VM or, in Envoy, the host's BoringSSL through the
//! `sign` foreign function — is the signature seam's choice
//! ([`SignatureVerifier::sign_es256`](crate::identity::svid::SignatureVerifier::sign_es256));
//! verifying is `identity::svid::verify`'s.

/// A P-256 signing key: parsed for signing in the VM, and as PKCS#8 DER
/// for a host that signs.
pub struct MintKey {
    pub key: p256::ecdsa::SigningKey,
    pub pkcs8_der: Vec<u8>,
}

impl MintKey {
    pub fn new(key: p256::ecdsa::SigningKey) -> Option<Self> {
        use p256::pkcs8::EncodePrivateKey as _;
        let pkcs8_der = key.to_pkcs8_der().ok()?.as_bytes().to_vec();
        Some(MintKey { key, pkcs8_der })
    }

    pub fn sign_in_vm(&self, input: &[u8]) -> [u8; 64] {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = self.key.sign(input);
        signature.to_bytes().into()
    }
}

/// An ECDSA signature from DER (`SEQUENCE { INTEGER r, INTEGER s }`, as
/// BoringSSL writes it) to JWS `r || s` with `size`-byte halves.
pub fn ecdsa_raw(der: &[u8], size: usize) -> Option<Vec<u8>> {
    fn integer(input: &[u8]) -> Option<(&[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&len, rest) = rest.split_first()?;
        if tag != 0x02 || len >= 0x80 || rest.len() < usize::from(len) {
            return None;
        }
        Some(rest.split_at(usize::from(len)))
    }
    let (&tag, rest) = der.split_first()?;
    let (len, rest) = match rest.split_first()? {
        (&0x81, rest) => (usize::from(*rest.first()?), &rest[1..]),
        (&len, rest) if len < 0x80 => (usize::from(len), rest),
        _ => return None,
    };
    if tag != 0x30 || rest.len() != len {
        return None;
    }
    let (r, rest) = integer(rest)?;
    let (s, rest) = integer(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let mut out = vec![0u8; 2 * size];
    let (left, right) = out.split_at_mut(size);
    for (value, half) in [(r, left), (s, right)] {
        let value = &value[value.iter().take_while(|b| **b == 0).count()..];
        if value.len() > size {
            return None;
        }
        half[size - value.len()..].copy_from_slice(value);
    }
    Some(out)
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
