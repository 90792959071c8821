//! Small, stable hashes and a per-thread random source: balancing must give
//! the same answer for the same key in every process and release, which
//! std's randomly seeded `DefaultHasher` does not promise.

use std::cell::Cell;

/// FNV-1a over `parts`, finished with a 64-bit mixer so that nearby keys
/// spread over the whole range.
pub(crate) fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separates parts: ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A uniformly distributed number below `n` (n > 0), from a xorshift
/// generator per thread seeded by std's random hasher keys: no lock, no
/// dependency, and good enough to spread requests.
pub(crate) fn random_below(n: u64) -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    let x = STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    });
    // Multiply-shift: unbiased enough for balancing, no division.
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(hash64(&[b"abc"]), hash64(&[b"abc"]));
        assert_ne!(hash64(&[b"ab", b"c"]), hash64(&[b"a", b"bc"]));
        let mut buckets = [0u32; 4];
        for i in 0..4000u32 {
            buckets[(hash64(&[&i.to_le_bytes()]) % 4) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (800..1200).contains(&b)),
            "{buckets:?}"
        );
        for _ in 0..1000 {
            assert!(random_below(3) < 3);
        }
    }
}
