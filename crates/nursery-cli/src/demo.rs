use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use nursery_net::ConnectionLost;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_nursery::CancelScope;

use crate::cli::DemoOptions;
use crate::client::{self, ClientSlot};
use crate::faults;
use crate::report::{self, Report};
use crate::server::{self, Registry};
use crate::stats::Stats;

/// Everything the demo's tasks share.
#[derive(Debug)]
pub(crate) struct Demo {
    pub(crate) options: DemoOptions,
    pub(crate) url: String,
    pub(crate) stats: Stats,
    pub(crate) servers: Arc<Registry>,
    clients: Vec<ClientSlot>,
}

impl Demo {
    pub(crate) fn client(&self, id: u32) -> &ClientSlot {
        &self.clients[id as usize]
    }
}

/// The demo's error type: a lost connection is its own variant.
#[derive(Debug)]
pub(crate) enum DemoError {
    ConnectionLost(ConnectionLost),
    Connect(String),
    Server(std::io::Error),
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::ConnectionLost(lost) => lost.fmt(f),
            DemoError::Connect(e) => write!(f, "connect failed: {e}"),
            DemoError::Server(e) => write!(f, "demo server failed: {e}"),
        }
    }
}

impl std::error::Error for DemoError {}

impl From<ConnectionLost> for DemoError {
    fn from(lost: ConnectionLost) -> Self {
        DemoError::ConnectionLost(lost)
    }
}

/// Runs the demo and prints its report.
pub(crate) async fn run(options: DemoOptions) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/", listener.local_addr()?);
    let demo = Arc::new(Demo {
        clients: (0..options.clients)
            .map(|_| ClientSlot::default())
            .collect(),
        options,
        url,
        stats: Stats::default(),
        servers: Arc::default(),
    });
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
                        faults::inject(demo.clone(), demo.options.fault_rate, rng),
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
        return Err(format!("{alive} tasks left alive").into());
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
