//! `auth_basic` against real nginx: one htpasswd user per hash kind, each
//! made by a real tool (`openssl passwd`, Apache's `htpasswd`); `off` and
//! inheritance, `satisfy all | any` with `allow`/`deny`, `limit_except`, a
//! missing file, `try_files` after the password check, `$remote_user`;
//! and, rpx alone: hashing never stalls other requests, and a changed file
//! is read again.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use sha1::{Digest, Sha1};
use support::*;

const SERVERS: &str = r#"
    server {
        listen 127.0.0.1:LISTEN_PORT default_server;
        server_name _;
        auth_basic_user_file DIR/htpasswd;
        location /private/ {
            auth_basic "Staff only";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-User $remote_user;
            location /private/open/ {
                auth_basic off;
                proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            }
        }
        location /all/ {
            allow 127.0.0.2;
            deny all;
            auth_basic "All";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /any/ {
            satisfy any;
            allow 127.0.0.2;
            deny 127.0.0.3;
            auth_basic "Any";
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /missing/ {
            auth_basic "Missing";
            auth_basic_user_file DIR/no-such-file;
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /write/ {
            limit_except GET { auth_basic "Writers"; }
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
        }
        location /tf/ {
            auth_basic "Tried";
            root DIR;
            try_files $uri /fallback/from-tf;
        }
        location /ret/ { auth_basic "Returned"; return 200 "returned"; }
        location /fallback/ { proxy_pass http://127.0.0.1:UPSTREAM_PORT; }
        location / {
            proxy_pass http://127.0.0.1:UPSTREAM_PORT;
            proxy_set_header X-User $remote_user;
        }
    }
"#;

/// The password of every user.
const PASSWORD: &str = "s3cret pass";

/// The htpasswd lines, one user per hash kind, each made by the tool
/// people make them with.
fn htpasswd() -> String {
    let openssl = |kind: &str| {
        let out = Command::new("openssl")
            .args(["passwd", kind, PASSWORD])
            .output()
            .expect("openssl (Debian's openssl package) makes the crypt hashes");
        assert!(out.status.success(), "openssl passwd {kind}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let apache = |flag: &str, user: &str| {
        let out = Command::new("htpasswd")
            .args(["-nb", flag, user, PASSWORD])
            .output()
            .expect("htpasswd (Debian's apache2-utils) makes bcrypt and {SHA}");
        assert!(out.status.success(), "htpasswd {flag}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // {SSHA}: the SHA-1 of password and salt, then the salt (no common
    // tool makes it; OpenLDAP's slappasswd does).
    let salt = b"NaCl";
    let mut sha = Sha1::new();
    sha.update(PASSWORD);
    sha.update(salt);
    let mut ssha = sha.finalize().to_vec();
    ssha.extend_from_slice(salt);
    let ssha = base64::engine::general_purpose::STANDARD.encode(ssha);
    [
        "# one user per kind".to_owned(),
        format!("apr1:{}", openssl("-apr1")),
        format!("md5:{}", openssl("-1")),
        format!("sha256:{}", openssl("-5")),
        format!("sha512:{}", openssl("-6")),
        apache("-B", "bcrypt"),
        apache("-s", "sha"),
        format!("ssha:{{SSHA}}{ssha}"),
        format!("plain:{{PLAIN}}{PASSWORD}"),
        format!("first:{{PLAIN}}{PASSWORD}:a comment field"),
        "first:{PLAIN}the second line of a user does not count".to_owned(),
    ]
    .join("\n")
        + "\n"
}

const USERS: &[&str] = &[
    "apr1", "md5", "sha256", "sha512", "bcrypt", "sha", "ssha", "plain", "first",
];

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// What a client and the upstream saw: status, `WWW-Authenticate`, and
/// the upstream's request line with its `X-User` and `Authorization`.
async fn observe(
    addr: SocketAddr,
    up: &Upstream,
    from: &str,
    probe: &str,
    auth: Option<&str>,
) -> String {
    let (method, path) = probe.split_once(' ').unwrap_or(("GET", probe));
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "a");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let from: IpAddr = from.parse().unwrap();
    let got = send_from(addr, Some(from), req).await;
    let challenge = got
        .headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let upstream = up.take().first().map(|s| {
        let h = |n: &str| s.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        format!(
            "{} {} x-user={:?} authorization={:?}",
            s.method,
            s.uri,
            h("x-user"),
            h("authorization")
        )
    });
    format!("{} {challenge:?} {upstream:?}", got.status.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_basic_matches_nginx() {
    let Some(both) = nginx::Both::start("auth-basic", SERVERS).await else {
        eprintln!("RPX_SKIP_NGINX=1: skipping");
        return;
    };
    std::fs::write(both.dir.join("htpasswd"), htpasswd()).unwrap();
    let good = |u: &str| basic(u, PASSWORD);
    let mut probes: Vec<(&str, &str, Option<String>)> = Vec::new();
    for user in USERS {
        probes.push(("127.0.0.1", "/private/x", Some(good(user))));
        probes.push(("127.0.0.1", "/private/x", Some(basic(user, "s3cret pasS"))));
    }
    let alice = Some(good("plain"));
    for (from, path, auth) in [
        ("127.0.0.1", "/private/x", None),
        ("127.0.0.1", "/private/x", Some(basic("nobody", PASSWORD))),
        ("127.0.0.1", "/private/x", Some(basic("", PASSWORD))),
        ("127.0.0.1", "/private/x", Some("Bearer abc".to_owned())),
        ("127.0.0.1", "/private/x", Some("Basic !!!!".to_owned())),
        (
            "127.0.0.1",
            "/private/x",
            Some("basic cGxhaW46czNjcmV0IHBhc3M".to_owned()),
        ),
        ("127.0.0.1", "/private/x", Some("Basic cGxhaW4=".to_owned())),
        ("127.0.0.1", "/private/open/x", None),
        ("127.0.0.1", "/all/x", alice.clone()),
        ("127.0.0.2", "/all/x", None),
        ("127.0.0.2", "/all/x", alice.clone()),
        ("127.0.0.2", "/any/x", None),
        ("127.0.0.3", "/any/x", None),
        ("127.0.0.3", "/any/x", alice.clone()),
        ("127.0.0.4", "/any/x", None),
        ("127.0.0.4", "/any/x", alice.clone()),
        ("127.0.0.1", "/missing/x", None),
        ("127.0.0.1", "/missing/x", alice.clone()),
        ("127.0.0.1", "/write/x", None),
        ("127.0.0.1", "HEAD /write/x", None),
        ("127.0.0.1", "POST /write/x", None),
        ("127.0.0.1", "DELETE /write/x", alice.clone()),
        ("127.0.0.1", "/tf/x", None),
        ("127.0.0.1", "/tf/x", alice.clone()),
        ("127.0.0.1", "/ret/x", None),
        ("127.0.0.1", "/other", alice.clone()),
        ("127.0.0.1", "/other", Some(basic("nobody", "x"))),
    ] {
        probes.push((from, path, auth));
    }
    let (up, nginx_addr, rpx_addr) = (&both.up, both.nginx, both.rpx);
    let mut diffs = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for (from, path, auth) in &probes {
        let want = observe(nginx_addr, up, from, path, auth.as_deref()).await;
        let got = observe(rpx_addr, up, from, path, auth.as_deref()).await;
        *statuses.entry(want[..3].to_owned()).or_insert(0) += 1;
        if want != got {
            diffs.push(format!(
                "{from} {path} {auth:?}:\n  nginx {want}\n  rpx   {got}"
            ));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
    // The table exercises every outcome.
    for code in ["200", "401", "403"] {
        assert!(statuses.get(code).is_some_and(|&n| n > 0), "{statuses:?}");
    }
    assert!(statuses["200"] >= USERS.len(), "{statuses:?}");
}

/// A config of one protected location and one open one, under rpx.
async fn rpx_alone(tag: &str, users: &str) -> (Running, Upstream, std::path::PathBuf) {
    let up = Upstream::start(1).await;
    let dir = temp_dir(tag);
    let file = dir.join("htpasswd");
    std::fs::write(&file, users).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "events {{}}\nhttp {{ server {{ listen 127.0.0.1:0; \
             location /private/ {{ auth_basic \"x\"; auth_basic_user_file {}; proxy_pass http://{}; }} \
             location / {{ proxy_pass http://{}; }} }} }}\n",
            file.display(),
            up.addr,
            up.addr
        ),
    )
    .unwrap();
    let rpx = serve_file(&conf, false)
        .await
        .expect("rpx loads the config");
    (rpx, up, file)
}

async fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> u16 {
    let mut req = http::Request::get(path).header("host", "a");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    send(addr, req.body(Full::new(Bytes::new())).unwrap())
        .await
        .status
        .as_u16()
}

/// bcrypt at cost 13 takes a core for about half a second. With more such
/// checks in flight than the runtime has threads, a request that needs no
/// password is answered before the first of them is: hashing on the
/// runtime's threads would make it wait for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_never_stalls_other_requests() {
    let out = Command::new("htpasswd")
        .args(["-nbB", "-C", "13", "slow", PASSWORD])
        .output()
        .expect("htpasswd (Debian's apache2-utils)");
    let (rpx, _up, _file) = rpx_alone("auth-stall", &String::from_utf8(out.stdout).unwrap()).await;
    let addr = rpx.listeners[0].1;
    // Wrong passwords, all different: nothing is remembered, each hashes.
    let mut checks = Vec::new();
    for i in 0..6 {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "GET /private/x HTTP/1.1\r\nHost: a\r\nAuthorization: {}\r\n\r\n",
            basic("slow", &format!("wrong {i}"))
        );
        tokio::io::AsyncWriteExt::write_all(&mut conn, head.as_bytes())
            .await
            .unwrap();
        checks.push(tokio::spawn(async move {
            let mut buf = [0u8; 12];
            tokio::io::AsyncReadExt::read_exact(&mut conn, &mut buf)
                .await
                .unwrap();
            (String::from_utf8_lossy(&buf).into_owned(), Instant::now())
        }));
    }
    // No signal says rpx has begun hashing; a moment lets it. (Too short
    // a moment could only let the test pass, never fail, wrongly.)
    tokio::time::sleep(Duration::from_millis(100)).await;
    let open = get(addr, "/open", None).await;
    let open_at = Instant::now();
    let mut first = None::<Instant>;
    for c in checks {
        let (status, at) = tokio::time::timeout(LIMIT, c).await.unwrap().unwrap();
        assert_eq!(status, "HTTP/1.1 401");
        first = Some(first.map_or(at, |f| f.min(at)));
    }
    assert_eq!(open, 200);
    let first = first.unwrap();
    assert!(
        open_at < first,
        "the open request waited for a hash ({:?} after the first)",
        open_at - first
    );
}

/// A changed file is read again (within rpx's one-second look), and a
/// remembered password does not outlive its user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_read_again() {
    let (rpx, _up, file) = rpx_alone("auth-reread", "alice:{PLAIN}one\n").await;
    let addr = rpx.listeners[0].1;
    let one = basic("alice", "one");
    let two = basic("alice", "two");
    assert_eq!(get(addr, "/private/x", Some(&one)).await, 200);
    assert_eq!(get(addr, "/private/x", Some(&one)).await, 200, "remembered");
    write_new(&file, "alice:{PLAIN}two\n");
    assert!(
        eventually(|| async { get(addr, "/private/x", Some(&two)).await == 200 }).await,
        "the new password is taken"
    );
    assert_eq!(
        get(addr, "/private/x", Some(&one)).await,
        401,
        "the old one is not"
    );
    std::fs::remove_file(&file).unwrap();
    assert!(
        eventually(|| async { get(addr, "/private/x", Some(&two)).await == 403 }).await,
        "a removed file is nginx's 403"
    );
}

/// Replaces a file as editors and `htpasswd` do: a new inode.
fn write_new(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `cond` until it holds, for at most the tests' bound.
async fn eventually<F, Fut>(cond: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[test]
fn auth_basic_converts_to_toml_and_back() {
    let dir = temp_dir("auth-convert");
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        "events {}\nhttp {\n  auth_basic_user_file htpasswd;\n  server {\n    listen 127.0.0.1:8080;\n    satisfy any;\n    allow 10.0.0.0/8;\n    location /a/ { auth_basic \"Staff only\"; proxy_pass http://127.0.0.1:9; }\n    location /b/ { auth_basic off; proxy_pass http://127.0.0.1:9; }\n    location /c/ { limit_except GET { auth_basic \"W\"; auth_basic_user_file /etc/w; } proxy_pass http://127.0.0.1:9; }\n  }\n}\n",
    )
    .unwrap();
    let loaded = rpx_core::config::nginx::load_config(&conf, Default::default());
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let toml = rpx_core::config::to_toml(&loaded.config).expect("writes TOML");
    for want in [
        &format!("users = \"{}\"", dir.join("htpasswd").display()) as &str,
        "satisfy = \"any\"",
        "realm = \"Staff only\"",
        "basic_auth = false",
        "realm = \"W\"",
        "users = \"/etc/w\"",
    ] {
        assert!(toml.contains(want), "{want} in\n{toml}");
    }
    let back = rpx_core::config::parse_toml(&toml, "rpx.toml").expect("reads back");
    let s = &back.servers[0];
    assert_eq!(
        s.settings.satisfy,
        loaded.config.servers[0].settings.satisfy
    );
    for (a, b) in s.locations.iter().zip(&loaded.config.servers[0].locations) {
        assert_eq!(
            a.settings.auth_basic.as_ref().map(|r| &r.value),
            b.settings.auth_basic.as_ref().map(|r| &r.value)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The TOML form: `basic_auth` (realm and users inherited apart),
/// `basic_auth = false`, `satisfy = "any"`, `basic_auth` in
/// `limit_except`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_basic_auth() {
    let up = Upstream::start(1).await;
    let dir = temp_dir("auth-toml");
    let users = dir.join("htpasswd");
    std::fs::write(&users, format!("plain:{{PLAIN}}{PASSWORD}\n")).unwrap();
    let toml = format!(
        r#"
        basic_auth = {{ users = "{users}" }}
        [[server]]
        listen = "127.0.0.1:8080"
        [[server.location]]
        path = "/private/"
        proxy_pass = "http://{up}"
        basic_auth = {{ realm = "Staff only" }}
        [[server.location]]
        path = "/private/open/"
        proxy_pass = "http://{up}"
        basic_auth = false
        [[server.location]]
        path = "/office/"
        proxy_pass = "http://{up}"
        basic_auth = {{ realm = "Office" }}
        satisfy = "any"
        allow = "127.0.0.2"
        [[server.location]]
        path = "/write/"
        proxy_pass = "http://{up}"
        limit_except = {{ methods = ["GET"], basic_auth = {{ realm = "Writers" }} }}
        "#,
        users = users.display(),
        up = up.addr
    );
    let cfg = rpx_core::config::parse_toml(&toml, "auth.toml").expect("config");
    let back = rpx_core::config::to_toml(&cfg).expect("convert");
    let again = rpx_core::config::to_toml(
        &rpx_core::config::parse_toml(&back, "again.toml").expect("reads back"),
    )
    .expect("convert again");
    assert_eq!(again, back, "basic_auth round-trips");
    let rpx = serve_config(&cfg, Vec::new()).await.expect("serve");
    let addr = rpx.listeners[0].1;
    let good = basic("plain", PASSWORD);
    for (from, probe, auth, want, realm) in [
        (
            "127.0.0.1",
            "/private/x",
            None,
            401,
            Some("Basic realm=\"Staff only\""),
        ),
        ("127.0.0.1", "/private/x", Some(&good), 200, None),
        ("127.0.0.1", "/private/open/x", None, 200, None),
        (
            "127.0.0.1",
            "/office/x",
            None,
            401,
            Some("Basic realm=\"Office\""),
        ),
        ("127.0.0.2", "/office/x", None, 200, None),
        ("127.0.0.1", "/write/x", None, 200, None),
        (
            "127.0.0.1",
            "POST /write/x",
            None,
            401,
            Some("Basic realm=\"Writers\""),
        ),
        ("127.0.0.1", "POST /write/x", Some(&good), 200, None),
    ] {
        let (method, path) = probe.split_once(' ').unwrap_or(("GET", probe));
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "a");
        if let Some(a) = auth {
            req = req.header("authorization", a.as_str());
        }
        let got = send_from(
            addr,
            Some(from.parse().unwrap()),
            req.body(Full::new(Bytes::new())).unwrap(),
        )
        .await;
        assert_eq!(got.status.as_u16(), want, "{from} {probe} {auth:?}");
        assert_eq!(
            got.headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            realm,
            "{from} {probe}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
