//! Rendering the live tree: what is running, draining, unwinding, and why.
//!
//! A service runs in a grace scope. At 50 ms it gets "SIGTERM": the scope drains (the accept
//! loop sees `cancelled()` and stops), then at 250 ms the grace period ends and what is left is
//! cancelled hard — except a flush inside a shield, which the nursery waits for. Two snapshots
//! of the tree, taken from outside through the scope's handle, print:
//!
//! ```text
//! -- during the drain (100 ms) --
//! scope "service" [draining: cancelled: SIGTERM]
//! └─ nursery "server" [running]
//!    ├─ child "conn 1" [running]
//!    └─ child "conn 2" [running]
//!       └─ scope "flush" [running]
//!
//! -- after the grace period (300 ms) --
//! scope "service" [cancelling: cancelled: SIGTERM]
//! └─ nursery "server" [cancelling: cancelled: SIGTERM]
//!    └─ child "conn 2" [cancelling: cancelled: SIGTERM]
//!       └─ scope "flush" [running]
//! ```
//!
//! ```text
//! cargo run -p tokio-nursery --example tree_dump
//! ```

use std::time::Duration;

use tokio::time::sleep;
use tokio_nursery::{CancelScope, NurseryBuilder};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let scope = CancelScope::new()
        .with_name("service")
        .with_grace(Duration::from_millis(200));
    let handle = scope.handle();
    let observer = handle.clone();
    let snapshots = tokio::spawn(async move {
        sleep(Duration::from_millis(50)).await;
        observer.cancel_with("SIGTERM");
        sleep(Duration::from_millis(50)).await;
        let draining = observer.render_tree();
        sleep(Duration::from_millis(200)).await;
        (draining, observer.render_tree())
    });

    let out = scope
        .run(NurseryBuilder::new().name("server").run(|n| async move {
            n.spawn_named("accept", async move {
                handle.cancelled().await; // stop accepting as soon as the drain starts
                Ok::<_, std::io::Error>(())
            });
            n.spawn_named("conn 1", async {
                loop {
                    sleep(Duration::from_millis(10)).await; // ignores the drain
                }
            });
            n.spawn_named("conn 2", async {
                // A flush that must not be interrupted.
                CancelScope::new()
                    .with_name("flush")
                    .with_shield(true)
                    .run(sleep(Duration::from_millis(500)))
                    .await;
                Ok(())
            });
            Ok(())
        }))
        .await;

    let (draining, hard) = snapshots.await.expect("snapshot task");
    println!("-- during the drain (100 ms) --\n{draining}");
    println!("-- after the grace period (300 ms) --\n{hard}");
    assert!(
        out.is_none(),
        "the grace period ended with work still running"
    );
    assert!(draining.contains("[draining: cancelled: SIGTERM]"));
    assert!(
        !draining.contains("accept"),
        "the accept loop stopped during the drain"
    );
    assert!(
        hard.contains("scope \"flush\" [running]"),
        "the shielded flush still runs"
    );
    assert!(
        !hard.contains("conn 1"),
        "conn 1 was dropped when the grace period ended"
    );
}
