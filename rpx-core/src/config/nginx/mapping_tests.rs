use std::path::Path;

use super::super::config_from_str;
use crate::config::model::*;
use crate::config::{AcmeChallenge, AcmeState, LoadOptions, Loaded};

fn load(src: &str) -> Loaded {
    config_from_str(src, Path::new("t.conf"), LoadOptions::default())
}

fn lenient(src: &str) -> Loaded {
    config_from_str(src, Path::new("t.conf"), LoadOptions { lenient: true })
}

fn errors(l: &Loaded) -> Vec<String> {
    l.errors.iter().map(ToString::to_string).collect()
}

fn warnings(l: &Loaded) -> Vec<String> {
    l.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn debian_nginx_conf_loads() {
    let l = super::super::load_config(Path::new("/etc/nginx/nginx.conf"), LoadOptions::default());
    if !Path::new("/etc/nginx/nginx.conf").exists() {
        return;
    }
    assert_eq!(errors(&l), Vec::<String>::new());
    assert!(!l.config.servers.is_empty());
}

#[test]
fn errors_with_positions() {
    let cases = [
        (
            "server {\n location / {\n  location @app { return 200; }\n }\n}",
            "t.conf:3: named location \"@app\" can be on the server level only",
        ),
        (
            "server {\n location @app {\n  location /x { return 200; }\n }\n}",
            "t.conf:3: location \"/x\" cannot be inside the named location \"@app\"",
        ),
        (
            "server { proxy_cahce off; }",
            "t.conf:1: unknown directive \"proxy_cahce\" (did you mean \"proxy_cache\"?)",
        ),
        (
            "server {\n listen 80;\n proxy_pass http://x;\n}",
            "t.conf:3: \"proxy_pass\" directive is not allowed here",
        ),
        (
            "server {\n listen;\n}",
            "t.conf:2: invalid number of arguments in \"listen\" directive",
        ),
        (
            "server {\n location / { proxy_read_timeout 5x; }\n}",
            "t.conf:2: \"proxy_read_timeout\" directive invalid value \"5x\"",
        ),
        (
            "server {\n ssl_protocols TLSv1 TLSv1.1;\n}",
            "t.conf:2: \"ssl_protocols\" lists only versions rpx does not offer (TLSv1.2, TLSv1.3)",
        ),
        (
            "server {\n ssl_protocols TLSv9;\n}",
            "t.conf:2: invalid value \"TLSv9\" in \"ssl_protocols\"",
        ),
        (
            "server {\n location / { proxy_ssl_verify maybe; }\n}",
            "t.conf:2: invalid value in \"proxy_ssl_verify\" directive, it must be \"on\" or \"off\"",
        ),
        ("server {\n location / {\n  allow 1.2.3.4/33;\n }\n}",
            "t.conf:3: \"allow\": invalid parameter \"1.2.3.4/33\": an address, a CIDR (10.0.0.0/8, 2001:db8::/32), \"unix:\" or \"all\""),
        ("server {\n location / {\n  valid_referers none blocked;\n }\n}",
            "t.conf:3: \"valid_referers\" is not yet supported (access control) (access control is never ignored, not even with `--lenient`: without it the config would let in whom it keeps out)"),
        ("server {\n auth_basic a;\n auth_basic b;\n}", "t.conf:3: \"auth_basic\" directive is duplicate"),
        ("server {\n auth_basic_user_file /etc/$host;\n}",
            "t.conf:2: \"auth_basic_user_file\" with variables is not supported: rpx takes a fixed text"),
        ("server {\n satisfy some;\n}",
            "t.conf:2: invalid value \"some\" in \"satisfy\" directive, it must be \"all\" or \"any\""),
        ("server {\n if ($host == x) { return 404; }\n}", "t.conf:2: invalid condition in \"if\""),
        ("server {\n rewrite ^ /x bogus;\n}", "t.conf:2: invalid parameter \"bogus\""),
        ("events", "t.conf:1:1: unexpected end of file, directive \"events\" is not terminated by \";\""),
    ];
    for (src, want) in cases {
        assert_eq!(errors(&load(src)), vec![want.to_string()], "{src}");
    }
}

#[test]
fn tls_directives_map_onto_the_model() {
    let src = "server {\n listen 443 ssl http2;\n server_name a;\n\
               ssl_certificate /etc/letsencrypt/live/a/fullchain.pem;\n\
               ssl_certificate_key /etc/letsencrypt/live/a/privkey.pem;\n\
               ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n\
               ssl_client_certificate /ca.pem;\n ssl_verify_client optional;\n\
               location / { proxy_pass https://backend:8443; }\n\
               location /checked/ { proxy_pass https://backend:8443; proxy_ssl_verify on;\n\
               proxy_ssl_trusted_certificate /ca.pem; proxy_ssl_server_name on; proxy_ssl_name b.internal; }\n}";
    let l = load(src);
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    let s = &l.config.servers[0];
    assert!(s.listen[0].ssl && s.listen[0].http2);
    let set = &s.settings;
    assert_eq!(
        set.ssl_certificate.as_ref().unwrap().value,
        "/etc/letsencrypt/live/a/fullchain.pem"
    );
    assert_eq!(set.ssl_verify_client.as_ref().unwrap().value, "optional");
    // TLSv1 and TLSv1.1 are warned about and dropped.
    assert_eq!(
        set.ssl_protocols.as_ref().unwrap().value,
        ["TLSv1.2", "TLSv1.3"]
    );
    let checked = &s.locations[1].settings;
    assert_eq!(checked.proxy_ssl_verify, Some(true));
    assert_eq!(checked.proxy_ssl_server_name, Some(true));
    assert_eq!(checked.proxy_ssl_name.as_deref(), Some("b.internal"));
    // nginx's defaults at the http level: no verification, no SNI.
    assert_eq!(l.config.settings.proxy_ssl_verify, Some(false));
    assert_eq!(l.config.settings.proxy_ssl_server_name, Some(false));
    let w = warnings(&l);
    assert!(
        w.iter()
            .any(|w| w.starts_with("t.conf:6: TLSv1, TLSv1.1 not offered")),
        "{w:?}"
    );
    assert_eq!(
        w.iter()
            .filter(|w| w.contains("proxy_ssl_verify is off"))
            .count(),
        1,
        "only the unverified https upstream warns: {w:?}"
    );
}

#[test]
fn certbot_server_block() {
    let src = r#"
server {
    if ($host = demo.example.com) {
        return 301 https://$host$request_uri;
    } # managed by Certbot
    listen 80;
    server_name demo.example.com;
    return 404; # managed by Certbot
}"#;
    let l = load(src);
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    let s = &l.config.servers[0];
    assert_eq!(s.ret.as_ref().map(|r| r.code), Some(404));
    let [RewriteStep::If(i)] = s.rewrites.as_slice() else {
        panic!("{:?}", s.rewrites)
    };
    assert_eq!(
        i.cond,
        Condition::Equals {
            left: "$host".into(),
            right: "demo.example.com".into(),
            negate: false
        }
    );
}

#[test]
fn maps_settings_and_locations() {
    let src = r#"
map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
    ~*^web websocket;
}
upstream app { server 127.0.0.1:3000 weight=2; server backend max_fails=3; }
proxy_set_header Host $host;
server {
    listen 127.0.0.1:8080 default_server;
    server_name example.com www.example.com;
    client_max_body_size 10m;
    location /ws/ {
        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_read_timeout 1d;
    }
    location ~* \.(png|jpg)$ { root /srv; }
    location = /old { rewrite ^ /new permanent; }
}"#;
    let l = load(src);
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    assert!(warnings(&l).is_empty(), "{:?}", warnings(&l));
    let c = &l.config;
    assert_eq!(c.upstreams[0].servers[1].max_fails, 3);
    assert_eq!(c.maps[0].name, "connection_upgrade");
    assert_eq!(c.maps[0].entries[0].key, MapKey::Exact(String::new()));
    assert_eq!(c.upstreams[0].servers[0].weight, 2);
    assert_eq!(c.upstreams[0].servers[1].addr, "backend:80");
    let s = &c.servers[0];
    assert_eq!(s.listen[0].addr.to_string(), "127.0.0.1:8080");
    assert_eq!(s.settings.client_max_body_size, Some(10 << 20));
    let ws = &s.locations[0];
    assert_eq!(
        ws.settings.proxy_read_timeout,
        Some(std::time::Duration::from_secs(86400))
    );
    assert_eq!(ws.settings.proxy_set_header.as_ref().map(Vec::len), Some(2));
    assert_eq!(
        s.locations[1].kind,
        crate::location::MatchKind::RegexCaseless
    );
    assert_eq!(s.locations[1].pattern, r"\.(png|jpg)$");
    assert_eq!(s.locations[2].rewrites.len(), 1);
}

