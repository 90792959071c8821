//! Copies of HTTP/1 message heads, carved one after another from one buffer
//! per connection.
//!
//! A parsed head's URI and header values are slices of a copy of its bytes.
//! A copy of its own costs two allocations: the bytes, and the shared
//! reference count that the first slice makes. Carved from the
//! connection's buffer, a copy shares that buffer's count, and once the
//! heads in it are all dropped (on a keep-alive connection, by the time the
//! next head comes) `reserve` takes the space back: no allocation per head.
//! A head still alive when the space runs out makes a new buffer, which
//! costs what a copy of its own did.
//!
//! The header map of a head done with is kept for the next head to parse
//! into, which saves that head's map its two allocations: on the client
//! side the map of the response just written serves the next request, and
//! on an upstream connection the map of the request just sent serves the
//! next response. The upstream request head itself is written here too
//! ([`HeadCopies::write`]).

use bytes::{Bytes, BytesMut};
use http::HeaderMap;

/// A map grown past this many headers is not kept: one large head does
/// not hold its memory for the connection's life.
const MAX_KEPT: usize = 128;

/// The head copies of one connection.
#[derive(Debug, Default)]
pub(crate) struct HeadCopies {
    buf: BytesMut,
    /// A map done with, emptied, for the next head.
    spare: Option<HeaderMap>,
}

impl HeadCopies {
    /// A copy of `head` that its slices share.
    pub(crate) fn copy(&mut self, head: &[u8]) -> Bytes {
        self.write(head.len(), |buf| buf.extend_from_slice(head))
    }

    /// A head of `size` bytes that `write` appends, carved like a copy
    /// (an upstream request head: no allocation once the last one is sent).
    pub(crate) fn write(&mut self, size: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
        self.buf.reserve(size);
        write(&mut self.buf);
        self.buf.split().freeze()
    }

    /// An empty map with room for `n` headers: the kept one if there is
    /// one, else a new one.
    pub(crate) fn map(&mut self, n: usize) -> HeaderMap {
        match self.spare.take() {
            Some(mut map) => {
                map.reserve(n);
                map
            }
            None => HeaderMap::with_capacity(n),
        }
    }

    /// Keeps `map`, emptied, for the next head's [`map`](Self::map).
    pub(crate) fn keep(&mut self, mut map: HeaderMap) {
        if map.capacity() <= MAX_KEPT {
            map.clear();
            self.spare = Some(map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_their_heads_and_outlive_the_space_they_came_from() {
        let mut copies = HeadCopies::default();
        let first = copies.copy(b"GET / HTTP/1.1\r\n\r\n");
        let value = first.slice(4..5);
        let second = copies.copy(b"HTTP/1.1 200 OK\r\n\r\n");
        drop(first);
        // Space taken back while `value` (a slice of the first) lives
        // must not overwrite it.
        let mut kept = Vec::new();
        for i in 0..100u8 {
            kept.push(copies.copy(&[i; 64]));
        }
        assert_eq!(&value[..], b"/");
        assert_eq!(&second[..], b"HTTP/1.1 200 OK\r\n\r\n");
        for (i, k) in kept.iter().enumerate() {
            assert_eq!(&k[..], &[i as u8; 64][..]);
        }
    }

    #[test]
    fn a_kept_map_comes_back_empty_with_its_room_and_a_huge_one_is_not_kept() {
        let mut copies = HeadCopies::default();
        let mut map = copies.map(8);
        map.insert(http::header::HOST, http::HeaderValue::from_static("a"));
        map.append(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
        let room = map.capacity();
        copies.keep(map);
        let again = copies.map(4);
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(again.capacity(), room, "the same map, its room kept");
        let mut huge = HeaderMap::with_capacity(MAX_KEPT + 1);
        huge.insert(http::header::HOST, http::HeaderValue::from_static("a"));
        copies.keep(huge);
        assert!(copies.spare.is_none(), "a map past MAX_KEPT is dropped");
        assert!(copies.map(1).capacity() < MAX_KEPT);
    }

    #[test]
    fn a_buffer_whose_heads_are_gone_is_used_again() {
        let mut copies = HeadCopies::default();
        let first = copies.copy(&[1; 300]);
        let at = first.as_ptr();
        drop(first);
        for _ in 0..10 {
            let next = copies.copy(&[2; 300]);
            assert_eq!(next.as_ptr(), at, "the same space, no new buffer");
            assert_eq!(&next[..], &[2; 300][..]);
        }
    }
}
