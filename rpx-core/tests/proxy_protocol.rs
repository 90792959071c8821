//! `listen … proxy_protocol`, `$proxy_protocol_*` and `real_ip_header
//! proxy_protocol`: PROXY protocol v1 and v2 headers written raw on
//! loopback sockets, plain and before TLS, against rpx and against real
//! nginx; refusals, the header cut into pieces, a timeout, access lists
//! keyed on the header's address, the TOML form and reloads.

mod support;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// A version 2 header: command (0 LOCAL, 1 PROXY), family byte, block.
fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = SIG.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

/// Version 2, PROXY, TCP over IPv4, then `tlvs`.
fn v2_tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, tlvs: &[u8]) -> Vec<u8> {
    let block = [
        &src[..],
        &dst,
        &sport.to_be_bytes(),
        &dport.to_be_bytes(),
        tlvs,
    ]
    .concat();
    v2(1, 0x11, &block)
}

/// Version 2, PROXY, TCP over IPv6.
fn v2_tcp6(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
    let block = [
        &ip(src)[..],
        &ip(dst),
        &sport.to_be_bytes(),
        &dport.to_be_bytes(),
    ]
    .concat();
    v2(1, 0x21, &block)
}

/// Some TLVs (ALPN, authority, NOOP, an unknown type), which are skipped.
const TLVS: &[u8] = b"\x01\x00\x02h2\x02\x00\x0bexample.com\x04\x00\x03\0\0\0\xee\x00\x00";

fn request(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A loopback connection to `addr` from `from`.
async fn connect(addr: SocketAddr, from: IpAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind((from, 0).into()).expect("bind the source");
    let stream = socket.connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Writes `pieces` one write each, then reads to the end: the response, or
/// `None` when the server closed without a byte (a reset counts: nginx
/// and rpx close with the client's bytes unread).
async fn exchange<S>(mut stream: S, pieces: &[&[u8]]) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let talk = async {
        for (i, p) in pieces.iter().enumerate() {
            if i > 0 {
                // Not a synchronisation: only makes separate reads likely;
                // the answer must be the same either way.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if stream.write_all(p).await.is_err() {
                break;
            }
        }
        let _ = stream.flush().await;
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(LIMIT, talk)
        .await
        .expect("the exchange timed out")
}

fn status(response: &Option<String>) -> Option<u16> {
    response
        .as_deref()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()
}

/// What the upstream saw about the client, with the test client's own
/// port (which differs between runs) written as `PEER`.
fn seen(up: &Upstream, peer_port: u16) -> Vec<(String, String)> {
    let Some(s) = up.take().into_iter().next() else {
        return Vec::new();
    };
    [
        "x-pp",
        "x-pp-port",
        "x-pp-server",
        "x-pp-server-port",
        "x-real",
        "x-port",
        "x-peer",
    ]
    .iter()
    .filter_map(|n| {
        let v = s.headers.get(*n)?.to_str().ok()?;
        let v = if v == peer_port.to_string() {
            "PEER"
        } else {
            v
        };
        Some((n.to_string(), v.to_owned()))
    })
    .collect()
}

/// Every variable, plain and through realip.
const LOCATIONS: &str = r#"
        location / {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-PP $proxy_protocol_addr;
            proxy_set_header X-PP-Port $proxy_protocol_port;
            proxy_set_header X-PP-Server $proxy_protocol_server_addr;
            proxy_set_header X-PP-Server-Port $proxy_protocol_server_port;
            proxy_set_header X-Real $remote_addr;
            proxy_set_header X-Port $remote_port;
            proxy_set_header X-Peer $realip_remote_addr;
        }
        location /deny/ {
            deny 203.0.113.7;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
"#;

/// Servers on one `proxy_protocol` listener: variables only (the default),
/// the real address from a trusted peer (`rip.test`), and from peers not
/// trusted (`untrusted.test`).
fn servers(listen: &str) -> String {
    format!(
        r#"
    server {{
        listen 127.0.0.1:LISTEN_PORT {listen} default_server;
        server_name _;
        {LOCATIONS}
    }}
    server {{
        listen 127.0.0.1:LISTEN_PORT {listen};
        server_name rip.test;
        set_real_ip_from 127.0.0.1;
        real_ip_header proxy_protocol;
        {LOCATIONS}
    }}
    server {{
        listen 127.0.0.1:LISTEN_PORT {listen};
        server_name untrusted.test;
        set_real_ip_from 192.0.2.0/24;
        real_ip_header proxy_protocol;
        {LOCATIONS}
    }}
"#
    )
}

/// Headers nginx and rpx take alike, each with what follows it.
fn headers() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "v1 TCP4",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 1001 443\r\n".to_vec(),
        ),
        (
            "v1 TCP4 other",
            b"PROXY TCP4 198.51.100.9 192.0.2.1 0 8443\r\n".to_vec(),
        ),
        (
            "v1 TCP6",
            b"PROXY TCP6 2001:db8::7 2001:db8::1 1002 443\r\n".to_vec(),
        ),
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec()),
        (
            "v1 UNKNOWN with addresses",
            b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".to_vec(),
        ),
        (
            "v2 TCP4",
            v2_tcp4([203, 0, 113, 7], 1001, [192, 0, 2, 1], 443, &[]),
        ),
        (
            "v2 TCP4 TLVs",
            v2_tcp4([198, 51, 100, 9], 1234, [192, 0, 2, 1], 80, TLVS),
        ),
        ("v2 TCP6", v2_tcp6("2001:db8::7", 1002, "2001:db8::1", 443)),
        (
            "v2 TCP6 v4-mapped",
            v2_tcp6("::ffff:203.0.113.7", 1003, "::ffff:192.0.2.1", 443),
        ),
        ("v2 LOCAL", v2(0, 0x00, &[])),
        ("v2 LOCAL with addresses", v2(0, 0x11, &[9; 12])),
        ("v2 UNSPEC", v2(1, 0x00, TLVS)),
        ("v2 UDP4", v2(1, 0x12, &[1; 12])),
    ]
}

