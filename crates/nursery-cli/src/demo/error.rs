//! The demo's error type, at the bottom of the demo's modules: every task returns it.

use nursery_net::ConnectionLost;

/// Why a demo task failed. A lost connection is its own variant, so the reconnect loop (and a
/// reader) can tell a loss from a broken demo.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// A supervised client's connection was lost (the expected outcome of a fault).
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionLost),
    /// A client could not connect to the embedded server. The message is the WebSocket
    /// error's own: the reconnect loop's events already say "connect failed".
    #[error("{0}")]
    Connect(#[source] nursery_net::ConnectError),
    /// The embedded server could not accept connections.
    #[error("demo server failed")]
    Server(#[source] std::io::Error),
    /// The demo's own setup (binding the listener) failed.
    #[error("cannot start the demo server on 127.0.0.1")]
    Bind(#[source] std::io::Error),
    /// Tasks were still alive after every nursery had returned.
    #[error("{0} tasks left alive")]
    TasksLeftAlive(usize),
}
