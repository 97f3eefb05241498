//! A handshake-era session bound to the workload that opened it.
//!
//! The server's `Mcp-Session-Id` reaches the client as `<id>.mg1.<mac>`:
//! the MAC is HMAC-SHA256, under the provider's session key, over the
//! provider, the SPIFFE ID of the workload that initialized the session,
//! and the id. A later request's session must carry the MAC for the
//! workload calling now: the check needs no shared state, so it holds
//! across workers and replicas, and a session another workload opened,
//! forged or altered is "not found".

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::util::digest::{equal_in_constant_time, hmac_sha256};

/// Between the server's id and the MAC.
const MARK: &str = ".mg1.";
/// Longest session id handled (the spec's ids are short).
pub const MAX_SESSION_ID: usize = 512;
/// Shortest session key.
pub const MIN_KEY_BYTES: usize = 32;

fn mac(key: &[u8], provider: &str, workload: &str, id: &str) -> [u8; 32] {
    hmac_sha256(
        key,
        &[b"modelgate-mcp-session-v1\0", provider.as_bytes(), b"\0", workload.as_bytes(), b"\0", id.as_bytes()],
    )
}

/// Whether `id` is a session id the spec allows (visible ASCII) and short
/// enough to bind.
fn valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_SESSION_ID && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The session id the client gets for the server's `id`; `None` when the
/// server's id is not one (it then never reaches the client).
pub fn wrap(key: &[u8], provider: &str, workload: &str, id: &str) -> Option<String> {
    valid(id).then(|| format!("{id}{MARK}{}", URL_SAFE_NO_PAD.encode(mac(key, provider, workload, id))))
}

/// The server's id in the session `presented` by `workload`, if that
/// workload was handed it; `None` for anything else.
pub fn unwrap<'a>(key: &[u8], provider: &str, workload: &str, presented: &'a str) -> Option<&'a str> {
    let (id, tag) = presented.rsplit_once(MARK)?;
    if !valid(id) {
        return None;
    }
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    equal_in_constant_time(&tag, &mac(key, provider, workload, id)).then_some(id)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
