//! `limit_req_zone` / `limit_req` and `limit_conn_zone` / `limit_conn`:
//! zones built once per config (carried over from the config being
//! replaced), limits per level.

use super::*;
use crate::limit::conn::{ConnLimit, ConnLimits, ConnZone};
use crate::limit::rate::{RateLimit, RateLimits, RateZone, ZoneKey};

impl Compiler {
    /// Every `limit_req_zone`, keeping the buckets of `previous`'s zone of
    /// the same name.
    pub(super) fn rate_zones(&mut self, config: &Config, previous: Option<&Snapshot>) {
        for z in &config.limit_req_zones {
            let Some(key) = self.zone_key(&z.key, &z.pos) else {
                continue;
            };
            let mut zone = match RateZone::new(&z.name, key, &z.key, z.size, &z.rate) {
                Ok(zone) => zone,
                Err(e) => {
                    self.err(&z.pos, e);
                    continue;
                }
            };
            if let Some(old) = previous.and_then(|p| p.rate_zones.get(&z.name)) {
                if let Err(e) = zone.carry_over(old) {
                    self.err(&z.pos, e);
                }
            }
            self.rate_zones.insert(z.name.clone(), Arc::new(zone));
        }
    }

    /// A zone's key: `$binary_remote_addr` as bytes, or a template (in
    /// which `$binary_remote_addr` is as good as the text form).
    fn zone_key(&mut self, key: &str, pos: &SourcePos) -> Option<ZoneKey> {
        if key == "$binary_remote_addr" {
            return Some(ZoneKey::BinaryRemoteAddr);
        }
        let scope = &self.scope;
        let parsed = Template::parse_with(key, |n| {
            scope
                .get(n)
                .or_else(|| (n == "binary_remote_addr").then_some(Var::RemoteAddr))
        });
        match parsed {
            Ok(t) => Some(ZoneKey::Template(t)),
            Err(e) => {
                self.err(pos, e);
                None
            }
        }
    }

    /// Every `limit_conn_zone`; one of `previous` with the same name, key
    /// and size is kept, so requests in progress across a reload count.
    pub(super) fn conn_zones(&mut self, config: &Config, previous: Option<&Snapshot>) {
        for z in &config.limit_conn_zones {
            if let Some(old) = previous.and_then(|p| p.conn_zones.get(&z.name)) {
                if old.0 != z.key {
                    let msg = format!(
                        "limit_conn_zone \"{}\" uses the \"{}\" key while previously it used the \"{}\" key",
                        z.name, z.key, old.0
                    );
                    self.err(&z.pos, msg);
                    continue;
                }
                if old.1.size() == z.size {
                    self.conn_zones.insert(z.name.clone(), old.clone());
                    continue;
                }
            }
            let Some(key) = self.zone_key(&z.key, &z.pos) else {
                continue;
            };
            match ConnZone::new(&z.name, key, z.size) {
                Ok(zone) => {
                    self.conn_zones
                        .insert(z.name.clone(), (z.key.clone(), Arc::new(zone)));
                }
                Err(e) => self.err(&z.pos, e),
            }
        }
    }

    /// A level's `limit_conn`s, with its status, dry run and log level.
    pub(super) fn conn_limits(
        &mut self,
        s: &Settings,
        server_name: &Arc<str>,
    ) -> Option<ConnLimits> {
        let configured = s.limit_conn.as_ref().filter(|l| !l.is_empty())?;
        let mut limits = Vec::with_capacity(configured.len());
        for l in configured {
            let Some((_, zone)) = self.conn_zones.get(&l.zone) else {
                self.err(&l.pos, format!("unknown limit_conn_zone \"{}\"", l.zone));
                continue;
            };
            limits.push(ConnLimit::new(zone.clone(), l.max));
        }
        let status = refusal_status(s.limit_conn_status);
        let dry_run = s.limit_conn_dry_run.unwrap_or(false);
        let level = log_level(s.limit_conn_log_level);
        Some(ConnLimits::new(limits, status, dry_run, server_name.clone()).log_level(level))
    }

    /// A level's `limit_req`s, with its status, dry run and log level.
    pub(super) fn rate_limits(
        &mut self,
        s: &Settings,
        server_name: &Arc<str>,
    ) -> Option<RateLimits> {
        let configured = s.limit_req.as_ref().filter(|l| !l.is_empty())?;
        let mut limits = Vec::with_capacity(configured.len());
        for l in configured {
            let Some(zone) = self.rate_zones.get(&l.zone) else {
                self.err(&l.pos, format!("unknown limit_req_zone \"{}\"", l.zone));
                continue;
            };
            limits.push(RateLimit::new(zone.clone(), l.burst, l.delay));
        }
        let status = refusal_status(s.limit_req_status);
        let level = log_level(s.limit_req_log_level);
        let dry_run = s.limit_req_dry_run.unwrap_or(false);
        Some(RateLimits::new(limits, status, dry_run, server_name.clone()).log_level(level))
    }
}

/// `limit_req_status` / `limit_conn_status`: 503 unless set.
fn refusal_status(code: Option<u16>) -> http::StatusCode {
    code.and_then(|c| http::StatusCode::from_u16(c).ok())
        .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE)
}

/// `limit_req_log_level` / `limit_conn_log_level` as `tracing`'s levels.
fn log_level(level: Option<ErrorLogLevel>) -> tracing::Level {
    level.map_or(tracing::Level::ERROR, ErrorLogLevel::tracing_level)
}
