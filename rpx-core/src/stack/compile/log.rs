//! `log_format` and `access_log`: formats compiled once, files opened once.

use super::*;

impl Compiler {
    pub(super) fn log_formats(&mut self, config: &Config) {
        if let Ok(f) = LogFormat::parse(COMBINED, Escape::Default) {
            self.log_formats
                .insert("combined".into(), Some(Arc::new(f)));
        }
        for f in &config.log_formats {
            let escape = match f.escape.as_str() {
                "default" => Some(Escape::Default),
                "json" => Some(Escape::Json),
                "none" => Some(Escape::None),
                other => {
                    self.err(
                        &f.pos,
                        format!("invalid escape {other:?}: use default, json or none"),
                    );
                    None
                }
            };
            let parsed = escape.and_then(|escape| match LogFormat::parse(&f.format, escape) {
                Ok(parsed) => Some(Arc::new(parsed)),
                Err(e) => {
                    self.err(&f.pos, format!("log_format {}: {e}", f.name));
                    None
                }
            });
            if self.log_formats.insert(f.name.clone(), parsed).is_some() {
                self.err(&f.pos, format!("duplicate log_format \"{}\"", f.name));
            }
        }
    }

    /// A level's access logs; files are opened (once per path) here.
    pub(super) fn access_log(&mut self, s: &Settings, server_name: &Arc<str>) -> AccessLogLayer {
        let mut targets = Vec::new();
        for a in s.access_log.iter().flatten() {
            let name = a.format.as_deref().unwrap_or("combined");
            let format = match self.log_formats.get(name) {
                Some(Some(format)) => format.clone(),
                // Its error is reported at the `log_format`.
                Some(None) => continue,
                None => {
                    self.err(&a.pos, format!("unknown log format \"{name}\""));
                    // Once per name.
                    self.log_formats.insert(name.to_owned(), None);
                    continue;
                }
            };
            if self.bad_log_paths.contains(&a.path) {
                continue;
            }
            match LogFile::open(std::path::Path::new(&a.path)) {
                Ok(file) => targets.push(LogTarget { file, format }),
                Err(e) => {
                    self.err(&a.pos, e);
                    self.bad_log_paths.insert(a.path.clone());
                }
            }
        }
        AccessLogLayer::new(targets, server_name.clone())
    }
}
