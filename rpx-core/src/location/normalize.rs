//! Path normalisation before location matching, as nginx does it: decode
//! every percent-escape (`%2F` included, so `/admin%2Fx` is matched as
//! `/admin/x`), then resolve `.` and `..` and merge `//` (`merge_slashes`).
//!
//! The result is `$uri`. Two escapes stay escaped, so that a `%` in it
//! always starts an escape and [`escape_path`] can make the path a URI
//! again without ambiguity: `%25` (a literal `%`) and bytes that would not
//! make valid UTF-8. nginx decodes those too; the difference is listed in
//! docs/nginx-compat.md.

use std::borrow::Cow;

/// Why a path cannot be normalised; the request gets a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `..` climbs above `/`.
    #[error("path climbs above the root")]
    AboveRoot,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding in path")]
    BadEscape,
    /// `%00`: a NUL byte, which no file name or upstream may see.
    #[error("NUL byte in path")]
    Nul,
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
}

/// Normalises `path` with `merge_slashes on` (nginx's default), borrowing
/// it when it is already normal (the common case).
///
/// ```
/// use rpx_core::location::normalize;
/// assert_eq!(normalize("/a//b/./c/../d").unwrap(), "/a/b/d");
/// assert_eq!(normalize("/%7Euser/%41").unwrap(), "/~user/A");
/// assert_eq!(normalize("/admin%2Fx").unwrap(), "/admin/x");
/// assert_eq!(normalize("/a%20b").unwrap(), "/a b");
/// assert!(normalize("/../etc/passwd").is_err());
/// assert!(normalize("/%2e%2e/etc/passwd").is_err());
/// ```
///
/// # Errors
/// [`PathError`] for paths above the root, bad escapes, `%00` and relative paths.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    normalize_with(path, true)
}

/// [`normalize`], keeping `//` when `merge_slashes` is false (nginx's
/// `merge_slashes off`).
///
/// # Errors
/// As [`normalize`].
pub fn normalize_with(path: &str, merge_slashes: bool) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return if path == "*" {
            Ok(Cow::Borrowed(path))
        } else {
            Err(PathError::NotAbsolute)
        };
    }
    if is_normal(path.as_bytes(), merge_slashes) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path)?;
    let mut out = String::with_capacity(decoded.len());
    let mut segments = decoded.split('/').skip(1).peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match seg {
            "." => {}
            "" if merge_slashes => {}
            ".." => {
                let cut = out.rfind('/').ok_or(PathError::AboveRoot)?;
                out.truncate(cut);
            }
            s => {
                out.push('/');
                out.push_str(s);
                continue;
            }
        }
        // A path ending in `/`, `/.` or `/..` names a directory.
        if last {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// True when nothing in `p` needs rewriting.
fn is_normal(p: &[u8], merge_slashes: bool) -> bool {
    if p.contains(&b'%') {
        return false;
    }
    let mut segments = p.split(|&b| b == b'/').skip(1).peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if seg == b"." || seg == b".." || (seg.is_empty() && merge_slashes && !last) {
            return false;
        }
    }
    true
}

/// Every escape decoded, but `%25` and bytes that do not make UTF-8.
fn decode(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.contains('%') {
        return Ok(Cow::Borrowed(path));
    }
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = b.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
        let v = (hex_val(hex[0]).ok_or(PathError::BadEscape)? << 4)
            | hex_val(hex[1]).ok_or(PathError::BadEscape)?;
        match v {
            0 => return Err(PathError::Nul),
            b'%' => out.extend_from_slice(b"%25"),
            v => out.push(v),
        }
        i += 3;
    }
    Ok(Cow::Owned(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => {
            let mut s = String::with_capacity(e.as_bytes().len() + 16);
            for chunk in e.as_bytes().utf8_chunks() {
                s.push_str(chunk.valid());
                for &byte in chunk.invalid() {
                    push_escape(&mut s, byte);
                }
            }
            s
        }
    }))
}

