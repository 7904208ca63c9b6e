//! Shared helpers for the integration tests: the application error type, a connection wrapper
//! that counts closes, an event recorder, and loopback peers.
#![allow(dead_code, unreachable_pub)]

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nursery_net::{Connection, ConnectionLost, Event, LossReason, LossSignal};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;

/// The application's error type: a lost connection is its own variant.
#[derive(Debug, Clone, PartialEq)]
pub enum AppError {
    ConnectionLost(ConnectionLost),
    Connect(String),
    Body(&'static str),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::ConnectionLost(lost) => lost.fmt(f),
            AppError::Connect(e) => write!(f, "connect failed: {e}"),
            AppError::Body(e) => write!(f, "body failed: {e}"),
        }
    }
}

impl From<ConnectionLost> for AppError {
    fn from(lost: ConnectionLost) -> Self {
        AppError::ConnectionLost(lost)
    }
}

impl AppError {
    /// The loss reason, panicking on any other error.
    pub fn reason(&self) -> &LossReason {
        match self {
            AppError::ConnectionLost(lost) => &lost.reason,
            other => panic!("expected ConnectionLost, got {other:?}"),
        }
    }
}

/// Wraps a connection and counts how many times its close started and finished.
#[derive(Clone, Debug)]
pub struct Counted<C> {
    pub conn: C,
    pub closes: Arc<AtomicUsize>,
    pub finished: Arc<AtomicUsize>,
}

impl<C> Counted<C> {
    pub fn new(conn: C) -> Self {
        Counted {
            conn,
            closes: Arc::default(),
            finished: Arc::default(),
        }
    }

    pub fn closes(&self) -> usize {
        self.closes.load(Ordering::SeqCst)
    }

    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
}

impl<C: Connection> Connection for Counted<C> {
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        self.conn.watch()
    }

    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        let closes = self.closes.clone();
        let finished = self.finished.clone();
        let close = self.conn.close();
        async move {
            closes.fetch_add(1, Ordering::SeqCst);
            close.await;
            finished.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn loss_signal(&self) -> &LossSignal {
        self.conn.loss_signal()
    }
}

/// Records events with the instant they happened.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<(Instant, Event)>>>);

impl Events {
    pub fn new() -> Self {
        Self::default()
    }

    /// The callback for `on_event`.
    pub fn observer(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let log = self.0.clone();
        move |e| log.lock().unwrap().push((Instant::now(), e.clone()))
    }

    pub fn all(&self) -> Vec<Event> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub fn timed(&self) -> Vec<(Instant, Event)> {
        self.0.lock().unwrap().clone()
    }

    pub fn closed(&self) -> Vec<Event> {
        let all = self.all();
        all.into_iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .collect()
    }

    /// Short names of the events, for order assertions.
    pub fn names(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|e| match e {
                Event::Connecting { attempt } => format!("connecting {attempt}"),
                Event::Connected { attempt } => format!("connected {attempt}"),
                Event::ConnectFailed { attempt, .. } => format!("connect failed {attempt}"),
                Event::Closed {
                    attempt, timed_out, ..
                } => {
                    if *timed_out {
                        format!("close timed out {attempt}")
                    } else {
                        format!("closed {attempt}")
                    }
                }
                Event::Lost { attempt, reason } => format!("lost {attempt}: {}", reason.label()),
                Event::Retrying { attempt, .. } => format!("retrying {attempt}"),
                Event::SetupFailed { attempt, .. } => format!("setup failed {attempt}"),
                Event::GaveUp { attempts, .. } => format!("gave up {attempts}"),
                other => format!("{other:?}"),
            })
            .collect()
    }
}

/// A loopback listener on an ephemeral port.
pub async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// The `ws://` URL of a loopback address.
pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

/// Accepts one connection and performs the server side of the WebSocket handshake.
pub async fn accept_ws(listener: &TcpListener) -> WebSocketStream<TcpStream> {
    let (socket, _) = listener.accept().await.expect("accept");
    tokio_tungstenite::accept_async(socket)
        .await
        .expect("server handshake")
}

/// Accepts one connection, handshakes, and hands back the raw socket: the test then writes
/// whatever bytes it likes (invalid frames).
pub async fn accept_ws_raw(listener: &TcpListener) -> TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut socket, _) = listener.accept().await.expect("accept");
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.expect("read request");
        assert!(n > 0, "client hung up during the handshake");
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let key = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_string())
        })
        .expect("Sec-WebSocket-Key");
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    socket
        .write_all(response.as_bytes())
        .await
        .expect("write response");
    socket
}

/// A connection of the test's own: lost only through its signal; its close takes `close_takes`.
#[derive(Clone, Debug, Default)]
pub struct Fake {
    pub signal: LossSignal,
    pub close_takes: std::time::Duration,
}

impl Connection for Fake {
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        std::future::pending()
    }

    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep(self.close_takes)
    }

    fn loss_signal(&self) -> &LossSignal {
        &self.signal
    }
}

/// A client `WsConnection` and the server end of an in-memory WebSocket (no kernel in
/// between): for exact timings on the paused clock.
pub async fn ws_pair(
    config: nursery_net::WsConfig,
) -> (
    nursery_net::WsConnection,
    WebSocketStream<tokio::io::DuplexStream>,
) {
    use tokio_tungstenite::tungstenite::protocol::Role;
    let (client, server) = tokio::io::duplex(64 * 1024);
    let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
    let server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
    (
        nursery_net::WsConnection::from_stream(client, config),
        server,
    )
}
