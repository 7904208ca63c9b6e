//! An executable reference model of DESIGN.md §2–§4, for randomized trees.
//!
//! [`Spec`] is a small tree language: cancel scopes (deadline, cancel at `t`, shield, grace,
//! `fail_after`), nurseries (spawned or borrowing children, deferred cleanups, a cleanup
//! timeout, grace), leaves with scripted behaviour (finish, fail or panic at `t`, or hang), and
//! synchronous actions on an enclosing scope (set its shield on or off, cancel it). Times are
//! integer milliseconds on tokio's paused clock; every duration is relative to the moment its
//! construct is first polled. [`predict`] computes, in plain Rust and without async, what the
//! root returns and when, and a [`Record`] for every leaf, scope, nursery and cleanup: when it
//! started, when and how it ended, what it returned. [`run::observe`] builds the same tree with
//! the library and records the same things, so the two can be compared with `==`.
//!
//! # How the model works
//!
//! Evaluation is a recursion over the tree. Each construct is evaluated from its start time with
//! an [`Env`]: the instant its context becomes effectively cancelled (if ever) and the deadlines
//! a grace period may not outlive. The cancellation instant of a nursery's members depends on
//! the members themselves (the first failure cancels the others), so a nursery evaluates its
//! members twice: once as if nothing inside failed, to find the first failure, then again with
//! that failure's instant as their cancellation. Causality makes this exact: nothing before the
//! first failure depends on it.
//!
//! # Same-instant events, and what is excluded
//!
//! DESIGN.md orders two things that happen at the same instant in one case only: a scope checks
//! its deadline before it polls its body (§4), so a deadline wins against a wake-up *in the same
//! task* (a "firm" cancellation here). Every other coincidence — a cancellation from another task
//! (a sibling's failure, a `cancel()` from a timer task, an enclosing deadline seen from a
//! spawned child) at the very instant something else completes — is a race whose winner depends
//! on tokio's scheduling, not on DESIGN.md. The model reports such a case as [`Ambiguous`] and the
//! property test discards it. So are two failures of one nursery at the same instant (which one
//! is "first" is a race), and a child spawned at the instant its nursery is cancelled (it may be
//! dropped before its first poll).
//!
//! Two grace-period combinations are left open by DESIGN.md §4 and are excluded the same way:
//! - an enclosing cancellation that is not one of the bounds the drain was computed from (an
//!   explicit cancel, a nursery failure, an enclosing grace scope going hard) reaching a scope
//!   that is already draining: DESIGN.md says an expiring enclosing *bound* cuts the drain short,
//!   but not whether any other enclosing cancellation does;
//! - a grace scope's own deadline passing while it drains a cancellation that came from
//!   elsewhere: whether the scope's own deadline bounds its own drain is not said.
//!
//! # Shield toggles and cancels at arbitrary points
//!
//! An [`Act`] runs in a sequence without an await: `set_shield(on)` or `cancel()` on the handle
//! of an enclosing scope, so a cancellation and a shield change can happen in the same poll
//! (the shield hang, DESIGN §4). A scope that an act targets is evaluated twice (see
//! `scope.rs`): once without the acts' effects, to find when they happen, then with them. The rules (DESIGN.md §4) are in
//! `acts.rs`: a shield set before the cancellation is delivered holds; set after delivery (the
//! scope is unwinding) it does not stop the unwinding; unshielding inside a cancelled enclosing
//! scope cancels at once. Delivery happens at the instant the cancellation reaches the scope,
//! so a shield set at that very instant is ordered only where the code says so: in the same
//! synchronous stretch as the `cancel()` that caused it (before delivery), or in a cleanup of a
//! nursery one of whose members that cancellation already dropped (after). Every other shield
//! change at that instant is a race between tasks and the case is set aside. Acts on grace
//! scopes, and shield changes around grace periods, are not modelled (set aside too).
//!
//! Not generated at all: `Nursery::cancel`, child handles, `start`, `NurseryHandle::fail`,
//! moving deadlines while running, foreign drops, and two futures
//! polled concurrently inside one body (`join!`/`select!`, the documented limit of §2).
//!
//! # Regressions
//!
//! Two disagreements the randomized search found were library bugs, now fixed and pinned by the
//! `known_` tests in `model_trees.rs`: a shielded grace scope's drain was cut short by an
//! enclosing deadline, and a grace nursery first polled inside an already-cancelled scope
//! polled its body. [`predict_unless_known`] (which skips them) is kept for bisecting.
//!
//! With acts, the search finds the shield hang on the code before unwinding was
//! committed at delivery within a few hundred cases (the `found_` tests), and it found a lost
//! wakeup in the nursery's roster after a cancellation undone by a shield (fixed; pinned in
//! `scope_shields.rs`).
#![allow(dead_code, unreachable_pub)]

