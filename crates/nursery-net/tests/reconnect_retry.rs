//! `Reconnect` cannot make things worse: permanent errors give up at once, a user predicate
//! overrides the classification, the backoff resets only after a connection stayed up for
//! `stable_after`, `Retry-After` sets a floor on the next wait, and a setup step runs on every
//! connection before the body. Paused clock; connections of the test's own (`Fake`).

mod support;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nursery_net::{
    Backoff, ConnectError, ConnectStage, Event, GiveUp, Reconnect, Retry, DEFAULT_STABLE_AFTER,
};
use support::{AppError, Counted, Events, Fake};
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(10)).jitter(0.0)
}

fn delays(events: &Events) -> Vec<Duration> {
    events
        .all()
        .iter()
        .filter_map(|e| match e {
            Event::Retrying { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect()
}

fn gave_up(events: &Events) -> Option<(u32, GiveUp)> {
    events.all().iter().find_map(|e| match e {
        Event::GaveUp { attempts, why, .. } => Some((*attempts, *why)),
        _ => None,
    })
}

fn refused() -> ConnectError {
    ConnectError::Io {
        stage: ConnectStage::Tcp,
        source: io::Error::from(io::ErrorKind::ConnectionRefused),
    }
}

/// `nursery watch notaurl` used to retry `URL scheme not supported`
/// forever. Failed before: 5 attempts, up to the limit.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_permanent_connect_error_gives_up_at_once_with_that_error() {
    let events = Events::new();
    let out: Result<(), BoxError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(5)
        .on_event(events.observer())
        .run(
            || async {
                Err::<Fake, BoxError>(Box::new(ConnectError::UnsupportedScheme {
                    scheme: "http".into(),
                }))
            },
            |_conn| async { Ok(()) },
        )
        .await;
    let err = out.unwrap_err();
    let err = err.downcast_ref::<ConnectError>().expect("that error");
    assert!(matches!(err, ConnectError::UnsupportedScheme { .. }));
    assert_eq!(
        events.names(),
        ["connecting 1", "connect failed 1", "gave up 1"]
    );
    assert_eq!(gave_up(&events), Some((1, GiveUp::Permanent)));
    let text = events.all().last().unwrap().to_string();
    assert!(text.contains("(a permanent error)"), "{text}");
}

/// Transient errors (here an `io::Error` inside the box) are retried up to the limit, and the
/// give-up says it was the limit.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_transient_connect_error_is_retried_until_the_limit() {
    let events = Events::new();
    let out: Result<(), BoxError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(3)
        .on_event(events.observer())
        .run(
            || async { Err::<Fake, BoxError>(Box::new(refused())) },
            |_conn| async { Ok(()) },
        )
        .await;
    assert!(out.is_err());
    assert_eq!(gave_up(&events), Some((3, GiveUp::MaxAttempts)));
    assert_eq!(delays(&events), [100, 200].map(Duration::from_millis));
}

/// A predicate decides for its own error type, in both directions; for other types the
/// default applies.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retry_if_overrides_the_default_for_its_error_type() {
    // An error type the default cannot read (transient by default) made permanent.
    let events = Events::new();
    let out: Result<(), AppError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(5)
        .retry_if(|e: &AppError| match e {
            AppError::Connect(text) if text == "banned" => Retry::No,
            _ => Retry::Yes,
        })
        .on_event(events.observer())
        .run(
            || async { Err::<Fake, _>(AppError::Connect("banned".into())) },
            |_conn| async { Ok(()) },
        )
        .await;
    assert_eq!(out.unwrap_err(), AppError::Connect("banned".into()));
    assert_eq!(gave_up(&events), Some((1, GiveUp::Permanent)));

    // A permanent ConnectError made transient.
    let events = Events::new();
    let _: Result<(), BoxError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(3)
        .retry_if(|_: &BoxError| Retry::Yes)
        .on_event(events.observer())
        .run(
            || async {
                Err::<Fake, BoxError>(Box::new(ConnectError::Status {
                    status: 403,
                    retry_after: None,
                }))
            },
            |_conn| async { Ok(()) },
        )
        .await;
    assert_eq!(gave_up(&events), Some((3, GiveUp::MaxAttempts)));

    // A predicate for another type does not apply: the default still gives up at once.
    let events = Events::new();
    let _: Result<(), BoxError> = Reconnect::new()
        .max_attempts(3)
        .retry_if(|_: &AppError| Retry::Yes)
        .on_event(events.observer())
        .run(
            || async {
                Err::<Fake, BoxError>(Box::new(ConnectError::InvalidUrl {
                    reason: "no host".into(),
                    source: None,
                }))
            },
            |_conn| async { Ok(()) },
        )
        .await;
    assert_eq!(gave_up(&events), Some((1, GiveUp::Permanent)));
}

