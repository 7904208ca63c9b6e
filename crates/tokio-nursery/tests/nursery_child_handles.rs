//! Child handles over the roster: a child has no tree node until it needs one, and its handle
//! must report the same things either way, before and after the child ends, from any thread.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use support::*;
use tokio_nursery::{nursery, CancelScope, ChildHandle};

/// A finished child's handle keeps its own answers while hundreds of later children come and go
/// (its slot is not reused while the handle lives).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_kept_handle_outlives_many_later_children() {
    nursery(|n| async move {
        let first = n.spawn_named("first", async { Ok::<_, TestError>(()) });
        let cancelled = n.spawn_named("cancelled", std::future::pending());
        cancelled.cancel();
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(first.is_finished() && cancelled.is_finished());
        for round in 0..300 {
            let later = n.spawn(async move {
                if round % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                Ok(())
            });
            if round % 2 == 0 {
                later.cancel();
            }
        }
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(first.name(), Some("first"));
        assert!(!first.is_cancelled() && first.cancel_reason().is_none());
        assert_eq!(cancelled.name(), Some("cancelled"));
        assert!(cancelled.is_cancelled());
        assert!(cancelled.cancel_reason().unwrap().is_explicit());
        Ok(())
    })
    .await
    .unwrap();
}

/// A handle cancels a child that has a node (something inside it needed one) the same way as
/// one that has none, and the structure inside unwinds first.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn handle_cancel_reaches_structure_inside_the_child() {
    let inner_cleanups = Counter::new();
    let seen = inner_cleanups.clone();
    nursery(|n| async move {
        let with_structure = n.spawn(async move {
            nursery(|inner| async move {
                inner.defer(async move {
                    seen.hit();
                    Ok(())
                });
                std::future::pending::<()>().await;
                Ok::<_, TestError>(())
            })
            .await
        });
        let plain = n.spawn(std::future::pending::<Result<(), TestError>>());
        tokio::task::yield_now().await;
        with_structure.cancel();
        plain.cancel();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert!(with_structure.is_finished() && plain.is_finished());
        assert!(with_structure.cancel_reason().unwrap().is_explicit());
        assert!(plain.cancel_reason().unwrap().is_explicit());
        Ok::<_, TestError>(())
    })
    .await
    .unwrap();
    assert_eq!(inner_cleanups.get(), 1);
}

/// A child finished before its nursery was cancelled reports no cancellation; one still
/// running reports the nursery's reason as its parent's.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn handles_report_the_groups_cancellation_only_if_it_reached_the_child() {
    nursery(|n| async move {
        let done = n.spawn(async { Ok::<_, TestError>(()) });
        let waiting = n.spawn(std::future::pending::<Result<(), TestError>>());
        tokio::task::yield_now().await;
        n.cancel();
        tokio::task::yield_now().await;
        assert!(done.cancel_reason().is_none());
        let reason = waiting.cancel_reason().expect("cancelled by the nursery");
        assert!(reason.origin().is_explicit());
        Ok(())
    })
    .await
    .unwrap();
}

/// Handles cancelled from an OS thread while their children run on two workers, with some
/// children making a node (a nested scope) at the same time: every nursery ends, every handle
/// says finished, and a child that did not do its work reports the handle's cancellation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_child_handles_cancelled_from_an_os_thread() {
    const ROUNDS: usize = 400;
    const CHILDREN: usize = 12;
    let (jobs, rx) = mpsc::channel::<Vec<ChildHandle>>();
    let canceller = std::thread::spawn(move || {
        for (round, handles) in rx.into_iter().enumerate() {
            for (k, handle) in handles.iter().enumerate() {
                if (round + k) % 2 == 0 {
                    handle.cancel();
                }
            }
        }
    });
    for round in 0..ROUNDS {
        let worked: Arc<Vec<AtomicBool>> =
            Arc::new((0..CHILDREN).map(|_| AtomicBool::new(false)).collect());
        let flags = worked.clone();
        let jobs = jobs.clone();
        let run = nursery(move |n| async move {
            let mut handles = Vec::new();
            for k in 0..CHILDREN {
                let flags = flags.clone();
                handles.push(n.spawn(async move {
                    for _ in 0..(round + k) % 3 {
                        tokio::task::yield_now().await;
                    }
                    if k % 3 == 0 {
                        // A nested scope makes the child's node while the canceller may be
                        // making it too.
                        CancelScope::new().run(tokio::task::yield_now()).await;
                    }
                    flags[k].store(true, Ordering::SeqCst);
                    Ok::<_, TestError>(())
                }));
            }
            jobs.send(handles.clone()).unwrap();
            Ok(handles)
        });
        let handles = tokio::time::timeout(secs(10), run)
            .await
            .unwrap_or_else(|_| panic!("hang detector: round {round}"))
            .unwrap();
        for (k, handle) in handles.iter().enumerate() {
            assert!(handle.is_finished(), "round {round}, child {k}");
            if !worked[k].load(Ordering::SeqCst) {
                let reason = handle.cancel_reason();
                assert!(
                    reason.as_ref().is_some_and(|r| r.is_explicit()),
                    "round {round}, child {k}: dropped without its handle's reason: {reason:?}"
                );
            }
        }
    }
    drop(jobs);
    canceller.join().unwrap();
}
