//! Cancel scopes (§2 outcome table and rules 1 and 3, §4 deadlines, shields and grace), and the
//! two evaluations of a scope that acts target.

use super::acts;
use super::predict::{seq, ActEvent, Bound, Cancel, Env, Eval, Link, Res};
use super::*;

/// A cancel scope (§2 outcome table and rules 1 and 3, §4 deadlines, shields and grace).
pub(super) fn eval_scope(scope: &Scope, start: Time, env: &Env, ev: &mut Eval) -> M<Res> {
    let ids = (scope.id, last_in(&scope.body).max(scope.id));
    // A shield blocks enclosing cancellation, and only that (§4).
    let inherited = if scope.shield {
        Cancel::NONE
    } else {
        env.cancel
    };
    // Rule 3: first polled inside an already-cancelled enclosing scope: the body is never
    // polled and the scope never completes. (At the very instant of a racing cancellation it
    // may or may not have been polled first: `before` reports that as ambiguous.)
    if inherited.before_start(start, ids)? {
        return Ok(Res::dropped(start));
    }
    // Rule 3: its own cancellation happened before its first poll (a zero timeout): the
    // cancelled outcome, without polling the body.
    if scope.deadline == Some(0) {
        return Ok(absorbed(scope, start, ev));
    }
    let deadline = scope.deadline.map(|d| start + d);
    // The scope's own cancellation: its deadline (checked before its body: firm) or the cancel
    // of a timer task (a race with anything at the same instant).
    let own =
        Cancel::at(deadline, true).earliest(Cancel::at(scope.cancel_at.map(|c| start + c), false));
    if !targets(&scope.body, scope.id) {
        let body = body(scope, start, env, own, inherited, ev)?;
        return finish(scope, env, ids, own.at <= body.end, scope.shield, body, ev);
    }
    if scope.grace.is_some()
        || has_grace(&scope.body)
        || env.bounds.iter().any(|b| matches!(b, Bound::Gate { .. }))
    {
        return Err(Ambiguous(
            "acts on a scope with a grace period in or around it",
        ));
    }
    // A trial run in which the acts on this scope do nothing shows when they run; causality
    // makes it exact up to the first of them that changes anything.
    let mut trial = ev.scratch();
    body(scope, start, env, own, Cancel::NONE, &mut trial)?;
    let plan = acts::plan(scope, env.cancel, &trial.acts)?;
    let from = ev.acts.len();
    let body = body(
        scope,
        start,
        env,
        own.earliest(plan.own),
        plan.inherited,
        ev,
    )?;
    let mine: Vec<ActEvent> = ev.acts[from..]
        .iter()
        .filter(|e| e.target == scope.id)
        .copied()
        .collect();
    acts::check(scope.id, &plan, own, &trial.acts, &mine)?;
    // Absorbing: a `cancel()` run while unwinding counts, and so does the shield as it is then.
    let cancelled = mine.iter().any(|e| e.kind == ActKind::Cancel);
    let own_called = own.at <= body.end || cancelled;
    let shield = acts::shield_at_end(scope.shield, &mine)?;
    if body.out.is_none() && shield && !cancelled {
        let unwound_at = own.earliest(plan.own).earliest(plan.inherited).at;
        unsettled_own_cancel(scope, start, unwound_at, plan.inherited.at, body.end)?;
    }
    finish(scope, env, ids, own_called, shield, body, ev)
}

/// For a scope that unwound (its body was dropped) and is shielded by the end, with no
/// `cancel()` act on it: sets the case aside if DESIGN.md does not settle whether the scope was
/// cancelled in its own right by the time the unwinding ended, and so absorbs (§2: decided when
/// the unwinding is over). `unwound_at` is when the unwinding began, `reached_at` when a
/// cancellation from outside reached the scope.
fn unsettled_own_cancel(
    scope: &Scope,
    start: Time,
    unwound_at: Time,
    reached_at: Time,
    end: Time,
) -> M<()> {
    let deadline = scope.deadline.map(|d| start + d);
    let timer = scope.cancel_at.map(|c| start + c);
    // §4 "not specified yet": whether the own deadline passing after the unwinding began makes
    // the scope cancelled in its own right (the library never looks at the deadline again once
    // unwinding: such a scope does not absorb). A timer's `cancel()` before the end settles it.
    let late_deadline = deadline.is_some_and(|d| unwound_at < d && d <= end);
    let timer_before_end = timer.is_some_and(|t| t < end);
    if late_deadline && !timer_before_end {
        return Err(Ambiguous(
            "a scope's own deadline passes while it unwinds, and it is shielded by the end",
        ));
    }
    // A timer task's `cancel()` at the instant the unwinding from outside ends (a cleanup
    // timeout, a leaf's wake-up in the nursery's task): a race between two tasks, which DESIGN.md
    // does not order (§4 orders a deadline only against a wake-up in the same task). If it runs
    // first the scope absorbs; if the unwinding ends first the scope parks and the enclosing one
    // absorbs. An own deadline already passed by then settles it.
    let early_deadline = deadline.is_some_and(|d| d <= unwound_at);
    if timer == Some(end) && reached_at <= end && !early_deadline {
        return Err(Ambiguous(
            "a timer's cancel() at the instant a shielded scope's unwinding from outside ends",
        ));
    }
    Ok(())
}