#[test]
fn never_panics_on_generated_input() {
    let atoms = [
        "server",
        "location",
        "{",
        "}",
        ";",
        "if",
        "(",
        ")",
        "$host",
        "=",
        "map",
        "'' x",
        "~",
        "listen",
        "80",
        "ssl",
        "return",
        "301",
        "rewrite",
        "^",
        "http",
        "events",
        "upstream",
        "proxy_pass",
        "http://a",
        "\"",
        "add_header",
        "always",
        "try_files",
        "@x",
        "=404",
        "default",
        "\n",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut src = String::new();
        for _ in 0..(seed % 24) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            src.push_str(atoms[(seed % atoms.len() as u64) as usize]);
            src.push(' ');
        }
        let l = load(&src);
        let _ = lenient(&src);
        if l.errors.is_empty() {
            let _ = crate::stack::compile(&l.config);
        }
    }
}

#[test]
fn access_logs_and_formats() {
    let src = "log_format main escape=json '{\"a\":\"$remote_addr\",' '\"s\":$status}';\n\
               access_log /var/log/rpx/access.log;\n\
               server { listen 80;\n access_log /tmp/a.log main;\n access_log /tmp/b.log;\n\
               location /quiet/ { access_log off; }\n\
               location /sys/ { access_log syslog:server=unix:/dev/log; } }";
    let l = lenient(src);
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    let f = &l.config.log_formats[0];
    assert_eq!((f.name.as_str(), f.escape.as_str()), ("main", "json"));
    assert_eq!(f.format, "{\"a\":\"$remote_addr\",\"s\":$status}");
    assert_eq!(
        l.config.settings.access_log.as_ref().unwrap()[0].path,
        "/var/log/rpx/access.log"
    );
    let server = &l.config.servers[0];
    let logs = server.settings.access_log.as_ref().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].format.as_deref(), Some("main"));
    assert_eq!(server.locations[0].settings.access_log, Some(Vec::new()));
    assert!(
        warnings(&l).iter().any(|w| w.contains("syslog")),
        "{:?}",
        warnings(&l)
    );
}

