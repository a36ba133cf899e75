//! The IPv6 half of the facade: the receive path (extension headers,
//! reassembly), output with fragmentation, ICMPv6, Neighbor Discovery,
//! duplicate address detection, router discovery, redirects and MLDv2
//! reports. What is shared with IPv4 (routing, reassembly, the neighbour
//! table, UDP sockets, ICMP error rules, TCP) is the same generic code;
//! the rules that only IPv6 has are in `ip_layer::v6` and `iface::ndp`.
//!
//! IPv6 is off until [`Stack::enable_ipv6`] (or the first IPv6 address):
//! then the link-local address is formed from the MAC and goes through
//! DAD like every address, `fe80::/64` and `ff00::/8` are on-link routes,
//! and the all-nodes group is joined. An address carries no prefix: add
//! the on-link prefix as a route ([`Stack::add_ipv6_route`]) or use
//! [`Stack::add_ipv6_address_with_prefix`].

use super::*;

use crate::icmp::v6 as icmp6;
use crate::iface::ndp::{
    self, AddrOrigin, AddressState, Ipv6AddrInfo, NdpOptionsBuf, PrefixEntry, RouterEntry,
    mld_record,
};
use crate::iface::neighbor::{NeighborUpdate, UpdateState};
use crate::ip::{Ip, Subnet};
use crate::ip_layer::route::default_subnet;
use crate::ip_layer::v6::{self as ip6v, Verdict};
use crate::time::Duration;
use crate::wire::icmpv6::{
    self, Icmpv6Message, Icmpv6Packet, NdpOption, NdpOptions, ParamProblemCode, msg_type,
};
use crate::wire::ipv6::{
    self as wire6, FragmentHeader, Ipv6Builder, Ipv6Packet, OptionsHeaderBuilder,
};

/// Which ICMPv6 error to send.
#[derive(Clone, Copy, Debug)]
pub(super) enum ErrorMsg {
    Kind(IcmpErrorKind),
    /// A parameter problem with its code and pointer.
    Param {
        code: ParamProblemCode,
        pointer: u32,
        allow_group: bool,
    },
}

/// How an IPv6 packet is to be sent.
#[derive(Clone, Copy, Debug)]
pub(super) struct Out6 {
    pub route: RouteResult<Ipv6>,
    pub dst: Ipv6Addr,
    pub proto: IpProto,
    pub hop_limit: u8,
    pub tclass: u8,
    /// Cut into fragments if it does not fit (UDP, ICMP); TCP never is.
    pub may_fragment: bool,
}

/// `fe80::/64`: the link-local prefix that is on-link on every interface.
const LINK_LOCAL_64: Subnet<Ipv6Addr> =
    Subnet::new_const(Ipv6Addr::new([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 64);

fn mtu6(core: &Core, nd: &NdState) -> u16 {
    nd.mtu.map_or(core.device.mtu, |m| m.min(core.device.mtu))
}

impl Core {
    /// An ICMPv6 message in a frame of its own (NDP, MLD), with optional
    /// hop-by-hop options; counted. The destination MAC is set for a
    /// multicast destination, else left for the caller.
    fn icmp6_frame(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        hbh: Option<&[u8]>,
        msg: &Icmpv6Message<'_>,
    ) -> Frame {
        let opts = hbh.map(|o| OptionsHeaderBuilder {
            next_header: IpProto::ICMPV6,
            options: o,
        });
        let hlen = opts.map_or(0, |o| o.header_len());
        let len = wire6::HEADER_LEN + hlen + msg.len();
        let mut f = self.pool.frame(ETH_HLEN + len);
        let buf = &mut f.as_mut_slice()[ETH_HLEN..];
        let _ = msg.emit(&src, &dst, &mut buf[wire6::HEADER_LEN + hlen..]);
        if let Some(o) = opts {
            let _ = o.emit(&mut buf[wire6::HEADER_LEN..]);
        }
        let next = if hbh.is_some() {
            IpProto::HOPOPT
        } else {
            IpProto::ICMPV6
        };
        let mut b = Ipv6Builder::new(src, dst, next);
        b.hop_limit = hop_limit;
        let _ = b.emit(buf);
        f.set_ethernet(Mac::ZERO, self.device.mac, EtherType::IPV6);
        self.counters.increment(Counter::Ip6OutRequests);
        self.counters.increment(Counter::Icmp6OutMsgs);
        if let Some(c) = icmp6::out_counter(msg.msg_type()) {
            self.counters.increment(c);
        }
        if let Some(m) = dst.multicast_mac() {
            self.counters.increment(Counter::Ip6OutMcastPkts);
            f.set_dst_mac(m);
        }
        f
    }
}

/// The IPv6 neighbour table's context: neighbour solicitations.
pub(super) struct NdpCtx<'a> {
    core: &'a mut Core,
    ip: &'a IpLayer<Ipv6>,
    /// [`NeighborConfig::external`]: solicitations become wants.
    external: bool,
}
delegate_to_core!(NdpCtx, NeighborTimerId<Ipv6>; NeighborEvent<Ipv6>);

impl NeighborContext<Ipv6> for NdpCtx<'_> {
    /// RFC 4861 7.2.2: from the address of the packet that needs the
    /// resolution if it is ours, to the solicited-node group (or, probing
    /// a stale entry, to the cached MAC), with our link-layer address.
    fn send_solicitation(&mut self, target: Ipv6Addr, src: Option<Ipv6Addr>, unicast: Option<Mac>) {
        if self.external {
            self.core.want_neighbor(target.to_std());
            return;
        }
        let Some(src) = src
            .filter(|s| self.ip.is_local(s))
            .or_else(|| self.ip.select_source(&target))
        else {
            return;
        };
        let dst = if unicast.is_some() {
            target
        } else {
            target.solicited_node()
        };
        let opts = NdpOptionsBuf::one(NdpOption::SourceLinkAddr(self.core.device.mac));
        let msg = Icmpv6Message::NeighborSolicitation {
            target,
            options: opts.options(),
        };
        let mut f = self.core.icmp6_frame(src, dst, 255, None, &msg);
        if let Some(m) = unicast {
            f.set_dst_mac(m);
        }
        self.core.push_tx(f);
    }
    fn send_frame(&mut self, frame: Frame) {
        self.core.push_tx(frame);
    }
    fn resolution_failed(&mut self, _target: Ipv6Addr, frame: Frame) {
        self.core.deferred.push_back(Deferred::Unresolved6(frame));
    }
    fn drop_frame(&mut self, frame: Frame) {
        self.core.pool.put_frame(frame);
    }
}

