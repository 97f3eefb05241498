//! The counters in Redis: one Lua script per operation on one budget key, so
//! the sweep of expired holds, the admission check and the write happen
//! atomically, whichever gateway asks.
//!
//! Per budget key `K`, three Redis keys share the hash tag `{K}` (one Redis
//! Cluster slot):
//! - `mg:{K}:b` hash: `used_tokens`, `used_nusd`, `held_tokens`, `held_nusd`
//! - `mg:{K}:r` sorted set: reservation id → expiry (ms, Redis TIME)
//! - `mg:{K}:a` hash: reservation id → `"tokens:nusd"` held for it

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::protocol::{Amount, MAX_AMOUNT};

/// Shared by both scripts: reads the counters and sweeps expired holds,
/// charging them in full. Leaves `ut, un, ht, hn` (used and held), `now`,
/// `swept`, and `save(window_end_ms)`, which writes the counters back and
/// sets the keys' expiry to the window's end plus an hour.
const PRELUDE: &str = r#"
local MAX = tonumber(ARGV[1])
local b, r, a = KEYS[1], KEYS[2], KEYS[3]
local function num(x) return tonumber(x) or 0 end
local function str(x) return string.format('%.0f', x) end
local function cap(x) if x > MAX then return MAX end return x end
local function floor0(x) if x < 0 then return 0 end return x end
local function split(v)
  local sep = string.find(v, ':', 1, true)
  if not sep then return 0, 0 end
  return num(string.sub(v, 1, sep - 1)), num(string.sub(v, sep + 1))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local c = redis.call('HMGET', b, 'used_tokens', 'used_nusd', 'held_tokens', 'held_nusd')
local ut, un, ht, hn = num(c[1]), num(c[2]), num(c[3]), num(c[4])
local swept = 0
local expired = redis.call('ZRANGEBYSCORE', r, '-inf', now)
for _, id in ipairs(expired) do
  local v = redis.call('HGET', a, id)
  if v then
    local xt, xn = split(v)
    ht, hn = floor0(ht - xt), floor0(hn - xn)
    ut, un = cap(ut + xt), cap(un + xn)
    redis.call('HDEL', a, id)
  end
  swept = swept + 1
end
if swept > 0 then redis.call('ZREMRANGEBYSCORE', r, '-inf', now) end
local function save(window_end)
  redis.call('HSET', b, 'used_tokens', str(ut), 'used_nusd', str(un), 'held_tokens', str(ht), 'held_nusd', str(hn))
  local at = str(window_end + 3600000)
  redis.call('PEXPIREAT', b, at)
  redis.call('PEXPIREAT', r, at)
  redis.call('PEXPIREAT', a, at)
end
"#;

/// ARGV: MAX, id, hold_ms, window_end_ms, limit_tokens, limit_nusd (-1: no
/// limit), amount_tokens, amount_nusd. Returns {status, used_t, used_n,
/// held_t, held_n, swept}; status 1 admitted, 2 already held (idempotent),
/// 0 not admitted, 3 the window has ended by Redis's clock (a gateway
/// clock behind would otherwise reserve on counters Redis expires at once).
const RESERVE: &str = r#"
local id, hold, wend = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if wend <= now then return {3, ut, un, ht, hn, swept} end
local lt, ln = tonumber(ARGV[5]), tonumber(ARGV[6])
local at_, an = tonumber(ARGV[7]), tonumber(ARGV[8])
local function fits(used, held, amount, limit)
  local total = used + held + amount
  if total > MAX then return false end
  return limit < 0 or total <= limit
end
local status = 0
if redis.call('HEXISTS', a, id) == 1 then
  status = 2
elseif fits(ut, ht, at_, lt) and fits(un, hn, an, ln) then
  ht, hn = ht + at_, hn + an
  redis.call('ZADD', r, str(now + hold), id)
  redis.call('HSET', a, id, str(at_) .. ':' .. str(an))
  status = 1
end
if status == 1 or swept > 0 then save(wend) end
return {status, ut, un, ht, hn, swept}
"#;

/// ARGV: MAX, id, window_end_ms, charge_tokens, charge_nusd. Returns
/// {settled (1/0), used_t, used_n, held_t, held_n, swept}.
const SETTLE: &str = r#"
local id, wend = ARGV[2], tonumber(ARGV[3])
local ct, cn = tonumber(ARGV[4]), tonumber(ARGV[5])
local status = 0
local v = redis.call('HGET', a, id)
if v then
  local xt, xn = split(v)
  ht, hn = floor0(ht - xt), floor0(hn - xn)
  ut, un = cap(ut + ct), cap(un + cn)
  redis.call('ZREM', r, id)
  redis.call('HDEL', a, id)
  status = 1
