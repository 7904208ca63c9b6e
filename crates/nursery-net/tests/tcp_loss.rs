//! `TcpConnection` on real loopback sockets: each loss reason, the external trigger from a
//! foreign OS thread, data before the loss, cleanup exactly once.
//!
//! Tests on the paused clock never await bytes from the peer while a timer is pending (tokio
//! would advance the clock whenever the kernel has not delivered them yet).

mod support;

use std::sync::mpsc;
use std::time::Duration;

use nursery_net::{
    supervise, Connection, Heartbeat, LossReason, Supervisor, TcpConfig, TcpConnection,
};
use support::{listener, AppError, Counted, Events};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

async fn connect(addr: std::net::SocketAddr, config: TcpConfig) -> Counted<TcpConnection> {
    Counted::new(TcpConnection::connect(addr, config).await.expect("connect"))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn peer_eof_is_peer_closed() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut line = [0u8; 6];
        socket.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"hello\n");
        // Dropping the socket sends FIN.
    });
    let conn = connect(addr, TcpConfig::new()).await;
    let out: Result<(), AppError> = supervise(conn.clone(), |c| async move {
        c.conn.send(b"hello\n").await?;
        std::future::pending().await
    })
    .await;
    assert_eq!(out.unwrap_err().reason(), &LossReason::eof());
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
    server.await.unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_reset_is_reset() {
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        go_rx.await.unwrap();
        socket.set_zero_linger().unwrap();
        drop(socket); // RST
    });
    let conn = connect(addr, TcpConfig::new()).await;
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async move {
        go_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    let err = out.unwrap_err();
    assert!(err.reason().is_reset(), "{err}");
    assert_eq!(conn.closes(), 1);
    server.await.unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn data_received_before_the_loss_is_delivered_first() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(b"last words").await.unwrap();
    });
    let conn = connect(addr, TcpConfig::new()).await;
    let out: Result<Vec<u8>, AppError> = supervise(conn.clone(), |c| async move {
        let mut got = Vec::new();
        loop {
            match c.conn.recv().await {
                Ok(chunk) => got.extend(chunk),
                Err(lost) if got == b"last words" => return Err(AppError::ConnectionLost(lost)),
                Err(lost) => panic!("lost before the data arrived: {lost}"),
            }
        }
    })
    .await;
    assert!(out.unwrap_err().reason().is_peer_closed());
    assert_eq!(conn.closes(), 1);
    server.await.unwrap();
}

/// A half-open connection: the peer reads the pings but never answers. The paused clock makes
/// the timing exact.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unanswered_heartbeat_is_a_heartbeat_timeout() {
    let (listener, addr) = listener().await;
    let (pings_tx, mut pings_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = socket.read(&mut buf).await {
            let _ = pings_tx.send(buf[..n].to_vec());
        }
    });
    let heartbeat = Heartbeat::new(Duration::from_secs(2), Duration::from_secs(3));
    let config = TcpConfig::new().heartbeat(heartbeat, || b"PING\n".to_vec());
    let conn = connect(addr, config).await;
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| std::future::pending()).await;
    let err = out.unwrap_err();
    assert_eq!(
        err.reason(),
        &LossReason::HeartbeatTimeout {
            timeout: Duration::from_secs(3)
        }
    );
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(pings_rx.recv().await.unwrap(), b"PING\n");
    assert_eq!(conn.closes(), 1);
    server.await.unwrap();
}

/// Real time: the client awaits the peer's pongs while its heartbeat timer is pending, which the
/// paused clock would skip ahead of whenever the kernel has not delivered them yet. The body
/// waits for the server to have answered ten pings (no sleeps); the 5 s timeout is generous.
#[tokio::test(flavor = "current_thread")]
async fn an_answered_heartbeat_keeps_the_connection() {
    let (listener, addr) = listener().await;
    let (answered_tx, mut answered_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = socket.read(&mut buf).await {
            for _ in buf[..n].iter().filter(|&&b| b == b'\n') {
                socket.write_all(b"PONG\n").await.unwrap();
                let _ = answered_tx.send(());
            }
        }
    });
    let heartbeat = Heartbeat::new(Duration::from_millis(10), Duration::from_secs(5));
    let config = TcpConfig::new().heartbeat(heartbeat, || b"PING\n".to_vec());
    let conn = connect(addr, config).await;
    let out: Result<&str, AppError> = supervise(conn.clone(), |c| async move {
        for _ in 0..10 {
            answered_rx.recv().await.unwrap();
        }
        // The pongs were delivered as data.
        let pongs = c.conn.recv().await?;
        assert!(pongs.starts_with(b"PONG\n"));
        Ok("stayed up")
    })
    .await;
    assert_eq!(out, Ok("stayed up"));
    assert_eq!(conn.closes(), 1);
    server.await.unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn silence_is_an_idle_timeout_and_traffic_postpones_it() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        while let Ok(1..) = socket.read(&mut buf).await {}
    });
    let config = TcpConfig::new().idle_timeout(Duration::from_secs(10));
    let conn = connect(addr, config).await;
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn.clone(), |c| async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        c.conn.send(b"still here\n").await?; // postpones the idle timeout to 16 s
        std::future::pending().await
    })
    .await;
    assert_eq!(
        out.unwrap_err().reason(),
        &LossReason::IdleTimeout {
            idle: Duration::from_secs(10)
        }
    );
    assert_eq!(started.elapsed(), Duration::from_secs(16));
    assert_eq!(conn.closes(), 1);
    server.await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn external_trigger_from_a_foreign_os_thread() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        // Reads until the client's close (FIN) arrives.
        while let Ok(1..) = socket.read(&mut buf).await {}
    });
    let conn = connect(addr, TcpConfig::new()).await;
    let signal = conn.loss_signal().clone();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        ready_rx.recv().unwrap();
        signal.trigger("driver callback: link down")
    });
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn.clone(), |c| async move {
        c.conn.send(b"hello\n").await?;
        ready_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    assert!(thread.join().unwrap());
    assert_eq!(
        out.unwrap_err().reason(),
        &LossReason::external("driver callback: link down")
    );
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
    server.await.unwrap(); // the close sent FIN: the server saw EOF
    assert!(started.elapsed() < Duration::from_secs(10), "hang detector");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_normal_exit_shuts_the_socket_down_and_later_use_fails() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        socket.read_to_end(&mut got).await.unwrap(); // ends at the client's FIN
        got
    });
    let conn = connect(addr, TcpConfig::new()).await;
    let events = Events::new();
    let supervisor = Supervisor::new().on_event(events.observer());
    let kept = supervisor
        .run(conn.clone(), |c| async move {
            c.conn.send(b"bye\n").await?;
            Ok::<_, AppError>(c)
        })
        .await
        .unwrap();
    assert_eq!(server.await.unwrap(), b"bye\n");
    assert_eq!(events.names(), ["closed 1"]);
    assert_eq!(conn.closes(), 1);
    // The handle outlived its supervision: it is closed.
    let late = kept.conn.send(b"late\n").await.unwrap_err();
    assert_eq!(late.reason, LossReason::LocallyClosed);
}
