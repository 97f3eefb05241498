//! The wire protocol: request and answer bodies, and the checks a request
//! passes before Redis is asked anything.
//!
//! Parsing is strict: unknown fields are refused, every amount is an unsigned
//! integer below 2^53 (Lua numbers are doubles; above that they stop being
//! exact), and every error names the field it is about.

use serde::{Deserialize, Serialize};

/// Largest request body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Most draws in one request.
pub const MAX_DRAWS: usize = 16;
/// Longest budget key, in bytes.
pub const MAX_KEY_LEN: usize = 200;
/// Amounts, limits and times must stay below 2^53: the scripts do their sums
/// in Lua numbers (doubles), exact up to there.
pub const MAX_AMOUNT: u64 = (1 << 53) - 1;
/// Longest hold: a day. A reservation not settled by then is charged in full.
pub const MAX_HOLD_MS: u64 = 24 * 60 * 60 * 1000;

/// Both dimensions of a budget: tokens and nano-USD (1e-9 USD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub tokens: u64,
    pub nano_usd: u64,
}

/// A limit per dimension; `null` (or absent) where the dimension is not limited.
/// The same shape carries `remaining` in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub tokens: Option<u64>,
    pub nano_usd: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveDraw {
    pub key: String,
    pub window_end_ms: u64,
    pub limit: Limit,
    pub amount: Amount,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub reservation: String,
    pub hold_ms: u64,
    pub draws: Vec<ReserveDraw>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleDraw {
    pub key: String,
    pub window_end_ms: u64,
    pub limit: Limit,
    pub charge: Amount,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    pub reservation: String,
    pub draws: Vec<SettleDraw>,
}

#[derive(Debug, Serialize)]
pub struct DrawRemaining {
    pub key: String,
    pub remaining: Limit,
}

#[derive(Debug, Serialize)]
pub struct ReserveAnswer {
    pub admitted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exhausted: Option<String>,
    pub draws: Vec<DrawRemaining>,
}

#[derive(Debug, Serialize)]
pub struct SettledDraw {
    pub key: String,
    pub settled: bool,
    pub remaining: Limit,
}

#[derive(Debug, Serialize)]
pub struct SettleAnswer {
    pub draws: Vec<SettledDraw>,
}

/// Parses a JSON body into `T`; the error names the field (`draws[0].amount.tokens: …`).
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            format!("body: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })?;
    de.end().map_err(|e| format!("body: {e}"))?;
    Ok(value)
}

fn check_reservation(id: &str) -> Result<(), String> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err("reservation: must be 32 lowercase hex digits".into())
    }
}

fn check_key(field: &str, key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!("{field}: length must be 1..={MAX_KEY_LEN} bytes"));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-')) {
        return Err(format!("{field}: only A-Z a-z 0-9 . _ : / - are allowed"));
    }
    Ok(())
}

fn check_small(field: &str, v: u64) -> Result<(), String> {
    if v > MAX_AMOUNT {
        Err(format!("{field}: {v} is above the largest accepted value {MAX_AMOUNT} (2^53-1)"))
    } else {
        Ok(())
    }
}

fn check_draw_common<'a>(
    i: usize,
    key: &'a str,
    window_end_ms: u64,
    limit: &Limit,
    amount_field: &str,
    amount: &Amount,
    seen: &mut Vec<&'a str>,
) -> Result<(), String> {
    check_key(&format!("draws[{i}].key"), key)?;
    if seen.contains(&key) {
        return Err(format!("draws[{i}].key: {key} appears twice in one request"));
    }
    seen.push(key);
    if window_end_ms == 0 {
        return Err(format!("draws[{i}].window_end_ms: must be a time in ms since the Unix epoch"));
    }
    check_small(&format!("draws[{i}].window_end_ms"), window_end_ms)?;
    if let Some(t) = limit.tokens {
        check_small(&format!("draws[{i}].limit.tokens"), t)?;
    }
    if let Some(n) = limit.nano_usd {
        check_small(&format!("draws[{i}].limit.nano_usd"), n)?;
    }
    check_small(&format!("draws[{i}].{amount_field}.tokens"), amount.tokens)?;
    check_small(&format!("draws[{i}].{amount_field}.nano_usd"), amount.nano_usd)?;
    Ok(())
}

