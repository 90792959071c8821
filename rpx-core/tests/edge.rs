//! The edge, tried as an attacker would: raw request bytes on loopback to
//! real nginx and to rpx (its own HTTP/1.1 reader, and hyper's alone) with
//! the same config; the status each answers, whether it closes, and what
//! the recording upstream saw must agree. docs/security.md lists what is
//! refused; what is deliberately different is in docs/nginx-compat.md.

mod support;

use std::net::SocketAddr;

use rpx_core::config::{self, LoadOptions};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location /admin/ { return 403; }
        location /zm/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT/zm/; }
        location /ws/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
        location /uri/ { return 200 "$uri"; }
        location /small/ {
            client_max_body_size 10;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location / {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-Host $host;
        }
    }
    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name slashes.test;
        # Not the default server's: nginx has merged the path before it
        # knows the host.
        merge_slashes off;
        location / { proxy_pass http://127.0.0.1:UPSTREAM_PORT/m/; }
    }
"#;

/// What the upstream saw: method, URI and the headers of [`WATCHED`] it got.
type UpstreamView = (String, String, Vec<(String, String)>);

/// What one raw request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status: u16,
    /// The response said `Connection: close` (or the connection closed
    /// without one).
    closed: bool,
    /// The body, for the `return` locations.
    body: Option<String>,
    /// The upstream's view: method, URI and the headers that matter here.
    upstream: Option<UpstreamView>,
}

const WATCHED: &[&str] = &[
    "x-host",
    "upgrade",
    "x_forwarded_for",
    "x.dot",
    "x-ok",
    "transfer-encoding",
    "content-length",
];

/// Sends `raw` on a fresh connection and reads one response.
async fn exchange(addr: SocketAddr, up: &Upstream, raw: &[u8]) -> Outcome {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(raw).await.expect("send");
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if response_complete(&got) {
                break;
            }
        }
        got
    };
    let got = tokio::time::timeout(LIMIT, fut)
        .await
        .expect("no answer in time");
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // Said with a header, or an HTTP/1.0 answer without keep-alive.
    let lower = head.to_ascii_lowercase();
    let closed = lower.contains("\r\nconnection: close")
        || (lower.starts_with("http/1.0") && !lower.contains("\r\nconnection: keep-alive"));
    let seen = up.take();
    let upstream = seen.first().map(|s| {
        let headers = WATCHED
            .iter()
            .filter_map(|n| {
                s.headers.get(*n).map(|v| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
            })
            .collect();
        (s.method.clone(), s.uri.clone(), headers)
    });
    Outcome {
        status,
        closed,
        body: (upstream.is_none() && status == 200).then(|| body.to_owned()),
        upstream,
    }
}

/// A whole response: its head and as much body as `Content-Length` says
/// (none for a 204).
fn response_complete(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    if head.split(' ').nth(1) == Some("204") {
        return true;
    }
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .is_some_and(|len| body.len() >= len)
}

/// The three servers under test: nginx, rpx with its own reader (the
/// default) and rpx with hyper's alone.
struct Servers {
    nginx: SocketAddr,
    own: SocketAddr,
    hyper: SocketAddr,
    up: Upstream,
    _both: nginx::Both,
    _hyper: Running,
}

async fn start() -> Option<Servers> {
    let both = nginx::Both::start("edge", SERVERS).await?;
    let (cfg, _) = config::load_with(&both.conf, LoadOptions { lenient: false })
        .into_result()
        .expect("rpx loads the config");
    let hyper = serve_config_with(&cfg, Vec::new(), false)
        .await
        .expect("serve");
    Some(Servers {
        nginx: both.nginx,
        own: both.rpx,
        hyper: hyper.listeners[0].1,
        up: both.up.clone(),
        _both: both,
        _hyper: hyper,
    })
}

