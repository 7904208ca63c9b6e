//! The evaluation: the state it carries ([`Eval`], [`Env`], [`Cancel`]) and the constructs
//! without structure of their own (sequences, leaves, acts). Scopes are in `scope.rs`, nurseries
//! in `nursery.rs`.

use super::nursery::eval_nursery;
use super::scope::eval_scope;
use super::*;

/// The state of one evaluation: the records so far, the acts run so far, and whether to set
/// aside the cases where the library is known to disagree with the model.
pub(super) struct Eval {
    pub(super) rec: Records,
    pub(super) skip_known: bool,
    /// Every act that ran, in the order the model evaluated them.
    pub(super) acts: Vec<ActEvent>,
    /// The last synchronous stretch handed out (see [`ActEvent::stretch`]).
    pub(super) stretches: u32,
}

impl Eval {
    /// Sets a case aside as a known disagreement (see the `known_` tests in `model_trees.rs`), so
    /// that a randomized search looks for new ones; a strict evaluation goes on.
    pub(super) fn known(&self, what: &'static str) -> M<()> {
        if self.skip_known {
            Err(Ambiguous(what))
        } else {
            Ok(())
        }
    }

    /// A fresh evaluation for a trial run whose records are thrown away.
    pub(super) fn scratch(&self) -> Eval {
        Eval {
            rec: Records::new(),
            skip_known: self.skip_known,
            acts: Vec::new(),
            stretches: self.stretches,
        }
    }

    fn stretch(&mut self) -> u32 {
        self.stretches += 1;
        self.stretches
    }
}

/// An act as it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ActEvent {
    pub(super) id: u32,
    pub(super) target: u32,
    pub(super) kind: ActKind,
    pub(super) at: Time,
    /// The synchronous stretch of its sequence it ran in: two acts with the same stretch ran in
    /// one go, with only acts and plain 0 ms leaves between them (nothing else ran meanwhile).
    pub(super) stretch: u32,
    /// The cancellation reaching its target was delivered before the act ran (a member of a
    /// nursery around the act was dropped by it, and the act is in a cleanup of that nursery).
    pub(super) after: bool,
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// The instant a context becomes effectively cancelled.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cancel {
    pub(super) at: Time,
    /// A deadline checked by the task that also polls the code in question: at the same instant
    /// it comes first (§4, "the deadline wins"). Anything else at the same instant is a race.
    pub(super) firm: bool,
    /// The act that caused it (a `cancel()`, or an unshield that re-exposed a scope), if one did:
    /// the code that ran it, and what came before it in its task, saw the instant before it.
    pub(super) src: Option<u32>,
}

impl Cancel {
    pub(super) const NONE: Cancel = Cancel {
        at: NEVER,
        firm: false,
        src: None,
    };

    pub(super) fn at(at: Option<Time>, firm: bool) -> Cancel {
        at.map_or(Cancel::NONE, |at| Cancel {
            at,
            firm,
            src: None,
        })
    }

    pub(super) fn earliest(self, other: Cancel) -> Cancel {
        match self.at.cmp(&other.at) {
            std::cmp::Ordering::Less => self,
            std::cmp::Ordering::Greater => other,
            // Either one, if firm, is in effect first.
            std::cmp::Ordering::Equal => Cancel {
                at: self.at,
                firm: self.firm || other.firm,
                src: if self.src == other.src {
                    self.src
                } else {
                    None
                },
            },
        }
    }

    /// Seen from another task: ties become races.
    pub(super) fn loose(self) -> Cancel {
        Cancel {
            firm: false,
            ..self
        }
    }

    /// Whether the cancellation is in effect when something happens at `t`.
    pub(super) fn before(self, t: Time) -> M<bool> {
        if self.at == NEVER || self.at > t {
            Ok(false)
        } else if self.at < t || self.firm {
            Ok(true)
        } else {
            Err(Ambiguous(
                "a cancellation from another task at the instant of another event",
            ))
        }
    }

    /// Whether the act that caused the cancellation is inside the construct `ids` (the range of
    /// its subtree's ids).
    fn caused_inside(self, ids: (u32, u32)) -> bool {
        self.src.is_some_and(|src| ids.0 <= src && src <= ids.1)
    }

    /// [`before`](Cancel::before) for the first poll of the construct `ids`: a cancellation
    /// caused by an act inside it came after that poll.
    pub(super) fn before_start(self, t: Time, ids: (u32, u32)) -> M<bool> {
        if self.at == t && !self.firm && self.caused_inside(ids) {
            return Ok(false);
        }
        self.before(t)
    }

