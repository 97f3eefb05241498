//! The budget ledger's settle and release calls, sent from the root
//! context after the requests that made them are gone (a request's own
//! call-out would be cancelled with it). Bounded: a call that cannot be
//! queued or keeps failing is dropped, and the ledger then charges its
//! reservation in full when it expires — never less.

use std::cell::RefCell;
use std::collections::VecDeque;

use modelgate_policies::{CalloutRequest, CalloutResult};
use proxy_wasm::types::LogLevel;

use crate::host;

/// Calls waiting to be sent, at most.
pub const MAX_QUEUED: usize = 4_096;
/// Calls in flight from this VM, at most.
const MAX_IN_FLIGHT: usize = 64;
/// Tries per call.
const ATTEMPTS: u32 = 5;

struct Queued {
    call: CalloutRequest,
    attempts: u32,
    not_before_ms: u64,
}

#[derive(Default)]
pub struct LedgerQueue {
    waiting: RefCell<VecDeque<Queued>>,
    in_flight: RefCell<Vec<(u32, Queued)>>,
    /// Calls given up on (queue full, or out of tries).
    pub dropped: std::cell::Cell<u64>,
}

impl LedgerQueue {
    pub fn push(&self, call: CalloutRequest) {
        let Ok(mut waiting) = self.waiting.try_borrow_mut() else { return self.drop_one() };
        if waiting.len() >= MAX_QUEUED {
            waiting.pop_front();
            self.drop_one();
        }
        waiting.push_back(Queued { call, attempts: 0, not_before_ms: 0 });
    }

    fn drop_one(&self) {
        self.dropped.set(self.dropped.get() + 1);
    }

    pub fn busy(&self) -> bool {
        self.waiting.try_borrow().is_ok_and(|w| !w.is_empty())
            || self.in_flight.try_borrow().is_ok_and(|f| !f.is_empty())
    }

    /// Sends what may go now (from the root context).
    pub fn send(&self, now_ms: u64) {
        let (Ok(mut waiting), Ok(mut in_flight)) = (self.waiting.try_borrow_mut(), self.in_flight.try_borrow_mut())
        else {
            return;
        };
        let mut later = VecDeque::new();
        while in_flight.len() < MAX_IN_FLIGHT {
            let Some(q) = waiting.pop_front() else { break };
            if q.not_before_ms > now_ms {
                later.push_back(q);
                continue;
            }
            match host::dispatch(&q.call) {
                Ok(token) => in_flight.push((token, q)),
                Err(why) => {
                    host::log(LogLevel::Warn, &format!("budget ledger call to {:?} refused: {why}", q.call.cluster));
                    later.push_back(Queued { attempts: q.attempts + 1, not_before_ms: now_ms + 1_000, ..q });
                }
            }
        }
        waiting.extend(later);
        let before = waiting.len();
        waiting.retain(|q| q.attempts < ATTEMPTS);
        for _ in waiting.len()..before {
            self.drop_one();
        }
    }

    /// The root received an answer: `false` when `token` is not a ledger call.
    pub fn answered(&self, token: u32, result: &CalloutResult, now_ms: u64) -> bool {
        let Ok(mut in_flight) = self.in_flight.try_borrow_mut() else { return false };
        let Some(at) = in_flight.iter().position(|(t, _)| *t == token) else { return false };
        let (_, q) = in_flight.swap_remove(at);
        drop(in_flight);
        let ok = matches!(result, CalloutResult::Response { status: 200, .. });
        if !ok {
            let attempts = q.attempts + 1;
            if attempts >= ATTEMPTS {
                host::log(LogLevel::Warn, "budget ledger settle given up: the reservation will be charged in full");
                self.drop_one();
            } else if let Ok(mut waiting) = self.waiting.try_borrow_mut() {
                let backoff = 250u64 << attempts.min(6);
                waiting.push_back(Queued { attempts, not_before_ms: now_ms + backoff, ..q });
            }
        }
        true
    }

    pub fn sizes(&self) -> (u64, u64) {
        let w = self.waiting.try_borrow().map_or(0, |w| w.len());
        let f = self.in_flight.try_borrow().map_or(0, |f| f.len());
        (w as u64, f as u64)
    }
}
