//! Deadlines and cancellation that travel across services, for `tokio-nursery` on tower.
//!
//! - [`ServerLayer`]: each request runs in its own cancel scope and nursery, a child of the
//!   server's root nursery, until its response body is sent. Its deadline comes from
//!   `grpc-timeout` (or a configured header), capped by a server maximum; at the deadline the
//!   handler is force-exited and the client gets `DEADLINE_EXCEEDED` (or 504). A client that goes
//!   away cancels the request with [`CLIENT_DISCONNECTED`], and its cleanups run once.
//! - [`ClientLayer`]: each outgoing request carries the caller's remaining deadline, rounded
//!   down; a spent budget fails at once without the network; the call is cancelled with the
//!   caller's scope.
//!
//! Generic over `tower-service`, `http` and `http-body`: works with tonic and axum, served by
//! hyper.
//!
//! ```
//! use std::time::Duration;
//! use nursery_tower::{format_grpc_timeout, parse_grpc_timeout};
//!
//! let sent = format_grpc_timeout(Duration::from_millis(200));
//! assert_eq!(parse_grpc_timeout(&sent), Ok(Duration::from_millis(200)));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod client;
mod context;
mod error;
mod server;
mod wire;

pub use client::layer::{ClientBody, ClientFuture, ClientLayer, ClientService};
pub use context::{
    BoxError, ChildError, RequestCancel, RequestCancelled, RequestContext, RequestId,
    CLIENT_DISCONNECTED,
};
pub use error::ResponseCut;
pub use server::body::ScopedBody;
pub use server::future::ResponseFuture;
pub use server::layer::{ServerLayer, ServerService};
pub use wire::timeout::{format_grpc_timeout, parse_grpc_timeout, TimeoutParseError};
