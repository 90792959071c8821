//! Micro-benchmarks of the per-request work in rpx-core: host match,
//! location match, request header rewrite, and one whole request through
//! the in-memory [`Rpx`] service. Each bench measures briefly (about 2 s)
//! so that `cargo bench -p rpx-benches` takes a couple of minutes.
//!
//! Run one group with `cargo bench -p rpx-benches -- host`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, Request};
use http_body_util::Empty;
use rpx_core::conn::{ConnInfo, Scheme};
use rpx_core::headers::{strip_hop_by_hop, RequestHeaders, SetHeader};
use rpx_core::host::HostTable;
use rpx_core::location::{LocationMatch, LocationSpec, LocationTable, MatchKind};
use rpx_core::vars::VarCtx;
use rpx_core::Rpx;
use tower::ServiceExt;

/// A realistic `server_name` table: 50 servers of a shared hosting box.
/// 40 with exact names (some with a `www.` alias), 5 `*.domain`, 3
/// `name.*` and 2 regex servers; the first one is the default.
fn host_table() -> HostTable {
    let mut servers: Vec<(Vec<String>, bool)> = Vec::new();
    servers.push((vec!["_".into()], true));
    for i in 0..39 {
        let mut names = vec![format!("site{i}.example.com")];
        if i % 3 == 0 {
            names.push(format!("www.site{i}.example.com"));
        }
        servers.push((names, false));
    }
    for d in [
        "apps.test",
        "preview.dev",
        "cdn.example.net",
        "tenant.io",
        "example.org",
    ] {
        servers.push((vec![format!("*.{d}")], false));
    }
    for p in ["mail", "status", "shop"] {
        servers.push((vec![format!("{p}.example.*")], false));
    }
    servers.push((
        vec![r"~^(?<user>[a-z0-9-]+)\.users\.example\.com$".into()],
        false,
    ));
    servers.push((vec![r"~^api-v(?<ver>\d+)\.example\.com$".into()], false));
    assert_eq!(servers.len(), 50);
    HostTable::build(&servers).expect("host table builds")
}

fn bench_host(c: &mut Criterion) {
    let table = host_table();
    let mut g = c.benchmark_group("host");
    for (name, host, want) in [
        ("exact", "Site27.Example.COM", 28),
        ("exact_www", "www.site30.example.com", 31),
        ("leading_wildcard", "a.b.preview.dev", 41),
        ("trailing_wildcard", "shop.example.co.uk", 47),
        ("regex", "alice-01.users.example.com", 48),
        ("miss_default", "unknown.host.invalid", 0),
    ] {
        assert_eq!(table.find(Some(host)), want, "{host}");
        g.bench_function(name, |b| b.iter(|| table.find(black_box(Some(host)))));
    }
    g.finish();
}

/// nginx's documented example followed by the locations of a typical API
/// gateway and web app: 40 locations of every kind.
const LOCATIONS: &[&str] = &[
    // nginx docs (ngx_http_core_module, "location").
    "= /",
    "/",
    "/documents/",
    "^~ /images/",
    r"~* \.(gif|jpg|jpeg)$",
    // Exact endpoints.
    "= /healthz",
    "= /readyz",
    "= /metrics",
    "= /favicon.ico",
    "= /robots.txt",
    "= /api/v1/login",
    "= /api/v1/logout",
    // API prefixes.
    "/api/",
    "/api/v1/",
    "/api/v1/users/",
    "/api/v1/orders/",
    "/api/v1/products/",
    "/api/v1/cart/",
    "/api/v1/search/",
    "/api/v2/",
    "/api/v2/users/",
    "/api/v2/orders/",
    "/graphql",
    "/ws/",
    "/auth/",
    "/admin/",
    "/uploads/",
    "/docs/",
    // Prefixes that skip regexes.
    "^~ /static/",
    "^~ /assets/",
    "^~ /.well-known/acme-challenge/",
    "^~ /media/",
    // Regexes, tried in order.
    r"~ ^/api/v[0-9]+/users/[0-9]+/avatar$",
    r"~ ^/api/v1/orders/[0-9a-f-]{36}$",
    r"~ ^/u/(?<name>[a-z0-9_]+)$",
    r"~* \.(css|js|mjs|map)$",
    r"~* \.(png|webp|svg|ico|woff2?)$",
    r"~ /\.(git|svn|env)",
    r"~* ^/download/.+\.(zip|tar\.gz)$",
    r"~ \.php$",
];

fn location_table() -> LocationTable {
    let specs: Vec<LocationSpec> = LOCATIONS
        .iter()
        .map(|l| {
            let (kind, pattern) = MatchKind::split(l);
            LocationSpec::new(kind, pattern)
        })
        .collect();
    assert_eq!(specs.len(), 40);
    LocationTable::build(&specs).expect("location table builds")
}

