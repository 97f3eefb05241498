//! SHA-256 in lowercase hex: the audit chain, the config's digest, a
//! forwarded certificate's digest, cache keys.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
        s
    })
}
