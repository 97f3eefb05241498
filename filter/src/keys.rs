//! The one shared-data key scheme: every key modelgate writes in Envoy's
//! shared data starts `modelgate.`, and whatever names a thing in it (a
//! bundle endpoint, a credential key's slot) is a [`digest`]: the first 16
//! hex digits of a SHA-256. Shared data has no delete, so every family of
//! keys is bounded.

/// The first 16 hex digits (64 bits) of the SHA-256 of `parts`, each ended
/// by a NUL so that no two lists of parts read the same.
pub fn digest(parts: &[&str]) -> String {
    let mut text = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        text.push_str(part);
        text.push('\0');
    }
    let mut hex = modelgate_policies::sha256_hex(text.as_bytes());
    hex.truncate(16);
    hex
}

/// [`digest`] as a number, to pick one of N slots.
pub fn digest_u64(parts: &[&str]) -> u64 {
    u64::from_str_radix(&digest(parts), 16).unwrap_or(0)
}

/// The bundle a trust domain's endpoint published:
/// `modelgate.bundle.<domain>.<digest of cluster, authority, path>`; its
/// lease is the same with `.lease`.
pub fn bundle(domain: &str, cluster: &str, authority: &str, path: &str) -> String {
    format!("modelgate.bundle.{domain}.{}", digest(&[cluster, authority, path]))
}

/// A configuration's token keys: `modelgate.token.<generation>`, the first
/// 16 hex digits of the configuration text's digest; its slots are
/// `<namespace>.<slot>` (and `.lease`), marked in `<namespace>.slots`.
pub fn token_namespace(generation: &str) -> String {
    format!("modelgate.token.{}", generation.get(..16).unwrap_or(generation))
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