/// A normalised path as a URI path again, escaped as nginx's
/// `NGX_ESCAPE_URI` does (controls, space, `"#<>?\^`{|}`, DEL, non-ASCII),
/// but for `%`: in a normalised path it always starts an escape already.
/// What `proxy_pass` with a URI part sends, and what redirects carry.
///
/// ```
/// use rpx_core::location::{escape_path, normalize};
/// let path = normalize("/zm/a%20b%2Fc%3F%25").unwrap();
/// assert_eq!(path, "/zm/a b/c?%25");
/// assert_eq!(escape_path(&path), "/zm/a%20b/c%3F%25");
/// ```
pub fn escape_path(path: &str) -> Cow<'_, str> {
    let Some(first) = path.bytes().position(needs_escape) else {
        return Cow::Borrowed(path);
    };
    let mut out = String::with_capacity(path.len() + 16);
    out.push_str(&path[..first]);
    for &b in &path.as_bytes()[first..] {
        if needs_escape(b) {
            push_escape(&mut out, b);
        } else {
            out.push(b as char);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(b: u8) -> bool {
    !b.is_ascii_graphic()
        || matches!(
            b,
            b'"' | b'#' | b'<' | b'>' | b'?' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
        )
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/../b", "/b"),
            ("/a/b/../../c/", "/c/"),
            ("/..a/b", "/..a/b"),
            ("/a/.b", "/a/.b"),
            ("/%61%62c", "/abc"),
            ("/a%2fb", "/a/b"),
            ("/admin%2F..%2Fx", "/x"),
            ("/a%2F%2Fb", "/a/b"),
            ("/%25", "/%25"),
            ("/%2541", "/%2541"),
            ("/caf%C3%A9", "/café"),
            ("/caf%E9", "/caf%E9"),
            ("/caf%e9/%C3%A9", "/caf%E9/é"),
            ("/q%3Fx%23y", "/q?x#y"),
            ("/a%0Ab", "/a\nb"),
            ("/%2e%2e/x", "ERR"),
            ("/a/%2E%2E/x", "/x"),
            ("/a%20b", "/a b"),
            ("*", "*"),
        ];
        for (input, want) in ok {
            let got = normalize(input);
            if want == "ERR" {
                assert_eq!(got, Err(PathError::AboveRoot), "{input}");
            } else {
                assert_eq!(got.as_deref(), Ok(want), "{input}");
            }
        }
        assert_eq!(normalize("/.."), Err(PathError::AboveRoot));
        assert_eq!(normalize("/a/../.."), Err(PathError::AboveRoot));
        assert_eq!(normalize("/%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/%4"), Err(PathError::BadEscape));
        assert_eq!(normalize("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(normalize("/a%00b"), Err(PathError::Nul));
    }

    #[test]
    fn merge_slashes_off_keeps_empty_segments() {
        for (input, want) in [
            ("/a//b", "/a//b"),
            ("//", "//"),
            ("/a//", "/a//"),
            ("/a//./b/../c", "/a//c"),
            ("/a%2F%2Fb", "/a//b"),
            ("/a/b", "/a/b"),
        ] {
            assert_eq!(normalize_with(input, false).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn escaping_undoes_decoding() {
        for (raw, upstream) in [
            ("/zm/a%20b%2Fc", "/zm/a%20b/c"),
            ("/%41%42", "/AB"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/caf%E9", "/caf%E9"),
            ("/%25%3F%23", "/%25%3F%23"),
            (
                "/a%22%3C%3E%5C%5E%60%7B%7C%7D",
                "/a%22%3C%3E%5C%5E%60%7B%7C%7D",
            ),
            ("/a%0D%0A%7F", "/a%0D%0A%7F"),
            ("/keep!$&'()*+,;=:@~", "/keep!$&'()*+,;=:@~"),
        ] {
            let path = normalize(raw).unwrap();
            let escaped = escape_path(&path);
            assert_eq!(escaped, upstream, "{raw}");
            assert!(
                http::uri::PathAndQuery::try_from(&*escaped).is_ok(),
                "{raw}"
            );
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(normalize("/api/v1/users"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/a/b/"), Ok(Cow::Borrowed(_))));
    }
}
