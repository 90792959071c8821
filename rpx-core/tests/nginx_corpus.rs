//! The corpus: realistic nginx configs (tutorial style) served by rpx, with
//! what a client and the upstream see. Each directory under
//! `tests/nginx_corpus/` holds the config files and a `cases.txt`; the
//! format is described in `tests/nginx_corpus/README.md`.

mod support;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;
use support::*;

fn corpus_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nginx_corpus");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

async fn run_one(dir: &Path) -> Result<usize, String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_owned();
    let up1 = Upstream::start(1).await;
    let up2 = Upstream::start(2).await;
    let tmp = temp_dir(&name);
    copy_tree(
        dir,
        &tmp,
        &[
            ("UPSTREAM_PORT", up1.addr.port().to_string()),
            ("UPSTREAM2_PORT", up2.addr.port().to_string()),
            ("CORPUS_DIR", tmp.display().to_string()),
        ],
    );
    // Read from the copy: expectations may name the upstream ports too.
    let text =
        std::fs::read_to_string(tmp.join("cases.txt")).map_err(|e| format!("{name}: {e}"))?;
    let (cases, flags) = parse_cases(&text);
    let main = tmp.join(flags.get("main").map_or("nginx.conf", String::as_str));
    let served = serve_file(&main, flags.contains_key("lenient")).await;
    if let Some(want) = flags.get("error") {
        let want = want.replace("CORPUS_DIR", &tmp.display().to_string());
        return match served {
            Err(errors) if errors.first() == Some(&want) => Ok(0),
            Err(errors) => Err(format!("{name}: errors {errors:?}, want {want:?}")),
            Ok(_) => Err(format!("{name}: loaded, want error {want:?}")),
        };
    }
    let rpx = served.map_err(|e| format!("{name}: {e:?}"))?;
    if let Some(n) = flags.get("warnings") {
        let want: usize = n.parse().expect("warnings count");
        if rpx.warnings.len() != want {
            return Err(format!("{name}: warnings {:?}, want {want}", rpx.warnings));
        }
    }
    let mut failures = Vec::new();
    for c in &cases {
        let at = format!("{name}/cases.txt:{}", c.line);
        let Some((_, addr)) = rpx.listeners.get(c.listener) else {
            failures.push(format!("{at}: no listener {}", c.listener));
            continue;
        };
        let mut req = http::Request::builder()
            .method(c.method.as_str())
            .uri(c.path.as_str());
        for (n, v) in &c.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let req = req.body(Full::new(Bytes::new())).expect("request");
        let got = send(*addr, req).await;
        if got.status.as_u16() != c.status {
            failures.push(format!(
                "{at}: status {} want {} (body {:?})",
                got.status, c.status, got.body
            ));
        }
        for (n, want) in &c.expect_headers {
            let have = got
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if have != *want {
                failures.push(format!("{at}: header {n} = {have:?}, want {want:?}"));
            }
        }
        for b in &c.body_contains {
            if !got.body.contains(b.as_str()) {
                failures.push(format!("{at}: body {:?} lacks {b:?}", got.body));
            }
        }
        let mut seen = up1.take();
        seen.extend(up2.take());
        match &c.upstream {
            None => {}
            Some(None) if !seen.is_empty() => {
                failures.push(format!(
                    "{at}: upstream saw {:?}, want nothing",
                    seen[0].uri
                ));
            }
            Some(None) => {}
            Some(Some(want)) => match seen.as_slice() {
                [s] => {
                    let line = format!("{} {}", s.method, s.uri);
                    if line != *want {
                        failures.push(format!("{at}: upstream saw {line:?}, want {want:?}"));
                    }
                    for (n, want) in &c.upstream_headers {
                        let have: Vec<&str> = s
                            .headers
                            .get_all(n)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .collect();
                        let have = (!have.is_empty()).then(|| have.join(", "));
                        if have != *want {
                            failures.push(format!(
                                "{at}: upstream header {n} = {have:?}, want {want:?}"
                            ));
                        }
                    }
                }
                other => failures.push(format!(
                    "{at}: upstream saw {} requests, want 1",
                    other.len()
                )),
            },
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if failures.is_empty() {
        Ok(cases.len())
    } else {
        Err(failures.join("\n"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_configs_serve_as_nginx_would() {
    let dirs = corpus_dirs();
    assert!(
        dirs.len() >= 20,
        "the corpus has {} configs, want at least 20",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        match tokio::time::timeout(LIMIT * 3, run_one(dir)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push(format!("{}: timed out", dir.display())),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
