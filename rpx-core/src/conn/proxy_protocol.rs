//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1
//! and 2) that a load balancer sends ahead of a connection's own bytes:
//! where the client connected from, and to. Pure functions over bytes,
//! never panicking; the server reads the header off the socket with them
//! (`listen … proxy_protocol`).
//!
//! ```
//! use rpx_core::conn::proxy_protocol::{parse, Parsed};
//!
//! let bytes = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET / HTTP/1.1\r\n";
//! let Ok(Parsed::Complete(header)) = parse(bytes) else { panic!() };
//! assert_eq!(header.len, 44); // the connection's data starts after it
//! assert_eq!(header.addrs.unwrap().source, "203.0.113.7:51000".parse().unwrap());
//! assert_eq!(parse(b"PROXY TCP4 203.0"), Ok(Parsed::Incomplete));
//! assert!(parse(b"GET / HTTP/1.1\r\n").is_err());
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest version 1 header, CRLF included (the spec's bound).
pub const V1_MAX: usize = 107;

/// The longest header taken: version 2's 16 fixed bytes and up to 4080 of
/// addresses and TLVs, as nginx's bound (4096). Longer ones are refused
/// before their body is read.
pub const MAX_HEADER: usize = 4096;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version and command, family and transport, length.
const V2_FIXED: usize = 16;

/// The addresses a header gives for the client's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxiedAddrs {
    /// Where the client connected from (`$proxy_protocol_addr`,
    /// `$proxy_protocol_port`).
    pub source: SocketAddr,
    /// Where it connected to (`$proxy_protocol_server_addr`,
    /// `$proxy_protocol_server_port`).
    pub destination: SocketAddr,
}

/// A complete, valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// The client's addresses; `None` when the header carries none rpx
    /// uses: version 1 `UNKNOWN`, version 2 `LOCAL` (a health check by the
    /// proxy itself), and version 2 families other than TCP over IPv4 or
    /// IPv6 (`UNSPEC`, UDP, UNIX). The connection's own addresses stand
    /// then, as in nginx.
    pub addrs: Option<ProxiedAddrs>,
    /// Its length in bytes: the connection's data starts after it.
    pub len: usize,
}

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header (the bytes may go on past it).
    Complete(ProxyHeader),
    /// A valid beginning: more bytes are needed. Never said of a buffer of
    /// [`MAX_HEADER`] bytes or more.
    Incomplete,
}

/// Why bytes are no PROXY protocol header. A connection that sends one is
/// closed without an answer, as nginx does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Neither `PROXY ` nor version 2's signature.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// No CRLF within 107 bytes.
    #[error("PROXY protocol v1 header longer than 107 bytes")]
    V1TooLong,
    /// Not `TCP4`, `TCP6` or `UNKNOWN`, wrong fields, bytes outside
    /// printable ASCII, or a CR without LF.
    #[error("malformed PROXY protocol v1 header")]
    V1Syntax,
    /// An address that is not one of the protocol's family.
    #[error("invalid address in PROXY protocol v1 header")]
    V1Address,
    /// A port that is not a decimal number up to 65535.
    #[error("invalid port in PROXY protocol v1 header")]
    V1Port,
    /// A version 2 header whose version nibble is not 2.
    #[error("PROXY protocol version {0} (not 2)")]
    V2Version(u8),
    /// Neither `LOCAL` (0) nor `PROXY` (1).
    #[error("PROXY protocol v2 command {0} (not LOCAL or PROXY)")]
    V2Command(u8),
    /// A family and transport byte the spec does not define.
    #[error("PROXY protocol v2 family and transport {0:#04x}")]
    V2Family(u8),
    /// Fewer address bytes than the family takes.
    #[error("PROXY protocol v2 header of {len} address bytes, the family takes {need}")]
    V2Short {
        /// The header's length field.
        len: usize,
        /// What the family's addresses take.
        need: usize,
    },
    /// Longer than [`MAX_HEADER`].
    #[error("PROXY protocol v2 header of {0} bytes (at most 4096 are taken)")]
    V2TooLong(usize),
}

/// Reads a PROXY protocol header at the start of `buf`: version 1 or 2,
/// told apart by the first byte. Bytes past the header are not looked at.
///
/// # Errors
/// As soon as the bytes cannot begin a valid header; a beginning of one is
/// [`Parsed::Incomplete`], never an error.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'P') => v1(buf),
        Some(b'\r') => v2(buf),
        Some(_) => Err(ProxyHeaderError::NotProxy),
    }
}