fn check_draw_count(n: usize) -> Result<(), String> {
    if n == 0 || n > MAX_DRAWS {
        Err(format!("draws: must hold 1..={MAX_DRAWS} draws, not {n}"))
    } else {
        Ok(())
    }
}

impl ReserveRequest {
    pub fn validate(&self) -> Result<(), String> {
        check_reservation(&self.reservation)?;
        if self.hold_ms == 0 || self.hold_ms > MAX_HOLD_MS {
            return Err(format!("hold_ms: must be 1..={MAX_HOLD_MS}"));
        }
        check_draw_count(self.draws.len())?;
        let mut seen = Vec::with_capacity(self.draws.len());
        for (i, d) in self.draws.iter().enumerate() {
            check_draw_common(i, &d.key, d.window_end_ms, &d.limit, "amount", &d.amount, &mut seen)?;
        }
        Ok(())
    }
}

impl SettleRequest {
    pub fn validate(&self) -> Result<(), String> {
        check_reservation(&self.reservation)?;
        check_draw_count(self.draws.len())?;
        let mut seen = Vec::with_capacity(self.draws.len());
        for (i, d) in self.draws.iter().enumerate() {
            check_draw_common(i, &d.key, d.window_end_ms, &d.limit, "charge", &d.charge, &mut seen)?;
        }
        Ok(())
    }
}

/// `limit − used − held`, saturating at 0; `None` where there is no limit.
pub fn remaining(limit: &Limit, used: Amount, held: Amount) -> Limit {
    Limit {
        tokens: limit.tokens.map(|l| l.saturating_sub(used.tokens.saturating_add(held.tokens))),
        nano_usd: limit.nano_usd.map(|l| l.saturating_sub(used.nano_usd.saturating_add(held.nano_usd))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn reserve(body: &str) -> Result<ReserveRequest, String> {
        let r: ReserveRequest = parse(body.as_bytes())?;
        r.validate()?;
        Ok(r)
    }

    fn body(draws: &str) -> String {
        format!(r#"{{"reservation":"{ID}","hold_ms":1000,"draws":[{draws}]}}"#)
    }

    const DRAW: &str =
        r#"{"key":"k/1","window_end_ms":5,"limit":{"tokens":10,"nano_usd":null},"amount":{"tokens":1,"nano_usd":0}}"#;

    #[test]
    fn accepts_a_well_formed_reserve() {
        let r = reserve(&body(DRAW)).unwrap();
        assert_eq!(r.draws[0].limit, Limit { tokens: Some(10), nano_usd: None });
    }

    #[test]
    fn names_the_field() {
        let e = reserve(&body(&DRAW.replace(r#""tokens":1,"#, r#""tokens":"1","#))).unwrap_err();
        assert!(e.starts_with("draws[0].amount.tokens:"), "{e}");
        let e = reserve(&body(&DRAW.replace(r#""key":"k/1","#, r#""key":"k/1","extra":1,"#))).unwrap_err();
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = reserve(&body(&DRAW.replace("k/1", "k 1"))).unwrap_err();
        assert!(e.starts_with("draws[0].key:"), "{e}");
        let e = reserve(&body(&DRAW.replace(r#""tokens":1,"#, r#""tokens":9007199254740992,"#))).unwrap_err();
        assert!(e.starts_with("draws[0].amount.tokens:"), "{e}");
        let e =
            reserve(&format!(r#"{{"reservation":"{}","hold_ms":1,"draws":[{DRAW}]}}"#, ID.to_uppercase())).unwrap_err();
        assert!(e.starts_with("reservation:"), "{e}");
        let e = reserve(&format!(r#"{{"reservation":"{ID}","draws":[{DRAW}]}}"#)).unwrap_err();
        assert!(e.contains("missing field `hold_ms`"), "{e}");
        let e = reserve(&body(&format!("{DRAW},{DRAW}"))).unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = reserve(&body("")).unwrap_err();
        assert!(e.starts_with("draws:"), "{e}");
        let e = reserve(&format!("{} x", body(DRAW))).unwrap_err();
        assert!(e.starts_with("body:"), "{e}");
    }

    #[test]
    fn remaining_saturates() {
        let l = Limit { tokens: Some(10), nano_usd: None };
        let r = remaining(&l, Amount { tokens: 8, nano_usd: 5 }, Amount { tokens: 4, nano_usd: 0 });
        assert_eq!(r, Limit { tokens: Some(0), nano_usd: None });
    }
}
