//! Each condition kind at its boundaries.

use std::rc::Rc;

use serde_json::json;

use super::*;
use crate::identity::spiffe::SpiffeId;

/// 2026-11-23 was a Monday; seconds at `day` (0 = Monday) and `hh:mm`.
fn at(day: u64, hh: u64, mm: u64) -> u64 {
    const MONDAY: u64 = 1_795_392_000; // 2026-11-23T00:00:00Z
    MONDAY + day * 86_400 + hh * 3600 + mm * 60
}

fn window(days: &[&str], hours: &str) -> TimeWindow {
    compile(&json!({"time": {"days": days, "hours_utc": hours}}), "when").unwrap().time.unwrap()
}

#[test]
fn the_reference_monday_is_a_monday() {
    assert_eq!(at(0, 0, 0) % 86_400, 0);
    assert!(window(&["mon"], "00:00-24:00").holds(at(0, 12, 0)));
    assert!(!window(&["mon"], "00:00-24:00").holds(at(1, 12, 0)));
}

#[test]
fn time_ranges_include_their_first_minute_and_exclude_their_end() {
    let w = window(&["mon", "tue", "wed", "thu", "fri"], "07:00-19:00");
    assert!(!w.holds(at(0, 6, 59)));
    assert!(w.holds(at(0, 7, 0)));
    assert!(w.holds(at(0, 18, 59) + 59));
    assert!(!w.holds(at(0, 19, 0)));
    assert!(!w.holds(at(5, 12, 0)), "saturday");
    assert!(w.holds(at(4, 12, 0)), "friday");
}

#[test]
fn a_range_across_midnight_belongs_to_the_day_it_starts() {
    let w = window(&["fri"], "22:00-06:00");
    assert!(!w.holds(at(4, 21, 59)));
    assert!(w.holds(at(4, 22, 0)));
    assert!(w.holds(at(4, 23, 59)));
    assert!(w.holds(at(5, 0, 0)), "saturday 00:00 is friday night");
    assert!(w.holds(at(5, 5, 59)));
    assert!(!w.holds(at(5, 6, 0)));
    assert!(!w.holds(at(4, 3, 0)), "friday 03:00 is thursday night");
    assert!(!w.holds(at(5, 22, 30)), "saturday night");
    let sunday = window(&["sun"], "23:00-01:00");
    assert!(sunday.holds(at(7, 0, 30)), "monday 00:30 is sunday night, across the week");
}

#[test]
fn time_config_errors_name_the_field() {
    for (when, path) in [
        (json!({"time": {"days": ["monday"]}}), "when.time.days[0]"),
        (json!({"time": {"days": []}}), "when.time.days"),
        (json!({"time": {"hours_utc": "7:00-19:00"}}), "when.time.hours_utc"),
        (json!({"time": {"hours_utc": "07:00-07:00"}}), "when.time.hours_utc"),
        (json!({"time": {"hours_utc": "07:60-08:00"}}), "when.time.hours_utc"),
        (json!({"time": {"hours_utc": "24:00-08:00"}}), "when.time.hours_utc"),
        (json!({"time": {"hours_utc": "25:00-08:00"}}), "when.time.hours_utc"),
        (json!({"time": {}}), "when.time"),
        (json!({"time": {"zone": "UTC"}}), "when.time.zone"),
        (json!({}), "when"),
        (json!({"weather": "sunny"}), "when.weather"),
    ] {
        assert_eq!(compile(&when, "when").unwrap_err().path, path, "{when}");
    }
}

fn facts<'a>(peer: Option<&'a str>) -> Facts<'a> {
    Facts { now_secs: at(0, 12, 0), peer, jwt: None, x509: None, metadata: &[] }
}

fn source(cidrs: &[&str]) -> Conditions {
    compile(&json!({ "source_cidrs": cidrs }), "when").unwrap()
}

fn holds(c: &Conditions, f: &Facts<'_>) -> bool {
    c.evaluate(f).iter().all(|(_, t)| *t == Truth::Holds)
}

