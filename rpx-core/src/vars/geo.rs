//! `geo [$address] $variable { … }`: a value chosen by the client's
//! address (nginx's `ngx_http_geo_module`), compiled once into sorted
//! tables searched by bisection.
//!
//! CIDR blocks (the default) are flattened into disjoint intervals per
//! family, so the longest prefix is one binary search; `ranges` blocks are
//! built with nginx's own splitting rules (per /16 block, later ranges
//! inside earlier ones split them) and then flattened the same way.
//! Addresses are parsed from borrowed text into integers: a lookup does
//! not allocate.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use http::HeaderMap;

use super::{Template, VarCtx};

/// `INADDR_NONE`: what nginx looks up when the address is not one.
const NONE_V4: u32 = u32::MAX;

/// A `geo` block that does not compile. `line` is the index of the
/// offending line in the slice given to [`Geo::new`]; the messages are
/// nginx's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GeoError {
    /// A line that is neither one of the one-word flags nor two words.
    #[error("invalid number of the geo parameters")]
    InvalidParameters {
        /// Line index.
        line: usize,
    },
    /// `ranges` after a CIDR entry.
    #[error("the \"ranges\" directive must be the first directive inside \"geo\" block")]
    RangesNotFirst {
        /// Line index.
        line: usize,
    },
    /// An address or CIDR that does not parse.
    #[error("invalid network \"{net}\"")]
    InvalidNetwork {
        /// Line index.
        line: usize,
        /// The word as written.
        net: String,
    },
    /// A `ranges` entry that is not `a.b.c.d-e.f.g.h` with start ≤ end.
    #[error("invalid range \"{range}\"")]
    InvalidRange {
        /// Line index.
        line: usize,
        /// The word as written.
        range: String,
    },
    /// A range that partly overlaps an earlier one (one inside another is
    /// fine: it splits it).
    #[error("range \"{range}\" overlaps \"{other}\"")]
    RangeOverlap {
        /// Line index.
        line: usize,
        /// The new range as written.
        range: String,
        /// The earlier piece it overlaps, within one /16 block as nginx
        /// keeps them.
        other: String,
    },
    /// `include file;`: files are read by the config front-end, which
    /// splices their lines into the block before it is compiled.
    #[error("\"include\" of \"{file}\" inside \"geo\" was not expanded")]
    Include {
        /// Line index.
        line: usize,
        /// The file named.
        file: String,
    },
}

impl GeoError {
    /// The index of the line the error is about.
    pub fn line(&self) -> usize {
        match self {
            GeoError::InvalidParameters { line }
            | GeoError::RangesNotFirst { line }
            | GeoError::InvalidNetwork { line, .. }
            | GeoError::InvalidRange { line, .. }
            | GeoError::RangeOverlap { line, .. }
            | GeoError::Include { line, .. } => *line,
        }
    }
}

/// Something nginx warns about but accepts (a duplicate network, a
/// deletion of nothing, host bits in a CIDR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoWarning {
    /// Index of the line in the slice given to [`Geo::new`].
    pub line: usize,
    /// nginx's wording.
    pub message: String,
}

impl fmt::Display for GeoWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A client address as the lookups see it: IPv4-mapped IPv6 addresses
/// are IPv4, as nginx treats them in `ngx_http_geo_cidr_variable` and
/// `ngx_cidr_match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addr {
    V4(u32),
    V6(u128),
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => Addr::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Addr::V4(v4.into()),
                None => Addr::V6(v6.into()),
            },
        }
    }
}

/// A network: address with host bits cleared, prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    V4(u32, u8),
    V6(u128, u8),
}

impl Net {
    fn contains(self, addr: Addr) -> bool {
        match (self, addr) {
            (Net::V4(net, len), Addr::V4(a)) => a & u32::mask(len) == net,
            (Net::V6(net, len), Addr::V6(a)) => a & u128::mask(len) == net,
            _ => false,
        }
    }
}

/// The compiled lookup.
#[derive(Debug, Clone)]
enum Table {
    /// Per family: interval starts, ascending, with the value index that
    /// holds from there to the next start. The first start is 0 (the
    /// default), so every address finds one.
    Cidr {
        v4: Box<[(u32, u32)]>,
        v6: Box<[(u128, u32)]>,
    },
    /// Disjoint IPv4 ranges `(start, end, value)`, ascending, and the
    /// value for addresses in none.
    Ranges {
        ranges: Box<[(u32, u32, u32)]>,
        default: u32,
    },
}

/// A compiled `geo` variable.
///
/// ```
/// use rpx_core::vars::geo::Geo;
/// let lines: Vec<Vec<String>> = [
///     &["default", "0"][..],
///     &["127.0.0.1", "2"],
///     &["192.168.1.0/24", "1"],
///     &["2001:0db8::/32", "1"],
/// ]
/// .iter()
/// .map(|l| l.iter().map(|w| w.to_string()).collect())
/// .collect();
/// let geo = Geo::new(None, &lines).unwrap();
/// assert!(geo.warnings().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Geo {
    source: Option<Template>,
    values: Box<[Box<str>]>,
    table: Table,
    proxies: Box<[Net]>,
    proxy_recursive: bool,
    warnings: Vec<GeoWarning>,
}

impl Geo {
    /// Compiles a block. `source` is the `$address` argument (`None`:
    /// the client address, `$remote_addr` after `real_ip`); `lines` are
    /// the block's lines as words, e.g. `["default", "0"]`,
    /// `["10.0.0.0/8", "1"]`, `["proxy", "192.168.0.0/16"]`, `["ranges"]`.
    /// Values are plain text, as in nginx.
    ///
    /// What nginx only warns about is accepted and listed in
    /// [`Geo::warnings`].
    ///
    /// # Errors
    /// The first bad line, as [`GeoError`]; `include` is one too, since
    /// the caller is to have spliced the file's lines in.
    pub fn new(source: Option<Template>, lines: &[Vec<String>]) -> Result<Self, GeoError> {
        let mut b = Builder::default();
        for (line, words) in lines.iter().enumerate() {
            b.line(line, words)?;
        }
        Ok(b.finish(source))
    }

