//! Budgets (SPEC §9, docs/budgets.md): reserve an upper bound of a call's
//! tokens and cost on every budget it draws on before anything is
//! forwarded, and settle to what the provider reported when it ends.
//!
//! - [`plan`]: which budgets a decided request draws on, and its bound;
//! - [`slots`]: `scope: gateway` budgets in Envoy's shared data, by
//!   compare-and-swap (the host swaps, this module decides);
//! - [`ledger`]: `scope: global` budgets through the ledger service.
//!
//! Amounts are whole tokens and nano-dollars (1e-9 USD): integers, so a
//! sum is exact and a bound is a bound.

pub mod input;
pub mod ledger;
pub mod slots;

use crate::api::Usage;
pub use crate::config::budget::{Amount, Budget, Budgets, LedgerConfig, Limit, OnUnavailable, Per, Price, Scope};
use crate::identity::spiffe::SpiffeId;
use crate::reason::{Denial, Reason};
use crate::util::text::bounded;

/// Tokens an api may add to a request beyond its body's bytes: chat
/// templates, and the system prompt a provider adds for tools (Anthropic
/// documents 346 tokens). A body's text is at least one byte per token.
pub const INPUT_OVERHEAD_TOKENS: u64 = 1_024;

/// A price's rates, as a plan keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_write: u64,
}

/// Where a draw's reservation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Not reserved (yet, or refused).
    No,
    /// Reserved in this gateway's shared data.
    Gateway,
    /// Reserved in the ledger.
    Ledger,
    /// Reserved in this gateway's local share while the ledger could not answer.
    LocalShare,
    /// Settled (or released).
    Settled,
}

/// One budget a request draws on.
#[derive(Clone, Debug)]
pub struct Draw {
    /// The budget's index in [`Budgets::list`].
    pub budget: usize,
    pub id: String,
    /// `<id>/<subject>/<window start, s>`: the counter this draw is on.
    pub key: String,
    /// The subject: a workload's digest, or `group`.
    pub subject: String,
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    pub limit: Limit,
    pub scope: Scope,
    pub reserved: Amount,
    pub charged: Option<Amount>,
    /// What was left after the last operation, when known.
    pub remaining: Option<Limit>,
    pub held: Held,
    /// Counted in this gateway's local share (the ledger did not answer).
    pub local: bool,
}

/// What a decided request draws on: its bound, and one draw per budget.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub draws: Vec<Draw>,
    pub input_bound: u64,
    pub output_bound: u64,
    /// The price of the model, when one is listed.
    pub price: Option<Rates>,
    /// A random id for the ledger (32 hex), set when a draw is global.
    pub reservation: String,
}

impl Budgets {
    /// The budgets a request by `identity` to `provider`'s `model` draws
    /// on. A model matches as a deny rule matches it — in any case, and
    /// through a fine-tune's, a version's or a region's spelling — so a
    /// budget is never escaped by a spelling of its models.
    pub fn matching<'a>(
        &'a self,
        identity: &'a SpiffeId,
        provider: &'a str,
        model: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Budget)> + 'a {
        let spellings = crate::decision::deny_spellings(model);
        self.list.iter().enumerate().filter(move |(_, b)| {
            b.workloads.iter().any(|w| w.matches(identity))
                && b.providers.contains(provider)
                && (b.models.is_empty()
                    || b.models.iter().any(|m| spellings.iter().any(|s| m.matches(s) || m.matches_loosely(s))))
        })
    }

    /// The price of `provider`'s `model`: the first entry that lists it.
    pub fn price(&self, provider: &str, model: &str) -> Option<&Price> {
        self.prices
            .iter()
            .find(|p| p.provider.as_deref().is_none_or(|n| n == provider) && p.models.iter().any(|m| m.matches(model)))
    }
}

/// A decided request, as a budget sees it.
pub struct Call<'a> {
    pub identity: &'a SpiffeId,
    pub provider: &'a str,
    /// The model in the provider's namespace.
    pub model: &'a str,
    /// The body as sent (read for what it makes the provider read).
    pub body: &'a [u8],
    /// The body's length as forwarded (with the gateway's edits).
    pub forwarded_bytes: u64,
    /// The most the request can generate (`None`: nothing bounds it).
    pub output: Option<u64>,
}

