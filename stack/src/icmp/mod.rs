//! ICMP's rules, written once for both versions: when an error may be
//! sent (RFC 1122 3.2.2, RFC 4443 2.4(e)), how fast (Linux's token
//! buckets), and what a received error means to a socket (Linux's
//! `icmp_err_convert`). The ICMPv4 message formats live in
//! `wire::icmpv4`; [`v4`] maps between them and the generic kinds here.
//!
//! Linux's defaults: `icmp_echo_ignore_broadcasts` 1 (an echo request to a
//! broadcast or multicast address gets no reply), `icmp_ratelimit` 1000 ms
//! with a burst of 6 per destination for destination unreachable, source
//! quench, time exceeded and parameter problem (`icmp_ratemask` 0x1818;
//! echo replies are not limited), and `icmp_msgs_per_sec` 1000 with a
//! burst of 50 for all of those together. Errors to the host itself (a
//! failed neighbour resolution reported to a local sender) are never
//! limited.

pub mod v4;
pub mod v6;

use std::collections::HashMap;

use crate::counters::Counter;
use crate::errno::Errno;
use crate::iface::PacketType;
use crate::ip::{Ip, IpAddress};
use crate::ip_layer::IpExt;
use crate::time::{Duration, Instant};

/// An ICMP error, independent of the version's codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpErrorKind {
    NetUnreachable,
    /// IPv4 code 1; for IPv6 this is code 3, "address unreachable": what a
    /// failed neighbour resolution reports (RFC 4443 3.1; the seed's
    /// ICMPv6-5.5, which Linux gets wrong with code 0).
    HostUnreachable,
    /// IPv4 destination unreachable code 2; IPv6 parameter problem code 1
    /// pointing at the next header.
    ProtocolUnreachable {
        pointer: u32,
    },
    PortUnreachable,
    /// "Fragmentation needed and DF set" / "packet too big".
    PacketTooBig {
        mtu: u32,
    },
    TtlExceeded,
    /// Reassembly time exceeded (code 1 for both versions).
    ReassemblyTimeout,
    ParameterProblem {
        pointer: u32,
    },
    /// Any other destination-unreachable code, as received.
    OtherUnreachable {
        code: u8,
    },
    /// IPv6 destination unreachable codes 1, 5 and 6 (administratively
    /// prohibited, source address failed policy, reject route): `EACCES`
    /// as Linux's `icmpv6_err_convert`. IPv4: code 13.
    AdminProhibited,
}

impl IcmpErrorKind {
    /// The errno a socket sees and whether it is a hard error (Linux's
    /// `icmp_err_convert[].fatal`): hard errors end a connecting TCP
    /// socket and are reported on connected UDP sockets; soft ones are
    /// only remembered.
    pub fn errno(self) -> (Errno, bool) {
        match self {
            IcmpErrorKind::NetUnreachable => (Errno::ENETUNREACH, true),
            IcmpErrorKind::HostUnreachable => (Errno::EHOSTUNREACH, true),
            IcmpErrorKind::ProtocolUnreachable { .. } => (Errno::ENOPROTOOPT, true),
            IcmpErrorKind::PortUnreachable => (Errno::ECONNREFUSED, true),
            IcmpErrorKind::PacketTooBig { .. } => (Errno::EMSGSIZE, true),
            IcmpErrorKind::TtlExceeded | IcmpErrorKind::ReassemblyTimeout => {
                (Errno::EHOSTUNREACH, false)
            }
            IcmpErrorKind::ParameterProblem { .. } => (Errno::EPROTO, true),
            IcmpErrorKind::AdminProhibited => (Errno::EACCES, true),
            IcmpErrorKind::OtherUnreachable { code } => (
                match code {
                    5 => Errno::EOPNOTSUPP,
                    6 | 9 | 11 => Errno::ENETUNREACH,
                    7 => Errno::EHOSTDOWN,
                    8 => Errno::ENONET,
                    _ => Errno::EHOSTUNREACH,
                },
                true,
            ),
        }
    }

    /// Whether the limiter applies (`icmp_ratemask`): every error does.
    pub fn rate_limited(self) -> bool {
        true
    }

    fn out_counter(self) -> Counter {
        match self {
            IcmpErrorKind::TtlExceeded | IcmpErrorKind::ReassemblyTimeout => {
                Counter::IcmpOutTimeExcds
            }
            IcmpErrorKind::ParameterProblem { .. } => Counter::IcmpOutParmProbs,
            _ => Counter::IcmpOutDestUnreachs,
        }
    }
}

/// What is known about a packet we might send an error about.
#[derive(Clone, Copy, Debug)]
pub struct Offending<I: Ip> {
    pub src: I::Addr,
    pub dst: I::Addr,
    pub pkt_type: PacketType,
    /// The destination was one of our broadcast addresses or a group.
    pub dst_is_group: bool,
    /// IPv4 fragment offset not zero (IPv6: not the first fragment).
    pub non_first_fragment: bool,
    /// The packet is itself an ICMP error (or an ICMP message of an
    /// unknown type, which Linux treats alike).
    pub is_icmp_error: bool,
    /// RFC 4443 2.4(e.3): the error may be sent even though the packet
    /// went to a multicast address or arrived as a link-layer group frame
    /// (packet too big; parameter problem code 2 for an option whose type
    /// says "report even if multicast").
    pub allow_group: bool,
}

