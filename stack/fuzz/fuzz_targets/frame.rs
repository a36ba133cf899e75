//! One target that drives every parser: the bytes are an Ethernet frame,
//! and whatever parses is handed to the next layer, as the stack's receive
//! path will. The first byte also picks a "raw" parser to feed the
//! remaining bytes directly, so that deep parsers get coverage even when
//! the outer layers reject. Nothing here may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shunt_stack::wire::{
    ArpPacket, EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet,
    TcpSegment, UdpPacket, icmpv6::Icmpv6Message, ipv6::ExtHeaderKind,
};
use shunt_stack::{IpProto, Ipv6Addr};

fn l4_v4(ip: &Ipv4Packet<'_>) {
    let (s, d, p) = (ip.src(), ip.dst(), ip.payload());
    for o in ip.options() {
        let _ = o;
    }
    match ip.protocol() {
        IpProto::TCP => {
            if let Ok(t) = TcpSegment::parse(p, &s, &d) {
                let _ = t.options().summary();
            }
        }
        IpProto::UDP => {
            let _ = UdpPacket::parse(p, &s, &d);
        }
        IpProto::ICMP => {
            if let Ok(i) = Icmpv4Packet::parse(p) {
                if let Some(q) = i.message().original() {
                    let _ = Ipv4Packet::parse_quote(q);
                }
            }
        }
        _ => {}
    }
}

fn icmpv6(m: Icmpv6Message<'_>) {
    if let Some(q) = m.original() {
        if let Ok(p) = Ipv6Packet::parse_quote(q) {
            let _ = p.upper_layer();
        }
    }
    if let Icmpv6Message::RouterSolicitation { options }
    | Icmpv6Message::RouterAdvertisement { options, .. }
    | Icmpv6Message::NeighborSolicitation { options, .. }
    | Icmpv6Message::NeighborAdvertisement { options, .. }
    | Icmpv6Message::Redirect { options, .. } = m
    {
        for o in options {
            let _ = o;
        }
    }
}

fn l4_v6(ip: &Ipv6Packet<'_>) {
    let (s, d) = (ip.src(), ip.dst());
    let mut walk = ip.ext_headers();
    for h in &mut walk {
        let Ok(h) = h else { return };
        if let ExtHeaderKind::HopByHop(o) | ExtHeaderKind::DestinationOptions(o) = h.kind {
            for opt in o {
                let _ = opt.map(|o| o.unrecognized_action());
            }
        }
    }
    let (proto, off) = walk.upper_layer();
    let p = ip.as_bytes().get(off..).unwrap_or(&[]);
    match proto {
        IpProto::TCP => {
            let _ = TcpSegment::parse(p, &s, &d).map(|t| t.options().summary());
        }
        IpProto::UDP => {
            let _ = UdpPacket::parse(p, &s, &d);
        }
        IpProto::ICMPV6 => {
            if let Ok(i) = Icmpv6Packet::parse(p, &s, &d) {
                icmpv6(i.message());
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = EthernetFrame::parse(data) {
        match f.ethertype() {
            EtherType::IPV4 => {
                if let Ok(ip) = Ipv4Packet::parse(f.payload()) {
                    l4_v4(&ip);
                }
            }
            EtherType::IPV6 => {
                if let Ok(ip) = Ipv6Packet::parse(f.payload()) {
                    l4_v6(&ip);
                }
            }
            EtherType::ARP => {
                let _ = ArpPacket::parse(f.payload()).map(|a| a.ethernet_ipv4());
            }
            _ => {}
        }
    }
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (a, b) = (Ipv6Addr::LOOPBACK, Ipv6Addr::LOOPBACK);
    match pick % 6 {
        0 => {
            let _ = TcpSegment::parse_unverified(rest).map(|t| t.options().summary());
        }
        1 => {
            let _ = UdpPacket::parse_unverified(rest);
        }
        2 => {
            let _ = Icmpv6Packet::parse_unverified(rest).map(|i| icmpv6(i.message()));
        }
        3 => {
            let _ = Ipv4Packet::parse_quote(rest).map(|p| l4_v4(&p));
        }
        4 => {
            let _ = Ipv6Packet::parse_quote(rest).map(|p| l4_v6(&p));
        }
        _ => {
            let _ = Icmpv6Packet::parse(rest, &a, &b);
        }
    }
});
