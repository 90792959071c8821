//! nginx's `error_page`: which answers of a location are replaced by
//! another page, and by which.
//!
//! [`ErrorPageSpec`] is one directive as written (both config front-ends
//! parse it here); [`ErrorPages`] is a level's list, compiled. Which
//! answers it replaces: rpx's own error answers (marked
//! [`Special`](crate::reply::Special), as nginx calls them) and its errors, and with `proxy_intercept_errors` an
//! upstream's responses of 300 and above. The stack follows the page: an
//! internal redirect to a URI or a named location, or a redirect to a URL.

use http::StatusCode;

use crate::vars::{Scope, Template, TemplateError, VarCtx};

/// What status the page is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStatus {
    /// `error_page 404 /404.html`: the replaced answer's.
    Original,
    /// `error_page 404 = /fallback`: whatever the page answers.
    Page,
    /// `error_page 404 =200 /empty.gif`: this one.
    Code(StatusCode),
}

/// One `error_page code… [=[response]] uri | @named | URL`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPageSpec {
    /// The codes it replaces, 300 to 599.
    pub codes: Vec<StatusCode>,
    /// The status the page goes out with.
    pub status: PageStatus,
    /// A URI (`/…`), a named location (`@…`) or a URL; may hold variables.
    pub target: String,
}

/// Why an `error_page` is not valid; nginx's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorPageError {
    /// Fewer than a code and a target.
    #[error("invalid number of arguments in \"error_page\" directive")]
    Arguments,
    /// A code outside 300–599.
    #[error("value \"{0}\" must be between 300 and 599")]
    Range(String),
    /// Not a number (or 499, nginx's own), a bad `=code`, or `=` with no
    /// code before it.
    #[error("invalid value \"{0}\"")]
    Invalid(String),
}

impl ErrorPageSpec {
    /// Parses the directive's words: codes, an optional `=` or `=code`,
    /// then the target.
    ///
    /// ```
    /// use rpx_core::error_page::{ErrorPageSpec, PageStatus};
    /// let page = ErrorPageSpec::parse(&["404", "=301", "https://example.com/"]).unwrap();
    /// assert_eq!(page.codes, [404]);
    /// assert_eq!(page.status, PageStatus::Code(http::StatusCode::MOVED_PERMANENTLY));
    /// assert!(ErrorPageSpec::parse(&["200", "/x"]).is_err());
    /// ```
    ///
    /// # Errors
    /// As nginx's: too few words, a code outside 300–599, a bad `=code`.
    pub fn parse(words: &[&str]) -> Result<Self, ErrorPageError> {
        let [codes @ .., target] = words else {
            return Err(ErrorPageError::Arguments);
        };
        let (codes, status) = match codes {
            [codes @ .., last] if last.starts_with('=') => {
                let status = match &last[1..] {
                    "" => PageStatus::Page,
                    code => PageStatus::Code(
                        code.parse::<u16>()
                            .ok()
                            .and_then(|c| StatusCode::from_u16(c).ok())
                            .ok_or_else(|| ErrorPageError::Invalid(last.to_string()))?,
                    ),
                };
                (codes, status)
            }
            codes => (codes, PageStatus::Original),
        };
        if codes.is_empty() {
            return Err(match words.len() {
                1 => ErrorPageError::Arguments,
                _ => ErrorPageError::Invalid(words[0].to_string()),
            });
        }
        let codes = codes
            .iter()
            .map(|c| match c.parse::<u16>() {
                Ok(499) | Err(_) => Err(ErrorPageError::Invalid(c.to_string())),
                Ok(n) if !(300..=599).contains(&n) => Err(ErrorPageError::Range(c.to_string())),
                Ok(n) => StatusCode::from_u16(n).map_err(|_| ErrorPageError::Range(c.to_string())),
            })
            .collect::<Result<_, _>>()?;
        Ok(ErrorPageSpec {
            codes,
            status,
            target: target.to_string(),
        })
    }
}

impl std::fmt::Display for ErrorPageSpec {
    /// As written in nginx's config: `404 =301 https://example.com/`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.codes {
            write!(f, "{} ", c.as_u16())?;
        }
        match self.status {
            PageStatus::Original => {}
            PageStatus::Page => f.write_str("= ")?,
            PageStatus::Code(c) => write!(f, "={} ", c.as_u16())?,
        }
        f.write_str(&self.target)
    }
}

/// Where a page is.
#[derive(Debug)]
pub enum PageTarget {
    /// An internal redirect to this URI (and query); the method becomes
    /// GET, unless it is HEAD.
    Uri(Template),
    /// An internal redirect to `location @name`, URI and method kept.
    Named(Box<str>),
    /// A redirect to this URL: 302, or the `=code` if it is 301, 302,
    /// 303, 307 or 308.
    Url(Template),
}

/// One page, compiled.
#[derive(Debug)]
pub struct Page {
    /// The status it goes out with.
    pub status: PageStatus,
    /// Where it is.
    pub target: PageTarget,
}

impl Page {
    /// The page's target for the request of `ctx`: the rendered URI or URL,
    /// or the location's name.
    pub fn render(&self, ctx: &VarCtx<'_>) -> String {
        match &self.target {
            PageTarget::Uri(t) | PageTarget::Url(t) => t.render_to_string(ctx),
            PageTarget::Named(n) => n.to_string(),
        }
    }

