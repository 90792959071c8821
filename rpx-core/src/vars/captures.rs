//! `$1`…`$9` and named captures: what the request's latest regex match
//! with groups captured (a regex `location`, `server_name ~`, `if (… ~ …)`,
//! `rewrite`), as nginx keeps `r->captures`. A later match with groups
//! replaces them; a regex without groups leaves them. Named groups
//! (`(?<app>…)`) become variables of their name ([`SetVars`]).

use http::Request;
use regex::Regex;

use super::SetVars;

/// The groups of one match, owned by the request.
#[derive(Debug, Clone)]
pub struct Captures {
    subject: Box<str>,
    /// Byte ranges of `$0`…`$9` in `subject`.
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
    pub fn of(re: &Regex, subject: &str) -> Option<Captures> {
        if re.captures_len() < 2 {
            return None;
        }
        Some(Captures::from_match(subject, &re.captures(subject)?))
    }

    /// The groups of a match already made on `subject`.
    pub fn from_match(subject: &str, caps: &regex::Captures<'_>) -> Captures {
        let spans = (0..caps.len().min(10))
            .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
            .collect();
        Captures {
            subject: subject.into(),
            spans,
        }
    }

    /// Keeps these on `req` as the latest captures, and the named groups
    /// of `re` (the regex they came from) as variables.
    pub fn keep<B>(self, re: &Regex, req: &mut Request<B>) {
        let mut named = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| Some((i, n?)));
        if let Some(first) = named.next() {
            let caps = re.captures(&self.subject);
            let ext = req.extensions_mut();
            if ext.get::<SetVars>().is_none() {
                ext.insert(SetVars::default());
            }
            if let (Some(sets), Some(caps)) = (ext.get_mut::<SetVars>(), caps) {
                for (i, name) in std::iter::once(first).chain(named) {
                    let value = caps.get(i).map_or("", |m| m.as_str());
                    sets.set(&name.into(), value.to_owned());
                }
            }
        }
        req.extensions_mut().insert(self);
    }

    /// Matches `re` on `subject` and keeps the groups on `req`; true when
    /// it matched.
    pub fn matched<B>(re: &Regex, subject: &str, req: &mut Request<B>) -> bool {
        match Captures::of(re, subject) {
            Some(c) => {
                c.keep(re, req);
                true
            }
            None => re.is_match(subject),
        }
    }

    /// The names of `re`'s named groups, for the config's scope.
    pub fn names(re: &Regex) -> impl Iterator<Item = &str> {
        re.capture_names().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_names() {
        let re = Regex::new(r"^/(?<app>[^/]+)/(.*)$").unwrap();
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
            &Regex::new("^/").unwrap(),
            "/x",
            &mut req
        ));
        assert_eq!(req.extensions().get::<Captures>().unwrap().get(1), "shop");
        assert!(!Captures::matched(&re, "/", &mut req));
        assert_eq!(Captures::names(&re).collect::<Vec<_>>(), ["app"]);
    }
}
