//! What a value of the wrong shape should have been.
//!
//! A key that takes more than one shape (`listen = "…"` or a list,
//! `return = 404` or `"301 https://…"`) is an untagged serde enum, and a
//! value that fits none of them fails with serde's "data did not match any
//! variant of untagged enum NumOrText": true, but no help to someone
//! writing a config. This names the key and the shapes it takes instead.

/// The message for a TOML error at `offset` in `src`: serde's own, unless
/// it is the untagged-enum one, which is replaced by what the key takes.
pub(super) fn explain(message: &str, src: &str, offset: usize) -> String {
    let Some(enum_name) = message.strip_prefix("data did not match any variant of untagged enum ")
    else {
        return message.to_owned();
    };
    let key = key_before(src, offset);
    let expected = match (enum_name.trim(), key) {
        ("NumOrText" | "RawReturn", Some("return")) => {
            "a status code (`404`) or a string with the code and a URL or a text \
             (`\"301 https://$host$request_uri\"`, `\"200 ok\"`)"
        }
        ("RawReturn", _) => "a status code (`404`) or a string (`\"301 https://…\"`)",
        ("NumOrText", _) => {
            "a number or a string with a unit (`30`, `\"30s\"`, `\"1m\"`, `\"10m\"` for sizes)"
        }
        ("OneOrMany", _) => "a string or a list of strings",
        ("RawAddHeader", _) => "a string, or `{ value = \"…\", always = true }`",
        ("RawHeaders", _) => {
            "a table of header names to values (`{ Host = \"$host\" }`), or a list of \
             `{ name = \"…\", value = \"…\" }` where a name repeats or the order matters"
        }
        ("RawRedirect", _) => "`\"default\"`, `\"off\"`, or a list of `[\"from\", \"to\"]` pairs",
        ("RawLogItem" | "RawAccessLog", _) => {
            "a path, `\"off\"`, `{ path = \"…\", format = \"…\" }`, or a list of those"
        }
        ("RawErrorLog", _) => "a path, or `{ path = \"…\", level = \"warn\" }`",
        ("RawCond", _) => {
            "a condition as a string (`\"$request_method = POST\"`) or as a list of its words"
        }
        ("RawEntries", _) => "a list of `[\"key\", \"value\"]` pairs, or a table of keys to values",
        ("RawServerAcme", _) => "`true`, `false`, or the name of an `[acme]` issuer",
        ("RawWebsocket", _) => "`true`, `false`, or `\"nginx\"`",
        _ => return message.to_owned(),
    };
    match key {
        Some(key) => format!("`{key}`: expected {expected}"),
        None => format!("expected {expected}"),
    }
}

/// The key of `key = value` when the value starts at `offset` on the
/// key's line (a bare or quoted key; a dotted one gives its last part).
fn key_before(src: &str, offset: usize) -> Option<&str> {
    let before = src.get(..offset)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let (left, value) = line.rsplit_once('=')?;
    if !value.trim().is_empty() {
        return None;
    }
    let left = left.trim_end();
    let keyish = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '"');
    let start = left.rfind(|c: char| !keyish(c)).map_or(0, |i| i + 1);
    let key = left[start..].trim_matches('"');
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use crate::config::parse_toml;

    /// The message `parse_toml` gives for `src`.
    fn error(src: &str) -> String {
        parse_toml(src, "rpx.toml").unwrap_err().to_string()
    }

    #[test]
    fn a_return_of_the_wrong_shape_says_what_return_takes() {
        let err = error(
            "[[server]]\nlisten = \"127.0.0.1:0\"\n[[server.location]]\npath = \"/\"\n\
             return = [200, \"ok\"]\n",
        );
        assert!(
            err.contains("rpx.toml:5:10: `return`: expected a status code (`404`)"),
            "{err}"
        );
        assert!(!err.contains("untagged"), "{err}");
    }

    #[test]
    fn other_keys_of_two_shapes_name_themselves() {
        for (line, key, expected) in [
            ("listen = 80", "listen", "a string or a list of strings"),
            (
                "proxy_read_timeout = true",
                "proxy_read_timeout",
                "a number or a string with a unit",
            ),
            (
                "add_header = { X-A = 1 }",
                "add_header",
                "a table of header names",
            ),
            (
                "add_header = [{ value = 1 }]",
                "add_header",
                "a table of header names",
            ),
            ("proxy_redirect = 3", "proxy_redirect", "`\"default\"`"),
            ("access_log = 3", "access_log", "a path, `\"off\"`"),
            ("acme = 3", "acme", "`true`, `false`"),
        ] {
            let err = error(&format!("[[server]]\n{line}\n"));
            assert!(
                err.contains("rpx.toml:2:")
                    && err.contains(&format!("`{key}`: expected {expected}")),
                "{line}: {err}"
            );
        }
    }

    #[test]
    fn other_messages_are_left_alone() {
        assert_eq!(super::explain("invalid type", "x = 1", 4), "invalid type");
        assert_eq!(super::key_before("a.\"b\" = [", 8), Some("b"));
        assert_eq!(super::key_before("[1,\n 2", 5), None);
    }
}
