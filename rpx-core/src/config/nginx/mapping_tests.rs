use std::path::Path;

use super::super::config_from_str;
use crate::config::model::*;
use crate::config::{LoadOptions, Loaded};

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
            "server {\n listen 443 ssl;\n}",
            "t.conf:2: \"listen … ssl\" is not yet supported (TLS termination) (`--lenient` ignores it with a warning)",
        ),
        (
            "server {\n ssl_certificate /x.pem;\n}",
            "t.conf:2: \"ssl_certificate\" is not yet supported (TLS termination) (`--lenient` ignores it with a warning)",
        ),
        ("server {\n location / {\n  allow 1.2.3.4;\n }\n}",
            "t.conf:3: \"allow\" is not yet supported (access control) (`--lenient` ignores it with a warning)"),
        ("server {\n if ($host == x) { return 404; }\n}", "t.conf:2: invalid condition in \"if\""),
        ("server {\n rewrite ^ /x bogus;\n}", "t.conf:2: invalid parameter \"bogus\""),
        ("events", "t.conf:1:1: unexpected end of file, directive \"events\" is not terminated by \";\""),
    ];
    for (src, want) in cases {
        assert_eq!(errors(&load(src)), vec![want.to_string()], "{src}");
    }
}

#[test]
fn lenient_skips_ssl_only_servers() {
    let src = "server { listen 443 ssl; ssl_certificate /x; server_name a; }\n\
               server { listen 80; server_name a; return 301 https://$host$request_uri; }";
    let l = lenient(src);
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    assert_eq!(l.config.servers.len(), 1);
    assert_eq!(warnings(&l).len(), 3, "{:?}", warnings(&l));
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
    assert_eq!(warnings(&l).len(), 1, "{:?}", warnings(&l));
    let c = &l.config;
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