/// `PROXY TCP4|TCP6 src dst sport dport\r\n` or `PROXY UNKNOWN…\r\n`.
fn v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    use ProxyHeaderError::{NotProxy, V1Address, V1Port, V1Syntax, V1TooLong};
    let window = &buf[..buf.len().min(V1_MAX)];
    let start = window.len().min(V1_PREFIX.len());
    if window[..start] != V1_PREFIX[..start] {
        return Err(NotProxy);
    }
    let printable = |b: &u8| (0x20..0x7f).contains(b);
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if window.len() == V1_MAX {
            return Err(V1TooLong);
        }
        // What a header can begin with: printable ASCII, a CR only last.
        let body = window.strip_suffix(b"\r").unwrap_or(window);
        return if body.iter().all(printable) {
            Ok(Parsed::Incomplete)
        } else {
            Err(V1Syntax)
        };
    };
    let line = window[..lf].strip_suffix(b"\r").ok_or(V1Syntax)?;
    if line.len() < V1_PREFIX.len() || !line.iter().all(printable) {
        return Err(V1Syntax);
    }
    // Printable ASCII is UTF-8.
    let rest = std::str::from_utf8(&line[V1_PREFIX.len()..]).map_err(|_| V1Syntax)?;
    let complete = |addrs| {
        Ok(Parsed::Complete(ProxyHeader {
            version: 1,
            addrs,
            len: lf + 1,
        }))
    };
    // The spec: a receiver ignores what follows UNKNOWN up to the CRLF.
    if rest.starts_with("UNKNOWN") {
        return complete(None);
    }
    let mut fields = rest.split(' ');
    let (Some(proto), Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(V1Syntax);
    };
    let v4 = match proto {
        "TCP4" => true,
        "TCP6" => false,
        _ => return Err(V1Syntax),
    };
    let ip = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
        if v4 {
            text.parse::<Ipv4Addr>().map(IpAddr::V4)
        } else {
            text.parse::<Ipv6Addr>().map(IpAddr::V6)
        }
        .map_err(|_| V1Address)
    };
    let port = |text: &str| -> Result<u16, ProxyHeaderError> {
        if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(V1Port);
        }
        text.parse().map_err(|_| V1Port)
    };
    complete(Some(ProxiedAddrs {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        destination: SocketAddr::new(ip(dst)?, port(dport)?),
    }))
}

/// The binary header: signature, version and command, family and
/// transport, a length, then addresses and TLVs (skipped).
fn v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    use ProxyHeaderError::{NotProxy, V2Command, V2Family, V2Short, V2TooLong, V2Version};
    let start = buf.len().min(V2_SIGNATURE.len());
    if buf[..start] != V2_SIGNATURE[..start] {
        return Err(NotProxy);
    }
    let Some(fixed) = buf.get(..V2_FIXED) else {
        return Ok(Parsed::Incomplete);
    };
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if version != 2 {
        return Err(V2Version(version));
    }
    let local = match command {
        0 => true,
        1 => false,
        other => return Err(V2Command(other)),
    };
    let family = fixed[13];
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let total = V2_FIXED + len;
    if total > MAX_HEADER {
        return Err(V2TooLong(total));
    }
    // LOCAL: the spec has the receiver ignore the family and its block.
    let need = match family {
        _ if local => 0,
        0x11 => 12,
        0x21 => 36,
        // UNSPEC, UDP over IPv4 or IPv6, UNIX stream or datagram: no TCP
        // addresses to take; the connection's own stand.
        0x00 | 0x12 | 0x22 | 0x31 | 0x32 => 0,
        other => return Err(V2Family(other)),
    };
    if len < need {
        return Err(V2Short { len, need });
    }
    let Some(block) = buf.get(V2_FIXED..total) else {
        return Ok(Parsed::Incomplete);
    };
    let addrs = match (local, family) {
        (false, 0x11) => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[at],
                    block[at + 1],
                    block[at + 2],
                    block[at + 3],
                ))
            };
            Some(addrs(ip(0), ip(4), &block[8..12]))
        }
        (false, 0x21) => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Some(addrs(ip(0), ip(16), &block[32..36]))
        }
        _ => None,
    };
    // What follows the addresses is TLVs; rpx uses none of them.
    Ok(Parsed::Complete(ProxyHeader {
        version: 2,
        addrs,
        len: total,
    }))
}

