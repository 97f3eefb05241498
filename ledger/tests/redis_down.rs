//! When Redis cannot be asked the ledger never admits: it answers 503 fast,
//! and works again when Redis is back, without a restart.

// A test file: a failed unwrap or expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn reserve_once(ledger: &Ledger, n: u64) -> (u16, Value, Duration) {
    let start = Instant::now();
    let (status, v) =
        ledger.post("/v1/reserve", &reserve_body(&rid(n), 300_000, vec![draw("down/k", Some(1_000), None, 1, 0)]));
    (status, v, start.elapsed())
}

fn assert_unavailable_fast(ledger: &Ledger, n: u64) {
    let (status, v, took) = reserve_once(ledger, n);
    assert_eq!(status, 503, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("redis unavailable: "), "{v}");
    assert!(took < Duration::from_secs(1), "503 took {took:?}");
    let start = Instant::now();
    let (status, v) = ledger.post("/v1/settle", &settle_body(&rid(n), vec![charge("down/k", Some(1_000), None, 1, 0)]));
    assert_eq!(status, 503, "{v}");
    assert!(start.elapsed() < Duration::from_secs(1));
    let start = Instant::now();
    let (status, text) = ledger.request("GET", "/healthz", None, b"");
    assert_eq!(status, 503, "{text}");
    assert!(text.starts_with("redis unavailable"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// Polls until a reserve is answered 200 (within `limit`).
fn wait_until_working(ledger: &Ledger, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (status, v, _) = reserve_once(ledger, 1_000);
        if status == 200 {
            return v;
        }
        assert!(start.elapsed() < limit, "still {status} {v} after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_killed_then_back() {
    let mut redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    let (status, v, _) = reserve_once(&ledger, 1);
    assert_eq!((status, &v["admitted"]), (200, &Value::Bool(true)), "{v}");

    redis.stop();
    // The first call finds the dropped connection, the later ones a refused port.
    for n in 2..6 {
        assert_unavailable_fast(&ledger, n);
    }
    redis.restart();
    let v = wait_until_working(&ledger, Duration::from_secs(5));
    assert_eq!(v["admitted"], true, "{v}");
    assert_eq!(ledger.request("GET", "/healthz", None, b"").0, 200);
    let (_, metrics) = ledger.request("GET", "/metrics", Some(KEY), b"");
    assert!(!metrics.contains("modelgate_ledger_errors_total{kind=\"redis\"} 0\n"), "{metrics}");
}

#[test]
fn redis_frozen_then_thawed() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    assert_eq!(reserve_once(&ledger, 1).0, 200);
    // SIGSTOP: the connection stays open and nothing answers; the timeout does.
    redis.freeze(true);
    for n in 2..4 {
        assert_unavailable_fast(&ledger, n);
    }
    redis.freeze(false);
    wait_until_working(&ledger, Duration::from_secs(5));
    assert_eq!(ledger.request("GET", "/healthz", None, b"").0, 200);
}

#[test]
fn started_before_redis() {
    let mut redis = Redis::start();
    redis.stop();
    let ledger = Ledger::start(&redis.url());
    assert_unavailable_fast(&ledger, 1);
    redis.restart();
    let v = wait_until_working(&ledger, Duration::from_secs(5));
    assert_eq!(v["admitted"], true, "{v}");
}

#[test]
fn redis_restarted_while_idle_first_call_answered() {
    let mut redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    assert_eq!(reserve_once(&ledger, 1).0, 200);
    // No call while Redis is away: the ledger's connection is dropped under
    // it, and its first call after finds out.
    redis.stop();
    redis.restart();
    let (status, v, took) = reserve_once(&ledger, 2);
    assert_eq!((status, &v["admitted"]), (200, &Value::Bool(true)), "{v}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    redis.stop();
    redis.restart();
    assert_eq!(ledger.request("GET", "/healthz", None, b"").0, 200);
}
