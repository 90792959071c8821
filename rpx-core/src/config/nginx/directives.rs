//! Every directive rpx knows, in one table: where it may appear, how many
//! arguments it takes, and what rpx does with it.

/// The blocks a directive can appear in (a bit set).
pub(super) type Ctx = u16;

pub(super) const MAIN: Ctx = 1;
pub(super) const EVENTS: Ctx = 1 << 1;
pub(super) const HTTP: Ctx = 1 << 2;
pub(super) const SRV: Ctx = 1 << 3;
pub(super) const LOC: Ctx = 1 << 4;
pub(super) const UPS: Ctx = 1 << 5;
/// `if` inside `server`.
pub(super) const SIF: Ctx = 1 << 6;
/// `if` inside `location`.
pub(super) const LIF: Ctx = 1 << 7;
pub(super) const LMT: Ctx = 1 << 9;
/// `acme_issuer {}`.
pub(super) const ACME: Ctx = 1 << 10;

const HSL: Ctx = HTTP | SRV | LOC;
const SL: Ctx = SRV | LOC;
const IFS: Ctx = SIF | LIF;

/// What rpx does with a directive.
#[derive(Clone, Copy)]
pub(super) enum Support {
    /// Mapped onto the model by the front-end.
    Mapped,
    /// rpx's fixed behaviour covers it; nothing to say.
    Silent,
    /// rpx's fixed behaviour covers it; the function says what rpx does
    /// instead when the arguments ask for something else.
    Fixed(fn(&[&str]) -> Option<&'static str>),
    /// Accepted without effect; the text says why (always a warning).
    Ignored(&'static str),
    /// Known, belongs to later work: an error naming it, a warning with
    /// `--lenient`. The text names the missing feature.
    Unsupported(&'static str),
    /// nginx's default value is what rpx does (accepted as is); any other
    /// value is [`Support::Unsupported`] with the text.
    DefaultOnly(&'static str, &'static str),
}

/// One directive.
pub(super) struct Spec {
    pub(super) name: &'static str,
    pub(super) ctx: Ctx,
    pub(super) min: u8,
    /// `u8::MAX`: no limit.
    pub(super) max: u8,
    pub(super) block: bool,
    pub(super) support: Support,
}

const ANY: u8 = u8::MAX;

const fn d(name: &'static str, ctx: Ctx, min: u8, max: u8, support: Support) -> Spec {
    Spec {
        name,
        ctx,
        min,
        max,
        block: false,
        support,
    }
}

const fn blk(name: &'static str, ctx: Ctx, min: u8, max: u8, support: Support) -> Spec {
    Spec {
        name,
        ctx,
        min,
        max,
        block: true,
        support,
    }
}

use Support::{DefaultOnly, Ignored, Mapped, Silent, Unsupported};

fn buffering(a: &[&str]) -> Option<&'static str> {
    (a.first() != Some(&"off")).then_some("rpx streams bodies without buffering (as `off`)")
}

fn cache(a: &[&str]) -> Option<&'static str> {
    (a.first() != Some(&"off")).then_some("rpx does not cache responses; every request is proxied")
}

fn workers(a: &[&str]) -> Option<&'static str> {
    (a.first() != Some(&"auto"))
        .then_some("rpx runs one worker thread per core; use `rpx run --threads N` to choose")
}

fn default_type(a: &[&str]) -> Option<&'static str> {
    (a.first() != Some(&"application/octet-stream"))
        .then_some("rpx serves files of unknown type as application/octet-stream")
}

fn tls_tuning(_: &[&str]) -> Option<&'static str> {
    Some("rpx uses rustls' setting for this; ignored")
}

fn session_timeout(_: &[&str]) -> Option<&'static str> {
    Some("rpx keeps rustls' session lifetimes (tickets are valid for 12 hours); ignored")
}

fn dhparam(_: &[&str]) -> Option<&'static str> {
    Some("rustls has no finite-field DHE suites, so rpx needs no DH parameters; ignored")
}

