//! A whole proxy from a TOML string: host routing, locations, headers.
//!
//! Run: `cargo run -p rpx-examples --example from_toml`, then follow the
//! printed `curl` lines.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = rpx_examples::demo_backend().await?;
    let config = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:0"
        server_name = "app.localhost"
        add_header = {{ "X-Frame-Options" = "DENY" }}

          [[server.location]]
          path = "/"
          proxy_pass = "http://{backend}"
          proxy_set_header = {{ Host = "$host", "X-Real-IP" = "$remote_addr" }}

          [[server.location]]
          path = "= /health"
          return = "200 ok"
        "#
    );
    let rpx = rpx_core::Rpx::from_toml(&config)?;
    for line in rpx.snapshot().summary() {
        println!("{line}");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!(
        "try: curl -H 'Host: app.localhost' http://{addr}/hello   and   curl http://{addr}/health"
    );
    let opts = rpx_core::server::ServeOptions {
        // Route by the configured address, as the rpx binary does.
        listen: Some("127.0.0.1:0".parse()?),
        ..Default::default()
    };
    rpx_core::server::serve_with(listener, rpx, opts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
