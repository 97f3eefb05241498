//! The verified-SVID cache: one per worker VM, so a workload that presents
//! the same JWT-SVID on every call pays for its signature once.
//!
//! - Keyed by the whole compact token, signature included, hashed with
//!   SipHash under this cache's own random key: a token that differs in any
//!   byte is another key, and is validated anew. A hit compares the whole
//!   token, so a hash collision can cost a miss, never a wrong identity;
//!   the key is secret, so nobody can aim tokens at one bucket. (SHA-256
//!   of the token, the key before, cost more than the rest of a hit in the
//!   VM.)
//! - Holds what policy needs ([`JwtSvid`]: SPIFFE ID, kid, exp, nbf, iat,
//!   jti, claims) and the token it was verified from, the key. Only tokens
//!   that verified are held; their bytes are bounded too
//!   ([`MAX_CACHED_TOKEN_BYTES`] each, [`TOKEN_BYTES_PER_ENTRY`] on
//!   average): a longer token is validated on every use.
//! - On every hit the time checks run again against now: a cached token is
//!   refused once it expires.
//! - Each entry is tagged with the generation of the trust bundle it was
//!   verified under; after the bundle changes the entry is never used.
//! - Bounded: least recently used entries are evicted, in O(1).
//! - Only successes are cached. A refused token is validated again each
//!   time (its structural checks are cheap, and caching refusals would let
//!   garbage evict the tokens of real workloads).

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::jwt::{self, JwtSvid, JwtSvidError};
use super::trust::TrustStore;
use super::verify::SignatureVerifier;
use super::x509::{self, X509Svid, X509SvidError};
use crate::config::svid::JwtSvidConfig;

/// A SHA-256 digest: what the X.509-SVID cache is keyed by (Envoy gives
/// the peer certificate's).
pub type Key = [u8; 32];

/// The longest JWT-SVID the cache holds; a longer one (SPIRE's are under
/// 2 KiB) is validated on every use.
pub const MAX_CACHED_TOKEN_BYTES: usize = 4096;

/// The token bytes the cache holds, on average per entry: all of them
/// together stay under `capacity ×` this (and at least one token of
/// [`MAX_CACHED_TOKEN_BYTES`]), the least recently used going first.
pub const TOKEN_BYTES_PER_ENTRY: usize = 1024;

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

struct Entry<K, V> {
    key: K,
    /// None once evicted for bytes: a freed slot holds nothing.
    value: Option<V>,
    /// Neighbours in recency order (towards `head` is more recent).
    newer: usize,
    older: usize,
}

/// A least-recently-used map, bounded in entries and in the bytes its keys
/// hold, O(1).
struct Lru<K, V, S> {
    map: HashMap<K, usize, S>,
    slots: Vec<Entry<K, V>>,
    head: usize,
    tail: usize,
    capacity: usize,
    /// The key bytes held, and their bound.
    bytes: usize,
    max_bytes: usize,
    /// Slots an eviction for bytes emptied, for reuse.
    free: Vec<usize>,
}

/// What a key holds, in bytes, against its cache's bound.
trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for Key {
    fn weight(&self) -> usize {
        0 // inline: bounded by the entry count alone
    }
}

impl Weight for Rc<str> {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// A JWT-SVID verified under a bundle generation.
struct Verified {
    svid: Rc<JwtSvid>,
    generation: u64,
}

/// Bounded caches of validated SVIDs: JWT-SVIDs by token (a keyed
/// SipHash, the token compared on a hit), X.509-SVIDs by the SHA-256 of
/// the certificate.
pub struct SvidCache {
    lru: RefCell<Lru<Rc<str>, Verified, RandomState>>,
    x509: RefCell<Lru<Key, Rc<X509Svid>, BuildHasherDefault<DigestHasher>>>,
}

impl SvidCache {
    /// Caches of at most `capacity` entries each (0: no caching).
    pub fn new(capacity: usize) -> Self {
        SvidCache {
            // Room for one token of any size it holds, however small the cache.
            lru: RefCell::new(Lru::new(
                capacity,
                capacity.saturating_mul(TOKEN_BYTES_PER_ENTRY).max(MAX_CACHED_TOKEN_BYTES),
            )),
            x509: RefCell::new(Lru::new(capacity, usize::MAX)),
        }
    }

