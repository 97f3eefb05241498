//! Budgets in the flow (docs/budgets.md): an allowed request reserves its
//! bound on every budget it draws on before anything is forwarded, and the
//! reservation is settled when the request ends. Gateway budgets reserve in
//! shared data at once; global ones through one ledger call-out, while the
//! request is held.

use crate::budget::ledger::{self, Reserved};
use crate::budget::slots::{self, Refused};
use crate::budget::{Amount, Budgets, Draw, Held, Limit, OnUnavailable, Plan, Scope};
use crate::credential::callout::{CalloutRequest, CalloutResult};
use crate::flow::events::Env;
use crate::reason::{Denial, Reason};
use crate::util::digest::hex;

/// What reserving came to.
pub enum Reserve {
    /// Every draw is held: go on.
    Held,
    /// The gateway draws are held; ask the ledger for the global ones.
    Ledger(CalloutRequest),
    /// Refused: nothing is held.
    Refuse(Denial),
}

fn exhausted(budgets: &Budgets, draw: &Draw, now_ms: u64, left: Limit) -> Denial {
    let budget = budgets.list.get(draw.budget);
    let retry = budget.map_or(1, |b| b.window.retry_after_s(now_ms));
    let window = budget.map_or("", |b| b.window.name());
    let mut d = Denial::new(
        Reason::BudgetExhausted,
        format!(
            "budget {:?} has no room for this call this {window} ({} left); it renews in {retry} s",
            draw.id,
            describe(left)
        ),
    )
    .with_detail(draw.id.clone());
    d.retry_after_s = Some(retry);
    d
}

fn unavailable(draw: &Draw, why: &str) -> Denial {
    Denial::new(Reason::BudgetUnavailable, format!("budget {:?} cannot be counted now: {why}", draw.id))
        .with_detail(draw.id.clone())
}

fn describe(left: Limit) -> String {
    let mut parts = Vec::new();
    if let Some(t) = left.tokens {
        parts.push(format!("{t} tokens"));
    }
    if let Some(n) = left.nano_usd {
        parts.push(format!("${:.6}", crate::budget::usd(n)));
    }
    parts.join(", ")
}

/// The slot family and size a draw's gateway counter lives in.
fn slots_of(budgets: &Budgets, draw: &Draw) -> u32 {
    budgets.list.get(draw.budget).map_or(1, |b| b.max_workloads)
}

/// Reserves `plan`'s gateway draws, and asks for its global ones.
pub fn reserve(env: &Env<'_>, plan: &mut Plan) -> Reserve {
    let budgets = &env.policy.budgets;
    for i in 0..plan.draws.len() {
        let draw = &plan.draws[i];
        if draw.scope != Scope::Gateway {
            continue;
        }
        match slots::reserve(env.shared, draw, draw.limit, slots_of(budgets, draw), false) {
            Ok(left) => {
                plan.draws[i].held = Held::Gateway;
                plan.draws[i].remaining = Some(left);
            }
            Err(refused) => {
                let d = match refused {
                    Refused::Exhausted(left) => exhausted(budgets, draw, env.now_ms, left),
                    Refused::Full => unavailable(draw, "this gateway tracks no more workloads this window"),
                    Refused::Unavailable => unavailable(draw, "the gateway's shared data did not answer"),
                };
                release(env, plan);
                return Reserve::Refuse(d);
            }
        }
    }
    let Some(ledger) = budgets.ledger.as_ref() else { return Reserve::Held };
    if !plan.draws.iter().any(|d| d.scope == Scope::Global) {
        return Reserve::Held;
    }
    let random = (env.random)();
    // The ledger is idempotent by this id: one that is not random would
    // make another request's reservation look like this one's.
    if random == [0; 16] {
        release(env, plan);
        let draw = plan.draws.iter().find(|d| d.scope == Scope::Global).cloned();
        return Reserve::Refuse(match draw {
            Some(d) => unavailable(&d, "the gateway has no randomness for a reservation id"),
            None => Denial::new(Reason::BudgetUnavailable, "the gateway has no randomness for a reservation id"),
        });
    }
    plan.reservation = hex(&random);
    Reserve::Ledger(ledger::reserve(ledger, &plan.reservation, plan.draws.iter().filter(|d| d.scope == Scope::Global)))
}

/// The ledger answered the reservation (or did not). `Some(call)`: a
/// release to send, when the ledger may hold what it could not confirm.
pub fn on_ledger(
    env: &Env<'_>,
    plan: &mut Plan,
    result: &CalloutResult,
) -> (Result<(), Denial>, Option<CalloutRequest>) {
    let budgets = &env.policy.budgets;
    let keys: Vec<String> = plan.draws.iter().filter(|d| d.scope == Scope::Global).map(|d| d.key.clone()).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    match ledger::reserved(result, &key_refs) {
        Reserved::Admitted(left) => {
            for d in plan.draws.iter_mut().filter(|d| d.scope == Scope::Global) {
                d.held = Held::Ledger;
                d.remaining = left.iter().find(|(k, _)| *k == d.key).map(|(_, l)| *l);
            }
            (Ok(()), None)
        }
        Reserved::Exhausted(key, left) => {
            release(env, plan);
            let draw = plan.draws.iter().find(|d| d.key == key);
            let d = match draw {
                Some(draw) => {
                    let l = left.iter().find(|(k, _)| *k == key).map_or(Limit::default(), |(_, l)| *l);
                    exhausted(budgets, draw, env.now_ms, l)
                }
                None => Denial::new(Reason::BudgetUnavailable, "the ledger answered for another budget"),
            };
            (Err(d), None)
        }
        Reserved::Unavailable(why) => {
            // What the ledger may have reserved before it failed is let go.
            let release_call = budgets.ledger.as_ref().map(|l| {
                ledger::settle(
                    l,
                    &plan.reservation,
                    plan.draws.iter().filter(|d| d.scope == Scope::Global),
                    Amount::default(),
                )
            });
            (local_share(env, plan, &why), release_call)
        }
    }
}

