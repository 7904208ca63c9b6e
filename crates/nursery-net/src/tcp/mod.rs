//! The TCP transport: `TcpConnection` (`connection`) and its options (`config`).
//!
//! A TCP stream with an application-level heartbeat hook, on the shared loss machinery in
//! `crate::loss`.

pub(crate) mod config;
pub(crate) mod connection;
