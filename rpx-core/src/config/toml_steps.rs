//! The TOML shape of nginx's rewrite module (`rewrite`, `if`, `return`,
//! `break`) and of `map`: read here into the model, written by
//! `toml_writer` with [`step_table`] and [`map_table`], so that a config
//! round-trips exactly.
//!
//! ```toml
//! [[server.rewrite]]                     # steps run in order, as in nginx
//! if = "$host = www.example.com"         # `$var`, `= != ~ ~* !~ !~*`
//! return = "301 https://example.com$request_uri"
//!
//! [[server.location.rewrite]]
//! regex = "^/old/(.*)$"
//! replacement = "/new/$1"
//! flag = "permanent"                     # last | break | redirect | permanent
//!
//! [[server.location.rewrite]]
//! if = "$http_user_agent ~* bot"
//! steps = [{ regex = "^", replacement = "/bots$uri", flag = "break" }, { return = 403 }]
//!
//! [[map]]
//! source = "$http_upgrade"
//! variable = "$connection_upgrade"
//! default = "upgrade"
//! entries = [["", "close"], ["~*^web", "upgrade"]]   # nginx's keys: ~regex, ~*regex, \~literal
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::{Table, Value};

use super::error::ConfigError;
use super::model::*;
use super::{parse_return, set_config};

/// `if = "…"` or, when the text form would not round-trip, its words.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawCond {
    Text(String),
    Words(Vec<String>),
}

/// A `return` value: `301`, or `"301 https://…"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawReturn {
    Code(u16),
    Text(String),
}

/// One step: `if` plus one action (or `steps`), or one action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    #[serde(rename = "if", default)]
    cond: Option<RawCond>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    replacement: Option<String>,
    #[serde(default)]
    flag: Option<String>,
    #[serde(rename = "return", default)]
    ret: Option<RawReturn>,
    #[serde(rename = "break", default)]
    brk: bool,
    #[serde(default)]
    steps: Option<Vec<RawStep>>,
    /// `set = "$name"` with `value`.
    #[serde(default)]
    set: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// `[[map]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMap {
    source: String,
    variable: String,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    entries: Option<RawEntries>,
    #[serde(default)]
    hostnames: bool,
}

/// Ordered `[["key", "value"], …]`, or a table of keys.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawEntries {
    Pairs(Vec<(String, String)>),
    Table(BTreeMap<String, String>),
}

/// `return` words to the model, as the TOML `return` key reads them.
pub(super) fn return_config(raw: &RawReturn, pos: SourcePos) -> Result<ReturnConfig, String> {
    let text;
    let words: Vec<&str> = match raw {
        RawReturn::Code(n) => {
            text = n.to_string();
            vec![text.as_str()]
        }
        RawReturn::Text(t) => match t.split_once(char::is_whitespace) {
            Some((code, rest)) if code.bytes().all(|b| b.is_ascii_digit()) => {
                vec![code, rest.trim()]
            }
            _ => vec![t.as_str()],
        },
    };
    parse_return(&words).map(|(code, text)| ReturnConfig { code, text, pos })
}

/// Reads one level's steps; problems go to `errors`.
pub(super) fn read_steps(
    raw: Vec<(SourcePos, RawStep)>,
    errors: &mut Vec<ConfigError>,
) -> Vec<RewriteStep> {
    raw.into_iter()
        .filter_map(|(pos, s)| read_step(s, &pos, errors))
        .collect()
}

