//! The originating scenario, line by line: trio's `get_service_connection` — a connection, a
//! watcher, a forced exit, a typed error outside, cleanup on every path — on real loopback TCP.
//!
//! Part 1 is the trio version: a background watcher notices the service hang up, the body
//! (`send_stuff`, an endless loop) is force-exited, `disconnect()` runs exactly once, and the
//! caller matches `AppError::ConnectionLost`. Part 2 is the asyncio version: a
//! `connection_state_callback` on a driver's OS thread reports the loss through the
//! connection's `LossSignal` (the asyncio `Event`, safe from any thread).
//!
//! ```text
//! cargo run -p nursery-net --example seed_service
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nursery_net::{
    supervise, Connection, ConnectionLost, LossReason, LossSignal, TcpConfig, TcpConnection,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// `class ConnectionLostException(Exception)`: the business error is its own variant,
/// distinguishable from every other error.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionLost),
    #[error("cannot connect: {0}")]
    Connect(#[from] std::io::Error),
}

/// `class SomeServiceConnection:` — here the service is a TCP peer at `addr`.
#[derive(Clone)]
struct SomeServiceConnection {
    link: TcpConnection,
    disconnects: Arc<AtomicUsize>,
}

impl SomeServiceConnection {
    /// `async def connect(self): await self.service.connect()`
    async fn connect(addr: SocketAddr, disconnects: Arc<AtomicUsize>) -> Result<Self, AppError> {
        let link = TcpConnection::connect(addr, TcpConfig::new()).await?;
        Ok(SomeServiceConnection { link, disconnects })
    }

    async fn send(&self, line: &str) -> Result<(), ConnectionLost> {
        self.link.send(line.as_bytes()).await
    }
}

impl Connection for SomeServiceConnection {
    /// `async def wait_disconnected(self): await self.service.wait_for_disconnect()` —
    /// returns why (EOF, reset, heartbeat…), instead of a bare `RuntimeError("connection lost")`.
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        self.link.watch()
    }

    /// `async def disconnect(self): self.service.disconnect()`
    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        let (close, disconnects) = (self.link.close(), self.disconnects.clone());
        async move {
            close.await;
            disconnects.fetch_add(1, Ordering::SeqCst);
            println!("  disconnect(): ran");
        }
    }

    /// The asyncio version's `disconnect_event`, settable from any thread.
    fn loss_signal(&self) -> &LossSignal {
        self.link.loss_signal()
    }
}

/// ```python
/// @asynccontextmanager
/// async def get_service_connection(service):
/// ```
/// Python's `async with … as conn: <block>` becomes a call taking the block as a closure.
async fn get_service_connection<T, F, Fut>(
    addr: SocketAddr,
    disconnects: Arc<AtomicUsize>,
    body: F,
) -> Result<T, AppError>
where
    F: FnOnce(SomeServiceConnection) -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    // connection = SomeServiceConnection(service)
    // await connection.connect()
    let connection = SomeServiceConnection::connect(addr, disconnects).await?;
    // try:
    //     async with trio.open_nursery() as nursery:
    tokio_nursery::nursery(|nursery| async move {
        // finally:
        //     await connection.disconnect()
        // Registered first, runs last: after the body and the watcher are gone, on every exit
        // path, once, shielded from the cancellation, bounded (5 s by default).
        let closer = connection.clone();
        nursery.defer(async move {
            closer.close().await;
            Ok(())
        });
        // nursery.start_soon(connection.wait_disconnected)
        // Its error cancels the body wherever it waits, and leaves the nursery as the result.
        let watched = connection.clone();
        nursery.spawn_named("watcher", async move {
            let reason = watched.watch().await;
            Err(AppError::from(ConnectionLost::new(reason)))
        });
        // yield connection
        let out = body(connection).await;
        // nursery.cancel_scope.cancel()   (normal exit: stop the watcher)
        nursery.cancel();
        out
    })
    // The nursery's error comes out as is: no ExceptionGroup to unwrap.
    .await
}

/// `async def send_stuff(conn)`: loops forever; only the forced exit ends it.
async fn send_stuff(conn: SomeServiceConnection) -> Result<(), AppError> {
    for i in 1.. {
        conn.send(&format!("message {i}\n")).await?;
        tokio::time::sleep(Duration::from_millis(50)).await; // dropped here on force-exit
    }
    unreachable!()
}

/// The service: reads `lines` lines from each client, then hangs up (or, with `None`, keeps
/// reading until the client leaves).
async fn service(lines: Option<usize>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        let mut reader = BufReader::new(socket).lines();
        let mut seen = 0;
        while let Some(line) = reader.next_line().await? {
            println!("  service: got {line:?}");
            seen += 1;
            if Some(seen) == lines {
                println!("  service: hanging up");
                break;
            }
        }
        std::io::Result::Ok(())
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("1. trio: a watcher in the nursery");
    let addr = service(Some(3)).await?;
    let disconnects = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // try:
    //     async with get_service_connection(service) as conn:
    //         await send_stuff(conn)
    // except ConnectionLostException as e:
    match get_service_connection(addr, disconnects.clone(), send_stuff).await {
        Err(AppError::ConnectionLost(lost)) => {
            println!("  caught: {lost} (after {:?})", started.elapsed());
            assert!(lost.reason.is_peer_closed());
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert_eq!(disconnects.load(Ordering::SeqCst), 1, "disconnect ran once");

    println!("2. asyncio: connection_state_callback on a driver thread");
    let addr = service(None).await?;
    let disconnects = Arc::new(AtomicUsize::new(0));
    let connection = SomeServiceConnection::connect(addr, disconnects.clone()).await?;
    // await connection.connect(lambda: disconnect_event.set())
    let event = connection.loss_signal().clone();
    let connection_state_callback = move |connected: bool| {
        if !connected {
            event.trigger("driver: connection dropped");
        }
    };
    let driver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(120)); // the driver notices a drop
        connection_state_callback(false);
    });
    // The packaged form of the nursery above: `supervise` = watcher + yield + defer(disconnect).
    let outcome = supervise(connection, send_stuff).await;
    driver.join().expect("driver thread");
    match outcome {
        Err(AppError::ConnectionLost(lost)) => {
            println!("  caught: {lost}");
            assert!(lost.reason.is_external());
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert_eq!(disconnects.load(Ordering::SeqCst), 1, "disconnect ran once");
    println!("done: both exits were forced, typed, and cleaned up exactly once");
    Ok(())
}
