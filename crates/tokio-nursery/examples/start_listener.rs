//! `start` (trio's `nursery.start`): launch a server, wait until it is ready, get its address.
//!
//! The server child binds a TCP listener on `127.0.0.1:0` and passes the port the OS picked
//! back through its `Started` signal; only then does `start` return, so the body can connect
//! without racing the bind. The server then goes on as an ordinary child, serving each
//! connection (echo one line) as a child of its own nursery. The body talks to it with two
//! clients, leaves a third connected, and stops the server with `n.cancel()`: the accept loop
//! and the idle connection's handler are dropped, and the nursery ends cleanly.
//!
//! ```text
//! cargo run -p tokio-nursery --example start_listener
//! ```

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Says how a connection handler ended: returned, or dropped by cancellation mid-await.
struct Farewell {
    peer: SocketAddr,
    replied: bool,
}

impl Drop for Farewell {
    fn drop(&mut self) {
        let how = if self.replied { "replied" } else { "cancelled" };
        println!("server: handler for {} ended: {how}", self.peer);
    }
}

/// Echoes one line back, then closes the connection.
async fn echo_one_line(stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    let replied = false;
    let mut farewell = Farewell { peer, replied };
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    // A client that never sends anything parks the handler here until it is cancelled.
    BufReader::new(reader).read_line(&mut line).await?;
    writer.write_all(line.as_bytes()).await?;
    farewell.replied = true;
    Ok(())
}

/// Sends one line, returns the echo.
async fn ask(addr: SocketAddr, text: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("{text}\n").as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await?;
    Ok(reply.trim_end().to_owned())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // The server reports each accepted peer, so the body can tell when a connection is live.
    let (accepted_tx, mut accepted_rx) = mpsc::unbounded_channel();

    let (addr, idle_client) = tokio_nursery::nursery(|n| async move {
        let addr = n
            .start_named("server", |task_status| async move {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                // Ready: `start` returns this address; from now on we are a child of `n`.
                task_status.started(listener.local_addr()?);
                // Connections are children of the server's own nursery, so cancelling the
                // server reaches every handler it started.
                tokio_nursery::nursery(|conns| async move {
                    loop {
                        let (stream, peer) = listener.accept().await?;
                        println!("server: accepted {peer}");
                        let _ = accepted_tx.send(peer);
                        conns.spawn(echo_one_line(stream, peer));
                    }
                })
                .await
            })
            .await
            // A bind error would come back here as `StartError::Failed(io_error)`.
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        println!("body: server is listening on {addr}");

        for text in ["hello", "structured concurrency"] {
            let reply = ask(addr, text).await?;
            println!("body: sent {text:?}, got back {reply:?}");
            assert_eq!(reply, text);
        }

        // A client that connects and says nothing: its handler is still running at cancel.
        let idle = TcpStream::connect(addr).await?;
        let idle_addr = idle.local_addr()?;
        let mut accepted = 0;
        while let Some(peer) = accepted_rx.recv().await {
            accepted += 1;
            if peer == idle_addr {
                break;
            }
        }
        assert_eq!(accepted, 3, "two clients served, one idle");

        println!("body: stopping the server");
        n.cancel(); // cancels the children (the server and its handlers), not the body
        Ok((addr, idle))
    })
    .await?;
    println!("main: nursery finished");

    // The idle client's handler was dropped, which closed its socket: the client sees EOF.
    let mut rest = Vec::new();
    let n = BufReader::new(idle_client).read_to_end(&mut rest).await?;
    assert_eq!(n, 0, "closed without a reply");
    println!("main: idle client saw EOF");
    // The listener was dropped with the server child: nothing accepts on that port any more.
    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    println!("main: connecting to {addr} again: {refused}; everything stopped cleanly");
    Ok(())
}