/// A server that accepts and closes at once was reconnected 33 times
/// in 5 s, because the backoff reset after every successful connect. Now the waits grow:
/// 100, 200, 400, 800, 1600 ms, and the next (3.2 s) would end past 5 s. Failed before: about
/// 50 attempts, every wait 100 ms.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_server_that_closes_at_once_is_backed_off_exponentially() {
    let events = Events::new();
    let attempts = AtomicU32::new(0);
    let out: Result<(), AppError> = Reconnect::new()
        .backoff(backoff())
        .max_elapsed(Duration::from_secs(5))
        .on_event(events.observer())
        .run(
            || {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Ok(Fake::default()) }
            },
            |conn| async move {
                conn.signal.trigger("closed at once");
                std::future::pending().await
            },
        )
        .await;
    assert!(out.unwrap_err().reason().is_external());
    assert_eq!(attempts.load(Ordering::SeqCst), 6);
    assert_eq!(
        delays(&events),
        [100, 200, 400, 800, 1600].map(Duration::from_millis)
    );
    assert_eq!(gave_up(&events), Some((6, GiveUp::MaxElapsed)));
}

/// A connection that stayed up for `stable_after` resets the backoff; shorter ones do not.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_backoff_resets_only_after_a_stable_connection() {
    // Connections live 1 s, 1 s, 10 s (the default stable_after), 1 s.
    let lives = [1, 1, 10, 1].map(Duration::from_secs);
    let events = Events::new();
    let run = AtomicU32::new(0);
    let out: Result<(), AppError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(4)
        .on_event(events.observer())
        .run(
            || async { Ok(Fake::default()) },
            |conn| {
                let life = lives[run.fetch_add(1, Ordering::SeqCst) as usize];
                async move {
                    tokio::time::sleep(life).await;
                    conn.signal.trigger("lost");
                    std::future::pending().await
                }
            },
        )
        .await;
    assert!(out.is_err());
    assert_eq!(DEFAULT_STABLE_AFTER, Duration::from_secs(10));
    // After runs 1 and 2 the waits grow; run 3 was stable, so the wait after it starts over.
    assert_eq!(delays(&events), [100, 200, 100].map(Duration::from_millis));

    // stable_after(ZERO): the old behaviour, a reset after every connect.
    let events = Events::new();
    let _: Result<(), AppError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(3)
        .stable_after(Duration::ZERO)
        .on_event(events.observer())
        .run(
            || async { Ok(Fake::default()) },
            |conn| async move {
                conn.signal.trigger("lost");
                std::future::pending().await
            },
        )
        .await;
    assert_eq!(delays(&events), [100, 100].map(Duration::from_millis));
}

/// `Retry-After` is a floor on the next wait; a wait past `max_elapsed` gives up at once.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn retry_after_sets_the_next_wait_within_max_elapsed() {
    let busy = || -> BoxError {
        Box::new(ConnectError::Status {
            status: 503,
            retry_after: Some(Duration::from_secs(3)),
        })
    };
    let events = Events::new();
    let attempt = AtomicU32::new(0);
    let started = Instant::now();
    let out: Result<u32, BoxError> = Reconnect::new()
        .backoff(backoff())
        .on_event(events.observer())
        .run(
            || {
                let n = attempt.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n < 3 {
                        Err(busy())
                    } else {
                        Ok(Fake::default())
                    }
                }
            },
            |_conn| async { Ok(7) },
        )
        .await;
    assert_eq!(out.unwrap(), 7);
    assert_eq!(delays(&events), [3, 3].map(Duration::from_secs));
    assert_eq!(started.elapsed(), Duration::from_secs(6));

    let events = Events::new();
    let started = Instant::now();
    let out: Result<(), BoxError> = Reconnect::new()
        .backoff(backoff())
        .max_elapsed(Duration::from_secs(2))
        .on_event(events.observer())
        .run(
            || async { Err::<Fake, _>(busy()) },
            |_conn| async { Ok(()) },
        )
        .await;
    assert!(out.is_err());
    assert_eq!(gave_up(&events), Some((1, GiveUp::MaxElapsed)));
    assert_eq!(started.elapsed(), Duration::ZERO, "no wait was started");
}

