//! Running a body with a connection, and running it again.
//!
//! `supervisor` is `supervise`: one body, one connection, force-exited with `ConnectionLost` at
//! the loss, the connection closed once on every path. `reconnect` is the builder of a loop of
//! attempts around it and `retrying` runs that loop: paced by `backoff`, each failure
//! classified by `retry` (permanent or transient, `Retry-After`), each new connection prepared
//! by `setup` before the body, each step reported as an `event`; `replay` is its opt-in
//! replay of a lost connection's unsent messages on the next one. It knows connections only
//! through the `Connection` trait (`crate::connection`), never a transport.

pub(crate) mod backoff;
pub(crate) mod event;
pub(crate) mod reconnect;
pub(crate) mod replay;
pub(crate) mod retry;
pub(crate) mod retrying;
pub(crate) mod setup;
pub(crate) mod supervisor;
