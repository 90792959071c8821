//! The HTTPS client instant-acme talks to the CA through: rpx's own rustls
//! settings (system roots, an issuer's `ssl_trusted_certificate`, or
//! `ssl_verify off`), one short-lived HTTP/1.1 connection per request.
//! ACME traffic is a handful of requests a day; no pool is worth keeping.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::BoxError;
use crate::tls::{client_config, TlsError, UpstreamTls};

/// One request's upper bound: connect, TLS, request and the whole body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An [`HttpClient`] over rustls and hyper's HTTP/1.1 connection.
#[derive(Clone)]
pub(crate) struct AcmeHttp {
    tls: TlsConnector,
}

impl AcmeHttp {
    /// Verifies the CA's certificate against `trusted` (PEM file) or the
    /// system's roots; `verify == false` accepts any (nginx's `ssl_verify off`).
    pub(crate) fn new(trusted: Option<&str>, verify: bool) -> Result<Self, TlsError> {
        let config = client_config(&UpstreamTls {
            verify,
            trusted: trusted.map(Into::into),
            ..UpstreamTls::default()
        })?;
        Ok(AcmeHttp {
            tls: TlsConnector::from(config),
        })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, send(tls, req)).await {
                Ok(Ok(res)) => Ok(res),
                Ok(Err(e)) => Err(instant_acme::Error::Other(e)),
                Err(_) => Err(instant_acme::Error::Other("request timed out".into())),
            }
        })
    }
}

async fn send(
    tls: TlsConnector,
    mut req: Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, BoxError> {
    let uri = req.uri().clone();
    if uri.scheme_str() != Some("https") {
        return Err(format!("{uri}: ACME servers are reached over https").into());
    }
    let host = uri.host().ok_or("URL without a host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let name = ServerName::try_from(host.clone())?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends once the response has been read.
    tokio::spawn(conn);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or(host);
    req.headers_mut()
        .insert(header::HOST, header::HeaderValue::try_from(authority)?);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    *req.uri_mut() = path.parse()?;
    let res = sender.send_request(req).await?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(BytesResponse {
        parts,
        body: Box::new(body),
    })
}
