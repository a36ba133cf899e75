//! The facade: one [`Stack`] per interface, driven from outside.
//!
//! ```text
//! driver                         Stack
//! ------                         -----
//! frame from the device   --->   receive(frame, offload, now)
//! socket call             --->   udp_send_to(...), udp_recv_from(...), ...
//! timer expired           --->   on_timer(now)
//! "anything to send?"     <---   poll_transmit(now, buf) / transmit_with(now, f)
//! "when do I wake you?"   <---   next_deadline()
//! "what changed?"         <---   poll_event()
//! ```
//!
//! After any call, the driver drains `poll_transmit` until it returns
//! `None` and sleeps until `next_deadline()` (or a frame, or a socket
//! call). The stack never blocks, never calls the OS, and owns no clock
//! or entropy: `now` comes with every call and randomness from the seed in
//! [`StackConfig`].
//!
//! Inside, each module keeps its own state and reaches the rest through
//! its context trait; this file builds those contexts from disjoint
//! borrows of the stack's fields and does the version-specific glue
//! (the IPv4 receive path, IPv4 output with fragmentation, ICMPv4).
//!
//! Work that would re-enter a module (a packet this stack sends to itself,
//! an ICMP error generated while the neighbour table is being updated) is
//! queued and done at the end of the call, at top level: the loopback
//! queue and the deferred queue.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use crate::context::{
    CounterContext, EventContext, InstantContext, RngContext, StackRng, TimerContext, TimerQueue,
};
use crate::counters::{Counter, Counters};
use crate::errno::Errno;
use crate::events::Event;
use crate::icmp::{self, IcmpErrorKind, IcmpState, Offending};
use crate::iface::ndp::{NdConfig, NdState, NdTimer};
use crate::iface::neighbor::{
    ExternalNeighbor, NeighborConfig, NeighborContext, NeighborEvent, NeighborInfo, NeighborTable,
    NeighborTimerId,
};
use crate::iface::{BufPool, Device, ETH_HLEN, Frame, PacketType, RxOffload, arp};
use crate::ip::{IpAddress, IpProto, IpVersion, Ipv4, Ipv4Addr, Ipv6, Ipv6Addr};
use crate::ip_layer::reassembly::{FragKey, Fragment, Outcome, ReassemblyTimerId};
use crate::ip_layer::route::Route;
use crate::ip_layer::{AddrEntry, DstKind, IpLayer, NextHop, RouteResult, fragment, options};
use crate::tcp::{
    self, SendError, TcpConfig, TcpContext, TcpCounter, TcpEvent, TcpLayer, Transmit,
};
use crate::time::Instant;
use crate::udp::cork::Corks;
use crate::udp::errqueue::{ErrRecv, IcmpOrigin};
use crate::udp::{
    Delivery, PmtuDisc, Readiness, RecvFlags, RecvMeta, RxInfo, Shutdown, UdpContext, UdpEvent,
    UdpOptions, UdpSocketId, UdpSockets,
};
use crate::wire::icmpv4::{self, Icmpv4Message, Icmpv4Packet};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::{
    EtherType, EthernetArp, EthernetFrame, Ipv4Builder, Mac, ParseError, UdpBuilder, UdpPacket,
};

/// How the stack is set up.
#[derive(Clone, Debug)]
pub struct StackConfig {
    pub mac: Mac,
    /// IP MTU of the link.
    pub mtu: u16,
    /// Seeds every random choice (ports, idents, timer jitter). The
    /// driver draws it from the OS; tests fix it.
    pub seed: u64,
    pub neighbor: NeighborConfig,
    /// Frames the transmit queue holds before it drops (`txqueuelen`).
    pub tx_queue_len: usize,
    /// Keep events for [`Stack::poll_event`]. Off, nothing is kept.
    pub record_events: bool,
    /// IPv6: DAD, router discovery, redirects, the link-local address.
    /// IPv6 is off until [`Stack::enable_ipv6`] or the first IPv6 address.
    pub ipv6: NdConfig,
}

impl StackConfig {
    pub fn new(mac: Mac) -> StackConfig {
        StackConfig {
            mac,
            mtu: 1500,
            seed: 0x5eed,
            neighbor: NeighborConfig::default(),
            tx_queue_len: 1000,
            record_events: true,
            ipv6: NdConfig::default(),
        }
    }
}

/// A UDP socket of the facade: `AF_INET` ([`Stack::udp_socket`]) or
/// `AF_INET6` ([`Stack::udp6_socket`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpHandle(UdpSocketId, IpVersion);

impl UdpHandle {
    /// The socket's family.
    pub fn version(&self) -> IpVersion {
        self.1
    }
}

/// What one `recvfrom` returned (see [`RecvMeta`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRecv {
    /// The return value: bytes copied, or the real length with
    /// `MSG_TRUNC`.
    pub ret: usize,
    /// The datagram's length.
    pub len: usize,
    /// `MSG_TRUNC` in `msg_flags`.
    pub truncated: bool,
    /// The sender; `None` for the 0 returned after `SHUT_RD`.
    pub src: Option<SocketAddr>,
    /// The address it was sent to (`IP_PKTINFO`'s `ipi_addr`,
    /// `IPV6_PKTINFO`'s `ipi6_addr`; v4-mapped on an IPv6 socket for an
    /// IPv4 datagram). The interface index is the shim's one interface.
    pub dst: Option<IpAddr>,
    /// TOS, TTL and arrival time (`IP_RECVTOS`, `IP_RECVTTL`,
    /// `SO_TIMESTAMP*`).
    pub info: RxInfo,
}

/// An ICMP echo reply that arrived for an echo request sent with
/// [`Stack::send_echo_request`] (or an ICMPv6 one, `EchoReply<Ipv6Addr>`,
/// for [`Stack::send_echo6_request`]; `ttl` is then the hop limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply<A = Ipv4Addr> {
    pub from: A,
    pub ident: u16,
    pub seq: u16,
    pub data: Vec<u8>,
    pub ttl: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerId {
    Neighbor4(Ipv4Addr),
    Reasm4(FragKey<Ipv4>),
    Neighbor6(Ipv6Addr),
    Reasm6(FragKey<Ipv6>),
    Nd(NdTimer),
}

/// Work queued for the end of the current call.
#[derive(Debug)]
enum Deferred {
    /// A frame whose next hop could not be resolved: ICMP host
    /// unreachable to its sender.
    Unresolved4(Frame),
    /// The same for IPv6: ICMPv6 address unreachable (code 3).
    Unresolved6(Frame),
}

/// Everything that is shared by the modules' contexts.
struct Core {
    now: Instant,
    /// Unix time in nanoseconds at `Instant::ZERO`, when the driver gave
    /// it: for the timestamps of ICMP and IPv4 options.
    wall_at_zero: Option<u64>,
    timers: TimerQueue<TimerId>,
    counters: Counters,
    events: VecDeque<Event>,
    record_events: bool,
    rng: StackRng,
    pool: BufPool,
    tx: VecDeque<Frame>,
    tx_limit: usize,
    loopback: VecDeque<Frame>,
    deferred: VecDeque<Deferred>,
    device: Device,
    echo_replies: VecDeque<EchoReply>,
    echo6_replies: VecDeque<EchoReply<Ipv6Addr>>,
    tcp_counters: [u64; TcpCounter::COUNT],
    /// Neighbours to ask the external resolver for
    /// ([`NeighborConfig::external`]), oldest first, without repeats.
    neighbor_wants: Vec<IpAddr>,
}

impl Core {
    fn want_neighbor(&mut self, a: IpAddr) {
        if !self.neighbor_wants.contains(&a) {
            self.neighbor_wants.push(a);
        }
    }

    fn emit(&mut self, e: Event) {
        if self.record_events {
            self.events.push_back(e);
        }
    }

    fn push_tx(&mut self, frame: Frame) {
        if self.tx.len() >= self.tx_limit {
            self.counters.increment(Counter::EthOutDrops);
            self.pool.put_frame(frame);
            return;
        }
        self.counters.increment(Counter::EthOutFrames);
        self.tx.push_back(frame);
    }

    /// The time for timestamps on the wire (see [`options::timestamp`]).
    fn timestamp_ms(&self) -> u32 {
        options::timestamp(self.wall_at_zero, self.now)
    }

    fn send_arp(&mut self, p: &EthernetArp, dst: Mac) {
        let mut f = self.pool.frame(ETH_HLEN + EthernetArp::LEN);
        f.set_ethernet(dst, self.device.mac, EtherType::ARP);
        let _ = p.emit(&mut f.as_mut_slice()[ETH_HLEN..]);
        self.push_tx(f);
    }
}

