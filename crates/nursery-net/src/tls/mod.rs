//! TLS for both transports, with rustls and its `ring` provider only: the client side (`wss://`
//! and TCP connects) and the server side (`accept`). `config` builds the rustls configurations
//! (roots, private CAs, certificates) and `failure` tells a certificate or hostname error (which
//! reconnecting cannot fix) from a handshake that merely broke. The transports (`ws/`, `tcp/`) run
//! the handshake inside their connect and accept timeouts; this folder knows nothing of them.

mod config;
mod failure;

pub use config::{TlsConfig, TlsError, TlsServerConfig};
pub use failure::TlsFailure;

pub(crate) use failure::classify;
