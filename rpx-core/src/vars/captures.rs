//! `$1`…`$9` and named captures: what the request's latest regex match
//! with groups captured (a regex `location`, `server_name ~`, `if (… ~ …)`,
//! `rewrite`), as nginx keeps `r->captures`. A later match with groups
//! replaces them; a regex without groups leaves them. Named groups
//! (`(?<app>…)`) become variables of their name ([`SetVars`]).

use http::Request;

use super::SetVars;
use crate::pattern::{Pattern, Spans};

/// The groups of one match, owned by the request.
#[derive(Debug, Clone)]
pub struct Captures {
    subject: Box<str>,
    /// Byte ranges of the groups in `subject`, `$0` first.
    spans: Box<[Option<(usize, usize)>]>,
}

impl Captures {
    /// `$n`: empty when the group did not take part or does not exist.
    pub fn get(&self, n: usize) -> &str {
        match self.spans.get(n) {
            Some(Some((a, b))) => &self.subject[*a..*b],
            _ => "",
        }
    }

    /// The groups of `re` on `subject`, when it matches and has groups.
    pub fn of(re: &Pattern, subject: &str) -> Option<Captures> {
        if re.captures_len() < 2 {
            return None;
        }
        Some(Captures::from_spans(subject, re.spans(subject)?))
    }

    /// The groups of a match already made on `subject`.
    pub fn from_spans(subject: &str, spans: Spans) -> Captures {
        Captures {
            subject: subject.into(),
            spans: spans.into(),
        }
    }

    /// Keeps these on `req` as the latest captures, and the named groups
    /// of `re` (the regex they came from) as variables.
    pub fn keep<B>(self, re: &Pattern, req: &mut Request<B>) {
        let names = re.capture_names();
        if names.iter().any(Option::is_some) {
            let ext = req.extensions_mut();
            if ext.get::<SetVars>().is_none() {
                ext.insert(SetVars::default());
            }
            if let Some(sets) = ext.get_mut::<SetVars>() {
                for (i, name) in names.iter().enumerate() {
                    if let Some(name) = name {
                        sets.set(&(*name).into(), self.get(i).to_owned());
                    }
                }
            }
        }
        req.extensions_mut().insert(self);
    }

    /// Matches `re` on `subject` and keeps the groups on `req`; true when
    /// it matched.
    pub fn matched<B>(re: &Pattern, subject: &str, req: &mut Request<B>) -> bool {
        match Captures::of(re, subject) {
            Some(c) => {
                c.keep(re, req);
                true
            }
            None => re.is_match(subject),
        }
    }

    /// The names of `re`'s named groups, for the config's scope.
    pub fn names(re: &Pattern) -> Vec<&str> {
        re.capture_names().into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_names() {
        let re = Pattern::new(r"^/(?<app>[^/]+)/(.*)$", false).unwrap();
        let mut req = Request::new(());
        assert!(Captures::matched(&re, "/shop/a/b", &mut req));
        let c = req.extensions().get::<Captures>().unwrap();
        assert_eq!(
            (c.get(0), c.get(1), c.get(2), c.get(3)),
            ("/shop/a/b", "shop", "a/b", "")
        );
        assert_eq!(
            req.extensions().get::<SetVars>().unwrap().get("app"),
            Some("shop")
        );
        // No groups: earlier captures stay.
        assert!(Captures::matched(
            &Pattern::new("^/", false).unwrap(),
            "/x",
            &mut req
        ));
        assert_eq!(req.extensions().get::<Captures>().unwrap().get(1), "shop");
        assert!(!Captures::matched(&re, "/", &mut req));
        assert_eq!(Captures::names(&re), ["app"]);
    }
}
