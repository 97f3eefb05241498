use super::*;

#[test]
fn parses_valid_ids() {
    for (s, td, path) in [
        ("spiffe://example.org", "example.org", ""),
        ("spiffe://example.org/ns/prod/sa/web", "example.org", "/ns/prod/sa/web"),
        ("spiffe://a_b-c.1/A-Z.a_z0-9", "a_b-c.1", "/A-Z.a_z0-9"),
        ("spiffe://example.org/...", "example.org", "/..."),
        ("spiffe://example.org/.a", "example.org", "/.a"),
    ] {
        let id = SpiffeId::parse(s).unwrap();
        assert_eq!((id.trust_domain(), id.path(), id.as_str()), (td, path, s));
    }
}

#[test]
fn refuses_invalid_ids_with_their_reason() {
    use SpiffeIdError::*;
    for (s, e) in [
        ("", Empty),
        ("example.org/x", WrongScheme),
        ("SPIFFE://example.org/x", WrongScheme),
        ("spiffe:/example.org/x", WrongScheme),
        ("https://example.org/x", WrongScheme),
        ("spiffe://", MissingTrustDomain),
        ("spiffe:///x", MissingTrustDomain),
        ("spiffe://Example.org/x", BadTrustDomainChar),
        ("spiffe://example.org:8080/x", BadTrustDomainChar),
        ("spiffe://user@example.org/x", BadTrustDomainChar),
        ("spiffe://example.org?x=1", BadTrustDomainChar),
        ("spiffe://example.org#f", BadTrustDomainChar),
        ("spiffe://exa%6dple.org", BadTrustDomainChar),
        ("spiffe://example.org/x?y", BadPathChar),
        ("spiffe://example.org/x#y", BadPathChar),
        ("spiffe://example.org/x%2Fy", BadPathChar),
        ("spiffe://example.org/x y", BadPathChar),
        ("spiffe://example.org/é", BadPathChar),
        ("spiffe://example.org//x", EmptySegment),
        ("spiffe://example.org/x//y", EmptySegment),
        ("spiffe://example.org/", TrailingSlash),
        ("spiffe://example.org/x/", TrailingSlash),
        ("spiffe://example.org/.", DotSegment),
        ("spiffe://example.org/x/../y", DotSegment),
        ("spiffe://example.org/./y", DotSegment),
    ] {
        assert_eq!(SpiffeId::parse(s), Err(e), "{s:?}");
    }
}

#[test]
fn exactly_the_allowed_bytes_are_accepted() {
    for b in 0u8..=255 {
        let c = char::from(b);
        let td = format!("spiffe://ex{c}mple/x");
        let td_ok = b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b);
        // '/' ends the trust domain, so it makes a valid ID of another shape.
        if b != b'/' {
            assert_eq!(SpiffeId::parse(&td).is_ok(), td_ok, "trust domain byte {b:#04x}");
        }
        let path = format!("spiffe://example.org/a{c}b");
        let path_ok = b.is_ascii_alphanumeric() || b"-._/".contains(&b);
        assert_eq!(SpiffeId::parse(&path).is_ok(), path_ok, "path byte {b:#04x}");
    }
    for s in ["\u{0}", "é", "\u{2028}", "\u{ff0f}", "ı"] {
        assert!(SpiffeId::parse(&format!("spiffe://ex{s}mple/x")).is_err(), "{s:?}");
        assert!(SpiffeId::parse(&format!("spiffe://example/a{s}b")).is_err(), "{s:?}");
    }
}

#[test]
fn length_limits_hold_at_the_boundary() {
    let td = "a".repeat(255);
    assert!(SpiffeId::parse(&format!("spiffe://{td}/x")).is_ok());
    assert_eq!(SpiffeId::parse(&format!("spiffe://{td}a/x")), Err(SpiffeIdError::TooLong));
    assert!(TrustDomain::parse(&td).is_ok());
    assert_eq!(TrustDomain::parse(&format!("{td}a")), Err(SpiffeIdError::TooLong));
    let prefix = "spiffe://example.org/";
    let id = format!("{prefix}{}", "a".repeat(2048 - prefix.len()));
    assert!(SpiffeId::parse(&id).is_ok());
    assert_eq!(SpiffeId::parse(&format!("{id}a")), Err(SpiffeIdError::TooLong));
}

