//! nginx's `sub_filter` (ngx_http_sub_filter_module): strings in a
//! response body replaced by others as the body streams.
//!
//! What nginx does, and so rpx:
//! - the search strings match ASCII case-insensitively (nginx lowercases
//!   them); both they and the replacements may hold variables, rendered
//!   per request; a search string that renders empty is dropped;
//! - at each position the first string in config order that matches
//!   wins, and the scan goes on after it (so of `abc` and `abcd`, the one
//!   written first wins at `abcd`; the leftmost match wins over a string
//!   written earlier that matches further on);
//! - `sub_filter_once on` (the default) replaces each string once; once
//!   every string has been replaced the rest of the body passes as is;
//! - the responses filtered: `sub_filter_types` (`text/html` always, `*`
//!   any, even without a `Content-Type`), not `Content-Length: 0`,
//!   whatever the status; `Content-Length` goes, and `Last-Modified` and
//!   `ETag` go too unless `sub_filter_last_modified on`, which keeps them
//!   and makes the `ETag` weak.
//!
//! Where rpx differs, on purpose:
//! - a response with a `Content-Encoding` is left alone: nginx matches
//!   its compressed bytes, which can only corrupt it (hence the advice to
//!   clear `Accept-Encoding` upstream). So this filter must see a body
//!   before rpx's own `gzip` compresses it;
//! - nginx holds back the last bytes of each write that a string *could*
//!   end in (up to the shortest string's length) and, at the body's end,
//!   sends a held partial match as is without looking for a shorter
//!   string inside it; rpx holds only bytes that begin a string (at most
//!   the longest string's length minus one) and matches what is held at
//!   the end like any other text.
//!
//! Each upstream write goes out as soon as it is scanned: a chunk with no
//! match and no string begun at its end is passed on as the same `Bytes`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};

use crate::vars::{Scope, Template, TemplateError, VarCtx};

/// nginx's limit of search strings on one level (its tables index them
/// with a byte).
const MAX_PAIRS: usize = 255;

/// Why a level's `sub_filter` settings did not compile.
#[derive(Debug, thiserror::Error)]
pub enum SubFilterError {
    /// `sub_filter "" …`: nginx's "empty search pattern".
    #[error("empty search pattern")]
    EmptySearch,
    /// More than 255 `sub_filter` on one level, as nginx refuses.
    #[error("number of search patterns exceeds {MAX_PAIRS}")]
    TooMany,
    /// A search string or replacement with a bad variable.
    #[error("sub_filter \"{text}\": {source}")]
    Variable {
        /// The string as written.
        text: String,
        /// What is wrong with it.
        source: TemplateError,
    },
}

/// A level's sub_filter settings, compiled once; cheap to clone (Arc inside).
///
/// ```
/// use rpx_core::compress::sub_filter::SubFilter;
/// let pairs = [("http://127.0.0.1:8080/".to_owned(), "https://$host/".to_owned())];
/// let f = SubFilter::new(&pairs, true, &[], false, &Default::default()).unwrap();
/// let mut h = http::HeaderMap::new();
/// h.insert("content-type", "text/html; charset=utf-8".parse().unwrap());
/// h.insert("content-length", "1234".parse().unwrap());
/// assert!(f.applies(&h));
/// f.edit_headers(&mut h);
/// assert!(!h.contains_key("content-length"));
/// ```
#[derive(Debug, Clone)]
pub struct SubFilter {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    pairs: Box<[Pair]>,
    /// The match tables, built here when no search string has variables
    /// (else per request, as nginx).
    table: Option<Arc<Table>>,
    /// The replacements, when none has variables.
    repls: Option<Arc<[Bytes]>>,
    once: bool,
    /// `sub_filter_types` besides `text/html`, lowercased; `None` is `*`.
    types: Option<Box<[Box<str>]>>,
    last_modified: bool,
}

#[derive(Debug)]
struct Pair {
    /// Lowercased when constant.
    search: Text,
    replace: Text,
}

#[derive(Debug)]
enum Text {
    Const(Bytes),
    Var(Template),
}

impl Text {
    fn compile(src: &str, scope: &Scope, lower: bool) -> Result<Text, SubFilterError> {
        let t = Template::parse_in(src, scope).map_err(|source| SubFilterError::Variable {
            text: src.to_owned(),
            source,
        })?;
        Ok(match t.as_constant() {
            Some(c) if lower => Text::Const(Bytes::from(c.to_ascii_lowercase())),
            Some(c) => Text::Const(Bytes::copy_from_slice(c.as_bytes())),
            None => Text::Var(t),
        })
    }

