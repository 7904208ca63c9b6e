//! `nursery watch` and signals: SIGTERM and the first Ctrl-C close gracefully (the peer sees
//! close code 1000, the exit status is 0), a second Ctrl-C exits at once, and the last line
//! says whether a connection was closed.

#![cfg(unix)]

mod support;

use std::time::Instant;

use nursery_net::tungstenite::Message;
use support::{accept, listener, record, Watch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_with_code_1000_and_exits_0() {
    let (listener, url) = listener().await;
    let mut watch = Watch::start(&["watch", &url], false);
    let mut ws = accept(&listener).await;
    watch.line_with("attempt 1: connected").await;
    watch.signal("TERM");
    let seen = record(&mut ws).await;
    let (code, stdout, stderr) = watch.finish().await;
    assert_eq!(seen.close_code, Some(1000), "{stdout}\n{stderr}");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("stopped by SIGTERM after")
            && stdout.contains("the connection was closed (code 1000) in"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_exits_at_once_while_the_close_hangs() {
    let (listener, url) = listener().await;
    // A close bound far beyond the hang guard: only the second Ctrl-C can end the wait.
    let mut watch = Watch::start(&["watch", &url, "--close-timeout", "120s"], false);
    // The server completes the upgrade, then never reads again: the close is never answered.
    let ws = accept(&listener).await;
    watch.line_with("attempt 1: connected").await;
    watch.signal("INT");
    watch.line_with("Ctrl-C: closing").await;
    let second = Instant::now();
    watch.signal("INT");
    let (code, stdout, stderr) = watch.finish().await;
    assert_eq!(code, Some(130), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Ctrl-C: exiting without waiting for the close"),
        "{stdout}"
    );
    // Far below the close timeout (the hang guard in `finish` is what actually bounds it).
    assert!(second.elapsed().as_secs() < 60, "{:?}", second.elapsed());
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_without_a_connection_does_not_claim_to_close_one() {
    // A port with nobody listening: every attempt is refused.
    let (listener, url) = listener().await;
    drop(listener);
    let mut watch = Watch::start(&["watch", &url], false);
    watch.line_with("attempt 1: connect failed").await;
    watch.signal("INT");
    let (code, stdout, stderr) = watch.finish().await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("no connection was open"), "{stdout}");
    assert!(!stdout.contains("the connection was closed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_printed_until_ctrl_c() {
    let (listener, url) = listener().await;
    let mut watch = Watch::start(&["watch", &url], false);
    let mut ws = accept(&listener).await;
    futures_util::SinkExt::send(&mut ws, Message::text("quote 1"))
        .await
        .unwrap();
    watch.line_with("received text (7 bytes): quote 1").await;
    watch.signal("INT");
    let seen = record(&mut ws).await;
    let (code, stdout, _) = watch.finish().await;
    assert_eq!(seen.close_code, Some(1000), "{stdout}");
    assert_eq!(code, Some(0), "{stdout}");
}