fn read_step(raw: RawStep, pos: &SourcePos, errors: &mut Vec<ConfigError>) -> Option<RewriteStep> {
    let mut fail = |msg: String, hint: &str| {
        errors.push(ConfigError::new(pos.clone(), msg).hint(hint.to_owned()));
        None
    };
    let actions = usize::from(raw.regex.is_some() || raw.replacement.is_some())
        + usize::from(raw.ret.is_some())
        + usize::from(raw.brk)
        + usize::from(raw.steps.is_some())
        + usize::from(raw.set.is_some());
    let one = "a step is one of: regex + replacement [+ flag], return, break = true, set = \"$name\" + value; with `if`, or `steps = [...]`";
    if actions != 1 || (raw.steps.is_some() && raw.cond.is_none()) {
        return fail("a rewrite step needs exactly one action".into(), one);
    }
    let action = if let Some(r) = &raw.ret {
        match return_config(r, pos.clone()) {
            Ok(r) => RewriteStep::Return(r),
            Err(msg) => return fail(msg, "return = 301, or \"301 https://…\""),
        }
    } else if raw.brk {
        RewriteStep::Break
    } else if let Some(name) = &raw.set {
        let Some(value) = raw.value.clone() else {
            return fail("`set` needs a `value`".into(), one);
        };
        match set_config(name, value, pos.clone()) {
            Ok(s) => RewriteStep::Set(s),
            Err(msg) => return fail(msg, "set = \"$name\", value = \"…\""),
        }
    } else if let Some(steps) = raw.steps {
        let inner = steps
            .into_iter()
            .filter_map(|s| read_step(s, pos, errors))
            .collect();
        // `steps` only comes with `if` (checked above).
        return raw.cond.and_then(|c| if_step(c, inner, pos, errors));
    } else {
        let (Some(regex), Some(replacement)) = (raw.regex, raw.replacement) else {
            return fail("a rewrite needs `regex` and `replacement`".into(), one);
        };
        let flag = match raw.flag.as_deref() {
            None => RewriteFlag::None,
            Some("last") => RewriteFlag::Last,
            Some("break") => RewriteFlag::Break,
            Some("redirect") => RewriteFlag::Redirect,
            Some("permanent") => RewriteFlag::Permanent,
            Some(other) => {
                return fail(
                    format!("invalid rewrite flag {other:?}"),
                    "last, break, redirect or permanent",
                )
            }
        };
        RewriteStep::Rewrite(RewriteConfig {
            regex,
            replacement,
            flag,
            pos: pos.clone(),
        })
    };
    if raw.flag.is_some() && !matches!(action, RewriteStep::Rewrite(_)) {
        return fail("`flag` belongs to a rewrite".into(), one);
    }
    if raw.value.is_some() && !matches!(action, RewriteStep::Set(_)) {
        return fail("`value` belongs to a set".into(), one);
    }
    match raw.cond {
        None => Some(action),
        Some(c) => if_step(c, vec![action], pos, errors),
    }
}

fn if_step(
    cond: RawCond,
    steps: Vec<RewriteStep>,
    pos: &SourcePos,
    errors: &mut Vec<ConfigError>,
) -> Option<RewriteStep> {
    let words: Vec<&str> = match &cond {
        RawCond::Text(t) => condition_words(t),
        RawCond::Words(w) => w.iter().map(String::as_str).collect(),
    };
    match parse_condition(&words) {
        Some(cond) => Some(RewriteStep::If(IfConfig {
            cond,
            steps,
            pos: pos.clone(),
        })),
        None => {
            errors.push(
                ConfigError::new(pos.clone(), format!("invalid condition {cond:?}"))
                    .hint("\"$var\", or \"$var OP text\" with OP one of = != ~ ~* !~ !~*"),
            );
            None
        }
    }
}

/// `"$var OP the rest"`: the first two words, then the rest trimmed.
fn condition_words(text: &str) -> Vec<&str> {
    let text = text.trim();
    let Some((left, rest)) = text.split_once(char::is_whitespace) else {
        return vec![text];
    };
    let rest = rest.trim_start();
    match rest.split_once(char::is_whitespace) {
        Some((op, right)) => vec![left, op, right.trim()],
        None => vec![left, rest, ""],
    }
}

fn parse_condition(words: &[&str]) -> Option<Condition> {
    match words {
        [op, path] | [op, path, ""] if FileTest::parse(op).is_some() && !path.is_empty() => {
            let (test, negate) = FileTest::parse(op)?;
            Some(Condition::File {
                path: (*path).to_owned(),
                test,
                negate,
            })
        }
        [v] if !v.is_empty() => Some(Condition::NonEmpty((*v).into())),
        [left, op, right] if !left.is_empty() => {
            let (left, right) = ((*left).to_owned(), (*right).to_owned());
            Some(match *op {
                "=" | "!=" => Condition::Equals {
                    left,
                    right,
                    negate: *op == "!=",
                },
                "~" | "~*" | "!~" | "!~*" => Condition::Matches {
                    left,
                    regex: right,
                    caseless: op.ends_with('*'),
                    negate: op.starts_with('!'),
                },
                _ => return None,
            })
        }
        _ => None,
    }
}

