// One poll of the WebSocket stream for the driver: the write side (one queued message at a
// time, flushed before the next is taken) and the read side, in the same poll. Reading goes on
// while a write waits for the kernel, so a close frame or a protocol error is seen while the
// peer is not taking our bytes; writing goes on while the read-ahead is full.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::error::ConnectionLost;
use crate::ws::connection::{Outgoing, WsInner, WsIo};

/// Writes completed in one poll before the read side gets its turn, so a body that sends
/// without pause cannot starve the reads.
const WRITE_BATCH: usize = 16;

/// What is being written.
pub(crate) enum Writing {
    /// A message of the body's; its `send` learns the outcome.
    Message(oneshot::Sender<Result<(), ConnectionLost>>),
    /// A heartbeat ping.
    Ping,
    /// A previous connection's unsent message: nobody waits for it.
    Replayed,
}

/// The driver's write-side state.
pub(crate) struct Writer {
    pub(crate) writing: Option<Writing>,
    pub(crate) ping: Option<Message>,
}

/// What one poll produced.
pub(crate) enum Io {
    /// A frame or an end from the read side.
    Read(Option<Result<Message, WsError>>),
    /// The write side failed: the connection is lost.
    WriteFailed(WsError),
    /// Writes completed and nothing was read: the driver re-arms its timers.
    Wrote,
}

/// Polls writes (up to [`WRITE_BATCH`]), then the read side if `can_read`.
pub(crate) fn poll_io(
    cx: &mut Context<'_>,
    ws: &mut dyn WsIo,
    can_read: bool,
    writer: &mut Writer,
    outbound: &mut mpsc::Receiver<Box<Outgoing>>,
    inner: &WsInner,
) -> Poll<Io> {
    let mut wrote = false;
    for _ in 0..WRITE_BATCH {
        if writer.writing.is_some() {
            match Pin::new(&mut *ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    if let Some(Writing::Message(done)) = writer.writing.take() {
                        let _ = done.send(Ok(()));
                    }
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Io::WriteFailed(e)),
                Poll::Pending => break,
            }
        } else if let Some(ping) = writer.ping.take() {
            if let Err(e) = Pin::new(&mut *ws).start_send(ping) {
                return Poll::Ready(Io::WriteFailed(e));
            }
            writer.writing = Some(Writing::Ping);
        } else if let Some(message) = replayed(inner) {
            if let Err(e) = Pin::new(&mut *ws).start_send(message) {
                return Poll::Ready(Io::WriteFailed(e));
            }
            writer.writing = Some(Writing::Replayed);
        } else {
            let Poll::Ready(Some(out)) = outbound.poll_recv(cx) else {
                break;
            };
            let Outgoing { message, done } = *out;
            inner.link.touch();
            // Recorded before the first byte can move: from here on it is in flight.
            inner
                .ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .handed(&message);
            if let Err(e) = Pin::new(&mut *ws).start_send(message) {
                return Poll::Ready(Io::WriteFailed(e));
            }
            writer.writing = Some(Writing::Message(done));
        }
    }
    if can_read {
        if let Poll::Ready(item) = Pin::new(&mut *ws).poll_next(cx) {
            return Poll::Ready(Io::Read(item));
        }
    }
    if wrote {
        Poll::Ready(Io::Wrote)
    } else {
        Poll::Pending
    }
}

/// The next replayed message, recorded as handed over; one atomic load when there is none.
fn replayed(inner: &WsInner) -> Option<Message> {
    if !inner.has_replay.load(Ordering::Acquire) {
        return None;
    }
    let mut ledger = inner.ledger.lock().unwrap_or_else(|e| e.into_inner());
    let message = ledger.replay.pop_front();
    match &message {
        Some(message) => ledger.handed(message),
        None => inner.has_replay.store(false, Ordering::Release),
    }
    message
}
