//! The corpus: realistic nginx configs (tutorial style) served by rpx, with
//! what a client and the upstream see. Each directory under
//! `tests/nginx_corpus/` holds the config files and a `cases.txt`; the
//! format is described in `tests/nginx_corpus/README.md`.

mod support;

use support::*;

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
        match tokio::time::timeout(LIMIT * 3, run_corpus_config(dir, Via::Nginx)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push(format!("{}: timed out", dir.display())),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
