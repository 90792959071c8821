//! Listeners: addresses and their servers, TLS termination (certificates,
//! versions, ciphers, client certificates), HTTP/2, automatic certificates.

use super::*;

impl Compiler {
    /// One host table per distinct listen address, in first-seen order.
    pub(super) fn listeners(
        &mut self,
        config: &Config,
    ) -> Vec<((SocketAddr, HostTable), ListenerSpec)> {
        let mut order: Vec<SocketAddr> = Vec::new();
        let mut members: HashMap<SocketAddr, Vec<Member<'_>>> = HashMap::new();
        let mut specs: HashMap<SocketAddr, ListenerSpec> = HashMap::new();
        let mut ssl_of: HashMap<SocketAddr, bool> = HashMap::new();
        for (id, server) in config.servers.iter().enumerate() {
            let settings = server.settings.inherit(&config.settings);
            let listens: Vec<(SocketAddr, bool, &SourcePos)> = if server.listen.is_empty() {
                vec![(DEFAULT_LISTEN, false, &server.pos)]
            } else {
                server
                    .listen
                    .iter()
                    .map(|l| (l.addr, l.default_server, &l.pos))
                    .collect()
            };
            for (addr, default, pos) in listens {
                let ssl = server.listen.iter().any(|l| l.ssl && l.addr == addr);
                match ssl_of.get(&addr) {
                    Some(&other) if other != ssl => {
                        self.err(pos, format!("{addr} is used both with and without `ssl`"))
                    }
                    _ => {
                        ssl_of.insert(addr, ssl);
                    }
                }
                let list = members.entry(addr).or_default();
                if list.is_empty() {
                    order.push(addr);
                }
                if default && list.iter().any(|m| m.2) {
                    self.err(pos, format!("a duplicate default server for {addr}"));
                }
                list.push((id, &server.names, default));
                // The default server's settings are the listener's, as nginx
                // takes them before a request names its host.
                if default || !specs.contains_key(&addr) {
                    specs.insert(addr, listener_spec(addr, &settings));
                }
            }
        }
        self.realip_without_proxy_protocol(config, &members);
        let mut out = Vec::new();
        for addr in order {
            let entries: Vec<(usize, Vec<String>, bool)> = members[&addr]
                .iter()
                .map(|(id, names, d)| (*id, names.iter().map(|n| n.value.clone()).collect(), *d))
                .collect();
            let borrowed: Vec<(usize, &[String], bool)> = entries
                .iter()
                .map(|(id, n, d)| (*id, n.as_slice(), *d))
                .collect();
            let mut spec = specs[&addr].clone();
            if ssl_of.get(&addr).copied().unwrap_or(false) {
                spec.tls = self.tls_listener(config, addr, &members[&addr]);
            }
            spec.proxy_protocol = self.proxy_protocol(config, addr, &members[&addr]);
            match HostTable::build_with_ids(&borrowed) {
                Ok(table) => out.push(((addr, table), spec)),
                Err(e) => {
                    let pos = config.servers[entries[0].0].pos.clone();
                    self.err(&pos, e);
                }
            }
        }
        out
    }

