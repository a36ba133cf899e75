//! A fast keyed hasher for the stack's small per-frame tables (neighbour
//! table, path MTU cache): one multiply per word, FxHash-style, where
//! std's SipHash costs tens of nanoseconds per lookup.
//!
//! Not a cryptographic hash: tables whose keys an attacker chooses freely
//! and in bulk (the TCP connection table, listener SYN queues) keep
//! SipHash (`tcp::SipBuild`). The tables using this one are bounded and
//! their keys are neighbours and destinations; the seed, drawn from the
//! stack's random generator where one is at hand, keeps collisions from
//! being precomputed.

use core::hash::{BuildHasher, Hasher};

/// Odd constant from rustc-hash (FxHash v2).
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// A well-mixed seed from any `u64` (splitmix64's finaliser), to derive a
/// table's seed from another secret without drawing from a generator.
pub fn mix_seed(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Builds [`FastHasher`]s from a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastBuild(pub u64);

impl Default for FastBuild {
    fn default() -> FastBuild {
        FastBuild(0x243f_6a88_85a3_08d3)
    }
}

impl BuildHasher for FastBuild {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

/// The hasher: `h = (h + word) * K`, and a folded multiply at the end so
/// that the high bits (hashbrown's tag) and the low bits (its bucket)
/// both depend on every input bit.
#[derive(Clone, Copy, Debug)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = self.0.wrapping_add(w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // A folded multiply (foldhash's): every input bit reaches both
        // ends of the result.
        let m = u128::from(self.0) * u128::from(0x2d35_8dcc_aa6c_78a5u64);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn spreads_and_depends_on_seed() {
        let a = FastBuild(1).hash_one([192u8, 0, 2, 1]);
        let b = FastBuild(2).hash_one([192u8, 0, 2, 1]);
        let c = FastBuild(1).hash_one([192u8, 0, 2, 2]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        // Neighbouring addresses land in different buckets and tags.
        let mut tags = std::collections::HashSet::new();
        let mut low = std::collections::HashSet::new();
        for i in 0..=255u8 {
            let h = FastBuild::default().hash_one([10u8, 0, 0, i]);
            tags.insert(h >> 57);
            low.insert(h & 0xff);
        }
        assert!(tags.len() > 64, "{}", tags.len());
        assert!(low.len() > 128, "{}", low.len());
    }

    #[test]
    fn works_as_a_map() {
        let mut m: HashMap<[u8; 16], u32, FastBuild> = HashMap::with_hasher(FastBuild(7));
        for i in 0..1000u32 {
            let mut k = [0u8; 16];
            k[12..].copy_from_slice(&i.to_be_bytes());
            m.insert(k, i);
        }
        for i in 0..1000u32 {
            let mut k = [0u8; 16];
            k[12..].copy_from_slice(&i.to_be_bytes());
            assert_eq!(m.get(&k), Some(&i));
        }
    }
}
