//! `stub_status` against real nginx: the same page format (what
//! monitoring parses), type and method rule, and counts that move as
//! requests are made. (The counts themselves are each proxy's own; their
//! accounting is tested in `stub_status.rs`.)

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        location = /basic_status { stub_status; }
        location = /old_status { stub_status on; }
        location / {
            add_header X-Active $connections_active;
            return 204;
        }
    }
"#;

/// The page's numbers, after checking its exact shape.
fn parse(page: &str) -> [u64; 7] {
    let lines: Vec<&str> = page.split('\n').collect();
    assert_eq!(lines.len(), 5, "{page:?}");
    assert_eq!(lines[4], "", "{page:?}");
    assert_eq!(lines[1], "server accepts handled requests", "{page:?}");
    let n = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("{page:?}"));
    let active = lines[0]
        .strip_prefix("Active connections: ")
        .and_then(|r| r.strip_suffix(' '))
        .unwrap_or_else(|| panic!("{page:?}"));
    let counts: Vec<u64> = lines[2]
        .strip_prefix(' ')
        .and_then(|r| r.strip_suffix(' '))
        .unwrap_or_else(|| panic!("{page:?}"))
        .split(' ')
        .map(n)
        .collect();
    let rest = lines[3]
        .strip_suffix(' ')
        .unwrap_or_else(|| panic!("{page:?}"));
    let words: Vec<&str> = rest.split(' ').collect();
    assert_eq!(
        [words[0], words[2], words[4]],
        ["Reading:", "Writing:", "Waiting:"],
        "{page:?}"
    );
    [
        n(active),
        counts[0],
        counts[1],
        counts[2],
        n(words[1]),
        n(words[3]),
        n(words[5]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_status_matches_nginx() {
    let Some(both) = nginx::Both::start("stub-status", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    for (name, addr) in [("nginx", both.nginx), ("rpx", both.rpx)] {
        let get = |method: &'static str, path: &'static str| {
            let req = http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "a")
                .body(Full::new(Bytes::new()))
                .unwrap();
            send(addr, req)
        };
        let first = get("GET", "/basic_status").await;
        assert_eq!(first.status, 200, "{name}");
        assert_eq!(first.headers["content-type"], "text/plain", "{name}");
        let a = parse(&first.body);
        for _ in 0..3 {
            let res = get("GET", "/").await;
            let active: u64 = res.headers["x-active"].to_str().unwrap().parse().unwrap();
            assert!(active >= 1, "{name}: the asking connection is active");
        }
        let b = parse(&get("GET", "/old_status").await.body);
        // Five connections and five requests later (this one included).
        assert!(
            b[1] >= a[1] + 4 && b[3] >= a[3] + 4,
            "{name}: {a:?} then {b:?}"
        );
        assert!(b[1] == b[2], "{name}: every accepted connection handled");
        assert!(
            b[0] >= 1 && b[5] >= 1,
            "{name}: this request is writing: {b:?}"
        );
        assert_eq!(get("POST", "/basic_status").await.status, 405, "{name}");
        assert_eq!(get("HEAD", "/basic_status").await.status, 200, "{name}");
    }
}
