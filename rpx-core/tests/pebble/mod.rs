//! A real ACME server for tests: Debian's `pebble` (Let's Encrypt's test
//! CA) with `pebble-challtestsrv` as its DNS, both bound to 127.0.0.1 only,
//! validating against the ports the test gives. Every wait is bounded.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `addr` accepts TCP connections.
pub async fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not start listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "rpx-acme-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// pebble + challtestsrv.
pub struct Pebble {
    pub dir: TempDir,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA file that makes pebble's own HTTPS trusted.
    pub tls_ca: PathBuf,
    pub listen: SocketAddr,
    pub management: SocketAddr,
    /// challtestsrv's HTTP API (`/set-txt`, `/clear-txt`).
    pub challtest_api: SocketAddr,
    pebble: Option<Killed>,
    _challtest: Killed,
    config: PathBuf,
    /// pebble's config, for moving it to new ports.
    cfg: serde_json::Value,
    dns: SocketAddr,
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

/// What pebble validates against and how long its certificates live.
#[derive(Clone, Copy, Default)]
pub struct PebbleOptions {
    pub http_port: u16,
    pub tls_port: u16,
    /// `certificateValidityPeriod` in seconds (pebble's default is years).
    pub validity_secs: Option<u64>,
    /// Reserve the ports and write the config, but do not start pebble
    /// (a CA that is down); [`Pebble::start_ca`] starts it later.
    pub down: bool,
    /// External account binding required, with this (kid, base64url MAC key).
    pub eab: Option<(&'static str, &'static str)>,
}

impl Pebble {
    pub async fn start(opts: PebbleOptions) -> Pebble {
        for bin in ["pebble", "pebble-challtestsrv"] {
            assert!(
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {bin}"))
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success(),
                "{bin} is not installed: `apt-get install -y pebble` (scripts/test does it)"
            );
        }
        let dir = TempDir::new("pebble");
        // pebble's own HTTPS certificate, from a CA the test trusts.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pebble front CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let tls_ca = dir.path().join("front-ca.pem");
        std::fs::write(&tls_ca, ca.pem()).unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();

        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dns: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let challtest_api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut pebble_cfg = serde_json::json!({
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": opts.http_port,
            "tlsPort": opts.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some((kid, key)) = opts.eab {
            pebble_cfg["externalAccountBindingRequired"] = true.into();
            pebble_cfg["externalAccountMACKeys"] = serde_json::json!({ kid: key });
        }
        if let Some(v) = opts.validity_secs {
            pebble_cfg["certificateValidityPeriod"] = v.into();
        }
        let config = dir.path().join("pebble.json");
        let cfg = serde_json::json!({ "pebble": pebble_cfg });
        std::fs::write(&config, serde_json::to_vec(&cfg).unwrap()).unwrap();

        // DNS: every name is 127.0.0.1 (no AAAA, so nothing goes to ::1);
        // its own challenge responders are off.
        let challtest = Command::new("pebble-challtestsrv")
            .args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &dns.to_string(),
                "-management",
                &challtest_api.to_string(),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        let challtest = Killed(challtest);
        wait_listening(challtest_api, "pebble-challtestsrv").await;

        let mut p = Pebble {
            directory: format!("https://{listen}/dir"),
            tls_ca,
            listen,
            management,
            challtest_api,
            pebble: None,
            _challtest: challtest,
            config,
            cfg,
            dns,
            ca_der: ca.der().clone(),
            dir,
        };
        if !opts.down {
            // Nobody knows its ports yet: a start that fails on them is
            // tried again on new ones.
            for _ in 0..3 {
                if p.try_start_ca().await {
                    return p;
                }
                p.move_to_new_ports();
            }
            p.fail_to_start();
        }
        p
    }

    /// New ports for pebble's two listeners, and its config rewritten.
    fn move_to_new_ports(&mut self) {
        self.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        self.management = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        self.directory = format!("https://{}/dir", self.listen);
        self.cfg["pebble"]["listenAddress"] = self.listen.to_string().into();
        self.cfg["pebble"]["managementListenAddress"] = self.management.to_string().into();
        std::fs::write(&self.config, serde_json::to_vec(&self.cfg).unwrap()).unwrap();
    }

    fn fail_to_start(&self) -> ! {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        panic!(
            "pebble exited at every start (ports {} and {}); its last lines:\n{}",
            self.listen,
            self.management,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    fn log_path(&self) -> PathBuf {
        self.config.with_file_name("pebble.log")
    }

    /// Starts (or restarts) pebble itself on its ports.
    pub async fn start_ca(&mut self) {
        if !self.try_start_ca().await {
            self.fail_to_start();
        }
    }

    /// Starts pebble; false if it exits at each of 10 starts. Its ports
    /// were free when picked, but another test's outgoing connection can
    /// hold one for a moment; pebble then exits at once, and is started
    /// again. What it says goes to `pebble.log` beside its config.
    async fn try_start_ca(&mut self) -> bool {
        for _attempt in 0..10 {
            self.pebble = None;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("pebble.log");
            let child = Command::new("pebble")
                .arg("-config")
                .arg(&self.config)
                .arg("-dnsserver")
                .arg(self.dns.to_string())
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .stdout(log.try_clone().expect("pebble.log"))
                .stderr(log)
                .spawn()
                .expect("start pebble");
            let mut child = Killed(child);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            let up = loop {
                let listening = tokio::net::TcpStream::connect(self.listen).await.is_ok()
                    && tokio::net::TcpStream::connect(self.management)
                        .await
                        .is_ok();
                if listening {
                    break true;
                }
                if child.0.try_wait().ok().flatten().is_some() {
                    break false;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "pebble did not start listening on {}",
                    self.listen
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            self.pebble = Some(child);
            if up {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Stops pebble (the CA becomes unreachable).
    pub fn stop_ca(&mut self) {
        self.pebble = None;
    }

    /// pebble's root certificate (made anew at every pebble start): what
    /// issued certificates chain to.
    pub async fn root(&self) -> rustls::pki_types::CertificateDer<'static> {
        let pem = self.management_get("/roots/0").await;
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(&pem).expect("root PEM")
    }

    /// A client config trusting pebble's issuing root.
    pub async fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root().await).unwrap();
        Arc::new(
            rustls::ClientConfig::builder_with_provider(rpx_core::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    async fn management_get(&self, path: &str) -> Vec<u8> {
        use http_body_util::BodyExt;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(rpx_core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(self.management)
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", self.management.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200, "pebble management {path}");
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    /// A dns-01 hook script that sets and clears TXT records through
    /// challtestsrv's API (what a DNS provider's API does in production).
    pub fn dns_hook(&self) -> PathBuf {
        let script = self.dir.path().join("dns-hook.sh");
        let api = self.challtest_api;
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
set -e
case "$1" in
  present) curl -sSf -d "{{\"host\":\"_acme-challenge.$2.\",\"value\":\"$3\"}}" http://{api}/set-txt ;;
  cleanup) curl -sSf -d "{{\"host\":\"_acme-challenge.$2.\"}}" http://{api}/clear-txt ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
echo "$1 $2" >> {log}
"#,
                log = self.dir.path().join("dns-hook.log").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    /// What the hook did, one line per call.
    pub fn dns_hook_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dns-hook.log")).unwrap_or_default()
    }
}
