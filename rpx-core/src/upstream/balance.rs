//! Choosing a server within one tier (primaries or backups) of a group.
//!
//! Every method reads per-server atomics only; nothing is locked per
//! request. Each method, like nginx's, falls back to round robin when its
//! own choice keeps landing on servers that are out (20 tries).

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::hash::{hash64, random_below};
use super::peer::Peer;
use super::ring::Ring;
use crate::vars::Template;

/// How a group spreads requests.
#[derive(Debug, Clone)]
pub enum Method {
    /// nginx's smooth weighted round robin (the default).
    RoundRobin,
    /// `least_conn`: fewest active requests per unit of weight, round robin
    /// among equals.
    LeastConn,
    /// `ip_hash`: the client address (first three octets of IPv4, the whole
    /// IPv6 address) picks the server.
    IpHash,
    /// `hash KEY`: the rendered key picks the server by weight.
    Hash(Template),
    /// `hash KEY consistent`: a ketama ring.
    Consistent(Template),
    /// `random`: weighted random.
    Random,
    /// `random two [least_conn]`: the less loaded of two random servers.
    RandomTwo,
}

/// What a pick may look at of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickInput<'a> {
    /// The client's address, for `ip_hash`.
    pub client_ip: Option<IpAddr>,
    /// The rendered `hash` key.
    pub key: Option<&'a str>,
}

/// How many times hashing methods re-hash before falling back to round
/// robin, as nginx.
const REHASHES: u32 = 20;

/// Servers of one tier and what the methods precompute for them.
#[derive(Debug)]
pub(crate) struct Tier {
    pub(crate) peers: Box<[Arc<Peer>]>,
    /// Index of the tier's first server in the group (for "tried" sets).
    pub(crate) base: usize,
    /// One period of smooth weighted round robin (weights divided by their
    /// gcd): the order nginx's algorithm produces, computed once so that a
    /// pick is one `fetch_add` instead of a locked pass over the weights.
    sequence: Box<[u32]>,
    next: AtomicUsize,
    /// Running sums of weights, for weighted hashing and random.
    cumulative: Box<[u64]>,
    ring: Option<Ring>,
}

/// Whether index `i` of the group was tried already, and whether a peer is
/// usable now: supplied by the group.
pub(crate) trait Eligible {
    fn ok(&self, group_index: usize, peer: &Peer) -> bool;
}

impl Tier {
    pub(crate) fn new(peers: Vec<Arc<Peer>>, base: usize, consistent: bool) -> Tier {
        let weights: Vec<u32> = peers.iter().map(|p| p.weight).collect();
        let cumulative = weights
            .iter()
            .scan(0u64, |s, &w| {
                *s += u64::from(w);
                Some(*s)
            })
            .collect();
        let ring = consistent.then(|| {
            let names: Vec<&str> = peers.iter().map(|p| p.authority.as_str()).collect();
            Ring::new(&names, &weights)
        });
        Tier {
            sequence: smooth_sequence(&weights).into(),
            next: AtomicUsize::new(0),
            cumulative,
            ring,
            peers: peers.into(),
            base,
        }
    }