#[test]
fn trust_domain_names_are_bare_and_lower_case() {
    assert!(TrustDomain::parse("example.org").is_ok());
    for s in ["", "Example.org", "spiffe://example.org", "example.org/x", "example.org:443"] {
        assert!(TrustDomain::parse(s).is_err(), "{s:?}");
    }
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

#[test]
fn one_star_matches_exactly_one_more_segment() {
    let p = WorkloadPattern::parse("spiffe://example.org/ns/prod/*").unwrap();
    assert!(p.matches(&id("spiffe://example.org/ns/prod/a")));
    for s in [
        "spiffe://example.org/ns/prod",
        "spiffe://example.org/ns/prod/a/b",
        "spiffe://other.org/ns/prod/a",
        "spiffe://example.org/ns/prodx/a",
    ] {
        assert!(!p.matches(&id(s)), "{s}");
    }
}

#[test]
fn two_stars_match_one_or_more_segments() {
    let p = WorkloadPattern::parse("spiffe://example.org/ns/**").unwrap();
    assert!(p.matches(&id("spiffe://example.org/ns/a")));
    assert!(p.matches(&id("spiffe://example.org/ns/a/b/c")));
    assert!(!p.matches(&id("spiffe://example.org/ns")));
    assert!(!p.matches(&id("spiffe://example.org/nsx/a")));
}

#[test]
fn a_trust_domain_wide_pattern_matches_every_workload_of_it() {
    let p = WorkloadPattern::parse("spiffe://example.org/**").unwrap();
    assert!(p.matches(&id("spiffe://example.org/a")));
    assert!(p.matches(&id("spiffe://example.org/a/b")));
    assert!(!p.matches(&id("spiffe://example.org")));
    let p = WorkloadPattern::parse("spiffe://example.org/*").unwrap();
    assert!(p.matches(&id("spiffe://example.org/a")));
    assert!(!p.matches(&id("spiffe://example.org/a/b")));
}

#[test]
fn patterns_never_cross_trust_domains() {
    let p = WorkloadPattern::parse("spiffe://example.org/x/**").unwrap();
    assert!(!p.matches(&id("spiffe://example.org.evil.com/x/a")));
    assert!(!p.matches(&id("spiffe://example.orgx/x/a")));
    assert_eq!(p.trust_domain(), "example.org");
}

#[test]
fn a_literal_pattern_matches_only_itself() {
    let p = WorkloadPattern::parse("spiffe://example.org/ns/a").unwrap();
    assert!(p.matches(&id("spiffe://example.org/ns/a")));
    assert!(!p.matches(&id("spiffe://example.org/ns/a/b")));
    assert!(!p.matches(&id("spiffe://example.org/ns/A")));
}

#[test]
fn bad_patterns_are_refused() {
    for s in [
        "",
        "spiffe://example.org/ns/prod*",
        "spiffe://example.org/*/sa",
        "spiffe://example.org/**/x",
        "spiffe://example.org/ns/***",
        "spiffe://*.example.org/x",
        "spiffe://example.org/ns/",
        "spiffe://Example.org/ns/*",
    ] {
        assert!(WorkloadPattern::parse(s).is_err(), "{s:?}");
    }
}

fn glob(p: &str, m: &str) -> bool {
    ModelPattern::parse(p).unwrap().matches(m)
}

#[test]
fn model_globs_are_exact_and_case_sensitive() {
    assert!(glob("gpt-4.1-*", "gpt-4.1-mini"));
    assert!(!glob("gpt-4.1-*", "gpt-4.1"));
    assert!(!glob("gpt-4.1-*", "GPT-4.1-mini"));
    assert!(glob("*", ""));
    assert!(glob("*", "anything"));
    assert!(glob("a*b*c", "abc"));
    assert!(glob("a*b*c", "aXbYc"));
    assert!(!glob("a*b*c", "aXbY"));
    assert!(!glob("a*bc", "abcX"));
    assert!(glob("*-mini", "gpt-4o-mini"));
    assert!(!glob("*-mini", "gpt-4o-mini-2024"));
    assert!(glob("ab*ab", "abab"));
    assert!(!glob("ab*ab", "aba"));
    assert!(glob("gpt-?o", "gpt-?o"));
    assert!(!glob("gpt-?o", "gpt-4o"));
    assert!(glob("gpt-4o", "gpt-4o"));
    assert!(!glob("gpt-4o", "gpt-4o "));
    assert!(ModelPattern::parse("").is_err());
}

#[test]
fn loose_matching_ignores_case_and_surrounding_space() {
    let p = ModelPattern::parse("gpt-3.5-*").unwrap();
    assert!(p.matches_loosely("GPT-3.5-Turbo"));
    assert!(p.matches_loosely(" gpt-3.5-turbo\t"));
    assert!(!p.matches_loosely("gpt-35-turbo"));
    assert!(!p.matches("GPT-3.5-Turbo"));
}

#[test]
fn globs_stay_fast_on_long_inputs() {
    let model = "a".repeat(10_000);
    let pattern = format!("{}b", "*a".repeat(100));
    let start = std::time::Instant::now();
    assert!(!glob(&pattern, &model));
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
}