impl OutCtx<'_> {
    pub(super) fn route6(
        &self,
        dst: &Ipv6Addr,
        src: Option<Ipv6Addr>,
    ) -> Result<RouteResult<Ipv6>, Errno> {
        if !self.nd.enabled {
            return Err(Errno::ENETUNREACH);
        }
        self.ip6
            .route(dst, src, mtu6(self.core, self.nd), self.core.now)
    }

    /// Builds and sends one IPv6 packet whose upper-layer part (`l4_len`
    /// bytes) `write` writes in place (given the addresses, for the
    /// pseudo-header); cuts it into fragments (RFC 8200 4.5) if it does
    /// not fit and may be.
    pub(super) fn send6(
        &mut self,
        out: Out6,
        l4_len: usize,
        write: impl FnOnce(&mut [u8], Ipv6Addr, Ipv6Addr),
    ) -> Result<(), Errno> {
        const H: usize = wire6::HEADER_LEN;
        if l4_len > 65535 {
            return Err(Errno::EMSGSIZE);
        }
        let mtu = usize::from(out.route.mtu);
        let total = H + l4_len;
        if total > mtu && !out.may_fragment {
            return Err(Errno::EMSGSIZE);
        }
        let src = out.route.src;
        self.core.counters.increment(Counter::Ip6OutRequests);
        let mut b = Ipv6Builder::new(src, out.dst, out.proto);
        b.hop_limit = out.hop_limit;
        b.traffic_class = out.tclass;
        let mac = self.core.device.mac;
        if total <= mtu {
            let mut f = self.core.pool.frame(ETH_HLEN + total);
            write(&mut f.as_mut_slice()[ETH_HLEN + H..], src, out.dst);
            let _ = b.emit(&mut f.as_mut_slice()[ETH_HLEN..]);
            f.set_ethernet(Mac::ZERO, mac, EtherType::IPV6);
            self.dispatch6(f, out.route, out.dst);
            return Ok(());
        }
        let ident = self.ip6.next_ident(&src, &out.dst, IpProto::IPV6_FRAG);
        let mut whole = self.core.pool.get(l4_len);
        write(&mut whole, src, out.dst);
        b.next_header = IpProto::IPV6_FRAG;
        let mut n = 0;
        for (off, len, more) in fragment::plan(l4_len, mtu - H - FragmentHeader::LEN) {
            let mut f = self
                .core
                .pool
                .frame(ETH_HLEN + H + FragmentHeader::LEN + len);
            let buf = &mut f.as_mut_slice()[ETH_HLEN..];
            buf[H + FragmentHeader::LEN..].copy_from_slice(&whole[off..off + len]);
            let _ = FragmentHeader {
                next_header: out.proto,
                offset: off as u16,
                more,
                ident,
            }
            .emit(&mut buf[H..]);
            let _ = b.emit(buf);
            f.set_ethernet(Mac::ZERO, mac, EtherType::IPV6);
            self.dispatch6(f, out.route, out.dst);
            n += 1;
        }
        self.core.pool.put(whole);
        self.core.counters.increment(Counter::Ip6FragOKs);
        self.core.counters.add(Counter::Ip6FragCreates, n);
        Ok(())
    }

    /// Hands a built IPv6 frame to its next hop.
    fn dispatch6(&mut self, mut f: Frame, route: RouteResult<Ipv6>, dst: Ipv6Addr) {
        match route.next_hop {
            NextHop::Local => self.core.loopback.push_back(f),
            NextHop::Broadcast | NextHop::Multicast => {
                self.core.counters.increment(Counter::Ip6OutMcastPkts);
                f.set_dst_mac(dst.multicast_mac().unwrap_or(Mac::BROADCAST));
                // IPV6_MULTICAST_LOOP: a group we joined hears us too.
                if self.ip6.is_joined(&dst) {
                    let mut copy = self.core.pool.frame(f.len());
                    copy.as_mut_slice().copy_from_slice(f.as_slice());
                    self.core.loopback.push_back(copy);
                }
                self.core.push_tx(f);
            }
            NextHop::Neighbor(nh) => {
                let mut ctx = NdpCtx {
                    core: &mut *self.core,
                    ip: &*self.ip6,
                    external: self.ndp.config().external,
                };
                self.ndp.send(&mut ctx, nh, f, Some(route.src));
            }
        }
    }

    /// A TCP segment over IPv6 (never fragmented: TCP sizes segments by
    /// the path MTU and learns from packet too big).
    pub(super) fn send_tcp6(
        &mut self,
        tx: Transmit,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        if self.core.tx.len() >= self.core.tx_limit {
            return Err(SendError::NoBuffer);
        }
        let route = self
            .route6(&dst, Some(src))
            .map_err(|_| SendError::Unreachable)?;
        let hop_limit = if tx.ttl == 0 {
            self.ip6.default_ttl
        } else {
            tx.ttl
        };
        let out = Out6 {
            route,
            dst,
            proto: IpProto::TCP,
            hop_limit,
            tclass: tx.tos,
            may_fragment: false,
        };
        self.send6(out, tx.len, |buf, _, _| write(buf))
            .map_err(|_| SendError::NoBuffer)
    }
}

/// Whether the first fragment holds the whole header chain up to and
/// including the upper-layer header (RFC 7112; Linux's
/// `ipv6frag_thdr_truncated` checks the same transport header lengths).
fn chain_complete(mut nh: IpProto, data: &[u8]) -> bool {
    let mut at = 0;
    loop {
        match nh {
            IpProto::HOPOPT | IpProto::IPV6_ROUTE | IpProto::IPV6_OPTS => {
                let Some(&[n, l]) = data.get(at..at + 2) else {
                    return false;
                };
                at += (usize::from(l) + 1) * 8;
                if at > data.len() {
                    return false;
                }
                nh = IpProto(n);
            }
            IpProto::TCP => return data.len() >= at + 20,
            IpProto::UDP => return data.len() >= at + 8,
            IpProto::ICMPV6 => return data.len() >= at + 4,
            _ => return true,
        }
    }
}

impl Stack {
    pub(super) fn mtu6(&self) -> u16 {
        mtu6(&self.core, &self.nd)
    }

    pub(super) fn ndp_ctx(&mut self) -> (&mut NeighborTable<Ipv6>, NdpCtx<'_>) {
        let external = self.ndp.config().external;
        (
            &mut self.ndp,
            NdpCtx {
                external,
                core: &mut self.core,
                ip: &self.ip6,
            },
        )
    }

    // ------------------------------------------------------------------
    // Configuration.

    /// Turns IPv6 on: `fe80::/64` and `ff00::/8` on-link, the all-nodes
    /// group, the link-local address from the MAC (through DAD), router
    /// solicitations once it is assigned if configured. Idempotent.
    pub fn enable_ipv6(&mut self, now: Instant) {
        self.core.now = now;
        if self.nd.enabled {
            return;
        }
        self.nd.enabled = true;
        for r in [
            Route::on_link(LINK_LOCAL_64),
            Route::on_link(Ipv6::MULTICAST_SUBNET),
        ] {
            let _ = self.add_ipv6_route(r);
        }
        self.join6(Ipv6Addr::ALL_NODES);
        if self.nd.config.link_local {
            let ll = Ipv6Addr::link_local_from_mac(self.core.device.mac);
            let _ = self.start_dad(ll, AddrOrigin::LinkLocal);
        }
        self.run_deferred();
    }

    /// `ip addr add ADDR/128 nodad?`: the address alone (no prefix, no
    /// route: Netstack3's rule), tentative until DAD says it is unique
    /// (`Event::AddressState`). Enables IPv6 if it was not.
    pub fn add_ipv6_address(&mut self, addr: Ipv6Addr, now: Instant) -> Result<(), Errno> {
        self.core.now = now;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_ipv4_mapped() {
            return Err(Errno::EINVAL);
        }
        self.enable_ipv6(now);
        let r = self.start_dad(addr, AddrOrigin::Static);
        self.run_deferred();
        r
    }

