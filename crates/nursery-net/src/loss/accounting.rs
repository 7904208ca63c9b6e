/// What a connection hands back at its end: every message that was not delivered both ways,
/// each in exactly one state, in order. Taken once, after supervision, with
/// [`WsConnection::take_accounting`](crate::WsConnection::take_accounting) or
/// [`TcpConnection::take_accounting`](crate::TcpConnection::take_accounting).
///
/// The identities it keeps (`M` is the transport's message type):
///
/// - inbound: every message the library received in full was read by the body or is in
///   [`unread`](Self::unread): `received == read + unread.len()`. Bytes of a message not yet
///   received in full when the connection was lost are not a message and are not counted.
/// - outbound: every message given to `send` either was handed to the socket (counted in
///   [`written`](Self::written); the most recent of them are listed in
///   [`in_flight`](Self::in_flight)) or is in [`unsent`](Self::unsent). An unsent message never
///   reached the socket: sending it again cannot duplicate it. An in-flight message reached the
///   kernel (or had started to: a frame cut short by the loss counts as in flight, because its
///   first bytes may have been delivered and the library cannot prove otherwise); the peer may or
///   may not have it, and no acknowledgement exists to tell.
///
/// `in_flight` lists the last written messages whose sizes add up to the connection's in-flight
/// window ([`WsConfig::in_flight_window`](crate::WsConfig::in_flight_window), 4 MiB by default:
/// Linux's largest automatic TCP send buffer, the most unacknowledged data the local kernel holds).
/// Messages written before those are counted in `written` only.
///
/// # Examples
///
/// ```
/// use futures_util::SinkExt;
/// use nursery_net::tungstenite::{protocol::Role, Message};
/// use nursery_net::{supervise, ConnectionLost, WsConfig, WsConnection};
/// use tokio_tungstenite::WebSocketStream;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (client, server) = tokio::io::duplex(64 * 1024);
/// let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
/// let mut server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
/// let conn = WsConnection::from_stream(client, WsConfig::new());
/// let handle = conn.clone();
///
/// // The peer sends three results and closes; the body is busy and reads none of them.
/// tokio::spawn(async move {
///     for n in 1..=3 {
///         server.send(Message::text(format!("result {n}"))).await.unwrap();
///     }
///     server.close(None).await.unwrap();
/// });
/// let out = supervise(conn, |_conn| async move {
///     std::future::pending::<Result<(), ConnectionLost>>().await
/// })
/// .await;
/// assert!(out.unwrap_err().reason.is_peer_closed());
///
/// let accounting = handle.take_accounting().expect("supervision ended");
/// assert_eq!(accounting.unread.len(), 3); // nothing dropped: handed back in order
/// assert_eq!(accounting.unread[0], Message::text("result 1"));
/// assert_eq!(accounting.received, accounting.read + 3);
/// assert!(handle.take_accounting().is_none()); // handed back once
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accounting<M> {
    /// Received in full, never read by the body, in the order they arrived.
    pub unread: Vec<M>,
    /// Given to `send` and never handed to the socket, in the order they were sent: safe to
    /// send again (see [`Reconnect::replay_unsent`](crate::Reconnect::replay_unsent)).
    pub unsent: Vec<M>,
    /// The most recent messages handed to the socket (see the window above), oldest first:
    /// delivered or not, nobody can tell.
    pub in_flight: Vec<M>,
    /// How many messages the library received in full.
    pub received: u64,
    /// How many of them the body read.
    pub read: u64,
    /// How many messages were handed to the socket.
    pub written: u64,
}

impl<M> Accounting<M> {
    pub(crate) fn new(received: u64, read: u64, written: u64) -> Self {
        Accounting {
            unread: Vec::new(),
            unsent: Vec::new(),
            in_flight: Vec::new(),
            received,
            read,
            written,
        }
    }

    /// Whether nothing is left: no unread, unsent or in-flight message.
    ///
    /// ```
    /// # use nursery_net::tungstenite::protocol::Role;
    /// # use nursery_net::{supervise, ConnectionLost, WsConfig, WsConnection};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (client, server) = tokio::io::duplex(1024);
    /// drop(server); // nobody on the other side
    /// let client = tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, None).await;
    /// let conn = WsConnection::from_stream(client, WsConfig::new());
    /// let handle = conn.clone();
    /// let _ = supervise(conn, |_c| async { Ok::<_, ConnectionLost>(()) }).await;
    /// assert!(handle.take_accounting().unwrap().is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.unread.is_empty() && self.unsent.is_empty() && self.in_flight.is_empty()
    }
}
