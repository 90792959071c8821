//! Automatic HTTPS against a real ACME server (Debian's pebble): issuance
//! by http-01, tls-alpn-01 and dns-01 (wildcard, hook script), the stored
//! certificate reused after a restart, renewal of a due certificate, and a
//! CA that is down at start. Everything listens on 127.0.0.1.

mod common;
mod pebble;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::bounded;
use pebble::{Pebble, PebbleOptions, TempDir};
use rpx_core::acme::AcmeOptions;
use rpx_core::server::{serve_with_cell, ServeOptions, TlsCell};
use rpx_core::stack::{compile_with, CompileOptions};
use rpx_core::Rpx;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpListener;

/// Orders may take a while on a busy machine; nothing waits longer.
const ISSUE_LIMIT: Duration = Duration::from_secs(90);

/// rpx serving a config whose `{http}` and `{https}` placeholders are the
/// addresses of two listeners bound before (pebble must know the ports).
struct Rpx2 {
    rpx: Rpx,
    /// The config as served (placeholders filled in).
    config: rpx_core::config::Config,
    http: SocketAddr,
    https: SocketAddr,
    /// Each listener's TLS settings, swapped by [`Rpx2::replace`].
    tls: Vec<(SocketAddr, TlsCell)>,
    _stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

struct Bound {
    http: TcpListener,
    https: TcpListener,
}

impl Bound {
    async fn new() -> Bound {
        Bound {
            http: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            https: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn ports(&self) -> (u16, u16) {
        (
            self.http.local_addr().unwrap().port(),
            self.https.local_addr().unwrap().port(),
        )
    }
}

/// Listeners for rpx and a pebble that validates on their ports
/// (`opts`' ports are filled in).
async fn with_pebble(opts: PebbleOptions) -> (Bound, Pebble) {
    let bound = Bound::new().await;
    let (http_port, tls_port) = bound.ports();
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        ..opts
    })
    .await;
    (bound, pebble)
}

fn fast() -> AcmeOptions {
    AcmeOptions {
        retry_min: Duration::from_millis(300),
        retry_max: Duration::from_secs(2),
        ..AcmeOptions::default()
    }
}

/// `toml` with `{http}`/`{https}` filled in, compiled with a fresh ACME
/// manager and short retry waits.
fn compile_on(
    toml: &str,
    http: SocketAddr,
    https: SocketAddr,
) -> (rpx_core::config::Config, rpx_core::Snapshot) {
    let toml = toml
        .replace("{http}", &http.to_string())
        .replace("{https}", &https.to_string());
    let config =
        rpx_core::config::parse_toml(&toml, "acme.toml").unwrap_or_else(|e| panic!("config:\n{e}"));
    let snapshot = compile_with(
        &config,
        &CompileOptions {
            previous: None,
            acme: fast(),
        },
    )
    .unwrap_or_else(|e| panic!("compile:\n{e}"));
    (config, snapshot)
}

impl Rpx2 {
    async fn start(bound: Bound, toml: &str) -> Rpx2 {
        let http = bound.http.local_addr().unwrap();
        let https = bound.https.local_addr().unwrap();
        let (config, snapshot) = compile_on(toml, http, https);
        let specs = snapshot.listeners().to_vec();
        snapshot.start_background();
        let rpx = Rpx::new(snapshot);
        let mut stops = Vec::new();
        let mut tls = Vec::new();
        for (listener, addr) in [(bound.http, http), (bound.https, https)] {
            let Some(spec) = specs.iter().find(|s| s.addr == addr) else {
                continue;
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            stops.push(stop);
            let opts = ServeOptions {
                listen: Some(addr),
                ..ServeOptions::default()
            };
            // What `ListenerSet` does: the TLS settings are swapped on reload.
            let cell: TlsCell =
                Arc::new(arc_swap::ArcSwapOption::new(spec.tls.clone().map(Arc::new)));
            tls.push((addr, cell.clone()));
            tokio::spawn(serve_with_cell(
                listener,
                rpx.clone(),
                opts,
                cell,
                async move {
                    let _ = stopped.await;
                },
            ));
        }
        Rpx2 {
            rpx,
            config,
            http,
            https,
            tls,
            _stops: stops,
        }
    }

    /// Swaps in a snapshot of `toml` with a fresh ACME manager (no carry
    /// over), on the same listeners (pebble validates on fixed ports),
    /// whose TLS settings become the new snapshot's.
    fn replace(&self, toml: &str) {
        let (_, snapshot) = compile_on(toml, self.http, self.https);
        for (addr, cell) in &self.tls {
            let spec = snapshot.listeners().iter().find(|l| l.addr == *addr);
            cell.store(spec.and_then(|l| l.tls.clone()).map(Arc::new));
        }
        snapshot.start_background();
        self.rpx.swap(snapshot);
    }

    /// Waits until the ACME manager reports every certificate issued (or
    /// `n` events), and returns the events seen.
    async fn issued(&self) {
        let acme = self
            .rpx
            .snapshot()
            .acme()
            .cloned()
            .expect("an ACME manager");
        let mut events = acme.events();
        tokio::time::timeout(ISSUE_LIMIT, async {
            loop {
                let status = acme.status();
                if status.iter().all(|s| s.not_after.is_some()) {
                    return;
                }
                events.changed().await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not issued in time: {:?}", acme.status()));
    }
}

/// A verified handshake to `addr` for `sni`; the leaf the server showed.
async fn handshake(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    sni: &str,
) -> Result<CertificateDer<'static>, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = bounded(
        tokio_rustls::TlsConnector::from(client)
            .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp),
    )
    .await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].clone())
}