/// Runs the body of `scope` from `start`, cancelled by `own` and by the enclosing cancellation
/// as it reaches the scope (`inherited`).
fn body(
    scope: &Scope,
    start: Time,
    env: &Env,
    own: Cancel,
    inherited: Cancel,
    ev: &mut Eval,
) -> M<Res> {
    // Bounds seen from inside: a shield ends the walk (its own deadline still counts).
    let mut bounds = if scope.shield {
        Vec::new()
    } else {
        env.bounds.clone()
    };
    if let Some(d) = scope.deadline {
        bounds.push(Bound::Deadline(start + d));
    }
    let body_cancel = match scope.grace {
        None => own.earliest(inherited),
        Some(_) => grace_cancel(scope, start, own, inherited, env, &mut bounds, ev)?,
    };
    let mut links = env.links.clone();
    links.push(Link {
        id: scope.id,
        own_at: own.at,
        inherited_at: inherited.at,
    });
    let env_in = Env {
        cancel: body_cancel,
        bounds,
        links,
        after: env.after.clone(),
    };
    seq(&scope.body, start, &env_in, ev)
}

/// What the scope returns once its body is over: Rule 1, or the cancelled outcome if it
/// absorbs (§2), or nothing (dropped by the scope that absorbs).
fn finish(
    scope: &Scope,
    env: &Env,
    ids: (u32, u32),
    own_called: bool,
    shield: bool,
    body: Res,
    ev: &mut Eval,
) -> M<Res> {
    if body.end == NEVER {
        return Ok(body);
    }
    match &body.out {
        // A panic unwinds through the scope.
        Some(Out::Panic(_)) => Ok(body),
        // Rule 1: a body that completed is returned, even if the scope was cancelled.
        Some(out) => {
            let value = match out {
                Out::Ok(v) => Ok(*v),
                Out::Err(e) => Err(e.clone()),
                Out::Panic(_) => unreachable!(),
            };
            ev.rec.insert(
                scope.id,
                Record::Scope {
                    at: body.end,
                    out: Some(value),
                },
            );
            Ok(body)
        }
        // The body was dropped once everything inside it had unwound (§2 "structure unwinds").
        // §2: exactly one scope absorbs a cancellation, the outermost effectively-cancelled one
        // below the nearest shield, decided when the unwinding is over: this scope absorbs if
        // its own cancellation was requested and its enclosing scope is not cancelled by then
        // (or it is shielded by then).
        None => {
            let at = body.end;
            if own_called && (shield || !env.cancel.before_end(at, ids)?) {
                Ok(absorbed(scope, at, ev))
            } else {
                Ok(Res::dropped(at))
            }
        }
    }
}

/// §4 grace, for a grace scope: what cancels its body (the hard end of its drain); pushes the
/// drain's gate onto `bounds`.
fn grace_cancel(
    scope: &Scope,
    start: Time,
    own: Cancel,
    inherited: Cancel,
    env: &Env,
    bounds: &mut Vec<Bound>,
    ev: &mut Eval,
) -> M<Cancel> {
    let grace = scope.grace.expect("a grace scope");
    let deadline = scope.deadline.map(|d| start + d);
    // §4 grace, two phases: on its own or inherited cancellation the scope drains (its
    // inside is not cancelled), then cancels hard at +grace — or earlier, when an
    // enclosing bound expires first (at once if it already has). A shielded scope has
    // no enclosing bounds: enclosing scopes cannot cancel it.
    let request = own.earliest(inherited);
    if request.at == NEVER {
        bounds.push(Bound::Gate {
            from: NEVER,
            hard: NEVER,
        });
        Ok(Cancel::NONE)
    } else {
        let enclosing = if scope.shield {
            &[][..]
        } else {
            &env.bounds[..]
        };
        let hard = request
            .at
            .saturating_add(grace)
            .min(drain_bound(enclosing, request.at)?);
        if scope.shield && drain_bound(&env.bounds, request.at)? < hard {
            ev.known("known disagreement: a shielded drain bounded by enclosing deadlines")?;
        }
        if inherited.at > request.at && inherited.at < hard {
            return Err(Ambiguous(
                "an enclosing cancellation reaches a scope that is already draining",
            ));
        }
        if deadline.is_some_and(|d| d > request.at && d < hard) {
            return Err(Ambiguous(
                "a grace scope's own deadline passes while it drains",
            ));
        }
        bounds.push(Bound::Gate {
            from: request.at,
            hard,
        });
        // The end of the drain is checked by the scope before it polls its body.
        Ok(Cancel {
            at: hard,
            firm: hard > request.at || request.firm,
            src: None,
        })
    }
}

/// The scope returns its cancelled outcome: `None`, or `Err(Elapsed)` for `fail_after`.
fn absorbed(scope: &Scope, at: Time, ev: &mut Eval) -> Res {
    ev.rec.insert(scope.id, Record::Scope { at, out: None });
    let out = if scope.fail {
        Out::Err(ModelError::Elapsed(scope.id))
    } else {
        Out::Ok(0)
    };
    Res {
        end: at,
        out: Some(out),
    }
}

/// The deadline a drain starting at `at` may not outlive: the earliest enclosing deadline, up to
/// the nearest shield or the nearest grace scope already draining (whose end is itself bounded).
pub(super) fn drain_bound(bounds: &[Bound], at: Time) -> M<Time> {
    let mut bound = NEVER;
    for b in bounds.iter().rev() {
        match *b {
            Bound::Deadline(d) => bound = bound.min(d),
            Bound::Gate { from, hard } if from < at => return Ok(bound.min(hard)),
            Bound::Gate { from, .. } if from == at => {
                return Err(Ambiguous(
                    "two grace scopes start draining at the same instant",
                ))
            }
            Bound::Gate { .. } => {}
        }
    }
    Ok(bound)
}
