//! `nursery demo`: supervised WebSocket clients against an embedded server that injects
//! faults, and the report of what happened.
//!
//! Data flows one way, bottom to top:
//! - `error` (the demo's error type) and `fault` (the kinds of fault) depend on nothing here;
//! - `stats` counts, by fault kind; `server` echoes and obeys commands;
//! - `state` holds what every task shares (options, the server's registry, the counters, one
//!   slot per client);
//! - `client` (a supervised client) and `inject` (the fault injector) read and write `state`
//!   and never call each other;
//! - `report` reads the finished `state`; this file wires them together in a nursery.

mod client;
mod error;
mod fault;
mod inject;
mod report;
mod server;
mod state;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_nursery::CancelScope;

pub(crate) use self::error::DemoError;
use self::report::Report;
use self::state::Demo;
use self::stats::Stats;
use crate::cli::DemoOptions;

/// Runs the demo and prints its report.
pub(crate) async fn run(options: DemoOptions) -> Result<(), DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Bind)?;
    let url = format!("ws://{}/", listener.local_addr().map_err(DemoError::Bind)?);
    let demo = Arc::new(Demo::new(options, url));
    let options = &demo.options;
    println!(
        "nursery demo: {} supervised WebSocket clients for {:?} against {}, {} faults/s, seed {}",
        options.clients, options.duration, demo.url, options.fault_rate, options.seed
    );
    let progress = progress_bar(options);
    let started = Instant::now();
    tokio_nursery::nursery(|n| {
        let demo = demo.clone();
        let progress = progress.clone();
        async move {
            // The server runs until the clients are done (their closes need it).
            let server_scope = CancelScope::new();
            let stop_server = server_scope.handle();
            let registry = demo.servers.clone();
            n.spawn_named("server", async move {
                server_scope
                    .run(server::serve(listener, registry))
                    .await
                    .unwrap_or(Ok(()))
            });
            let ticker_scope = CancelScope::new();
            let stop_ticker = ticker_scope.handle();
            let (d, p) = (demo.clone(), progress.clone());
            n.spawn_named("progress", async move {
                ticker_scope.run(tick(d, p, started)).await;
                Ok(())
            });
            // Clients and the fault injector, until the duration has passed; then every
            // client is cancelled, and closes its connection (bounded) before this returns.
            let deadline = started + demo.options.duration;
            let clients = tokio_nursery::move_on_at(
                deadline,
                tokio_nursery::nursery(|c| async move {
                    for id in 0..demo.options.clients {
                        c.spawn_named(format!("client {id}"), client::run(id, demo.clone()));
                    }
                    let rng = StdRng::seed_from_u64(demo.options.seed);
                    c.spawn_named(
                        "fault injector",
                        inject::inject(demo.clone(), demo.options.fault_rate, rng),
                    );
                    std::future::pending::<Result<(), DemoError>>().await
                }),
            )
            .await;
            if let Some(Err(e)) = clients {
                return Err(e);
            }
            stop_ticker.cancel();
            stop_server.cancel();
            Ok(())
        }
    })
    .await?;
    progress.finish_and_clear();
    // From the end of the run to every connection closed and every task finished.
    let shutdown = started.elapsed().saturating_sub(options.duration);
    let (alive, settled) = alive_tasks().await;
    let report = Report::new(&demo, started.elapsed(), shutdown, alive, settled);
    report::print(&report);
    if alive != 0 {
        return Err(DemoError::TasksLeftAlive(alive));
    }
    Ok(())
}

/// Tasks still alive on the runtime once the demo's nursery has returned, and how long the
/// count took to reach that value. Every child has finished its work by then; the runtime
/// releases a finished task just after it completes, so the count may need a moment (it is
/// polled for up to 1 s) to settle.
async fn alive_tasks() -> (usize, Duration) {
    let metrics = tokio::runtime::Handle::current().metrics();
    let started = Instant::now();
    loop {
        let alive = metrics.num_alive_tasks();
        if alive == 0 || started.elapsed() >= Duration::from_secs(1) {
            return (alive, started.elapsed());
        }
        tokio::task::yield_now().await;
    }
}

fn progress_bar(options: &DemoOptions) -> ProgressBar {
    if options.no_progress {
        return ProgressBar::hidden();
    }
    let total = options.duration.as_millis().max(1) as u64;
    let style = ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(total).with_style(style)
}

async fn tick(demo: Arc<Demo>, progress: ProgressBar, started: Instant) {
    let stats = &demo.stats;
    loop {
        progress.set_position(started.elapsed().as_millis() as u64);
        progress.set_message(format!(
            "{} connects, {} faults, {} losses, {} messages echoed",
            Stats::get(&stats.connected),
            Stats::get(&stats.faults),
            stats.loss_count(),
            Stats::get(&stats.echoed),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
