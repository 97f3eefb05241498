//! The compiled `budgets`, `prices` and `ledger` (SPEC §9): what the
//! configuration says. What a request draws on, reserves and settles is
//! `crate::budget`'s.

use super::providers::ProviderSet;
pub use super::window::Window;
use crate::identity::spiffe::{ModelPattern, WorkloadPattern};

/// The compiled `budgets`, `prices` and `ledger`.
#[derive(Debug, Default)]
pub struct Budgets {
    pub list: Vec<Budget>,
    pub prices: Vec<Price>,
    pub ledger: Option<LedgerConfig>,
}

#[derive(Debug)]
pub struct Budget {
    pub id: String,
    pub workloads: Vec<WorkloadPattern>,
    pub per: Per,
    pub providers: ProviderSet,
    /// Empty: every model.
    pub models: Vec<ModelPattern>,
    pub window: Window,
    pub limit: Limit,
    pub scope: Scope,
    pub on_unavailable: OnUnavailable,
    /// `per: workload`: the workloads one gateway tracks in a window
    /// (its shared-data slots); 1 for a group.
    pub max_workloads: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    Workload,
    Group,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Gateway,
    Global,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Gateway => "gateway",
            Scope::Global => "global",
        }
    }
}

/// What a `scope: global` budget does when the ledger cannot answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnUnavailable {
    /// Refuse `budget_unavailable` (the default).
    Deny,
    /// Spend from this gateway's own share of the cap, in per-mille.
    LocalShare(u32),
}

/// A price: nano-dollars per token (USD per million tokens × 1000).
#[derive(Debug)]
pub struct Price {
    /// `None`: every provider.
    pub provider: Option<String>,
    pub models: Vec<ModelPattern>,
    pub input: u64,
    pub output: u64,
    /// Input read from the provider's prompt cache.
    pub cached_input: u64,
    /// Input written to the provider's prompt cache.
    pub cache_write: u64,
}

#[derive(Debug)]
pub struct LedgerConfig {
    pub cluster: String,
    pub authority: String,
    pub timeout_ms: u64,
    pub hold_ms: u64,
    pub key: String,
}

/// Tokens and nano-dollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amount {
    pub tokens: u64,
    pub nano_usd: u64,
}

impl Amount {
    pub fn plus(self, other: Amount) -> Amount {
        Amount {
            tokens: self.tokens.saturating_add(other.tokens),
            nano_usd: self.nano_usd.saturating_add(other.nano_usd),
        }
    }

    pub fn minus(self, other: Amount) -> Amount {
        Amount {
            tokens: self.tokens.saturating_sub(other.tokens),
            nano_usd: self.nano_usd.saturating_sub(other.nano_usd),
        }
    }
}

/// A budget's caps; `None` where it sets none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    pub tokens: Option<u64>,
    pub nano_usd: Option<u64>,
}

impl Limit {
    /// Whether `amount` fits beside what is spent and held already.
    pub fn fits(&self, taken: Amount, amount: Amount) -> bool {
        let fits = |cap: Option<u64>, taken: u64, more: u64| {
            cap.is_none_or(|c| taken.checked_add(more).is_some_and(|t| t <= c))
        };
        fits(self.tokens, taken.tokens, amount.tokens) && fits(self.nano_usd, taken.nano_usd, amount.nano_usd)
    }

    /// What is left beside `taken`.
    pub fn remaining(&self, taken: Amount) -> Limit {
        Limit {
            tokens: self.tokens.map(|c| c.saturating_sub(taken.tokens)),
            nano_usd: self.nano_usd.map(|c| c.saturating_sub(taken.nano_usd)),
        }
    }

    /// This limit's share, in per-mille (rounded down).
    pub fn share(&self, per_mille: u32) -> Limit {
        let part = |c: u64| u64::try_from(u128::from(c) * u128::from(per_mille) / 1000).unwrap_or(c);
        Limit { tokens: self.tokens.map(part), nano_usd: self.nano_usd.map(part) }
    }
}

/// USD per million tokens → nano-dollars per token, rounded up (a price
/// is never understated); `None` when negative or not finite.
pub fn nano_per_token(usd_per_million: f64) -> Option<u64> {
    if !usd_per_million.is_finite() || !(0.0..=1e9).contains(&usd_per_million) {
        return None;
    }
    let nano = usd_per_million * 1000.0;
    let rounded = nano.round();
    // 0.15 × 1000 is 150.00000000000003: within a millionth of a whole
    // number, it is that number.
    let whole = if (nano - rounded).abs() < 1e-6 { rounded } else { nano.ceil() };
    Some(whole as u64)
}

/// Dollars → nano-dollars, rounded down (a cap is never overstated).
pub fn nano_usd(usd: f64) -> Option<u64> {
    if !usd.is_finite() || usd <= 0.0 || usd > 1e9 {
        return None;
    }
    let nano = usd * 1e9;
    let rounded = nano.round();
    let whole = if (nano - rounded).abs() < 1e-3 { rounded } else { nano.floor() };
    Some(whole as u64)
}