/// The ledger cannot answer: each global budget's `on_unavailable`
/// decides — its local share of the cap, or a refusal.
fn local_share(env: &Env<'_>, plan: &mut Plan, why: &str) -> Result<(), Denial> {
    let budgets = &env.policy.budgets;
    for i in 0..plan.draws.len() {
        let draw = &plan.draws[i];
        if draw.scope != Scope::Global {
            continue;
        }
        let share = match budgets.list.get(draw.budget).map(|b| b.on_unavailable) {
            Some(OnUnavailable::LocalShare(per_mille)) => per_mille,
            _ => {
                release(env, plan);
                return Err(unavailable(&plan.draws[i], &format!("the ledger did not answer ({why})")));
            }
        };
        let limit = draw.limit.share(share);
        match slots::reserve(env.shared, draw, limit, slots_of(budgets, draw), true) {
            Ok(left) => {
                plan.draws[i].held = Held::LocalShare;
                plan.draws[i].local = true;
                plan.draws[i].remaining = Some(left);
            }
            Err(refused) => {
                let d = match refused {
                    Refused::Exhausted(left) => exhausted(budgets, draw, env.now_ms, left),
                    _ => unavailable(
                        draw,
                        &format!("the ledger did not answer ({why}), and the local share cannot be counted"),
                    ),
                };
                release(env, plan);
                return Err(d);
            }
        }
    }
    Ok(())
}

/// Lets go of every reservation held in this gateway (nothing went upstream).
fn release(env: &Env<'_>, plan: &mut Plan) {
    settle_local(env, plan, Amount::default());
}

/// Settles the draws held in this gateway at `charge`.
fn settle_local(env: &Env<'_>, plan: &mut Plan, charge: Amount) {
    let budgets = &env.policy.budgets;
    for i in 0..plan.draws.len() {
        let local = match plan.draws[i].held {
            Held::Gateway => false,
            Held::LocalShare => true,
            _ => continue,
        };
        let draw = &plan.draws[i];
        let limit = match (local, budgets.list.get(draw.budget).map(|b| b.on_unavailable)) {
            (true, Some(OnUnavailable::LocalShare(pm))) => draw.limit.share(pm),
            _ => draw.limit,
        };
        let left = slots::settle(env.shared, draw, limit, charge, slots_of(budgets, draw), local).ok().flatten();
        let d = &mut plan.draws[i];
        d.held = Held::Settled;
        d.charged = Some(charge);
        if left.is_some() {
            d.remaining = left;
        }
    }
}

/// The request ended before the ledger answered its reservation: the
/// call that lets go of whatever the ledger holds under it (a release
/// that arrives first is a no-op there, and the hold is then charged in
/// full when it expires: never less).
pub fn release_unanswered(env: &Env<'_>, plan: &Plan) -> Option<CalloutRequest> {
    let ledger = env.policy.budgets.ledger.as_ref()?;
    let asked = plan.draws.iter().filter(|d| d.scope == Scope::Global && d.held == Held::No);
    (!plan.reservation.is_empty()).then(|| ledger::settle(ledger, &plan.reservation, asked, Amount::default()))
}

/// The request ended: every draw is settled at `charge` (0 when nothing
/// went upstream). The ledger's share is the call returned, to send.
pub fn settle(env: &Env<'_>, plan: &mut Plan, charge: Amount) -> Option<CalloutRequest> {
    settle_local(env, plan, charge);
    let ledger = env.policy.budgets.ledger.as_ref()?;
    if !plan.draws.iter().any(|d| d.held == Held::Ledger) {
        return None;
    }
    let call = ledger::settle(ledger, &plan.reservation, plan.draws.iter().filter(|d| d.held == Held::Ledger), charge);
    for d in plan.draws.iter_mut().filter(|d| d.held == Held::Ledger) {
        d.held = Held::Settled;
        d.charged = Some(charge);
        // As the ledger last said, with this call's own difference.
        d.remaining = d.remaining.map(|l| Limit {
            tokens: l.tokens.map(|t| t.saturating_add(d.reserved.tokens).saturating_sub(charge.tokens)),
            nano_usd: l.nano_usd.map(|n| n.saturating_add(d.reserved.nano_usd).saturating_sub(charge.nano_usd)),
        });
    }
    Some(call)
}
