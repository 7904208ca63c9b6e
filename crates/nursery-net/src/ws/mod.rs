//! The WebSocket transport, on tokio-tungstenite.
//!
//! `connection` is the `WsConnection` the body uses (send, receive, close); `driver` is the
//! background half that reads ahead, answers pings, runs the heartbeat and reports the first loss
//! through `crate::loss`; `error` maps tungstenite's errors to a `LossReason`; `config` holds the
//! options.

pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod driver;
pub(crate) mod error;
