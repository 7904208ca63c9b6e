//! `nursery watch` against a local WebSocket server: it prints the events and messages, and
//! Ctrl-C (SIGINT) shuts it down gracefully — the close handshake reaches the server.

#![cfg(unix)]

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nursery_net::tungstenite::Message;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_messages_and_closes_on_ctrl_c() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        ws.send(Message::text("quote 1")).await.unwrap();
        // Until the client's close frame.
        let mut last = None;
        while let Some(Ok(message)) = ws.next().await {
            last = Some(message);
        }
        last
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_nursery"))
        .args(["watch", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run nursery watch");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Wait for the message to be printed (event-driven; the timeout is a hang detector).
    let printed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if line.contains("quote 1") {
                return;
            }
        }
    })
    .await;
    assert!(printed.is_ok(), "no message printed: {seen:?}");
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("watch exits after Ctrl-C")
        .unwrap();
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push(line);
    }
    assert!(status.success(), "{seen:?}");
    let text = seen.join("\n");
    for expected in [
        "attempt 1: connecting",
        "attempt 1: connected",
        "Ctrl-C: closing",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains("closed in"), "{text}");
    let last = server.await.unwrap();
    assert!(matches!(last, Some(Message::Close(_))), "{last:?}");
}
