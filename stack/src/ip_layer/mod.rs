//! The IP layer, written once for both versions (`I: IpExt`): the host's
//! addresses, the routing table and the routing decision, the path MTU
//! cache, reassembly and the cutting of fragments, IP identification.
//!
//! What differs between the versions is in [`IpExt`] (a handful of
//! constants and predicates) and in the version's receive and header code
//! (`stack.rs` for IPv4 today; IPv6 adds its extension-header walk there).
//! Following Netstack3, an address entry carries no prefix for IPv6: the
//! prefix of an IPv4 address matters only for its directed broadcast
//! address and Linux's source selection, and on-link prefixes are routes.

pub mod fragment;
pub mod options;
pub mod pmtu;
pub mod reassembly;
pub mod route;
pub mod v6;

use crate::counters::Counter;
use crate::errno::Errno;
use crate::ip::{Ip, IpAddress, IpProto, Ipv4, Ipv4Addr, Ipv6, Ipv6Addr, Subnet};
use crate::time::{Duration, Instant};

use pmtu::PmtuCache;
use reassembly::Reassembler;
use route::{Route, RoutingTable};

/// The version-specific facts the generic IP layer needs.
pub trait IpExt: Ip {
    /// `255.255.255.255`; IPv6 has no broadcast.
    const LIMITED_BROADCAST: Option<Self::Addr>;
    /// The floor for a learned path MTU (Linux `ip_rt_min_pmtu`: 552;
    /// IPv6: the minimum link MTU).
    const MIN_PMTU: u16;
    /// The MTU of the stack's internal loopback path.
    const LOOPBACK_MTU: u16 = 65535;

    /// How long an incomplete datagram waits for its fragments
    /// (`ipfrag_time` 30 s; RFC 8200 4.5 and Linux's `ip6frag_time`: 60 s).
    const REASM_TIMEOUT: Duration;

    /// The largest reassembled datagram, header included: IPv4's total
    /// length counts its header; IPv6's payload length (65535 at most)
    /// does not count the 40-byte fixed header.
    const REASM_MAX: usize;

    /// An address no packet may come from (multicast, broadcast,
    /// loopback on the wire, reserved): dropped on receipt, never answered.
    fn is_martian_source(a: &Self::Addr) -> bool;

    /// An IPv4 address in IPv6 clothes (`::ffff:a.b.c.d`): what a
    /// dual-stack socket sees of an IPv4 peer. Never true for IPv4.
    fn is_v4_mapped(a: &Self::Addr) -> bool;

    /// The counter generic code means by an IPv4 counter's name, under
    /// this version's name (`Counter::v6`).
    fn counter(c: Counter) -> Counter;

    /// The source address for a packet to `dst` whose next hop is `near`,
    /// among `addrs` (usable addresses only): Linux's `inet_select_addr`
    /// for IPv4, RFC 6724 section 5 for IPv6.
    fn select_source(
        addrs: &[AddrEntry<Self>],
        dst: &Self::Addr,
        near: &Self::Addr,
    ) -> Option<Self::Addr>;
}

impl IpExt for Ipv4 {
    const LIMITED_BROADCAST: Option<Ipv4Addr> = Some(Ipv4Addr::BROADCAST);
    const MIN_PMTU: u16 = 552;
    const REASM_TIMEOUT: Duration = Duration::from_secs(30);
    const REASM_MAX: usize = 65535;
    fn is_martian_source(a: &Ipv4Addr) -> bool {
        a.is_multicast()
            || a.is_limited_broadcast()
            || a.is_loopback()
            || a.is_reserved()
            || (a.octets()[0] == 0 && !a.is_unspecified())
    }
    fn is_v4_mapped(_: &Ipv4Addr) -> bool {
        false
    }
    fn counter(c: Counter) -> Counter {
        c
    }
    /// The first address whose subnet holds `near` (the next hop), else
    /// the one sharing the longest prefix with it (RFC 6724 rule 8,
    /// uncapped; the first address on a tie).
    fn select_source(
        addrs: &[AddrEntry<Ipv4>],
        _dst: &Ipv4Addr,
        near: &Ipv4Addr,
    ) -> Option<Ipv4Addr> {
        if let Some(e) = addrs
            .iter()
            .find(|e| e.subnet.is_some_and(|s| s.contains(near)))
        {
            return Some(e.addr);
        }
        addrs
            .iter()
            .rev()
            .max_by_key(|e| e.addr.common_prefix_len(near))
            .map(|e| e.addr)
    }
}

