//! The responses this crate writes itself, in the request's own protocol: gRPC (trailers-only:
//! HTTP 200 with `grpc-status` in the head) or plain HTTP (a status code).

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};

/// Whether a request speaks gRPC (so failures are `grpc-status` values) or plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    Http,
}

impl Protocol {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        match headers.get(CONTENT_TYPE) {
            Some(v) if v.as_bytes().starts_with(b"application/grpc") => Protocol::Grpc,
            _ => Protocol::Http,
        }
    }
}

/// Why this crate answers instead of the service (or ends the service's response early).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    DeadlineExceeded,
    InvalidTimeout,
    Unavailable,
    Internal,
}

impl Failure {
    fn grpc_status(self) -> &'static str {
        match self {
            Failure::DeadlineExceeded => "4",
            Failure::InvalidTimeout => "3",
            Failure::Unavailable => "14",
            Failure::Internal => "13",
        }
    }

    fn http_status(self) -> StatusCode {
        match self {
            Failure::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Failure::InvalidTimeout => StatusCode::BAD_REQUEST,
            Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    // Messages are plain ASCII without `%`, so they need no percent-encoding in `grpc-message`.
    fn message(self) -> &'static str {
        match self {
            Failure::DeadlineExceeded => "deadline exceeded",
            Failure::InvalidTimeout => "malformed timeout header",
            Failure::Unavailable => "server shutting down",
            Failure::Internal => "request failed",
        }
    }

    /// The error that ends a plain HTTP body already under way.
    pub(crate) fn error(self) -> crate::error::ResponseCut {
        crate::error::ResponseCut {
            message: self.message(),
        }
    }

    /// The trailers that end a gRPC response already under way.
    pub(crate) fn grpc_trailers(self) -> HeaderMap {
        let mut trailers = HeaderMap::with_capacity(2);
        trailers.insert("grpc-status", HeaderValue::from_static(self.grpc_status()));
        trailers.insert("grpc-message", HeaderValue::from_static(self.message()));
        trailers
    }

    /// A complete response with an empty body: gRPC trailers-only, or an HTTP status.
    pub(crate) fn response<B>(self, protocol: Protocol, body: B) -> Response<B> {
        let mut response = Response::new(body);
        match protocol {
            Protocol::Grpc => {
                let headers = response.headers_mut();
                *headers = self.grpc_trailers();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            }
            Protocol::Http => *response.status_mut() = self.http_status(),
        }
        response
    }
}