#[test]
fn convert_keeps_tls_and_logging_settings() {
    let src = "log_format main escape=json '{\"s\":$status}';\n\
               server { listen 443 ssl http2; server_name a;\n\
               ssl_certificate /c.pem; ssl_certificate_key /k.pem; ssl_protocols TLSv1.2 TLSv1.3;\n\
               ssl_client_certificate /ca.pem; ssl_verify_client optional;\n\
               access_log /tmp/a.log main;\n\
               location / { proxy_pass https://b:8443; proxy_ssl_verify on; proxy_ssl_name b.internal;\n\
               proxy_ssl_trusted_certificate /ca.pem; access_log off; } }";
    let l = load(src);
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    let text = crate::config::to_toml(&l.config).unwrap();
    let back = crate::config::parse_toml(&text, "converted.toml").unwrap();
    let (a, b) = (&l.config, &back);
    let strip = |s: &Settings| {
        let mut s = s.clone();
        for f in [
            &mut s.ssl_certificate,
            &mut s.ssl_certificate_key,
            &mut s.ssl_client_certificate,
            &mut s.ssl_verify_client,
            &mut s.proxy_ssl_trusted_certificate,
        ]
        .into_iter()
        .flatten()
        {
            f.pos = SourcePos::default();
        }
        if let Some(p) = &mut s.ssl_protocols {
            p.pos = SourcePos::default();
        }
        for l in s.access_log.iter_mut().flatten() {
            l.pos = SourcePos::default();
        }
        s
    };
    assert_eq!(
        strip(&a.servers[0].settings),
        strip(&b.servers[0].settings),
        "{text}"
    );
    assert_eq!(
        strip(&a.servers[0].locations[0].settings),
        strip(&b.servers[0].locations[0].settings),
        "{text}"
    );
    assert_eq!(
        a.settings.proxy_ssl_verify, b.settings.proxy_ssl_verify,
        "nginx's default travels along"
    );
    assert_eq!(a.log_formats[0].format, b.log_formats[0].format);
    assert_eq!(b.log_formats[0].escape, "json");
    assert!(b.servers[0].listen[0].ssl && b.servers[0].listen[0].http2);
}

