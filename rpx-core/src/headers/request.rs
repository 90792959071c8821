//! `proxy_set_header`: the request headers sent upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::HeaderError;
use crate::vars::{Scope, Template, VarCtx};

/// A header value: fixed text parsed once, or a template rendered per request.
#[derive(Debug, Clone)]
pub enum HeaderValueTemplate {
    /// Empty text: the header is not sent.
    Remove,
    /// Fixed text.
    Const(HeaderValue),
    /// Text with variables; an empty result removes the header, as nginx.
    Dynamic(Template),
}

impl HeaderValueTemplate {
    /// Compiles `value`.
    ///
    /// # Errors
    /// Unknown variables or bytes not allowed in a header value.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        Self::parse_in(value, &Scope::default())
    }

    /// Compiles `value` with the config's own variables.
    ///
    /// # Errors
    /// Unknown variables or bytes not allowed in a header value.
    pub fn parse_in(value: &str, scope: &Scope) -> Result<Self, HeaderError> {
        let tpl = Template::parse_in(value, scope)?;
        Ok(match tpl.as_constant() {
            Some("") => HeaderValueTemplate::Remove,
            Some(text) => HeaderValueTemplate::Const(
                HeaderValue::from_str(text).map_err(|_| HeaderError::Value(text.into()))?,
            ),
            None => HeaderValueTemplate::Dynamic(tpl),
        })
    }

    /// The value for one request; `None` means "do not send".
    pub fn render(&self, ctx: &VarCtx<'_>) -> Option<HeaderValue> {
        match self {
            HeaderValueTemplate::Remove => None,
            HeaderValueTemplate::Const(v) => Some(v.clone()),
            HeaderValueTemplate::Dynamic(t) => {
                let s = t.render_to_string(ctx);
                if s.is_empty() {
                    None
                } else {
                    HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()
                }
            }
        }
    }
}

/// One `proxy_set_header name value`.
#[derive(Debug, Clone)]
pub struct SetHeader {
    /// Header name.
    pub name: HeaderName,
    /// Value.
    pub value: HeaderValueTemplate,
}

impl SetHeader {
    /// Compiles one rule.
    ///
    /// # Errors
    /// A bad name, value or variable.
    pub fn new(name: &str, value: &str) -> Result<Self, HeaderError> {
        Self::new_in(name, value, &Scope::default())
    }

    /// Compiles one rule with the config's own variables.
    ///
    /// # Errors
    /// A bad name, value or variable.
    pub fn new_in(name: &str, value: &str, scope: &Scope) -> Result<Self, HeaderError> {
        Ok(SetHeader {
            name: HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HeaderError::Name(name.into()))?,
            value: HeaderValueTemplate::parse_in(value, scope)?,
        })
    }
}

/// The compiled `proxy_set_header` list of a location, with nginx's default
/// `Host: $proxy_host` unless the list sets `Host`.
#[derive(Debug, Clone, Default)]
pub struct RequestHeaders {
    rules: Box<[SetHeader]>,
    sets_host: bool,
}

impl RequestHeaders {
    /// The program for `rules` (in config order; a later rule for the same
    /// name wins).
    pub fn new(rules: Vec<SetHeader>) -> Self {
        let sets_host = rules.iter().any(|r| r.name == header::HOST);
        RequestHeaders {
            rules: rules.into(),
            sets_host,
        }
    }

    /// Renders the values for one request. `ctx` borrows the *original*
    /// request, so rendering comes before [`PreparedHeaders::apply`] changes it.
    /// `default_host` is the pre-parsed `$proxy_host`, sent as `Host` unless
    /// a rule sets it.
    pub fn prepare(&self, ctx: &VarCtx<'_>, default_host: &HeaderValue) -> PreparedHeaders<'_> {
        PreparedHeaders {
            host: (!self.sets_host).then(|| default_host.clone()),
            values: self
                .rules
                .iter()
                .map(|r| (&r.name, r.value.render(ctx)))
                .collect(),
        }
    }
}

/// Header values rendered for one request, ready to apply.
#[derive(Debug)]
pub struct PreparedHeaders<'r> {
    host: Option<HeaderValue>,
    values: Vec<(&'r HeaderName, Option<HeaderValue>)>,
}

impl PreparedHeaders<'_> {
    /// Sets (or, for empty values, removes) the headers in `headers`.
    pub fn apply(self, headers: &mut HeaderMap) {
        if let Some(host) = self.host {
            headers.insert(header::HOST, host);
        }
        for (name, value) in self.values {
            match value {
                Some(v) => {
                    headers.insert(name.clone(), v);
                }
                None => {
                    headers.remove(name);
                }
            }
        }
    }
}
