//! Interop with Python grpcio: grpcio calls the Rust server with a deadline and the handler sees
//! it; the Rust client calls a grpcio server, which sees the propagated deadline through
//! `context.time_remaining()`. Needs `NURSERY_PYTHON` (set by `.ci/run`); without it the tests
//! print a notice and pass, unless `CI=true`.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use support::chain::{call, client, ChainService, Event, Hop, Node};
use support::serve::start;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

fn python() -> Option<PathBuf> {
    match std::env::var_os("NURSERY_PYTHON") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but NURSERY_PYTHON is not set: .ci/run creates the virtualenv")
        }
        None => {
            eprintln!(
                "skipped: NURSERY_PYTHON is not set (run .ci/run for the grpcio interop tests)"
            );
            None
        }
    }
}

fn peer(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_calls_the_rust_server_and_the_handler_sees_its_deadline() {
    let Some(python) = python() else { return };
    let (tx, mut events) = mpsc::unbounded_channel();
    let node = Node {
        name: "rust",
        next: None,
        work: Duration::ZERO,
        events: tx.clone(),
    };
    let server = start(
        ChainService(Arc::new(node)),
        Duration::from_millis(100),
        |l| l,
        true,
    )
    .await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(&python)
            .arg(peer("grpc_client.py"))
            .arg(server.addr.to_string())
            .arg("2.0")
            .output(),
    )
    .await
    .expect("grpcio client in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("OK"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;
    let Some(Event::Started { at, deadline, .. }) = events.recv().await else {
        panic!("started")
    };
    let left = deadline.expect("the grpcio deadline reached the handler") - at;
    assert!(
        left <= Duration::from_secs(2) && left > Duration::from_millis(1000),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_gets_deadline_exceeded_from_a_slow_rust_handler() {
    let Some(python) = python() else { return };
    let (tx, mut events) = mpsc::unbounded_channel();
    let node = Node {
        name: "rust",
        next: None,
        work: Duration::from_secs(10),
        events: tx.clone(),
    };
    let server = start(
        ChainService(Arc::new(node)),
        Duration::from_millis(100),
        |l| l,
        true,
    )
    .await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(&python)
            .arg(peer("grpc_client.py"))
            .arg(server.addr.to_string())
            .arg("0.3")
            .output(),
    )
    .await
    .expect("grpcio client in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "ERR DEADLINE_EXCEEDED",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;
    let mut cleanups = 0;
    while let Ok(e) = events.try_recv() {
        cleanups += usize::from(matches!(e, Event::Cleanup { .. }));
    }
    assert_eq!(cleanups, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_propagates_its_deadline_to_a_grpcio_server() {
    let Some(python) = python() else { return };
    let mut child = Command::new(&python)
        .arg(peer("grpc_server.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("port in time")
        .unwrap()
        .expect("a port line")
        .trim()
        .parse()
        .expect("a port");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let channel = client(addr, Duration::from_millis(10));
    let budget = Duration::from_secs(3);
    let reply = tokio_nursery::move_on_after(budget, call(channel, Hop::default()))
        .await
        .expect("answered in time")
        .expect("OK");
    assert_eq!(reply.by, "python");
    let seen = Duration::from_millis(reply.remaining_ms);
    assert!(
        seen < budget - Duration::from_millis(10) && seen > Duration::from_secs(2),
        "{seen:?}"
    );
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
}
