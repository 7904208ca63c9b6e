//! Running a body with a connection, and running it again.
//!
//! `supervisor` is `supervise`: one body, one connection, force-exited with `ConnectionLost` at
//! the loss, the connection closed once on every path. `reconnect` wraps it in a loop of
//! attempts paced by `backoff`, and reports each step as an `event`; `replay` is its opt-in
//! replay of a lost connection's unsent messages on the next one. It knows connections only
//! through the `Connection` trait (`crate::connection`), never a transport.

pub(crate) mod backoff;
pub(crate) mod event;
pub(crate) mod reconnect;
pub(crate) mod replay;
pub(crate) mod supervisor;
