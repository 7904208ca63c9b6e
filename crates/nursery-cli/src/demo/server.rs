//! The demo's embedded WebSocket server: it echoes, and obeys the fault injector's commands
//! through a registry of live connections. It knows nothing of the clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nursery_net::tungstenite::protocol::frame::coding::CloseCode;
use nursery_net::tungstenite::protocol::CloseFrame;
use nursery_net::tungstenite::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;

use super::error::DemoError;

/// How long a silent (half-open) server connection holds its socket before dropping it.
const HOLD: Duration = Duration::from_secs(5);

/// What the fault injector tells one server connection to do.
#[derive(Debug)]
pub(super) enum Command {
    /// Send a close frame and hang up.
    Close,
    /// Reset the TCP connection.
    Reset,
    /// Stop reading (no pongs, no echoes, no close answer); acknowledge once stopped.
    HalfOpen(Option<oneshot::Sender<()>>),
}

/// A channel to one server connection.
pub(super) type Control = mpsc::UnboundedSender<Command>;

/// The server connections currently registered, by client id.
#[derive(Debug, Default)]
pub(super) struct Registry {
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    generations: u64,
    by_id: HashMap<u32, (u64, Control)>,
}

impl Registry {
    fn insert(&self, id: u32, control: mpsc::UnboundedSender<Command>) -> u64 {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.generations += 1;
        let generation = slots.generations;
        slots.by_id.insert(id, (generation, control));
        generation
    }

    fn remove(&self, id: u32, generation: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.by_id.get(&id).is_some_and(|(g, _)| *g == generation) {
            slots.by_id.remove(&id);
        }
    }

    /// The connected clients and their control channels, sorted by id (for a reproducible
    /// choice with a seeded generator).
    pub(super) fn connected(&self) -> Vec<(u32, Control)> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut connected: Vec<_> = slots
            .by_id
            .iter()
            .map(|(id, (_, control))| (*id, control.clone()))
            .collect();
        connected.sort_by_key(|(id, _)| *id);
        connected
    }
}

/// Accepts WebSocket clients until cancelled; each connection is a child of the server's
/// nursery, so cancelling the server ends them all.
pub(super) async fn serve(listener: TcpListener, registry: Arc<Registry>) -> Result<(), DemoError> {
    tokio_nursery::NurseryBuilder::new()
        .name("demo server")
        .run(|n| async move {
            loop {
                let (socket, _) = listener.accept().await.map_err(DemoError::Server)?;
                let registry = registry.clone();
                n.spawn(async move {
                    connection(socket, registry).await;
                    Ok(())
                });
            }
        })
        .await
}

/// One server connection: echoes text and binary messages; obeys the fault injector.
async fn connection(socket: TcpStream, registry: Arc<Registry>) {
    let _ = socket.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
        return;
    };
    // The client introduces itself: `hello <id>`.
    let id = match ws.next().await {
        Some(Ok(Message::Text(text))) => text.strip_prefix("hello ").and_then(|id| id.parse().ok()),
        _ => None,
    };
    let Some(id) = id else { return };
    let (control_tx, mut control) = mpsc::unbounded_channel();
    let generation = registry.insert(id, control_tx);
    let command = echo(&mut ws, &mut control).await;
    registry.remove(id, generation);
    match command {
        Some(Command::Close) => {
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "fault injected: server closing".into(),
            };
            if ws.close(Some(frame)).await.is_ok() {
                // Let the client answer; a client that does not is cut off.
                let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            }
        }
        Some(Command::Reset) => {
            let _ = ws.get_ref().set_zero_linger();
        }
        Some(Command::HalfOpen(ack)) => {
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
            tokio::time::sleep(HOLD).await;
        }
        None => {}
    }
}

/// Echoes until the client goes away (`None`) or a command arrives.
async fn echo(
    ws: &mut WebSocketStream<TcpStream>,
    control: &mut mpsc::UnboundedReceiver<Command>,
) -> Option<Command> {
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if ws.send(message).await.is_err() {
                        return None;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            },
            command = control.recv() => return command,
        }
    }
}
