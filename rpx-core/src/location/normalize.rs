//! Path normalisation before location matching, as nginx does it: merge
//! `//`, resolve `.` and `..`, decode percent-escapes of unreserved characters.

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
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
}

/// Normalises `path`, borrowing it when it is already normal (the common case).
///
/// ```
/// use rpx_core::location::normalize;
/// assert_eq!(normalize("/a//b/./c/../d").unwrap(), "/a/b/d");
/// assert_eq!(normalize("/%7Euser/%41").unwrap(), "/~user/A");
/// assert!(normalize("/../etc/passwd").is_err());
/// ```
///
/// # Errors
/// [`PathError`] for paths above the root, bad escapes and relative paths.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return if path == "*" {
            Ok(Cow::Borrowed(path))
        } else {
            Err(PathError::NotAbsolute)
        };
    }
    if is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let mut out = String::with_capacity(decoded.len());
    let segments: Vec<&str> = decoded.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate().skip(1) {
        match *seg {
            "" | "." => {
                // A trailing `/`, `/.` keeps the path a directory.
                if i == last && !out.ends_with('/') {
                    out.push('/');
                }
            }
            ".." => {
                if out.is_empty() {
                    return Err(PathError::AboveRoot);
                }
                let trimmed = out.trim_end_matches('/');
                if trimmed.is_empty() {
                    return Err(PathError::AboveRoot);
                }
                let cut = trimmed.rfind('/').unwrap_or(0);
                out.truncate(cut + 1);
            }
            s => {
                if !out.ends_with('/') {
                    out.push('/');
                }
                out.push_str(s);
                if i == last {
                    break;
                }
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// True when nothing in `p` needs rewriting.
fn is_normal(p: &[u8]) -> bool {
    if p.contains(&b'%') {
        return false;
    }
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'/' {
            let rest = &p[i + 1..];
            let seg_end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            let seg = &rest[..seg_end];
            if (seg.is_empty() && seg_end < rest.len()) || seg == b"." || seg == b".." {
                return false;
            }
            i += 1 + seg_end;
        } else {
            i += 1;
        }
    }
    true
}

fn decode_unreserved(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.contains('%') {
        return Ok(Cow::Borrowed(path));
    }
    let b = path.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let v = (hex_val(hex[0]).ok_or(PathError::BadEscape)? << 4)
                | hex_val(hex[1]).ok_or(PathError::BadEscape)?;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v as char);
            } else {
                // Reserved or non-ASCII: keep the escape, normalised to upper case.
                out.push('%');
                out.push(hex[0].to_ascii_uppercase() as char);
                out.push(hex[1].to_ascii_uppercase() as char);
            }
            i += 3;
        } else {
            let start = i;
            while i < b.len() && b[i] != b'%' {
                i += 1;
            }
            out.push_str(&path[start..i]);
        }
    }
    Ok(Cow::Owned(out))
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
            ("/a%2fb", "/a%2Fb"),
            ("/%2e%2e/x", "ERR"),
            ("/a/%2E%2E/x", "/x"),
            ("/a%20b", "/a%20b"),
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
    }

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(normalize("/api/v1/users"), Ok(Cow::Borrowed(_))));
        assert!(matches!(normalize("/a/b/"), Ok(Cow::Borrowed(_))));
    }
}