    fn render(&self, ctx: &VarCtx<'_>) -> Bytes {
        match self {
            Text::Const(b) => b.clone(),
            Text::Var(t) => Bytes::from(t.render_to_string(ctx)),
        }
    }
}

impl SubFilter {
    /// Compiles a level's `sub_filter` pairs (search, replacement) in
    /// config order, `sub_filter_once`, `sub_filter_types` (empty is
    /// nginx's default, `text/html` alone) and `sub_filter_last_modified`.
    ///
    /// # Errors
    /// An empty search string, more than 255 pairs, a bad variable.
    pub fn new(
        pairs: &[(String, String)],
        once: bool,
        types: &[String],
        last_modified: bool,
        scope: &Scope,
    ) -> Result<Self, SubFilterError> {
        if pairs.len() > MAX_PAIRS {
            return Err(SubFilterError::TooMany);
        }
        let pairs = pairs
            .iter()
            .map(|(search, replace)| {
                if search.is_empty() {
                    return Err(SubFilterError::EmptySearch);
                }
                Ok(Pair {
                    search: Text::compile(search, scope, true)?,
                    replace: Text::compile(replace, scope, false)?,
                })
            })
            .collect::<Result<Box<[Pair]>, _>>()?;
        let searches: Option<Box<[Bytes]>> = pairs
            .iter()
            .map(|p| match &p.search {
                Text::Const(b) => Some(b.clone()),
                Text::Var(_) => None,
            })
            .collect();
        let repls: Option<Arc<[Bytes]>> = pairs
            .iter()
            .map(|p| match &p.replace {
                Text::Const(b) => Some(b.clone()),
                Text::Var(_) => None,
            })
            .collect();
        let types = if types.iter().any(|t| t == "*") {
            None
        } else {
            Some(
                types
                    .iter()
                    .map(|t| t.to_ascii_lowercase().into())
                    .collect(),
            )
        };
        Ok(SubFilter {
            inner: Arc::new(Compiled {
                table: searches.map(|s| Arc::new(Table::new(s))),
                repls,
                pairs,
                once,
                types,
                last_modified,
            }),
        })
    }

    /// At request time: the replacements (and search strings, if they may
    /// have variables) rendered. Constant settings are shared, not copied.
    ///
    /// If every search string rendered empty the result
    /// [is empty](PreparedSub::is_empty), and nginx leaves the response
    /// alone: neither edit its headers nor wrap its body then.
    pub fn prepare(&self, ctx: &VarCtx<'_>) -> PreparedSub {
        let c = &*self.inner;
        let (table, repls) = match (&c.table, &c.repls) {
            (Some(t), Some(r)) => (t.clone(), r.clone()),
            (Some(t), None) => (
                t.clone(),
                c.pairs.iter().map(|p| p.replace.render(ctx)).collect(),
            ),
            (None, _) => {
                let mut searches = Vec::with_capacity(c.pairs.len());
                let mut repls = Vec::with_capacity(c.pairs.len());
                for p in c.pairs.iter() {
                    let search = match &p.search {
                        Text::Const(b) => b.clone(),
                        Text::Var(t) => {
                            let mut s = t.render_to_string(ctx);
                            s.make_ascii_lowercase();
                            Bytes::from(s)
                        }
                    };
                    // nginx drops a search string that renders empty.
                    if !search.is_empty() {
                        searches.push(search);
                        repls.push(p.replace.render(ctx));
                    }
                }
                (Arc::new(Table::new(searches.into())), repls.into())
            }
        };
        PreparedSub {
            grow: repls.iter().map(Bytes::len).max().unwrap_or(0),
            table,
            repls,
            once: c.once,
        }
    }

    /// Whether a response with these headers is filtered (status is not looked at, as nginx).
    pub fn applies(&self, headers: &HeaderMap) -> bool {
        let c = &*self.inner;
        if c.pairs.is_empty() {
            return false;
        }
        let empty = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            == Some(0);
        // Not nginx: its bytes are not the text the strings are written in.
        let encoded = headers.get_all(CONTENT_ENCODING).iter().any(|v| {
            let v = v.as_bytes().trim_ascii();
            !v.is_empty() && !v.eq_ignore_ascii_case(b"identity")
        });
        if empty || encoded {
            return false;
        }
        let Some(types) = &c.types else {
            return true;
        };
        let Some(ct) = headers.get(CONTENT_TYPE) else {
            return false;
        };
        let mime = ct
            .as_bytes()
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        mime.eq_ignore_ascii_case(b"text/html")
            || types
                .iter()
                .any(|t| mime.eq_ignore_ascii_case(t.as_bytes()))
    }

