//! nginx's `set_real_ip_from`, `real_ip_header` and `real_ip_recursive`
//! (ngx_http_realip_module): behind a trusted proxy, the client's address
//! is the one the proxy put in a header, or in the PROXY protocol header
//! its connection began with (`real_ip_header proxy_protocol`). The
//! request's [`ConnInfo`] then
//! carries it, so `$remote_addr`, access lists, logs and
//! `$proxy_add_x_forwarded_for` all use it; [`RealipPeer`] keeps the peer
//! for `$realip_remote_addr`.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderName, Request};

use crate::access::{AccessList, Verdict};
use crate::conn::{conn_info, ConnInfo};

/// The connection's own peer, once [`RealIp`] replaced the client's
/// address (`$realip_remote_addr`, `$realip_remote_port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealipPeer(pub SocketAddr);

/// Where the client's address is read from.
///
/// ```
/// use rpx_core::access::AccessList;
/// use rpx_core::conn::{ConnInfo, Scheme};
/// use rpx_core::realip::RealIp;
///
/// let trusted = AccessList::builder().allow("10.0.0.0/8").unwrap().build();
/// let realip = RealIp::new(trusted, "x-forwarded-for".parse().unwrap(), true);
/// let peer = "10.0.0.2:4000".parse().unwrap();
/// let mut req = http::Request::get("/")
///     .header("x-forwarded-for", "203.0.113.7, 10.0.0.9")
///     .body(())
///     .unwrap();
/// req.extensions_mut().insert(ConnInfo::new(peer, peer, peer, Scheme::Http));
/// realip.apply(&mut req);
/// assert_eq!(rpx_core::conn::conn_info(&req).peer.ip().to_string(), "203.0.113.7");
/// ```
#[derive(Debug, Clone)]
pub struct RealIp {
    trusted: AccessList,
    source: Source,
    recursive: bool,
}

/// What names the client.
#[derive(Debug, Clone)]
enum Source {
    /// A request header.
    Header(HeaderName),
    /// The connection's PROXY protocol header ([`ConnInfo::proxied`]).
    ProxyProtocol,
}

impl RealIp {
    /// Trusts the peers an `allow` rule of `trusted` names
    /// (`set_real_ip_from`; no match is no trust), reads
    /// `header` (`real_ip_header`; `X-Forwarded-For` is read right to left)
    /// and, `recursive`, skips trusted addresses in it
    /// (`real_ip_recursive`).
    pub fn new(trusted: AccessList, header: HeaderName, recursive: bool) -> Self {
        RealIp {
            trusted,
            source: Source::Header(header),
            recursive,
        }
    }

    /// Trusts the peers `trusted` allows, as [`RealIp::new`], and takes
    /// the client's address and port from the PROXY protocol header of
    /// their connection (`real_ip_header proxy_protocol`); a connection
    /// without addresses in one keeps its peer.
    ///
    /// ```
    /// use rpx_core::access::AccessList;
    /// use rpx_core::conn::{ConnInfo, ProxiedAddrs, Scheme};
    /// use rpx_core::realip::RealIp;
    ///
    /// let trusted = AccessList::builder().allow("10.0.0.0/8").unwrap().build();
    /// let peer = "10.0.0.2:4000".parse().unwrap();
    /// let proxied = ProxiedAddrs {
    ///     source: "203.0.113.7:51000".parse().unwrap(),
    ///     destination: "192.0.2.1:443".parse().unwrap(),
    /// };
    /// let mut req = http::Request::new(());
    /// req.extensions_mut()
    ///     .insert(ConnInfo::new(peer, peer, peer, Scheme::Http).with_proxied(Some(proxied)));
    /// RealIp::proxy_protocol(trusted).apply(&mut req);
    /// assert_eq!(rpx_core::conn::conn_info(&req).peer, proxied.source);
    /// ```
    pub fn proxy_protocol(trusted: AccessList) -> Self {
        RealIp {
            trusted,
            source: Source::ProxyProtocol,
            recursive: false,
        }
    }

