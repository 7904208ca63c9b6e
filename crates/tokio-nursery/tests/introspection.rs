//! Introspection: the text rendering of the live tree, and `tracing` spans that show where a
//! cancellation came from.

mod support;

use support::*;
use tokio_nursery::{render_current_tree, CancelScope, NurseryBuilder};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_tree_shows_structure_states_and_reasons() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let scope = CancelScope::new().with_name("request").with_grace(secs(5));
    let h = scope.handle();
    scope
        .run(NurseryBuilder::new().name("handlers").run(|n| async move {
            n.spawn_named("db", async {
                tokio_nursery::shield(tokio::time::sleep(secs(1))).await;
                Ok::<_, TestError>(())
            });
            n.spawn_named("idle", std::future::pending());
            CancelScope::new()
                .with_name("inner")
                .run(async {
                    tokio::task::yield_now().await;
                    h.cancel_with("client went away");
                    tokio::task::yield_now().await;
                    tx.send(render_current_tree()).unwrap();
                    n.cancel();
                })
                .await;
            Ok(())
        }))
        .await;
    let tree = rx.await.unwrap();
    assert_eq!(
        tree,
        "scope \"request\" [draining: cancelled: client went away]\n\
         └─ nursery \"handlers\" [running]\n\
         \u{20}  ├─ body [running]\n\
         \u{20}  │  └─ scope \"inner\" [running]\n\
         \u{20}  ├─ child \"db\" [running]\n\
         \u{20}  │  └─ scope [running]\n\
         \u{20}  └─ child \"idle\" [running]\n"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_tree_shows_cancelling_children_and_cleanups() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = NurseryBuilder::new()
        .name("conn")
        .run(|n| async move {
            let h = n.handle();
            n.defer(async move {
                tx.send(h.render_tree()).unwrap();
                Ok(())
            });
            n.spawn_named("watcher", async { Err(TestError("peer closed")) });
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
    assert_eq!(out, Err(TestError("peer closed")));
    let tree = rx.await.unwrap();
    assert_eq!(
        tree,
        "nursery \"conn\" [cancelling: cancelled: child \"watcher\" failed: test error peer closed]\n\
         └─ cleanup [running]\n"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn outside_any_scope_the_tree_says_so() {
    assert!(render_current_tree().contains("not inside"));
}
