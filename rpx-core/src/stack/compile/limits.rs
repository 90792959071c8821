//! `limit_req_zone` and `limit_req`: zones built once per config (their
//! buckets carried over from the config being replaced), limits per level.

use super::*;
use crate::limit::rate::{RateLimit, RateLimits, RateZone, ZoneKey};

impl Compiler {
    /// Every `limit_req_zone`, keeping the buckets of `previous`'s zone of
    /// the same name.
    pub(super) fn rate_zones(&mut self, config: &Config, previous: Option<&Snapshot>) {
        for z in &config.limit_req_zones {
            let key = if z.key == "$binary_remote_addr" {
                ZoneKey::BinaryRemoteAddr
            } else {
                // In a key, `$binary_remote_addr` is as good as the text form.
                let scope = &self.scope;
                let parsed = Template::parse_with(&z.key, |n| {
                    scope
                        .get(n)
                        .or_else(|| (n == "binary_remote_addr").then(|| Var::RemoteAddr))
                });
                match parsed {
                    Ok(t) => ZoneKey::Template(t),
                    Err(e) => {
                        self.err(&z.pos, e);
                        continue;
                    }
                }
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
        let status = s
            .limit_req_status
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
        let level = match s.limit_req_log_level {
            Some(ErrorLogLevel::Info | ErrorLogLevel::Notice) => tracing::Level::INFO,
            Some(ErrorLogLevel::Warn) => tracing::Level::WARN,
            _ => tracing::Level::ERROR,
        };
        let dry_run = s.limit_req_dry_run.unwrap_or(false);
        Some(RateLimits::new(limits, status, dry_run, server_name.clone()).log_level(level))
    }
}
