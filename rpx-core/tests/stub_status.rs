//! `stub_status`' counts as nginx keeps them, on real loopback connections:
//! idle keep-alive connections waiting, an unfinished head reading, a
//! request held by a slow upstream writing, HTTP/2 streams writing one
//! each, a TLS handshake in none of the three; everything back where it
//! was once the clients close. rpx's own HTTP/1 reader, hyper's, HTTP/2
//! and TLS each in turn.
//!
//! The counters are the process's: the checks are deltas from a snapshot,
//! and everything that opens connections is in one test, so nothing else
//! in this binary moves them meanwhile.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rpx_core::metrics::stub_status::{self, Snapshot};
use rustls::pki_types::ServerName;
use support::{serve_config, serve_config_with, Upstream, LIMIT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

#[test]
fn the_page_is_nginx_s_to_the_byte() {
    let page = Snapshot {
        active: 291,
        accepts: 16630948,
        handled: 16630948,
        requests: 31070465,
        reading: 6,
        writing: 179,
        waiting: 106,
    }
    .render();
    assert_eq!(
        page,
        "Active connections: 291 \n\
         server accepts handled requests\n \
         16630948 16630948 31070465 \n\
         Reading: 6 Writing: 179 Waiting: 106 \n"
    );
    let res = stub_status::response();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain");
}

/// The counts since a snapshot (`handled` is always `accepts` in rpx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    active: i64,
    accepts: i64,
    handled: i64,
    requests: i64,
    reading: i64,
    writing: i64,
    waiting: i64,
}

/// Active, accepts (= handled), requests, reading, writing, waiting.
fn counts(active: i64, accepts: i64, requests: i64, rww: [i64; 3]) -> Counts {
    let [reading, writing, waiting] = rww;
    Counts {
        active,
        accepts,
        handled: accepts,
        requests,
        reading,
        writing,
        waiting,
    }
}

fn since(base: &Snapshot) -> Counts {
    let now = stub_status::snapshot();
    let d = |now: u64, then: u64| now as i64 - then as i64;
    Counts {
        active: d(now.active, base.active),
        accepts: d(now.accepts, base.accepts),
        handled: d(now.handled, base.handled),
        requests: d(now.requests, base.requests),
        reading: d(now.reading, base.reading),
        writing: d(now.writing, base.writing),
        waiting: d(now.waiting, base.waiting),
    }
}

/// Waits (bounded) until the counts since `base` are `want`: the server
/// moves them on its own tasks, after the client has seen what it sent.
async fn settles(base: &Snapshot, want: Counts, what: &str) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let got = since(base);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}:\n got  {got:?}\n want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An upstream that tells of each request head it receives and answers
/// only once released (and at once after that).
struct Slow {
    addr: SocketAddr,
    arrived: mpsc::UnboundedReceiver<()>,
    release: watch::Sender<bool>,
}

