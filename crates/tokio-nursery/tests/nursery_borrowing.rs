//! Borrowing children (CONFORMANCE C62): children polled in the nursery's task that borrow the
//! caller's stack.

mod support;

use std::future::Future;
use std::sync::Mutex;

use support::*;
use tokio_nursery::nursery;

fn assert_send<T: Send>(_: &T) {}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c62_borrowing_children_read_and_mutate_locals() {
    let config = String::from("shared config"); // read by one child
    let total = Mutex::new(0u32); // mutated by another
    let (config_ref, total_ref) = (&config, &total);
    let fut = nursery(|n| async move {
        n.spawn_borrowing(async move {
            tokio_nursery::sleep(ms(10)).await;
            assert_eq!(config_ref.len(), 13);
            Ok::<_, TestError>(())
        });
        n.spawn_borrowing(async move {
            for _ in 0..3 {
                tokio_nursery::sleep(ms(5)).await;
                *total_ref.lock().unwrap() += 1;
            }
            Ok(())
        });
        Ok(())
    });
    assert_send(&fut);
    fut.await.unwrap();
    assert_eq!(*total.lock().unwrap(), 3);
    assert_eq!(config, "shared config");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c62_failure_in_one_borrowing_child_drops_the_other() {
    let probe = DropProbe::new();
    let after = Counter::new();
    let start = tokio::time::Instant::now();
    let (probe_ref, after_ref) = (&probe, &after);
    let out = nursery(|n| async move {
        n.spawn_borrowing(async move {
            let _guard = probe_ref.guard();
            tokio::time::sleep(secs(10)).await;
            after_ref.hit();
            Ok(())
        });
        n.spawn_borrowing_named("failing", async {
            tokio::time::sleep(secs(1)).await;
            Err(TestError("borrowed"))
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("borrowed")));
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(probe.count(), 1);
    assert_eq!(after.get(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn borrowing_child_failure_cancels_spawned_children_and_body() {
    let probe = DropProbe::new();
    let guard = probe.guard();
    let out = nursery(|n| async move {
        n.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(())
        });
        n.spawn_borrowing(async { Err(TestError("b")) });
        std::future::pending::<()>().await;
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("b")));
    assert_eq!(probe.count(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn borrowing_child_spawns_a_borrowing_sibling() {
    let hits = Counter::new();
    let hits_ref = &hits;
    nursery(|n| async move {
        let n2 = n.clone();
        n.spawn_borrowing(async move {
            tokio_nursery::sleep(ms(1)).await;
            n2.spawn_borrowing(async move {
                hits_ref.hit();
                Ok::<_, TestError>(())
            });
            Ok(())
        });
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(hits.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn borrowing_child_pushed_from_another_task_runs_while_the_nursery_waits() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    nursery(|n: tokio_nursery::Nursery<'static, TestError>| async move {
        let n2 = n.clone();
        // A spawned task (maybe on another worker) adds a borrowing child while the body and
        // the nursery's own task are idle: the push must wake the nursery to poll it.
        n.spawn(async move {
            n2.spawn_borrowing(async move {
                let _ = tx.send(());
                Ok(())
            });
            Ok(())
        });
        rx.await.map_err(|_| TestError("not run"))
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn foreign_drop_drops_borrowing_children_synchronously() {
    let probe = DropProbe::new();
    let probe_ref = &probe;
    let out = tokio::time::timeout(
        ms(10),
        nursery(|n| async move {
            n.spawn_borrowing(async move {
                let _guard = probe_ref.guard();
                std::future::pending::<()>().await;
                Ok::<_, TestError>(())
            });
            std::future::pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert!(out.is_err());
    assert_eq!(
        probe.count(),
        1,
        "dropped with the nursery, before timeout returned"
    );
}

/// Pins C62's "the nursery future stays Send" for any body whose futures are Send.
#[allow(dead_code)]
fn nursery_with_borrowing_children_is_send<'a>(data: &'a [u8]) -> impl Future + Send + 'a {
    nursery(move |n| async move {
        n.spawn_borrowing(async move {
            let _ = data.len();
            Ok::<_, TestError>(())
        });
        Ok(())
    })
}
