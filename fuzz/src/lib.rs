//! The bodies of rpx's fuzz targets.
//!
//! Each `fuzz_targets/<name>.rs` is a one-line `fuzz_target!` calling the
//! function of the same name here; `rpx-core/tests/fuzz_smoke.rs` includes
//! this file with `#[path]` and runs the same functions on the stable
//! toolchain over the seeds and pseudo-random inputs. So this file may use
//! only `std`, `rpx_core` and crates rpx-core itself depends on (`regex`,
//! `http`, `httparse`), never `libfuzzer_sys`.

use std::sync::OnceLock;

use rpx_core::conn::{ConnInfo, Scheme};
use rpx_core::location::{normalize, LocationMatch, LocationSpec, LocationTable, MatchKind};
use rpx_core::vars::{Template, VarCtx};

/// Locations built from one input, at most.
const MAX_SPECS: usize = 24;
/// Paths read from one input, at most (derived ones come on top).
const MAX_PATHS: usize = 24;

/// Builds a location table from the input's lines and matches paths on it.
///
/// One line per item:
/// - `?PATH`: a path to look up (raw and normalised);
/// - `>SPEC`: a location nested in the previous top-level one;
/// - `+SPEC` (after any `>`): the location answers `PATH` without its final
///   `/` with a 301 (`auto_redirect`);
/// - anything else: a top-level location in nginx syntax (`= /x`, `^~ /x`,
///   `~ re`, `~* re`, `/x`), split by [`MatchKind::split`].
///
/// Every line also goes through [`normalize`] with its invariants checked.
/// Build errors are fine; panics and wrong answers are not.
pub fn location_match(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_normalize(&text);

    let mut specs: Vec<LocationSpec> = Vec::new();
    let mut count = 0;
    let mut paths: Vec<String> = Vec::new();
    for line in text.lines() {
        check_normalize(line);
        if let Some(path) = line.strip_prefix('?') {
            if paths.len() < MAX_PATHS {
                paths.push(path.to_owned());
            }
            continue;
        }
        if count == MAX_SPECS {
            continue;
        }
        let (nest, line) = match line.strip_prefix('>') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let (auto_redirect, line) = match line.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let (kind, pattern) = MatchKind::split(line);
        let mut spec = LocationSpec::new(kind, pattern);
        spec.auto_redirect = auto_redirect;
        count += 1;
        match specs.last_mut() {
            Some(parent) if nest => parent.nested.push(spec),
            _ => specs.push(spec),
        }
    }

    let Ok(table) = LocationTable::build(&specs) else {
        return;
    };
    // Ids are given depth-first in config order.
    let mut flat: Vec<Loc<'_>> = Vec::new();
    let mut roots = Vec::new();
    for spec in &specs {
        roots.push(flat.len());
        flat.push(Loc::new(spec));
        flat.extend(spec.nested.iter().map(Loc::new));
    }
    assert_eq!(table.len(), flat.len(), "one id per location");
    assert_eq!(table.is_empty(), flat.is_empty());

    // Paths near the patterns find the interesting branches.
    let mut derived: Vec<String> = vec!["/".into(), String::new()];
    for loc in &flat {
        let p = loc.spec.pattern.as_str();
        derived.push(p.to_owned());
        derived.push(format!("{p}x"));
        derived.push(format!("{p}/"));
        if let Some((i, _)) = p.char_indices().next_back() {
            derived.push(p[..i].to_owned());
        }
    }
    for path in paths.iter().chain(&derived) {
        check_find(&table, &roots, &flat, path);
        if let Ok(n) = normalize(path) {
            check_find(&table, &roots, &flat, &n);
        }
    }
}

/// `normalize`'s promises for any string it accepts.
fn check_normalize(path: &str) {
    let Ok(n) = normalize(path) else {
        return;
    };
    let n: &str = &n;
    if n != "*" {
        assert!(n.starts_with('/'), "{path:?} -> {n:?}: not absolute");
        assert!(!n.contains("//"), "{path:?} -> {n:?}: `//` left");
        assert!(
            !n.contains("/./") && !n.ends_with("/."),
            "{path:?} -> {n:?}: `.` segment left"
        );
        assert!(
            !n.contains("/../") && !n.ends_with("/.."),
            "{path:?} -> {n:?}: `..` segment left"
        );
    }
    match normalize(n) {
        Ok(again) => assert_eq!(again, n, "{path:?}: normalising is not idempotent"),
        Err(e) => panic!("{path:?} -> {n:?}: the result does not normalise: {e}"),
    }
}