    /// [`before`](Cancel::before) for the end of the construct `ids`: a cancellation caused by an
    /// act inside it came before that end.
    pub(super) fn before_end(self, t: Time, ids: (u32, u32)) -> M<bool> {
        if self.at == t && !self.firm && self.caused_inside(ids) {
            return Ok(true);
        }
        self.before(t)
    }
}

/// A deadline a grace period may not outlive (§4: "an enclosing scope whose own bound expires
/// first cancels hard at once").
#[derive(Clone, Copy, Debug)]
pub(super) enum Bound {
    /// A scope's own deadline.
    Deadline(Time),
    /// A grace scope: from `from` on it drains, and its inside is bounded by `hard`.
    Gate { from: Time, hard: Time },
}

/// A scope or nursery around a context, for finding what a delivery latches (invariant 9 of the
/// cancel tree, DESIGN §4: every scope from the delivery point to the cancellation's origin).
#[derive(Clone, Copy, Debug)]
pub(super) struct Link {
    pub(super) id: u32,
    /// When it is cancelled in its own right (its origin); a nursery: when a failure cancels it.
    pub(super) own_at: Time,
    /// When a cancellation from outside reaches it (`NEVER` while shielded).
    pub(super) inherited_at: Time,
}

/// What a construct inherits from the constructs around it.
#[derive(Clone, Debug)]
pub(super) struct Env {
    pub(super) cancel: Cancel,
    /// Enclosing bounds, outermost first, up to the nearest shield.
    pub(super) bounds: Vec<Bound>,
    /// Enclosing scopes and nurseries, outermost first, up to the nearest shield.
    pub(super) links: Vec<Link>,
    /// Scopes whose cancellation was delivered before this context began.
    pub(super) after: Vec<u32>,
}

impl Env {
    /// The scopes a delivery at `at` latches: from the innermost link outwards, each reached by
    /// the cancellation from outside, up to the first cancelled in its own right.
    pub(super) fn latched(&self, at: Time) -> Vec<u32> {
        let mut out = Vec::new();
        for link in self.links.iter().rev() {
            if link.own_at <= at || link.inherited_at > at {
                break;
            }
            out.push(link.id);
        }
        out
    }
}

/// How a construct ended: at `end`, with `Some(outcome)`, or `None` if it never returns a value
/// (cancelled and dropped, or parked: "does not complete"). `end == NEVER`: it hangs.
#[derive(Clone, Debug)]
pub(super) struct Res {
    pub(super) end: Time,
    pub(super) out: Option<Out>,
}

impl Res {
    pub(super) fn dropped(at: Time) -> Res {
        Res { end: at, out: None }
    }

    pub(super) fn hangs() -> Res {
        Res {
            end: NEVER,
            out: None,
        }
    }

    pub(super) fn failure(&self) -> bool {
        matches!(self.out, Some(Out::Err(_) | Out::Panic(_)))
    }
}

pub(super) fn evaluate(root: &Spec, skip_known: bool) -> Result<Outcome, Ambiguous> {
    let mut ev = Eval {
        rec: Records::new(),
        skip_known,
        acts: Vec::new(),
        stretches: 0,
    };
    let env = Env {
        cancel: Cancel::NONE,
        bounds: Vec::new(),
        links: Vec::new(),
        after: Vec::new(),
    };
    let res = node(root, 0, &env, &mut ev)?;
    let records = ev.rec;
    let root = match res.out {
        _ if res.end == NEVER => None,
        Some(out) => Some((res.end, out)),
        // Nothing above the root can cancel it, so it is never dropped.
        None => unreachable!("model: the root was dropped"),
    };
    Ok(Outcome { root, records })
}

pub(super) fn node(spec: &Spec, start: Time, env: &Env, ev: &mut Eval) -> M<Res> {
    match spec {
        Spec::Leaf(leaf) => eval_leaf(leaf, start, env, ev),
        Spec::Scope(scope) => eval_scope(scope, start, env, ev),
        Spec::Nursery(nursery) => eval_nursery(nursery, start, env, ev),
        // Outside a sequence (never generated): a stretch of its own.
        Spec::Act(act) => {
            let stretch = ev.stretch();
            eval_act(act, start, env, stretch, ev)
        }
    }
}

/// Whether the item completes without suspending when it does not fail: an act, a plain 0 ms
/// leaf. Nothing else runs in between.
pub(super) fn never_suspends(item: &Spec) -> bool {
    match item {
        Spec::Act(_) => true,
        Spec::Leaf(l) => !l.aware && matches!(l.action, Action::Finish(0)),
        _ => false,
    }
}

