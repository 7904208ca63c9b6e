use std::future::Future;

use crate::loss::reason::LossReason;
use crate::loss::signal::LossSignal;

/// A connection whose loss can be detected: what [`supervise`](crate::supervise) and
/// [`Reconnect`](crate::Reconnect) need to know about it.
///
/// [`TcpConnection`](crate::TcpConnection) and [`WsConnection`](crate::WsConnection)
/// implement it; implement it for a connection of your own (an RPC session, a driver's
/// handle) to supervise it the same way. A connection is a cheap `Clone` handle (usually an
/// `Arc` inside): the body, the watcher and the cleanup each hold one.
///
/// # Examples
///
/// A connection whose loss is reported only through its [`LossSignal`] (a driver callback):
///
/// ```
/// use std::future::Future;
/// use nursery_net::{supervise, Connection, ConnectionLost, LossReason, LossSignal};
///
/// #[derive(Clone, Default)]
/// struct DriverConn { signal: LossSignal }
///
/// impl Connection for DriverConn {
///     fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
///         std::future::pending() // nothing to drive: the callback fires the signal
///     }
///     fn close(&self) -> impl Future<Output = ()> + Send + 'static {
///         async { /* tell the driver to disconnect */ }
///     }
///     fn loss_signal(&self) -> &LossSignal {
///         &self.signal
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let conn = DriverConn::default();
/// let out = supervise(conn, |conn| async move {
///     conn.signal.trigger("driver: link down");
///     std::future::pending::<Result<(), ConnectionLost>>().await
/// })
/// .await;
/// assert!(out.unwrap_err().reason.is_external());
/// # }
/// ```
pub trait Connection: Clone + Send + Sync + 'static {
    /// Drives the connection (reads, heartbeats, idle checks) until it is lost, and returns
    /// why. The supervisor runs it as a child task next to the body and drops it when the body
    /// finishes; it must be cancel safe. A connection with nothing to drive returns
    /// `std::future::pending()` and reports losses through its [`LossSignal`].
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static;

    /// Closes the connection gracefully (close handshake, flush, shutdown). The supervisor
    /// calls it once, after the body and the watcher have finished, on every exit path,
    /// shielded from the cancellation that ended the body, and drops it when its close timeout
    /// passes: dropping it must release the connection. (A body that wants to end the
    /// connection returns; it does not call `close` itself.)
    fn close(&self) -> impl Future<Output = ()> + Send + 'static;

    /// The connection's loss latch: fired by the transport when it detects a loss, and by
    /// anyone else (a synchronous callback on any thread) to force the body out.
    fn loss_signal(&self) -> &LossSignal;

    /// Hands the messages this connection never wrote to `next`, which writes them first, in
    /// order; returns how many. [`Reconnect`](crate::Reconnect) calls it after each reconnect
    /// when [`replay_unsent`](crate::Reconnect::replay_unsent) is on. The default moves
    /// nothing; [`WsConnection`](crate::WsConnection) moves its unsent messages (TCP has none:
    /// its `send` writes directly).
    ///
    /// ```
    /// use nursery_net::{Connection, LossReason, LossSignal};
    /// # #[derive(Clone, Default)] struct C { signal: LossSignal }
    /// # impl Connection for C {
    /// #     fn watch(&self) -> impl std::future::Future<Output = LossReason> + Send + 'static { std::future::pending() }
    /// #     fn close(&self) -> impl std::future::Future<Output = ()> + Send + 'static { async {} }
    /// #     fn loss_signal(&self) -> &LossSignal { &self.signal }
    /// # }
    /// assert_eq!(C::default().replay_unsent(&C::default()), 0);
    /// ```
    fn replay_unsent(&self, next: &Self) -> usize {
        let _ = next;
        0
    }
}
