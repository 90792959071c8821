//! Header rewriting: hop-by-hop stripping, `proxy_set_header`, `add_header`,
//! `proxy_hide_header`/`proxy_pass_header` and `proxy_redirect`. All rules
//! are compiled once; per request only inserts and removals happen.

mod add;
pub mod cookie;
pub mod expires;
mod head_copy;
mod hop;
mod name;
mod request;
mod response;

pub use add::{AddHeader, AddHeaders, AddHeadersFuture, AddHeadersLayer};
pub(crate) use head_copy::HeadCopies;
pub use hop::{is_upgrade_request, strip_hop_by_hop};
pub(crate) use name::parse_name;
pub use request::{HeaderValueTemplate, PreparedHeaders, RequestHeaders, SetHeader};
pub use response::{ProxyRedirect, RedirectRule, ResponseHeaders, HIDDEN_BY_DEFAULT};

/// Why a header rule did not compile.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// Not a valid header name.
    #[error("invalid header name {0:?}")]
    Name(String),
    /// Not a valid header value.
    #[error("invalid header value {0:?}")]
    Value(String),
    /// A variable problem.
    #[error(transparent)]
    Template(#[from] crate::vars::TemplateError),
}