fn ecdh_curve(a: &[&str]) -> Option<&'static str> {
    (a.first() != Some(&"auto"))
        .then_some("rpx offers rustls' key exchange groups (X25519, P-256, P-384); ignored")
}

fn early_data(a: &[&str]) -> Option<&'static str> {
    (a.first() != Some(&"off")).then_some("rpx does not accept TLS 1.3 early data; ignored")
}

fn stapling_on(a: &[&str]) -> Option<&'static str> {
    (a.first() != Some(&"off"))
        .then_some("rpx does no OCSP stapling; clients check revocation themselves")
}

fn upstream_ciphers(_: &[&str]) -> Option<&'static str> {
    Some("rpx offers rustls' cipher suites to upstreams; ignored")
}

fn upstream_verify_depth(_: &[&str]) -> Option<&'static str> {
    Some("rpx verifies upstream certificate chains of any depth up to a trusted CA; ignored")
}

fn upstream_tls_tuning(_: &[&str]) -> Option<&'static str> {
    Some("rpx offers TLSv1.2 and TLSv1.3 to upstreams; ignored")
}

fn verify_depth(_: &[&str]) -> Option<&'static str> {
    Some("rpx verifies client certificate chains of any depth up to a trusted CA; ignored")
}

fn stapling(_: &[&str]) -> Option<&'static str> {
    Some("rpx does no OCSP stapling, so it needs no trusted chain for it; ignored")
}

const TLS: &str = "TLS termination";
pub(super) const ACCESS: &str = "access control";

