//! `nursery watch`'s errors and wording: a URL that can never work and a refused upgrade stop
//! at once with one clear line; failed connects are reported without doubled prefixes; a
//! heartbeat loss names the real silence.

#![cfg(unix)]

mod support;

use std::time::{Duration, Instant};

use support::{listener, Watch, HANG};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notaurl_exits_2_at_once_with_one_line() {
    let started = Instant::now();
    let watch = Watch::start(&["watch", "notaurl"], false);
    let (code, stdout, stderr) = watch.finish().await;
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("nursery: `notaurl` is not a WebSocket URL"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connects_have_one_prefix_and_the_give_up_says_when() {
    let (listener, url) = listener().await;
    drop(listener);
    let watch = Watch::start(&["watch", &url, "--max-attempts", "2"], false);
    let (code, stdout, stderr) = watch.finish().await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let all = format!("{stdout}\n{stderr}");
    assert!(!all.contains("connect failed: connect failed"), "{all}");
    assert_eq!(
        stdout.matches("connect failed after").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("gave up after 2 attempts in"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("nursery: gave up: TCP connect failed: "),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_is_permanent() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut refused = 0;
        // Every connection refused with 403; counts them until the watcher is gone.
        while let Ok(Ok((socket, _))) = tokio::time::timeout(HANG, listener.accept()).await {
            refuse(socket).await;
            refused += 1;
            if refused > 1 {
                break;
            }
        }
        refused
    });
    let started = Instant::now();
    let watch = Watch::start(&["watch", &url], false);
    let (code, stdout, stderr) = watch.finish().await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stdout.contains("HTTP 403 Forbidden (permanent, not retried)"),
        "{stdout}"
    );
    assert!(!stdout.contains("attempt 2"), "{stdout}");
    assert!(
        stderr.starts_with("nursery: not retrying: the server refused"),
        "{stderr}"
    );
    server.abort();
}

async fn refuse(socket: TcpStream) {
    // The error type is tungstenite's, fixed by its `Callback` trait.
    #[allow(clippy::result_large_err)]
    let forbid = |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
        let mut response = ErrorResponse::new(Some("no".into()));
        *response.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
        Err(response)
    };
    let _ = tokio_tungstenite::accept_hdr_async(socket, forbid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_loss_reports_the_real_silence() {
    let (listener, url) = listener().await;
    let args = [
        "watch",
        &url,
        "--heartbeat-interval",
        "1s",
        "--heartbeat-timeout",
        "500ms",
        "--max-attempts",
        "1",
        "--close-timeout",
        "200ms",
    ];
    let mut watch = Watch::start(&args, false);
    // The server completes the upgrade, then never reads: no pong ever comes.
    let ws = support::accept(&listener).await;
    let lost = watch.line_with("connection lost").await;
    assert!(!lost.contains("within"), "{lost}");
    assert!(
        lost.contains(
            "heartbeat timeout: a ping went unanswered for 500ms; no message since connecting"
        ),
        "{lost}"
    );
    // The silence printed is at least the interval plus the timeout.
    let silence: f64 = lost
        .rsplit("no message since connecting ")
        .next()
        .and_then(|s| s.strip_suffix("s ago"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no silence in {lost}"));
    assert!(silence >= 1.4, "{lost}");
    let (code, stdout, _) = watch.finish().await;
    assert_eq!(code, Some(1), "{stdout}");
    drop(ws);
}

/// Against a server that accepts TCP and never answers the upgrade,
/// `nursery watch` stayed at `attempt 1: connecting`. Now each attempt ends with a connect
/// timeout and is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_is_a_connect_timeout_and_is_retried() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut held = Vec::new(); // accepted, never read, never answered
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let args = [
        "watch",
        &url,
        "--connect-timeout",
        "300ms",
        "--max-attempts",
        "2",
    ];
    let watch = Watch::start(&args, false);
    let (code, stdout, stderr) = watch.finish().await;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("connect failed after")
                && l.ends_with("WebSocket upgrade timed out after 300ms"))
            .count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("attempt 2: reconnecting in"), "{stdout}");
    assert!(
        stderr.starts_with("nursery: gave up: WebSocket upgrade timed out after 300ms"),
        "{stderr}"
    );
    server.abort();
}
