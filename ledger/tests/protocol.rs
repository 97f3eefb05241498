//! The HTTP surface: the key, strict parsing with field names, sizes,
//! paths and methods, metrics, and refusing to start without a good key.

// A test file: a failed unwrap or expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

fn valid_reserve() -> Value {
    reserve_body(&rid(1), 300_000, vec![draw("k/1", Some(100), None, 1, 0)])
}

#[test]
fn requests_without_the_key_are_refused() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    let body = valid_reserve().to_string();
    for auth in [None, Some("wrong"), Some(&KEY[..KEY.len() - 1]), Some(&format!("{KEY}x")[..])] {
        for path in ["/v1/reserve", "/v1/settle"] {
            let (status, text) = ledger.request("POST", path, auth, body.as_bytes());
            assert_eq!(status, 401, "{path} with {auth:?}: {text}");
            assert!(text.contains("authorization"), "{text}");
        }
    }
    assert_eq!(ledger.request("GET", "/metrics", None, b"").0, 401);
    assert_eq!(ledger.request("GET", "/nowhere", None, b"").0, 401);
    // Nothing was written.
    assert_eq!(redis.command(&["DBSIZE"]), ":0");
    // Health carries no budget data: probes hold no key.
    assert_eq!(ledger.request("GET", "/healthz", None, b""), (200, "ok\n".into()));
    let (status, text) = ledger.request("POST", "/v1/reserve", Some(KEY), body.as_bytes());
    assert_eq!(status, 200, "{text}");
}

fn bad(ledger: &Ledger, path: &str, body: &str) -> String {
    let (status, text) = ledger.request("POST", path, Some(KEY), body.as_bytes());
    assert_eq!(status, 400, "{body} → {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["error"].as_str().unwrap().to_string()
}

#[test]
fn malformed_bodies_are_400_and_name_the_field() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    let id = rid(1);
    let d = |f: &dyn Fn(&mut Value)| {
        let mut v = valid_reserve();
        f(&mut v);
        v.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "body:"),
        ("".into(), "body:"),
        (format!("{} {{}}", valid_reserve()), "body:"),
        (d(&|v| v["reservation"] = json!("ABCDEF0123456789abcdef0123456789")), "reservation:"),
        (d(&|v| v["reservation"] = json!("abc")), "reservation:"),
        (d(&|v| v["reservation"] = json!(5)), "reservation:"),
        (d(&|v| v["hold_ms"] = json!(0)), "hold_ms:"),
        (d(&|v| v["hold_ms"] = json!(-1)), "hold_ms:"),
        (d(&|v| v["draws"] = json!([])), "draws:"),
        (
            d(&|v| v["draws"] = json!((0..17).map(|i| draw(&format!("k/{i}"), None, None, 1, 1)).collect::<Vec<_>>())),
            "draws:",
        ),
        (d(&|v| v["draws"][0]["key"] = json!("")), "draws[0].key:"),
        (d(&|v| v["draws"][0]["key"] = json!("a b")), "draws[0].key:"),
        (d(&|v| v["draws"][0]["key"] = json!("a{b}")), "draws[0].key:"),
        (d(&|v| v["draws"][0]["key"] = json!("k".repeat(201))), "draws[0].key:"),
        (d(&|v| v["draws"][0]["window_end_ms"] = json!(0)), "draws[0].window_end_ms:"),
        (d(&|v| v["draws"][0]["limit"]["tokens"] = json!(1.5)), "draws[0].limit.tokens:"),
        (d(&|v| v["draws"][0]["limit"]["tokens"] = json!(9_007_199_254_740_992u64)), "draws[0].limit.tokens:"),
        (d(&|v| v["draws"][0]["amount"]["nano_usd"] = json!(-3)), "draws[0].amount.nano_usd:"),
        (d(&|v| v["draws"][0]["amount"]["tokens"] = json!(u64::MAX)), "draws[0].amount.tokens:"),
        (d(&|v| v["draws"][0]["amount"]["tokens"] = json!(null)), "draws[0].amount.tokens:"),
        (d(&|v| v["draws"][0]["amount"] = json!({"tokens": 1})), "missing field `nano_usd`"),
        (d(&|v| v["draws"][0]["amount"]["dollars"] = json!(1)), "unknown field `dollars`"),
        (d(&|v| v["draws"][0]["extra"] = json!(1)), "unknown field `extra`"),
        (d(&|v| v["extra"] = json!(1)), "unknown field `extra`"),
        (d(&|v| v["draws"] = json!([draw("k/1", None, None, 1, 1), draw("k/1", None, None, 1, 1)])), "draws[1].key:"),
    ];
    for (body, expected) in &cases {
        let e = bad(&ledger, "/v1/reserve", body);
        assert!(e.contains(expected), "{body} → {e:?}, expected {expected:?}");
    }
    let e = bad(&ledger, "/v1/reserve", &d(&|v| v["draws"][0]["key"] = json!("a b")));
    assert!(e.starts_with("draws[0].key:"), "{e}");

    let settle = |f: &dyn Fn(&mut Value)| {
        let mut v = settle_body(&id, vec![charge("k/1", Some(1), None, 1, 1)]);
        f(&mut v);
        v.to_string()
    };
    let e = bad(&ledger, "/v1/settle", &settle(&|v| v["hold_ms"] = json!(5)));
    assert!(e.contains("unknown field `hold_ms`"), "{e}");
    let e = bad(&ledger, "/v1/settle", &settle(&|v| v["draws"][0]["charge"]["tokens"] = json!("7")));
    assert!(e.starts_with("draws[0].charge.tokens:"), "{e}");
    let e = bad(&ledger, "/v1/settle", &settle(&|v| v["draws"][0]["amount"] = json!({"tokens": 1, "nano_usd": 1})));
    assert!(e.contains("unknown field `amount`"), "{e}");
    let e = bad(&ledger, "/v1/settle", &settle(&|v| v["reservation"] = json!("g".repeat(32))));
    assert!(e.starts_with("reservation:"), "{e}");

    assert_eq!(redis.command(&["DBSIZE"]), ":0", "nothing was written");
    let (_, metrics) = ledger.request("GET", "/metrics", Some(KEY), b"");
    let expected = format!("modelgate_ledger_errors_total{{kind=\"bad_request\"}} {}\n", cases.len() + 5);
    assert!(metrics.contains(&expected), "{metrics}");
}

