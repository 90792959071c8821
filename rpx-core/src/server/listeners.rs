//! The set of listening sockets, following the config across reloads: new
//! addresses are bound, unchanged ones keep their socket (no moment of
//! refusal), removed ones stop accepting and drain their connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{serve_with_cell, ServeOptions, TlsCell};

/// An address that could not be bound; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The configured address.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

struct Running {
    bound: SocketAddr,
    tls: TlsCell,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// The listeners of a running proxy, all serving one service (typically
/// [`crate::Rpx`], whose snapshot a reload swaps).
///
/// ```no_run
/// # async fn run(rpx: rpx_core::Rpx) -> Result<(), rpx_core::server::BindError> {
/// use std::time::Duration;
/// let mut set = rpx_core::server::ListenerSet::new(rpx.clone(), Duration::from_secs(30));
/// let bound = set.apply(&rpx.snapshot().listeners().to_vec()).await?;
/// // … after a reload: rpx.swap(new_snapshot); set.apply(new_specs).await?;
/// set.shutdown().await;
/// # let _ = bound; Ok(()) }
/// ```
pub struct ListenerSet<S> {
    service: S,
    running: HashMap<SocketAddr, Running>,
    shutdown_timeout: Duration,
    draining: Vec<JoinHandle<std::io::Result<()>>>,
}

impl<S> ListenerSet<S>
where
    S: super::Served,
{
    /// An empty set serving `service`; a stop waits `shutdown_timeout` for
    /// requests in flight.
    pub fn new(service: S, shutdown_timeout: Duration) -> Self {
        ListenerSet {
            service,
            running: HashMap::new(),
            shutdown_timeout,
            draining: Vec::new(),
        }
    }

    /// Makes the listeners match `specs`. New addresses are bound first, so
    /// a bind failure changes nothing; then kept ones get their new TLS
    /// settings and removed ones stop accepting and drain in the background.
    /// Returns `(configured, bound)` for every address now served.
    ///
    /// # Errors
    /// The first address that cannot be bound.
    pub async fn apply(
        &mut self,
        specs: &[ListenerSpec],
    ) -> Result<Vec<(SocketAddr, SocketAddr)>, BindError> {
        let mut fresh = Vec::new();
        for spec in specs.iter().filter(|s| !self.running.contains_key(&s.addr)) {
            let listener = TcpListener::bind(spec.addr)
                .await
                .map_err(|source| BindError {
                    addr: spec.addr,
                    source,
                })?;
            fresh.push((spec, listener));
        }
        for spec in specs {
            if let Some(r) = self.running.get(&spec.addr) {
                r.tls.store(spec.tls.clone().map(Arc::new));
            }
        }
        let wanted: Vec<SocketAddr> = specs.iter().map(|s| s.addr).collect();
        let removed: Vec<SocketAddr> = self
            .running
            .keys()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        for addr in removed {
            if let Some(r) = self.running.remove(&addr) {
                let _ = r.stop.send(());
                self.draining.push(r.task);
                tracing::info!(listen = %addr, "listener removed; draining its connections");
            }
        }
        for (spec, listener) in fresh {
            let bound = listener.local_addr().unwrap_or(spec.addr);
            let tls: TlsCell =
                Arc::new(arc_swap::ArcSwapOption::new(spec.tls.clone().map(Arc::new)));
            let (stop, stopped) = oneshot::channel::<()>();
            let opts = spec.options(self.shutdown_timeout);
            let task = tokio::spawn(serve_with_cell(
                listener,
                self.service.clone(),
                opts,
                tls.clone(),
                async move {
                    let _ = stopped.await;
                },
            ));
            self.running.insert(
                spec.addr,
                Running {
                    bound,
                    tls,
                    stop,
                    task,
                },
            );
        }
        self.draining.retain(|t| !t.is_finished());
        Ok(specs
            .iter()
            .filter_map(|s| self.running.get(&s.addr).map(|r| (s.addr, r.bound)))
            .collect())
    }

    /// The `(configured, bound)` addresses being served.
    pub fn bound(&self) -> Vec<(SocketAddr, SocketAddr)> {
        self.running.iter().map(|(a, r)| (*a, r.bound)).collect()
    }

    /// Stops accepting everywhere and waits for requests in flight (each
    /// listener up to the shutdown timeout).
    pub async fn shutdown(mut self) {
        let mut tasks: Vec<_> = self.draining.drain(..).collect();
        for (_, r) in self.running.drain() {
            let _ = r.stop.send(());
            tasks.push(r.task);
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// An address the snapshot wants bound.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// The socket address.
    pub addr: SocketAddr,
    /// Client header timeout for connections on it.
    pub header_timeout: Duration,
    /// Idle keep-alive timeout.
    pub keepalive_timeout: Duration,
    /// Requests one client connection carries (`keepalive_requests`).
    pub keepalive_requests: u32,
    /// How long one client connection carries requests (`keepalive_time`).
    pub keepalive_time: Duration,
    /// TLS termination, for `ssl` listeners.
    pub tls: Option<super::TlsListener>,
    /// What request heads may be on it.
    pub head: super::HeadLimits,
    /// `send_timeout` for its connections.
    pub send_timeout: Duration,
}

impl ListenerSpec {
    /// The options [`serve_with_cell`] serves it with (TLS excepted: that
    /// comes from the listener's cell).
    pub fn options(&self, shutdown_timeout: Duration) -> ServeOptions {
        ServeOptions {
            header_timeout: self.header_timeout,
            keepalive_timeout: self.keepalive_timeout,
            keepalive_requests: self.keepalive_requests,
            keepalive_time: self.keepalive_time,
            shutdown_timeout,
            listen: Some(self.addr),
            tls: None,
            head: self.head,
            send_timeout: self.send_timeout,
            ..ServeOptions::default()
        }
    }
}
