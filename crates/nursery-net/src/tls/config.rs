//! The rustls configurations, always built with the `ring` provider chosen explicitly
//! (`builder_with_provider`): with two providers in a dependency graph rustls cannot pick one by
//! itself and would panic at run time.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// What `TlsError` names when CA certificates cannot be read.
const CA_CERTIFICATES: &str = "CA certificates";
/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file or buffer could not be read or parsed.
    #[error("invalid PEM ({what})")]
    Pem {
        /// What was being read: "CA certificates", "certificate chain", "private key".
        what: &'static str,
        /// The parser's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The PEM held no certificate (or no root rustls accepts).
    #[error("no usable certificate in the {what}")]
    NoCertificates {
        /// What was being read.
        what: &'static str,
    },
    /// rustls refused the configuration (for example a key that does not match the certificate).
    #[error("TLS configuration refused")]
    Rustls(#[source] rustls::Error),
    /// The host cannot be used as a TLS server name.
    #[error("{host:?} is not a valid TLS server name")]
    ServerName {
        /// The host as given.
        host: String,
    },
}

/// The `ring` provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange; it is
/// kept because it builds with a C compiler alone (the alternative needs more of a toolchain), and
/// the classical key exchanges it offers are the ones every TLS peer supports.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client-side TLS: the roots a server certificate must chain to. Cheap to clone.
///
/// The default trusts the Mozilla roots bundled by `webpki-roots` (the same on every machine);
/// [`TlsConfig::from_pem`] and [`TlsConfig::from_pem_file`] trust a private CA instead, as tests
/// and internal services need; [`TlsConfig::from_rustls`] takes a configuration built elsewhere.
///
/// # Examples
///
/// ```
/// let tls = nursery_net::TlsConfig::webpki_roots();
/// assert!(format!("{tls:?}").contains("TlsConfig"));
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    client: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn", &self.client.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig::webpki_roots()
    }
}

impl TlsConfig {
    /// Trusts the bundled Mozilla roots (`webpki-roots`).
    ///
    /// # Examples
    ///
    /// ```
    /// let _tls = nursery_net::TlsConfig::webpki_roots();
    /// ```
    pub fn webpki_roots() -> Self {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        TlsConfig::with_roots(roots)
    }

    /// Trusts exactly `roots`.
    ///
    /// # Examples
    ///
    /// ```
    /// let tls = nursery_net::TlsConfig::with_roots(rustls::RootCertStore::empty());
    /// # drop(tls);
    /// ```
    pub fn with_roots(roots: RootCertStore) -> Self {
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConfig {
            client: Arc::new(client),
        }
    }

    /// Trusts the CA certificates in a PEM buffer (a private CA), and nothing else.
    ///
    /// # Errors
    ///
    /// [`TlsError::Pem`] if the PEM cannot be parsed, [`TlsError::NoCertificates`] if it holds no
    /// certificate rustls accepts as a root.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nursery_net::TlsConfig::from_pem(b"not a certificate").unwrap_err();
    /// assert!(matches!(err, nursery_net::TlsError::NoCertificates { .. }));
    /// ```
    pub fn from_pem(pem: &[u8]) -> Result<Self, TlsError> {
        Self::from_certificates(CertificateDer::pem_slice_iter(pem))
    }

    /// [`TlsConfig::from_pem`] from a file (`nursery watch --ca-file`).
    ///
    /// # Errors
    ///
    /// As [`TlsConfig::from_pem`]; a file that cannot be read is a [`TlsError::Pem`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(nursery_net::TlsConfig::from_pem_file("/nonexistent/ca.pem").is_err());
    /// ```
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_file_iter(path).map_err(|source| TlsError::Pem {
            what: CA_CERTIFICATES,
            source,
        })?;
        Self::from_certificates(certs)
    }

    /// The roots from a PEM reader: at least one certificate, or a typed error.
    fn from_certificates(
        certs: impl Iterator<Item = Result<CertificateDer<'static>, rustls::pki_types::pem::Error>>,
    ) -> Result<Self, TlsError> {
        let certs = certs
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: CA_CERTIFICATES,
                source,
            })?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::NoCertificates {
                what: CA_CERTIFICATES,
            });
        }
        Ok(TlsConfig::with_roots(roots))
    }

    /// Uses a rustls configuration built elsewhere (client certificates, ALPN, a custom
    /// verifier). Build it with `builder_with_provider` and the `ring` provider.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let client = rustls::ClientConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()
    /// .unwrap()
    /// .with_root_certificates(rustls::RootCertStore::empty())
    /// .with_no_client_auth();
    /// let _tls = nursery_net::TlsConfig::from_rustls(Arc::new(client));
    /// ```
    pub fn from_rustls(client: Arc<ClientConfig>) -> Self {
        TlsConfig { client }
    }

    /// The TLS handshake over `stream` for `host` (verified against the certificate).
    pub(crate) async fn connect<S>(
        &self,
        host: &str,
        stream: S,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = server_name(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        tokio_rustls::TlsConnector::from(Arc::clone(&self.client))
            .connect(name, stream)
            .await
    }
}

/// `host` as a TLS server name (a DNS name or an IP address; brackets of an IPv6 URL host are
/// removed).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::ServerName {
        host: host.to_owned(),
    })
}

/// Server-side TLS: the certificate chain and key `accept` presents. Cheap to clone.
///
/// # Examples
///
/// ```
/// let err = nursery_net::TlsServerConfig::from_pem(b"", b"").unwrap_err();
/// assert!(matches!(err, nursery_net::TlsError::NoCertificates { .. }));
/// ```
#[derive(Clone)]
pub struct TlsServerConfig {
    server: Arc<ServerConfig>,
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerConfig").finish_non_exhaustive()
    }
}

impl TlsServerConfig {
    /// A certificate chain (leaf first) and its private key, both PEM.
    ///
    /// # Errors
    ///
    /// [`TlsError::Pem`] or [`TlsError::NoCertificates`] for unreadable input, and
    /// [`TlsError::Rustls`] if rustls refuses the pair (a key that does not match, say).
    ///
    /// # Examples
    ///
    /// See the type.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "certificate chain",
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificates {
                what: "certificate chain",
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
            what: "private key",
            source,
        })?;
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsError::Rustls)?;
        Ok(TlsServerConfig {
            server: Arc::new(server),
        })
    }

    /// Uses a rustls server configuration built elsewhere (with the `ring` provider).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn server() -> std::sync::Arc<rustls::ServerConfig> { unimplemented!() }
    /// let _tls = nursery_net::TlsServerConfig::from_rustls(server());
    /// ```
    pub fn from_rustls(server: Arc<ServerConfig>) -> Self {
        TlsServerConfig { server }
    }

    /// The server side of the handshake over an accepted socket.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.server))
            .accept(stream)
            .await
    }
}
