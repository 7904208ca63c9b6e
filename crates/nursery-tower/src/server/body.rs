//! The response body hyper streams: frames relayed from the request's child task.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;
use tokio_nursery::CancelHandle;

use crate::context::{BoxError, CLIENT_DISCONNECTED};
use crate::server::task::Msg;
use crate::wire::response::Protocol;

/// The response body of a [`ServerService`](crate::ServerService): the service's own body,
/// relayed frame by frame from the request's scope, which stays open until the last frame is
/// sent. A deadline in the middle of a gRPC stream ends it with `grpc-status: 4` in the trailers;
/// for plain HTTP the body ends with an error, so the client sees it incomplete.
///
/// # Drop behavior
///
/// Dropping it before its end (hyper does when the client goes away) cancels the request's scope
/// with [`CLIENT_DISCONNECTED`]; the request's cleanups then run in the server's root nursery.
///
/// ```
/// use http_body::Body;
/// let body = nursery_tower::ScopedBody::<bytes::Bytes>::empty();
/// assert!(body.is_end_stream());
/// ```
#[derive(Debug)]
pub struct ScopedBody<D> {
    inner: Inner<D>,
}

#[derive(Debug)]
enum Inner<D> {
    Empty,
    Relay {
        rx: mpsc::Receiver<Msg<D>>,
        scope: CancelHandle,
        protocol: Protocol,
        /// The service's body's size hint: the relay carries exactly its frames.
        hint: SizeHint,
        done: bool,
    },
}

impl<D> ScopedBody<D> {
    /// A body with no frames (the responses the layer writes itself).
    ///
    /// ```
    /// let _ = nursery_tower::ScopedBody::<bytes::Bytes>::empty();
    /// ```
    pub fn empty() -> Self {
        ScopedBody {
            inner: Inner::Empty,
        }
    }

    pub(crate) fn relay(
        rx: mpsc::Receiver<Msg<D>>,
        scope: CancelHandle,
        protocol: Protocol,
        hint: SizeHint,
    ) -> Self {
        ScopedBody {
            inner: Inner::Relay {
                rx,
                scope,
                protocol,
                hint,
                done: false,
            },
        }
    }
}

impl<D: bytes::Buf> Body for ScopedBody<D> {
    type Data = D;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<D>, BoxError>>> {
        let Inner::Relay {
            rx, done, protocol, ..
        } = &mut self.get_mut().inner
        else {
            return Poll::Ready(None);
        };
        if *done {
            return Poll::Ready(None);
        }
        match rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Msg::Frame(frame))) => {
                *done = frame.is_trailers();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Msg::Error(e))) => {
                *done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Msg::Failure(failure))) => {
                *done = true;
                Poll::Ready(Some(match protocol {
                    Protocol::Grpc => Ok(Frame::trailers(failure.grpc_trailers())),
                    Protocol::Http => Err(Box::new(failure.error())),
                }))
            }
            Poll::Ready(None) => {
                *done = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Relay { done, .. } => *done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Relay { done: true, .. } => SizeHint::with_exact(0),
            Inner::Relay { hint, .. } => *hint,
        }
    }
}

impl<D> Drop for ScopedBody<D> {
    fn drop(&mut self) {
        if let Inner::Relay {
            scope, done: false, ..
        } = &self.inner
        {
            scope.cancel_with(CLIENT_DISCONNECTED);
        }
    }
}
