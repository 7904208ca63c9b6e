//! Supervised connections, on the [`nursery`] crate: a body of code using a connection is
//! force-exited with a typed [`ConnectionLost`] the moment the connection is lost, the
//! connection is always closed (bounded), and no task is left behind.
//!
//! This is trio's `get_service_connection` — a nursery with a background watcher, `yield
//! connection`, `finally: await disconnect()` — as a library:
//!
//! - [`supervise`] (or a configured [`Supervisor`]) runs a body with a connection. A watcher
//!   child drives the connection and waits on its [`LossSignal`]; on a loss the body is
//!   dropped wherever it is waiting, the connection is closed (a deferred cleanup, shielded,
//!   bounded by the close timeout), and the call returns `Err(E::from(ConnectionLost {
//!   reason }))` in the caller's own error type.
//! - Loss reasons ([`LossReason`]): the peer closed (EOF or close frame), a reset or I/O
//!   error, a heartbeat not answered in time (half-open connections), an idle timeout, a
//!   protocol error from a misbehaving peer, and an external trigger — [`LossSignal::trigger`],
//!   a synchronous call any thread or callback can make.
//! - Transports: [`TcpConnection`] (with an application-level heartbeat hook) and
//!   [`WsConnection`] (tokio-tungstenite: ping/pong heartbeats, close handshake, message size
//!   limits). Implement [`Connection`] to supervise anything else.
//! - [`Reconnect`]: after a loss, close, wait with exponential [`Backoff`] and jitter,
//!   reconnect and run the body again, within limits, reporting [`Event`]s.
//!
//! # Example
//!
//! ```
//! use nursery_net::{supervise, ConnectionLost, TcpConfig, TcpConnection};
//! use tokio::io::AsyncReadExt;
//!
//! #[derive(Debug, thiserror::Error)]
//! enum AppError {
//!     #[error(transparent)]
//!     ConnectionLost(#[from] ConnectionLost),
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! // A peer that reads one line and hangs up.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let (mut socket, _) = listener.accept().await?;
//!     let mut line = [0u8; 6];
//!     socket.read_exact(&mut line).await?;
//!     std::io::Result::Ok(())
//! });
//!
//! let conn = TcpConnection::connect(addr, TcpConfig::new()).await?;
//! let out: Result<(), AppError> = supervise(conn, |conn| async move {
//!     conn.send(b"hello\n").await?;
//!     std::future::pending().await // waits forever: only the loss ends it
//! })
//! .await;
//! match out {
//!     Err(AppError::ConnectionLost(lost)) => assert!(lost.reason.is_peer_closed()),
//!     Ok(()) => unreachable!(),
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod connection;
mod error;
mod loss;
mod supervise;
mod tcp;
mod ws;

pub use connection::Connection;
pub use error::ConnectionLost;
pub use loss::accounting::Accounting;
pub use loss::liveness::Heartbeat;
pub use loss::reason::{LossReason, ProtocolError};
pub use loss::signal::LossSignal;
pub use supervise::backoff::{Backoff, Delays};
pub use supervise::event::Event;
pub use supervise::reconnect::Reconnect;
pub use supervise::supervisor::{supervise, Supervisor, DEFAULT_CLOSE_TIMEOUT};
pub use tcp::config::TcpConfig;
pub use tcp::connection::TcpConnection;
pub use tokio_tungstenite::tungstenite;
pub use ws::config::WsConfig;
pub use ws::connection::WsConnection;
