//! `Reconnect`: after a loss it closes, backs off, reconnects and runs the body again; the old
//! connection's close finishes before the new connect; limits; cleanup exactly once per
//! connection.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nursery_net::tungstenite::protocol::frame::coding::CloseCode;
use nursery_net::tungstenite::protocol::CloseFrame;
use nursery_net::{Backoff, Event, Reconnect, Supervisor, WsConfig, WsConnection};
use support::{accept_ws, listener, ws_url, AppError, Counted, Events, Fake};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

fn no_jitter(initial_ms: u64) -> Backoff {
    Backoff::new(Duration::from_millis(initial_ms), Duration::from_secs(10)).jitter(0.0)
}

/// The server goes away (close frame "restarting", listener dropped), refuses two connects,
/// then comes back on the same port; the client's second run completes. Real time: the
/// client awaits the server's bytes while timers are pending (see `ws_loss.rs`).
#[tokio::test(flavor = "current_thread")]
async fn reconnects_after_the_server_restarts_on_the_same_port() {
    let (first, addr) = listener().await;
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<Event>();
    let server = tokio::spawn(async move {
        // Generation 1: one echo, then a restart.
        let mut ws = accept_ws(&first).await;
        let message = ws.next().await.unwrap().unwrap();
        ws.send(message).await.unwrap();
        let frame = CloseFrame {
            code: CloseCode::Restart,
            reason: "restarting".into(),
        };
        ws.close(Some(frame)).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
        drop(first);
        // Down until the client has been refused twice.
        let mut refused = 0;
        while refused < 2 {
            if let Some(Event::ConnectFailed { .. }) = event_rx.recv().await {
                refused += 1;
            }
        }
        // Generation 2, same port.
        let second = TcpListener::bind(addr).await.expect("rebind the same port");
        let mut ws = accept_ws(&second).await;
        let message = ws.next().await.unwrap().unwrap();
        ws.send(message).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    });

    let events = Events::new();
    let record = events.observer();
    let closes = Arc::new(Mutex::new(Vec::new()));
    let runs = AtomicU32::new(0);
    let reconnect = Reconnect::new()
        .backoff(no_jitter(5))
        .max_attempts(10)
        .on_event(move |e| {
            record(e);
            let _ = event_tx.send(e.clone());
        });
    let out: Result<u32, AppError> = reconnect
        .run(
            || {
                let closes = closes.clone();
                async move {
                    let conn = WsConnection::connect(ws_url(addr), WsConfig::new())
                        .await
                        .map_err(|e| AppError::Connect(e.to_string()))?;
                    let conn = Counted::new(conn);
                    closes.lock().unwrap().push(conn.clone());
                    Ok(conn)
                }
            },
            |c| {
                let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    c.conn.send_text(format!("run {run}")).await?;
                    let echo = c.conn.recv().await?;
                    assert_eq!(echo.to_text().unwrap(), format!("run {run}"));
                    if run == 1 {
                        std::future::pending::<()>().await; // until the server goes away
                    }
                    Ok(run)
                }
            },
        )
        .await;
    assert_eq!(out, Ok(2));
    server.await.unwrap();
    assert_eq!(
        events.names(),
        [
            "connecting 1",
            "connected 1",
            "closed 1",
            "lost 1: peer closed",
            "retrying 2",
            "connecting 2",
            "connect failed 2",
            "retrying 3",
            "connecting 3",
            "connect failed 3",
            "retrying 4",
            "connecting 4",
            "connected 4",
            "closed 4",
        ]
    );
    let conns = closes.lock().unwrap();
    assert_eq!(conns.len(), 2);
    for conn in conns.iter() {
        assert_eq!((conn.closes(), conn.finished()), (1, 1));
    }
}

