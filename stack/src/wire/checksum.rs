//! The internet checksum (RFC 1071), the pseudo-headers that TCP, UDP and
//! ICMPv6 prepend to it, and incremental update (RFC 1624).
//!
//! Every byte of every packet goes through here, so it is written for
//! speed: words are summed in the machine's own byte order, eight bytes at
//! a time, as two 32-bit halves into a 64-bit accumulator that cannot
//! overflow for any packet size, and folded once at the end. The sum is
//! byte-order independent (RFC 1071 2(B)), so only the final 16 bits are
//! swapped. The loop has no carries to chain, which lets the compiler
//! vectorise it.

use crate::ip::{IpAddress, IpProto};

/// A running one's-complement sum. Feed it the pseudo-header and the
/// segment in any number of pieces (odd lengths included), then take
/// [`Checksum::checksum`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Native-order sum, kept under 2^34 between calls.
    acc: u64,
    /// The first byte of a 16-bit word whose second byte has not arrived
    /// yet (a piece of odd length).
    pending: Option<u8>,
}

impl Checksum {
    pub const fn new() -> Checksum {
        Checksum {
            acc: 0,
            pending: None,
        }
    }

    pub fn add_bytes(&mut self, mut bytes: &[u8]) -> &mut Checksum {
        if let Some(hi) = self.pending {
            let Some((&lo, rest)) = bytes.split_first() else {
                return self;
            };
            self.acc += u64::from(u16::from_ne_bytes([hi, lo]));
            self.pending = None;
            bytes = rest;
        }
        let mut acc = self.acc;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            acc += (w >> 32) + (w & 0xffff_ffff);
        }
        let mut words = chunks.remainder().chunks_exact(2);
        for w in &mut words {
            acc += u64::from(u16::from_ne_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            self.pending = Some(*last);
        }
        self.acc = fold32(acc);
        self
    }

    /// Adds a big-endian 16-bit field (a port, a length).
    #[inline]
    pub fn add_u16(&mut self, v: u16) -> &mut Checksum {
        if self.pending.is_some() {
            return self.add_bytes(&v.to_be_bytes());
        }
        self.acc += words(&v.to_be_bytes());
        self
    }

    /// Adds a big-endian 32-bit field.
    #[inline]
    pub fn add_u32(&mut self, v: u32) -> &mut Checksum {
        if self.pending.is_some() {
            return self.add_bytes(&v.to_be_bytes());
        }
        self.acc += words(&v.to_be_bytes());
        self
    }

    /// The folded sum, not complemented: what goes in the checksum field
    /// when the device is asked to finish the job (partial checksum
    /// offload puts the pseudo-header sum there).
    pub fn sum16(&self) -> u16 {
        let mut acc = self.acc;
        if let Some(hi) = self.pending {
            acc += u64::from(u16::from_ne_bytes([hi, 0]));
        }
        let mut s = fold32(acc);
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        u16::from_be_bytes((s as u16).to_ne_bytes())
    }

    /// The value to store in a checksum field. Summing a packet with a
    /// correct checksum in place gives 0.
    pub fn checksum(&self) -> u16 {
        !self.sum16()
    }
}

fn fold32(acc: u64) -> u64 {
    let s = (acc & 0xffff_ffff) + (acc >> 32);
    (s & 0xffff_ffff) + (s >> 32)
}

/// The checksum of `bytes` alone (IPv4 header, ICMPv4 message).
pub fn checksum(bytes: &[u8]) -> u16 {
    // An IPv4 header without options, on every packet both ways: five
    // words, no loop.
    if let Ok(h) = <&[u8; 20]>::try_from(bytes) {
        let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        let acc = w(0) + w(4) + w(8) + w(12) + w(16);
        return Checksum { acc, pending: None }.checksum();
    }
    Checksum::new().add_bytes(bytes).checksum()
}

/// The pseudo-header sum (RFC 9293 3.1 and RFC 768 for IPv4, RFC 8200 8.1
/// for IPv6). The two layouts differ but sum to the same value: the
/// addresses, the upper-layer length and the protocol number. `len` is the
/// upper-layer length: header plus payload.
pub fn pseudo_header<A: IpAddress>(src: &A, dst: &A, proto: IpProto, len: u32) -> Checksum {
    // Summed inline (once per segment, both ways): a few words, no calls.
    let l = len.to_be_bytes();
    let acc = words(src.bytes())
        + words(dst.bytes())
        + words(&l)
        + u64::from(u16::from_ne_bytes([0, proto.0]));
    Checksum { acc, pending: None }
}

