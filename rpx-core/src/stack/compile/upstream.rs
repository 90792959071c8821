//! `upstream` groups and `proxy_pass`: balancing, health, keep-alive, timeouts, retries, upstream TLS.

use super::*;

impl Compiler {
    /// The level's `proxy_cookie_domain`, `proxy_cookie_path` and
    /// `proxy_cookie_flags`, compiled.
    fn cookie_rules(&mut self, s: &Settings) -> crate::headers::cookie::CookieRules {
        use crate::headers::cookie::{CookieFlags, CookieRewrite, CookieRules};
        let mut rewrites = |lines: &Option<Vec<Spanned<Vec<String>>>>, name: &str, path: bool| {
            let mut out = Vec::new();
            for l in lines.iter().flatten() {
                let made = match l.value.as_slice() {
                    [from, to] if path => CookieRewrite::path(from, to, &self.scope),
                    [from, to] => CookieRewrite::domain(from, to, &self.scope),
                    [other] => {
                        self.err(&l.pos, format!("{name}: invalid parameter \"{other}\""));
                        continue;
                    }
                    _ => continue,
                };
                match made {
                    Ok(r) => out.push(r),
                    Err(e) => self.err(&l.pos, format!("{name}: {e}")),
                }
            }
            out
        };
        let domain = rewrites(&s.proxy_cookie_domain, "proxy_cookie_domain", false);
        let path = rewrites(&s.proxy_cookie_path, "proxy_cookie_path", true);
        let mut flags = Vec::new();
        for l in s.proxy_cookie_flags.iter().flatten() {
            let words: Vec<&str> = l.value.iter().map(String::as_str).collect();
            match CookieFlags::parse(&words) {
                Ok(f) => flags.push(f),
                Err(e) => self.err(&l.pos, format!("proxy_cookie_flags: {e}")),
            }
        }
        CookieRules::new(domain, path, flags)
    }

    /// The level's `resolver`, made once per distinct setting.
    fn resolver(&mut self, s: &Settings) -> Option<crate::upstream::Resolver> {
        let r = s.resolver.as_ref()?;
        let mut spec = r.value.clone();
        spec.timeout = s
            .resolver_timeout
            .unwrap_or(crate::upstream::DEFAULT_RESOLVER_TIMEOUT);
        if let Some(made) = self.resolvers.iter().find(|m| *m.spec() == spec) {
            return Some(made.clone());
        }
        match crate::upstream::Resolver::new(&spec) {
            Ok(made) => {
                self.resolvers.push(made.clone());
                Some(made)
            }
            Err(e) => {
                self.err(&r.pos, e.to_string());
                None
            }
        }
    }

    pub(super) fn groups(&mut self, config: &Config, previous: Option<&Snapshot>) {
        for u in &config.upstreams {
            for s in &u.servers {
                if !(1..=MAX_WEIGHT).contains(&s.weight) {
                    self.errors.push(
                        ConfigError::new(
                            s.pos.clone(),
                            format!("weight={} is out of range", s.weight),
                        )
                        .hint(format!("weights are relative: use 1 to {MAX_WEIGHT}")),
                    );
                }
            }
            let prev = previous.and_then(|p| p.groups.iter().find(|g| g.name() == u.name));
            if let Some(g) = self.group(u, prev) {
                let servers: Vec<String> = u
                    .servers
                    .iter()
                    .map(|s| format!("{} weight={}", s.addr, s.weight))
                    .collect();
                self.summary
                    .push(format!("upstream {}: {}", u.name, servers.join(", ")));
                if self.groups.insert(u.name.clone(), Arc::new(g)).is_some() {
                    self.err(&u.pos, format!("duplicate upstream \"{}\"", u.name));
                }
            }
        }
    }

