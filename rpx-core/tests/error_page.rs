//! `error_page`, `proxy_intercept_errors` and `recursive_error_pages`
//! against real nginx: the status, the headers that matter, the page's
//! body and what the upstream received, for rpx's own errors (missing
//! files, a dead upstream, `deny`, `auth_basic`, `return`), upstream
//! errors with and without interception, named locations, redirects,
//! `=code`, inheritance and recursion.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        root DIR/html;
        error_page 404 /404.html;
        if ($arg_gone) {
            return 404;
        }

        location = /404.html { internal; }
        location = /50x.html {
            add_header X-Page page;
            add_header X-Always always always;
        }
        location = /401.html { }

        location /static/ { }
        location /dead/ {
            proxy_pass http://127.0.0.1:DEAD_PORT;
            error_page 500 502 503 504 /50x.html;
        }
        location /own/ {
            # Its own list: the server's 404 page is not inherited.
            error_page 502 /50x.html;
        }
        location /ok/ {
            error_page 404 =200 /empty.txt;
        }
        location /named/ {
            error_page 404 = @fallback;
        }
        location @fallback {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /away/ {
            error_page 404 http://example.com/away;
        }
        location /moved/ {
            error_page 404 =301 http://example.com/moved;
        }
        location /denied/ {
            deny all;
            error_page 403 /50x.html;
        }
        location /private/ {
            auth_basic "private";
            auth_basic_user_file DIR/htpasswd;
            error_page 401 /401.html;
        }
        location /ret/ {
            return 404;
        }
        location /rettext/ {
            return 404 "own text";
        }
        location /intercept/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_intercept_errors on;
            error_page 404 503 /404.html;
        }
        location /passed/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            error_page 404 /404.html;
        }
        location /gone/ {
            return 410;
            error_page 410 /page/gone;
        }
        location /page/ {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /once/ {
            error_page 404 /missing-page;
        }
        location /twice/ {
            recursive_error_pages on;
            error_page 404 /missing-page;
        }
        location /loop/ {
            recursive_error_pages on;
            error_page 404 /loop/missing;
        }
    }
"#;

