//! `supervise` on a connection of the caller's own: outcomes, the external trigger from a
//! foreign OS thread, the bounded close, cleanup exactly once.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use nursery_net::{
    supervise, Connection, ConnectionLost, Event, LossReason, LossSignal, Supervisor,
};
use support::{AppError, Counted, Events};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A fake service connection: it is lost when `drop_link` is notified, or when its signal
/// fires; its close takes `close_takes`.
#[derive(Clone, Default)]
struct Service {
    signal: LossSignal,
    drop_link: Arc<Notify>,
    close_takes: Option<Duration>,
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Connection for Service {
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        let drop_link = self.drop_link.clone();
        async move {
            drop_link.notified().await;
            LossReason::eof()
        }
    }

    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        let takes = self.close_takes;
        let log = self.log.clone();
        async move {
            log.lock().unwrap().push("close");
            if let Some(takes) = takes {
                tokio::time::sleep(takes).await;
            }
        }
    }

    fn loss_signal(&self) -> &LossSignal {
        &self.signal
    }
}

/// Pushes `name` to the log when dropped.
struct OnDrop(Arc<Mutex<Vec<&'static str>>>, &'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn body_value_is_returned_and_the_connection_closed_once() {
    let conn = Counted::new(Service::default());
    let events = Events::new();
    let supervisor = Supervisor::new().on_event(events.observer());
    let out: Result<u32, AppError> = supervisor.run(conn.clone(), |_c| async { Ok(42) }).await;
    assert_eq!(out, Ok(42));
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
    assert!(!conn.loss_signal().is_fired());
    assert_eq!(events.names(), ["closed 1"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_body_error_is_not_a_loss() {
    let conn = Counted::new(Service::default());
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async {
        Err(AppError::Body("bad input"))
    })
    .await;
    assert_eq!(out, Err(AppError::Body("bad input")));
    assert_eq!(conn.closes(), 1);
    assert!(!conn.loss_signal().is_fired());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_detected_loss_force_exits_the_body_before_the_close() {
    let service = Service::default();
    let log = service.log.clone();
    let drop_link = service.drop_link.clone();
    let conn = Counted::new(service);
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| {
        let guard = OnDrop(log.clone(), "body dropped");
        async move {
            let _guard = guard;
            drop_link.notify_one(); // the link goes down while the body waits
            std::future::pending().await
        }
    })
    .await;
    assert!(out.unwrap_err().reason().is_peer_closed());
    assert_eq!(*log.lock().unwrap(), ["body dropped", "close"]);
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
}

/// The seed's `connection_state_callback`: a plain callback on a driver's OS thread fires the
/// signal; the body, waiting forever, is force-exited with the typed reason.
#[tokio::test(flavor = "current_thread")]
async fn external_trigger_from_a_foreign_os_thread() {
    let conn = Counted::new(Service::default());
    let signal = conn.loss_signal().clone();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let driver = std::thread::spawn(move || {
        ready_rx.recv().expect("the body is running");
        // The driver's state callback: synchronous, no runtime on this thread.
        let on_state = |connected: bool| {
            if !connected {
                assert!(signal.trigger("driver: link down"));
            }
        };
        on_state(false);
    });
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async move {
        ready_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    driver.join().unwrap();
    let err = out.unwrap_err();
    assert_eq!(err.reason(), &LossReason::external("driver: link down"));
    assert_eq!(conn.closes(), 1);
    // A hang detector, not a timing assertion.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_signal_fired_before_supervision_starts_is_seen_at_once() {
    let conn = Counted::new(Service::default());
    conn.loss_signal().trigger("lost before the body started");
    let polled = Arc::new(AtomicUsize::new(0));
    let p = polled.clone();
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async move {
        p.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    })
    .await;
    assert!(out.unwrap_err().reason().is_external());
    assert_eq!(conn.closes(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_close_is_bounded_by_the_close_timeout() {
    let service = Service {
        close_takes: Some(Duration::from_secs(3600)),
        ..Service::default()
    };
    let conn = Counted::new(service);
    let events = Events::new();
    let supervisor = Supervisor::new()
        .close_timeout(Duration::from_millis(300))
        .on_event(events.observer());
    let started = Instant::now();
    let out: Result<(), AppError> = supervisor
        .run(conn.clone(), |c| async move {
            c.conn.signal.trigger("gone");
            std::future::pending().await
        })
        .await;
    assert!(out.unwrap_err().reason().is_external());
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!((conn.closes(), conn.finished()), (1, 0));
    match &events.all()[..] {
        [Event::Closed {
            took, timed_out, ..
        }, Event::Lost { reason, .. }] => {
            assert!(timed_out);
            assert_eq!(*took, Duration::from_millis(300));
            assert!(reason.is_external());
        }
        other => panic!("unexpected events {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_first_reason_wins_and_reaches_the_caller() {
    let service = Service::default();
    let drop_link = service.drop_link.clone();
    let conn = Counted::new(service);
    let out: Result<(), ConnectionLost> = supervise(conn.clone(), |c| async move {
        c.loss_signal().trigger("first");
        drop_link.notify_one();
        c.loss_signal().trigger("second");
        std::future::pending().await
    })
    .await;
    assert_eq!(out.unwrap_err().reason, LossReason::external("first"));
    assert_eq!(conn.closes(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelling_from_outside_still_closes_once() {
    let conn = Counted::new(Service::default());
    let scope = tokio_nursery::CancelScope::new().with_timeout(Duration::from_secs(1));
    let out = scope
        .run(supervise(conn.clone(), |_c| async {
            std::future::pending::<Result<(), AppError>>().await
        }))
        .await;
    assert!(out.is_none());
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
    assert!(!conn.loss_signal().is_fired());
}
