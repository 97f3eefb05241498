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
use super::trust::TrustStore;
use super::verify::SignatureVerifier;
use super::x509::{self, X509Svid, X509SvidError};
use crate::config::svid::JwtSvidConfig;

/// A SHA-256 digest: what both caches are keyed by.
pub type Key = [u8; 32];

pub fn digest(bytes: &[u8]) -> Key {
    Sha256::digest(bytes).into()
}

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

struct Entry<V> {
    key: Key,
    value: V,
    /// Neighbours in recency order (towards `head` is more recent).
    newer: usize,
    older: usize,
}

/// A least-recently-used map of digests to values, bounded, O(1).
struct Lru<V> {
    map: HashMap<Key, usize, BuildHasherDefault<DigestHasher>>,
    slots: Vec<Entry<V>>,
    head: usize,
    tail: usize,
    capacity: usize,
}

/// A JWT-SVID verified under a bundle generation.
struct Verified {
    svid: Rc<JwtSvid>,
    generation: u64,
}

/// Bounded caches of validated SVIDs: JWT-SVIDs by token, X.509-SVIDs by
/// certificate (both keyed by SHA-256).
pub struct SvidCache {
    lru: RefCell<Lru<Verified>>,
    x509: RefCell<Lru<Rc<X509Svid>>>,
}

impl SvidCache {
    /// Caches of at most `capacity` entries each (0: no caching).
    pub fn new(capacity: usize) -> Self {
        SvidCache { lru: RefCell::new(Lru::new(capacity)), x509: RefCell::new(Lru::new(capacity)) }
    }

    pub fn len(&self) -> usize {
        self.lru.try_borrow().map_or(0, |l| l.map.len())
    }

    /// JWT-SVIDs and X.509-SVIDs kept, for the gauge.
    pub fn entries(&self) -> usize {
        self.len() + self.x509.try_borrow().map_or(0, |l| l.map.len())
    }

    /// Validates a leaf certificate as an X.509-SVID, from the cache when
    /// it holds one under `key` (the SHA-256 of its DER); `der` reads the
    /// certificate only on a miss. The validity period is checked against
    /// now on every use. A `forwarded` leaf (one a trusted hop passed on)
    /// must also be issued by its trust domain's X.509 authorities, when
    /// they are configured; the cache lives as long as the configuration.
    pub fn validate_x509(
        &self,
        key: Key,
        der: impl FnOnce() -> Result<Vec<u8>, X509SvidError>,
        forwarded: bool,
        trust: &TrustStore,
        now_secs: u64,
    ) -> Result<Rc<X509Svid>, X509SvidError> {
        let hit = self.x509.try_borrow_mut().ok().and_then(|mut lru| lru.get(&key).cloned());
        if let Some(svid) = hit {
            if now_secs < svid.not_before {
                return Err(X509SvidError::NotYetValid);
            }
            if now_secs > svid.not_after {
                return Err(X509SvidError::Expired);
            }
            return Ok(svid);
        }
        let known = |td: &str| trust.knows(td);
        let der = der()?;
        if digest(&der) != key {
            // The certificate is not the one the digest names.
            return Err(X509SvidError::Unreadable);
        }
        let authorities = |td: &str| if forwarded { trust.x509_authorities(td) } else { &[] };
        let svid = Rc::new(x509::validate_forwarded(&der, &known, authorities, now_secs)?);
        if let Ok(mut lru) = self.x509.try_borrow_mut() {
            lru.insert(key, Rc::clone(&svid));
        }
        Ok(svid)
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
        trust: &TrustStore,
        verifier: &dyn SignatureVerifier,
        now_secs: u64,
    ) -> Result<Rc<JwtSvid>, JwtSvidError> {
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(JwtSvidError::TooLong);
        }
        let key = digest(token.as_bytes());
        if let Some(svid) = self.get(&key, trust) {
            svid.check_times(config, now_secs)?;
            return Ok(svid);
        }
        let svid = Rc::new(jwt::validate(token, config, trust, verifier, now_secs)?);
        if let Some(generation) = generation(trust, &svid) {
            self.insert(key, Rc::clone(&svid), generation);
        }
        Ok(svid)
    }

    /// Holds `svid` as the verified SVID of `token`, under the bundle in
    /// force: how `explain` describes a caller to the flow's own identity
    /// step. The gateway never calls it.
    pub(crate) fn hold_jwt(&self, token: &str, svid: JwtSvid, trust: &TrustStore) {
        let svid = Rc::new(svid);
        if let Some(generation) = generation(trust, &svid) {
            self.insert(digest(token.as_bytes()), svid, generation);
        }
    }

    /// Holds `svid` as the validated X.509-SVID of the certificate `der`
    /// (for `explain`, as [`SvidCache::hold_jwt`]).
    pub(crate) fn hold_x509(&self, der: &[u8], svid: X509Svid) {
        if let Ok(mut lru) = self.x509.try_borrow_mut() {
            lru.insert(digest(der), Rc::new(svid));
        }
    }

    fn get(&self, key: &Key, trust: &TrustStore) -> Option<Rc<JwtSvid>> {
        let mut lru = self.lru.try_borrow_mut().ok()?;
        let entry = lru.get(key)?;
        if generation(trust, &entry.svid) != Some(entry.generation) {
            // Verified under a bundle that has since changed: stale.
            return None;
        }
        Some(Rc::clone(&entry.svid))
    }

    fn insert(&self, key: Key, svid: Rc<JwtSvid>, generation: u64) {
        if let Ok(mut lru) = self.lru.try_borrow_mut() {
            lru.insert(key, Verified { svid, generation });
        }
    }
}

/// The current generation of the bundle of the SVID's trust domain.
fn generation(trust: &TrustStore, svid: &JwtSvid) -> Option<u64> {
    trust.domain(svid.spiffe_id.trust_domain()).filter(|d| d.available).map(|d| d.generation)
}

impl<V> Lru<V> {
    fn new(capacity: usize) -> Self {
        Lru { map: HashMap::default(), slots: Vec::new(), head: NONE, tail: NONE, capacity }
    }

    /// The value under `key`, now the most recently used.
    fn get(&mut self, key: &Key) -> Option<&V> {
        let slot = *self.map.get(key)?;
        self.touch(slot);
        self.slots.get(slot).map(|e| &e.value)
    }

    fn insert(&mut self, key: Key, value: V) {
        if self.capacity == 0 {
            return;
        }
        if let Some(&slot) = self.map.get(&key) {
            if let Some(entry) = self.slots.get_mut(slot) {
                entry.value = value;
            }
            self.touch(slot);
            return;
        }
        let slot = if self.slots.len() < self.capacity {
            self.slots.push(Entry { key, value, newer: NONE, older: NONE });
            self.slots.len() - 1
        } else {
            // Reuse the least recently used slot.
            let slot = self.tail;
            self.unlink(slot);
            let Some(entry) = self.slots.get_mut(slot) else { return };
            let old = std::mem::replace(&mut entry.key, key);
            entry.value = value;
            self.map.remove(&old);
            slot
        };
        self.map.insert(key, slot);
        self.push_front(slot);
    }

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
