//! Value-returning children (`spawn_returning` + `ChildHandle::join`) and nurseries dropped
//! before their first poll.

mod support;

use support::*;
use tokio::time::Instant;
use tokio_nursery::{nursery, JoinError};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn join_returns_the_child_value() {
    let out = nursery(|n| async move {
        let a = n.spawn_returning(async {
            tokio::time::sleep(secs(2)).await;
            Ok::<_, TestError>("a")
        });
        let b = n.spawn_returning(async { Ok("b") });
        Ok((b.join().await, a.join().await))
    })
    .await;
    assert_eq!(out, Ok((Ok("b"), Ok("a"))));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn join_of_a_failed_child_says_so_and_the_nursery_has_the_error() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let errors = nursery_all_errors(|n| async move {
        let child = n.spawn_returning(async {
            tokio::task::yield_now().await;
            Err::<u8, _>(TestError("x"))
        });
        // The failure cancels the body; a sibling in a shield sees the join's answer.
        n.spawn(async move {
            let _ = tx.send(tokio_nursery::shield(child.join()).await);
            Ok(())
        });
        std::future::pending::<()>().await;
        Ok(())
    })
    .await;
    assert_eq!(errors, vec![TestError("x")]);
    assert_eq!(rx.await.unwrap(), Err(JoinError::Failed));
}

async fn nursery_all_errors<F, Fut>(body: F) -> Vec<TestError>
where
    F: FnOnce(tokio_nursery::Nursery<'static, TestError>) -> Fut,
    Fut: std::future::Future<Output = Result<(), TestError>>,
{
    match tokio_nursery::nursery_all(body).await {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec(),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn join_of_a_cancelled_child_carries_the_reason() {
    nursery(|n| async move {
        let child = n.spawn_returning(std::future::pending::<Result<u8, TestError>>());
        let clone = child.clone();
        child.cancel();
        let err = child.join().await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(matches!(err, JoinError::Cancelled(ref r) if r.is_explicit()));
        assert_eq!(clone.join().await.unwrap_err(), JoinError::AlreadyJoined);
        Ok::<_, TestError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn join_of_a_panicked_child_says_panicked() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = tokio::spawn(async move {
        nursery(|n| async move {
            let child = n.spawn_returning(async {
                tokio::task::yield_now().await;
                if true {
                    panic!("boom");
                }
                Ok::<u8, TestError>(1)
            });
            let _ = tx.send(tokio_nursery::shield(child.join()).await);
            Ok(())
        })
        .await
    })
    .await;
    assert!(out.unwrap_err().is_panic());
    assert_eq!(rx.await.unwrap(), Err(JoinError::Panicked));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn nursery_dropped_before_its_first_poll_leaves_no_orphan() {
    let t0 = Instant::now();
    let probe = DropProbe::new();
    let guard = probe.guard();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let fut = nursery(move |n| {
        // Spawned and deferred while the body is built, before the nursery is polled.
        n.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok::<_, TestError>(())
        });
        n.defer(async move {
            let _ = tx.send(());
            Ok(())
        });
        async { Ok(()) }
    });
    drop(fut);
    rx.await.unwrap();
    assert_eq!(probe.count(), 1, "the child was cancelled, not orphaned");
    assert_eq!(t0.elapsed(), secs(0));
}