    /// The token bytes the JWT-SVID cache holds.
    pub fn token_bytes(&self) -> usize {
        self.lru.try_borrow().map_or(0, |l| l.bytes)
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
        if let Some(svid) = self.get(token, trust) {
            svid.check_times(config, now_secs)?;
            return Ok(svid);
        }
        let svid = Rc::new(jwt::validate(token, config, trust, verifier, now_secs)?);
        if let Some(generation) = generation(trust, &svid) {
            self.insert(token, Rc::clone(&svid), generation);
        }
        Ok(svid)
    }

    /// Holds `svid` as the verified SVID of `token`, under the bundle in
    /// force: how `explain` describes a caller to the flow's own identity
    /// step. The gateway never calls it.
    pub(crate) fn hold_jwt(&self, token: &str, svid: JwtSvid, trust: &TrustStore) {
        let svid = Rc::new(svid);
        if let Some(generation) = generation(trust, &svid) {
            self.insert(token, svid, generation);
        }
    }

    /// Holds `svid` as the validated X.509-SVID of the certificate `der`
    /// (for `explain`, as [`SvidCache::hold_jwt`]).
    pub(crate) fn hold_x509(&self, der: &[u8], svid: X509Svid) {
        if let Ok(mut lru) = self.x509.try_borrow_mut() {
            lru.insert(digest(der), Rc::new(svid));
        }
    }

    fn get(&self, token: &str, trust: &TrustStore) -> Option<Rc<JwtSvid>> {
        let mut lru = self.lru.try_borrow_mut().ok()?;
        let entry = lru.get(token)?;
        if generation(trust, &entry.svid) != Some(entry.generation) {
            // Verified under a bundle that has since changed: stale.
            return None;
        }
        Some(Rc::clone(&entry.svid))
    }

    fn insert(&self, token: &str, svid: Rc<JwtSvid>, generation: u64) {
        if token.len() > MAX_CACHED_TOKEN_BYTES {
            return;
        }
        if let Ok(mut lru) = self.lru.try_borrow_mut() {
            lru.insert(Rc::from(token), Verified { svid, generation });
        }
    }
}

/// The current generation of the bundle of the SVID's trust domain.
fn generation(trust: &TrustStore, svid: &JwtSvid) -> Option<u64> {
    trust.domain(svid.spiffe_id.trust_domain()).filter(|d| d.available).map(|d| d.generation)
}

impl<K: Hash + Eq + Clone + Default + Weight, V, S: BuildHasher + Default> Lru<K, V, S> {
    fn new(capacity: usize, max_bytes: usize) -> Self {
        let (map, slots, free) = (HashMap::default(), Vec::new(), Vec::new());
        Lru { map, slots, head: NONE, tail: NONE, capacity, bytes: 0, max_bytes, free }
    }

    /// The value under `key`, now the most recently used.
    fn get<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        let slot = *self.map.get(key)?;
        self.touch(slot);
        self.slots.get(slot).and_then(|e| e.value.as_ref())
    }

    fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 || key.weight() > self.max_bytes {
            return;
        }
        if let Some(&slot) = self.map.get(&key) {
            if let Some(entry) = self.slots.get_mut(slot) {
                entry.value = Some(value);
            }
            self.touch(slot);
            return;
        }
        // Room for the key's bytes: the least recently used go first.
        while self.bytes + key.weight() > self.max_bytes && self.evict_oldest() {}
        let slot = if self.slots.len() < self.capacity {
            self.slots.push(Entry { key: key.clone(), value: Some(value), newer: NONE, older: NONE });
            self.slots.len() - 1
        } else if let Some(slot) = self.free.pop() {
            let Some(entry) = self.slots.get_mut(slot) else { return };
            entry.key = key.clone();
            entry.value = Some(value);
            slot
        } else {
            // Reuse the least recently used slot.
            let slot = self.tail;
            self.unlink(slot);
            let Some(entry) = self.slots.get_mut(slot) else { return };
            let old = std::mem::replace(&mut entry.key, key.clone());
            entry.value = Some(value);
            self.bytes = self.bytes.saturating_sub(old.weight());
            self.map.remove(&old);
            slot
        };
        self.bytes += key.weight();
        self.map.insert(key, slot);
        self.push_front(slot);
    }

    /// Takes the least recently used entry out, its key's bytes released
    /// and its slot kept for reuse; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        let slot = self.tail;
        if slot == NONE {
            return false;
        }
        self.unlink(slot);
        let Some(entry) = self.slots.get_mut(slot) else { return false };
        let key = std::mem::take(&mut entry.key);
        entry.value = None;
        self.bytes = self.bytes.saturating_sub(key.weight());
        self.map.remove(&key);
        self.free.push(slot);
        true
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