    /// One group: its servers, method and connection settings.
    pub(super) fn group(
        &mut self,
        u: &crate::config::UpstreamConfig,
        previous: Option<&Arc<UpstreamGroup>>,
    ) -> Option<UpstreamGroup> {
        use crate::config::BalanceConfig;
        use crate::upstream::{KeepAlive, Method, ServerSpec};
        let method = match u.balance.as_ref().map(|b| (&b.value, &b.pos)) {
            None => Method::RoundRobin,
            Some((BalanceConfig::LeastConn, _)) => Method::LeastConn,
            Some((BalanceConfig::IpHash, _)) => Method::IpHash,
            Some((BalanceConfig::Random { two: false }, _)) => Method::Random,
            Some((BalanceConfig::Random { two: true }, _)) => Method::RandomTwo,
            Some((BalanceConfig::Hash { key, consistent }, pos)) => {
                match Template::parse_in(key, &self.scope) {
                    Ok(t) if *consistent => Method::Consistent(t),
                    Ok(t) => Method::Hash(t),
                    Err(e) => {
                        self.err(pos, format!("hash: {e}"));
                        return None;
                    }
                }
            }
        };
        let defaults = KeepAlive::default();
        let mut b = UpstreamGroup::builder(u.name.clone())
            .method(method)
            .keepalive(KeepAlive {
                idle_per_server: u.keepalive.map_or(defaults.idle_per_server, |n| n as usize),
                timeout: u.keepalive_timeout.unwrap_or(defaults.timeout),
                requests: u.keepalive_requests.unwrap_or(defaults.requests),
                time: u.keepalive_time.unwrap_or(defaults.time),
            });
        if let Some(h) = &u.health_check {
            let h = &h.value;
            b = b.health_check(crate::upstream::HealthCheck {
                interval: h.interval,
                path: h.path.clone(),
                status: h.status.0..=h.status.1,
                rise: h.rise,
                fall: h.fall,
                timeout: h.timeout,
                port: h.port,
            });
        }
        if let Some(d) = u.resolve_interval {
            b = b.resolve_interval(d.max(Duration::from_millis(10)));
        }
        if let Some(prev) = previous {
            b = b.previous(prev.clone());
        }
        for s in &u.servers {
            if u.resolve_strict {
                let host = s.addr.rsplit_once(':').map_or(s.addr.as_str(), |h| h.0);
                if let Err(e) = crate::upstream::dns::resolve_blocking(host) {
                    self.err(
                        &s.pos,
                        format!("upstream server {host:?} does not resolve: {e} (resolve_strict)"),
                    );
                }
            }
            b = b.server(ServerSpec {
                addr: s.addr.clone(),
                weight: s.weight.clamp(1, MAX_WEIGHT),
                max_fails: s.max_fails,
                fail_timeout: s.fail_timeout,
                backup: s.backup,
                down: s.down,
                max_conns: s.max_conns,
            });
        }
        match b.build() {
            Ok(g) => Some(g),
            Err(e) => {
                let pos = match &e {
                    crate::upstream::GroupError::Server(a) => u
                        .servers
                        .iter()
                        .find(|s| &s.addr == a)
                        .map_or(&u.pos, |s| &s.pos),
                    _ => &u.pos,
                };
                let pos = pos.clone();
                self.err(&pos, e);
                None
            }
        }
    }

