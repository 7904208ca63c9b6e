//! What acts do to the scope they target (DESIGN.md §4, shields and the hang they once caused).
//!
//! - `cancel()` is the scope's own cancellation, from the instant it runs; shields do not matter.
//! - The shield blocks enclosing cancellation while it is on. An enclosing cancellation reaches
//!   the scope at the first instant, from the one it happened on, at which the shield is off
//!   ("unshielding inside a cancelled enclosing scope cancels at once").
//! - It is delivered at that instant (the scope is polled then and acts on it); from then on the
//!   scope is unwinding and a shield set later does not stop it, though it still decides whether
//!   the scope absorbs an own cancellation at the end (§2).
//! - A shield set at the very instant the cancellation arrives holds only if it ran in the same
//!   synchronous stretch as the `cancel()` that caused it (nothing could act on the cancellation
//!   in between); it comes too late if a delivery already happened (it runs in a cleanup of a
//!   nursery whose member that cancellation dropped). Otherwise the two race: ambiguous.

use super::predict::{ActEvent, Cancel};
use super::*;

/// What the acts on one scope do, found from a trial run in which they did nothing.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    /// The first `cancel()` on the scope, if it comes no later than the enclosing cancellation.
    pub(super) own: Cancel,
    /// When the enclosing cancellation reaches the scope, through its shield changes.
    pub(super) inherited: Cancel,
}

/// A shield change: when, on or off, and the act.
type Toggle<'a> = (Time, bool, &'a ActEvent);

fn toggles(id: u32, events: &[ActEvent]) -> M<Vec<Toggle<'_>>> {
    let mut out: Vec<Toggle<'_>> = events
        .iter()
        .filter(|e| e.target == id)
        .filter_map(|e| match e.kind {
            ActKind::Shield(on) => Some((e.at, on, e)),
            ActKind::Cancel => None,
        })
        .collect();
    out.sort_by_key(|t| t.0);
    if out.windows(2).any(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1) {
        return Err(Ambiguous(
            "a scope's shield is set on and off at the same instant",
        ));
    }
    Ok(out)
}

/// The plan for `scope`, inside an enclosing context cancelled as `enclosing` says, from the acts
/// of a trial run.
pub(super) fn plan(scope: &Scope, enclosing: Cancel, trial: &[ActEvent]) -> M<Plan> {
    let toggles = toggles(scope.id, trial)?;
    let inherited = reach(scope.shield, enclosing, &toggles, trial);
    let own = trial
        .iter()
        .filter(|e| e.target == scope.id && e.kind == ActKind::Cancel)
        .min_by_key(|e| e.at)
        .map_or(Cancel::NONE, |e| Cancel {
            at: e.at,
            firm: false,
            src: Some(e.id),
        });
    // A `cancel()` after the scope was reached from outside may not run at all: it is taken
    // from the second run (it can only matter for absorbing, see `eval_scope`).
    let own = if own.at <= inherited.at {
        own
    } else {
        Cancel::NONE
    };
    Ok(Plan { own, inherited })
}

/// When the enclosing cancellation `c` reaches a scope whose shield starts as `shielded` and
/// changes as `toggles` say.
fn reach(mut shielded: bool, c: Cancel, toggles: &[Toggle<'_>], trial: &[ActEvent]) -> Cancel {
    if c.at == NEVER {
        return Cancel::NONE;
    }
    let mut rest = toggles.iter().peekable();
    while let Some(t) = rest.next_if(|t| t.0 < c.at) {
        shielded = t.1;
    }
    let mut at_c = Vec::new();
    while let Some(t) = rest.next_if(|t| t.0 == c.at) {
        at_c.push(t);
    }
    // The act that caused the enclosing cancellation, if it ran in the same stretch as every
    // shield change at that instant (then ids give the order they ran in).
    let cause = c
        .src
        .and_then(|src| trial.iter().find(|e| e.id == src))
        .filter(|e| at_c.iter().all(|t| t.2.stretch == e.stretch));
    match at_c.first() {
        None if !shielded => return c,
        None => {}
        // Off at that instant, whichever came first: cancelled then — by the cancellation if the
        // unshield came first, else by the unshield.
        Some(t) if !t.1 => {
            return match cause {
                _ if !shielded => c,
                Some(e) if t.2.id < e.id => c,
                Some(_) => Cancel {
                    at: c.at,
                    firm: false,
                    src: Some(t.2.id),
                },
                None => Cancel {
                    at: c.at,
                    firm: false,
                    src: None,
                },
            };
        }
        Some(_) if shielded => {}
        // Set at the instant the cancellation arrives: it holds if it ran in the stretch of the
        // `cancel()` that caused it; otherwise it is taken as too late, which `check` insists the
        // code shows.
        Some(_) if cause.is_none() => return c,
        Some(_) => {}
    }
    // Shielded from then on, until an unshield re-exposes it.
    rest.find(|t| !t.1).map_or(Cancel::NONE, |t| Cancel {
        at: t.0,
        firm: false,
        src: Some(t.2.id),
    })
}

/// After the second run: the acts on scope `id` that ran before its body was cancelled ran as in
/// the trial (causality), and a shield set at the instant the enclosing cancellation reached
/// it came after that cancellation was delivered.
pub(super) fn check(
    id: u32,
    plan: &Plan,
    own: Cancel,
    trial: &[ActEvent],
    mine: &[ActEvent],
) -> M<()> {
    let cut = own.earliest(plan.own).earliest(plan.inherited).at;
    let early = |events: &[ActEvent]| -> Vec<(u32, ActKind, Time)> {
        let mut v: Vec<_> = events
            .iter()
            .filter(|e| e.target == id && e.at < cut)
            .map(|e| (e.id, e.kind, e.at))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    };
    assert_eq!(early(trial), early(mine), "model: causality");
    let reached = plan.inherited.at;
    if reached != NEVER && reached <= cut {
        let racing = mine
            .iter()
            .any(|e| e.kind == ActKind::Shield(true) && e.at == reached && !e.after);
        if racing {
            return Err(Ambiguous(
                "a shield is set at the instant a cancellation reaches its scope, racing its delivery",
            ));
        }
    }
    Ok(())
}

/// The shield of a scope starting as `initial` once every act in `mine` has run.
pub(super) fn shield_at_end(initial: bool, mine: &[ActEvent]) -> M<bool> {
    let toggles = toggles(mine.first().map_or(0, |e| e.target), mine)?;
    Ok(toggles.last().map_or(initial, |t| t.1))
}