/// The setup runs on every connection, before the body, under supervision.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_setup_runs_before_the_body_on_every_connection() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (setup_log, body_log) = (log.clone(), log.clone());
    let run = Arc::new(AtomicU32::new(0));
    let out: Result<u32, AppError> = Reconnect::new()
        .backoff(backoff())
        .setup(move |_conn: Fake| {
            let log = setup_log.clone();
            async move {
                log.lock().unwrap().push("setup");
                Ok::<(), AppError>(())
            }
        })
        .run(
            || async { Ok(Fake::default()) },
            |conn| {
                let (log, run) = (body_log.clone(), run.clone());
                async move {
                    log.lock().unwrap().push("body");
                    if run.fetch_add(1, Ordering::SeqCst) < 2 {
                        conn.signal.trigger("lost");
                        std::future::pending::<()>().await;
                    }
                    Ok(run.load(Ordering::SeqCst))
                }
            },
        )
        .await;
    assert_eq!(out.unwrap(), 3);
    assert_eq!(
        *log.lock().unwrap(),
        ["setup", "body", "setup", "body", "setup", "body"]
    );
}

/// A setup failure while the connection is fine is reported, closes the connection, and is
/// classified like a connect error: permanent gives up (the body never runs), transient
/// retries.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_setup_is_classified_like_a_connect_error() {
    let events = Events::new();
    let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
    let made = conns.clone();
    let out: Result<(), AppError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(5)
        .retry_if(|e: &AppError| match e {
            AppError::Body("login refused") => Retry::No,
            _ => Retry::Yes,
        })
        .setup(|_conn: Counted<Fake>| async { Err(AppError::Body("login refused")) })
        .on_event(events.observer())
        .run(
            || {
                let conn = Counted::new(Fake::default());
                made.lock().unwrap().push(conn.clone());
                async move { Ok(conn) }
            },
            |_conn| async { panic!("the body must not run after a failed setup") },
        )
        .await;
    assert_eq!(out.unwrap_err(), AppError::Body("login refused"));
    assert_eq!(
        events.names(),
        [
            "connecting 1",
            "connected 1",
            "closed 1",
            "setup failed 1",
            "gave up 1"
        ]
    );
    assert_eq!(conns.lock().unwrap()[0].finished(), 1, "closed once");

    // Transient: retried up to the limit.
    let events = Events::new();
    let _: Result<(), AppError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(2)
        .setup(|_conn: Fake| async { Err(AppError::Body("not yet")) })
        .on_event(events.observer())
        .run(|| async { Ok(Fake::default()) }, |_conn| async { Ok(()) })
        .await;
    assert_eq!(gave_up(&events), Some((2, GiveUp::MaxAttempts)));
}

/// A loss during the setup is a loss (retried, reported as `Lost`), not a setup failure.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_loss_during_the_setup_is_a_loss() {
    let events = Events::new();
    let out: Result<(), AppError> = Reconnect::new()
        .backoff(backoff())
        .max_attempts(2)
        .setup(|conn: Fake| async move {
            conn.signal.trigger("dropped while authenticating");
            std::future::pending::<Result<(), AppError>>().await
        })
        .on_event(events.observer())
        .run(|| async { Ok(Fake::default()) }, |_conn| async { Ok(()) })
        .await;
    assert!(out.unwrap_err().reason().is_external());
    let names = events.names();
    assert!(names.contains(&"lost 1: external".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("setup failed")),
        "{names:?}"
    );
    assert_eq!(gave_up(&events), Some((2, GiveUp::MaxAttempts)));
}