/// A condition as TOML: the text form when it reads back the same.
fn condition_value(c: &Condition) -> Value {
    let file_op;
    let (left, op, right) = match c {
        Condition::File { path, test, negate } => {
            file_op = test.op(*negate);
            (file_op.as_str(), Some(path.as_str()), "")
        }
        Condition::NonEmpty(v) => (v.as_str(), None, ""),
        Condition::Equals {
            left,
            right,
            negate,
        } => (
            left.as_str(),
            Some(if *negate { "!=" } else { "=" }),
            right.as_str(),
        ),
        Condition::Matches {
            left,
            regex,
            caseless,
            negate,
        } => {
            let op = match (negate, caseless) {
                (false, false) => "~",
                (false, true) => "~*",
                (true, false) => "!~",
                (true, true) => "!~*",
            };
            (left.as_str(), Some(op), regex.as_str())
        }
    };
    let plain = !left.is_empty() && !left.contains(char::is_whitespace) && right.trim() == right;
    let words: Vec<&str> = match op {
        None => vec![left],
        Some(op) => vec![left, op, right],
    };
    if plain {
        Value::String(words.join(" ").trim_end().to_owned())
    } else {
        Value::Array(words.into_iter().map(|w| Value::String(w.into())).collect())
    }
}

/// The TOML `return` value.
pub(super) fn return_value(r: &ReturnConfig) -> Value {
    match &r.text {
        None => Value::Integer(i64::from(r.code)),
        Some(t) => Value::String(format!("{} {t}", r.code)),
    }
}

/// One step as a TOML table.
pub(super) fn step_table(step: &RewriteStep) -> Table {
    let mut t = Table::new();
    match step {
        RewriteStep::Rewrite(r) => {
            t.insert("regex".into(), Value::String(r.regex.clone()));
            t.insert("replacement".into(), Value::String(r.replacement.clone()));
            let flag = match r.flag {
                RewriteFlag::None => None,
                RewriteFlag::Last => Some("last"),
                RewriteFlag::Break => Some("break"),
                RewriteFlag::Redirect => Some("redirect"),
                RewriteFlag::Permanent => Some("permanent"),
            };
            if let Some(f) = flag {
                t.insert("flag".into(), Value::String(f.into()));
            }
        }
        RewriteStep::Return(r) => {
            t.insert("return".into(), return_value(r));
        }
        RewriteStep::Break => {
            t.insert("break".into(), Value::Boolean(true));
        }
        RewriteStep::Set(s) => {
            t.insert("set".into(), Value::String(format!("${}", s.name)));
            t.insert("value".into(), Value::String(s.value.clone()));
        }
        RewriteStep::If(i) => {
            t.insert("if".into(), condition_value(&i.cond));
            match i.steps.as_slice() {
                // One plain action reads best inline: `if = …` `return = …`.
                [one] if !matches!(one, RewriteStep::If(_)) => t.extend(step_table(one)),
                steps => {
                    let inner = steps.iter().map(|s| Value::Table(step_table(s))).collect();
                    t.insert("steps".into(), Value::Array(inner));
                }
            }
        }
    }
    t
}

/// Reads a `[[map]]`.
pub(super) fn read_map(
    raw: RawMap,
    pos: SourcePos,
    errors: &mut Vec<ConfigError>,
) -> Option<MapConfig> {
    let name = raw.variable.strip_prefix('$').unwrap_or(&raw.variable);
    if name.is_empty() || name.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        errors.push(
            ConfigError::new(pos, format!("invalid map variable {:?}", raw.variable))
                .hint("variable = \"$name\" (letters, digits, _)"),
        );
        return None;
    }
    let pairs = match raw.entries {
        None => Vec::new(),
        Some(RawEntries::Pairs(p)) => p,
        Some(RawEntries::Table(t)) => t.into_iter().collect(),
    };
    let entries = pairs
        .into_iter()
        .map(|(key, value)| MapEntry {
            key: if let Some(p) = key.strip_prefix("~*") {
                MapKey::Regex {
                    pattern: p.into(),
                    caseless: true,
                }
            } else if let Some(p) = key.strip_prefix('~') {
                MapKey::Regex {
                    pattern: p.into(),
                    caseless: false,
                }
            } else {
                MapKey::Exact(key.strip_prefix('\\').unwrap_or(&key).to_owned())
            },
            value,
            pos: pos.clone(),
        })
        .collect();
    Some(MapConfig {
        source: raw.source,
        name: name.to_owned(),
        default: raw.default,
        entries,
        hostnames: raw.hostnames,
        pos,
    })
}

