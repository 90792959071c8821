//! The TOML shape of `geo` and `split_clients`: read into the model here,
//! written back by `toml_writer` with [`geo_table`] and [`split_table`].
//!
//! ```toml
//! [[geo]]
//! source = "$http_x_real_ip"                 # optional: $remote_addr
//! variable = "$office"
//! lines = ["default 0", "10.0.0.0/8 1", "proxy 192.168.0.0/16", "delete 10.1.0.0/16"]
//!
//! [[split_clients]]
//! source = "${remote_addr}AAA"
//! variable = "$variant"
//! parts = [["0.5%", ".one"], ["2.0%", ".two"], ["*", ""]]
//! ```

use serde::Deserialize;
use toml::{Table, Value};

use super::error::ConfigError;
use super::model::*;

/// `[[geo]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGeo {
    #[serde(default)]
    source: Option<String>,
    variable: String,
    #[serde(default)]
    lines: Vec<String>,
}

/// `[[split_clients]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSplit {
    source: String,
    variable: String,
    #[serde(default)]
    parts: Vec<(String, String)>,
}

/// `$name` → `name`, or the error at `pos`.
fn variable(v: &str, what: &str, pos: &SourcePos, errors: &mut Vec<ConfigError>) -> Option<String> {
    let name = v.strip_prefix('$').unwrap_or(v);
    if name.is_empty() || name.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        errors.push(
            ConfigError::new(pos.clone(), format!("invalid {what} variable {v:?}"))
                .hint("variable = \"$name\" (letters, digits, _)"),
        );
        return None;
    }
    Some(name.to_owned())
}

/// Reads a `[[geo]]`.
pub(super) fn read_geo(
    raw: RawGeo,
    pos: SourcePos,
    errors: &mut Vec<ConfigError>,
) -> Option<GeoConfig> {
    let name = variable(&raw.variable, "geo", &pos, errors)?;
    let lines = raw
        .lines
        .iter()
        .map(|l| {
            Spanned::new(
                l.split_whitespace().map(str::to_owned).collect(),
                pos.clone(),
            )
        })
        .collect();
    Some(GeoConfig {
        source: raw.source,
        name,
        lines,
        pos,
    })
}

/// Reads a `[[split_clients]]`.
pub(super) fn read_split(
    raw: RawSplit,
    pos: SourcePos,
    errors: &mut Vec<ConfigError>,
) -> Option<SplitClientsConfig> {
    let name = variable(&raw.variable, "split_clients", &pos, errors)?;
    Some(SplitClientsConfig {
        source: raw.source,
        name,
        parts: raw.parts,
        pos,
    })
}

/// A `geo` as TOML.
pub(super) fn geo_table(g: &GeoConfig) -> Table {
    let mut t = Table::new();
    if let Some(s) = &g.source {
        t.insert("source".into(), Value::String(s.clone()));
    }
    t.insert("variable".into(), Value::String(format!("${}", g.name)));
    let lines = g.lines.iter().map(|l| Value::String(l.value.join(" ")));
    t.insert("lines".into(), Value::Array(lines.collect()));
    t
}

/// A `split_clients` as TOML.
pub(super) fn split_table(s: &SplitClientsConfig) -> Table {
    let mut t = Table::new();
    t.insert("source".into(), Value::String(s.source.clone()));
    t.insert("variable".into(), Value::String(format!("${}", s.name)));
    let parts = s
        .parts
        .iter()
        .map(|(p, v)| Value::Array(vec![Value::String(p.clone()), Value::String(v.clone())]));
    t.insert("parts".into(), Value::Array(parts.collect()));
    t
}