#[test]
fn tls_session_cipher_and_http2_directives_map_onto_the_model() {
    let src = "ssl_session_cache shared:SSL:10m;\nssl_session_tickets off;\n\
               ssl_ciphers HIGH:!aNULL:!MD5;\nssl_prefer_server_ciphers on;\n\
               ssl_session_timeout 1d;\n\
               server {\n listen 443 ssl;\n http2 on;\n ssl_session_cache off;\n}\n\
               server {\n listen 8443 ssl;\n ssl_session_cache builtin:1000 shared:a:1m;\n}";
    let l = load(src);
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    let http = &l.config.settings;
    assert_eq!(http.ssl_session_cache, Some(40_000));
    assert_eq!(http.ssl_session_tickets, Some(false));
    assert_eq!(http.ssl_ciphers.as_ref().unwrap().value, "HIGH:!aNULL:!MD5");
    assert_eq!(http.ssl_prefer_server_ciphers, Some(true));
    let first = &l.config.servers[0].settings;
    assert_eq!(first.http2, Some(true));
    assert_eq!(first.ssl_session_cache, Some(0));
    assert_eq!(l.config.servers[1].settings.ssl_session_cache, Some(5_000));
    // Only the timeout is not rpx's to choose.
    assert_eq!(
        warnings(&l),
        ["t.conf:5: \"ssl_session_timeout 1d\": rpx keeps rustls' session lifetimes (tickets are valid for 12 hours); ignored"]
    );
    let bad = load("ssl_session_cache shared:SSL;\nhttp2 maybe;");
    assert_eq!(
        errors(&bad),
        [
            "t.conf:1: invalid session cache \"shared:SSL\"",
            "t.conf:2: invalid value in \"http2\" directive, it must be \"on\" or \"off\""
        ]
    );
}

#[test]
fn upstream_tls_tuning_directives_warn() {
    let l = load("server { listen 80; location / { proxy_pass https://b:443; proxy_ssl_verify on;\n\
                  proxy_ssl_ciphers HIGH:!aNULL; proxy_ssl_verify_depth 2; proxy_ssl_protocols TLSv1.2; } }");
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    let w = warnings(&l);
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w.iter()
            .any(|w| w.contains("proxy_ssl_ciphers HIGH:!aNULL")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.contains("proxy_ssl_verify_depth 2")),
        "{w:?}"
    );
}

