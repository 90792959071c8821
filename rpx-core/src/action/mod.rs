//! What a location answers by itself: `return`, and static files
//! (`root` / `alias`). Each is a `tower::Service` of its own; proxying is
//! [`crate::proxy`]'s, and which one a location runs is the compiled
//! stack's choice ([`crate::stack`]).

mod files;
mod ret;

pub use files::{FileBody, FileService, FilesFuture, FilesMode};
pub use ret::{ReturnError, ReturnService};
