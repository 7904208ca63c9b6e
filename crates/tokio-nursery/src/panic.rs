//! Catching panics at the library's boundaries: user polls, user drops, user closures.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// Runs `f`, turning a panic into `Err(payload)`.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    // The state `f` touches is either dropped right after a panic or owned by the library and
    // consistent between statements, so observing it after unwinding is sound.
    catch_unwind(AssertUnwindSafe(f))
}

/// The panic message, if the payload is a string (as `panic!` with a message makes it).
pub(crate) fn message(payload: &Payload) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
