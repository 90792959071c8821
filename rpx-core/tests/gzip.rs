//! `gzip` against real nginx on files of several types and sizes, with
//! several `Accept-Encoding`s, HEAD, and a request through a proxy (`Via`,
//! `gzip_proxied`): the same `Content-Encoding`, `Vary`, `Content-Length`,
//! ETag strength, and the same bytes once decoded. Then rpx alone: an
//! event stream arrives compressed event by event. (The server's `root`
//! serves what no location matches, as in nginx.)

mod support;

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use support::*;

const SERVERS: &str = r#"
    types {
        text/html html;
        text/plain txt;
        application/json json;
        image/png png;
    }
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        root DIR;
        gzip on;
        gzip_types application/json;
        gzip_min_length 100;
        location /vary/ {
            gzip_vary on;
            gzip_comp_level 6;
        }
        location /proxied/ {
            gzip_proxied any;
        }
        location /off/ {
            gzip off;
        }
        location /old/ {
            gzip_http_version 1.0;
            gzip_disable "curl/7";
        }
    }
"#;

/// A method, a path, request headers.
type Probe<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// What a client sees of a response, its body decoded.
async fn observe(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "a");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let got = send(addr, req.body(Full::new(Bytes::new())).unwrap()).await;
    let h = |n: &str| got.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    let encoding = h("content-encoding");
    let body = got.body.clone();
    let decoded = if encoding.as_deref() == Some("gzip") {
        // `send` read the body as text; the raw bytes are what matter.
        String::from("gzip")
    } else {
        format!("{} bytes", body.len())
    };
    format!(
        "{} encoding={encoding:?} vary={:?} length={} weak-etag={} body={decoded}",
        got.status.as_u16(),
        h("vary"),
        h("content-length").is_some(),
        h("etag").is_some_and(|e| e.starts_with("W/")),
    )
}

/// The decoded body of a gzip response, fetched raw.
async fn decoded(addr: SocketAddr, path: &str) -> Vec<u8> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "a")
        .header("accept-encoding", "gzip")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip", "{path}");
    let raw = res.into_body().collect().await.unwrap().to_bytes();
    let mut out = flate2::write::GzDecoder::new(Vec::new());
    out.write_all(&raw).unwrap();
    out.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_matches_nginx() {
    let Some(both) = nginx::Both::start("gzip", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let page = "<p>compress me, compress me, compress me</p>\n".repeat(200);
    let json = format!("[{}]", vec!["{\"k\": \"value\"}"; 300].join(","));
    for dir in ["", "vary/", "proxied/", "off/", "old/"] {
        std::fs::create_dir_all(both.dir.join(dir)).unwrap();
        std::fs::write(both.dir.join(format!("{dir}page.html")), &page).unwrap();
        std::fs::write(both.dir.join(format!("{dir}data.json")), &json).unwrap();
        std::fs::write(both.dir.join(format!("{dir}notes.txt")), &page).unwrap();
        std::fs::write(both.dir.join(format!("{dir}tiny.html")), "<p>hi</p>").unwrap();
        std::fs::write(both.dir.join(format!("{dir}pic.png")), &page).unwrap();
    }
    let gzip = ("accept-encoding", "gzip, deflate");
    let probes: &[Probe] = &[
        ("GET", "/page.html", &[gzip]),
        ("GET", "/page.html", &[]),
        ("GET", "/page.html", &[("accept-encoding", "gzip;q=0")]),
        ("GET", "/page.html", &[("accept-encoding", "br")]),
        (
            "GET",
            "/page.html",
            &[("accept-encoding", "deflate;q=0.5, GZIP;q=0.8")],
        ),
        ("HEAD", "/page.html", &[gzip]),
        ("GET", "/data.json", &[gzip]),
        ("GET", "/notes.txt", &[gzip]),
        ("GET", "/tiny.html", &[gzip]),
        ("GET", "/pic.png", &[gzip]),
        ("GET", "/page.html", &[gzip, ("via", "1.1 lb")]),
        ("GET", "/vary/page.html", &[gzip]),
        ("GET", "/vary/page.html", &[]),
        ("GET", "/vary/pic.png", &[gzip]),
        ("GET", "/proxied/page.html", &[gzip, ("via", "1.1 lb")]),
        ("GET", "/off/page.html", &[gzip]),
        (
            "GET",
            "/old/page.html",
            &[gzip, ("user-agent", "curl/7.88")],
        ),
        ("GET", "/old/page.html", &[gzip, ("user-agent", "curl/8.1")]),
    ];
    let mut diffs = Vec::new();
    let mut compressed = 0;
    for (method, path, headers) in probes {
        let want = observe(both.nginx, method, path, headers).await;
        let got = observe(both.rpx, method, path, headers).await;
        compressed += usize::from(want.contains("encoding=Some(\"gzip\")"));
        if want != got {
            diffs.push(format!(
                "{method} {path} {headers:?}:\n  nginx {want}\n  rpx   {got}"
            ));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    assert!(compressed >= 5, "too few compressed: {compressed}");
    for path in ["/page.html", "/data.json", "/vary/page.html"] {
        assert_eq!(
            decoded(both.rpx, path).await,
            decoded(both.nginx, path).await,
            "{path} decodes to the same bytes"
        );
    }
}

/// An upstream sending an event stream one event at a time, each when the
/// test says.
async fn sse_upstream() -> (SocketAddr, tokio::sync::mpsc::Sender<&'static str>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<&'static str>(4);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(rx)));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let rx = rx.clone();
            let svc =
                hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    let rx = rx.clone();
                    async move {
                        let rx = rx.lock().await.take().expect("one stream");
                        let events = futures_util::stream::unfold(rx, |mut rx| async move {
                            let e = rx.recv().await?;
                            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(e))), rx))
                        });
                        let res = http::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(StreamBody::new(events))
                            .unwrap();
                        Ok::<_, Infallible>(res)
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (addr, tx)
}

