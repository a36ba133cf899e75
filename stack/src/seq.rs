//! TCP sequence numbers (RFC 9293 3.4): 32-bit counters that wrap, so
//! that "before" means "less than half the space behind" (serial number
//! arithmetic, RFC 1982).
//!
//! [`SeqNum`] deliberately implements neither `PartialOrd` nor `Ord`: the
//! order is not transitive over the whole space, and a `<` that silently
//! compares raw integers is the classic wrap-around bug. Comparisons are
//! named methods instead; they are meaningful for numbers less than 2^31
//! apart, which every TCP window (at most 2^30 with scaling) guarantees.

use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(u32);

impl SeqNum {
    pub const fn new(v: u32) -> SeqNum {
        SeqNum(v)
    }
    pub const fn get(self) -> u32 {
        self.0
    }
    /// `self - other` as a signed distance: negative if `self` is before.
    pub const fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    pub const fn before(self, other: SeqNum) -> bool {
        self.diff(other) < 0
    }
    pub const fn before_or_eq(self, other: SeqNum) -> bool {
        self.diff(other) <= 0
    }
    pub const fn after(self, other: SeqNum) -> bool {
        self.diff(other) > 0
    }
    pub const fn after_or_eq(self, other: SeqNum) -> bool {
        self.diff(other) >= 0
    }
    /// `start <= self < start + len`, the shape of RFC 9293's segment
    /// acceptability tests. Exact for any `len`, even past 2^31, because
    /// it compares the unsigned offset from `start`.
    pub const fn in_window(self, start: SeqNum, len: u32) -> bool {
        self.0.wrapping_sub(start.0) < len
    }
    /// The later of the two (the new `snd_una` after an ACK, say).
    pub const fn latest(self, other: SeqNum) -> SeqNum {
        if self.after(other) { self } else { other }
    }
    /// The earlier of the two.
    pub const fn earliest(self, other: SeqNum) -> SeqNum {
        if self.before(other) { self } else { other }
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}
impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}
impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}
impl SubAssign<u32> for SeqNum {
    fn sub_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_sub(n);
    }
}
/// Signed distance, as [`SeqNum::diff`].
impl Sub<SeqNum> for SeqNum {
    type Output = i32;
    fn sub(self, other: SeqNum) -> i32 {
        self.diff(other)
    }
}

impl From<u32> for SeqNum {
    fn from(v: u32) -> SeqNum {
        SeqNum(v)
    }
}
impl From<SeqNum> for u32 {
    fn from(s: SeqNum) -> u32 {
        s.0
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HALF: u32 = 1 << 31;

    #[test]
    fn wraps() {
        let a = SeqNum::new(u32::MAX - 1);
        let b = a + 10;
        assert_eq!(b.get(), 8);
        assert!(a.before(b));
        assert!(b.after(a));
        assert_eq!(b - a, 10);
        assert_eq!(a - b, -10);
        assert_eq!(b - 10, a);
        assert!(SeqNum::new(5).in_window(a, 20));
        assert!(!SeqNum::new(8).in_window(a, 10));
        assert!(!a.in_window(a, 0));
        assert_eq!(a.latest(b), b);
        assert_eq!(b.earliest(a), a);
        let mut c = a;
        c += 2;
        assert_eq!(c.get(), 0);
        c -= 1;
        assert_eq!(c.get(), u32::MAX);
    }

    proptest! {
        #[test]
        fn forward_is_after(a: u32, d in 1u32..HALF) {
            let a = SeqNum::new(a);
            let b = a + d;
            prop_assert!(b.after(a) && b.after_or_eq(a));
            prop_assert!(a.before(b) && a.before_or_eq(b));
            prop_assert!(!a.after(b) && !b.before(a));
            prop_assert_eq!(b - a, d as i32);
            prop_assert_eq!(a - b, -(d as i32));
            prop_assert_eq!(b - d, a);
        }

        #[test]
        fn exactly_one_order(a: u32, b: u32) {
            prop_assume!(a.wrapping_sub(b) != HALF);
            let (a, b) = (SeqNum::new(a), SeqNum::new(b));
            let n = [a.before(b), a == b, a.after(b)].iter().filter(|&&x| x).count();
            prop_assert_eq!(n, 1);
            prop_assert_eq!(a.before(b), b.after(a));
            prop_assert_eq!(a.before_or_eq(b), !a.after(b));
        }

        /// Comparisons only depend on the distance, not on where in the
        /// space the numbers are.
        #[test]
        fn translation_invariant(a: u32, b: u32, t: u32) {
            let (x, y) = (SeqNum::new(a), SeqNum::new(b));
            prop_assert_eq!(x.before(y), (x + t).before(y + t));
            prop_assert_eq!(x - y, (x + t) - (y + t));
        }

        /// Transitive within a window smaller than half the space.
        #[test]
        fn transitive_in_window(base: u32, d1 in 0u32..HALF / 2, d2 in 0u32..HALF / 2) {
            let a = SeqNum::new(base);
            let b = a + d1;
            let c = b + d2;
            prop_assert!(a.before_or_eq(b) && b.before_or_eq(c) && a.before_or_eq(c));
        }

        #[test]
        fn window_membership(start: u32, len: u32, off: u32) {
            let s = SeqNum::new(start);
            prop_assert_eq!((s + off).in_window(s, len), off < len);
        }

        #[test]
        fn latest_earliest(a: u32, d in 0u32..HALF) {
            let a = SeqNum::new(a);
            let b = a + d;
            prop_assert_eq!(a.latest(b), b);
            prop_assert_eq!(b.latest(a), b);
            prop_assert_eq!(a.earliest(b), a);
            prop_assert_eq!(b.earliest(a), a);
        }
    }
}