    /// Certificates, versions and client-certificate checking of one TLS
    /// listener, from the servers on it (the default server's settings
    /// decide versions, suites, sessions and client certificates, as in
    /// nginx, where SNI only switches the certificate).
    pub(super) fn tls_listener(
        &mut self,
        config: &Config,
        addr: SocketAddr,
        members: &[Member<'_>],
    ) -> Option<TlsListener> {
        let resolver = std::sync::Arc::new(CertResolver::new());
        let default_id = members.iter().find(|m| m.2).unwrap_or(&members[0]).0;
        for (id, names, default) in members {
            let server = &config.servers[*id];
            let s = server.settings.inherit(&config.settings);
            let is_default = *default || *id == default_id;
            if let Some(acme) = &server.acme {
                self.acme_certificate(server, acme, &s, &resolver, is_default);
                continue;
            }
            let (Some(cert), Some(key)) = (&s.ssl_certificate, &s.ssl_certificate_key) else {
                let pos = server
                    .listen
                    .iter()
                    .find(|l| l.ssl)
                    .map_or(&server.pos, |l| &l.pos);
                self.errors.push(
                    ConfigError::new(pos.clone(), "an ssl listener needs ssl_certificate and ssl_certificate_key")
                        .hint("point them at PEM files, e.g. certbot's live/<name>/fullchain.pem and privkey.pem"),
                );
                continue;
            };
            if cert.value.starts_with("$acme_") {
                self.errors.push(
                    ConfigError::new(
                        cert.pos.clone(),
                        format!("{} needs acme_certificate in the server", cert.value),
                    )
                    .hint("add acme_certificate ISSUER; naming an acme_issuer block"),
                );
                continue;
            }
            let names: Vec<&str> = names.iter().map(|n| n.value.as_str()).collect();
            if let Err(e) = resolver.add_files(
                &names,
                std::path::Path::new(&cert.value),
                std::path::Path::new(&key.value),
                is_default,
            ) {
                let pos = if matches!(e, crate::tls::TlsError::Mismatch { .. }) {
                    &key.pos
                } else {
                    &cert.pos
                };
                self.err(pos, e);
            } else if let Some(expiry) = {
                self.expiry(cert);
                crate::tls::load_certs(std::path::Path::new(&cert.value))
                    .ok()
                    .and_then(|c| c.first().and_then(crate::tls::cert_not_after))
            } {
                let expires = expiry
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                for n in &names {
                    metrics::gauge!("rpx_certificate_expiry_timestamp_seconds", "name" => n.to_string())
                        .set(expires);
                }
                self.summary.push(format!(
                    "certificate {} for {} expires {}",
                    cert.value,
                    names.join(" "),
                    crate::accesslog::time_iso8601(expiry)
                ));
            }
        }
        let s = config.servers[default_id]
            .settings
            .inherit(&config.settings);
        let versions = match &s.ssl_protocols {
            None => TlsVersions::default(),
            Some(p) => {
                let v = TlsVersions {
                    tls12: p.value.iter().any(|x| x == "TLSv1.2"),
                    tls13: p.value.iter().any(|x| x == "TLSv1.3"),
                };
                let old: Vec<&str> = p
                    .value
                    .iter()
                    .map(String::as_str)
                    .filter(|x| !matches!(*x, "TLSv1.2" | "TLSv1.3"))
                    .collect();
                if !old.is_empty() {
                    self.warn(
                        &p.pos,
                        format!(
                            "{} not offered: rpx speaks TLSv1.2 and TLSv1.3 only",
                            old.join(", ")
                        ),
                    );
                }
                if !v.tls12 && !v.tls13 {
                    self.err(
                        &p.pos,
                        "ssl_protocols lists no version rpx offers (TLSv1.2, TLSv1.3)",
                    );
                }
                v
            }
        };
        let client_auth = match (&s.ssl_verify_client, &s.ssl_client_certificate) {
            (None, _) => None,
            (Some(v), ca) => {
                let mode = match v.value.as_str() {
                    "off" => None,
                    "on" => Some(ClientAuthMode::Required),
                    "optional" => Some(ClientAuthMode::Optional),
                    "optional_no_ca" => Some(ClientAuthMode::OptionalNoCa),
                    other => {
                        self.err(&v.pos, format!("invalid ssl_verify_client {other:?}: use on, optional, optional_no_ca or off"));
                        None
                    }
                };
                match (mode, ca) {
                    (None, _) => None,
                    (Some(_), None) => {
                        self.err(&v.pos, "ssl_verify_client needs ssl_client_certificate");
                        None
                    }
                    (Some(mode), Some(ca)) => {
                        match ClientAuth::from_ca_file(std::path::Path::new(&ca.value), mode) {
                            Ok(a) => Some(a),
                            Err(e) => {
                                self.err(&ca.pos, e);
                                None
                            }
                        }
                    }
                }
            }
        };
        if resolver.is_empty() {
            return None;
        }
        let options = ServerTlsOptions {
            versions,
            tls12_suites: self.ciphers(&s, versions),
            prefer_server_ciphers: s.ssl_prefer_server_ciphers.unwrap_or(false),
            http2: self.http2(config, addr, members),
            session_tickets: s.ssl_session_tickets.unwrap_or(true),
            session_cache: s.ssl_session_cache.unwrap_or(DEFAULT_SESSION_CACHE),
        };
        match crate::tls::server_config(resolver.clone(), &options, client_auth.as_ref()) {
            Ok(config) => Some(TlsListener {
                config,
                resolver,
                client_auth,
                reload_interval: Duration::from_secs(10),
            }),
            Err(e) => {
                self.err(&config.servers[default_id].pos, e);
                None
            }
        }
    }

    /// The TLS 1.2 suites `ssl_ciphers` keeps; `None` for rustls' defaults
    /// (also after an error, which is reported here).
    pub(super) fn ciphers(
        &mut self,
        s: &Settings,
        versions: TlsVersions,
    ) -> Option<Vec<rustls::SupportedCipherSuite>> {
        let spec = s.ssl_ciphers.as_ref()?;
        let list = CipherList::parse(&spec.value);
        if !list.unmatched.is_empty() {
            self.warn(
                &spec.pos,
                format!(
                    "ssl_ciphers: no rustls equivalent for {}; ignored (rustls has ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2; TLS 1.3 suites are not chosen by ssl_ciphers)",
                    list.unmatched.join(", ")
                ),
            );
        }
        if list.tls12.is_empty() && versions.tls12 {
            self.errors.push(
                ConfigError::new(
                    spec.pos.clone(),
                    "ssl_ciphers leaves no TLS 1.2 suite rustls has, and TLSv1.2 is enabled",
                )
                .hint("add ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256, or offer TLSv1.3 only"),
            );
            return None;
        }
        Some(list.tls12)
    }

    /// Whether a TLS listener offers `h2`: `listen … http2` on the address
    /// (for every server on it, as nginx), or `http2 on` in a server on it.
    /// rustls chooses ALPN per listener, not per SNI name, so `http2 on` in
    /// one server offers HTTP/2 to all of them; that is said.
    pub(super) fn http2(
        &mut self,
        config: &Config,
        addr: SocketAddr,
        members: &[Member<'_>],
    ) -> bool {
        let by_listen = members.iter().any(|(id, _, _)| {
            config.servers[*id]
                .listen
                .iter()
                .any(|l| l.addr == addr && l.http2)
        });
        if by_listen {
            return true;
        }
        let on: Vec<bool> = members
            .iter()
            .map(|(id, _, _)| {
                let server = &config.servers[*id];
                server.settings.inherit(&config.settings).http2 == Some(true)
            })
            .collect();
        if !on.contains(&true) {
            return false;
        }
        for ((id, _, _), _) in members.iter().zip(&on).filter(|(_, on)| !**on) {
            let pos = config.servers[*id].pos.clone();
            self.warn(
                &pos,
                format!("HTTP/2 is offered to this server too: another server on {addr} has `http2 on`, and rpx negotiates HTTP/2 per listener"),
            );
        }
        true
    }

    /// Whether connections to `addr` start with a PROXY protocol header:
    /// `listen … proxy_protocol` in any server on it, as nginx takes the
    /// flag for the whole address (said for the servers without it).
    pub(super) fn proxy_protocol(
        &mut self,
        config: &Config,
        addr: SocketAddr,
        members: &[Member<'_>],
    ) -> bool {
        let on = |id: usize| {
            config.servers[id]
                .listen
                .iter()
                .any(|l| l.addr == addr && l.proxy_protocol)
        };
        if !members.iter().any(|m| on(m.0)) {
            return false;
        }
        for (id, _, _) in members.iter().filter(|m| !on(m.0)) {
            let server = &config.servers[*id];
            let pos = server
                .listen
                .iter()
                .find(|l| l.addr == addr)
                .map_or(&server.pos, |l| &l.pos)
                .clone();
            self.warn(
                &pos,
                format!("connections to {addr} must start with a PROXY protocol header for this server too: another server on {addr} has `listen … proxy_protocol`, which holds for the whole address (as nginx)"),
            );
        }
        true
    }

    /// `real_ip_header proxy_protocol` in a server none of whose addresses
    /// reads the header does nothing (as in nginx): said.
    fn realip_without_proxy_protocol(
        &mut self,
        config: &Config,
        members: &HashMap<SocketAddr, Vec<Member<'_>>>,
    ) {
        let pp_addrs: Vec<SocketAddr> = config
            .servers
            .iter()
            .flat_map(|s| s.listen.iter().filter(|l| l.proxy_protocol).map(|l| l.addr))
            .collect();
        for (id, server) in config.servers.iter().enumerate() {
            let s = server.settings.inherit(&config.settings);
            let Some(h) = s.real_ip_header.as_ref() else {
                continue;
            };
            if h.value != super::server::REAL_IP_PROXY_PROTOCOL
                || s.set_real_ip_from.as_ref().is_none_or(Vec::is_empty)
            {
                continue;
            }
            let served = members
                .iter()
                .any(|(addr, list)| pp_addrs.contains(addr) && list.iter().any(|m| m.0 == id));
            if !served {
                self.warn(
                    &h.pos,
                    "real_ip_header proxy_protocol: no address of this server has `listen … proxy_protocol`, so the client's address never changes",
                );
            }
        }
    }

    /// The ACME manager of the config: issuers carried over from the
    /// previous snapshot where unchanged.
    pub(super) fn acme_manager(
        &mut self,
        config: &Config,
        opts: &CompileOptions<'_>,
    ) -> Option<Arc<AcmeManager>> {
        if config.acme_issuers.is_empty() {
            for s in &config.servers {
                if let Some(a) = &s.acme {
                    self.errors.push(
                        ConfigError::new(
                            a.pos.clone(),
                            format!("no acme_issuer named \"{}\"", a.issuer),
                        )
                        .hint("define it: acme_issuer NAME { uri …; contact …; } (TOML: [acme])"),
                    );
                }
            }
            return None;
        }
        let previous = opts.previous.and_then(|p| p.acme.as_deref());
        match AcmeManager::new(&config.acme_issuers, opts.acme.clone(), previous) {
            Ok(m) => Some(Arc::new(m)),
            Err(errors) => {
                for (pos, e) in errors {
                    self.err(&pos, e);
                }
                None
            }
        }
    }

    /// A server whose certificate comes from ACME: its slot goes into the
    /// listener's resolver, which also answers tls-alpn-01 validations.
    pub(super) fn acme_certificate(
        &mut self,
        server: &ServerConfig,
        acme: &crate::config::AcmeCertificateConfig,
        s: &Settings,
        resolver: &CertResolver,
        default: bool,
    ) {
        let Some(manager) = self.acme.clone() else {
            return;
        };
        if let Some(cert) = s
            .ssl_certificate
            .as_ref()
            .filter(|c| !c.value.starts_with('$'))
        {
            self.warn(
                &cert.pos,
                format!("ssl_certificate {} is not used: the server's certificate comes from acme_certificate", cert.value),
            );
        }
        let names: Vec<String> = if acme.identifiers.is_empty() {
            server
                .names
                .iter()
                .map(|n| n.value.trim_start_matches('.').to_owned())
                .filter(|n| !n.is_empty() && n != "_" && !n.starts_with('~'))
                .collect()
        } else {
            acme.identifiers.clone()
        };
        let key = match acme.key.as_ref().map(|k| (KeyAlg::parse(&k.value), &k.pos)) {
            None => KeyAlg::default(),
            Some((Ok(k), _)) => k,
            Some((Err(e), pos)) => {
                self.err(pos, e);
                return;
            }
        };
        match manager.certificate(&acme.issuer, &names, key) {
            Ok(slot) => {
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                resolver.add_slot(&refs, &slot, default);
                resolver.answer_tls_alpn01(manager.challenges().clone());
                let state = match slot.load() {
                    Some(k) => k
                        .end_entity_cert()
                        .ok()
                        .and_then(crate::tls::cert_not_after)
                        .map_or_else(String::new, |t| {
                            format!("stored, expires {}", crate::accesslog::time_iso8601(t))
                        }),
                    None => "to be ordered".to_owned(),
                };
                self.summary.push(format!(
                    "certificate (acme {}) for {}: {state}",
                    acme.issuer,
                    names.join(" ")
                ));
            }
            Err(e) => self.err(&acme.pos, e),
        }
    }

    /// An expired certificate is served anyway, as nginx does (a renewal
    /// may be on its way and the reloader picks it up), but said.
    pub(super) fn expiry(&mut self, cert: &crate::config::Spanned<String>) {
        let path = std::path::Path::new(&cert.value);
        let Some(expiry) = crate::tls::load_certs(path)
            .ok()
            .and_then(|c| c.first().and_then(crate::tls::cert_not_after))
        else {
            return;
        };
        if let Ok(ago) = std::time::SystemTime::now().duration_since(expiry) {
            let days = ago.as_secs() / 86_400;
            self.warn(
                &cert.pos,
                format!(
                    "the certificate in {} has expired ({}); it is served anyway and clients will refuse it",
                    cert.value,
                    match days {
                        0 => "today".to_owned(),
                        1 => "1 day ago".to_owned(),
                        n => format!("{n} days ago"),
                    }
                ),
            );
        }
    }
}

/// A listener's settings from its default server's.
fn listener_spec(addr: SocketAddr, settings: &Settings) -> ListenerSpec {
    let buffers = settings
        .large_client_header_buffers
        .unwrap_or(HeaderBuffers {
            number: 4,
            size: 8 * 1024,
        });
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let line = size(buffers.size).max(size(settings.client_header_buffer_size.unwrap_or(1024)));
    ListenerSpec {
        addr,
        header_timeout: settings
            .client_header_timeout
            .unwrap_or(Duration::from_secs(60)),
        keepalive_timeout: settings
            .keepalive_timeout
            .unwrap_or(Duration::from_secs(75)),
        keepalive_requests: settings.keepalive_requests.unwrap_or(1000),
        keepalive_time: settings.keepalive_time.unwrap_or(Duration::from_secs(3600)),
        tls: None,
        send_timeout: settings.send_timeout.unwrap_or(Duration::from_secs(60)),
        proxy_protocol: false,
        head: HeadLimits {
            line,
            total: size(buffers.size)
                .saturating_mul(buffers.number as usize)
                .max(line),
            underscores: settings.underscores_in_headers.unwrap_or(false),
            merge_slashes: settings.merge_slashes.unwrap_or(true),
            ignore_invalid: settings.ignore_invalid_headers.unwrap_or(true),
        },
    }
}