/// RFC 1122 3.2.2 / RFC 4443 2.4(e): never an error about an error, a
/// datagram to a broadcast or multicast address (link or IP), an IPv4
/// fragment other than the first, or a datagram whose source does not name
/// one host. IPv6 has no rule against non-first fragments: RFC 8200 4.5
/// asks for a parameter problem about a fragment at any offset (length not
/// a multiple of 8, a datagram beyond 65535 octets), and Linux's
/// icmpv6_send sends it (a non-first fragment is not an ICMPv6 error, as
/// its upper-layer header is not there).
pub fn may_send_error<I: IpExt>(o: &Offending<I>) -> bool {
    !(o.is_icmp_error
        || (o.non_first_fragment && I::VERSION == crate::ip::IpVersion::V4)
        || (!o.allow_group && (o.dst_is_group || o.pkt_type.is_group()))
        || o.src.is_unspecified()
        || I::is_martian_source(&o.src)
        || I::LIMITED_BROADCAST == Some(o.src))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `icmp_ratelimit`: the cost of one error towards one destination.
    pub ratelimit: Duration,
    /// Linux's `XRLIM_BURST_FACTOR`.
    pub burst_factor: u32,
    /// `icmp_msgs_per_sec`.
    pub msgs_per_sec: u32,
    /// `icmp_msgs_burst`.
    pub msgs_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            ratelimit: Duration::from_secs(1),
            burst_factor: 6,
            msgs_per_sec: 1000,
            msgs_burst: 50,
        }
    }
}

/// Linux's two token buckets for ICMP errors.
#[derive(Debug)]
pub struct RateLimiter<I: Ip> {
    pub config: RateLimitConfig,
    /// Global credit in nanoseconds of `1/msgs_per_sec` each.
    global_tokens: u64,
    global_last: Option<Instant>,
    /// Per destination: tokens in nanoseconds, and the last refill.
    peers: HashMap<I::Addr, (u64, Instant)>,
    pub max_peers: usize,
}

/// Why an error was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    Global,
    Host,
}

impl<I: Ip> Default for RateLimiter<I> {
    fn default() -> Self {
        RateLimiter {
            config: RateLimitConfig::default(),
            global_tokens: 0,
            global_last: None,
            peers: HashMap::new(),
            max_peers: 1024,
        }
    }
}

impl<I: Ip> RateLimiter<I> {
    /// Whether an error to `dst` may go now; takes its tokens if so.
    pub fn allow(&mut self, dst: I::Addr, now: Instant) -> Result<(), Limited> {
        let c = self.config;
        // Global bucket: msgs_per_sec tokens a second, at most msgs_burst.
        let unit = 1_000_000_000 / u64::from(c.msgs_per_sec.max(1));
        let cap = unit * u64::from(c.msgs_burst.max(1));
        let elapsed = self
            .global_last
            .map_or(cap, |l| now.saturating_since(l).as_nanos() as u64);
        self.global_tokens = (self.global_tokens.saturating_add(elapsed)).min(cap);
        self.global_last = Some(now);
        if self.global_tokens < unit {
            return Err(Limited::Global);
        }
        // Per destination (inet_peer_xrlim_allow); a new peer starts full.
        let cost = c.ratelimit.as_nanos() as u64;
        let pcap = cost * u64::from(c.burst_factor);
        if !self.peers.contains_key(&dst) && self.peers.len() >= self.max_peers {
            self.peers
                .retain(|_, (_, last)| now.saturating_since(*last).as_nanos() < u128::from(pcap));
            if self.peers.len() >= self.max_peers {
                self.peers.clear();
            }
        }
        let (tokens, last) = self.peers.entry(dst).or_insert((pcap, now));
        *tokens = tokens
            .saturating_add(now.saturating_since(*last).as_nanos() as u64)
            .min(pcap);
        *last = now;
        if *tokens < cost {
            return Err(Limited::Host);
        }
        *tokens -= cost;
        self.global_tokens -= unit;
        Ok(())
    }
}

/// Per-version ICMP state.
#[derive(Debug)]
pub struct IcmpState<I: Ip> {
    pub limiter: RateLimiter<I>,
    /// `icmp_echo_ignore_broadcasts` (1 on Linux).
    pub echo_ignore_broadcasts: bool,
    /// `icmp_echo_ignore_all` (0 on Linux).
    pub echo_ignore_all: bool,
}

impl<I: Ip> Default for IcmpState<I> {
    fn default() -> Self {
        IcmpState {
            limiter: RateLimiter::default(),
            echo_ignore_broadcasts: true,
            echo_ignore_all: false,
        }
    }
}