    /// The status of a redirect to a URL: the `=code` if it redirects,
    /// else 302, as nginx.
    pub fn redirect_status(&self) -> StatusCode {
        match self.status {
            PageStatus::Code(c) if matches!(c.as_u16(), 301 | 302 | 303 | 307 | 308) => c,
            _ => StatusCode::FOUND,
        }
    }
}

/// A level's `error_page`s with `proxy_intercept_errors` and
/// `recursive_error_pages`.
///
/// ```
/// use rpx_core::error_page::{ErrorPageSpec, ErrorPages};
/// let spec = ErrorPageSpec::parse(&["500", "502", "503", "504", "/50x.html"]).unwrap();
/// let pages = ErrorPages::new(&[spec], &Default::default()).unwrap();
/// assert!(pages.find(http::StatusCode::BAD_GATEWAY).is_some());
/// assert!(pages.find(http::StatusCode::NOT_FOUND).is_none());
/// ```
#[derive(Debug)]
pub struct ErrorPages {
    /// In the order written: the first entry for a code wins, as nginx.
    pages: Vec<(StatusCode, std::sync::Arc<Page>)>,
    intercept: bool,
    recursive: bool,
    server_name: Box<str>,
}

impl ErrorPages {
    /// Compiles `specs`' targets with the config's variables.
    ///
    /// # Errors
    /// An unknown variable in a target.
    pub fn new(specs: &[ErrorPageSpec], scope: &Scope) -> Result<Self, TemplateError> {
        let mut pages = Vec::new();
        for spec in specs {
            let target = if let Some(name) = spec.target.strip_prefix('@') {
                PageTarget::Named(name.into())
            } else if spec.target.starts_with('/') {
                PageTarget::Uri(Template::parse_in(&spec.target, scope)?)
            } else {
                PageTarget::Url(Template::parse_in(&spec.target, scope)?)
            };
            let page = std::sync::Arc::new(Page {
                status: spec.status,
                target,
            });
            pages.extend(spec.codes.iter().map(|&c| (c, page.clone())));
        }
        Ok(ErrorPages {
            pages,
            intercept: false,
            recursive: false,
            server_name: "".into(),
        })
    }

    /// What `$server_name` renders as in targets. Default empty.
    pub fn server_name(mut self, name: &str) -> Self {
        self.server_name = name.into();
        self
    }

    /// The server name targets render `$server_name` as.
    pub fn name(&self) -> &str {
        &self.server_name
    }

    /// `proxy_intercept_errors on`: upstream responses of 300 and above
    /// with a page here are replaced too. Off by default.
    pub fn intercept(mut self, on: bool) -> Self {
        self.intercept = on;
        self
    }

    /// `recursive_error_pages on`: a page's own error answers are replaced
    /// by their pages (ten internal redirects at most). Off by default.
    pub fn recursive(mut self, on: bool) -> Self {
        self.recursive = on;
        self
    }

    /// The page for `status`.
    pub fn find(&self, status: StatusCode) -> Option<&Page> {
        self.pages
            .iter()
            .find(|(c, _)| *c == status)
            .map(|(_, p)| &**p)
    }

    /// Whether upstream responses are replaced.
    pub fn intercepts(&self) -> bool {
        self.intercept
    }

    /// Whether a page's errors are replaced.
    pub fn recursive_pages(&self) -> bool {
        self.recursive
    }

    /// The named locations the pages go to.
    pub fn named(&self) -> impl Iterator<Item = &str> {
        self.pages.iter().filter_map(|(_, p)| match &p.target {
            PageTarget::Named(n) => Some(&**n),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<ErrorPageSpec, ErrorPageError> {
        ErrorPageSpec::parse(&line.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn parses_nginx_forms() {
        let p = parse("500 502 503 504 /50x.html").unwrap();
        assert_eq!(p.codes.len(), 4);
        assert_eq!(p.status, PageStatus::Original);
        assert_eq!(p.target, "/50x.html");
        assert_eq!(parse("404 = @fallback").unwrap().status, PageStatus::Page);
        assert_eq!(
            parse("404 =200 /empty.gif").unwrap().status,
            PageStatus::Code(StatusCode::OK)
        );
    }

    #[test]
    fn refuses_what_nginx_refuses() {
        assert_eq!(parse("/x"), Err(ErrorPageError::Arguments));
        assert_eq!(parse("200 /x"), Err(ErrorPageError::Range("200".into())));
        assert_eq!(parse("499 /x"), Err(ErrorPageError::Invalid("499".into())));
        assert_eq!(parse("abc /x"), Err(ErrorPageError::Invalid("abc".into())));
        assert_eq!(
            parse("=200 /x"),
            Err(ErrorPageError::Invalid("=200".into()))
        );
        assert_eq!(
            parse("404 =abc /x"),
            Err(ErrorPageError::Invalid("=abc".into()))
        );
    }

    #[test]
    fn the_first_page_for_a_code_wins_and_redirects_keep_their_code() {
        let specs = [
            parse("404 /a").unwrap(),
            parse("404 =301 http://b/").unwrap(),
        ];
        let pages = ErrorPages::new(&specs, &Scope::default()).unwrap();
        let p = pages.find(StatusCode::NOT_FOUND).unwrap();
        assert!(matches!(p.target, PageTarget::Uri(_)));
        assert_eq!(p.redirect_status(), StatusCode::FOUND);
        let url = ErrorPages::new(&specs[1..], &Scope::default()).unwrap();
        let p = url.find(StatusCode::NOT_FOUND).unwrap();
        assert_eq!(p.redirect_status(), StatusCode::MOVED_PERMANENTLY);
    }
}
