//! `scope: global` budgets: the calls to the ledger service (`ledger/`,
//! docs/budgets.md) and the reading of its answers. The ledger keeps one
//! counter per draw key in Redis; reserve and settle are each one atomic
//! script per key, idempotent by the reservation's id.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Amount, Draw, LedgerConfig, Limit};
use crate::credential::callout::{CalloutRequest, CalloutResult};

/// The most of a ledger answer read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

fn limit(l: &Limit) -> Value {
    json!({ "tokens": l.tokens, "nano_usd": l.nano_usd })
}

fn amount(a: &Amount) -> Value {
    json!({ "tokens": a.tokens, "nano_usd": a.nano_usd })
}

fn call(ledger: &LedgerConfig, path: &str, body: &Value) -> CalloutRequest {
    CalloutRequest {
        cluster: ledger.cluster.clone(),
        method: "POST",
        authority: ledger.authority.clone(),
        path: path.to_string(),
        headers: vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("authorization".to_string(), format!("Bearer {}", ledger.key)),
        ],
        body: body.to_string().into_bytes(),
        timeout_ms: ledger.timeout_ms,
    }
}

/// The call that reserves `draws` (global ones) under `reservation`.
pub fn reserve<'a>(ledger: &LedgerConfig, reservation: &str, draws: impl Iterator<Item = &'a Draw>) -> CalloutRequest {
    let draws: Vec<Value> = draws
        .map(|d| {
            json!({ "key": d.key, "window_end_ms": d.window_end_ms, "limit": limit(&d.limit), "amount": amount(&d.reserved) })
        })
        .collect();
    call(ledger, "/v1/reserve", &json!({ "reservation": reservation, "hold_ms": ledger.hold_ms, "draws": draws }))
}

/// The call that settles `draws` at `charge` (0 releases them).
pub fn settle<'a>(
    ledger: &LedgerConfig,
    reservation: &str,
    draws: impl Iterator<Item = &'a Draw>,
    charge: Amount,
) -> CalloutRequest {
    let draws: Vec<Value> = draws
        .map(|d| {
            json!({ "key": d.key, "window_end_ms": d.window_end_ms, "limit": limit(&d.limit), "charge": amount(&charge) })
        })
        .collect();
    call(ledger, "/v1/settle", &json!({ "reservation": reservation, "draws": draws }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    tokens: Option<u64>,
    nano_usd: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDraw {
    key: String,
    remaining: RawLimit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReserved {
    admitted: bool,
    #[serde(default)]
    exhausted: Option<String>,
    draws: Vec<RawDraw>,
}

/// What the ledger said to a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Admitted: what is left on each key.
    Admitted(Vec<(String, Limit)>),
    /// Not admitted: the key without room, and what is left on the keys seen.
    Exhausted(String, Vec<(String, Limit)>),
    /// No usable answer: the budget's `on_unavailable` decides.
    Unavailable(String),
}

/// Why a call that got no answer got none, in words: Envoy's bare
/// `InternalFailure` (its client failed the call before sending it) says
/// nothing to whoever reads the refusal.
fn failed(why: &str) -> String {
    if why == "InternalFailure" {
        return "Envoy has no ledger host to send it to: none is healthy, or too many calls are in flight".into();
    }
    why.to_string()
}

/// Reads the ledger's answer to a reservation of `keys`. Anything but a
/// 200 with a well-formed answer that covers what was asked is
/// `Unavailable` — never admitted.
pub fn reserved(result: &CalloutResult, keys: &[&str]) -> Reserved {
    let body = match result {
        CalloutResult::Failed(why) => return Reserved::Unavailable(failed(why)),
        CalloutResult::Response { status: 200, body, .. } if body.len() <= MAX_ANSWER_BYTES => body,
        CalloutResult::Response { status, .. } => {
            return Reserved::Unavailable(format!("the ledger answered {status}"));
        }
    };
    let Ok(raw) = serde_json::from_slice::<RawReserved>(body) else {
        return Reserved::Unavailable("the ledger's answer is not one".into());
    };
    let left: Vec<(String, Limit)> = raw
        .draws
        .into_iter()
        .map(|d| (d.key, Limit { tokens: d.remaining.tokens, nano_usd: d.remaining.nano_usd }))
        .collect();
    if raw.admitted {
        // Every key asked for must be answered for.
        if keys.iter().all(|k| left.iter().any(|(key, _)| key == k)) && raw.exhausted.is_none() {
            return Reserved::Admitted(left);
        }
        return Reserved::Unavailable("the ledger admitted a reservation it did not account for".into());
    }
    match raw.exhausted {
        Some(key) if keys.contains(&key.as_str()) => Reserved::Exhausted(key, left),
        _ => Reserved::Unavailable("the ledger refused without naming a budget".into()),
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
