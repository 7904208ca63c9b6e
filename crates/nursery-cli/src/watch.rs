//! `nursery watch`: one real endpoint, supervised with reconnects, its events and messages
//! printed as they happen.

use std::sync::Arc;
use std::time::Duration;

use nursery_net::tungstenite::{self, Message};
use nursery_net::{
    Backoff, ConnectionLost, Event, Heartbeat, Reconnect, Supervisor, WsConfig, WsConnection,
};
use tokio::time::Instant;
use tokio_nursery::CancelScope;

use crate::cli::WatchOptions;

/// `nursery watch`'s error type.
#[derive(Debug, thiserror::Error)]
enum WatchError {
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionLost),
    #[error("connect failed: {0}")]
    Connect(#[source] tungstenite::Error),
}

/// Supervises `options.url` with reconnects, printing events and messages, until Ctrl-C (or a
/// limit).
pub(crate) async fn run(options: WatchOptions) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let stamp = move || format!("[{:>9.3}s]", started.elapsed().as_secs_f64());
    let heartbeat = Heartbeat::new(options.heartbeat_interval, options.heartbeat_timeout);
    let config = WsConfig::new().heartbeat(heartbeat);
    let reconnect = {
        let reconnect = Reconnect::new()
            .backoff(Backoff::new(
                Duration::from_millis(200),
                Duration::from_secs(30),
            ))
            .supervisor(
                Supervisor::new()
                    .close_timeout(options.close_timeout)
                    .name("watch"),
            )
            .on_event(move |event: &Event| println!("{} {event}", stamp()));
        match options.max_attempts {
            Some(max) => reconnect.max_attempts(max),
            None => reconnect,
        }
    };
    let url = Arc::<str>::from(options.url.as_str());
    let max_print = options.max_print;
    let session = CancelScope::new();
    let stop = session.handle();
    let outcome = tokio_nursery::nursery(|n| async move {
        n.spawn_named("ctrl-c", async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                println!("{} Ctrl-C: closing", stamp());
                stop.cancel_with("Ctrl-C");
            }
            Ok(())
        });
        let out = session
            .run(reconnect.run(
                || {
                    let (url, config) = (url.clone(), config.clone());
                    async move {
                        WsConnection::connect(&*url, config.clone())
                            .await
                            .map_err(WatchError::Connect)
                    }
                },
                |conn| async move {
                    loop {
                        let message = conn.recv().await?;
                        println!("{} {}", stamp(), render(&message, max_print));
                    }
                },
            ))
            .await;
        n.cancel(); // stop waiting for Ctrl-C
        match out {
            None => Ok("stopped by Ctrl-C; the connection was closed"),
            Some(Ok(())) => Ok("the endpoint finished"),
            Some(Err(e)) => Err(e),
        }
    })
    .await;
    match outcome {
        Ok(done) => {
            println!("{} {done}", stamp());
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn render(message: &Message, max: usize) -> String {
    let (kind, bytes) = match message {
        Message::Text(text) => ("text", text.as_bytes()),
        Message::Binary(data) => ("binary", &data[..]),
        _ => ("other", &[][..]),
    };
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    let more = if bytes.len() > max { "…" } else { "" };
    format!("{kind} ({} bytes): {shown}{more}", bytes.len())
}
