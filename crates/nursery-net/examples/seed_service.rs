//! The originating scenario, line by line: trio's `get_service_connection` — a connection, a
//! watcher, a forced exit, a typed error outside, cleanup on every path — on real loopback TCP.
//!
//! Part 1 is the trio version: a background watcher notices the service hang up, the body
//! (`send_stuff`, an endless loop) is force-exited, `disconnect()` runs exactly once, and the
//! caller matches `AppError::ConnectionLost`. Part 2 is the asyncio version: a
//! `connection_state_callback` on a driver's OS thread reports the loss through the
//! connection's `LossSignal` (the asyncio `Event`, safe from any thread), and the body registers
//! its own cleanup with `on_close` instead of wrapping the connection.
//!
//! Every event is printed with its time since the start of its part (connect, each send, the
//! loss, the cleanup, the error caught outside), for a line-by-line comparison with trio's run of
//! the same scenario; the run ends by checking that no task is left on the runtime.
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

/// Prints `event` with the time since `start`.
fn log(start: Instant, event: &str) {
    println!(
        "  [{:>6.1} ms] {event}",
        start.elapsed().as_secs_f64() * 1e3
    );
}

/// `class ConnectionLostException(Exception)`: the business error is its own variant,
/// distinguishable from every other error.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionLost),
    #[error("cannot connect: {0}")]
    Connect(#[from] nursery_net::ConnectError),
}

/// `class SomeServiceConnection:` — here the service is a TCP peer at `addr`.
#[derive(Clone)]
struct SomeServiceConnection {
    link: TcpConnection,
    disconnects: Arc<AtomicUsize>,
    start: Instant,
}

impl SomeServiceConnection {
    /// `async def connect(self): await self.service.connect()`
    async fn connect(
        addr: SocketAddr,
        disconnects: Arc<AtomicUsize>,
        start: Instant,
    ) -> Result<Self, AppError> {
        let link = TcpConnection::connect(addr, TcpConfig::new()).await?;
        log(start, &format!("connected to {addr}"));
        Ok(SomeServiceConnection {
            link,
            disconnects,
            start,
        })
    }

    async fn send(&self, line: &str) -> Result<(), ConnectionLost> {
        self.link.send(line.as_bytes()).await?;
        log(self.start, &format!("sent {:?}", line.trim_end()));
        Ok(())
    }
}

impl Connection for SomeServiceConnection {
    /// `async def wait_disconnected(self): await self.service.wait_for_disconnect()` —
    /// returns why (EOF, reset, heartbeat…), instead of a bare `RuntimeError("connection lost")`.
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        let (watch, start) = (self.link.watch(), self.start);
        async move {
            let reason = watch.await;
            log(start, &format!("watcher: lost ({reason})"));
            reason
        }
    }

    /// `async def disconnect(self): self.service.disconnect()`
    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        let (close, disconnects, start) = (self.link.close(), self.disconnects.clone(), self.start);
        async move {
            close.await;
            disconnects.fetch_add(1, Ordering::SeqCst);
            log(start, "disconnect(): ran");
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
    start: Instant,
    body: F,
) -> Result<T, AppError>
where
    F: FnOnce(SomeServiceConnection) -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    // connection = SomeServiceConnection(service)
    // await connection.connect()
    let connection = SomeServiceConnection::connect(addr, disconnects, start).await?;
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

/// The service: reads `lines` lines from one client, then hangs up (or, with `None`, keeps
/// reading until the client leaves). Returns its address and its task, to check it ended.
async fn service(
    lines: Option<usize>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
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
    Ok((addr, task))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("1. trio: a watcher in the nursery");
    let (addr, service_task) = service(Some(3)).await?;
    let disconnects = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // try:
    //     async with get_service_connection(service) as conn:
    //         await send_stuff(conn)
    // except ConnectionLostException as e:
    match get_service_connection(addr, disconnects.clone(), started, send_stuff).await {
        Err(AppError::ConnectionLost(lost)) => {
            log(started, &format!("caught outside: {lost}"));
            assert!(lost.reason.is_peer_closed());
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert_eq!(disconnects.load(Ordering::SeqCst), 1, "disconnect ran once");
    service_task.await??;

    println!("2. asyncio: connection_state_callback on a driver thread");
    let (addr, service_task) = service(None).await?;
    let disconnects = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let connection = SomeServiceConnection::connect(addr, disconnects.clone(), started).await?;
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
    // The body's own cleanup, registered on the connection: no wrapper needed.
    let cleanups = Arc::new(AtomicUsize::new(0));
    let counted = cleanups.clone();
    let outcome = supervise(connection, |conn| async move {
        conn.link.on_close(move |reason| async move {
            counted.fetch_add(1, Ordering::SeqCst);
            log(started, &format!("body cleanup: ran after {reason:?}"));
        });
        send_stuff(conn).await
    })
    .await;
    driver.join().expect("driver thread");
    match outcome {
        Err(AppError::ConnectionLost(lost)) => {
            log(started, &format!("caught outside: {lost}"));
            assert!(lost.reason.is_external());
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert_eq!(disconnects.load(Ordering::SeqCst), 1, "disconnect ran once");
    assert_eq!(
        cleanups.load(Ordering::SeqCst),
        1,
        "the body's cleanup ran once"
    );
    service_task.await??;

    // Nothing left behind: no watcher, no close, no service task still alive.
    let alive = alive_tasks().await;
    println!("tasks left: {alive}");
    assert_eq!(alive, 0, "no task is left");
    println!("done: both exits were forced, typed, and cleaned up exactly once");
    Ok(())
}

/// The runtime's count of live tasks. A task whose future has ended (its nursery saw it finish)
/// is released by its worker thread a moment later, with no user code left in it: give the
/// workers up to 100 ms to settle.
async fn alive_tasks() -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..100 {
        if metrics.num_alive_tasks() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    metrics.num_alive_tasks()
}