    /// The header changes nginx makes to a filtered response: the length
    /// is unknown now; the validators describe other bytes, so they go,
    /// or with `sub_filter_last_modified on` stay with the `ETag` weak.
    pub fn edit_headers(&self, headers: &mut HeaderMap) {
        headers.remove(CONTENT_LENGTH);
        if !self.inner.last_modified {
            headers.remove(LAST_MODIFIED);
            headers.remove(ETAG);
            return;
        }
        // ngx_http_weak_etag: `W/` kept, a strong tag weakened, anything
        // else (not a quoted tag) dropped.
        let Some(tag) = headers.get(ETAG).map(HeaderValue::as_bytes) else {
            return;
        };
        if tag.len() > 2 && tag.starts_with(b"W/") {
            return;
        }
        let weak = tag
            .starts_with(b"\"")
            .then(|| HeaderValue::from_bytes(&[b"W/", tag].concat()).ok())
            .flatten();
        match weak {
            Some(w) => headers.insert(ETAG, w),
            None => headers.remove(ETAG),
        };
    }

    /// The body, filtered as it streams.
    pub fn wrap<B>(&self, prepared: PreparedSub, body: B) -> SubFilterBody<B> {
        SubFilterBody {
            inner: body,
            state: self.state(prepared),
        }
    }

    /// The filter's state for one body, for a caller that polls the body
    /// under it itself.
    pub fn state(&self, prepared: PreparedSub) -> SubFilterState {
        SubFilterState {
            scan: Scanner::new(prepared),
            trailers: None,
            ended: false,
        }
    }
}

/// One request's strings and replacements, ready to scan a body with.
#[derive(Debug, Clone)]
pub struct PreparedSub {
    table: Arc<Table>,
    /// By the table's pattern index.
    repls: Arc<[Bytes]>,
    /// The longest replacement: room for one in an output chunk.
    grow: usize,
    once: bool,
}

impl PreparedSub {
    /// No search string is left (all had variables that rendered empty):
    /// nothing to filter, as nginx then does not filter the response.
    pub fn is_empty(&self) -> bool {
        self.table.pats.is_empty()
    }
}

/// The search strings with nginx's lookup tables: a Horspool skip over
/// the shortest string's length, and the strings bucketed by their byte
/// at that length's end.
struct Table {
    /// Lowercased, non-empty, in config order.
    pats: Box<[Bytes]>,
    min: usize,
    max: usize,
    /// How far the window may move on, by the raw byte at its end.
    shift: [u8; 256],
    /// Pattern indices sorted (stably: config order within) by their
    /// lowercase byte at `min - 1`.
    order: Box<[u16]>,
    /// `order[index[c]..index[c + 1]]` are the patterns with byte `c` there.
    index: [u16; 257],
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("patterns", &self.pats.len())
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

impl Table {
    /// `pats`: lowercased, non-empty, at most [`MAX_PAIRS`].
    fn new(pats: Box<[Bytes]>) -> Table {
        let min = pats.iter().map(|p| p.len()).min().unwrap_or(0);
        let max = pats.iter().map(|p| p.len()).max().unwrap_or(0);
        let reach = min.min(255);
        // `reach` is at most 255.
        let mut shift = [reach as u8; 256];
        let mut counts = [0u16; 256];
        for p in pats.iter() {
            for j in 0..reach {
                let c = p[min - 1 - j];
                for b in [c, c.to_ascii_uppercase()] {
                    shift[usize::from(b)] = shift[usize::from(b)].min(j as u8);
                }
            }
            counts[usize::from(p[min - 1])] += 1;
        }
        let mut index = [0u16; 257];
        for (c, &k) in counts.iter().enumerate() {
            index[c + 1] = index[c] + k;
        }
        let mut order: Vec<u16> = (0..pats.len() as u16).collect();
        order.sort_by_key(|&i| pats[usize::from(i)][min - 1]);
        Table {
            pats,
            min,
            max,
            shift,
            order: order.into(),
            index,
        }
    }

    /// The patterns that can match where the window ends in byte `b`.
    fn bucket(&self, b: u8) -> impl Iterator<Item = usize> + '_ {
        let c = usize::from(b.to_ascii_lowercase());
        self.order[usize::from(self.index[c])..usize::from(self.index[c + 1])]
            .iter()
            .map(|&i| usize::from(i))
    }
}

/// Which strings `sub_filter_once` has used up.
struct Marks {
    once: bool,
    used: [u64; 4],
    left: usize,
}

