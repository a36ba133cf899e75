//! ARP (RFC 826, RFC 1122 2.3.2) over the generic neighbour table, with
//! Linux's receive rules (`arp_process` in net/ipv4/arp.c, default
//! sysctls: `arp_ignore` 0, `arp_announce` 0, `arp_accept` 0):
//!
//! - RFC 826's "do I have the hardware type? the protocol type?": a packet
//!   whose hardware type is not Ethernet, protocol type not IPv4, or
//!   address lengths not 6 and 4 is dropped and counted, never answered
//!   (IxANVL ARP 3.2, which Seastar, mTCP and rump failed);
//! - operations other than request and reply, targets that are multicast
//!   or loopback, senders that are group MACs or addresses no host may
//!   have: dropped and counted;
//! - a request for one of our addresses is answered (unicast, to the
//!   sender's MAC) and creates or refreshes the sender's entry as stale;
//!   requests for other addresses get no reply;
//! - a request from `0.0.0.0` (an RFC 5227 probe) for our address gets a
//!   reply, and creates no entry;
//! - everything else only updates an entry that already exists (unsolicited
//!   ARP creates nothing, `arp_accept` 0): a unicast reply makes it
//!   reachable, requests and broadcast replies make it stale; a different
//!   MAC replaces the old one only after `locktime` (1 s) or when the packet
//!   is a gratuitous announcement (sender IP = target IP).

use crate::counters::Counter;
use crate::iface::PacketType;
use crate::iface::neighbor::{NeighborContext, NeighborTable, NeighborUpdate, UpdateState};
use crate::ip::{IpAddress, Ipv4, Ipv4Addr};
use crate::wire::{ArpOp, ArpPacket, EthernetArp, Mac};

/// What ARP needs beyond the neighbour table's context.
pub trait ArpContext: NeighborContext<Ipv4> {
    fn our_mac(&self) -> Mac;
    /// One of this host's addresses (Linux: `RTN_LOCAL`).
    fn is_our_addr(&self, addr: Ipv4Addr) -> bool;
    /// A broadcast address of one of our subnets, or the limited one.
    fn is_broadcast_addr(&self, addr: Ipv4Addr) -> bool;
    /// Sends an ARP packet in an Ethernet frame to `dst`.
    fn send_arp(&mut self, packet: &EthernetArp, dst: Mac);
}

/// Whether an address can be an ARP sender: a unicast address some host
/// could own (not multicast, broadcast, loopback, class E or `0/8`).
fn is_martian_sender(a: Ipv4Addr) -> bool {
    a.is_multicast()
        || a.is_limited_broadcast()
        || a.is_loopback()
        || a.is_reserved()
        || a.octets()[0] == 0
}

/// Processes one received ARP packet (`payload`: the Ethernet payload).
pub fn receive<C: ArpContext>(
    table: &mut NeighborTable<Ipv4>,
    ctx: &mut C,
    pkt_type: PacketType,
    payload: &[u8],
) {
    let Ok(generic) = ArpPacket::parse(payload) else {
        ctx.increment(Counter::ArpInDrops);
        return;
    };
    let Ok(a) = generic.ethernet_ipv4() else {
        ctx.increment(Counter::ArpInDrops);
        return;
    };
    match a.op {
        ArpOp::REQUEST => ctx.increment(Counter::ArpInRequests),
        ArpOp::REPLY => ctx.increment(Counter::ArpInReplies),
        _ => {
            ctx.increment(Counter::ArpInDrops);
            return;
        }
    }
    let (sip, tip, sha) = (a.sender_ip, a.target_ip, a.sender_mac);
    if tip.is_multicast() || tip.is_loopback() || sha.is_multicast() || sha == Mac::ZERO {
        ctx.increment(Counter::ArpInDrops);
        return;
    }
    if sip.is_unspecified() {
        // RFC 5227 probe: answer if it is for us, learn nothing.
        if a.op == ArpOp::REQUEST && ctx.is_our_addr(tip) {
            send_reply(ctx, &a);
        }
        return;
    }
    if is_martian_sender(sip) || ctx.is_broadcast_addr(sip) {
        ctx.increment(Counter::ArpInDrops);
        return;
    }
    if ctx.is_our_addr(sip) {
        // Someone else claims our address (or our own announcement came
        // back). Linux does not defend; neither do we, and we never make
        // an entry for ourselves.
        return;
    }
    if a.op == ArpOp::REQUEST && ctx.is_our_addr(tip) {
        table.update(
            ctx,
            sip,
            NeighborUpdate {
                mac: sha,
                state: UpdateState::Stale,
                override_mac: true,
                create: true,
                weak_override: false,
            },
        );
        send_reply(ctx, &a);
        return;
    }
    if table.get(&sip).is_none() {
        return;
    }
    let is_garp = sip == tip && (a.op == ArpOp::REQUEST || a.target_mac == sha);
    let now = ctx.now();
    let locktime = table.config().locktime;
    let override_mac = is_garp || table.last_updated(&sip).is_none_or(|u| now >= u + locktime);
    let state = if a.op == ArpOp::REPLY && pkt_type == PacketType::Host {
        UpdateState::Reachable
    } else {
        UpdateState::Stale
    };
    table.update(
        ctx,
        sip,
        NeighborUpdate {
            mac: sha,
            state,
            override_mac,
            create: false,
            weak_override: false,
        },
    );
}

