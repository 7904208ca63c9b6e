//! The nursery: a body, its children and its cleanups, which all end before it returns.
//!
//! `builder` opens one, `future` is the future that drives it (body, then the children, then the
//! cleanups), `core` is the state the body's `Nursery` handle, remote `NurseryHandle`s and every
//! child share, and `handle` (the body's `Nursery`) and `remote` (`NurseryHandle`) are those two
//! handles. `cleanup`, `detach` and `resource` are the deferred cleanups and how they survive a
//! drop of the nursery. `policy` holds the supervisor policy and the concurrency limit a builder
//! can add (counted by the semaphore of `gate`), `backpressure` the spawns that wait for or
//! refuse a slot of that limit, and `collect` the deadline snapshot of value-children
//! (`collect_at`), built on child handles. Children themselves live in `crate::child`;
//! cancellation in `crate::cancel`.

pub(crate) mod backpressure;
pub(crate) mod builder;
pub(crate) mod cleanup;
pub(crate) mod collect;
pub(crate) mod core;
pub(crate) mod detach;
pub(crate) mod future;
pub(crate) mod gate;
pub(crate) mod handle;
pub(crate) mod policy;
pub(crate) mod remote;
pub(crate) mod resource;