    fn total_weight(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The server owning point `w` of `0..total_weight`.
    fn by_weight(&self, w: u64) -> usize {
        self.cumulative.partition_point(|&c| c <= w)
    }

    fn eligible(&self, i: usize, e: &impl Eligible) -> bool {
        e.ok(self.base + i, &self.peers[i])
    }

    /// A server of this tier for `method`, or `None` when none is eligible.
    pub(crate) fn pick(
        &self,
        method: &Method,
        input: &PickInput<'_>,
        e: &impl Eligible,
    ) -> Option<usize> {
        if self.peers.is_empty() {
            return None;
        }
        let found = match method {
            Method::RoundRobin => None,
            Method::LeastConn => return self.least_conn(e),
            Method::IpHash => input.client_ip.and_then(|ip| self.ip_hash(ip, e)),
            Method::Hash(_) => input.key.and_then(|k| self.hash(k, e)),
            Method::Consistent(_) => input.key.and_then(|k| self.consistent(k, e)),
            Method::Random => self.random(e),
            Method::RandomTwo => self.random_two(e),
        };
        found.or_else(|| self.round_robin(e))
    }

    fn round_robin(&self, e: &impl Eligible) -> Option<usize> {
        let n = self.sequence.len();
        // As many steps as servers usually meet every server once; a scan
        // catches the rest (many servers out, heavy weights).
        for _ in 0..self.peers.len().min(n) {
            let i = self.sequence[self.next.fetch_add(1, Ordering::Relaxed) % n] as usize;
            if self.eligible(i, e) {
                return Some(i);
            }
        }
        let start = self.next.load(Ordering::Relaxed);
        (0..self.peers.len())
            .map(|k| (start + k) % self.peers.len())
            .find(|&i| self.eligible(i, e))
    }

    fn least_conn(&self, e: &impl Eligible) -> Option<usize> {
        let n = self.peers.len();
        // A rotating start spreads ties round robin.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u64, u64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !self.eligible(i, e) {
                continue;
            }
            let (a, w) = (
                u64::from(self.peers[i].active()),
                u64::from(self.peers[i].weight),
            );
            // a/w < best_a/best_w without division.
            if best.is_none_or(|(_, ba, bw)| a * bw < ba * w) {
                best = Some((i, a, w));
            }
        }
        best.map(|b| b.0)
    }

    fn ip_hash(&self, ip: IpAddr, e: &impl Eligible) -> Option<usize> {
        let v4;
        let v6;
        let bytes: &[u8] = match ip {
            IpAddr::V4(a) => {
                v4 = a.octets();
                &v4[..3]
            }
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a) => {
                    v4 = a.octets();
                    &v4[..3]
                }
                None => {
                    v6 = a.octets();
                    &v6
                }
            },
        };
        // nginx's ip_hash, step for step, so a client lands where it would.
        let mut hash: u64 = 89;
        for _ in 0..REHASHES {
            for &b in bytes {
                hash = (hash * 113 + u64::from(b)) % 6271;
            }
            let i = self.by_weight(hash % self.total_weight());
            if self.eligible(i, e) {
                return Some(i);
            }
        }
        None
    }

    fn hash(&self, key: &str, e: &impl Eligible) -> Option<usize> {
        for r in 0..REHASHES {
            let h = hash64(&[key.as_bytes(), &r.to_le_bytes()]);
            let i = self.by_weight(h % self.total_weight());
            if self.eligible(i, e) {
                return Some(i);
            }
        }
        None
    }

    fn consistent(&self, key: &str, e: &impl Eligible) -> Option<usize> {
        let ring = self.ring.as_ref()?;
        let mut walk = ring.walk(hash64(&[key.as_bytes()]));
        walk.find(|&i| self.eligible(i, e))
    }

    fn random_one(&self) -> usize {
        self.by_weight(random_below(self.total_weight()))
    }

    fn random(&self, e: &impl Eligible) -> Option<usize> {
        (0..REHASHES)
            .map(|_| self.random_one())
            .find(|&i| self.eligible(i, e))
    }

    fn random_two(&self, e: &impl Eligible) -> Option<usize> {
        for _ in 0..REHASHES {
            let (a, b) = (self.random_one(), self.random_one());
            match (self.eligible(a, e), self.eligible(b, e)) {
                (true, true) => {
                    let load = |i: usize| {
                        (
                            u64::from(self.peers[i].active()),
                            u64::from(self.peers[i].weight),
                        )
                    };
                    let ((aa, aw), (ba, bw)) = (load(a), load(b));
                    return Some(if ba * aw < aa * bw { b } else { a });
                }
                (true, false) => return Some(a),
                (false, true) => return Some(b),
                (false, false) => {}
            }
        }
        None
    }
}

