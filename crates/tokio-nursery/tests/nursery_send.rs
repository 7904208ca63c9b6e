//! Nursery futures inside other combinators stay `Send` (CONFORMANCE C59): the patterns users
//! write inside `tokio::spawn` must compile and run.

mod support;

use std::future::Future;

use support::*;
use tokio_nursery::{fail_after, move_on_after, nursery, shield, CancelScope};

fn work() -> impl Future<Output = Result<u32, TestError>> + Send {
    nursery(|n| async move {
        n.spawn(async { Ok(()) });
        n.spawn_borrowing(async { Ok(()) });
        Ok(1)
    })
}

async fn generic_wrapper<F: Future>(fut: F) -> F::Output {
    fut.await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nursery_inside_combinators_in_spawned_tasks() {
    let a = tokio::spawn(async {
        CancelScope::new()
            .run(nursery(|n| async move {
                n.spawn(async { Ok::<_, TestError>(()) });
                Ok::<_, TestError>(1)
            }))
            .await
    });
    let b = tokio::spawn(async { move_on_after(secs(5), work()).await });
    let c = tokio::spawn(async { fail_after(secs(5), work()).await });
    let d = tokio::spawn(async { shield(work()).await });
    let e = tokio::spawn(async { tokio::time::timeout(secs(5), work()).await });
    let f = tokio::spawn(async { generic_wrapper(work()).await });
    let g = tokio::spawn(async {
        generic_wrapper(CancelScope::new().run(nursery(|n| async move {
            n.spawn_borrowing(async { Ok::<_, TestError>(()) });
            Ok::<_, TestError>(2)
        })))
        .await
    });
    assert_eq!(a.await.unwrap(), Some(Ok(1)));
    assert_eq!(b.await.unwrap(), Some(Ok(1)));
    assert_eq!(c.await.unwrap(), Ok(Ok(1)));
    assert_eq!(d.await.unwrap(), Ok(1));
    assert_eq!(e.await.unwrap().unwrap(), Ok(1));
    assert_eq!(f.await.unwrap(), Ok(1));
    assert_eq!(g.await.unwrap(), Some(Ok(2)));
}