    pub(super) fn proxy(
        &mut self,
        loc: &LocationConfig,
        url: &crate::config::Spanned<String>,
        s: &Settings,
        server_name: &Arc<str>,
    ) -> Action {
        if loc.kind == MatchKind::Named
            && url
                .value
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('/'))
        {
            // nginx's rule: a named location has no path to replace.
            self.err(
                &url.pos,
                format!(
                    "proxy_pass cannot have a URI part in a named location: {:?}",
                    url.value
                ),
            );
            return Action::NotFound;
        }
        let defaults = Timeouts::default();
        let mut b = ProxyService::builder(url.value.clone())
            .pools(&self.pools)
            .location(loc.kind, loc.pattern.clone())
            .groups(self.groups.clone())
            .server_name(server_name.clone())
            .variables(self.scope.clone())
            .resolver(self.resolver(s))
            .cookies(self.cookie_rules(s))
            .timeouts(Timeouts {
                connect: s.proxy_connect_timeout.or(defaults.connect),
                read: s.proxy_read_timeout.or(defaults.read),
                send: s.proxy_send_timeout.or(defaults.send),
                client_body: s.client_body_timeout.or(defaults.client_body),
            });
        b = b.retry(self.retry_policy(s));
        if let Some(v) = &s.proxy_http_version {
            b = b.http_version(match v.value {
                ProxyHttpVersion::Http2 => UpstreamVersion::Http2,
                ProxyHttpVersion::Http11 => UpstreamVersion::Http1,
                ProxyHttpVersion::Http10 => {
                    self.warn(
                        &v.pos,
                        "\"proxy_http_version 1.0\": rpx speaks HTTP/1.1 with keep-alive to upstreams (or 2)",
                    );
                    UpstreamVersion::Http1
                }
            });
        }
        for h in s.proxy_set_header.iter().flatten() {
            b = b.set_header(h.name.clone(), h.value.clone());
        }
        let buffer = s.client_body_buffer_size.unwrap_or(16 * 1024);
        b = b.request_buffering(
            s.proxy_request_buffering
                .unwrap_or(false)
                .then(|| usize::try_from(buffer).unwrap_or(usize::MAX)),
        );
        b = b
            .pass_request_body(s.proxy_pass_request_body.unwrap_or(true))
            .pass_request_headers(s.proxy_pass_request_headers.unwrap_or(true));
        b = b.upgrades(match s.websocket.unwrap_or(Upgrades::Always) {
            Upgrades::Always => true,
            Upgrades::Off => false,
            Upgrades::WhenForwarded => s
                .proxy_set_header
                .iter()
                .flatten()
                .any(|h| h.name.eq_ignore_ascii_case("upgrade")),
        });
        for h in s.proxy_hide_header.iter().flatten() {
            b = b.hide_header(h.value.clone());
        }
        for h in s.proxy_pass_header.iter().flatten() {
            b = b.pass_header(h.value.clone());
        }
        b = b.tls(UpstreamTls {
            verify: s.proxy_ssl_verify.unwrap_or(true),
            trusted: s
                .proxy_ssl_trusted_certificate
                .as_ref()
                .map(|f| f.value.clone().into()),
            name: s.proxy_ssl_name.clone(),
            server_name: s.proxy_ssl_server_name.unwrap_or(true),
            client_cert: match (&s.proxy_ssl_certificate, &s.proxy_ssl_certificate_key) {
                (Some(c), Some(k)) => Some((c.value.clone().into(), k.value.clone().into())),
                (Some(c), None) => {
                    self.err(
                        &c.pos,
                        "proxy_ssl_certificate needs proxy_ssl_certificate_key",
                    );
                    None
                }
                _ => None,
            },
            session_reuse: s.proxy_ssl_session_reuse.unwrap_or(true),
        });
        if let Some(r) = &s.proxy_redirect {
            let redirect = match &r.value {
                RedirectConfig::Default => ProxyRedirect::Default,
                RedirectConfig::Off => ProxyRedirect::Off,
                RedirectConfig::Rules(rules) => {
                    let mut out = Vec::new();
                    for (from, to) in rules {
                        match Template::parse_in(to, &self.scope) {
                            Ok(to) => out.push(RedirectRule {
                                from: from.clone(),
                                to,
                            }),
                            Err(e) => self.err(&r.pos, format!("proxy_redirect: {e}")),
                        }
                    }
                    ProxyRedirect::Rules(out)
                }
            };
            b = b.redirect(redirect);
        }
        match b.build() {
            Ok(p) => Action::Proxy(p),
            Err(e) => {
                // Header errors belong to the header rule; the URL to proxy_pass.
                let pos = match &e {
                    crate::proxy::ProxyBuildError::Header(_) => s
                        .proxy_set_header
                        .as_ref()
                        .and_then(|v| v.first())
                        .map_or(&url.pos, |h| &h.pos),
                    crate::proxy::ProxyBuildError::Target(_) => &url.pos,
                    crate::proxy::ProxyBuildError::Tls(_) => s
                        .proxy_ssl_trusted_certificate
                        .as_ref()
                        .or(s.proxy_ssl_certificate.as_ref())
                        .map_or(&url.pos, |f| &f.pos),
                };
                let pos = pos.clone();
                self.err(&pos, e);
                Action::NotFound
            }
        }
    }

    /// `proxy_next_upstream*` of a location.
    pub(super) fn retry_policy(&mut self, s: &Settings) -> crate::upstream::RetryPolicy {
        use crate::upstream::{NextUpstream, RetryPolicy};
        let next = match &s.proxy_next_upstream {
            None => NextUpstream::default(),
            Some(n) => NextUpstream::parse(&n.value).unwrap_or_else(|e| {
                self.err(&n.pos, e);
                NextUpstream::default()
            }),
        };
        RetryPolicy {
            next,
            tries: s.proxy_next_upstream_tries.unwrap_or(0),
            timeout: s.proxy_next_upstream_timeout.filter(|t| !t.is_zero()),
        }
    }
}