/// The native-order sum of a short even-length run of bytes.
#[inline]
fn words(b: &[u8]) -> u64 {
    b.chunks_exact(2)
        .map(|w| u64::from(u16::from_ne_bytes([w[0], w[1]])))
        .sum()
}

/// RFC 1624 eqn. 3: the new checksum when one 16-bit word of the covered
/// data changes from `old` to `new` (a TTL decrement, a rewritten port),
/// without touching the rest of the packet.
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold16(s)
}

/// [`update_u16`] for a changed run of bytes starting at an even offset
/// (an address). `old` and `new` must have the same even length; extra
/// bytes of the longer one are ignored.
pub fn update(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut s = u32::from(!csum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        s += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        s += u32::from(u16::from_be_bytes([n[0], n[1]]));
        s = u32::from(fold16(s));
    }
    !fold16(s)
}

fn fold16(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    /// RFC 1071 read literally: big-endian words, 32-bit accumulator.
    fn naive(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for c in bytes.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 3: sum of 0001 f203 f4f5 f6f7 is ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        let mut c = Checksum::new();
        c.add_bytes(&data);
        assert_eq!(c.sum16(), 0xddf2);
        assert_eq!(c.checksum(), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A captured header with checksum b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        let mut with = h;
        with[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&with), 0);
    }

    #[test]
    fn empty_and_zero() {
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0; 7]), 0xffff);
        assert_eq!(checksum(&[0xff; 64]), 0x0000);
    }

    #[test]
    fn pseudo_header_layouts_agree() {
        // Sum the literal RFC layouts and compare.
        let s4 = Ipv4Addr::new(192, 0, 2, 1);
        let d4 = Ipv4Addr::new(192, 0, 2, 2);
        let mut lit = Vec::new();
        lit.extend_from_slice(&s4.octets());
        lit.extend_from_slice(&d4.octets());
        lit.extend_from_slice(&[0, 6, 0x01, 0x23]);
        assert_eq!(
            pseudo_header(&s4, &d4, IpProto::TCP, 0x123).checksum(),
            naive(&lit)
        );

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::abcd".parse().unwrap();
        let mut lit = Vec::new();
        lit.extend_from_slice(&s6.octets());
        lit.extend_from_slice(&d6.octets());
        lit.extend_from_slice(&0x0001_2345u32.to_be_bytes());
        lit.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(
            pseudo_header(&s6, &d6, IpProto::ICMPV6, 0x1_2345).checksum(),
            naive(&lit)
        );
    }

    proptest! {
        #[test]
        fn matches_naive(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(checksum(&data), naive(&data));
        }

        #[test]
        fn ipv4_header_path(data in proptest::array::uniform20(any::<u8>())) {
            prop_assert_eq!(checksum(&data), naive(&data));
        }

        #[test]
        fn pseudo_header_matches_bytes(
            s in any::<[u8; 4]>(),
            d in any::<[u8; 4]>(),
            len in any::<u32>(),
            proto in any::<u8>(),
        ) {
            let mut lit = Vec::new();
            lit.extend_from_slice(&s);
            lit.extend_from_slice(&d);
            lit.extend_from_slice(&len.to_be_bytes());
            lit.extend_from_slice(&[0, proto]);
            let c = pseudo_header(&Ipv4Addr::from(s), &Ipv4Addr::from(d), IpProto(proto), len);
            prop_assert_eq!(c.checksum(), naive(&lit));
            let mut c2 = c;
            c2.add_u16(0x1234).add_u32(0xdead_beef);
            lit.extend_from_slice(&[0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]);
            prop_assert_eq!(c2.checksum(), naive(&lit));
        }

        #[test]
        fn pieces_of_any_length(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut c = Checksum::new();
            let mut at = 0;
            for cut in cuts {
                c.add_bytes(&data[at..cut]);
                at = cut;
            }
            c.add_bytes(&data[at..]);
            prop_assert_eq!(c.checksum(), naive(&data));
        }

        #[test]
        fn incremental_update(
            mut data in proptest::collection::vec(any::<u8>(), 2..200),
            word in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            if data.len() % 2 == 1 {
                data.pop();
            }
            let i = word.index(data.len() / 2) * 2;
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            let before = checksum(&data);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let after = checksum(&data);
            let inc = update_u16(before, old, new);
            // RFC 1624 4: equal, or the other zero when the data sums to zero.
            prop_assert!(inc == after || (inc, after) == (0, 0xffff) || (inc, after) == (0xffff, 0));
            let inc2 = update(before, &old.to_be_bytes(), &new.to_be_bytes());
            prop_assert_eq!(inc, inc2);
        }
    }

    #[test]
    fn update_ttl_decrement() {
        let mut h = [
            0x45u8, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let c = update_u16(0xb861, old, new);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }
}
