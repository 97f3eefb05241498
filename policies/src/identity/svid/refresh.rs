//! When a bundle endpoint is fetched, and by whom: the schedule every worker
//! VM shares through Envoy's shared data, so that one VM fetches at a time
//! and all of them install what it got.
//!
//! The *lease* (one per endpoint) says who is fetching, until when the
//! fetch may take before another VM may try, when the next fetch is due,
//! and how many fetches in a row have failed. VMs take it with
//! compare-and-swap; the host does the swapping, this module the deciding.
//! Who holds it is a [`Hold`], the lease type the token broker's slots use
//! too.

use crate::util::lease::Hold;

/// The lease of one bundle endpoint, as stored in shared data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// The VM fetching now (a random nonce), 0 when none is.
    pub holder: u64,
    /// When the holder's fetch is given up on.
    pub until_ms: u64,
    /// When the next fetch is due.
    pub due_ms: u64,
    /// Fetches in a row that failed.
    pub failures: u32,
    /// When the bundle published now was last fetched (or found unchanged):
    /// a configuration whose own `refresh_seconds` is shorter than the
    /// schedule another configuration left fetches sooner (see
    /// [`Lease::takeable`]).
    pub fetched_ms: u64,
}

/// Time a holder has beyond its fetch's timeout before it is given up on.
const GRACE_MS: u64 = 2_000;
/// Retries after a failure: 1 s, 2 s, 4 s, … up to this (and never later
/// than the refresh interval).
const MAX_BACKOFF_MS: u64 = 30_000;

