//! `log_format`: a line template of request variables and log-only
//! variables, compiled once, with nginx's escaping.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::vars::{Template, TemplateError, VarCtx};

/// nginx's predefined `combined` format.
pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// How values are escaped (`escape=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escape {
    /// `"`, `\` and bytes outside printable ASCII as `\xXX` (nginx's default).
    #[default]
    Default,
    /// JSON string escaping.
    Json,
    /// Nothing escaped.
    None,
}

/// Values only known once the response is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogVar {
    Status,
    BodyBytesSent,
    BytesSent,
    RequestTime,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamResponseTime,
    UpstreamConnectTime,
    UpstreamHeaderTime,
    UpstreamResponseLength,
    UpstreamCacheStatus,
}

impl LogVar {
    fn from_name(name: &str) -> Option<LogVar> {
        Some(match name {
            "status" => LogVar::Status,
            "body_bytes_sent" => LogVar::BodyBytesSent,
            "bytes_sent" => LogVar::BytesSent,
            "request_time" => LogVar::RequestTime,
            "time_local" => LogVar::TimeLocal,
            "time_iso8601" => LogVar::TimeIso8601,
            "msec" => LogVar::Msec,
            "request" => LogVar::Request,
            "upstream_addr" => LogVar::UpstreamAddr,
            "upstream_status" => LogVar::UpstreamStatus,
            "upstream_response_time" => LogVar::UpstreamResponseTime,
            "upstream_connect_time" => LogVar::UpstreamConnectTime,
            "upstream_header_time" => LogVar::UpstreamHeaderTime,
            "upstream_response_length" => LogVar::UpstreamResponseLength,
            // rpx does not cache yet: never a hit, as nginx without a cache.
            "upstream_cache_status" => LogVar::UpstreamCacheStatus,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Part {
    Lit(Box<str>),
    Request(Template),
    Log(LogVar),
}

/// A compiled `log_format`.
///
/// ```
/// use rpx_core::accesslog::{Escape, LogFormat, COMBINED};
/// assert!(LogFormat::parse(COMBINED, Escape::Default).is_ok());
/// assert!(LogFormat::parse("$nope", Escape::Default).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct LogFormat {
    parts: Box<[Part]>,
    escape: Escape,
    /// Whether any part needs the request rendered at request time.
    needs_request: bool,
}

/// What the response side of a log line knows.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Status sent.
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
    /// Header bytes (approximate: status line and header lines).
    pub header_bytes: u64,
    /// Time from request to the last body byte.
    pub elapsed: Duration,
    /// When the request arrived.
    pub started: Option<SystemTime>,
    /// The upstream tries, grouped by internal redirect.
    pub upstream: Vec<Vec<super::UpstreamTry>>,
}

/// Request-side values rendered when the request arrives (the request is
/// gone by the time the line is written).
#[derive(Debug, Default)]
pub struct Captured {
    values: Vec<String>,
    request_line: String,
}

impl LogFormat {
    /// Compiles a format.
    ///
    /// # Errors
    /// Unknown variables.
    pub fn parse(src: &str, escape: Escape) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut lit = String::new();
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, tail) = if let Some(b) = after.strip_prefix('{') {
                let end = b
                    .find('}')
                    .ok_or_else(|| TemplateError::BadSyntax(src.into()))?;
                (&b[..end], &b[end + 1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                lit.push('$');
                rest = after;
                continue;
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit).into()));
            }
            match LogVar::from_name(name) {
                Some(v) => parts.push(Part::Log(v)),
                // Unknown names are the template's errors.
                None => parts.push(Part::Request(Template::parse(&format!("${{{name}}}"))?)),
            }
            rest = tail;
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.into()));
        }
        let needs_request = parts.iter().any(|p| matches!(p, Part::Request(_)));
        Ok(LogFormat {
            parts: parts.into(),
            escape,
            needs_request,
        })
    }

    /// Whether it reports `$upstream_*` (the request then carries an
    /// [`UpstreamLog`](super::UpstreamLog) for the proxy to fill).
    pub fn needs_upstream(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                p,
                Part::Log(
                    LogVar::UpstreamAddr
                        | LogVar::UpstreamStatus
                        | LogVar::UpstreamResponseTime
                        | LogVar::UpstreamConnectTime
                        | LogVar::UpstreamHeaderTime
                        | LogVar::UpstreamResponseLength
                )
            )
        })
    }

    /// Renders the request-side values now.
    pub fn capture(&self, ctx: &VarCtx<'_>) -> Captured {
        let mut values = Vec::new();
        if self.needs_request {
            for p in self.parts.iter() {
                if let Part::Request(t) = p {
                    values.push(t.render_to_string(ctx));
                }
            }
        }
        let mut request_line = String::new();
        if self
            .parts
            .iter()
            .any(|p| matches!(p, Part::Log(LogVar::Request)))
        {
            let protocol = match ctx.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                http::Version::HTTP_3 => "HTTP/3.0",
                _ => "HTTP/1.1",
            };
            let _ = write!(
                request_line,
                "{} {} {protocol}",
                ctx.method,
                ctx.uri.path_and_query().map_or("/", |p| p.as_str())
            );
        }
        Captured {
            values,
            request_line,
        }
    }

    /// The finished line, with a trailing newline.
    pub fn render(&self, captured: &Captured, done: &Finished) -> String {
        let mut out = String::with_capacity(200);
        let mut values = captured.values.iter();
        for p in self.parts.iter() {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Request(_) => {
                    let v = values.next().map_or("", String::as_str);
                    self.push_value(&mut out, v);
                }
                Part::Log(v) => {
                    let text = log_value(*v, captured, done);
                    self.push_value(&mut out, &text);
                }
            }
        }
        out.push('\n');
        out
    }

    fn push_value(&self, out: &mut String, v: &str) {
        // nginx writes `-` for an empty value.
        if v.is_empty() && self.escape != Escape::Json {
            out.push('-');
            return;
        }
        match self.escape {
            Escape::None => out.push_str(v),
            Escape::Default => {
                for b in v.bytes() {
                    if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                        let _ = write!(out, "\\x{b:02X}");
                    } else {
                        out.push(b as char);
                    }
                }
            }
            Escape::Json => {
                for c in v.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
            }
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

fn log_value(v: LogVar, c: &Captured, d: &Finished) -> String {
    let started = d.started.unwrap_or_else(SystemTime::now);
    match v {
        LogVar::Status => d.status.to_string(),
        LogVar::BodyBytesSent => d.body_bytes.to_string(),
        LogVar::BytesSent => (d.body_bytes + d.header_bytes).to_string(),
        LogVar::RequestTime => seconds(d.elapsed),
        LogVar::TimeLocal => super::time::time_local(started),
        LogVar::TimeIso8601 => super::time::time_iso8601(started),
        LogVar::Msec => {
            let t = started
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            seconds(t)
        }
        LogVar::Request => c.request_line.clone(),
        LogVar::UpstreamAddr => tries(d, |t| t.addr.to_string()),
        LogVar::UpstreamStatus => tries(d, |t| t.status.to_string()),
        LogVar::UpstreamResponseTime => tries(d, |t| seconds(t.response)),
        LogVar::UpstreamConnectTime => tries(d, |t| t.connect.map_or("-".into(), seconds)),
        LogVar::UpstreamHeaderTime => tries(d, |t| t.header.map_or("-".into(), seconds)),
        LogVar::UpstreamResponseLength => tries(d, |t| t.length.to_string()),
        LogVar::UpstreamCacheStatus => String::new(),
    }
}

/// One value per try, as nginx lists them: `, ` between the tries of one
/// proxying, ` : ` between internal redirects.
fn tries(d: &Finished, value: impl Fn(&super::UpstreamTry) -> String) -> String {
    let mut out = String::new();
    for (i, group) in d.upstream.iter().enumerate() {
        if i > 0 {
            out.push_str(" : ");
        }
        for (j, t) in group.iter().enumerate() {
            if j > 0 {
                out.push_str(", ");
            }
            out.push_str(&value(t));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{ConnInfo, Scheme};

    fn line(format: &str, escape: Escape) -> String {
        let req = http::Request::get("/a?b=c")
            .header("user-agent", "curl/8 \"x\"")
            .header("host", "h.test")
            .body(())
            .unwrap();
        let conn = ConnInfo::new(
            "10.1.2.3:5000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            Scheme::Http,
        );
        let ctx = VarCtx::new(&req, &conn, "/a", "h.test");
        let f = LogFormat::parse(format, escape).unwrap();
        let captured = f.capture(&ctx);
        let done = Finished {
            status: 200,
            body_bytes: 12,
            header_bytes: 100,
            elapsed: Duration::from_millis(1500),
            started: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_383_934)),
            upstream: vec![vec![crate::accesslog::UpstreamTry {
                addr: "127.0.0.1:3000".into(),
                status: 200,
                connect: Some(Duration::ZERO),
                header: Some(Duration::from_millis(5)),
                response: Duration::from_millis(7),
                length: 12,
            }]],
        };
        f.render(&captured, &done)
    }

    #[test]
    fn combined() {
        assert_eq!(
            line(COMBINED, Escape::Default),
            "10.1.2.3 - - [22/Nov/2026:21:45:34 +0000] \"GET /a?b=c HTTP/1.1\" 200 12 \"-\" \"curl/8 \\x22x\\x22\"\n"
        );
    }

    #[test]
    fn json_and_upstream_values() {
        let f = r#"{"ua":"$http_user_agent","status":$status,"rt":$request_time,"up":"$upstream_addr","ut":$upstream_response_time,"bytes":$bytes_sent,"t":"$time_iso8601","ref":"$http_referer"}"#;
        assert_eq!(
            line(f, Escape::Json),
            "{\"ua\":\"curl/8 \\\"x\\\"\",\"status\":200,\"rt\":1.500,\"up\":\"127.0.0.1:3000\",\"ut\":0.007,\"bytes\":112,\"t\":\"2026-11-22T21:45:34+00:00\",\"ref\":\"\"}\n"
        );
    }
}
