use std::cell::Cell;

use serde_json::json;

use super::*;
use crate::identity::svid::{PureRustVerifier, TrustStore};
use crate::testing::*;

/// Counts the signatures it verifies.
#[derive(Default)]
struct Counting(Cell<usize>);

impl SignatureVerifier for Counting {
    fn verify(
        &self,
        token: &crate::identity::svid::verify::SignedToken<'_>,
        key: &crate::identity::svid::JwtKey,
    ) -> bool {
        self.0.set(self.0.get() + 1);
        PureRustVerifier.verify(token, key)
    }
}

fn token(sub: &str, exp: u64, jti: &str) -> String {
    sign_es256(
        &ec_key(1),
        &json!({"alg":"ES256","kid":"k1","typ":"JWT"}),
        &json!({"sub": sub, "aud": [AUD], "iat": NOW - 10, "exp": exp, "jti": jti}),
    )
}

#[test]
fn a_hit_skips_the_signature_but_not_the_clock() {
    let p = policy(json!({}));
    let cache = SvidCache::new(16);
    let v = Counting::default();
    let t = token(BOT, NOW + 60, "a");
    for _ in 0..3 {
        assert_eq!(
            cache.validate(&t, &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap().spiffe_id.as_str(),
            BOT
        );
    }
    assert_eq!(v.0.get(), 1, "verified once, then served from the cache");
    // Once expired (beyond the leeway), the cached token is refused.
    let later = NOW + 60 + p.jwt_svid.leeway_seconds;
    assert_eq!(
        cache.validate(&t, &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, later).unwrap_err(),
        JwtSvidError::Expired
    );
    assert_eq!(v.0.get(), 1);
}

#[test]
fn two_tokens_for_one_workload_are_two_entries() {
    let p = policy(json!({}));
    let cache = SvidCache::new(16);
    let v = Counting::default();
    for jti in ["a", "b"] {
        cache.validate(&token(BOT, NOW + 60, jti), &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap();
    }
    assert_eq!((cache.len(), v.0.get()), (2, 2));
}

#[test]
fn a_token_that_differs_only_in_its_signature_is_no_hit() {
    let p = policy(json!({}));
    let cache = SvidCache::new(16);
    let v = Counting::default();
    let t = token(BOT, NOW + 60, "a");
    cache.validate(&t, &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap();
    let (head, sig) = t.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    sig[5] = if sig[5] == 'A' { 'B' } else { 'A' };
    let forged = format!("{head}.{}", sig.iter().collect::<String>());
    assert_eq!(
        cache.validate(&forged, &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap_err(),
        JwtSvidError::BadSignature
    );
    assert_eq!((cache.len(), v.0.get()), (1, 2), "refusals are not cached");
}

#[test]
fn the_bound_holds_and_the_least_recent_go_first() {
    let p = policy(json!({}));
    let cache = SvidCache::new(8);
    let v = Counting::default();
    let tokens: Vec<String> = (0..100).map(|i| token(BOT, NOW + 60, &format!("t{i}"))).collect();
    for t in &tokens {
        cache.validate(t, &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap();
        assert!(cache.len() <= 8);
    }
    // Keep the newest hot, add one more: the hot one stays.
    cache.validate(&tokens[92], &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap();
    cache.validate(&token(BOT, NOW + 60, "new"), &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap();
    let before = v.0.get();
    cache.validate(&tokens[92], &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap();
    assert_eq!(v.0.get(), before, "the recently used entry survived");
    cache.validate(&tokens[93], &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap();
    assert_eq!(v.0.get(), before + 1, "the least recently used entry was evicted");
    assert_eq!(cache.len(), 8);
}

#[test]
fn a_bundle_change_makes_every_entry_stale() {
    let p = policy(json!({}));
    let mut trust = TrustStore::new(&p.trust_domains);
    let cache = SvidCache::new(16);
    let v = Counting::default();
    let t = token(BOT, NOW + 60, "a");
    cache.validate(&t, &p.jwt_svid, &trust, &v, NOW).unwrap();
    let keys = trust.domain("example.org").unwrap().keys.to_vec();
    let fetched = |keys: Vec<crate::identity::svid::JwtKey>, sequence| crate::identity::svid::bundle::Bundle {
        keys,
        sequence: Some(sequence),
        refresh_hint: None,
        skipped: 0,
    };
    trust.install("example.org", fetched(keys, 1));
    cache.validate(&t, &p.jwt_svid, &trust, &v, NOW).unwrap();
    assert_eq!(v.0.get(), 2, "verified again under the new bundle");
    // The new bundle no longer holds the key: refused, cache or not.
    trust.install("example.org", fetched(Vec::new(), 2));
    assert_eq!(cache.validate(&t, &p.jwt_svid, &trust, &v, NOW).unwrap_err(), JwtSvidError::UnknownKid);
}

#[test]
fn a_zero_capacity_caches_nothing() {
    let p = policy(json!({}));
    let cache = SvidCache::new(0);
    let v = Counting::default();
    let t = token(BOT, NOW + 60, "a");
    for _ in 0..2 {
        cache.validate(&t, &p.jwt_svid, &TrustStore::new(&p.trust_domains), &v, NOW).unwrap();
    }
    assert_eq!((cache.len(), v.0.get()), (0, 2));
}

/// Every key in one bucket: only the comparison of whole keys tells them
/// apart.
#[derive(Default)]
struct Colliding;

impl Hasher for Colliding {
    fn finish(&self) -> u64 {
        7
    }
    fn write(&mut self, _: &[u8]) {}
}

#[test]
fn a_hash_collision_costs_a_miss_never_another_entry() {
    let mut lru: Lru<Rc<str>, &str, BuildHasherDefault<Colliding>> = Lru::new(4, usize::MAX);
    lru.insert(Rc::from("token-of-a"), "spiffe://example.org/a");
    lru.insert(Rc::from("token-of-b"), "spiffe://example.org/b");
    assert_eq!(lru.get("token-of-a"), Some(&"spiffe://example.org/a"));
    assert_eq!(lru.get("token-of-b"), Some(&"spiffe://example.org/b"));
    assert_eq!(lru.get("token-of-c"), None, "same bucket, another token: a miss");
    assert_eq!(lru.get("token-of-"), None);
}

/// A valid token carrying `pad` bytes of extra claim.
fn long_token(jti: &str, pad: usize) -> String {
    sign_es256(
        &ec_key(1),
        &json!({"alg":"ES256","kid":"k1","typ":"JWT"}),
        &json!({"sub": BOT, "aud": [AUD], "iat": NOW - 10, "exp": NOW + 60, "jti": jti, "pad": "x".repeat(pad)}),
    )
}

#[test]
fn the_tokens_held_stay_under_their_byte_bound() {
    let p = policy(json!({}));
    let trust = TrustStore::new(&p.trust_domains);
    let cache = SvidCache::new(8); // 8 entries, 8 KiB of tokens
    let v = Counting::default();
    let tokens: Vec<String> = (0..20).map(|i| long_token(&format!("t{i}"), 2000)).collect();
    assert!(tokens[0].len() > 2 * TOKEN_BYTES_PER_ENTRY && tokens[0].len() <= MAX_CACHED_TOKEN_BYTES);
    for t in &tokens {
        assert_eq!(cache.validate(t, &p.jwt_svid, &trust, &v, NOW).unwrap().spiffe_id.as_str(), BOT);
        assert!(cache.token_bytes() <= 8 * TOKEN_BYTES_PER_ENTRY, "{} bytes held", cache.token_bytes());
    }
    assert_eq!(cache.len(), 8 * TOKEN_BYTES_PER_ENTRY / tokens[0].len());
    // The newest is held; the evicted are validated again.
    let before = v.0.get();
    cache.validate(&tokens[19], &p.jwt_svid, &trust, &v, NOW).unwrap();
    assert_eq!(v.0.get(), before);
    cache.validate(&tokens[0], &p.jwt_svid, &trust, &v, NOW).unwrap();
    assert_eq!(v.0.get(), before + 1);
    // Short tokens reuse the slots the long ones left, up to the count.
    for i in 0..20 {
        cache.validate(&token(BOT, NOW + 60, &format!("s{i}")), &p.jwt_svid, &trust, &v, NOW).unwrap();
        assert!(cache.len() <= 8 && cache.token_bytes() <= 8 * TOKEN_BYTES_PER_ENTRY);
    }
    assert_eq!(cache.len(), 8);
}

#[test]
fn a_token_too_long_to_hold_is_validated_every_time() {
    let p = policy(json!({}));
    let trust = TrustStore::new(&p.trust_domains);
    let cache = SvidCache::new(4096);
    let v = Counting::default();
    let t = long_token("long", MAX_CACHED_TOKEN_BYTES);
    assert!(t.len() > MAX_CACHED_TOKEN_BYTES);
    for n in 1..=3 {
        assert_eq!(cache.validate(&t, &p.jwt_svid, &trust, &v, NOW).unwrap().spiffe_id.as_str(), BOT);
        assert_eq!((cache.len(), v.0.get()), (0, n));
    }
}

/// The LRU against a brute-force model (the attack review of issue 22):
/// thousands of random gets and inserts over a small key set, every shape
/// of bound, checking after each that a get returns the value last put
/// under that key or nothing, the recency list and the free slots are
/// whole, and the bytes held are the keys' sum and under the bound.
mod against_a_model {
    use super::*;

    use crate::testing::Rng;

    /// Reference: most recent first.
    struct Model {
        items: Vec<(String, u64)>,
        cap: usize,
        max: usize,
    }
    impl Model {
        fn bytes(&self) -> usize {
            self.items.iter().map(|(k, _)| k.len()).sum()
        }
        fn get(&mut self, k: &str) -> Option<u64> {
            let i = self.items.iter().position(|(x, _)| x == k)?;
            let e = self.items.remove(i);
            let v = e.1;
            self.items.insert(0, e);
            Some(v)
        }
        fn insert(&mut self, k: &str, v: u64) {
            if self.cap == 0 || k.len() > self.max {
                return;
            }
            if let Some(i) = self.items.iter().position(|(x, _)| x == k) {
                self.items.remove(i);
                self.items.insert(0, (k.to_string(), v));
                return;
            }
            while self.bytes() + k.len() > self.max && !self.items.is_empty() {
                self.items.pop();
            }
            if self.items.len() == self.cap {
                self.items.pop();
            }
            self.items.insert(0, (k.to_string(), v));
        }
    }

    fn check_structure<S: BuildHasher + Default>(lru: &Lru<Rc<str>, (Rc<str>, u64), S>, model: &Model) {
        // Walk head -> tail.
        let mut order = Vec::new();
        let mut prev = NONE;
        let mut cur = lru.head;
        let mut steps = 0;
        while cur != NONE {
            steps += 1;
            assert!(steps <= lru.slots.len(), "cycle in list");
            let e = &lru.slots[cur];
            assert_eq!(e.newer, prev, "newer link broken at {cur}");
            order.push(cur);
            prev = cur;
            cur = e.older;
        }
        assert_eq!(lru.tail, prev, "tail");
        let keys: Vec<String> = order.iter().map(|&s| lru.slots[s].key.to_string()).collect();
        let mkeys: Vec<String> = model.items.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, mkeys, "recency order");
        for &s in &order {
            assert_eq!(lru.map.get(&lru.slots[s].key), Some(&s));
            assert!(!lru.free.contains(&s), "live slot {s} in free list");
            // value belongs to key
            assert_eq!(
                &*lru.slots[s].value.as_ref().unwrap().0,
                &*lru.slots[s].key,
                "value of another key in slot {s}"
            );
        }
        assert_eq!(lru.map.len(), order.len());
        let mut free = lru.free.clone();
        free.sort();
        free.dedup();
        assert_eq!(free.len(), lru.free.len(), "duplicate in free list");
        for &f in &lru.free {
            assert!(lru.slots[f].key.is_empty(), "freed slot still holds its token");
            assert!(lru.slots[f].value.is_none(), "freed slot still holds its value");
        }
        assert_eq!(order.len() + lru.free.len(), lru.slots.len(), "slot leaked");
        assert_eq!(lru.bytes, model.bytes(), "bytes drift");
        assert!(lru.bytes <= lru.max_bytes);
        assert!(lru.map.len() <= lru.capacity && lru.slots.len() <= lru.capacity);
    }

    fn run<S: BuildHasher + Default>(seed: u64, cap: usize, max: usize, ops: usize, maxlen: u64) {
        let mut rng = Rng(seed | 1);
        let mut lru: Lru<Rc<str>, (Rc<str>, u64), S> = Lru::new(cap, max);
        let mut model = Model { items: Vec::new(), cap, max };
        // a small key universe so that re-inserts / hits are frequent;
        // keys share prefixes and lengths vary
        let universe: Vec<String> = (0..(cap as u64 * 2 + 6))
            .map(|i| {
                let len = 1 + (i * 7919 + seed) % maxlen;
                let mut s = format!("k{i}.");
                while (s.len() as u64) < len {
                    s.push('x');
                }
                s
            })
            .collect();
        let mut counter = 0;
        for _ in 0..ops {
            let k = &universe[rng.below(universe.len() as u64) as usize];
            if rng.below(3) == 0 {
                let got = lru.get(k.as_str()).map(|v| (v.0.to_string(), v.1));
                let want = model.get(k).map(|v| (k.clone(), v));
                assert_eq!(got, want, "get({k}) seed {seed} cap {cap} max {max}");
            } else {
                counter += 1;
                lru.insert(Rc::from(k.as_str()), (Rc::from(k.as_str()), counter));
                model.insert(k, counter);
            }
            check_structure(&lru, &model);
        }
    }

    #[test]
    fn model_based_random_ops() {
        for seed in 1..120u64 {
            for &(cap, max) in &[
                (0, 0),
                (1, 1024),
                (1, 3),
                (1, 0),
                (2, 10),
                (3, 12),
                (4, 40),
                (5, 25),
                (8, 64),
                (16, 60),
                (3, usize::MAX),
            ] {
                run::<RandomState>(seed * 31 + cap as u64, cap, max, 300, 30);
                run::<BuildHasherDefault<Colliding>>(seed * 17 + cap as u64, cap, max, 120, 30);
            }
        }
    }

    #[test]
    fn model_based_real_sizes() {
        // the real rule: capacity × 1024, tokens up to 4096 (cache-level filter)
        for seed in 1..60u64 {
            for &cap in &[1usize, 2, 3, 4, 5, 8] {
                run::<RandomState>(seed, cap, cap * TOKEN_BYTES_PER_ENTRY, 400, 4097);
            }
        }
    }
}

#[test]
fn an_entry_evicted_for_bytes_releases_its_svid() {
    let mut lru: Lru<Rc<str>, Rc<String>, RandomState> = Lru::new(4, 8);
    let svid = Rc::new("spiffe://example.org/a".to_string());
    lru.insert(Rc::from("aaaa"), Rc::clone(&svid));
    lru.insert(Rc::from("bbbbbbbb"), Rc::new(String::new())); // 4 + 8 > 8: "aaaa" goes
    assert_eq!(lru.get("aaaa"), None);
    assert_eq!((lru.map.len(), lru.bytes), (1, 8));
    assert_eq!(Rc::strong_count(&svid), 1, "the evicted SVID is still held by its freed slot");
}

#[test]
fn a_small_cache_still_holds_a_token_of_any_size_it_takes() {
    let p = policy(json!({}));
    let trust = TrustStore::new(&p.trust_domains);
    let cache = SvidCache::new(1);
    let v = Counting::default();
    let t = long_token("big", 2000); // about 3 KiB once encoded
    assert!(t.len() > TOKEN_BYTES_PER_ENTRY && t.len() <= MAX_CACHED_TOKEN_BYTES);
    for _ in 0..3 {
        cache.validate(&t, &p.jwt_svid, &trust, &v, NOW).unwrap();
    }
    assert_eq!((cache.len(), v.0.get()), (1, 1));
}