impl Marks {
    fn usable(&self, i: usize) -> bool {
        !self.once || self.used[i / 64] & (1 << (i % 64)) == 0
    }

    fn mark(&mut self, i: usize) {
        if self.once {
            self.used[i / 64] |= 1 << (i % 64);
            self.left -= 1;
        }
    }
}

/// Nothing more can match: no strings, or `once` used them all.
fn exhausted(table: &Table, marks: &Marks) -> bool {
    table.pats.is_empty() || (marks.once && marks.left == 0)
}

/// What is found at one position.
enum Hit {
    /// Pattern `i` matches.
    Full(usize),
    /// The first pattern that may match runs past the bytes there are.
    Partial,
    Miss,
}

/// The first usable pattern of `cands` matching at the start of `a` then
/// `b`; at the body's end (`eof`) a pattern running past it is no match.
fn first_at(
    table: &Table,
    marks: &Marks,
    cands: impl Iterator<Item = usize>,
    a: &[u8],
    b: &[u8],
    eof: bool,
) -> Hit {
    for i in cands {
        if !marks.usable(i) {
            continue;
        }
        let (pa, pb) = table.pats[i].split_at(table.pats[i].len().min(a.len()));
        if !a[..pa.len()].eq_ignore_ascii_case(pa) {
            continue;
        }
        let k = pb.len().min(b.len());
        if !b[..k].eq_ignore_ascii_case(&pb[..k]) {
            continue;
        }
        if k == pb.len() {
            return Hit::Full(i);
        }
        if !eof {
            return Hit::Partial;
        }
    }
    Hit::Miss
}

/// The output of one chunk, copied only once something must be combined.
struct Out {
    buf: Option<Vec<u8>>,
    cap: usize,
}

impl Out {
    fn push(&mut self, s: &[u8]) {
        if !s.is_empty() {
            let cap = self.cap;
            self.buf
                .get_or_insert_with(|| Vec::with_capacity(cap))
                .extend_from_slice(s);
        }
    }
}

/// A body's scan state: the bytes held back because a string may begin
/// in them, and the strings used up.
struct Scanner {
    sub: PreparedSub,
    /// Fewer bytes than the longest string: where a match may begin.
    tail: Vec<u8>,
    marks: Marks,
}

impl Scanner {
    fn new(sub: PreparedSub) -> Scanner {
        Scanner {
            marks: Marks {
                once: sub.once,
                used: [0; 4],
                left: sub.table.pats.len(),
            },
            sub,
            tail: Vec::new(),
        }
    }

    /// What goes out of `data`, the held tail before it; what may begin a
    /// string at its end is held.
    fn feed(&mut self, data: Bytes) -> Option<Bytes> {
        if self.tail.is_empty() && exhausted(&self.sub.table, &self.marks) {
            return (!data.is_empty()).then_some(data);
        }
        self.scan(data, false)
    }

    /// The held tail at the body's end, matched with nothing to follow.
    fn finish(&mut self) -> Option<Bytes> {
        if self.tail.is_empty() {
            return None;
        }
        self.scan(Bytes::new(), true)
    }

    fn scan(&mut self, data: Bytes, eof: bool) -> Option<Bytes> {
        let Scanner { sub, tail, marks } = self;
        let table = &*sub.table;
        let n = data.len();
        let mut out = Out {
            buf: None,
            cap: tail.len() + n + sub.grow,
        };

        // Positions in the held tail, matched on into `data`.
        let tl = tail.len();
        let (mut p, mut emitted, mut start) = (0, 0, 0);
        while p < tl && !exhausted(table, marks) {
            match first_at(table, marks, 0..table.pats.len(), &tail[p..], &data, eof) {
                Hit::Miss => p += 1,
                Hit::Partial => {
                    out.push(&tail[emitted..p]);
                    tail.drain(..p);
                    tail.extend_from_slice(&data);
                    return out.buf.map(Bytes::from);
                }
                Hit::Full(i) => {
                    out.push(&tail[emitted..p]);
                    out.push(&sub.repls[i]);
                    marks.mark(i);
                    p += table.pats[i].len();
                    emitted = p.min(tl);
                    start = p.saturating_sub(tl);
                }
            }
        }
        out.push(&tail[emitted..]);
        tail.clear();

        // `data` itself: windows of the shortest string's length.
        let (mut p, mut copied, mut hold) = (start, start, n);
        while !exhausted(table, marks) {
            if p + table.min > n {
                // Too few bytes left for a whole string: hold from where
                // one begins.
                hold = (p.min(n)..n)
                    .find(|&q| {
                        let rest = &data[q..];
                        (0..table.pats.len()).any(|i| {
                            marks.usable(i)
                                && table.pats[i].len() > rest.len()
                                && rest.eq_ignore_ascii_case(&table.pats[i][..rest.len()])
                        })
                    })
                    .unwrap_or(n);
                break;
            }
            let end = data[p + table.min - 1];
            let shift = usize::from(table.shift[usize::from(end)]);
            if shift > 0 {
                p += shift;
                continue;
            }
            match first_at(table, marks, table.bucket(end), &data[p..], &[], eof) {
                Hit::Miss => p += 1,
                Hit::Partial => {
                    hold = p;
                    break;
                }
                Hit::Full(i) => {
                    out.push(&data[copied..p]);
                    out.push(&sub.repls[i]);
                    marks.mark(i);
                    p += table.pats[i].len();
                    copied = p;
                }
            }
        }
        if hold < n {
            if tail.capacity() == 0 {
                tail.reserve_exact(table.max.saturating_sub(1));
            }
            tail.extend_from_slice(&data[hold..]);
        }
        match out.buf {
            Some(mut v) => {
                v.extend_from_slice(&data[copied..hold]);
                Some(Bytes::from(v))
            }
            None if copied == 0 && hold == n => (n > 0).then_some(data),
            None => (copied < hold).then(|| data.slice(copied..hold)),
        }
    }
}

