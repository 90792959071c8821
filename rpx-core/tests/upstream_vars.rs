//! The access log's `$upstream_*` variables against real nginx: one try,
//! a retry after a refused connection, no upstream at all, a failure
//! only, and an `error_page` that proxies again (` : ` between the
//! redirects). Times are compared by shape (`-` or a number of seconds).

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    log_format up "$request_uri $status a=$upstream_addr s=$upstream_status l=$upstream_response_length c=$upstream_connect_time h=$upstream_header_time r=$upstream_response_time cs=$upstream_cache_status";
    upstream pair {
        server 127.0.0.1:DEAD_PORT;
        server 127.0.0.1:UPSTREAM_PORT backup;
    }
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        root DIR/html;
        access_log DIR/access.log up;
        location /plain/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /retry/ { proxy_pass http://pair; }
        location /dead/ { proxy_pass http://127.0.0.1:DEAD_PORT; }
        location /paged/ {
            proxy_pass http://127.0.0.1:DEAD_PORT;
            error_page 502 = @up;
        }
        location @up { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location /static/ { }
    }
"#;

/// Seconds (`0.001`) as `T`, so that lines compare by shape.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && b.get(i + digits) == Some(&b'.') {
            let frac = b[i + digits + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if frac == 3 {
                out.push('T');
                i += digits + 1 + frac;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

async fn lines(both: &nginx::Both, addr: std::net::SocketAddr, dead: &str) -> Vec<String> {
    let log = both.dir.join("access.log");
    std::fs::write(&log, "").unwrap();
    let paths = ["/plain/x", "/retry/x", "/dead/x", "/paged/x", "/static/x"];
    for (i, path) in paths.iter().enumerate() {
        let req = http::Request::get(*path)
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(addr, req).await;
        let wait = async {
            while std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .count()
                <= i
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(LIMIT, wait).await.expect("a log line");
    }
    let up = both.up.addr.port().to_string();
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| shape(&l.replace(dead, "DEAD").replace(&up, "UP")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_variables_match_nginx() {
    let dead = nginx::free_port().to_string();
    let servers = SERVERS.replace("DEAD_PORT", &dead);
    let Some(both) = nginx::Both::start("upstream-vars", &servers).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    std::fs::create_dir_all(both.dir.join("html/static")).unwrap();
    let want = lines(&both, both.nginx, &dead).await;
    let got = lines(&both, both.rpx, &dead).await;
    assert_eq!(got, want);
    // What the lines say, in case both were wrong alike.
    assert_eq!(
        got[1],
        "/retry/x 200 a=127.0.0.1:DEAD, 127.0.0.1:UP s=502, 200 l=0, 12 c=-, T h=-, T r=T, T cs=-"
    );
    assert_eq!(
        got[3],
        "/paged/x 200 a=127.0.0.1:DEAD : 127.0.0.1:UP s=502 : 200 l=0 : 12 c=- : T h=- : T r=T : T cs=-"
    );
}

/// A `log_format` with an unknown variable is one error, at its line; the
/// `access_log`s that name it, and a second use of an unknown format or of
/// a path that cannot be opened, are not reported again.
#[test]
fn one_error_per_broken_format_or_path() {
    let dir = temp_dir("upstream-vars-check");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        "events {}\nhttp {\n  log_format main '$remote_addr $upstream_connect_time $nope';\n  access_log /nonexistent-dir/a.log combined;\n  server {\n    listen 127.0.0.1:1;\n    access_log /nonexistent-dir/a.log combined;\n    access_log x.log main;\n    access_log y.log other;\n    location / { access_log z.log main; access_log w.log other; }\n  }\n}\n",
    )
    .unwrap();
    let errors: Vec<String> = rpx_core::stack::check_file(&conf)
        .iter()
        .map(ToString::to_string)
        .collect();
    let text = errors.join("\n");
    assert_eq!(errors.len(), 3, "{text}");
    assert!(
        text.contains("nginx.conf:3") && text.contains("\"$nope\""),
        "{text}"
    );
    assert_eq!(
        text.matches("unknown log format \"other\"").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("nonexistent-dir").count(), 1, "{text}");
}
