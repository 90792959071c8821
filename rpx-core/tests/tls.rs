//! TLS on both sides with rcgen-made CAs: SNI, hot reload, HTTP/2 by ALPN,
//! client certificates, upstream verification, mTLS and resumption.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A test CA that issues leaf certificates into a temp directory.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("rpx-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rpx test CA {tag}"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a certificate for `names`; returns (cert path, key path, DER).
    fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf, CertificateDer<'static>) {
        self.issue_with(file, names, |_| {})
    }

    /// Like [`Pki::issue`], with the parameters adjusted by `edit`.
    fn issue_with(
        &self,
        file: &str,
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (PathBuf, PathBuf, CertificateDer<'static>) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k, cert.der().clone())
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }

    fn client_config(
        &self,
        client_cert: Option<(&Path, &Path)>,
        alpn: &[&[u8]],
    ) -> Arc<rustls::ClientConfig> {
        let b = rustls::ClientConfig::builder_with_provider(rpx_core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots());
        let mut c = match client_cert {
            Some((cert, key)) => {
                let ck = rpx_core::tls::load_certified_key(cert, key).unwrap();
                use rustls::pki_types::pem::PemObject;
                b.with_client_auth_cert(
                    ck.cert.clone(),
                    rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap()
            }
            None => b.with_no_client_auth(),
        };
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn handshake(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Tls {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    bounded(tokio_rustls::TlsConnector::from(config).connect(name, tcp))
        .await
        .unwrap()
}

fn presented(tls: &Tls) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// An HTTP/1.1 request over an established TLS stream.
async fn get_over(tls: Tls, path: &str, host: &str) -> (u16, http::HeaderMap, Bytes) {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", host)
        .body(empty())
        .unwrap();
    let res = bounded(sender.send_request(req)).await.unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        bounded(body.collect()).await.unwrap().to_bytes(),
    )
}

fn server_block(name: &str, cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0 ssl"
        server_name = ["{name}"]
        ssl_certificate = "{}"
        ssl_certificate_key = "{}"
        {extra}
          [[server.location]]
          path = "/"
          return = "200 $scheme $ssl_server_name $host $ssl_protocol"
        "#,
        cert.display(),
        key.display()
    )
}

#[tokio::test]
async fn sni_selects_the_certificate_and_no_sni_gets_the_default() {
    let pki = Pki::new("sni");
    let (ac, ak, a_der) = pki.issue("a", &["a.test"]);
    let (bc, bk, b_der) = pki.issue("b", &["b.test"]);
    let (cc, ck, c_der) = pki.issue("c", &["c.test"]);
    let (wc, wk, w_der) = pki.issue("w", &["*.w.test"]);
    let config = [
        server_block("a.test", &ac, &ak, ""),
        server_block("b.test", &bc, &bk, ""),
        server_block("c.test", &cc, &ck, ""),
        server_block("*.w.test", &wc, &wk, ""),
    ]
    .concat();
    let p = Proxy::start(&config).await;
    let client = pki.client_config(None, &[b"http/1.1"]);
    for (sni, want) in [
        ("a.test", &a_der),
        ("b.test", &b_der),
        ("c.test", &c_der),
        ("x.w.test", &w_der),
    ] {
        let tls = handshake(p.addr(), client.clone(), sni).await;
        assert_eq!(&presented(&tls), want, "certificate for {sni}");
        let (status, _, body) = get_over(tls, "/", sni).await;
        assert_eq!(status, 200);
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(
            body.starts_with(&format!("https {sni} {sni} TLSv1.")),
            "{body}"
        );
    }
    // An IP address sends no SNI: the default (first) server's certificate.
    let insecure = insecure_client();
    let tcp = TcpStream::connect(p.addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(insecure)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(presented(&tls), a_der);
}

#[tokio::test]
async fn replaced_certificate_files_are_served_to_new_handshakes() {
    let pki = Pki::new("reload");
    let (c, k, old) = pki.issue("site", &["r.test"]);
    let p = Proxy::start(&server_block("r.test", &c, &k, "")).await;
    let client = pki.client_config(None, &[b"http/1.1"]);
    assert_eq!(
        presented(&handshake(p.addr(), client.clone(), "r.test").await),
        old
    );
    // A broken file is ignored: over several reload periods the old
    // certificate stays.
    std::fs::write(&c, "not a certificate").unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            presented(&handshake(p.addr(), client.clone(), "r.test").await),
            old
        );
    }
    // A renewal rewrites both files (as certbot's symlink swap does): new
    // handshakes get the new certificate without a restart.
    let (new_c, new_k, new) = pki.issue("renewed", &["r.test"]);
    std::fs::copy(&new_c, &c).unwrap();
    std::fs::copy(&new_k, &k).unwrap();
    bounded(async {
        while presented(&handshake(p.addr(), client.clone(), "r.test").await) != new {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn http2_over_tls_by_alpn() {
    let up = Upstream::ok().await;
    let pki = Pki::new("h2");
    let (c, k, _) = pki.issue("h2", &["h2.test"]);
    let config = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0 ssl http2"
        server_name = "h2.test"
        ssl_certificate = "{}"
        ssl_certificate_key = "{}"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
          proxy_set_header = {{ "X-Proto" = "$scheme $server_protocol" }}
        "#,
        c.display(),
        k.display(),
        up.url()
    );
    let p = Proxy::start(&config).await;
    let tls = handshake(
        p.addr(),
        pki.client_config(None, &[b"h2", b"http/1.1"]),
        "h2.test",
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let res =
        bounded(sender.send_request(Request::get("https://h2.test/x").body(empty()).unwrap()))
            .await
            .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().headers["x-proto"], "https HTTP/2.0");
}

#[tokio::test]
async fn client_certificates_accepted_missing_and_wrong_ca() {
    let up = Upstream::ok().await;
    let pki = Pki::new("mtls");
    let other = Pki::new("other");
    let (c, k, _) = pki.issue("site", &["m.test"]);
    let (good_c, good_k, _) = pki.issue("client", &["client.test"]);
    let (bad_c, bad_k, _) = other.issue("client", &["client.test"]);
    let config = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0 ssl"
        server_name = "m.test"
        ssl_certificate = "{}"
        ssl_certificate_key = "{}"
        ssl_client_certificate = "{}"
        ssl_verify_client = "on"
          [[server.location]]
          path = "/"
          proxy_pass = "{}"
          proxy_set_header = {{ "X-Verify" = "$ssl_client_verify", "X-Dn" = "$ssl_client_s_dn", "X-Cert" = "$ssl_client_escaped_cert" }}
        "#,
        c.display(),
        k.display(),
        pki.ca_path().display(),
        up.url()
    );
    let p = Proxy::start(&config).await;
    let ok = handshake(
        p.addr(),
        pki.client_config(Some((&good_c, &good_k)), &[b"http/1.1"]),
        "m.test",
    )
    .await;
    let (status, _, _) = get_over(ok, "/", "m.test").await;
    assert_eq!(status, 200);
    let seen = up.last().headers;
    assert_eq!(seen["x-verify"], "SUCCESS");
    assert!(seen["x-dn"].to_str().unwrap().contains("CN=client.test"));
    assert!(seen["x-cert"]
        .to_str()
        .unwrap()
        .starts_with("-----BEGIN%20CERTIFICATE-----"));

    let missing = handshake(p.addr(), pki.client_config(None, &[b"http/1.1"]), "m.test").await;
    let (status, _, body) = get_over(missing, "/", "m.test").await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("No required SSL certificate was sent"));

    let wrong = handshake(
        p.addr(),
        pki.client_config(Some((&bad_c, &bad_k)), &[b"http/1.1"]),
        "m.test",
    )
    .await;
    let (status, _, body) = get_over(wrong, "/", "m.test").await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("The SSL certificate error"));
    assert_eq!(up.seen().len(), 1, "refused clients reach no upstream");
}

/// A TLS upstream; with `ca`, it requires client certificates from that
/// CA. Counts full and resumed handshakes. Closes connections after each
/// response, so every request needs a new handshake.
async fn tls_upstream(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let ck = rpx_core::tls::load_certified_key(cert, key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(rpx_core::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rpx_core::tls::load_certs(ca).unwrap() {
                roots.add(c).unwrap();
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    rpx_core::tls::provider(),
                )
                .build()
                .unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    use rustls::pki_types::pem::PemObject;
    let config = builder
        .with_single_cert(
            ck.cert.clone(),
            rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (full_hs, resumed_hs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (f, r) = (full_hs.clone(), resumed_hs.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let (f, r) = (f.clone(), r.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                match tls.get_ref().1.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => r.fetch_add(1, Ordering::SeqCst),
                    _ => f.fetch_add(1, Ordering::SeqCst),
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(
                        Response::builder()
                            .header("connection", "close")
                            .body(full("tls upstream"))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, full_hs, resumed_hs)
}

fn upstream_config(addr: std::net::SocketAddr, extra: &str) -> String {
    format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          proxy_pass = "https://{addr}"
          proxy_ssl_name = "backend.test"
          {extra}
        "#
    )
}

#[tokio::test]
async fn upstream_tls_verification_and_session_reuse() {
    let pki = Pki::new("up");
    let (c, k, _) = pki.issue("backend", &["backend.test"]);
    let (addr, full_hs, resumed_hs) = tls_upstream(&c, &k, None).await;
    // Trusted CA: works, and the second connection resumes the session.
    let trusted = Proxy::start(&upstream_config(
        addr,
        &format!(
            "proxy_ssl_trusted_certificate = \"{}\"",
            pki.ca_path().display()
        ),
    ))
    .await;
    for _ in 0..3 {
        let (status, _, body) = get(&trusted.url("/"), &[]).await;
        assert_eq!((status.as_u16(), &body[..]), (200, &b"tls upstream"[..]));
    }
    assert_eq!(full_hs.load(Ordering::SeqCst), 1, "one full handshake");
    assert_eq!(
        resumed_hs.load(Ordering::SeqCst),
        2,
        "later connections resume"
    );
    // System CAs do not know the test CA: verification fails, 502.
    let untrusted = Proxy::start(&upstream_config(addr, "")).await;
    assert_eq!(get(&untrusted.url("/"), &[]).await.0, 502);
    // Unless verification is off (self-signed home servers).
    let unverified = Proxy::start(&upstream_config(addr, "proxy_ssl_verify = false")).await;
    assert_eq!(get(&unverified.url("/"), &[]).await.0, 200);
}

#[tokio::test]
async fn upstream_mtls_presents_the_client_certificate() {
    let pki = Pki::new("upm");
    let (c, k, _) = pki.issue("backend", &["backend.test"]);
    let (cc, ck, _) = pki.issue("proxy-client", &["proxy.test"]);
    let (addr, _, _) = tls_upstream(&c, &k, Some(&pki.ca_path())).await;
    let trusted = format!(
        "proxy_ssl_trusted_certificate = \"{}\"",
        pki.ca_path().display()
    );
    let with_cert = Proxy::start(&upstream_config(
        addr,
        &format!(
            "{trusted}\nproxy_ssl_certificate = \"{}\"\nproxy_ssl_certificate_key = \"{}\"",
            cc.display(),
            ck.display()
        ),
    ))
    .await;
    assert_eq!(get(&with_cert.url("/"), &[]).await.0, 200);
    let without = Proxy::start(&upstream_config(addr, &trusted)).await;
    assert_eq!(get(&without.url("/"), &[]).await.0, 502);
}

#[tokio::test]
async fn tls_1_1_clients_are_refused() {
    let pki = Pki::new("old");
    let (c, k, _) = pki.issue("site", &["old.test"]);
    let p = Proxy::start(&server_block("old.test", &c, &k, "")).await;
    // A ClientHello offering only TLS 1.1 (legacy_version 0x0302, no
    // supported_versions extension), with suites rustls would otherwise
    // accept, so the version is the only reason to refuse.
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x06, 0xc0, 0x2f, 0xc0, 0x2b, 0x00, 0x2f]); // cipher suites
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
                                            // signature_algorithms (rustls requires it before looking at versions):
                                            // ecdsa_secp256r1_sha256, rsa_pkcs1_sha256.
    hello.extend_from_slice(&[
        0x00, 0x0a, 0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01,
    ]);
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(&record).await.unwrap();
    let mut reply = [0u8; 7];
    bounded(s.read_exact(&mut reply)).await.unwrap();
    assert_eq!(
        reply[0], 0x15,
        "an alert record, not a ServerHello: {reply:?}"
    );
    assert_eq!(reply[6], 70, "alert protocol_version: {reply:?}");
}

#[test]
fn startup_errors_name_the_file() {
    let pki = Pki::new("errors");
    let (c, _, _) = pki.issue("one", &["one.test"]);
    let (_, other_key, _) = pki.issue("two", &["two.test"]);
    let missing = pki.dir.join("missing.pem");
    for (cert, key, want) in [
        (
            missing.clone(),
            other_key.clone(),
            format!("{}: cannot load", missing.display()),
        ),
        (
            c.clone(),
            other_key.clone(),
            format!(
                "{}: the private key does not match the certificate in {}",
                other_key.display(),
                c.display()
            ),
        ),
        (
            c.clone(),
            c.clone(),
            format!("{}: cannot load", c.display()),
        ),
    ] {
        let config = server_block("e.test", &cert, &key, "");
        let err = rpx_core::Rpx::from_toml(&config).unwrap_err().to_string();
        assert!(err.contains(&want), "want {want:?} in {err}");
    }
}

/// A client offering only `suites` and `versions`, trusting `pki`.
fn client_offering(
    pki: &Pki,
    suites: &[rustls::SupportedCipherSuite],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites.to_vec(),
        ..rustls::crypto::ring::default_provider()
    };
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

#[tokio::test]
async fn ssl_ciphers_choose_the_tls12_suites() {
    use rustls::crypto::ring::cipher_suite as cs;
    let pki = Pki::new("ciphers");
    // rcgen's keys are ECDSA: the ECDSA suites are the ones that can be used.
    let (c, k, _) = pki.issue("site", &["c.test"]);
    let p = Proxy::start(&server_block(
        "c.test",
        &c,
        &k,
        r#"ssl_ciphers = "HIGH:!aNULL:!MD5:!AES256:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256""#,
    ))
    .await;
    let tls12 = [&rustls::version::TLS12];
    for included in [
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        let client = client_offering(&pki, &[included], &tls12);
        let tls = handshake(p.addr(), client, "c.test").await;
        assert_eq!(
            tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite()),
            Some(included.suite())
        );
        let (status, _, body) = get_over(tls, "/", "c.test").await;
        assert_eq!(
            (status, &body[..]),
            (200, &b"https c.test c.test TLSv1.2"[..])
        );
    }
    // `!AES256` removed this one: a client offering only it is refused.
    let excluded = client_offering(&pki, &[cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384], &tls12);
    let tcp = TcpStream::connect(p.addr()).await.unwrap();
    let refused = bounded(
        tokio_rustls::TlsConnector::from(excluded.clone())
            .connect(ServerName::try_from("c.test").unwrap(), tcp),
    )
    .await;
    assert!(refused.is_err(), "the excluded suite was negotiated");
    // …which rustls would otherwise have agreed to.
    let open = Proxy::start(&server_block("c.test", &c, &k, "")).await;
    handshake(open.addr(), excluded, "c.test").await;
    // TLS 1.3 suites are not chosen by ssl_ciphers.
    let tls13 = client_offering(
        &pki,
        &[cs::TLS13_AES_256_GCM_SHA384],
        &[&rustls::version::TLS13],
    );
    handshake(p.addr(), tls13, "c.test").await;
    // The one name rustls lacks is a warning naming it.
    let warnings: Vec<String> = p
        .rpx
        .snapshot()
        .warnings()
        .iter()
        .map(|w| w.to_string())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("no rustls equivalent for DHE-RSA-AES128-GCM-SHA256;"),
        "{warnings:?}"
    );
}

#[test]
fn ssl_ciphers_leaving_no_tls12_suite_is_an_error_unless_tls12_is_off() {
    let pki = Pki::new("nociphers");
    let (c, k, _) = pki.issue("site", &["n.test"]);
    let only_old = r#"ssl_ciphers = "DHE-RSA-AES256-SHA:AES128-SHA""#;
    let err = rpx_core::Rpx::from_toml(&server_block("n.test", &c, &k, only_old))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ssl_ciphers leaves no TLS 1.2 suite rustls has, and TLSv1.2 is enabled"),
        "{err}"
    );
    let tls13_only = format!("{only_old}\nssl_protocols = [\"TLSv1.3\"]");
    rpx_core::Rpx::from_toml(&server_block("n.test", &c, &k, &tls13_only)).unwrap();
}

/// Two handshakes with one client config (one resumption store): how the
/// second one went.
async fn second_handshake(
    p: &Proxy,
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::HandshakeKind {
    let suites = rustls::crypto::ring::default_provider().cipher_suites;
    let client = client_offering(pki, &suites, versions);
    let first = handshake(p.addr(), client.clone(), "s.test").await;
    // A request and its answer: TLS 1.3 tickets arrive after the handshake
    // and are taken in while reading.
    assert_eq!(get_over(first, "/", "s.test").await.0, 200);
    let second = handshake(p.addr(), client, "s.test").await;
    second.get_ref().1.handshake_kind().unwrap()
}

#[tokio::test]
async fn front_side_sessions_resume_by_ticket_or_cache() {
    use rustls::HandshakeKind::{Full, Resumed};
    let pki = Pki::new("sessions");
    let (c, k, _) = pki.issue("site", &["s.test"]);
    for (settings, want) in [
        ("", Resumed),
        // Stateless tickets alone.
        ("ssl_session_cache = \"off\"", Resumed),
        // The cache alone (TLS 1.2 session IDs, TLS 1.3 stateful tickets).
        ("ssl_session_tickets = false", Resumed),
        (
            "ssl_session_tickets = false\nssl_session_cache = \"none\"",
            Full,
        ),
    ] {
        let p = Proxy::start(&server_block("s.test", &c, &k, settings)).await;
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let kind = second_handshake(&p, &pki, &[version]).await;
            assert_eq!(kind, want, "{settings:?} with {version:?}");
        }
    }
}

#[tokio::test]
async fn alpn_offers_h2_only_when_http2_is_enabled() {
    let pki = Pki::new("alpn");
    let (c, k, _) = pki.issue("site", &["a.test"]);
    let plain = server_block("a.test", &c, &k, "");
    let cases = [
        (plain.clone(), &b"http/1.1"[..]),
        (plain.replace(" ssl\"", " ssl http2\""), &b"h2"[..]),
        // nginx >= 1.25's `http2 on;`.
        (server_block("a.test", &c, &k, "http2 = true"), &b"h2"[..]),
        (
            server_block("a.test", &c, &k, "http2 = false"),
            &b"http/1.1"[..],
        ),
    ];
    for (config, want) in cases {
        let p = Proxy::start(&config).await;
        let tls = handshake(
            p.addr(),
            pki.client_config(None, &[b"h2", b"http/1.1"]),
            "a.test",
        )
        .await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(want), "{config}");
    }
}

