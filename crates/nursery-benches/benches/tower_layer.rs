//! Per-request cost of `nursery_tower::ServerLayer` against the same service without it, as
//! instructions (callgrind, like `instructions`) and as heap allocations (dhat, like
//! `heap_per_child`).
//!
//! The service answers `hello` at once; every request carries `grpc-timeout: 5S`, so the layer
//! parses a deadline, opens a cancel scope and a nursery, spawns the request into the server's
//! root nursery and relays the body. Two workloads:
//!
//! - `hyper_http1`: a full HTTP/1.1 round trip, hyper client to hyper server over an in-memory
//!   duplex pipe on one current-thread runtime: the cost a server actually pays per request;
//! - `service_call`: `ready().call(request)` and the body collected, no server at all: the
//!   layer's own cost against a service that does nothing (an upper bound of the ratio).
//!
//! Instructions: the program re-runs itself under `valgrind --tool=callgrind` at two iteration
//! counts and takes the difference, so startup cancels out. The counting allocator is installed
//! in both runs (its bookkeeping costs instructions per allocation, so the layer, which
//! allocates more, is slightly penalised). Without valgrind only the allocation rows are written.
//!
//! ```text
//! cargo bench -p nursery-benches --bench tower_layer
//! ```

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::process::Command;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use nursery_benches::{Measurement, Row};
use nursery_tower::ServerLayer;
use tower_layer::Layer;
use tower_service::Service;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Set in the re-run child: `<workload>:<variant>:<iterations>`.
const CHILD_ENV: &str = "NURSERY_TOWER_LAYER_CHILD";
/// Requests per iteration.
const OPS: usize = 200;
const WORKLOADS: [&str; 2] = ["hyper_http1", "service_call"];
/// `bare`: the service alone; `nursery`: the same service under `ServerLayer`.
const VARIANTS: [&str; 2] = ["bare", "nursery"];

/// The service under test: answers at once.
#[derive(Clone, Copy)]
struct Hello;

impl<B> Service<http::Request<B>> for Hello {
    type Response = http::Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        black_box(&request);
        ready(Ok(http::Response::new(Full::new(Bytes::from_static(
            b"hello",
        )))))
    }
}

fn request() -> http::Request<Empty<Bytes>> {
    http::Request::get("/hello")
        .header("host", "bench")
        .header("grpc-timeout", "5S")
        .body(Empty::new())
        .expect("request")
}

async fn call_n<S, B>(mut service: S, n: usize)
where
    S: Service<http::Request<Empty<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    for _ in 0..n {
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .expect("ready");
        let response = service.call(request()).await.expect("response");
        black_box(response.into_body().collect().await.expect("body"));
    }
}

/// `n` HTTP/1.1 round trips through hyper to `service`.
async fn hyper_n<S, B>(service: S, n: usize)
where
    S: Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(server_io), TowerToHyperService::new(service));
    let server = tokio::spawn(server);
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
        .await
        .expect("handshake");
    let conn = tokio::spawn(conn);
    for _ in 0..n {
        send.ready().await.expect("ready");
        let response = send.send_request(request()).await.expect("response");
        black_box(response.into_body().collect().await.expect("body"));
    }
    drop(send);
    let _ = conn.await;
    let _ = server.await;
}

/// Runs `n` requests of `workload` with or without the layer.
async fn requests(workload: &str, variant: &str, n: usize) {
    match variant {
        "bare" => match workload {
            "hyper_http1" => hyper_n(Hello, n).await,
            _ => call_n(Hello, n).await,
        },
        _ => tokio_nursery::nursery(|root| async move {
            let service = ServerLayer::new(root.handle()).layer(Hello);
            match workload {
                "hyper_http1" => hyper_n(service, n).await,
                _ => call_n(service, n).await,
            }
            Ok::<_, Infallible>(())
        })
        .await
        .expect("root nursery"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()
        .expect("runtime")
}

fn run_child(spec: &str) {
    let mut parts = spec.split(':');
    let (Some(workload), Some(variant), Some(iterations)) =
        (parts.next(), parts.next(), parts.next())
    else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let iterations: usize = iterations.parse().expect("iterations");
    runtime().block_on(requests(workload, variant, iterations * OPS));
}

fn instructions(workload: &str, variant: &str, iterations: usize) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .env(CHILD_ENV, format!("{workload}:{variant}:{iterations}"))
        .output()
        .map_err(|e| format!("valgrind could not be started: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "valgrind exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .find_map(|line| line.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no instruction count in valgrind's output: {stderr}"))
}

/// Allocations and bytes allocated per request (total, not live: each request frees its own).
fn allocations(workload: &str, variant: &str, n: usize) -> (f64, f64) {
    let rt = runtime();
    let _profiler = dhat::Profiler::builder().testing().build();
    rt.block_on(async {
        // The connection, the root nursery and the runtime's own first allocations are outside
        // the difference: measured at n and at 2n requests in one run each.
        let before = dhat::HeapStats::get();
        requests(workload, variant, n).await;
        let mid = dhat::HeapStats::get();
        requests(workload, variant, 2 * n).await;
        let after = dhat::HeapStats::get();
        let per = |a: &dhat::HeapStats, b: &dhat::HeapStats| {
            (
                b.total_blocks - a.total_blocks,
                b.total_bytes - a.total_bytes,
            )
        };
        let (blocks1, bytes1) = per(&before, &mid);
        let (blocks2, bytes2) = per(&mid, &after);
        (
            (blocks2 - blocks1) as f64 / n as f64,
            (bytes2 - bytes1) as f64 / n as f64,
        )
    })
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_child(&spec);
        return;
    }
    let (low, high) = if nursery_benches::quick() {
        (2, 6)
    } else {
        (5, 25)
    };
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "Server layer against the same service without it. Instructions: callgrind, \
         current-thread runtime, per request = (count at {high} x {OPS} requests - count at \
         {low} x {OPS}) / ({} x {OPS}). Allocations: dhat, total blocks and bytes allocated per \
         request (the difference between runs of n and 2n requests, so setup cancels out).",
        high - low
    )];
    let mut valgrind_ok = true;
    for workload in WORKLOADS {
        let mut per_request = Vec::new();
        for variant in VARIANTS {
            let (allocs, bytes) = allocations(workload, variant, 1_000);
            let mut row = Row::new(format!("{workload}, per request"), variant, f64::NAN)
                .with("allocations", allocs)
                .with("bytes allocated", bytes);
            if valgrind_ok {
                match instructions(workload, variant, low)
                    .and_then(|l| instructions(workload, variant, high).map(|h| (l, h)))
                {
                    Ok((l, h)) => {
                        let per = h.saturating_sub(l) as f64 / ((high - low) * OPS) as f64;
                        per_request.push(per);
                        row.value = per;
                    }
                    Err(why) => {
                        eprintln!("tower_layer: {why}");
                        notes.push(format!("Instructions not measured: {why}"));
                        valgrind_ok = false;
                    }
                }
            }
            rows.push(row);
        }
        if let [bare, layer] = per_request[..] {
            notes.push(format!(
                "{workload}: nursery (layer) / bare = {:.3}x instructions",
                layer / bare
            ));
        }
    }
    let measurement = Measurement {
        workload: "tower_layer".into(),
        title: "Server layer per request (callgrind, dhat)".into(),
        metric: "instructions per request".into(),
        rows,
        notes,
    };
    let path = measurement.write().expect("write measurement");
    for note in &measurement.notes {
        println!("{note}");
    }
    for row in &measurement.rows {
        println!("{} {}: {:?}", row.case, row.implementation, row.extra);
    }
    eprintln!("written {}", path.display());
}