/// What `call` reserves at `now_ms`: `Ok(None)` when no budget applies.
pub fn plan(budgets: &Budgets, call: &Call<'_>, now_ms: u64) -> Result<Option<Plan>, Denial> {
    // No budgets: nothing to match (no spellings built) on every call.
    if budgets.list.is_empty() {
        return Ok(None);
    }
    let Call { identity, provider, model, body, forwarded_bytes, output } = *call;
    let matching: Vec<(usize, &Budget)> = budgets.matching(identity, provider, model).collect();
    let Some((_, first)) = matching.first() else { return Ok(None) };
    let scanned = input::scan(body).map_err(|what| {
        Denial::new(
            Reason::MaxTokensMissing,
            format!(
                "budget {:?} applies, and the request makes the provider read input its body does not bound ({what}): \
                 send the content itself",
                first.id
            ),
        )
        .with_detail("input_unbounded")
    })?;
    let Some(output_bound) = output else {
        return Err(Denial::new(
            Reason::MaxTokensMissing,
            format!(
                "budget {:?} applies: the request must bound its output (max_tokens or the model family's own field), \
                 or the rule must cap it",
                first.id
            ),
        )
        .with_detail("max_tokens_missing"));
    };
    let input_bound = forwarded_bytes.saturating_add(INPUT_OVERHEAD_TOKENS).saturating_add(scanned.extra_tokens);
    let tokens = input_bound.saturating_add(output_bound);
    let price = budgets.price(provider, model).map(|p| Rates {
        input: p.input,
        output: p.output,
        cached_input: p.cached_input,
        cache_write: p.cache_write,
    });
    let mut nano_usd = 0;
    if let Some(r) = price {
        // Any input token may be billed at the dearest input rate.
        let input = r.input.max(r.cached_input).max(r.cache_write);
        nano_usd = input_bound.saturating_mul(input).saturating_add(output_bound.saturating_mul(r.output));
    } else if let Some((_, b)) = matching.iter().find(|(_, b)| b.limit.nano_usd.is_some()) {
        return Err(Denial::new(
            Reason::PriceUnknown,
            format!(
                "budget {:?} counts dollars, and no price is listed for {provider:?} model {:?}",
                b.id,
                bounded(model)
            ),
        )
        .with_detail("price_unknown"));
    }
    // A price the table does not hold (a priority or fast tier, a region's
    // surcharge, audio): a dollar budget cannot bound it.
    if let (Some(what), Some((_, b))) = (scanned.unpriced, matching.iter().find(|(_, b)| b.limit.nano_usd.is_some())) {
        return Err(Denial::new(
            Reason::PriceUnknown,
            format!("budget {:?} counts dollars, and the prices do not cover {what}", b.id),
        )
        .with_detail("unpriced_option"));
    }
    let reserved = Amount { tokens, nano_usd };
    let draws = matching
        .into_iter()
        .map(|(index, b)| {
            let (start, end) = b.window.bounds(now_ms);
            let subject = match b.per {
                Per::Workload => crate::util::digest::sha256_hex(identity.as_str().as_bytes())[..16].to_string(),
                Per::Group => "group".to_string(),
            };
            Draw {
                budget: index,
                id: b.id.clone(),
                key: format!("{}/{subject}/{}", b.id, start / 1000),
                subject,
                window_start_ms: start,
                window_end_ms: end,
                limit: b.limit,
                scope: b.scope,
                reserved,
                charged: None,
                remaining: None,
                held: Held::No,
                local: false,
            }
        })
        .collect();
    Ok(Some(Plan { draws, input_bound, output_bound, price, reservation: String::new() }))
}

impl Plan {
    /// What the call costs: the usage the provider reported when it is
    /// complete, the whole reservation otherwise (a cut stream, a vanished
    /// client, a response with no usage).
    pub fn charge(&self, usage: Option<&Usage>, complete: bool) -> Amount {
        let reserved = Amount {
            tokens: self.input_bound.saturating_add(self.output_bound),
            nano_usd: self.draws.first().map_or(0, |d| d.reserved.nano_usd),
        };
        let Some(u) = usage.filter(|_| complete) else { return reserved };
        // An endpoint that generates nothing reports no output.
        let output = u.output_tokens.or((self.output_bound == 0).then_some(0));
        let (Some(input), Some(output)) = (u.input_tokens, output) else { return reserved };
        let cached = u.cached_input_tokens.unwrap_or(0).min(input);
        let written = u.cache_write_tokens.unwrap_or(0).min(input - cached);
        // A total above input and output counts what neither names (a
        // tool's prompt, thinking some apis leave out of the output): it
        // is charged too, at the dearer price.
        let unnamed = u.total_tokens.unwrap_or(0).saturating_sub(input.saturating_add(output));
        let nano_usd = self.price.map_or(0, |r| {
            (input - cached - written)
                .saturating_mul(r.input)
                .saturating_add(cached.saturating_mul(r.cached_input))
                .saturating_add(written.saturating_mul(r.cache_write))
                .saturating_add(output.saturating_mul(r.output))
                .saturating_add(unnamed.saturating_mul(r.input.max(r.output)))
        });
        Amount { tokens: input.saturating_add(output).saturating_add(unnamed), nano_usd }
    }
}

/// Endpoints that produce what no request field bounds (images, audio):
/// a budget cannot reserve an upper bound for them, so refuses them.
const UNBOUNDED_OUTPUT: &[&str] = &["/images/", "/audio/", ":predict", "/realtime"];

/// The most tokens a request to `endpoint` can make the provider generate
/// (`cap`: the deciding rule's `max_tokens`): 0 for endpoints that
/// generate none (embeddings, moderations, token counts); `None` when
/// nothing bounds it.
pub fn output_of(endpoint: &crate::api::Endpoint, body: &crate::body::RequestBody, cap: Option<u64>) -> Option<u64> {
    if !endpoint.max_tokens.is_empty() {
        return body.output_bound(cap);
    }
    if UNBOUNDED_OUTPUT.iter().any(|p| endpoint.path.contains(p)) {
        return None;
    }
    Some(0)
}

/// A nano-dollar amount in dollars, for the record.
pub fn usd(nano: u64) -> f64 {
    // Exact to the nano-dollar for any amount below 2^53.
    nano as f64 / 1e9
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
