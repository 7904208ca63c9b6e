//! `nursery watch`: one real endpoint, supervised with reconnects; its events and messages
//! printed as they happen, stdin lines and `--send` messages sent to it.
//!
//! - `url` checks the URL before any attempt; `error` holds the errors and which connect
//!   errors are permanent;
//! - `log` prints (events in honest words, messages both ways) and knows whether a connection
//!   is open; `outbox` holds what is to be sent, fed by a stdin thread;
//! - `stop` turns signals and permanent errors into a graceful stop;
//! - this file wires them around nursery-net's `Reconnect` and decides the exit status.

mod error;
mod log;
mod outbox;
mod stop;
mod url;

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nursery_net::tungstenite::Message;
use nursery_net::{
    Backoff, Connection, Event, Heartbeat, Reconnect, Supervisor, WsConfig, WsConnection,
};
use tokio_nursery::CancelScope;

use self::error::WatchError;
use self::log::{secs, Log};
use self::outbox::{Next, Outbox};
use self::stop::{Stop, Why};
use crate::cli::WatchOptions;

/// Exit status: gave up, or a permanent error.
const EXIT_FAILED: u8 = 1;
/// Exit status: the command line is wrong (as clap's own usage errors).
const EXIT_USAGE: u8 = 2;

/// Watches `options.url` until a signal, a permanent error or a limit; prints as it goes and
/// returns the exit status documented in `nursery watch --help`.
pub(crate) async fn run(options: WatchOptions) -> ExitCode {
    if let Err(invalid) = url::check(&options.url) {
        eprintln!("nursery: {invalid}");
        return ExitCode::from(EXIT_USAGE);
    }
    let log = Arc::new(Log::new(options.max_print));
    let outbox = Arc::new(Outbox::new(options.send.clone(), !options.no_stdin));
    let session = CancelScope::new();
    let stop = Arc::new(Stop::new(session.handle()));
    let outcome = {
        let (log, stop) = (log.clone(), stop.clone());
        tokio_nursery::nursery(|n| async move {
            let (signal_stop, signal_log) = (stop.clone(), log.clone());
            n.spawn_named("signals", async move {
                stop::on_signals(&signal_stop, &signal_log).await
            });
            let current = Arc::new(Mutex::new(None));
            let out = session
                .run(watch(&options, log.clone(), stop, outbox, current.clone()))
                .await;
            if out.is_none() {
                close_unsupervised(&current, &log, options.close_timeout).await;
            }
            n.cancel(); // stop waiting for signals
            Ok(out)
        })
        .await
    };
    match outcome {
        Ok(None) => stopped(stop.take(), &log),
        Ok(Some(Err(error))) => {
            eprintln!("nursery: gave up: {error}");
            ExitCode::from(EXIT_FAILED)
        }
        Ok(Some(Ok(never))) => match never {},
        Err(error) => {
            eprintln!("nursery: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The reconnect loop: connect, send, receive, again after each loss.
async fn watch(
    options: &WatchOptions,
    log: Arc<Log>,
    stop: Arc<Stop>,
    outbox: Arc<Outbox>,
    current: Current,
) -> Result<Infallible, WatchError> {
    let heartbeat = Heartbeat::new(options.heartbeat_interval, options.heartbeat_timeout);
    // Place for `--connect-timeout` (see cli.rs): set it on this config once it has one.
    // Place for `--ca-file` (see cli.rs): give this config the custom root store.
    let config = WsConfig::new().heartbeat(heartbeat);
    let observer = log.clone();
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
        .on_event(move |event| observer.event(event));
    let reconnect = match options.max_attempts {
        Some(max) => reconnect.max_attempts(max),
        None => reconnect,
    };
    let url: Arc<str> = Arc::from(options.url.as_str());
    let connect = || {
        let (url, config, log, stop) = (url.clone(), config.clone(), log.clone(), stop.clone());
        let current = current.clone();
        async move {
            let error = match WsConnection::connect(&*url, config).await {
                Ok(conn) => {
                    *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => WatchError::Connect(e),
            };
            if !error.is_permanent() {
                return Err(error);
            }
            // The reconnect loop retries every error: stop it here instead, through the
            // session's scope, which ends this attempt before it returns.
            log.line(log.connect_failed(&error, "permanent, not retried"));
            stop.request(Why::Permanent(error));
            std::future::pending().await
        }
    };
    let body = |conn| exchange(conn, log.clone(), outbox.clone());
    reconnect.run(connect, body).await
}

/// The connection of the latest attempt, kept for [`close_unsupervised`].
type Current = Arc<Mutex<Option<WsConnection>>>;

/// Closes the latest connection if its supervision was cancelled before it could close it.
///
/// A stop that lands just after a connect succeeds, before the supervisor has registered the
/// close, drops the connection without a close frame (the peer would see 1006). The close is
/// idempotent, so closing what the supervisor did not is safe; the second signal still exits
/// at once meanwhile.
async fn close_unsupervised(current: &Current, log: &Log, timeout: Duration) {
    let conn = current.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (Some(conn), true) = (conn, log.is_open()) else {
        return;
    };
    let started = tokio::time::Instant::now();
    let closed = tokio_nursery::move_on_after(timeout, Connection::close(&conn)).await;
    log.event(&Event::Closed {
        attempt: log.attempt(),
        took: started.elapsed(),
        timed_out: closed.is_none(),
    });
}

/// One connection's body: the `--send` messages, then stdin lines out and messages in, until
/// the connection is lost (the body is then force-exited).
async fn exchange(
    conn: WsConnection,
    log: Arc<Log>,
    outbox: Arc<Outbox>,
) -> Result<Infallible, WatchError> {
    for text in &outbox.on_connect {
        let message = Message::text(text.as_str());
        conn.send(message.clone()).await?;
        log.sent(&message);
    }
    if outbox.unconfirmed().is_some() {
        log.line("sending again the line whose send the loss cut short (it may arrive twice)");
    }
    let mut sending = true;
    loop {
        tokio::select! {
            message = conn.recv() => log.received(&message?),
            next = outbox.next(), if sending => match next {
                Next::Send(message) => {
                    conn.send(message.clone()).await?;
                    outbox.confirm();
                    log.sent(&message);
                }
                Next::JustEnded => {
                    sending = false;
                    log.line("stdin ended: nothing more to send; still watching");
                }
                Next::Ended => sending = false,
            },
        }
    }
}

/// The last line and exit status after the session's scope was cancelled.
fn stopped(why: Option<Why>, log: &Log) -> ExitCode {
    match why {
        Some(Why::Signal { signal, open }) => {
            let after = secs(log.elapsed());
            let closed = match (open, log.last_close()) {
                (false, _) => "no connection was open".to_owned(),
                (true, Some((took, false))) => {
                    format!("the connection was closed (code 1000) in {}", secs(took))
                }
                (true, Some((took, true))) => format!(
                    "the close was not answered within {}: the connection was dropped",
                    secs(took)
                ),
                (true, None) => "the connection was dropped".to_owned(),
            };
            log.line(format!(
                "stopped by {} after {after}; {closed}",
                signal.name()
            ));
            ExitCode::SUCCESS
        }
        Some(Why::Permanent(error)) => {
            eprintln!("nursery: not retrying: {error}");
            ExitCode::from(EXIT_FAILED)
        }
        // Only `Stop::request` cancels the session.
        None => {
            eprintln!("nursery: the watch stopped without a reason");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
