//! Runs the cargo-fuzz target bodies on the stable toolchain: every seed in
//! `fuzz/seeds/<target>/`, then a few thousand deterministic pseudo-random
//! inputs built from each target's token dictionary. The bodies are the
//! fuzz crate's own (`fuzz/src/lib.rs`), included here, so CI exercises
//! exactly what `cargo fuzz run` does, minus coverage guidance.

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_bodies;

use std::path::{Path, PathBuf};

/// Pseudo-random inputs per target.
const ITERATIONS: usize = 2_000;

/// The seeds of `target`, sorted by name; there must be some.
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("seed dir entry").path();
            let data = std::fs::read(&path).expect("seed file");
            (path, data)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Knuth's MMIX LCG; the high bits are the good ones.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n
    }
}

/// A generated input: half the time a seed with a few edits (so inputs get
/// past the parser), otherwise up to `max_parts` pieces: dictionary tokens
/// mostly, raw bytes sometimes, and now and then a slice of a seed.
fn input(
    rng: &mut Lcg,
    tokens: &[&str],
    seeds: &[(PathBuf, Vec<u8>)],
    max_parts: usize,
) -> Vec<u8> {
    if rng.below(2) == 0 {
        let mut out = seeds[rng.below(seeds.len())].1.clone();
        for _ in 0..=rng.below(3) {
            // Edits at line starts keep line-based formats mostly valid.
            let lines: Vec<usize> = std::iter::once(0)
                .chain(
                    out.iter()
                        .enumerate()
                        .filter(|b| *b.1 == b'\n')
                        .map(|b| b.0 + 1),
                )
                .collect();
            let line = lines[rng.below(lines.len())];
            let at = rng.below(out.len() + 1);
            match rng.below(5) {
                0 => {
                    let token = tokens[rng.below(tokens.len())].as_bytes();
                    out.splice(at..at, token.iter().copied());
                }
                1 => {
                    let token = tokens[rng.below(tokens.len())].as_bytes();
                    out.splice(line..line, token.iter().copied());
                }
                2 => {
                    let end = out[line..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(out.len(), |i| line + i + 1);
                    out.drain(line..end);
                }
                3 => {
                    let end = (at + 1 + rng.below(16)).min(out.len());
                    out.drain(at..end);
                }
                _ => out.insert(at, rng.next() as u8),
            }
        }
        return out;
    }
    let mut out = Vec::new();
    for _ in 0..=rng.below(max_parts) {
        match rng.below(10) {
            0 => out.push(rng.next() as u8),
            1 => {
                let seed = &seeds[rng.below(seeds.len())].1;
                if !seed.is_empty() {
                    let start = rng.below(seed.len());
                    let end = (start + 1 + rng.below(64)).min(seed.len());
                    out.extend_from_slice(&seed[start..end]);
                }
            }
            _ => out.extend_from_slice(tokens[rng.below(tokens.len())].as_bytes()),
        }
    }
    out
}

/// Runs `body` over the seeds, then `ITERATIONS` generated inputs; a panic
/// names the input that caused it.
fn run(target: &str, body: fn(&[u8]), tokens: &[&str], max_parts: usize) {
    let seeds = seeds(target);
    for (path, data) in &seeds {
        let result = std::panic::catch_unwind(|| body(data));
        assert!(result.is_ok(), "{target}: seed {} panics", path.display());
    }
    let mut rng = Lcg(0x5eed_0000 ^ target.len() as u64);
    for i in 0..ITERATIONS {
        let data = input(&mut rng, tokens, &seeds, max_parts);
        let result = std::panic::catch_unwind(|| body(&data));
        assert!(
            result.is_ok(),
            "{target}: generated input #{i} panics: {:?}",
            String::from_utf8_lossy(&data)
        );
    }
}

#[test]
fn location_match() {
    let tokens = [
        "\n", "\n", "\n?", "\n?/", "\n>", "\n+", "= ", "^~ ", "~ ", "~* ", "/", "/", "//", "/.",
        "/..", "/./", "/../", "%2e", "%2E", "%2f", "%41", "%7e", "%", "%zz", "a", "b", "api", "x",
        "*", "\\.", ".", "$", "^", "(", ")", "|", "[a-z]", "+", "?", "é", "\r", " ", "\t",
    ];
    run("location_match", fuzz_bodies::location_match, &tokens, 40);
}

#[test]
fn toml_config() {
    let tokens = [
        "\n",
        "\n",
        "[[server]]\n",
        "[[server.location]]\n",
        "[[server.location.location]]\n",
        "[upstream.app]\n",
        "listen = ",
        "server_name = ",
        "path = ",
        "proxy_pass = ",
        "return = ",
        "alias = ",
        "root = ",
        "index = ",
        "servers = ",
        "add_header = ",
        "proxy_set_header = ",
        "proxy_hide_header = ",
        "proxy_redirect = ",
        "client_max_body_size = ",
        "proxy_read_timeout = ",
        "keepalive_timeout = ",
        "\"127.0.0.1:8080\"",
        "\"80 default_server\"",
        "\"[::]:443 ssl\"",
        "\"/\"",
        "\"/api/\"",
        "\"= /x\"",
        "\"~* \\\\.png$\"",
        "\"http://127.0.0.1:3000/\"",
        "\"http://app\"",
        "\"https://x\"",
        "\"301 https://$host$request_uri\"",
        "404",
        "\"10m\"",
        "\"1h30m\"",
        "\"500ms\"",
        "\"127.0.0.1:3001 weight=2\"",
        "{ Host = \"$host\" }",
        "{ X = { value = \"v\", always = true } }",
        "[\"a\", \"b\"]",
        "[[\"http://a/\", \"/\"]]",
        "\"default\"",
        "\"*.example.com\"",
        "\"~^www\\\\.\"",
        "\"\"",
        "= ",
        "\"",
        "[",
        "]",
        "{",
        "}",
        ",",
        "#",
        "é",
    ];
    run("toml_config", fuzz_bodies::toml_config, &tokens, 30);
}

#[test]
fn vars_template() {
    let tokens = [
        "$",
        "$",
        "${",
        "}",
        "host",
        "http_host",
        "remote_addr",
        "proxy_add_x_forwarded_for",
        "scheme",
        "server_port",
        "request_uri",
        "uri",
        "args",
        "is_args",
        "request_method",
        "server_protocol",
        "proxy_host",
        "proxy_port",
        "http_x_real_thing",
        "http_cookie",
        "arg_y",
        "cookie_sid",
        "http_",
        "arg_",
        "cookie_",
        "_",
        "://",
        "/",
        "?",
        " ",
        "é",
        "nope",
    ];
    run("vars_template", fuzz_bodies::vars_template, &tokens, 12);
}

#[test]
fn nginx_config() {
    let tokens = [
        "server",
        "location",
        "listen",
        "80",
        "server_name",
        "proxy_pass",
        "http://127.0.0.1:1",
        "return",
        "301",
        "rewrite",
        "^/(.*)$",
        "/$1",
        "last",
        "if",
        "($host",
        "=",
        "x)",
        "map",
        "$http_upgrade",
        "$connection_upgrade",
        "default",
        "upgrade",
        "''",
        "close",
        "upstream",
        "include",
        "try_files",
        "$uri",
        "@app",
        "~*",
        "^~",
        "=",
        "{",
        "}",
        ";",
        "\"",
        "'",
        "\\",
        "#",
        "\n",
        " ",
        "$",
        "${",
        "http",
        "events",
        "add_header",
        "always",
        "proxy_set_header",
    ];
    run("nginx_config", fuzz_bodies::nginx_config, &tokens, 40);
}

#[test]
fn http1_head() {
    let tokens = [
        "\r\n",
        "\r\n",
        "\r\n\r\n",
        "\n",
        "\r",
        "GET ",
        "POST ",
        "TRACE ",
        "CONNECT ",
        "/",
        "/a%2f..",
        "%00",
        "?",
        " HTTP/1.1",
        " HTTP/1.0",
        "Host: ",
        "host: a",
        "Host: a..b",
        "Host: [::1]:80",
        "Host: a b",
        "Host: x.",
        ":8080",
        "Content-Length: ",
        "3",
        "+3",
        "Transfer-Encoding: ",
        "chunked",
        "gzip, chunked",
        "X_Under: 1",
        "X.Dot: 1",
        "X-Ok: 1",
        "Connection: close",
        "Upgrade: websocket",
        "Expect: 100-continue",
        " ",
        "\t",
        ":",
        "_",
        "a",
        "v",
        "\u{e9}",
        "\u{0}",
        "\u{1}",
    ];
    run("http1_head", fuzz_bodies::http1_head, &tokens, 40);
}

#[test]
fn upstream_response() {
    let tokens = [
        "\r\n",
        "\r\n",
        "\r\n\r\n",
        "HTTP/1.1 200 OK",
        "HTTP/1.0 200 OK",
        "HTTP/1.1 204 No Content",
        "HTTP/1.1 304 Not Modified",
        "HTTP/1.1 101 Switching",
        "Content-Length: ",
        "0",
        "3",
        "+3",
        "18446744073709551616",
        "Transfer-Encoding: ",
        "chunked",
        "gzip, chunked",
        "chunked, gzip",
        "Connection: close",
        "3\r\nabc\r\n",
        "0\r\n\r\n",
        "0\r\nX: 1\r\n\r\n",
        ";ext=1",
        "ffff",
        "-1",
        "zz",
        " ",
        "\t",
        "a",
        "\u{1}",
        "\u{80}",
    ];
    run(
        "upstream_response",
        fuzz_bodies::upstream_response,
        &tokens,
        40,
    );
}

#[test]
fn proxy_protocol() {
    let tokens = [
        "\u{0}",
        "\u{5}",
        "\u{ff}",
        "PROXY ",
        "PROXY TCP4 ",
        "PROXY TCP6 ",
        "PROXY UNKNOWN",
        "TCP4 ",
        "TCP6 ",
        "203.0.113.7 ",
        "192.0.2.1 ",
        "1.2.3.4.5 ",
        "2001:db8::7 ",
        "::1 ",
        "::ffff:1.2.3.4 ",
        "51000 ",
        "443",
        "65536",
        "0",
        " ",
        "\r\n",
        "\r",
        "\n",
        "\r\n\r\n\u{0}\r\nQUIT\n",
        "\u{21}\u{11}\u{0}\u{c}",
        "\u{21}\u{21}\u{0}\u{24}",
        "\u{20}\u{0}\u{0}\u{0}",
        "\u{21}\u{31}\u{0}\u{d8}",
        "\u{21}\u{11}\u{f}\u{ff}",
        "\u{12}\u{0}\u{3}abc",
        "\u{1}\u{2}\u{3}\u{4}",
        "GET / HTTP/1.1\r\n",
        "\u{16}\u{3}\u{1}",
    ];
    run("proxy_protocol", fuzz_bodies::proxy_protocol, &tokens, 24);
}