fn bench_location(c: &mut Criterion) {
    let table = location_table();
    let id = |spec: &str| {
        LocationMatch::Location(LOCATIONS.iter().position(|l| *l == spec).expect(spec))
    };
    let mut g = c.benchmark_group("location");
    for (name, path, want) in [
        ("exact", "/healthz", id("= /healthz")),
        ("root_exact", "/", id("= /")),
        // Longest prefix, then every regex tried and none matches.
        (
            "prefix_regex_miss",
            "/api/v1/users/42/profile",
            id("/api/v1/users/"),
        ),
        (
            "regex_first",
            "/api/v2/users/42/avatar",
            id(r"~ ^/api/v[0-9]+/users/[0-9]+/avatar$"),
        ),
        ("regex_late", "/index.php", id(r"~ \.php$")),
        (
            "doc_regex_jpg",
            "/documents/Photo.JPG",
            id(r"~* \.(gif|jpg|jpeg)$"),
        ),
        ("noregex_prefix", "/static/app/main.css", id("^~ /static/")),
        ("fallback_slash", "/some/page/elsewhere", id("/")),
    ] {
        assert_eq!(table.find(path), want, "{path}");
        g.bench_function(name, |b| b.iter(|| table.find(black_box(path))));
    }
    g.finish();
}

/// A browser-like proxied request with 12 headers, two of them hop-by-hop
/// and one listed in `Connection`.
fn browser_request() -> Request<()> {
    Request::get("/api/v1/orders/1234?expand=items&page=2")
        .header("host", "shop.example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        )
        .header("accept", "application/json, text/plain, */*")
        .header("accept-language", "en-GB,en;q=0.7")
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .header("referer", "https://shop.example.com/orders")
        .header("cookie", "session=4f1d2c3b9a8e7f60; theme=dark; consent=1")
        .header(
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl",
        )
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "keep-alive, x-trace-hop")
        .header("keep-alive", "timeout=5")
        .header("x-trace-hop", "1")
        .body(())
        .expect("request builds")
}

/// Six `proxy_set_header` rules as in the common nginx tutorials.
fn set_headers() -> RequestHeaders {
    let rules = [
        ("Host", "$host"),
        ("X-Real-IP", "$remote_addr"),
        ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
        ("X-Forwarded-Proto", "$scheme"),
        ("X-Forwarded-Host", "$host:$server_port"),
        ("X-Original-URI", "$request_uri"),
    ]
    .into_iter()
    .map(|(n, v)| SetHeader::new(n, v).expect("rule compiles"))
    .collect();
    RequestHeaders::new(rules)
}

fn bench_headers(c: &mut Criterion) {
    let rules = set_headers();
    let conn = ConnInfo::new(
        "192.0.2.10:51234".parse().expect("addr"),
        "10.0.0.1:443".parse().expect("addr"),
        "0.0.0.0:443".parse().expect("addr"),
        Scheme::Https,
    );
    let req = browser_request();
    assert_eq!(req.headers().len(), 12);
    // What the proxy does per request: render the values against the
    // original request, then strip hop-by-hop headers and apply them.
    let rewrite = |req: Request<()>| -> HeaderMap {
        let path = req.uri().path();
        let mut ctx = VarCtx::new(&req, &conn, path, "shop.example.com");
        ctx.proxy_host = "127.0.0.1:3000";
        let default_host = http::HeaderValue::from_static("127.0.0.1:3000");
        ctx.proxy_port = 3000;
        let prepared = rules.prepare(&ctx, &default_host);
        let (mut parts, ()) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        prepared.apply(&mut parts.headers);
        parts.headers
    };
    let out = rewrite(req.clone());
    assert!(!out.contains_key("connection") && !out.contains_key("x-trace-hop"));
    assert_eq!(out["x-forwarded-for"], "203.0.113.7, 192.0.2.10");
    assert_eq!(out["x-forwarded-host"], "shop.example.com:443");

    let mut g = c.benchmark_group("headers");
    g.bench_function("strip_and_set_6", |b| {
        b.iter_batched(
            || req.clone(),
            |r| black_box(rewrite(r)),
            BatchSize::SmallInput,
        )
    });
    // The baseline the above includes: cloning the request.
    g.bench_function("clone_request_only", |b| {
        b.iter_batched(|| (), |()| black_box(req.clone()), BatchSize::SmallInput)
    });
    g.finish();
}

fn bench_oneshot(c: &mut Criterion) {
    let rpx = Rpx::from_toml(
        r#"
        [[server]]
        listen = "127.0.0.1:8080"
        server_name = ["app.example.com", "www.app.example.com"]

          [[server.location]]
          path = "= /healthz"
          return = "200 ok"

          [[server.location]]
          path = "/api/"
          proxy_pass = "http://127.0.0.1:9"

          [[server.location]]
          path = "/"
          return = "404"

        [[server]]
        listen = "127.0.0.1:8080"
        server_name = "*.example.org"

          [[server.location]]
          path = "/"
          return = "301 https://example.org$request_uri"
        "#,
    )
    .expect("config compiles");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = || {
        Request::get("/healthz")
            .header("host", "app.example.com")
            .header("user-agent", "bench/1")
            .header("accept", "*/*")
            .body(Empty::<Bytes>::new())
            .expect("request builds")
    };
    let call = || async {
        let res = rpx.clone().oneshot(request()).await.expect("infallible");
        assert_eq!(res.status(), 200);
        res
    };
    drop(rt.block_on(call()));
    let mut g = c.benchmark_group("rpx");
    g.bench_function("oneshot_return_200", |b| {
        b.iter(|| black_box(rt.block_on(call())))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_host, bench_location, bench_headers, bench_oneshot
}
criterion_main!(benches);
