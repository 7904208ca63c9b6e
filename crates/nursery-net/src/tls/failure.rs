//! What a failed TLS handshake means for a reconnect: rustls reports its errors inside the
//! `std::io::Error` that tokio-rustls returns, and a certificate the client rejects, or a name it
//! is not valid for, will be rejected again on every attempt.

use std::io;

use rustls::{AlertDescription, CertificateError, Error as RustlsError};

/// A TLS handshake failure, classified.
///
/// # Examples
///
/// ```
/// use nursery_net::TlsFailure;
/// let hostname = TlsFailure::Hostname { detail: "not valid for example.org".into() };
/// assert!(hostname.is_permanent());
/// assert!(!TlsFailure::Handshake { detail: "reset".into() }.is_permanent());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate is not valid for the host that was dialled.
    #[error("TLS certificate is not valid for this host: {detail}")]
    Hostname {
        /// rustls's description.
        detail: String,
    },
    /// The server's certificate was rejected (unknown issuer, expired, revoked, malformed...).
    #[error("TLS certificate rejected: {detail}")]
    Certificate {
        /// rustls's description.
        detail: String,
    },
    /// The peers could not agree (no common version or cipher suite), or the peer sent a fatal
    /// alert: a configuration mismatch, not a transient fault.
    #[error("TLS negotiation failed: {detail}")]
    Incompatible {
        /// rustls's description.
        detail: String,
    },
    /// The handshake broke for another reason (the connection closed or reset mid-handshake).
    #[error("TLS handshake failed: {detail}")]
    Handshake {
        /// The error's description.
        detail: String,
    },
}

impl TlsFailure {
    /// Whether retrying the same connection can never succeed: certificate, hostname and
    /// negotiation failures.
    ///
    /// # Examples
    ///
    /// See [`TlsFailure`].
    pub fn is_permanent(&self) -> bool {
        !matches!(self, TlsFailure::Handshake { .. })
    }
}

/// The rustls error inside `error`, classified; `None` if `error` carries none (a plain I/O
/// failure during the handshake: the caller keeps it as I/O).
pub(crate) fn classify(error: &io::Error) -> Option<TlsFailure> {
    let rustls = error.get_ref()?.downcast_ref::<RustlsError>()?;
    let detail = rustls.to_string();
    Some(match rustls {
        RustlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TlsFailure::Hostname { detail },
        RustlsError::InvalidCertificate(_)
        | RustlsError::NoCertificatesPresented
        | RustlsError::InvalidCertRevocationList(_) => TlsFailure::Certificate { detail },
        RustlsError::PeerIncompatible(_)
        | RustlsError::UnsupportedNameType
        | RustlsError::AlertReceived(
            AlertDescription::HandshakeFailure
            | AlertDescription::ProtocolVersion
            | AlertDescription::InsufficientSecurity
            | AlertDescription::UnrecognisedName,
        ) => TlsFailure::Incompatible { detail },
        _ => TlsFailure::Handshake { detail },
    })
}
