//! `tracing` spans show where a cancellation came from. Alone in its binary: a scoped
//! subscriber can miss events whose callsite another test thread registered first
//! (tracing-core caches callsite interest process-wide).

mod support;

use support::*;
use tokio_nursery::NurseryBuilder;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn children_run_in_spans_under_their_spawner() {
    let capture = TraceCapture::start();
    let out = {
        let span = tracing::info_span!("request", id = 7);
        tracing::Instrument::instrument(
            NurseryBuilder::new().name("pool").run(|n| async move {
                n.spawn_named("worker", async {
                    tokio::task::yield_now().await;
                    Err(TestError("disk full"))
                });
                std::future::pending::<()>().await;
                Ok(())
            }),
            span,
        )
        .await
    };
    assert_eq!(out, Err(TestError("disk full")));
    let logs = capture.output();
    let failing = logs
        .lines()
        .find(|l| l.contains("nursery failing"))
        .unwrap_or_else(|| panic!("no failing event in:\n{logs}"));
    // The event is inside the child's span, inside the nursery's, inside the spawner's.
    assert!(failing.contains("request{id=7}"), "{failing}");
    assert!(failing.contains("nursery{name=\"pool\"}"), "{failing}");
    assert!(failing.contains("child{name=\"worker\""), "{failing}");
    assert!(
        failing.contains("worker") && failing.contains("disk full"),
        "{failing}"
    );
}