/// What the client and the upstream saw, with nginx's and rpx's own pages
/// told apart only by their status.
async fn observe(
    both: &nginx::Both,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: bool,
) -> String {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "a");
    if auth {
        // "user:wrong"
        req = req.header("authorization", "Basic dXNlcjp3cm9uZw==");
    }
    let got = send(addr, req.body(Full::new(Bytes::new())).unwrap()).await;
    let seen = both.up.take();
    let h = |n: &str| {
        got.headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let body = if got.body.contains("<hr><center>") {
        "<own page>".to_owned()
    } else {
        got.body.clone()
    };
    format!(
        "{} {body:?} location={:?} www-authenticate={:?} x-page={:?} x-always={:?} | upstream {:?}",
        got.status.as_u16(),
        h("location"),
        h("www-authenticate"),
        h("x-page"),
        h("x-always"),
        seen.iter()
            .map(|s| format!("{} {}", s.method, s.uri))
            .collect::<Vec<_>>(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_match_nginx() {
    let dead = nginx::free_port().to_string();
    let servers = SERVERS.replace("DEAD_PORT", &dead);
    let Some(both) = nginx::Both::start("error-page", &servers).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let html = both.dir.join("html");
    std::fs::create_dir_all(html.join("static")).unwrap();
    std::fs::write(html.join("404.html"), "the 404 page\n").unwrap();
    std::fs::write(html.join("50x.html"), "the 50x page\n").unwrap();
    std::fs::write(html.join("401.html"), "the 401 page\n").unwrap();
    std::fs::write(html.join("empty.txt"), "").unwrap();
    std::fs::write(html.join("static/there.txt"), "there\n").unwrap();
    std::fs::write(both.dir.join("htpasswd"), "user:{PLAIN}secret\n").unwrap();
    let cases: &[(&str, &str, bool)] = &[
        ("GET", "/static/there.txt", false),
        ("GET", "/static/missing", false),
        ("HEAD", "/static/missing", false),
        ("POST", "/static/missing", false),
        ("POST", "/static/there.txt", false),
        ("PUT", "/static/missing", false),
        ("GET", "/static/missing?a=1", false),
        ("GET", "/404.html", false),
        ("GET", "/x?gone=1", false),
        ("GET", "/dead/x", false),
        ("GET", "/own/missing", false),
        ("GET", "/ok/missing", false),
        ("GET", "/named/missing?q=1", false),
        ("GET", "/away/missing", false),
        ("GET", "/moved/missing", false),
        ("GET", "/denied/x", false),
        ("GET", "/private/x", false),
        ("GET", "/private/x", true),
        ("GET", "/ret/x", false),
        ("GET", "/rettext/x", false),
        ("GET", "/intercept/x?status=404", false),
        ("GET", "/intercept/x?status=503", false),
        ("GET", "/intercept/x?status=500", false),
        ("GET", "/intercept/x?status=200", false),
        ("GET", "/passed/x?status=404", false),
        ("POST", "/gone/x", false),
        ("HEAD", "/gone/x", false),
        ("GET", "/once/missing", false),
        ("GET", "/twice/missing", false),
        ("GET", "/loop/x", false),
        ("POST", "/dead/x", false),
    ];
    let mut diffs = Vec::new();
    let mut rpx = std::collections::HashMap::new();
    for &(method, path, auth) in cases {
        let want = observe(&both, both.nginx, method, path, auth).await;
        let got = observe(&both, both.rpx, method, path, auth).await;
        if got != want {
            diffs.push(format!("{method} {path}:\n  nginx {want}\n  rpx   {got}"));
        }
        rpx.insert((method, path), got);
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    // And the pages were served at all (a proxy answering its own pages
    // everywhere would differ from nginx too, but say so plainly).
    let seen = |m, p| rpx[&(m, p)].clone();
    assert!(seen("GET", "/static/missing").starts_with("404 \"the 404 page"));
    assert!(seen("GET", "/dead/x").starts_with("502 \"the 50x page"));
    assert!(seen("GET", "/named/missing?q=1").starts_with("200 \"up1 /named/missing?q=1"));
    assert!(seen("POST", "/gone/x").contains("upstream [\"GET /page/gone\"]"));
    assert!(seen("GET", "/loop/x").starts_with("500 "));
}

const LOGGED: &str = r#"
    log_format static "static $status $request_method $uri $request_uri";
    log_format page "page $status $request_method $uri $request_uri";
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        root DIR/html;
        error_page 404 /404.html;
        location /static/ { access_log DIR/access.log static; }
        location = /404.html { access_log DIR/access.log page; }
        location = /done { access_log DIR/access.log static; return 200; }
    }
"#;

/// The log lines `addr` writes for a missing file's GET and POST: one per
/// request, in the page's location, with the page's `$uri` and method
/// and the client's `$request_uri`.
async fn logged(both: &nginx::Both, addr: std::net::SocketAddr) -> Vec<String> {
    let log = both.dir.join("access.log");
    std::fs::write(&log, "").unwrap();
    let requests = [
        ("GET", "/static/missing?a=1"),
        ("POST", "/static/gone"),
        ("GET", "/done"),
    ];
    for (i, (method, path)) in requests.into_iter().enumerate() {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(addr, req).await;
        // A line is written once the response body is done with, which
        // may be after the client has it all: wait for it before the next.
        let read = async {
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.lines().count() > i {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(LIMIT, read).await.expect("log line");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    text.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_s_location_logs_the_request_once_as_nginx() {
    let Some(both) = nginx::Both::start("error-page-log", LOGGED).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let html = both.dir.join("html");
    std::fs::create_dir_all(html.join("static")).unwrap();
    std::fs::write(html.join("404.html"), "the 404 page\n").unwrap();
    let want = logged(&both, both.nginx).await;
    let got = logged(&both, both.rpx).await;
    assert_eq!(got, want);
    assert_eq!(
        got[0], "page 404 GET /404.html /static/missing?a=1",
        "{got:?}"
    );
}

/// The TOML form, written back by `rpx convert`, and the mistakes `check`
/// names with their line.
#[tokio::test]
async fn toml_pages_and_check_errors() {
    let up = Upstream::start(1).await;
    let dir = temp_dir("error-page-toml");
    std::fs::write(dir.join("50x.html"), "the 50x page\n").unwrap();
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        root = "{dir}"
        error_page = ["502 504 /50x.html", "404 = @up"]
        proxy_intercept_errors = true

        [[server.location]]
        path = "/dead/"
        proxy_pass = "http://127.0.0.1:{dead}"

        [[server.location]]
        path = "/app/"
        proxy_pass = "http://{up}"

        [[server.location]]
        path = "= /50x.html"
        internal = true

        [[server.location]]
        path = "@up"
        proxy_pass = "http://{up}"
        "#,
        dir = dir.display(),
        dead = nginx::free_port(),
        up = up.addr,
    );
    let cfg = rpx_core::config::parse_toml(&toml, "pages.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    assert!(back.contains(r#""502 504 /50x.html""#), "{back}");
    assert!(back.contains(r#""404 = @up""#), "{back}");
    assert!(back.contains("proxy_intercept_errors = true"), "{back}");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("config loads");
    let addr = rpx.listeners[0].1;
    let get = |path: &str| {
        http::Request::get(path)
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let got = send(addr, get("/dead/x")).await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_str()),
        (502, "the 50x page\n")
    );
    // An upstream's 504 is intercepted; its 404 goes to @up, whose answer
    // is sent as it is (`=`).
    let got = send(addr, get("/app/x?status=504")).await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_str()),
        (504, "the 50x page\n")
    );
    let got = send(addr, get("/app/x?status=404")).await;
    assert_eq!(got.status, 404, "@up answers 404 again: recursion is off");
    let got = send(addr, get("/nothing")).await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_str()),
        (200, "up1 /nothing")
    );
    // Internal: the client's request is a 404, which goes to @up.
    let got = send(addr, get("/50x.html")).await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_str()),
        (200, "up1 /50x.html")
    );

    // Mistakes, each with its place.
    for (bad, want) in [
        (r#"error_page = ["200 /x"]"#, "must be between 300 and 599"),
        (r#"error_page = ["/x"]"#, "invalid number of arguments"),
        (
            r#"error_page = ["404 @nowhere"]"#,
            "no named location \"@nowhere\"",
        ),
    ] {
        let toml = format!("[[server]]\nlisten = \"127.0.0.1:0\"\n{bad}\n");
        let errors = match rpx_core::config::parse_toml(&toml, "bad.toml") {
            Err(e) => e.to_string(),
            Ok(cfg) => match serve_config(&cfg, Vec::new()).await {
                Err(e) => e.join("\n"),
                Ok(_) => panic!("{bad} loads"),
            },
        };
        assert!(errors.contains(want), "{bad}: {errors}");
        assert!(errors.contains("bad.toml:3"), "{bad}: {errors}");
    }
}

/// nginx's own words for a bad `error_page`, with the file and line.
#[test]
fn nginx_check_errors() {
    assert_refused_in_server(
        "error-page-check",
        "",
        &[
            (
                "error_page 200 /x;",
                "value \"200\" must be between 300 and 599",
            ),
            ("error_page 404 =abc /x;", "invalid value \"=abc\""),
            ("error_page 404 @nowhere;", "no named location \"@nowhere\""),
        ],
    );
}
