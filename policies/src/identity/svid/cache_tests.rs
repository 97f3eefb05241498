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
