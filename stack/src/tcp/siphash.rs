//! SipHash-1-3 (Aumasson and Bernstein), the keyed hash behind ISNs
//! (RFC 6528), SYN cookies, ephemeral port offsets (RFC 6056) and the
//! connection table (so that a peer choosing 4-tuples cannot pile them
//! into one bucket). Linux uses SipHash for the first three as well.

use core::hash::{BuildHasher, Hasher};

/// A 128-bit key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SipKey(pub u64, pub u64);

#[derive(Clone, Debug)]
pub struct SipHasher13 {
    v: [u64; 4],
    tail: u64,
    ntail: usize,
    length: usize,
}

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

impl SipHasher13 {
    pub fn new(key: SipKey) -> SipHasher13 {
        SipHasher13 {
            v: [
                key.0 ^ 0x736f_6d65_7073_6575,
                key.1 ^ 0x646f_7261_6e64_6f6d,
                key.0 ^ 0x6c79_6765_6e65_7261,
                key.1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    #[inline(always)]
    fn block(&mut self, m: u64) {
        self.v[3] ^= m;
        round(&mut self.v);
        self.v[0] ^= m;
    }
}

impl Hasher for SipHasher13 {
    fn write(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len();
        if self.ntail != 0 {
            while self.ntail < 8 {
                let Some((&b, rest)) = bytes.split_first() else {
                    return;
                };
                self.tail |= u64::from(b) << (8 * self.ntail);
                self.ntail += 1;
                bytes = rest;
            }
            let t = self.tail;
            self.block(t);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.block(m);
        }
        for (i, &b) in chunks.remainder().iter().enumerate() {
            self.tail |= u64::from(b) << (8 * i);
        }
        self.ntail = chunks.remainder().len();
    }

    fn finish(&self) -> u64 {
        let mut v = self.v;
        let b = ((self.length as u64 & 0xff) << 56) | self.tail;
        v[3] ^= b;
        round(&mut v);
        v[0] ^= b;
        v[2] ^= 0xff;
        round(&mut v);
        round(&mut v);
        round(&mut v);
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

/// Hash of `data` under `key`.
pub fn siphash13(key: SipKey, data: &[u8]) -> u64 {
    let mut h = SipHasher13::new(key);
    h.write(data);
    h.finish()
}

/// A `BuildHasher` with a secret key, for `HashMap`s keyed by what peers
/// choose.
#[derive(Clone, Copy, Debug, Default)]
pub struct SipBuild(pub SipKey);

impl BuildHasher for SipBuild {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// std's `DefaultHasher::new()` is SipHash-1-3 with a zero key; it
    /// serves as the reference implementation.
    fn reference(data: &[u8]) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(data);
        h.finish()
    }

    #[test]
    fn matches_std() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8).collect();
            assert_eq!(siphash13(SipKey(0, 0), &data), reference(&data), "len {n}");
        }
        assert_ne!(siphash13(SipKey(1, 0), b"x"), siphash13(SipKey(0, 0), b"x"));
    }

    proptest! {
        #[test]
        fn streaming_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..64), cut1 in 0usize..64, cut2 in 0usize..64, k0: u64, k1: u64) {
            let key = SipKey(k0, k1);
            let a = cut1.min(data.len());
            let b = cut2.clamp(a, data.len());
            let mut h = SipHasher13::new(key);
            h.write(&data[..a]);
            h.write(&data[a..b]);
            h.write(&data[b..]);
            prop_assert_eq!(h.finish(), siphash13(key, &data));
            if key == SipKey(0, 0) {
                prop_assert_eq!(h.finish(), reference(&data));
            }
        }
    }
}
