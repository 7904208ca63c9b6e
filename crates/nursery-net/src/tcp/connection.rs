use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::Mutex;

use crate::connect::deadline::Deadline;
use crate::connect::error::{ConnectError, ConnectStage};
use crate::connection::Connection;
use crate::error::ConnectionLost;
use crate::loss::accounting::Accounting;
use crate::loss::link::Link;
use crate::loss::liveness::{sleep_until, DeadlineTimer, Liveness, Tick};
use crate::loss::reason::LossReason;
use crate::loss::signal::LossSignal;
use crate::tcp::config::TcpConfig;
use crate::tls::{TlsConfig, TlsServerConfig};

/// The read half of the stream: a plain TCP socket's, or a TLS stream's.
type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half; its `shutdown` sends TLS `close_notify` before the FIN.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A supervised TCP connection: a cheap `Clone` handle.
///
/// Under supervision ([`supervise`](crate::supervise), [`Reconnect`](crate::Reconnect)), the
/// watcher reads the socket: received bytes wait for [`recv`](Self::recv), and the loss is
/// detected on EOF ([`LossReason::PeerClosed`]), on a reset or I/O error, on an unanswered
/// heartbeat or an idle timeout (see [`TcpConfig`]), or when the [`LossSignal`] fires.
/// [`send`](Self::send) writes directly. The close shuts the write side down (FIN) and releases
/// the socket.
///
/// `recv` only gets data while a supervisor drives the connection.
///
/// # Examples
///
/// ```no_run
/// use nursery_net::{supervise, ConnectionLost, TcpConfig, TcpConnection};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = TcpConnection::connect("127.0.0.1:7000", TcpConfig::new()).await?;
/// let result: Result<(), ConnectionLost> = supervise(conn, |conn| async move {
///     loop {
///         conn.send(b"tick\n").await?;
///         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///     }
/// })
/// .await;
/// println!("{}", result.unwrap_err()); // connection lost: peer closed the connection
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a connection does nothing until it is supervised"]
pub struct TcpConnection {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link<Vec<u8>>,
    /// `send` calls that started writing (the one a loss cut short included).
    written: std::sync::atomic::AtomicU64,
    taken: std::sync::atomic::AtomicBool,
    reader: Mutex<Option<Reader>>,
    writer: Mutex<Option<Writer>>,
    config: TcpConfig,
    peer_addr: SocketAddr,
    local_addr: SocketAddr,
}

impl fmt::Debug for TcpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConnection")
            .field("peer_addr", &self.inner.peer_addr)
            .field("local_addr", &self.inner.local_addr)
            .field("lost", &self.inner.link.signal.reason())
            .finish()
    }
}

impl TcpConnection {
    /// Connects to `addr` (Nagle's algorithm off), bounded by [`TcpConfig::connect_timeout`]
    /// (10 s by default). A failure is a typed [`ConnectError`] at the
    /// [`Tcp`](crate::ConnectStage::Tcp) stage (`Io`: refused, unreachable, a name that does
    /// not resolve; `Timeout`), never permanent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped midway, no socket is left open.
    ///
    /// # Drop behavior
    ///
    /// Dropping it abandons the connect.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), nursery_net::ConnectError> {
    /// let conn = nursery_net::TcpConnection::connect("127.0.0.1:7000", Default::default()).await?;
    /// println!("connected to {}", conn.peer_addr());
    /// # Ok(()) }
    /// ```
    pub async fn connect(
        addr: impl ToSocketAddrs,
        config: TcpConfig,
    ) -> Result<Self, ConnectError> {
        let io = |e| ConnectError::io(ConnectStage::Tcp, e);
        let connect = async { TcpStream::connect(addr).await.map_err(io) };
        let stream = Deadline::after(config.connect_timeout)
            .run(ConnectStage::Tcp, connect)
            .await?;
        stream.set_nodelay(true).map_err(io)?;
        Self::from_stream(stream, config).map_err(io)
    }

