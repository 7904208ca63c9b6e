//! Happy eyeballs with `race_staggered`: connect to whichever of several addresses answers first.
//!
//! Three loopback "replicas" are tried: the first refuses the connection at once (nothing listens
//! there), the second accepts but is slow to greet, the third greets quickly. Attempt 1 starts at
//! once; each next attempt starts when the previous one fails or 150 ms after it started. The
//! first greeting wins and the other attempts are cancelled (their sockets are dropped).
//!
//! ```text
//! cargo run -p tokio-nursery --example race
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A replica that greets each connection after `delay`.
async fn replica(delay: Duration) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = socket.write_all(b"hello").await;
            });
        }
    });
    Ok(addr)
}

/// One attempt: connect and wait for the greeting.
async fn attempt(index: usize, addr: SocketAddr, start: Instant) -> std::io::Result<usize> {
    println!(
        "{:>6.0?}  attempt {index}: connecting to {addr}",
        start.elapsed()
    );
    let mut stream = TcpStream::connect(addr).await?;
    let mut greeting = [0u8; 5];
    stream.read_exact(&mut greeting).await?;
    println!("{:>6.0?}  attempt {index}: greeted", start.elapsed());
    Ok(index)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // An address nobody listens on: bind, note the port, close the listener.
    let refused = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let slow = replica(Duration::from_secs(5)).await?;
    let fast = replica(Duration::from_millis(20)).await?;

    let start = Instant::now();
    let addrs = [refused, slow, fast];
    let winner = tokio_nursery::race_staggered(
        Duration::from_millis(150),
        addrs
            .iter()
            .enumerate()
            .map(|(i, &addr)| attempt(i + 1, addr, start)),
    )
    .await;

    match &winner {
        Ok(index) => println!("{:>6.0?}  winner: attempt {index}", start.elapsed()),
        Err(err) => println!("no replica answered: {err}"),
    }
    // Attempt 1 fails at once, so attempt 2 starts right away; it hangs, so attempt 3 starts
    // 150 ms later and wins about 20 ms after that: well before the slow replica's 5 s.
    assert!(matches!(winner, Ok(3)));
    assert!(start.elapsed() < Duration::from_secs(2));
    Ok(())
}
