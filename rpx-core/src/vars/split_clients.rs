//! `split_clients string $variable { 0.5% .one; 2.0% .two; * ""; }`: a
//! value picked by the MurmurHash2 of a rendered string, for A/B tests
//! (nginx's `ngx_http_split_clients_module`).
//!
//! The percentages are compiled once into cumulative 32-bit bounds, so a
//! request costs one render, one hash and a scan of a few integers.

use super::{Template, VarCtx};

/// A `split_clients` block that does not compile; the wording is nginx's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// A percentage that is not `N%` with at most two decimals, or is `0%`.
    #[error("invalid percent value \"{word}\"")]
    InvalidPercent {
        /// Which part (0-based) of the block.
        index: usize,
        /// The word as written.
        word: String,
    },
    /// The percentages add up to more than 100% (a `*` counts as the rest,
    /// so any percentage after it is too much).
    #[error("percent total is greater than 100%")]
    TotalOver100,
}

/// One part: the value and the exclusive upper bound of the hashes that
/// pick it; `None` for `*`, which takes every hash that reaches it.
#[derive(Debug, Clone)]
struct Part {
    bound: Option<u32>,
    value: Box<str>,
}

/// A compiled `split_clients` variable.
///
/// ```
/// use rpx_core::vars::Template;
/// use rpx_core::vars::split_clients::SplitClients;
/// let parts = [
///     ("0.5%".to_owned(), ".one".to_owned()),
///     ("2.0%".to_owned(), ".two".to_owned()),
///     ("*".to_owned(), String::new()),
/// ];
/// let split = SplitClients::new(Template::parse("${remote_addr}AAA").unwrap(), &parts).unwrap();
/// # let _ = split;
/// ```
#[derive(Debug, Clone)]
pub struct SplitClients {
    source: Template,
    parts: Box<[Part]>,
}

impl SplitClients {
    /// Compiles a block: `source` is the string hashed per request,
    /// `parts` the block's lines as (percentage word as written — `"0.5%"`
    /// or `"*"` — , value).
    ///
    /// Values are plain text, as in nginx (which stores them without
    /// compiling variables): `$x` in a value is the two characters `$x`.
    ///
    /// # Errors
    /// [`SplitError::InvalidPercent`] for a malformed or zero percentage,
    /// [`SplitError::TotalOver100`] when the parts add up to more than 100%.
    pub fn new(source: Template, parts: &[(String, String)]) -> Result<Self, SplitError> {
        // nginx checks every line's syntax while parsing the block and the
        // total afterwards; keep that order so the first error is the same.
        let mut percents = Vec::with_capacity(parts.len());
        for (index, (word, _)) in parts.iter().enumerate() {
            percents.push(if word == "*" {
                None
            } else {
                Some(
                    parse_percent(word).ok_or_else(|| SplitError::InvalidPercent {
                        index,
                        word: word.clone(),
                    })?,
                )
            });
        }
        let mut sum: u64 = 0;
        let mut last: u64 = 0;
        let mut compiled = Vec::with_capacity(parts.len());
        for (percent, (_, value)) in percents.into_iter().zip(parts) {
            // `*` fills the total up to 100%, as in `ngx_conf_split_clients_block`.
            sum = percent.map_or(10_000, |p| sum + p);
            if sum > 10_000 {
                return Err(SplitError::TotalOver100);
            }
            let bound = percent.map(|p| {
                // Per part, rounding down, exactly as nginx accumulates:
                // the bounds (and so every client's bucket) match nginx's.
                last += p * u64::from(u32::MAX) / 10_000;
                u32::try_from(last).unwrap_or(u32::MAX)
            });
            compiled.push(Part {
                bound,
                value: value.as_str().into(),
            });
        }
        Ok(SplitClients {
            source,
            parts: compiled.into(),
        })
    }

    /// The value for a hash: the first part whose bound is above it, or
    /// `*`; `None` past the last part (the variable is then empty).
    fn pick(&self, hash: u32) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.bound.is_none_or(|b| hash < b))
            .map(|p| &*p.value)
    }

    /// Appends the value for this request to `out`.
    pub fn write(&self, ctx: &VarCtx<'_>, out: &mut String) {
        // Render the key into `out` itself and cut it off after hashing:
        // no buffer of its own per request.
        let start = out.len();
        self.source.render(ctx, out);
        let hash = murmur2(&out.as_bytes()[start..]);
        out.truncate(start);
        if let Some(v) = self.pick(hash) {
            out.push_str(v);
        }
    }
}

