//! Graceful shutdown in two phases: stop accepting, drain in-flight requests, then cancel hard.
//!
//! A TCP server runs inside `CancelScope::new().with_grace(1 s)`: the accept loop is the
//! nursery's body, each request a child. Clients ask for work of a given length ("600 ms",
//! "3000 ms"). A timer stands in for Ctrl-C and calls `cancel_with("shutdown")`.
//!
//! - Phase 1 (drain): `handle.cancelled()` fires, but nothing inside the scope is cancelled yet.
//!   The accept loop stops and drops the listener (new connections are refused) while in-flight
//!   requests go on and finish.
//! - Phase 2 (hard): when the grace period ends, whatever still runs (the slow request) is
//!   dropped, and the scope returns `None`.
//!
//! ```text
//! cargo run -p tokio-nursery --example graceful_shutdown
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_nursery::CancelScope;

const GRACE: Duration = Duration::from_secs(1);
const SHUTDOWN_AT: Duration = Duration::from_millis(200);

/// Timeline stamp: milliseconds since the start.
fn at(t0: Instant) -> String {
    format!("[{:>4} ms]", t0.elapsed().as_millis())
}

/// Reads "<ms>\n", works that long, replies "done <ms>".
async fn handle_request(stream: TcpStream, t0: Instant) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    BufReader::new(reader).read_line(&mut line).await?;
    let ms: u64 = line.trim().parse().map_err(std::io::Error::other)?;
    println!("{} server: request {ms} ms started", at(t0));
    tokio::time::sleep(Duration::from_millis(ms)).await; // dropped here by a hard cancel
    writer.write_all(format!("done {ms}\n").as_bytes()).await?;
    println!("{} server: request {ms} ms finished", at(t0));
    Ok(())
}

/// Sends one request; returns the reply, or `None` if the server closed without replying.
async fn client(addr: SocketAddr, ms: u64, t0: Instant) -> std::io::Result<Option<String>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("{ms}\n").as_bytes()).await?;
    let mut reply = String::new();
    let n = BufReader::new(stream).read_line(&mut reply).await?;
    let reply = (n > 0).then(|| reply.trim_end().to_owned());
    println!("{} client: {ms} ms request got {reply:?}", at(t0));
    Ok(reply)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let t0 = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    let scope = CancelScope::new().with_grace(GRACE);
    let handle = scope.handle();

    // The shutdown trigger. A real server would wait for `tokio::signal::ctrl_c()` here (the
    // tokio `signal` feature); a timer keeps the example self-running.
    let trigger = handle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SHUTDOWN_AT).await;
        println!("{} ctrl-c: shutdown requested", at(t0));
        trigger.cancel_with("shutdown");
    });

    // Clients live outside the scope: shutting the server down does not cancel them.
    let fast = tokio::spawn(client(addr, 600, t0));
    let slow = tokio::spawn(client(addr, 3000, t0));
    // Arrives during the drain: the listener is gone, so it is refused.
    let late = tokio::spawn(async move {
        tokio::time::sleep(SHUTDOWN_AT * 2).await;
        let refused = TcpStream::connect(addr).await.expect_err("not accepting");
        println!("{} late client: {refused}", at(t0));
        refused.kind()
    });
    let probe = handle.clone();

    let server = scope.run(tokio_nursery::nursery(|n| async move {
        loop {
            tokio::select! {
                // Phase 1 starts: stop accepting. Requests already running are not touched.
                _ = handle.cancelled() => break,
                conn = listener.accept() => {
                    n.spawn(handle_request(conn?.0, t0));
                }
            }
        }
        drop(listener); // new connections are refused from now on
        let reason = handle.cancel_reason().expect("cancelled");
        println!("{} server: {reason}; stopped accepting, draining", at(t0));
        Ok::<_, std::io::Error>(()) // the nursery still waits for its children
    }));
    // A bound on the whole shutdown, so a regression fails instead of hanging.
    let limit = SHUTDOWN_AT + GRACE + Duration::from_secs(2);
    let outcome = tokio::time::timeout(limit, server)
        .await
        .expect("shut down in time");
    println!("{} grace period over: scope returned {outcome:?}", at(t0));

    // Phase 2 happened: the slow request was still running when the grace period ended.
    assert!(outcome.is_none() && probe.cancelled_caught());
    assert!(
        t0.elapsed() >= SHUTDOWN_AT + GRACE,
        "not before the grace period ended"
    );

    let fast = fast.await.unwrap()?;
    let slow = slow.await.unwrap()?;
    assert_eq!(fast.as_deref(), Some("done 600"), "drained");
    assert_eq!(slow, None, "cut off by the hard cancel");
    assert_eq!(late.await.unwrap(), std::io::ErrorKind::ConnectionRefused);
    Ok(())
}
