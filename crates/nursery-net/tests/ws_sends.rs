//! Sends at a loss: each message given to `send` is exactly one of acknowledged (`Ok`),
//! in flight (handed to the socket, fate unknown) or unsent (never handed to the socket), and
//! what the peer finally receives is never in the unsent list (a replay cannot duplicate it).
//! Also the body's `on_close` cleanups: once, with the reason, bounded by the close timeout.
//!
//! Real clock; timings only as hang guards.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use nursery_net::tungstenite::Message;
use nursery_net::{Connection, Event, LossReason, Supervisor, WsConfig, WsConnection};
use support::{accept_ws, listener, ws_url, AppError, Events};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(20);
const COUNT: u32 = 80;
const SIZE: usize = 256 * 1024;

fn message(n: u32) -> Message {
    let mut payload = vec![0u8; SIZE];
    payload[..4].copy_from_slice(&n.to_be_bytes());
    Message::binary(payload)
}

fn number(message: &Message) -> u32 {
    let data = message.clone().into_data();
    u32::from_be_bytes([data[0], data[1], data[2], data[3]])
}

#[tokio::test(flavor = "current_thread")]
async fn every_send_is_acknowledged_in_flight_or_unsent_and_unsent_never_reached_the_peer() {
    let (listener, addr) = listener().await;
    let (read_tx, read_rx) = oneshot::channel::<()>();
    // The peer reads nothing until the loss, then everything that reached it.
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        read_rx.await.unwrap();
        let mut got = Vec::new();
        while let Ok(Some(Ok(message))) = timeout(GUARD, ws.next()).await {
            if message.is_binary() {
                got.push(number(&message));
            }
        }
        got
    });
    let config = WsConfig::new()
        .outbound_capacity(COUNT as usize)
        .in_flight_window(usize::MAX);
    let conn = WsConnection::connect(ws_url(addr), config).await.unwrap();
    let handle = conn.clone();
    let (acked_tx, mut acked_rx) = mpsc::unbounded_channel();
    let signal = conn.loss_signal().clone();
    // The close frame cannot get past the unread bytes either: do not wait for the answer.
    let supervisor = Supervisor::new().close_timeout(Duration::from_millis(300));
    let out: Result<(), AppError> = timeout(
        GUARD,
        supervisor.run(conn, |conn| async move {
            // All queued at once, in order; acknowledged one at a time as the kernel takes them.
            let sends = (0..COUNT).map(|n| {
                let (conn, acked_tx) = (conn.clone(), acked_tx.clone());
                async move {
                    conn.send(message(n)).await?;
                    let _ = acked_tx.send(n);
                    Ok::<_, AppError>(())
                }
            });
            let trigger = async {
                // Lost once the first message is acknowledged: the peer is not reading, so most
                // of the 20 MiB cannot have left.
                let _ = acked_rx.recv().await;
                signal.trigger("operator pulled the plug");
                std::future::pending::<()>().await;
            };
            tokio::select! {
                _ = futures_util::future::join_all(sends) => {}
                () = trigger => {}
            }
            std::future::pending().await
        }),
    )
    .await
    .expect("hang guard");
    assert!(out.unwrap_err().reason().is_external());
    read_tx.send(()).unwrap();
    let got = timeout(GUARD, server).await.unwrap().unwrap();

    let accounting = handle.take_accounting().unwrap();
    let unsent: Vec<u32> = accounting.unsent.iter().map(number).collect();
    let in_flight: Vec<u32> = accounting.in_flight.iter().map(number).collect();
    // Every message exactly once: written (0..written) or unsent (written..COUNT), in order.
    let written = u32::try_from(accounting.written).unwrap();
    assert_eq!(in_flight, (0..written).collect::<Vec<_>>());
    assert_eq!(unsent, (written..COUNT).collect::<Vec<_>>());
    assert!(
        !unsent.is_empty(),
        "the peer did not read: some were never handed over"
    );
    // What reached the peer was written, in order, and nothing unsent reached it.
    let got_set: BTreeSet<u32> = got.iter().copied().collect();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    assert!(
        got_set.iter().all(|n| *n < written),
        "{got:?} vs written {written}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn cleanups_run_once_newest_first_with_the_reason() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let ws = accept_ws(&listener).await;
        drop(ws); // abort
    });
    let conn = WsConnection::connect(ws_url(addr), WsConfig::new())
        .await
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let runs = Arc::new(AtomicUsize::new(0));
    let (l1, l2, r) = (log.clone(), log.clone(), runs.clone());
    let out: Result<(), AppError> = timeout(
        GUARD,
        Supervisor::new().run(conn, |conn| async move {
            conn.on_close(move |reason: Option<LossReason>| async move {
                r.fetch_add(1, Ordering::SeqCst);
                l1.lock()
                    .unwrap()
                    .push(format!("first: {}", reason.unwrap().label()));
            });
            conn.on_close(move |_| async move {
                l2.lock().unwrap().push("second".to_string());
            });
            std::future::pending().await
        }),
    )
    .await
    .expect("hang guard");
    assert!(out.unwrap_err().reason().is_abort());
    assert_eq!(*log.lock().unwrap(), ["second", "first: reset"]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    server.await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_cleanup_after_a_normal_exit_gets_none_and_a_hanging_one_is_bounded() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        while let Some(Ok(_)) = ws.next().await {}
    });
    let conn = WsConnection::connect(ws_url(addr), WsConfig::new())
        .await
        .unwrap();
    let events = Events::new();
    let (seen_tx, seen_rx) = oneshot::channel();
    let supervisor = Supervisor::new()
        .close_timeout(Duration::from_millis(200))
        .on_event(events.observer());
    let out: Result<u32, AppError> = timeout(
        GUARD,
        supervisor.run(conn, |conn| async move {
            conn.on_close(|_| std::future::pending::<()>()); // never finishes
            conn.on_close(move |reason| async move {
                let _ = seen_tx.send(reason);
            });
            Ok(7)
        }),
    )
    .await
    .expect("the hanging cleanup is dropped at the close timeout");
    assert_eq!(out.unwrap(), 7);
    assert_eq!(
        seen_rx.await.unwrap(),
        None,
        "a normal exit has no loss reason"
    );
    assert!(matches!(
        events.closed()[..],
        [Event::Closed {
            timed_out: true,
            ..
        }]
    ));
    timeout(GUARD, server).await.unwrap().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn reconnect_replays_unsent_messages_first_in_order_and_never_what_the_first_peer_got() {
    use nursery_net::{Backoff, Reconnect};
    let (listener, addr) = listener().await;
    let (read_tx, read_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // First peer: reads nothing until the loss, then all that reached it.
        let mut first = accept_ws(&listener).await;
        let second = tokio::spawn(async move {
            // Second peer: reads until "end".
            let mut ws = accept_ws(&listener).await;
            let mut got = Vec::new();
            while let Some(Ok(message)) = ws.next().await {
                match message {
                    Message::Binary(_) => got.push(number(&message)),
                    Message::Text(text) if text.as_str() == "end" => break,
                    _ => {}
                }
            }
            got
        });
        read_rx.await.unwrap();
        let mut got_first = Vec::new();
        while let Ok(Some(Ok(message))) = timeout(GUARD, first.next()).await {
            if message.is_binary() {
                got_first.push(number(&message));
            }
        }
        (got_first, second.await.unwrap())
    });
    let config = WsConfig::new().outbound_capacity(COUNT as usize);
    let attempts = Arc::new(AtomicUsize::new(0));
    let read_tx = Arc::new(Mutex::new(Some(read_tx)));
    let out: Result<(), AppError> = timeout(
        GUARD,
        Reconnect::new()
            .supervisor(Supervisor::new().close_timeout(Duration::from_millis(300)))
            .backoff(Backoff::new(Duration::from_millis(10), Duration::from_millis(10)).jitter(0.0))
            .max_attempts(3)
            .replay_unsent(true)
            .run(
                || {
                    let config = config.clone();
                    async move {
                        WsConnection::connect(ws_url(addr), config)
                            .await
                            .map_err(|e| AppError::Connect(e.to_string()))
                    }
                },
                |conn| {
                    let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    let read_tx = read_tx.clone();
                    async move {
                        if attempt == 1 {
                            let (acked_tx, mut acked_rx) = mpsc::unbounded_channel();
                            let sends = (0..COUNT).map(|n| {
                                let (conn, acked_tx) = (conn.clone(), acked_tx.clone());
                                async move {
                                    conn.send(message(n)).await?;
                                    let _ = acked_tx.send(n);
                                    Ok::<_, AppError>(())
                                }
                            });
                            let trigger = async {
                                let _ = acked_rx.recv().await;
                                conn.loss_signal().trigger("link down");
                                std::future::pending::<()>().await;
                            };
                            tokio::select! {
                                _ = futures_util::future::join_all(sends) => {}
                                () = trigger => {}
                            }
                            std::future::pending().await
                        } else {
                            // The replayed messages are written before this one.
                            if let Some(tx) = read_tx.lock().unwrap().take() {
                                let _ = tx.send(());
                            }
                            conn.send_text("end").await?;
                            Ok(())
                        }
                    }
                },
            ),
    )
    .await
    .expect("hang guard");
    out.unwrap();
    let (got_first, got_second) = timeout(GUARD, server).await.unwrap().unwrap();
    assert!(!got_second.is_empty(), "something was unsent and replayed");
    // The replay is exactly the tail the first connection never wrote, in order.
    let start = *got_second.first().unwrap();
    assert_eq!(got_second, (start..COUNT).collect::<Vec<_>>());
    // Nothing the first peer received is replayed: no duplicate.
    assert!(
        got_first.iter().all(|n| *n < start),
        "{got_first:?} / from {start}"
    );
}
