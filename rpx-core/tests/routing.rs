//! Host routing, location matching, URI and header rewriting through a real
//! rpx, asserting on what the client and the upstream saw.

mod common;

use common::*;

#[tokio::test]
async fn host_routing_picks_the_virtual_server() {
    let a = Upstream::start(|_| async { http::Response::new(full("A")) }).await;
    let b = Upstream::start(|_| async { http::Response::new(full("B")) }).await;
    let config = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        server_name = ["a.test", "*.a.test"]
          [[server.location]]
          path = "/"
          proxy_pass = "{a}"
        [[server]]
        listen = "127.0.0.1:0 default_server"
        server_name = ["~^(?<sub>[a-z]+)\\.b\\.test$", "www.b.*"]
          [[server.location]]
          path = "/"
          proxy_pass = "{b}"
        [[server]]
        listen = "127.0.0.1:0"
        server_name = "c.test"
          [[server.location]]
          path = "/"
          return = "200 C $host $server_name"
        "#,
        a = a.url(),
        b = b.url()
    );
    let p = Proxy::start(&config).await;
    let cases = [
        ("a.test", "A"),
        ("A.TEST:8080", "A"),
        ("x.a.test", "A"),
        ("shop.b.test", "B"),
        ("www.b.org", "B"),
        ("c.test", "C c.test c.test"),
        ("unknown.test", "B"), // default_server
    ];
    for (host, want) in cases {
        let (status, _, body) = get(&p.url("/"), &[("host", host)]).await;
        assert_eq!(status, 200, "{host}");
        assert_eq!(body, want, "host {host}");
    }
}