    /// What nginx would have warned about while reading the block.
    pub fn warnings(&self) -> &[GeoWarning] {
        &self.warnings
    }

    /// Appends the value for this request to `out`.
    pub fn write(&self, ctx: &VarCtx<'_>, out: &mut String) {
        let addr = self.address(ctx, out).unwrap_or(Addr::V4(NONE_V4));
        let value = self.lookup(addr);
        out.push_str(self.values.get(value as usize).map_or("", |v| v));
    }

    /// The address to look up, as `ngx_http_geo_addr`: the source, then,
    /// when it is a trusted proxy, the `X-Forwarded-For` address. `None`
    /// when the source does not render an address (nginx then looks up
    /// 255.255.255.255 and ignores the header).
    fn address(&self, ctx: &VarCtx<'_>, scratch: &mut String) -> Option<Addr> {
        let mut addr = match &self.source {
            None => Addr::from(ctx.conn.peer.ip()),
            Some(t) => {
                // Rendered onto the end of the output and cut off again:
                // no buffer of its own per request.
                let start = scratch.len();
                t.render(ctx, scratch);
                let parsed = parse_addr(&scratch.as_bytes()[start..]);
                scratch.truncate(start);
                parsed?
            }
        };
        if !self.proxies.is_empty() {
            self.forwarded(ctx.headers, &mut addr);
        }
        Some(addr)
    }

    /// `ngx_http_get_forwarded_addr` over every `X-Forwarded-For`
    /// header, the last first; only the last unless `proxy_recursive`.
    fn forwarded(&self, headers: &HeaderMap, addr: &mut Addr) {
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let consumed = self.forwarded_one(value.as_bytes(), addr);
            if !self.proxy_recursive || !consumed {
                break;
            }
        }
    }

    /// One header's list, right to left, while the current address is a
    /// trusted proxy (`ngx_http_get_forwarded_addr_internal`). True when
    /// the whole list was taken (the next header may continue).
    fn forwarded_one(&self, xff: &[u8], addr: &mut Addr) -> bool {
        let is_sep = |b: u8| b == b' ' || b == b',';
        let mut end = xff.len();
        loop {
            if end == 0 || !self.proxies.iter().any(|n| n.contains(*addr)) {
                return false;
            }
            // The last entry: skip trailing separators, then back to the
            // previous separator. As nginx, the first byte is never taken
            // for a separator, so a leading one spoils the first entry.
            let mut last = end - 1;
            while last > 0 && is_sep(xff[last]) {
                last -= 1;
            }
            let mut start = last;
            while start > 0 {
                if is_sep(xff[start]) {
                    start += 1;
                    break;
                }
                start -= 1;
            }
            let Some(next) = parse_addr_port(&xff[start..=last]) else {
                return false;
            };
            *addr = next;
            if !self.proxy_recursive || start == 0 {
                return true;
            }
            end = start - 1;
        }
    }

    fn lookup(&self, addr: Addr) -> u32 {
        match &self.table {
            Table::Cidr { v4, v6 } => match addr {
                Addr::V4(a) => interval_value(v4, a),
                Addr::V6(a) => interval_value(v6, a),
            },
            Table::Ranges { ranges, default } => {
                // Ranges are IPv4 only: IPv6 is INADDR_NONE, as in nginx.
                let a = match addr {
                    Addr::V4(a) => a,
                    Addr::V6(_) => NONE_V4,
                };
                let i = ranges.partition_point(|r| r.0 <= a);
                match i.checked_sub(1).and_then(|i| ranges.get(i)) {
                    Some(&(_, end, value)) if a <= end => value,
                    _ => *default,
                }
            }
        }
    }
}

/// The value of the interval holding `a`.
fn interval_value<T: Copy + Ord>(table: &[(T, u32)], a: T) -> u32 {
    let i = table.partition_point(|e| e.0 <= a);
    i.checked_sub(1)
        .and_then(|i| table.get(i))
        .map_or(0, |e| e.1)
}

/// One /16 block's piece of a range, as nginx keeps them while building.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: u16,
    end: u16,
    value: u32,
}

/// The block being read: nginx's `ngx_http_geo_conf_ctx_t`.
#[derive(Default)]
struct Builder {
    values: Vec<Box<str>>,
    interned: HashMap<Box<str>, u32>,
    ranges: bool,
    /// A CIDR line was read (nginx: the radix trees exist).
    cidr_seen: bool,
    v4: BTreeMap<(u32, u8), u32>,
    v6: BTreeMap<(u128, u8), u32>,
    blocks: BTreeMap<u16, Vec<Piece>>,
    range_default: Option<u32>,
    proxies: Vec<Net>,
    proxy_recursive: bool,
    warnings: Vec<GeoWarning>,
}

impl Builder {
    /// One line, as `ngx_http_geo`.
    fn line(&mut self, line: usize, words: &[String]) -> Result<(), GeoError> {
        match words {
            [w] if w == "ranges" => {
                if self.cidr_seen {
                    return Err(GeoError::RangesNotFirst { line });
                }
                self.ranges = true;
            }
            [w] if w == "proxy_recursive" => self.proxy_recursive = true,
            // nginx's "do not cache the value"; rpx renders a variable
            // each time it is used anyway.
            [w] if w == "volatile" => {}
            [a, b] if a == "include" => {
                return Err(GeoError::Include {
                    line,
                    file: b.clone(),
                })
            }
            [a, b] if a == "proxy" => {
                let net = self.cidr(line, b)?;
                self.proxies.push(net);
            }
            [a, b] if self.ranges => self.range_line(line, a, b)?,
            [a, b] => self.cidr_line(line, a, b)?,
            _ => return Err(GeoError::InvalidParameters { line }),
        }
        Ok(())
    }

