//! Force-exit latency on real loopback sockets: the time from a fault being injected to the
//! caller holding the typed error, through `nursery_net::supervise` (watcher, force-exit of
//! the body, bounded close, `ConnectionLost` out), against the hand-written baseline a tokio
//! user would write without this library.
//!
//! Each sample is one connection. The peer runs on its own OS thread (its own current-thread
//! runtime), like a remote process. The client connects (not timed), starts a body that waits
//! forever, lets it settle for a millisecond, and tells the peer to inject the fault. The peer
//! reads the clock right before the injecting call; the client reads it right after the
//! supervised call returns its error. Both are `std::time::Instant` (`CLOCK_MONOTONIC`), so the
//! difference is the latency. Variants:
//!
//! - `ws_peer_close`: the WebSocket peer sends a close frame;
//! - `ws_reset`: the peer resets the TCP connection (`SO_LINGER` 0, then close);
//! - `ws_external`: a driver callback on the peer's thread reports the connection down
//!   (`LossSignal::trigger` for nursery, a `tokio::sync::oneshot` send for the baseline);
//! - `tcp_eof`: a TCP peer hangs up.
//!
//! Implementations:
//!
//! - `nursery`: `supervise(conn, body)` with `WsConnection` / `TcpConnection` and their default
//!   configs; the error comes out after the connection's close, as `supervise` documents:
//!   the close handshake for `ws_external` (a loopback round trip), the answer to the peer's
//!   close frame for `ws_peer_close` (one write), just releasing the socket otherwise;
//! - `select_baseline`: the same tokio-tungstenite stream (or TCP stream) read in a
//!   `tokio::select!` next to the body, returning an error on a close frame, an error or the
//!   end of the stream (and on the oneshot for `ws_external`), then closing the connection as
//!   a careful user would and `supervise` does: a close frame (or the answer to the peer's) and
//!   the stream read to its end for WebSocket, a write shutdown for TCP, bounded like `supervise`'s close.
//!
//! Samples of the two implementations alternate; a few warm-up samples per variant are
//! discarded. Every case runs on the current-thread runtime and on the multi-thread runtime
//! with 2 workers; the client loop is a spawned task. Reported: p50, p99 and max of the
//! per-event latencies in µs; the headline value is p99. Quick mode (`NURSERY_BENCH_QUICK=1`)
//! takes 200 samples per case and implementation, full mode 1000.
//!
//! ```text
//! cargo bench -p nursery-benches --bench force_exit
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nursery_benches::{quick, Measurement, Row};
use nursery_net::tungstenite::Message;
use nursery_net::{
    supervise, Connection, ConnectionLost, TcpConfig, TcpConnection, WsConfig, WsConnection,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Bound on every step of a sample, so that a broken connection fails the run instead of
/// hanging it.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The baseline's bound on its close: nursery-net's default.
const CLOSE_TIMEOUT: Duration = nursery_net::DEFAULT_CLOSE_TIMEOUT;

/// How long the body runs before the fault is injected (everything is idle by then).
const SETTLE: Duration = Duration::from_millis(1);

const WARMUP: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    WsPeerClose,
    WsReset,
    WsExternal,
    TcpEof,
}

const FAULTS: [Fault; 4] = [
    Fault::WsPeerClose,
    Fault::WsReset,
    Fault::WsExternal,
    Fault::TcpEof,
];

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Imp {
    Nursery,
    Baseline,
}

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Nursery => "nursery",
            Imp::Baseline => "select_baseline",
        }
    }
}

/// The driver callback run by the peer's thread for `ws_external`.
type Callback = Box<dyn FnOnce() + Send>;

/// One connection the peer will accept, and how to fault it.
struct Job {
    fault: Fault,
    /// The client's go: for `ws_external`, the callback to run as the injection.
    go: oneshot::Receiver<Option<Callback>>,
    /// The instant right before the injection. A plain channel: reporting it must not wake
    /// the client's runtime while the latency is being measured.
    at: std_mpsc::SyncSender<Instant>,
}

