//! The synchronization primitives of the cancel tree and the nursery core: loom's mutexes,
//! atomics and waker under `--cfg loom`, so the models in `loom_models.rs` explore their
//! interleavings.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize};
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

    pub(crate) fn arc_into_inner<T>(arc: Arc<T>) -> Option<T> {
        Arc::into_inner(arc)
    }

    /// `futures`' `AtomicWaker`.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(futures_util::task::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn register(&self, waker: &std::task::Waker) {
            self.0.register(waker);
        }

        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize};
    pub(crate) use loom::sync::{Mutex, MutexGuard};
    // Reference counting is not what the models check, and loom's `Arc` cannot be a method
    // receiver (`self: &Arc<Self>`): nodes stay in std's `Arc`.
    pub(crate) use std::sync::Arc;

    pub(crate) fn arc_into_inner<T>(arc: Arc<T>) -> Option<T> {
        Arc::into_inner(arc)
    }

    /// loom's `AtomicWaker`.
    #[derive(Debug)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            AtomicWaker(loom::future::AtomicWaker::new())
        }

        pub(crate) fn register(&self, waker: &std::task::Waker) {
            self.0.register_by_ref(waker);
        }

        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
}

pub(crate) use imp::*;

/// A value set at most once, where "who sets it" is decided by an atomic claim (visible to
/// loom); readers see the value once the winner has stored it.
#[derive(Debug)]
pub(crate) struct SetOnce<T> {
    claimed: AtomicBool,
    value: std::sync::OnceLock<T>,
}

impl<T> SetOnce<T> {
    pub(crate) fn new() -> Self {
        SetOnce {
            claimed: AtomicBool::new(false),
            value: std::sync::OnceLock::new(),
        }
    }

    /// Stores `value` if nobody has claimed the slot; gives it back otherwise.
    pub(crate) fn set(&self, value: T) -> Result<(), T> {
        use std::sync::atomic::Ordering::SeqCst;
        if self
            .claimed
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_err()
        {
            return Err(value);
        }
        // Only the claimant gets here, so this cannot fail.
        let _ = self.value.set(value);
        Ok(())
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.get()
    }
}
