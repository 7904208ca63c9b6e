//! Opening connections: the typed error of a connect or an accept, and the WebSocket opening
//! handshake that produces it.
//!
//! `error` is `ConnectError` (what failed, at which stage, whether retrying can help, how long
//! the server asked to wait) and `ConnectStage`; `retry_after` parses the `Retry-After` header
//! of a refused upgrade; `ws` runs the client side (TCP connect, then the upgrade) and the
//! server side (the upgrade on an accepted socket) and maps tungstenite's errors to
//! `ConnectError`; `tls` runs the TLS stage for both transports (configured in `crate::tls`);
//! `deadline` bounds the stages of one connect by a single timeout.
//! `crate::ws::connection` and `crate::tcp::connection` call into it and wrap
//! the stream they get; `crate::supervise::reconnect` reads its classification.

pub(crate) mod deadline;
pub(crate) mod error;
pub(crate) mod retry_after;
pub(crate) mod tls;
pub(crate) mod ws;
