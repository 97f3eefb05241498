//! The budget arithmetic against a real redis-server: no overshoot under
//! concurrency, idempotency by reservation id, expired holds charged in full,
//! the truth charged above a reservation, multi-draw release.

// A test file: a failed unwrap or expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use serde_json::Value;

#[test]
fn concurrent_reserves_admit_exactly_what_fits_across_two_ledgers() {
    let redis = Redis::start();
    // Two replicas on one Redis, as two gateways would use them.
    let ledgers = Arc::new([Ledger::start(&redis.url()), Ledger::start(&redis.url())]);
    let key = "support-daily/3fa2/1764720000";
    let limit = Some(10_000);
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64u64)
        .map(|i| {
            let (ledgers, barrier) = (ledgers.clone(), barrier.clone());
            std::thread::spawn(move || {
                let id = rid(i);
                let body = reserve_body(&id, 300_000, vec![draw(key, limit, None, 1_000, 7)]);
                barrier.wait();
                (id, ledgers[(i % 2) as usize].reserve(&body))
            })
        })
        .collect();
    let answers: Vec<(String, Value)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let admitted: Vec<&String> = answers.iter().filter(|(_, a)| a["admitted"] == true).map(|(id, _)| id).collect();
    assert_eq!(admitted.len(), 10, "exactly 10 of 64 fit");
    for (_, a) in answers.iter().filter(|(_, a)| a["admitted"] == false) {
        assert_eq!(a["exhausted"], key);
        assert_eq!(tokens_left(a, 0), Some(0), "{a}");
        assert!(a["draws"][0]["remaining"]["nano_usd"].is_null(), "{a}");
    }

    // Each settles below its reservation: the rest goes back, exactly.
    let mut last = Value::Null;
    for (n, id) in admitted.iter().enumerate() {
        last = ledgers[n % 2].settle(&settle_body(id, vec![charge(key, limit, None, 400, 3)]));
        assert_eq!(last["draws"][0]["settled"], true, "{last}");
    }
    assert_eq!(tokens_left(&last, 0), Some(10_000 - 10 * 400));
    assert_eq!(redis.command(&["HGET", &format!("mg:{{{key}}}:b"), "used_nusd"]), "30");
    assert_eq!(redis.command(&["HGET", &format!("mg:{{{key}}}:b"), "held_tokens"]), "0");

    // What is left is exact: one token more does not fit, the rest does.
    let a = ledgers[0].reserve(&reserve_body(&rid(100), 300_000, vec![draw(key, limit, None, 6_001, 0)]));
    assert_eq!(a["admitted"], false, "{a}");
    assert_eq!(tokens_left(&a, 0), Some(6_000));
    let a = ledgers[1].reserve(&reserve_body(&rid(101), 300_000, vec![draw(key, limit, None, 6_000, 0)]));
    assert_eq!(a["admitted"], true, "{a}");
    assert_eq!(tokens_left(&a, 0), Some(0));
}

#[test]
fn reserve_and_settle_are_idempotent_by_reservation_id() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    let key = "team-a/daily";
    let id = rid(1);
    let reserve = reserve_body(&id, 300_000, vec![draw(key, Some(10_000), Some(1_000_000), 1_000, 50_000)]);
    for _ in 0..2 {
        let a = ledger.reserve(&reserve);
        assert_eq!(a["admitted"], true, "{a}");
        assert_eq!(a["draws"][0]["remaining"], serde_json::json!({"tokens": 9_000, "nano_usd": 950_000}));
    }
    let settle = settle_body(&id, vec![charge(key, Some(10_000), Some(1_000_000), 300, 20_000)]);
    let a = ledger.settle(&settle);
    assert_eq!(a["draws"][0]["settled"], true, "{a}");
    assert_eq!(a["draws"][0]["remaining"], serde_json::json!({"tokens": 9_700, "nano_usd": 980_000}));
    let a = ledger.settle(&settle);
    assert_eq!(a["draws"][0]["settled"], false, "{a}");
    assert_eq!(a["draws"][0]["remaining"], serde_json::json!({"tokens": 9_700, "nano_usd": 980_000}));

    // A reservation never made: nothing changes.
    let a = ledger.settle(&settle_body(&rid(2), vec![charge(key, Some(10_000), Some(1_000_000), 5_000, 5)]));
    assert_eq!(a["draws"][0]["settled"], false, "{a}");
    assert_eq!(a["draws"][0]["remaining"], serde_json::json!({"tokens": 9_700, "nano_usd": 980_000}));
    // Nor on a key never seen, and nothing is written there.
    let a = ledger.settle(&settle_body(&rid(3), vec![charge("never/seen", Some(5), None, 1, 1)]));
    assert_eq!(a["draws"][0]["settled"], false, "{a}");
    assert_eq!(tokens_left(&a, 0), Some(5));
    assert_eq!(redis.command(&["EXISTS", "mg:{never/seen}:b"]), ":0");
}

