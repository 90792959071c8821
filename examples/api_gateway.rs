//! An application that routes `/api/` to a backend through rpx-core and
//! answers everything else with its own handler.
//!
//! Run: `cargo run -p rpx-examples --example api_gateway`, then
//! `curl http://127.0.0.1:PORT/api/users` and `curl http://127.0.0.1:PORT/`.

use http::{Request, Response};
use rpx_core::error::{ProxyError, RescueLayer};
use rpx_core::location::{LocationRouter, MatchKind};
use rpx_core::proxy::ProxyService;
use rpx_core::server::RequestBody;
use rpx_core::RpxBody;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder};

type Route = BoxCloneSyncService<Request<RequestBody>, Response<RpxBody>, ProxyError>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = rpx_examples::demo_backend().await?;

    // `/api/` → the backend, with the prefix stripped (proxy_pass with a URI
    // part) and the client's address passed on.
    let api = ProxyService::builder(format!("http://{backend}/"))
        .location(MatchKind::Prefix, "/api/")
        .set_header("X-Forwarded-For", "$proxy_add_x_forwarded_for")
        .set_header("X-Forwarded-Proto", "$scheme")
        .build()?;

    // Everything else: the application's own handler.
    let app = service_fn(|req: Request<RequestBody>| async move {
        let text = format!("the app itself answers {}\n", req.uri().path());
        Ok::<_, ProxyError>(Response::new(RpxBody::from(text)))
    });

    let router = LocationRouter::builder()
        .route("/api/", Route::new(api))
        .fallback(Route::new(app))?;
    // Errors (502 when the backend is down, 413, …) become responses here.
    let service = ServiceBuilder::new().layer(RescueLayer).service(router);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("try: curl http://{addr}/api/users   and   curl http://{addr}/");
    rpx_core::server::serve(listener, service, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
