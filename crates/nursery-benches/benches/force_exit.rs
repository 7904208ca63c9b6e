//! Force-exit latency on loopback: the time from a fault to the caller's typed
//! `ConnectionLost`, through `nursery_net::supervise` (watcher, force-exit of the body, bounded
//! close, typed error out).
//!
//! Each sample is one connection: connect (not timed), start a body that waits forever, inject
//! the fault, and time until `supervise` returns. Variants:
//!
//! - `ws_peer_close`: the WebSocket server sends a close frame (the client answers it);
//! - `ws_reset`: the server resets the TCP connection;
//! - `ws_external`: a `LossSignal::trigger` (a driver callback), with the close handshake;
//! - `tcp_eof`: a TCP server hangs up.
//!
//! Criterion reports the mean per variant; p50 and p99 of all samples are printed at the end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use criterion::Criterion;
use futures_util::{SinkExt, StreamExt};
use nursery_net::tungstenite::Message;
use nursery_net::{
    supervise, Connection, ConnectionLost, TcpConfig, TcpConnection, WsConfig, WsConnection,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Fault {
    WsPeerClose,
    WsReset,
    WsExternal,
    TcpEof,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::WsPeerClose => "ws_peer_close",
            Fault::WsReset => "ws_reset",
            Fault::WsExternal => "ws_external",
            Fault::TcpEof => "tcp_eof",
        }
    }
}

static SAMPLES: Mutex<BTreeMap<&'static str, Vec<Duration>>> = Mutex::new(BTreeMap::new());

/// One connection, one fault: the latency from the fault to the typed error.
async fn one(fault: Fault) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (at_tx, at_rx) = oneshot::channel::<Instant>();
    // Whoever injects the fault reports its instant.
    let (server_at, client_at) = match fault {
        Fault::WsExternal => (None, Some(at_tx)),
        _ => (Some(at_tx), None),
    };
    let mark = |at: Option<oneshot::Sender<Instant>>| {
        if let Some(at) = at {
            let _ = at.send(Instant::now());
        }
    };
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        if let Fault::TcpEof = fault {
            go_rx.await.expect("go");
            mark(server_at);
            drop(socket);
            return;
        }
        let mut ws = tokio_tungstenite::accept_async(socket)
            .await
            .expect("handshake");
        go_rx.await.expect("go");
        match fault {
            Fault::WsPeerClose => {
                mark(server_at);
                let _ = ws.close(None).await;
            }
            Fault::WsReset => {
                ws.get_ref().set_zero_linger().expect("linger");
                mark(server_at);
                drop(ws);
                return;
            }
            _ => {}
        }
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() {
                let _ = ws.send(message).await;
            }
        }
    });
    let lost: ConnectionLost = match fault {
        Fault::TcpEof => {
            let conn = TcpConnection::connect(addr, TcpConfig::new())
                .await
                .expect("connect");
            supervise(conn, |_c| async move {
                go_tx.send(()).expect("go");
                std::future::pending::<Result<(), ConnectionLost>>().await
            })
            .await
            .unwrap_err()
        }
        _ => {
            let conn = WsConnection::connect(format!("ws://{addr}/"), WsConfig::new())
                .await
                .expect("connect");
            supervise::<_, (), ConnectionLost, _, _>(conn, |c| async move {
                go_tx.send(()).expect("go");
                if client_at.is_some() {
                    mark(client_at);
                    c.loss_signal().trigger("driver callback");
                }
                loop {
                    let _: Message = c.recv().await?;
                }
            })
            .await
            .unwrap_err()
        }
    };
    let done = Instant::now();
    let _ = lost;
    let at = at_rx.await.expect("fault instant");
    server.await.expect("server");
    done - at
}

fn force_exit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("force_exit");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));
    for fault in [
        Fault::WsPeerClose,
        Fault::WsReset,
        Fault::WsExternal,
        Fault::TcpEof,
    ] {
        group.bench_function(fault.name(), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let latency = one(fault).await;
                        SAMPLES
                            .lock()
                            .unwrap()
                            .entry(fault.name())
                            .or_default()
                            .push(latency);
                        total += latency;
                    }
                    total
                })
            });
        });
    }
    group.finish();
}

fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn print_percentiles() {
    let samples = SAMPLES.lock().unwrap();
    if samples.is_empty() {
        return;
    }
    println!("\nforce-exit latency, fault -> typed ConnectionLost (all samples, loopback):");
    println!(
        "  {:<16} {:>8} {:>10} {:>10} {:>10}",
        "variant", "samples", "p50", "p99", "max"
    );
    for (name, samples) in samples.iter() {
        let mut sorted = samples.clone();
        sorted.sort();
        println!(
            "  {:<16} {:>8} {:>10.1?} {:>10.1?} {:>10.1?}",
            name,
            sorted.len(),
            nearest_rank(&sorted, 50.0),
            nearest_rank(&sorted, 99.0),
            sorted[sorted.len() - 1]
        );
    }
}

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::force_exit);
}

fn main() {
    group::benches();
    Criterion::default().configure_from_args().final_summary();
    print_percentiles();
}