impl InstantContext for Core {
    fn now(&self) -> Instant {
        self.now
    }
}
impl RngContext for Core {
    fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
impl CounterContext for Core {
    fn add_counter(&mut self, c: Counter, n: u64) {
        self.counters.add(c, n)
    }
}
impl TimerContext<NeighborTimerId<Ipv4>> for Core {
    fn schedule_timer_at(&mut self, at: Instant, id: NeighborTimerId<Ipv4>) -> Option<Instant> {
        self.timers.schedule(at, TimerId::Neighbor4(id.0))
    }
    fn cancel_timer(&mut self, id: &NeighborTimerId<Ipv4>) -> Option<Instant> {
        self.timers.cancel(&TimerId::Neighbor4(id.0))
    }
    fn scheduled_at(&self, id: &NeighborTimerId<Ipv4>) -> Option<Instant> {
        self.timers.get(&TimerId::Neighbor4(id.0))
    }
}
impl TimerContext<ReassemblyTimerId<Ipv4>> for Core {
    fn schedule_timer_at(&mut self, at: Instant, id: ReassemblyTimerId<Ipv4>) -> Option<Instant> {
        self.timers.schedule(at, TimerId::Reasm4(id.0))
    }
    fn cancel_timer(&mut self, id: &ReassemblyTimerId<Ipv4>) -> Option<Instant> {
        self.timers.cancel(&TimerId::Reasm4(id.0))
    }
    fn scheduled_at(&self, id: &ReassemblyTimerId<Ipv4>) -> Option<Instant> {
        self.timers.get(&TimerId::Reasm4(id.0))
    }
}
impl EventContext<NeighborEvent<Ipv4>> for Core {
    fn on_event(&mut self, e: NeighborEvent<Ipv4>) {
        self.emit(Event::Neighbor {
            addr: e.addr.to_std(),
            state: e.state,
            mac: e.mac,
        });
    }
}
impl EventContext<UdpEvent<Ipv4>> for Core {
    fn on_event(&mut self, e: UdpEvent<Ipv4>) {
        self.emit(Event::Udp4(e));
    }
}
impl EventContext<UdpEvent<Ipv6>> for Core {
    fn on_event(&mut self, e: UdpEvent<Ipv6>) {
        self.emit(Event::Udp6(e));
    }
}
impl EventContext<NeighborEvent<Ipv6>> for Core {
    fn on_event(&mut self, e: NeighborEvent<Ipv6>) {
        self.emit(Event::Neighbor {
            addr: e.addr.to_std(),
            state: e.state,
            mac: e.mac,
        });
    }
}
impl TimerContext<NeighborTimerId<Ipv6>> for Core {
    fn schedule_timer_at(&mut self, at: Instant, id: NeighborTimerId<Ipv6>) -> Option<Instant> {
        self.timers.schedule(at, TimerId::Neighbor6(id.0))
    }
    fn cancel_timer(&mut self, id: &NeighborTimerId<Ipv6>) -> Option<Instant> {
        self.timers.cancel(&TimerId::Neighbor6(id.0))
    }
    fn scheduled_at(&self, id: &NeighborTimerId<Ipv6>) -> Option<Instant> {
        self.timers.get(&TimerId::Neighbor6(id.0))
    }
}
impl TimerContext<ReassemblyTimerId<Ipv6>> for Core {
    fn schedule_timer_at(&mut self, at: Instant, id: ReassemblyTimerId<Ipv6>) -> Option<Instant> {
        self.timers.schedule(at, TimerId::Reasm6(id.0))
    }
    fn cancel_timer(&mut self, id: &ReassemblyTimerId<Ipv6>) -> Option<Instant> {
        self.timers.cancel(&TimerId::Reasm6(id.0))
    }
    fn scheduled_at(&self, id: &ReassemblyTimerId<Ipv6>) -> Option<Instant> {
        self.timers.get(&TimerId::Reasm6(id.0))
    }
}
impl TimerContext<NdTimer> for Core {
    fn schedule_timer_at(&mut self, at: Instant, id: NdTimer) -> Option<Instant> {
        self.timers.schedule(at, TimerId::Nd(id))
    }
    fn cancel_timer(&mut self, id: &NdTimer) -> Option<Instant> {
        self.timers.cancel(&TimerId::Nd(*id))
    }
    fn scheduled_at(&self, id: &NdTimer) -> Option<Instant> {
        self.timers.get(&TimerId::Nd(*id))
    }
}

/// Implements the base context traits for a borrowed context by
/// delegating to its `core`.
macro_rules! delegate_to_core {
    ($ty:ident $(, $timer:ty)* ; $($event:ty),*) => {
        impl InstantContext for $ty<'_> {
            fn now(&self) -> Instant {
                self.core.now
            }
        }
        impl RngContext for $ty<'_> {
            fn random_u64(&mut self) -> u64 {
                self.core.rng.next_u64()
            }
        }
        impl CounterContext for $ty<'_> {
            fn add_counter(&mut self, c: Counter, n: u64) {
                self.core.counters.add(c, n)
            }
        }
        $(impl TimerContext<$timer> for $ty<'_> {
            fn schedule_timer_at(&mut self, at: Instant, id: $timer) -> Option<Instant> {
                self.core.schedule_timer_at(at, id)
            }
            fn cancel_timer(&mut self, id: &$timer) -> Option<Instant> {
                TimerContext::<$timer>::cancel_timer(self.core, id)
            }
            fn scheduled_at(&self, id: &$timer) -> Option<Instant> {
                TimerContext::<$timer>::scheduled_at(self.core, id)
            }
        })*
        $(impl EventContext<$event> for $ty<'_> {
            fn on_event(&mut self, e: $event) {
                self.core.on_event(e)
            }
        })*
    };
}

/// The neighbour table's and ARP's context: the core plus read access to
/// the IPv4 addresses.
struct ArpCtx<'a> {
    core: &'a mut Core,
    ip: &'a IpLayer<Ipv4>,
    /// [`NeighborConfig::external`]: solicitations become wants.
    external: bool,
}
delegate_to_core!(ArpCtx, NeighborTimerId<Ipv4>; NeighborEvent<Ipv4>);

impl NeighborContext<Ipv4> for ArpCtx<'_> {
    fn send_solicitation(&mut self, target: Ipv4Addr, src: Option<Ipv4Addr>, unicast: Option<Mac>) {
        if self.external {
            self.core.want_neighbor(target.to_std());
            return;
        }
        let src = src
            .filter(|s| self.ip.is_local(s))
            .or_else(|| self.ip.select_source(&target))
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        arp::solicit(self, target, src, unicast);
    }
    fn send_frame(&mut self, frame: Frame) {
        self.core.push_tx(frame);
    }
    fn resolution_failed(&mut self, _target: Ipv4Addr, frame: Frame) {
        self.core.deferred.push_back(Deferred::Unresolved4(frame));
    }
    fn drop_frame(&mut self, frame: Frame) {
        self.core.pool.put_frame(frame);
    }
}

impl UdpContext<Ipv6> for UdpCtx<'_> {
    fn is_local(&self, a: &Ipv6Addr) -> bool {
        match a.to_ipv4_mapped() {
            Some(v4) => self.ip4.is_local(&v4),
            None => self.ip6.is_local(a),
        }
    }
    fn is_broadcast(&self, a: &Ipv6Addr) -> bool {
        a.to_ipv4_mapped()
            .is_some_and(|v4| self.ip4.is_broadcast(&v4))
    }
    /// A v4-mapped destination is routed by IPv4 and the answer mapped
    /// back, so that a dual-stack socket's source is `::ffff:a.b.c.d`.
    fn route(&self, dst: &Ipv6Addr, src: Option<Ipv6Addr>) -> Result<RouteResult<Ipv6>, Errno> {
        let (core, now) = (&*self.core, self.core.now);
        match dst.to_ipv4_mapped() {
            Some(d4) => {
                let s4 = match src {
                    Some(s) if s.is_unspecified() => None,
                    Some(s) => Some(s.to_ipv4_mapped().ok_or(Errno::ENETUNREACH)?),
                    None => None,
                };
                let r = self.ip4.route(&d4, s4, core.device.mtu, now)?;
                Ok(RouteResult {
                    src: r.src.to_ipv6_mapped(),
                    next_hop: match r.next_hop {
                        NextHop::Local => NextHop::Local,
                        NextHop::Broadcast => NextHop::Broadcast,
                        NextHop::Multicast => NextHop::Multicast,
                        NextHop::Neighbor(n) => NextHop::Neighbor(n.to_ipv6_mapped()),
                    },
                    mtu: r.mtu.saturating_sub(20),
                    pmtu_locked: r.pmtu_locked,
                })
            }
            None => {
                if src.is_some_and(|s| s.is_ipv4_mapped()) {
                    return Err(Errno::ENETUNREACH);
                }
                self.ip6.route(dst, src, self.mtu6, now)
            }
        }
    }
    fn alloc_buf(&mut self, len: usize) -> Vec<u8> {
        self.core.pool.get(len)
    }
    fn free_buf(&mut self, buf: Vec<u8>) {
        self.core.pool.put(buf)
    }
}

impl arp::ArpContext for ArpCtx<'_> {
    fn our_mac(&self) -> Mac {
        self.core.device.mac
    }
    fn is_our_addr(&self, a: Ipv4Addr) -> bool {
        self.ip.is_local(&a)
    }
    fn is_broadcast_addr(&self, a: Ipv4Addr) -> bool {
        self.ip.is_broadcast(&a)
    }
    fn send_arp(&mut self, p: &EthernetArp, dst: Mac) {
        self.core.send_arp(p, dst);
    }
}

/// UDP's context, for the sockets of either version (an IPv6 socket
/// reaches IPv4 through v4-mapped addresses).
struct UdpCtx<'a> {
    core: &'a mut Core,
    ip4: &'a IpLayer<Ipv4>,
    ip6: &'a IpLayer<Ipv6>,
    mtu6: u16,
}
delegate_to_core!(UdpCtx; UdpEvent<Ipv4>, UdpEvent<Ipv6>);

impl UdpContext<Ipv4> for UdpCtx<'_> {
    fn is_local(&self, a: &Ipv4Addr) -> bool {
        self.ip4.is_local(a)
    }
    fn is_broadcast(&self, a: &Ipv4Addr) -> bool {
        self.ip4.is_broadcast(a)
    }
    fn route(&self, dst: &Ipv4Addr, src: Option<Ipv4Addr>) -> Result<RouteResult<Ipv4>, Errno> {
        self.ip4
            .route(dst, src, self.core.device.mtu, self.core.now)
    }
    fn alloc_buf(&mut self, len: usize) -> Vec<u8> {
        self.core.pool.get(len)
    }
    fn free_buf(&mut self, buf: Vec<u8>) {
        self.core.pool.put(buf)
    }
}

/// How an IPv4 datagram is to be sent.
#[derive(Clone, Copy, Debug)]
struct Out4 {
    route: RouteResult<Ipv4>,
    dst: Ipv4Addr,
    proto: IpProto,
    ttl: u8,
    tos: u8,
    dont_fragment: bool,
}

/// IP output, both versions: what UDP, ICMP and TCP hand their datagrams
/// to (IPv6 in `v6.rs`).
struct OutCtx<'a> {
    core: &'a mut Core,
    ip4: &'a mut IpLayer<Ipv4>,
    arp: &'a mut NeighborTable<Ipv4>,
    ip6: &'a mut IpLayer<Ipv6>,
    ndp: &'a mut NeighborTable<Ipv6>,
    nd: &'a NdState,
}

/// An [`OutCtx`] from disjoint borrows of the stack's fields (so that the
/// TCP layer, say, can be borrowed beside it).
macro_rules! out_ctx {
    ($s:ident) => {
        OutCtx {
            core: &mut $s.core,
            ip4: &mut $s.ip4,
            arp: &mut $s.arp,
            ip6: &mut $s.ip6,
            ndp: &mut $s.ndp,
            nd: &$s.nd,
        }
    };
}