#[test]
fn an_expired_certificate_is_a_warning_naming_the_file() {
    let pki = Pki::new("expired");
    let (c, k, _) = pki.issue_with("old", &["old.test"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let (fresh_c, fresh_k, _) = pki.issue("fresh", &["fresh.test"]);
    let config = [
        server_block("old.test", &c, &k, ""),
        server_block("fresh.test", &fresh_c, &fresh_k, ""),
    ]
    .concat();
    let config = rpx_core::config::parse_toml(&config, "t.toml").unwrap();
    // Not an error: the certificate is still served (a renewal may follow).
    let snapshot = rpx_core::stack::compile(&config).unwrap();
    let warnings: Vec<String> = snapshot.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let want = format!("the certificate in {} has expired (", c.display());
    assert!(warnings[0].contains(&want), "{warnings:?}");
    assert!(warnings[0].starts_with("t.toml:5:27: "), "{warnings:?}");
}

fn insecure_client() -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(rpx_core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(rpx_core::tls::AcceptAnyCertificate))
            .with_no_client_auth(),
    )
}

/// The TLS acceptor used alone, as an embedder would: a layer over the
/// embedder's own connection service, with a certificate added at runtime.
#[tokio::test]
async fn the_acceptor_layer_serves_an_embedders_connection_service() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::{Layer, ServiceExt};
    let pki = Pki::new("layer");
    let (cert, key, der) = pki.issue("embed", &["embed.test"]);
    let resolver = Arc::new(rpx_core::tls::CertResolver::new());
    resolver
        .add_files(&["embed.test"], &cert, &key, true)
        .unwrap();
    let config = rpx_core::tls::server_config(resolver, &Default::default(), None).unwrap();
    // The connection service writes back what the session says.
    let conn_service =
        tower::service_fn(|mut conn: rpx_core::tls::TlsConn<TcpStream>| async move {
            let line = format!(
                "{} {}\n",
                conn.info().server_name.as_deref().unwrap_or("-"),
                conn.info().protocol
            );
            conn.write_all(line.as_bytes()).await?;
            conn.shutdown().await
        });
    let tls = rpx_core::tls::TlsAcceptorLayer::new(config, LIMIT).layer(conn_service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = tls.oneshot(stream).await;
    });
    let mut client = handshake(addr, pki.client_config(None, &[]), "embed.test").await;
    assert_eq!(presented(&client), der);
    let mut said = String::new();
    bounded(client.read_to_string(&mut said)).await.unwrap();
    assert_eq!(said, "embed.test TLSv1.3\n");
}
