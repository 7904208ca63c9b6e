// The TLS stage of a connect or an accept, for both transports: the handshake, with a rustls
// failure classified (`crate::tls`) and anything else kept as I/O at the TLS stage.

use std::io;

use tokio::net::TcpStream;

use crate::connect::error::{ConnectError, ConnectStage};
use crate::tls::{TlsConfig, TlsServerConfig};

/// The TLS stage, client side: the handshake for `host`, with the certificate checked against
/// `tls`'s roots. A rejected certificate or host name is a permanent `ConnectError::Tls`.
pub(crate) async fn connect(
    tls: &TlsConfig,
    host: &str,
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
    tls.connect(host, stream).await.map_err(from_tls)
}

/// The TLS stage, server side, on an accepted socket.
pub(crate) async fn accept(
    tls: &TlsServerConfig,
    socket: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, ConnectError> {
    socket
        .set_nodelay(true)
        .map_err(|e| ConnectError::io(ConnectStage::Tcp, e))?;
    tls.accept(socket).await.map_err(from_tls)
}

fn from_tls(error: io::Error) -> ConnectError {
    match crate::tls::classify(&error) {
        Some(failure) => ConnectError::Tls(failure),
        None if error.kind() == io::ErrorKind::InvalidInput => ConnectError::InvalidUrl {
            reason: error.to_string(),
            source: None,
        },
        None => ConnectError::io(ConnectStage::Tls, error),
    }
}