impl IpExt for Ipv6 {
    const LIMITED_BROADCAST: Option<Ipv6Addr> = None;
    const MIN_PMTU: u16 = 1280;
    const REASM_TIMEOUT: Duration = Duration::from_secs(60);
    const REASM_MAX: usize = 65535 + 40;
    fn is_martian_source(a: &Ipv6Addr) -> bool {
        a.is_multicast() || a.is_loopback()
    }
    fn is_v4_mapped(a: &Ipv6Addr) -> bool {
        a.is_ipv4_mapped()
    }
    fn counter(c: Counter) -> Counter {
        c.v6()
    }
    fn select_source(
        addrs: &[AddrEntry<Ipv6>],
        dst: &Ipv6Addr,
        _near: &Ipv6Addr,
    ) -> Option<Ipv6Addr> {
        v6::select_source(addrs, dst)
    }
}

/// One of the host's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrEntry<I: Ip> {
    pub addr: I::Addr,
    /// IPv4: the subnet the address was configured with (`/24`). IPv6:
    /// `None` (prefixes are routes).
    pub subnet: Option<Subnet<I::Addr>>,
    /// IPv4: the subnet's directed broadcast address, if it has one.
    pub broadcast: Option<I::Addr>,
    /// Its preferred lifetime ran out (RFC 4862 5.5.4): still ours, but
    /// avoided as a source for new communication (RFC 6724 rule 3).
    pub deprecated: bool,
}

impl AddrEntry<Ipv4> {
    pub fn v4(addr: Ipv4Addr, prefix: u8) -> Option<AddrEntry<Ipv4>> {
        let subnet = Subnet::from_host(addr, prefix).ok()?;
        Some(AddrEntry {
            addr,
            subnet: Some(subnet),
            broadcast: subnet.broadcast(),
            deprecated: false,
        })
    }
}

impl AddrEntry<Ipv6> {
    /// An IPv6 address: no prefix, no broadcast (prefixes are routes).
    pub fn v6(addr: Ipv6Addr) -> AddrEntry<Ipv6> {
        AddrEntry {
            addr,
            subnet: None,
            broadcast: None,
            deprecated: false,
        }
    }
}

/// Where a packet to a destination goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop<A> {
    /// One of our own addresses: delivered inside the stack.
    Local,
    /// A broadcast address: the Ethernet broadcast MAC.
    Broadcast,
    /// A multicast group: its group MAC.
    Multicast,
    /// A unicast neighbour (the destination, or a router).
    Neighbor(A),
}

/// The routing decision for one destination (Linux's `rtable` plus the
/// flow's chosen source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteResult<I: Ip> {
    pub src: I::Addr,
    pub next_hop: NextHop<I::Addr>,
    /// The MTU to send with: the link's or the path's, whichever is less.
    pub mtu: u16,
    /// The path MTU is locked below the floor: send without DF.
    pub pmtu_locked: bool,
}

impl<I: Ip> RouteResult<I> {
    pub fn is_broadcast(&self) -> bool {
        self.next_hop == NextHop::Broadcast
    }
}

/// How a received packet's destination relates to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DstKind {
    Local,
    Broadcast,
    Multicast,
}

/// The per-version IP layer state.
#[derive(Debug)]
pub struct IpLayer<I: IpExt> {
    addrs: Vec<AddrEntry<I>>,
    pub routes: RoutingTable<I>,
    pub reasm: Reassembler<I>,
    pub pmtu: PmtuCache<I>,
    groups: Vec<(I::Addr, u32)>,
    ident: IdentGen,
    /// `ip_default_ttl` / `hop_limit`.
    pub default_ttl: u8,
    /// Changes with every change of `addrs`.
    addrs_generation: u64,
    /// The last decision of [`IpLayer::route_cached`].
    route_cache: Option<RouteCache<I>>,
}

/// One routing decision and what it depended on.
#[derive(Clone, Copy, Debug)]
struct RouteCache<I: IpExt> {
    dst: I::Addr,
    src: Option<I::Addr>,
    link_mtu: u16,
    routes_generation: u64,
    addrs_generation: u64,
    result: RouteResult<I>,
}

