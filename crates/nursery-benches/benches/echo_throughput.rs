//! Echo throughput of a supervised WebSocket: messages per second through `supervise` against the
//! same exchange written by hand with tokio-tungstenite.
//!
//! The echo server runs on its own OS thread with its own current-thread runtime, like a remote
//! process: a plain tokio-tungstenite loop that writes back every text or binary message it
//! reads. Each sample is one connection: the client sends `MESSAGES` numbered messages while
//! reading the echoes concurrently, and checks that every echo came back in order. The time from
//! the first send to the last echo is the sample.
//!
//! Implementations:
//!
//! - `nursery`: `supervise(WsConnection, body)` with the default `WsConfig`; the body sends with
//!   `send` and reads with `recv`, joined in one future;
//! - `ws_baseline`: what a user writes by hand: the tokio-tungstenite stream split into its sink
//!   and its stream (`StreamExt::split`), the two halves joined in one future.
//!
//! Cases: payloads of 64 bytes and 1 KiB, on the current-thread runtime and the multi-thread
//! runtime with 2 workers. Samples of the two implementations alternate, after one warm-up
//! sample each. The row value is the median time per echoed message in ns (lower is better);
//! `msgs_per_s` is its inverse, and `spread_pct` the spread of the samples around the median.
//! Quick mode (`NURSERY_BENCH_QUICK=1`) takes 5 samples of 5,000 messages per case and
//! implementation, full mode 9 samples of 20,000.
//!
//! ```text
//! cargo bench -p nursery-benches --bench echo_throughput
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nursery_benches::{quick, Measurement, Row};
use nursery_net::tungstenite::Message;
use nursery_net::{supervise, ConnectionLost, WsConfig, WsConnection};
use tokio::net::{TcpListener, TcpStream};

/// Bound on one sample, so that a broken connection fails the run instead of hanging it.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(60);

const RUNTIMES: [&str; 2] = ["current_thread", "multi_thread"];
const PAYLOADS: [usize; 2] = [64, 1024];
const IMPLEMENTATIONS: [&str; 2] = ["nursery", "ws_baseline"];

/// Starts the echo server on its own thread; it serves every connection until it closes.
fn start_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("server address");
    std::thread::Builder::new()
        .name("echo-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("server listener");
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(echo(socket));
                }
            });
        })
        .expect("spawn the server thread");
    addr
}

async fn echo(socket: TcpStream) {
    socket.set_nodelay(true).expect("nodelay");
    let Ok(ws) = tokio_tungstenite::accept_async(socket).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    while let Some(Ok(message)) = stream.next().await {
        let reply = match message {
            Message::Text(_) | Message::Binary(_) => message,
            Message::Close(_) => break,
            _ => continue,
        };
        if sink.send(reply).await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Message `i`: its number first, padded to `size` bytes.
fn message(i: usize, size: usize) -> String {
    let mut text = format!("{i:010}");
    text.extend(std::iter::repeat_n('x', size.saturating_sub(text.len())));
    text
}

fn number_of(text: &str) -> usize {
    text[..10].parse().expect("a numbered echo")
}

/// One sample through `supervise`: the time from the first send to the last echo.
async fn sample_nursery(addr: SocketAddr, messages: usize, size: usize) -> Duration {
    let conn = WsConnection::connect(format!("ws://{addr}/"), WsConfig::new())
        .await
        .expect("connect");
    let start = Instant::now();
    let out: Result<Duration, ConnectionLost> = supervise(conn, |conn| async move {
        let sender = async {
            for i in 0..messages {
                conn.send_text(message(i, size)).await?;
            }
            Ok::<_, ConnectionLost>(())
        };
        let receiver = async {
            for expected in 0..messages {
                match conn.recv().await? {
                    Message::Text(text) => assert_eq!(number_of(&text), expected),
                    other => panic!("unexpected echo {other:?}"),
                }
            }
            Ok::<_, ConnectionLost>(start.elapsed())
        };
        let ((), elapsed) = tokio::try_join!(sender, receiver)?;
        Ok(elapsed)
    })
    .await;
    out.expect("the echo exchange")
}

/// One sample written by hand: the stream split in two halves, joined.
async fn sample_baseline(addr: SocketAddr, messages: usize, size: usize) -> Duration {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream)
        .await
        .expect("handshake");
    let (mut sink, mut stream) = ws.split();
    let start = Instant::now();
    let sender = async {
        for i in 0..messages {
            sink.send(Message::text(message(i, size))).await?;
        }
        Ok::<_, nursery_net::tungstenite::Error>(())
    };
    let receiver = async {
        for expected in 0..messages {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => assert_eq!(number_of(&text), expected),
                other => panic!("unexpected echo {other:?}"),
            }
        }
        Ok(start.elapsed())
    };
    let ((), elapsed) = tokio::try_join!(sender, receiver).expect("the echo exchange");
    let _ = sink.close().await;
    elapsed
}

async fn sample(imp: &str, addr: SocketAddr, messages: usize, size: usize) -> Duration {
    let run = async {
        match imp {
            "nursery" => sample_nursery(addr, messages, size).await,
            _ => sample_baseline(addr, messages, size).await,
        }
    };
    tokio::time::timeout(SAMPLE_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("{imp}: no echo within {SAMPLE_TIMEOUT:?}"))
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    let mut builder = if name == "current_thread" {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    builder.enable_all().build().expect("client runtime")
}

/// Median and spread (max - min, in percent of the median) of per-message times in ns.
fn summarize(mut per_message_ns: Vec<f64>) -> (f64, f64) {
    per_message_ns.sort_by(f64::total_cmp);
    let median = per_message_ns[per_message_ns.len() / 2];
    let spread = per_message_ns[per_message_ns.len() - 1] - per_message_ns[0];
    (median, 100.0 * spread / median)
}

fn main() {
    let (samples, messages) = if quick() { (5, 5_000) } else { (9, 20_000) };
    let addr = start_server();
    let mut rows = Vec::new();
    for rt_name in RUNTIMES {
        let rt = runtime(rt_name);
        for size in PAYLOADS {
            let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            for round in 0..=samples {
                for (k, imp) in IMPLEMENTATIONS.iter().enumerate() {
                    // The client loop is a spawned task, as in an application.
                    let elapsed = rt
                        .block_on(async { tokio::spawn(sample(imp, addr, messages, size)).await })
                        .expect("the sample task");
                    if round > 0 {
                        times[k].push(elapsed.as_nanos() as f64 / messages as f64);
                    }
                }
            }
            for (k, imp) in IMPLEMENTATIONS.iter().enumerate() {
                let (median, spread) = summarize(std::mem::take(&mut times[k]));
                rows.push(
                    Row::new(format!("{rt_name}, {size} B"), *imp, median)
                        .with("msgs_per_s", 1e9 / median)
                        .with("spread_pct", spread),
                );
            }
        }
    }
    Measurement {
        workload: "echo_throughput".into(),
        title: "Echo throughput of a supervised WebSocket".into(),
        metric: "ns per echoed message (median)".into(),
        rows,
        notes: vec![format!(
            "{samples} samples of {messages} messages per case and implementation, alternating, \
             after one warm-up sample each; the echo server runs on its own thread."
        )],
    }
    .write()
    .expect("write the measurement");
}
