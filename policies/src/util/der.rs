//! DER lengths, for the little DER the crate writes itself (a bundle key's
//! SubjectPublicKeyInfo, an ECDSA `Ecdsa-Sig-Value`).

/// Appends a DER length (short or long form).
pub fn len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}
