//! TLS with rustls: certificates from PEM files (certbot's layout works as
//! is), SNI selection that can change at runtime, hot reload of renewed
//! files, nginx-style client certificates, and the upstream client side.

mod acceptor;
mod ciphers;
mod client_auth;
mod info;
mod pem;
mod resolver;
mod server;
mod upstream;

pub use acceptor::{TlsAcceptorLayer, TlsAcceptorService, TlsConn};
pub use ciphers::CipherList;
pub use client_auth::{ClientAuth, ClientAuthMode};
pub use info::{ClientVerify, TlsInfo};
pub use pem::{cert_not_after, load_certified_key, load_certs, provider, TlsError};
pub use resolver::{CertResolver, CertSlot};
pub use server::{server_config, ServerTlsOptions, TlsVersions, DEFAULT_SESSION_CACHE};
pub use upstream::{client_config, client_config_h2, AcceptAnyCertificate, UpstreamTls};