#[test]
fn cidrs_of_both_families_and_every_prefix_length() {
    let c = source(&["10.20.0.0/16", "fd00::/8", "192.0.2.7/32", "2001:db8::1/128"]);
    for peer in [
        "10.20.0.1:5000",
        "10.20.255.255:1",
        "[fd12::1]:443",
        "192.0.2.7:9",
        "[2001:db8::1]:1",
        "[::ffff:10.20.3.4]:80",
    ] {
        assert!(holds(&c, &facts(Some(peer))), "{peer}");
    }
    for peer in ["10.21.0.1:5000", "192.0.2.8:9", "[2001:db8::2]:1", "[fe80::1]:1", "garbage", "10.20.0.1.5:1"] {
        assert!(!holds(&c, &facts(Some(peer))), "{peer}");
    }
    assert!(!holds(&c, &facts(None)), "no peer address: the condition fails");
    assert!(holds(&source(&["0.0.0.0/0"]), &facts(Some("203.0.113.9:1"))));
    assert!(!holds(&source(&["0.0.0.0/0"]), &facts(Some("[2001:db8::9]:1"))), "/0 of IPv4 is IPv4 only");
    assert!(holds(&source(&["::/0"]), &facts(Some("[2001:db8::9]:1"))));
    assert!(holds(&source(&["::/0"]), &facts(Some("203.0.113.9:1"))), "IPv4 peers are IPv4-mapped IPv6");
    for (bad, path) in [
        ("10.0.0.1/8", "when.source_cidrs[0]"),
        ("10.0.0.0/33", "when.source_cidrs[0]"),
        ("10.0.0.0", "when.source_cidrs[0]"),
        ("10.0.0.0/08", "when.source_cidrs[0]"),
        ("fd00::/129", "when.source_cidrs[0]"),
        ("example.org/8", "when.source_cidrs[0]"),
    ] {
        assert_eq!(compile(&json!({"source_cidrs": [bad]}), "when").unwrap_err().path, path, "{bad}");
    }
    assert_eq!(compile(&json!({"source_cidrs": []}), "when").unwrap_err().path, "when.source_cidrs");
}

fn jwt(iat: Option<u64>, claims: &[(&str, &[&str])]) -> Rc<JwtSvid> {
    Rc::new(JwtSvid {
        spiffe_id: SpiffeId::parse("spiffe://example.org/a").unwrap(),
        kid: "k".into(),
        exp: at(1, 0, 0),
        nbf: None,
        iat,
        jti: None,
        claims: claims.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
        unread_claims: false,
    })
}

fn x509(not_before: u64) -> X509Svid {
    X509Svid {
        spiffe_id: SpiffeId::parse("spiffe://example.org/a").unwrap(),
        serial: "01".into(),
        not_before,
        not_after: at(1, 0, 0),
    }
}

#[test]
fn svid_kinds_and_age() {
    let now = at(0, 12, 0);
    let c = compile(&json!({"svid": {"types": ["x509"], "max_age_seconds": 900}}), "when").unwrap();
    let j = jwt(Some(now - 10), &[]);
    let fresh = x509(now - 900);
    let stale = x509(now - 901);
    let with = |jwt: Option<&JwtSvid>, x: Option<&X509Svid>| holds(&c, &Facts { jwt, x509: x, ..facts(None) });
    assert!(with(None, Some(&fresh)), "exactly at the limit");
    assert!(!with(None, Some(&stale)));
    assert!(!with(Some(&j), None), "a JWT-SVID is not an X.509-SVID");
    assert!(with(Some(&j), Some(&fresh)));
    let any_age = compile(&json!({"svid": {"max_age_seconds": 60}}), "when").unwrap();
    let no_iat = jwt(None, &[]);
    assert!(!holds(&any_age, &Facts { jwt: Some(&no_iat), ..facts(None) }), "no iat: its age is unknown");
    let old = jwt(Some(now - 61), &[]);
    assert!(!holds(&any_age, &Facts { jwt: Some(&old), ..facts(None) }));
    assert!(!holds(&any_age, &facts(None)), "no SVID at all");
    assert_eq!(compile(&json!({"svid": {"types": ["spiffe"]}}), "when").unwrap_err().path, "when.svid.types[0]");
    assert_eq!(
        compile(&json!({"svid": {"max_age_seconds": 0}}), "when").unwrap_err().path,
        "when.svid.max_age_seconds"
    );
}

#[test]
fn claims_match_a_string_or_an_array_element() {
    let c = compile(&json!({"claims": {"env": ["prod", "staging"], "team": ["ml"]}}), "when").unwrap();
    let ok = jwt(Some(1), &[("env", &["prod"]), ("team", &["web", "ml"])]);
    let wrong = jwt(Some(1), &[("env", &["dev"]), ("team", &["ml"])]);
    let missing = jwt(Some(1), &[("env", &["prod"])]);
    assert!(holds(&c, &Facts { jwt: Some(&ok), ..facts(None) }));
    assert!(!holds(&c, &Facts { jwt: Some(&wrong), ..facts(None) }));
    assert!(!holds(&c, &Facts { jwt: Some(&missing), ..facts(None) }));
    let x = x509(1);
    assert!(!holds(&c, &Facts { x509: Some(&x), ..facts(None) }), "an X.509-only request has no claims");
    let evaluated = c.evaluate(&Facts { jwt: Some(&wrong), ..facts(None) });
    assert_eq!(evaluated, [("claims.env".to_string(), Truth::Fails), ("claims.team".to_string(), Truth::Holds)]);
}

