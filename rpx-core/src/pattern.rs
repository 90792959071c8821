//! nginx's regexes are PCRE's. rpx compiles each with the `regex` crate
//! (linear time, and `RegexSet` for a level's locations or server names)
//! and falls back, per pattern, to `fancy-regex` for what `regex` lacks:
//! lookahead and lookbehind (`^/(?!api/)`), backreferences, atomic groups.
//! fancy-regex is pure Rust and delegates the parts without such features
//! to `regex` again; its backtracking is bounded ([`BACKTRACK_LIMIT`]), so
//! a hostile path cannot hold a core: a match that hits the bound counts
//! as no match and is logged.

use std::fmt;

/// Backtracking steps one match may take (fancy-regex's default is a
/// million; nginx's PCRE has its own match limit of ten million).
pub const BACKTRACK_LIMIT: usize = 1_000_000;

/// Why a pattern did not compile, with the reason of the engine that
/// was tried last (`regex`'s when it is a plain syntax error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(String);

/// One compiled nginx regex.
///
/// ```
/// use rpx_core::pattern::Pattern;
/// let p = Pattern::new(r"^/(?!api/)(.*)$", false).unwrap();
/// assert!(p.is_match("/app/x") && !p.is_match("/api/x"));
/// assert_eq!(p.spans("/app/x").unwrap()[1], Some((1, 6)));
/// ```
#[derive(Clone)]
pub struct Pattern {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Linear(regex::Regex),
    Backtracking(fancy_regex::Regex),
}

/// Byte ranges of a match's groups, `$0` first (`None`: a group that
/// took no part).
pub type Spans = Vec<Option<(usize, usize)>>;

impl Pattern {
    /// Compiles `pattern` (`caseless`: `~*`).
    ///
    /// # Errors
    /// A pattern neither engine accepts.
    pub fn new(pattern: &str, caseless: bool) -> Result<Self, PatternError> {
        let linear = regex::RegexBuilder::new(pattern)
            .case_insensitive(caseless)
            .build();
        let err = match linear {
            Ok(re) => {
                return Ok(Pattern {
                    kind: Kind::Linear(re),
                })
            }
            Err(e) => e,
        };
        let mut b = fancy_regex::RegexBuilder::new(pattern);
        b.case_insensitive(caseless)
            .backtrack_limit(BACKTRACK_LIMIT);
        match b.build() {
            Ok(re) => Ok(Pattern {
                kind: Kind::Backtracking(re),
            }),
            // A size limit or plain syntax error: `regex`'s words are the clearer.
            Err(fancy_regex::Error::ParseError(..)) | Err(_)
                if matches!(err, regex::Error::CompiledTooBig(_)) =>
            {
                Err(PatternError(err.to_string()))
            }
            Err(e) => Err(PatternError(e.to_string())),
        }
    }

    /// The linear-time regex, when the pattern needs no backtracking (so
    /// it may join a `RegexSet`).
    pub fn linear(&self) -> Option<&regex::Regex> {
        match &self.kind {
            Kind::Linear(re) => Some(re),
            Kind::Backtracking(_) => None,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        match &self.kind {
            Kind::Linear(re) => re.as_str(),
            Kind::Backtracking(re) => re.as_str(),
        }
    }

    /// Whether it matches somewhere in `s`.
    pub fn is_match(&self, s: &str) -> bool {
        match &self.kind {
            Kind::Linear(re) => re.is_match(s),
            Kind::Backtracking(re) => re.is_match(s).unwrap_or_else(|e| self.gave_up(&e)),
        }
    }

    /// The groups of the first match in `s`.
    pub fn spans(&self, s: &str) -> Option<Spans> {
        match &self.kind {
            Kind::Linear(re) => {
                let c = re.captures(s)?;
                Some(
                    (0..c.len())
                        .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                        .collect(),
                )
            }
            Kind::Backtracking(re) => {
                let c = re.captures(s).unwrap_or_else(|e| {
                    self.gave_up(&e);
                    None
                })?;
                Some(
                    (0..c.len())
                        .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                        .collect(),
                )
            }
        }
    }

    /// Groups, `$0` included.
    pub fn captures_len(&self) -> usize {
        match &self.kind {
            Kind::Linear(re) => re.captures_len(),
            Kind::Backtracking(re) => re.captures_len(),
        }
    }

    /// The names of the groups in order (`None` for unnamed ones, `$0`'s
    /// first).
    pub fn capture_names(&self) -> Vec<Option<&str>> {
        match &self.kind {
            Kind::Linear(re) => re.capture_names().collect(),
            Kind::Backtracking(re) => re.capture_names().collect(),
        }
    }

    fn gave_up(&self, e: &fancy_regex::Error) -> bool {
        tracing::warn!(pattern = self.as_str(), error = %e, "regex gave up (backtracking limit); no match");
        false
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_first_backtracking_for_the_rest() {
        assert!(Pattern::new(r"\.(gif|jpg)$", true)
            .unwrap()
            .linear()
            .is_some());
        let look = Pattern::new(r"^/(?!api/)(.*)$", false).unwrap();
        assert!(look.linear().is_none());
        assert!(look.is_match("/x") && !look.is_match("/api/x"));
        let back = Pattern::new(r"^/(\w+)/\1$", false).unwrap();
        assert!(back.is_match("/ab/ab") && !back.is_match("/ab/cd"));
        let behind = Pattern::new(r"(?<=/v)\d+$", false).unwrap();
        assert_eq!(behind.spans("/v12").unwrap()[0], Some((2, 4)));
        let atomic = Pattern::new(r"^(?>a+)b", true).unwrap();
        assert!(atomic.is_match("AAB"));
        assert_eq!(atomic.capture_names().len(), atomic.captures_len());
        assert!(Pattern::new(r"(unclosed", false).is_err());
    }

    #[test]
    fn a_hostile_subject_is_no_match() {
        // Catastrophic backtracking: the bound stops it.
        let p = Pattern::new(r"^(a+)+\1$", false).unwrap();
        let subject = format!("{}b", "a".repeat(64));
        assert!(!p.is_match(&subject));
    }
}
