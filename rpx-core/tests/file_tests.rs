//! `if (-f …)`, `-d`, `-e`, `-x` and their negations, with
//! `$request_filename`, `$document_root` and `$realpath_root` under `root`
//! and `alias`, against real nginx on a directory of regular files, a
//! directory, an executable, and symbolic links (one dangling).

mod support;

use bytes::Bytes;
use http_body_util::Full;
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        root DIR/html;
        location /t/ {
            set $f "";
            if (-f $request_filename) { set $f "${f}f"; }
            if (-d $request_filename) { set $f "${f}d"; }
            if (-e $request_filename) { set $f "${f}e"; }
            if (-x $request_filename) { set $f "${f}x"; }
            if (!-e $request_filename) { set $f "${f}!e"; }
            if (!-f $request_filename) { set $f "${f}!f"; }
            add_header X-F "$f|$request_filename|$document_root|$realpath_root" always;
            return 204;
        }
        location /a/ {
            alias DIR/html/t/;
            if (-f $request_filename) { set $g "file"; }
            add_header X-F "$g|$request_filename|$document_root" always;
            return 204;
        }
        location ~ ^/re/ {
            alias DIR/html/t/file.txt;
            add_header X-F "$request_filename" always;
            return 204;
        }
    }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_tests_match_nginx() {
    let Some(both) = nginx::Both::start("file-tests", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let t = both.dir.join("html/t");
    std::fs::create_dir_all(t.join("dir")).unwrap();
    std::fs::write(t.join("file.txt"), "x").unwrap();
    std::fs::write(t.join("run.sh"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(t.join("file.txt"), t.join("link")).unwrap();
    std::os::unix::fs::symlink(t.join("gone"), t.join("dangling")).unwrap();
    let mut diffs = Vec::new();
    let mut rpx = std::collections::HashMap::new();
    for path in [
        "/t/file.txt",
        "/t/dir",
        "/t/dir/",
        "/t/run.sh",
        "/t/link",
        "/t/dangling",
        "/t/missing",
        "/a/file.txt",
        "/a/missing",
        "/re/x",
    ] {
        let mut seen = Vec::new();
        for addr in [both.nginx, both.rpx] {
            let req = http::Request::get(path)
                .header("host", "a")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let got = send(addr, req).await;
            let dir = both.dir.display().to_string();
            let f = got
                .headers
                .get("x-f")
                .map(|v| v.to_str().unwrap().replace(&dir, "DIR"));
            seen.push(format!("{} {f:?}", got.status.as_u16()));
        }
        if seen[0] != seen[1] {
            diffs.push(format!("{path}:\n  nginx {}\n  rpx   {}", seen[0], seen[1]));
        }
        rpx.insert(path, seen.pop().unwrap());
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    assert!(
        rpx["/t/file.txt"].contains("\"fe|"),
        "{}",
        rpx["/t/file.txt"]
    );
    assert!(rpx["/t/run.sh"].contains("fex|"), "{}", rpx["/t/run.sh"]);
}
