//! Cancellation: where it starts and how it travels.
//!
//! `tree` is the cancel tree every scope, nursery and child hangs in, and the only place that
//! knows how a cancellation propagates (shields, deadlines, live structure). `scope`, `run`
//! (with its deadline `timer`), `timeout` and `time` are where a cancellation *starts* (a
//! `CancelScope`, a deadline, a shield); `reason` is what it carries and `context` is how a future finds its enclosing node.
//! `deadline` and `grace` add the deadline lookups and the drain start to the tree's nodes;
//! `handler` hangs cancellation handlers in the tree as leaves. `crate::nursery` and
//! `crate::child` build on this folder. The tree sees a nursery's children
//! only as `GroupMembers` (implemented by the roster), and `context` lends a lazy child's roster
//! slot to the code it polls.

pub(crate) mod context;
mod deadline;
mod grace;
pub(crate) mod handler;
pub(crate) mod reason;
pub(crate) mod run;
pub(crate) mod scope;
pub(crate) mod time;
pub(crate) mod timeout;
pub(crate) mod timer;
pub(crate) mod tree;