/// A decoder of `coding` written to frame by frame, its output readable
/// after each flush.
fn stream_decoder(coding: &str, out: SharedBuf) -> Box<dyn tokio::io::AsyncWrite + Unpin + Send> {
    use async_compression::tokio::write::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    match coding {
        "br" => Box::new(BrotliDecoder::new(out)),
        "zstd" => Box::new(ZstdDecoder::new(out)),
        _ => Box::new(GzipDecoder::new(out)),
    }
}

/// What a decoder has written so far, shared with the test.
#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl tokio::io::AsyncWrite for SharedBuf {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// An event stream compressed with gzip (`gzip`), brotli and zstd
/// (`encode`) arrives event by event: each decodes from what has arrived
/// before the upstream sends the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_arrives_compressed_event_by_event() {
    use tokio::io::AsyncWriteExt;
    for coding in ["gzip", "br", "zstd"] {
        let (up, events) = sse_upstream().await;
        let toml = format!(
            r#"
            [[server]]
            listen = "127.0.0.1:8080"
            gzip = true
            gzip_types = ["text/event-stream"]
            encode = ["{coding}"]
            [[server.location]]
            path = "/"
            proxy_pass = "http://{up}"
            "#
        );
        let cfg = rpx_core::config::parse_toml(&toml, "gzip.toml").expect("config");
        let back = rpx_core::config::to_toml(&cfg).expect("convert");
        assert!(
            back.contains("gzip = true") && back.contains("gzip_types = [\"text/event-stream\"]"),
            "{back}"
        );
        let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
        let stream = tokio::net::TcpStream::connect(rpx.listeners[0].1)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/events")
            .header("host", "a")
            .header("accept-encoding", coding)
            .body(Full::new(Bytes::new()))
            .unwrap();
        events.send("data: one\n\n").await.unwrap();
        let res = tokio::time::timeout(LIMIT, sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(res.headers()["content-encoding"], coding);
        let mut body = res.into_body();
        let out = SharedBuf::default();
        let mut decoder = stream_decoder(coding, out.clone());
        let seen = || String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
        let mut text = String::new();
        for (event, next) in [
            ("data: one\n\n", Some("data: two\n\n")),
            ("data: two\n\n", None),
        ] {
            while !text.ends_with(event) {
                let frame = tokio::time::timeout(LIMIT, body.frame())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("{coding}: {event:?} arrives while the stream stays open")
                    })
                    .expect("a frame")
                    .unwrap();
                if let Ok(data) = frame.into_data() {
                    decoder.write_all(&data).await.unwrap();
                    decoder.flush().await.unwrap();
                }
                text = seen();
            }
            if let Some(next) = next {
                events.send(next).await.unwrap();
            }
        }
        drop(events);
        while let Some(frame) = tokio::time::timeout(LIMIT, body.frame()).await.unwrap() {
            if let Ok(data) = frame.unwrap().into_data() {
                decoder.write_all(&data).await.unwrap();
            }
        }
        decoder.shutdown().await.unwrap();
        assert_eq!(seen(), "data: one\n\ndata: two\n\n", "{coding}");
    }
}

/// Decodes `body` as `coding`.
async fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match coding {
        "br" => BrotliDecoder::new(body).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(body).read_to_end(&mut out).await,
        "gzip" => GzipDecoder::new(body).read_to_end(&mut out).await,
        other => panic!("unexpected coding {other}"),
    }
    .expect("the body decodes");
    out
}

/// TOML's `encode`: brotli and zstd beside gzip, chosen by the client's
/// `Accept-Encoding` q-values, ties going to the order written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encode_negotiates_zstd_brotli_and_gzip() {
    let dir = temp_dir("encode");
    let page = "<p>compress me</p>\n".repeat(200);
    std::fs::write(dir.join("index.html"), &page).unwrap();
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        root = "{}"
        encode = ["zstd", "br", "gzip"]
        gzip_vary = true
        "#,
        dir.display()
    );
    let cfg = rpx_core::config::parse_toml(&toml, "encode.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    assert!(
        back.contains(r#"encode = ["zstd", "br", "gzip"]"#),
        "{back}"
    );
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    for (accept, want) in [
        ("gzip, deflate, br, zstd", Some("zstd")),
        ("gzip, br", Some("br")),
        ("br;q=0.5, gzip", Some("gzip")),
        ("zstd;q=0, gzip;q=0.1", Some("gzip")),
        ("deflate", None),
    ] {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/index.html")
            .header("host", "a")
            .header("accept-encoding", accept)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = tokio::time::timeout(LIMIT, sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        let coding = res
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(coding.as_deref(), want, "{accept}");
        assert_eq!(res.headers()["vary"], "Accept-Encoding", "{accept}");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let plain = match &coding {
            Some(c) => {
                assert!(body.len() < page.len() / 4, "{accept}: compressed");
                decode(c, &body).await
            }
            None => body.to_vec(),
        };
        assert_eq!(plain, page.as_bytes(), "{accept}");
    }

    // A coding rpx does not have is an error with its place.
    let bad = "[[server]]\nlisten = \"127.0.0.1:0\"\nencode = [\"deflate\"]\n";
    let err = rpx_core::config::parse_toml(bad, "bad.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.toml:3") && err.contains("unknown coding \"deflate\""),
        "{err}"
    );
}
