//! The ketama-style ring of `hash KEY consistent`: each server owns many
//! points on a circle of `u32`s (in proportion to its weight), a key goes to
//! the first point at or after its own hash. Removing a server moves only
//! the keys its points owned, about 1/N of them.

use super::hash::hash64;

/// Points per unit of weight, as nginx (160).
const POINTS_PER_WEIGHT: u64 = 160;
/// Upper bound on the ring's size whatever the weights: 1 Mi points (8 MiB).
const MAX_POINTS: u64 = 1 << 20;

/// A sorted ring of (point, server index).
#[derive(Debug)]
pub(crate) struct Ring {
    points: Box<[(u32, u32)]>,
}

impl Ring {
    /// A ring over servers named `names[i]` with `weights[i]`. A server's
    /// points depend on its own name only, so the others keep theirs when
    /// one is removed.
    pub(crate) fn new(names: &[&str], weights: &[u32]) -> Ring {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let per_weight = POINTS_PER_WEIGHT.min((MAX_POINTS / total.max(1)).max(1));
        let mut points = Vec::with_capacity((total * per_weight) as usize);
        for (i, (name, &w)) in names.iter().zip(weights).enumerate() {
            for j in 0..u64::from(w) * per_weight {
                let h = hash64(&[name.as_bytes(), &j.to_le_bytes()]);
                points.push(((h >> 32) as u32, i as u32));
            }
        }
        points.sort_unstable();
        Ring {
            points: points.into(),
        }
    }

    /// Server indices in ring order starting at `hash`'s point, as many as
    /// there are points (callers stop at the first usable one).
    pub(crate) fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let h = (hash >> 32) as u32;
        let start = self.points.partition_point(|p| p.0 < h);
        let n = self.points.len();
        (0..n).map(move |k| self.points[(start + k) % n].1 as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_server_moves_about_one_nth_of_the_keys() {
        let names = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
        let full = Ring::new(&names, &[1; 4]);
        let less = Ring::new(&names[..3], &[1; 3]);
        let keys = 10_000u32;
        let mut moved = 0;
        for k in 0..keys {
            let h = hash64(&[format!("/item/{k}").as_bytes()]);
            let a = full.walk(h).next().unwrap();
            let b = less.walk(h).next().unwrap();
            if a != 3 {
                assert_eq!(a, b, "a key of a remaining server stays");
            } else {
                moved += 1;
            }
        }
        // About a quarter moved (those the removed server owned).
        assert!((1_800..3_200).contains(&moved), "{moved}");
    }
}
