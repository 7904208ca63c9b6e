//! A bare HTTP/2 (or HTTP/1) client: sends exactly the headers a test gives, reads the head,
//! the frames and the trailers.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub data: Vec<Bytes>,
    pub trailers: Option<http::HeaderMap>,
    pub body_error: Option<String>,
}

impl Answer {
    /// `grpc-status` from the trailers, or from the head (trailers-only).
    pub fn grpc_status(&self) -> Option<&str> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
    }
}

/// An empty gRPC message: the 5-byte prefix of a zero-length, uncompressed frame.
pub fn empty_grpc_message() -> Bytes {
    Bytes::from_static(&[0, 0, 0, 0, 0])
}

pub async fn request(addr: SocketAddr, http2: bool, request: http::Request<Full<Bytes>>) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = TokioIo::new(stream);
    let response = if http2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("handshake");
        tokio::spawn(conn);
        send.send_request(request).await.expect("response")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("handshake");
        tokio::spawn(conn);
        send.send_request(request).await.expect("response")
    };
    let (parts, mut body) = response.into_parts();
    let mut answer = Answer {
        status: parts.status,
        headers: parts.headers,
        data: Vec::new(),
        trailers: None,
        body_error: None,
    };
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => answer.data.push(data),
                Err(frame) => answer.trailers = frame.into_trailers().ok(),
            },
            Err(e) => {
                answer.body_error = Some(e.to_string());
                break;
            }
        }
    }
    answer
}

/// A gRPC request to `path` with extra headers.
pub fn grpc_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &[u8])],
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        builder = builder.header(*name, http::HeaderValue::from_bytes(value).expect("value"));
    }
    builder
        .body(Full::new(empty_grpc_message()))
        .expect("request")
}