    fn warn(&mut self, line: usize, message: String) {
        self.warnings.push(GeoWarning { line, message });
    }

    /// The index of a value, each distinct text stored once
    /// (`ngx_http_geo_value`). Index 0 is the empty value.
    fn value(&mut self, v: &str) -> u32 {
        if self.values.is_empty() {
            self.values.push("".into());
            self.interned.insert("".into(), 0);
        }
        if let Some(&i) = self.interned.get(v) {
            return i;
        }
        let i = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(v.into());
        self.interned.insert(v.into(), i);
        i
    }

    fn value_text(&self, i: u32) -> &str {
        self.values.get(i as usize).map_or("", |v| v)
    }

    /// `ngx_http_geo_cidr_value`: a CIDR or single address, with nginx's
    /// warning for host bits (which are cleared).
    fn cidr(&mut self, line: usize, word: &str) -> Result<Net, GeoError> {
        let (net, exact) = parse_cidr(word).ok_or_else(|| GeoError::InvalidNetwork {
            line,
            net: word.to_owned(),
        })?;
        if !exact {
            self.warn(line, format!("low address bits of {word} are meaningless"));
        }
        Ok(net)
    }

    /// A line of a CIDR block (`ngx_http_geo_cidr`).
    fn cidr_line(&mut self, line: usize, first: &str, second: &str) -> Result<(), GeoError> {
        self.cidr_seen = true;
        if first == "default" {
            // Both families' /0, as `ngx_http_geo_cidr` adds; one warning
            // for the pair where nginx logs one per family.
            let v4 = self.cidr_add(Net::V4(0, 0), second);
            let v6 = self.cidr_add(Net::V6(0, 0), second);
            if let Some(old) = v4.or(v6) {
                self.warn_duplicate(line, first, second, old);
            }
            return Ok(());
        }
        if first == "delete" {
            let net = self.cidr(line, second)?;
            let removed = match net {
                Net::V4(a, l) => self.v4.remove(&(a, l)).is_some(),
                Net::V6(a, l) => self.v6.remove(&(a, l)).is_some(),
            };
            if !removed {
                self.warn(line, format!("no network \"{second}\" to delete"));
            }
            return Ok(());
        }
        let net = self.cidr(line, first)?;
        if let Some(old) = self.cidr_add(net, second) {
            self.warn_duplicate(line, first, second, old);
        }
        Ok(())
    }

    /// `ngx_http_geo_cidr_add`: a later duplicate replaces the value; the
    /// old one is returned for the warning.
    fn cidr_add(&mut self, net: Net, value: &str) -> Option<u32> {
        let v = self.value(value);
        match net {
            Net::V4(a, l) => self.v4.insert((a, l), v),
            Net::V6(a, l) => self.v6.insert((a, l), v),
        }
    }

    fn warn_duplicate(&mut self, line: usize, net: &str, value: &str, old: u32) {
        let message = format!(
            "duplicate network \"{net}\", value: \"{value}\", old value: \"{}\"",
            self.value_text(old)
        );
        self.warn(line, message);
    }

    /// A line of a `ranges` block (`ngx_http_geo_range`).
    fn range_line(&mut self, line: usize, first: &str, second: &str) -> Result<(), GeoError> {
        if first == "default" {
            if let Some(old) = self.range_default {
                let message = format!(
                    "duplicate default geo range value: \"{second}\", old value: \"{}\"",
                    self.value_text(old)
                );
                self.warn(line, message);
            }
            self.range_default = Some(self.value(second));
            return Ok(());
        }
        let (net, delete) = if first == "delete" {
            (second, true)
        } else {
            (first, false)
        };
        let (start, end) = net
            .split_once('-')
            .and_then(|(s, e)| Some((inet_addr(s.as_bytes())?, inet_addr(e.as_bytes())?)))
            .filter(|(s, e)| s <= e)
            .ok_or_else(|| GeoError::InvalidRange {
                line,
                range: net.to_owned(),
            })?;
        if delete {
            if !self.delete_range(start, end) {
                self.warn(line, format!("no address range \"{net}\" to delete"));
            }
            return Ok(());
        }
        let value = self.value(second);
        self.add_range(line, net, start, end, value)
    }

    /// `ngx_http_geo_add_range`: per /16 block, a new piece goes after,
    /// before, in place of (a duplicate, with a warning) or inside an
    /// earlier piece, splitting it; a partial overlap is an error.
    fn add_range(
        &mut self,
        line: usize,
        net: &str,
        start: u32,
        end: u32,
        value: u32,
    ) -> Result<(), GeoError> {
        for h in block(start)..=block(end) {
            let s = if h == block(start) { low(start) } else { 0 };
            let e = if h == block(end) { low(end) } else { 0xffff };
            let new = Piece {
                start: s,
                end: e,
                value,
            };
            let pieces = self.blocks.entry(h).or_default();
            // From the end: ascending input appends in constant time.
            let mut i = pieces.len();
            let duplicate_of = loop {
                let Some(j) = i.checked_sub(1) else {
                    pieces.insert(0, new);
                    break None;
                };
                i = j;
                let r = pieces[i];
                if e < r.start {
                    continue;
                }
                if s > r.end {
                    pieces.insert(i + 1, new);
                    break None;
                }
                if s == r.start && e == r.end {
                    pieces[i].value = value;
                    break Some(r.value);
                }
                if s > r.start && e < r.end {
                    pieces[i].end = s - 1;
                    pieces.insert(i + 1, new);
                    pieces.insert(
                        i + 2,
                        Piece {
                            start: e + 1,
                            end: r.end,
                            value: r.value,
                        },
                    );
                    break None;
                }
                if s == r.start && e < r.end {
                    pieces[i].start = e + 1;
                    pieces.insert(i, new);
                    break None;
                }
                if s > r.start && e == r.end {
                    pieces[i].end = s - 1;
                    pieces.insert(i + 1, new);
                    break None;
                }
                return Err(GeoError::RangeOverlap {
                    line,
                    range: net.to_owned(),
                    other: format!(
                        "{}-{}",
                        ipv4_text(join(h, r.start)),
                        ipv4_text(join(h, r.end))
                    ),
                });
            };
            if let Some(old) = duplicate_of {
                let message = format!(
                    "duplicate range \"{net}\", value: \"{}\", old value: \"{}\"",
                    self.value_text(value),
                    self.value_text(old)
                );
                self.warn(line, message);
            }
        }
        Ok(())
    }

