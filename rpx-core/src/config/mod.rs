//! Configuration: the typed [`model`], its front-ends (TOML, nginx dialect)
//! and the helpers both share.

pub mod acme;
mod error;
mod error_log;
pub mod model;
pub mod nginx;
mod toml;
pub(crate) mod toml_acme;
mod toml_shape;
mod toml_steps;
mod toml_vars;
mod toml_writer;
mod units;
pub mod upstream;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

pub use self::toml::{load_toml_file, parse_toml, parse_toml_partial};
pub use acme::{AcmeCertificateConfig, AcmeChallenge, AcmeIssuerConfig, AcmeState};
pub use error::{suggest, ConfigError, ConfigErrors};
pub use error_log::{ErrorLogConfig, ErrorLogLevel, ErrorLogTarget};
pub use model::*;
pub use toml_writer::to_toml;
pub use units::{parse_duration, parse_session_cache, parse_size, MAX_SESSION_CACHE};

/// How a config is loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Known directives rpx does not implement yet (TLS, access control…)
    /// become warnings instead of errors. Unknown directives stay errors.
    /// Default off.
    pub lenient: bool,
}

/// A loaded config with everything said about it: the config is only
/// usable when `errors` is empty.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The config (partial when there are errors).
    pub config: Config,
    /// Things that work differently from what the file asks, in file order.
    pub warnings: Vec<ConfigError>,
    /// Problems that stop the config from being used, in file order.
    pub errors: Vec<ConfigError>,
}

impl Loaded {
    /// Nothing but one error.
    pub fn failed(error: ConfigError) -> Self {
        Loaded {
            errors: vec![error],
            ..Loaded::default()
        }
    }

    /// The config and its warnings, or the errors.
    ///
    /// # Errors
    /// When there is any error.
    pub fn into_result(self) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
        if self.errors.is_empty() {
            Ok((self.config, self.warnings))
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// Loads a config file: `.toml` is the native format, anything else the
/// nginx dialect. Warnings are dropped; see [`load_with`].
///
/// # Errors
/// Every problem found, each with `file:line[:col]`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, LoadOptions::default())
        .into_result()
        .map(|(c, _)| c)
}

/// Loads a config file with options, keeping warnings.
pub fn load_with(path: &Path, opts: LoadOptions) -> Loaded {
    if is_toml(path) {
        match load_toml_file(path) {
            Ok(config) => Loaded {
                config,
                ..Loaded::default()
            },
            Err(e) => Loaded {
                errors: e.0,
                ..Loaded::default()
            },
        }
    } else {
        nginx::load_config(path, opts)
    }
}

/// True for the native format (by extension).
pub fn is_toml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
}

/// Parses nginx-style `listen` words: `80`, `127.0.0.1:8080`, `[::]:443`,
/// `localhost:80`, then flags `default_server`, `ssl`, `http2`,
/// `proxy_protocol`.
///
/// # Errors
/// A message for the caller to place.
pub fn parse_listen(words: &[&str]) -> Result<Listen, String> {
    let Some((first, flags)) = words.split_first() else {
        return Err("listen needs an address".into());
    };
    let addr = parse_listen_addr(first).ok_or_else(|| {
        format!("invalid listen address {first:?}: use PORT, IP:PORT or [IPv6]:PORT")
    })?;
    let mut listen = Listen::new(addr);
    for flag in flags {
        match *flag {
            "default_server" | "default" => listen.default_server = true,
            "ssl" => listen.ssl = true,
            "http2" => listen.http2 = true,
            "proxy_protocol" => listen.proxy_protocol = true,
            other => return Err(format!("unsupported listen parameter {other:?}")),
        }
    }
    Ok(listen)
}

fn parse_listen_addr(s: &str) -> Option<SocketAddr> {
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    if let Ok(port) = s.parse::<u16>() {
        return Some(SocketAddr::new(any, port));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr);
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || s.starts_with('[') => (h, p.parse().ok()?),
        _ => (s, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "*" => any,
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses nginx `return` arguments: `code`, `code text`, or `URL` (a 302).
///
/// # Errors
/// A message for the caller to place.
pub fn parse_return(words: &[&str]) -> Result<(u16, Option<String>), String> {
    match words {
        [one] => {
            if let Ok(code) = one.parse::<u16>() {
                return check_code(code).map(|c| (c, None));
            }
            if one.starts_with("http://")
                || one.starts_with("https://")
                || one.starts_with("$scheme")
            {
                return Ok((302, Some((*one).to_owned())));
            }
            Err(format!("invalid return code {one:?}"))
        }
        [code, text] => {
            let code = code
                .parse::<u16>()
                .map_err(|_| format!("invalid return code {code:?}"))?;
            check_code(code).map(|c| (c, Some((*text).to_owned())))
        }
        _ => Err("return takes a code and an optional text or URL".into()),
    }
}

/// `set $name value`: the name checked as nginx checks it.
///
/// # Errors
/// A message for the caller to place.
pub fn set_config(
    name: &str,
    value: String,
    pos: model::SourcePos,
) -> Result<model::SetConfig, String> {
    let bare = name.strip_prefix('$').unwrap_or("");
    if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("invalid variable name \"{name}\""));
    }
    Ok(model::SetConfig {
        name: bare.to_owned(),
        value,
        pos,
    })
}

fn check_code(code: u16) -> Result<u16, String> {
    if (100..=599).contains(&code) {
        Ok(code)
    } else {
        Err(format!("invalid return code {code}: use 100-599"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let l = parse_listen(&["80"]).unwrap();
        assert_eq!(l.addr, "0.0.0.0:80".parse().unwrap());
        let l = parse_listen(&["127.0.0.1:8080", "default_server"]).unwrap();
        assert_eq!(l.addr, "127.0.0.1:8080".parse().unwrap());
        assert!(l.default_server);
        let l = parse_listen(&["[::]:443", "ssl", "http2"]).unwrap();
        assert_eq!(l.addr, "[::]:443".parse().unwrap());
        assert!(l.ssl && l.http2 && !l.proxy_protocol);
        let l = parse_listen(&["443", "ssl", "proxy_protocol"]).unwrap();
        assert!(l.ssl && l.proxy_protocol);
        assert_eq!(
            parse_listen(&["localhost:81"]).unwrap().addr,
            "127.0.0.1:81".parse().unwrap()
        );
        assert_eq!(
            parse_listen(&["127.0.0.1"]).unwrap().addr,
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            parse_listen(&["*:8000"]).unwrap().addr,
            "0.0.0.0:8000".parse().unwrap()
        );
        assert!(parse_listen(&["nope:x"]).is_err());
        assert!(parse_listen(&["80", "reuseport2"]).is_err());
    }

    #[test]
    fn return_forms() {
        assert_eq!(parse_return(&["404"]), Ok((404, None)));
        assert_eq!(
            parse_return(&["301", "https://$host$request_uri"]),
            Ok((301, Some("https://$host$request_uri".into())))
        );
        assert_eq!(
            parse_return(&["https://x"]),
            Ok((302, Some("https://x".into())))
        );
        assert!(parse_return(&["abc"]).is_err());
        assert!(parse_return(&["700"]).is_err());
    }
}