impl<I: IpExt> IpLayer<I> {
    pub fn new(seed: u64) -> IpLayer<I> {
        IpLayer {
            addrs: Vec::new(),
            routes: RoutingTable::default(),
            reasm: Reassembler::default(),
            pmtu: PmtuCache::with_seed(I::MIN_PMTU, crate::fasthash::mix_seed(seed)),
            groups: Vec::new(),
            ident: IdentGen::new(seed),
            default_ttl: I::DEFAULT_TTL,
            addrs_generation: route::next_generation(),
            route_cache: None,
        }
    }

    pub fn addrs(&self) -> &[AddrEntry<I>] {
        &self.addrs
    }

    /// Adds an address and, if it has a subnet, the prefix route with it
    /// as preferred source (as `ip addr add` does). `EEXIST` if present.
    pub fn add_addr(&mut self, entry: AddrEntry<I>) -> Result<(), Errno> {
        if self.is_local(&entry.addr) {
            return Err(Errno::EEXIST);
        }
        self.addrs.push(entry);
        self.addrs_generation = route::next_generation();
        if let Some(subnet) = entry.subnet {
            let _ = self.routes.add(Route {
                subnet,
                gateway: None,
                src: Some(entry.addr),
                metric: 0,
            });
        }
        Ok(())
    }

    pub fn remove_addr(&mut self, addr: &I::Addr) -> Option<AddrEntry<I>> {
        let i = self.addrs.iter().position(|e| e.addr == *addr)?;
        let e = self.addrs.remove(i);
        self.addrs_generation = route::next_generation();
        self.routes.remove_by_src(e.addr);
        Some(e)
    }

    /// One of our addresses (Linux's `RTN_LOCAL`).
    pub fn is_local(&self, a: &I::Addr) -> bool {
        self.addrs.iter().any(|e| e.addr == *a)
    }

    /// The limited broadcast or one of our subnets' broadcast addresses.
    pub fn is_broadcast(&self, a: &I::Addr) -> bool {
        I::LIMITED_BROADCAST == Some(*a) || self.addrs.iter().any(|e| e.broadcast == Some(*a))
    }

    /// Joins a multicast group (reference counted). Returns true on the
    /// first join.
    pub fn join_group(&mut self, g: I::Addr) -> bool {
        match self.groups.iter_mut().find(|(a, _)| *a == g) {
            Some((_, n)) => {
                *n += 1;
                false
            }
            None => {
                self.groups.push((g, 1));
                true
            }
        }
    }

    /// Leaves a group. Returns true when the last member left.
    pub fn leave_group(&mut self, g: &I::Addr) -> bool {
        let Some(i) = self.groups.iter().position(|(a, _)| a == g) else {
            return false;
        };
        self.groups[i].1 -= 1;
        if self.groups[i].1 == 0 {
            self.groups.swap_remove(i);
            return true;
        }
        false
    }

