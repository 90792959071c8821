//! `error_log path [level]`: where rpx's own log goes, from which level.
//!
//! The library only describes it; the binary points its logger there.

use std::path::PathBuf;

use super::SourcePos;

/// `error_log path [level]` of the main level (nginx's `error_log`, TOML
/// `error_log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLogConfig {
    /// Where the lines go.
    pub target: ErrorLogTarget,
    /// The least severe level written.
    pub level: ErrorLogLevel,
    /// Where the config says it.
    pub pos: SourcePos,
}

/// Where the error log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorLogTarget {
    /// `stderr` (also where `syslog:` and `memory:` end up, with a warning).
    Stderr,
    /// A file, appended to and reopened on SIGUSR1.
    File(PathBuf),
}

/// nginx's levels, least severe first. rpx logs with four levels:
/// `notice` writes what `info` writes, `crit`/`alert`/`emerg` what `error` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorLogLevel {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `notice`.
    Notice,
    /// `warn`.
    Warn,
    /// `error`, nginx's default.
    Error,
    /// `crit`.
    Crit,
    /// `alert`.
    Alert,
    /// `emerg`.
    Emerg,
}

const LEVELS: [(&str, ErrorLogLevel); 8] = [
    ("debug", ErrorLogLevel::Debug),
    ("info", ErrorLogLevel::Info),
    ("notice", ErrorLogLevel::Notice),
    ("warn", ErrorLogLevel::Warn),
    ("error", ErrorLogLevel::Error),
    ("crit", ErrorLogLevel::Crit),
    ("alert", ErrorLogLevel::Alert),
    ("emerg", ErrorLogLevel::Emerg),
];

impl ErrorLogLevel {
    /// nginx's name of the level.
    ///
    /// # Errors
    /// An unknown name, with the list of known ones.
    pub fn parse(name: &str) -> Result<Self, String> {
        LEVELS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
            .ok_or_else(|| {
                let names: Vec<&str> = LEVELS.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown error_log level {name:?} (one of {})",
                    names.join(", ")
                )
            })
    }

    /// A level `limit_req_log_level` and `limit_conn_log_level` take:
    /// `info`, `notice`, `warn` or `error`.
    pub fn parse_limit(name: &str) -> Option<Self> {
        Self::parse(name)
            .ok()
            .filter(|l| matches!(l, Self::Info | Self::Notice | Self::Warn | Self::Error))
    }

    /// The name as nginx writes it.
    pub fn name(self) -> &'static str {
        LEVELS
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("error", |(n, _)| n)
    }

    /// The `tracing` level filter it corresponds to.
    pub fn tracing_level(self) -> tracing::Level {
        match self {
            ErrorLogLevel::Debug => tracing::Level::DEBUG,
            ErrorLogLevel::Info | ErrorLogLevel::Notice => tracing::Level::INFO,
            ErrorLogLevel::Warn => tracing::Level::WARN,
            _ => tracing::Level::ERROR,
        }
    }
}

impl ErrorLogConfig {
    /// From `error_log`'s words: a path (`stderr`, a file, `syslog:…`,
    /// `memory:…`) and an optional level (default `error`, as nginx).
    /// Returns the config and, for destinations rpx does not have, a
    /// warning saying what it does instead.
    ///
    /// # Errors
    /// An unknown level or an empty path.
    pub fn parse(
        path: &str,
        level: Option<&str>,
        pos: SourcePos,
    ) -> Result<(Self, Option<String>), String> {
        let level = level.map_or(Ok(ErrorLogLevel::Error), ErrorLogLevel::parse)?;
        let (target, warning) = if path == "stderr" {
            (ErrorLogTarget::Stderr, None)
        } else if path.starts_with("syslog:") || path.starts_with("memory:") {
            let kind = path.split(':').next().unwrap_or(path);
            (
                ErrorLogTarget::Stderr,
                Some(format!(
                    "error_log to {kind} is not supported: rpx logs to stderr \
                     (under systemd the journal has it)"
                )),
            )
        } else if path.is_empty() {
            return Err("error_log needs a path".into());
        } else {
            (ErrorLogTarget::File(PathBuf::from(path)), None)
        };
        Ok((ErrorLogConfig { target, level, pos }, warning))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_targets() {
        let p = |path, level| ErrorLogConfig::parse(path, level, SourcePos::default());
        let (c, w) = p("/var/log/rpx/error.log", None).unwrap();
        assert_eq!(
            c.target,
            ErrorLogTarget::File("/var/log/rpx/error.log".into())
        );
        assert_eq!(c.level, ErrorLogLevel::Error);
        assert!(w.is_none());
        let (c, _) = p("stderr", Some("notice")).unwrap();
        assert_eq!(
            (c.target, c.level.tracing_level()),
            (ErrorLogTarget::Stderr, tracing::Level::INFO)
        );
        let (c, w) = p("syslog:server=unix:/dev/log", Some("warn")).unwrap();
        assert_eq!(c.target, ErrorLogTarget::Stderr);
        assert!(w.unwrap().contains("syslog is not supported"));
        assert_eq!(
            p("x", Some("loud")).unwrap_err(),
            "unknown error_log level \"loud\" (one of debug, info, notice, warn, error, crit, alert, emerg)"
        );
        for (name, _) in LEVELS {
            assert_eq!(ErrorLogLevel::parse(name).unwrap().name(), name);
        }
        assert_eq!(ErrorLogLevel::Crit.tracing_level(), tracing::Level::ERROR);
    }

    #[test]
    fn toml_forms_and_errors() {
        let server = "\n[[server]]\nlisten = \"127.0.0.1:0\"\n";
        let parse = |line: &str| crate::config::parse_toml(&format!("{line}{server}"), "e.toml");
        let c = parse("error_log = \"/tmp/e.log\"").unwrap();
        assert_eq!(c.error_log.unwrap().level, ErrorLogLevel::Error);
        let c = parse("error_log = { path = \"stderr\", level = \"debug\" }").unwrap();
        let log = c.error_log.unwrap();
        assert_eq!(
            (log.target, log.level),
            (ErrorLogTarget::Stderr, ErrorLogLevel::Debug)
        );
        let msg = |line: &str| parse(line).unwrap_err().0[0].to_string();
        assert_eq!(
            msg("error_log = \"syslog:server=1.2.3.4\""),
            "e.toml:1:13: error_log: a file path or \"stderr\""
        );
        assert!(msg("error_log = { path = \"/e\", level = \"loud\" }")
            .starts_with("e.toml:1:13: unknown error_log level \"loud\""));
    }
}