/// Bytes both close the connection for, unanswered.
fn refused() -> Vec<(&'static str, Vec<u8>)> {
    let mut bad_version = v2_tcp4([1, 2, 3, 4], 1, [5, 6, 7, 8], 2, &[]);
    bad_version[12] = 0x11;
    vec![
        ("no header", Vec::new()),
        ("v1 missing fields", b"PROXY TCP4 203.0.113.7\r\n".to_vec()),
        (
            "v1 unknown protocol",
            b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n".to_vec(),
        ),
        (
            "v1 bad port",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 70000 2\r\n".to_vec(),
        ),
        ("v1 LF only", b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n".to_vec()),
        (
            "v1 lower case",
            b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n".to_vec(),
        ),
        ("v2 version 1", bad_version),
        ("v2 short addresses", v2(1, 0x21, &[0; 12])),
        (
            "v2 bad signature",
            b"\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c".to_vec(),
        ),
    ]
}

/// One case against one server: the status (None: closed unanswered) and
/// what the upstream saw.
async fn observe(
    addr: SocketAddr,
    up: &Upstream,
    from: IpAddr,
    header: &[u8],
    host: &str,
    path: &str,
) -> (Option<u16>, Vec<(String, String)>) {
    let stream = connect(addr, from).await;
    let port = stream.local_addr().unwrap().port();
    let bytes = [header, &request(host, path)].concat();
    let got = exchange(stream, &[&bytes]).await;
    (status(&got), seen(up, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_match_nginx() {
    let Some(both) = nginx::Both::start("proxy-protocol", &servers("proxy_protocol")).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let mut diffs = Vec::new();
    let mut count = 0;
    let cases = headers().into_iter().chain(refused());
    let probes = [
        ("a", "/"),
        ("a", "/deny/x"),
        ("rip.test", "/"),
        ("rip.test", "/deny/x"),
        ("untrusted.test", "/"),
    ];
    let cases: Vec<_> = cases.collect();
    for from in ["127.0.0.1", "127.0.0.2"] {
        let from: IpAddr = from.parse().unwrap();
        for (name, header) in &cases {
            for (host, path) in probes {
                let want = observe(both.nginx, &both.up, from, header, host, path).await;
                let got = observe(both.rpx, &both.up, from, header, host, path).await;
                count += 1;
                if want != got {
                    diffs.push(format!(
                        "{from} {name} {host}{path}:\n  nginx {want:?}\n  rpx   {got:?}"
                    ));
                }
            }
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    assert!(count > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_after_the_header_matches_nginx() {
    let pki = Pki::new();
    let listen = "ssl proxy_protocol";
    let servers = format!(
        "    ssl_certificate {};\n    ssl_certificate_key {};\n{}",
        pki.cert.display(),
        pki.key.display(),
        servers(listen)
    );
    let Some(both) = nginx::Both::start_tls("proxy-protocol-tls", &servers).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let cases = [
        (
            "v1",
            b"PROXY TCP4 203.0.113.7 192.0.2.1 1001 443\r\n".to_vec(),
        ),
        ("v2", v2_tcp6("2001:db8::7", 1002, "2001:db8::1", 443)),
        ("v2 LOCAL", v2(0, 0, &[])),
        ("none", Vec::new()),
    ];
    let mut diffs = Vec::new();
    for (name, header) in &cases {
        for host in ["a", "rip.test"] {
            let mut view = Vec::new();
            for addr in [both.nginx, both.rpx] {
                let mut stream = connect(addr, lo).await;
                let port = stream.local_addr().unwrap().port();
                stream.write_all(header).await.unwrap();
                let tls = pki.handshake(stream).await;
                let got = match tls {
                    Some(tls) => exchange(tls, &[&request(host, "/")]).await,
                    None => None,
                };
                view.push((status(&got), seen(&both.up, port)));
            }
            if view[0] != view[1] {
                diffs.push(format!(
                    "{name} {host}:\n  nginx {:?}\n  rpx   {:?}",
                    view[0], view[1]
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

/// A config of [`servers`] served by rpx alone, and its upstream.
async fn rpx_alone(tag: &str, extra: &str) -> (SocketAddr, Upstream, Running) {
    let up = Upstream::start(1).await;
    let dir = temp_dir(tag);
    let text = format!("{extra}{}", servers("proxy_protocol"))
        .replace("LISTEN_PORT", "8080")
        .replace("UPSTREAM_PORT", &up.addr.port().to_string());
    let conf = nginx::write_config(&dir, &text);
    let rpx = serve_file(&conf, false)
        .await
        .expect("rpx loads the config");
    (rpx.listeners[0].1, up, rpx)
}

#[tokio::test]
async fn the_header_may_come_in_pieces() {
    let (addr, up, _rpx) = rpx_alone("pp-pieces", "").await;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 1001 443\r\n".to_vec();
    let v2 = v2_tcp4([203, 0, 113, 7], 1001, [192, 0, 2, 1], 443, TLVS);
    let req = request("rip.test", "/");
    for header in [&v1, &v2] {
        for cuts in [&[1usize][..], &[5, 13, 14], &[header.len() - 1]] {
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut at = 0;
            for &c in cuts {
                pieces.push(&header[at..c]);
                at = c;
            }
            // The rest of the header with the request's first bytes, then the rest.
            let tail = [&header[at..], &req[..3]].concat();
            pieces.push(&tail);
            pieces.push(&req[3..]);
            let stream = connect(addr, lo).await;
            let got = exchange(stream, &pieces).await;
            assert_eq!(status(&got), Some(200), "{cuts:?}: {got:?}");
            let view = seen(&up, 0);
            assert!(
                view.contains(&("x-real".into(), "203.0.113.7".into()))
                    && view.contains(&("x-pp-port".into(), "1001".into())),
                "{view:?}"
            );
        }
    }
}

#[tokio::test]
async fn refusals_close_without_an_answer() {
    let (addr, up, _rpx) = rpx_alone("pp-refused", "").await;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let mut cases = refused();
    // rpx is stricter than nginx about these (docs/nginx-compat.md).
    cases.extend([
        (
            "v1 not an address",
            b"PROXY TCP4 1.2.3.4.5 1.2.3.4 1 2\r\n".to_vec(),
        ),
        (
            "v1 family mismatch",
            b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n".to_vec(),
        ),
        (
            "v1 too long",
            [&b"PROXY UNKNOWN "[..], &[b'a'; 100], b"\r\n"].concat(),
        ),
        ("v2 command 2", v2(2, 0x11, &[0; 12])),
        ("v2 family 0x41", v2(1, 0x41, &[0; 12])),
        ("v2 over 4096 bytes", v2(1, 0x11, &[0; 4081])),
        (
            "a TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
    ]);
    for (name, header) in cases {
        let stream = connect(addr, lo).await;
        let bytes = [&header[..], &request("a", "/")].concat();
        let got = exchange(stream, &[&bytes]).await;
        assert_eq!(got, None, "{name}");
    }
    assert!(up.take().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn a_header_must_come_within_client_header_timeout() {
    let (addr, _up, _rpx) = rpx_alone("pp-timeout", "    client_header_timeout 1s;\n").await;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    for sent in [&b""[..], b"PROXY TCP4 1.2.3.4 ", &SIG[..7]] {
        let stream = connect(addr, lo).await;
        let started = std::time::Instant::now();
        assert_eq!(exchange(stream, &[sent]).await, None);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{sent:?}: closed after {took:?}"
        );
    }
}

#[tokio::test]
async fn http2_with_prior_knowledge_after_the_header() {
    let (addr, up, _rpx) = rpx_alone("pp-h2c", "").await;
    let mut stream = connect(addr, "127.0.0.1".parse().unwrap()).await;
    let header = v2_tcp6("2001:db8::7", 1002, "2001:db8::1", 443);
    stream.write_all(&header).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get("http://rip.test/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = tokio::time::timeout(LIMIT, sender.send_request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(res.status(), 200);
    let view = seen(&up, 0);
    assert!(
        view.contains(&("x-real".into(), "2001:db8::7".into()))
            && view.contains(&("x-peer".into(), "127.0.0.1".into())),
        "{view:?}"
    );
}

#[tokio::test]
async fn toml_listen_and_real_ip_round_trip() {
    let up = Upstream::start(1).await;
    let toml = format!(
        r#"
        [[server]]
        listen = "127.0.0.1:8080 proxy_protocol"
        real_ip = {{ from = ["127.0.0.1"], header = "proxy_protocol" }}
        deny = "203.0.113.7"
        [[server.location]]
        path = "/"
        proxy_pass = "http://{up}"
        proxy_set_header = {{ X-Real = "$remote_addr", X-PP = "$proxy_protocol_addr" }}
        "#,
        up = up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "pp.toml").expect("config");
    assert!(cfg.servers[0].listen[0].proxy_protocol);
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    assert!(back.contains("127.0.0.1:8080 proxy_protocol"), "{back}");
    assert!(back.contains("header = \"proxy_protocol\""), "{back}");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let header = b"PROXY TCP4 198.51.100.9 192.0.2.1 1000 80\r\n";
    assert_eq!(
        observe(addr, &up, lo, header, "a", "/").await,
        (
            Some(200),
            vec![
                ("x-pp".into(), "198.51.100.9".into()),
                ("x-real".into(), "198.51.100.9".into())
            ]
        )
    );
    let denied = b"PROXY TCP4 203.0.113.7 192.0.2.1 1000 80\r\n";
    assert_eq!(
        observe(addr, &up, lo, denied, "a", "/").await.0,
        Some(403),
        "deny keys on the header's address"
    );
}

#[test]
fn nginx_config_errors_and_warnings() {
    let dir = temp_dir("pp-config");
    let load = |text: &str| {
        let conf = nginx::write_config(&dir, text);
        let loaded = rpx_core::config::load_with(&conf, Default::default());
        let mut said: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        if said.is_empty() {
            match rpx_core::stack::compile(&loaded.config) {
                Ok(s) => said.extend(s.warnings().iter().map(ToString::to_string)),
                Err(e) => said.extend(e.0.iter().map(ToString::to_string)),
            }
        }
        said.iter()
            .map(|s| s.replace(&dir.display().to_string(), "DIR"))
            .collect::<Vec<_>>()
    };
    // The TLVs are skipped: asking for one is an error naming the line.
    let said = load(
        "server {\n listen 8080 proxy_protocol;\n location / {\n return 200 $proxy_protocol_tlv_alpn;\n }\n}\n",
    );
    assert!(
        said.iter().any(|s| s.contains("nginx.conf:16")
            && s.contains("$proxy_protocol_tlv_alpn")
            && s.contains("not supported")),
        "{said:?}"
    );
    // One server's flag holds for the whole address, as nginx.
    let said = load(
        "server { listen 8080 proxy_protocol; }\nserver {\n listen 8080;\n server_name b;\n}\n",
    );
    assert!(
        said.iter().any(|s| s.contains("nginx.conf:15")
            && s.contains("PROXY protocol header for this server too")),
        "{said:?}"
    );
    // realip from a header no listener reads does nothing: said.
    let said = load(
        "server {\n listen 8080;\n set_real_ip_from 10.0.0.0/8;\n real_ip_header proxy_protocol;\n}\n",
    );
    assert!(
        said.iter()
            .any(|s| s.contains("nginx.conf:16") && s.contains("never changes")),
        "{said:?}"
    );
    let said = load(
        "server {\n listen 8080 proxy_protocol;\n set_real_ip_from 10.0.0.0/8;\n real_ip_header proxy_protocol;\n}\n",
    );
    assert!(said.is_empty(), "{said:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rpx_convert_writes_the_toml_form() {
    let dir = temp_dir("pp-convert");
    let conf = nginx::write_config(
        &dir,
        "server {\n listen 127.0.0.1:8443 ssl proxy_protocol default_server;\n set_real_ip_from 10.0.0.0/8;\n real_ip_header proxy_protocol;\n}\n",
    );
    let (cfg, _) = rpx_core::config::load_with(&conf, Default::default())
        .into_result()
        .expect("loads");
    let text = rpx_core::config::to_toml(&cfg).expect("converts");
    assert!(
        text.contains("\"127.0.0.1:8443 default_server ssl proxy_protocol\""),
        "{text}"
    );
    assert!(text.contains("header = \"proxy_protocol\""), "{text}");
    let back = rpx_core::config::parse_toml(&text, "pp.toml").expect("reads back");
    assert!(back.servers[0].listen[0].proxy_protocol && back.servers[0].listen[0].ssl);
    assert_eq!(rpx_core::config::to_toml(&back).expect("again"), text);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_reload_turns_the_header_on_and_off() {
    let up = Upstream::start(1).await;
    let port = nginx::free_port();
    let snapshot = |pp: &str| {
        let toml = format!(
            r#"
            [[server]]
            listen = "127.0.0.1:{port} {pp}"
            [[server.location]]
            path = "/"
            proxy_pass = "http://{up}"
            proxy_set_header = {{ X-PP = "$proxy_protocol_addr" }}
            "#,
            up = up.addr
        );
        rpx_core::stack::compile(&rpx_core::config::parse_toml(&toml, "r.toml").unwrap()).unwrap()
    };
    let plain = snapshot("");
    let rpx = rpx_core::Rpx::new(plain);
    let mut set = rpx_core::server::ListenerSet::new(rpx.clone(), Duration::from_secs(1));
    let specs = rpx.snapshot().listeners().to_vec();
    let bound = set.apply(&specs).await.expect("bind");
    let addr = bound[0].1;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let header = b"PROXY TCP4 198.51.100.9 192.0.2.1 1000 80\r\n";
    assert_eq!(observe(addr, &up, lo, b"", "a", "/").await.0, Some(200));

    let with = snapshot("proxy_protocol");
    let specs = with.listeners().to_vec();
    rpx.swap(with);
    assert_eq!(
        set.apply(&specs).await.expect("apply")[0].1,
        addr,
        "same socket"
    );
    assert_eq!(observe(addr, &up, lo, b"", "a", "/").await.0, None);
    let got = observe(addr, &up, lo, header, "a", "/").await;
    assert_eq!(
        got,
        (Some(200), vec![("x-pp".into(), "198.51.100.9".into())])
    );

    let without = snapshot("");
    let specs = without.listeners().to_vec();
    rpx.swap(without);
    set.apply(&specs).await.expect("apply");
    assert_eq!(observe(addr, &up, lo, b"", "a", "/").await.0, Some(200));
    set.shutdown().await;
}

/// A CA and a certificate it issued for `localhost`, in a fresh directory.
struct Pki {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    client: Arc<rustls::ClientConfig>,
}

impl Pki {
    fn new() -> Pki {
        let dir = temp_dir("pp-pki");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "rpx PROXY protocol test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let issued = leaf.signed_by(&key, &ca).unwrap();
        let (cert, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, issued.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(rpx_core::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Pki {
            cert,
            key: key_path,
            client: Arc::new(client),
        }
    }

    /// A TLS session on `stream`, or None when the server refuses it.
    async fn handshake(
        &self,
        stream: TcpStream,
    ) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connect = tokio_rustls::TlsConnector::from(self.client.clone()).connect(name, stream);
        tokio::time::timeout(LIMIT, connect)
            .await
            .expect("handshake in time")
            .ok()
    }
}
