//! A hand-written gRPC service (no protoc: the message derives `prost::Message`, the routing is a
//! plain tower service) served by hyper behind `ServerLayer`, and a client behind `ClientLayer`.
#![allow(dead_code, unreachable_pub)] // Each test file uses part of it; `pub` is for them.

pub mod chain;
pub mod probe;
pub mod raw;
pub mod recorder;
pub mod serve;