#[test]
fn an_expired_hold_is_charged_in_full_on_the_next_operation() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    let key = "exp/one";
    let lost = rid(1);
    let a = ledger.reserve(&reserve_body(&lost, 50, vec![draw(key, Some(10_000), None, 1_000, 0)]));
    assert_eq!(tokens_left(&a, 0), Some(9_000));
    std::thread::sleep(std::time::Duration::from_millis(120));

    // The next reserve sweeps it: used += 1000, held -= 1000.
    let a = ledger.reserve(&reserve_body(&rid(2), 300_000, vec![draw(key, Some(10_000), None, 500, 0)]));
    assert_eq!(a["admitted"], true, "{a}");
    assert_eq!(tokens_left(&a, 0), Some(8_500));
    let b = format!("mg:{{{key}}}:b");
    assert_eq!(redis.command(&["HGET", &b, "used_tokens"]), "1000");
    // A late settle of it finds nothing: it was charged in full.
    let a = ledger.settle(&settle_body(&lost, vec![charge(key, Some(10_000), None, 10, 0)]));
    assert_eq!(a["draws"][0]["settled"], false, "{a}");
    assert_eq!(tokens_left(&a, 0), Some(8_500));

    // A settle is an operation too: it sweeps the key it touches.
    let key2 = "exp/two";
    ledger.reserve(&reserve_body(&rid(3), 50, vec![draw(key2, Some(1_000), None, 200, 0)]));
    std::thread::sleep(std::time::Duration::from_millis(120));
    let a = ledger.settle(&settle_body(&rid(4), vec![charge(key2, Some(1_000), None, 1, 0)]));
    assert_eq!(a["draws"][0]["settled"], false);
    assert_eq!(tokens_left(&a, 0), Some(800));
    assert_eq!(redis.command(&["ZCARD", &format!("mg:{{{key2}}}:r")]), ":0");

    let (status, metrics) = ledger.request("GET", "/metrics", Some(KEY), b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("modelgate_ledger_expired_reservations_charged_total 2\n"), "{metrics}");
}

#[test]
fn a_charge_above_the_reservation_is_charged() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    let key = "over/charge";
    let id = rid(1);
    let a = ledger.reserve(&reserve_body(&id, 300_000, vec![draw(key, Some(10_000), Some(1_000_000), 1_000, 100_000)]));
    assert_eq!(a["admitted"], true);
    let a = ledger.settle(&settle_body(&id, vec![charge(key, Some(10_000), Some(1_000_000), 2_500, 300_000)]));
    assert_eq!(a["draws"][0]["settled"], true);
    assert_eq!(a["draws"][0]["remaining"], serde_json::json!({"tokens": 7_500, "nano_usd": 700_000}));
    // Beyond the limit too: remaining saturates at 0 and nothing more fits.
    let id = rid(2);
    ledger.reserve(&reserve_body(&id, 300_000, vec![draw(key, Some(10_000), Some(1_000_000), 1, 1)]));
    let a = ledger.settle(&settle_body(&id, vec![charge(key, Some(10_000), Some(1_000_000), 20_000, 0)]));
    assert_eq!(a["draws"][0]["remaining"], serde_json::json!({"tokens": 0, "nano_usd": 700_000}));
    let a = ledger.reserve(&reserve_body(&rid(3), 300_000, vec![draw(key, Some(10_000), Some(1_000_000), 0, 1)]));
    assert_eq!(a["admitted"], false, "{a}");
    assert_eq!(redis.command(&["HGET", &format!("mg:{{{key}}}:b"), "used_tokens"]), "22500");
}

#[test]
fn a_multi_draw_reserve_whose_second_draw_is_exhausted_releases_the_first() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    let (team, model) = ("team/daily", "model/daily");
    let id = rid(1);
    let a = ledger.reserve(&reserve_body(
        &id,
        300_000,
        vec![draw(team, Some(10_000), None, 1_000, 0), draw(model, None, Some(500), 0, 501)],
    ));
    assert_eq!(a["admitted"], false, "{a}");
    assert_eq!(a["exhausted"], model);
    assert_eq!(a["draws"][0]["key"], team);
    assert_eq!(tokens_left(&a, 0), Some(10_000), "released: {a}");
    assert_eq!(a["draws"][1]["remaining"], serde_json::json!({"tokens": null, "nano_usd": 500}));
    assert_eq!(redis.command(&["HGET", &format!("mg:{{{team}}}:b"), "held_tokens"]), "0");
    assert_eq!(redis.command(&["HEXISTS", &format!("mg:{{{team}}}:a"), &id]), ":0");

    // Draws after the exhausted one are not looked at.
    let a = ledger.reserve(&reserve_body(
        &rid(2),
        300_000,
        vec![draw(model, None, Some(500), 0, 501), draw(team, Some(10_000), None, 1_000, 0)],
    ));
    assert_eq!(a["draws"].as_array().map(Vec::len), Some(1), "{a}");

    // Both fit: both held, the key expires an hour after its window.
    let a = ledger.reserve(&reserve_body(
        &rid(3),
        300_000,
        vec![draw(team, Some(10_000), None, 10_000, 0), draw(model, None, Some(500), 0, 500)],
    ));
    assert_eq!(a["admitted"], true, "{a}");
    assert_eq!(tokens_left(&a, 0), Some(0));
    assert_eq!(a["draws"][1]["remaining"]["nano_usd"], 0);
    let pttl: u64 = redis.command(&["PTTL", &format!("mg:{{{team}}}:b")])[1..].parse().unwrap();
    let expected = 86_400_000 + 3_600_000;
    assert!(pttl > expected - 60_000 && pttl <= expected, "pttl {pttl}");
}

#[test]
fn a_window_already_over_by_redis_clock_admits_nothing() {
    let redis = Redis::start();
    let ledger = Ledger::start(&redis.url());
    let key = "hourly/ab12/1764716400";
    let mut past = draw(key, Some(1), None, 1, 0);
    // Ended 62 minutes ago: its counters would expire as they are written,
    // and a gateway whose clock is an hour behind could reserve forever.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    past["window_end_ms"] = serde_json::json!(now_ms - 62 * 60_000);
    for i in 0..3 {
        let (status, v) = ledger.post("/v1/reserve", &reserve_body(&rid(i), 300_000, vec![past.clone()]));
        assert_eq!(status, 400, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with("draws[0].window_end_ms"), "{v}");
    }
    assert_eq!(redis.command(&["EXISTS", &format!("mg:{{{key}}}:b")]), ":0", "nothing was written");
}
