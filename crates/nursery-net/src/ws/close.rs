// The WebSocket connection's close: the close handshake, the queued sends of a normal exit,
// and the body's cleanups, side by side. It runs once, after the driver is gone, bounded by the
// supervisor's close timeout; dropping it releases the socket.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::loss::reason::{LossReason, ProtocolError};
use crate::ws::connection::{WsInner, WsIo};
use crate::ws::error::loss_from_ws;

/// Closes the connection and runs the body's cleanups alongside.
pub(crate) async fn close(inner: Arc<WsInner>) {
    inner.link.mark_closed();
    let reason = inner.link.signal.reason();
    tokio::join!(close_stream(&inner), inner.link.cleanups.run(reason));
}

/// Writes what `send` queued (after a normal exit) and performs the close handshake while the
/// connection is good; answers the peer's close; sends the RFC 6455 close code after a
/// protocol error; just releases the socket after a reset, an I/O error or an unanswered
/// heartbeat. After a loss, queued messages stay queued: they are the accounting's unsent.
async fn close_stream(inner: &WsInner) {
    let Some(mut ws) = inner.stream.lock().await.take() else {
        return;
    };
    if inner.link.signal.reason().is_none() {
        flush_queued(inner, ws.as_mut()).await;
    }
    let reason = inner.link.signal.reason();
    if let Some(LossReason::PeerClosed { .. }) = reason {
        // The peer's close frame came first: tungstenite queued the answer (echoing the peer's
        // code) when it read the frame, and refuses to send another close frame. Flushing the
        // answer completes the handshake (or fails at once if the stream ended without one).
        let _ = ws.flush().await;
        return;
    }
    let Some(code) = close_code(reason.as_ref()) else {
        return; // reset, I/O error, half-open: nobody to talk to
    };
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    if matches!(
        code,
        CloseCode::Protocol | CloseCode::Size | CloseCode::Invalid
    ) {
        return; // a misbehaving peer gets the close frame, not our patience
    }
    // Wait for the peer's close frame (or the end of the stream).
    while let Some(Ok(message)) = ws.next().await {
        if message.is_close() {
            return;
        }
    }
}

/// Writes the messages still queued at a normal exit, one at a time, each recorded as in
/// flight before it is handed over. A write error is a loss; the rest stay queued (unsent).
async fn flush_queued(inner: &WsInner, ws: &mut dyn WsIo) {
    let mut outbound = inner.outbound_rx.lock().await;
    while let Ok(out) = outbound.try_recv() {
        inner
            .ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handed(&out.message);
        let written = ws
            .send(out.message)
            .await
            .map_err(|e| inner.link.fail(loss_from_ws(e)));
        let failed = written.is_err();
        let _ = out.done.send(written);
        if failed {
            return;
        }
    }
}

/// The close code for the way the connection ended, if a close frame is to be sent.
fn close_code(reason: Option<&LossReason>) -> Option<CloseCode> {
    match reason {
        None | Some(LossReason::External(_)) => Some(CloseCode::Normal),
        Some(LossReason::IdleTimeout { .. }) => Some(CloseCode::Away),
        Some(LossReason::Protocol(ProtocolError::MessageTooLarge { .. })) => Some(CloseCode::Size),
        Some(LossReason::Protocol(ProtocolError::InvalidUtf8)) => Some(CloseCode::Invalid),
        Some(LossReason::Protocol(_)) => Some(CloseCode::Protocol),
        Some(_) => None,
    }
}