/// Source and destination from their addresses and the four port bytes.
fn addrs(source: IpAddr, destination: IpAddr, ports: &[u8]) -> ProxiedAddrs {
    ProxiedAddrs {
        source: SocketAddr::new(source, u16::from_be_bytes([ports[0], ports[1]])),
        destination: SocketAddr::new(destination, u16::from_be_bytes([ports[2], ports[3]])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProxyHeaderError::*;

    fn complete(bytes: &[u8]) -> ProxyHeader {
        match parse(bytes) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    #[test]
    fn version_1() {
        let h = complete(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /");
        assert_eq!((h.version, h.len), (1, 45));
        let a = h.addrs.unwrap();
        assert_eq!(a.source, "192.0.2.1:56324".parse().unwrap());
        assert_eq!(a.destination, "198.51.100.2:443".parse().unwrap());
        let h = complete(b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n");
        assert_eq!(h.addrs.unwrap().source, "[2001:db8::1]:0".parse().unwrap());
        let h = complete(b"PROXY UNKNOWN\r\n");
        assert_eq!((h.addrs, h.len), (None, 15));
        let h = complete(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n\x16\x03\x01");
        assert_eq!((h.addrs, h.len), (None, 31));
    }

    #[test]
    fn version_1_refusals() {
        for (bytes, want) in [
            (&b"GET / HTTP/1.1\r\n"[..], NotProxy),
            (b"PROXY\r\n", NotProxy),
            (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", V1Syntax),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", V1Syntax),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", V1Syntax),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", V1Syntax),
            (b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", V1Syntax),
            (b"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", V1Address),
            (b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n", V1Address),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", V1Address),
            (b"PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n", V1Address),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", V1Port),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n", V1Port),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 \r\n", V1Port),
            (b"PROXY TCP4 1.2.3.4\x001.2.3.4 1 2\r\n", V1Syntax),
            (b"PROXY \x80", V1Syntax),
            (b"PROXY TCP4 1.2\r3", V1Syntax),
        ] {
            assert_eq!(
                parse(bytes),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 100]].concat();
        assert_eq!(parse(&long), Err(V1TooLong));
        // 107 bytes with the CRLF is the most there may be.
        let mut max = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 91]].concat();
        max.extend_from_slice(b"\r\n");
        assert_eq!(max.len(), V1_MAX);
        assert_eq!(complete(&max).len, V1_MAX);
    }

    #[test]
    fn version_2() {
        let block = [
            [192, 0, 2, 1, 198, 51, 100, 2].as_slice(),
            &56324u16.to_be_bytes(),
            &443u16.to_be_bytes(),
            // A TLV (type, length, value), skipped.
            &[0x04, 0, 3, 1, 2, 3],
        ]
        .concat();
        let mut bytes = v2(1, 0x11, &block);
        let h = complete(&bytes);
        assert_eq!((h.version, h.len), (2, 16 + 18));
        let a = h.addrs.unwrap();
        assert_eq!(a.source, "192.0.2.1:56324".parse().unwrap());
        assert_eq!(a.destination, "198.51.100.2:443".parse().unwrap());
        bytes.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(complete(&bytes).len, 34, "what follows is not read");

        let mut six = [0u8; 36];
        six[15] = 1;
        six[31] = 2;
        six[32..34].copy_from_slice(&8080u16.to_be_bytes());
        let a = complete(&v2(1, 0x21, &six)).addrs.unwrap();
        assert_eq!(a.source, "[::1]:8080".parse().unwrap());
        assert_eq!(a.destination, "[::2]:0".parse().unwrap());

        // LOCAL ignores the family, even an undefined one; UNSPEC, UDP and
        // UNIX carry nothing rpx takes.
        for (command, family, block) in [
            (0, 0x00, &[][..]),
            (0, 0x11, &block[..]),
            (0, 0xff, &[]),
            (1, 0x00, &[]),
            (1, 0x12, &block[..]),
            (1, 0x31, &[0; 216]),
        ] {
            let h = complete(&v2(command, family, block));
            assert_eq!((h.addrs, h.len), (None, 16 + block.len()));
        }
    }

    #[test]
    fn version_2_refusals() {
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert_eq!(parse(&wrong_version), Err(V2Version(1)));
        assert_eq!(parse(&v2(2, 0x11, &[0; 12])), Err(V2Command(2)));
        assert_eq!(parse(&v2(1, 0x13, &[0; 12])), Err(V2Family(0x13)));
        assert_eq!(
            parse(&v2(1, 0x21, &[0; 12])),
            Err(V2Short { len: 12, need: 36 })
        );
        // Refused from the fixed part alone: the body is never waited for.
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse(&huge), Err(V2TooLong(16 + 65535)));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Err(NotProxy));
        let at_most = v2(0, 0, &vec![0; MAX_HEADER - 16]);
        assert_eq!(complete(&at_most).len, MAX_HEADER);
    }

    #[test]
    fn every_beginning_is_incomplete() {
        let headers = [
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(1, 0x11, &[1; 20]),
            v2(0, 0x00, &[]),
        ];
        for h in &headers {
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Ok(Parsed::Incomplete), "{h:?} at {cut}");
            }
            assert_eq!(complete(h).len, h.len());
        }
    }
}
