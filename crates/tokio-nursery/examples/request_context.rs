//! Request context that children inherit: a request id for logs, the authenticated principal,
//! and a per-request budget of downstream calls.
//!
//! A server handles two requests at once. Each binds its four `Local` values once, around its
//! nursery, and everything the handler starts reads them without any of it being passed along:
//! spawned children (each its own tokio task), a blocking step on tokio's blocking pool, a
//! `start`ed child, a grandchild in a nested nursery, the cleanup that writes the access log, and
//! a plain `tokio::spawn` wrapped in `with_locals`. With `tokio::task_local!`, every spawned task
//! would start with nothing bound.
//!
//! The budget is shared by the request's children (an `Arc` of an atomic counter), so the
//! request as a whole stops at its limit: an inventory lookup over budget is skipped, but the
//! billing call is required, so req-2, whose budget runs out first, fails; its handler is
//! cancelled and its access-log cleanup still runs, with the request's values. The billing child
//! narrows the principal for its own sub-task (a service account); its siblings and the handler
//! keep the caller's.
//!
//! Simulated latencies on the paused clock of a current-thread runtime, and each request's log
//! collected and printed when it ends, so the output is the same on every run.
//!
//! ```text
//! cargo run -p tokio-nursery --example request_context
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::sleep;
use tokio_nursery::{nursery, with_locals, Local, Nursery};

/// Which request a line belongs to, in every log line.
static REQUEST_ID: Local<String> = Local::named("request_id");
/// Who the request acts for.
static PRINCIPAL: Local<Principal> = Local::named("principal");
/// Downstream calls left for the whole request, shared by all its children.
static BUDGET: Local<Budget> = Local::named("budget");
/// Where the request's log lines go (printed together at the end).
static LOG: Local<Arc<Mutex<Vec<String>>>> = Local::named("log");

#[derive(Debug, Clone, PartialEq)]
enum Principal {
    User(&'static str),
    Service(&'static str),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(name) => write!(f, "user:{name}"),
            Principal::Service(name) => write!(f, "service:{name}"),
        }
    }
}

/// A budget of downstream calls, shared by every child of one request.
#[derive(Debug, Clone)]
struct Budget(Arc<AtomicU32>);

impl Budget {
    fn new(calls: u32) -> Self {
        Budget(Arc::new(AtomicU32::new(calls)))
    }

    /// Takes one call from the request's budget, if any is left.
    fn take(&self) -> bool {
        self.0
            .fetch_update(SeqCst, SeqCst, |left| left.checked_sub(1))
            .is_ok()
    }

    fn left(&self) -> u32 {
        self.0.load(SeqCst)
    }
}

#[derive(Debug)]
struct AppError(String);

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A log line tagged with the current request and principal, wherever it is called from.
fn log(message: impl fmt::Display) {
    let id = REQUEST_ID.get().unwrap_or_else(|| "-".into());
    let who = PRINCIPAL
        .with(ToString::to_string)
        .unwrap_or_else(|| "-".into());
    let line = format!("[{id}] [{who}] {message}");
    match LOG.get() {
        Some(lines) => lines.lock().unwrap().push(line),
        None => println!("{line}"),
    }
}

/// A downstream call: charged to the request's budget, refused when it is spent.
async fn call(service: &str, latency_ms: u64) -> Result<(), AppError> {
    let budget = BUDGET.try_get().map_err(|e| AppError(e.to_string()))?;
    if !budget.take() {
        log(format_args!("{service}: refused, budget spent"));
        return Err(AppError(format!("budget spent before calling {service}")));
    }
    log(format_args!(
        "{service}: calling ({} calls left)",
        budget.left()
    ));
    sleep(Duration::from_millis(latency_ms)).await;
    log(format_args!("{service}: ok after {latency_ms} ms"));
    Ok(())
}

/// The handler: knows nothing about where its context came from.
async fn handle(n: &Nursery<'_, AppError>, calls: u32) -> Result<(), AppError> {
    log("handler started");
    n.defer(async {
        // Cleanups see the request's values too: the access log line.
        let left = BUDGET.get().map_or(0, |b| b.left());
        log(format_args!("access log: done, {left} calls unused"));
        Ok(())
    });
    let addr = n
        .start(|started| async move {
            log("cache warmed");
            started.started("cache-7");
            sleep(Duration::from_millis(40)).await;
            log("cache refreshed in the background");
            Ok(())
        })
        .await
        .map_err(|e| AppError(format!("start: {e}")))?;
    log(format_args!("using {addr}"));
    n.spawn(PRINCIPAL.scope(Principal::Service("billing-bot"), async {
        // Only this child and what it starts act as the service account.
        nursery(|inner| async move {
            inner.spawn(async {
                log("grandchild: charging the account");
                call("billing", 25).await
            });
            Ok(())
        })
        .await
    }));
    for (i, latency) in (0..calls).zip([30u64, 10, 20, 50, 60, 70]) {
        n.spawn(async move {
            // A failed call is logged; it does not fail the request.
            let _ = call(&format!("inventory#{i}"), latency).await;
            Ok(())
        });
    }
    let (rendered, done) = tokio::sync::oneshot::channel();
    n.spawn_blocking(move || {
        // On a blocking-pool thread, still the request's values.
        log("blocking: rendered the PDF");
        let _ = rendered.send(());
        Ok(())
    });
    let _ = done.await;
    // A plain tokio task carries the values only when wrapped.
    let audit = tokio::spawn(with_locals(async {
        log("audit: sent from a plain tokio::spawn")
    }));
    audit.await.map_err(|e| AppError(e.to_string()))?;
    log("handler returned");
    Ok(())
}

/// Binds the request's context once and runs the handler in a nursery.
async fn serve(id: &str, user: &'static str, budget: u32, calls: u32) -> Vec<String> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = LOG
        .scope(Arc::clone(&lines), async {
            REQUEST_ID
                .scope(id.to_string(), async {
                    PRINCIPAL
                        .scope(Principal::User(user), async {
                            BUDGET
                                .scope(Budget::new(budget), async {
                                    nursery(|n| async move { handle(&n, calls).await }).await
                                })
                                .await
                        })
                        .await
                })
                .await
        })
        .await;
    let mut lines = std::mem::take(&mut *lines.lock().unwrap());
    lines.push(format!("[{id}] result: {out:?}"));
    lines
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (a, b) = rt.block_on(async {
        let a = tokio::spawn(async { serve("req-1", "alice", 8, 3).await });
        let b = tokio::spawn(async { serve("req-2", "bob", 3, 5).await });
        (a.await.expect("req-1"), b.await.expect("req-2"))
    });
    for line in a.iter().chain(&b) {
        println!("{line}");
    }
    // Outside every request: nothing is bound.
    assert_eq!(REQUEST_ID.get(), None);
    log("main: no request bound here");
    let refused = b.iter().filter(|l| l.contains("refused")).count();
    assert!(a.iter().all(|l| l.starts_with("[req-1]")));
    assert!(b.iter().all(|l| l.starts_with("[req-2]")));
    assert!(a
        .iter()
        .any(|l| l.contains("[service:billing-bot] grandchild")));
    assert!(refused > 0, "req-2's budget of 3 stops some of its 6 calls");
    assert!(a.last().is_some_and(|l| l.ends_with("Ok(())")));
    assert!(b
        .last()
        .is_some_and(|l| l.contains("budget spent before calling billing")));
    println!("req-2: {refused} calls refused by its budget");
}