#[tokio::test]
async fn locations_follow_nginx_order() {
    let config = r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "= /"
          return = "200 A"
          [[server.location]]
          path = "/"
          return = "200 B"
          [[server.location]]
          path = "/documents/"
          return = "200 C"
          [[server.location]]
          path = "^~ /images/"
          return = "200 D"
          [[server.location]]
          path = "~* \\.(gif|jpg|jpeg)$"
          return = "200 E"
    "#;
    let p = Proxy::start(config).await;
    for (path, want) in [
        ("/", "A"),
        ("/index.html", "B"),
        ("/documents/document.html", "C"),
        ("/images/1.gif", "D"),
        ("/documents/1.jpg", "E"),
        ("/documents/../images/2.JPG", "D"),
        ("//images//3.gif", "D"),
        ("/%64ocuments/x", "C"),
    ] {
        let (status, _, body) = get(&p.url(path), &[]).await;
        assert_eq!(
            (status.as_u16(), &body[..]),
            (200, want.as_bytes()),
            "{path}"
        );
    }
    // Climbing above the root is a client error.
    let res = raw(
        p.addr(),
        b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 400"), "{res}");
}

#[tokio::test]
async fn proxy_pass_uri_rules() {
    let up = Upstream::ok().await;
    let u = up.url();
    let config = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/plain/"
          proxy_pass = "{u}"
          [[server.location]]
          path = "/strip/"
          proxy_pass = "{u}/"
          [[server.location]]
          path = "/v1/"
          proxy_pass = "{u}/api/v2/"
          [[server.location]]
          path = "= /health"
          proxy_pass = "{u}/status"
          [[server.location]]
          path = "~ \\.php$"
          proxy_pass = "{u}"
        "#
    );
    let p = Proxy::start(&config).await;
    for (path, upstream_saw) in [
        ("/plain/a/b?x=1", "/plain/a/b?x=1"),
        ("/plain//a/./b", "/plain//a/./b"),
        ("/strip/a/b?x=1&y", "/a/b?x=1&y"),
        ("/strip//a/../b", "/b"),
        ("/v1/users/7?full=1", "/api/v2/users/7?full=1"),
        ("/health?deep", "/status?deep"),
        ("/x/index.php?a=b", "/x/index.php?a=b"),
    ] {
        let (status, _, _) = get(&p.url(path), &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(up.last().uri, upstream_saw, "{path}");
    }
    // `/strip` (no slash) gets nginx's 301 to `/strip/`, args kept.
    let (status, headers, _) = get(&p.url("/strip?q=1"), &[("host", "h.test")]).await;
    assert_eq!(status, 301);
    assert_eq!(
        headers["location"],
        format!("http://h.test:{}/strip/?q=1", p.addr().port())
    );
}

#[tokio::test]
async fn request_headers_are_rewritten() {
    let up = Upstream::ok().await;
    let config = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        server_name = "app.test"
        proxy_set_header = {{ "X-Server-Level" = "yes" }}
          [[server.location]]
          path = "/set/"
          proxy_pass = "{u}"
          proxy_set_header = {{ Host = "$host", "X-Real-IP" = "$remote_addr", "X-Forwarded-For" = "$proxy_add_x_forwarded_for", "X-Forwarded-Proto" = "$scheme", "X-Uri" = "$uri|$args|$request_uri|$request_method", "X-Secret" = "", "X-Port" = "$server_port", "X-Name" = "$server_name", "X-Proxy" = "$proxy_host:$proxy_port", "X-Copy" = "$http_x_client_thing" }}
          [[server.location]]
          path = "/default/"
          proxy_pass = "{u}"
        "#,
        u = up.url()
    );
    let p = Proxy::start(&config).await;
    let (status, _, _) = get(
        &p.url("/set/a?b=c"),
        &[
            ("host", "App.Test:81"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-secret", "s3cr3t"),
            ("x-client-thing", "v"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "dropped"),
            ("te", "trailers"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let h = up.last().headers;
    assert_eq!(h["host"], "app.test");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-uri"], "/set/a|b=c|/set/a?b=c|GET");
    assert_eq!(h["x-port"], p.addr().port().to_string());
    assert_eq!(h["x-name"], "app.test");
    assert_eq!(h["x-proxy"], format!("{}:{}", up.addr, up.addr.port()));
    assert_eq!(h["x-copy"], "v");
    assert!(
        h.get("x-secret").is_none(),
        "an empty value removes the header"
    );
    assert!(
        h.get("x-server-level").is_none(),
        "a level with its own list replaces the inherited one"
    );
    for hop in ["x-hop", "te", "keep-alive", "proxy-connection", "upgrade"] {
        assert!(h.get(hop).is_none(), "{hop} is hop-by-hop");
    }
    // nginx's defaults: Host is $proxy_host; inherited set applies.
    get(&p.url("/default/x"), &[("host", "app.test")]).await;
    let h = up.last().headers;
    assert_eq!(h["host"], up.addr.to_string());
    assert_eq!(h["x-server-level"], "yes");
    assert!(
        h.get("x-forwarded-for").is_none(),
        "nginx adds no X-Forwarded-For unless asked"
    );
}

#[tokio::test]
async fn response_headers_are_rewritten() {
    let up = Upstream::start(|req| async move {
        let status = if req.uri().path().ends_with("/missing") {
            404
        } else {
            200
        };
        let location = if req.uri().path().ends_with("/moved") {
            Some(format!(
                "http://{}/app/next",
                req.headers()["host"].to_str().unwrap()
            ))
        } else {
            None
        };
        let mut b = http::Response::builder()
            .status(status)
            .header("server", "upstream/1.0")
            .header("x-powered-by", "php")
            .header("x-accel-redirect", "/internal")
            .header("x-keep", "1")
            .header("connection", "x-hop-resp")
            .header("x-hop-resp", "1")
            .header("keep-alive", "timeout=4");
        if let Some(l) = location {
            b = b.status(302).header("location", l);
        }
        b.body(full("body")).unwrap()
    })
    .await;
    let config = format!(
        r#"
        add_header = {{ "X-Http-Level" = "1" }}
        [[server]]
        listen = "127.0.0.1:0"
        add_header = {{ "X-Frame-Options" = "DENY", "Strict-Transport-Security" = {{ value = "max-age=63072000", always = true }} }}
          [[server.location]]
          path = "/inherit/"
          proxy_pass = "{u}/app/"
          proxy_hide_header = ["X-Powered-By"]
          [[server.location]]
          path = "/own/"
          proxy_pass = "{u}/app/"
          add_header = {{ "X-Own" = "$request_method" }}
          proxy_pass_header = ["Server"]
        "#,
        u = up.url()
    );
    let p = Proxy::start(&config).await;
    let (status, h, body) = get(&p.url("/inherit/ok"), &[]).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"body"[..]));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["strict-transport-security"], "max-age=63072000");
    assert!(
        h.get("x-http-level").is_none(),
        "server level replaces the http level"
    );
    assert!(h.get("x-powered-by").is_none(), "proxy_hide_header");
    assert!(h.get("x-accel-redirect").is_none(), "hidden by default");
    assert_ne!(
        h.get("server").map(|v| v.as_bytes()),
        Some(&b"upstream/1.0"[..])
    );
    assert_eq!(h["x-keep"], "1");
    for hop in ["x-hop-resp", "keep-alive"] {
        assert!(h.get(hop).is_none(), "{hop} is hop-by-hop");
    }
    // Without `always`, only 2xx/3xx get the header.
    let (status, h, _) = get(&p.url("/inherit/missing"), &[]).await;
    assert_eq!(status, 404);
    assert!(h.get("x-frame-options").is_none());
    assert_eq!(h["strict-transport-security"], "max-age=63072000");
    // A location with its own add_header drops the inherited ones.
    let (_, h, _) = get(&p.url("/own/ok"), &[]).await;
    assert_eq!(h["x-own"], "GET");
    assert!(h.get("x-frame-options").is_none());
    assert_eq!(h["server"], "upstream/1.0", "proxy_pass_header");
    // proxy_redirect default maps the upstream URL back onto the location.
    let (status, h, _) = get(&p.url("/inherit/moved"), &[]).await;
    assert_eq!(status, 302);
    assert_eq!(h["location"], "/inherit/next");
}

#[tokio::test]
async fn upstream_groups_round_robin() {
    let a = Upstream::start(|_| async { http::Response::new(full("a")) }).await;
    let b = Upstream::start(|_| async { http::Response::new(full("b")) }).await;
    let config = format!(
        r#"
        [upstream.app]
        servers = ["{a}", "{b}"]
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/"
          proxy_pass = "http://app"
        "#,
        a = a.addr,
        b = b.addr
    );
    let p = Proxy::start(&config).await;
    let mut bodies = Vec::new();
    for _ in 0..6 {
        bodies.push(get(&p.url("/"), &[]).await.2);
    }
    assert_eq!(bodies.iter().filter(|b| &b[..] == b"a").count(), 3);
    assert_eq!(bodies.iter().filter(|b| &b[..] == b"b").count(), 3);
    assert_eq!(
        a.last().headers["host"],
        "app",
        "Host is $proxy_host: the group name"
    );
}

#[tokio::test]
async fn static_files_root_alias_index() {
    let dir = std::env::temp_dir().join(format!("rpx-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("site/docs")).unwrap();
    std::fs::create_dir_all(dir.join("webroot/.well-known/acme-challenge")).unwrap();
    std::fs::write(dir.join("site/index.html"), "home").unwrap();
    std::fs::write(dir.join("site/docs/a.txt"), "doc a").unwrap();
    std::fs::write(
        dir.join("webroot/.well-known/acme-challenge/tok"),
        "tok.key",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/app.css"), "body{}").unwrap();
    let config = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        root = "{site}"
          [[server.location]]
          path = "/"
          [[server.location]]
          path = "^~ /.well-known/acme-challenge/"
          root = "{webroot}"
          [[server.location]]
          path = "/static/"
          alias = "{assets}/"
        "#,
        site = dir.join("site").display(),
        webroot = dir.join("webroot").display(),
        assets = dir.join("assets").display()
    );
    let p = Proxy::start(&config).await;
    for (path, want_status, want_body) in [
        ("/", 200, "home"),
        ("/docs/a.txt", 200, "doc a"),
        ("/.well-known/acme-challenge/tok", 200, "tok.key"),
        ("/static/app.css", 200, "body{}"),
        ("/nope.txt", 404, ""),
        ("/docs/", 404, ""),
    ] {
        let (status, _, body) = get(&p.url(path), &[]).await;
        assert_eq!(status.as_u16(), want_status, "{path}");
        if want_status == 200 {
            assert_eq!(body, want_body, "{path}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn server_level_return_redirects_everything() {
    let config = r#"
        [[server]]
        listen = "127.0.0.1:0"
        server_name = "_"
        return = "301 https://$host$request_uri"
          [[server.location]]
          path = "/"
          return = "200 never"
    "#;
    let p = Proxy::start(config).await;
    let (status, h, _) = get(&p.url("/a/b?c=d"), &[("host", "demo.example.com")]).await;
    assert_eq!(status, 301);
    assert_eq!(h["location"], "https://demo.example.com/a/b?c=d");
}