    /// Only an address an `allow` of the list names is trusted.
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.first_match(ip) == Some(Verdict::Allow)
    }

    /// Replaces the client's address in `req` when its peer is trusted and
    /// the header names a valid one; otherwise leaves it.
    pub fn apply<B>(&self, req: &mut Request<B>) {
        let conn = conn_info(req);
        if !self.trusts(conn.peer.ip()) {
            return;
        }
        let found = match &self.source {
            Source::ProxyProtocol => conn.proxied.map(|p| p.source),
            Source::Header(name) => self.header_addr(req, name),
        };
        if let Some(addr) = found {
            req.extensions_mut().insert(RealipPeer(conn.peer));
            req.extensions_mut().insert(ConnInfo { peer: addr, ..conn });
        }
    }

    /// The address `name` gives, if it names a valid one.
    fn header_addr<B>(&self, req: &Request<B>, name: &HeaderName) -> Option<SocketAddr> {
        let mut values = req.headers().get_all(name).iter();
        let first = values.next()?;
        if name == "x-forwarded-for" {
            // Several lines are one list, in order.
            let mut joined = String::from_utf8_lossy(first.as_bytes()).into_owned();
            for v in values {
                joined.push(',');
                joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
            self.forwarded(&joined)
        } else {
            std::str::from_utf8(first.as_bytes())
                .ok()
                .and_then(|v| parse_addr(v.trim()))
        }
    }

    /// nginx's walk of `X-Forwarded-For`: the last address; with
    /// `recursive`, on leftwards while the address taken is trusted. An
    /// entry that is no address ends the walk at the last good one.
    fn forwarded(&self, list: &str) -> Option<SocketAddr> {
        let mut found = None;
        for entry in list.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some(addr) = parse_addr(entry) else {
                break;
            };
            found = Some(addr);
            if !self.recursive || !self.trusts(addr.ip()) {
                break;
            }
        }
        found
    }
}

/// An address, or one with a port (`1.2.3.4:55`, `[::1]:80`); port 0
/// without one, which `$remote_port` shows as empty, as nginx.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Scheme;

    fn real(header: &str, values: &[&str], recursive: bool, peer: &str) -> String {
        let trusted = AccessList::builder().allow("127.0.0.0/24").unwrap().build();
        let r = RealIp::new(trusted, header.parse().unwrap(), recursive);
        let mut b = Request::get("/");
        for v in values {
            b = b.header(header, *v);
        }
        let mut req = b.body(()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        req.extensions_mut()
            .insert(ConnInfo::new(peer, peer, peer, Scheme::Http));
        r.apply(&mut req);
        conn_info(&req).peer.to_string()
    }

    #[test]
    fn as_nginx_walks_the_header() {
        let xff = "x-forwarded-for";
        let p = "127.0.0.1:5000";
        for (values, recursive, want) in [
            (&["1.2.3.4"][..], false, "1.2.3.4:0"),
            (&["1.2.3.4, 127.0.0.5"], false, "127.0.0.5:0"),
            (&["1.2.3.4, 127.0.0.5"], true, "1.2.3.4:0"),
            (&["9.9.9.9, 1.2.3.4, 127.0.0.5"], true, "1.2.3.4:0"),
            (&["junk"], false, p),
            (&["junk, 127.0.0.5"], true, "127.0.0.5:0"),
            (&["1.2.3.4:55"], false, "1.2.3.4:55"),
            (&["1.1.1.1", "2.2.2.2, 127.0.0.9"], true, "2.2.2.2:0"),
        ] {
            assert_eq!(real(xff, values, recursive, p), want, "{values:?}");
        }
        // An untrusted peer is believed about nothing.
        assert_eq!(real(xff, &["1.2.3.4"], false, "192.0.2.1:7"), "192.0.2.1:7");
        assert_eq!(real("x-real-ip", &["5.6.7.8"], false, p), "5.6.7.8:0");
        assert_eq!(real("x-real-ip", &["5.6.7.8, 1.1.1.1"], false, p), p);
    }
}
