//! The words of `upstream {}` both front-ends share: server parameters,
//! balancing methods and rpx's `health_check`, parsed the same way whether
//! they come from an nginx file or a TOML string.

use super::model::{BalanceConfig, HealthCheckConfig, UpstreamServerConfig};
use super::parse_duration;

/// Applies one `server` parameter (`weight=2`, `backup`, …).
///
/// # Errors
/// An unknown parameter or a bad value, as a message.
pub fn server_param(p: &str, s: &mut UpstreamServerConfig) -> Result<(), String> {
    let num = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("invalid number in \"{p}\""))
    };
    let time = |v: &str| parse_duration(v).ok_or_else(|| format!("invalid time in \"{p}\""));
    match p.split_once('=') {
        Some(("weight", v)) => {
            s.weight = num(v)?;
            if s.weight == 0 {
                return Err(format!("invalid \"{p}\": weights start at 1"));
            }
        }
        Some(("max_fails", v)) => s.max_fails = num(v)?,
        Some(("fail_timeout", v)) => s.fail_timeout = time(v)?,
        Some(("max_conns", v)) => s.max_conns = num(v)?,
        None if p == "backup" => s.backup = true,
        None if p == "down" => s.down = true,
        _ => {
            return Err(format!(
                "invalid server parameter \"{p}\": use weight=, max_fails=, fail_timeout=, max_conns=, backup or down"
            ))
        }
    }
    Ok(())
}

/// A `server` line without its directive name: `host:port params…`.
///
/// # Errors
/// See [`server_param`]; `backup` together with `down`.
pub fn server_line(words: &[&str]) -> Result<UpstreamServerConfig, String> {
    let mut s = UpstreamServerConfig::new(words.first().copied().unwrap_or(""));
    for p in words.iter().skip(1) {
        server_param(p, &mut s)?;
    }
    Ok(s)
}

/// A balancing directive and its arguments: `least_conn`, `ip_hash`,
/// `hash KEY [consistent]`, `random [two [least_conn]]`.
///
/// # Errors
/// Unknown method or arguments.
pub fn balance(name: &str, args: &[&str]) -> Result<BalanceConfig, String> {
    match (name, args) {
        ("least_conn", []) => Ok(BalanceConfig::LeastConn),
        ("ip_hash", []) => Ok(BalanceConfig::IpHash),
        ("hash", [key]) => Ok(BalanceConfig::Hash {
            key: (*key).into(),
            consistent: false,
        }),
        ("hash", [key, "consistent"]) => Ok(BalanceConfig::Hash {
            key: (*key).into(),
            consistent: true,
        }),
        ("random", []) => Ok(BalanceConfig::Random { two: false }),
        ("random", ["two"] | ["two", "least_conn"]) => Ok(BalanceConfig::Random { two: true }),
        _ => Err(format!(
            "invalid balancing method \"{}\": use least_conn, ip_hash, hash KEY [consistent] or random [two [least_conn]]",
            std::iter::once(name).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
        )),
    }
}

/// `health_check` parameters: `interval=2s path=/healthz status=200
/// rise=2 fall=3 timeout=1s port=8081` (each optional; `status=200-399`
/// is a range).
///
/// # Errors
/// An unknown parameter or a bad value.
pub fn health_check(words: &[&str]) -> Result<HealthCheckConfig, String> {
    let mut h = HealthCheckConfig::default();
    for p in words {
        let bad = || format!("invalid health_check parameter \"{p}\"");
        let (k, v) = p.split_once('=').ok_or_else(bad)?;
        let count = || v.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(bad);
        match k {
            "interval" => {
                h.interval = parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(bad)?
            }
            "timeout" => h.timeout = parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(bad)?,
            "path" if v.starts_with('/') => h.path = v.into(),
            "rise" => h.rise = count()?,
            "fall" => h.fall = count()?,
            "port" => h.port = Some(v.parse().ok().filter(|&p: &u16| p > 0).ok_or_else(bad)?),
            "status" => {
                let code = |c: &str| c.parse::<u16>().ok().filter(|c| (100..600).contains(c));
                h.status = match v.split_once('-') {
                    Some((a, b)) => code(a).zip(code(b)).filter(|(a, b)| a <= b),
                    None => code(v).map(|c| (c, c)),
                }
                .ok_or_else(bad)?;
            }
            _ => {
                return Err(format!(
                    "{}: use interval=, path=, status=, rise=, fall=, timeout=, port=",
                    bad()
                ))
            }
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn server_lines() {
        let s = server_line(&[
            "a:1",
            "weight=3",
            "max_fails=2",
            "fail_timeout=30s",
            "backup",
        ])
        .unwrap();
        assert_eq!(
            (s.weight, s.max_fails, s.fail_timeout, s.backup, s.down),
            (3, 2, Duration::from_secs(30), true, false)
        );
        assert_eq!(
            server_line(&["a:1", "max_conns=5", "down"])
                .unwrap()
                .max_conns,
            5
        );
        assert!(server_line(&["a:1", "weight=0"]).is_err());
        assert!(server_line(&["a:1", "slow_start=1s"]).is_err());
    }

    #[test]
    fn methods_and_checks() {
        assert_eq!(
            balance("hash", &["$request_uri", "consistent"]).unwrap(),
            BalanceConfig::Hash {
                key: "$request_uri".into(),
                consistent: true
            }
        );
        assert_eq!(
            balance("random", &["two", "least_conn"]).unwrap(),
            BalanceConfig::Random { two: true }
        );
        assert!(balance("random", &["three"]).is_err());
        let h = health_check(&[
            "interval=2s",
            "path=/healthz",
            "status=200",
            "rise=2",
            "fall=3",
        ])
        .unwrap();
        assert_eq!(
            (h.interval, h.path.as_str(), h.status, h.rise, h.fall),
            (Duration::from_secs(2), "/healthz", (200, 200), 2, 3)
        );
        assert_eq!(
            health_check(&["status=200-299"]).unwrap().status,
            (200, 299)
        );
        assert!(health_check(&["rise=0"]).is_err());
        assert!(health_check(&["path=x"]).is_err());
        assert!(health_check(&["nope"]).is_err());
    }
}