mod acts;
pub mod gen;
mod nursery;
mod predict;
pub mod run;
mod scope;

use std::collections::BTreeMap;
use std::fmt;

/// Milliseconds since the root started, on the paused clock.
pub type Time = u64;

/// "Never happens": a hang, or a cancellation that never comes.
pub const NEVER: Time = Time::MAX;

/// The cleanup timeout of a nursery built without one (DESIGN.md §3.1: 5 s).
pub const DEFAULT_CLEANUP_TIMEOUT: u64 = 5_000;

// ---------------------------------------------------------------------------------------------
// The tree language
// ---------------------------------------------------------------------------------------------

/// A construct of the tree. Sequences (`Vec<Spec>`) run their items one after the other, like
/// `a.await?; b.await?; …`, and return the last item's value (`0` if empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Leaf(Leaf),
    Scope(Scope),
    Nursery(Nursery),
    Act(Act),
}

/// A synchronous step on an enclosing scope's `CancelHandle`, with no await: it runs whenever it
/// is reached, even in a cancelled context (like a plain 0 ms leaf). Its value is its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Act {
    pub id: u32,
    pub kind: ActKind,
    /// Which enclosing scope, counted outwards from the nearest (0), modulo how many there are.
    pub up: u8,
    /// The scope acted on, resolved by [`number`]; `None` if no scope encloses the act (a no-op).
    pub target: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// `set_shield(on)`.
    Shield(bool),
    /// `cancel()`.
    Cancel,
}

/// A plain future with a script. Its value is its id; its error is `ModelError::Leaf(id)`; its
/// panic payload is `PanicId(id)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub id: u32,
    pub action: Action,
    /// Waits with the library's cancellation-aware `sleep` (or `checkpoint` for 0 ms) instead of
    /// `tokio::time::sleep` (or no await at all for 0 ms).
    pub aware: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Returns `Ok(id)` after `t` ms.
    Finish(u64),
    /// Returns `Err(ModelError::Leaf(id))` after `t` ms.
    Fail(u64),
    /// Panics with `PanicId(id)` after `t` ms.
    Panic(u64),
    /// Never completes.
    Hang,
}

/// A cancel scope around a sequence: `CancelScope::run`, `move_on_after`, `fail_after` or
/// `shield`, whichever fits the options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub id: u32,
    /// `with_timeout(deadline ms)`, fixed at the first poll.
    pub deadline: Option<u64>,
    /// `handle.cancel()` from a timer task, `t` ms after the first poll.
    pub cancel_at: Option<u64>,
    pub shield: bool,
    pub grace: Option<u64>,
    /// The absorbed cancellation becomes `Err(ModelError::Elapsed(id))` (`fail_after`) instead
    /// of the value `0` (`move_on_after`).
    pub fail: bool,
    pub body: Vec<Spec>,
}

/// `nursery_all(|n| async move { spawn children; defer cleanups; body })`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nursery {
    pub id: u32,
    /// `NurseryBuilder::cleanup_timeout`; `None` keeps the default.
    pub cleanup_timeout: Option<u64>,
    /// `NurseryBuilder::grace`.
    pub grace: Option<u64>,
    /// Spawned in this order when the body is first polled.
    pub children: Vec<Child>,
    /// Deferred in this order when the body is first polled (so they run in reverse).
    pub cleanups: Vec<Cleanup>,
    pub body: Vec<Spec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// `spawn_borrowing` (polled in the nursery's task) instead of `spawn` (its own task).
    pub borrowing: bool,
    pub body: Vec<Spec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cleanup {
    pub id: u32,
    pub body: Vec<Spec>,
}

// ---------------------------------------------------------------------------------------------
// What is observed
// ---------------------------------------------------------------------------------------------

/// The error type of every nursery in the tree.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ModelError {
    /// A failing leaf.
    Leaf(u32),
    /// A `fail_after` scope that absorbed its deadline (`?`-propagated `Elapsed`).
    Elapsed(u32),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Leaf(id) => write!(f, "leaf {id} failed"),
            ModelError::Elapsed(id) => write!(f, "scope {id} elapsed"),
        }
    }
}