#[test]
fn worker_shutdown_timeout_maps_and_converts() {
    let l = load("worker_shutdown_timeout 10s;\nevents {}\nhttp { server { listen 80; } }");
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    assert_eq!(
        l.config.shutdown_timeout,
        Some(std::time::Duration::from_secs(10))
    );
    let text = crate::config::to_toml(&l.config).unwrap();
    let back = crate::config::parse_toml(&text, "c.toml").unwrap();
    assert_eq!(
        back.shutdown_timeout,
        Some(std::time::Duration::from_secs(10)),
        "{text}"
    );
    let snapshot = crate::stack::compile(&back).unwrap();
    assert_eq!(
        snapshot.shutdown_timeout(),
        Some(std::time::Duration::from_secs(10))
    );
}

#[test]
fn error_log_maps_warns_and_converts() {
    use crate::config::{ErrorLogLevel, ErrorLogTarget};
    let l = load(
        "error_log /var/log/rpx/error.log warn;\nevents {}\nhttp {\n error_log /x.log;\n \
         server { listen 80; error_log /y.log info; }\n}",
    );
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    let log = l.config.error_log.clone().unwrap();
    assert_eq!(
        (log.target, log.level),
        (
            ErrorLogTarget::File("/var/log/rpx/error.log".into()),
            ErrorLogLevel::Warn
        )
    );
    assert_eq!(
        warnings(&l),
        [
            "t.conf:4: rpx writes one error log: the first error_log is used, this one is ignored",
            "t.conf:5: rpx writes one error log (the main or http level's): this error_log is ignored"
        ]
    );
    let text = crate::config::to_toml(&l.config).unwrap();
    let back = crate::config::parse_toml(&text, "c.toml").unwrap();
    assert_eq!(
        back.error_log.map(|e| e.level),
        Some(ErrorLogLevel::Warn),
        "{text}"
    );

    let l = load("error_log syslog:server=unix:/dev/log;\nhttp { server { listen 80; } }");
    assert_eq!(
        l.config.error_log.clone().unwrap().target,
        ErrorLogTarget::Stderr
    );
    assert!(warnings(&l)[0].starts_with("t.conf:1: error_log to syslog is not supported"));
    let l = load("error_log /e.log loud;\nhttp { server { listen 80; } }");
    assert_eq!(
        errors(&l),
        ["t.conf:1: unknown error_log level \"loud\" (one of debug, info, notice, warn, error, crit, alert, emerg)"]
    );
}

#[test]
fn acme_issuer_and_certificate_as_nginx_writes_them() {
    let l = load(
        "acme_issuer letsencrypt {\n uri https://acme.example/dir;\n contact admin@example.com;\n state_path /var/lib/rpx/acme;\n accept_terms_of_service;\n challenge tls-alpn;\n ssl_trusted_certificate /etc/ca.pem;\n ssl_verify off;\n external_account_key kid1 data:a2V5;\n preferred_chain X;\n}\n\
         acme_shared_zone zone=ngx_acme_shared:1M;\n\
         server {\n listen 443 ssl;\n server_name app.example.com www.app.example.com;\n acme_certificate letsencrypt key=ecdsa:384;\n ssl_certificate $acme_certificate;\n ssl_certificate_key $acme_certificate_key;\n}\n",
    );
    assert_eq!(errors(&l), Vec::<String>::new());
    assert_eq!(
        warnings(&l),
        ["t.conf:10: \"preferred_chain\" is ignored: rpx serves the chain the CA sends by default"]
    );
    let i = &l.config.acme_issuers[0];
    assert_eq!(i.name, "letsencrypt");
    assert_eq!(i.directory.value, "https://acme.example/dir");
    assert_eq!(i.contact, ["mailto:admin@example.com"]);
    assert_eq!(i.state, Some(AcmeState::Dir("/var/lib/rpx/acme".into())));
    assert!(i.accept_terms_of_service && !i.ssl_verify);
    assert_eq!(i.challenge, AcmeChallenge::TlsAlpn01);
    assert_eq!(i.external_account_key.as_ref().unwrap().0, "kid1");
    let c = l.config.servers[0].acme.as_ref().unwrap();
    assert_eq!(c.issuer, "letsencrypt");
    assert!(c.identifiers.is_empty());
    assert_eq!(c.key.as_ref().unwrap().value, "ecdsa:384");
}