fn serial(der: &CertificateDer<'_>) -> Vec<u8> {
    let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    c.tbs_certificate.raw_serial().to_vec()
}

fn issuer_toml(p: &Pebble, state: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
        [acme]
        directory = "{}"
        email = "admin@rpx.test"
        ca_certificate = "{}"
        state = "{}"
        {extra}
        "#,
        p.directory,
        p.tls_ca.display(),
        state.display()
    )
}

/// The plain server only redirects: the challenge is answered before it.
const REDIRECT_AND_APP: &str = r#"
    [[server]]
    listen = "{http}"
    server_name = ["app.rpx.test"]
    return = "301 https://$host$request_uri"

    [[server]]
    listen = "{https} ssl"
    server_name = ["app.rpx.test", "www.app.rpx.test"]
    acme = true
      [[server.location]]
      path = "/"
      return = "200 secure $host"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_a_certificate_and_a_restart_reuses_it() {
    let (bound, mut pebble) = with_pebble(PebbleOptions::default()).await;
    let state = TempDir::new("state-http01");
    let toml = issuer_toml(&pebble, state.path(), "") + REDIRECT_AND_APP;
    let first = Rpx2::start(bound, &toml).await;
    // Before issuance: the names have no certificate, handshakes fail.
    let client = pebble.client().await;
    assert!(handshake(first.https, client.clone(), "app.rpx.test")
        .await
        .is_err());
    first.issued().await;

    // Both names, one certificate, chaining to pebble's root.
    let leaf = handshake(first.https, client.clone(), "app.rpx.test")
        .await
        .unwrap();
    let other = handshake(first.https, client.clone(), "www.app.rpx.test")
        .await
        .unwrap();
    assert_eq!(leaf, other);
    // The redirect server still redirects everything else.
    let (status, headers, _) = common::get(
        &format!("http://{}/x", first.http),
        &[("host", "app.rpx.test")],
    )
    .await;
    assert_eq!(status, 301);
    assert_eq!(headers["location"], "https://app.rpx.test/x");

    // Stored, keys private.
    use std::os::unix::fs::PermissionsExt;
    for f in ["app.rpx.test.key", "app.rpx.test.crt", "account.json"] {
        let meta = std::fs::metadata(state.path().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
    }

    // A reload carries the certificate and its task over: nothing is
    // ordered, the new snapshot serves the same certificate.
    let before = *first.rpx.snapshot().acme().unwrap().events().borrow();
    let reloaded = compile_with(
        &first.config,
        &CompileOptions {
            previous: Some(&first.rpx.snapshot()),
            acme: fast(),
        },
    )
    .unwrap();
    reloaded.start_background();
    let carried = reloaded.acme().cloned().unwrap();
    assert!(carried.status()[0].not_after.is_some());
    first.rpx.swap(reloaded);
    let after_reload = handshake(first.https, client.clone(), "app.rpx.test")
        .await
        .unwrap();
    assert_eq!(serial(&after_reload), serial(&leaf));
    assert_eq!(
        *carried.events().borrow(),
        before,
        "no order after the reload"
    );

    // A restart with the CA down: the stored certificate is served at
    // once, nothing is ordered.
    drop(first);
    pebble.stop_ca();
    let bound = Bound::new().await;
    let second = Rpx2::start(bound, &toml).await;
    let acme = second.rpx.snapshot().acme().cloned().unwrap();
    assert!(
        acme.status()[0].not_after.is_some(),
        "loaded from the state directory"
    );
    let again = handshake(second.https, client, "app.rpx.test")
        .await
        .unwrap();
    assert_eq!(
        serial(&again),
        serial(&leaf),
        "the same certificate, no new order"
    );
    assert_eq!(*acme.events().borrow(), 0, "no order was attempted");
}

/// The key of a certificate: `("RSA", bits)` or `("EC", bits)`.
fn key_of(der: &CertificateDer<'_>) -> (&'static str, usize) {
    use x509_parser::public_key::PublicKey;
    let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    match c.public_key().parsed().unwrap() {
        PublicKey::RSA(k) => ("RSA", k.key_size()),
        PublicKey::EC(p) => ("EC", p.key_size()),
        other => panic!("unexpected key {other:?}"),
    }
}

/// `key=rsa:2048`: a stored ECDSA certificate is not used when the config
/// now wants RSA, and the new one is ordered at once; its key is RSA, a
/// verified handshake (chaining to pebble's root) presents it; a restart
/// reuses it without an order; a config that wants another key type or
/// RSA size does not use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_is_issued_stored_and_checked_on_restart() {
    let (bound, mut pebble) = with_pebble(PebbleOptions::default()).await;
    let state = TempDir::new("state-rsa");
    let app = |key: &str| {
        format!(
            r#"
    [[server]]
    listen = "{{http}}"
    server_name = ["rsa.rpx.test"]
    return = "301 https://$host$request_uri"

    [[server]]
    listen = "{{https}} ssl"
    server_name = ["rsa.rpx.test"]
    acme = true
    acme_key = "{key}"
"#
        )
    };
    let issuer = issuer_toml(&pebble, state.path(), "");
    let toml = |key: &str| issuer.clone() + &app(key);
    let client = pebble.client().await;

    // An ECDSA certificate first.
    let first = Rpx2::start(bound, &toml("ecdsa:256")).await;
    first.issued().await;
    let ecdsa = handshake(first.https, client.clone(), "rsa.rpx.test")
        .await
        .unwrap();
    assert_eq!(key_of(&ecdsa), ("EC", 256));

    // A new manager over the same state directory, wanting RSA: the
    // stored ECDSA certificate is not served; an RSA one is ordered.
    first.replace(&toml("rsa:2048"));
    let second = first;
    second.issued().await;
    let acme = second.rpx.snapshot().acme().cloned().unwrap();
    assert_eq!(acme.status()[0].last_error, None);
    assert!(*acme.events().borrow() >= 1, "an order was made");
    let leaf = handshake(second.https, client.clone(), "rsa.rpx.test")
        .await
        .unwrap();
    assert_eq!(key_of(&leaf), ("RSA", 2048));
    assert_ne!(serial(&leaf), serial(&ecdsa));
    drop(acme);
    drop(second);
    pebble.stop_ca();

    // Restart with the CA down: the stored RSA certificate serves at once,
    // nothing is ordered.
    let third = Rpx2::start(Bound::new().await, &toml("rsa:2048")).await;
    let acme = third.rpx.snapshot().acme().cloned().unwrap();
    assert!(
        acme.status()[0].not_after.is_some(),
        "loaded from the state directory"
    );
    let again = handshake(third.https, client.clone(), "rsa.rpx.test")
        .await
        .unwrap();
    assert_eq!(serial(&again), serial(&leaf));
    assert_eq!(*acme.events().borrow(), 0, "no order was attempted");
    drop(acme);
    drop(third);

    // A config that wants another key type or RSA size does not use it.
    for other in ["ecdsa:256", "rsa:3072"] {
        let rpx = Rpx2::start(Bound::new().await, &toml(other)).await;
        let acme = rpx.rpx.snapshot().acme().cloned().unwrap();
        assert!(acme.status()[0].not_after.is_none(), "{other}");
        assert!(
            handshake(rpx.https, client.clone(), "rsa.rpx.test")
                .await
                .is_err(),
            "{other}"
        );
    }
}