impl OutCtx<'_> {
    /// Builds and sends one IPv4 datagram whose transport part (`l4_len`
    /// bytes) `write` writes in place (given the addresses, for the
    /// pseudo-header). Fragments it if it does not fit and DF is clear.
    fn send(
        &mut self,
        out: Out4,
        l4_len: usize,
        write: impl FnOnce(&mut [u8], Ipv4Addr, Ipv4Addr),
    ) -> Result<(), Errno> {
        self.send_with(out, &[], l4_len, false, write)
    }

    /// [`OutCtx::send`] with IPv4 options (`opts`: padded to whole words,
    /// at most 40 bytes): what an answer that echoes a request's options
    /// sends.
    fn send_with_options(
        &mut self,
        out: Out4,
        opts: &[u8],
        l4_len: usize,
        write: impl FnOnce(&mut [u8], Ipv4Addr, Ipv4Addr),
    ) -> Result<(), Errno> {
        self.send_with(out, opts, l4_len, false, write)
    }

    /// [`OutCtx::send`]; `opts`: IPv4 options, in the first fragment
    /// whole and in later ones only the copied ones (Linux's
    /// `ip_options_fragment`); `overwrites`: `write` writes every byte of
    /// the transport part, so an unfragmented frame need not be zeroed
    /// first. Inline: `out` stays in registers rather than being written
    /// narrow and read wide (and no options folds away).
    #[inline]
    fn send_with(
        &mut self,
        out: Out4,
        opts: &[u8],
        l4_len: usize,
        overwrites: bool,
        write: impl FnOnce(&mut [u8], Ipv4Addr, Ipv4Addr),
    ) -> Result<(), Errno> {
        let hlen = ipv4::HEADER_LEN + opts.len();
        let total = hlen + l4_len;
        if total > 65535 {
            return Err(Errno::EMSGSIZE);
        }
        let mtu = usize::from(out.route.mtu);
        let src = out.route.src;
        let df = out.dont_fragment && !out.route.pmtu_locked;
        if total > mtu && df {
            return Err(Errno::EMSGSIZE);
        }
        self.core.counters.increment(Counter::IpOutRequests);
        let ident = if df && total <= mtu {
            0
        } else {
            self.ip4.next_ident(&src, &out.dst, out.proto) as u16
        };
        let mut b = Ipv4Builder::new(src, out.dst, out.proto);
        b.ttl = out.ttl;
        b.dscp = out.tos >> 2;
        b.ecn = out.tos & 3;
        b.ident = ident;
        b.dont_fragment = df;
        b.options = opts;
        let mac = self.core.device.mac;
        if total <= mtu {
            // Ethernet and IPv4 headers are written in full below.
            let mut f = if overwrites {
                Frame::from_vec(self.core.pool.get_dirty(ETH_HLEN + total))
            } else {
                self.core.pool.frame(ETH_HLEN + total)
            };
            write(&mut f.as_mut_slice()[ETH_HLEN + hlen..], src, out.dst);
            let _ = b.emit(&mut f.as_mut_slice()[ETH_HLEN..]);
            f.set_ethernet(Mac::ZERO, mac, EtherType::IPV4);
            self.dispatch(f, out.route, out.dst);
            return Ok(());
        }
        let mut whole = self.core.pool.get(l4_len);
        write(&mut whole, src, out.dst);
        let mut later = [0u8; options::MAX_LEN];
        let later_len = options::for_later_fragments(opts, &mut later);
        let mut n = 0;
        for (off, len, more) in fragment::plan(l4_len, mtu.saturating_sub(hlen)) {
            if off != 0 {
                b.options = &later[..later_len];
            }
            let mut f = self.core.pool.frame(ETH_HLEN + hlen + len);
            f.as_mut_slice()[ETH_HLEN + hlen..].copy_from_slice(&whole[off..off + len]);
            b.fragment_offset = off as u16;
            b.more_fragments = more;
            let _ = b.emit(&mut f.as_mut_slice()[ETH_HLEN..]);
            f.set_ethernet(Mac::ZERO, mac, EtherType::IPV4);
            self.dispatch(f, out.route, out.dst);
            n += 1;
        }
        self.core.pool.put(whole);
        self.core.counters.increment(Counter::IpFragOKs);
        self.core.counters.add(Counter::IpFragCreates, n);
        Ok(())
    }

    /// Hands a built frame to its next hop.
    fn dispatch(&mut self, mut f: Frame, route: RouteResult<Ipv4>, dst: Ipv4Addr) {
        match route.next_hop {
            NextHop::Local => self.core.loopback.push_back(f),
            NextHop::Broadcast | NextHop::Multicast => {
                let (mac, counter) = if route.next_hop == NextHop::Broadcast {
                    (Mac::BROADCAST, Counter::IpOutBcastPkts)
                } else {
                    (
                        dst.multicast_mac().unwrap_or(Mac::BROADCAST),
                        Counter::IpOutMcastPkts,
                    )
                };
                self.core.counters.increment(counter);
                f.set_dst_mac(mac);
                // Linux loops broadcasts, and multicast to a joined group
                // (IP_MULTICAST_LOOP), back to local sockets.
                if route.next_hop == NextHop::Broadcast || self.ip4.is_joined(&dst) {
                    let mut copy = self.core.pool.frame(f.len());
                    copy.as_mut_slice().copy_from_slice(f.as_slice());
                    self.core.loopback.push_back(copy);
                }
                self.core.push_tx(f);
            }
            NextHop::Neighbor(nh) => {
                let src = route.src;
                let mut ctx = ArpCtx {
                    core: &mut *self.core,
                    ip: &*self.ip4,
                    external: self.arp.config().external,
                };
                self.arp.send(&mut ctx, nh, f, Some(src));
            }
        }
    }
}

/// TCP's context: the clock, randomness, counters, events, routes and
/// IPv4 output. Lent to the closure of [`Stack::tcp`] so that every call
/// of [`TcpLayer`]'s socket API works through the facade.
pub struct TcpCtx<'a> {
    out: OutCtx<'a>,
}

impl InstantContext for TcpCtx<'_> {
    fn now(&self) -> Instant {
        self.out.core.now
    }
}

impl RngContext for TcpCtx<'_> {
    fn random_u64(&mut self) -> u64 {
        self.out.core.rng.next_u64()
    }
}

impl TcpContext for TcpCtx<'_> {
    fn count(&mut self, counter: TcpCounter, n: u64) {
        let c = &mut self.out.core.tcp_counters[counter as usize];
        *c = c.wrapping_add(n);
    }
    fn event(&mut self, event: TcpEvent) {
        self.out.core.emit(Event::Tcp(event));
    }
    fn route(&mut self, dst: tcp::IpAddr, src: Option<tcp::IpAddr>) -> Option<tcp::Route> {
        let d = match dst {
            tcp::IpAddr::V4(d) => d,
            tcp::IpAddr::V6(d) => {
                let src = match src {
                    Some(tcp::IpAddr::V6(s)) => Some(s),
                    Some(tcp::IpAddr::V4(_)) => return None,
                    None => None,
                };
                let r = self.out.route6(&d, src).ok()?;
                return Some(tcp::Route {
                    src: tcp::IpAddr::V6(r.src),
                    mtu: r.mtu,
                });
            }
        };
        let src = match src {
            Some(tcp::IpAddr::V4(s)) => Some(s),
            Some(tcp::IpAddr::V6(_)) => return None,
            None => None,
        };
        let core = &self.out.core;
        let r = self
            .out
            .ip4
            .route(&d, src, core.device.mtu, core.now)
            .ok()?;
        // tcp_v4_connect: a broadcast route (the subnet's broadcast
        // address too, not only 255.255.255.255) is ENETUNREACH.
        if r.is_broadcast() {
            return None;
        }
        Some(tcp::Route {
            src: tcp::IpAddr::V4(r.src),
            mtu: r.mtu,
        })
    }
    fn is_local_addr(&self, addr: tcp::IpAddr) -> bool {
        match addr {
            tcp::IpAddr::V4(a) => self.out.ip4.is_local(&a),
            tcp::IpAddr::V6(a) => self.out.ip6.is_local(&a),
        }
    }
    fn send(&mut self, tx: Transmit, write: impl FnOnce(&mut [u8])) -> Result<(), SendError> {
        let (src, dst) = match (tx.src, tx.dst) {
            (tcp::IpAddr::V4(s), tcp::IpAddr::V4(d)) => (s, d),
            (tcp::IpAddr::V6(s), tcp::IpAddr::V6(d)) => return self.out.send_tcp6(tx, s, d, write),
            _ => return Err(SendError::Unreachable),
        };
        if self.out.core.tx.len() >= self.out.core.tx_limit {
            return Err(SendError::NoBuffer);
        }
        let core = &self.out.core;
        let r = match self.out.ip4.cached_route(&dst, Some(src), core.device.mtu) {
            Some(r) => *r,
            None => self
                .out
                .ip4
                .route_cached(&dst, Some(src), core.device.mtu, core.now)
                .map_err(|_| SendError::Unreachable)?,
        };
        // Rebuilt from whole words: copied as it is, the byte-aligned
        // struct is written in odd pieces and read back across them (a
        // store-forwarding stall on every segment).
        let word = |a: Ipv4Addr| Ipv4Addr::from_bits(a.to_bits());
        let route = RouteResult {
            src: word(r.src),
            next_hop: match r.next_hop {
                NextHop::Neighbor(a) => NextHop::Neighbor(word(a)),
                n => n,
            },
            mtu: r.mtu,
            pmtu_locked: r.pmtu_locked,
        };
        let ttl = if tx.ttl == 0 {
            self.out.ip4.default_ttl
        } else {
            tx.ttl
        };
        let out = Out4 {
            route,
            dst,
            proto: IpProto::TCP,
            ttl,
            tos: tx.tos,
            dont_fragment: true,
        };
        // TCP writes its whole segment (header, options, payload).
        self.out
            .send_with(out, &[], tx.len, true, |buf, _, _| write(buf))
            .map_err(|_| SendError::NoBuffer)
    }

    /// The first frame goes the whole way (route, neighbour, headers).
    /// If it went straight to the device queue, unfragmented, with DF and
    /// no identification, the later ones (same addresses, same length)
    /// have its Ethernet and IPv4 headers byte for byte: copied.
    fn send_run(
        &mut self,
        tx: Transmit,
        n: usize,
        mut write: impl FnMut(usize, &mut [u8]),
    ) -> usize {
        if n == 0 {
            return 0;
        }
        let queued = self.out.core.tx.len();
        let looped = self.out.core.loopback.len();
        if self.send(tx, |b| write(0, b)).is_err() {
            return 0;
        }
        const HL: usize = ETH_HLEN + ipv4::HEADER_LEN;
        let flen = HL + tx.len;
        let core = &mut *self.out.core;
        let first = match core.tx.back() {
            Some(f)
                if tx.src.is_v4()
                    && core.tx.len() == queued + 1
                    && core.loopback.len() == looped
                    && f.len() == flen
                    && f.as_slice()[ETH_HLEN + 4..ETH_HLEN + 8] == [0, 0, 0x40, 0] =>
            {
                f
            }
            _ => {
                for i in 1..n {
                    if self.send(tx, |b| write(i, b)).is_err() {
                        return i;
                    }
                }
                return n;
            }
        };
        let mut hdr = [0u8; HL];
        hdr.copy_from_slice(&first.as_slice()[..HL]);
        for i in 1..n {
            if core.tx.len() >= core.tx_limit {
                return i;
            }
            let mut f = Frame::from_vec(core.pool.get_dirty(flen));
            let b = f.as_mut_slice();
            b[..HL].copy_from_slice(&hdr);
            write(i, &mut b[HL..]);
            core.counters.increment(Counter::IpOutRequests);
            core.push_tx(f);
        }
        n
    }
}