    /// Wraps an established stream (for example one accepted by a server).
    ///
    /// ```
    /// use tokio::net::{TcpListener, TcpStream};
    /// use nursery_net::{TcpConfig, TcpConnection};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let conn = TcpConnection::from_stream(client, TcpConfig::new())?;
    /// assert_eq!(conn.peer_addr(), listener.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn from_stream(stream: TcpStream, config: TcpConfig) -> io::Result<Self> {
        let peer_addr = stream.peer_addr()?;
        let local_addr = stream.local_addr()?;
        let (reader, writer) = stream.into_split();
        Ok(Self::from_halves(
            Box::new(reader),
            Box::new(writer),
            (peer_addr, local_addr),
            config,
        ))
    }

    /// Connects to `addr` and performs the TLS handshake for `server_name` (verified against
    /// the certificate, with `tls`'s roots), both within [`TcpConfig::connect_timeout`]. A
    /// rejected certificate or host name is a permanent [`ConnectError::Tls`]. Under
    /// supervision a peer's `close_notify` then EOF is a clean close, and an EOF without
    /// `close_notify` an abort; the close sends `close_notify`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped midway, no socket is left open.
    ///
    /// # Drop behavior
    ///
    /// Dropping it abandons the connect.
    ///
    /// ```no_run
    /// use nursery_net::{TcpConfig, TcpConnection, TlsConfig};
    /// # #[tokio::main] async fn main() -> Result<(), nursery_net::ConnectError> {
    /// let tls = TlsConfig::webpki_roots();
    /// let conn = TcpConnection::connect_tls("example.org:443", "example.org", &tls, TcpConfig::new()).await?;
    /// # drop(conn); Ok(()) }
    /// ```
    pub async fn connect_tls(
        addr: impl ToSocketAddrs,
        server_name: &str,
        tls: &TlsConfig,
        config: TcpConfig,
    ) -> Result<Self, ConnectError> {
        let io = |e| ConnectError::io(ConnectStage::Tcp, e);
        let deadline = Deadline::after(config.connect_timeout);
        let connect = async { TcpStream::connect(addr).await.map_err(io) };
        let stream = deadline.run(ConnectStage::Tcp, connect).await?;
        stream.set_nodelay(true).map_err(io)?;
        let addrs = (
            stream.peer_addr().map_err(io)?,
            stream.local_addr().map_err(io)?,
        );
        let handshake = crate::connect::tls::connect(tls, server_name, stream);
        let stream = deadline.run(ConnectStage::Tls, handshake).await?;
        let (reader, writer) = tokio::io::split(stream);
        Ok(Self::from_halves(
            Box::new(reader),
            Box::new(writer),
            addrs,
            config,
        ))
    }

    /// The server side of TLS on an accepted socket, within [`TcpConfig::connect_timeout`]
    /// (a client that never completes the handshake cannot hold the task).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped midway, the socket is closed.
    ///
    /// # Drop behavior
    ///
    /// Dropping it closes the socket.
    ///
    /// ```no_run
    /// use nursery_net::{TcpConfig, TcpConnection, TlsServerConfig};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = TlsServerConfig::from_pem(&std::fs::read("cert.pem")?, &std::fs::read("key.pem")?)?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:7443").await?;
    /// let (socket, _) = listener.accept().await?;
    /// let conn = TcpConnection::accept_tls(socket, &tls, TcpConfig::new()).await?;
    /// # drop(conn); Ok(()) }
    /// ```
    pub async fn accept_tls(
        socket: TcpStream,
        tls: &TlsServerConfig,
        config: TcpConfig,
    ) -> Result<Self, ConnectError> {
        let io = |e| ConnectError::io(ConnectStage::Tcp, e);
        let addrs = (
            socket.peer_addr().map_err(io)?,
            socket.local_addr().map_err(io)?,
        );
        let handshake = crate::connect::tls::accept(tls, socket);
        let stream = Deadline::after(config.connect_timeout)
            .run(ConnectStage::Tls, handshake)
            .await?;
        let (reader, writer) = tokio::io::split(stream);
        Ok(Self::from_halves(
            Box::new(reader),
            Box::new(writer),
            addrs,
            config,
        ))
    }

    fn from_halves(
        reader: Reader,
        writer: Writer,
        (peer_addr, local_addr): (SocketAddr, SocketAddr),
        config: TcpConfig,
    ) -> Self {
        TcpConnection {
            inner: Arc::new(Inner {
                link: Link::new(config.inbound_capacity, config.inbound_bytes),
                written: Default::default(),
                taken: Default::default(),
                reader: Mutex::new(Some(reader)),
                writer: Mutex::new(Some(writer)),
                config,
                peer_addr,
                local_addr,
            }),
        }
    }

    /// The peer's address.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = nursery_net::TcpConnection::connect("127.0.0.1:7000", Default::default()).await?;
    /// assert_eq!(conn.peer_addr().port(), 7000);
    /// # Ok(()) }
    /// ```
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr
    }

    /// The local address.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = nursery_net::TcpConnection::connect("127.0.0.1:7000", Default::default()).await?;
    /// assert!(conn.local_addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Writes all of `data`: `Ok` once every byte was written to the kernel (the peer may not
    /// have them yet). A write error is a loss: it is recorded (the body is then
    /// force-exited) and returned as [`ConnectionLost`]; so is a write on a connection already
    /// lost or closed.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped midway, part of `data` may have been written.
    ///
    /// # Drop behavior
    ///
    /// Dropping it releases the write lock; nothing else happens.
    ///
    /// ```no_run
    /// # async fn f(conn: nursery_net::TcpConnection) -> Result<(), nursery_net::ConnectionLost> {
    /// conn.send(b"hello\n").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, data: &[u8]) -> Result<(), ConnectionLost> {
        let link = &self.inner.link;
        link.check()?;
        let mut writer = self.inner.writer.lock().await;
        let Some(writer) = writer.as_mut() else {
            return Err(link.lost());
        };
        self.inner.written.fetch_add(1, Ordering::Relaxed);
        match writer.write_all(data).await {
            Ok(()) => {
                link.touch();
                Ok(())
            }
            Err(e) => Err(link.fail(LossReason::from_io(&e))),
        }
    }

    /// The next chunk of bytes received (chunk boundaries are those of the reads, not of the
    /// peer's writes). Chunks received before a loss are returned before the
    /// [`ConnectionLost`] while the body runs (see
    /// [`Supervisor::drain`](crate::Supervisor::drain)); the ones it did not read are handed
    /// back by [`take_accounting`](Self::take_accounting).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a chunk is taken only when it is returned.
    ///
    /// # Drop behavior
    ///
    /// Dropping it only releases the receive lock.
    ///
    /// ```no_run
    /// # async fn f(conn: nursery_net::TcpConnection) -> Result<(), nursery_net::ConnectionLost> {
    /// let chunk = conn.recv().await?;
    /// println!("{} bytes", chunk.len());
    /// # Ok(()) }
    /// ```
    pub async fn recv(&self) -> Result<Vec<u8>, ConnectionLost> {
        self.inner.link.recv().await
    }

    /// Registers `cleanup` to run once with the connection's close, with the loss reason
    /// (`None` after a normal exit), newest first, alongside the shutdown, within the
    /// supervisor's close timeout. As [`WsConnection::on_close`](crate::WsConnection::on_close).
    ///
    /// ```
    /// # async fn f(conn: nursery_net::TcpConnection) {
    /// conn.on_close(|reason| async move { println!("closed: {reason:?}") });
    /// # }
    /// ```
    pub fn on_close<F, Fut>(&self, cleanup: F)
    where
        F: FnOnce(Option<LossReason>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner.link.cleanups.push(cleanup);
    }

    /// Takes the connection's [`Accounting`] once its supervision has ended: the chunks
    /// received and never read, in order, and the counts. `None` while the connection is in
    /// use, and after the first call.
    ///
    /// TCP's `send` writes from the body's own buffer, directly: a `send` that returned `Ok`
    /// wrote every byte to the kernel, one that had not started writing when the body was
    /// force-exited wrote nothing, and the one (at most) that a loss cut short may have written
    /// a prefix. So `unsent` and `in_flight` stay empty, and `written` counts the `send` calls
    /// that started writing, the cut one included.
    ///
    /// ```no_run
    /// use nursery_net::{supervise, ConnectionLost, TcpConfig, TcpConnection};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = TcpConnection::connect("127.0.0.1:7000", TcpConfig::new()).await?;
    /// let handle = conn.clone();
    /// let _ = supervise(conn, |c| async move { c.recv().await.map(drop) }).await;
    /// let accounting = handle.take_accounting().unwrap();
    /// assert_eq!(accounting.received, accounting.read + accounting.unread.len() as u64);
    /// # Ok(()) }
    /// ```
    pub fn take_accounting(&self) -> Option<Accounting<Vec<u8>>> {
        let link = &self.inner.link;
        if !link.is_down() || self.inner.taken.load(Ordering::Acquire) {
            return None;
        }
        let (unread, received, read) = link.take_unread()?;
        if self.inner.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        let written = self.inner.written.load(Ordering::Relaxed);
        let mut accounting = Accounting::new(received, read, written);
        accounting.unread = unread;
        Some(accounting)
    }

    async fn drive(inner: Arc<Inner>) -> LossReason {
        let link = &inner.link;
        let mut reader = inner.reader.lock().await;
        let Some(reader) = reader.as_mut() else {
            return LossReason::LocallyClosed;
        };
        let heartbeat = inner.config.heartbeat.clone();
        let mut liveness = Liveness::new(
            heartbeat.as_ref().map(|(hb, _)| *hb),
            inner.config.idle_timeout,
        );
        let mut buf = vec![0u8; inner.config.read_buffer_size];
        let mut slot = None;
        let mut timer = DeadlineTimer::new();
        loop {
            if slot.is_none() {
                slot = link.try_room();
            }
            let can_read = slot.is_some();
            liveness.set_reading(can_read);
            timer.arm(liveness.next_deadline(link.traffic()));
            tokio::select! {
                permit = link.room(), if !can_read => {
                    let Some(permit) = permit else { return LossReason::LocallyClosed };
                    slot = Some(permit);
                }
                read = reader.read(&mut buf), if can_read => match read {
                    Ok(0) => return LossReason::eof(),
                    Ok(n) => {
                        liveness.inbound();
                        if let Some(permit) = slot.take() {
                            link.deliver(permit, buf[..n].to_vec());
                        }
                    }
                    Err(e) => return LossReason::from_io(&e),
                },
                () = timer.fired() => match liveness.on_deadline(link.traffic()) {
                    Tick::Nothing => {}
                    Tick::Lost(reason) => return reason,
                    Tick::Ping => {
                        let Some((_, ping)) = &heartbeat else { continue };
                        if let Err(reason) = Self::ping(&inner, &ping(), &liveness).await {
                            return reason;
                        }
                    }
                },
            }
        }
    }

    /// Writes a ping, unless the body is writing (then its write will do); gives up at the
    /// heartbeat deadline if the peer does not take it.
    async fn ping(inner: &Inner, ping: &[u8], liveness: &Liveness) -> Result<(), LossReason> {
        let Ok(mut writer) = inner.writer.try_lock() else {
            return Ok(());
        };
        let Some(writer) = writer.as_mut() else {
            return Err(LossReason::LocallyClosed);
        };
        tokio::select! {
            written = writer.write_all(ping) => written.map_err(|e| LossReason::from_io(&e)),
            () = sleep_until(liveness.dead_at()) => {
                let timeout = inner.config.get_heartbeat().map(|hb| hb.timeout()).unwrap_or_default();
                Err(LossReason::HeartbeatTimeout { timeout })
            }
        }
    }

    async fn close_inner(inner: Arc<Inner>) {
        inner.link.mark_closed();
        let reason = inner.link.signal.reason();
        tokio::join!(Self::shutdown(&inner), inner.link.cleanups.run(reason));
    }

    async fn shutdown(inner: &Inner) {
        let writer = inner.writer.lock().await.take();
        if let Some(mut writer) = writer {
            // Best effort: the peer may be gone already.
            let _ = writer.shutdown().await;
        }
        if let Some(mut reader) = inner.reader.lock().await.take() {
            // After a reset the driver may not have read what the kernel still holds (the
            // body's write found the reset first): take it before the socket goes. Other
            // losses leave the read-ahead as it was.
            if inner.link.signal.reason().is_some_and(|r| r.is_reset()) {
                drain_readable(&mut reader, inner);
            }
        }
    }
}

/// Takes what the socket still holds without waiting, before it is dropped: bytes the peer sent
/// that nobody read (after a reset found by a write, while they sat in the kernel). They are
/// handed back as unread instead of being dropped with the socket; bounded by the
/// read-ahead's byte bound, in case the peer is in fact still sending.
fn drain_readable(reader: &mut Reader, inner: &Inner) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut budget = inner.config.inbound_bytes;
    let mut buf = vec![0u8; inner.config.read_buffer_size.max(1)];
    while budget > 0 {
        let mut read = tokio::io::ReadBuf::new(&mut buf);
        match std::pin::Pin::new(&mut *reader).poll_read(&mut cx, &mut read) {
            std::task::Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                budget = budget.saturating_sub(read.filled().len());
                inner.link.deliver_after_loss(read.filled().to_vec());
            }
            _ => break,
        }
    }
}

impl Connection for TcpConnection {
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        Self::drive(Arc::clone(&self.inner))
    }

    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        Self::close_inner(Arc::clone(&self.inner))
    }

    fn loss_signal(&self) -> &LossSignal {
        &self.inner.link.signal
    }
}
