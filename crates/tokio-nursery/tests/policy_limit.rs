//! Concurrency limits: at most N children run at once, of every kind; waiters start in the order
//! they began waiting; a cancelled waiter never starts; every way a child ends frees its slot.

mod support;

use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio::time::{sleep, Instant};
use tokio_nursery::{move_on_after, NurseryBuilder};

fn limit(n: usize) -> NurseryBuilder {
    NurseryBuilder::new().limit(NonZeroUsize::new(n).unwrap())
}

/// Counts running children and keeps the most seen at once.
#[derive(Clone, Default)]
struct HighWater {
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl HighWater {
    fn enter(&self) {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
    }
    fn leave(&self) {
        self.running.fetch_sub(1, SeqCst);
    }
    fn most(&self) -> usize {
        self.most.load(SeqCst)
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn spawn_never_exceeds_the_limit_and_queued_children_start_as_slots_free() {
    let hw = HighWater::default();
    let h = hw.clone();
    let start = Instant::now();
    limit(2)
        .run(|n| async move {
            for _ in 0..6 {
                let h = h.clone();
                n.spawn(async move {
                    h.enter();
                    sleep(Duration::from_millis(10)).await;
                    h.leave();
                    Ok::<_, String>(())
                });
            }
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(hw.most(), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_start_in_spawn_order_whatever_thread_polls_them() {
    for _ in 0..20 {
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        let run = limit(1).run(|n| async move {
            for i in 0..32usize {
                let o = o.clone();
                n.spawn(async move {
                    o.lock().unwrap().push(i);
                    tokio::task::yield_now().await;
                    Ok::<_, String>(())
                });
            }
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("hang guard")
            .unwrap();
        assert_eq!(*order.lock().unwrap(), (0..32).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_kind_of_child_takes_a_slot() {
    limit(3)
        .run(|n| async move {
            let (tx_b, rx_b) = oneshot::channel::<()>();
            let (tx_t, rx_t) = std::sync::mpsc::channel::<()>();
            let (tx_s, rx_s) = oneshot::channel::<()>();
            let (tx_end, rx_end) = oneshot::channel::<()>();
            n.spawn_borrowing(async move {
                let _ = rx_b.await;
                Ok(())
            });
            n.spawn_blocking(move || {
                let _ = rx_t.recv();
                Ok(())
            });
            let check = n.clone();
            let (started, ()) = tokio::join!(
                n.start(|s| async move {
                    let _ = rx_s.await; // a pending start holds its slot
                    s.started(());
                    let _ = rx_end.await;
                    Ok(())
                }),
                async move {
                    tokio::task::yield_now().await;
                    let refused = check.try_spawn(async { Ok(()) }).unwrap_err();
                    assert!(refused.is_full());
                    let _ = tx_s.send(());
                }
            );
            started.map_err(|e| e.to_string())?;
            // Still three running: the borrowing, the blocking and the started child.
            assert!(n.try_spawn(async { Ok(()) }).unwrap_err().is_full());
            let _ = tx_b.send(());
            let _ = tx_t.send(());
            let _ = tx_end.send(());
            Ok::<_, String>(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cancelled_waiter_never_starts_and_the_next_one_does() {
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    limit(1)
        .run(|n| async move {
            let blocker = n.spawn(std::future::pending::<Result<(), String>>());
            let waiter = n.spawn(async move {
                p.store(true, SeqCst);
                Ok(())
            });
            let o2 = o.clone();
            let next = n.spawn(async move {
                o2.lock().unwrap().push("next");
                Ok(())
            });
            waiter.cancel();
            sleep(Duration::from_millis(1)).await;
            assert!(waiter.is_finished(), "a cancelled waiter leaves at once");
            assert!(!next.is_finished(), "still waiting behind the blocker");
            blocker.cancel();
            Ok(())
        })
        .await
        .unwrap();
    assert!(!polled.load(SeqCst));
    assert_eq!(*order.lock().unwrap(), ["next"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelling_the_children_starts_no_waiter() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let out = limit(2)
        .run(|n| async move {
            for _ in 0..10 {
                let s = s.clone();
                n.spawn(async move {
                    s.fetch_add(1, SeqCst);
                    sleep(Duration::from_secs(60)).await;
                    Ok::<_, String>(())
                });
            }
            sleep(Duration::from_millis(1)).await;
            n.cancel();
            Ok("body done")
        })
        .await;
    assert_eq!(out.unwrap(), "body done");
    assert_eq!(started.load(SeqCst), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_way_a_child_ends_frees_its_slot() {
    let out = limit(1)
        .run_supervisor(|n| async move {
            // Returns.
            n.spawn(async { Ok(()) });
            sleep(Duration::from_millis(1)).await;
            // Fails (collected by the supervisor).
            n.try_spawn(async { Err("failed") }).unwrap();
            sleep(Duration::from_millis(1)).await;
            // Is cancelled.
            let c = n.try_spawn(std::future::pending()).unwrap();
            c.cancel();
            sleep(Duration::from_millis(1)).await;
            // Panics before signalling a start: the panic resumes from `start`.
            let panicked = AssertUnwindSafe(n.start(|s: tokio_nursery::Started<()>| async move {
                let _signal = s;
                panic!("before the signal")
            }))
            .catch_unwind()
            .await;
            assert!(
                panicked.is_err(),
                "{:?}",
                panicked.map(|r| r.map_err(|e| e.to_string()))
            );
            sleep(Duration::from_millis(1)).await;
            // A borrowing child dropped by cancellation.
            let b = n.spawn_borrowing(std::future::pending());
            b.cancel();
            sleep(Duration::from_millis(1)).await;
            let last = n.try_spawn(async { Ok(()) });
            assert!(last.is_ok(), "the slot is free again");
            Ok(())
        })
        .await;
    assert_eq!(out.unwrap_err().into_vec(), ["failed"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn spawn_when_ready_waits_for_a_slot() {
    let start = Instant::now();
    let returned = Arc::new(Mutex::new(Vec::new()));
    let r = returned.clone();
    limit(2)
        .run(|n| async move {
            for _ in 0..5 {
                n.spawn_when_ready(async {
                    sleep(Duration::from_secs(1)).await;
                    Ok::<_, String>(())
                })
                .await;
                r.lock().unwrap().push(start.elapsed().as_secs());
            }
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(*returned.lock().unwrap(), [0, 0, 1, 1, 2]);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn spawn_when_ready_in_a_cancelled_caller_spawns_nothing() {
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    limit(1)
        .run(|n| async move {
            let blocker = n.spawn(std::future::pending::<Result<(), String>>());
            let waited = move_on_after(
                Duration::from_millis(10),
                n.spawn_when_ready(async move {
                    p.store(true, SeqCst);
                    Ok(())
                }),
            )
            .await;
            assert!(waited.is_none());
            blocker.cancel();
            sleep(Duration::from_millis(1)).await;
            Ok(())
        })
        .await
        .unwrap();
    assert!(!polled.load(SeqCst));
}

#[tokio::test(flavor = "current_thread")]
async fn try_spawn_on_a_closed_nursery_gives_the_future_back() {
    let escaped = limit(1)
        .run(|n| async move { Ok::<_, String>(n.clone()) })
        .await
        .unwrap();
    let refused = escaped.try_spawn(async { Ok(()) }).unwrap_err();
    assert!(refused.is_closed());
    let fut = refused.into_inner();
    assert_eq!(fut.await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn stress_never_more_than_the_limit_across_threads() {
    for _ in 0..10 {
        let hw = HighWater::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let (h, r) = (hw.clone(), ran.clone());
        let run = limit(3).run(|n| async move {
            // Four spawners on different workers race to spawn into the same nursery.
            for _ in 0..4 {
                let handle = n.handle();
                let (h, r) = (h.clone(), r.clone());
                n.spawn(async move {
                    for _ in 0..100 {
                        let (h, r) = (h.clone(), r.clone());
                        handle
                            .spawn(async move {
                                h.enter();
                                tokio::task::yield_now().await;
                                h.leave();
                                r.fetch_add(1, SeqCst);
                                Ok(())
                            })
                            .unwrap();
                    }
                    Ok(())
                });
            }
            Ok::<_, String>(())
        });
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("hang guard")
            .unwrap();
        // The four spawners hold slots too, so at most three of anything ran at once.
        assert!(hw.most() <= 3, "high-water mark {}", hw.most());
        assert_eq!(ran.load(SeqCst), 400);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_foreign_drop_of_the_nursery_starts_no_waiter() {
    let polled = Arc::new(AtomicBool::new(false));
    let p = polled.clone();
    let run = limit(1).run(|n| async move {
        n.spawn(std::future::pending::<Result<(), String>>());
        n.spawn(async move {
            p.store(true, SeqCst);
            Ok(())
        });
        std::future::pending::<()>().await;
        Ok(())
    });
    assert!(tokio::time::timeout(Duration::from_millis(10), run)
        .await
        .is_err());
    // The detached finisher unwinds the children; give it the runtime.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    sleep(Duration::from_millis(10)).await;
    assert!(!polled.load(SeqCst));
}