#[test]
fn acme_errors_name_the_line() {
    let cases = [
        (
            "acme_issuer a { contact x@y; }",
            "t.conf:1: \"uri\" is mandatory in \"acme_issuer\"",
        ),
        (
            "acme_issuer a { uri https://x/d; challenge dns; }",
            "t.conf:1: \"challenge dns\" needs \"dns_hook /path/to/command\"",
        ),
        (
            "acme_issuer a { uri https://x/d; challenge smtp; }",
            "t.conf:1: invalid challenge \"smtp\": use http-01, tls-alpn-01 or dns-01",
        ),
        (
            "server { uri x; }",
            "t.conf:1: \"uri\" directive is not allowed here",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(errors(&load(src)), [want], "{src}");
    }
}

#[test]
fn proxy_http_version_maps_and_checks_its_value() {
    let l = load(
        "http {\n proxy_http_version 2;\n server {\n  location / { proxy_pass https://app; }\n  location /old/ { proxy_http_version 1.1; proxy_pass http://app; }\n }\n}",
    );
    assert_eq!(errors(&l), Vec::<String>::new());
    let v = |s: &Settings| s.proxy_http_version.as_ref().map(|v| v.value);
    assert_eq!(v(&l.config.settings), Some(ProxyHttpVersion::Http2));
    let locs = &l.config.servers[0].locations;
    assert_eq!(v(&locs[0].settings), None, "inherited when compiled");
    assert_eq!(v(&locs[1].settings), Some(ProxyHttpVersion::Http11));
    let l = load("http {\n server {\n  proxy_http_version 3;\n }\n}");
    assert_eq!(
        errors(&l),
        ["t.conf:3: invalid value \"3\" in \"proxy_http_version\" directive, it must be \"1.0\", \"1.1\" or \"2\""]
    );
}

#[test]
fn client_keepalive_limits_map_convert_and_reach_the_listener() {
    let src = "events {}\nhttp {\n  keepalive_requests 5;\n  server {\n    listen 127.0.0.1:8080;\n    keepalive_time 10m;\n  }\n}";
    let l = load(src);
    assert!(
        l.errors.is_empty() && l.warnings.is_empty(),
        "{:?} {:?}",
        errors(&l),
        warnings(&l)
    );
    let text = crate::config::to_toml(&l.config).unwrap();
    let back = crate::config::parse_toml(&text, "c.toml").unwrap();
    for config in [&l.config, &back] {
        let snapshot = crate::stack::compile(config).unwrap();
        let spec = &snapshot.listeners()[0];
        assert_eq!(spec.keepalive_requests, 5, "{text}");
        assert_eq!(
            spec.keepalive_time,
            std::time::Duration::from_secs(600),
            "{text}"
        );
    }
    let defaults =
        crate::stack::compile(&load("events {}\nhttp { server { listen 80; } }").config).unwrap();
    assert_eq!(defaults.listeners()[0].keepalive_requests, 1000);
    assert_eq!(
        defaults.listeners()[0].keepalive_time,
        std::time::Duration::from_secs(3600)
    );

    let bad = load("events {}\nhttp {\n  keepalive_requests many;\n  server { listen 80; }\n}");
    assert!(
        errors(&bad).iter().any(|e| e.starts_with("t.conf:3")),
        "{:?}",
        errors(&bad)
    );
}

#[test]
fn default_only_directives() {
    let ok = load("server { listen 80; absolute_redirect on; port_in_redirect on; server_name_in_redirect off; }");
    assert_eq!(errors(&ok), Vec::<String>::new());
    for (line, what) in [
        ("absolute_redirect off;", "relative redirects"),
        ("port_in_redirect off;", "without the port"),
        ("server_name_in_redirect on;", "to the server name"),
    ] {
        let l = load(&format!("server {{ listen 80;\n{line} }}"));
        let e = errors(&l).join("\n");
        assert!(e.contains("t.conf:2") && e.contains(what), "{line}: {e}");
    }
}