/// The peer: its own thread and current-thread runtime, accepting one connection per job.
struct Peer {
    addr: SocketAddr,
    jobs: mpsc::UnboundedSender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peer {
    fn start() -> Peer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the peer");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("peer address");
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("peer".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("peer runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("peer listener");
                    while let Some(job) = rx.recv().await {
                        let (socket, _) = listener.accept().await.expect("accept");
                        tokio::spawn(serve(job, socket));
                    }
                });
            })
            .expect("spawn the peer thread");
        Peer {
            addr,
            jobs,
            thread: Some(thread),
        }
    }

    fn job(
        &self,
        fault: Fault,
    ) -> (
        oneshot::Sender<Option<Callback>>,
        std_mpsc::Receiver<Instant>,
    ) {
        let (go_tx, go) = oneshot::channel();
        let (at, at_rx) = std_mpsc::sync_channel(1);
        self.jobs
            .send(Job { fault, go, at })
            .expect("the peer thread is gone");
        (go_tx, at_rx)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Closing the job channel ends the peer's accept loop.
        let (closed, _) = mpsc::unbounded_channel();
        self.jobs = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The peer's side of one connection: wait for the go, inject the fault, report its instant,
/// then answer until the client is gone (its close handshake, if any).
async fn serve(job: Job, socket: TcpStream) {
    socket.set_nodelay(true).expect("nodelay");
    let Job { fault, go, at } = job;
    if fault == Fault::TcpEof {
        let Ok(_) = go.await else { return };
        let now = Instant::now();
        drop(socket);
        let _ = at.send(now);
        return;
    }
    let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
        return;
    };
    let Ok(callback) = go.await else { return };
    match fault {
        Fault::WsPeerClose => {
            let now = Instant::now();
            let _ = ws.close(None).await;
            let _ = at.send(now);
        }
        Fault::WsReset => {
            ws.get_ref().set_zero_linger().expect("SO_LINGER");
            let now = Instant::now();
            drop(ws);
            let _ = at.send(now);
            return;
        }
        Fault::WsExternal => {
            let callback = callback.expect("ws_external sends a callback");
            let now = Instant::now();
            callback();
            let _ = at.send(now);
        }
        Fault::TcpEof => unreachable!(),
    }
    while let Some(Ok(_)) = ws.next().await {}
}

/// The body every sample runs: settle, tell the peer to inject the fault, wait forever.
async fn waiting_body<E>(go: oneshot::Sender<Option<Callback>>, callback: Option<Callback>) -> E {
    tokio::time::sleep(SETTLE).await;
    let _ = go.send(callback);
    std::future::pending().await
}

/// The baseline's typed error.
#[derive(Debug)]
#[allow(dead_code)] // The fields are what a caller would match on; the bench only times it.
enum BaselineError {
    PeerClosed,
    Reset(String),
    External(&'static str),
}

async fn with_timeout<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what} did not finish within {STEP_TIMEOUT:?}"),
    }
}

/// One sample: connect (not timed), inject, and return the latency from the injection to the
/// typed error.
async fn sample(peer: &Peer, fault: Fault, imp: Imp) -> Duration {
    let (go, at) = peer.job(fault);
    let url = format!("ws://{}/", peer.addr);
    let done = match (imp, fault) {
        (Imp::Nursery, Fault::TcpEof) => {
            let conn = with_timeout(
                "connect",
                TcpConnection::connect(peer.addr, TcpConfig::new()),
            )
            .await
            .expect("connect");
            let out: Result<(), ConnectionLost> =
                supervise(conn, |_c| waiting_body(go, None)).await;
            let done = Instant::now();
            assert!(out.unwrap_err().reason.is_peer_closed());
            done
        }
        (Imp::Nursery, _) => {
            let conn = with_timeout("connect", WsConnection::connect(url, WsConfig::new()))
                .await
                .expect("connect");
            let callback = (fault == Fault::WsExternal).then(|| {
                let signal = conn.loss_signal().clone();
                Box::new(move || {
                    signal.trigger("driver callback: link down");
                }) as Callback
            });
            let out: Result<(), ConnectionLost> =
                supervise(conn, |_c| waiting_body(go, callback)).await;
            let done = Instant::now();
            let _lost = out.unwrap_err();
            done
        }
        (Imp::Baseline, Fault::TcpEof) => {
            let mut stream = with_timeout("connect", TcpStream::connect(peer.addr))
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let out: Result<(), BaselineError> = tokio::select! {
                out = waiting_body(go, None) => out,
                err = async {
                    let mut buf = vec![0u8; 8 * 1024];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) => return BaselineError::PeerClosed,
                            Ok(_) => {}
                            Err(e) => return BaselineError::Reset(e.to_string()),
                        }
                    }
                } => Err(err),
            };
            // Closed as a careful user would: our side shut down before the error is returned.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
            drop(stream);
            let done = Instant::now();
            assert!(matches!(out, Err(BaselineError::PeerClosed)));
            done
        }
        (Imp::Baseline, _) => {
            let stream = with_timeout("connect", TcpStream::connect(peer.addr))
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut ws, _) = with_timeout(
                "handshake",
                tokio_tungstenite::client_async(url.as_str(), stream),
            )
            .await
            .expect("handshake");
            let (down_tx, down) = oneshot::channel::<()>();
            let callback = (fault == Fault::WsExternal).then(|| {
                Box::new(move || {
                    let _ = down_tx.send(());
                }) as Callback
            });
            let out: Result<(), BaselineError> = tokio::select! {
                out = waiting_body(go, callback) => out,
                err = async {
                    loop {
                        match ws.next().await {
                            None | Some(Ok(Message::Close(_))) => return BaselineError::PeerClosed,
                            Some(Err(e)) => return BaselineError::Reset(e.to_string()),
                            Some(Ok(_)) => {}
                        }
                    }
                } => Err(err),
                Ok(()) = down => Err(BaselineError::External("driver callback: link down")),
            };
            close_like_supervise(ws).await;
            let done = Instant::now();
            let _err = out.unwrap_err();
            done
        }
    };
    // Read after the error is in hand; the peer sent it right after the injection.
    let at = at
        .recv_timeout(STEP_TIMEOUT)
        .expect("the peer reports its injection instant");
    done.saturating_duration_since(at)
}

