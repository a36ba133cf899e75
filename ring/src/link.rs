//! Links: bounded rings of packets between two apps (Snabb/Rush's model).
//!
//! A link is written by one app and read by one app inside one engine, so
//! it is a plain ring with no atomics. A full link drops the packet it is
//! given and counts it, as Rush does: back-pressure is the receiving app's
//! job, not the link's.

use std::mem::MaybeUninit;

use crate::packet::Packet;

/// Packets a link holds (a power of two).
pub const LINK_CAPACITY: usize = 1024;
const MASK: usize = LINK_CAPACITY - 1;

/// Counters of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets and bytes put on the link.
    pub txpackets: u64,
    pub txbytes: u64,
    /// Packets and bytes taken off the link.
    pub rxpackets: u64,
    pub rxbytes: u64,
    /// Packets dropped because the link was full.
    pub txdrop: u64,
}

pub struct Link {
    ring: Box<[MaybeUninit<Packet>]>,
    /// Next slot to read; wraps freely, masked on use.
    read: usize,
    /// Next slot to write.
    write: usize,
    stats: LinkStats,
}

impl Default for Link {
    fn default() -> Self {
        Link::new()
    }
}

impl Link {
    pub fn new() -> Link {
        let ring = (0..LINK_CAPACITY).map(|_| MaybeUninit::uninit()).collect();
        Link {
            ring,
            read: 0,
            write: 0,
            stats: LinkStats::default(),
        }
    }

    /// Packets waiting on the link.
    #[inline]
    pub fn len(&self) -> usize {
        self.write.wrapping_sub(self.read)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.read == self.write
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == LINK_CAPACITY
    }

    /// Free slots.
    #[inline]
    pub fn room(&self) -> usize {
        LINK_CAPACITY - self.len()
    }

    /// Put a packet on the link, or drop and count it if the link is full.
    #[inline]
    pub fn transmit(&mut self, p: Packet) {
        if self.is_full() {
            self.stats.txdrop += 1;
            drop(p);
            return;
        }
        self.stats.txpackets += 1;
        self.stats.txbytes += p.len() as u64;
        self.ring[self.write & MASK].write(p);
        self.write = self.write.wrapping_add(1);
    }

    /// Take the oldest packet off the link.
    #[inline]
    pub fn receive(&mut self) -> Option<Packet> {
        if self.is_empty() {
            return None;
        }
        let slot = &mut self.ring[self.read & MASK];
        // SAFETY: slots between read and write hold initialised packets
        // (written by transmit); advancing read marks this one empty, so it
        // is read exactly once.
        let p = unsafe { slot.assume_init_read() };
        self.read = self.read.wrapping_add(1);
        self.stats.rxpackets += 1;
        self.stats.rxbytes += p.len() as u64;
        Some(p)
    }

    /// The oldest packet, left on the link.
    #[inline]
    pub fn peek(&self) -> Option<&Packet> {
        if self.is_empty() {
            return None;
        }
        // SAFETY: as in receive(), the slot at `read` is initialised.
        Some(unsafe { self.ring[self.read & MASK].assume_init_ref() })
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        while self.receive().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_counters() {
        let mut l = Link::new();
        for i in 0..10u8 {
            l.transmit(Packet::from_slice(&[i; 3]));
        }
        assert_eq!(l.len(), 10);
        for i in 0..10u8 {
            assert_eq!(l.receive().unwrap().data(), &[i; 3]);
        }
        assert!(l.receive().is_none());
        let s = l.stats();
        assert_eq!(
            (s.txpackets, s.txbytes, s.rxpackets, s.rxbytes, s.txdrop),
            (10, 30, 10, 30, 0)
        );
    }

    #[test]
    fn full_link_drops_and_counts() {
        let mut l = Link::new();
        for _ in 0..LINK_CAPACITY + 5 {
            l.transmit(Packet::from_slice(&[0; 10]));
        }
        assert!(l.is_full());
        assert_eq!(l.room(), 0);
        assert_eq!(l.stats().txdrop, 5);
        assert_eq!(l.stats().txpackets, LINK_CAPACITY as u64);
    }

    #[test]
    fn wraps_around_many_times() {
        let mut l = Link::new();
        let mut next_out = 0u32;
        for i in 0..(LINK_CAPACITY as u32 * 5) {
            l.transmit(Packet::from_slice(&i.to_le_bytes()));
            if i % 3 != 0 {
                let p = l.receive().unwrap();
                assert_eq!(p.data(), &next_out.to_le_bytes());
                next_out += 1;
            }
            if l.is_full() {
                while let Some(p) = l.receive() {
                    assert_eq!(p.data(), &next_out.to_le_bytes());
                    next_out += 1;
                }
            }
        }
        assert_eq!(l.stats().txdrop, 0);
    }

    #[test]
    fn dropping_a_link_frees_its_packets() {
        let mut l = Link::new();
        for _ in 0..100 {
            l.transmit(Packet::new());
        }
        drop(l); // must not leak or double free (checked under miri/asan runs)
    }
}
