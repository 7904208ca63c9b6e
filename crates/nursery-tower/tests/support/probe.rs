//! A plain tower service for bad-input, streaming and shutdown tests, by path: `/ok` answers at
//! once, `/sleep` sleeps 10 s, `/hurry` answers as soon as the request is cancelled (shutdown
//! drain), `/stream` streams a frame every 10 ms from a child of the request's nursery. It
//! reports every call, end and cleanup.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use nursery_tower::{RequestCancel, RequestContext};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tower_service::Service;

pub type Body = BoxBody<Bytes, Infallible>;

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Called {
        path: String,
        deadline: Option<Instant>,
        id: Option<String>,
    },
    Ended {
        path: String,
        cause: Option<RequestCancel>,
    },
    Cleanup {
        path: String,
    },
}

#[derive(Clone)]
pub struct ProbeService {
    pub events: mpsc::UnboundedSender<Probe>,
}

struct EndProbe(String, RequestContext, mpsc::UnboundedSender<Probe>);

impl Drop for EndProbe {
    fn drop(&mut self) {
        let _ = self.2.send(Probe::Ended {
            path: self.0.clone(),
            cause: self.1.cancel_cause(),
        });
    }
}

fn grpc_ok(mut response: http::Response<Body>, grpc: bool) -> http::Response<Body> {
    if grpc {
        let headers = response.headers_mut();
        headers.insert("content-type", "application/grpc".parse().unwrap());
        headers.insert("grpc-status", "0".parse().unwrap());
    }
    response
}

impl<B: Send + 'static> Service<http::Request<B>> for ProbeService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let events = self.events.clone();
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let grpc = request
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
            let ctx = request
                .extensions()
                .get::<RequestContext>()
                .cloned()
                .expect("behind ServerLayer");
            let _ = events.send(Probe::Called {
                path: path.clone(),
                deadline: ctx.deadline(),
                id: ctx.id().and_then(|id| id.as_str()).map(str::to_owned),
            });
            let cleanup_events = events.clone();
            let cleanup_path = path.clone();
            ctx.nursery()
                .defer(async move {
                    let _ = cleanup_events.send(Probe::Cleanup { path: cleanup_path });
                    Ok(())
                })
                .expect("request nursery open");
            let child_end = EndProbe(format!("{path} child"), ctx.clone(), events.clone());
            let _end = EndProbe(path.clone(), ctx.clone(), events);
            let empty = || Empty::new().boxed();
            let response = match path.as_str() {
                "/sleep" => {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    http::Response::new(empty())
                }
                "/panic" => panic!("handler bug"),
                "/hurry" => {
                    ctx.cancelled().await;
                    let mut r = http::Response::new(empty());
                    r.headers_mut().insert("x-hurried", "yes".parse().unwrap());
                    r
                }
                "/stream" => {
                    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
                    ctx.nursery()
                        .spawn(async move {
                            // Reports how the streaming child ended, when it is dropped.
                            let _end = child_end;
                            loop {
                                if tx
                                    .send(Ok(Frame::data(Bytes::from_static(b"tick"))))
                                    .await
                                    .is_err()
                                {
                                    return Ok(());
                                }
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        })
                        .expect("request nursery open");
                    let response =
                        http::Response::new(StreamBody::new(ReceiverStream::new(rx)).boxed());
                    if grpc {
                        let mut response = response;
                        response
                            .headers_mut()
                            .insert("content-type", "application/grpc".parse().unwrap());
                        return Ok(response);
                    }
                    return Ok(response);
                }
                _ => http::Response::new(empty()),
            };
            Ok(grpc_ok(response, grpc))
        })
    }
}

/// Everything reported so far, waiting up to `settle` for `until` to hold.
pub async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Probe>,
    seen: &mut Vec<Probe>,
    until: impl Fn(&[Probe]) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !until(seen) {
            seen.push(rx.recv().await.expect("events"));
        }
    })
    .await
    .expect("events in time");
}

pub fn count(seen: &[Probe], f: impl Fn(&Probe) -> bool) -> usize {
    seen.iter().filter(|e| f(e)).count()
}
