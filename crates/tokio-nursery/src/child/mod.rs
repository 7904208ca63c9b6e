//! A nursery's children: how they are recorded, run, joined and started.
//!
//! `roster` is the nursery's table of children (a slot each, cancelled without a tree node until
//! one is needed); `runner` is the task that runs a spawned child and reports its end; `handle`
//! is the spawner's `ChildHandle` and `join` its typed result; `link` is what both refer to. `start` runs a child until it
//! reports itself started; `borrowed` runs children that borrow from the body's stack, polled
//! inside the nursery's own task. All of it sits on `crate::cancel`, and `crate::nursery` owns it.

pub(crate) mod borrowed;
pub(crate) mod handle;
pub(crate) mod join;
pub(crate) mod link;
pub(crate) mod roster;
pub(crate) mod runner;
pub(crate) mod start;