#[test]
fn metadata_values_by_type() {
    let c = compile(
        &json!({"metadata": [
            {"namespace": "posture", "key": "compliant", "equals": "true"},
            {"namespace": "posture", "key": "managed", "equals": true},
            {"namespace": "posture", "key": "score", "equals": 7}
        ]}),
        "when",
    )
    .unwrap();
    let value = |k: &str, v: Option<Vec<u8>>| (("posture".to_string(), k.to_string()), v);
    let good = [
        value("compliant", Some(b"true".to_vec())),
        value("managed", Some(vec![1])),
        value("score", Some(7.0f64.to_le_bytes().to_vec())),
    ];
    assert!(holds(&c, &Facts { metadata: &good, ..facts(None) }));
    let bad = [value("compliant", Some(b"false".to_vec())), value("managed", Some(vec![0])), value("score", None)];
    assert_eq!(
        c.evaluate(&Facts { metadata: &bad, ..facts(None) }).iter().filter(|(_, t)| *t == Truth::Holds).count(),
        0
    );
    assert!(!holds(&c, &facts(None)), "absent metadata fails");
    for (when, path) in [
        (json!({"metadata": []}), "when.metadata"),
        (json!({"metadata": [{"namespace": "n", "key": "k"}]}), "when.metadata[0].equals"),
        (json!({"metadata": [{"namespace": "", "key": "k", "equals": 1}]}), "when.metadata[0].namespace"),
        (json!({"metadata": [{"namespace": "n", "key": "k", "equals": [1]}]}), "when.metadata[0].equals"),
        (json!({"metadata": [{"namespace": "n", "key": "k", "equals": 1, "op": "eq"}]}), "when.metadata[0].op"),
        (json!({"claims": {}}), "when.claims"),
        (json!({"claims": {"env": []}}), "when.claims.env"),
    ] {
        assert_eq!(compile(&when, "when").unwrap_err().path, path, "{when}");
    }
}

/// A fact that cannot be read with certainty fails closed: a peer address
/// Envoy took from a header (its port is 0), a claim the SVID did not keep.
/// An allow rule's condition then fails; a deny rule's holds (decision.rs).
#[test]
fn what_cannot_be_read_with_certainty_is_unknown() {
    let c = source(&["10.0.0.0/8"]);
    let truth = |peer: Option<&str>| c.evaluate(&facts(peer))[0].1;
    assert_eq!(truth(Some("10.1.2.3:5000")), Truth::Holds);
    assert_eq!(truth(Some("192.0.2.1:5000")), Truth::Fails);
    for forwarded in [Some("10.1.2.3:0"), Some("[fd00::1]:0"), Some("10.1.2.3"), Some("envoy://internal"), None] {
        assert_eq!(truth(forwarded), Truth::Unknown, "{forwarded:?}");
    }
    assert!(is_forwarded_address("10.1.2.3:0") && !is_forwarded_address("10.1.2.3:80"));

    let c = compile(&json!({"claims": {"env": ["prod"]}}), "when").unwrap();
    let token = |claims: Value| {
        let (claims, unread_claims) = crate::identity::svid::jwt::kept_claims(claims.as_object().unwrap());
        Rc::new(JwtSvid { claims, unread_claims, ..(*jwt(None, &[])).clone() })
    };
    let truth = |t: Rc<JwtSvid>| c.evaluate(&Facts { jwt: Some(&t), ..facts(None) })[0].1;
    assert_eq!(truth(token(json!({"env": "prod"}))), Truth::Holds);
    assert_eq!(truth(token(json!({"env": "dev"}))), Truth::Fails);
    assert_eq!(truth(token(json!({}))), Truth::Fails);
    // An array with a non-string element is not kept: env may be prod.
    assert_eq!(truth(token(json!({"env": ["dev", 1]}))), Truth::Unknown);
    // Past the claims kept.
    let mut many = serde_json::Map::new();
    for i in 0..40 {
        many.insert(format!("c{i:02}"), json!("x"));
    }
    many.insert("env".into(), json!("prod"));
    assert_eq!(truth(token(Value::Object(many))), Truth::Unknown);
}
