//! Upstream groups: balancing, passive and active health, retries and DNS.
//!
//! | module | job |
//! |---|---|
//! | `peer` | one server's settings and lock-free live counters (active requests, failures) |
//! | `balance` | the methods: smooth weighted round robin, least_conn, ip_hash, hash, consistent hash, random, two choices |
//! | `ring` | the ketama ring of `hash … consistent` |
//! | `group` | primaries and backups, and the pick of one attempt |
//! | `retry` | `proxy_next_upstream` as a compiled policy |
//! | `health` | active HTTP health checks, a task per group |
//! | `dns` | server names resolved on a schedule; a hosts-style override |
//! | `resolver` | nginx's `resolver`: DNS servers asked at request time (hickory) |
//!
//! A group is compiled once (weights, the round-robin order and the hash
//! ring are precomputed); a pick reads atomics only.

mod balance;
pub mod dns;
mod group;
mod hash;
mod health;
mod peer;
mod resolver;
pub(crate) mod retry;
mod ring;

pub use balance::{Method, PickInput};
pub use group::{GroupError, KeepAlive, Picked, Tried, UpstreamGroup, UpstreamGroupBuilder};
pub use health::HealthCheck;
pub use peer::{Peer, ServerSpec};
pub use resolver::{
    Resolver, ResolverError, ResolverSpec, DEFAULT_TIMEOUT as DEFAULT_RESOLVER_TIMEOUT,
};
pub use retry::{NextUpstream, NextUpstreamError, RetryPolicy};
