//! Nurseries (§3.2, §3.3, rules 1–3) and their grace periods (§4).

use super::predict::{never_suspends, seq, Bound, Cancel, Env, Eval, Link, Res};
use super::scope::drain_bound;
use super::*;

/// §4 grace for a nursery: what its members see, a drain first, then the hard cancellation.
fn grace_env(env: &Env, grace: Time) -> M<Env> {
    let mut bounds = env.bounds.clone();
    let request = env.cancel;
    if request.at == NEVER {
        bounds.push(Bound::Gate {
            from: NEVER,
            hard: NEVER,
        });
        Ok(Env {
            cancel: Cancel::NONE,
            bounds,
            ..env.clone()
        })
    } else {
        let hard = request
            .at
            .saturating_add(grace)
            .min(drain_bound(&env.bounds, request.at)?);
        bounds.push(Bound::Gate {
            from: request.at,
            hard,
        });
        Ok(Env {
            cancel: Cancel {
                at: hard,
                firm: hard > request.at || request.firm,
                src: None,
            },
            bounds,
            ..env.clone()
        })
    }
}

/// §3.3 cleanups, from `start` on: their failures join `failures`; the instant the last one
/// ended, or `None` if one never ends.
fn run_cleanups(
    nursery: &Nursery,
    start: Time,
    after: &[u32],
    failures: &mut Vec<(Time, Out)>,
    ev: &mut Eval,
) -> M<Option<Time>> {
    let timeout = nursery.cleanup_timeout.unwrap_or(DEFAULT_CLEANUP_TIMEOUT);
    let mut now = start;
    for cleanup in nursery.cleanups.iter().rev() {
        let limit = now + timeout;
        let env_in = Env {
            cancel: Cancel {
                at: limit,
                firm: true,
                src: None,
            },
            bounds: vec![Bound::Deadline(limit)],
            // Shielded: a delivery inside latches nothing outside.
            links: Vec::new(),
            after: after.to_vec(),
        };
        let res = seq(&cleanup.body, now, &env_in, ev)?;
        if res.end == NEVER {
            // A shield inside the cleanup hangs: structure unwinds before the timeout can drop
            // the cleanup (§2), so the nursery never completes.
            ev.rec.insert(
                cleanup.id,
                Record::Cleanup {
                    start: now,
                    end: None,
                },
            );
            return Ok(None);
        }
        let ending = match &res.out {
            Some(Out::Ok(_)) => Ending::Done,
            Some(Out::Err(_)) => Ending::Failed,
            Some(Out::Panic(_)) => Ending::Panicked,
            // Its scope absorbed its own timeout once everything inside had unwound.
            None => Ending::Dropped,
        };
        if let Some(out @ (Out::Err(_) | Out::Panic(_))) = res.out {
            failures.push((res.end, out));
        }
        ev.rec.insert(
            cleanup.id,
            Record::Cleanup {
                start: now,
                end: Some((res.end, ending)),
            },
        );
        now = res.end;
    }
    Ok(Some(now))
}

/// A nursery (§3.2, §3.3, rules 1–3).
pub(super) fn eval_nursery(nursery: &Nursery, start: Time, env: &Env, ev: &mut Eval) -> M<Res> {
    // Rule 3: first polled inside a cancelled scope: the body is dropped unpolled, so nothing is
    // spawned or deferred, and the nursery does not complete.
    // (A grace nursery too: "a grace scope cancelled before its first poll follows rule 3".)
    let ids = (nursery.id, last_id(&Spec::Nursery(nursery.clone())));
    if env.cancel.before_start(start, ids)? {
        if nursery.grace.is_some() {
            ev.known("known disagreement: a grace nursery started in a cancelled scope runs")?;
        }
        return Ok(Res::dropped(start));
    }
    // A grace nursery (§4 grace, `NurseryBuilder::grace`): a cancellation from outside first
    // drains — the members are not cancelled — then cancels them hard at +grace, or when an
    // enclosing bound expires. Failures inside still cancel at once.
    let env = &match nursery.grace {
        None => env.clone(),
        Some(grace) => grace_env(env, grace)?,
    };
    // §3.2 "a failure cancels everything else": find the first failure as if there were none…
    let mut scratch = ev.scratch();
    let first = members(nursery, start, env, Cancel::NONE, None, &mut scratch)?;
    let failure = first_failure(&first)?;
    // …then run the members again, cancelled from that instant (except the one that failed).
    // A failure after the members were cancelled from outside changes nothing.
    let results = match failure {
        Some((at, who)) if at < env.cancel.at => {
            let cancel = Cancel {
                at,
                firm: false,
                src: None,
            };
            members(nursery, start, env, cancel, Some(who), ev)?
        }
        _ => members(nursery, start, env, Cancel::NONE, None, ev)?,
    };
    debug_assert_eq!(
        first_failure(&results)?.map(|f| f.0),
        failure.map(|f| f.0),
        "model: causality"
    );
    // The nursery completes when the body and every child have completed (§3.2).
    if results.iter().any(|r| r.end == NEVER) {
        return Ok(Res::hangs());
    }
    let members_done = results.iter().map(|r| r.end).max().unwrap_or(start);
    // Failures in the order they happened (§3.2 precedence: first panic, else first error).
    let mut failures: Vec<(Time, Out)> = results
        .iter()
        .filter(|r| r.failure())
        .map(|r| (r.end, r.out.clone().expect("a failure has an outcome")))
        .collect();
    failures.sort_by_key(|f| f.0);
    if failures.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(Ambiguous(
            "two members of a nursery fail at the same instant",
        ));
    }
    // Rule 2: "actually cancelled" — a member dropped by cancellation.
    let cancelled_inside = results.iter().any(|r| r.out.is_none());
    let after = delivered(env, failure, &results);

    // §3.3: cleanups run after the body and every child, last registered first, each in a
    // shielded scope whose own deadline is the cleanup timeout. An error is a failure; a
    // timeout is reported, not a failure.
    let Some(end) = run_cleanups(nursery, members_done, &after, &mut failures, ev)? else {
        return Ok(Res::hangs());
    };

    // §3.2 precedence: the first panic beats any error, re-raised after everything unwound.
    if let Some((_, panic)) = failures.iter().find(|f| matches!(f.1, Out::Panic(_))) {
        return Ok(Res {
            end,
            out: Some(panic.clone()),
        });
    }
    // The first error (in time) beats later errors and the body's value; rule 2: a nursery
    // cancelled from outside that collected a failure completes with it.
    let errors: Vec<ModelError> = failures
        .into_iter()
        .filter_map(|(_, out)| match out {
            Out::Err(e) => Some(e),
            _ => None,
        })
        .collect();
    if let Some(first) = errors.first().cloned() {
        ev.rec.insert(
            nursery.id,
            Record::Nursery {
                at: end,
                out: Err(errors),
            },
        );
        return Ok(Res {
            end,
            out: Some(Out::Err(first)),
        });
    }
    // Rule 2: `Ok(v)` only if nothing inside was actually cancelled; otherwise the nursery does
    // not complete and the absorbing scope drops it once it has unwound.
    match results[0].out {
        Some(Out::Ok(v)) if !cancelled_inside => {
            ev.rec.insert(
                nursery.id,
                Record::Nursery {
                    at: end,
                    out: Ok(v),
                },
            );
            Ok(Res {
                end,
                out: Some(Out::Ok(v)),
            })
        }
        _ => Ok(Res::dropped(end)),
    }
}

