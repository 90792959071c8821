//! Bridging an upgraded connection (WebSocket and other `Upgrade`s).

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::h1::Io;

/// Waits for the client's side to finish switching protocols, passes on
/// what the upstream sent past its 101 head, then copies bytes both ways
/// until either side closes.
pub(crate) async fn bridge(client: OnUpgrade, upstream: (Io, Bytes), name: String) {
    let (mut upstream, early) = upstream;
    let client = match client.await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(upstream = %name, error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    if !early.is_empty() {
        if let Err(e) = client.write_all(&early).await {
            tracing::debug!(upstream = %name, error = %e, "upgraded connection ended");
            return;
        }
    }
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => {
            tracing::debug!(upstream = %name, bytes_up = up, bytes_down = down, "upgraded connection closed")
        }
        Err(e) => {
            tracing::debug!(upstream = %name, error = %e, "upgraded connection ended")
        }
    }
}
