//! `map`, `rewrite` / `if` / `return` / `break` programs, and `return` answers.

use super::server::add_headers;
use super::*;

impl Compiler {
    /// Names `set` and `auth_request_set` define, known to every template
    /// of the config (nginx's variables are global, whatever the order they
    /// are written in). A built-in or `map` variable cannot be set.
    pub(super) fn set_vars(&mut self, config: &Config) {
        fn walk(locations: &[LocationConfig], out: &mut Vec<(String, Option<SourcePos>)>) {
            for l in locations {
                level(&l.settings, &l.rewrites, out);
                walk(&l.locations, out);
            }
        }
        fn steps(list: &[RewriteStep], out: &mut Vec<(String, Option<SourcePos>)>) {
            for s in list {
                match s {
                    RewriteStep::Set(s) => out.push((s.name.clone(), Some(s.pos.clone()))),
                    RewriteStep::If(i) => steps(&i.steps, out),
                    _ => {}
                }
            }
        }
        fn level(s: &Settings, rw: &[RewriteStep], out: &mut Vec<(String, Option<SourcePos>)>) {
            let auth = s.auth_request_set.iter().flatten();
            out.extend(auth.map(|v| (v.name.clone(), None)));
            steps(rw, out);
        }
        let mut all = Vec::new();
        level(&config.settings, &[], &mut all);
        for server in &config.servers {
            level(&server.settings, &server.rewrites, &mut all);
            walk(&server.locations, &mut all);
        }
        // Named groups of the regexes whose matches are kept (`(?<app>…)`).
        let mut regexes: Vec<(String, bool)> = Vec::new();
        fn step_regexes(list: &[RewriteStep], out: &mut Vec<(String, bool)>) {
            for s in list {
                match s {
                    RewriteStep::Rewrite(r) => out.push((r.regex.clone(), false)),
                    RewriteStep::If(i) => {
                        if let IfCondition::Matches {
                            regex, caseless, ..
                        } = &i.cond
                        {
                            out.push((regex.clone(), *caseless));
                        }
                        step_regexes(&i.steps, out);
                    }
                    _ => {}
                }
            }
        }
        fn location_regexes(list: &[LocationConfig], out: &mut Vec<(String, bool)>) {
            for l in list {
                if l.kind.is_regex() {
                    out.push((l.pattern.clone(), l.kind == MatchKind::RegexCaseless));
                }
                step_regexes(&l.rewrites, out);
                location_regexes(&l.locations, out);
            }
        }
        for server in &config.servers {
            let names = server
                .names
                .iter()
                .filter_map(|n| n.value.strip_prefix('~'));
            regexes.extend(names.map(|n| (n.to_owned(), true)));
            step_regexes(&server.rewrites, &mut regexes);
            location_regexes(&server.locations, &mut regexes);
        }
        for (pattern, caseless) in regexes {
            // A bad regex is reported where it is compiled.
            let Ok(re) = crate::pattern::Pattern::new(&pattern, caseless) else {
                continue;
            };
            for name in Captures::names(&re) {
                all.push((name.to_owned(), None));
            }
        }
        for (name, pos) in all {
            let fixed =
                Var::from_name(&name).is_some() || config.maps.iter().any(|m| m.name == name);
            match pos {
                Some(pos) if fixed => {
                    self.err(&pos, format!("the duplicate \"{name}\" variable"));
                }
                _ if self.scope.get(&name).is_none() => self.scope.define_set(&name),
                _ => {}
            }
        }
    }

    /// `geo` and `split_clients` variables: before the maps, whose values
    /// may use them.
    pub(super) fn geo_and_split(&mut self, config: &Config) {
        use crate::vars::geo::Geo;
        use crate::vars::split_clients::SplitClients;
        for g in &config.geos {
            let source = match g
                .source
                .as_deref()
                .map(|s| Template::parse_in(s, &self.scope))
            {
                None => None,
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => {
                    self.err(&g.pos, format!("geo ${}: {e}", g.name));
                    continue;
                }
            };
            let lines: Vec<Vec<String>> = g.lines.iter().map(|l| l.value.clone()).collect();
            let line_pos = |i: usize| g.lines.get(i).map_or(&g.pos, |l| &l.pos).clone();
            match Geo::new(source, &lines) {
                Ok(geo) => {
                    for w in geo.warnings() {
                        self.warn(&line_pos(w.line), format!("geo ${}: {}", g.name, w.message));
                    }
                    self.scope.define(&g.name, Var::Geo(Arc::new(geo)));
                }
                Err(e) => self.err(&line_pos(e.line()), format!("geo ${}: {e}", g.name)),
            }
        }
        for s in &config.split_clients {
            let built = Template::parse_in(&s.source, &self.scope)
                .map_err(|e| e.to_string())
                .and_then(|t| SplitClients::new(t, &s.parts).map_err(|e| e.to_string()));
            match built {
                Ok(split) => self.scope.define(&s.name, Var::Split(Arc::new(split))),
                Err(e) => self.err(&s.pos, format!("split_clients ${}: {e}", s.name)),
            }
        }
    }

    /// `map`s in config order: a map's values may use the maps before it
    /// and the variables `set` defines.
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
                    // A regex key's named groups are its value's variables.
                    let groups: Vec<(String, u8)> = match &e.key {
                        MapKey::Regex { pattern, caseless } => {
                            crate::pattern::Pattern::new(pattern, *caseless)
                                .map(|re| {
                                    re.capture_names()
                                        .into_iter()
                                        .enumerate()
                                        .filter_map(|(i, n)| {
                                            Some((n?.to_owned(), u8::try_from(i).ok()?))
                                        })
                                        .filter(|(_, i)| *i <= 9)
                                        .collect()
                                })
                                .unwrap_or_default()
                        }
                        MapKey::Exact(_) => Vec::new(),
                    };
                    let value = Template::parse_with(&e.value, |n| {
                        groups
                            .iter()
                            .find(|(g, _)| g == n)
                            .map(|(_, i)| Var::Capture(*i))
                            .or_else(|| self.scope.get(n))
                    })
                    .map_err(|err| format!("{}: {err}", e.pos))?;
                    entries.push((key, value));
                }
                match m.hostnames {
                    true => MapVar::with_hostnames(source, default, entries),
                    false => MapVar::new(source, default, entries),
                }
                .map_err(|e| format!("invalid regex: {e}"))
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
                RewriteStep::Set(set) => match Template::parse_in(&set.value, &self.scope) {
                    Ok(t) => out.push(Step::Set(set.name.as_str().into(), t)),
                    Err(e) => self.err(&set.pos, format!("set: {e}")),
                },
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
                        IfCondition::File { path, test, negate } => {
                            let test = match test {
                                crate::config::model::FileTest::File => RwFileTest::File,
                                crate::config::model::FileTest::Dir => RwFileTest::Dir,
                                crate::config::model::FileTest::Exists => RwFileTest::Exists,
                                crate::config::model::FileTest::Exec => RwFileTest::Exec,
                            };
                            Template::parse_in(path, &self.scope)
                                .map(|t| RwCondition::File(t, test, *negate))
                                .map_err(RewriteError::from)
                        }
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
