//! `rpx check`: everything wrong with a config file, front-end and
//! compiler together. In `stack/`, above both: the config module only
//! parses, and compiling is this module's.

use std::path::Path;

use crate::config::{load, parse_toml_partial, ConfigError, SourcePos};

/// Everything wrong with a config file: the front-end's errors and, for
/// the part it understood, the compiler's. Empty when the file is valid.
pub fn check_file(path: &Path) -> Vec<ConfigError> {
    if path.extension().is_none_or(|e| e != "toml") {
        return match load(path).map(|c| super::compile(&c)) {
            Ok(Ok(_)) => Vec::new(),
            Ok(Err(e)) | Err(e) => e.0,
        };
    }
    let name = path.display().to_string();
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            return vec![ConfigError::new(
                SourcePos::new(name.as_str(), 0, 0),
                format!("cannot read config: {e}"),
            )]
        }
    };
    match parse_toml_partial(&src, &name) {
        Ok((config, mut errors)) => {
            if let Err(more) = super::compile(&config) {
                errors.extend(more.0);
            }
            errors.sort_by_key(|e| (e.pos.line, e.pos.col));
            errors.dedup();
            errors
        }
        Err(e) => e.0,
    }
}
