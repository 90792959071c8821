//! `log_format` and `access_log`: formats compiled once, files opened once.

use super::*;

impl Compiler {
    pub(super) fn log_formats(&mut self, config: &Config) {
        if let Ok(f) = LogFormat::parse(COMBINED, Escape::Default) {
            self.log_formats.insert("combined".into(), Arc::new(f));
        }
        for f in &config.log_formats {
            let escape = match f.escape.as_str() {
                "default" => Escape::Default,
                "json" => Escape::Json,
                "none" => Escape::None,
                other => {
                    self.err(
                        &f.pos,
                        format!("invalid escape {other:?}: use default, json or none"),
                    );
                    continue;
                }
            };
            match LogFormat::parse(&f.format, escape) {
                Ok(parsed) => {
                    if self
                        .log_formats
                        .insert(f.name.clone(), Arc::new(parsed))
                        .is_some()
                    {
                        self.err(&f.pos, format!("duplicate log_format \"{}\"", f.name));
                    }
                }
                Err(e) => self.err(&f.pos, format!("log_format {}: {e}", f.name)),
            }
        }
    }

    /// A level's access logs; files are opened (once per path) here.
    pub(super) fn access_log(&mut self, s: &Settings, server_name: &Arc<str>) -> AccessLogLayer {
        let mut targets = Vec::new();
        for a in s.access_log.iter().flatten() {
            let name = a.format.as_deref().unwrap_or("combined");
            let Some(format) = self.log_formats.get(name).cloned() else {
                self.err(&a.pos, format!("unknown log format \"{name}\""));
                continue;
            };
            match LogFile::open(std::path::Path::new(&a.path)) {
                Ok(file) => targets.push(LogTarget { file, format }),
                Err(e) => self.err(&a.pos, e),
            }
        }
        AccessLogLayer::new(targets, server_name.clone())
    }
}
