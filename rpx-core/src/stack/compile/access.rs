//! A level's access checks: `allow` / `deny`, `auth_basic`,
//! `auth_request` (its subrequest's target found once the server's
//! locations are built), `satisfy`, `limit_except`.

use super::*;
use crate::access::{AuthRequest, Subrequest};

impl Compiler {
    /// A location's `limit_except`: a level of its own inheriting the
    /// location's access settings.
    pub(super) fn limit_except(
        &mut self,
        loc: &LocationConfig,
        own: &Settings,
        server_name: &Arc<str>,
    ) -> Option<LimitExcept> {
        let le = loc.limit_except.as_ref()?;
        let methods = le
            .methods
            .iter()
            .filter_map(|m| http::Method::from_bytes(m.as_bytes()).ok())
            .collect();
        let guard = self.guard(&le.settings.inherit(own), server_name)?;
        Some(LimitExcept::new(methods, guard))
    }

    /// A level's access checks: `allow` / `deny`, `auth_basic`,
    /// `auth_request`, `satisfy`.
    pub(super) fn guard(&mut self, s: &Settings, server_name: &Arc<str>) -> Option<Guard> {
        let mut guard = Guard::default().with_satisfy(s.satisfy.unwrap_or_default());
        if let Some(list) = self.access_list(s) {
            guard = guard.with_list(list);
        }
        match (&s.auth_basic, &s.auth_basic_user_file) {
            (Some(realm), Some(file)) => {
                if let AuthBasic::Realm(realm) = &realm.value {
                    guard = guard.with_basic(BasicAuth::with_users(realm, self.user_file(file)));
                }
            }
            (Some(realm), None) if realm.value != AuthBasic::Off => self.warn(
                &realm.pos,
                "auth_basic without auth_basic_user_file: no password is asked for (as nginx)",
            ),
            _ => {}
        }
        if let Some(request) = self.auth_request(s, server_name) {
            guard = guard.with_request(request);
        }
        (!guard.is_empty()).then_some(guard)
    }

    /// One [`UserFile`] per path: the servers and locations that name it
    /// share what it was read into.
    fn user_file(&mut self, path: &Spanned<String>) -> Arc<UserFile> {
        self.user_files
            .entry(path.value.clone())
            .or_insert_with(|| Arc::new(UserFile::new(&path.value)))
            .clone()
    }

    /// The `allow` / `deny` list of a level's settings. The front-ends
    /// check the rules; a model built by hand may still hold a bad one,
    /// and then nobody is let in.
    pub(super) fn access_list(&mut self, s: &Settings) -> Option<AccessList> {
        let rules = s.access.as_ref().filter(|r| !r.is_empty())?;
        let mut list = AccessList::builder();
        for r in rules {
            list = match list.rule(r.verdict, &r.rule) {
                Ok(list) => list,
                Err(e) => {
                    self.err(&r.pos, e);
                    return Some(AccessList::builder().deny("all").expect("all").build());
                }
            };
        }
        Some(list.build())
    }

    /// `auth_request` with its `auth_request_set`s; the target is filled
    /// in by [`Compiler::auth_targets`] once the server's locations exist.
    fn auth_request(&mut self, s: &Settings, server_name: &Arc<str>) -> Option<AuthRequest> {
        let uri = s.auth_request.as_ref()?;
        let AuthRequestConfig::Uri(text) = &uri.value else {
            return None;
        };
        let parsed = text
            .parse::<http::Uri>()
            .ok()
            .filter(|u| u.scheme().is_none() && u.path().starts_with('/'));
        let Some(parsed) = parsed else {
            self.err(
                &uri.pos,
                format!("invalid auth_request URI \"{text}\": a path such as /auth"),
            );
            return None;
        };
        let mut sets = Vec::new();
        for set in s.auth_request_set.iter().flatten() {
            let scope = &self.scope;
            let value = Template::parse_with(&set.value, |n| {
                scope.get(n).or_else(|| {
                    let h = n.strip_prefix("upstream_http_")?.replace('_', "-");
                    http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                        .ok()
                        .map(Var::UpstreamHttp)
                })
            });
            match value {
                Ok(v) => sets.push((Arc::from(set.name.as_str()), v)),
                Err(e) => self.err(&set.pos, e),
            }
        }
        let request = AuthRequest::new(parsed, server_name.clone()).with_sets(sets);
        self.auth_targets.push((request.clone(), uri.pos.clone()));
        Some(request)
    }

    /// Points every `auth_request` of the server just compiled at the
    /// location its URI finds (the server's fallback when none does).
    pub(super) fn auth_targets(
        &mut self,
        table: &LocationTable,
        services: &[Location],
        fallback: &Location,
    ) {
        for (request, _pos) in std::mem::take(&mut self.auth_targets) {
            let location = match table.find(request.path()) {
                crate::location::LocationMatch::Location(id) => services[id].clone(),
                _ => fallback.clone(),
            };
            let target: Subrequest = Arc::new(move |req| Box::pin(location.subrequest(req)));
            let _ = request.target().set(target);
        }
    }
}
