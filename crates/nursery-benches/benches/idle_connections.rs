//! CPU and memory of 10 000 idle supervised WebSocket connections with 1 s heartbeats, against
//! the same connections kept alive by hand.
//!
//! Three roles, one binary (re-executed with `std::env::current_exe()`):
//!
//! - the orchestrator (what `cargo bench` starts) runs one client process per case, so that
//!   each case's memory figures are its own, and collects their rows;
//! - a client process starts a server process, connects 10 000 WebSocket connections to it
//!   (in batches, each connect bounded by a timeout), lets them settle, and measures its own
//!   CPU time (`utime + stime` from `/proc/self/stat`, divided by the wall time of the window:
//!   percent of one core) and resident memory (`VmRSS`, and `VmHWM` as an extra, from
//!   `/proc/self/status`) at the end of the window;
//! - the server process accepts the connections on 127.0.0.1 and reads them in a plain
//!   tokio-tungstenite loop, which answers every ping with a pong. It counts the pings, so
//!   the client can report how many heartbeats actually went out during the window. It exits
//!   when its stdin closes (the client ended, however it ended); the client also kills it.
//!
//! Implementations (client side):
//!
//! - `nursery`: `supervise(WsConnection, body)` per connection, each on its own spawned task,
//!   with `WsConfig::new().heartbeat(Heartbeat::new(1 s, 5 s))` and a body that just waits;
//! - `ws_baseline`: what a user writes by hand: a tokio-tungstenite client with the default
//!   `WebSocketConfig`, on a spawned task that sends a ping every second
//!   (`tokio::time::interval`) and reads pongs, giving up after 5 s without one;
//! - `ws_baseline_4k`: the same with a 4 KiB read buffer (`WsConfig`'s default, against
//!   tungstenite's 128 KiB), to tell the buffer from the rest of the machinery.
//!
//! Besides the headline (percent of one core, lower is better), each row carries `rss_mb`,
//! `hwm_mb`, the user and system parts of the CPU time, the pings the server answered per
//! second during the window (about 10 000 when every heartbeat goes out), the connections
//! lost during the window, and how long connecting took.
//!
//! Cases: the multi-thread runtime (2 workers) and the current-thread runtime. The window is
//! 30 s (10 s in quick mode, `NURSERY_BENCH_QUICK=1`), after 5 s (3 s) of settling. The
//! soft limit on open files must allow 10 000 sockets per process (the run fails with a clear
//! message otherwise).
//!
//! ```text
//! cargo bench -p nursery-benches --bench idle_connections
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nursery_benches::{quick, Measurement, Row};
use nursery_net::tungstenite::protocol::WebSocketConfig;
use nursery_net::tungstenite::Message;
use nursery_net::{supervise, ConnectionLost, Heartbeat, WsConfig, WsConnection};
use tokio::net::{TcpSocket, TcpStream};

/// Selects the role of a re-executed process: `server`, or `client:<runtime>:<implementation>`.
const ROLE_ENV: &str = "NURSERY_IDLE_ROLE";

const CONNECTIONS: usize = 10_000;
/// Connects in flight at once.
const BATCH: usize = 200;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// Linux reports `utime`/`stime` in `USER_HZ` ticks, fixed at 100 for the `/proc` ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// Set once the window is measured: losses after it (the server going away) are expected.
static MEASURED: AtomicBool = AtomicBool::new(false);

const RUNTIMES: [&str; 2] = ["multi_thread", "current_thread"];
const IMPLEMENTATIONS: [&str; 3] = ["nursery", "ws_baseline", "ws_baseline_4k"];

fn main() {
    // Command-line arguments (`--bench`, `--quick`, filters) are ignored.
    match std::env::var(ROLE_ENV) {
        Ok(role) if role == "server" => server(),
        Ok(role) if role.starts_with("client:") => {
            let mut parts = role.splitn(3, ':').skip(1);
            let runtime = parts.next().unwrap_or_default().to_owned();
            let implementation = parts.next().unwrap_or_default().to_owned();
            client(&runtime, &implementation);
        }
        Ok(role) => panic!("unknown {ROLE_ENV}={role}"),
        Err(_) => orchestrate(),
    }
}

