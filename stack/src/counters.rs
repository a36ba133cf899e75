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
    IcmpOutTimestampReps,
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
    // Ip6: (/proc/net/snmp6)
    Ip6InReceives,
    Ip6InHdrErrors,
    Ip6InTooBigErrors,
    /// Linux counts packets to addresses not ours here (a host does not
    /// forward).
    Ip6InNoRoutes,
    Ip6InAddrErrors,
    Ip6InUnknownProtos,
    Ip6InTruncatedPkts,
    Ip6InDiscards,
    Ip6InDelivers,
    Ip6OutRequests,
    Ip6OutDiscards,
    Ip6OutNoRoutes,
    Ip6ReasmTimeout,
    Ip6ReasmReqds,
    Ip6ReasmOKs,
    Ip6ReasmFails,
    Ip6FragOKs,
    Ip6FragFails,
    Ip6FragCreates,
    Ip6InMcastPkts,
    Ip6OutMcastPkts,
    Ip6ReasmOverlaps,
    /// As `IpInMartianSrc`, for IPv6 (multicast or loopback source).
    Ip6InMartianSrc,
    // Icmp6:
    Icmp6InMsgs,
    Icmp6InErrors,
    Icmp6OutMsgs,
    Icmp6OutErrors,
    Icmp6InCsumErrors,
    Icmp6OutRateLimitHost,
    Icmp6InDestUnreachs,
    Icmp6InPktTooBigs,
    Icmp6InTimeExcds,
    Icmp6InParmProblems,
    Icmp6InEchos,
    Icmp6InEchoReplies,
    Icmp6InGroupMembQueries,
    Icmp6InGroupMembResponses,
    Icmp6InGroupMembReductions,
    Icmp6InRouterSolicits,
    Icmp6InRouterAdvertisements,
    Icmp6InNeighborSolicits,
    Icmp6InNeighborAdvertisements,
    Icmp6InRedirects,
    Icmp6InMLDv2Reports,
    Icmp6OutDestUnreachs,
    Icmp6OutPktTooBigs,
    Icmp6OutTimeExcds,
    Icmp6OutParmProblems,
    Icmp6OutEchos,
    Icmp6OutEchoReplies,
    Icmp6OutRouterSolicits,
    Icmp6OutNeighborSolicits,
    Icmp6OutNeighborAdvertisements,
    Icmp6OutMLDv2Reports,
    // Udp6:
    Udp6InDatagrams,
    Udp6NoPorts,
    Udp6InErrors,
    Udp6OutDatagrams,
    Udp6RcvbufErrors,
    Udp6SndbufErrors,
    Udp6InCsumErrors,
    Udp6IgnoredMulti,
    /// NDP messages dropped by RFC 4861's validity checks (hop limit not
    /// 255, bad code or length, multicast target, ...). Linux logs them
    /// (`ndisc: ... invalid`) and counts them in `Icmp6InErrors` too.
    NdpInInvalid,
    /// Duplicate address detection found the address in use.
    NdpDadFailures,
    /// Redirects refused (not from the current first hop, invalid target).
    NdpRedirectsIgnored,
}

impl Counter {
    /// The IPv6 counterpart of an IPv4 counter (`IpInReceives` →
    /// `Ip6InReceives`, `UdpNoPorts` → `Udp6NoPorts`, ...), so that code
    /// written once for both versions counts under each version's name;
    /// counters with no such counterpart map to themselves.
    pub const fn v6(self) -> Counter {
        use Counter::*;
        match self {
            IpInReceives => Ip6InReceives,
            IpInHdrErrors => Ip6InHdrErrors,
            IpInAddrErrors => Ip6InAddrErrors,
            IpInUnknownProtos => Ip6InUnknownProtos,
            IpInDiscards => Ip6InDiscards,
            IpInDelivers => Ip6InDelivers,
            IpOutRequests => Ip6OutRequests,
            IpOutDiscards => Ip6OutDiscards,
            IpOutNoRoutes => Ip6OutNoRoutes,
            IpReasmTimeout => Ip6ReasmTimeout,
            IpReasmReqds => Ip6ReasmReqds,
            IpReasmOKs => Ip6ReasmOKs,
            IpReasmFails => Ip6ReasmFails,
            IpFragOKs => Ip6FragOKs,
            IpFragFails => Ip6FragFails,
            IpFragCreates => Ip6FragCreates,
            IpInTruncatedPkts => Ip6InTruncatedPkts,
            IpInMcastPkts => Ip6InMcastPkts,
            IpOutMcastPkts => Ip6OutMcastPkts,
            IpReasmOverlaps => Ip6ReasmOverlaps,
            IpInMartianSrc => Ip6InMartianSrc,
            IcmpInMsgs => Icmp6InMsgs,
            IcmpInErrors => Icmp6InErrors,
            IcmpInCsumErrors => Icmp6InCsumErrors,
            IcmpInDestUnreachs => Icmp6InDestUnreachs,
            IcmpInTimeExcds => Icmp6InTimeExcds,
            IcmpInParmProbs => Icmp6InParmProblems,
            IcmpInRedirects => Icmp6InRedirects,
            IcmpInEchos => Icmp6InEchos,
            IcmpInEchoReps => Icmp6InEchoReplies,
            IcmpOutMsgs => Icmp6OutMsgs,
            IcmpOutErrors => Icmp6OutErrors,
            IcmpOutRateLimitHost => Icmp6OutRateLimitHost,
            IcmpOutDestUnreachs => Icmp6OutDestUnreachs,
            IcmpOutTimeExcds => Icmp6OutTimeExcds,
            IcmpOutParmProbs => Icmp6OutParmProblems,
            IcmpOutEchos => Icmp6OutEchos,
            IcmpOutEchoReps => Icmp6OutEchoReplies,
            UdpInDatagrams => Udp6InDatagrams,
            UdpNoPorts => Udp6NoPorts,
            UdpInErrors => Udp6InErrors,
            UdpOutDatagrams => Udp6OutDatagrams,
            UdpRcvbufErrors => Udp6RcvbufErrors,
            UdpSndbufErrors => Udp6SndbufErrors,
            UdpInCsumErrors => Udp6InCsumErrors,
            UdpIgnoredMulti => Udp6IgnoredMulti,
            c => c,
        }
    }
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