    /// The groups joined.
    pub fn groups(&self) -> impl Iterator<Item = I::Addr> + '_ {
        self.groups.iter().map(|(a, _)| *a)
    }

    pub fn is_joined(&self, g: &I::Addr) -> bool {
        self.groups.iter().any(|(a, _)| a == g)
    }

    /// Whether a received packet to `dst` is for this host.
    pub fn classify_dst(&self, dst: &I::Addr) -> Option<DstKind> {
        if self.is_local(dst) {
            Some(DstKind::Local)
        } else if self.is_broadcast(dst) {
            Some(DstKind::Broadcast)
        } else if dst.is_multicast() && self.is_joined(dst) {
            Some(DstKind::Multicast)
        } else {
            None
        }
    }

    /// The source address for a packet whose next hop is `near` (see
    /// [`IpExt::select_source`]; the destination is taken to be `near`).
    pub fn select_source(&self, near: &I::Addr) -> Option<I::Addr> {
        I::select_source(&self.addrs, near, near)
    }

    /// The source address for a packet to `dst` through `near`.
    pub fn select_source_for(&self, dst: &I::Addr, near: &I::Addr) -> Option<I::Addr> {
        I::select_source(&self.addrs, dst, near)
    }

    /// Marks an address deprecated (or preferred again). Returns whether
    /// it is ours.
    pub fn set_deprecated(&mut self, addr: &I::Addr, deprecated: bool) -> bool {
        match self.addrs.iter_mut().find(|e| e.addr == *addr) {
            Some(e) => {
                e.deprecated = deprecated;
                self.addrs_generation = route::next_generation();
                true
            }
            None => false,
        }
    }

    /// The routing decision for a packet to `dst` (from `src` if the
    /// socket is bound to an address): `ENETUNREACH` without a route, as
    /// Linux (limited broadcast and multicast need a route too).
    pub fn route(
        &self,
        dst: &I::Addr,
        src: Option<I::Addr>,
        link_mtu: u16,
        now: Instant,
    ) -> Result<RouteResult<I>, Errno> {
        let src = src.filter(|s| !s.is_unspecified());
        if self.is_local(dst) {
            return Ok(RouteResult {
                src: src.unwrap_or(*dst),
                next_hop: NextHop::Local,
                mtu: I::LOOPBACK_MTU,
                pmtu_locked: false,
            });
        }
        if let Some(e) = self.addrs.iter().find(|e| e.broadcast == Some(*dst)) {
            return Ok(RouteResult {
                src: src.unwrap_or(e.addr),
                next_hop: NextHop::Broadcast,
                mtu: link_mtu,
                pmtu_locked: false,
            });
        }
        let r = self.routes.lookup(dst).ok_or(Errno::ENETUNREACH)?;
        let next_hop = if I::LIMITED_BROADCAST == Some(*dst) {
            NextHop::Broadcast
        } else if dst.is_multicast() {
            NextHop::Multicast
        } else {
            NextHop::Neighbor(r.next_hop(*dst))
        };
        let near = r.gateway.unwrap_or(*dst);
        let src = src
            .or(r.src.filter(|s| self.is_local(s)))
            .or_else(|| self.select_source_for(dst, &near))
            .unwrap_or(I::UNSPECIFIED);
        let (mtu, pmtu_locked) = match self.pmtu.get(dst, now) {
            Some(p) => (p.mtu.min(link_mtu), p.locked),
            None => (link_mtu, false),
        };
        Ok(RouteResult {
            src,
            next_hop,
            mtu,
            pmtu_locked,
        })
    }

    /// [`IpLayer::route`] through a one-entry cache: a connection's
    /// segments ask the same question each time. The answer is reused
    /// while the addresses and routes are unchanged and no path MTU is
    /// known for any destination (PMTU entries expire with time, so
    /// decisions that depend on them are not cached).
    /// The cached decision for exactly this question, if still valid
    /// (see [`IpLayer::route_cached`]): borrowed, so that the caller
    /// copies it from where it was stored long ago.
    #[inline]
    pub fn cached_route(
        &self,
        dst: &I::Addr,
        src: Option<I::Addr>,
        link_mtu: u16,
    ) -> Option<&RouteResult<I>> {
        match &self.route_cache {
            Some(c)
                if self.pmtu.is_empty()
                    && c.dst == *dst
                    && c.src == src
                    && c.link_mtu == link_mtu
                    && c.routes_generation == self.routes.generation()
                    && c.addrs_generation == self.addrs_generation =>
            {
                Some(&c.result)
            }
            _ => None,
        }
    }

    #[inline]
    pub fn route_cached(
        &mut self,
        dst: &I::Addr,
        src: Option<I::Addr>,
        link_mtu: u16,
        now: Instant,
    ) -> Result<RouteResult<I>, Errno> {
        // Inline, so that the answer stays in registers (a struct
        // returned through memory is written narrow and read wide).
        if self.pmtu.is_empty()
            && let Some(c) = &self.route_cache
            && c.dst == *dst
            && c.src == src
            && c.link_mtu == link_mtu
            && c.routes_generation == self.routes.generation()
            && c.addrs_generation == self.addrs_generation
        {
            return Ok(c.result);
        }
        self.route_uncached(dst, src, link_mtu, now)
    }

    #[inline(never)]
    fn route_uncached(
        &mut self,
        dst: &I::Addr,
        src: Option<I::Addr>,
        link_mtu: u16,
        now: Instant,
    ) -> Result<RouteResult<I>, Errno> {
        if !self.pmtu.is_empty() {
            return self.route(dst, src, link_mtu, now);
        }
        let (rg, ag) = (self.routes.generation(), self.addrs_generation);
        let result = self.route(dst, src, link_mtu, now)?;
        self.route_cache = Some(RouteCache {
            dst: *dst,
            src,
            link_mtu,
            routes_generation: rg,
            addrs_generation: ag,
            result,
        });
        Ok(result)
    }

    /// An identification for a datagram without DF (RFC 6864): counters
    /// per hashed (source, destination, protocol), randomly seeded, as
    /// Linux's `ip_idents` (a global counter would leak traffic volume).
    pub fn next_ident(&mut self, src: &I::Addr, dst: &I::Addr, proto: IpProto) -> u32 {
        self.ident.next(src.bytes(), dst.bytes(), proto.0)
    }
}