/// One period of nginx's smooth weighted round robin over `weights`
/// (divided by their gcd): each step adds every weight to its server's
/// current value, picks the largest (the first on ties) and takes the
/// total off it. Weights {5,1,1} give a,a,b,a,c,a,a.
fn smooth_sequence(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let w: Vec<i64> = weights.iter().map(|&x| i64::from(x / g)).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::ServerSpec;

    struct All;
    impl Eligible for All {
        fn ok(&self, _: usize, p: &Peer) -> bool {
            p.usable(1, false)
        }
    }

    struct Not(usize);
    impl Eligible for Not {
        fn ok(&self, i: usize, _: &Peer) -> bool {
            i != self.0
        }
    }

    fn tier(weights: &[u32], consistent: bool) -> Tier {
        let peers = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let a = format!("10.0.0.{i}:80");
                Arc::new(Peer::new(
                    &ServerSpec::new(&a).weight(w),
                    a.parse().unwrap(),
                ))
            })
            .collect();
        Tier::new(peers, 0, consistent)
    }

    #[test]
    fn smooth_weighted_round_robin_is_nginx_order() {
        assert_eq!(smooth_sequence(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_sequence(&[2, 2]), [0, 1]);
        let t = tier(&[5, 1, 1], false);
        let picks: Vec<_> = (0..7)
            .map(|_| {
                t.pick(&Method::RoundRobin, &PickInput::default(), &All)
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
        // A server that is out is stepped over.
        for _ in 0..20 {
            assert_ne!(
                t.pick(&Method::RoundRobin, &PickInput::default(), &Not(0)),
                Some(0)
            );
        }
    }

    #[test]
    fn least_conn_weighs_active_requests() {
        let t = tier(&[1, 2], false);
        t.peers[0].acquire(1);
        t.peers[1].acquire(1);
        // 1/1 against 1/2: the heavier server.
        assert_eq!(
            t.pick(&Method::LeastConn, &PickInput::default(), &All),
            Some(1)
        );
        t.peers[1].acquire(1);
        t.peers[1].acquire(1);
        assert_eq!(
            t.pick(&Method::LeastConn, &PickInput::default(), &All),
            Some(0)
        );
    }

    #[test]
    fn ip_hash_uses_three_octets_and_rehashes_around_failures() {
        let t = tier(&[1, 1, 1], false);
        let at = |ip: &str, e: &dyn Fn(usize) -> bool| {
            struct F<'a>(&'a dyn Fn(usize) -> bool);
            impl Eligible for F<'_> {
                fn ok(&self, i: usize, _: &Peer) -> bool {
                    (self.0)(i)
                }
            }
            let input = PickInput {
                client_ip: Some(ip.parse().unwrap()),
                key: None,
            };
            t.pick(&Method::IpHash, &input, &F(e)).unwrap()
        };
        let a = at("192.168.7.1", &|_| true);
        assert_eq!(a, at("192.168.7.200", &|_| true), "same /24, same server");
        let other = at("192.168.7.1", &|i| i != a);
        assert_ne!(other, a);
        assert_eq!(
            other,
            at("192.168.7.9", &|i| i != a),
            "and the same fallback"
        );
    }

    #[test]
    fn hash_and_random_follow_weights() {
        let t = tier(&[3, 1], false);
        let (mut hashed, mut random) = ([0u32; 2], [0u32; 2]);
        let m = Method::Hash(Template::parse("$request_uri").unwrap());
        for k in 0..4000 {
            let key = format!("/k{k}");
            let input = PickInput {
                client_ip: None,
                key: Some(&key),
            };
            hashed[t.pick(&m, &input, &All).unwrap()] += 1;
            random[t.pick(&Method::Random, &input, &All).unwrap()] += 1;
        }
        for c in [hashed, random] {
            assert!((2700..3300).contains(&c[0]), "{c:?}");
        }
        let key = "/stable";
        let input = PickInput {
            client_ip: None,
            key: Some(key),
        };
        assert_eq!(t.pick(&m, &input, &All), t.pick(&m, &input, &All));
    }

    #[test]
    fn random_two_prefers_the_less_loaded() {
        let t = tier(&[1, 1], false);
        for _ in 0..5 {
            t.peers[0].acquire(1);
        }
        let picks = (0..200)
            .filter(|_| t.pick(&Method::RandomTwo, &PickInput::default(), &All) == Some(1))
            .count();
        // Only a draw of the same server twice picks the loaded one.
        assert!(picks > 120, "{picks}");
    }

    #[test]
    fn consistent_ring_skips_servers_out() {
        let t = tier(&[1, 1, 1], true);
        let m = Method::Consistent(Template::parse("$request_uri").unwrap());
        let input = PickInput {
            client_ip: None,
            key: Some("/x"),
        };
        let a = t.pick(&m, &input, &All).unwrap();
        let b = t.pick(&m, &input, &Not(a)).unwrap();
        assert_ne!(a, b);
    }
}
