//! The internet checksum (RFC 1071) for the device and offload path:
//! completing partial checksums and checksumming segments cut from GSO
//! frames.
//!
//! Sums are kept as 32-bit *partial sums*: ones'-complement sums of
//! big-endian 16-bit words that have not been folded to 16 bits yet. Add
//! them with [`add`], fold with [`fold`], and complement with [`finish`]
//! (or take both steps at once with [`checksum`]). Partial sums of pieces
//! combine into the sum of the whole as long as each piece starts at an
//! even offset of the whole; a piece that starts at an odd offset must be
//! byte-swapped first ([`swap`]).
//!
//! The bulk routine reads 8 bytes at a time and adds their two 32-bit
//! halves into 64-bit accumulators, which cannot carry out for any input
//! shorter than 16 GiB (longer inputs are summed in pieces), so the inner
//! loop has no carry chain and the compiler vectorises it. Byte order is
//! fixed once at the end: a ones'-complement sum of little-endian words is
//! the byte swap of the sum of the same words read big-endian (RFC 1071,
//! section 2(B)).

/// Add two partial sums (end-around carry).
#[inline]
pub const fn add(a: u32, b: u32) -> u32 {
    let (s, c) = a.overflowing_add(b);
    s.wrapping_add(c as u32)
}

/// Fold a partial sum to 16 bits (not complemented).
#[inline]
pub const fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The checksum field value for a partial sum: folded and complemented.
#[inline]
pub const fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// The partial sum of a piece that starts at an odd offset of the data
/// being checksummed, from its sum as computed by [`sum`].
#[inline]
pub const fn swap(sum: u32) -> u32 {
    fold(sum).swap_bytes() as u32
}

/// Fold a 64-bit accumulator of native-order words to 16 bits.
#[inline]
fn fold64(s: u64) -> u16 {
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    fold(s as u32)
}

#[inline]
fn word8(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_ne_bytes(w)
}

#[inline]
fn split(w: u64) -> u64 {
    (w & 0xffff_ffff) + (w >> 32)
}

/// Sum of `data` as native-order 16-bit words into a 64-bit accumulator.
/// `data` must be shorter than 16 GiB (each 8 bytes add less than 2^33).
#[inline]
fn sum_native(data: &[u8]) -> u64 {
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    let mut chunks = data.chunks_exact(32);
    for ch in &mut chunks {
        a += split(word8(&ch[0..8]));
        b += split(word8(&ch[8..16]));
        c += split(word8(&ch[16..24]));
        d += split(word8(&ch[24..32]));
    }
    let mut acc = (a & 0xffff_ffff) + (a >> 32) + (b & 0xffff_ffff) + (b >> 32);
    acc += (c & 0xffff_ffff) + (c >> 32) + (d & 0xffff_ffff) + (d >> 32);
    let mut rest = chunks.remainder();
    while rest.len() >= 8 {
        acc += split(word8(rest));
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        acc += u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc += u16::from_ne_bytes([rest[0], rest[1]]) as u64;
        rest = &rest[2..];
    }
    if let Some(&last) = rest.first() {
        // A trailing odd byte is the high byte of a zero-padded word.
        acc += u16::from_ne_bytes([last, 0]) as u64;
    }
    acc
}

/// Largest piece [`sum`] hands to the carry-free loop at once.
const PIECE: usize = 1 << 30;

/// Partial sum of `data` (big-endian 16-bit words, a trailing odd byte
/// padded with zero), added to `initial`.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = initial;
    // Pieces are even in length, so word boundaries carry over.
    for piece in data.chunks(PIECE) {
        let native = fold64(sum_native(piece));
        acc = add(acc, u16::from_be(native) as u32);
    }
    acc
}

/// The internet checksum of `data`: what goes in a checksum field when
/// the field itself is zero in `data`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// Partial sum of the IPv4 pseudo-header (RFC 793, RFC 768): addresses,
/// protocol and the L4 length (header plus payload).
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let w = |a: u8, b: u8| u16::from_be_bytes([a, b]) as u32;
    w(src[0], src[1])
        + w(src[2], src[3])
        + w(dst[0], dst[1])
        + w(dst[2], dst[3])
        + proto as u32
        + len as u32
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1):
/// addresses, upper-layer length and next header.
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, len: u32) -> u32 {
    let mut s = 0u32;
    for pair in src.chunks_exact(2).chain(dst.chunks_exact(2)) {
        s += u16::from_be_bytes([pair[0], pair[1]]) as u32;
    }
    add(s, (len >> 16) + (len & 0xffff) + proto as u32)
}

/// Incremental update of a checksum field when a 16-bit word of the
/// covered data changes from `old` to `new` (RFC 1624, equation 3:
/// `HC' = ~(~HC + ~m + m')`).
#[inline]
pub const fn update16(check: u16, old: u16, new: u16) -> u16 {
    let s = add(add(!check as u32, !old as u32), new as u32);
    !fold(s)
}