/// A chunked POST to `path` with `body` as its raw chunks.
fn chunked(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
        .into_bytes()
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let get = |head: &str| format!("GET / HTTP/1.1\r\n{head}\r\n").into_bytes();
    let long_header = get(&format!("Host: a\r\nX-Long: {}\r\n", "x".repeat(8200)));
    let fits_header = get(&format!("Host: a\r\nX-Long: {}\r\n", "x".repeat(8000)));
    let many: String = (0..5)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(7000)))
        .collect();
    vec![
        ("no Host", get("")),
        ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        ("two Host lines", get("Host: a\r\nHost: b\r\n")),
        ("Host a/b", get("Host: a/b\r\n")),
        ("Host a b", get("Host: a b\r\n")),
        ("Host a..b", get("Host: a..b\r\n")),
        ("empty Host", get("Host: \r\n")),
        ("Host case and final dot", get("Host: A.Example.COM.:8080\r\n")),
        ("IPv6 Host", get("Host: [::1]:80\r\n")),
        (
            "absolute-form without Host",
            b"GET http://other.example/x HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            "absolute-form names the host",
            b"GET http://other.example/x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "authority-form target",
            b"GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "absolute-form with a bad host",
            b"GET http://a..b/x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        ("8 KiB header", long_header),
        ("header that fits", fits_header),
        ("head over 4 x 8 KiB", get(&format!("Host: a\r\n{many}"))),
        (
            "16 KiB request target",
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(16 * 1024)).into_bytes(),
        ),
        (
            "underscores and dots in names",
            get("Host: a\r\nX_Forwarded_For: 6.6.6.6\r\nX.Dot: 1\r\nX-Ok: 2\r\n"),
        ),
        ("TRACE", b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        ("obs-fold", get("Host: a\r\nX-Fold: a\r\n b\r\n")),
        ("bare CR", get("Host: a\rX: b\r\n")),
        (
            "%2F before a denied prefix",
            b"GET /admin%2fx HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "dot segments before a denied prefix",
            b"GET /x/..%2Fadmin/y HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        ("%00", b"GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        ("above the root", b"GET /a/../../x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        (
            "proxy_pass with a URI re-escapes",
            b"GET /zm/a%20b%2Fc HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "proxy_pass without a URI passes the target",
            b"GET /a%20b%2Fc//d HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "merge_slashes off",
            b"GET //a//b/ HTTP/1.1\r\nHost: slashes.test\r\n\r\n".to_vec(),
        ),
        (
            "Upgrade where the location does not forward it",
            get("Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"),
        ),
        (
            "Upgrade where the location forwards it",
            b"GET /ws/ HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec(),
        ),
        (
            "Content-Length with Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Content-Length twice",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        ),
        (
            "Transfer-Encoding twice",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding other than chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Content-Length +3",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc".to_vec(),
        ),
        (
            "a good POST",
            b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        ),
        (
            "a good chunked POST reaches the upstream with its length",
            chunked("/p", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
        ),
        ("chunk size zz", chunked("/p", "zz\r\nabc\r\n0\r\n\r\n")),
        (
            "chunk size overflow",
            chunked("/p", "fffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        ),
        ("chunk size negative", chunked("/p", "-1\r\nabc\r\n0\r\n\r\n")),
        (
            "chunk longer than its size",
            chunked("/p", "2\r\nabcdef\r\n0\r\n\r\n"),
        ),
        (
            "chunked body over client_max_body_size",
            chunked("/small/x", "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"),
        ),
        (
            "declared length over client_max_body_size",
            b"POST /small/x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n12345678901".to_vec(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_heads_get_nginx_answers() {
    let Some(s) = start().await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut diffs = Vec::new();
    for (name, raw) in cases() {
        let want = exchange(s.nginx, &s.up, &raw).await;
        for (reader, addr) in [("own reader", s.own), ("hyper", s.hyper)] {
            let got = exchange(addr, &s.up, &raw).await;
            if got != want {
                diffs.push(format!(
                    "{name} ({reader}):\n  nginx {want:?}\n  rpx   {got:?}"
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

/// The smuggling attempt that waits for its connection to be hyper's: a
/// plain POST first (rpx's reader hands the connection to hyper at its
/// first body), then `Content-Length` with `Transfer-Encoding`, pipelined.
/// Every server answers the first and refuses the second; the upstream
/// sees one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_after_a_first_body_is_refused_too() {
    let Some(s) = start().await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let raw = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
        POST /q HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
        GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    for (server, addr) in [
        ("nginx", s.nginx),
        ("own reader", s.own),
        ("hyper", s.hyper),
    ] {
        let fut = async {
            let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
            c.write_all(raw).await.expect("send");
            let mut got = Vec::new();
            let _ = c.read_to_end(&mut got).await;
            got
        };
        let got = tokio::time::timeout(LIMIT, fut)
            .await
            .expect("closed in time");
        let text = String::from_utf8_lossy(&got);
        let statuses: Vec<&str> = text
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &text[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["200", "400"], "{server}: {text}");
        let seen: Vec<String> = s.up.take().iter().map(|r| r.uri.clone()).collect();
        assert_eq!(seen, ["/p"], "{server}");
    }
}

/// Paths as nginx sees them: `$uri` (decoded, dot segments resolved,
/// slashes merged) and what `proxy_pass` with a URI part sends (escaped
/// again), byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_decode_and_re_escape_as_nginx() {
    let Some(s) = start().await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let paths = [
        "/a",
        "/a/",
        "/a//b",
        "///a",
        "/a/./b",
        "/a/../b",
        "/a/b/..",
        "/a/b/../",
        "/a/.",
        "/a/..b",
        "/a/.b/",
        "/%41%62",
        "/%7euser",
        "/a%2fb",
        "/a%2Fb%2F",
        "/a%2F..%2Fb",
        "/a%2F%2Fb",
        "/%2e%2e/x",
        "/a/%2e%2e/x",
        "/a/%2E/x",
        "/a%20b",
        "/a+b",
        "/a%2Bb",
        "/a%3Fb",
        "/a%23b",
        "/a%3Bb;c",
        "/a%22b",
        "/a%3C%3E",
        "/a%5C",
        "/a%5E%60",
        "/a%7B%7C%7D",
        "/a%0Ab",
        "/a%09b",
        "/a%7F",
        "/caf%C3%A9",
        "/caf%c3%a9/x",
        "/caf%E9",
        "/a!$&'()*,=:@~",
        "/a?x=%2F&y=1",
        "/a%2F?q=a/../b",
        "/a/b%2f..%2f..%2fc",
        "/a%zz",
        "/a%4",
    ];
    let mut diffs = Vec::new();
    for path in paths {
        for prefix in ["/uri", "/zm"] {
            if prefix == "/uri" && path == "/caf%E9" {
                // Not UTF-8 once decoded: rpx's `$uri` keeps the escape
                // (docs/nginx-compat.md); the upstream sees the same bytes.
                continue;
            }
            let raw = format!("GET {prefix}{path} HTTP/1.1\r\nHost: a\r\n\r\n");
            let want = exchange(s.nginx, &s.up, raw.as_bytes()).await;
            for (reader, addr) in [("own reader", s.own), ("hyper", s.hyper)] {
                let got = exchange(addr, &s.up, raw.as_bytes()).await;
                if got != want {
                    diffs.push(format!(
                        "{prefix}{path} ({reader}):\n  nginx {want:?}\n  rpx   {got:?}"
                    ));
                }
            }
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

/// The listener's head settings, set on the default server, against nginx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_head_settings_match_nginx() {
    let servers = r#"
        server {
            listen 127.0.0.1:LISTEN_PORT default_server;
            server_name _;
            large_client_header_buffers 2 1k;
            client_header_buffer_size 2k;
            underscores_in_headers on;
            ignore_invalid_headers off;
            merge_slashes off;
            location = /a/b { return 204; }
            location / { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        }
    "#;
    let Some(both) = nginx::Both::start("edge-listener", servers).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let header = |n: usize| format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(n));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a header in one large buffer", header(900).into_bytes()),
        (
            "a header in the first buffer only",
            header(1500).into_bytes(),
        ),
        ("a header past both", header(2100).into_bytes()),
        (
            "a target past both",
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(2100)).into_bytes(),
        ),
        (
            "underscores and dots kept",
            b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.2.3.4\r\nX.Dot: 1\r\n\r\n".to_vec(),
        ),
        (
            "merged path",
            b"GET /a/b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "unmerged path",
            b"GET /a//b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "escaped slashes",
            b"GET /a%2F%2Fb HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
    ];
    let mut diffs = Vec::new();
    for (name, raw) in cases {
        let want = exchange(both.nginx, &both.up, &raw).await;
        let got = exchange(both.rpx, &both.up, &raw).await;
        if got != want {
            diffs.push(format!("{name}:\n  nginx {want:?}\n  rpx   {got:?}"));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

/// The size limits follow `large_client_header_buffers`, a head too long
/// is refused before it is complete, and `underscores_in_headers on` keeps
/// such headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_head_settings_are_mapped() {
    let up = Upstream::start(1).await;
    let dir = temp_dir("edge-buffers");
    let conf = dir.join("rpx.conf");
    std::fs::write(
        &conf,
        format!(
            "events {{}}\nhttp {{\n  server {{\n    listen 127.0.0.1:8080;\n    large_client_header_buffers 2 1k;\n    underscores_in_headers on;\n    merge_slashes off;\n    location = /a/b {{ return 204; }}\n    location / {{ proxy_pass http://{}; }}\n  }}\n}}\n",
            up.addr
        ),
    )
    .expect("write");
    let rpx = serve_file(&conf, false).await.expect("serve");
    let addr = rpx.listeners[0].1;
    let header = |n: usize| format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(n));
    assert_eq!(
        exchange(addr, &up, header(900).as_bytes()).await.status,
        200
    );
    assert_eq!(
        exchange(addr, &up, header(1100).as_bytes()).await.status,
        400
    );
    let target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(1100));
    assert_eq!(exchange(addr, &up, target.as_bytes()).await.status, 414);
    // Unfinished: refused as soon as the line is over the buffer.
    let unfinished = format!("GET /{}", "a".repeat(1100));
    let got = exchange(addr, &up, unfinished.as_bytes()).await;
    assert_eq!((got.status, got.upstream), (414, None));
    let under = b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n";
    let got = exchange(addr, &up, under).await;
    let (_, _, headers) = got.upstream.expect("forwarded");
    assert_eq!(
        headers,
        [("x_forwarded_for".to_owned(), "1.2.3.4".to_owned())]
    );
    // `merge_slashes off`: `/a//b` is not `/a/b`.
    let raw = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        exchange(addr, &up, raw("/a/b").as_bytes()).await.status,
        204
    );
    let got = exchange(addr, &up, raw("/a//b").as_bytes()).await;
    assert_eq!(got.upstream.map(|u| u.1).as_deref(), Some("/a//b"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// TOML tunnels upgrades by default; `websocket = false` makes them
/// ordinary requests, `"nginx"` tunnels them only where `Upgrade` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_key_decides_which_upgrades_are_tunnelled() {
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:8080"
        [[server.location]]
        path = "/off/"
        proxy_pass = "http://{up}"
        websocket = false
        [[server.location]]
        path = "/nginx/"
        proxy_pass = "http://{up}"
        websocket = "nginx"
        [[server.location]]
        path = "/"
        proxy_pass = "http://{up}"
        "#,
        up = up.addr
    );
    let cfg = config::parse_toml(&toml, "edge.toml").expect("config");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    let upgrade = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
    };
    for (path, forwarded) in [("/on", true), ("/off/x", false), ("/nginx/x", false)] {
        let got = exchange(addr, &up, upgrade(path).as_bytes()).await;
        let (_, _, headers) = got.upstream.expect("forwarded");
        let saw = headers.iter().any(|(n, _)| n == "upgrade");
        assert_eq!(saw, forwarded, "{path}");
    }
}