/// The account id (URL) an issuer's state directory holds.
fn account_id(state: &std::path::Path) -> String {
    let data = std::fs::read(state.join("account.json")).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&data).unwrap();
    json["credentials"]["id"].as_str().unwrap().to_owned()
}

/// The account's private key (PKCS#8 DER) an issuer's state directory holds.
fn account_key(state: &std::path::Path) -> Vec<u8> {
    let data = std::fs::read(state.join("account.json")).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&data).unwrap();
    let b64 = json["credentials"]["key_pkcs8"].as_str().unwrap();
    // base64url without padding, as instant-acme writes it.
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in b64.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {b64}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A CA that requires external account binding: without it, or with a
/// wrong MAC key or kid, the CA's problem is reported and nothing is
/// issued; with it the order succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_account_binding_is_sent_when_the_ca_requires_it() {
    const KID: &str = "kid-rpx";
    const MAC: &str = "cnB4LXRlc3QtaG1hYy1rZXktMDEyMzQ1Njc4OWFiY2Q";
    const WRONG_MAC: &str = "d3JvbmctaG1hYy1rZXktZm9yLXJweC10ZXN0cy0wMTI";
    let (bound, pebble) = with_pebble(PebbleOptions {
        eab: Some((KID, MAC)),
        ..PebbleOptions::default()
    })
    .await;

    /// The first order attempt's error; nothing issued, no account stored.
    async fn refused(rpx: &Rpx2, state: &std::path::Path) -> String {
        let acme = rpx.rpx.snapshot().acme().cloned().unwrap();
        let mut events = acme.events();
        while acme.status()[0].last_error.is_none() {
            bounded(events.changed()).await.unwrap();
        }
        let status = &acme.status()[0];
        assert!(status.not_after.is_none());
        assert!(!state.join("app.rpx.test.crt").exists());
        assert!(!state.join("account.json").exists());
        status.last_error.clone().unwrap()
    }

    // No binding.
    let none = TempDir::new("state-eab-none");
    let rpx = Rpx2::start(
        bound,
        &(issuer_toml(&pebble, none.path(), "") + REDIRECT_AND_APP),
    )
    .await;
    let error = refused(&rpx, none.path()).await;
    assert!(error.starts_with("ACME server: "), "{error}");
    assert!(error.contains("externalAccountRequired"), "{error}");

    // The right kid with a wrong MAC key, and an unknown kid: the CA's
    // problem, as it said it.
    for (kid, mac, problem) in [
        (
            KID,
            WRONG_MAC,
            "external account binding JWS verification error",
        ),
        (
            "kid-unknown",
            MAC,
            "'kid' references a key that is not known",
        ),
    ] {
        let state = TempDir::new("state-eab-wrong");
        let eab = format!("external_account_key = {{ kid = \"{kid}\", key = \"{mac}\" }}");
        rpx.replace(&(issuer_toml(&pebble, state.path(), &eab) + REDIRECT_AND_APP));
        let error = refused(&rpx, state.path()).await;
        assert!(error.starts_with("ACME server: "), "{error}");
        assert!(error.contains(problem), "{error}");
        assert!(
            error.contains("urn:ietf:params:acme:error:unauthorized"),
            "{error}"
        );
    }

    // The right binding, its key in a file (nginx's `external_account_key
    // kid file`): issued.
    let state = TempDir::new("state-eab");
    let key_file = state.path().join("eab.key");
    std::fs::write(&key_file, format!("{MAC}\n")).unwrap();
    let eab = format!(
        "external_account_key = {{ kid = \"{KID}\", key_file = \"{}\" }}",
        key_file.display()
    );
    rpx.replace(&(issuer_toml(&pebble, state.path(), &eab) + REDIRECT_AND_APP));
    rpx.issued().await;
    assert!(state.path().join("app.rpx.test.crt").exists());
    let client = pebble.client().await;
    handshake(rpx.https, client, "app.rpx.test").await.unwrap();
}

