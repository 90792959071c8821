//! An axum application and a proxied backend behind one rpx-core
//! `LocationRouter`, with tower-http's compression and tracing layers in
//! the same `ServiceBuilder`, served by `rpx_core::server::serve`.
//! The stack is built in `src/axum_gateway.rs`.
//!
//! Run: `cargo run -p rpx-examples --example axum_gateway`, then
//! `curl http://127.0.0.1:PORT/api/users`, `curl http://127.0.0.1:PORT/`
//! and `curl -N http://127.0.0.1:PORT/events` (an event a second).

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let backend = rpx_examples::demo_backend().await?;
    let gateway = rpx_examples::axum_gateway::gateway(backend)?;
    let events = gateway.events.clone();
    tokio::spawn(async move {
        for n in 1.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = events.send(format!("tick {n}"));
        }
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!(
        "try: curl http://{addr}/api/users   curl http://{addr}/   curl -N http://{addr}/events"
    );
    rpx_core::server::serve(listener, gateway.service, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
