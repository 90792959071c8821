//! Bridging an upgraded connection (WebSocket and other `Upgrade`s).

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Waits for both sides to finish switching protocols, then copies bytes
/// both ways until either side closes.
pub(crate) async fn bridge(client: OnUpgrade, upstream: OnUpgrade, name: String) {
    let (client, upstream) = tokio::join!(client, upstream);
    match (client, upstream) {
        (Ok(client), Ok(upstream)) => {
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((up, down)) => {
                    tracing::debug!(upstream = %name, bytes_up = up, bytes_down = down, "upgraded connection closed")
                }
                Err(e) => {
                    tracing::debug!(upstream = %name, error = %e, "upgraded connection ended")
                }
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::info!(upstream = %name, error = %e, "upgrade failed");
        }
    }
}
