//! The path MTU cache (RFC 1191, RFC 8201): what ICMP "fragmentation
//! needed" / "packet too big" taught us about a destination, expiring
//! after `mtu_expires` (Linux: 600 s) so that a path that got better is
//! tried again.
//!
//! Linux's rules (`__ip_rt_update_pmtu`): a report only ever lowers the
//! path MTU; a report below `min_pmtu` (552 for IPv4) is raised to it and
//! *locks* the entry, after which packets to that destination go out
//! without DF and are fragmented at 552 (so a forged tiny MTU cannot make
//! us send absurdly small packets, and the path still works).

use std::collections::HashMap;

use crate::fasthash::FastBuild;
use crate::ip::Ip;
use crate::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmtuEntry {
    pub mtu: u16,
    /// DF is not to be set towards this destination.
    pub locked: bool,
    pub expires: Instant,
}

#[derive(Clone, Debug)]
pub struct PmtuCache<I: Ip> {
    map: HashMap<I::Addr, PmtuEntry, FastBuild>,
    pub min_pmtu: u16,
    pub expires: Duration,
    pub capacity: usize,
}

impl<I: Ip> PmtuCache<I> {
    /// `min_pmtu`: Linux's `ip_rt_min_pmtu` (552) for IPv4, the minimum
    /// link MTU (1280) for IPv6.
    pub fn new(min_pmtu: u16) -> PmtuCache<I> {
        PmtuCache::with_seed(min_pmtu, FastBuild::default().0)
    }

    /// [`PmtuCache::new`] with the table's hash seed.
    pub fn with_seed(min_pmtu: u16, seed: u64) -> PmtuCache<I> {
        PmtuCache {
            map: HashMap::with_hasher(FastBuild(seed)),
            min_pmtu,
            expires: Duration::from_secs(600),
            capacity: 4096,
        }
    }

    /// The live entry for `dst`.
    pub fn get(&self, dst: &I::Addr, now: Instant) -> Option<PmtuEntry> {
        // The common case, no report ever: no hashing per packet.
        if self.map.is_empty() {
            return None;
        }
        self.map.get(dst).filter(|e| e.expires > now).copied()
    }

    /// A report that packets to `dst` of more than `reported` bytes do not
    /// get through; `current` is the MTU we use towards it now. Returns
    /// the new path MTU if it changed.
    pub fn update(
        &mut self,
        dst: I::Addr,
        reported: u16,
        current: u16,
        now: Instant,
    ) -> Option<u16> {
        let current = self.get(&dst, now).map_or(current, |e| e.mtu.min(current));
        if reported >= current {
            return None;
        }
        let (mtu, locked) = if reported < self.min_pmtu {
            (current.min(self.min_pmtu), true)
        } else {
            (reported, false)
        };
        if self.map.len() >= self.capacity && !self.map.contains_key(&dst) {
            self.map.retain(|_, e| e.expires > now);
            if self.map.len() >= self.capacity {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(a, _)| *a);
                if let Some(a) = oldest {
                    self.map.remove(&a);
                }
            }
        }
        let old = self.map.insert(
            dst,
            PmtuEntry {
                mtu,
                locked,
                expires: now + self.expires,
            },
        );
        (old.map(|e| e.mtu) != Some(mtu) || mtu != current).then_some(mtu)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{Ipv4, Ipv4Addr};

    const D: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    #[test]
    fn lowers_expires_and_locks() {
        let mut c = PmtuCache::<Ipv4>::new(552);
        let t0 = Instant::from_millis(1000);
        assert_eq!(c.update(D, 1400, 1500, t0), Some(1400));
        assert_eq!(c.get(&D, t0).unwrap().mtu, 1400);
        // Never raised by a report.
        assert_eq!(c.update(D, 1450, 1500, t0), None);
        assert_eq!(c.get(&D, t0).unwrap().mtu, 1400);
        // Expires after 10 minutes.
        let later = t0 + Duration::from_secs(600);
        assert_eq!(c.get(&D, later), None);
        // Below the floor: 552 and locked.
        assert_eq!(c.update(D, 300, 1500, later), Some(552));
        let e = c.get(&D, later).unwrap();
        assert!(e.locked);
        assert_eq!(e.mtu, 552);
        assert_eq!(c.update(D, 0, 1500, later), None);
    }

    #[test]
    fn bounded() {
        let mut c = PmtuCache::<Ipv4>::new(552);
        c.capacity = 4;
        let t0 = Instant::from_millis(1000);
        for i in 0..10u32 {
            c.update(
                Ipv4Addr::from_bits(i),
                1000,
                1500,
                t0 + Duration::from_secs(u64::from(i)),
            );
        }
        assert_eq!(c.len(), 4);
        assert!(
            c.get(&Ipv4Addr::from_bits(9), t0 + Duration::from_secs(9))
                .is_some()
        );
    }
}