/// `N%` with at most two decimals as hundredths of a percent (`"0.5%"` →
/// 50), as nginx's `ngx_atofp(…, 2)` reads it: digits and one dot, no
/// sign; `None` when malformed, zero or absurdly large.
fn parse_percent(word: &str) -> Option<u64> {
    let digits = word.strip_suffix('%')?;
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    let mut decimals_left: u32 = 2;
    let mut dot = false;
    for b in digits.bytes() {
        // A third decimal (or a dot after two) is an error, not rounding.
        if decimals_left == 0 {
            return None;
        }
        match b {
            b'.' if !dot => dot = true,
            b'0'..=b'9' => {
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                if dot {
                    decimals_left -= 1;
                }
            }
            _ => return None,
        }
    }
    let value = value.checked_mul(10u64.pow(decimals_left))?;
    (value != 0).then_some(value)
}

/// MurmurHash2, 32-bit, as nginx's `ngx_murmur_hash2`: seed 0, so the
/// initial state is just the length (`0 ^ len`, truncated to 32 bits),
/// 4-byte little-endian blocks, tail bytes folded in from the last.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    // Truncating like nginx's assignment of `size_t` to `uint32_t`.
    let mut h = data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{ConnInfo, Scheme};

    fn parts(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, v)| ((*p).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn split(list: &[(&str, &str)]) -> Result<SplitClients, SplitError> {
        SplitClients::new(Template::parse("$arg_k").unwrap(), &parts(list))
    }

    /// Vectors computed by the reference algorithm (Appleby's
    /// `MurmurHash2(key, len, seed = 0)`, whose `h = seed ^ len` is
    /// nginx's `h = 0 ^ len`) in two independent implementations, a C
    /// program and a Python one, which agreed:
    ///
    /// ```text
    /// ""                 0x00000000      "abcd"          0x26873021
    /// "a"                0x92685f5e      "hello"         0xe56129cb
    /// "ab"               0x1aa14063      "hello world"   0x44a81419
    /// "abc"              0x13577c9b      "127.0.0.1AAA"  0xb5fc5e4b
    /// "The quick brown fox jumps over the lazy dog"      0x212729d0
    /// ```
    #[test]
    fn murmur2_known_vectors() {
        let cases: [(&str, u32); 9] = [
            ("", 0x0000_0000),
            ("a", 0x9268_5f5e),
            ("ab", 0x1aa1_4063),
            ("abc", 0x1357_7c9b),
            ("abcd", 0x2687_3021),
            ("hello", 0xe561_29cb),
            ("hello world", 0x44a8_1419),
            ("127.0.0.1AAA", 0xb5fc_5e4b),
            ("The quick brown fox jumps over the lazy dog", 0x2127_29d0),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()), want, "murmur2({input:?})");
        }
    }

    #[test]
    fn bounds_are_nginx_cumulative_hundredths() {
        let s = split(&[("0.5%", ".one"), ("2.0%", ".two"), ("*", "")]).unwrap();
        // 50 * 0xffffffff / 10000 = 21474836; + 200 * 0xffffffff / 10000
        // (85899345) = 107374181.
        assert_eq!(s.pick(0), Some(".one"));
        assert_eq!(s.pick(21_474_835), Some(".one"));
        assert_eq!(s.pick(21_474_836), Some(".two"));
        assert_eq!(s.pick(107_374_180), Some(".two"));
        assert_eq!(s.pick(107_374_181), Some(""));
        assert_eq!(s.pick(u32::MAX), Some(""));
    }

    #[test]
    fn without_star_the_rest_is_empty() {
        let s = split(&[("50%", "a"), ("50%", "b")]).unwrap();
        // Per-part rounding: 2147483647 + 2147483647 = 4294967294.
        assert_eq!(s.pick(2_147_483_646), Some("a"));
        assert_eq!(s.pick(2_147_483_647), Some("b"));
        assert_eq!(s.pick(4_294_967_293), Some("b"));
        assert_eq!(s.pick(4_294_967_294), None);
        // As nginx: even a lone 100% leaves the top hash unmatched.
        let full = split(&[("100%", "all")]).unwrap();
        assert_eq!(full.pick(u32::MAX - 1), Some("all"));
        assert_eq!(full.pick(u32::MAX), None);
        let none = split(&[("10%", "x")]).unwrap();
        assert_eq!(none.pick(u32::MAX / 2), None);
    }

    #[test]
    fn distinct_keys_split_by_percentages() {
        let s = split(&[("0.5%", ".one"), ("2.0%", ".two"), ("*", "rest")]).unwrap();
        let conn = ConnInfo::new(
            "192.168.1.5:1000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            Scheme::Http,
        );
        let (mut one, mut two, mut rest) = (0, 0, 0);
        let mut out = String::from("prefix:");
        for i in 0..10_000 {
            let req = http::Request::get(format!("/?k=client-{i}"))
                .body(())
                .unwrap();
            let ctx = VarCtx::new(&req, &conn, "/", "s");
            out.truncate("prefix:".len());
            s.write(&ctx, &mut out);
            match out.strip_prefix("prefix:").unwrap() {
                ".one" => one += 1,
                ".two" => two += 1,
                "rest" => rest += 1,
                other => panic!("unexpected value {other:?}"),
            }
        }
        // Expected 50 / 200 / 9750; a binomial's 4-sigma band.
        assert!((22..=78).contains(&one), "0.5%: {one}");
        assert!((144..=256).contains(&two), "2%: {two}");
        assert_eq!(one + two + rest, 10_000);
    }

    #[test]
    fn write_hashes_the_rendered_source() {
        let s = SplitClients::new(
            Template::parse("${remote_addr}AAA").unwrap(),
            &parts(&[("50%", "low"), ("*", "high")]),
        )
        .unwrap();
        let conn = ConnInfo::new(
            "127.0.0.1:1000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            Scheme::Http,
        );
        let req = http::Request::get("/").body(()).unwrap();
        let ctx = VarCtx::new(&req, &conn, "/", "s");
        // murmur2("127.0.0.1AAA") = 0xb5fc5e4b, above the 50% bound.
        let mut out = String::new();
        s.write(&ctx, &mut out);
        assert_eq!(out, "high");
    }

    #[test]
    fn values_are_literal() {
        let s = split(&[("*", "$host")]).unwrap();
        assert_eq!(s.pick(1), Some("$host"));
    }

    #[test]
    fn percent_syntax() {
        assert_eq!(parse_percent("0.5%"), Some(50));
        assert_eq!(parse_percent("2.0%"), Some(200));
        assert_eq!(parse_percent("33.33%"), Some(3333));
        assert_eq!(parse_percent("100%"), Some(10_000));
        assert_eq!(parse_percent(".5%"), Some(50));
        assert_eq!(parse_percent("5.%"), Some(500));
        for bad in [
            "0%", "0.00%", "%", "5", "5.555%", "1.2.3%", "-1%", "1e2%", "*%", "",
        ] {
            assert_eq!(parse_percent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors_in_nginx_words() {
        let err = split(&[("10%", "a"), ("abc", "b")]).unwrap_err();
        assert_eq!(
            err,
            SplitError::InvalidPercent {
                index: 1,
                word: "abc".into()
            }
        );
        assert_eq!(err.to_string(), "invalid percent value \"abc\"");
        assert_eq!(
            split(&[("0%", "a")]).unwrap_err().to_string(),
            "invalid percent value \"0%\""
        );
        assert_eq!(
            split(&[("1.234%", "a")]).unwrap_err().to_string(),
            "invalid percent value \"1.234%\""
        );
        let over = split(&[("60%", "a"), ("40.01%", "b")]).unwrap_err();
        assert_eq!(over, SplitError::TotalOver100);
        assert_eq!(over.to_string(), "percent total is greater than 100%");
        // `*` is the rest: a percentage after it is over 100%.
        assert_eq!(
            split(&[("*", "a"), ("1%", "b")]).unwrap_err(),
            SplitError::TotalOver100
        );
        // Syntax errors are found before the total, as nginx parses.
        assert!(matches!(
            split(&[("100%", "a"), ("50%", "b"), ("x%", "c")]),
            Err(SplitError::InvalidPercent { index: 2, .. })
        ));
        assert!(split(&[("60%", "a"), ("40%", "b"), ("*", "c")]).is_ok());
        assert!(split(&[]).is_ok());
    }
}