#[test]
fn oversized_bodies_are_refused() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    // 64 KiB + 1: refused for its size alone, before it is parsed.
    let mut body = valid_reserve().to_string();
    body.push_str(&" ".repeat(64 * 1024 + 1 - body.len()));
    let (status, text) = ledger.request("POST", "/v1/reserve", Some(KEY), body.as_bytes());
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("body: larger than 65536 bytes"), "{text}");
    // Exactly 64 KiB (whitespace padding) is read, and parsed.
    let mut body = valid_reserve().to_string();
    body.push_str(&" ".repeat(64 * 1024 - body.len()));
    let (status, text) = ledger.request("POST", "/v1/reserve", Some(KEY), body.as_bytes());
    assert_eq!(status, 200, "{text}");
}

#[test]
fn other_paths_and_methods() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    assert_eq!(ledger.request("GET", "/v1/reserve", Some(KEY), b"").0, 405);
    assert_eq!(ledger.request("PUT", "/v1/settle", Some(KEY), b"{}").0, 405);
    assert_eq!(ledger.request("POST", "/healthz", None, b"").0, 405);
    let (status, text) = ledger.request("GET", "/v1/balance", Some(KEY), b"");
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no such path"), "{text}");
    let (status, text) = ledger.request("GET", "/metrics", Some(KEY), b"");
    assert_eq!(status, 200);
    for name in [
        "modelgate_ledger_reserve_total{result=\"admitted\"} 0",
        "modelgate_ledger_reserve_total{result=\"exhausted\"} 0",
        "modelgate_ledger_settle_draws_total{result=\"settled\"} 0",
        "modelgate_ledger_settle_draws_total{result=\"unknown\"} 0",
        "modelgate_ledger_expired_reservations_charged_total 0",
        "modelgate_ledger_errors_total{kind=\"redis\"} 0",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
}

#[test]
fn refuses_to_start_without_a_long_key() {
    for key in [None, Some("short-key"), Some("k".repeat(31).leak() as &str)] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate-ledger"));
        cmd.env_remove("MODELGATE_LEDGER_KEY").env("MODELGATE_LEDGER_LISTEN", "127.0.0.1:0");
        if let Some(k) = key {
            cmd.env("MODELGATE_LEDGER_KEY", k);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("MODELGATE_LEDGER_KEY") && err.contains("32"), "{key:?}: {err}");
    }
}

#[test]
fn the_start_line_hides_the_redis_password() {
    let redis = Redis::start();
    let url = format!("redis://:hunter2-password@127.0.0.1:{}/", redis.port);
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate-ledger"))
        .env("MODELGATE_LEDGER_LISTEN", "127.0.0.1:0")
        .env("MODELGATE_LEDGER_REDIS", &url)
        .env("MODELGATE_LEDGER_KEY", KEY)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains(&format!("redis redis://:***@127.0.0.1:{}/", redis.port)), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
}