/// Loopback packets processed per call before the rest waits for the next
/// call (two sockets of ours answering each other forever must not hang
/// the driver).
const LOOPBACK_BUDGET: usize = 256;

/// shunt's stack for one Ethernet interface.
pub struct Stack {
    core: Core,
    ip4: IpLayer<Ipv4>,
    arp: NeighborTable<Ipv4>,
    icmp4: IcmpState<Ipv4>,
    udp4: UdpSockets<Ipv4>,
    ip6: IpLayer<Ipv6>,
    ndp: NeighborTable<Ipv6>,
    icmp6: IcmpState<Ipv6>,
    udp6: UdpSockets<Ipv6>,
    udp_cork: Corks<UdpHandle>,
    nd: NdState,
    tcp: TcpLayer,
}

fn v4_of(a: SocketAddr) -> Result<(Ipv4Addr, u16), Errno> {
    match a {
        SocketAddr::V4(a) => Ok(((*a.ip()).into(), a.port())),
        SocketAddr::V6(_) => Err(Errno::EAFNOSUPPORT),
    }
}

fn sa((a, p): (Ipv4Addr, u16)) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(a.into(), p))
}

fn sa6((a, p): (Ipv6Addr, u16)) -> SocketAddr {
    SocketAddr::V6(std::net::SocketAddrV6::new(a.into(), p, 0, 0))
}

impl Stack {
    pub fn new(config: StackConfig) -> Stack {
        let mut rng = StackRng::new(config.seed);
        let mut device = Device::new(config.mac, config.mtu);
        let mut ip4 = IpLayer::new(rng.next_u64());
        // Drawn after everything IPv4 draws, so that IPv4's choices are
        // the same as before IPv6 existed.
        let rng_seed6 = rng.clone().next_u64() ^ 0x6666_6666_6666_6666;
        // Every IPv4 host is in the all-systems group (RFC 1112).
        ip4.join_group(Ipv4Addr::ALL_SYSTEMS);
        if let Some(m) = Ipv4Addr::ALL_SYSTEMS.multicast_mac() {
            device.join_group(m);
        }
        let frame_cap = usize::from(config.mtu) + ETH_HLEN;
        let mut core = Core {
            now: Instant::ZERO,
            wall_at_zero: None,
            timers: TimerQueue::default(),
            counters: Counters::default(),
            events: VecDeque::new(),
            record_events: config.record_events,
            rng,
            pool: BufPool::new(frame_cap, 4096),
            tx: VecDeque::with_capacity(config.tx_queue_len),
            tx_limit: config.tx_queue_len,
            loopback: VecDeque::new(),
            deferred: VecDeque::new(),
            device,
            echo_replies: VecDeque::new(),
            echo6_replies: VecDeque::new(),
            tcp_counters: [0; TcpCounter::COUNT],
            neighbor_wants: Vec::new(),
        };
        let table_seed = crate::fasthash::mix_seed(config.seed ^ 0x6e65_6967_6862_6f72);
        let mut arp = NeighborTable::with_seed(config.neighbor, table_seed);
        let mut ip6 = IpLayer::new(rng_seed6);
        let mut ndp = NeighborTable::with_seed(config.neighbor, table_seed.rotate_left(32));
        let nd = NdState::new(config.ipv6);
        let tcp = TcpLayer::new(
            TcpConfig::default(),
            &mut TcpCtx {
                out: OutCtx {
                    core: &mut core,
                    ip4: &mut ip4,
                    arp: &mut arp,
                    ip6: &mut ip6,
                    ndp: &mut ndp,
                    nd: &nd,
                },
            },
        );
        Stack {
            core,
            ip4,
            arp,
            icmp4: IcmpState::default(),
            udp4: UdpSockets::default(),
            ip6,
            ndp,
            icmp6: IcmpState::default(),
            udp6: UdpSockets::default(),
            udp_cork: Corks::default(),
            nd,
            tcp,
        }
    }

    pub fn mac(&self) -> Mac {
        self.core.device.mac
    }

    pub fn mtu(&self) -> u16 {
        self.core.device.mtu
    }

    pub fn counters(&self) -> &Counters {
        &self.core.counters
    }

    /// The wall clock: Unix time in nanoseconds at `Instant::ZERO`. Only
    /// timestamps sent on the wire use it (ICMP timestamp replies, IPv4
    /// timestamp options: milliseconds since midnight UT); without it they
    /// carry the monotonic time with the high-order bit set (RFC 791).
    pub fn set_wall_clock(&mut self, unix_nanos_at_zero: u64) {
        self.core.wall_at_zero = Some(unix_nanos_at_zero);
    }

