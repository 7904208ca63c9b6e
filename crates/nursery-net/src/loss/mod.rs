//! How a loss is detected, named, delivered and accounted for; shared by both transports.
//!
//! `reason` names a loss (`LossReason`), `signal` is the synchronous trigger any thread or
//! callback can fire, `link` carries the first loss from a connection's driver to the body that
//! `supervise` is running and holds the bounded read-ahead, `liveness` is the heartbeat and idle
//! clock both transports run, `accounting` is what a connection hands back at its end (unread,
//! unsent, in flight), and `cleanup` holds the body's `on_close` hooks. `crate::tcp` and
//! `crate::ws` build on this folder; nothing here knows a transport.

pub(crate) mod accounting;
pub(crate) mod cleanup;
pub(crate) mod link;
pub(crate) mod liveness;
pub(crate) mod reason;
pub(crate) mod signal;