impl Lease {
    /// Reads a stored lease; anything unreadable is a lease nobody holds
    /// with a fetch due now (failing towards a fresh fetch, never towards
    /// no fetch at all).
    pub fn parse(bytes: &[u8]) -> Lease {
        let text = std::str::from_utf8(bytes).unwrap_or("");
        let mut fields = text.split(',').map(|f| f.parse::<u64>().ok());
        let mut next = || fields.next();
        match (next(), next(), next(), next(), next(), next()) {
            (
                Some(Some(holder)),
                Some(Some(until_ms)),
                Some(Some(due_ms)),
                Some(Some(failures)),
                Some(Some(fetched_ms)),
                None,
            ) => Lease { holder, until_ms, due_ms, failures: u32::try_from(failures).unwrap_or(u32::MAX), fetched_ms },
            _ => Lease::default(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        format!("{},{},{},{},{}", self.holder, self.until_ms, self.due_ms, self.failures, self.fetched_ms).into_bytes()
    }

    /// Whether a VM may take the lease now, for a configuration that
    /// refreshes every `interval_ms`: nobody holds it and a fetch is due, or
    /// the holder has overrun its time. Due is the schedule in the lease
    /// (left by whichever configuration fetched last), or — unless fetches
    /// are failing and backing off — this configuration's own interval
    /// since the last fetch, whichever comes first: a policy that refreshes
    /// often is not held to the hour another policy left.
    pub fn takeable(&self, now_ms: u64, interval_ms: u64) -> bool {
        let own_due = self.fetched_ms.saturating_add(interval_ms);
        !self.hold().held(now_ms)
            && (self.holder != 0 || now_ms >= self.due_ms || (self.failures == 0 && now_ms >= own_due))
    }

    pub fn taken_by(&self, holder: u64, now_ms: u64, timeout_ms: u64) -> Lease {
        let Hold { holder, until_ms } = Hold::taken(holder, now_ms, timeout_ms + GRACE_MS);
        Lease { holder, until_ms, ..*self }
    }

    /// Who holds it, and until when.
    pub fn hold(&self) -> Hold {
        Hold { holder: self.holder, until_ms: self.until_ms }
    }

    /// After a fetch that was accepted: due again after the interval, less
    /// up to a tenth of it (`random` spreads the gateways of a fleet).
    pub fn succeeded(now_ms: u64, interval_ms: u64, random: u64) -> Lease {
        Lease {
            holder: 0,
            until_ms: 0,
            due_ms: now_ms + jittered(interval_ms, random),
            failures: 0,
            fetched_ms: now_ms,
        }
    }

    /// After a fetch that failed: due again soon, backing off, never later
    /// than a regular refresh.
    pub fn failed(&self, now_ms: u64, interval_ms: u64, random: u64) -> Lease {
        let failures = self.failures.saturating_add(1);
        let backoff = 1_000u64.saturating_mul(1 << (failures - 1).min(15)).min(MAX_BACKOFF_MS);
        Lease { holder: 0, until_ms: 0, due_ms: now_ms + jittered(backoff.min(interval_ms), random), failures, ..*self }
    }
}

/// The time between two fetches: the endpoint's `refresh_seconds`, or the
/// bundle's `spiffe_refresh_hint` when that is shorter (at least a second).
pub fn interval_ms(refresh_seconds: u64, hint: Option<u64>) -> u64 {
    let seconds = hint.map_or(refresh_seconds, |h| h.clamp(1, refresh_seconds));
    seconds.saturating_mul(1_000)
}

fn jittered(ms: u64, random: u64) -> u64 {
    ms - random % (ms / 10 + 1)
}

use super::bundle::{parse_fetched, Bundle, Format};

/// A bundle as published in shared data: its sequence (so the next fetcher
/// can refuse an older one without parsing) and the document.
pub fn publish(sequence: Option<u64>, doc: &[u8]) -> Vec<u8> {
    let mut out = sequence.map_or_else(|| "-".to_string(), |s| s.to_string()).into_bytes();
    out.push(b'\n');
    out.extend_from_slice(doc);
    out
}

/// The sequence and the document of a published bundle.
pub fn published(bytes: &[u8]) -> Option<(Option<u64>, &[u8])> {
    let newline = bytes.iter().position(|b| *b == b'\n')?;
    let (head, doc) = (std::str::from_utf8(&bytes[..newline]).ok()?, &bytes[newline + 1..]);
    let sequence = if head == "-" { None } else { Some(head.parse().ok()?) };
    Some((sequence, doc))
}

/// What a fetch brought, judged against the bundle published now.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// A new bundle: publish `value` for every VM to install.
    Publish { bundle: Bundle, value: Vec<u8> },
    /// The bundle in force, fetched again (same bytes or same sequence).
    Unchanged { refresh_hint: Option<u64> },
    /// Nothing usable: the last good bundle stays.
    Refused(String),
}

/// Judges a bundle endpoint's answer: `status` is `None` when there was
/// none (connect failure, reset, timeout).
pub fn judge(current: Option<&[u8]>, status: Option<u16>, body: &[u8], format: Format) -> Fetched {
    match status {
        None => return Fetched::Refused("no response (connect failure, reset or timeout)".into()),
        Some(200) => {}
        Some(other) => return Fetched::Refused(format!("status {other}")),
    }
    let bundle = match parse_fetched(body, format) {
        Ok(bundle) => bundle,
        Err(e) if e.path.is_empty() => return Fetched::Refused(format!("not a bundle: {}", e.message)),
        Err(e) => return Fetched::Refused(format!("not a bundle: {}: {}", e.path, e.message)),
    };
    if let Some((installed, doc)) = current.and_then(published) {
        if doc == body {
            return Fetched::Unchanged { refresh_hint: bundle.refresh_hint };
        }
        match (installed, bundle.sequence) {
            (Some(installed), Some(new)) if new < installed => {
                return Fetched::Refused(format!("spiffe_sequence {new} is older than the installed {installed}"))
            }
            (Some(installed), Some(new)) if new == installed => {
                return Fetched::Unchanged { refresh_hint: bundle.refresh_hint }
            }
            _ => {}
        }
    }
    Fetched::Publish { value: publish(bundle.sequence, body), bundle }
}

#[cfg(test)]
#[path = "refresh_tests.rs"]
mod tests;