/// A location and, for `~`/`~*`, the regex it should behave as, compiled
/// independently of the table.
struct Loc<'a> {
    spec: &'a LocationSpec,
    regex: Option<regex::Regex>,
}

impl<'a> Loc<'a> {
    fn new(spec: &'a LocationSpec) -> Self {
        let regex = spec.kind.is_regex().then(|| {
            regex::RegexBuilder::new(&spec.pattern)
                .case_insensitive(spec.kind == MatchKind::RegexCaseless)
                .build()
                .ok()
        });
        Loc {
            spec,
            regex: regex.flatten(),
        }
    }

    /// Whether the location, alone, matches `path`.
    fn matches(&self, path: &str) -> bool {
        match self.spec.kind {
            MatchKind::Exact => self.spec.pattern == path,
            MatchKind::Prefix | MatchKind::PrefixNoRegex => path.starts_with(&self.spec.pattern),
            MatchKind::Regex | MatchKind::RegexCaseless => {
                self.regex.as_ref().is_some_and(|r| r.is_match(path))
            }
            // Reached by name only, never by path.
            MatchKind::Named => false,
        }
    }
}

/// Looks `path` up and checks the answer against the locations it names.
/// `roots` are the ids of the top-level locations.
fn check_find(table: &LocationTable, roots: &[usize], flat: &[Loc<'_>], path: &str) {
    let found = table.find(path);
    match found {
        LocationMatch::Location(id) => {
            let loc = flat.get(id).expect("location id out of range");
            assert!(
                loc.matches(path),
                "{:?} {:?} chosen for {path:?} does not match it",
                loc.spec.kind,
                loc.spec.pattern
            );
        }
        LocationMatch::AddSlash(id) => {
            let spec = flat.get(id).expect("add-slash id out of range").spec;
            assert!(spec.auto_redirect, "add-slash from {:?}", spec.pattern);
            assert!(
                matches!(spec.kind, MatchKind::Prefix | MatchKind::PrefixNoRegex),
                "add-slash from a {:?} location",
                spec.kind
            );
            assert_eq!(spec.pattern, format!("{path}/"), "add-slash target");
        }
        LocationMatch::None => {}
    }
    // At the top level, an `=` location equal to the path always wins, and
    // no match at all means no top-level location could have matched.
    for &id in roots {
        let loc = &flat[id];
        if !loc.matches(path) {
            continue;
        }
        if loc.spec.kind == MatchKind::Exact {
            assert_eq!(found, LocationMatch::Location(id), "`= {path}` must win");
        }
        assert_ne!(
            found,
            LocationMatch::None,
            "{:?} {:?} matches {path:?} but nothing was found",
            loc.spec.kind,
            loc.spec.pattern
        );
    }
}

/// Parses the input as a TOML config and, if it parses, compiles it.
///
/// Errors are fine; panics are not. Error messages are rendered too, as
/// their `file:line:col` positions are computed from byte offsets.
pub fn toml_config(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let config = match rpx_core::config::parse_toml(src, "fuzz.toml") {
        Ok(config) => config,
        Err(errors) => {
            let _ = errors.to_string();
            return;
        }
    };
    match rpx_core::stack::compile(&config) {
        Ok(snapshot) => {
            let _ = (snapshot.listeners(), snapshot.summary());
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
}

/// Parses the input as a variable template and renders it for fixed requests.
///
/// Parse errors are fine. A template without `$` must be that text, and a
/// constant template must render as itself.
pub fn vars_template(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    let Ok(template) = Template::parse(&src) else {
        return;
    };
    if !src.contains('$') {
        assert_eq!(template.as_constant(), Some(&*src), "text without `$`");
    }
    for (req, conn, path) in fixed_requests() {
        let mut ctx = VarCtx::new(req, conn, path, "example.com");
        let plain = template.render_to_string(&ctx);
        if let Some(c) = template.as_constant() {
            assert_eq!(plain, c, "a constant renders as itself");
        }
        ctx.proxy_host = "backend:3000";
        ctx.proxy_port = 3000;
        let mut out = String::from("prefix:");
        template.render(&ctx, &mut out);
        assert!(out.starts_with("prefix:"), "render appends");
    }
}

/// Requests covering the variables' branches: headers present and absent,
/// repeated, absolute-form URI, IPv6, HTTP/2, a non-default port.
fn fixed_requests() -> &'static [(http::Request<()>, ConnInfo, &'static str)] {
    static REQUESTS: OnceLock<Vec<(http::Request<()>, ConnInfo, &'static str)>> = OnceLock::new();
    REQUESTS.get_or_init(|| {
        let v4 = ConnInfo::new(
            "10.0.0.7:5555".parse().expect("addr"),
            "127.0.0.1:8080".parse().expect("addr"),
            "0.0.0.0:8080".parse().expect("addr"),
            Scheme::Http,
        );
        let v6 = ConnInfo::new(
            "[2001:db8::1]:40000".parse().expect("addr"),
            "[::1]:443".parse().expect("addr"),
            "[::]:443".parse().expect("addr"),
            Scheme::Https,
        );
        let full = http::Request::builder()
            .method("POST")
            .uri("/a/b/../c?x=1&y=2&Y=3&flag")
            .header("host", "Example.COM:8080")
            .header("x-forwarded-for", "1.2.3.4")
            .header("x-forwarded-for", "5.6.7.8")
            .header("x-real-thing", "v1")
            .header("x-real-thing", "v2")
            .header("cookie", "a=1; sid=abc")
            .header("cookie", "b=2")
            .header(
                "x-bin",
                http::HeaderValue::from_bytes(b"\xffopaque").expect("value"),
            )
            .body(())
            .expect("request");
        let absolute = http::Request::builder()
            .uri("http://[::1]:8443/p%20q?")
            .version(http::Version::HTTP_2)
            .header("host", "ignored.example")
            .body(())
            .expect("request");
        let bare = http::Request::builder()
            .uri("*")
            .version(http::Version::HTTP_10)
            .body(())
            .expect("request");
        vec![
            (full, v4, "/a/c"),
            (absolute, v6, "/p%20q"),
            (bare, v4, "*"),
        ]
    })
}

/// Parses the input as nginx configuration text (lexer, parser), maps it
/// onto the model (strict and lenient) and compiles what loads. Errors are
/// fine; panics are not. Every error names a position in the input file.
pub fn nginx_config(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.conf");
    if let Err(e) = rpx_core::config::nginx::parse_str(src, path) {
        assert!(e.to_string().starts_with("fuzz.conf"), "{e}");
    }
    for lenient in [false, true] {
        let loaded = rpx_core::config::nginx::config_from_str(
            src,
            path,
            rpx_core::config::LoadOptions { lenient },
        );
        for e in &loaded.errors {
            let _ = e.to_string();
        }
        if loaded.errors.is_empty() && !loaded.config.servers.is_empty() {
            // Only configs without files on disk: no access logs or
            // certificates are opened from fuzz input.
            let touches_files =
                loaded.config.servers.iter().any(|s| {
                    s.settings.access_log.is_some() || s.settings.ssl_certificate.is_some()
                }) || loaded.config.settings.access_log.is_some();
            if !touches_files {
                let _ = rpx_core::stack::compile(&loaded.config);
            }
        }
    }
}

/// Reads the input as a request head with rpx's HTTP/1.1 reader and the
/// edge check, at nginx's default buffers and at tiny ones, and holds it to
/// httparse: a head rpx takes, httparse must read the same way; one
/// httparse refuses, rpx must not take. What passes the edge has a `Host`
/// without `/`, spaces or `..`, and only header names nginx takes.
pub fn http1_head(data: &[u8]) {
    use rpx_core::server::fuzzing::{read_head, HeadVerdict};
    for (line, total) in [(8 * 1024, 32 * 1024), (64, 256)] {
        let verdict = read_head(data, line, total);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let theirs = req.parse(data);
        match &verdict {
            HeadVerdict::Accepted {
                method,
                target,
                host,
                names,
            } => {
                assert!(
                    matches!(theirs, Ok(httparse::Status::Complete(_))),
                    "rpx took a head httparse reads as {theirs:?}"
                );
                assert_eq!(Some(method.as_str()), req.method);
                // The http crate drops a fragment, as a server should.
                let path = req.path.map(|p| p.split('#').next().unwrap_or(p));
                assert_eq!(Some(target.as_str()), path);
                if let Some(h) = host {
                    assert!(
                        !h.contains(['/', ' ', '\t']) && !h.contains(".."),
                        "host {h:?} passed the edge"
                    );
                }
                for n in names {
                    assert!(
                        n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                        "header {n:?} passed the edge"
                    );
                }
            }
            HeadVerdict::Refused(status) => {
                assert!(matches!(status, 400 | 405 | 414 | 501), "status {status}");
            }
            HeadVerdict::Partial | HeadVerdict::Hyper => {}
        }
        if theirs.is_err() {
            assert!(
                !matches!(verdict, HeadVerdict::Accepted { .. }),
                "rpx took a head httparse refuses"
            );
        }
    }
}

/// Decodes the input as an upstream's HTTP/1.x response (head, then a body
/// framed by `Content-Length`, chunked or the close), all at once and fed
/// in small reads: the answers must agree, a `Content-Length` body is that
/// long, and a head rpx takes httparse takes too. The first byte picks a
/// HEAD request and the read size.
pub fn upstream_response(data: &[u8]) {
    use rpx_core::proxy::fuzzing::decode_response;
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let head_request = control & 0x80 != 0;
    let whole = decode_response(data, data.len(), head_request);
    for piece in [1, usize::from(control & 0x7f) + 1] {
        let split = decode_response(data, piece, head_request);
        match (&whole, &split) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "read {piece} at a time"),
            (Err(_), Err(_)) => {}
            _ => panic!("whole {whole:?}, read {piece} at a time {split:?}"),
        }
    }
    if let Ok(d) = &whole {
        if let Some(n) = d.length {
            assert_eq!(d.body.len() as u64, n, "Content-Length body");
        }
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut res = httparse::Response::new(&mut headers);
        assert!(
            matches!(res.parse(data), Ok(httparse::Status::Complete(_))),
            "rpx took a head httparse does not"
        );
    }
}