end
if status == 1 or swept > 0 then save(wend) end
return {status, ut, un, ht, hn, swept}
"#;

/// What one script did on one key.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Reserve: 1 admitted, 2 already held, 0 not admitted. Settle: 1 settled, 0 not.
    pub status: i64,
    pub used: Amount,
    pub held: Amount,
    /// Expired reservations charged in full by this call's sweep.
    pub swept: u64,
}

/// Why Redis could not be asked.
#[derive(Debug)]
pub struct Unavailable(pub String);

pub struct Store {
    conn: ConnectionManager,
    timeout: Duration,
    reserve: Script,
    settle: Script,
}

fn keys(key: &str) -> [String; 3] {
    [format!("mg:{{{key}}}:b"), format!("mg:{{{key}}}:r"), format!("mg:{{{key}}}:a")]
}

fn limit_arg(l: Option<u64>) -> i64 {
    // Limits are checked to be below 2^53, so they fit.
    l.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn outcome(v: &[i64]) -> Result<Outcome, Unavailable> {
    let u = |x: i64| u64::try_from(x).unwrap_or(0);
    match v {
        [status, ut, un, ht, hn, swept] => Ok(Outcome {
            status: *status,
            used: Amount { tokens: u(*ut), nano_usd: u(*un) },
            held: Amount { tokens: u(*ht), nano_usd: u(*hn) },
            swept: u(*swept),
        }),
        _ => Err(Unavailable(format!("unexpected script answer {v:?}"))),
    }
}

impl Store {
    /// A lazy connection manager: the ledger starts (and answers 503) while
    /// Redis is down, and connects when it comes up.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("MODELGATE_LEDGER_REDIS: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("redis connection manager: {e}"))?;
        let prelude_and = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Ok(Self { conn, timeout, reserve: prelude_and(RESERVE), settle: prelude_and(SETTLE) })
    }

    /// How long one Redis call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One Redis call, answered within the timeout. A call that finds its
    /// connection dropped (Redis restarted or failed over since this
    /// replica's last call) is sent once more, on the connection the manager
    /// makes anew: otherwise the first question after Redis is back would
    /// be answered 503. Safe: both scripts are idempotent by reservation id
    /// (a reserve that did run answers "already held", a settle that did run
    /// charges nothing more), and PING changes nothing.
    async fn ask<T, F, Fut>(&self, call: F) -> Result<T, Unavailable>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let late = || Unavailable(format!("no answer within {} ms", self.timeout.as_millis()));
        let answer = match tokio::time::timeout_at(deadline, call(self.conn.clone())).await.map_err(|_| late())? {
            Err(e) if e.is_connection_dropped() => {
                tokio::time::timeout_at(deadline, call(self.conn.clone())).await.map_err(|_| late())?
            }
            answer => answer,
        };
        answer.map_err(|e| Unavailable(e.to_string()))
    }

    async fn run(&self, script: &Script, key: &str, args: &[String]) -> Result<Outcome, Unavailable> {
        let mut inv = script.prepare_invoke();
        for k in keys(key) {
            inv.key(k);
        }
        inv.arg(MAX_AMOUNT);
        for a in args {
            inv.arg(a);
        }
        let inv = &inv;
        let v: Vec<i64> = self.ask(|mut conn| async move { inv.invoke_async(&mut conn).await }).await?;
        outcome(&v)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn reserve(
        &self,
        key: &str,
        id: &str,
        hold_ms: u64,
        window_end_ms: u64,
        limit: (Option<u64>, Option<u64>),
        amount: Amount,
    ) -> Result<Outcome, Unavailable> {
        let args = [
            id.to_string(),
            hold_ms.to_string(),
            window_end_ms.to_string(),
            limit_arg(limit.0).to_string(),
            limit_arg(limit.1).to_string(),
            amount.tokens.to_string(),
            amount.nano_usd.to_string(),
        ];
        self.run(&self.reserve, key, &args).await
    }

    pub async fn settle(
        &self,
        key: &str,
        id: &str,
        window_end_ms: u64,
        charge: Amount,
    ) -> Result<Outcome, Unavailable> {
        let args = [id.to_string(), window_end_ms.to_string(), charge.tokens.to_string(), charge.nano_usd.to_string()];
        self.run(&self.settle, key, &args).await
    }

    pub async fn ping(&self) -> Result<(), Unavailable> {
        let pong: String = self.ask(|mut conn| async move { redis::cmd("PING").query_async(&mut conn).await }).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Unavailable(format!("PING answered {pong:?}")))
        }
    }
}