    /// `ngx_http_geo_delete_range`: removes the pieces that are exactly
    /// the range's in each block; false when some block had none.
    fn delete_range(&mut self, start: u32, end: u32) -> bool {
        let mut all = true;
        for h in block(start)..=block(end) {
            let s = if h == block(start) { low(start) } else { 0 };
            let e = if h == block(end) { low(end) } else { 0xffff };
            let found = self.blocks.get_mut(&h).and_then(|pieces| {
                let i = pieces.iter().position(|p| p.start == s && p.end == e)?;
                pieces.remove(i);
                Some(())
            });
            all &= found.is_some();
        }
        all
    }

    fn finish(mut self, source: Option<Template>) -> Geo {
        let empty = self.value("");
        let table = if self.ranges {
            let mut ranges: Vec<(u32, u32, u32)> = Vec::new();
            for (&h, pieces) in &self.blocks {
                for p in pieces {
                    let (s, e) = (join(h, p.start), join(h, p.end));
                    // Ranges cut only at /16 boundaries join up again.
                    match ranges.last_mut() {
                        Some(last) if last.2 == p.value && last.1.checked_add(1) == Some(s) => {
                            last.1 = e;
                        }
                        _ => ranges.push((s, e, p.value)),
                    }
                }
            }
            Table::Ranges {
                ranges: ranges.into(),
                default: self.range_default.unwrap_or(empty),
            }
        } else {
            // No default: the empty value, as nginx adds at the end.
            self.v4.entry((0, 0)).or_insert(empty);
            self.v6.entry((0, 0)).or_insert(empty);
            Table::Cidr {
                v4: flatten(&self.v4),
                v6: flatten(&self.v6),
            }
        };
        Geo {
            source,
            values: self.values.into(),
            table,
            proxies: self.proxies.into(),
            proxy_recursive: self.proxy_recursive,
            warnings: self.warnings,
        }
    }
}

fn block(a: u32) -> u16 {
    (a >> 16) as u16
}

fn low(a: u32) -> u16 {
    (a & 0xffff) as u16
}

fn join(h: u16, l: u16) -> u32 {
    (u32::from(h) << 16) | u32::from(l)
}

fn ipv4_text(a: u32) -> std::net::Ipv4Addr {
    a.into()
}

/// Address widths the CIDR tables are built for.
trait Bits: Copy + Ord {
    /// The mask of a prefix length (0 for /0, as nginx special-cases).
    fn mask(len: u8) -> Self;
    /// The last address of the network.
    fn last(self, len: u8) -> Self;
    /// The next address, if any.
    fn next(self) -> Option<Self>;
}

impl Bits for u32 {
    fn mask(len: u8) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(len.min(32)))
            .unwrap_or(0)
    }
    fn last(self, len: u8) -> u32 {
        self | !u32::mask(len)
    }
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Bits for u128 {
    fn mask(len: u8) -> u128 {
        u128::MAX
            .checked_shl(128 - u32::from(len.min(128)))
            .unwrap_or(0)
    }
    fn last(self, len: u8) -> u128 {
        self | !u128::mask(len)
    }
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

/// Prefixes (which nest or are disjoint) → disjoint intervals holding
/// each address's longest prefix. Sorted by start, then by length, an
/// outer network comes before those inside it; a stack of the open ones
/// says what resumes where an inner one ends. Needs the /0 entry.
fn flatten<T: Bits>(nets: &BTreeMap<(T, u8), u32>) -> Box<[(T, u32)]> {
    fn mark<T: Bits>(out: &mut Vec<(T, u32)>, at: T, value: u32) {
        match out.last_mut() {
            // Later marks at one point are the more specific.
            Some(last) if last.0 == at => last.1 = value,
            Some(last) if last.1 == value => {}
            _ => out.push((at, value)),
        }
    }
    fn close<T: Bits>(out: &mut Vec<(T, u32)>, open: &mut Vec<(T, u32)>) {
        if let Some((end, _)) = open.pop() {
            if let (Some(after), Some(&(_, outer))) = (end.next(), open.last()) {
                mark(out, after, outer);
            }
        }
    }
    let mut out = Vec::new();
    let mut open: Vec<(T, u32)> = Vec::new();
    for (&(start, len), &value) in nets {
        while open.last().is_some_and(|&(end, _)| end < start) {
            close(&mut out, &mut open);
        }
        mark(&mut out, start, value);
        open.push((start.last(len), value));
    }
    while !open.is_empty() {
        close(&mut out, &mut open);
    }
    out.into()
}

/// `ngx_inet_addr`: dotted quad, each part at most 255, empty parts read
/// as 0, leading zeros decimal. 255.255.255.255 is `INADDR_NONE` to
/// nginx, which then cannot tell it from an error: `None` too, so the
/// same configs are accepted and the same requests fall back.
fn inet_addr(text: &[u8]) -> Option<u32> {
    let mut addr: u32 = 0;
    let mut octet: u32 = 0;
    let mut dots = 0;
    for &c in text {
        match c {
            b'0'..=b'9' => {
                octet = octet * 10 + u32::from(c - b'0');
                if octet > 255 {
                    return None;
                }
            }
            b'.' if dots < 3 => {
                addr = (addr << 8) | octet;
                octet = 0;
                dots += 1;
            }
            _ => return None,
        }
    }
    let addr = (addr << 8) | octet;
    (dots == 3 && addr != NONE_V4).then_some(addr)
}

/// `ngx_parse_addr`: IPv4 as nginx reads it, else IPv6 (std's parser;
/// nginx's own accepts the same written forms bar oddities).
fn parse_addr(text: &[u8]) -> Option<Addr> {
    if let Some(v4) = inet_addr(text) {
        return Some(Addr::V4(v4));
    }
    let v6: std::net::Ipv6Addr = std::str::from_utf8(text).ok()?.parse().ok()?;
    Some(Addr::from(IpAddr::V6(v6)))
}

/// `ngx_parse_addr_port`: an address, `a.b.c.d:port` or `[v6]:port`
/// (port 1–65535).
fn parse_addr_port(text: &[u8]) -> Option<Addr> {
    if let Some(a) = parse_addr(text) {
        return Some(a);
    }
    let (host, port) = if let Some(rest) = text.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']')?;
        (&rest[..close], rest[close + 1..].strip_prefix(b":")?)
    } else {
        let colon = text.iter().position(|&b| b == b':')?;
        (&text[..colon], &text[colon + 1..])
    };
    let port = atoi(port)?;
    if !(1..=65535).contains(&port) {
        return None;
    }
    parse_addr(host)
}

