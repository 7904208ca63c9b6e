use std::future::Future;

/// The setup step a [`Reconnect`](crate::Reconnect) runs on every new connection, under
/// supervision, before the body: authenticate, subscribe again. Implemented for closures
/// `Fn(C) -> impl Future<Output = Result<(), E>>` (give one to
/// [`Reconnect::setup`](crate::Reconnect::setup)) and for [`NoSetup`]; there is no need to
/// implement it yourself.
///
/// # Examples
///
/// ```
/// use nursery_net::{ConnectionLost, Setup, WsConnection};
///
/// fn check<S: Setup<WsConnection, ConnectionLost>>(_: &S) {}
/// check(&|conn: WsConnection| async move { conn.send_text("auth token").await });
/// check(&nursery_net::NoSetup);
/// ```
pub trait Setup<C, E> {
    /// Runs the step on `conn`.
    fn setup(&self, conn: C) -> impl Future<Output = Result<(), E>>;
}

impl<C, E, F, Fut> Setup<C, E> for F
where
    F: Fn(C) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    fn setup(&self, conn: C) -> impl Future<Output = Result<(), E>> {
        self(conn)
    }
}

/// No setup step: the default of [`Reconnect`](crate::Reconnect).
///
/// # Examples
///
/// ```
/// let _reconnect: nursery_net::Reconnect<nursery_net::NoSetup> = nursery_net::Reconnect::new();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSetup;

impl<C, E> Setup<C, E> for NoSetup {
    fn setup(&self, _conn: C) -> impl Future<Output = Result<(), E>> {
        std::future::ready(Ok(()))
    }
}
