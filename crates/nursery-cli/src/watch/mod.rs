//! `nursery watch`: one real endpoint, supervised with reconnects; its events and messages
//! printed as they happen, stdin lines and `--send` messages sent to it.
//!
//! - `url` checks the URL before any attempt; `error` holds the errors (which connect errors
//!   are permanent is nursery-net's `ConnectError::is_permanent`);
//! - `log` prints (events in honest words, messages both ways) and knows whether a connection
//!   is open; `outbox` holds what is to be sent, fed by a stdin thread;
//! - `stop` turns signals into a graceful stop;
//! - this file wires them around nursery-net's `Reconnect` and decides the exit status.

mod error;
mod log;
mod outbox;
mod stop;
mod url;

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use nursery_net::tungstenite::Message;
use nursery_net::{
    Backoff, Heartbeat, Reconnect, Retry, Supervisor, TlsConfig, WsConfig, WsConnection,
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
    let tls = match &options.ca_file {
        None => None,
        Some(path) => match TlsConfig::from_pem_file(path) {
            Ok(tls) => Some(tls),
            Err(error) => {
                eprintln!("nursery: --ca-file {}: {error}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
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
            // A stop that lands right after a connect still closes that connection: the
            // supervisor registers the close before its body can be cancelled.
            let out = session.run(watch(&options, tls, log.clone(), outbox)).await;
            n.cancel(); // stop waiting for signals
            Ok(out)
        })
        .await
    };
    match outcome {
        Ok(None) => stopped(stop.take(), &log),
        Ok(Some(Err(error))) if error.is_permanent() => {
            eprintln!("nursery: not retrying: {error}");
            ExitCode::from(EXIT_FAILED)
        }
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

/// The reconnect loop: connect, send, receive, again after each loss. Permanent connect
/// errors end it at once (the library classifies them); transient ones, timeouts included,
/// are retried.
async fn watch(
    options: &WatchOptions,
    tls: Option<TlsConfig>,
    log: Arc<Log>,
    outbox: Arc<Outbox>,
) -> Result<Infallible, WatchError> {
    let heartbeat = Heartbeat::new(options.heartbeat_interval, options.heartbeat_timeout);
    let config = WsConfig::new()
        .heartbeat(heartbeat)
        .connect_timeout(options.connect_timeout);
    let config = match tls {
        Some(tls) => config.tls(tls),
        None => config,
    };
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
        .retry_if(|error: &WatchError| match error {
            WatchError::Connect(error) => Retry::from(error),
            _ => Retry::Yes,
        })
        .on_event(move |event| observer.event(event));
    let reconnect = match options.max_attempts {
        Some(max) => reconnect.max_attempts(max),
        None => reconnect,
    };
    let url: Arc<str> = Arc::from(options.url.as_str());
    let connect = || {
        let (url, config) = (url.clone(), config.clone());
        async move {
            WsConnection::connect(&*url, config)
                .await
                .map_err(WatchError::Connect)
        }
    };
    let body = |conn| exchange(conn, log.clone(), outbox.clone());
    reconnect.run(connect, body).await
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
        // Only `Stop::request` cancels the session.
        None => {
            eprintln!("nursery: the watch stopped without a reason");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
