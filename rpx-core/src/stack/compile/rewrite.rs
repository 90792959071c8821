//! `map`, `rewrite` / `if` / `return` / `break` programs, and `return` answers.

use super::server::add_headers;
use super::*;

impl Compiler {
    /// `map`s in config order: a map's values may use the maps before it.
    pub(super) fn maps(&mut self, config: &Config) {
        for m in &config.maps {
            let t = |src: &str, scope: &Scope| Template::parse_in(src, scope);
            let built = (|| -> Result<MapVar, String> {
                let source = t(&m.source, &self.scope).map_err(|e| e.to_string())?;
                let default = t(m.default.as_deref().unwrap_or(""), &self.scope)
                    .map_err(|e| e.to_string())?;
                let mut entries = Vec::new();
                for e in &m.entries {
                    let key = match &e.key {
                        MapKey::Exact(k) => MapKeySpec::Exact(k.clone()),
                        MapKey::Regex { pattern, caseless } => MapKeySpec::Regex {
                            pattern: pattern.clone(),
                            caseless: *caseless,
                        },
                    };
                    let value =
                        t(&e.value, &self.scope).map_err(|err| format!("{}: {err}", e.pos))?;
                    entries.push((key, value));
                }
                MapVar::new(source, default, entries).map_err(|e| format!("invalid regex: {e}"))
            })();
            match built {
                Ok(map) => self.scope.define_map(&m.name, map),
                Err(e) => self.err(&m.pos, format!("map ${}: {e}", m.name)),
            }
        }
    }

    /// A rewrite program from the model's steps; `None` when there are none.
    pub(super) fn program(
        &mut self,
        steps: &[RewriteStep],
        settings: &Settings,
        server_name: &Arc<str>,
        pos: &SourcePos,
    ) -> Option<Program> {
        if steps.is_empty() {
            return None;
        }
        let steps = self.steps(steps, server_name);
        let headers = add_headers(self, settings, server_name, pos);
        Some(Program::new(steps, server_name.clone()).with_headers(headers))
    }

    pub(super) fn steps(&mut self, steps: &[RewriteStep], server_name: &Arc<str>) -> Vec<Step> {
        let mut out = Vec::new();
        for step in steps {
            match step {
                RewriteStep::Break => out.push(Step::Break),
                RewriteStep::Return(r) => {
                    if let Action::Return(svc) = self.return_action(r, server_name) {
                        out.push(Step::Return(svc));
                    }
                }
                RewriteStep::Rewrite(r) => {
                    let flag = match r.flag {
                        RewriteFlag::None => Flag::Continue,
                        RewriteFlag::Last => Flag::Last,
                        RewriteFlag::Break => Flag::Break,
                        RewriteFlag::Redirect => Flag::Redirect(http::StatusCode::FOUND),
                        RewriteFlag::Permanent => {
                            Flag::Redirect(http::StatusCode::MOVED_PERMANENTLY)
                        }
                    };
                    match Rule::new(&r.regex, &r.replacement, flag, &self.scope) {
                        Ok(rule) => out.push(Step::Rewrite(rule)),
                        Err(e) => self.err(&r.pos, format!("rewrite: {e}")),
                    }
                }
                RewriteStep::If(i) => {
                    let cond = match &i.cond {
                        IfCondition::NonEmpty(v) => Template::parse_in(v, &self.scope)
                            .map(RwCondition::NonEmpty)
                            .map_err(RewriteError::from),
                        IfCondition::Equals {
                            left,
                            right,
                            negate,
                        } => Template::parse_in(left, &self.scope)
                            .map(|t| RwCondition::Equals(t, right.clone(), *negate))
                            .map_err(RewriteError::from),
                        IfCondition::Matches {
                            left,
                            regex,
                            caseless,
                            negate,
                        } => RwCondition::matches(left, regex, *caseless, *negate, &self.scope),
                    };
                    let inner = self.steps(&i.steps, server_name);
                    match cond {
                        Ok(c) => out.push(Step::If(c, inner.into())),
                        Err(e) => self.err(&i.pos, format!("if: {e}")),
                    }
                }
            }
        }
        out
    }

    pub(super) fn return_action(&mut self, ret: &ReturnConfig, server_name: &Arc<str>) -> Action {
        match ReturnService::new_in(ret.code, ret.text.as_deref(), &self.scope) {
            Ok(r) => Action::Return(r.server_name(server_name.clone())),
            Err(e) => {
                self.err(&ret.pos, e);
                Action::NotFound
            }
        }
    }
}
