//! `set`, and `proxy_pass` with variables resolved at request time by
//! `resolver`, against real nginx: both proxies ask one DNS server on
//! loopback (`support::dns`), and the same config runs again converted to
//! TOML. What the client got and what the upstream received must agree.

mod support;

use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    upstream backend { server 127.0.0.1:UPSTREAM_PORT; }
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        resolver 127.0.0.1:DNS_PORT valid=1s ipv6=off;
        resolver_timeout 3s;
        set $app app.test:UPSTREAM_PORT;

        # The Docker idiom: a name that may not resolve yet.
        location /docker/ { proxy_pass http://$app; }
        # A name that is an upstream block's.
        location /group/ { set $g backend; proxy_pass http://$g; }
        location /scheme/ { proxy_pass $scheme://backend; }
        # A URI part with variables goes as it is: no arguments.
        location /uri/ {
            set $b 127.0.0.1:UPSTREAM_PORT;
            proxy_pass http://$b/fixed$uri;
        }
        location /req/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT$request_uri; }
        location /to/ { proxy_pass http://$arg_to; }
        location /bad/ { proxy_pass $arg_to; }
        location /set/ {
            set $a one;
            if ($arg_x) {
                set $a "x=$arg_x";
            }
            set $b "$a-two";
            proxy_set_header X-Set $b;
            proxy_set_header X-Server $server_level;
            proxy_pass http://backend;
        }
        location /unset/ {
            proxy_set_header X-Unset "[$never_set]";
            proxy_pass http://backend;
        }
        location /header/ {
            if ($http_x_tenant) {
                set $server_level "tenant $http_x_tenant";
            }
            add_header X-Level $server_level;
            return 204;
        }
    }
    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name noresolver;
        set $server_level none;
        set $never_set "";
        location / { proxy_pass http://$arg_to; }
    }
"#;

/// The status, and what the upstream received: method, URI, `Host` and
/// the headers the config sets.
async fn observe(both: &nginx::Both, addr: SocketAddr, host: &str, path: &str) -> String {
    let req = http::Request::get(path)
        .header("host", host)
        .header("x-tenant", "t1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(addr, req).await;
    let seen = both.up.take();
    let h = |n: &str| {
        got.headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    format!(
        "{} x-level={:?} | upstream {:?}",
        got.status.as_u16(),
        h("x-level"),
        seen.iter()
            .map(|s| {
                let h = |n: &str| {
                    s.headers
                        .get(n)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                };
                format!(
                    "{} {} host={} x-set={:?} x-server={:?} x-unset={:?}",
                    s.method,
                    s.uri,
                    h("host"),
                    h("x-set"),
                    h("x-server"),
                    h("x-unset")
                )
            })
            .collect::<Vec<_>>(),
    )
}

/// Asks `addr` for `/docker/` until the name resolves (the negative
/// answer is cached for at most `valid=1s`), within the time bound.
async fn until_resolved(addr: SocketAddr) {
    let wait = async {
        loop {
            let req = http::Request::get("/docker/probe")
                .header("host", "a")
                .body(Full::new(Bytes::new()))
                .unwrap();
            if send(addr, req).await.status == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .expect("the name resolves once the DNS server knows it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_and_resolver_match_nginx() {
    let dns = dns::Dns::start().await;
    let servers = SERVERS.replace("DNS_PORT", &dns.addr.port().to_string());
    let Some(both) = nginx::Both::start("variables", &servers).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let toml = serve_converted(&both.conf, false, Vec::new())
        .await
        .expect("the converted config loads");
    let via_toml = toml.listeners[0].1;
    let up = both.up.addr.to_string();
    let cases: Vec<(&str, String)> = vec![
        ("a", "/docker/x?q=1".into()),
        ("a", "/group/x?q=1".into()),
        ("a", "/scheme/x".into()),
        ("a", "/uri/a/b?q=1".into()),
        ("a", "/req/a%2Fb?q=1".into()),
        ("a", format!("/to/x?to={up}")),
        ("a", "/to/x?to=backend".into()),
        ("a", format!("/bad/x?to=ftp://{up}")),
        ("a", "/set/x".into()),
        ("a", "/set/x?x=7".into()),
        ("a", "/unset/x".into()),
        ("a", "/header/x".into()),
        ("noresolver", format!("/x?to={up}")),
        ("noresolver", "/x?to=backend".into()),
        ("noresolver", "/x?to=app.test".into()),
    ];
    let mut diffs = Vec::new();
    for round in ["before the name resolves", "after"] {
        if round == "after" {
            dns.set("app.test", Ipv4Addr::LOCALHOST);
            for addr in [both.nginx, both.rpx, via_toml] {
                until_resolved(addr).await;
            }
            both.up.take();
        }
        for (host, path) in &cases {
            let want = observe(&both, both.nginx, host, path).await;
            for (name, addr) in [("rpx", both.rpx), ("rpx via TOML", via_toml)] {
                let got = observe(&both, addr, host, path).await;
                if got != want {
                    diffs.push(format!(
                        "{round}: {host} {path}:\n  nginx {want}\n  {name} {got}"
                    ));
                }
            }
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    // The resolver was asked, for A records only (`ipv6=off`).
    let asked = dns.asked.lock().unwrap().clone();
    assert!(asked.iter().any(|q| q == "app.test 1"), "{asked:?}");
    assert!(!asked.iter().any(|q| q.ends_with(" 28")), "{asked:?}");
}

/// What nginx refuses is refused at its line, in nginx's words.
#[test]
fn nginx_check_errors() {
    assert_refused_in_server(
        "variables-check",
        "",
        &[
            ("set app 1;", "invalid variable name \"app\""),
            ("set $host x;", "the duplicate \"host\" variable"),
            ("set $a $nonesuch;", "unknown variable \"$nonesuch\""),
            (
                "resolver dns.example;",
                "invalid resolver address \"dns.example\"",
            ),
            (
                "resolver 127.0.0.11 valid=soon;",
                "invalid parameter \"valid=soon\"",
            ),
            (
                "resolver 127.0.0.11 ipv4=off ipv6=off;",
                "\"ipv4\" and \"ipv6\" cannot both be \"off\"",
            ),
            (
                "location /x { proxy_pass http://$nonesuch; }",
                "unknown variable \"$nonesuch\"",
            ),
            (
                "location /x { proxy_pass ftp://$host; }",
                "invalid proxy_pass URL",
            ),
        ],
    );
}

/// The TOML forms: `set` steps, `resolver` and `resolver_timeout`, read
/// and written back the same.
#[tokio::test]
async fn toml_forms() {
    let dns = dns::Dns::start().await;
    dns.set("svc.test", Ipv4Addr::LOCALHOST);
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        resolver = "{dns} valid=5s ipv6=off"
        resolver_timeout = "2s"

        [[server]]
        listen = "127.0.0.1:0"

        [[server.rewrite]]
        set = "$svc"
        value = "svc.test:{port}"

        [[server.location]]
        path = "/"
        proxy_pass = "http://$svc"

        [[server.location.rewrite]]
        if = "$arg_v"
        set = "$version"
        value = "v$arg_v"

        [server.location.proxy_set_header]
        X-Version = "$version"
        "#,
        dns = dns.addr,
        port = up.addr.port(),
    );
    let cfg = rpx_core::config::parse_toml(&toml, "rpx.toml").expect("loads");
    let text = rpx_core::config::to_toml(&cfg).unwrap();
    assert!(
        text.contains(&format!("resolver = \"{} valid=5s ipv6=off\"", dns.addr)),
        "{text}"
    );
    assert!(text.contains("resolver_timeout = \"2s\""), "{text}");
    let running = serve_config(&cfg, Vec::new()).await.expect("serves");
    let req = http::Request::get("/a?v=2")
        .header("host", "a")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(running.listeners[0].1, req).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let seen = up.take();
    assert_eq!(seen[0].uri, "/a?v=2");
    assert_eq!(
        seen[0].headers["host"],
        format!("svc.test:{}", up.addr.port())
    );
    assert_eq!(seen[0].headers["x-version"], "v2");
    for (bad, want) in [
        ("resolver = \"nowhere\"", "invalid resolver address"),
        ("[[server.rewrite]]\nset = \"$x\"", "`set` needs a `value`"),
    ] {
        let text = format!("{bad}\n[[server]]\nlisten = \"127.0.0.1:0\"\n");
        let text = if bad.starts_with("[[") {
            format!("[[server]]\nlisten = \"127.0.0.1:0\"\n{bad}\n")
        } else {
            text
        };
        let err = rpx_core::config::parse_toml(&text, "rpx.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{bad}: {err}");
    }
}

const CAPTURES: &str = r#"
    upstream backend { server 127.0.0.1:UPSTREAM_PORT; }
    map $uri $mapped {
        ~^/map/(?<first>[^/]+)/(.*)$ "$first:$2";
        default none;
    }
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location ~ ^/app/(?<svc>[a-z]+)/(.*)$ {
            proxy_set_header X-Cap "$svc|$1|$2|$3";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT/$2$is_args$args;
        }
        location ~* ^/legacy/(.*)$ {
            return 301 /new/$1;
        }
        location /if/ {
            if ($uri ~ ^/if/(\w+)) {
                set $word "w=$1";
            }
            proxy_set_header X-Cap "$word|$1";
            proxy_pass http://backend;
        }
        location /rw/ {
            rewrite ^/rw/(.*)$ /b/$1 break;
            proxy_set_header X-Cap "rw $1";
            proxy_pass http://backend;
        }
        location /map/ {
            # Not `$mapped|$1`: nginx's map leaves its groups in `$1` as a
            # side effect, rpx keeps them inside the map (nginx-compat.md).
            proxy_set_header X-Cap "$mapped";
            proxy_pass http://backend;
        }
        location /plain/ {
            proxy_set_header X-Cap "[$1]";
            proxy_pass http://backend;
        }
    }
    server {
        listen 127.0.0.1:LISTEN_PORT;
        server_name ~^(?<tenant>[a-z]+)\.example\.test$;
        location / {
            proxy_set_header X-Cap "$tenant|$1";
            proxy_pass http://backend;
        }
        location ~ ^/t/(.+)$ {
            proxy_set_header X-Cap "$tenant|$1";
            proxy_pass http://backend;
        }
    }
"#;

/// `$1`…`$9` and named captures of a regex `location`, `if`, `rewrite`,
/// `map` and `server_name`, as later directives see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_match_nginx() {
    let Some(both) = nginx::Both::start("captures", CAPTURES).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let cases = [
        ("a", "/app/shop/x/y?q=1"),
        ("a", "/app/Shop/x"),
        ("a", "/LEGACY/a/b?z"),
        ("a", "/if/word/more"),
        ("a", "/if/"),
        ("a", "/rw/one/two"),
        ("a", "/map/alpha/beta"),
        ("a", "/map/"),
        ("a", "/plain/x"),
        ("acme.example.test", "/x"),
        ("acme.example.test", "/t/deep"),
        ("ACME.example.test", "/x"),
    ];
    let mut diffs = Vec::new();
    let both = &both;
    for (host, path) in cases {
        let req = |addr: SocketAddr| async move {
            let got = send(
                addr,
                http::Request::get(path)
                    .header("host", host)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
            let seen = both.up.take();
            let location = got.headers.get("location").map(|l| {
                l.to_str()
                    .unwrap()
                    .replace(&addr.port().to_string(), "PORT")
            });
            format!(
                "{} location={location:?} | {:?}",
                got.status.as_u16(),
                seen.iter()
                    .map(|s| format!("{} {} x-cap={:?}", s.method, s.uri, s.headers.get("x-cap")))
                    .collect::<Vec<_>>()
            )
        };
        let want = req(both.nginx).await;
        let got = req(both.rpx).await;
        if got != want {
            diffs.push(format!("{host} {path}:\n  nginx {want}\n  rpx   {got}"));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

const CONNECTION: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location / {
            proxy_set_header X-Id "$request_id";
            proxy_set_header X-Id-Again "$request_id";
            proxy_set_header X-Conn "$connection $connection_requests";
            proxy_set_header X-Body "$content_type|$content_length|$hostname";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
    }
"#;

/// Three requests on one keep-alive connection to `addr`, then one on
/// another; what the upstream saw of each.
async fn three_and_one(both: &nginx::Both, addr: SocketAddr) -> Vec<Seen> {
    let post = || {
        http::Request::post("/v")
            .header("host", "a")
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap()
    };
    let run = async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        for _ in 0..3 {
            tx.ready().await.unwrap();
            let res = tx.send_request(post()).await.unwrap();
            assert_eq!(res.status(), 200);
            http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap();
        }
        send(addr, post()).await;
    };
    tokio::time::timeout(LIMIT, run).await.expect("in time");
    both.up.take()
}

/// `$request_id`, `$connection`, `$connection_requests` behave alike
/// under nginx and rpx (their values are each proxy's own), and
/// `$content_type`, `$content_length`, `$hostname` are equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_variables_match_nginx() {
    let Some(both) = nginx::Both::start("connection-vars", CONNECTION).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut bodies = Vec::new();
    for (name, addr) in [("nginx", both.nginx), ("rpx", both.rpx)] {
        let seen = three_and_one(&both, addr).await;
        assert_eq!(seen.len(), 4, "{name}");
        let h = |s: &Seen, n: &str| s.headers[n].to_str().unwrap().to_owned();
        let ids: Vec<String> = seen.iter().map(|s| h(s, "x-id")).collect();
        for (s, id) in seen.iter().zip(&ids) {
            assert_eq!(id.len(), 32, "{name}: {id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{name}: {id}"
            );
            assert_eq!(&h(s, "x-id-again"), id, "{name}: one id per request");
        }
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 4, "{name}: {ids:?}");
        let conns: Vec<(u64, u64)> = seen
            .iter()
            .map(|s| {
                let v = h(s, "x-conn");
                let (c, n) = v.split_once(' ').unwrap();
                (c.parse().unwrap(), n.parse().unwrap())
            })
            .collect();
        assert_eq!(
            conns.iter().map(|c| c.1).collect::<Vec<_>>(),
            [1, 2, 3, 1],
            "{name}: {conns:?}"
        );
        assert!(
            conns[0].0 == conns[1].0 && conns[1].0 == conns[2].0,
            "{name}: {conns:?}"
        );
        assert_ne!(conns[2].0, conns[3].0, "{name}: {conns:?}");
        bodies.push(h(&seen[0], "x-body"));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert!(
        bodies[1].starts_with("text/plain; charset=utf-8|5|"),
        "{}",
        bodies[1]
    );
}

const MAPS: &str = r#"
    map $arg_x $plain {
        Foo one;
        bar two;
        ~^Q(.*)$ "q$1";
        default none;
    }
    map $arg_h $host_kind {
        hostnames;
        *.example.com wild;
        .example.org dot;
        www.example.* tail;
        example.net exact;
        default none;
    }
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location / {
            proxy_set_header X-Map "$plain|$host_kind";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
    }
"#;

/// `map`'s string keys match case-insensitively (regexes as written), and
/// `hostnames` masks: exact, then the longest `*.`/`.` mask, then `.*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_match_nginx() {
    let Some(both) = nginx::Both::start("maps", MAPS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut diffs = Vec::new();
    for q in [
        "x=foo",
        "x=FOO",
        "x=BAR",
        "x=Qz",
        "x=qz",
        "h=a.b.example.com",
        "h=example.com",
        "h=example.org",
        "h=x.example.org",
        "h=www.example.de",
        "h=EXAMPLE.NET",
        "h=example.net.",
        "h=other.test",
    ] {
        let path = format!("/?{q}");
        let mut seen = Vec::new();
        for addr in [both.nginx, both.rpx] {
            let req = http::Request::get(path.as_str())
                .header("host", "a")
                .body(Full::new(Bytes::new()))
                .unwrap();
            send(addr, req).await;
            let up = both.up.take();
            seen.push(format!(
                "{:?}",
                up.iter()
                    .map(|s| s.headers["x-map"].clone())
                    .collect::<Vec<_>>()
            ));
        }
        if seen[0] != seen[1] {
            diffs.push(format!("{q}:\n  nginx {}\n  rpx   {}", seen[0], seen[1]));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}