/// A sequence: each item starts when the previous one returned `Ok`; an error or a panic ends it
/// (`?`), and so does being dropped.
pub(super) fn seq(items: &[Spec], start: Time, env: &Env, ev: &mut Eval) -> M<Res> {
    let mut now = start;
    let mut value = 0;
    let mut env = std::borrow::Cow::Borrowed(env);
    // A cancellation caused by an act further on in this sequence has not happened yet for
    // what comes before that act (it all ends by then, at the latest at that instant).
    let mut ahead = env.cancel.src.filter(|&src| in_seq(items, src));
    let quiet = Env {
        cancel: Cancel::NONE,
        ..(*env).clone()
    };
    let mut stretch = ev.stretch();
    for item in items {
        if ahead.is_some_and(|src| in_seq(std::slice::from_ref(item), src)) {
            ahead = None;
        }
        let item_env = if ahead.is_some() { &quiet } else { &*env };
        let res = match item {
            Spec::Act(act) => eval_act(act, now, item_env, stretch, ev)?,
            _ => node(item, now, item_env, ev)?,
        };
        match res.out {
            Some(Out::Ok(v)) if res.end != NEVER => {
                // What follows an act in its task sees what the act did: a cancellation it
                // caused is in effect for the rest of the sequence.
                if let Spec::Act(act) = item {
                    if env.cancel.src == Some(act.id) && env.cancel.at == now {
                        env.to_mut().cancel.firm = true;
                    }
                }
                if !never_suspends(item) {
                    stretch = ev.stretch();
                }
                now = res.end;
                value = v;
            }
            _ => return Ok(res),
        }
    }
    Ok(Res {
        end: now,
        out: Some(Out::Ok(value)),
    })
}

/// An act: synchronous, so it runs whenever it is reached, like a plain 0 ms leaf, and its effect
/// is left to the scope it targets (`scope.rs`), which collects the acts that ran.
fn eval_act(act: &Act, start: Time, env: &Env, stretch: u32, ev: &mut Eval) -> M<Res> {
    let cancel = env.cancel;
    if cancel.at == start && !cancel.firm && cancel.src != Some(act.id) {
        return Err(Ambiguous(
            "an act is reached at the instant of a racing cancellation",
        ));
    }
    ev.rec.insert(act.id, Record::Act { at: start });
    if let Some(target) = act.target {
        ev.acts.push(ActEvent {
            id: act.id,
            target,
            kind: act.kind,
            at: start,
            stretch,
            after: env.after.contains(&target),
        });
    }
    Ok(Res {
        end: start,
        out: Some(Out::Ok(act.id)),
    })
}

/// §2 "Leaves are dropped": a plain future in a cancelled context is dropped at its current
/// suspension point; it never checks for cancellation itself.
fn eval_leaf(leaf: &Leaf, start: Time, env: &Env, ev: &mut Eval) -> M<Res> {
    let (delay, out) = match leaf.action {
        Action::Finish(d) => (d, Out::Ok(leaf.id)),
        Action::Fail(d) => (d, Out::Err(ModelError::Leaf(leaf.id))),
        Action::Panic(d) => (d, Out::Panic(leaf.id)),
        Action::Hang => (NEVER, Out::Ok(leaf.id)),
    };
    let wake = start.saturating_add(delay);
    // Only a plain 0 ms leaf completes without suspending; `checkpoint` and the library's sleep
    // never resume in a cancelled context (§2, "the library's own awaits are cancellation-aware").
    let never_suspends = delay == 0 && !leaf.aware;
    let cancel = env.cancel;
    let ended = if cancel.at < start || (cancel.at == start && cancel.firm) {
        // Reached in an already-cancelled context: after a shielded scope, or after a value
        // that came back while unwinding (rule 1). Polled once, then dropped at that suspension.
        if never_suspends {
            Some((start, Some(out)))
        } else {
            Some((start, None))
        }
    } else if cancel.at == start {
        // A race at the very instant it is reached. A leaf that waits past this instant is
        // dropped at it either way; one due now (no await, or a `checkpoint` that yields once
        // and resumes in the same instant) completes or not depending on who runs first.
        if delay == 0 {
            return Err(Ambiguous(
                "a leaf completes at the instant of a racing cancellation",
            ));
        }
        Some((start, None))
    } else if cancel.before(wake)? {
        Some((cancel.at, None))
    } else if wake == NEVER {
        None
    } else {
        Some((wake, Some(out)))
    };
    let (res, end) = match ended {
        None => (
            Res {
                end: NEVER,
                out: None,
            },
            None,
        ),
        Some((at, Some(out))) => (
            Res {
                end: at,
                out: Some(out),
            },
            Some((at, Ending::Done)),
        ),
        Some((at, None)) => (Res::dropped(at), Some((at, Ending::Dropped))),
    };
    ev.rec.insert(leaf.id, Record::Leaf { start, end });
    Ok(res)
}
