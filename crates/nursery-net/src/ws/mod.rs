//! The WebSocket transport, on tokio-tungstenite.
//!
//! `connection` is the `WsConnection` the body uses (send, receive, accounting); `driver` is the
//! background half that reads ahead (bounded, see `crate::loss::link`), writes queued messages
//! one at a time while it keeps reading (`io`), answers pings, runs the heartbeat and reports the
//! first loss through `crate::loss`; `close` performs the close handshake and runs the body's
//! cleanups; `ledger` records what was handed to the socket; `error` maps tungstenite's errors
//! to a `LossReason`; `config` holds the options.

pub(crate) mod close;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod driver;
pub(crate) mod error;
pub(crate) mod io;
pub(crate) mod ledger;