/// The payload of a scripted panic.
#[derive(Debug)]
pub struct PanicId(pub u32);

/// How a sequence, or the root, completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    Ok(u32),
    Err(ModelError),
    Panic(u32),
}

/// How a leaf or a cleanup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Ran to its end (a leaf: whatever its script returns; a cleanup: `Ok`).
    Done,
    /// A cleanup returned `Err`.
    Failed,
    /// A cleanup panicked.
    Panicked,
    /// Dropped before its end: cancelled (a leaf) or timed out (a cleanup).
    Dropped,
}

/// What happened to one construct, keyed by its id. Constructs never reached have no record;
/// scopes and nurseries that never return (dropped, parked, panicking, hanging) have none either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// First polled at `start`; ended at `end`, if it ended.
    Leaf {
        start: Time,
        end: Option<(Time, Ending)>,
    },
    /// Returned at `at`: `Some(value)`, or `None` when it absorbed a cancellation.
    Scope {
        at: Time,
        out: Option<Result<u32, ModelError>>,
    },
    /// Returned at `at`: the body's value, or every error in order (`nursery_all`).
    Nursery {
        at: Time,
        out: Result<u32, Vec<ModelError>>,
    },
    /// First polled at `start`; ended at `end`, if it ended.
    Cleanup {
        start: Time,
        end: Option<(Time, Ending)>,
    },
    /// An act ran at `at`.
    Act { at: Time },
}

pub type Records = BTreeMap<u32, Record>;

/// Everything compared between the model and the library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// When and how the root completed; `None` if it never does.
    pub root: Option<(Time, Out)>,
    pub records: Records,
}

/// The case depends on something DESIGN.md leaves open (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ambiguous(pub &'static str);

type M<T> = Result<T, Ambiguous>;

/// Predicts the outcome of running `root` on the paused clock, or says why the case is
/// ambiguous.
pub fn predict(root: &Spec) -> Result<Outcome, Ambiguous> {
    predict::evaluate(root, false)
}

/// [`predict`], setting aside the cases where the library is known to disagree with the model.
pub fn predict_unless_known(root: &Spec) -> Result<Outcome, Ambiguous> {
    predict::evaluate(root, true)
}

/// The largest id in `spec` (its subtree holds the ids from its own to this one).
fn last_id(spec: &Spec) -> u32 {
    match spec {
        Spec::Leaf(l) => l.id,
        Spec::Act(a) => a.id,
        Spec::Scope(s) => last_in(&s.body).max(s.id),
        Spec::Nursery(n) => {
            let children = n.children.iter().map(|c| last_in(&c.body));
            let cleanups = n.cleanups.iter().map(|c| last_in(&c.body).max(c.id));
            children
                .chain(cleanups)
                .fold(last_in(&n.body).max(n.id), u32::max)
        }
    }
}

/// The largest id in a sequence (0 if empty).
fn last_in(items: &[Spec]) -> u32 {
    items.iter().map(last_id).max().unwrap_or(0)
}

/// Whether the construct `id` is in the sequence `items`, at any depth.
fn in_seq(items: &[Spec], id: u32) -> bool {
    let first = items.first().map(|s| match s {
        Spec::Leaf(l) => l.id,
        Spec::Act(a) => a.id,
        Spec::Scope(s) => s.id,
        Spec::Nursery(n) => n.id,
    });
    first.is_some_and(|first| first <= id && id <= last_in(items))
}

/// Whether an act in `items` targets scope `id`.
fn targets(items: &[Spec], id: u32) -> bool {
    items.iter().any(|s| match s {
        Spec::Leaf(_) => false,
        Spec::Act(a) => a.target == Some(id),
        Spec::Scope(s) => targets(&s.body, id),
        Spec::Nursery(n) => {
            targets(&n.body, id)
                || n.children.iter().any(|c| targets(&c.body, id))
                || n.cleanups.iter().any(|c| targets(&c.body, id))
        }
    })
}