/// The scopes whose cancellation was delivered once the members are over: those before, and,
/// if a member was dropped by the cancellation from outside, every scope from here to its origin
/// (DESIGN §4: that drop is a delivery; they are unwinding before the first cleanup starts).
fn delivered(env: &Env, failure: Option<(Time, usize)>, results: &[Res]) -> Vec<u32> {
    let mut after = env.after.clone();
    let outside = !matches!(failure, Some((at, _)) if at < env.cancel.at);
    let first_drop = results
        .iter()
        .filter(|r| r.out.is_none())
        .map(|r| r.end)
        .min();
    if let Some(d) = first_drop.filter(|_| outside) {
        after.extend(env.latched(d));
    }
    after
}

/// Runs the body (member 0) and the children of `nursery` from `start`, with the members
/// cancelled at `failed` too — except member `exempt`, the one whose failure that was.
fn members(
    nursery: &Nursery,
    start: Time,
    env: &Env,
    failed: Cancel,
    exempt: Option<usize>,
    ev: &mut Eval,
) -> M<Vec<Res>> {
    let cancel_of = |i: usize| {
        if exempt == Some(i) {
            env.cancel
        } else {
            env.cancel.earliest(failed)
        }
    };
    let mut results = Vec::with_capacity(1 + nursery.children.len());
    let mut links = env.links.clone();
    links.push(Link {
        id: nursery.id,
        own_at: failed.at,
        inherited_at: env.cancel.at,
    });
    let env_of = |cancel: Cancel| Env {
        cancel,
        bounds: env.bounds.clone(),
        links: links.clone(),
        after: env.after.clone(),
    };
    // The body is polled by the nursery's own task, right away.
    results.push(seq(&nursery.body, start, &env_of(cancel_of(0)), ev)?);
    for (i, child) in nursery.children.iter().enumerate() {
        // A child is first polled after the body yields (a spawned child is its own task): any
        // cancellation at the same instant is a race with it — unless an act caused it, in the
        // body (which ran first: the child is dropped unpolled) or in the child itself.
        let cancel = cancel_of(i + 1).loose();
        if cancel.at == start {
            if cancel
                .src
                .is_some_and(|a| in_first_stretch(&nursery.body, a))
            {
                results.push(Res::dropped(start));
                continue;
            }
            if !cancel.src.is_some_and(|a| in_seq(&child.body, a)) {
                return Err(Ambiguous(
                    "a child is first polled at the instant its nursery is cancelled",
                ));
            }
        }
        results.push(seq(&child.body, start, &env_of(cancel), ev)?);
    }
    Ok(results)
}

/// Whether the act `id` is in the first synchronous stretch of `items` (run before anything
/// else is polled).
fn in_first_stretch(items: &[Spec], id: u32) -> bool {
    for item in items {
        match item {
            Spec::Act(a) if a.id == id => return true,
            _ if never_suspends(item) => {}
            _ => return false,
        }
    }
    false
}

/// The earliest failing member: `(instant, index)`.
fn first_failure(results: &[Res]) -> M<Option<(Time, usize)>> {
    let Some(at) = results.iter().filter(|r| r.failure()).map(|r| r.end).min() else {
        return Ok(None);
    };
    let mut at_that_instant = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.failure() && r.end == at);
    let (who, _) = at_that_instant.next().expect("the minimum exists");
    if at_that_instant.next().is_some() {
        return Err(Ambiguous(
            "two members of a nursery fail first at the same instant",
        ));
    }
    Ok(Some((at, who)))
}
