//! Graceful shutdown in two phases: stop accepting, let in-flight requests drain while
//! `cancelled()` tells them to hurry, then force-exit the rest with their cleanups run; the
//! server's stop returns only after every request's cleanup.

mod support;

use std::time::Duration;

use nursery_tower::RequestCancel;
use support::probe::{collect, count, Probe, ProbeService};
use support::raw::{grpc_request, request};
use support::serve::start;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_then_force_exit_with_cleanups() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let grace = Duration::from_millis(300);
    let server = start(ProbeService { events: tx }, grace, |layer| layer, true).await;
    let addr = server.addr;
    let hurry = tokio::spawn(request(addr, true, grpc_request(addr, "/hurry", &[])));
    let slow = tokio::spawn(request(addr, true, grpc_request(addr, "/sleep", &[])));
    let mut seen = Vec::new();
    let called = |s: &[Probe]| count(s, |e| matches!(e, Probe::Called { .. }));
    collect(&mut rx, &mut seen, |s| called(s) == 2).await;

    let stopping = Instant::now();
    let stop = tokio::spawn(server.stop());
    // Phase one: the hurrying request is told, and answers while the server drains.
    let answer = tokio::time::timeout(Duration::from_secs(10), hurry)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(answer.headers.get("x-hurried").unwrap(), "yes");
    assert!(stopping.elapsed() < grace, "answered during the drain");
    // Phase two: the slow one is force-exited at the end of the grace period.
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("stopped in time")
        .expect("task");
    assert!(stopping.elapsed() >= grace);
    let _ = tokio::time::timeout(Duration::from_secs(10), slow).await;
    while let Ok(e) = rx.try_recv() {
        seen.push(e);
    }
    let sleep_end = seen.iter().find_map(|e| match e {
        Probe::Ended { path, cause } if path == "/sleep" => Some(*cause),
        _ => None,
    });
    assert!(
        matches!(
            sleep_end,
            Some(Some(
                RequestCancel::ServerShutdown | RequestCancel::ClientDisconnected
            ))
        ),
        "{seen:?}"
    );
    // Both cleanups ran, once each, before `stop` returned.
    assert_eq!(
        count(&seen, |e| matches!(e, Probe::Cleanup { .. })),
        2,
        "{seen:?}"
    );
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
