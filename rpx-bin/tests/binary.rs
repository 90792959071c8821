//! The `rpx` binary as a user runs it: real process, real sockets on
//! 127.0.0.1, readiness from its stdout, bounded waits.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};

const LIMIT: Duration = Duration::from_secs(60);
type BoxBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn rpx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rpx"))
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rpx-bin-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `rpx run`; killed on drop.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Running {
    fn start(config: &PathBuf) -> Running {
        let mut child = rpx()
            .args(["run", "--threads", "2", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // The readiness line: `rpx: listening on 127.0.0.1:PORT (configured …)`.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("rpx: listening on ") {
                    let _ = tx.send(rest.split(' ').next().unwrap().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(LIMIT)
            .expect("rpx did not report listening")
            .parse()
            .unwrap();
        Running { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the rpx process, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn upstream<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<BoxBody>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn client(
) -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, BoxBody>
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

const MIB: usize = 1024 * 1024;

/// 100 MiB generated in 64 KiB chunks, never held whole by the client.
fn generated_body(total: usize) -> BoxBody {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let stream = futures_util::stream::iter((0..total / chunk.len()).map(move |_| {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(chunk.clone()))
    }));
    BodyExt::boxed(StreamBody::new(stream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_each_way_with_bounded_memory() {
    // The upstream counts what it receives and sends 100 MiB back, streamed.
    let up = upstream(|req: Request<Incoming>| async move {
        if req.uri().path() == "/upload" {
            let mut body = req.into_body();
            let mut n = 0usize;
            while let Some(Ok(f)) = body.frame().await {
                n += f.data_ref().map_or(0, |d| d.len());
            }
            Response::new(BodyExt::boxed(
                Full::new(Bytes::from(n.to_string())).map_err(|e| match e {}),
            ))
        } else {
            Response::new(generated_body(100 * MIB))
        }
    })
    .await;
    let config = write_config(
        "stream.toml",
        &format!(
            "[[server]]\nlisten = \"127.0.0.1:0\"\nclient_max_body_size = 0\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://{up}\"\n"
        ),
    );
    let proxy = Running::start(&config);
    let before = proxy.peak_rss_kib();

    let req = Request::post(format!("http://{}/upload", proxy.addr))
        .body(generated_body(100 * MIB))
        .unwrap();
    let res = tokio::time::timeout(LIMIT, client().request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body,
        (100 * MIB).to_string(),
        "the upstream received every byte"
    );

    let req = Request::get(format!("http://{}/download", proxy.addr))
        .body(BodyExt::boxed(Empty::new().map_err(|e| match e {})))
        .unwrap();
    let res = tokio::time::timeout(LIMIT, client().request(req))
        .await
        .unwrap()
        .unwrap();
    let mut body = res.into_body();
    let mut n = 0usize;
    while let Some(frame) = tokio::time::timeout(LIMIT, body.frame()).await.unwrap() {
        n += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(n, 100 * MIB, "the client received every byte");

    let peak = proxy.peak_rss_kib();
    eprintln!("rpx peak RSS: {before} KiB at start, {peak} KiB after 2 × 100 MiB");
    assert!(
        peak < before + 48 * 1024,
        "rpx's memory grew from {before} KiB to {peak} KiB while streaming 100 MiB: something buffered"
    );
}

#[test]
fn check_reports_every_error_with_file_line_col() {
    let bad = write_config(
        "bad.toml",
        r#"[[server]]
listen = "127.0.0.1:0"
proxy_read_timeout = "10q"
  [[server.location]]
  path = "~ ([a-z]"
  proxy_pass = "http://127.0.0.1:1"
  [[server.location]]
  path = "/x/"
  proxy_pass = "ftp://nope"
  proxy_set_header = { "Bad Name" = "v" }
"#,
    );
    let out = rpx()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = bad.display().to_string();
    for want in [
        format!("{file}:3:22: invalid time \"10q\""),
        format!("{file}:4:3: invalid regex \"([a-z]\""),
        format!("{file}:9:16: invalid proxy_pass URL \"ftp://nope\""),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    let unknown = write_config(
        "unknown.toml",
        "[[server]]\nlisten = \"127.0.0.1:0\"\nproxypass = 1\n",
    );
    let out = rpx()
        .args(["check", "--config"])
        .arg(&unknown)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:1: unknown field `proxypass`",
            unknown.display()
        )),
        "{stderr}"
    );

    let good = write_config("good.toml", "[[server]]\nlisten = \"127.0.0.1:0\"\n[[server.location]]\npath = \"/\"\nreturn = \"200 ok\"\n");
    let out = rpx()
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An expired certificate is served (as nginx does) but both `rpx check`
/// and `rpx run` say so, naming the file.
#[test]
fn check_and_run_warn_about_an_expired_certificate() {
    let dir = std::env::temp_dir().join(format!("rpx-bin-expired-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["old.test".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("old.pem"), dir.join("old.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let config = write_config(
        "expired.toml",
        &format!(
            "[[server]]\nlisten = \"127.0.0.1:0 ssl\"\nserver_name = \"old.test\"\n\
             ssl_certificate = \"{}\"\nssl_certificate_key = \"{}\"\n\
             [[server.location]]\npath = \"/\"\nreturn = \"200 ok\"\n",
            cert_path.display(),
            key_path.display()
        ),
    );
    let want = format!(
        "rpx: warning: {}:4:19: the certificate in {} has expired",
        config.display(),
        cert_path.display()
    );
    let out = rpx()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");

    let mut child = rpx()
        .args(["run", "--threads", "1", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Warnings are printed before the readiness line.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("rpx: listening on ") {
                let _ = tx.send(());
            }
        }
    });
    let ready = rx.recv_timeout(LIMIT);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(ready.is_ok(), "rpx did not report listening");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    // The upstream says when the request has reached it, then answers late.
    let (arrived, mut arrival) = tokio::sync::mpsc::unbounded_channel();
    let up = upstream(move |_req| {
        let _ = arrived.send(());
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Response::new(BodyExt::boxed(
                Full::new(Bytes::from("slow but complete")).map_err(|e| match e {}),
            ))
        }
    })
    .await;
    let config = write_config(
        "graceful.toml",
        &format!("[[server]]\nlisten = \"127.0.0.1:0\"\n[[server.location]]\npath = \"/\"\nproxy_pass = \"http://{up}\"\n"),
    );
    let mut proxy = Running::start(&config);
    let url = format!("http://{}/", proxy.addr);
    let in_flight = tokio::spawn(async move {
        let req = Request::get(url)
            .body(BodyExt::boxed(Empty::new().map_err(|e| match e {})))
            .unwrap();
        let res = client().request(req).await.unwrap();
        res.into_body().collect().await.unwrap().to_bytes()
    });
    // The request is in flight once the upstream has it.
    tokio::time::timeout(LIMIT, arrival.recv())
        .await
        .expect("the request reached the upstream");
    let killed = Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let body = tokio::time::timeout(LIMIT, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, "slow but complete");
    let status = tokio::task::spawn_blocking(move || proxy.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn embedded_default_serves_the_welcome_page() {
    // The default listens on 127.0.0.1:8080; only run the check form here so
    // the test never depends on that port being free.
    let out = rpx()
        .args(["check", "--config"])
        .arg(write_config(
            "welcome.toml",
            include_str!("../src/default.toml"),
        ))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("location / -> return 200"));
}
