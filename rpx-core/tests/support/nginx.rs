//! Real nginx for the differential tests: a config under a fresh
//! directory, the process killed on drop. CI installs Debian's nginx;
//! without it these tests fail unless `RPX_SKIP_NGINX=1`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::LIMIT;

/// The nginx binary, or None when `RPX_SKIP_NGINX=1` and there is none.
pub fn binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() && std::env::var("RPX_SKIP_NGINX").as_deref() != Ok("1") {
        panic!("nginx is not installed: install Debian's nginx (CI does), or set RPX_SKIP_NGINX=1 to skip the differential tests");
    }
    found
}

/// A port free at the time of asking (nginx binds it itself).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `servers` (the inside of `http {}`) as a whole nginx config in `dir`,
/// with everything nginx writes kept under `dir`.
pub fn write_config(dir: &Path, servers: &str) -> PathBuf {
    let d = dir.display();
    let text = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{servers}}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, text).expect("write config");
    path
}

/// nginx running a config, killed on drop.
pub struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Nginx {
    /// Starts `binary` on `conf` (written in `dir`) and waits until it
    /// accepts on `addr`.
    pub async fn start(binary: &Path, dir: &Path, conf: &Path, addr: SocketAddr) -> Nginx {
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx(child);
        let ready = async {
            // nginx gives no readiness signal: poll the port, bounded by LIMIT.
            loop {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(LIMIT, ready)
            .await
            .expect("nginx did not start listening");
        nginx
    }
}

/// The same servers under nginx and under rpx, proxying to one recording
/// upstream: `servers` (the inside of `http {}`) with `LISTEN_PORT`,
/// `UPSTREAM_PORT` and `DIR` (a fresh directory) filled in.
pub struct Both {
    pub nginx: SocketAddr,
    pub rpx: SocketAddr,
    pub up: super::Upstream,
    pub dir: PathBuf,
    /// The config file, for a second rpx with other options.
    pub conf: PathBuf,
    _nginx: Nginx,
    _rpx: super::Running,
}

impl Both {
    /// None when nginx is missing and `RPX_SKIP_NGINX=1`.
    pub async fn start(tag: &str, servers: &str) -> Option<Both> {
        Self::start_with(tag, servers, false).await
    }

    /// [`Both::start`] with rpx terminating TLS on `ssl` listeners.
    pub async fn start_tls(tag: &str, servers: &str) -> Option<Both> {
        Self::start_with(tag, servers, true).await
    }

    async fn start_with(tag: &str, servers: &str, tls: bool) -> Option<Both> {
        let binary = binary()?;
        let up = super::Upstream::start(1).await;
        let dir = super::temp_dir(tag);
        let port = free_port();
        let servers = servers
            .replace("LISTEN_PORT", &port.to_string())
            .replace("UPSTREAM_PORT", &up.addr.port().to_string())
            .replace("DIR", &dir.display().to_string());
        let conf = write_config(&dir, &servers);
        let nginx_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let nginx = Nginx::start(&binary, &dir, &conf, nginx_addr).await;
        let rpx = if tls {
            super::serve_file_tls(&conf).await
        } else {
            super::serve_file(&conf, false).await
        }
        .expect("rpx loads the config");
        Some(Both {
            nginx: nginx_addr,
            rpx: rpx.listeners[0].1,
            up,
            dir,
            conf,
            _nginx: nginx,
            _rpx: rpx,
        })
    }
}

impl Drop for Both {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