/// The PROXY protocol parser and the listener's reader: a control byte
/// (the size of the pieces the connection's bytes arrive in), then bytes
/// a client sends first.
///
/// `parse` never says `Incomplete` of a prefix of a header it refuses, nor
/// refuses a prefix of one it takes; a header's length is within the
/// bounds; refused bytes stay refused whatever follows; the reader takes
/// exactly the header's bytes, whether they come at once or in pieces, and
/// closes on what `parse` refuses or leaves incomplete.
pub fn proxy_protocol(data: &[u8]) {
    use rpx_core::conn::proxy_protocol::{parse, Parsed, MAX_HEADER, V1_MAX};
    use rpx_core::server::fuzzing::read_proxy_header;
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let whole = parse(data);
    match whole {
        Ok(Parsed::Complete(h)) => {
            assert!(h.len <= data.len() && h.len <= MAX_HEADER, "{h:?}");
            assert!(h.version == 2 || h.len <= V1_MAX, "{h:?}");
            for cut in 0..h.len {
                assert_eq!(
                    parse(&data[..cut]),
                    Ok(Parsed::Incomplete),
                    "a prefix of {cut}"
                );
            }
            assert_eq!(parse(&data[..h.len]), whole, "the header alone");
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < MAX_HEADER),
        Err(_) => {
            for more in [&b"\r\n"[..], b"\0", b" 1 2\r\n"] {
                let longer = [data, more].concat();
                assert!(parse(&longer).is_err(), "refused, then taken with {more:?}");
            }
        }
    }
    for piece in [0, usize::from(control) + 1] {
        let read = read_proxy_header(data, piece);
        match (whole, &read) {
            (Ok(Parsed::Complete(h)), Ok((got, taken))) => {
                assert_eq!((h, h.len), (*got, *taken), "in pieces of {piece}");
            }
            (Ok(Parsed::Complete(_)), Err(e)) => panic!("in pieces of {piece}: {e}"),
            (_, Ok(got)) => panic!("parse {whole:?}, read in pieces of {piece} {got:?}"),
            (_, Err(e)) => assert!(!e.contains("peeked") && !e.contains("waits"), "{e}"),
        }
    }
}