/// `ngx_atoi`: decimal digits only, at least one.
fn atoi(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

/// `ngx_http_geo_cidr_value` + `ngx_ptocidr`: `addr[/len]` for either
/// family (the exact word `255.255.255.255` too, which nginx allows as a
/// special case). True when no host bits had to be cleared.
fn parse_cidr(word: &str) -> Option<(Net, bool)> {
    if word == "255.255.255.255" {
        return Some((Net::V4(NONE_V4, 32), true));
    }
    let (addr, len) = match word.split_once('/') {
        Some((a, l)) => (a, Some(atoi(l.as_bytes())?)),
        None => (word, None),
    };
    if let Some(v4) = inet_addr(addr.as_bytes()) {
        let len = u8::try_from(len.unwrap_or(32)).ok().filter(|&l| l <= 32)?;
        let net = v4 & u32::mask(len);
        return Some((Net::V4(net, len), net == v4));
    }
    let v6: u128 = addr.parse::<std::net::Ipv6Addr>().ok()?.into();
    let len = u8::try_from(len.unwrap_or(128))
        .ok()
        .filter(|&l| l <= 128)?;
    let net = v6 & u128::mask(len);
    Some((Net::V6(net, len), net == v6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{ConnInfo, Scheme};

    fn lines(src: &[&str]) -> Vec<Vec<String>> {
        src.iter()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    fn geo(src: &[&str]) -> Geo {
        Geo::new(None, &lines(src)).unwrap()
    }

    fn err(src: &[&str]) -> GeoError {
        Geo::new(None, &lines(src)).unwrap_err()
    }

    /// The value for a request from `peer` with `headers`.
    fn value_for(g: &Geo, uri: &str, peer: &str, xff: &[&str]) -> String {
        let mut req = http::Request::get(uri);
        for v in xff {
            req = req.header("x-forwarded-for", *v);
        }
        let req = req.body(()).unwrap();
        let peer: std::net::IpAddr = peer.parse().unwrap();
        let conn = ConnInfo::new(
            (peer, 1000).into(),
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            Scheme::Http,
        );
        let ctx = VarCtx::new(&req, &conn, "/", "s");
        let mut out = String::from(">");
        g.write(&ctx, &mut out);
        out.split_off(1)
    }

    fn at(g: &Geo, peer: &str) -> String {
        value_for(g, "/", peer, &[])
    }

    #[test]
    fn nginx_documentation_example() {
        let g = geo(&[
            "default        0",
            "127.0.0.1      2",
            "192.168.1.0/24 1",
            "10.1.0.0/16    1",
            "::1            2",
            "2001:0db8::/32 1",
        ]);
        assert!(g.warnings().is_empty());
        for (peer, want) in [
            ("127.0.0.1", "2"),
            ("127.0.0.2", "0"),
            ("192.168.1.77", "1"),
            ("192.168.2.1", "0"),
            ("10.1.255.255", "1"),
            ("10.2.0.0", "0"),
            ("::1", "2"),
            ("::2", "0"),
            ("2001:db8:ffff::1", "1"),
            ("2001:db9::", "0"),
            // IPv4-mapped IPv6 is looked up as IPv4.
            ("::ffff:127.0.0.1", "2"),
        ] {
            assert_eq!(at(&g, peer), want, "{peer}");
        }
    }

    #[test]
    fn longest_prefix_and_delete_as_documented() {
        // The second documentation example, its include spliced in.
        let g = geo(&[
            "default        ZZ",
            "10.2.0.0/16    RU",
            "192.168.2.0/24 RU",
            "delete         127.0.0.0/16",
            "proxy          192.168.100.0/24",
            "proxy          2001:0db8::/32",
            "127.0.0.0/24   US",
            "127.0.0.1/32   RU",
            "10.1.0.0/16    RU",
            "192.168.1.0/24 UK",
        ]);
        assert_eq!(
            g.warnings(),
            [GeoWarning {
                line: 3,
                message: "no network \"127.0.0.0/16\" to delete".into()
            }]
        );
        for (peer, want) in [
            ("127.0.0.1", "RU"),
            ("127.0.0.2", "US"),
            ("127.0.1.1", "ZZ"),
            ("10.1.3.4", "RU"),
            ("10.2.3.4", "RU"),
            ("192.168.1.1", "UK"),
            ("192.168.2.200", "RU"),
            ("8.8.8.8", "ZZ"),
            ("2001:db8::1", "ZZ"),
        ] {
            assert_eq!(at(&g, peer), want, "{peer}");
        }
        // Nested prefixes, deepest wins, the outer resumes after.
        let g = geo(&[
            "10.0.0.0/8 a",
            "10.1.0.0/16 b",
            "10.1.2.0/24 c",
            "10.1.2.128/25 d",
            "10.1.3.0/24 e",
            "11.0.0.0/8 f",
        ]);
        for (peer, want) in [
            ("9.255.255.255", ""),
            ("10.0.0.0", "a"),
            ("10.1.0.0", "b"),
            ("10.1.2.127", "c"),
            ("10.1.2.128", "d"),
            ("10.1.2.255", "d"),
            ("10.1.3.7", "e"),
            ("10.1.4.0", "b"),
            ("10.2.0.0", "a"),
            ("10.255.255.255", "a"),
            ("11.1.1.1", "f"),
            ("12.0.0.0", ""),
            ("255.255.255.255", ""),
        ] {
            assert_eq!(at(&g, peer), want, "{peer}");
        }
    }

    #[test]
    fn delete_uncovers_the_shorter_prefix() {
        let g = geo(&[
            "10.0.0.0/8 wide",
            "10.1.0.0/16 narrow",
            "2001:db8::/32 six",
            "2001:db8:1::/48 six-narrow",
            "delete 10.1.0.0/16",
            "delete 2001:db8:1::/48",
        ]);
        assert!(g.warnings().is_empty());
        assert_eq!(at(&g, "10.1.2.3"), "wide");
        assert_eq!(at(&g, "2001:db8:1::1"), "six");
    }

    #[test]
    fn default_and_zero_networks() {
        let g = geo(&["10.0.0.0/8 ten"]);
        assert_eq!(at(&g, "1.1.1.1"), "", "no default is empty");
        assert_eq!(at(&g, "::1"), "");
        let g = geo(&["default d"]);
        assert_eq!(at(&g, "1.1.1.1"), "d");
        assert_eq!(at(&g, "2001:db8::1"), "d", "default covers IPv6 too");
        let g = geo(&["0.0.0.0/0 four", "::/0 six"]);
        assert_eq!(at(&g, "1.1.1.1"), "four");
        assert_eq!(at(&g, "2001:db8::1"), "six");
        let g = geo(&["0.0.0.0/0 four"]);
        assert_eq!(at(&g, "2001:db8::1"), "", "0.0.0.0/0 is IPv4 only");
        let g = geo(&["default a", "delete 0.0.0.0/0"]);
        assert_eq!(at(&g, "1.1.1.1"), "");
        assert_eq!(at(&g, "::1"), "a");
    }

    #[test]
    fn warnings_in_nginx_words() {
        let g = geo(&[
            "default a",
            "default b",
            "10.0.0.0/8 x",
            "10.0.0.0/8 y",
            "10.1.2.3/16 z",
            "delete 11.0.0.0/8",
        ]);
        let got: Vec<String> = g.warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(
            got,
            [
                "duplicate network \"default\", value: \"b\", old value: \"a\"",
                "duplicate network \"10.0.0.0/8\", value: \"y\", old value: \"x\"",
                "low address bits of 10.1.2.3/16 are meaningless",
                "no network \"11.0.0.0/8\" to delete",
            ]
        );
        assert_eq!(
            g.warnings().iter().map(|w| w.line).collect::<Vec<_>>(),
            [1, 3, 4, 5]
        );
        // The later value wins; host bits are cleared.
        assert_eq!(at(&g, "10.9.9.9"), "y");
        assert_eq!(at(&g, "10.1.0.1"), "z");
        assert_eq!(at(&g, "2001:db8::1"), "b");
    }

    #[test]
    fn ranges_as_documented() {
        let g = geo(&[
            "ranges",
            "default                   ZZ",
            "127.0.0.0-127.0.0.0       US",
            "127.0.0.1-127.0.0.1       RU",
            "127.0.0.2-127.0.0.255     US",
            "10.1.0.0-10.1.255.255     RU",
            "192.168.1.0-192.168.1.255 UK",
        ]);
        assert!(g.warnings().is_empty());
        for (peer, want) in [
            ("127.0.0.0", "US"),
            ("127.0.0.1", "RU"),
            ("127.0.0.2", "US"),
            ("127.0.0.255", "US"),
            ("127.0.1.0", "ZZ"),
            ("10.0.255.255", "ZZ"),
            ("10.1.0.0", "RU"),
            ("10.1.128.1", "RU"),
            ("10.1.255.255", "RU"),
            ("10.2.0.0", "ZZ"),
            ("192.168.1.9", "UK"),
            ("::ffff:192.168.1.9", "UK"),
            // Ranges are IPv4: IPv6 is looked up as 255.255.255.255.
            ("2001:db8::1", "ZZ"),
        ] {
            assert_eq!(at(&g, peer), want, "{peer}");
        }
    }

    #[test]
    fn later_ranges_split_earlier_ones() {
        let g = geo(&[
            "ranges",
            // Spans 256 /16 blocks.
            "10.0.0.0-10.255.255.255 wide",
            // Inside one block's piece: splits it.
            "10.1.2.0-10.1.2.255 mid",
            // Same start as the piece left of it: shifts its start.
            "10.1.0.0-10.1.0.255 low",
            // Same end as the piece right of it: shifts its end.
            "10.1.255.0-10.1.255.255 high",
            // Exactly an existing piece: replaced, with a warning.
            "10.1.2.0-10.1.2.255 mid2",
            // Whole blocks inside the wide range: one duplicate per block.
            "10.5.0.0-10.6.255.255 five-six",
        ]);
        for (peer, want) in [
            ("9.255.255.255", ""),
            ("10.0.0.0", "wide"),
            ("10.1.0.0", "low"),
            ("10.1.0.255", "low"),
            ("10.1.1.0", "wide"),
            ("10.1.2.0", "mid2"),
            ("10.1.2.255", "mid2"),
            ("10.1.3.0", "wide"),
            ("10.1.254.255", "wide"),
            ("10.1.255.0", "high"),
            ("10.1.255.255", "high"),
            ("10.2.0.0", "wide"),
            ("10.5.0.0", "five-six"),
            ("10.6.255.255", "five-six"),
            ("10.7.0.0", "wide"),
            ("10.255.255.255", "wide"),
            ("11.0.0.0", ""),
        ] {
            assert_eq!(at(&g, peer), want, "{peer}");
        }
        let got: Vec<String> = g.warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(
            got,
            [
                "duplicate range \"10.1.2.0-10.1.2.255\", value: \"mid2\", old value: \"mid\"",
                "duplicate range \"10.5.0.0-10.6.255.255\", value: \"five-six\", old value: \"wide\"",
                "duplicate range \"10.5.0.0-10.6.255.255\", value: \"five-six\", old value: \"wide\"",
            ]
        );
    }

    #[test]
    fn partial_range_overlap_is_an_error() {
        // The old documentation's example: the third range contains the
        // second instead of lying inside it.
        let e = err(&[
            "ranges",
            "127.0.0.0-127.0.0.0 US",
            "127.0.0.1-127.0.0.1 RU",
            "127.0.0.1-127.0.0.255 US",
        ]);
        assert_eq!(e.line(), 3);
        assert_eq!(
            e.to_string(),
            "range \"127.0.0.1-127.0.0.255\" overlaps \"127.0.0.1-127.0.0.1\""
        );
        let e = err(&["ranges", "1.0.0.10-1.0.0.20 a", "1.0.0.15-1.0.0.30 b"]);
        assert_eq!(
            e.to_string(),
            "range \"1.0.0.15-1.0.0.30\" overlaps \"1.0.0.10-1.0.0.20\""
        );
    }

    #[test]
    fn ranges_delete_and_default() {
        let g = geo(&[
            "ranges",
            "default a",
            "default b",
            "1.0.0.0-1.0.0.255 one",
            "2.0.0.0-2.1.255.255 two",
            "delete 1.0.0.0-1.0.0.255",
            "delete 3.0.0.0-3.0.0.1",
            "delete 2.0.0.0-2.0.0.255",
        ]);
        let got: Vec<String> = g.warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(
            got,
            [
                "duplicate default geo range value: \"b\", old value: \"a\"",
                "no address range \"3.0.0.0-3.0.0.1\" to delete",
                "no address range \"2.0.0.0-2.0.0.255\" to delete",
            ]
        );
        assert_eq!(at(&g, "1.0.0.5"), "b");
        assert_eq!(at(&g, "2.0.0.5"), "two");
        assert_eq!(at(&g, "2.1.0.5"), "two");
    }

    #[test]
    fn proxy_takes_x_forwarded_for() {
        let src = [
            "default none",
            "proxy 192.168.0.0/16",
            "proxy 2001:db8::/32",
            "203.0.113.0/24 doc",
            "10.0.0.0/8 ten",
            "192.168.0.0/16 lan",
        ];
        let g = geo(&src);
        let v = |peer, xff: &[&str]| value_for(&g, "/", peer, xff);
        assert_eq!(v("192.168.1.5", &["203.0.113.7"]), "doc");
        assert_eq!(v("192.168.1.5", &[]), "lan", "no header");
        assert_eq!(v("8.8.8.8", &["203.0.113.7"]), "none", "untrusted peer");
        assert_eq!(v("2001:db8::5", &["203.0.113.7"]), "doc");
        assert_eq!(v("192.168.1.5", &["203.0.113.7:4433"]), "doc");
        assert_eq!(v("192.168.1.5", &["[2001:db8::1]:80"]), "none");
        assert_eq!(v("192.168.1.5", &["garbage"]), "lan");
        assert_eq!(v("192.168.1.5", &["10.0.0.1 , 203.0.113.7, "]), "doc");
        // Not recursive: only the last address, even if it is a proxy.
        assert_eq!(v("192.168.1.5", &["10.0.0.1, 192.168.7.7"]), "lan");
        // Only the last header.
        assert_eq!(v("192.168.1.5", &["10.0.0.1", "192.168.7.7"]), "lan");

        let mut src = src.to_vec();
        src.push("proxy_recursive");
        let g = geo(&src);
        let v = |peer, xff: &[&str]| value_for(&g, "/", peer, xff);
        assert_eq!(v("192.168.1.5", &["10.0.0.1, 192.168.7.7"]), "ten");
        assert_eq!(
            v("192.168.1.5", &["203.0.113.9, 10.0.0.1, 192.168.7.7"]),
            "ten",
            "stops at the first untrusted address"
        );
        assert_eq!(v("192.168.1.5", &["192.168.3.3, 192.168.7.7"]), "lan");
        assert_eq!(
            v("192.168.1.5", &["10.0.0.1", "192.168.7.7"]),
            "ten",
            "continues into earlier headers"
        );
        assert_eq!(v("192.168.1.5", &["garbage, 192.168.7.7"]), "lan");
    }

    #[test]
    fn custom_source_variable() {
        let src = lines(&[
            "default d",
            "10.0.0.0/8 ten",
            "255.255.255.255 bad",
            "proxy 10.0.0.0/8",
        ]);
        let g = Geo::new(Some(Template::parse("$arg_ip").unwrap()), &src).unwrap();
        let v = |uri| value_for(&g, uri, "192.168.1.5", &[]);
        assert_eq!(v("/?ip=10.1.2.3"), "ten");
        assert_eq!(v("/?ip=8.8.8.8"), "d");
        // Not an address: 255.255.255.255 is looked up instead.
        assert_eq!(v("/?ip=nonsense"), "bad");
        assert_eq!(v("/"), "bad");
        // The address from the variable is checked against `proxy` too.
        let req = value_for(&g, "/?ip=10.1.2.3", "192.168.1.5", &["8.8.8.8"]);
        assert_eq!(req, "d");
        let g = Geo::new(
            Some(Template::parse("$http_x_client").unwrap()),
            &lines(&["2001:db8::/32 six"]),
        )
        .unwrap();
        let req = http::Request::get("/")
            .header("x-client", "2001:db8::9")
            .body(())
            .unwrap();
        let conn = ConnInfo::new(
            "192.168.1.5:1000".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
            Scheme::Http,
        );
        let ctx = VarCtx::new(&req, &conn, "/", "s");
        let mut out = String::from("x=");
        g.write(&ctx, &mut out);
        assert_eq!(out, "x=six", "the rendered source leaves no trace");
    }

    #[test]
    fn bad_lines() {
        let e = err(&["default 0", "10.0.0.0/33 x"]);
        assert_eq!(
            e,
            GeoError::InvalidNetwork {
                line: 1,
                net: "10.0.0.0/33".into()
            }
        );
        assert_eq!(e.to_string(), "invalid network \"10.0.0.0/33\"");
        for bad in [
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "::1/129",
            "host",
            "1.2.3.4-1.2.3.5",
        ] {
            assert!(
                matches!(err(&[&format!("{bad} v")]), GeoError::InvalidNetwork { .. }),
                "{bad}"
            );
        }
        assert!(matches!(
            err(&["proxy 300.0.0.0/8"]),
            GeoError::InvalidNetwork { line: 0, .. }
        ));
        assert!(matches!(
            err(&["delete nope"]),
            GeoError::InvalidNetwork { .. }
        ));
        let e = err(&["10.0.0.0/8 a b"]);
        assert_eq!(e, GeoError::InvalidParameters { line: 0 });
        assert_eq!(e.to_string(), "invalid number of the geo parameters");
        assert_eq!(
            err(&["default 0", "bogus"]),
            GeoError::InvalidParameters { line: 1 }
        );
        assert_eq!(
            Geo::new(None, &[vec![]]).unwrap_err(),
            GeoError::InvalidParameters { line: 0 }
        );
        let e = err(&["default 0", "ranges"]);
        assert_eq!(e, GeoError::RangesNotFirst { line: 1 });
        assert_eq!(
            e.to_string(),
            "the \"ranges\" directive must be the first directive inside \"geo\" block"
        );
        // `proxy` and flags may come before `ranges`.
        assert!(Geo::new(
            None,
            &lines(&["proxy 10.0.0.0/8", "proxy_recursive", "ranges"])
        )
        .is_ok());
        assert_eq!(
            err(&["include conf/geo.conf"]),
            GeoError::Include {
                line: 0,
                file: "conf/geo.conf".into()
            }
        );
        for bad in [
            "10.0.0.0/8",
            "10.0.0.2-10.0.0.1",
            "10.0.0.1-",
            "::1-::2",
            "1.2.3.4-255.255.255.255",
        ] {
            assert_eq!(
                err(&["ranges", &format!("{bad} v")]),
                GeoError::InvalidRange {
                    line: 1,
                    range: bad.into()
                },
                "{bad}"
            );
        }
        assert_eq!(
            err(&["ranges", "delete 1.2.3.4"]).to_string(),
            "invalid range \"1.2.3.4\""
        );
    }

    #[test]
    fn address_text_as_nginx_reads_it() {
        assert_eq!(inet_addr(b"1.2.3.4"), Some(0x0102_0304));
        assert_eq!(inet_addr(b"010.0.0.1"), Some(0x0a00_0001));
        assert_eq!(inet_addr(b"1..2.3"), Some(0x0100_0203));
        for bad in [
            &b"1.2.3"[..],
            b"1.2.3.4.5",
            b"256.0.0.1",
            b"1.2.3.4 ",
            b"",
            b"255.255.255.255",
        ] {
            assert_eq!(inet_addr(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_addr_port(b"1.2.3.4:80"), Some(Addr::V4(0x0102_0304)));
        assert_eq!(parse_addr_port(b"1.2.3.4:0"), None);
        assert_eq!(parse_addr_port(b"1.2.3.4:65536"), None);
        assert_eq!(parse_addr_port(b"[::1]:443"), Some(Addr::V6(1)));
        assert_eq!(parse_addr_port(b"[::1]"), None);
        assert_eq!(parse_addr_port(b"::1"), Some(Addr::V6(1)));
        assert_eq!(
            parse_cidr("10.1.2.3/8"),
            Some((Net::V4(0x0a00_0000, 8), false))
        );
        assert_eq!(parse_cidr("0.0.0.0/0"), Some((Net::V4(0, 0), true)));
        assert_eq!(parse_cidr("::/0"), Some((Net::V6(0, 0), true)));
        assert_eq!(
            parse_cidr("255.255.255.255"),
            Some((Net::V4(u32::MAX, 32), true))
        );
        assert_eq!(parse_cidr("255.255.255.255/32"), None, "as nginx");
    }
}
