//! A quick local measurement of the WebSocket echo path: one supervised client sends small text
//! messages to a loopback echo server and reads each echo before the next send (ping-pong), then
//! keeps up to 32 in the air (pipelined). Prints messages per second for both.
//!
//! ```text
//! cargo run --release -p nursery-net --example ws_echo_rate [messages]
//! ```

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use nursery_net::{supervise, ConnectionLost, WsConfig, WsConnection};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(socket).await?;
                while let Some(message) = ws.next().await {
                    let message = message?;
                    if message.is_text() {
                        ws.send(message).await?;
                    }
                }
                Ok::<_, tokio_tungstenite::tungstenite::Error>(())
            });
        }
    });
    for window in [1u32, 32] {
        let conn = WsConnection::connect(format!("ws://{addr}/"), WsConfig::new()).await?;
        let started = Instant::now();
        let echoed: Result<u32, ConnectionLost> = supervise(conn, |conn| async move {
            let (mut sent, mut got) = (0u32, 0u32);
            while got < n {
                while sent < n && sent - got < window {
                    conn.send_text("0123456789abcdef").await?;
                    sent += 1;
                }
                conn.recv().await?;
                got += 1;
            }
            Ok(got)
        })
        .await;
        let echoed = echoed?;
        let rate = f64::from(echoed) / started.elapsed().as_secs_f64();
        println!("window {window:>2}: {echoed} echoes, {rate:.0} messages/s");
    }
    Ok(())
}
