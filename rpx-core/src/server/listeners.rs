//! The set of listening sockets, following the config across reloads: new
//! addresses are bound, kept ones keep their socket (no moment of
//! refusal; one whose settings changed, TLS aside, gets a new accept loop
//! on it), removed ones stop accepting and drain their connections.

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
    /// The socket, open while its accept loop is replaced.
    socket: std::net::TcpListener,
    /// What it serves with; TLS is its cell's.
    spec: ListenerSpec,
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
    /// settings, those whose other settings changed a new accept loop on
    /// the same socket (the old one drains, as a removed one), and removed
    /// ones stop accepting and drain in the background.
    /// Returns `(configured, bound)` for every address now served.
    ///
    /// # Errors
    /// The first address that cannot be bound.
    pub async fn apply(
        &mut self,
        specs: &[ListenerSpec],
    ) -> Result<Vec<(SocketAddr, SocketAddr)>, BindError> {
        let mut fresh = Vec::new();
        for spec in specs {
            let socket = match self.running.get(&spec.addr) {
                None => bind(spec.addr).await,
                Some(r) if !r.spec.serves_like(spec) => r.socket.try_clone(),
                Some(_) => continue,
            };
            let failed = |source| BindError {
                addr: spec.addr,
                source,
            };
            let socket = socket.map_err(failed)?;
            let listener = socket
                .try_clone()
                .and_then(TcpListener::from_std)
                .map_err(failed)?;
            fresh.push((spec, socket, listener));
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
        for (spec, socket, listener) in fresh {
            if let Some(old) = self.running.remove(&spec.addr) {
                let _ = old.stop.send(());
                self.draining.push(old.task);
                tracing::info!(listen = %spec.addr, "listener settings changed; its connections so far drain");
            }
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
                    socket,
                    spec: spec.clone(),
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
    /// `listen … proxy_protocol`: connections start with a PROXY protocol
    /// header ([`ServeOptions::proxy_protocol`]).
    pub proxy_protocol: bool,
}

impl ListenerSpec {
    /// Whether `other` is served as this one is, TLS aside (a running
    /// listener's cell takes new TLS settings without a new accept loop).
    fn serves_like(&self, other: &ListenerSpec) -> bool {
        let key = |s: &ListenerSpec| {
            (
                s.header_timeout,
                s.keepalive_timeout,
                s.keepalive_requests,
                s.keepalive_time,
                s.head,
                s.send_timeout,
                s.proxy_protocol,
            )
        };
        key(self) == key(other)
    }

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
            proxy_protocol: self.proxy_protocol,
            ..ServeOptions::default()
        }
    }
}

/// A listening socket on `addr`, outside the runtime's reactor until an
/// accept loop takes a copy of it.
async fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    TcpListener::bind(addr).await?.into_std()
}