/// Hashed identification counters.
#[derive(Debug)]
struct IdentGen {
    key: u64,
    buckets: Vec<u32>,
}

impl IdentGen {
    const BUCKETS: usize = 256;

    fn new(seed: u64) -> IdentGen {
        let mut rng = crate::context::StackRng::new(seed);
        IdentGen {
            key: rng.next_u64(),
            buckets: (0..Self::BUCKETS).map(|_| rng.next_u64() as u32).collect(),
        }
    }

    fn next(&mut self, src: &[u8], dst: &[u8], proto: u8) -> u32 {
        let mut h = self.key ^ u64::from(proto);
        for chunk in src.chunks(8).chain(dst.chunks(8)) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        let b = &mut self.buckets[(h as usize) % Self::BUCKETS];
        let v = *b;
        *b = v.wrapping_add(1);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::Ipv6Addr;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn layer() -> IpLayer<Ipv4> {
        let mut l = IpLayer::<Ipv4>::new(1);
        l.add_addr(AddrEntry::v4(v4("192.0.2.1"), 24).unwrap())
            .unwrap();
        l.add_addr(AddrEntry::v4(v4("198.51.100.7"), 24).unwrap())
            .unwrap();
        l
    }

    #[test]
    fn addresses_and_destinations() {
        let mut l = layer();
        assert_eq!(
            l.add_addr(AddrEntry::v4(v4("192.0.2.1"), 24).unwrap()),
            Err(Errno::EEXIST)
        );
        assert_eq!(l.classify_dst(&v4("192.0.2.1")), Some(DstKind::Local));
        assert_eq!(l.classify_dst(&v4("192.0.2.255")), Some(DstKind::Broadcast));
        assert_eq!(
            l.classify_dst(&v4("255.255.255.255")),
            Some(DstKind::Broadcast)
        );
        assert_eq!(l.classify_dst(&v4("192.0.2.2")), None);
        assert_eq!(l.classify_dst(&v4("224.0.0.1")), None);
        assert!(l.join_group(v4("224.0.0.1")));
        assert!(!l.join_group(v4("224.0.0.1")));
        assert_eq!(l.classify_dst(&v4("224.0.0.1")), Some(DstKind::Multicast));
        assert!(!l.leave_group(&v4("224.0.0.1")));
        assert!(l.leave_group(&v4("224.0.0.1")));
        assert!(l.remove_addr(&v4("198.51.100.7")).is_some());
        assert_eq!(l.routes.len(), 1, "its prefix route went with it");
    }

    #[test]
    fn cached_route_follows_every_change() {
        let mut l = layer();
        let now = Instant::ZERO;
        let d = v4("203.0.113.5");
        let s = Some(v4("192.0.2.1"));
        let check = |l: &mut IpLayer<Ipv4>, now| {
            assert_eq!(l.route_cached(&d, s, 1500, now), l.route(&d, s, 1500, now));
        };
        assert_eq!(l.route_cached(&d, s, 1500, now), Err(Errno::ENETUNREACH));
        l.routes
            .add(Route {
                subnet: Subnet::new(v4("0.0.0.0"), 0).unwrap(),
                gateway: Some(v4("192.0.2.254")),
                src: None,
                metric: 0,
            })
            .unwrap();
        check(&mut l, now);
        check(&mut l, now);
        assert_eq!(
            l.route_cached(&d, s, 1500, now).unwrap().next_hop,
            NextHop::Neighbor(v4("192.0.2.254"))
        );
        // A more specific route.
        l.routes
            .add(Route {
                subnet: Subnet::new(v4("203.0.113.0"), 24).unwrap(),
                gateway: Some(v4("198.51.100.1")),
                src: None,
                metric: 0,
            })
            .unwrap();
        assert_eq!(
            l.route_cached(&d, s, 1500, now).unwrap().next_hop,
            NextHop::Neighbor(v4("198.51.100.1"))
        );
        // Its address (and prefix route) goes: back to the default route.
        l.remove_addr(&v4("198.51.100.7"));
        check(&mut l, now);
        // The destination becomes one of ours.
        l.add_addr(AddrEntry::v4(d, 24).unwrap()).unwrap();
        assert_eq!(
            l.route_cached(&d, s, 1500, now).unwrap().next_hop,
            NextHop::Local
        );
        l.remove_addr(&d);
        check(&mut l, now);
        // A path MTU learned, and expired.
        l.pmtu.update(d, 1400, 1500, now);
        assert_eq!(l.route_cached(&d, s, 1500, now).unwrap().mtu, 1400);
        let later = now + Duration::from_secs(601);
        assert_eq!(l.route_cached(&d, s, 1500, later).unwrap().mtu, 1500);
        // Another link MTU, another source.
        assert_eq!(
            l.route_cached(&d, s, 9000, later),
            l.route(&d, s, 9000, later)
        );
        check(&mut l, later);
        let s2 = Some(v4("192.0.2.77"));
        assert_eq!(
            l.route_cached(&d, s2, 1500, later).unwrap().src,
            v4("192.0.2.77")
        );
    }

    #[test]
    fn routing_decisions() {
        let mut l = layer();
        let now = Instant::ZERO;
        let r = l.route(&v4("192.0.2.9"), None, 1500, now).unwrap();
        assert_eq!(r.next_hop, NextHop::Neighbor(v4("192.0.2.9")));
        assert_eq!(r.src, v4("192.0.2.1"));
        let r = l.route(&v4("198.51.100.9"), None, 1500, now).unwrap();
        assert_eq!(r.src, v4("198.51.100.7"));
        assert_eq!(
            l.route(&v4("203.0.113.1"), None, 1500, now),
            Err(Errno::ENETUNREACH)
        );
        // Limited broadcast needs a route too (Linux: ENETUNREACH).
        assert_eq!(
            l.route(&v4("255.255.255.255"), None, 1500, now),
            Err(Errno::ENETUNREACH)
        );
        let r = l.route(&v4("192.0.2.255"), None, 1500, now).unwrap();
        assert_eq!((r.next_hop, r.src), (NextHop::Broadcast, v4("192.0.2.1")));
        let r = l.route(&v4("192.0.2.1"), None, 1500, now).unwrap();
        assert_eq!((r.next_hop, r.mtu), (NextHop::Local, 65535));
        l.routes.add(Route::default_via(v4("192.0.2.254"))).unwrap();
        let r = l.route(&v4("203.0.113.1"), None, 1500, now).unwrap();
        assert_eq!(r.next_hop, NextHop::Neighbor(v4("192.0.2.254")));
        assert_eq!(r.src, v4("192.0.2.1"));
        let r = l.route(&v4("255.255.255.255"), None, 1500, now).unwrap();
        assert_eq!(r.next_hop, NextHop::Broadcast);
        let r = l.route(&v4("239.1.2.3"), None, 1500, now).unwrap();
        assert_eq!(r.next_hop, NextHop::Multicast);
        // A bound source wins.
        let r = l
            .route(&v4("203.0.113.1"), Some(v4("198.51.100.7")), 1500, now)
            .unwrap();
        assert_eq!(r.src, v4("198.51.100.7"));
        // Path MTU applies.
        l.pmtu.update(v4("203.0.113.1"), 1400, 1500, now);
        let r = l.route(&v4("203.0.113.1"), None, 1500, now).unwrap();
        assert_eq!((r.mtu, r.pmtu_locked), (1400, false));
    }

    #[test]
    fn idents_differ_per_destination_and_count_up() {
        let mut l = layer();
        let (a, b) = (v4("192.0.2.1"), v4("192.0.2.2"));
        let x = l.next_ident(&a, &b, IpProto::UDP);
        let y = l.next_ident(&a, &b, IpProto::UDP);
        assert_eq!(y, x.wrapping_add(1));
    }

    #[test]
    fn ipv6_layer_is_the_same_code() {
        let mut l = IpLayer::<Ipv6>::new(3);
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        l.add_addr(AddrEntry::v6(a)).unwrap();
        l.routes
            .add(Route::on_link("2001:db8::/64".parse().unwrap()))
            .unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let r = l.route(&d, None, 1500, Instant::ZERO).unwrap();
        assert_eq!((r.src, r.next_hop), (a, NextHop::Neighbor(d)));
        assert!(Ipv6::is_martian_source(&"ff02::1".parse().unwrap()));
        assert!(Ipv4::is_martian_source(&v4("127.0.0.1")));
        assert!(!Ipv4::is_martian_source(&v4("0.0.0.0")));
    }
}
