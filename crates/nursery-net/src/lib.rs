//! Supervised connections, on the [`tokio_nursery`] crate: a body of code using a connection is
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
//! - Loss reasons ([`LossReason`]): the peer closed cleanly (a close frame, with its code and
//!   reason; a clean TCP EOF), an abort (a reset, or a WebSocket stream ended without a close
//!   frame) or I/O error, a heartbeat not answered in time (half-open connections), an idle timeout, a
//!   protocol error from a misbehaving peer, and an external trigger — [`LossSignal::trigger`],
//!   a synchronous call any thread or callback can make.
//! - Transports: [`TcpConnection`] (with an application-level heartbeat hook) and
//!   [`WsConnection`] (tokio-tungstenite: ping/pong heartbeats, close handshake, message size
//!   limits). Implement [`Connection`] to supervise anything else.
//! - Opening a connection never hangs and fails with a typed [`ConnectError`]: a connect timeout
//!   ([`WsConfig::connect_timeout`], [`TcpConfig::connect_timeout`]) and a handshake timeout
//!   for [`WsConnection::accept`], 10 s by default; [`ConnectError::is_permanent`] and
//!   [`ConnectError::retry_after`] say whether and when to try again.
//! - [`Reconnect`]: after a loss or a transient connect failure, close, wait with exponential
//!   [`Backoff`] and jitter (reset only after a connection stayed up for `stable_after`, at
//!   least a server's `Retry-After`), reconnect, run a [`Setup`] step and the body again,
//!   within limits; permanent errors give up at once ([`Retry`]); [`Event`]s report each step.
//! - The body's own cleanups: `on_close` on either transport runs async code once with the
//!   connection's close, bounded by the close timeout, with the loss reason.
//!
//! # Nothing lost: what `Ok` from `send` means, and how far the library reads ahead
//!
//! **`Ok` from `send`** means the message's bytes were written to the kernel (WebSocket: its
//! frame was written and flushed; TCP: every byte was written). It does not mean the peer has
//! them: TCP gives no application-level acknowledgement. WebSocket messages go to the socket one
//! at a time, in `send` order; at a loss each message given to `send` is exactly one of:
//! acknowledged, *in flight* (handed to the socket; a frame the loss cut short counts here,
//! because its first bytes may have been delivered) or *unsent* (never handed to the socket, so
//! sending it again cannot duplicate it).
//!
//! **Read-ahead.** While the body is busy, the connection keeps reading — so pings are answered
//! and a close frame or a protocol error is seen when its bytes arrive — until the messages
//! waiting for `recv` reach the read-ahead bound: 64 messages, or 1 MiB of them (so at most
//! 1 MiB plus one message plus the read buffer); see
//! [`WsConfig::inbound_capacity`] and [`WsConfig::inbound_bytes`] (and the same on
//! [`TcpConfig`]). At the bound reading stops until the body reads (backpressure) and the
//! heartbeat is suspended.
//!
//! **At the loss**, nothing received or given to `send` is dropped silently: the connection's
//! [`Accounting`] — unread messages in order, unsent messages in order, the in-flight list (the
//! last written messages within a 4 MiB window, [`WsConfig::in_flight_window`]) and the counts
//! that make them add up — is taken once, after supervision, with `take_accounting` on a clone
//! of the connection. With [`Supervisor::drain`], a clean close by the peer lets the body read
//! what was buffered and then see the loss from `recv`; abrupt losses force-exit at once.
//!
//! # Example
//!
//! ```
//! use nursery_net::{supervise, ConnectionLost, TcpConfig, TcpConnection};
//! use tokio::io::AsyncReadExt;
//!
//! // `thiserror` is not a dependency of this crate: add it to your own Cargo.toml.
//! #[derive(Debug, thiserror::Error)]
//! enum AppError {
//!     #[error(transparent)]
//!     ConnectionLost(#[from] ConnectionLost),
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
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

mod connect;
mod connection;
mod error;
mod loss;
mod supervise;
mod tcp;
mod tls;
mod ws;

pub use connect::error::{ConnectError, ConnectStage};
pub use connection::Connection;
pub use error::ConnectionLost;
pub use loss::accounting::Accounting;
pub use loss::liveness::Heartbeat;
pub use loss::reason::{LossReason, ProtocolError};
pub use loss::signal::LossSignal;
pub use supervise::backoff::{Backoff, Delays};
pub use supervise::event::Event;
pub use supervise::reconnect::{Reconnect, DEFAULT_STABLE_AFTER};
pub use supervise::retry::{GiveUp, Retry};
pub use supervise::setup::{NoSetup, Setup};
pub use supervise::supervisor::{supervise, Supervisor, DEFAULT_CLOSE_TIMEOUT};
pub use tcp::config::TcpConfig;
pub use tcp::connection::TcpConnection;
pub use tls::{TlsConfig, TlsError, TlsFailure, TlsServerConfig};
pub use tokio_tungstenite::tungstenite;
pub use ws::config::WsConfig;
pub use ws::connection::WsConnection;
