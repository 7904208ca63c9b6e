//! A supervised run cancelled or dropped right after the connect still closes the connection
//! (DESIGN Rule 3 and §3.4: the cleanup runs on every exit path): cancelled from the
//! `Connected` event, first polled inside a cancelled scope, or dropped before its first poll.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use nursery_net::tungstenite::Message;
use nursery_net::{
    supervise, Connection, Event, LossReason, LossSignal, Reconnect, Supervisor, WsConfig,
    WsConnection,
};
use support::{listener, ws_url, AppError, Events};
use tokio::sync::mpsc;
use tokio_nursery::CancelScope;

/// A connection whose close reports itself on a channel.
#[derive(Clone, Debug)]
struct Probe {
    signal: LossSignal,
    closed: mpsc::UnboundedSender<()>,
}

impl Probe {
    fn new() -> (Self, mpsc::UnboundedReceiver<()>) {
        let (closed, rx) = mpsc::unbounded_channel();
        let probe = Probe {
            signal: LossSignal::new(),
            closed,
        };
        (probe, rx)
    }
}

impl Connection for Probe {
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        std::future::pending()
    }

    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        let closed = self.closed.clone();
        async move {
            let _ = closed.send(());
        }
    }

    fn loss_signal(&self) -> &LossSignal {
        &self.signal
    }
}

fn closes(rx: &mut mpsc::UnboundedReceiver<()>) -> usize {
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    n
}

/// Failed before the fix: the `Connected` callback cancels the scope, the supervising nursery
/// is then first polled inside a cancelled scope, its body is dropped unpolled, and the close
/// the body would have registered never ran (0 closes).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn reconnect_cancelled_at_connected_closes_the_connection() {
    let (probe, mut closed) = Probe::new();
    let events = Events::new();
    let record = events.observer();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let body_ran = Arc::new(AtomicBool::new(false));
    let ran = body_ran.clone();
    let reconnect = Reconnect::new().on_event(move |e| {
        record(e);
        if matches!(e, Event::Connected { .. }) {
            handle.cancel();
        }
    });
    let out = scope
        .run(reconnect.run(
            || {
                let probe = probe.clone();
                async move { Ok::<_, AppError>(probe) }
            },
            |_conn| {
                ran.store(true, Ordering::SeqCst);
                std::future::pending::<Result<(), AppError>>()
            },
        ))
        .await;
    assert!(out.is_none(), "the scope absorbed the cancellation");
    assert_eq!(closes(&mut closed), 1, "the connection was closed once");
    assert!(!body_ran.load(Ordering::SeqCst), "the body never started");
    assert_eq!(
        events.names(),
        ["connecting 1", "connected 1", "closed 1"],
        "the close is reported"
    );
}

/// Failed before the fix: a `Supervisor::run` future under a scope cancelled before its first
/// poll is dropped unpolled (Rule 3), and the connection went with it unclosed.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn supervisor_run_in_a_scope_cancelled_before_it_starts_closes() {
    let (probe, mut closed) = Probe::new();
    let events = Events::new();
    let scope = CancelScope::new();
    scope.handle().cancel();
    let supervisor = Supervisor::new().on_event(events.observer());
    let out = scope
        .run(supervisor.run(probe, |_conn| async {
            panic!("the body of a run cancelled before it started must not run");
            #[allow(unreachable_code)]
            Ok::<(), AppError>(())
        }))
        .await;
    assert!(out.is_none());
    assert_eq!(closes(&mut closed), 1, "closed before the scope returned");
    assert_eq!(events.names(), ["closed 1"]);
}

/// Failed before the fix: `supervise(conn, body)` dropped without being polled (a `select!`
/// branch never reached, a task aborted before it ran) left the connection unclosed. The close
/// now runs on a detached task.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn supervise_dropped_unpolled_closes_on_a_detached_task() {
    let (probe, mut closed) = Probe::new();
    let run = supervise(probe, |_conn| async { Ok::<(), AppError>(()) });
    drop(run);
    let close = tokio::time::timeout(Duration::from_secs(60), closed.recv()).await;
    assert_eq!(close.expect("the close ran"), Some(()));
    assert_eq!(closes(&mut closed), 0, "exactly once");
}

/// The same against a real WebSocket server: cancelled at `Connected`, the client still sends
/// its close frame (1000), which the server receives. Failed before the fix: the server saw the
/// stream end without a close frame. Real clock: the hang guard only bounds a failure.
#[tokio::test(flavor = "current_thread")]
async fn a_websocket_cancelled_at_connected_sends_its_close_frame() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = support::accept_ws(&listener).await;
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => frame.map(|f| u16::from(f.code)),
            other => panic!("expected a close frame, got {other:?}"),
        }
    });
    let scope = CancelScope::new();
    let handle = scope.handle();
    let reconnect = Reconnect::new().on_event(move |e| {
        if matches!(e, Event::Connected { .. }) {
            handle.cancel();
        }
    });
    let url = ws_url(addr);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        scope.run(reconnect.run(
            || {
                let url = url.clone();
                async move {
                    WsConnection::connect(url, WsConfig::new())
                        .await
                        .map_err(|e| AppError::Connect(e.to_string()))
                }
            },
            |_conn| std::future::pending::<Result<(), AppError>>(),
        )),
    )
    .await
    .expect("hang guard");
    assert!(out.is_none());
    let code = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("hang guard: server")
        .expect("server task");
    assert_eq!(code, Some(1000));
}
