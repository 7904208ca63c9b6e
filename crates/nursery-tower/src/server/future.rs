//! The future hyper polls for a request: it waits for the head the request's child sends.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use tokio::sync::{mpsc, oneshot};
use tokio_nursery::CancelHandle;

use crate::context::CLIENT_DISCONNECTED;
use crate::server::body::ScopedBody;
use crate::server::task::{Head, Msg};
use crate::wire::response::{Failure, Protocol};

/// The response future of a [`ServerService`](crate::ServerService).
///
/// # Cancel safety
///
/// Dropping it before it completes is how hyper reports a client that went away: the request's
/// scope is cancelled with [`CLIENT_DISCONNECTED`].
///
/// # Drop behavior
///
/// The request's handler is dropped at its current suspension point and its cleanups run once,
/// in the server's root nursery (which graceful shutdown waits for), not in this future.
#[must_use = "the response is only relayed while this future is polled"]
#[derive(Debug)]
pub struct ResponseFuture<D, SE> {
    state: State<D, SE>,
}

#[derive(Debug)]
enum State<D, SE> {
    Ready(Option<Response<ScopedBody<D>>>),
    Waiting {
        head: Option<oneshot::Receiver<Head<SE>>>,
        frames: Option<mpsc::Receiver<Msg<D>>>,
        scope: CancelHandle,
        protocol: Protocol,
    },
    Done,
}

impl<D, SE> ResponseFuture<D, SE> {
    pub(crate) fn ready(response: Response<ScopedBody<D>>) -> Self {
        ResponseFuture {
            state: State::Ready(Some(response)),
        }
    }

    pub(crate) fn waiting(
        head: oneshot::Receiver<Head<SE>>,
        frames: mpsc::Receiver<Msg<D>>,
        scope: CancelHandle,
        protocol: Protocol,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                head: Some(head),
                frames: Some(frames),
                scope,
                protocol,
            },
        }
    }
}

impl<D, SE> Future for ResponseFuture<D, SE> {
    type Output = Result<Response<ScopedBody<D>>, SE>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // No field is pinned: the receivers are `Unpin`.
        let this = self.get_mut();
        let out = match &mut this.state {
            State::Ready(response) => match response.take() {
                Some(response) => Ok(response),
                None => panic!("ResponseFuture polled after completion"),
            },
            State::Waiting {
                head,
                frames,
                scope,
                protocol,
            } => ready!(poll_head(head, frames, scope, *protocol, cx)),
            State::Done => panic!("ResponseFuture polled after completion"),
        };
        this.state = State::Done;
        Poll::Ready(out)
    }
}

/// The head from the child, or, if the child's scope ended before it, the failure it sent next.
fn poll_head<D, SE>(
    head: &mut Option<oneshot::Receiver<Head<SE>>>,
    frames: &mut Option<mpsc::Receiver<Msg<D>>>,
    scope: &CancelHandle,
    protocol: Protocol,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<ScopedBody<D>>, SE>> {
    if let Some(receiver) = head {
        match ready!(Pin::new(receiver).poll(cx)) {
            Ok(Ok((parts, hint))) => {
                let frames = frames.take().expect("frames taken only here");
                let body = ScopedBody::relay(frames, scope.clone(), protocol, hint);
                return Poll::Ready(Ok(Response::from_parts(parts, body)));
            }
            Ok(Err(error)) => return Poll::Ready(Err(error)),
            Err(_) => *head = None,
        }
    }
    let Some(receiver) = frames else {
        return Poll::Ready(Ok(Failure::Internal.response(protocol, ScopedBody::empty())));
    };
    let failure = match ready!(receiver.poll_recv(cx)) {
        Some(Msg::Failure(failure)) => failure,
        // The child ended without a word: the runtime is shutting down.
        _ => Failure::Unavailable,
    };
    Poll::Ready(Ok(failure.response(protocol, ScopedBody::empty())))
}

impl<D, SE> Drop for ResponseFuture<D, SE> {
    fn drop(&mut self) {
        if let State::Waiting { scope, .. } = &self.state {
            scope.cancel_with(CLIENT_DISCONNECTED);
        }
    }
}