fn send_reply<C: ArpContext>(ctx: &mut C, request: &EthernetArp) {
    let reply = request.reply(ctx.our_mac());
    ctx.increment(Counter::ArpOutReplies);
    ctx.send_arp(&reply, request.sender_mac);
}

/// The request a solicitation sends: broadcast while incomplete, unicast
/// to the cached MAC while probing (`arp_solicit`).
pub fn solicit<C: ArpContext>(ctx: &mut C, target: Ipv4Addr, src: Ipv4Addr, unicast: Option<Mac>) {
    let req = EthernetArp::request(ctx.our_mac(), src, target);
    ctx.increment(Counter::ArpOutRequests);
    ctx.send_arp(&req, unicast.unwrap_or(Mac::BROADCAST));
}

/// A gratuitous ARP request announcing `addr` (sent when an address is
/// added, as Linux does on `NETDEV_UP`).
pub fn announce<C: ArpContext>(ctx: &mut C, addr: Ipv4Addr) {
    let req = EthernetArp::announcement(ctx.our_mac(), addr);
    ctx.increment(Counter::ArpOutRequests);
    ctx.send_arp(&req, Mac::BROADCAST);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::fake::{FakeCore, delegate_core};
    use crate::iface::Frame;
    use crate::iface::neighbor::{NeighborConfig, NeighborEvent, NeighborState, NeighborTimerId};
    use crate::time::Duration;

    type Id = NeighborTimerId<Ipv4>;
    type Ev = NeighborEvent<Ipv4>;

    const OUR_MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const OURS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const PEER_MAC: Mac = Mac([2, 0, 0, 0, 0, 2]);
    const OTHER_MAC: Mac = Mac([2, 0, 0, 0, 0, 3]);

    #[derive(Default)]
    struct Ctx {
        core: FakeCore<Id, Ev>,
        arps: Vec<(EthernetArp, Mac)>,
        sent: Vec<Frame>,
    }
    delegate_core!(Ctx, core, Id, Ev);

    impl NeighborContext<Ipv4> for Ctx {
        fn send_solicitation(&mut self, t: Ipv4Addr, s: Option<Ipv4Addr>, u: Option<Mac>) {
            solicit(self, t, s.unwrap_or(OURS), u);
        }
        fn send_frame(&mut self, f: Frame) {
            self.sent.push(f);
        }
        fn resolution_failed(&mut self, _: Ipv4Addr, _: Frame) {}
        fn drop_frame(&mut self, _: Frame) {}
    }
    impl ArpContext for Ctx {
        fn our_mac(&self) -> Mac {
            OUR_MAC
        }
        fn is_our_addr(&self, a: Ipv4Addr) -> bool {
            a == OURS
        }
        fn is_broadcast_addr(&self, a: Ipv4Addr) -> bool {
            a == Ipv4Addr::new(192, 0, 2, 255) || a.is_limited_broadcast()
        }
        fn send_arp(&mut self, p: &EthernetArp, dst: Mac) {
            self.arps.push((*p, dst));
        }
    }

    fn bytes(a: &EthernetArp) -> Vec<u8> {
        let mut b = vec![0u8; 46];
        a.emit(&mut b).unwrap();
        b
    }

    fn request(sip: Ipv4Addr, tip: Ipv4Addr) -> Vec<u8> {
        bytes(&EthernetArp::request(PEER_MAC, sip, tip))
    }

    fn setup() -> (NeighborTable<Ipv4>, Ctx) {
        (
            NeighborTable::new(NeighborConfig::default()),
            Ctx::default(),
        )
    }

    #[test]
    fn answers_requests_for_our_address_and_learns_sender() {
        let (mut t, mut c) = setup();
        receive(&mut t, &mut c, PacketType::Broadcast, &request(PEER, OURS));
        assert_eq!(c.arps.len(), 1);
        let (r, dst) = c.arps[0];
        assert_eq!(dst, PEER_MAC);
        assert_eq!(r.op, ArpOp::REPLY);
        assert_eq!((r.sender_mac, r.sender_ip), (OUR_MAC, OURS));
        assert_eq!((r.target_mac, r.target_ip), (PEER_MAC, PEER));
        let e = t.get(&PEER).unwrap();
        assert_eq!((e.state, e.mac), (NeighborState::Stale, Some(PEER_MAC)));
        assert_eq!(c.core.counters[Counter::ArpInRequests], 1);
        assert_eq!(c.core.counters[Counter::ArpOutReplies], 1);
    }

    #[test]
    fn no_reply_for_other_addresses_and_no_entry() {
        let (mut t, mut c) = setup();
        receive(
            &mut t,
            &mut c,
            PacketType::Broadcast,
            &request(PEER, Ipv4Addr::new(192, 0, 2, 9)),
        );
        assert!(c.arps.is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn ixanvl_arp_3_2_bad_hardware_or_protocol_type() {
        let (mut t, mut c) = setup();
        let good = request(PEER, OURS);
        let mut cases = Vec::new();
        let mut b = good.clone();
        b[0..2].copy_from_slice(&0x1234u16.to_be_bytes()); // htype
        cases.push(b);
        let mut b = good.clone();
        b[0..2].copy_from_slice(&6u16.to_be_bytes()); // IEEE 802
        cases.push(b);
        let mut b = good.clone();
        b[2..4].copy_from_slice(&0x86ddu16.to_be_bytes()); // ptype
        cases.push(b);
        let mut b = good.clone();
        b[4] = 8; // hlen
        cases.push(b);
        let mut b = good.clone();
        b[5] = 16; // plen
        cases.push(b);
        let mut b = good.clone();
        b[6..8].copy_from_slice(&3u16.to_be_bytes()); // RARP request
        cases.push(b);
        cases.push(good[..20].to_vec());
        let n = cases.len() as u64;
        for b in cases {
            receive(&mut t, &mut c, PacketType::Broadcast, &b);
        }
        assert!(c.arps.is_empty());
        assert!(t.is_empty());
        assert_eq!(c.core.counters[Counter::ArpInDrops], n);
    }

    #[test]
    fn bogus_senders_and_targets_dropped() {
        let (mut t, mut c) = setup();
        for (sip, tip) in [
            (Ipv4Addr::new(224, 0, 0, 1), OURS),
            (Ipv4Addr::BROADCAST, OURS),
            (Ipv4Addr::new(192, 0, 2, 255), OURS),
            (Ipv4Addr::new(127, 0, 0, 1), OURS),
            (PEER, Ipv4Addr::new(224, 0, 0, 1)),
            (PEER, Ipv4Addr::new(127, 0, 0, 1)),
        ] {
            receive(&mut t, &mut c, PacketType::Broadcast, &request(sip, tip));
        }
        let mut b = EthernetArp::request(Mac::BROADCAST, PEER, OURS);
        receive(&mut t, &mut c, PacketType::Broadcast, &bytes(&b));
        b.sender_mac = Mac::ZERO;
        receive(&mut t, &mut c, PacketType::Broadcast, &bytes(&b));
        assert!(c.arps.is_empty());
        assert!(t.is_empty());
        assert_eq!(c.core.counters[Counter::ArpInDrops], 8);
        assert!(is_martian_sender(Ipv4Addr::new(0, 1, 2, 3)));
    }

    #[test]
    fn probe_from_unspecified_is_answered_without_learning() {
        let (mut t, mut c) = setup();
        receive(
            &mut t,
            &mut c,
            PacketType::Broadcast,
            &request(Ipv4Addr::UNSPECIFIED, OURS),
        );
        assert_eq!(c.arps.len(), 1);
        assert_eq!(c.arps[0].0.target_ip, Ipv4Addr::UNSPECIFIED);
        assert!(t.is_empty());
    }

    #[test]
    fn unsolicited_reply_creates_nothing_but_updates_existing() {
        let (mut t, mut c) = setup();
        let reply = |mac: Mac| {
            bytes(&EthernetArp {
                op: ArpOp::REPLY,
                sender_mac: mac,
                sender_ip: PEER,
                target_mac: OUR_MAC,
                target_ip: OURS,
            })
        };
        receive(&mut t, &mut c, PacketType::Host, &reply(PEER_MAC));
        assert!(t.is_empty());
        // Resolve: queue a frame, the reply completes it.
        t.send(&mut c, PEER, Frame::from_vec(vec![0; 60]), Some(OURS));
        assert_eq!(c.arps.len(), 1);
        assert_eq!(c.arps[0].1, Mac::BROADCAST);
        assert_eq!(c.arps[0].0.target_mac, Mac::ZERO);
        receive(&mut t, &mut c, PacketType::Host, &reply(PEER_MAC));
        assert_eq!(t.get(&PEER).unwrap().state, NeighborState::Reachable);
        assert_eq!(c.sent.len(), 1);
        assert_eq!(&c.sent[0].as_slice()[..6], &PEER_MAC.0);
        // A different MAC within locktime is ignored; after it, accepted.
        receive(&mut t, &mut c, PacketType::Host, &reply(OTHER_MAC));
        assert_eq!(t.get(&PEER).unwrap().mac, Some(PEER_MAC));
        c.core.now += Duration::from_secs(2);
        receive(&mut t, &mut c, PacketType::Host, &reply(OTHER_MAC));
        assert_eq!(t.get(&PEER).unwrap().mac, Some(OTHER_MAC));
    }

    #[test]
    fn gratuitous_arp_updates_existing_entry_at_once() {
        let (mut t, mut c) = setup();
        receive(&mut t, &mut c, PacketType::Broadcast, &request(PEER, OURS));
        assert_eq!(t.get(&PEER).unwrap().mac, Some(PEER_MAC));
        let garp = EthernetArp::announcement(OTHER_MAC, PEER);
        receive(&mut t, &mut c, PacketType::Broadcast, &bytes(&garp));
        let e = t.get(&PEER).unwrap();
        assert_eq!((e.mac, e.state), (Some(OTHER_MAC), NeighborState::Stale));
        // A gratuitous ARP for an address we have no entry for: ignored.
        let other = Ipv4Addr::new(192, 0, 2, 7);
        receive(
            &mut t,
            &mut c,
            PacketType::Broadcast,
            &bytes(&EthernetArp::announcement(OTHER_MAC, other)),
        );
        assert!(t.get(&other).is_none());
        assert_eq!(c.arps.len(), 1, "only the first request was answered");
    }

    #[test]
    fn broadcast_reply_only_makes_stale() {
        let (mut t, mut c) = setup();
        t.send(&mut c, PEER, Frame::from_vec(vec![0; 60]), Some(OURS));
        let reply = EthernetArp {
            op: ArpOp::REPLY,
            sender_mac: PEER_MAC,
            sender_ip: PEER,
            target_mac: OUR_MAC,
            target_ip: OURS,
        };
        receive(&mut t, &mut c, PacketType::Broadcast, &bytes(&reply));
        // Stale, then delay as the queued frame goes out.
        assert_eq!(t.get(&PEER).unwrap().state, NeighborState::Delay);
        assert_eq!(c.sent.len(), 1);
    }

    #[test]
    fn announce_is_a_gratuitous_request() {
        let (_, mut c) = setup();
        announce(&mut c, OURS);
        let (a, dst) = c.arps[0];
        assert_eq!(dst, Mac::BROADCAST);
        assert_eq!(
            (a.op, a.sender_ip, a.target_ip),
            (ArpOp::REQUEST, OURS, OURS)
        );
    }
}