/// The window and the settling time before it.
fn timing() -> (Duration, Duration) {
    if quick() {
        (Duration::from_secs(3), Duration::from_secs(10))
    } else {
        (Duration::from_secs(5), Duration::from_secs(30))
    }
}

// ---------------------------------------------------------------------------------------------
// Orchestrator.

fn orchestrate() {
    check_fd_limit();
    let started = Instant::now();
    let (settle, window) = timing();
    let exe = std::env::current_exe().expect("current_exe");
    let mut rows = Vec::new();
    for runtime in RUNTIMES {
        for implementation in IMPLEMENTATIONS {
            let case_started = Instant::now();
            let output = run_with_deadline(
                Command::new(&exe)
                    .env(ROLE_ENV, format!("client:{runtime}:{implementation}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit()),
                settle + window + Duration::from_secs(120),
            );
            let row: Row = output
                .lines()
                .find_map(|line| line.strip_prefix("ROW "))
                .map(|json| serde_json::from_str(json).expect("a row from the client"))
                .unwrap_or_else(|| {
                    panic!("the {runtime}/{implementation} client reported no result")
                });
            println!(
                "{runtime:<14} {implementation:<14} {:>6.2} % of one core ({:.2} user, {:.2} \
                 system)  RSS {:>7.1} MB  HWM {:>7.1} MB  {:>6.0} pings/s at the server  \
                 lost {}  ({:.1} s)",
                row.value,
                row.extra["user_percent"],
                row.extra["system_percent"],
                row.extra["rss_mb"],
                row.extra["hwm_mb"],
                row.extra["server_pings_per_s"],
                row.extra["lost"],
                case_started.elapsed().as_secs_f64()
            );
            rows.push(row);
        }
    }
    let measurement = Measurement {
        workload: "idle_connections".into(),
        title: format!("{CONNECTIONS} idle WebSocket connections, 1 s heartbeats: client CPU"),
        metric: "percent of one core".into(),
        rows,
        notes: vec![
            format!(
                "{CONNECTIONS} connections to a server in another process on 127.0.0.1; a ping \
                 every {HEARTBEAT_INTERVAL:?} from the client, answered by the server. CPU = \
                 utime + stime of the client process over a {window:?} window (after \
                 {settle:?} of settling) / wall time; rss_mb = VmRSS at the end of the window, \
                 hwm_mb = VmHWM (including the connect phase), in MiB."
            ),
            "nursery: `supervise` per connection with `WsConfig::new().heartbeat(1 s, 5 s)` \
             (4 KiB read buffer); ws_baseline: a tokio-tungstenite client with the default \
             `WebSocketConfig` (128 KiB read buffer) and a task that pings every second and \
             reads pongs; ws_baseline_4k: the same with a 4 KiB read buffer."
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

/// Runs a child to completion, killing it if it outlives `deadline`; returns its stdout.
fn run_with_deadline(command: &mut Command, deadline: Duration) -> String {
    let mut child = KillOnDrop(command.spawn().expect("spawn a client process"));
    let stdout = child.0.stdout.take().expect("client stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            out.push_str(&line);
            out.push('\n');
        }
        out
    });
    let started = Instant::now();
    loop {
        match child.0.try_wait().expect("wait for the client") {
            Some(status) if status.success() => break,
            Some(status) => panic!("a client process failed ({status})"),
            None if started.elapsed() > deadline => {
                panic!("a client process did not finish within {deadline:?}; killed")
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    reader.join().expect("client stdout reader")
}

/// A child process killed (and reaped) when this is dropped, also while unwinding a panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails with a clear message if this process may not open enough sockets.
fn check_fd_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .expect("Max open files in /proc/self/limits");
    let needed = CONNECTIONS + 100;
    if let Ok(soft) = soft.parse::<usize>() {
        assert!(
            soft >= needed,
            "the soft limit on open files is {soft} (`ulimit -n`); this benchmark needs at least \
             {needed} per process ({CONNECTIONS} sockets): raise it with `ulimit -n {needed}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Server.

fn server() {
    check_fd_limit();
    let pings = Arc::new(AtomicU64::new(0));
    // A backlog larger than a batch of connects (std's listener has 128: SYNs beyond it are
    // dropped and retried a second later).
    let socket = TcpSocket::new_v4().expect("server socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind the server");
    let addr = socket.local_addr().expect("server address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("server runtime");
    // Listening before the address is announced.
    let listener = {
        let _runtime = rt.enter();
        socket.listen(4096).expect("listen")
    };
    let counter = Arc::clone(&pings);
    std::thread::spawn(move || {
        rt.block_on(async move {
            // Small buffers: the server's own footprint stays out of the client's way.
            let config = WebSocketConfig::default().read_buffer_size(4096);
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let pings = Arc::clone(&counter);
                tokio::spawn(async move {
                    let _ = socket.set_nodelay(true);
                    let Ok(mut ws) =
                        tokio_tungstenite::accept_async_with_config(socket, Some(config)).await
                    else {
                        return;
                    };
                    // Reading answers pings: tungstenite writes the pong at the next read.
                    while let Some(Ok(message)) = ws.next().await {
                        if message.is_ping() {
                            pings.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
    });
    println!("LISTENING {addr}");
    std::io::stdout().flush().expect("flush stdout");
    // Commands on stdin: `pings` prints the count; the end of stdin ends the server.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "pings" {
            println!("PINGS {}", pings.load(Ordering::Relaxed));
            std::io::stdout().flush().expect("flush stdout");
        }
    }
    std::process::exit(0);
}

/// The server process, seen from the client.
struct Server {
    /// Killed when the client drops this, also while unwinding a panic.
    _child: KillOnDrop,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Server {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = KillOnDrop(
            Command::new(exe)
                .env(ROLE_ENV, "server")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn the server process"),
        );
        let stdin = child.0.stdin.take().expect("server stdin");
        let mut stdout = BufReader::new(child.0.stdout.take().expect("server stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the server address");
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("the server did not start: {line:?}"))
            .parse()
            .expect("server address");
        Server {
            _child: child,
            stdin,
            stdout,
            addr,
        }
    }

    /// Pings the server has answered so far.
    fn pings(&mut self) -> u64 {
        writeln!(self.stdin, "pings").expect("ask the server");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the server");
        line.trim()
            .strip_prefix("PINGS ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected answer from the server: {line:?}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Client.

/// User and system CPU time of this process, from `/proc/self/stat` (`utime`, `stime`).
fn cpu_time() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks = |i: usize| -> Duration {
        let n: u64 = fields[i].parse().expect("utime/stime");
        Duration::from_secs_f64(n as f64 / TICKS_PER_SECOND)
    };
    (ticks(11), ticks(12))
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"))
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn client(runtime: &str, implementation: &str) {
    check_fd_limit();
    let (settle, window) = timing();
    let rt = match runtime {
        "current_thread" => tokio::runtime::Builder::new_current_thread(),
        "multi_thread" => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        other => panic!("unknown runtime {other}"),
    }
    .enable_all()
    .build()
    .expect("client runtime");
    let mut server = Server::start();
    let addr = server.addr;
    let lost = Arc::new(AtomicUsize::new(0));
    let connect_started = Instant::now();
    let lost_in_task = Arc::clone(&lost);
    let implementation_owned = implementation.to_owned();
    rt.block_on(async move {
        tokio::spawn(async move {
            connect_all(&implementation_owned, addr, lost_in_task).await;
        })
        .await
        .expect("connecting failed");
    });
    let connect_s = connect_started.elapsed().as_secs_f64();
    // Blocking on a sleep drives a current-thread runtime; a multi-thread one runs on its
    // workers meanwhile.
    rt.block_on(async { tokio::time::sleep(settle).await });
    let lost_before = lost.load(Ordering::Relaxed);
    let pings_before = server.pings();
    let (cpu_before, wall_before) = (cpu_time(), Instant::now());
    rt.block_on(async { tokio::time::sleep(window).await });
    let (cpu_after, wall) = (cpu_time(), wall_before.elapsed());
    let pings = server.pings() - pings_before;
    let (rss_mb, hwm_mb) = memory_mb();
    let lost_in_window = lost.load(Ordering::Relaxed) - lost_before;
    let share = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
    let (user, system) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    let row = Row::new(
        format!("{runtime}, N={CONNECTIONS}"),
        implementation,
        share(user + system),
    )
    .with("user_percent", share(user))
    .with("system_percent", share(system))
    .with("rss_mb", rss_mb)
    .with("hwm_mb", hwm_mb)
    .with("server_pings_per_s", pings as f64 / wall.as_secs_f64())
    .with("connect_s", connect_s)
    .with("lost", lost_in_window as f64)
    .with("window_s", wall.as_secs_f64());
    println!("ROW {}", serde_json::to_string(&row).expect("row json"));
    std::io::stdout().flush().expect("flush stdout");
    MEASURED.store(true, Ordering::Relaxed);
    drop(server);
    // Skip tearing down 10 000 connections.
    std::process::exit(0);
}

/// Connects every connection, `BATCH` at a time, and leaves each running on its own task.
async fn connect_all(implementation: &str, addr: SocketAddr, lost: Arc<AtomicUsize>) {
    let url = format!("ws://{addr}/");
    let config = WsConfig::new().heartbeat(Heartbeat::new(HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT));
    let mut done = 0;
    while done < CONNECTIONS {
        let batch = BATCH.min(CONNECTIONS - done);
        let mut connects = Vec::with_capacity(batch);
        for _ in 0..batch {
            let (url, config, lost) = (url.clone(), config.clone(), Arc::clone(&lost));
            connects.push(match implementation {
                "nursery" => tokio::spawn(nursery_connection(url, config, lost)),
                "ws_baseline" => tokio::spawn(baseline_connection(addr, url, None, lost)),
                "ws_baseline_4k" => tokio::spawn(baseline_connection(
                    addr,
                    url,
                    Some(WebSocketConfig::default().read_buffer_size(4096)),
                    lost,
                )),
                other => panic!("unknown implementation {other}"),
            });
        }
        for connect in connects {
            connect.await.expect("a connect task panicked");
        }
        done += batch;
    }
}

async fn nursery_connection(url: String, config: WsConfig, lost: Arc<AtomicUsize>) {
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, WsConnection::connect(url, config))
        .await
        .expect("connect timed out")
        .expect("connect");
    tokio::spawn(async move {
        let out: Result<(), ConnectionLost> = supervise(conn, |_conn| std::future::pending()).await;
        if let Err(lost_error) = out {
            if lost.fetch_add(1, Ordering::Relaxed) == 0 && !MEASURED.load(Ordering::Relaxed) {
                eprintln!("idle_connections: a nursery connection was lost: {lost_error}");
            }
        }
    });
}

async fn baseline_connection(
    addr: SocketAddr,
    url: String,
    config: Option<WebSocketConfig>,
    lost: Arc<AtomicUsize>,
) {
    let ws = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        tokio_tungstenite::client_async_with_config(url, stream, config)
            .await
            .map(|(ws, _)| ws)
            .map_err(std::io::Error::other)
    })
    .await
    .expect("connect timed out")
    .expect("connect");
    tokio::spawn(async move {
        let mut ws = ws;
        let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_pong = tokio::time::Instant::now();
        let why = loop {
            tokio::select! {
                _ = tick.tick() => {
                    if last_pong.elapsed() > HEARTBEAT_INTERVAL + HEARTBEAT_TIMEOUT {
                        break "no pong".to_owned();
                    }
                    if let Err(e) = ws.send(Message::Ping(Default::default())).await {
                        break e.to_string();
                    }
                }
                message = ws.next() => match message {
                    Some(Ok(Message::Pong(_))) => last_pong = tokio::time::Instant::now(),
                    Some(Ok(Message::Close(_))) | None => break "closed".to_owned(),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break e.to_string(),
                },
            }
        };
        if lost.fetch_add(1, Ordering::Relaxed) == 0 && !MEASURED.load(Ordering::Relaxed) {
            eprintln!("idle_connections: a baseline connection was lost: {why}");
        }
    });
}
