//! nginx's own ACME configuration (ngx_http_acme_module's syntax) run by
//! the `rpx` binary against a real ACME server (Debian's pebble): the
//! certificate is ordered in the background while the other listeners
//! serve, and new handshakes get it without a reload.

#[path = "../../rpx-core/tests/pebble/mod.rs"]
mod pebble;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pebble::{free_port, wait_listening, Pebble, PebbleOptions, TempDir};
use rustls::pki_types::ServerName;

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_acme_config_gets_its_certificate() {
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        ..PebbleOptions::default()
    })
    .await;
    let dir = TempDir::new("bin");
    let config = dir.path().join("nginx.conf");
    std::fs::write(
        &config,
        format!(
            r#"
events {{}}
http {{
    acme_issuer pebble {{
        uri         {directory};
        contact     admin@rpx.test;
        state_path  {state};
        accept_terms_of_service;
        ssl_trusted_certificate {ca};
    }}
    acme_shared_zone zone=ngx_acme_shared:1M;

    server {{
        listen 127.0.0.1:{tls_port} ssl;
        server_name bin.rpx.test;
        acme_certificate pebble;
        ssl_certificate       $acme_certificate;
        ssl_certificate_key   $acme_certificate_key;
        ssl_certificate_cache max=2;
        location / {{ return 200 "hello over acme\n"; }}
    }}
    server {{
        # listener on port 80 is required to process ACME HTTP-01 challenges
        listen 127.0.0.1:{http_port};
        location / {{ return 404; }}
    }}
}}
"#,
            directory = pebble.directory,
            state = dir.path().join("state").display(),
            ca = pebble.tls_ca.display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rpx"))
        .args(["run", "--threads", "2", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    // rpx says when the certificate is in place.
    let deadline = std::time::Instant::now() + LIMIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no \"certificate issued\" line; rpx said:\n{}",
                seen.join("\n")
            )
        });
        if line.contains("certificate issued") {
            break;
        }
        seen.push(line);
    }
    wait_listening(format!("127.0.0.1:{tls_port}").parse().unwrap(), "rpx").await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
        .await
        .unwrap();
    let mut tls = tokio::time::timeout(
        LIMIT,
        tokio_rustls::TlsConnector::from(pebble.client().await)
            .connect(ServerName::try_from("bin.rpx.test").unwrap(), tcp),
    )
    .await
    .unwrap()
    .expect("a handshake verified against pebble's root");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET / HTTP/1.1\r\nHost: bin.rpx.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(LIMIT, tls.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello over acme\n"), "{response}");
}
