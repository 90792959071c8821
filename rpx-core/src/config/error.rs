//! Config errors: each names `file:line:col`, says what is wrong, and where
//! it can, what to write instead.

use super::model::SourcePos;

/// One problem in a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct ConfigError {
    /// Where.
    pub pos: SourcePos,
    /// What is wrong.
    pub message: String,
    /// What to write instead, when known.
    pub hint: Option<String>,
}

impl ConfigError {
    /// An error at `pos`.
    pub fn new(pos: SourcePos, message: impl Into<String>) -> Self {
        ConfigError {
            pos,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in a config, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// The closest of `candidates` to `word`, if close enough to suggest
/// ("did you mean …?").
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let c = ["proxy_cache", "proxy_pass", "proxy_set_header"];
        assert_eq!(suggest("proxy_cahce", c), Some("proxy_cache"));
        assert_eq!(suggest("proxy_pas", c), Some("proxy_pass"));
        assert_eq!(suggest("listen", c), None);
    }

    #[test]
    fn display() {
        let e = ConfigError::new(SourcePos::new("a.toml", 3, 7), "bad").hint("try good");
        assert_eq!(e.to_string(), "a.toml:3:7: bad (try good)");
    }
}