impl<I: IpExt> IcmpState<I> {
    /// The whole decision for one error: RFC rules, then the limiter
    /// (skipped for errors to ourselves). Counts what it refuses for rate
    /// reasons; on success counts the outgoing message.
    pub fn check_error<C: crate::context::CounterContext>(
        &mut self,
        ctx: &mut C,
        kind: IcmpErrorKind,
        o: &Offending<I>,
        to_self: bool,
        now: Instant,
    ) -> bool {
        if !may_send_error(o) {
            return false;
        }
        if !to_self && kind.rate_limited() {
            match self.limiter.allow(o.src, now) {
                Ok(()) => {}
                Err(Limited::Global) => {
                    ctx.increment(Counter::IcmpOutRateLimitGlobal);
                    return false;
                }
                Err(Limited::Host) => {
                    ctx.increment(I::counter(Counter::IcmpOutRateLimitHost));
                    return false;
                }
            }
        }
        ctx.increment(I::counter(Counter::IcmpOutMsgs));
        ctx.increment(I::counter(kind.out_counter()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::fake::FakeCore;
    use crate::ip::{Ipv4, Ipv4Addr};

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn offending() -> Offending<Ipv4> {
        Offending {
            src: SRC,
            dst: Ipv4Addr::new(192, 0, 2, 1),
            pkt_type: PacketType::Host,
            dst_is_group: false,
            non_first_fragment: false,
            is_icmp_error: false,
            allow_group: false,
        }
    }

    #[test]
    fn rfc1122_rules() {
        assert!(may_send_error(&offending()));
        for o in [
            Offending {
                is_icmp_error: true,
                ..offending()
            },
            Offending {
                non_first_fragment: true,
                ..offending()
            },
            Offending {
                dst_is_group: true,
                ..offending()
            },
            Offending {
                pkt_type: PacketType::Broadcast,
                ..offending()
            },
            Offending {
                pkt_type: PacketType::Multicast,
                ..offending()
            },
            Offending {
                src: Ipv4Addr::UNSPECIFIED,
                ..offending()
            },
            Offending {
                src: Ipv4Addr::BROADCAST,
                ..offending()
            },
            Offending {
                src: Ipv4Addr::new(224, 0, 0, 5),
                ..offending()
            },
            Offending {
                src: Ipv4Addr::new(127, 0, 0, 1),
                ..offending()
            },
        ] {
            assert!(!may_send_error(&o), "{o:?}");
        }
    }

    #[test]
    fn per_destination_burst_then_one_per_second() {
        let mut s = IcmpState::<Ipv4>::default();
        let mut c = FakeCore::<(), ()>::default();
        let t0 = Instant::from_millis(100_000);
        let k = IcmpErrorKind::PortUnreachable;
        let sent = (0..20)
            .filter(|_| s.check_error(&mut c, k, &offending(), false, t0))
            .count();
        assert_eq!(sent, 6);
        assert_eq!(c.counters[Counter::IcmpOutRateLimitHost], 14);
        assert!(!s.check_error(
            &mut c,
            k,
            &offending(),
            false,
            t0 + Duration::from_millis(999)
        ));
        assert!(s.check_error(
            &mut c,
            k,
            &offending(),
            false,
            t0 + Duration::from_millis(1999)
        ));
        // Another destination has its own bucket.
        let other = Offending {
            src: Ipv4Addr::new(192, 0, 2, 3),
            ..offending()
        };
        assert!(s.check_error(&mut c, k, &other, false, t0 + Duration::from_secs(2)));
        // Errors to ourselves are never limited.
        assert!((0..100).all(|_| s.check_error(
            &mut c,
            k,
            &offending(),
            true,
            t0 + Duration::from_secs(2)
        )));
        assert_eq!(c.counters[Counter::IcmpOutDestUnreachs], 108);
        assert_eq!(c.counters[Counter::IcmpOutMsgs], 108);
    }

    #[test]
    fn global_bucket() {
        let mut l = RateLimiter::<Ipv4>::default();
        let t0 = Instant::from_millis(100_000);
        let ok = (0..200u32)
            .filter(|i| l.allow(Ipv4Addr::from_bits(*i), t0).is_ok())
            .count();
        assert_eq!(ok, 50);
        assert_eq!(l.allow(Ipv4Addr::from_bits(999), t0), Err(Limited::Global));
        // 1000 per second: 10 more after 10 ms.
        let t1 = t0 + Duration::from_millis(10);
        let ok = (1000..1100u32)
            .filter(|i| l.allow(Ipv4Addr::from_bits(*i), t1).is_ok())
            .count();
        assert_eq!(ok, 10);
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(
            IcmpErrorKind::PortUnreachable.errno(),
            (Errno::ECONNREFUSED, true)
        );
        assert_eq!(
            IcmpErrorKind::TtlExceeded.errno(),
            (Errno::EHOSTUNREACH, false)
        );
        assert_eq!(
            IcmpErrorKind::OtherUnreachable { code: 13 }.errno(),
            (Errno::EHOSTUNREACH, true)
        );
        assert_eq!(
            IcmpErrorKind::OtherUnreachable { code: 7 }.errno().0,
            Errno::EHOSTDOWN
        );
    }
}
