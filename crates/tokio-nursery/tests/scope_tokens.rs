//! Interop with tokio-util's `CancellationToken`, both ways.

mod support;

use support::*;
use tokio::time::Instant;
use tokio_nursery::{move_on_after, nursery, CancelScope};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn scope_token_follows_own_and_inherited_cancellation() {
    let outer = CancelScope::new();
    let oh = outer.handle();
    let inner = CancelScope::new();
    let inner_token = inner.handle().cancellation_token();
    let outer_token = oh.cancellation_token();
    let t = inner_token.clone();
    let out = outer
        .run(inner.run(async move {
            assert!(!t.is_cancelled());
            oh.cancel();
            assert!(
                t.is_cancelled(),
                "inherited cancellation reaches the token at once"
            );
            std::future::pending::<()>().await
        }))
        .await;
    assert_eq!(out, None);
    assert!(outer_token.is_cancelled() && inner_token.is_cancelled());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn scope_token_fires_on_deadline_and_wakes_waiters() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_timeout(secs(2));
    let token = scope.handle().cancellation_token();
    let waiter = tokio::spawn(async move {
        token.cancelled().await;
        Instant::now()
    });
    assert_eq!(scope.run(std::future::pending::<()>()).await, None);
    assert_eq!(waiter.await.unwrap() - t0, secs(2));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn token_taken_after_cancellation_is_already_cancelled() {
    let scope = CancelScope::new();
    scope.handle().cancel();
    assert!(scope.handle().cancellation_token().is_cancelled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cancelled_from_an_os_thread_cancels_the_scope() {
    let token = CancellationToken::new();
    let scope = CancelScope::new().with_cancellation_token(token.clone());
    let h = scope.handle();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let canceller = std::thread::spawn(move || {
        rx.recv().unwrap();
        token.cancel();
    });
    let out = scope
        .run(async move {
            tx.send(()).unwrap();
            std::future::pending::<()>().await
        })
        .await;
    canceller.join().unwrap();
    assert_eq!(out, None);
    let reason = h.cancel_reason().unwrap();
    assert!(reason.is_explicit());
    assert!(reason.to_string().contains("CancellationToken"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_already_cancelled_token_means_the_body_is_never_polled() {
    let token = CancellationToken::new();
    token.cancel();
    let polled = Counter::new();
    let p = polled.clone();
    let out = CancelScope::new()
        .with_cancellation_token(token)
        .run(async move { p.hit() })
        .await;
    assert_eq!(out, None);
    assert_eq!(polled.get(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unused_token_does_not_keep_anything_alive() {
    let token = CancellationToken::new();
    let out = move_on_after(
        secs(1),
        CancelScope::new()
            .with_cancellation_token(token.clone())
            .run(async { 5 }),
    )
    .await;
    assert_eq!(out, Some(Some(5)));
    assert!(!token.is_cancelled());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn nursery_token_fires_when_the_nursery_fails() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let observer = tokio::spawn(async move {
        let token: CancellationToken = rx.await.unwrap();
        token.cancelled().await;
        Instant::now()
    });
    let t0 = Instant::now();
    let out = nursery(|n| async move {
        tx.send(n.handle().cancellation_token()).unwrap();
        n.spawn(async {
            tokio::time::sleep(secs(1)).await;
            Err(TestError("down"))
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("down")));
    assert_eq!(observer.await.unwrap() - t0, secs(1));
}
