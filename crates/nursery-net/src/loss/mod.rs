//! How a loss is detected, named and delivered; shared by both transports.
//!
//! `reason` names a loss (`LossReason`), `signal` is the synchronous trigger any thread or
//! callback can fire, `link` carries the first loss from a connection's driver to the body that
//! `supervise` is running, and `liveness` is the heartbeat and idle clock both transports run.
//! `crate::tcp` and `crate::ws` build on this folder; nothing here knows a transport.

pub(crate) mod link;
pub(crate) mod liveness;
pub(crate) mod reason;
pub(crate) mod signal;
