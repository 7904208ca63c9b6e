// The WebSocket opening handshake, both sides, with typed errors. The client resolves and
// connects itself (rather than through tokio-tungstenite's `connect_async`) so that a failure
// or a timeout names its stage, and so the URL is checked before any socket is opened.

use std::io;
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError, UrlError};
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::header::RETRY_AFTER;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::connect::error::{ConnectError, ConnectStage};
use crate::connect::retry_after;

/// A checked client request and where to connect for it.
pub(crate) struct Target {
    pub(crate) request: Request,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `wss://`: a TLS handshake comes between TCP and the upgrade.
    pub(crate) tls: bool,
}

/// Builds the request and checks it can be used: a `ws` or `wss` URL with a host.
pub(crate) fn target(request: impl IntoClientRequest) -> Result<Target, ConnectError> {
    let request = request.into_client_request().map_err(from_request)?;
    let uri = request.uri();
    let scheme = uri.scheme_str().unwrap_or_default();
    let tls = if scheme.eq_ignore_ascii_case("wss") {
        true
    } else if scheme.eq_ignore_ascii_case("ws") {
        false
    } else {
        return Err(ConnectError::UnsupportedScheme {
            scheme: scheme.to_owned(),
        });
    };
    let host = match uri.host() {
        Some(host) if !host.is_empty() => host,
        _ => {
            return Err(ConnectError::InvalidUrl {
                reason: "no host name".into(),
                source: None,
            })
        }
    };
    // An IPv6 literal comes bracketed in the URI; the resolver wants it bare.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Target {
        request,
        host,
        port,
        tls,
    })
}

/// The TCP stage: resolves and connects, Nagle's algorithm off.
pub(crate) async fn tcp(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| ConnectError::io(ConnectStage::Tcp, e))?;
    stream
        .set_nodelay(true)
        .map_err(|e| ConnectError::io(ConnectStage::Tcp, e))?;
    Ok(stream)
}

/// The client's upgrade on a connected stream (plain TCP or TLS).
pub(crate) async fn upgrade<S>(
    request: Request,
    stream: S,
    config: WebSocketConfig,
) -> Result<WebSocketStream<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (stream, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .map_err(from_handshake)?;
    Ok(stream)
}

/// The server's side of the upgrade on an accepted socket.
pub(crate) async fn accept(
    socket: TcpStream,
    config: WebSocketConfig,
) -> Result<WebSocketStream<TcpStream>, ConnectError> {
    socket
        .set_nodelay(true)
        .map_err(|e| ConnectError::io(ConnectStage::Tcp, e))?;
    accept_on(socket, config).await
}

/// The server's side of the upgrade on any stream (a TLS stream, say).
pub(crate) async fn accept_on<S>(
    stream: S,
    config: WebSocketConfig,
) -> Result<WebSocketStream<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio_tungstenite::accept_async_with_config(stream, Some(config))
        .await
        .map_err(from_handshake)
}

/// An error building the request: the URL or a header cannot be used.
fn from_request(error: WsError) -> ConnectError {
    if let WsError::Url(UrlError::UnsupportedUrlScheme) = error {
        return ConnectError::UnsupportedScheme {
            scheme: String::new(),
        };
    }
    ConnectError::InvalidUrl {
        reason: error.to_string(),
        source: Some(error),
    }
}

/// An error during the opening handshake.
pub(crate) fn from_handshake(error: WsError) -> ConnectError {
    match error {
        WsError::Http(response) => ConnectError::Status {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after::parse(v, SystemTime::now())),
        },
        WsError::Io(e) => ConnectError::io(ConnectStage::Upgrade, e),
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::HandshakeIncomplete) => ConnectError::io(
            ConnectStage::Upgrade,
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection during the upgrade",
            ),
        ),
        e @ (WsError::Url(_) | WsError::HttpFormat(_)) => from_request(e),
        e => ConnectError::Handshake { source: e },
    }
}
