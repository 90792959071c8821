//! Access logs written through real requests: formats, escaping, `off`,
//! errors, and reopening after logrotate.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use http::Request;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rpx-accesslog-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits (bounded) until `path` holds at least `n` lines; returns them.
async fn lines(path: &Path, n: usize) -> Vec<String> {
    bounded(async {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn combined_by_default_with_errors_and_off() {
    let up = Upstream::ok().await;
    let d = dir("combined");
    let log = d.join("access.log");
    let config = format!(
        r#"
        access_log = "{log}"
        client_max_body_size = "1k"
        [[server]]
        listen = "127.0.0.1:0"
          [[server.location]]
          path = "/app/"
          proxy_pass = "{up}"
          [[server.location]]
          path = "/quiet/"
          return = "200 shh"
          access_log = "off"
        "#,
        log = log.display(),
        up = up.url()
    );
    let p = Proxy::start(&config).await;
    let ua = [
        ("user-agent", "test \"agent\""),
        ("referer", "http://r.test/"),
    ];
    assert_eq!(get(&p.url("/app/x?y=1"), &ua).await.0, 200);
    assert_eq!(get(&p.url("/quiet/"), &[]).await.0, 200);
    assert_eq!(get(&p.url("/missing"), &[]).await.0, 404);
    let big = Request::post(p.url("/app/upload"))
        .body(full(vec![0u8; 4096]))
        .unwrap();
    assert_eq!(send(big).await.0, 413);
    let got = lines(&log, 3).await;
    assert_eq!(got.len(), 3, "the `off` location logs nothing: {got:?}");
    let first = &got[0];
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(
        first.contains(
            " +0000] \"GET /app/x?y=1 HTTP/1.1\" 200 8 \"http://r.test/\" \"test \\x22agent\\x22\""
        ),
        "{first}"
    );
    assert!(
        got[1].contains("\"GET /missing HTTP/1.1\" 404 "),
        "{}",
        got[1]
    );
    assert!(
        got[2].contains("\"POST /app/upload HTTP/1.1\" 413 "),
        "{}",
        got[2]
    );
}

#[tokio::test]
async fn json_format_with_upstream_variables() {
    let up = Upstream::ok().await;
    let d = dir("json");
    let log = d.join("json.log");
    let config = format!(
        r#"
        [log_format.json]
        escape = "json"
        format = '{{"host":"$host","status":$status,"up":"$upstream_addr","up_status":"$upstream_status","rt":$request_time,"urt":$upstream_response_time,"bytes":$body_bytes_sent,"xff":"$http_x_forwarded_for"}}'
        [[server]]
        listen = "127.0.0.1:0"
        access_log = {{ path = "{log}", format = "json" }}
          [[server.location]]
          path = "/"
          proxy_pass = "{up}"
        "#,
        log = log.display(),
        up = up.url()
    );
    let p = Proxy::start(&config).await;
    get(
        &p.url("/"),
        &[("host", "J.test"), ("x-forwarded-for", "1.2.3.4")],
    )
    .await;
    let line = lines(&log, 1).await.remove(0);
    let want_prefix = format!(
        "{{\"host\":\"j.test\",\"status\":200,\"up\":\"{}\",\"up_status\":\"200\",\"rt\":",
        up.addr
    );
    assert!(line.starts_with(&want_prefix), "{line}");
    assert!(
        line.ends_with(",\"bytes\":8,\"xff\":\"1.2.3.4\"}"),
        "{line}"
    );
}

#[tokio::test]
async fn reopen_after_logrotate_moves_the_file() {
    let d = dir("rotate");
    let log = d.join("access.log");
    let config = format!(
        "access_log = \"{}\"\n[[server]]\nlisten = \"127.0.0.1:0\"\n[[server.location]]\npath = \"/\"\nreturn = \"200 ok\"\n",
        log.display()
    );
    let p = Proxy::start(&config).await;
    get(&p.url("/before"), &[]).await;
    lines(&log, 1).await;
    let rotated = d.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    rpx_core::accesslog::reopen_all();
    // Lines before the reopen land in the moved file; after it, the new one
    // appears and receives them (as nginx on SIGUSR1).
    let after = bounded(async {
        loop {
            get(&p.url("/after"), &[]).await;
            if log.exists() {
                return lines(&log, 1).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(after[0].contains("GET /after"), "{after:?}");
    assert!(std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("GET /before"));
}

#[test]
fn bad_formats_are_config_errors() {
    let err = rpx_core::Rpx::from_toml(
        "[log_format.x]\nformat = \"$nope\"\n[[server]]\nlisten = \"127.0.0.1:0\"\naccess_log = { path = \"/dev/null\", format = \"y\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("log_format x: unknown variable \"$nope\""),
        "{err}"
    );
    assert!(err.contains("unknown log format \"y\""), "{err}");
}
