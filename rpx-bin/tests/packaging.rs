//! The packaging files cannot run here (no systemd, no Docker engine); this
//! keeps them consistent with the binary and the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn compose_config_passes_rpx_check() {
    // The shipped config logs to /var/log/rpx; check a copy logging to a temp dir.
    let dir = std::env::temp_dir().join(format!("rpx-packaging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = read("packaging/docker-compose/rpx.toml").replace(
        "/var/log/rpx/access.log",
        &dir.join("access.log").display().to_string(),
    );
    let path = dir.join("rpx.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rpx"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("proxy_pass http://app:80"), "{summary}");
    assert!(summary.contains("proxy_pass http://api:5678"), "{summary}");
    // Automatic HTTPS: both names' certificates are ordered by ACME.
    assert!(
        summary.contains("certificate (acme acme) for app.example.com: to be ordered"),
        "{summary}"
    );
    assert!(
        summary.contains("for api.example.com: to be ordered"),
        "{summary}"
    );
}

#[test]
fn systemd_unit_reloads_with_sighup_and_runs_the_binary() {
    let unit = read("packaging/rpx.service");
    let mut section = "";
    let mut keys = Vec::new();
    for line in unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if line.starts_with('[') {
            assert!(line.ends_with(']'), "bad section line {line:?}");
            section = line;
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line:?}"));
        keys.push((section, k, v));
    }
    let get = |s: &str, k: &str| keys.iter().find(|x| x.0 == s && x.1 == k).map(|x| x.2);
    assert_eq!(
        get("[Service]", "ExecReload"),
        Some("/bin/kill -HUP $MAINPID")
    );
    let start = get("[Service]", "ExecStart").unwrap();
    assert!(
        start.contains("rpx run --config /etc/rpx/rpx.toml"),
        "{start}"
    );
    assert!(get("[Service]", "ExecStartPre")
        .unwrap()
        .contains("rpx check --config"));
    assert_eq!(get("[Install]", "WantedBy"), Some("multi-user.target"));
}

#[test]
fn dockerfile_is_small_non_root_and_copies_what_exists() {
    let docker = read("packaging/Dockerfile");
    let froms = docker.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(froms, 2, "a build stage and a slim final stage");
    assert!(docker.contains("FROM debian:bookworm-slim"));
    let user = docker.lines().rfind(|l| l.starts_with("USER ")).unwrap();
    assert_ne!(user.trim(), "USER root");
    assert!(docker.contains("EXPOSE 80 443"));
    assert!(docker.contains("VOLUME [\"/etc/rpx\", \"/var/lib/rpx\"]"));
    for line in docker.lines().filter(|l| l.starts_with("COPY packaging/")) {
        let src = line.split_whitespace().nth(1).unwrap();
        assert!(repo(src).exists(), "{src} is copied but missing");
    }
}

#[test]
fn compose_file_fronts_two_apps_with_rpx() {
    let compose = read("packaging/docker-compose/docker-compose.yml");
    for service in ["  rpx:", "  app:", "  api:"] {
        assert!(compose.lines().any(|l| l == service), "{service} missing");
    }
    assert!(compose.contains("./rpx.toml:/etc/rpx/rpx.toml:ro"));
    assert!(compose.contains("dockerfile: packaging/Dockerfile"));
    assert!(compose.contains("\"443:8443\""), "HTTPS is published");
}
