// The WebSocket connection's watcher (`drive`).
//
// The driver holds the stream lock for its whole life and is the only writer while it runs:
// `send` queues `Outgoing` messages, the driver writes them one at a time and acknowledges each
// once it is flushed to the kernel. It keeps reading while a write waits and while the body is
// busy, up to the read-ahead bound of `crate::loss::link`: control frames, the peer's close
// and protocol errors are seen when their bytes arrive. When the supervisor drops the driver
// (the body finished, or the loss was detected) the lock is released, and the close
// (`crate::ws::close`) takes the stream out of the connection.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::loss::liveness::{DeadlineTimer, Liveness, Tick};
use crate::loss::reason::LossReason;
use crate::ws::connection::{WsInner, WsIo};
use crate::ws::error::{loss_from_ws, stream_ended};
use crate::ws::io::{poll_io, Io, Writer};

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
    let mut writer = Writer {
        writing: None,
        ping: None,
    };
    let mut slot = None;
    let mut pings = 0u64;
    let mut timer = DeadlineTimer::new();
    loop {
        if slot.is_none() {
            // The fast path: room is usually there, and taking it needs no wakeup.
            slot = link.try_room();
        }
        let can_read = slot.is_some();
        liveness.set_reading(can_read);
        timer.arm(liveness.next_deadline(link.traffic()));
        tokio::select! {
            permit = link.room(), if !can_read => {
                let Some(permit) = permit else { return LossReason::LocallyClosed };
                slot = Some(permit);
            }
            io = std::future::poll_fn(|cx| {
                poll_io(cx, ws.as_mut(), can_read, &mut writer, &mut outbound, inner)
            }) => match io {
                Io::Wrote => {}
                Io::WriteFailed(e) => {
                    drain_readable(ws.as_mut(), inner);
                    return loss_from_ws(e);
                }
                Io::Read(None) => return stream_ended(),
                Io::Read(Some(Err(e))) => return loss_from_ws(e),
                Io::Read(Some(Ok(message))) => {
                    liveness.inbound();
                    match message {
                        Message::Text(_) | Message::Binary(_) => {
                            if let Some(permit) = slot.take() {
                                link.deliver(permit, message);
                            }
                        }
                        Message::Close(frame) => return peer_closed(frame),
                        // tungstenite queues the pong itself; it goes out with the next flush.
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    }
                }
            },
            () = timer.fired() => match liveness.on_deadline(link.traffic()) {
                Tick::Nothing => {}
                Tick::Lost(reason) => return reason,
                Tick::Ping => {
                    pings += 1;
                    writer.ping = Some(Message::Ping(pings.to_be_bytes().to_vec().into()));
                }
            },
        }
    }
}

/// After the write side failed (typically: the peer reset the connection), takes what the read
/// side can still give without waiting: frames in the stream's buffer and bytes the kernel
/// holds, which the peer sent before its reset. They are handed back as unread instead of
/// being dropped with the socket. Bounded by the read-ahead's byte bound, in case the peer is
/// in fact still sending.
fn drain_readable(ws: &mut dyn WsIo, inner: &WsInner) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut budget = inner.config.get_inbound_bytes();
    while budget > 0 {
        match Pin::new(&mut *ws).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(message @ (Message::Text(_) | Message::Binary(_))))) => {
                budget = budget.saturating_sub(message.len().max(1));
                inner.link.deliver_after_loss(message);
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(_)) | None) | Poll::Pending => break,
        }
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