    /// The next observable state change, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.events.pop_front()
    }

    /// The IPv4 layer, read-only (addresses, routes, PMTU cache).
    pub fn ipv4(&self) -> &IpLayer<Ipv4> {
        &self.ip4
    }

    /// `ip neigh show`.
    pub fn neighbors(&self) -> Vec<NeighborInfo<Ipv4>> {
        self.arp.iter().collect()
    }

    /// ICMP settings (`icmp_echo_ignore_broadcasts`, rate limits).
    pub fn icmp4_mut(&mut self) -> &mut IcmpState<Ipv4> {
        &mut self.icmp4
    }

    fn arp_ctx(&mut self) -> (&mut NeighborTable<Ipv4>, ArpCtx<'_>) {
        let external = self.arp.config().external;
        (
            &mut self.arp,
            ArpCtx {
                external,
                core: &mut self.core,
                ip: &self.ip4,
            },
        )
    }

    fn udp_ctx(&mut self) -> (&mut UdpSockets<Ipv4>, UdpCtx<'_>) {
        let mtu6 = self.mtu6();
        (
            &mut self.udp4,
            UdpCtx {
                core: &mut self.core,
                ip4: &self.ip4,
                ip6: &self.ip6,
                mtu6,
            },
        )
    }

    fn udp6_ctx(&mut self) -> (&mut UdpSockets<Ipv6>, UdpCtx<'_>) {
        let mtu6 = self.mtu6();
        (
            &mut self.udp6,
            UdpCtx {
                core: &mut self.core,
                ip4: &self.ip4,
                ip6: &self.ip6,
                mtu6,
            },
        )
    }

    // ------------------------------------------------------------------
    // Configuration.

    /// `ip addr add ADDR/PREFIX`: the address, its prefix route, and a
    /// gratuitous ARP announcing it.
    pub fn add_ipv4_address(
        &mut self,
        addr: Ipv4Addr,
        prefix: u8,
        now: Instant,
    ) -> Result<(), Errno> {
        self.core.now = now;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_limited_broadcast() {
            return Err(Errno::EINVAL);
        }
        let entry = AddrEntry::v4(addr, prefix).ok_or(Errno::EINVAL)?;
        self.ip4.add_addr(entry)?;
        self.core.emit(Event::AddressAdded {
            addr: addr.to_std(),
            prefix,
        });
        if let Some(s) = entry.subnet {
            self.core.emit(Event::RouteAdded {
                dst: s.network().to_std(),
                prefix: s.prefix(),
                gateway: None,
            });
        }
        // An external resolver's stack owns the address and announced it.
        if !self.arp.config().external {
            let (_, mut ctx) = self.arp_ctx();
            arp::announce(&mut ctx, addr);
        }
        Ok(())
    }

    pub fn remove_ipv4_address(&mut self, addr: Ipv4Addr) -> Result<(), Errno> {
        let e = self.ip4.remove_addr(&addr).ok_or(Errno::EADDRNOTAVAIL)?;
        self.core.emit(Event::AddressRemoved {
            addr: addr.to_std(),
        });
        if let Some(s) = e.subnet {
            self.core.emit(Event::RouteRemoved {
                dst: s.network().to_std(),
                prefix: s.prefix(),
                gateway: None,
            });
        }
        Ok(())
    }

    /// `ip route add`.
    pub fn add_ipv4_route(&mut self, route: Route<Ipv4>) -> Result<(), Errno> {
        self.ip4.routes.add(route).map_err(|_| Errno::EEXIST)?;
        self.core.emit(Event::RouteAdded {
            dst: route.subnet.network().to_std(),
            prefix: route.subnet.prefix(),
            gateway: route.gateway.map(|g| g.to_std()),
        });
        Ok(())
    }

    /// `ip route add default via GW`.
    pub fn set_ipv4_gateway(&mut self, gateway: Ipv4Addr) -> Result<(), Errno> {
        self.add_ipv4_route(Route::default_via(gateway))
    }

    /// `ip neigh replace ADDR lladdr MAC nud permanent`.
    pub fn add_static_neighbor(&mut self, addr: Ipv4Addr, mac: Mac, now: Instant) {
        self.core.now = now;
        let (t, mut ctx) = self.arp_ctx();
        t.add_static(&mut ctx, addr, mac);
        self.run_deferred();
    }

    /// What an external resolver ([`NeighborConfig::external`]) reports
    /// about a neighbour: frames waiting for it go out (or fail).
    pub fn set_external_neighbor(&mut self, addr: IpAddr, report: ExternalNeighbor, now: Instant) {
        self.core.now = now;
        match addr {
            IpAddr::V4(a) => {
                let (t, mut ctx) = self.arp_ctx();
                t.set_external(&mut ctx, a.into(), report);
            }
            IpAddr::V6(a) => {
                let (t, mut ctx) = self.ndp_ctx();
                t.set_external(&mut ctx, a.into(), report);
            }
        }
        self.run_deferred();
    }

    /// Moves the neighbours the stack needs resolved to `out`
    /// ([`NeighborConfig::external`]: the driver asks the resolver; its
    /// answers come back through [`Stack::set_external_neighbor`]).
    pub fn drain_neighbor_wants(&mut self, out: &mut Vec<IpAddr>) {
        out.append(&mut self.core.neighbor_wants);
    }

    /// Whether [`Stack::drain_neighbor_wants`] has anything.
    pub fn has_neighbor_wants(&self) -> bool {
        !self.core.neighbor_wants.is_empty()
    }

    /// `IP_ADD_MEMBERSHIP` (no IGMP reports yet).
    pub fn join_ipv4_group(&mut self, group: Ipv4Addr) -> Result<(), Errno> {
        if !group.is_multicast() {
            return Err(Errno::EINVAL);
        }
        if self.ip4.join_group(group) {
            if let Some(m) = group.multicast_mac() {
                self.core.device.join_group(m);
            }
        }
        Ok(())
    }

    pub fn leave_ipv4_group(&mut self, group: Ipv4Addr) -> Result<(), Errno> {
        if !self.ip4.is_joined(&group) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        if self.ip4.leave_group(&group) {
            if let Some(m) = group.multicast_mac() {
                self.core.device.leave_group(m);
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Driving.

    /// A frame from the device.
    pub fn receive(&mut self, frame: &[u8], offload: RxOffload, now: Instant) {
        self.core.now = now;
        self.receive_frame(frame, offload);
        self.run_deferred();
    }

    /// A burst of received frames: `f` calls [`Stack::receive`] for each
    /// frame the device has ready, and the ACKs that in-order data owes
    /// go out once at the end, at most every 64 KiB (Linux acknowledges a
    /// GRO packet once) instead of after every second segment.
    pub fn receive_burst<R>(&mut self, now: Instant, f: impl FnOnce(&mut Stack) -> R) -> R {
        self.tcp.begin_burst();
        let r = f(self);
        self.tcp(now.max(self.core.now), |t, cx| t.end_burst(cx));
        r
    }

    fn receive_frame(&mut self, frame: &[u8], offload: RxOffload) {
        self.core.counters.increment(Counter::EthInFrames);
        let Ok(eth) = EthernetFrame::parse(frame) else {
            self.core.counters.increment(Counter::EthInMalformed);
            return;
        };
        if eth.src().is_multicast() {
            self.core.counters.increment(Counter::EthInBadSrc);
            return;
        }
        let Some(pkt_type) = self.core.device.classify(eth.dst()) else {
            self.core.counters.increment(Counter::EthInOtherHost);
            return;
        };
        match eth.ethertype() {
            EtherType::ARP => {
                let (t, mut ctx) = self.arp_ctx();
                arp::receive(t, &mut ctx, pkt_type, eth.payload());
            }
            EtherType::IPV4 => self.receive_ipv4(eth.payload(), pkt_type, offload),
            EtherType::IPV6 => self.receive_ipv6(eth.payload(), pkt_type, offload),
            _ => self.core.counters.increment(Counter::EthInUnknownType),
        }
    }

    /// Frames ready for the device, oldest first: copies the next one into
    /// `buf` and returns its length. A frame longer than `buf` is dropped
    /// (`EthOutDrops`).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.transmit_with(now, |frame| {
            let n = frame.len();
            if n > buf.len() {
                return None;
            }
            buf[..n].copy_from_slice(frame);
            Some(n)
        })
        .map(|r| {
            r.or_else(|| {
                self.core.counters.increment(Counter::EthOutDrops);
                Some(0)
            })
        })
        .and_then(|r| match r {
            Some(0) => self.poll_transmit(now, buf),
            r => r,
        })
    }

    /// The next frame ready for the device, lent to `f` (which writes it
    /// straight into a TX ring slot): no copy here at all.
    pub fn transmit_with<R>(&mut self, now: Instant, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.core.now = now;
        self.run_deferred();
        let frame = self.core.tx.pop_front()?;
        let r = f(frame.as_slice());
        self.core.pool.put_frame(frame);
        Some(r)
    }

    /// Frames waiting for the device.
    pub fn tx_pending(&self) -> usize {
        self.core.tx.len()
    }

    /// When `on_timer` wants to be called next.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        if !self.core.loopback.is_empty() || !self.core.deferred.is_empty() {
            return Some(self.core.now);
        }
        let t = self.core.timers.next_deadline();
        match (t, self.tcp.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every timer due at `now`.
    pub fn on_timer(&mut self, now: Instant) {
        self.core.now = self.core.now.max(now);
        while let Some((_, id)) = self.core.timers.pop_due(now) {
            match id {
                TimerId::Neighbor4(a) => {
                    let (t, mut ctx) = self.arp_ctx();
                    t.handle_timer(&mut ctx, a);
                }
                TimerId::Neighbor6(a) => {
                    let (t, mut ctx) = self.ndp_ctx();
                    t.handle_timer(&mut ctx, a);
                }
                TimerId::Reasm6(key) => self.reasm6_timeout(key),
                TimerId::Nd(t) => self.nd_timer(t),
                TimerId::Reasm4(key) => {
                    if let Some(quote) = self.ip4.reasm.handle_timer(&mut self.core, &key) {
                        let group = self.ip4.classify_dst(&key.dst) != Some(DstKind::Local);
                        self.send_icmp4_error(
                            IcmpErrorKind::ReassemblyTimeout,
                            &quote,
                            PacketType::Host,
                            group,
                        );
                    }
                }
            }
        }
        if self.tcp.next_deadline().is_some_and(|t| t <= now) {
            let mut ctx = TcpCtx {
                out: out_ctx!(self),
            };
            self.tcp.on_timer(&mut ctx);
        }
        self.run_deferred();
    }

    /// Deferred work and the loopback queue, at top level.
    #[inline]
    fn run_deferred(&mut self) {
        // After every frame in and out: usually nothing to do.
        if self.core.deferred.is_empty() && self.core.loopback.is_empty() {
            return;
        }
        self.run_deferred_queues();
    }

    fn run_deferred_queues(&mut self) {
        let mut budget = LOOPBACK_BUDGET;
        loop {
            if let Some(d) = self.core.deferred.pop_front() {
                match d {
                    Deferred::Unresolved4(frame) => {
                        self.send_icmp4_error(
                            IcmpErrorKind::HostUnreachable,
                            frame.packet(),
                            PacketType::Host,
                            false,
                        );
                        self.core.pool.put_frame(frame);
                    }
                    Deferred::Unresolved6(frame) => {
                        self.send_icmp6_error(
                            v6::ErrorMsg::Kind(IcmpErrorKind::HostUnreachable),
                            frame.packet(),
                            PacketType::Host,
                            false,
                        );
                        self.core.pool.put_frame(frame);
                    }
                }
                continue;
            }
            if budget == 0 {
                return;
            }
            let Some(frame) = self.core.loopback.pop_front() else {
                return;
            };
            budget -= 1;
            if frame.as_slice().get(12..14) == Some(&EtherType::IPV6.0.to_be_bytes()[..]) {
                self.receive_ipv6(frame.packet(), PacketType::Loopback, RxOffload::Verified);
            } else {
                self.receive_ipv4(frame.packet(), PacketType::Loopback, RxOffload::Verified);
            }
            self.core.pool.put_frame(frame);
        }
    }

    // ------------------------------------------------------------------
    // IPv4 receive.

    fn receive_ipv4(&mut self, bytes: &[u8], pkt_type: PacketType, offload: RxOffload) {
        let c = &mut self.core.counters;
        c.increment(Counter::IpInReceives);
        let p = match Ipv4Packet::parse(bytes) {
            Ok(p) => p,
            Err(ParseError::Truncated) if bytes.len() >= ipv4::HEADER_LEN => {
                c.increment(Counter::IpInTruncatedPkts);
                return;
            }
            Err(ParseError::BadChecksum) => {
                c.increment(Counter::IpInCsumErrors);
                c.increment(Counter::IpInHdrErrors);
                return;
            }
            Err(_) => {
                c.increment(Counter::IpInHdrErrors);
                return;
            }
        };
        let (src, dst) = (p.src(), p.dst());
        let Some(kind) = self.ip4.classify_dst(&dst) else {
            c.increment(Counter::IpInAddrErrors);
            return;
        };
        let from_wire = pkt_type != PacketType::Loopback;
        let bad_src = <Ipv4 as crate::ip_layer::IpExt>::is_martian_source(&src)
            || (src.is_unspecified() && kind != DstKind::Broadcast)
            || (from_wire && self.ip4.is_local(&src));
        if bad_src {
            c.increment(Counter::IpInMartianSrc);
            return;
        }
        match kind {
            DstKind::Broadcast => c.increment(Counter::IpInBcastPkts),
            DstKind::Multicast => c.increment(Counter::IpInMcastPkts),
            DstKind::Local => {}
        }
        if p.header_len() > ipv4::HEADER_LEN {
            let mut opts = [0u8; options::MAX_LEN];
            let raw = p.options_bytes();
            let opts = &mut opts[..raw.len()];
            opts.copy_from_slice(raw);
            match options::compile(opts, None) {
                Err(pointer) => {
                    self.core.counters.increment(Counter::IpInHdrErrors);
                    self.send_icmp4_error(
                        IcmpErrorKind::ParameterProblem {
                            pointer: pointer as u32,
                        },
                        p.as_bytes(),
                        pkt_type,
                        kind != DstKind::Local,
                    );
                    return;
                }
                // accept_source_route 0: dropped silently.
                Ok(c) if c.source_route => return,
                Ok(_) => {}
            }
        }
        if p.is_fragment() {
            let key = FragKey {
                src,
                dst,
                id: u32::from(p.ident()),
                proto: p.protocol(),
            };
            let frag = Fragment {
                offset: usize::from(p.fragment_offset()),
                more: p.more_fragments(),
                header: p.header_bytes(),
                payload: p.payload(),
            };
            let Outcome::Complete(r) = self.ip4.reasm.insert(&mut self.core, key, frag) else {
                return;
            };
            let Ok(first) = Ipv4Packet::parse_quote(&r.header) else {
                return;
            };
            let mut b = first.builder();
            b.more_fragments = false;
            b.fragment_offset = 0;
            let mut buf = self.core.pool.get(r.header.len() + r.payload.len());
            buf[r.header.len()..].copy_from_slice(&r.payload);
            if b.emit(&mut buf).is_ok() {
                if let Ok(whole) = Ipv4Packet::parse(&buf) {
                    self.deliver_ipv4(&whole, pkt_type, kind, RxOffload::None);
                }
            }
            self.core.pool.put(buf);
            return;
        }
        self.deliver_ipv4(&p, pkt_type, kind, offload);
    }

    fn deliver_ipv4(
        &mut self,
        p: &Ipv4Packet<'_>,
        pkt_type: PacketType,
        kind: DstKind,
        offload: RxOffload,
    ) {
        match p.protocol() {
            IpProto::ICMP => self.receive_icmp4(p, pkt_type, kind),
            IpProto::UDP => self.receive_udp4(p, pkt_type, kind, offload),
            IpProto::TCP => self.receive_tcp4(p, kind, offload),
            _ => {
                self.core.counters.increment(Counter::IpInUnknownProtos);
                self.send_icmp4_error(
                    IcmpErrorKind::ProtocolUnreachable { pointer: 9 },
                    p.as_bytes(),
                    pkt_type,
                    kind != DstKind::Local,
                );
                return;
            }
        }
        self.core.counters.increment(Counter::IpInDelivers);
    }

    fn receive_udp4(
        &mut self,
        p: &Ipv4Packet<'_>,
        pkt_type: PacketType,
        kind: DstKind,
        offload: RxOffload,
    ) {
        let (src, dst) = (p.src(), p.dst());
        let parsed = if offload.verify_l4() {
            UdpPacket::parse(p.payload(), &src, &dst)
        } else {
            UdpPacket::parse_unverified(p.payload())
        };
        let u = match parsed {
            Ok(u) => u,
            Err(e) => {
                if e == ParseError::BadChecksum {
                    self.core.counters.increment(Counter::UdpInCsumErrors);
                }
                self.core.counters.increment(Counter::UdpInErrors);
                return;
            }
        };
        let group = kind != DstKind::Local;
        let info = RxInfo {
            tos: p.dscp() << 2 | p.ecn(),
            ttl: p.ttl(),
            at: self.core.now,
        };
        let (sockets, mut ctx) = self.udp_ctx();
        let (sp, dp) = (u.src_port(), u.dst_port());
        let mut d = sockets.deliver_with(&mut ctx, (src, sp), (dst, dp), group, u.payload(), info);
        if d == Delivery::NoSocket {
            // A dual-stack IPv6 socket takes IPv4 datagrams, v4-mapped.
            let (sockets, mut ctx) = self.udp6_ctx();
            let (s6, d6) = (src.to_ipv6_mapped(), dst.to_ipv6_mapped());
            d = sockets.deliver_with(&mut ctx, (s6, sp), (d6, dp), group, u.payload(), info);
        }
        if d == Delivery::NoSocket {
            if group {
                self.core.counters.increment(Counter::UdpIgnoredMulti);
            } else {
                self.core.counters.increment(Counter::UdpNoPorts);
                self.send_icmp4_error(
                    IcmpErrorKind::PortUnreachable,
                    p.as_bytes(),
                    pkt_type,
                    false,
                );
            }
        }
    }

    /// TCP segments go to [`TcpLayer`] (which answers closed ports with
    /// RST as Linux does); never from a broadcast or multicast (Linux:
    /// `pkt_type != PACKET_HOST` is discarded before counting).
    fn receive_tcp4(&mut self, p: &Ipv4Packet<'_>, kind: DstKind, offload: RxOffload) {
        if kind != DstKind::Local {
            return;
        }
        let (src, dst) = (tcp::IpAddr::V4(p.src()), tcp::IpAddr::V4(p.dst()));
        let mut ctx = TcpCtx {
            out: out_ctx!(self),
        };
        self.tcp
            .receive(&mut ctx, src, dst, p.payload(), !offload.verify_l4());
    }

    fn receive_icmp4(&mut self, p: &Ipv4Packet<'_>, pkt_type: PacketType, kind: DstKind) {
        let c = &mut self.core.counters;
        c.increment(Counter::IcmpInMsgs);
        let msg = match Icmpv4Packet::parse(p.payload()) {
            Ok(m) => m.message(),
            Err(e) => {
                if e == ParseError::BadChecksum {
                    c.increment(Counter::IcmpInCsumErrors);
                }
                c.increment(Counter::IcmpInErrors);
                return;
            }
        };
        let t = msg.msg_type();
        if let Some(k) = icmp::v4::in_counter(t) {
            c.increment(k);
        }
        if t > icmp::v4::NR_ICMP_TYPES {
            c.increment(Counter::IcmpInErrors);
            return;
        }
        if kind != DstKind::Local {
            let echo_like = matches!(
                t,
                icmpv4::msg_type::ECHO_REQUEST | icmpv4::msg_type::TIMESTAMP
            );
            if !echo_like || self.icmp4.echo_ignore_broadcasts {
                c.increment(Counter::IcmpInErrors);
                return;
            }
        }
        match msg {
            Icmpv4Message::EchoRequest { ident, seq, data } => {
                if self.icmp4.echo_ignore_all {
                    return;
                }
                let reply = Icmpv4Message::EchoReply { ident, seq, data };
                self.icmp4_reply(p, kind, &reply, Counter::IcmpOutEchoReps);
            }
            Icmpv4Message::Other {
                msg_type: icmpv4::msg_type::TIMESTAMP,
                rest,
                body,
                ..
            } => {
                // Linux's icmp_timestamp: the originate timestamp must be
                // there; receive and transmit are the same instant.
                let Some(originate) = body.get(..4) else {
                    self.core.counters.increment(Counter::IcmpInErrors);
                    return;
                };
                let now = self.core.timestamp_ms().to_be_bytes();
                let mut times = [0u8; 12];
                times[..4].copy_from_slice(originate);
                times[4..8].copy_from_slice(&now);
                times[8..].copy_from_slice(&now);
                let reply = Icmpv4Message::Other {
                    msg_type: icmpv4::msg_type::TIMESTAMP_REPLY,
                    code: 0,
                    rest,
                    body: &times,
                };
                self.icmp4_reply(p, kind, &reply, Counter::IcmpOutTimestampReps);
            }
            Icmpv4Message::EchoReply { ident, seq, data } => {
                if self.core.echo_replies.len() < 1024 {
                    let data = data.to_vec();
                    self.core.echo_replies.push_back(EchoReply {
                        from: p.src(),
                        ident,
                        seq,
                        data,
                        ttl: p.ttl(),
                    });
                }
            }
            m => {
                if let Some((k, quote)) = icmp::v4::received_error(&m) {
                    let h = p.payload();
                    let origin = IcmpOrigin {
                        offender: p.src(),
                        icmp_type: h.first().copied().unwrap_or(0),
                        code: h.get(1).copied().unwrap_or(0),
                        info: match k {
                            IcmpErrorKind::PacketTooBig { mtu } => mtu,
                            IcmpErrorKind::ParameterProblem { pointer } => pointer,
                            _ => 0,
                        },
                        icmp6: false,
                    };
                    self.icmp4_error_received(k, quote, origin);
                }
            }
        }
        let _ = pkt_type;
    }

    /// Answers an echo or timestamp request (Linux's `icmp_reply`): from
    /// the address it was sent to (a broadcast one: the route's source),
    /// with its TOS, and with its Record Route and Timestamp options
    /// brought back (RFC 1122 3.2.2.6).
    fn icmp4_reply(
        &mut self,
        p: &Ipv4Packet<'_>,
        kind: DstKind,
        reply: &Icmpv4Message<'_>,
        counter: Counter,
    ) {
        let src = (kind == DstKind::Local).then(|| p.dst());
        let Ok(route) = self
            .ip4
            .route(&p.src(), src, self.core.device.mtu, self.core.now)
        else {
            return;
        };
        let mut opts = [0u8; options::MAX_LEN];
        let opts_len = if p.header_len() > ipv4::HEADER_LEN {
            match self.echo_options4(p, route.src, &mut opts) {
                Some(n) => n,
                None => return,
            }
        } else {
            0
        };
        self.core.counters.increment(Counter::IcmpOutMsgs);
        self.core.counters.increment(counter);
        let out = Out4 {
            route,
            dst: p.src(),
            proto: IpProto::ICMP,
            ttl: self.ip4.default_ttl,
            tos: p.dscp() << 2 | p.ecn(),
            dont_fragment: false,
        };
        let _ = self
            .out4()
            .send_with_options(out, &opts[..opts_len], reply.len(), |buf, _, _| {
                let _ = reply.emit(buf);
            });
    }

    /// The options of an answer to `p` from `reply_src` (see
    /// [`options::echo`]): `None` when Linux would not answer.
    fn echo_options4(
        &self,
        p: &Ipv4Packet<'_>,
        reply_src: Ipv4Addr,
        out: &mut [u8; options::MAX_LEN],
    ) -> Option<usize> {
        let ip4 = &self.ip4;
        let is_local = |a: Ipv4Addr| ip4.is_local(&a) || ip4.is_broadcast(&a) || a.is_multicast();
        let raw = p.options_bytes();
        let mut rx = [0u8; options::MAX_LEN];
        let rx = rx.get_mut(..raw.len())?;
        rx.copy_from_slice(raw);
        // Linux's spec_dst: the address the datagram reached us at.
        let spec_dst = if ip4.is_local(&p.dst()) {
            p.dst()
        } else {
            reply_src
        };
        let arrived = options::Recorder {
            addr: spec_dst,
            ms: self.core.timestamp_ms(),
            is_local: &is_local,
        };
        let c = options::compile(rx, Some(&arrived)).ok()?;
        let leaving = options::Recorder {
            addr: reply_src,
            ..arrived
        };
        options::echo(rx, &c, &leaving, out)
    }

    /// An ICMP error about a datagram we sent: path MTU, then the socket.
    fn icmp4_error_received(
        &mut self,
        kind: IcmpErrorKind,
        quote: &[u8],
        origin: IcmpOrigin<Ipv4Addr>,
    ) {
        let Ok(q) = Ipv4Packet::parse_quote(quote) else {
            self.core.counters.increment(Counter::IcmpInErrors);
            return;
        };
        // The transport header's first 8 bytes must be there (RFC 1122
        // 3.2.2; Linux checks the same).
        if q.payload().len() < 8 {
            return;
        }
        let Some((sport, dport)) = crate::wire::l4_ports(q.payload()) else {
            return;
        };
        let (local, remote) = ((q.src(), sport), (q.dst(), dport));
        let (errno, hard) = kind.errno();
        match q.protocol() {
            IpProto::UDP => {
                let Some(id) = self.udp4.lookup(&remote.0, remote.1, &local.0, local.1) else {
                    let (l6, r6) = (local.0.to_ipv6_mapped(), remote.0.to_ipv6_mapped());
                    if self.udp6.lookup(&r6, remote.1, &l6, local.1).is_some() {
                        if let IcmpErrorKind::PacketTooBig { mtu } = kind {
                            self.learn_pmtu(remote.0, mtu);
                        }
                        // A dual-stack socket's IP_RECVERR queues it,
                        // the offender v4-mapped (ipv6_recv_error).
                        let o6 = IcmpOrigin {
                            offender: origin.offender.to_ipv6_mapped(),
                            icmp_type: origin.icmp_type,
                            code: origin.code,
                            info: origin.info,
                            icmp6: false,
                        };
                        let ext = (o6, &q.payload()[8..]);
                        self.udp6.deliver_error_ext(
                            (l6, local.1),
                            (r6, remote.1),
                            errno,
                            hard,
                            Some(ext),
                        );
                    }
                    return;
                };
                if let IcmpErrorKind::PacketTooBig { mtu } = kind {
                    let dont = self
                        .udp4
                        .options(id)
                        .is_ok_and(|o| o.pmtudisc == PmtuDisc::Dont);
                    if dont {
                        return;
                    }
                    self.learn_pmtu(remote.0, mtu);
                }
                // IP_RECVERR gets the quoted payload, after the UDP header.
                let ext = (origin, &q.payload()[8..]);
                self.udp4
                    .deliver_error_ext(local, remote, errno, hard, Some(ext));
            }
            IpProto::TCP => {
                let err = match kind {
                    IcmpErrorKind::PacketTooBig { mtu } => {
                        self.learn_pmtu(remote.0, mtu);
                        tcp::IcmpError::PacketTooBig {
                            mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
                        }
                    }
                    _ => tcp::IcmpError::Unreachable { errno, fatal: hard },
                };
                let (src, dst) = (tcp::IpAddr::V4(local.0), tcp::IpAddr::V4(remote.0));
                let mut ctx = TcpCtx {
                    out: out_ctx!(self),
                };
                self.tcp.on_icmp_error(&mut ctx, src, dst, q.payload(), err);
            }
            _ => {}
        }
    }

    fn learn_pmtu(&mut self, dst: Ipv4Addr, mtu: u32) {
        let reported = u16::try_from(mtu).unwrap_or(u16::MAX);
        let link = self.core.device.mtu;
        if let Some(m) = self.ip4.pmtu.update(dst, reported, link, self.core.now) {
            self.core.emit(Event::PathMtu {
                dst: dst.to_std(),
                mtu: m,
            });
        }
    }

    // ------------------------------------------------------------------
    // IPv4 output.

    /// Sends an ICMP error about `offending` (an IP datagram, header
    /// first), if the rules and the rate limiter allow.
    fn send_icmp4_error(
        &mut self,
        kind: IcmpErrorKind,
        offending: &[u8],
        pkt_type: PacketType,
        dst_is_group: bool,
    ) {
        let Ok(p) = Ipv4Packet::parse_quote(offending) else {
            return;
        };
        let is_icmp_error = p.protocol() == IpProto::ICMP
            && p.fragment_offset() == 0
            && p.payload()
                .first()
                .is_some_and(|&t| icmpv4::is_error_type(t) || t > icmp::v4::NR_ICMP_TYPES);
        let o = Offending::<Ipv4> {
            src: p.src(),
            dst: p.dst(),
            pkt_type,
            dst_is_group,
            non_first_fragment: p.fragment_offset() != 0,
            is_icmp_error,
            allow_group: false,
        };
        // RFC 1122 3.2.2: a subnet broadcast source names no single host
        // (Linux answers it; conformance ICMP-3.6).
        if self.ip4.is_broadcast(&p.src()) {
            return;
        }
        let to_self = self.ip4.is_local(&p.src());
        let now = self.core.now;
        if !self
            .icmp4
            .check_error(&mut self.core, kind, &o, to_self, now)
        {
            return;
        }
        let src = self.ip4.is_local(&p.dst()).then_some(p.dst());
        let Ok(route) = self.ip4.route(&p.src(), src, self.core.device.mtu, now) else {
            return;
        };
        let msg = icmp::v4::error_message(kind, offending);
        let tos = ((p.dscp() << 2 | p.ecn()) & 0x1e) | 0xc0;
        let out = Out4 {
            route,
            dst: p.src(),
            proto: IpProto::ICMP,
            ttl: self.ip4.default_ttl,
            tos,
            dont_fragment: false,
        };
        let _ = self.send_ipv4(out, msg.len(), |buf, _, _| {
            let _ = msg.emit(buf);
        });
    }

    /// Builds and sends one IPv4 datagram (see [`OutCtx::send`]).
    fn send_ipv4(
        &mut self,
        out: Out4,
        l4_len: usize,
        write: impl FnOnce(&mut [u8], Ipv4Addr, Ipv4Addr),
    ) -> Result<(), Errno> {
        self.out4().send(out, l4_len, write)
    }

    fn out4(&mut self) -> OutCtx<'_> {
        out_ctx!(self)
    }

    // ------------------------------------------------------------------
    // ICMP echo (what `ping` needs until ping sockets exist).

    /// Sends an ICMP echo request.
    pub fn send_echo_request(
        &mut self,
        dst: Ipv4Addr,
        ident: u16,
        seq: u16,
        data: &[u8],
        now: Instant,
    ) -> Result<(), Errno> {
        self.core.now = now;
        let route = self.ip4.route(&dst, None, self.core.device.mtu, now)?;
        let msg = Icmpv4Message::EchoRequest { ident, seq, data };
        self.core.counters.increment(Counter::IcmpOutMsgs);
        self.core.counters.increment(Counter::IcmpOutEchos);
        let out = Out4 {
            route,
            dst,
            proto: IpProto::ICMP,
            ttl: self.ip4.default_ttl,
            tos: 0,
            dont_fragment: false,
        };
        let r = self.send_ipv4(out, msg.len(), |buf, _, _| {
            let _ = msg.emit(buf);
        });
        self.run_deferred();
        r
    }

    /// The next echo reply received.
    pub fn poll_echo_reply(&mut self) -> Option<EchoReply> {
        self.core.echo_replies.pop_front()
    }

    // ------------------------------------------------------------------
    // TCP sockets.

    /// Runs `f` with the TCP layer and its context: every socket call of
    /// [`TcpLayer`] (`socket`, `bind`, `listen`, `accept`, `connect`,
    /// `send`, `recv`, `shutdown`, `close`, options) goes through here,
    /// e.g. `stack.tcp(now, |t, cx| t.connect(cx, id, addr))`. Segments it
    /// sends to the stack's own addresses are delivered before this
    /// returns.
    pub fn tcp<R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut TcpLayer, &mut TcpCtx<'_>) -> R,
    ) -> R {
        self.core.now = now;
        let mut ctx = TcpCtx {
            out: out_ctx!(self),
        };
        let r = f(&mut self.tcp, &mut ctx);
        self.run_deferred();
        r
    }

    /// The TCP layer, read-only (`poll`, `state`, addresses, `tcp_info`).
    pub fn tcp_layer(&self) -> &TcpLayer {
        &self.tcp
    }

    /// The bound IPv4 UDP sockets (`ss -uan`).
    pub fn udp4_table(&self) -> Vec<crate::udp::UdpRow<Ipv4Addr>> {
        self.udp4.table()
    }

    /// TCP's counters (`Tcp:` and `TcpExt:` of `/proc/net/snmp` and
    /// `/proc/net/netstat`), by [`TcpCounter::name`].
    pub fn tcp_counter(&self, c: TcpCounter) -> u64 {
        self.core.tcp_counters[c as usize]
    }

    // ------------------------------------------------------------------
    // UDP sockets.

    /// `socket(AF_INET, SOCK_DGRAM, 0)`.
    pub fn udp_socket(&mut self) -> UdpHandle {
        UdpHandle(self.udp4.socket(), IpVersion::V4)
    }

    /// `socket(AF_INET6, SOCK_DGRAM, 0)`: dual-stack unless
    /// `IPV6_V6ONLY` is set ([`UdpOptions::v6only`]).
    pub fn udp6_socket(&mut self) -> UdpHandle {
        UdpHandle(self.udp6.socket(), IpVersion::V6)
    }

    pub fn udp_bind(&mut self, h: UdpHandle, addr: SocketAddr) -> Result<(), Errno> {
        if h.1 == IpVersion::V6 {
            return self.udp6_bind(h.0, addr);
        }
        let (a, p) = v4_of(addr)?;
        if p != 0 {
            let o = self.udp4.options(h.0)?;
            if self
                .udp6
                .dual_stack_holds(p, &a.to_ipv6_mapped(), (o.reuseaddr, o.reuseport))
            {
                return Err(Errno::EADDRINUSE);
            }
        }
        let (s, mut ctx) = self.udp_ctx();
        s.bind(&mut ctx, h.0, a, p)
    }

    /// `connect(2)`; `None` dissolves the association (`AF_UNSPEC`).
    pub fn udp_connect(
        &mut self,
        h: UdpHandle,
        addr: Option<SocketAddr>,
        now: Instant,
    ) -> Result<(), Errno> {
        self.core.now = now;
        if h.1 == IpVersion::V6 {
            let remote = addr.map(|a| self.v6_remote(h.0, a)).transpose()?;
            let (s, mut ctx) = self.udp6_ctx();
            return s.connect(&mut ctx, h.0, remote);
        }
        let remote = addr.map(v4_of).transpose()?;
        let (s, mut ctx) = self.udp_ctx();
        s.connect(&mut ctx, h.0, remote)
    }

    /// `sendto(2)` with `MSG_MORE` (`more`) and `UDP_CORK` honoured: the
    /// data joins the socket's pending datagram, which goes out when
    /// neither holds it back (see [`crate::udp::cork`]).
    pub fn udp_send_more(
        &mut self,
        h: UdpHandle,
        data: &[u8],
        dst: Option<SocketAddr>,
        now: Instant,
        more: bool,
    ) -> Result<usize, Errno> {
        let hold = more || self.udp_options(h)?.cork;
        if !hold && !self.udp_cork.has(h) {
            return self.udp_send_to(h, data, dst, now);
        }
        self.core.now = now;
        if !self.udp_cork.has(h) {
            // The first piece is checked as a whole send would be (route,
            // SO_BROADCAST, a pending error, SHUT_WR), as Linux checks
            // before ip_append_data.
            self.udp_check_send(h, dst, data.len())?;
        }
        let max = match h.1 {
            IpVersion::V4 => crate::udp::MAX_PAYLOAD_V4,
            IpVersion::V6 => crate::udp::MAX_PAYLOAD_V4 + 20,
        };
        self.udp_cork.append(h, dst, data, max)?;
        if !hold {
            self.udp_push_pending(h, now)?;
        }
        Ok(data.len())
    }

    /// `recvmsg(MSG_ERRQUEUE)`: the oldest ICMP error queued by
    /// `IP_RECVERR` / `IPV6_RECVERR` (`EAGAIN` if none). An IPv4 socket's
    /// addresses come v4-mapped, so that one type names both.
    pub fn udp_recv_err(
        &mut self,
        h: UdpHandle,
        buf: &mut [u8],
    ) -> Result<ErrRecv<Ipv6Addr>, Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.recv_err(h.0, buf).map(|e| ErrRecv {
                ret: e.ret,
                truncated: e.truncated,
                errno: e.errno,
                origin: IcmpOrigin {
                    offender: e.origin.offender.to_ipv6_mapped(),
                    icmp_type: e.origin.icmp_type,
                    code: e.origin.code,
                    info: e.origin.info,
                    icmp6: e.origin.icmp6,
                },
                dst: (e.dst.0.to_ipv6_mapped(), e.dst.1),
            }),
            IpVersion::V6 => self.udp6.recv_err(h.0, buf),
        }
    }

    /// `UDP_CORK`: clearing it sends what was gathered (errors are lost,
    /// as udp_push_pending_frames' are in udp_lib_setsockopt).
    pub fn udp_set_cork(&mut self, h: UdpHandle, on: bool, now: Instant) -> Result<(), Errno> {
        self.udp_set_options(h, |o| o.cork = on)?;
        if !on {
            let _ = self.udp_push_pending(h, now);
        }
        Ok(())
    }

    fn udp_push_pending(&mut self, h: UdpHandle, now: Instant) -> Result<(), Errno> {
        let Some(p) = self.udp_cork.take(h) else {
            return Ok(());
        };
        self.udp_send_to(h, &p.buf, p.dst, now).map(|_| ())
    }

    fn udp_check_send(
        &mut self,
        h: UdpHandle,
        dst: Option<SocketAddr>,
        len: usize,
    ) -> Result<(), Errno> {
        match h.1 {
            IpVersion::V4 => {
                let dst = dst.map(v4_of).transpose()?;
                let (s, mut ctx) = self.udp_ctx();
                s.prepare_send(&mut ctx, h.0, dst, len).map(|_| ())
            }
            // IPv6 sockets are checked when the datagram goes.
            IpVersion::V6 => Ok(()),
        }
    }

    /// `sendto(2)` (`dst: None`: `send(2)` on a connected socket).
    pub fn udp_send_to(
        &mut self,
        h: UdpHandle,
        data: &[u8],
        dst: Option<SocketAddr>,
        now: Instant,
    ) -> Result<usize, Errno> {
        self.core.now = now;
        if h.1 == IpVersion::V6 {
            let r = self.udp6_send_to(h.0, data, dst);
            self.run_deferred();
            return r;
        }
        let dst = dst.map(v4_of).transpose()?;
        let (s, mut ctx) = self.udp_ctx();
        let plan = s.prepare_send(&mut ctx, h.0, dst, data.len())?;
        let out = Out4 {
            route: plan.route,
            dst: plan.dst,
            proto: IpProto::UDP,
            ttl: plan.ttl,
            tos: plan.tos,
            dont_fragment: plan.dont_fragment,
        };
        let r = self.send_udp4(out, (plan.src_port, plan.dst_port), data);
        self.run_deferred();
        r.map(|()| data.len())
    }

    /// One UDP datagram over IPv4 (from an IPv4 socket, or a dual-stack
    /// IPv6 socket to a v4-mapped peer): `ports` are (source, destination).
    fn send_udp4(&mut self, out: Out4, ports: (u16, u16), data: &[u8]) -> Result<(), Errno> {
        let hdr = UdpBuilder {
            src_port: ports.0,
            dst_port: ports.1,
        };
        let r = self.send_ipv4(out, 8 + data.len(), |buf, s, d| {
            buf[8..].copy_from_slice(data);
            let _ = hdr.emit(&s, &d, buf);
        });
        if r.is_ok() {
            self.core.counters.increment(Counter::UdpOutDatagrams);
        }
        r
    }

    /// `recvfrom(2)`: what arrived, with its source as a socket address
    /// (an IPv6 socket reports IPv4 senders v4-mapped).
    pub fn udp_recv_from(
        &mut self,
        h: UdpHandle,
        buf: &mut [u8],
        flags: RecvFlags,
    ) -> Result<UdpRecv, Errno> {
        if h.1 == IpVersion::V6 {
            let (s, mut ctx) = self.udp6_ctx();
            let m: RecvMeta<Ipv6Addr> = s.recv(&mut ctx, h.0, buf, flags)?;
            return Ok(UdpRecv {
                ret: m.ret,
                len: m.len,
                truncated: m.truncated,
                src: m.src.map(sa6),
                dst: m.dst.map(|a| IpAddr::V6(a.into())),
                info: m.info,
            });
        }
        let (s, mut ctx) = self.udp_ctx();
        let m: RecvMeta<Ipv4Addr> = s.recv(&mut ctx, h.0, buf, flags)?;
        Ok(UdpRecv {
            ret: m.ret,
            len: m.len,
            truncated: m.truncated,
            src: m.src.map(sa),
            dst: m.dst.map(|a| IpAddr::V4(a.into())),
            info: m.info,
        })
    }

    pub fn udp_close(&mut self, h: UdpHandle) -> Result<(), Errno> {
        // A gathered datagram dies with its socket (udp_destroy_sock
        // flushes it away unsent).
        self.udp_cork.take(h);
        if h.1 == IpVersion::V6 {
            let (s, mut ctx) = self.udp6_ctx();
            return s.close(&mut ctx, h.0);
        }
        let (s, mut ctx) = self.udp_ctx();
        s.close(&mut ctx, h.0)
    }

    pub fn udp_shutdown(&mut self, h: UdpHandle, how: Shutdown) -> Result<(), Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.shutdown(h.0, how),
            IpVersion::V6 => self.udp6.shutdown(h.0, how),
        }
    }

    pub fn udp_readiness(&self, h: UdpHandle) -> Result<Readiness, Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.readiness(h.0),
            IpVersion::V6 => self.udp6.readiness(h.0),
        }
    }

    /// `getsockopt(SO_ERROR)`.
    pub fn udp_take_error(&mut self, h: UdpHandle) -> Result<Option<Errno>, Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.take_error(h.0),
            IpVersion::V6 => self.udp6.take_error(h.0),
        }
    }

    pub fn udp_local_addr(&self, h: UdpHandle) -> Result<SocketAddr, Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.local_addr(h.0).map(sa),
            IpVersion::V6 => self.udp6.local_addr(h.0).map(sa6),
        }
    }

    pub fn udp_peer_addr(&self, h: UdpHandle) -> Result<SocketAddr, Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.peer_addr(h.0).map(sa),
            IpVersion::V6 => self.udp6.peer_addr(h.0).map(sa6),
        }
    }

    pub fn udp_options(&self, h: UdpHandle) -> Result<UdpOptions, Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.options(h.0),
            IpVersion::V6 => self.udp6.options(h.0),
        }
    }

    /// `setsockopt` for the options in [`UdpOptions`] (on an IPv6 socket
    /// `ttl` is `IPV6_UNICAST_HOPS`, `mcast_ttl` `IPV6_MULTICAST_HOPS`,
    /// `tos` `IPV6_TCLASS`; `v6only` is `IPV6_V6ONLY`, which Linux only
    /// lets change before bind: `EINVAL` after).
    pub fn udp_set_options(
        &mut self,
        h: UdpHandle,
        f: impl FnOnce(&mut UdpOptions),
    ) -> Result<(), Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.set_options(h.0, f),
            IpVersion::V6 => {
                let before = self.udp6.options(h.0)?;
                let bound = self.udp6.local_addr(h.0)?.1 != 0;
                let mut next = before;
                f(&mut next);
                if bound && next.v6only != before.v6only {
                    return Err(Errno::EINVAL);
                }
                self.udp6.set_options(h.0, |o| *o = next)
            }
        }
    }

    /// `FIONREAD`: the next datagram's length.
    pub fn udp_next_len(&self, h: UdpHandle) -> Result<usize, Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.next_len(h.0),
            IpVersion::V6 => self.udp6.next_len(h.0),
        }
    }

    /// Datagrams queued for reading.
    pub fn udp_queued(&self, h: UdpHandle) -> Result<usize, Errno> {
        match h.1 {
            IpVersion::V4 => self.udp4.queued(h.0),
            IpVersion::V6 => self.udp6.queued(h.0),
        }
    }
}

impl core::fmt::Debug for Stack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack")
            .field("mac", &self.core.device.mac)
            .field("addrs", &self.ip4.addrs())
            .field("tx_pending", &self.core.tx.len())
            .finish_non_exhaustive()
    }
}

mod v6;