/// Whether a grace period appears in `items`.
fn has_grace(items: &[Spec]) -> bool {
    items.iter().any(|s| match s {
        Spec::Leaf(_) | Spec::Act(_) => false,
        Spec::Scope(s) => s.grace.is_some() || has_grace(&s.body),
        Spec::Nursery(n) => {
            n.grace.is_some()
                || has_grace(&n.body)
                || n.children.iter().any(|c| has_grace(&c.body))
                || n.cleanups.iter().any(|c| has_grace(&c.body))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers for tests
// ---------------------------------------------------------------------------------------------

/// Gives every leaf, act, scope, nursery and cleanup a distinct id (1, 2, …) in depth-first
/// order, and resolves the target of every act.
pub fn number(spec: Spec) -> Spec {
    let mut n = Numbering {
        next: 0,
        scopes: Vec::new(),
    };
    n.spec(spec)
}

/// The next id, and the ids of the scopes enclosing the construct being numbered (outermost
/// first).
struct Numbering {
    next: u32,
    scopes: Vec<u32>,
}

impl Numbering {
    fn fresh(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    fn seq(&mut self, items: Vec<Spec>) -> Vec<Spec> {
        items.into_iter().map(|s| self.spec(s)).collect()
    }

    fn spec(&mut self, spec: Spec) -> Spec {
        match spec {
            Spec::Leaf(leaf) => Spec::Leaf(Leaf {
                id: self.fresh(),
                ..leaf
            }),
            Spec::Act(act) => {
                let target = match self.scopes.len() {
                    0 => None,
                    n => Some(self.scopes[n - 1 - usize::from(act.up) % n]),
                };
                Spec::Act(Act {
                    id: self.fresh(),
                    target,
                    ..act
                })
            }
            Spec::Scope(scope) => {
                let id = self.fresh();
                self.scopes.push(id);
                let body = self.seq(scope.body);
                self.scopes.pop();
                Spec::Scope(Scope { id, body, ..scope })
            }
            Spec::Nursery(n) => self.nursery(n),
        }
    }

    fn nursery(&mut self, n: Nursery) -> Spec {
        let id = self.fresh();
        let children = n
            .children
            .into_iter()
            .map(|c| Child {
                borrowing: c.borrowing,
                body: self.seq(c.body),
            })
            .collect();
        let cleanups = n
            .cleanups
            .into_iter()
            .map(|c| {
                let id = self.fresh();
                Cleanup {
                    id,
                    body: self.seq(c.body),
                }
            })
            .collect();
        Spec::Nursery(Nursery {
            id,
            cleanup_timeout: n.cleanup_timeout,
            grace: n.grace,
            children,
            cleanups,
            body: self.seq(n.body),
        })
    }
}

/// Builders for hand-written trees (ids are assigned by [`number`]).
pub mod build {
    use super::*;

    pub fn leaf(action: Action) -> Spec {
        Spec::Leaf(Leaf {
            id: 0,
            action,
            aware: false,
        })
    }

    pub fn aware(action: Action) -> Spec {
        Spec::Leaf(Leaf {
            id: 0,
            action,
            aware: true,
        })
    }

    pub fn finish(t: u64) -> Spec {
        leaf(Action::Finish(t))
    }

    pub fn fail(t: u64) -> Spec {
        leaf(Action::Fail(t))
    }

    pub fn panic(t: u64) -> Spec {
        leaf(Action::Panic(t))
    }

    pub fn hang() -> Spec {
        leaf(Action::Hang)
    }

    /// `set_shield(on)` on the enclosing scope `up` levels out (0: the nearest).
    pub fn set_shield(up: u8, on: bool) -> Spec {
        Spec::Act(Act {
            id: 0,
            kind: ActKind::Shield(on),
            up,
            target: None,
        })
    }

    /// `cancel()` on the enclosing scope `up` levels out (0: the nearest).
    pub fn cancel(up: u8) -> Spec {
        Spec::Act(Act {
            id: 0,
            kind: ActKind::Cancel,
            up,
            target: None,
        })
    }

    /// A scope with no options; set fields with struct update syntax on the result of
    /// [`scope_of`].
    pub fn scope(body: Vec<Spec>) -> Spec {
        Spec::Scope(scope_of(body))
    }

    pub fn scope_of(body: Vec<Spec>) -> Scope {
        Scope {
            id: 0,
            deadline: None,
            cancel_at: None,
            shield: false,
            grace: None,
            fail: false,
            body,
        }
    }

    pub fn nursery(children: Vec<Vec<Spec>>, cleanups: Vec<Vec<Spec>>, body: Vec<Spec>) -> Spec {
        Spec::Nursery(Nursery {
            id: 0,
            cleanup_timeout: None,
            grace: None,
            children: children
                .into_iter()
                .map(|body| Child {
                    borrowing: false,
                    body,
                })
                .collect(),
            cleanups: cleanups
                .into_iter()
                .map(|body| Cleanup { id: 0, body })
                .collect(),
            body,
        })
    }
}
