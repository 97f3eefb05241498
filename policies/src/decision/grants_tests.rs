use super::*;

fn glob(s: &str) -> PathGlob {
    PathGlob::parse(s).unwrap()
}

#[test]
fn one_star_stays_in_its_segment_two_cross_them() {
    assert!(glob("acme/*").matches("acme/api"));
    assert!(!glob("acme/*").matches("acme/api/issues"));
    assert!(!glob("acme/*").matches("acme/"));
    assert!(glob("acme/*").matches("acme/a*b"));
    assert!(glob("acme/**").matches("acme/api/issues"));
    assert!(glob("repo://acme/*").matches("repo://acme/api"));
    assert!(!glob("repo://acme/*").matches("repo://acme.evil/api"));
    assert!(!glob("repo://acme/*").matches("repo://other/api"));
    assert!(glob("*-prod").matches("db-prod"));
    assert!(!glob("acme/*").matches("ACME/api"));
    assert!(glob("acme/*").matches_loosely(" ACME/Api "));
}

#[test]
fn matching_is_linear_even_for_hostile_patterns() {
    // A backtracking matcher would take exponential time here.
    let p = glob(&"*a".repeat(40));
    let v = "a".repeat(MAX_MATCHED_VALUE - 1) + "b";
    assert!(!p.matches(&v));
    assert!(!glob("**").matches(&"a".repeat(MAX_MATCHED_VALUE + 1)), "values past the bound never match");
}

#[test]
fn patterns_that_say_nothing_clear_are_refused() {
    assert!(PathGlob::parse("").is_err());
    assert!(PathGlob::parse("a***").is_err());
    assert!(PathGlob::parse("a\nb").is_err());
    assert!(PathGlob::parse(&"a".repeat(MAX_PATTERN + 1)).is_err());
}

#[test]
fn method_patterns_are_a_method_a_prefix_or_everything() {
    let m = |s: &str| MethodPattern::parse(s).unwrap();
    assert!(m("tools/list").matches("tools/list"));
    assert!(!m("tools/list").matches("tools/listx"));
    assert!(m("notifications/*").matches("notifications/initialized"));
    assert!(m("notifications/*").matches("notifications/roots/list_changed"));
    assert!(!m("notifications/*").matches("notifications"));
    assert!(!m("notifications/*").matches("notificationsx/y"));
    assert!(m("*").matches("anything/at/all"));
    assert!(m("tools/list").matches_loosely("TOOLS/LIST"));
    for bad in ["", "tools/", "/tools", "tools//list", "tools/*/x", "to ols", "**"] {
        assert!(MethodPattern::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_value_a_server_could_read_as_another_path_is_not_plain() {
    assert!(plain_value("acme/api"));
    assert!(plain_value("a..b/c"));
    for v in ["acme/../other", "..", "acme/..", "acme%2F..%2Fother", "acme\\..\\other", "acme/api\n", "a\u{0}"] {
        assert!(!plain_value(v), "{v:?}");
    }
}
