//! Force-exiting a connection block when the peer goes away, on real loopback TCP.
//!
//! A tiny server accepts one connection, reads three messages and hangs up while the client is
//! still sending. The client is trio's `get_service_connection` from the originating scenario:
//! a background watcher notices the loss, the body (an endless send loop) is force-exited, the
//! async disconnect still runs exactly once, and the caller gets a typed
//! `AppError::ConnectionLost { reason }` it can `match` on.
//!
//! ```text
//! cargo run -p tokio-nursery --example seed_tcp
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Mutex};
use tokio::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Prints an event with the time since the program started, so a run can be read side by side
/// with trio's run of the same scenario.
macro_rules! event {
    ($($arg:tt)*) => {
        println!(
            "[{:>7.2} ms] {}",
            START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3,
            format_args!($($arg)*)
        )
    };
}

/// The business error: a lost connection is distinguishable from everything else
/// (the scenario's `ConnectionLostException`).
#[derive(Debug)]
enum AppError {
    ConnectionLost { reason: String },
    Io(std::io::Error),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::ConnectionLost { reason } => write!(f, "connection lost ({reason})"),
            AppError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for AppError {}

type Conn = Arc<Mutex<OwnedWriteHalf>>;

/// `async with get_service_connection(addr) as conn: await body(conn)`.
async fn get_service_connection<T, F, Fut>(
    addr: std::net::SocketAddr,
    cleanups: Arc<AtomicUsize>,
    body: F,
) -> Result<T, AppError>
where
    F: FnOnce(Conn) -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    // `await connection.connect()`
    let stream = TcpStream::connect(addr).await.map_err(AppError::Io)?;
    event!("client: connected to {addr}");
    let (mut reader, writer) = stream.into_split();
    let conn: Conn = Arc::new(Mutex::new(writer));

    // `async with trio.open_nursery() as nursery:`
    tokio_nursery::nursery(|n| async move {
        // `finally: await connection.disconnect()` — runs after the body and the watcher are
        // gone, on every exit path, exactly once, shielded and bounded (5 s by default).
        let c = conn.clone();
        n.defer(async move {
            // Best effort, like the scenario's disconnect(): the peer may already be gone.
            let _ = c.lock().await.shutdown().await;
            cleanups.fetch_add(1, Ordering::SeqCst);
            event!("client: cleanup ran (write half shut down)");
            Ok(())
        });

        // `nursery.start_soon(connection.wait_disconnected)`: owns the read half; its error
        // cancels the body and every other child, then comes out of the nursery as is.
        n.spawn_named("watcher", async move {
            let mut buf = [0u8; 256];
            let reason = loop {
                match reader.read(&mut buf).await {
                    Ok(0) => break "peer closed the connection (EOF)".to_string(),
                    Ok(_) => continue, // the server never talks; ignore data
                    Err(e) => break format!("read failed: {e}"),
                }
            };
            Err(AppError::ConnectionLost { reason })
        });

        // `yield connection`
        let out = body(conn).await;
        // Normal exit: stop the watcher (`nursery.cancel_scope.cancel()`).
        n.cancel();
        out
    })
    .await
}

/// The scenario's `send_stuff`: loops forever; only a force-exit ends it.
async fn send_stuff(conn: Conn) -> Result<(), AppError> {
    let mut i = 0;
    loop {
        i += 1;
        event!("client: sending message {i}");
        let line = format!("message {i}\n");
        let sent = conn.lock().await.write_all(line.as_bytes()).await;
        sent.map_err(AppError::Io)?;
        tokio::time::sleep(Duration::from_millis(50)).await; // dropped here on force-exit
    }
}

/// The remote peer: reads three messages, then hangs up. Reports when it closed.
async fn serve_one(
    listener: TcpListener,
    closed_at: oneshot::Sender<Instant>,
) -> std::io::Result<()> {
    let (stream, _) = listener.accept().await?;
    let mut lines = BufReader::new(stream).lines();
    for _ in 0..3 {
        if let Some(line) = lines.next_line().await? {
            event!("server: got {line:?}");
        }
    }
    event!("server: closing the connection");
    let _ = closed_at.send(Instant::now());
    drop(lines); // closes the socket
    Ok(())
}

#[tokio::main]
async fn main() {
    START.get_or_init(Instant::now);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (closed_tx, closed_rx) = oneshot::channel();
    let server = tokio::spawn(serve_one(listener, closed_tx));

    let cleanups = Arc::new(AtomicUsize::new(0));
    // `try: async with get_service_connection(...) as conn: await send_stuff(conn)`
    let result = get_service_connection(addr, cleanups.clone(), send_stuff).await;
    let received_at = Instant::now();

    // `except ConnectionLostException as e:`
    match result {
        Err(AppError::ConnectionLost { reason }) => {
            let closed_at = closed_rx.await.expect("server reports when it closed");
            event!("caller: connection lost: {reason}");
            event!(
                "caller: typed error received {:?} after the server closed the connection",
                received_at - closed_at
            );
        }
        Err(AppError::Io(e)) => panic!("expected a connection loss, got an I/O error: {e}"),
        Ok(()) => unreachable!("send_stuff never returns Ok"),
    }

    let runs = cleanups.load(Ordering::SeqCst);
    assert_eq!(runs, 1, "cleanup must run exactly once");
    event!("caller: cleanup ran exactly once");
    server.await.expect("server task").expect("server I/O");

    // Nothing left behind: no watcher, no server task still alive.
    let alive = alive_tasks().await;
    event!("caller: tasks left: {alive}");
    assert_eq!(alive, 0, "no task is left");
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