/// The table. Order does not matter; names are unique.
pub(super) static DIRECTIVES: &[Spec] = &[
    // Structure.
    blk("events", MAIN, 0, 0, Mapped),
    blk("http", MAIN, 0, 0, Mapped),
    blk("server", HTTP, 0, 0, Mapped),
    d("server", UPS, 1, ANY, Mapped),
    blk("location", SRV | LOC, 1, 2, Mapped),
    blk("upstream", HTTP, 1, 1, Mapped),
    blk("map", HTTP, 2, 2, Mapped),
    blk("geo", HTTP, 1, 2, Mapped),
    blk("split_clients", HTTP, 2, 2, Mapped),
    blk("types", HSL, 0, 0, Silent),
    blk("if", SL, 1, ANY, Mapped),
    blk("limit_except", LOC, 1, ANY, Mapped),
    blk(
        "stream",
        MAIN,
        0,
        0,
        Unsupported("TCP/UDP proxying (`stream`)"),
    ),
    blk("mail", MAIN, 0, 0, Unsupported("mail proxying")),
    // Main and events.
    d(
        "user",
        MAIN,
        1,
        2,
        Ignored("rpx does not switch users; start it as the user it should run as"),
    ),
    d("worker_processes", MAIN, 1, 1, Support::Fixed(workers)),
    d(
        "pid",
        MAIN,
        1,
        1,
        Ignored("give the pid file on the command line: `rpx run --pid-file FILE`"),
    ),
    d("error_log", MAIN | HSL, 1, 2, Mapped),
    d(
        "load_module",
        MAIN,
        1,
        1,
        Ignored("rpx has no dynamic modules"),
    ),
    d("worker_rlimit_nofile", MAIN, 1, 1, Silent),
    d("worker_cpu_affinity", MAIN, 1, ANY, Silent),
    d("worker_priority", MAIN, 1, 1, Silent),
    d("worker_shutdown_timeout", MAIN, 1, 1, Mapped),
    d("daemon", MAIN, 1, 1, Silent),
    d("master_process", MAIN, 1, 1, Silent),
    d("pcre_jit", MAIN, 1, 1, Silent),
    d("thread_pool", MAIN, 1, 3, Silent),
    d("timer_resolution", MAIN, 1, 1, Silent),
    d("lock_file", MAIN, 1, 1, Silent),
    d("env", MAIN, 1, 1, Silent),
    d("worker_connections", EVENTS, 1, 1, Silent),
    d("multi_accept", EVENTS, 1, 1, Silent),
    d("use", EVENTS, 1, 1, Silent),
    d("accept_mutex", EVENTS, 1, 1, Silent),
    d("accept_mutex_delay", EVENTS, 1, 1, Silent),
    // Fixed behaviour of the http core.
    d("sendfile", HSL | LIF, 1, 1, Silent),
    d("sendfile_max_chunk", HSL, 1, 1, Silent),
    d("tcp_nopush", HSL, 1, 1, Silent),
    d("tcp_nodelay", HSL, 1, 1, Silent),
    d("aio", HSL, 1, 1, Silent),
    d("directio", HSL, 1, 1, Silent),
    d("types_hash_max_size", HSL, 1, 1, Silent),
    d("types_hash_bucket_size", HSL, 1, 1, Silent),
    d("server_names_hash_bucket_size", HTTP, 1, 1, Silent),
    d("server_names_hash_max_size", HTTP, 1, 1, Silent),
    d("variables_hash_max_size", HTTP, 1, 1, Silent),
    d("variables_hash_bucket_size", HTTP, 1, 1, Silent),
    d("map_hash_max_size", HTTP, 1, 1, Silent),
    d("map_hash_bucket_size", HTTP, 1, 1, Silent),
    d("proxy_headers_hash_max_size", HSL, 1, 1, Silent),
    d("proxy_headers_hash_bucket_size", HSL, 1, 1, Silent),
    d("default_type", HSL, 1, 1, Support::Fixed(default_type)),
    d(
        "charset",
        HSL | LIF,
        1,
        1,
        Ignored("rpx does not add a charset to Content-Type"),
    ),
    d("server_tokens", HSL, 1, 1, Mapped),
    d("client_body_buffer_size", HSL, 1, 1, Mapped),
    d("client_header_buffer_size", HTTP | SRV, 1, 1, Mapped),
    d("large_client_header_buffers", HTTP | SRV, 2, 2, Mapped),
    d("client_body_temp_path", HSL, 1, 4, Silent),
    d("proxy_temp_path", HSL, 1, 4, Silent),
    d("fastcgi_temp_path", HSL, 1, 4, Silent),
    d("uwsgi_temp_path", HSL, 1, 4, Silent),
    d("scgi_temp_path", HSL, 1, 4, Silent),
    d("send_timeout", HSL, 1, 1, Mapped),
    d("reset_timedout_connection", HSL, 1, 1, Silent),
    d("lingering_close", HSL, 1, 1, Silent),
    d("lingering_time", HSL, 1, 1, Silent),
    d("lingering_timeout", HSL, 1, 1, Silent),
    d("open_file_cache", HSL, 1, 2, Silent),
    d("open_file_cache_valid", HSL, 1, 1, Silent),
    d("open_file_cache_min_uses", HSL, 1, 1, Silent),
    d("open_file_cache_errors", HSL, 1, 1, Silent),
    d("output_buffers", HSL, 2, 2, Silent),
    d("postpone_output", HSL, 1, 1, Silent),
    d("chunked_transfer_encoding", HSL, 1, 1, Silent),
    d("ignore_invalid_headers", HTTP | SRV, 1, 1, Mapped),
    d("underscores_in_headers", HTTP | SRV, 1, 1, Mapped),
    d("merge_slashes", HTTP | SRV, 1, 1, Mapped),
    d(
        "absolute_redirect",
        HSL,
        1,
        1,
        DefaultOnly("on", "relative redirects (`absolute_redirect off`)"),
    ),
    d(
        "port_in_redirect",
        HSL,
        1,
        1,
        DefaultOnly("on", "redirects without the port (`port_in_redirect off`)"),
    ),
    d(
        "server_name_in_redirect",
        HSL,
        1,
        1,
        DefaultOnly(
            "off",
            "redirects to the server name (`server_name_in_redirect on`)",
        ),
    ),
    // Padding of error pages for MSIE; rpx's pages need none.
    d("msie_padding", HSL, 1, 1, Silent),
    d("etag", HSL, 1, 1, Silent),
    d("if_modified_since", HSL, 1, 1, Silent),
    d("log_not_found", HSL, 1, 1, Silent),
    d("log_subrequest", HSL, 1, 1, Silent),
    d("resolver", HSL, 1, ANY, Mapped),
    d("resolver_timeout", HSL, 1, 1, Mapped),
    d("http2", HTTP | SRV, 1, 1, Mapped),
    d("http2_max_concurrent_streams", HTTP | SRV, 1, 1, Silent),
    d("gzip", HSL | LIF, 1, 1, Mapped),
    d("gzip_vary", HSL, 1, 1, Mapped),
    d("gzip_proxied", HSL, 1, ANY, Mapped),
    d("gzip_comp_level", HSL, 1, 1, Mapped),
    // Memory for the encoder: rpx's grows as it needs.
    d("gzip_buffers", HSL, 2, 2, Silent),
    d("gzip_http_version", HSL, 1, 1, Mapped),
    d("gzip_min_length", HSL, 1, 1, Mapped),
    d("gzip_types", HSL, 1, ANY, Mapped),
    d("gzip_disable", HSL, 1, ANY, Mapped),
    d("error_page", HSL | LIF, 2, ANY, Mapped),
    d("recursive_error_pages", HSL, 1, 1, Mapped),
    d(
        "autoindex",
        HSL,
        1,
        1,
        Unsupported("directory listings (`autoindex`)"),
    ),
    d("expires", HSL | LIF, 1, 2, Mapped),
    d("internal", LOC, 0, 0, Mapped),
    d("set", SRV | LOC | IFS, 2, 2, Mapped),
    d("sub_filter", HSL, 2, 2, Mapped),
    d("sub_filter_once", HSL, 1, 1, Mapped),
    d("sub_filter_types", HSL, 1, ANY, Mapped),
    d("sub_filter_last_modified", HSL, 1, 1, Mapped),
    d("ssi", HSL | LIF, 1, 1, Unsupported("server-side includes")),
    // Logging.
    d("log_format", HTTP, 2, ANY, Mapped),
    // rpx's own: Prometheus metrics from this location.
    d("rpx_metrics", LOC, 0, 0, Mapped),
    d("stub_status", LOC, 0, 1, Mapped),
    d("access_log", HSL | LIF, 1, ANY, Mapped),
    d("open_log_file_cache", HSL, 1, 4, Silent),
    d("rewrite_log", HSL | IFS, 1, 1, Silent),
    // TLS.
    d("ssl_certificate", HTTP | SRV, 1, 1, Mapped),
    d("ssl_certificate_key", HTTP | SRV, 1, 1, Mapped),
    d(
        "ssl_trusted_certificate",
        HTTP | SRV,
        1,
        1,
        Support::Fixed(stapling),
    ),
    d("ssl_client_certificate", HTTP | SRV, 1, 1, Mapped),
    d("ssl_verify_client", HTTP | SRV, 1, 1, Mapped),
    d(
        "ssl_verify_depth",
        HTTP | SRV,
        1,
        1,
        Support::Fixed(verify_depth),
    ),
    d("ssl", HTTP | SRV, 1, 1, Unsupported(TLS)),
    d("ssl_protocols", HTTP | SRV, 1, ANY, Mapped),
    d("ssl_ciphers", HTTP | SRV, 1, 1, Mapped),
    d("ssl_prefer_server_ciphers", HTTP | SRV, 1, 1, Mapped),
    d("ssl_session_cache", HTTP | SRV, 1, 2, Mapped),
    d(
        "ssl_session_timeout",
        HTTP | SRV,
        1,
        1,
        Support::Fixed(session_timeout),
    ),
    d("ssl_session_tickets", HTTP | SRV, 1, 1, Mapped),
    d("ssl_dhparam", HTTP | SRV, 1, 1, Support::Fixed(dhparam)),
    d(
        "ssl_ecdh_curve",
        HTTP | SRV,
        1,
        1,
        Support::Fixed(ecdh_curve),
    ),
    d(
        "ssl_buffer_size",
        HTTP | SRV,
        1,
        1,
        Support::Fixed(tls_tuning),
    ),
    d(
        "ssl_early_data",
        HTTP | SRV,
        1,
        1,
        Support::Fixed(early_data),
    ),
    d(
        "ssl_stapling",
        HTTP | SRV,
        1,
        1,
        Support::Fixed(stapling_on),
    ),
    d(
        "ssl_stapling_verify",
        HTTP | SRV,
        1,
        1,
        Support::Fixed(stapling_on),
    ),
    // ACME (nginx's ngx_http_acme_module).
    blk("acme_issuer", HTTP, 1, 1, Mapped),
    d("uri", ACME, 1, 1, Mapped),
    d("account_key", ACME, 1, 1, Mapped),
    d("challenge", ACME, 1, 1, Mapped),
    d("contact", ACME, 1, 1, Mapped),
    d("external_account_key", ACME, 2, 2, Mapped),
    d("ssl_trusted_certificate", ACME, 1, 1, Mapped),
    d("ssl_verify", ACME, 1, 1, Mapped),
    d("state_path", ACME, 1, 1, Mapped),
    d("accept_terms_of_service", ACME, 0, 0, Mapped),
    d("dns_hook", ACME, 1, 1, Mapped),
    d(
        "preferred_chain",
        ACME,
        1,
        1,
        Ignored("rpx serves the chain the CA sends by default"),
    ),
    d(
        "profile",
        ACME,
        1,
        2,
        Ignored("rpx orders with the CA's default profile"),
    ),
    d("acme_shared_zone", HTTP, 1, 1, Silent),
    // rpx loads a certificate once, never per handshake: nothing to cache.
    d("ssl_certificate_cache", HTTP | SRV, 1, 3, Silent),
    d("acme_certificate", SRV, 1, ANY, Mapped),
    // Access control.
    d("allow", HSL | LMT, 1, 1, Mapped),
    d("deny", HSL | LMT, 1, 1, Mapped),
    d("satisfy", HSL, 1, 1, Mapped),
    d("auth_basic", HSL | LMT, 1, 1, Mapped),
    d("auth_basic_user_file", HSL | LMT, 1, 1, Mapped),
    d("auth_request", HSL, 1, 1, Mapped),
    d("auth_request_set", HSL, 2, 2, Mapped),
    // Access control rpx does not have: never ignored (see `unsupported`).
    d("valid_referers", SL, 1, ANY, Unsupported(ACCESS)),
    d("secure_link", HSL, 1, 1, Unsupported(ACCESS)),
    d("secure_link_md5", HSL, 1, 1, Unsupported(ACCESS)),
    d("secure_link_secret", LOC, 1, 1, Unsupported(ACCESS)),
    d("auth_jwt", HSL | LMT, 1, 2, Unsupported(ACCESS)),
    d("auth_jwt_key_file", HSL | LMT, 1, 1, Unsupported(ACCESS)),
    d("limit_req_zone", HTTP, 3, 4, Mapped),
    d("limit_req", HSL, 1, 3, Mapped),
    d("limit_req_status", HSL, 1, 1, Mapped),
    d("limit_req_dry_run", HSL, 1, 1, Mapped),
    d("limit_req_log_level", HSL, 1, 1, Mapped),
    d("limit_conn_zone", HTTP, 2, 2, Mapped),
    d("limit_conn", HSL, 2, 2, Mapped),
    d("limit_conn_status", HSL, 1, 1, Mapped),
    d("limit_conn_dry_run", HSL, 1, 1, Mapped),
    d("limit_conn_log_level", HSL, 1, 1, Mapped),
    d("limit_rate", HSL | LIF, 1, 1, Mapped),
    d("limit_rate_after", HSL | LIF, 1, 1, Mapped),
    d("real_ip_header", HSL, 1, 1, Mapped),
    d("set_real_ip_from", HSL, 1, 1, Mapped),
    d("real_ip_recursive", HSL, 1, 1, Mapped),
    // Other upstream protocols.
    d("fastcgi_pass", LOC | LIF, 1, 1, Unsupported("FastCGI")),
    d("fastcgi_param", HSL, 2, 3, Unsupported("FastCGI")),
    d("fastcgi_index", HSL, 1, 1, Unsupported("FastCGI")),
    d("fastcgi_split_path_info", LOC, 1, 1, Unsupported("FastCGI")),
    d("uwsgi_pass", LOC | LIF, 1, 1, Unsupported("uwsgi")),
    d("uwsgi_param", HSL, 2, 3, Unsupported("uwsgi")),
    d("scgi_pass", LOC | LIF, 1, 1, Unsupported("SCGI")),
    d("grpc_pass", LOC, 1, 1, Unsupported("gRPC proxying")),
    // Server and routing.
    d("listen", SRV, 1, ANY, Mapped),
    d("server_name", SRV, 1, ANY, Mapped),
    d("root", HSL | LIF, 1, 1, Mapped),
    d("alias", LOC, 1, 1, Mapped),
    d("index", HSL, 1, ANY, Mapped),
    d("try_files", SL, 2, ANY, Mapped),
    d("client_max_body_size", HSL, 1, 1, Mapped),
    d("client_body_timeout", HSL, 1, 1, Mapped),
    d("client_header_timeout", HTTP | SRV, 1, 1, Mapped),
    d("keepalive_timeout", HSL, 1, 2, Mapped),
    d("keepalive_requests", HSL, 1, 1, Mapped),
    d("keepalive_time", HSL, 1, 1, Mapped),
    d("add_header", HSL | LIF, 2, 3, Mapped),
    d("return", SRV | LOC | IFS, 1, 2, Mapped),
    d("rewrite", SRV | LOC | IFS, 2, 3, Mapped),
    d("break", SRV | LOC | IFS, 0, 0, Mapped),
    // Proxying.
    d("proxy_pass", LOC | LIF | LMT, 1, 1, Mapped),
    d("proxy_set_header", HSL, 2, 2, Mapped),
    d("proxy_hide_header", HSL, 1, 1, Mapped),
    d("proxy_pass_header", HSL, 1, 1, Mapped),
    d("proxy_redirect", HSL, 1, 2, Mapped),
    d("proxy_connect_timeout", HSL, 1, 1, Mapped),
    d("proxy_read_timeout", HSL, 1, 1, Mapped),
    d("proxy_send_timeout", HSL, 1, 1, Mapped),
    d("proxy_http_version", HSL, 1, 1, Mapped),
    d("proxy_buffering", HSL, 1, 1, Support::Fixed(buffering)),
    d("proxy_request_buffering", HSL, 1, 1, Mapped),
    d("proxy_buffer_size", HSL, 1, 1, Silent),
    d("proxy_buffers", HSL, 2, 2, Silent),
    d("proxy_busy_buffers_size", HSL, 1, 1, Silent),
    d("proxy_max_temp_file_size", HSL, 1, 1, Silent),
    d("proxy_temp_file_write_size", HSL, 1, 1, Silent),
    d("proxy_socket_keepalive", HSL, 1, 1, Silent),
    d("proxy_pass_request_headers", HSL, 1, 1, Mapped),
    d("proxy_pass_request_body", HSL, 1, 1, Mapped),
    d("proxy_ignore_client_abort", HSL, 1, 1, Silent),
    d("proxy_intercept_errors", HSL, 1, 1, Mapped),
    d("proxy_next_upstream", HSL, 1, ANY, Mapped),
    d("proxy_next_upstream_tries", HSL, 1, 1, Mapped),
    d("proxy_next_upstream_timeout", HSL, 1, 1, Mapped),
    d("proxy_cache", HSL, 1, 1, Support::Fixed(cache)),
    d(
        "proxy_cache_path",
        HTTP,
        2,
        ANY,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_valid",
        HSL,
        1,
        ANY,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_key",
        HSL,
        1,
        1,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_bypass",
        HSL,
        1,
        ANY,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_no_cache",
        HSL,
        1,
        ANY,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_use_stale",
        HSL,
        1,
        ANY,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_lock",
        HSL,
        1,
        1,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_methods",
        HSL,
        1,
        ANY,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_min_uses",
        HSL,
        1,
        1,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_revalidate",
        HSL,
        1,
        1,
        Ignored("rpx does not cache responses"),
    ),
    d(
        "proxy_cache_background_update",
        HSL,
        1,
        1,
        Ignored("rpx does not cache responses"),
    ),
    d("proxy_ignore_headers", HSL, 1, ANY, Silent),
    d("proxy_cookie_domain", HSL, 1, 2, Mapped),
    d("proxy_cookie_path", HSL, 1, 2, Mapped),
    d("proxy_cookie_flags", HSL, 1, 4, Mapped),
    d("proxy_set_body", HSL, 1, 1, Unsupported("`proxy_set_body`")),
    d("proxy_method", HSL, 1, 1, Unsupported("`proxy_method`")),
    d("proxy_bind", HSL, 1, 2, Unsupported("`proxy_bind`")),
    d("proxy_ssl_server_name", HSL, 1, 1, Mapped),
    d("proxy_ssl_verify", HSL, 1, 1, Mapped),
    d("proxy_ssl_name", HSL, 1, 1, Mapped),
    d("proxy_ssl_trusted_certificate", HSL, 1, 1, Mapped),
    d("proxy_ssl_certificate", HSL, 1, 1, Mapped),
    d("proxy_ssl_certificate_key", HSL, 1, 1, Mapped),
    d(
        "proxy_ssl_protocols",
        HSL,
        1,
        ANY,
        Support::Fixed(upstream_tls_tuning),
    ),
    d("proxy_ssl_session_reuse", HSL, 1, 1, Mapped),
    d(
        "proxy_ssl_ciphers",
        HSL,
        1,
        1,
        Support::Fixed(upstream_ciphers),
    ),
    d(
        "proxy_ssl_verify_depth",
        HSL,
        1,
        1,
        Support::Fixed(upstream_verify_depth),
    ),
    // Upstream groups: `server` is the block-less form, handled with `server {}`.
    d("keepalive", UPS, 1, 1, Mapped),
    d("keepalive_timeout", UPS, 1, 1, Mapped),
    d("keepalive_requests", UPS, 1, 1, Mapped),
    d("keepalive_time", UPS, 1, 1, Mapped),
    d("least_conn", UPS, 0, 0, Mapped),
    d("ip_hash", UPS, 0, 0, Mapped),
    d("hash", UPS, 1, 2, Mapped),
    d("random", UPS, 0, 2, Mapped),
    // rpx's own: active checks and DNS re-resolution (docs/upstream.md).
    d("health_check", UPS, 0, ANY, Mapped),
    d("resolve_interval", UPS, 1, 1, Mapped),
    d("resolve_strict", UPS, 1, 1, Mapped),
    d("zone", UPS, 1, 2, Silent),
];