/// A `map` as a TOML table; entries keep their order.
pub(super) fn map_table(m: &MapConfig) -> Table {
    let mut t = Table::new();
    t.insert("source".into(), Value::String(m.source.clone()));
    t.insert("variable".into(), Value::String(format!("${}", m.name)));
    if let Some(d) = &m.default {
        t.insert("default".into(), Value::String(d.clone()));
    }
    if m.hostnames {
        t.insert("hostnames".into(), Value::Boolean(true));
    }
    if !m.entries.is_empty() {
        let entries = m
            .entries
            .iter()
            .map(|e| {
                let key = match &e.key {
                    MapKey::Regex { pattern, caseless } => {
                        format!("{}{pattern}", if *caseless { "~*" } else { "~" })
                    }
                    // nginx's escape for a literal key starting with `~`.
                    MapKey::Exact(k) if k.starts_with(['~', '\\']) => format!("\\{k}"),
                    MapKey::Exact(k) => k.clone(),
                };
                Value::Array(vec![Value::String(key), Value::String(e.value.clone())])
            })
            .collect();
        t.insert("entries".into(), Value::Array(entries));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(text: &str) -> Option<Condition> {
        parse_condition(&condition_words(text))
    }

    #[test]
    fn condition_text_round_trips() {
        for text in [
            "$host = example.com",
            "$http_x !=",
            "$request_method !~* ^(GET|HEAD)$",
            "$arg_debug",
            "$http_user_agent ~ a b",
        ] {
            let c = cond(text).unwrap();
            assert_eq!(condition_value(&c), Value::String(text.into()), "{text}");
        }
        let spaced = Condition::Equals {
            left: "$x".into(),
            right: " padded ".into(),
            negate: false,
        };
        let Value::Array(words) = condition_value(&spaced) else {
            panic!("array form expected")
        };
        let words: Vec<&str> = words.iter().filter_map(Value::as_str).collect();
        assert_eq!(parse_condition(&words), Some(spaced));
        assert_eq!(cond("$x <> y"), None);
        assert_eq!(cond(""), None);
    }

    #[test]
    fn steps_read_and_reject() {
        let read = |src: &str| {
            let raw: Vec<RawStep> = toml::from_str::<Table>(src)
                .unwrap()
                .remove("s")
                .unwrap()
                .try_into()
                .unwrap();
            let mut errors = Vec::new();
            let steps = read_steps(
                raw.into_iter().map(|s| (SourcePos::code(), s)).collect(),
                &mut errors,
            );
            (steps, errors.len())
        };
        let (steps, errors) = read(
            r#"s = [
                { if = "$host = a", return = "301 https://b$request_uri" },
                { regex = "^/x$", replacement = "/y", flag = "last" },
                { if = "$arg_q", steps = [{ break = true }, { return = 404 }] },
                { break = true },
            ]"#,
        );
        assert_eq!(errors, 0);
        assert_eq!(steps.len(), 4);
        assert!(matches!(&steps[2], RewriteStep::If(i) if i.steps.len() == 2));
        for bad in [
            r#"s = [{ return = 301, break = true }]"#,
            r#"s = [{ regex = "^" }]"#,
            r#"s = [{ steps = [] }]"#,
            r#"s = [{ regex = "^", replacement = "/", flag = "sometimes" }]"#,
            r#"s = [{ if = "$x ?? y", break = true }]"#,
            r#"s = [{ return = 301, flag = "last" }]"#,
        ] {
            assert_eq!(read(bad).1, 1, "{bad}");
        }
    }
}