/// The filter's state over one body, driven by whoever polls the body
/// under it: [`SubFilterBody`], and rpx's stack, which chains it before
/// `gzip` without another body type.
pub struct SubFilterState {
    scan: Scanner,
    // Trailers that came after the data, sent after the held bytes.
    trailers: Option<Frame<Bytes>>,
    ended: bool,
}

impl std::fmt::Debug for SubFilterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubFilterState")
            .field("held", &self.scan.tail.len())
            .field("ended", &self.ended)
            .finish()
    }
}

impl SubFilterState {
    /// The next frame, the inner body's frames read with `inner`.
    pub fn poll_frame<E>(
        &mut self,
        cx: &mut Context<'_>,
        mut inner: impl FnMut(&mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, E>>>,
    ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        loop {
            if self.ended {
                return Poll::Ready(self.trailers.take().map(Ok));
            }
            let out = match ready!(inner(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.scan.feed(data),
                    Err(trailers) => {
                        self.trailers = Some(trailers);
                        self.ended = true;
                        self.scan.finish()
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    self.ended = true;
                    self.scan.finish()
                }
            };
            if let Some(data) = out {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
    }

    /// Nothing is held and nothing is left to send.
    fn is_done(&self) -> bool {
        self.scan.tail.is_empty() && self.trailers.is_none()
    }
}

pin_project_lite::pin_project! {
    /// A response body with `sub_filter`'s replacements made as it
    /// streams: each upstream write goes out once scanned, less only the
    /// bytes a string may begin in, sent with the next write or at the
    /// end. Trailers follow the last bytes.
    pub struct SubFilterBody<B> {
        #[pin]
        inner: B,
        state: SubFilterState,
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for SubFilterBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubFilterBody")
            .field("inner", &self.inner)
            .field("state", &self.state)
            .finish()
    }
}

impl<B> http_body::Body for SubFilterBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        this.state
            .poll_frame(cx, |cx| inner.as_mut().poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.state.is_done() && (self.state.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use http_body::Body as _;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    fn filter(pairs: &[(&str, &str)], once: bool) -> SubFilter {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        SubFilter::new(&pairs, once, &[], false, &Scope::new()).unwrap()
    }

    fn prepared(f: &SubFilter) -> PreparedSub {
        let req = http::Request::get("/")
            .header("host", "h.test")
            .body(())
            .unwrap();
        let conn = crate::conn::conn_info(&req);
        let ctx = VarCtx::new(&req, &conn, "/", "s");
        f.prepare(&ctx)
    }

    type Frames = futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>;

    fn body(frames: Vec<Frame<Bytes>>) -> StreamBody<Frames> {
        StreamBody::new(futures_util::stream::iter(
            frames.into_iter().map(Ok).collect::<Vec<_>>(),
        ))
    }

    fn chunks(parts: &[&[u8]]) -> Vec<Frame<Bytes>> {
        parts
            .iter()
            .map(|p| Frame::data(Bytes::copy_from_slice(p)))
            .collect()
    }

    /// The frames the filter sends for `frames` (the test bodies never wait).
    fn frames_out(f: &SubFilter, frames: Vec<Frame<Bytes>>) -> Vec<Frame<Bytes>> {
        let mut b = f.wrap(prepared(f), body(frames));
        let mut out = Vec::new();
        while let Some(frame) = futures_util::FutureExt::now_or_never(b.frame()).unwrap() {
            out.push(frame.unwrap());
        }
        assert!(b.is_end_stream());
        out
    }

    fn run(f: &SubFilter, parts: &[&[u8]]) -> String {
        let b = f.wrap(prepared(f), body(chunks(parts)));
        let all = futures_util::FutureExt::now_or_never(b.collect())
            .unwrap()
            .unwrap()
            .to_bytes();
        String::from_utf8(all.to_vec()).unwrap()
    }

    fn one(f: &SubFilter, text: &str) -> String {
        run(f, &[text.as_bytes()])
    }

    /// The semantics, written plainly: at each position the first unused
    /// string in config order that matches wins.
    fn reference(text: &[u8], pairs: &[(&str, &str)], once: bool) -> Vec<u8> {
        let mut used = vec![false; pairs.len()];
        let (mut out, mut p) = (Vec::new(), 0);
        'at: while p < text.len() {
            for (i, (s, r)) in pairs.iter().enumerate() {
                let s = s.as_bytes();
                if !used[i]
                    && text[p..].len() >= s.len()
                    && text[p..p + s.len()].eq_ignore_ascii_case(s)
                {
                    out.extend_from_slice(r.as_bytes());
                    used[i] = once;
                    p += s.len();
                    continue 'at;
                }
            }
            out.push(text[p]);
            p += 1;
        }
        out
    }

    /// Every way of cutting `text` in two, and byte by byte.
    fn splits(text: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut all: Vec<Vec<&[u8]>> = (0..=text.len())
            .map(|i| vec![&text[..i], &text[i..]])
            .collect();
        all.push(text.chunks(1).collect());
        all
    }

    #[test]
    fn a_single_replacement() {
        let f = filter(&[("http://127.0.0.1:8080/", "https://example.com/")], true);
        assert_eq!(
            one(&f, r#"<a href="http://127.0.0.1:8080/x">"#),
            r#"<a href="https://example.com/x">"#
        );
        assert_eq!(one(&f, "nothing here"), "nothing here");
        assert_eq!(one(&f, ""), "");
    }

    #[test]
    fn matches_ignoring_ascii_case() {
        let f = filter(&[("HeLLo", "bye")], false);
        assert_eq!(one(&f, "HELLO, hello, hElLo!"), "bye, bye, bye!");
        // Only ASCII folds, as nginx's ngx_tolower.
        let f = filter(&[("é", "e")], false);
        assert_eq!(one(&f, "É é"), "É e");
    }

    #[test]
    fn once_replaces_each_string_once() {
        let pairs = [("a", "1"), ("b", "2")];
        assert_eq!(one(&filter(&pairs, true), "abab-ba"), "12ab-ba");
        assert_eq!(one(&filter(&pairs, false), "abab-ba"), "1212-21");
        assert_eq!(one(&filter(&[("x", "y")], true), "xxx"), "yxx");
        // Twice the same string: the second takes the second occurrence.
        let same = [("x", "1"), ("x", "2")];
        assert_eq!(one(&filter(&same, true), "xxx"), "12x");
        assert_eq!(one(&filter(&same, false), "xxx"), "111");
    }

    #[test]
    fn overlapping_strings_go_to_the_leftmost_then_the_first_written() {
        for (pairs, text, want) in [
            (&[("abc", "X"), ("abcd", "Y")][..], "abcd", "Xd"),
            (&[("abcd", "Y"), ("abc", "X")][..], "abcd", "Y"),
            (&[("abcd", "Y"), ("abc", "X")][..], "abce", "Xe"),
            (&[("cd", "Z"), ("abcd", "Y")][..], "abcd", "Y"),
            (&[("abcd", "Y"), ("cd", "Z")][..], "abcd", "Y"),
            (&[("abcd", "Y"), ("bc", "Z")][..], "abce", "aZe"),
            (&[("aab", "Q")][..], "aaab", "aQ"),
        ] {
            let f = filter(pairs, false);
            for parts in splits(text.as_bytes()) {
                assert_eq!(run(&f, &parts), want, "{pairs:?} on {parts:?}");
            }
        }
    }

    #[test]
    fn matches_across_every_chunk_boundary() {
        let pairs = [
            ("<script>", "<!--"),
            ("</SCRIPT>", "-->"),
            ("cdn.old", "cdn.new"),
        ];
        let text = b"<p>x</p><Script>load('//cdn.old/a.js')</script><script></script>cdn.ol";
        for once in [true, false] {
            let f = filter(&pairs, once);
            let whole = one(&f, std::str::from_utf8(text).unwrap());
            assert_eq!(whole.as_bytes(), reference(text, &pairs, once));
            for parts in splits(text) {
                assert_eq!(run(&f, &parts), whole, "{parts:?}");
            }
        }
    }

    #[test]
    fn agrees_with_the_plain_semantics_on_random_bodies_and_cuts() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let pool = ["ab", "abc", "b", "bca", "aab", "ABa", "cc", "abab"];
        let repl = ["", "1", "22", "333"];
        for _ in 0..3000 {
            let pairs: Vec<(&str, &str)> = (0..1 + rand(3))
                .map(|_| (pool[rand(pool.len())], repl[rand(repl.len())]))
                .collect();
            let once = rand(2) == 0;
            let text: Vec<u8> = (0..rand(14)).map(|_| b"abcAB"[rand(5)]).collect();
            let want = reference(&text, &pairs, once);
            let f = filter(&pairs, once);
            let max = pairs.iter().map(|p| p.0.len()).max().unwrap_or(1);
            let mut cuts = splits(&text);
            let mut rest = &text[..];
            let mut parts = Vec::new();
            while !rest.is_empty() {
                let (a, b) = rest.split_at(1 + rand(rest.len()));
                parts.push(a);
                rest = b;
            }
            cuts.push(parts);
            for parts in cuts {
                let mut s = Scanner::new(prepared(&f));
                let mut got = Vec::new();
                for p in &parts {
                    got.extend_from_slice(&s.feed(Bytes::copy_from_slice(p)).unwrap_or_default());
                    assert!(s.tail.len() < max, "held {:?}", s.tail);
                    assert!(s.tail.capacity() < max);
                }
                got.extend_from_slice(&s.finish().unwrap_or_default());
                assert_eq!(got, want, "{pairs:?} once={once} {parts:?}");
            }
        }
    }

    #[test]
    fn a_partial_match_at_the_end_goes_out_as_is() {
        let f = filter(&[("<abc>", "X")], true);
        assert_eq!(one(&f, "xx<ab"), "xx<ab");
        let out = frames_out(&f, chunks(&[b"xx<ab"]));
        let data: Vec<&[u8]> = out.iter().map(|f| &f.data_ref().unwrap()[..]).collect();
        assert_eq!(data, [&b"xx"[..], b"<ab"], "held back, then flushed");
    }

    #[test]
    fn a_chunk_without_matches_is_passed_on_as_is() {
        let f = filter(&[("<abc>", "X")], false);
        let chunk = Bytes::from_static(b"no match at all here, nor a < near the end <x");
        let out = frames_out(&f, vec![Frame::data(chunk.clone())]);
        assert_eq!(out.len(), 1);
        let got = out[0].data_ref().unwrap();
        assert_eq!((got.as_ptr(), got.len()), (chunk.as_ptr(), chunk.len()));
        // What a string may begin in is held; the rest is still not copied.
        let chunk = Bytes::from_static(b"text then <ab");
        let out = frames_out(&f, vec![Frame::data(chunk.clone())]);
        assert_eq!(out[0].data_ref().unwrap().as_ptr(), chunk.as_ptr());
        assert_eq!(out[0].data_ref().unwrap(), "text then ");
    }

    #[test]
    fn a_stream_is_not_held_back() {
        let f = filter(&[("secret", "******")], false);
        let frames = futures_util::stream::iter(vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"data: 1\n\n"))),
            Ok(Frame::data(Bytes::from_static(
                b"data: a secret\n\ndata: sec",
            ))),
        ])
        .chain(futures_util::stream::pending());
        let mut b = f.wrap(prepared(&f), StreamBody::new(frames));
        let mut next = || futures_util::FutureExt::now_or_never(b.frame());
        let first = next().unwrap().unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "data: 1\n\n");
        let second = next().unwrap().unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "data: a ******\n\ndata: ");
        assert!(
            next().is_none(),
            "waits for the upstream, not for more data"
        );
    }

    #[test]
    fn trailers_follow_the_held_bytes() {
        let f = filter(&[("<bc>", "X")], false);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let mut frames = chunks(&[b"a<bc>b", b"c<b"]);
        frames.push(Frame::trailers(trailers.clone()));
        let b = f.wrap(prepared(&f), body(frames));
        let got = futures_util::FutureExt::now_or_never(b.collect())
            .unwrap()
            .unwrap();
        assert_eq!(got.trailers(), Some(&trailers));
        assert_eq!(got.to_bytes(), "aXbc<b");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn applies_to_the_types_nginx_filters() {
        let types = |t: &[&str]| {
            let t: Vec<String> = t.iter().map(|s| (*s).to_owned()).collect();
            let pairs = [("a".to_owned(), "b".to_owned())];
            SubFilter::new(&pairs, true, &t, false, &Scope::new()).unwrap()
        };
        let html = headers(&[("content-type", "Text/HTML; charset=utf-8")]);
        let css = headers(&[("content-type", "text/css")]);
        let none = HeaderMap::new();
        let default = types(&[]);
        assert!(default.applies(&html));
        assert!(!default.applies(&css));
        assert!(!default.applies(&none));
        let listed = types(&["text/css", "application/JSON"]);
        assert!(listed.applies(&html), "text/html is always in");
        assert!(listed.applies(&css));
        assert!(listed.applies(&headers(&[("content-type", "application/json")])));
        assert!(!listed.applies(&headers(&[("content-type", "image/png")])));
        let any = types(&["*"]);
        assert!(any.applies(&headers(&[("content-type", "image/png")])));
        assert!(any.applies(&none), "`*` takes a response without a type");
        for h in [
            headers(&[("content-type", "text/html"), ("content-encoding", "gzip")]),
            headers(&[("content-type", "text/html"), ("content-length", "0")]),
        ] {
            assert!(!any.applies(&h), "{h:?}");
        }
        let identity = headers(&[
            ("content-type", "text/html"),
            ("content-encoding", "identity"),
        ]);
        assert!(default.applies(&identity));
        let pairs: [(String, String); 0] = [];
        let empty = SubFilter::new(&pairs, true, &[], false, &Scope::new()).unwrap();
        assert!(!empty.applies(&html));
    }

    #[test]
    fn edits_headers_as_nginx() {
        let res = || {
            headers(&[
                ("content-type", "text/html"),
                ("content-length", "42"),
                ("last-modified", "Tue, 01 Jul 2025 00:00:00 GMT"),
                ("etag", "\"abc\""),
            ])
        };
        let pairs = [("a".to_owned(), "b".to_owned())];
        let plain = SubFilter::new(&pairs, true, &[], false, &Scope::new()).unwrap();
        let mut h = res();
        plain.edit_headers(&mut h);
        assert_eq!(h, headers(&[("content-type", "text/html")]));

        let keep = SubFilter::new(&pairs, true, &[], true, &Scope::new()).unwrap();
        let mut h = res();
        keep.edit_headers(&mut h);
        assert!(!h.contains_key(CONTENT_LENGTH));
        assert_eq!(h[LAST_MODIFIED], "Tue, 01 Jul 2025 00:00:00 GMT");
        assert_eq!(h[ETAG], "W/\"abc\"");
        for (tag, want) in [("W/\"x\"", Some("W/\"x\"")), ("unquoted", None)] {
            let mut h = headers(&[("etag", tag)]);
            keep.edit_headers(&mut h);
            assert_eq!(h.get(ETAG).map(|v| v.to_str().unwrap()), want, "{tag}");
        }
    }

    #[test]
    fn variables_render_per_request() {
        let f = filter(&[("http://backend/", "https://$host/")], true);
        assert_eq!(
            one(&f, "<a href=http://BACKEND/x>"),
            "<a href=https://h.test/x>"
        );
        // In the search string too (nginx 1.9.4), lowercased once rendered.
        let f = filter(&[("//${host}:8080", "//$host")], false);
        assert_eq!(
            one(&f, "//H.test:8080/a //h.test:8080/b"),
            "//h.test/a //h.test/b"
        );
        // A search string rendering empty is dropped; none left, nothing to do.
        let f = filter(&[("$http_x_missing", "z")], true);
        assert!(prepared(&f).is_empty());
        assert_eq!(one(&f, "abc"), "abc");
    }

    #[test]
    fn rejects_what_nginx_rejects() {
        let new = |pairs: &[(String, String)]| {
            SubFilter::new(pairs, true, &[], false, &Scope::new()).map(|_| ())
        };
        let p = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert!(matches!(
            new(&[p("", "x")]),
            Err(SubFilterError::EmptySearch)
        ));
        assert!(matches!(
            new(&[p("a", "$nope")]),
            Err(SubFilterError::Variable { .. })
        ));
        assert!(matches!(
            new(&[p("${host", "x")]),
            Err(SubFilterError::Variable { .. })
        ));
        let many: Vec<_> = (0..256).map(|i| p(&format!("s{i}"), "x")).collect();
        assert!(matches!(new(&many), Err(SubFilterError::TooMany)));
        assert!(new(&many[..255]).is_ok());
    }
}
