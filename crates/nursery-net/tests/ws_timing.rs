//! Exact heartbeat, idle and backpressure timings of `WsConnection`, on the paused clock, over
//! an in-memory stream (the loopback tests are in `ws_loss.rs`).

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nursery_net::tungstenite::protocol::frame::coding::CloseCode;
use nursery_net::tungstenite::Message;
use nursery_net::{supervise, Heartbeat, LossReason, WsConfig};
use support::{ws_pair, AppError, Counted};
use tokio::time::Instant;

fn heartbeat(interval_s: u64, timeout_s: u64) -> Heartbeat {
    Heartbeat::new(
        Duration::from_secs(interval_s),
        Duration::from_secs(timeout_s),
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_ping_goes_out_after_each_second_of_silence_and_pongs_keep_the_connection() {
    let (conn, mut server) = ws_pair(WsConfig::new().heartbeat(heartbeat(1, 1))).await;
    let server = tokio::spawn(async move {
        let mut pings = Vec::new();
        while let Some(Ok(message)) = server.next().await {
            if message.is_ping() {
                pings.push(Instant::now());
            }
        }
        pings
    });
    let conn = Counted::new(conn);
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async {
        tokio::time::sleep(Duration::from_millis(20_500)).await;
        Ok(())
    })
    .await;
    out.unwrap();
    let pings = server.await.unwrap();
    let at: Vec<Duration> = pings.iter().map(|p| *p - started).collect();
    assert_eq!(at, (1..=20).map(Duration::from_secs).collect::<Vec<_>>());
    assert_eq!(conn.closes(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn traffic_from_the_peer_makes_pings_unnecessary() {
    let (conn, server) = ws_pair(WsConfig::new().heartbeat(heartbeat(2, 1))).await;
    let server = tokio::spawn(async move {
        let (mut sink, mut stream) = server.split();
        let ticker = async move {
            for i in 0..10 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                sink.send(Message::text(format!("tick {i}"))).await.unwrap();
            }
            sink
        };
        let reader = async move {
            let mut pings = 0;
            // Until the client's close: pings would show up here.
            while let Some(Ok(m)) = stream.next().await {
                pings += usize::from(m.is_ping());
            }
            pings
        };
        let (_sink, pings) = tokio::join!(ticker, reader);
        pings
    });
    let out: Result<usize, AppError> = supervise(conn, |c| async move {
        let mut ticks = 0;
        while ticks < 10 {
            c.recv().await?;
            ticks += 1;
        }
        Ok(ticks)
    })
    .await;
    assert_eq!(out, Ok(10));
    assert_eq!(server.await.unwrap(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_peer_that_stops_answering_is_lost_interval_plus_timeout_after_its_last_frame() {
    let (conn, mut server) = ws_pair(WsConfig::new().heartbeat(heartbeat(2, 3))).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // Answers pings until told to stop, then holds the stream without reading.
        tokio::select! {
            _ = async { while let Some(Ok(_)) = server.next().await {} } => {}
            _ = stop_rx => {}
        }
        server
    });
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn, |_c| async move {
        tokio::time::sleep(Duration::from_secs(7)).await; // pings at 2, 4, 6 s are answered
        stop_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    assert_eq!(
        out.unwrap_err().reason(),
        &LossReason::HeartbeatTimeout {
            timeout: Duration::from_secs(3)
        }
    );
    // Last answer at 6 s; ping at 8 s; lost at 8 + 3 = 11 s.
    assert_eq!(started.elapsed(), Duration::from_secs(11));
    drop(server.await.unwrap());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn messages_either_way_postpone_the_idle_timeout_pings_do_not() {
    let config = WsConfig::new()
        .heartbeat(heartbeat(1, 1))
        .idle_timeout(Duration::from_secs(10));
    let (conn, mut server) = ws_pair(config).await;
    let server = tokio::spawn(async move {
        let mut last = None;
        while let Some(Ok(message)) = server.next().await {
            if message.is_text() {
                server.send(message.clone()).await.unwrap();
            }
            last = Some(message);
        }
        last
    });
    let conn = Counted::new(conn);
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn.clone(), |c| async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        c.conn.send_text("one").await?; // traffic at 4 s (and its echo): idle at 14 s
        c.conn.recv().await?;
        std::future::pending().await
    })
    .await;
    assert_eq!(
        out.unwrap_err().reason(),
        &LossReason::IdleTimeout {
            idle: Duration::from_secs(10)
        }
    );
    assert_eq!(started.elapsed(), Duration::from_secs(14));
    // The close handshake went through: the server saw a close frame ("going away").
    let last = server.await.unwrap();
    assert!(matches!(last, Some(Message::Close(Some(ref f))) if f.code == CloseCode::Away));
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
}

/// A body that stops reading applies backpressure: the driver stops reading too and suspends
/// the heartbeat (the peer's pongs cannot be seen), instead of declaring the peer dead.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_body_that_does_not_read_suspends_the_heartbeat() {
    let config = WsConfig::new()
        .heartbeat(heartbeat(1, 1))
        .inbound_capacity(2);
    let (conn, mut server) = ws_pair(config).await;
    let server = tokio::spawn(async move {
        for i in 0..5 {
            server.send(Message::text(format!("m{i}"))).await.unwrap();
        }
        while let Some(Ok(_)) = server.next().await {}
    });
    let out: Result<Vec<String>, AppError> = supervise(conn, |c| async move {
        tokio::time::sleep(Duration::from_secs(30)).await; // not reading
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(c.recv().await?.into_text().unwrap().to_string());
        }
        Ok(got)
    })
    .await;
    assert_eq!(out.unwrap(), ["m0", "m1", "m2", "m3", "m4"]);
    server.await.unwrap();
}

/// A full read-ahead suspends the heartbeat (nothing inbound can be observed then); it must
/// resume however the room comes back. The room often comes back while the driver is busy
/// writing the body's acknowledgement, so a later turn finds it without waiting for it (which
/// turn depends on the order `select!` polls in: hence several rounds). The peer then falls
/// silent, as a stopped process does, and the loss must come from the heartbeat, not never.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_heartbeat_resumes_after_a_full_read_ahead_however_the_room_comes_back() {
    for round in 0..24 {
        let config = WsConfig::new()
            .heartbeat(heartbeat(1, 1))
            .inbound_capacity(1);
        let (conn, mut server) = ws_pair(config).await;
        let server = tokio::spawn(async move {
            for i in 0..3 {
                server.send(Message::text(format!("m{i}"))).await.unwrap();
            }
            // Silent from here on, and never polled again: no pong answers a ping.
            std::future::pending::<()>().await;
            drop(server);
        });
        let started = Instant::now();
        let out: Result<(), AppError> = tokio::time::timeout(
            Duration::from_secs(60),
            supervise(conn, |c| async move {
                loop {
                    c.recv().await?;
                    c.send_text("ack").await?;
                }
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: the stopped peer was never detected"));
        let Err(AppError::ConnectionLost(lost)) = out else {
            panic!("expected a loss, got {out:?}");
        };
        assert!(
            matches!(lost.reason, LossReason::HeartbeatTimeout { .. }),
            "{lost}"
        );
        // One interval and one timeout of silence after the last message.
        assert!(
            started.elapsed() <= Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        server.abort();
    }
}
