//! The request's child task, spawned into the server's root nursery: it calls the service inside
//! the request's cancel scope and nursery, and relays the response head and body to hyper. What
//! happens after the scope ends (a deadline, a failure) is decided here, outside the scope.

use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::pin::pin;

use futures_util::FutureExt;
use http::response::Parts;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};
use tokio_nursery::{nursery, CancelHandle, CancelScope};
use tower_service::Service;

use crate::context::{BoxError, ChildError, RequestCancel, RequestContext, CLIENT_DISCONNECTED};
use crate::wire::response::Failure;

/// A body frame or the error that ended the body.
#[derive(Debug)]
pub(crate) enum Msg<D> {
    Frame(Frame<D>),
    Error(BoxError),
    /// The scope ended early: sent after the head (then it ends the body) or instead of it.
    Failure(Failure),
}

/// The response head with its body's size hint (so hyper can send a `content-length`), or the
/// service's own error.
pub(crate) type Head<SE> = Result<(Parts, SizeHint), SE>;

/// Everything the child needs; built in `call`, moved into the task.
pub(crate) struct Job<S, ReqB, SE, D> {
    pub(crate) service: S,
    pub(crate) request: Request<ReqB>,
    pub(crate) scope: CancelScope,
    pub(crate) handle: CancelHandle,
    pub(crate) deadline: Option<tokio::time::Instant>,
    pub(crate) shutdown: Option<CancelHandle>,
    pub(crate) head: oneshot::Sender<Head<SE>>,
    pub(crate) frames: mpsc::Sender<Msg<D>>,
}

impl<S, ReqB, ResB> Job<S, ReqB, S::Error, ResB::Data>
where
    S: Service<Request<ReqB>, Response = http::Response<ResB>> + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Into<BoxError> + Send,
{
    /// Runs the request to its end: its scope and nursery, then, if the scope ended early, the
    /// failure the client should see.
    pub(crate) async fn run(self) {
        let Job {
            service,
            request,
            scope,
            handle,
            deadline,
            shutdown,
            head,
            frames,
        } = self;
        let body_frames = frames.clone();
        let id = request.extensions().get::<crate::RequestId>().cloned();
        let served = scope.run(nursery(|n| {
            let ctx = RequestContext {
                id: None,
                deadline,
                scope: handle.clone(),
                nursery: n.handle(),
                shutdown,
            };
            serve(service, request, ctx, head, body_frames)
        }));
        // The id is inherited by everything the request runs: the handler, its children, their
        // cleanups, and the outgoing calls the client layer makes from there.
        let outcome = match id {
            Some(id) => AssertUnwindSafe(id.bind(served)).catch_unwind().await,
            None => AssertUnwindSafe(served).catch_unwind().await,
        };
        let failure = match outcome {
            Ok(Some(Ok(()))) => None,
            Ok(Some(Err(error))) => {
                tracing::debug!(%error, "a child of the request failed");
                Some(Failure::Internal)
            }
            Ok(None) => match handle.cancel_reason().map(|r| RequestCancel::of(&r)) {
                Some(RequestCancel::DeadlineExceeded) => Some(Failure::DeadlineExceeded),
                // Nobody is left to tell.
                Some(RequestCancel::ClientDisconnected) => None,
                Some(RequestCancel::ServerShutdown) => Some(Failure::Unavailable),
                Some(RequestCancel::Other) | None => Some(Failure::Internal),
            },
            Err(_panic) => {
                tracing::error!("the request's handler panicked");
                Some(Failure::Internal)
            }
        };
        if let Some(failure) = failure {
            // The receiving side knows whether the head went out: it turns this into a whole
            // response, trailers, or an error ending the body.
            let _ = frames.send(Msg::Failure(failure)).await;
        }
    }
}

/// Calls the service in the request's nursery and relays its response; a receiver gone means the
/// client went away, which cancels the request.
async fn serve<S, ReqB, ResB>(
    mut service: S,
    mut request: Request<ReqB>,
    ctx: RequestContext,
    head: oneshot::Sender<Head<S::Error>>,
    frames: mpsc::Sender<Msg<ResB::Data>>,
) -> Result<(), ChildError>
where
    S: Service<Request<ReqB>, Response = http::Response<ResB>>,
    ResB: Body,
    ResB::Error: Into<BoxError> + Send,
{
    let scope = ctx.scope.clone();
    let disconnected = move || scope.cancel_with(CLIENT_DISCONNECTED);
    let mut ctx = ctx;
    ctx.id = request.extensions_mut().remove::<crate::RequestId>();
    request.extensions_mut().insert(ctx);
    let response = service.call(request).await;
    let sender = head;
    let (parts, body) = match response {
        Ok(response) => response.into_parts(),
        Err(error) => {
            let _ = sender.send(Err(error));
            return Ok(());
        }
    };
    if sender.send(Ok((parts, body.size_hint()))).is_err() {
        disconnected();
        return Ok(());
    }
    let mut body = pin!(body);
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let msg = match frame {
            Ok(frame) => Msg::Frame(frame),
            Err(error) => Msg::Error(error.into()),
        };
        let last = matches!(msg, Msg::Error(_));
        if frames.send(msg).await.is_err() {
            disconnected();
            return Ok(());
        }
        if last {
            break;
        }
    }
    Ok(())
}
