//! Benchmarks of rpx.
//!
//! - `benches/routing.rs`: criterion micro-benchmarks of the per-request
//!   work (host match, location match, header rewrite, a whole in-memory
//!   request): `cargo bench -p rpx-benches`.
//! - `src/bin/origin.rs` and `load.sh`: the load comparison against nginx;
//!   see `README.md`.

#![forbid(unsafe_code)]
