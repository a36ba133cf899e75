//! Counters, named as Linux names them in `/proc/net/snmp` and
//! `/proc/net/netstat` (what `netstat -s` and `nstat` print), so that a
//! user reads shunt's figures with the habits they have for the kernel's.
//!
//! Where Linux keeps no SNMP counter for an event (frames for another
//! host, ARP packets of another hardware type, neighbour-table drops) the
//! name follows the same style and says where Linux counts it instead,
//! if anywhere (`/proc/net/stat/arp_cache`, drop reasons).

use core::fmt;

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident,)*) => {
        /// One counter. `Counter::ALL` lists them in `/proc/net/snmp`
        /// order, group by group.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(usize)]
        pub enum Counter {
            $($(#[$m])* $name,)*
        }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];
            /// The name as Linux prints it (`IpInReceives`: group `Ip`,
            /// field `InReceives`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$name => stringify!($name),)*
                }
            }
        }
    };
}

counters! {
    // Ip: (RFC 4293 names, /proc/net/snmp) and IpExt:
    IpInReceives,
    IpInHdrErrors,
    /// Destination not ours (a host does not forward), or a martian.
    IpInAddrErrors,
    IpInUnknownProtos,
    IpInDiscards,
    IpInDelivers,
    IpOutRequests,
    IpOutDiscards,
    IpOutNoRoutes,
    IpReasmTimeout,
    IpReasmReqds,
    IpReasmOKs,
    IpReasmFails,
    IpFragOKs,
    IpFragFails,
    IpFragCreates,
    /// IpExt: the total length is more than the frame holds.
    IpInTruncatedPkts,
    IpInCsumErrors,
    IpInBcastPkts,
    IpInMcastPkts,
    IpOutBcastPkts,
    IpOutMcastPkts,
    /// IpExt (and snmp6): a fragment overlapped another; the whole
    /// datagram was dropped (RFC 5722, and Linux for IPv4 too).
    IpReasmOverlaps,
    /// A source address no host may have (multicast, broadcast, loopback
    /// from the wire). Linux: `in_martian_src` in /proc/net/stat/rt_cache.
    IpInMartianSrc,
    // Icmp:
    IcmpInMsgs,
    IcmpInErrors,
    IcmpInCsumErrors,
    IcmpInDestUnreachs,
    IcmpInTimeExcds,
    IcmpInParmProbs,
    IcmpInSrcQuenchs,
    IcmpInRedirects,
    IcmpInEchos,
    IcmpInEchoReps,
    IcmpInTimestamps,
    IcmpOutMsgs,
    IcmpOutErrors,
    /// Linux 6.x: an error not sent because of icmp_msgs_per_sec.
    IcmpOutRateLimitGlobal,
    /// Linux 6.x: an error not sent because of icmp_ratelimit (per
    /// destination).
    IcmpOutRateLimitHost,
    IcmpOutDestUnreachs,
    IcmpOutTimeExcds,
    IcmpOutParmProbs,
    IcmpOutEchos,
    IcmpOutEchoReps,
    // Udp:
    UdpInDatagrams,
    UdpNoPorts,
    UdpInErrors,
    UdpOutDatagrams,
    UdpRcvbufErrors,
    UdpSndbufErrors,
    UdpInCsumErrors,
    UdpIgnoredMulti,
    // Link layer (no SNMP counters in Linux; drop reasons instead):
    EthInFrames,
    /// PACKET_OTHERHOST: unicast to another MAC, or a group not joined.
    EthInOtherHost,
    /// Sender MAC is a group address.
    EthInBadSrc,
    /// Neither IPv4, IPv6 nor ARP (VLAN tags included).
    EthInUnknownType,
    /// Too short for an Ethernet header, or an 802.3 length frame.
    EthInMalformed,
    EthOutFrames,
    /// The transmit queue was full (Linux: a qdisc drop).
    EthOutDrops,
    // ARP and the neighbour table (/proc/net/stat/arp_cache has some):
    ArpInRequests,
    ArpInReplies,
    /// Hardware type not Ethernet, protocol type not IPv4, wrong lengths,
    /// unknown operation, or a sender/target address no host may have.
    ArpInDrops,
    ArpOutRequests,
    ArpOutReplies,
    /// arp_cache `unres_discards`: queued for resolution, pushed out.
    NeighUnresDiscards,
    /// arp_cache `res_failed`: resolution failed; queued packets reported.
    NeighResFailed,
    /// arp_cache `table_fulls`.
    NeighTableFulls,
    /// Frames for IPv6, which this stack does not speak yet.
    Ip6InReceivesUnsupported,
}

/// All counters, each a u64.
#[derive(Clone, PartialEq, Eq)]
pub struct Counters([u64; Counter::ALL.len()]);

impl Default for Counters {
    fn default() -> Counters {
        Counters([0; Counter::ALL.len()])
    }
}

impl Counters {
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }
    pub fn add(&mut self, c: Counter, n: u64) {
        let v = &mut self.0[c as usize];
        *v = v.wrapping_add(n);
    }
    pub fn increment(&mut self, c: Counter) {
        self.add(c, 1)
    }
    /// Every counter with its value, in `/proc/net/snmp` order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.get(c)))
    }
    /// Counters that are not zero, as `nstat` prints them.
    pub fn nonzero(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        self.iter().filter(|&(_, v)| v != 0)
    }
}

impl core::ops::Index<Counter> for Counters {
    type Output = u64;
    fn index(&self, c: Counter) -> &u64 {
        &self.0[c as usize]
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (c, v) in self.nonzero() {
            m.entry(&c.name(), &v);
        }
        m.finish()
    }
}

impl fmt::Display for Counters {
    /// One `Name value` line per non-zero counter, like `nstat -a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (c, v) in self.nonzero() {
            writeln!(f, "{:<28}{v}", c.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values() {
        let mut c = Counters::default();
        c.increment(Counter::UdpNoPorts);
        c.add(Counter::IpInReceives, 3);
        assert_eq!(c[Counter::UdpNoPorts], 1);
        assert_eq!(c.get(Counter::IpInReceives), 3);
        assert_eq!(Counter::IpReasmOKs.name(), "IpReasmOKs");
        assert_eq!(c.nonzero().count(), 2);
        assert!(c.to_string().contains("UdpNoPorts"));
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }
}
