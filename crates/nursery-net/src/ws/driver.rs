// The WebSocket connection's watcher (`drive`) and close.
//
// The driver holds the stream lock for its whole life and is the only writer while it runs:
// `send` queues `Outgoing` messages, the driver writes them and acknowledges. When the
// supervisor drops the driver (the body finished, or the loss was detected) the lock is
// released, and the close takes the stream out of the connection: once it ends — or is dropped
// at the close timeout — the socket is closed.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::loss::liveness::{sleep_until, Liveness, Tick};
use crate::loss::reason::LossReason;
use crate::ws::connection::{WsInner, WsIo};
use crate::ws::error::loss_from_ws;

/// Runs the connection until it is lost; returns why.
pub(crate) async fn drive(inner: Arc<WsInner>) -> LossReason {
    let reason = run(&inner).await;
    // Record it before anything else can observe the connection as gone: the body's pending
    // `send`/`recv` then report the same reason.
    inner.link.signal.fire(reason.clone());
    reason
}

async fn run(inner: &WsInner) -> LossReason {
    let link = &inner.link;
    let mut stream = inner.stream.lock().await;
    let Some(ws) = stream.as_mut() else {
        return LossReason::LocallyClosed;
    };
    let mut outbound = inner.outbound_rx.lock().await;
    let mut liveness = Liveness::new(inner.config.heartbeat, inner.config.idle_timeout);
    let mut pending: Option<Message> = None;
    let mut pings = 0u64;
    loop {
        let deadline = liveness.next_deadline(link.traffic());
        tokio::select! {
            permit = link.reserve(), if pending.is_some() => {
                if let (Some(permit), Some(message)) = (permit, pending.take()) {
                    permit.send(Box::new(message));
                }
                liveness.resume();
            }
            item = ws.next(), if pending.is_none() => {
                let message = match item {
                    None => return LossReason::eof(),
                    Some(Err(e)) => return loss_from_ws(e),
                    Some(Ok(message)) => message,
                };
                liveness.inbound();
                match message {
                    Message::Text(_) | Message::Binary(_) => {
                        if let Err(message) = link.offer(message) {
                            pending = Some(message);
                            liveness.pause();
                        }
                    }
                    Message::Close(frame) => return peer_closed(frame),
                    // tungstenite queues the pong itself; it goes out with the next read.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            Some(out) = outbound.recv() => {
                link.touch();
                let written = write(ws.as_mut(), out.message, &liveness, inner).await;
                match written {
                    Ok(()) => {
                        let _ = out.done.send(Ok(()));
                    }
                    Err(reason) => {
                        let _ = out.done.send(Err(link.fail(reason.clone())));
                        return reason;
                    }
                }
            }
            () = sleep_until(deadline) => match liveness.on_deadline(link.traffic()) {
                Tick::Nothing => {}
                Tick::Lost(reason) => return reason,
                Tick::Ping => {
                    pings += 1;
                    let ping = Message::Ping(pings.to_be_bytes().to_vec().into());
                    if let Err(reason) = write(ws.as_mut(), ping, &liveness, inner).await {
                        return reason;
                    }
                }
            },
        }
    }
}

/// Writes one message; a peer that does not take it before the heartbeat deadline is lost.
async fn write(
    ws: &mut dyn WsIo,
    message: Message,
    liveness: &Liveness,
    inner: &WsInner,
) -> Result<(), LossReason> {
    tokio::select! {
        written = ws.send(message) => written.map_err(loss_from_ws),
        () = sleep_until(liveness.dead_at()) => Err(LossReason::HeartbeatTimeout {
            timeout: inner.config.heartbeat.map(|hb| hb.timeout()).unwrap_or_default(),
        }),
    }
}

fn peer_closed(frame: Option<CloseFrame>) -> LossReason {
    match frame {
        None => LossReason::PeerClosed {
            code: None,
            reason: None,
        },
        Some(frame) => LossReason::PeerClosed {
            code: Some(u16::from(frame.code)),
            reason: Some(frame.reason.to_string()).filter(|r| !r.is_empty()),
        },
    }
}

/// Closes the connection: writes what `send` queued and performs the close handshake while the
/// connection is good; answers the peer's close; just releases the socket after a reset, an
/// I/O error or an unanswered heartbeat.
pub(crate) async fn close(inner: Arc<WsInner>) {
    inner.link.mark_closed();
    let Some(mut ws) = inner.stream.lock().await.take() else {
        return;
    };
    let lost = inner.link.signal.reason();
    let mut outbound = inner.outbound_rx.lock().await;
    while let Ok(out) = outbound.try_recv() {
        let written = match lost {
            None => ws
                .send(out.message)
                .await
                .map_err(|e| inner.link.fail(loss_from_ws(e))),
            Some(_) => Err(inner.link.lost()),
        };
        let _ = out.done.send(written);
    }
    drop(outbound);
    let reason = inner.link.signal.reason();
    if let Some(LossReason::PeerClosed { .. }) = reason {
        // The peer's close frame came first: tungstenite queued the answer (echoing the peer's
        // code) when it read the frame, and refuses to send another close frame. Flushing the
        // answer completes the handshake (or fails at once if the stream ended without one).
        let _ = ws.flush().await;
        return;
    }
    let code = match &reason {
        None | Some(LossReason::External(_)) => CloseCode::Normal,
        Some(LossReason::IdleTimeout { .. }) => CloseCode::Away,
        Some(LossReason::Protocol(crate::loss::reason::ProtocolError::MessageTooLarge {
            ..
        })) => CloseCode::Size,
        Some(LossReason::Protocol(_)) => CloseCode::Protocol,
        // Reset, I/O error, half-open: nobody to talk to.
        Some(_) => return,
    };
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    if matches!(code, CloseCode::Protocol | CloseCode::Size) {
        return; // a misbehaving peer gets the close frame, not our patience
    }
    // Wait for the peer's close frame (or the end of the stream).
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close() {
            return;
        }
    }
}
