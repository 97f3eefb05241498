//! The verified-SVID cache: one per worker VM, so a workload that presents
//! the same JWT-SVID on every call pays for its signature once.
//!
//! - Keyed by the SHA-256 of the whole compact token, signature included: a
//!   token that differs in any byte is another key, and is validated anew.
//! - Holds what policy needs ([`JwtSvid`]: SPIFFE ID, kid, exp, nbf, iat,
//!   jti, claims) — never the token.
//! - On every hit the time checks run again against now: a cached token is
//!   refused once it expires.
//! - Each entry is tagged with the generation of the trust bundle it was
//!   verified under; after the bundle changes the entry is never used.
//! - Bounded: least recently used entries are evicted, in O(1).
//! - Only successes are cached. A refused token is validated again each
//!   time (its structural checks are cheap, and caching refusals would let
//!   garbage evict the tokens of real workloads).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::jwt::{self, JwtSvid, JwtSvidError};
use super::verify::SignatureVerifier;
use crate::config::{JwtSvidConfig, TrustDomainConfig};

type Key = [u8; 32];

/// A SHA-256 digest is already uniformly distributed and chosen by no
/// one: its first eight bytes are the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
}

const NONE: usize = usize::MAX;

struct Entry {
    key: Key,
    svid: Rc<JwtSvid>,
    generation: u64,
    /// Neighbours in recency order (towards `head` is more recent).
    newer: usize,
    older: usize,
}

struct Lru {
    map: HashMap<Key, usize, BuildHasherDefault<DigestHasher>>,
    slots: Vec<Entry>,
    head: usize,
    tail: usize,
    capacity: usize,
}

/// A bounded cache of validated JWT-SVIDs.
pub struct SvidCache {
    lru: RefCell<Lru>,
}

impl SvidCache {
    /// A cache of at most `capacity` entries (0: no caching).
    pub fn new(capacity: usize) -> Self {
        SvidCache {
            lru: RefCell::new(Lru { map: HashMap::default(), slots: Vec::new(), head: NONE, tail: NONE, capacity }),
        }
    }

    pub fn len(&self) -> usize {
        self.lru.try_borrow().map_or(0, |l| l.map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Validates `token`, from the cache when it holds it (verified under
    /// the trust bundle's current generation), else in full — and caches a
    /// success. Either way the time checks run against `now_secs`.
    pub fn validate(
        &self,
        token: &str,
        config: &JwtSvidConfig,
        domains: &[TrustDomainConfig],
        verifier: &dyn SignatureVerifier,
        now_secs: u64,
    ) -> Result<Rc<JwtSvid>, JwtSvidError> {
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(JwtSvidError::TooLong);
        }
        let key: Key = Sha256::digest(token.as_bytes()).into();
        if let Some(svid) = self.get(&key, domains) {
            svid.check_times(config, now_secs)?;
            return Ok(svid);
        }
        let svid = Rc::new(jwt::validate(token, config, domains, verifier, now_secs)?);
        if let Some(generation) = generation(domains, &svid) {
            self.insert(key, Rc::clone(&svid), generation);
        }
        Ok(svid)
    }

    fn get(&self, key: &Key, domains: &[TrustDomainConfig]) -> Option<Rc<JwtSvid>> {
        let mut lru = self.lru.try_borrow_mut().ok()?;
        let slot = *lru.map.get(key)?;
        let entry = lru.slots.get(slot)?;
        if generation(domains, &entry.svid) != Some(entry.generation) {
            // Verified under a bundle that has since changed: stale.
            return None;
        }
        let svid = Rc::clone(&entry.svid);
        lru.touch(slot);
        Some(svid)
    }

    fn insert(&self, key: Key, svid: Rc<JwtSvid>, generation: u64) {
        let Ok(mut lru) = self.lru.try_borrow_mut() else { return };
        if lru.capacity == 0 {
            return;
        }
        if let Some(&slot) = lru.map.get(&key) {
            if let Some(entry) = lru.slots.get_mut(slot) {
                entry.svid = svid;
                entry.generation = generation;
            }
            lru.touch(slot);
            return;
        }
        let slot = if lru.slots.len() < lru.capacity {
            lru.slots.push(Entry { key, svid, generation, newer: NONE, older: NONE });
            lru.slots.len() - 1
        } else {
            // Reuse the least recently used slot.
            let slot = lru.tail;
            lru.unlink(slot);
            let Some(entry) = lru.slots.get_mut(slot) else { return };
            let old = std::mem::replace(&mut entry.key, key);
            entry.svid = svid;
            entry.generation = generation;
            lru.map.remove(&old);
            slot
        };
        lru.map.insert(key, slot);
        lru.push_front(slot);
    }
}

/// The current generation of the bundle of the SVID's trust domain.
fn generation(domains: &[TrustDomainConfig], svid: &JwtSvid) -> Option<u64> {
    domains.iter().find(|d| d.name.as_str() == svid.spiffe_id.trust_domain()).map(|d| d.generation)
}

impl Lru {
    fn unlink(&mut self, slot: usize) {
        let (newer, older) = match self.slots.get(slot) {
            Some(e) => (e.newer, e.older),
            None => return,
        };
        match self.slots.get_mut(newer) {
            Some(e) => e.older = older,
            None => self.head = older,
        }
        match self.slots.get_mut(older) {
            Some(e) => e.newer = newer,
            None => self.tail = newer,
        }
    }

    fn push_front(&mut self, slot: usize) {
        let head = self.head;
        if let Some(e) = self.slots.get_mut(slot) {
            e.newer = NONE;
            e.older = head;
        }
        if let Some(e) = self.slots.get_mut(head) {
            e.newer = slot;
        }
        self.head = slot;
        if self.tail == NONE {
            self.tail = slot;
        }
    }

    fn touch(&mut self, slot: usize) {
        if self.head != slot {
            self.unlink(slot);
            self.push_front(slot);
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