    /// `ip addr add ADDR/PREFIX`: the address and, separately, the on-link
    /// route to its prefix.
    pub fn add_ipv6_address_with_prefix(
        &mut self,
        addr: Ipv6Addr,
        prefix: u8,
        now: Instant,
    ) -> Result<(), Errno> {
        let subnet = Subnet::from_host(addr, prefix).map_err(|_| Errno::EINVAL)?;
        self.add_ipv6_address(addr, now)?;
        if prefix < 128 {
            match self.add_ipv6_route(Route::on_link(subnet)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `ip addr del`: assigned or still tentative.
    pub fn remove_ipv6_address(&mut self, addr: Ipv6Addr) -> Result<(), Errno> {
        let known = self.nd.remove(&addr).is_some();
        let assigned = self.ip6.remove_addr(&addr).is_some();
        if !known && !assigned {
            return Err(Errno::EADDRNOTAVAIL);
        }
        TimerContext::<NdTimer>::cancel_timer(&mut self.core, &NdTimer::Dad(addr));
        self.leave6(addr.solicited_node());
        self.core.emit(Event::AddressRemoved {
            addr: addr.to_std(),
        });
        Ok(())
    }

    /// `ip -6 route add`.
    pub fn add_ipv6_route(&mut self, route: Route<Ipv6>) -> Result<(), Errno> {
        self.ip6.routes.add(route).map_err(|_| Errno::EEXIST)?;
        self.core.emit(Event::RouteAdded {
            dst: route.subnet.network().to_std(),
            prefix: route.subnet.prefix(),
            gateway: route.gateway.map(|g| g.to_std()),
        });
        Ok(())
    }

    /// `ip -6 route del`: routes to `subnet` (via `gateway` if given).
    pub fn remove_ipv6_route(
        &mut self,
        subnet: Subnet<Ipv6Addr>,
        gateway: Option<Ipv6Addr>,
    ) -> usize {
        let gws: Vec<Option<Ipv6Addr>> = self
            .ip6
            .routes
            .iter()
            .filter(|r| r.subnet == subnet && (gateway.is_none() || r.gateway == gateway))
            .map(|r| r.gateway)
            .collect();
        let n = self.ip6.routes.remove(subnet, gateway);
        for g in gws {
            self.core.emit(Event::RouteRemoved {
                dst: subnet.network().to_std(),
                prefix: subnet.prefix(),
                gateway: g.map(|g| g.to_std()),
            });
        }
        n
    }

    /// `ip -6 route add default via GW`.
    pub fn set_ipv6_gateway(&mut self, gateway: Ipv6Addr) -> Result<(), Errno> {
        self.add_ipv6_route(Route::default_via(gateway))
    }

    /// The IPv6 layer, read-only (assigned addresses, routes, PMTU cache,
    /// hop limit).
    pub fn ipv6(&self) -> &IpLayer<Ipv6> {
        &self.ip6
    }

    /// Every IPv6 address with its DAD state (`ip -6 addr`).
    pub fn ipv6_addresses(&self) -> Vec<Ipv6AddrInfo> {
        self.nd.addrs().to_vec()
    }

    /// Routers learned from advertisements.
    pub fn ipv6_routers(&self) -> Vec<RouterEntry> {
        self.nd.routers.clone()
    }

    /// `ip -6 neigh show`.
    pub fn neighbors6(&self) -> Vec<NeighborInfo<Ipv6>> {
        self.ndp.iter().collect()
    }

    /// `ip -6 neigh replace ADDR lladdr MAC nud permanent`.
    pub fn add_static_neighbor6(&mut self, addr: Ipv6Addr, mac: Mac, now: Instant) {
        self.core.now = now;
        let (t, mut ctx) = self.ndp_ctx();
        t.add_static(&mut ctx, addr, mac);
        self.run_deferred();
    }

    /// ICMPv6 settings (rate limits, echo).
    pub fn icmp6_mut(&mut self) -> &mut IcmpState<Ipv6> {
        &mut self.icmp6
    }

    /// `IPV6_ADD_MEMBERSHIP`: joins the group (MLDv2 report).
    pub fn join_ipv6_group(&mut self, group: Ipv6Addr, now: Instant) -> Result<(), Errno> {
        self.core.now = now;
        if !group.is_multicast() {
            return Err(Errno::EINVAL);
        }
        self.join6(group);
        Ok(())
    }

    pub fn leave_ipv6_group(&mut self, group: Ipv6Addr, now: Instant) -> Result<(), Errno> {
        self.core.now = now;
        if !self.ip6.is_joined(&group) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        self.leave6(group);
        Ok(())
    }

    // ------------------------------------------------------------------
    // Echo.

    /// Sends an ICMPv6 echo request (`ping -6`).
    pub fn send_echo6_request(
        &mut self,
        dst: Ipv6Addr,
        ident: u16,
        seq: u16,
        data: &[u8],
        now: Instant,
    ) -> Result<(), Errno> {
        self.core.now = now;
        let mut out = out_ctx!(self);
        let route = out.route6(&dst, None)?;
        let msg = Icmpv6Message::EchoRequest { ident, seq, data };
        out.core.counters.increment(Counter::Icmp6OutMsgs);
        out.core.counters.increment(Counter::Icmp6OutEchos);
        let o = Out6 {
            route,
            dst,
            proto: IpProto::ICMPV6,
            hop_limit: out.ip6.default_ttl,
            tclass: 0,
            may_fragment: true,
        };
        let r = out.send6(o, msg.len(), |buf, s, d| {
            let _ = msg.emit(&s, &d, buf);
        });
        self.run_deferred();
        r
    }

    /// The next ICMPv6 echo reply received.
    pub fn poll_echo6_reply(&mut self) -> Option<EchoReply<Ipv6Addr>> {
        self.core.echo6_replies.pop_front()
    }

    // ------------------------------------------------------------------
    // UDP over IPv6.

    /// The remote address of an IPv6 socket: `AF_INET6` only; v4-mapped
    /// only without `IPV6_V6ONLY` (else `ENETUNREACH`, as Linux).
    pub(super) fn v6_remote(
        &self,
        id: UdpSocketId,
        a: SocketAddr,
    ) -> Result<(Ipv6Addr, u16), Errno> {
        let SocketAddr::V6(a) = a else {
            return Err(Errno::EAFNOSUPPORT);
        };
        let ip = Ipv6Addr::from(*a.ip());
        if ip.is_ipv4_mapped() && self.udp6.options(id)?.v6only {
            return Err(Errno::ENETUNREACH);
        }
        Ok((ip, a.port()))
    }

    pub(super) fn udp6_bind(&mut self, id: UdpSocketId, addr: SocketAddr) -> Result<(), Errno> {
        let SocketAddr::V6(a) = addr else {
            return Err(Errno::EAFNOSUPPORT);
        };
        let (ip, port) = (Ipv6Addr::from(*a.ip()), a.port());
        let o = self.udp6.options(id)?;
        if ip.is_ipv4_mapped() && o.v6only {
            return Err(Errno::EINVAL);
        }
        if !o.v6only && port != 0 && (ip.is_unspecified() || ip.is_ipv4_mapped()) {
            let v4 = ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED);
            if self
                .udp4
                .port_conflict(&v4, port, (o.reuseaddr, o.reuseport))
            {
                return Err(Errno::EADDRINUSE);
            }
        }
        let (s, mut ctx) = self.udp6_ctx();
        s.bind(&mut ctx, id, ip, port)
    }

    pub(super) fn udp6_send_to(
        &mut self,
        id: UdpSocketId,
        data: &[u8],
        dst: Option<SocketAddr>,
    ) -> Result<usize, Errno> {
        let dst = dst.map(|a| self.v6_remote(id, a)).transpose()?;
        let explicit_hops = self.udp6.options(id)?.ttl.is_some();
        let (s, mut ctx) = self.udp6_ctx();
        let plan = s.prepare_send(&mut ctx, id, dst, data.len())?;
        if let Some(d4) = plan.dst.to_ipv4_mapped() {
            let s4 = plan.src.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED);
            let route = self
                .ip4
                .route(&d4, Some(s4), self.core.device.mtu, self.core.now)?;
            let out = Out4 {
                route,
                dst: d4,
                proto: IpProto::UDP,
                ttl: plan.ttl,
                tos: plan.tos,
                dont_fragment: plan.dont_fragment,
            };
            self.send_udp4(out, (plan.src_port, plan.dst_port), data)?;
            return Ok(data.len());
        }
        // A hop limit learned from router advertisements applies to
        // sockets that did not set one.
        let hop_limit = if explicit_hops || plan.dst.is_multicast() {
            plan.ttl
        } else {
            self.ip6.default_ttl
        };
        let out = Out6 {
            route: plan.route,
            dst: plan.dst,
            proto: IpProto::UDP,
            hop_limit,
            tclass: plan.tos,
            may_fragment: true,
        };
        let hdr = UdpBuilder {
            src_port: plan.src_port,
            dst_port: plan.dst_port,
        };
        out_ctx!(self).send6(out, 8 + data.len(), |buf, s, d| {
            buf[8..].copy_from_slice(data);
            let _ = hdr.emit(&s, &d, buf);
        })?;
        self.core.counters.increment(Counter::Udp6OutDatagrams);
        Ok(data.len())
    }

    // ------------------------------------------------------------------
    // Receive.

    pub(super) fn receive_ipv6(&mut self, bytes: &[u8], pkt_type: PacketType, offload: RxOffload) {
        let c = &mut self.core.counters;
        c.increment(Counter::Ip6InReceives);
        if !self.nd.enabled {
            c.increment(Counter::Ip6InDiscards);
            return;
        }
        let p = match Ipv6Packet::parse(bytes) {
            Ok(p) => p,
            Err(ParseError::Truncated) if bytes.len() >= wire6::HEADER_LEN => {
                c.increment(Counter::Ip6InTruncatedPkts);
                return;
            }
            Err(_) => {
                c.increment(Counter::Ip6InHdrErrors);
                return;
            }
        };
        let (src, dst) = (p.src(), p.dst());
        let from_wire = pkt_type != PacketType::Loopback;
        if src.is_multicast()
            || (from_wire && (src.is_loopback() || dst.is_loopback()))
            || (from_wire && self.ip6.is_local(&src))
        {
            c.increment(Counter::Ip6InMartianSrc);
            return;
        }
        let kind = if self.ip6.is_local(&dst) {
            DstKind::Local
        } else if dst.is_multicast() && self.ip6.is_joined(&dst) {
            c.increment(Counter::Ip6InMcastPkts);
            DstKind::Multicast
        } else {
            // Not ours (a host does not forward), or a tentative address
            // (RFC 4862 5.4: dropped).
            c.increment(Counter::Ip6InAddrErrors);
            return;
        };
        self.process_ipv6(&p, pkt_type, kind, offload, false);
    }

    /// The extension-header chain, then the upper layer or reassembly.
    fn process_ipv6(
        &mut self,
        p: &Ipv6Packet<'_>,
        pkt_type: PacketType,
        kind: DstKind,
        offload: RxOffload,
        reassembled: bool,
    ) {
        let group = kind != DstKind::Local;
        match ip6v::walk(p, group) {
            Verdict::Upper {
                proto,
                offset,
                nh_offset,
            } => self.deliver_ipv6(p, proto, offset, nh_offset, pkt_type, kind, offload),
            Verdict::Drop { truncated } => self.core.counters.increment(if truncated {
                Counter::Ip6InTruncatedPkts
            } else {
                Counter::Ip6InHdrErrors
            }),
            Verdict::Error {
                code,
                pointer,
                allow_group,
            } => {
                self.core.counters.increment(
                    if code == ParamProblemCode::UNRECOGNIZED_NEXT_HEADER {
                        Counter::Ip6InUnknownProtos
                    } else {
                        Counter::Ip6InHdrErrors
                    },
                );
                self.send_icmp6_error(
                    ErrorMsg::Param {
                        code,
                        pointer,
                        allow_group,
                    },
                    p.as_bytes(),
                    pkt_type,
                    group,
                );
            }
            Verdict::Fragment { .. } if reassembled => {
                self.core.counters.increment(Counter::Ip6InHdrErrors);
            }
            Verdict::Fragment {
                frag,
                header_offset,
                nh_offset,
            } => self.receive_fragment6(p, frag, header_offset, nh_offset, pkt_type, kind),
        }
    }

    fn receive_fragment6(
        &mut self,
        p: &Ipv6Packet<'_>,
        frag: FragmentHeader,
        header_offset: usize,
        nh_offset: usize,
        pkt_type: PacketType,
        kind: DstKind,
    ) {
        let bytes = p.as_bytes();
        let data = &bytes[header_offset + FragmentHeader::LEN..];
        let group = kind != DstKind::Local;
        let param = |s: &mut Stack, code, pointer: usize| {
            s.core.counters.increment(Counter::Ip6InHdrErrors);
            s.send_icmp6_error(
                ErrorMsg::Param {
                    code,
                    pointer: pointer as u32,
                    allow_group: false,
                },
                bytes,
                pkt_type,
                group,
            );
        };
        // RFC 8200 4.5: a non-last fragment whose length is not a multiple
        // of 8, pointing at the payload length; a datagram that would
        // exceed 65535 bytes, pointing at the fragment offset.
        if frag.more && data.len() % 8 != 0 {
            return param(self, ParamProblemCode::ERRONEOUS_HEADER, 4);
        }
        let unfrag = header_offset - wire6::HEADER_LEN;
        if unfrag + usize::from(frag.offset) + data.len() > 65535 {
            return param(self, ParamProblemCode::ERRONEOUS_HEADER, header_offset + 2);
        }
        // RFC 7112: the first fragment holds the whole header chain.
        if frag.offset == 0 && !chain_complete(frag.next_header, data) {
            return param(self, ParamProblemCode::INCOMPLETE_HEADER_CHAIN, 0);
        }
        let key = FragKey {
            src: p.src(),
            dst: p.dst(),
            id: frag.ident,
            proto: IpProto::IPV6_FRAG,
        };
        // The unfragmentable part, its last next-header naming what the
        // fragment header named: the header of the reassembled packet.
        let mut hdr = self.core.pool.get(header_offset);
        hdr.copy_from_slice(&bytes[..header_offset]);
        hdr[nh_offset] = frag.next_header.0;
        let outcome = self.ip6.reasm.insert(
            &mut self.core,
            key,
            Fragment {
                offset: usize::from(frag.offset),
                more: frag.more,
                header: &hdr,
                payload: data,
            },
        );
        self.core.pool.put(hdr);
        let Outcome::Complete(r) = outcome else {
            return;
        };
        let mut buf = self.core.pool.get(r.header.len() + r.payload.len());
        buf[..r.header.len()].copy_from_slice(&r.header);
        buf[r.header.len()..].copy_from_slice(&r.payload);
        let plen = (buf.len() - wire6::HEADER_LEN) as u16;
        buf[4..6].copy_from_slice(&plen.to_be_bytes());
        if let Ok(whole) = Ipv6Packet::parse(&buf) {
            self.process_ipv6(&whole, pkt_type, kind, RxOffload::None, true);
        }
        self.core.pool.put(buf);
    }

    pub(super) fn reasm6_timeout(&mut self, key: FragKey<Ipv6>) {
        if let Some(r) = self.ip6.reasm.handle_timer(&mut self.core, &key) {
            let quote = ip6v::first_fragment_quote(&r, key.id);
            let group = !self.ip6.is_local(&key.dst);
            self.send_icmp6_error(
                ErrorMsg::Kind(IcmpErrorKind::ReassemblyTimeout),
                &quote,
                PacketType::Host,
                group,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_ipv6(
        &mut self,
        p: &Ipv6Packet<'_>,
        proto: IpProto,
        offset: usize,
        nh_offset: usize,
        pkt_type: PacketType,
        kind: DstKind,
        offload: RxOffload,
    ) {
        let l4 = p.as_bytes().get(offset..).unwrap_or(&[]);
        match proto {
            IpProto::ICMPV6 => self.receive_icmp6(p, l4, pkt_type, kind, offload),
            IpProto::UDP => self.receive_udp6(p, l4, pkt_type, kind, offload),
            IpProto::TCP => {
                if kind == DstKind::Local {
                    let (src, dst) = (tcp::IpAddr::V6(p.src()), tcp::IpAddr::V6(p.dst()));
                    let mut ctx = TcpCtx {
                        out: out_ctx!(self),
                    };
                    self.tcp
                        .receive(&mut ctx, src, dst, l4, !offload.verify_l4());
                }
            }
            IpProto::IPV6_NONXT => {}
            _ => {
                self.core.counters.increment(Counter::Ip6InUnknownProtos);
                self.send_icmp6_error(
                    ErrorMsg::Kind(IcmpErrorKind::ProtocolUnreachable {
                        pointer: nh_offset as u32,
                    }),
                    p.as_bytes(),
                    pkt_type,
                    kind != DstKind::Local,
                );
                return;
            }
        }
        self.core.counters.increment(Counter::Ip6InDelivers);
    }

    fn receive_udp6(
        &mut self,
        p: &Ipv6Packet<'_>,
        l4: &[u8],
        pkt_type: PacketType,
        kind: DstKind,
        offload: RxOffload,
    ) {
        let (src, dst) = (p.src(), p.dst());
        let parsed = if offload.verify_l4() {
            UdpPacket::parse(l4, &src, &dst)
        } else {
            UdpPacket::parse_unverified(l4)
        };
        let u = match parsed {
            Ok(u) => u,
            Err(e) => {
                if e == ParseError::BadChecksum {
                    self.core.counters.increment(Counter::Udp6InCsumErrors);
                }
                self.core.counters.increment(Counter::Udp6InErrors);
                return;
            }
        };
        let group = kind != DstKind::Local;
        let info = RxInfo {
            tos: p.traffic_class(),
            ttl: p.hop_limit(),
            at: self.core.now,
        };
        let (sockets, mut ctx) = self.udp6_ctx();
        let (sp, dp) = (u.src_port(), u.dst_port());
        let d = sockets.deliver_with(&mut ctx, (src, sp), (dst, dp), group, u.payload(), info);
        if d == Delivery::NoSocket {
            if group {
                self.core.counters.increment(Counter::Udp6IgnoredMulti);
            } else {
                self.core.counters.increment(Counter::Udp6NoPorts);
                self.send_icmp6_error(
                    ErrorMsg::Kind(IcmpErrorKind::PortUnreachable),
                    p.as_bytes(),
                    pkt_type,
                    false,
                );
            }
        }
    }

    fn receive_icmp6(
        &mut self,
        p: &Ipv6Packet<'_>,
        l4: &[u8],
        pkt_type: PacketType,
        kind: DstKind,
        offload: RxOffload,
    ) {
        let c = &mut self.core.counters;
        c.increment(Counter::Icmp6InMsgs);
        let parsed = if offload.verify_l4() {
            Icmpv6Packet::parse(l4, &p.src(), &p.dst())
        } else {
            Icmpv6Packet::parse_unverified(l4)
        };
        let msg = match parsed {
            Ok(m) => m.message(),
            Err(e) => {
                if e == ParseError::BadChecksum {
                    c.increment(Counter::Icmp6InCsumErrors);
                }
                c.increment(Counter::Icmp6InErrors);
                return;
            }
        };
        if let Some(k) = icmp6::in_counter(msg.msg_type()) {
            c.increment(k);
        }
        match msg {
            Icmpv6Message::EchoRequest { ident, seq, data } => {
                if self.icmp6.echo_ignore_all {
                    return;
                }
                let src = (kind == DstKind::Local).then_some(p.dst());
                let reply = Icmpv6Message::EchoReply { ident, seq, data };
                let mut out = out_ctx!(self);
                let Ok(route) = out.route6(&p.src(), src) else {
                    return;
                };
                out.core.counters.increment(Counter::Icmp6OutMsgs);
                out.core.counters.increment(Counter::Icmp6OutEchoReplies);
                let o = Out6 {
                    route,
                    dst: p.src(),
                    proto: IpProto::ICMPV6,
                    hop_limit: out.ip6.default_ttl,
                    tclass: p.traffic_class(),
                    may_fragment: true,
                };
                let _ = out.send6(o, reply.len(), |buf, s, d| {
                    let _ = reply.emit(&s, &d, buf);
                });
            }
            Icmpv6Message::EchoReply { ident, seq, data } => {
                if self.core.echo6_replies.len() < 1024 {
                    self.core.echo6_replies.push_back(EchoReply {
                        from: p.src(),
                        ident,
                        seq,
                        data: data.to_vec(),
                        ttl: p.hop_limit(),
                    });
                }
            }
            Icmpv6Message::NeighborSolicitation { target, options } => {
                self.receive_ns(p, target, options)
            }
            Icmpv6Message::NeighborAdvertisement {
                router,
                solicited,
                override_flag,
                target,
                options,
            } => self.receive_na(p, router, solicited, override_flag, target, options),
            Icmpv6Message::RouterAdvertisement {
                cur_hop_limit,
                router_lifetime,
                reachable_time,
                retrans_timer,
                options,
                ..
            } => self.receive_ra(
                p,
                cur_hop_limit,
                router_lifetime,
                reachable_time,
                retrans_timer,
                options,
            ),
            Icmpv6Message::Redirect {
                target,
                destination,
                options,
            } => self.receive_redirect(p, target, destination, options),
            // A host ignores router solicitations (RFC 4861 6.2.6).
            Icmpv6Message::RouterSolicitation { .. } => {}
            Icmpv6Message::Other { msg_type: t, .. }
                if (msg_type::ROUTER_SOLICITATION..=msg_type::REDIRECT).contains(&t) =>
            {
                // An NDP type with a non-zero code (RFC 4861 6.1, 7.1, 8.1).
                self.core.counters.increment(Counter::NdpInInvalid);
                self.core.counters.increment(Counter::Icmp6InErrors);
            }
            Icmpv6Message::Other {
                msg_type: msg_type::MLD_QUERY,
                ..
            } => self.mld_query(p),
            m => {
                if let Some((k, quote)) = icmp6::received_error(&m) {
                    let origin = IcmpOrigin {
                        offender: p.src(),
                        icmp_type: l4.first().copied().unwrap_or(0),
                        code: l4.get(1).copied().unwrap_or(0),
                        info: match k {
                            IcmpErrorKind::PacketTooBig { mtu } => mtu,
                            IcmpErrorKind::ParameterProblem { pointer }
                            | IcmpErrorKind::ProtocolUnreachable { pointer } => pointer,
                            _ => 0,
                        },
                        icmp6: true,
                    };
                    self.icmp6_error_received(k, quote, origin);
                }
            }
        }
        let _ = pkt_type;
    }

    /// An ICMPv6 error about a packet we sent: path MTU, then the socket.
    fn icmp6_error_received(
        &mut self,
        kind: IcmpErrorKind,
        quote: &[u8],
        origin: IcmpOrigin<Ipv6Addr>,
    ) {
        let Ok(q) = Ipv6Packet::parse_quote(quote) else {
            self.core.counters.increment(Counter::Icmp6InErrors);
            return;
        };
        if let IcmpErrorKind::PacketTooBig { mtu } = kind {
            // RFC 8201: never below the minimum MTU (the cache's floor).
            let reported = u16::try_from(mtu).unwrap_or(u16::MAX);
            let link = self.mtu6();
            if let Some(m) = self.ip6.pmtu.update(q.dst(), reported, link, self.core.now) {
                self.core.emit(Event::PathMtu {
                    dst: q.dst().to_std(),
                    mtu: m,
                });
            }
        }
        let mut walk = q.ext_headers();
        for h in &mut walk {
            if h.is_err() {
                return;
            }
        }
        let (proto, offset) = walk.upper_layer();
        let Some(l4) = q.as_bytes().get(offset..).filter(|b| b.len() >= 8) else {
            return;
        };
        let Some((sport, dport)) = crate::wire::l4_ports(l4) else {
            return;
        };
        let (local, remote) = ((q.src(), sport), (q.dst(), dport));
        let (errno, hard) = kind.errno();
        match proto {
            IpProto::UDP => {
                if let IcmpErrorKind::PacketTooBig { .. } = kind {
                    return;
                }
                // IPV6_RECVERR gets the quoted payload, after the UDP header.
                let ext = (origin, &l4[8..]);
                self.udp6
                    .deliver_error_ext(local, remote, errno, hard, Some(ext));
            }
            IpProto::TCP => {
                let err = match kind {
                    IcmpErrorKind::PacketTooBig { mtu } => tcp::IcmpError::PacketTooBig {
                        mtu: u16::try_from(mtu).unwrap_or(u16::MAX).max(Ipv6::MIN_MTU),
                    },
                    _ => tcp::IcmpError::Unreachable { errno, fatal: hard },
                };
                let (src, dst) = (tcp::IpAddr::V6(local.0), tcp::IpAddr::V6(remote.0));
                let mut ctx = TcpCtx {
                    out: out_ctx!(self),
                };
                self.tcp.on_icmp_error(&mut ctx, src, dst, l4, err);
            }
            _ => {}
        }
    }

    /// Sends an ICMPv6 error about `offending` (a packet, IPv6 header
    /// first), if RFC 4443 2.4(e) and the rate limiter allow.
    pub(super) fn send_icmp6_error(
        &mut self,
        msg: ErrorMsg,
        offending: &[u8],
        pkt_type: PacketType,
        dst_is_group: bool,
    ) {
        let Ok(p) = Ipv6Packet::parse_quote(offending) else {
            return;
        };
        let mut non_first_fragment = false;
        let mut walk = p.ext_headers();
        for h in &mut walk {
            match h {
                Ok(h) => {
                    if let wire6::ExtHeaderKind::Fragment(f) = h.kind {
                        non_first_fragment |= f.offset != 0;
                    }
                }
                Err(_) => break,
            }
        }
        let (proto, off) = walk.upper_layer();
        let is_icmp_error = proto == IpProto::ICMPV6
            && !non_first_fragment
            && p.as_bytes()
                .get(off)
                .is_some_and(|&t| icmpv6::is_error_type(t) || t == msg_type::REDIRECT);
        let (kind, allow_group) = match msg {
            ErrorMsg::Kind(k) => (k, matches!(k, IcmpErrorKind::PacketTooBig { .. })),
            ErrorMsg::Param {
                pointer,
                allow_group,
                ..
            } => (IcmpErrorKind::ParameterProblem { pointer }, allow_group),
        };
        let o = Offending::<Ipv6> {
            src: p.src(),
            dst: p.dst(),
            pkt_type,
            dst_is_group,
            non_first_fragment,
            is_icmp_error,
            allow_group,
        };
        let to_self = self.ip6.is_local(&p.src());
        let now = self.core.now;
        if !self
            .icmp6
            .check_error(&mut self.core, kind, &o, to_self, now)
        {
            return;
        }
        let src = self.ip6.is_local(&p.dst()).then_some(p.dst());
        let m = match msg {
            ErrorMsg::Kind(k) => icmp6::error_message(k, offending),
            ErrorMsg::Param { code, pointer, .. } => icmp6::param_problem(code, pointer, offending),
        };
        let mut out = out_ctx!(self);
        let Ok(route) = out.route6(&p.src(), src) else {
            return;
        };
        let o = Out6 {
            route,
            dst: p.src(),
            proto: IpProto::ICMPV6,
            hop_limit: out.ip6.default_ttl,
            tclass: 0,
            may_fragment: false,
        };
        let _ = out.send6(o, m.len(), |buf, s, d| {
            let _ = m.emit(&s, &d, buf);
        });
    }

    // ------------------------------------------------------------------
    // Neighbor Discovery.

    fn nd_invalid(&mut self) {
        self.core.counters.increment(Counter::NdpInInvalid);
        self.core.counters.increment(Counter::Icmp6InErrors);
    }

    /// Sends an NDP message to a unicast neighbour through the neighbour
    /// table (resolving it if need be).
    fn send_nd_unicast(&mut self, src: Ipv6Addr, dst: Ipv6Addr, msg: &Icmpv6Message<'_>) {
        let f = self.core.icmp6_frame(src, dst, 255, None, msg);
        if dst.is_multicast() {
            self.core.push_tx(f);
            return;
        }
        let (t, mut ctx) = self.ndp_ctx();
        t.send(&mut ctx, dst, f, Some(src));
    }

    /// RFC 4861 7.2.3 and RFC 4862 5.4.3.
    fn receive_ns(&mut self, p: &Ipv6Packet<'_>, target: Ipv6Addr, options: NdpOptions<'_>) {
        let (src, dst) = (p.src(), p.dst());
        let sll = options.source_link_addr();
        if ndp::check_ns(p.hop_limit(), &src, &dst, &target, sll.is_some()).is_err() {
            return self.nd_invalid();
        }
        if let Some(info) = self.nd.get(&target).copied() {
            if info.state == AddressState::Tentative {
                if src.is_unspecified() {
                    // Someone else probes our tentative address, unless it
                    // is our own probe looped back (same nonce, RFC 7527).
                    let ours = options
                        .into_iter()
                        .any(|o| matches!(o, Ok(NdpOption::Nonce(n)) if n == info.nonce));
                    if !ours {
                        self.dad_failed(target);
                    }
                }
                return;
            }
        }
        if !self.ip6.is_local(&target) {
            return;
        }
        if let Some(mac) = sll {
            let (t, mut ctx) = self.ndp_ctx();
            t.update(
                &mut ctx,
                src,
                NeighborUpdate {
                    mac,
                    state: UpdateState::Stale,
                    override_mac: true,
                    create: true,
                    weak_override: false,
                },
            );
        }
        let opts = NdpOptionsBuf::one(NdpOption::TargetLinkAddr(self.core.device.mac));
        let solicited = !src.is_unspecified();
        let na = Icmpv6Message::NeighborAdvertisement {
            router: false,
            solicited,
            override_flag: true,
            target,
            options: opts.options(),
        };
        let to = if solicited { src } else { Ipv6Addr::ALL_NODES };
        self.send_nd_unicast(target, to, &na);
    }

    /// RFC 4861 7.2.5 and RFC 4862 5.4.4.
    fn receive_na(
        &mut self,
        p: &Ipv6Packet<'_>,
        router: bool,
        solicited: bool,
        override_flag: bool,
        target: Ipv6Addr,
        options: NdpOptions<'_>,
    ) {
        if ndp::check_na(p.hop_limit(), &p.dst(), &target, solicited).is_err() {
            return self.nd_invalid();
        }
        if self.nd.is_tentative(&target) {
            return self.dad_failed(target);
        }
        if self.ip6.is_local(&target) {
            // Someone advertises our address: Linux logs it and ignores.
            return;
        }
        let Some(entry) = self.ndp.get(&target) else {
            return;
        };
        let tll = options.target_link_addr();
        let Some(mac) = tll.or(entry.mac) else {
            return;
        };
        let (t, mut ctx) = self.ndp_ctx();
        t.update(
            &mut ctx,
            target,
            NeighborUpdate {
                mac,
                state: if solicited {
                    UpdateState::Reachable
                } else {
                    UpdateState::Stale
                },
                override_mac: override_flag || tll.is_none(),
                create: false,
                weak_override: true,
            },
        );
        // RFC 4861 7.2.5: a router that says it no longer is one leaves
        // the default router list.
        if !router && self.nd.routers.iter().any(|r| r.addr == target) {
            self.remove_router(target);
        }
    }

    fn remove_router(&mut self, addr: Ipv6Addr) {
        self.nd.routers.retain(|r| r.addr != addr);
        self.remove_ipv6_route(default_subnet::<Ipv6>(), Some(addr));
    }

    /// RFC 4861 6.3.4: default router, hop limit, timers, MTU, prefixes
    /// (on-link routes; SLAAC addresses with the A flag, RFC 4862 5.5.3).
    fn receive_ra(
        &mut self,
        p: &Ipv6Packet<'_>,
        cur_hop_limit: u8,
        router_lifetime: u16,
        reachable_time: u32,
        retrans_timer: u32,
        options: NdpOptions<'_>,
    ) {
        let src = p.src();
        if ndp::check_ra(p.hop_limit(), &src).is_err() {
            return self.nd_invalid();
        }
        if !self.nd.config.accept_ra {
            return;
        }
        let now = self.core.now;
        self.nd.rs_left = 0;
        TimerContext::<NdTimer>::cancel_timer(&mut self.core, &NdTimer::Rs);
        if cur_hop_limit != 0 {
            self.ip6.default_ttl = cur_hop_limit;
        }
        let cfg = self.ndp.config_mut();
        if reachable_time != 0 {
            cfg.base_reachable_time = Duration::from_millis(u64::from(reachable_time));
        }
        if retrans_timer != 0 {
            cfg.retrans_time = Duration::from_millis(u64::from(retrans_timer));
        }
        // Default router.
        let known = self.nd.routers.iter().position(|r| r.addr == src);
        if router_lifetime == 0 {
            if known.is_some() {
                self.remove_router(src);
            }
        } else {
            let expires = now + Duration::from_secs(u64::from(router_lifetime));
            match known {
                Some(i) => self.nd.routers[i].expires = expires,
                None => {
                    self.nd.routers.push(RouterEntry { addr: src, expires });
                    let _ = self.add_ipv6_route(Route::default_via(src));
                }
            }
        }
        for o in options {
            match o {
                Ok(NdpOption::SourceLinkAddr(mac)) => {
                    let (t, mut ctx) = self.ndp_ctx();
                    t.update(
                        &mut ctx,
                        src,
                        NeighborUpdate {
                            mac,
                            state: UpdateState::Stale,
                            override_mac: true,
                            create: true,
                            weak_override: false,
                        },
                    );
                }
                Ok(NdpOption::Mtu(m))
                    if (u32::from(Ipv6::MIN_MTU)..=u32::from(self.core.device.mtu))
                        .contains(&m) =>
                {
                    self.nd.mtu = Some(m as u16);
                }
                Ok(NdpOption::PrefixInfo(pi)) => self.ra_prefix(pi),
                _ => {}
            }
        }
        self.schedule_lifetimes();
    }

    fn ra_prefix(&mut self, pi: icmpv6::PrefixInfo) {
        let Ok(subnet) = Subnet::from_host(pi.prefix, pi.prefix_len) else {
            return;
        };
        if subnet.network().is_link_local() || subnet.network().is_multicast() {
            return;
        }
        let now = self.core.now;
        let until =
            |secs: u32| (secs != u32::MAX).then(|| now + Duration::from_secs(u64::from(secs)));
        if pi.on_link {
            let known = self.nd.prefixes.iter().position(|e| e.subnet == subnet);
            if pi.valid_lifetime == 0 {
                if let Some(i) = known {
                    self.nd.prefixes.remove(i);
                    self.remove_ipv6_route(subnet, None);
                }
            } else {
                let expires = until(pi.valid_lifetime);
                match known {
                    Some(i) => self.nd.prefixes[i].expires = expires,
                    None => {
                        self.nd.prefixes.push(PrefixEntry { subnet, expires });
                        let _ = self.add_ipv6_route(Route::on_link(subnet));
                    }
                }
            }
        }
        if pi.autonomous
            && self.nd.config.autoconf
            && pi.valid_lifetime != 0
            && pi.preferred_lifetime <= pi.valid_lifetime
        {
            let Some(addr) = ndp::slaac_addr(&subnet, self.core.device.mac) else {
                return;
            };
            if self.nd.get(&addr).is_none() && self.start_dad(addr, AddrOrigin::Slaac).is_err() {
                return;
            }
            if let Some(a) = self.nd.get_mut(&addr) {
                if a.origin == AddrOrigin::Slaac {
                    a.valid_until = until(pi.valid_lifetime);
                    a.preferred_until = until(pi.preferred_lifetime);
                }
            }
        }
    }

    /// RFC 4861 8.3: accepted from the current first hop for the
    /// destination only, as a host route (Linux's default
    /// `accept_redirects` 1 for a host).
    fn receive_redirect(
        &mut self,
        p: &Ipv6Packet<'_>,
        target: Ipv6Addr,
        destination: Ipv6Addr,
        options: NdpOptions<'_>,
    ) {
        let src = p.src();
        if ndp::check_redirect(p.hop_limit(), &src, &target, &destination).is_err() {
            return self.nd_invalid();
        }
        let first_hop = self.ip6.routes.lookup(&destination).and_then(|r| r.gateway);
        if !self.nd.config.accept_redirects || first_hop != Some(src) {
            self.core.counters.increment(Counter::NdpRedirectsIgnored);
            return;
        }
        let Ok(host) = Subnet::new(destination, 128) else {
            return;
        };
        self.remove_ipv6_route(host, None);
        let route = if target == destination {
            Route::on_link(host)
        } else {
            Route::via(host, target)
        };
        let _ = self.add_ipv6_route(route);
        if let Some(mac) = options.target_link_addr() {
            let (t, mut ctx) = self.ndp_ctx();
            t.update(
                &mut ctx,
                target,
                NeighborUpdate {
                    mac,
                    state: UpdateState::Stale,
                    override_mac: true,
                    create: true,
                    weak_override: false,
                },
            );
        }
    }

    // ------------------------------------------------------------------
    // DAD (RFC 4862 5.4).

    fn start_dad(&mut self, addr: Ipv6Addr, origin: AddrOrigin) -> Result<(), Errno> {
        if self.ip6.is_local(&addr) || self.nd.get(&addr).is_some() {
            return Err(Errno::EEXIST);
        }
        let mut nonce = [0u8; 6];
        if self.nd.config.enhanced_dad {
            while nonce == [0; 6] {
                nonce.copy_from_slice(&self.core.rng.next_u64().to_be_bytes()[..6]);
            }
        }
        let probes = self.nd.config.dad_transmits;
        self.nd.add(addr, origin, probes, nonce);
        self.core.emit(Event::AddressAdded {
            addr: addr.to_std(),
            prefix: 128,
        });
        self.core.emit(Event::AddressState {
            addr: addr.to_std(),
            state: AddressState::Tentative,
        });
        self.join6(addr.solicited_node());
        if probes == 0 {
            self.assign(addr);
        } else {
            let max = self.nd.config.rtr_solicit_delay.as_nanos() as u64;
            let delay = Duration::from_nanos(self.core.rng.random_range(0, max.max(1) - 1));
            self.core.schedule_timer(delay, NdTimer::Dad(addr));
        }
        Ok(())
    }

    fn dad_timer(&mut self, addr: Ipv6Addr) {
        let retrans = self.ndp.config().retrans_time;
        let Some(a) = self.nd.get_mut(&addr) else {
            return;
        };
        if a.state != AddressState::Tentative {
            return;
        }
        if a.probes_left == 0 {
            return self.assign(addr);
        }
        a.probes_left -= 1;
        let nonce = a.nonce;
        let opts = if self.nd.config.enhanced_dad {
            NdpOptionsBuf::one(NdpOption::Nonce(&nonce))
        } else {
            NdpOptionsBuf::default()
        };
        let ns = Icmpv6Message::NeighborSolicitation {
            target: addr,
            options: opts.options(),
        };
        let f = self
            .core
            .icmp6_frame(Ipv6Addr::UNSPECIFIED, addr.solicited_node(), 255, None, &ns);
        self.core.push_tx(f);
        self.core.schedule_timer(retrans, NdTimer::Dad(addr));
    }

    fn assign(&mut self, addr: Ipv6Addr) {
        let Some(a) = self.nd.get_mut(&addr) else {
            return;
        };
        a.state = AddressState::Assigned;
        let origin = a.origin;
        let _ = self.ip6.add_addr(AddrEntry::v6(addr));
        self.core.emit(Event::AddressState {
            addr: addr.to_std(),
            state: AddressState::Assigned,
        });
        if origin == AddrOrigin::LinkLocal && self.nd.config.router_solicitations > 0 {
            self.nd.rs_left = self.nd.config.router_solicitations;
            let max = self.nd.config.rtr_solicit_delay.as_nanos() as u64;
            let delay = Duration::from_nanos(self.core.rng.random_range(0, max.max(1) - 1));
            self.core.schedule_timer(delay, NdTimer::Rs);
        }
        self.schedule_lifetimes();
    }

    fn dad_failed(&mut self, addr: Ipv6Addr) {
        if self.nd.remove(&addr).is_none() {
            return;
        }
        self.core.counters.increment(Counter::NdpDadFailures);
        TimerContext::<NdTimer>::cancel_timer(&mut self.core, &NdTimer::Dad(addr));
        self.leave6(addr.solicited_node());
        self.core.emit(Event::AddressState {
            addr: addr.to_std(),
            state: AddressState::DadFailed,
        });
        self.core.emit(Event::AddressRemoved {
            addr: addr.to_std(),
        });
    }

    // ------------------------------------------------------------------
    // Timers.

    pub(super) fn nd_timer(&mut self, t: NdTimer) {
        match t {
            NdTimer::Dad(a) => self.dad_timer(a),
            NdTimer::Rs => {
                if self.nd.rs_left == 0 {
                    return;
                }
                self.nd.rs_left -= 1;
                self.send_rs();
                if self.nd.rs_left > 0 {
                    let i = self.nd.config.rtr_solicit_interval;
                    self.core.schedule_timer(i, NdTimer::Rs);
                }
            }
            NdTimer::Mld(g) => {
                let Some(i) = self.nd.mld_repeats.iter().position(|(a, _)| *a == g) else {
                    return;
                };
                self.nd.mld_repeats[i].1 -= 1;
                if self.nd.mld_repeats[i].1 == 0 {
                    self.nd.mld_repeats.swap_remove(i);
                }
                if self.ip6.is_joined(&g) {
                    self.send_mld(&[(mld_record::CHANGE_TO_EXCLUDE, g)]);
                }
            }
            NdTimer::Lifetimes => self.expire_lifetimes(),
        }
    }

    fn schedule_lifetimes(&mut self) {
        match self.nd.next_expiry() {
            Some(t) => {
                self.core.schedule_timer_at(t, NdTimer::Lifetimes);
            }
            None => {
                TimerContext::<NdTimer>::cancel_timer(&mut self.core, &NdTimer::Lifetimes);
            }
        }
    }

    fn expire_lifetimes(&mut self) {
        let now = self.core.now;
        let gone: Vec<Ipv6Addr> = self
            .nd
            .routers
            .iter()
            .filter(|r| r.expires <= now)
            .map(|r| r.addr)
            .collect();
        for r in gone {
            self.remove_router(r);
        }
        let gone: Vec<Subnet<Ipv6Addr>> = self
            .nd
            .prefixes
            .iter()
            .filter(|p| p.expires.is_some_and(|e| e <= now))
            .map(|p| p.subnet)
            .collect();
        for s in gone {
            self.nd.prefixes.retain(|p| p.subnet != s);
            self.remove_ipv6_route(s, None);
        }
        let addrs: Vec<Ipv6AddrInfo> = self.nd.addrs().to_vec();
        for a in addrs {
            if a.valid_until.is_some_and(|t| t <= now) {
                let _ = self.remove_ipv6_address(a.addr);
            } else if a.state == AddressState::Assigned
                && a.preferred_until.is_some_and(|t| t <= now)
            {
                if let Some(e) = self.nd.get_mut(&a.addr) {
                    e.state = AddressState::Deprecated;
                }
                self.ip6.set_deprecated(&a.addr, true);
                self.core.emit(Event::AddressState {
                    addr: a.addr.to_std(),
                    state: AddressState::Deprecated,
                });
            }
        }
        self.schedule_lifetimes();
    }

    /// Our link-local address once assigned (the source of RS and MLD),
    /// else `::`.
    fn link_local_source(&self) -> Ipv6Addr {
        self.ip6
            .addrs()
            .iter()
            .map(|e| e.addr)
            .find(|a| a.is_link_local())
            .unwrap_or(Ipv6Addr::UNSPECIFIED)
    }

    fn send_rs(&mut self) {
        let src = self.link_local_source();
        let opts = if src.is_unspecified() {
            NdpOptionsBuf::default()
        } else {
            NdpOptionsBuf::one(NdpOption::SourceLinkAddr(self.core.device.mac))
        };
        let rs = Icmpv6Message::RouterSolicitation {
            options: opts.options(),
        };
        let f = self
            .core
            .icmp6_frame(src, Ipv6Addr::ALL_ROUTERS, 255, None, &rs);
        self.core.push_tx(f);
    }

    // ------------------------------------------------------------------
    // Multicast listener (RFC 3810).

    fn join6(&mut self, g: Ipv6Addr) {
        if !self.ip6.join_group(g) {
            return;
        }
        if let Some(m) = g.multicast_mac() {
            self.core.device.join_group(m);
        }
        // With an external resolver the kernel owns the addresses and
        // reports their solicited-node groups itself.
        let kernels = self.ndp.config().external && g.is_solicited_node();
        if ndp::reported(&g) && !kernels {
            self.send_mld(&[(mld_record::CHANGE_TO_EXCLUDE, g)]);
            // Robustness 2: once more within the unsolicited report
            // interval (1 s).
            self.nd.mld_repeats.retain(|(a, _)| *a != g);
            self.nd.mld_repeats.push((g, 1));
            let d = Duration::from_nanos(self.core.rng.random_range(0, 999_999_999));
            self.core.schedule_timer(d, NdTimer::Mld(g));
        }
    }

    fn leave6(&mut self, g: Ipv6Addr) {
        if !self.ip6.leave_group(&g) {
            return;
        }
        if let Some(m) = g.multicast_mac() {
            self.core.device.leave_group(m);
        }
        self.nd.mld_repeats.retain(|(a, _)| *a != g);
        TimerContext::<NdTimer>::cancel_timer(&mut self.core, &NdTimer::Mld(g));
        let kernels = self.ndp.config().external && g.is_solicited_node();
        if ndp::reported(&g) && !kernels {
            self.send_mld(&[(mld_record::CHANGE_TO_INCLUDE, g)]);
        }
    }

    /// A general or group query: the current state of every group we
    /// report (MODE_IS_EXCLUDE, no sources).
    fn mld_query(&mut self, p: &Ipv6Packet<'_>) {
        if p.hop_limit() != 1 || !p.src().is_link_local() {
            return self.nd_invalid();
        }
        let groups: Vec<(u8, Ipv6Addr)> = self
            .ip6
            .groups()
            .filter(ndp::reported)
            .map(|g| (mld_record::MODE_IS_EXCLUDE, g))
            .collect();
        if !groups.is_empty() {
            self.send_mld(&groups);
        }
    }

    fn send_mld(&mut self, records: &[(u8, Ipv6Addr)]) {
        let body = ndp::report_records(records);
        let [hi, lo] = (records.len() as u16).to_be_bytes();
        let msg = Icmpv6Message::Other {
            msg_type: msg_type::MLDV2_REPORT,
            code: 0,
            rest: [0, 0, hi, lo],
            body: &body,
        };
        let src = self.link_local_source();
        let f = self.core.icmp6_frame(
            src,
            Ipv6Addr::ALL_MLDV2_ROUTERS,
            1,
            Some(&ndp::ROUTER_ALERT_MLD),
            &msg,
        );
        self.core.push_tx(f);
    }
}
