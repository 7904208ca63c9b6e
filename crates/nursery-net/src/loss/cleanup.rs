use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::loss::reason::LossReason;

type Cleanup =
    Box<dyn FnOnce(Option<LossReason>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The cleanups a body registered on its connection (`on_close`), run once by the connection's
/// close, newest first (as nested `finally` blocks unwind).
#[derive(Default)]
pub(crate) struct Cleanups(Mutex<Vec<Cleanup>>);

impl fmt::Debug for Cleanups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.lock().unwrap_or_else(|e| e.into_inner()).len();
        write!(f, "Cleanups({n})")
    }
}

impl Cleanups {
    pub(crate) fn push<F, Fut>(&self, cleanup: F)
    where
        F: FnOnce(Option<LossReason>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cleanup: Cleanup = Box::new(move |reason| Box::pin(cleanup(reason)));
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cleanup);
    }

    /// Runs every registered cleanup, newest first; a cleanup registered while they run is run
    /// too. Each runs once: they are taken out before they start.
    pub(crate) async fn run(&self, reason: Option<LossReason>) {
        loop {
            let next = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(cleanup) = next else { return };
            cleanup(reason.clone()).await;
        }
    }
}
