//! What a TLS connection negotiated, for variables and access checks.

use std::sync::Arc;

/// Result of client-certificate verification (`$ssl_client_verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientVerify {
    /// No certificate was sent: `NONE`.
    None,
    /// The certificate chains to a trusted CA: `SUCCESS`.
    Success,
    /// It does not: `FAILED:reason`.
    Failed(String),
}

impl ClientVerify {
    /// nginx's text for `$ssl_client_verify`.
    pub fn as_text(&self) -> String {
        match self {
            ClientVerify::None => "NONE".into(),
            ClientVerify::Success => "SUCCESS".into(),
            ClientVerify::Failed(r) => format!("FAILED:{r}"),
        }
    }
}

/// Facts of one TLS connection, in request extensions as `Arc<TlsInfo>`.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// The SNI name the client sent (`$ssl_server_name`).
    pub server_name: Option<Arc<str>>,
    /// `TLSv1.2` or `TLSv1.3` (`$ssl_protocol`).
    pub protocol: &'static str,
    /// The cipher suite, IANA name (`$ssl_cipher`).
    pub cipher: &'static str,
    /// Client certificate verification (`$ssl_client_verify`).
    pub client_verify: ClientVerify,
    /// Subject DN of the client certificate, RFC 2253 (`$ssl_client_s_dn`).
    pub client_subject: Option<String>,
    /// The client certificate as URL-escaped PEM (`$ssl_client_escaped_cert`).
    pub client_cert_escaped: Option<String>,
}
