//! The sender's SACK scoreboard (RFC 6675 2-4): which bytes above
//! `SND.UNA` the peer holds. From it come `IsLost` (as one boundary: every
//! un-SACKed byte below [`Scoreboard::lost_boundary`] is lost), the bytes
//! to skip when retransmitting, and the SACKed bytes that `pipe` leaves
//! out.
//!
//! Bounded: a block that would need more than [`Scoreboard::MAX`] ranges
//! is ignored, which only costs an unneeded retransmission. Ranges are
//! never merged over a hole: claiming an un-SACKed byte as SACKed would
//! keep it from ever being resent.

use crate::seq::SeqNum;

#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    /// Sorted, disjoint, non-touching `[start, end)`.
    ranges: Vec<(SeqNum, SeqNum)>,
    sacked: u32,
}

/// RFC 6675's DupThresh.
pub const DUP_THRESH: u32 = 3;

impl Scoreboard {
    pub const MAX: usize = 64;

    pub fn new() -> Scoreboard {
        Scoreboard {
            ranges: Vec::with_capacity(8),
            sacked: 0,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.sacked = 0;
    }
    /// Total SACKed bytes.
    pub fn sacked(&self) -> u32 {
        self.sacked
    }
    pub fn ranges(&self) -> &[(SeqNum, SeqNum)] {
        &self.ranges
    }
    /// The highest SACKed sequence number + 1 (RFC 6675 HighSACK).
    pub fn high_sacked(&self) -> Option<SeqNum> {
        self.ranges.last().map(|r| r.1)
    }

    /// Adds a block reported by the peer, clipped to `(una, nxt]`. Returns
    /// the bytes newly SACKed.
    pub fn add(&mut self, left: SeqNum, right: SeqNum, una: SeqNum, nxt: SeqNum) -> u32 {
        let start = left.latest(una);
        let end = right.earliest(nxt);
        if !start.before(end) {
            return 0;
        }
        let i = self.ranges.partition_point(|r| r.1.before(start));
        let mut j = i;
        while j < self.ranges.len() && self.ranges[j].0.before_or_eq(end) {
            j += 1;
        }
        let before = self.sacked;
        if i == j {
            if self.ranges.len() >= Self::MAX {
                return 0;
            }
            self.ranges.insert(i, (start, end));
            self.sacked += (end - start) as u32;
        } else {
            let s = start.earliest(self.ranges[i].0);
            let e = end.latest(self.ranges[j - 1].1);
            let old: u32 = self.ranges[i..j].iter().map(|r| (r.1 - r.0) as u32).sum();
            self.ranges[i] = (s, e);
            self.ranges.drain(i + 1..j);
            self.sacked = self.sacked - old + (e - s) as u32;
        }
        self.sacked - before
    }

    /// Forgets everything below the new `una`.
    pub fn trim(&mut self, una: SeqNum) {
        let mut drop = 0;
        for r in &mut self.ranges {
            if r.1.before_or_eq(una) {
                self.sacked -= (r.1 - r.0) as u32;
                drop += 1;
            } else {
                if r.0.before(una) {
                    self.sacked -= (una - r.0) as u32;
                    r.0 = una;
                }
                break;
            }
        }
        self.ranges.drain(..drop);
    }

    /// SACKed bytes within `[a, b)`.
    pub fn sacked_in(&self, a: SeqNum, b: SeqNum) -> u32 {
        if !a.before(b) {
            return 0;
        }
        let mut n = 0;
        for &(s, e) in &self.ranges {
            if e.before_or_eq(a) {
                continue;
            }
            if b.before_or_eq(s) {
                break;
            }
            n += (e.earliest(b) - s.latest(a)) as u32;
        }
        n
    }

    /// The first sequence number at or after `from` that is not SACKed.
    pub fn next_unsacked(&self, from: SeqNum) -> SeqNum {
        for &(s, e) in &self.ranges {
            if s.before_or_eq(from) && from.before(e) {
                return e;
            }
            if from.before(s) {
                break;
            }
        }
        from
    }

    /// The start of the first SACKed range after `from`, if any.
    pub fn next_sacked(&self, from: SeqNum) -> Option<SeqNum> {
        self.ranges.iter().find(|r| from.before(r.0)).map(|r| r.0)
    }

    /// RFC 6675 `IsLost` as a boundary: un-SACKed bytes below the result
    /// have DupThresh SACKed ranges, or more than (DupThresh - 1) * SMSS
    /// SACKed bytes, above them. `una` if nothing is lost.
    pub fn lost_boundary(&self, una: SeqNum, smss: u32) -> SeqNum {
        let mut bytes = 0u32;
        for (count, &(s, e)) in self.ranges.iter().rev().enumerate() {
            bytes += (e - s) as u32;
            if count as u32 + 1 >= DUP_THRESH || bytes > (DUP_THRESH - 1) * smss {
                return s.latest(una);
            }
        }
        una
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(n: u32) -> SeqNum {
        SeqNum::new(n.wrapping_add(0xffff_f000))
    }

    #[test]
    fn lost_boundary_rules() {
        let mut b = Scoreboard::new();
        let (una, nxt) = (s(0), s(10_000));
        b.add(s(1000), s(2000), una, nxt);
        assert_eq!(
            b.lost_boundary(una, 1000),
            una,
            "1 range, 1000 bytes: nothing lost"
        );
        b.add(s(3000), s(4000), una, nxt);
        assert_eq!(b.lost_boundary(una, 1000), una);
        b.add(s(5000), s(6000), una, nxt);
        // Three discontiguous ranges above byte 0..1000 and 2000..3000.
        assert_eq!(b.lost_boundary(una, 1000), s(1000));
        let mut b = Scoreboard::new();
        b.add(s(4000), s(6500), una, nxt);
        assert_eq!(
            b.lost_boundary(una, 1000),
            s(4000),
            "more than 2 SMSS SACKed"
        );
        assert_eq!(b.sacked_in(s(0), s(5000)), 1000);
        assert_eq!(b.next_unsacked(s(4500)), s(6500));
        assert_eq!(b.next_unsacked(s(100)), s(100));
        assert_eq!(b.next_sacked(s(100)), Some(s(4000)));
        b.trim(s(5000));
        assert_eq!(b.sacked(), 1500);
        assert_eq!(b.add(s(0), s(20_000), s(5000), s(7000)), 500);
    }

    proptest! {
        #[test]
        fn matches_bitmap(blocks in proptest::collection::vec((0u32..300, 1u32..40), 0..30), una in 0u32..100, trim in 0u32..300) {
            let nxt = 280u32;
            let mut b = Scoreboard::new();
            let mut bits = [false; 400];
            for (l, len) in blocks {
                let newly = b.add(s(l), s(l + len), s(una), s(nxt));
                let mut count = 0;
                for i in l.max(una)..(l + len).min(nxt) {
                    if !bits[i as usize] { bits[i as usize] = true; count += 1; }
                }
                prop_assert_eq!(newly, count);
            }
            prop_assert_eq!(b.sacked() as usize, bits.iter().filter(|&&x| x).count());
            for a in (0..nxt).step_by(17) {
                let want = bits[a as usize..nxt as usize].iter().filter(|&&x| x).count() as u32;
                prop_assert_eq!(b.sacked_in(s(a), s(nxt)), want);
                let mut u = a;
                while bits[u as usize] { u += 1; }
                prop_assert_eq!(b.next_unsacked(s(a)), s(u));
            }
            // IsLost per byte, the slow way, agrees with the boundary.
            let boundary = b.lost_boundary(s(una), 10);
            for x in una..nxt {
                if bits[x as usize] { continue; }
                let above: Vec<bool> = bits[x as usize + 1..].to_vec();
                let bytes = above.iter().filter(|&&v| v).count() as u32;
                let mut runs = 0;
                let mut prev = false;
                for &v in &above { if v && !prev { runs += 1; } prev = v; }
                let lost = runs >= DUP_THRESH || bytes > 2 * 10;
                prop_assert_eq!(lost, s(x).before(boundary), "byte {}", x);
            }
            b.trim(s(trim));
            let want = bits[trim.min(399) as usize..].iter().filter(|&&x| x).count();
            prop_assert_eq!(b.sacked() as usize, want);
        }
    }
}
