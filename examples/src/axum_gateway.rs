//! An axum application behind rpx-core's location routing, next to a
//! proxied backend, with tower-http's layers in the same stack: what
//! `examples/axum_gateway.rs` serves and its test drives.
//!
//! ```text
//! Rescue (ProxyError → 502, 404 … pages)
//!   └ TraceLayer, CompressionLayer          (tower-http, unchanged)
//!       └ LocationRouter                    (nginx's location rules)
//!           ├ "/api/"  → ProxyService       (streams to the backend, prefix stripped)
//!           └ fallback → axum::Router       ("/", "/events": server-sent events)
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures_util::{StreamExt, TryFutureExt};
use http::{Request, Response};
use rpx_core::conn::{ConnInfo, ConnInfoLayer, Scheme};
use rpx_core::error::{ProxyError, RescueLayer};
use rpx_core::location::{LocationRouter, MatchKind};
use rpx_core::proxy::{ProxyBody, ProxyService};
use rpx_core::server::{RequestBody, Served, ServedResponse};
use tokio::sync::broadcast;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

/// One route of the gateway: proxied or axum's, answering with axum's body
/// type (it boxes whatever it is given, once per response).
type Route = BoxCloneSyncService<Request<RequestBody>, Response<Body>, ProxyError>;

/// The gateway's service, and the sender of the events `/events` streams.
pub struct Gateway<S> {
    /// What `rpx_core::server::serve` runs.
    pub service: S,
    /// Each message sent here is one `data:` event to every `/events`
    /// client; the stream ends when every sender is dropped.
    pub events: broadcast::Sender<String>,
}

/// Builds the gateway: `/api/` proxied to `backend` with the prefix
/// stripped, everything else answered by the axum app.
///
/// # Errors
/// A bad backend URL or location pattern.
pub fn gateway(
    backend: SocketAddr,
) -> Result<Gateway<impl Served>, Box<dyn std::error::Error + Send + Sync>> {
    let api = ProxyService::builder(format!("http://{backend}/"))
        .location(MatchKind::Prefix, "/api/")
        .set_header("X-Forwarded-For", "$proxy_add_x_forwarded_for")
        .set_header("X-Forwarded-Proto", "$scheme")
        .build()?;
    let api = ServiceExt::<Request<RequestBody>>::map_response(api, |res: Response<ProxyBody>| {
        res.map(Body::new)
    });

    let (events, _) = broadcast::channel(16);
    let app = axum::Router::new()
        .route("/", get(|| async { "the app itself answers\n" }))
        .route("/events", get(stream_events))
        .with_state(events.clone());
    // axum's errors are `Infallible`; the router's are `ProxyError`.
    let app = ServiceExt::<Request<RequestBody>>::map_err(app, |e: Infallible| match e {});

    let locations = LocationRouter::builder()
        .route("/api/", Route::new(api))
        .fallback(Route::new(app))?;
    let service = ServiceBuilder::new()
        // Errors (502 when the backend is down, 404, 400 for a bad path)
        // become nginx's pages here, outermost, so the layers below see them
        // as errors.
        .layer(RescueLayer)
        .layer(TraceLayer::new_for_http())
        .layer(CompressionLayer::new())
        .service(locations);
    Ok(Gateway { service, events })
}

/// `/events`: server-sent events, one per message, each sent as it comes.
async fn stream_events(State(events): State<broadcast::Sender<String>>) -> impl IntoResponse {
    let stream = tokio_stream(events.subscribe())
        .map(|data| Ok::<_, Infallible>(Bytes::from(format!("data: {data}\n\n"))));
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
}

/// The messages of `rx` as a stream, until its senders are gone.
fn tokio_stream(
    rx: broadcast::Receiver<String>,
) -> impl futures_util::Stream<Item = String> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(msg) => return Some((msg, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// Serves `service` with hyper directly instead of rpx's server: each
/// connection's [`ConnInfo`] is stamped on its requests by
/// [`ConnInfoLayer`], so `$remote_addr` (and `X-Forwarded-For`) is the real
/// client, not the `127.0.0.1` a request without it reads as.
pub async fn serve_with_hyper<S: Served>(listener: tokio::net::TcpListener, service: S) {
    while let Ok((stream, peer)) = listener.accept().await {
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let info = ConnInfo::new(peer, local, local, Scheme::Http);
        let svc = ConnInfoLayer::new(info).layer(service.clone());
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let res = svc.clone().oneshot(req.map(RequestBody::from));
            res.map_ok(ServedResponse::into_response)
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}
