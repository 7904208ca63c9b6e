//! The client side: [`ClientLayer`](layer::ClientLayer) writes the caller's remaining deadline on
//! each outgoing request and answers at once, without the network, when nothing is left. Shares
//! the timeout format and the written responses with the server side through `wire/`.

pub(crate) mod layer;