/// `account_key`: the account is the key's. Two state directories with
/// the same key file (an ECDSA P-256 PKCS#8 PEM made here) get the same
/// account from the CA, and both store that key; without the file the
/// account and its key are new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_key_file_is_the_account() {
    let (bound, pebble) = with_pebble(PebbleOptions::default()).await;
    let keys = TempDir::new("account-key");
    let key_file = keys.path().join("account.pem");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let with_key = format!("account_key = \"{}\"", key_file.display());

    let first = TempDir::new("state-key-1");
    let rpx = Rpx2::start(
        bound,
        &(issuer_toml(&pebble, first.path(), &with_key) + REDIRECT_AND_APP),
    )
    .await;
    rpx.issued().await;

    let second = TempDir::new("state-key-2");
    rpx.replace(&(issuer_toml(&pebble, second.path(), &with_key) + REDIRECT_AND_APP));
    rpx.issued().await;
    assert_eq!(account_id(first.path()), account_id(second.path()));
    // And the account's key, as stored, is the file's.
    for dir in [first.path(), second.path()] {
        assert_eq!(account_key(dir), key.serialize_der(), "{}", dir.display());
    }

    // Without the key file a third directory is a new account.
    let third = TempDir::new("state-key-3");
    rpx.replace(&(issuer_toml(&pebble, third.path(), "") + REDIRECT_AND_APP));
    rpx.issued().await;
    assert_ne!(account_id(first.path()), account_id(third.path()));
    assert_ne!(account_key(third.path()), key.serialize_der());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issues_a_certificate() {
    let bound = Bound::new().await;
    let (_, tls_port) = bound.ports();
    // pebble's http-01 port points nowhere: only tls-alpn-01 can pass.
    let pebble = Pebble::start(PebbleOptions {
        http_port: pebble::free_port(),
        tls_port,
        ..PebbleOptions::default()
    })
    .await;
    let state = TempDir::new("state-alpn");
    let toml = issuer_toml(&pebble, state.path(), r#"challenge = "tls-alpn-01""#)
        + r#"
        [[server]]
        listen = "{https} ssl"
        server_name = ["alpn.rpx.test"]
        acme = true
        return = "200 ok"
    "#;
    let rpx = Rpx2::start(bound, &toml).await;
    rpx.issued().await;
    let client = pebble.client().await;
    let leaf = handshake(rpx.https, client, "alpn.rpx.test").await.unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    let san = c.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        format!("{:?}", san.value.general_names),
        r#"[DNSName("alpn.rpx.test")]"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_issues_a_wildcard_through_the_hook() {
    let (bound, pebble) = with_pebble(PebbleOptions::default()).await;
    let state = TempDir::new("state-dns");
    let hook = pebble.dns_hook();
    let toml = issuer_toml(
        &pebble,
        state.path(),
        &format!("challenge = \"dns-01\"\ndns_hook = \"{}\"", hook.display()),
    ) + r#"
        [[server]]
        listen = "{https} ssl"
        server_name = ["*.wild.rpx.test"]
        acme = true
        return = "200 wild $host"
    "#;
    let rpx = Rpx2::start(bound, &toml).await;
    rpx.issued().await;
    let client = pebble.client().await;
    handshake(rpx.https, client.clone(), "a.wild.rpx.test")
        .await
        .unwrap();
    handshake(rpx.https, client, "b.wild.rpx.test")
        .await
        .unwrap();
    assert_eq!(
        pebble.dns_hook_log(),
        "present wild.rpx.test\ncleanup wild.rpx.test\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_certificate_is_renewed_and_served_without_a_reload() {
    let bound = Bound::new().await;
    let (http_port, tls_port) = bound.ports();
    // Short-lived certificates: renewal is due two thirds in, ~8 s.
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        validity_secs: Some(12),
        ..PebbleOptions::default()
    })
    .await;
    let state = TempDir::new("state-renew");
    let toml = issuer_toml(&pebble, state.path(), "") + REDIRECT_AND_APP;
    let rpx = Rpx2::start(bound, &toml).await;
    rpx.issued().await;
    let client = pebble.client().await;
    let first = handshake(rpx.https, client.clone(), "app.rpx.test")
        .await
        .unwrap();
    let acme = rpx.rpx.snapshot().acme().cloned().unwrap();
    let mut events = acme.events();
    events.borrow_and_update();
    bounded(events.changed()).await.unwrap();
    assert_eq!(acme.status()[0].last_error, None);
    let second = handshake(rpx.https, client, "app.rpx.test").await.unwrap();
    assert_ne!(
        serial(&first),
        serial(&second),
        "a new certificate is served"
    );
    let stored = std::fs::read(state.path().join("app.rpx.test.crt")).unwrap();
    use rustls::pki_types::pem::PemObject;
    let stored = CertificateDer::from_pem_slice(&stored).unwrap();
    assert_eq!(stored, second, "and stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_down_at_start_delays_only_its_names() {
    let (bound, mut pebble) = with_pebble(PebbleOptions {
        down: true,
        ..PebbleOptions::default()
    })
    .await;
    let state = TempDir::new("state-down");
    let toml = issuer_toml(&pebble, state.path(), "")
        + REDIRECT_AND_APP
        + r#"
        [[server]]
        listen = "{http}"
        server_name = ["other.rpx.test"]
        return = "200 other site"
    "#;
    let rpx = Rpx2::start(bound, &toml).await;
    let acme = rpx.rpx.snapshot().acme().cloned().unwrap();
    // The first attempt fails (the CA is unreachable) and says why.
    let mut events = acme.events();
    bounded(events.changed()).await.unwrap();
    let status = acme.status();
    assert!(status[0].not_after.is_none());
    let error = status[0].last_error.clone().unwrap();
    assert!(error.contains("connecting to 127.0.0.1"), "{error}");
    // Other sites serve meanwhile.
    let (code, _, body) = common::get(
        &format!("http://{}/", rpx.http),
        &[("host", "other.rpx.test")],
    )
    .await;
    assert_eq!((code.as_u16(), &body[..]), (200, &b"other site"[..]));
    // The CA comes up; a retry succeeds.
    pebble.start_ca().await;
    rpx.issued().await;
    let client = pebble.client().await;
    handshake(rpx.https, client, "app.rpx.test").await.unwrap();
}

#[test]
fn toml_acme_is_checked_and_nginx_acme_converts() {
    use rpx_core::config::{nginx, parse_toml, to_toml, LoadOptions};
    let errors = |src: &str| match parse_toml(src, "t.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    assert_eq!(
        errors("[[server]]\nlisten = \"127.0.0.1:8443 ssl\"\nacme = true\n"),
        ["t.toml:3:8: acme = true, but there is no [acme] table (add [acme] with email = \"you@example.com\")"]
    );
    let e = errors("[acme]\nemial = \"a@b\"\n");
    assert!(
        e[0].starts_with("t.toml:2:1: unknown field `emial`"),
        "{e:?}"
    );
    assert_eq!(
        errors("[acme]\nchallenge = \"dns-01\"\n"),
        ["t.toml:1:1: challenge \"dns-01\" needs a dns_hook (dns_hook = \"/path/to/script\", called with present|cleanup <domain> <txt-value>)"]
    );
    // A name the certificate cannot carry is a compile error at its line.
    let config = parse_toml(
        "[acme]\nstate = \"off\"\n[[server]]\nlisten = \"127.0.0.1:8443 ssl\"\nserver_name = [\"*.a.test\"]\nacme = true\n",
        "t.toml",
    )
    .unwrap();
    let e = rpx_core::stack::compile(&config).unwrap_err().to_string();
    assert!(
        e.contains("t.toml:6:8: wildcard names need `challenge dns`"),
        "{e}"
    );

    // A key type rpx cannot make is a compile error at its line, listing
    // the ones it can.
    let config = parse_toml(
        "[acme]\nstate = \"off\"\n[[server]]\nlisten = \"127.0.0.1:8443 ssl\"\nserver_name = [\"a.test\"]\nacme = true\nacme_key = \"rsa:1024\"\n",
        "t.toml",
    )
    .unwrap();
    let e = rpx_core::stack::compile(&config).unwrap_err().to_string();
    assert!(
        e.contains("key=rsa:1024 is not available: use one of ecdsa:256, ecdsa:384, rsa:2048, rsa:3072, rsa:4096"),
        "{e}"
    );

    // nginx → TOML → the same issuers and certificates.
    let src = "acme_issuer le {\n uri https://acme.test/dir;\n contact a@b.test;\n state_path off;\n accept_terms_of_service;\n}\n\
               acme_issuer other {\n uri https://other.test/dir;\n challenge dns;\n dns_hook /bin/hook;\n}\n\
               server {\n listen 127.0.0.1:8443 ssl;\n server_name a.test;\n acme_certificate le key=rsa:3072;\n ssl_certificate $acme_certificate;\n ssl_certificate_key $acme_certificate_key;\n}\n\
               server {\n listen 127.0.0.1:8444 ssl;\n server_name b.test;\n acme_certificate other *.b.test key=ecdsa:384;\n ssl_certificate $acme_certificate;\n ssl_certificate_key $acme_certificate_key;\n}\n";
    let loaded =
        nginx::config_from_str(src, std::path::Path::new("n.conf"), LoadOptions::default());
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let toml = to_toml(&loaded.config).unwrap();
    assert!(!toml.contains("$acme_certificate"), "{toml}");
    let back = parse_toml(&toml, "converted.toml").unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let strip = |c: &rpx_core::config::Config| {
        (
            c.acme_issuers
                .iter()
                .map(|i| {
                    (
                        i.name.clone(),
                        i.directory.value.clone(),
                        i.contact.clone(),
                        i.state.clone(),
                        i.challenge,
                        i.accept_terms_of_service,
                        i.dns_hook.as_ref().map(|h| h.value.clone()),
                    )
                })
                .collect::<Vec<_>>(),
            c.servers
                .iter()
                .map(|s| {
                    s.acme.as_ref().map(|a| {
                        (
                            a.issuer.clone(),
                            a.identifiers.clone(),
                            a.key.as_ref().map(|k| k.value.clone()),
                        )
                    })
                })
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(strip(&back), strip(&loaded.config), "{toml}");
    rpx_core::stack::compile(&back).unwrap_or_else(|e| panic!("{e}\n{toml}"));
}
