//! Out-of-order reception: which byte ranges beyond `RCV.NXT` have
//! arrived (their bytes already sit in the receive ring at their final
//! offsets). Bounded: at most [`Assembler::MAX`] separate ranges; a
//! segment that would need another is dropped (the peer's SACK-driven
//! recovery will resend it), as Linux bounds its out-of-order queue by
//! memory.
//!
//! Each range remembers when it last grew, so that the SACK option can
//! report the most recently changed block first (RFC 2018 4).

use crate::seq::SeqNum;
use crate::wire::tcp::{SackBlock, SackBlocks};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Range {
    start: SeqNum,
    end: SeqNum,
    stamp: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Assembler {
    ranges: Vec<Range>,
    clock: u32,
}

impl Assembler {
    pub const MAX: usize = 32;

    pub fn new() -> Assembler {
        Assembler {
            ranges: Vec::with_capacity(Self::MAX),
            clock: 0,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ranges.len()
    }
    pub fn clear(&mut self) {
        self.ranges.clear();
    }
    /// Bytes held out of order.
    pub fn bytes(&self) -> u32 {
        self.ranges.iter().map(|r| (r.end - r.start) as u32).sum()
    }
    /// The end of the highest range.
    pub fn highest(&self) -> Option<SeqNum> {
        self.ranges.last().map(|r| r.end)
    }

    /// Records `[start, end)`; false (nothing recorded) if that would take
    /// more than [`Self::MAX`] ranges.
    pub fn add(&mut self, start: SeqNum, end: SeqNum) -> bool {
        if !start.before(end) {
            return true;
        }
        // First range that ends at or after `start` (could merge).
        let i = self.ranges.partition_point(|r| r.end.before(start));
        // Ranges i..j touch [start, end].
        let mut j = i;
        while j < self.ranges.len() && self.ranges[j].start.before_or_eq(end) {
            j += 1;
        }
        self.clock = self.clock.wrapping_add(1);
        if i == j {
            if self.ranges.len() >= Self::MAX {
                return false;
            }
            self.ranges.insert(
                i,
                Range {
                    start,
                    end,
                    stamp: self.clock,
                },
            );
        } else {
            let s = start.earliest(self.ranges[i].start);
            let e = end.latest(self.ranges[j - 1].end);
            self.ranges[i] = Range {
                start: s,
                end: e,
                stamp: self.clock,
            };
            self.ranges.drain(i + 1..j);
        }
        true
    }

    /// If the lowest range starts at or before `rcv_nxt`, removes it and
    /// returns the new `RCV.NXT` (its end, or `rcv_nxt` if later).
    pub fn take_front(&mut self, rcv_nxt: SeqNum) -> Option<SeqNum> {
        let r = *self.ranges.first()?;
        if r.start.after(rcv_nxt) {
            return None;
        }
        self.ranges.remove(0);
        Some(r.end.latest(rcv_nxt))
    }

    /// Whether `[start, end)` is entirely held already.
    pub fn contains(&self, start: SeqNum, end: SeqNum) -> bool {
        self.ranges
            .iter()
            .any(|r| r.start.before_or_eq(start) && end.before_or_eq(r.end))
    }

    /// Up to `max` blocks, most recently changed first.
    pub fn sack_blocks(&self, out: &mut SackBlocks, max: usize) {
        let mut taken = [usize::MAX; SackBlocks::MAX];
        for t in 0..max.min(SackBlocks::MAX) {
            if out.len() >= SackBlocks::MAX {
                return;
            }
            let best = self
                .ranges
                .iter()
                .enumerate()
                .filter(|(i, _)| !taken.contains(i))
                .max_by_key(|(_, r)| r.stamp.wrapping_sub(self.clock.wrapping_sub(u32::MAX / 2)));
            let Some((i, r)) = best else { return };
            taken[t] = i;
            out.push(SackBlock {
                left: r.start,
                right: r.end,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(n: u32) -> SeqNum {
        SeqNum::new(n.wrapping_add(0xffff_ff00))
    }

    #[test]
    fn merges_and_reports_recent_first() {
        let mut a = Assembler::new();
        assert!(a.add(s(10), s(20)));
        assert!(a.add(s(30), s(40)));
        assert!(a.add(s(50), s(60)));
        assert_eq!(a.len(), 3);
        let mut b = SackBlocks::default();
        a.sack_blocks(&mut b, 3);
        assert_eq!(b.as_slice()[0].left, s(50));
        assert!(a.add(s(20), s(30)));
        assert_eq!(a.len(), 2);
        let mut b = SackBlocks::default();
        a.sack_blocks(&mut b, 3);
        assert_eq!(
            b.as_slice(),
            &[
                SackBlock {
                    left: s(10),
                    right: s(40)
                },
                SackBlock {
                    left: s(50),
                    right: s(60)
                }
            ]
        );
        assert_eq!(a.take_front(s(5)), None);
        assert_eq!(a.take_front(s(10)), Some(s(40)));
        assert_eq!(a.take_front(s(70)), Some(s(70)));
        assert!(a.is_empty());
    }

    #[test]
    fn bounded() {
        let mut a = Assembler::new();
        for i in 0..Assembler::MAX as u32 {
            assert!(a.add(s(i * 10), s(i * 10 + 5)));
        }
        assert!(!a.add(s(1000), s(1001)));
        assert!(a.add(s(5), s(10)), "a merge needs no new range");
    }

    proptest! {
        /// Against a bitmap: the ranges are exactly the bytes added, in
        /// order, disjoint and not touching.
        #[test]
        fn matches_bitmap(adds in proptest::collection::vec((0u32..200, 1u32..30), 0..40)) {
            let mut a = Assembler::new();
            let mut bits = [false; 256];
            for (st, len) in adds {
                if a.add(s(st), s(st + len)) {
                    for b in &mut bits[st as usize..(st + len) as usize] { *b = true; }
                }
            }
            let mut model = vec![];
            let mut i = 0;
            while i < bits.len() {
                if bits[i] {
                    let st = i;
                    while i < bits.len() && bits[i] { i += 1; }
                    model.push((s(st as u32), s(i as u32)));
                } else { i += 1; }
            }
            let got: Vec<_> = a.ranges.iter().map(|r| (r.start, r.end)).collect();
            prop_assert_eq!(got, model.clone());
            prop_assert_eq!(a.bytes() as usize, bits.iter().filter(|&&b| b).count());
            // Draining from the front delivers every contiguous byte.
            if let Some(&(first, _)) = model.first() {
                prop_assert_eq!(a.take_front(first), Some(model[0].1));
            }
        }
    }
}
