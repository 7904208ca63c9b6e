//! What travels on the wire: the `grpc-timeout` header format (parsed and written exactly as the
//! gRPC spec defines it) and the small responses this crate writes itself (a deadline exceeded,
//! a malformed timeout, a server shutting down). The server layer (`server/`) and the client
//! layer (`client/`) both build on it; nothing here touches a scope.

pub(crate) mod response;
pub(crate) mod timeout;
