//! `race` / `race_staggered` (first success wins, the rest are cancelled) and `spawn_blocking`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use support::*;
use tokio::time::Instant;
use tokio_nursery::{nursery, race, race_staggered, CancelScope, RaceError};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn first_success_wins_and_the_rest_are_dropped() {
    let t0 = Instant::now();
    let probe = DropProbe::new();
    let losers_finished = Counter::new();
    let (p, l) = (&probe, &losers_finished);
    let out = race([100u64, 30, 200].map(|at| async move {
        let _guard = p.guard();
        tokio::time::sleep(ms(at)).await;
        l.hit();
        Ok::<_, TestError>(at)
    }))
    .await;
    assert_eq!(out.unwrap(), 30);
    assert_eq!(t0.elapsed(), ms(30));
    assert_eq!(
        probe.count(),
        3,
        "every attempt dropped by the time race returns"
    );
    assert_eq!(losers_finished.get(), 1, "only the winner ran to its end");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn failures_do_not_cancel_other_attempts() {
    let out = race(
        [(10u64, false), (20, false), (50, true)].map(|(at, ok)| async move {
            tokio::time::sleep(ms(at)).await;
            if ok {
                Ok(at)
            } else {
                Err(TestError("attempt failed"))
            }
        }),
    )
    .await;
    assert_eq!(out.unwrap(), 50);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn all_failures_are_returned_in_order() {
    let out = race(
        [("b", 20u64), ("a", 10), ("c", 30)].map(|(id, at)| async move {
            tokio::time::sleep(ms(at)).await;
            Err::<(), _>(TestError(id))
        }),
    )
    .await;
    match out {
        Err(RaceError::AllFailed(errors)) => {
            assert_eq!(
                errors.all(),
                &[TestError("a"), TestError("b"), TestError("c")]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn no_attempts_is_a_typed_error() {
    let none: Vec<std::future::Ready<Result<(), TestError>>> = Vec::new();
    assert!(race(none).await.unwrap_err().is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn staggered_attempts_start_on_failure_or_after_the_delay() {
    let t0 = Instant::now();
    let log = Log::new();
    let l = &log;
    // 0 fails at 50 ms (so 1 starts at 50, not 100); 1 hangs; 2 starts 100 ms after 1 and wins.
    let out = race_staggered(
        ms(100),
        [(0u64, Some(false)), (1, None), (2, Some(true))].map(|(i, outcome)| async move {
            l.push(format!("start {i}"));
            match outcome {
                Some(false) => {
                    tokio::time::sleep(ms(50)).await;
                    Err(TestError("refused"))
                }
                None => std::future::pending().await,
                Some(true) => {
                    tokio::time::sleep(ms(5)).await;
                    Ok(i)
                }
            }
        }),
    )
    .await;
    assert_eq!(out.unwrap(), 2);
    assert_eq!(log.at("start 0"), Some(ms(0)));
    assert_eq!(log.at("start 1"), Some(ms(50)));
    assert_eq!(log.at("start 2"), Some(ms(150)));
    assert_eq!(t0.elapsed(), ms(155));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelling_the_race_cancels_every_attempt() {
    let probe = DropProbe::new();
    let p = &probe;
    let out = tokio_nursery::move_on_after(
        ms(10),
        race([1, 2].map(|_| async move {
            let _guard = p.guard();
            std::future::pending::<Result<(), TestError>>().await
        })),
    )
    .await;
    assert!(out.is_none());
    assert_eq!(probe.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_blocking_runs_and_its_error_fails_the_nursery() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let out = nursery(|n| async move {
        n.spawn_blocking(move || {
            r.store(true, Ordering::SeqCst);
            Err(TestError("blocking"))
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("blocking")));
    assert!(ran.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_blocking_child_is_waited_for_even_when_cancelled() {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let scope = CancelScope::new();
    let h = scope.handle();
    let canceller = std::thread::spawn(move || {
        started_rx.recv().unwrap();
        h.cancel();
        // The nursery must still be waiting for the thread: release it only now.
        release_tx.send(()).unwrap();
    });
    let out = scope
        .run(nursery(|n| async move {
            n.spawn_blocking(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                f.store(true, Ordering::SeqCst);
                Ok::<_, TestError>(())
            });
            std::future::pending::<()>().await;
            Ok(())
        }))
        .await;
    canceller.join().unwrap();
    assert_eq!(out, None);
    assert!(
        finished.load(Ordering::SeqCst),
        "the scope returned only after the closure ended"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_blocking_child_cancelled_before_it_starts_never_runs() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    nursery(|n| async move {
        n.cancel();
        n.spawn_blocking(move || {
            r.store(true, Ordering::SeqCst);
            Ok::<_, TestError>(())
        });
        Ok(())
    })
    .await
    .unwrap();
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_panic_is_re_raised_by_the_nursery() {
    let out = tokio::spawn(nursery(|n| async move {
        n.spawn_blocking(|| -> Result<(), TestError> { panic!("in the pool") });
        Ok::<_, TestError>(())
    }))
    .await;
    let payload = out.unwrap_err().into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"in the pool"));
}