/// The directive called `name` that may appear in `ctx`, else any directive
/// of that name (for the "not allowed here" error).
pub(super) fn lookup(name: &str, ctx: Ctx, block: bool) -> Option<&'static Spec> {
    let mut any = None;
    for spec in DIRECTIVES.iter().filter(|s| s.name == name) {
        if spec.ctx & ctx != 0 && spec.block == block {
            return Some(spec);
        }
        if spec.ctx & ctx != 0 || any.is_none() {
            any = Some(spec);
        }
    }
    any
}

/// Every name, for "did you mean".
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    DIRECTIVES.iter().map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_context_and_shape() {
        for (i, a) in DIRECTIVES.iter().enumerate() {
            for b in &DIRECTIVES[i + 1..] {
                assert!(
                    a.name != b.name || a.ctx & b.ctx == 0 || a.block != b.block,
                    "{} twice",
                    a.name
                );
            }
        }
    }

    #[test]
    fn lookup_by_context() {
        assert_eq!(lookup("server", HTTP, true).map(|s| s.block), Some(true));
        assert_eq!(lookup("server", UPS, false).map(|s| s.block), Some(false));
        assert!(lookup("keepalive_timeout", UPS, false).is_some());
        assert!(lookup("nope", HTTP, false).is_none());
    }
}
