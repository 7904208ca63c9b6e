//! The server side: [`ServerLayer`](layer::ServerLayer) turns each request into a child of a
//! server-level root nursery (`task`), running in its own cancel scope and nursery; the future
//! hyper polls (`future`) and the body it streams (`body`) only relay what that child sends over a
//! channel, and cancel it when hyper drops them early (a client disconnect). Relies on `wire/` for
//! the timeout format and the responses written on failure.

pub(crate) mod body;
pub(crate) mod future;
pub(crate) mod layer;
pub(crate) mod task;