impl Slow {
    async fn start() -> Slow {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tell, arrived) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (tell, mut released) = (tell.clone(), released.clone());
                tokio::spawn(async move {
                    while read_head(&mut s).await.is_some() {
                        let _ = tell.send(());
                        if released.wait_for(|r| *r).await.is_err() {
                            return;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow";
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Slow {
            addr,
            arrived,
            release,
        }
    }

    /// Waits for `n` more request heads.
    async fn arrivals(&mut self, n: usize) {
        for _ in 0..n {
            tokio::time::timeout(LIMIT, self.arrived.recv())
                .await
                .expect("a request at the slow upstream")
                .expect("the slow upstream runs");
        }
    }
}

/// An upstream that switches every request to a tunnel echoing what
/// comes (`101`, as a WebSocket server would).
async fn tunnel_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut s).await.is_none() {
                    return;
                }
                let switch = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n";
                if s.write_all(switch).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Reads up to the end of a head; None at the end of the stream.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

/// Sends `req` on a kept-alive connection and reads one whole response
/// (its length stated); its status line.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, req: &[u8]) -> String {
    tokio::time::timeout(LIMIT, async {
        s.write_all(req).await.unwrap();
        let head = String::from_utf8(read_head(s).await.expect("a response")).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("a stated length");
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.unwrap();
        head.lines().next().unwrap_or_default().to_owned()
    })
    .await
    .expect("answered in time")
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const SLOW: &[u8] = b"GET /slow/ HTTP/1.1\r\nHost: a\r\n\r\n";
const UNFINISHED: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n";

fn config(up: &Upstream, slow: &Slow, tunnel: SocketAddr) -> rpx_core::config::Config {
    rpx_core::config::parse_toml(
        &format!(
            r#"
            [[server]]
            listen = "127.0.0.1:0"
              [[server.location]]
              path = "/"
              proxy_pass = "http://{}"
              [[server.location]]
              path = "/slow/"
              proxy_pass = "http://{}"
              [[server.location]]
              path = "/tunnel/"
              proxy_pass = "http://{}"
            "#,
            up.addr, slow.addr, tunnel
        ),
        "stub_status.toml",
    )
    .expect("config")
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_requests_are_counted_as_nginx_counts_them() {
    let start = stub_status::snapshot();
    let up = Upstream::start(1).await;
    let tunnel = tunnel_upstream().await;
    own_http1_reader(&up, tunnel).await;
    hypers_http1(&up, tunnel).await;
    http2_streams(&up, tunnel).await;
    tls_handshakes(&up).await;
    // Phases: 9 + 4 + 2 + 2 connections, 9 + 4 + 2 + 1 requests.
    settles(&start, counts(0, 17, 16, [0, 0, 0]), "all closed").await;
}

/// rpx's own HTTP/1 reader.
async fn own_http1_reader(up: &Upstream, tunnel: SocketAddr) {
    let mut slow = Slow::start().await;
    let rpx = serve_config(&config(up, &slow, tunnel), vec![])
        .await
        .expect("serve");
    let addr = rpx.listeners[0].1;
    let base = stub_status::snapshot();

    // Connected, nothing sent: waiting, as nginx before the first byte.
    let silent = connect(addr).await;
    settles(&base, counts(1, 1, 0, [0, 0, 1]), "a silent connection").await;

    // Three kept alive after a request each: waiting.
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut s = connect(addr).await;
        assert_eq!(exchange(&mut s, GET).await, "HTTP/1.1 200 OK");
        idle.push(s);
    }
    settles(&base, counts(4, 4, 3, [0, 0, 4]), "three idle keep-alive").await;

    // Two unfinished heads: reading, not yet requests.
    let mut unfinished = connect(addr).await;
    unfinished.write_all(UNFINISHED).await.unwrap();
    let mut abandoned = connect(addr).await;
    abandoned.write_all(UNFINISHED).await.unwrap();
    settles(&base, counts(6, 6, 3, [2, 0, 4]), "two unfinished heads").await;

    // One held by the upstream: writing.
    let mut held = connect(addr).await;
    held.write_all(SLOW).await.unwrap();
    slow.arrivals(1).await;
    settles(&base, counts(7, 7, 4, [2, 1, 4]), "one request in flight").await;

    // Answered: waiting again.
    slow.release.send(true).unwrap();
    let mut answer = Vec::new();
    read_head_and(&mut held, &mut answer).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    settles(&base, counts(7, 7, 4, [2, 0, 5]), "the slow one answered").await;

    // The head finished: a request, answered, waiting.
    unfinished.write_all(b"\r\n").await.unwrap();
    let mut answer = Vec::new();
    read_head_and(&mut unfinished, &mut answer).await;
    settles(&base, counts(7, 7, 5, [1, 0, 6]), "the head finished").await;

    // Closed mid-head: a request too, as nginx counts it at its first byte.
    drop(abandoned);
    settles(&base, counts(6, 7, 6, [0, 0, 6]), "a head abandoned").await;

    // A pipelined pair on one connection: two requests.
    let mut pair = Vec::from(GET);
    pair.extend_from_slice(GET);
    let mut s = connect(addr).await;
    assert_eq!(exchange(&mut s, &pair).await, "HTTP/1.1 200 OK");
    let mut rest = Vec::new();
    read_head_and(&mut s, &mut rest).await;
    idle.push(s);
    settles(&base, counts(7, 8, 8, [0, 0, 7]), "a pipelined pair").await;

    // Upgraded: a tunnel writes for as long as it is open, as nginx's
    // upgraded request does.
    let mut upgraded = connect(addr).await;
    upgraded
        .write_all(
            b"GET /tunnel/ HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
    let mut switched = Vec::new();
    read_head_and(&mut upgraded, &mut switched).await;
    assert!(switched.starts_with(b"HTTP/1.1 101"), "{switched:?}");
    upgraded.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(LIMIT, upgraded.read_exact(&mut echo))
        .await
        .expect("echoed in time")
        .unwrap();
    assert_eq!(&echo, b"ping");
    settles(&base, counts(8, 9, 9, [0, 1, 7]), "a tunnel open").await;

    drop((silent, idle, unfinished, held, upgraded));
    settles(&base, counts(0, 9, 9, [0, 0, 0]), "own reader: all closed").await;
    drop(rpx);
}

/// Reads until a head has arrived and a little after: what came.
async fn read_head_and<S: AsyncRead + Unpin>(s: &mut S, into: &mut Vec<u8>) {
    let head = tokio::time::timeout(LIMIT, read_head(s))
        .await
        .expect("answered in time")
        .expect("a response");
    into.extend_from_slice(&head);
}

/// hyper's HTTP/1 path (`own_http1` off): the server's screen sees the
/// heads before hyper.
async fn hypers_http1(up: &Upstream, tunnel: SocketAddr) {
    let mut slow = Slow::start().await;
    let rpx = serve_config_with(&config(up, &slow, tunnel), vec![], false)
        .await
        .expect("serve");
    let addr = rpx.listeners[0].1;
    let base = stub_status::snapshot();

    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = connect(addr).await;
        assert_eq!(exchange(&mut s, GET).await, "HTTP/1.1 200 OK");
        idle.push(s);
    }
    settles(&base, counts(2, 2, 2, [0, 0, 2]), "hyper: two idle").await;

    let mut abandoned = connect(addr).await;
    abandoned.write_all(UNFINISHED).await.unwrap();
    settles(
        &base,
        counts(3, 3, 2, [1, 0, 2]),
        "hyper: an unfinished head",
    )
    .await;

    let mut held = connect(addr).await;
    held.write_all(SLOW).await.unwrap();
    slow.arrivals(1).await;
    settles(&base, counts(4, 4, 3, [1, 1, 2]), "hyper: one in flight").await;
    slow.release.send(true).unwrap();
    let mut answer = Vec::new();
    read_head_and(&mut held, &mut answer).await;
    settles(&base, counts(4, 4, 3, [1, 0, 3]), "hyper: answered").await;

    drop(abandoned);
    settles(&base, counts(3, 4, 4, [0, 0, 3]), "hyper: a head abandoned").await;
    drop((idle, held));
    settles(&base, counts(0, 4, 4, [0, 0, 0]), "hyper: all closed").await;
    drop(rpx);
}

/// HTTP/2 by prior knowledge: waiting with no stream open, each open
/// stream writing (and a request), as nginx counts its streams.
async fn http2_streams(up: &Upstream, tunnel: SocketAddr) {
    let mut slow = Slow::start().await;
    let rpx = serve_config(&config(up, &slow, tunnel), vec![])
        .await
        .expect("serve");
    let addr = rpx.listeners[0].1;
    let base = stub_status::snapshot();

    let (mut send, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(addr).await),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    // A second connection that never opens a stream.
    let (idle_send, idle_conn) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(connect(addr).await),
    )
    .await
    .expect("h2 handshake");
    let idle_conn = tokio::spawn(idle_conn);
    settles(&base, counts(2, 2, 0, [0, 0, 2]), "h2: no streams").await;

    let get = |path: &str| {
        http::Request::get(format!("http://{addr}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let first = tokio::spawn(send.send_request(get("/slow/a")));
    let second = tokio::spawn(send.send_request(get("/slow/b")));
    slow.arrivals(2).await;
    settles(
        &base,
        counts(2, 2, 2, [0, 2, 1]),
        "h2: two streams in flight",
    )
    .await;

    slow.release.send(true).unwrap();
    for stream in [first, second] {
        let res = tokio::time::timeout(LIMIT, stream)
            .await
            .expect("answered in time")
            .unwrap()
            .expect("a response");
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"slow");
    }
    settles(&base, counts(2, 2, 2, [0, 0, 2]), "h2: streams done").await;

    drop((send, idle_send));
    conn.abort();
    idle_conn.abort();
    settles(&base, counts(0, 2, 2, [0, 0, 0]), "h2: all closed").await;
    drop(rpx);
}

/// TLS: waiting before the first byte, in none of reading, writing,
/// waiting during the handshake, waiting after it.
async fn tls_handshakes(up: &Upstream) {
    let pki = Pki::new();
    let cfg = rpx_core::config::parse_toml(
        &format!(
            r#"
            [[server]]
            listen = "127.0.0.1:0 ssl"
            server_name = "status.test"
            ssl_certificate = "{}"
            ssl_certificate_key = "{}"
              [[server.location]]
              path = "/"
              proxy_pass = "http://{}"
            "#,
            pki.cert.display(),
            pki.key.display(),
            up.addr
        ),
        "stub_status_tls.toml",
    )
    .expect("config");
    let (addr, stop) = serve_tls(&cfg).await;
    let base = stub_status::snapshot();

    let mut hello = connect(addr).await;
    settles(
        &base,
        counts(1, 1, 0, [0, 0, 1]),
        "tls: before the first byte",
    )
    .await;
    // The start of a TLS record (a handshake, TLS 1.0 framing): the
    // handshake is under way, and it never ends.
    hello.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    settles(&base, counts(1, 1, 0, [0, 0, 0]), "tls: handshaking").await;

    let tls = tokio::time::timeout(
        LIMIT,
        tokio_rustls::TlsConnector::from(pki.client()).connect(
            ServerName::try_from("status.test").unwrap(),
            connect(addr).await,
        ),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    settles(&base, counts(2, 2, 0, [0, 0, 1]), "tls: handshake done").await;
    let mut tls = tls;
    let line = exchange(&mut tls, b"GET / HTTP/1.1\r\nHost: status.test\r\n\r\n").await;
    assert_eq!(line, "HTTP/1.1 200 OK");
    settles(&base, counts(2, 2, 1, [0, 0, 1]), "tls: a request answered").await;

    drop((hello, tls));
    settles(&base, counts(0, 2, 1, [0, 0, 0]), "tls: all closed").await;
    drop(stop);
}

/// Serves `cfg`'s one listener with its TLS settings.
async fn serve_tls(cfg: &rpx_core::config::Config) -> (SocketAddr, watch::Sender<bool>) {
    let snapshot = rpx_core::stack::compile(cfg)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())
        .expect("compile");
    let spec = snapshot.listeners()[0].clone();
    assert!(spec.tls.is_some(), "a TLS listener");
    let rpx = rpx_core::Rpx::new(snapshot);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(rpx_core::server::serve_with(
        listener,
        rpx,
        rpx_core::server::ServeOptions {
            tls: spec.tls.clone(),
            ..spec.options(Duration::from_secs(1))
        },
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    (addr, stop)
}

/// A test CA and a certificate it issued for `status.test`.
struct Pki {
    ca: rustls::pki_types::CertificateDer<'static>,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = support::temp_dir("stub-status-tls");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "rpx stub_status test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let mut params = CertificateParams::new(vec!["status.test".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "status.test");
        let key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, &ca).unwrap();
        let (cert, key_path) = (dir.join("status.pem"), dir.join("status.key"));
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Pki {
            ca: ca.der().clone(),
            cert,
            key: key_path,
        }
    }

    fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let mut c = rustls::ClientConfig::builder_with_provider(rpx_core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}