/// Closes the baseline's WebSocket as `supervise` closes: a close frame (or the answer to the
/// peer's), then the peer's side read to its end, bounded like nursery-net's close.
async fn close_like_supervise<S>(mut ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// All samples of one runtime: per fault, per implementation.
async fn run_all(samples: usize) -> Vec<(Fault, Imp, Vec<Duration>)> {
    let peer = Peer::start();
    let mut out = Vec::new();
    for fault in FAULTS {
        let mut nursery = Vec::with_capacity(samples);
        let mut baseline = Vec::with_capacity(samples);
        for i in 0..WARMUP + samples {
            // Alternate, so that drift in the machine's state hits both alike.
            let a = sample(&peer, fault, Imp::Nursery).await;
            let b = sample(&peer, fault, Imp::Baseline).await;
            if i >= WARMUP {
                nursery.push(a);
                baseline.push(b);
            }
        }
        out.push((fault, Imp::Nursery, nursery));
        out.push((fault, Imp::Baseline, baseline));
    }
    tokio::task::spawn_blocking(move || drop(peer))
        .await
        .expect("stop the peer");
    out
}

fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // Command-line arguments (`--bench`, `--quick`, filters) are ignored.
    let quick = quick();
    let samples = if quick { 200 } else { 1000 };
    let started = Instant::now();
    let mut rows = Vec::new();
    println!(
        "force-exit latency, fault injected -> typed error (loopback, {samples} samples per row):"
    );
    println!(
        "  {:<14} {:<14} {:<16} {:>9} {:>9} {:>9}",
        "runtime", "variant", "implementation", "p50 µs", "p99 µs", "max µs"
    );
    for runtime in ["current_thread", "multi_thread"] {
        let rt = match runtime {
            "current_thread" => tokio::runtime::Builder::new_current_thread(),
            _ => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
        }
        .enable_all()
        .build()
        .expect("runtime");
        let results = rt
            .block_on(async { tokio::spawn(run_all(samples)).await })
            .expect("the sampling task panicked");
        for (fault, imp, mut latencies) in results {
            latencies.sort();
            let (p50, p99) = (
                nearest_rank(&latencies, 50.0),
                nearest_rank(&latencies, 99.0),
            );
            let max = latencies[latencies.len() - 1];
            println!(
                "  {:<14} {:<14} {:<16} {:>9.1} {:>9.1} {:>9.1}",
                runtime,
                fault.name(),
                imp.name(),
                us(p50),
                us(p99),
                us(max)
            );
            rows.push(
                Row::new(format!("{runtime}, {}", fault.name()), imp.name(), us(p99))
                    .with("p50_us", us(p50))
                    .with("p99_us", us(p99))
                    .with("max_us", us(max))
                    .with("samples", latencies.len() as f64),
            );
        }
    }
    let measurement = Measurement {
        workload: "force_exit".into(),
        title: "Force-exit latency on loopback: fault -> typed error".into(),
        metric: "p99 latency, µs".into(),
        rows,
        notes: vec![
            format!(
                "One connection per sample, {samples} samples per row after {WARMUP} warm-up \
                 samples; the peer runs on its own thread and reads the clock right before \
                 injecting the fault, the client right after the call returns the error."
            ),
            "nursery: `supervise` returns after the connection's close (ws_external: the \
             close handshake with the peer, a loopback round trip; ws_peer_close: writing the \
             answer to the peer's close frame); select_baseline closes the same way after the \
             first error (close frame or its answer and the stream read to its end; a write \
             shutdown for TCP) before it returns."
                .into(),
            "ws_external: a driver callback on the peer's thread (`LossSignal::trigger` / a \
             oneshot send)."
                .into(),
        ],
    };
    let path = measurement.write().expect("write the measurement");
    println!(
        "wrote {} in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
}