/// Incremental update for a 32-bit field (two words) changing.
#[inline]
pub const fn update32(check: u16, old: u32, new: u32) -> u16 {
    let c = update16(check, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

/// Incremental update when an even-length, even-offset run of bytes
/// changes from `old` to `new` (an address being rewritten). Returns
/// `None` if the lengths differ or are odd.
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> Option<u16> {
    if old.len() != new.len() || !old.len().is_multiple_of(2) {
        return None;
    }
    // ~m summed over the old words is the complement of their sum.
    let s = add(add(!check as u32, !fold(sum(old, 0)) as u32), sum(new, 0));
    Some(!fold(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// RFC 1071 as written: big-endian words, odd byte padded.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u64 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u16::from_be_bytes([data[i], data[i + 1]]) as u64;
            i += 2;
        }
        if i < data.len() {
            s += (data[i] as u64) << 8;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d, 0)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
        assert_eq!(fold(sum(&[], 0)), 0);
        assert_eq!(fold(sum(&[0xab], 0)), 0xab00);
    }

    #[test]
    fn matches_naive_on_random_lengths_and_alignments() {
        let mut rng = Rng::new(1071);
        let mut buf = vec![0u8; 70_000];
        for b in buf.iter_mut() {
            *b = rng.next_u64() as u8;
        }
        for _ in 0..3000 {
            let off = rng.below(16) as usize;
            let len = if rng.chance(0.1) {
                rng.below(65_536)
            } else {
                rng.below(200)
            } as usize;
            let d = &buf[off..off + len];
            assert_eq!(fold(sum(d, 0)), naive(d), "len {len} off {off}");
        }
        // All-ones data: many carries.
        let ff = vec![0xffu8; 65_535];
        for len in [0, 1, 2, 3, 31, 32, 33, 1500, 65_535] {
            assert_eq!(fold(sum(&ff[..len], 0)), naive(&ff[..len]), "len {len}");
        }
    }

    #[test]
    fn pieces_combine() {
        let mut rng = Rng::new(7);
        let data: Vec<u8> = (0..3001).map(|_| rng.next_u64() as u8).collect();
        for _ in 0..200 {
            let cut = rng.below(data.len() as u64) as usize;
            let (a, b) = data.split_at(cut);
            let sb = if cut.is_multiple_of(2) {
                sum(b, 0)
            } else {
                swap(sum(b, 0))
            };
            assert_eq!(fold(add(sum(a, 0), sb)), naive(&data), "cut {cut}");
            // The initial value is added in.
            assert_eq!(fold(sum(b, sum(a, 0))), fold(add(sum(a, 0), sum(b, 0))));
        }
    }

    #[test]
    fn pseudo_headers_match_naive() {
        let src = [192, 0, 2, 1];
        let dst = [192, 0, 2, 200];
        let mut ph = Vec::new();
        ph.extend_from_slice(&src);
        ph.extend_from_slice(&dst);
        ph.extend_from_slice(&[0, 6]);
        ph.extend_from_slice(&1234u16.to_be_bytes());
        assert_eq!(fold(pseudo_v4(src, dst, 6, 1234)), naive(&ph));

        let s6: [u8; 16] = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x01,
        ];
        let d6: [u8; 16] = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0x02,
        ];
        let mut ph = Vec::new();
        ph.extend_from_slice(&s6);
        ph.extend_from_slice(&d6);
        ph.extend_from_slice(&70_000u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(fold(pseudo_v6(&s6, &d6, 17, 70_000)), naive(&ph));
    }

    /// Equal as ones'-complement numbers (0x0000 and 0xffff are both zero).
    fn same(a: u16, b: u16) -> bool {
        a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut rng = Rng::new(1624);
        for _ in 0..2000 {
            let len = 2 * (4 + rng.below(40) as usize);
            let mut d: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            d[0] = 0;
            d[1] = 0;
            let c = checksum(&d);
            // Change one word.
            let i = 2 + 2 * rng.below((len as u64 - 2) / 2) as usize;
            let old = u16::from_be_bytes([d[i], d[i + 1]]);
            let new = rng.next_u64() as u16;
            d[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let inc = update16(c, old, new);
            let full = checksum(&d);
            // 0x0000 and 0xffff are the same number in ones' complement.
            assert!(same(inc, full), "{inc:04x} {full:04x}");
            // Change four bytes.
            if i + 4 <= len {
                let old = u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
                let new = rng.next_u64() as u32;
                let c = checksum(&d);
                d[i..i + 4].copy_from_slice(&new.to_be_bytes());
                let inc = update32(c, old, new);
                let full = checksum(&d);
                assert!(same(inc, full), "{inc:04x} {full:04x}");
                let oldb = d[i..i + 4].to_vec();
                let c = checksum(&d);
                let newb = [1, 2, 3, 4];
                d[i..i + 4].copy_from_slice(&newb);
                let inc = update_bytes(c, &oldb, &newb).unwrap();
                let full = checksum(&d);
                assert!(same(inc, full), "{inc:04x} {full:04x}");
            }
        }
        assert_eq!(update_bytes(0, &[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(update_bytes(0, &[1, 2], &[1, 2, 3, 4]), None);
    }
}
