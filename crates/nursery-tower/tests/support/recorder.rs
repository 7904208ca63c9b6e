//! A downstream service that records the headers of every request it gets and answers at once.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Empty;
use tower_service::Service;

/// Records the headers of every request it gets.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<http::HeaderMap>>>);

impl Service<http::Request<()>> for Recorder {
    type Response = http::Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<()>) -> Self::Future {
        self.0.lock().unwrap().push(request.headers().clone());
        ready(Ok(http::Response::new(Empty::new())))
    }
}
