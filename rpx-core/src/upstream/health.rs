//! Active health checks: a task per group probing every server with
//! `GET path` on an interval; `fall` failures in a row take a server out,
//! `rise` successes bring it back. State changes are logged.

use std::ops::RangeInclusive;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use super::group::UpstreamGroup;
use super::peer::Peer;

/// What a probe asks and what counts as healthy.
///
/// ```
/// use rpx_core::upstream::HealthCheck;
/// let check = HealthCheck::default();
/// assert_eq!(check.path, "/");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time between two probes of a server. Default 5 s.
    pub interval: Duration,
    /// The path probed with `GET`. Default `/`.
    pub path: String,
    /// Statuses counted healthy. Default 200–399.
    pub status: RangeInclusive<u16>,
    /// Successes in a row that bring a server back. Default 2.
    pub rise: u32,
    /// Failures in a row that take it out. Default 3.
    pub fall: u32,
    /// How long one probe may take (connect to response head). Default 2 s.
    pub timeout: Duration,
    /// Probe this port instead of the server's. Default the server's.
    pub port: Option<u16>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval: Duration::from_secs(5),
            path: "/".into(),
            status: 200..=399,
            rise: 2,
            fall: 3,
            timeout: Duration::from_secs(2),
            port: None,
        }
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("timed out")]
    Timeout,
    #[error("status {0}")]
    Status(u16),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("{0}")]
    Request(#[from] http::Error),
}

/// Probes `group`'s servers until the group is dropped (its snapshot was
/// replaced).
pub(crate) async fn run(group: Weak<UpstreamGroup>, check: HealthCheck) {
    let mut streaks: Vec<(u32, u32)> = Vec::new();
    let mut tick = tokio::time::interval(check.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(group) = group.upgrade() else { return };
        let peers: Vec<Arc<Peer>> = group.peers().cloned().collect();
        streaks.resize(peers.len(), (0, 0));
        let dns = group.resolve_interval();
        let results =
            futures_util::future::join_all(peers.iter().map(|p| probe(p, &check, dns))).await;
        for ((peer, result), (ok, bad)) in peers.iter().zip(results).zip(streaks.iter_mut()) {
            match result {
                Ok(()) => {
                    *ok += 1;
                    *bad = 0;
                    if !peer.is_healthy() && *ok >= check.rise {
                        peer.set_healthy(true);
                        tracing::info!(
                            group = group.name(),
                            upstream = %peer.authority(),
                            "health check passed {ok} times: server is up"
                        );
                    }
                }
                Err(e) => {
                    *bad += 1;
                    *ok = 0;
                    if peer.is_healthy() && *bad >= check.fall {
                        peer.set_healthy(false);
                        tracing::warn!(
                            group = group.name(),
                            upstream = %peer.authority(),
                            "health check failed {bad} times ({e}): server is down"
                        );
                    }
                }
            }
        }
    }
}

async fn probe(peer: &Peer, check: &HealthCheck, dns: Duration) -> Result<(), ProbeError> {
    let host = peer.authority().host();
    let port = check
        .port
        .or_else(|| peer.authority().port_u16())
        .unwrap_or(80);
    let attempt = async {
        let ips = super::dns::lookup(host, dns).await?;
        let addrs: Vec<std::net::SocketAddr> = ips.iter().map(|ip| (*ip, port).into()).collect();
        let tcp = tokio::net::TcpStream::connect(&addrs[..]).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let req = Request::get(check.path.as_str())
            .header(http::header::HOST, peer.authority().as_str())
            .header(http::header::USER_AGENT, "rpx-health-check")
            .body(Empty::<Bytes>::new())?;
        let res = send.send_request(req).await?;
        let status = res.status().as_u16();
        if check.status.contains(&status) {
            Ok(())
        } else {
            Err(ProbeError::Status(status))
        }
    };
    tokio::time::timeout(check.timeout, attempt)
        .await
        .unwrap_or(Err(ProbeError::Timeout))
}