/// DESIGN §5: a reconnect does not open the new connection before the old one's close has
/// finished (here the close takes 1 s).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_old_close_finishes_before_the_next_connect() {
    let connects = Arc::new(Mutex::new(Vec::new()));
    let conns = Arc::new(Mutex::new(Vec::new()));
    let events = Events::new();
    let reconnect = Reconnect::new()
        .backoff(no_jitter(10))
        .max_attempts(3)
        .on_event(events.observer());
    let out: Result<(), AppError> = reconnect
        .run(
            || {
                let (connects, conns) = (connects.clone(), conns.clone());
                async move {
                    connects.lock().unwrap().push(Instant::now());
                    let conn = Counted::new(Fake {
                        close_takes: Duration::from_secs(1),
                        ..Fake::default()
                    });
                    conns.lock().unwrap().push(conn.clone());
                    Ok(conn)
                }
            },
            |c| async move {
                c.conn.signal.trigger("flaky");
                std::future::pending().await
            },
        )
        .await;
    assert!(out.unwrap_err().reason().is_external());
    let timed = events.timed();
    let closed_at: Vec<Instant> = timed
        .iter()
        .filter(|(_, e)| matches!(e, Event::Closed { .. }))
        .map(|(at, _)| *at)
        .collect();
    let connects = connects.lock().unwrap();
    assert_eq!((connects.len(), closed_at.len()), (3, 3));
    for i in 0..2 {
        assert!(
            connects[i + 1] >= closed_at[i] + Duration::from_millis(10),
            "connect {} started before close {} finished",
            i + 2,
            i + 1
        );
    }
    for conn in conns.lock().unwrap().iter() {
        assert_eq!((conn.closes(), conn.finished()), (1, 1));
    }
    assert_eq!(events.names().last().unwrap(), "gave up 3");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn gives_up_after_max_attempts_with_the_connect_error() {
    // A port with nothing listening: every connect is refused.
    let (gone, addr) = listener().await;
    drop(gone);
    let events = Events::new();
    let started = Instant::now();
    let out: Result<(), AppError> = Reconnect::new()
        .backoff(no_jitter(100))
        .max_attempts(4)
        .on_event(events.observer())
        .run(
            || async move {
                WsConnection::connect(ws_url(addr), WsConfig::new())
                    .await
                    .map_err(|e| AppError::Connect(e.to_string()))
            },
            |_c| async { Ok(()) },
        )
        .await;
    assert!(matches!(out, Err(AppError::Connect(_))), "{out:?}");
    // Waits of 100, 200 and 400 ms between the four attempts.
    assert_eq!(started.elapsed(), Duration::from_millis(700));
    let names = events.names();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("connecting")).count(),
        4
    );
    assert_eq!(names.last().unwrap(), "gave up 4");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn max_elapsed_bounds_the_total_time() {
    let started = Instant::now();
    let out: Result<(), AppError> = Reconnect::new()
        .backoff(no_jitter(100))
        .max_elapsed(Duration::from_millis(1000))
        .run(
            || async { Err::<Fake, _>(AppError::Connect("refused".into())) },
            |_c| async { Ok(()) },
        )
        .await;
    assert_eq!(out, Err(AppError::Connect("refused".into())));
    // 100 + 200 + 400 = 700 ms; the next wait (800 ms) would end past 1 s.
    assert_eq!(started.elapsed(), Duration::from_millis(700));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_body_error_on_a_healthy_connection_is_not_retried() {
    let attempts = AtomicU32::new(0);
    let conn = Counted::new(Fake::default());
    let c = conn.clone();
    let out: Result<(), AppError> = Reconnect::new()
        .run(
            || {
                attempts.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                async move { Ok(c) }
            },
            |_c| async { Err(AppError::Body("invalid order")) },
        )
        .await;
    assert_eq!(out, Err(AppError::Body("invalid order")));
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(conn.closes(), 1);
}

/// With `stable_after(ZERO)` every connect counts as stable (the default, 10 s, is in
/// `reconnect_retry.rs`: there the waits grow).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_stable_after_zero_the_backoff_restarts_after_each_connect() {
    let events = Events::new();
    let out: Result<(), AppError> = Reconnect::new()
        .backoff(no_jitter(100))
        .max_attempts(4)
        .stable_after(Duration::ZERO)
        .supervisor(Supervisor::new().close_timeout(Duration::from_millis(50)))
        .on_event(events.observer())
        .run(
            || async { Ok(Fake::default()) },
            |c| async move {
                c.signal.trigger("dropped at once");
                std::future::pending().await
            },
        )
        .await;
    assert!(out.unwrap_err().reason().is_external());
    let delays: Vec<Duration> = events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            Event::Retrying { delay, .. } => Some(delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [Duration::from_millis(100); 3]);
}
