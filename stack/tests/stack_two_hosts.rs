//! Two stacks wired frame to frame: ARP, ping, UDP, ICMP errors,
//! fragmentation, loopback, timers on a fake clock. Every frame either
//! stack sends is parsed and checksummed by etherparse (`stack_util`).

mod stack_util;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use shunt_stack::iface::neighbor::NeighborState;
use shunt_stack::time::Duration;
use shunt_stack::wire::{ArpOp, ArpPacket, EtherType, EthernetFrame, Ipv4Packet};
use shunt_stack::{Counter, Errno, Event, Ipv4Addr, Mac, Readiness, RecvFlags, RxOffload};
use stack_util::*;

fn ethertype(f: &[u8]) -> EtherType {
    EthernetFrame::parse(f).unwrap().ethertype()
}

fn ipv4(f: &[u8]) -> Ipv4Packet<'_> {
    Ipv4Packet::parse(EthernetFrame::parse(f).unwrap().payload()).unwrap()
}

fn recv(
    s: &mut shunt_stack::Stack,
    h: shunt_stack::UdpHandle,
) -> Result<(Vec<u8>, std::net::SocketAddr), Errno> {
    let mut buf = vec![0u8; 70000];
    let m = s.udp_recv_from(h, &mut buf, RecvFlags::default())?;
    Ok((buf[..m.ret].to_vec(), m.src.unwrap()))
}

#[test]
fn gratuitous_arp_on_address_add() {
    let mut s = host(MAC_A, A, 1);
    let mut buf = [0u8; 1600];
    let n = s
        .poll_transmit(shunt_stack::time::Instant::ZERO, &mut buf)
        .unwrap();
    let f = EthernetFrame::parse(&buf[..n]).unwrap();
    assert_eq!((f.dst(), f.ethertype()), (Mac::BROADCAST, EtherType::ARP));
    let a = ArpPacket::parse(f.payload())
        .unwrap()
        .ethernet_ipv4()
        .unwrap();
    assert_eq!((a.op, a.sender_ip, a.target_ip), (ArpOp::REQUEST, A, A));
    assert!(matches!(
        s.poll_event(),
        Some(Event::AddressAdded { prefix: 24, .. })
    ));
}

#[test]
fn ping_resolves_arp_then_replies() {
    let mut n = Net::new();
    n.a.send_echo_request(B, 7, 1, b"abcdefgh", n.now).unwrap();
    n.pump();
    // A: ARP request, then the echo request once resolved; B: ARP reply,
    // echo reply (B learned A from the request, no ARP of its own).
    assert_eq!(ethertype(&n.from_a[0]), EtherType::ARP);
    assert_eq!(ethertype(&n.from_a[1]), EtherType::IPV4);
    assert_eq!(ethertype(&n.from_b[0]), EtherType::ARP);
    assert_eq!(ethertype(&n.from_b[1]), EtherType::IPV4);
    assert_eq!(n.from_a.len(), 2);
    assert_eq!(n.from_b.len(), 2);
    let r = n.a.poll_echo_reply().unwrap();
    assert_eq!(
        (r.from, r.ident, r.seq, &r.data[..]),
        (B, 7, 1, &b"abcdefgh"[..])
    );
    assert_eq!(r.ttl, 64);
    let p = SlicedPacket::from_ethernet(&n.from_b[1]).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!()
    };
    assert!(matches!(
        i.icmp_type(),
        etherparse::Icmpv4Type::EchoReply(_)
    ));
    assert_eq!(n.b.counters()[Counter::IcmpInEchos], 1);
    assert_eq!(n.b.counters()[Counter::IcmpOutEchoReps], 1);
    let na = n.a.neighbors();
    assert_eq!(na[0].state, NeighborState::Reachable);
    assert_eq!(na[0].mac, Some(MAC_B));
    let nb = n.b.neighbors();
    assert_eq!(nb[0].mac, Some(MAC_A));
    // The second ping needs no ARP.
    n.a.send_echo_request(B, 7, 2, b"", n.now).unwrap();
    n.pump();
    assert_eq!(n.from_a.len(), 3);
    assert_eq!(n.a.poll_echo_reply().unwrap().seq, 2);
}

#[test]
fn broadcast_ping_is_ignored_like_linux() {
    let mut n = Net::new();
    n.a.set_ipv4_gateway(B).unwrap();
    n.a.send_echo_request(Ipv4Addr::new(192, 0, 2, 255), 1, 1, b"x", n.now)
        .unwrap();
    n.pump();
    assert!(n.from_b.is_empty());
    assert_eq!(n.b.counters()[Counter::IcmpInErrors], 1);
    assert_eq!(n.b.counters()[Counter::IpInBcastPkts], 1);
}

#[test]
fn udp_echo_and_port_unreachable_to_econnrefused() {
    let mut n = Net::new();
    let server = n.b.udp_socket();
    n.b.udp_bind(server, sa(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let client = n.a.udp_socket();
    n.a.udp_connect(client, Some(sa(B, 7)), n.now).unwrap();
    assert_eq!(
        n.a.udp_local_addr(client).unwrap().ip(),
        std::net::IpAddr::V4(A.into())
    );
    assert_eq!(n.a.udp_send_to(client, b"hello", None, n.now), Ok(5));
    n.pump();
    let (data, from) = recv(&mut n.b, server).unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(from, n.a.udp_local_addr(client).unwrap());
    n.b.udp_send_to(server, &data, Some(from), n.now).unwrap();
    n.pump();
    assert_eq!(
        recv(&mut n.a, client).unwrap(),
        (b"hello".to_vec(), sa(B, 7))
    );
    // The DF bit is set on UDP that fits (IP_PMTUDISC_WANT), ident 0.
    let last = n.from_a.last().unwrap();
    let ip = ipv4(last);
    assert!(ip.dont_fragment());
    // Close the server: the next datagram gets port unreachable, and the
    // connected client sees ECONNREFUSED once.
    n.b.udp_close(server).unwrap();
    n.a.udp_send_to(client, b"again", None, n.now).unwrap();
    n.pump();
    assert_eq!(n.b.counters()[Counter::UdpNoPorts], 1);
    assert_eq!(n.b.counters()[Counter::IcmpOutDestUnreachs], 1);
    let icmp = n.from_b.last().unwrap();
    let p = SlicedPacket::from_ethernet(icmp).unwrap();
    let Some(NetSlice::Ipv4(iph)) = &p.net else {
        panic!()
    };
    assert_eq!(
        iph.header().dcp().value() << 2,
        0xc0,
        "precedence internetwork control"
    );
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!()
    };
    assert!(matches!(
        i.icmp_type(),
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port
        )
    ));
    assert!(n.a.udp_readiness(client).unwrap().error());
    assert_eq!(recv(&mut n.a, client).unwrap_err(), Errno::ECONNREFUSED);
    assert_eq!(recv(&mut n.a, client).unwrap_err(), Errno::EAGAIN);
    assert_eq!(n.a.counters()[Counter::IcmpInDestUnreachs], 1);
}

/// RFC 1122 3.2.2: no ICMP error about a datagram whose source is a
/// subnet broadcast address (it names no single host). Linux sends a Port
/// Unreachable here (conformance ICMP-3.6 lists it as a deviation).
#[test]
fn no_port_unreachable_to_a_broadcast_source() {
    let mut b = host(MAC_B, B, 2);
    let now = shunt_stack::time::Instant::ZERO;
    let mut buf = [0u8; 1600];
    while b.poll_transmit(now, &mut buf).is_some() {}
    let frame = |src: [u8; 4]| {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2(MAC_A.0, MAC_B.0)
            .ipv4(src, B.octets(), 64)
            .udp(4000, 7999)
            .write(&mut f, b"closed port")
            .unwrap();
        f
    };
    let unreachables = |b: &mut shunt_stack::Stack, buf: &mut [u8]| {
        let mut n = 0;
        while let Some(len) = b.poll_transmit(now, buf) {
            let f = &buf[..len];
            if ethertype(f) == EtherType::IPV4
                && ipv4(f).protocol() == shunt_stack::ip::IpProto::ICMP
            {
                n += 1;
            }
        }
        n
    };
    b.receive(&frame([192, 0, 2, 255]), RxOffload::default(), now);
    assert_eq!(b.counters()[Counter::UdpNoPorts], 1);
    assert_eq!(unreachables(&mut b, &mut buf), 0, "an error to 192.0.2.255");
    // The same datagram from one host is answered.
    b.receive(&frame(A.octets()), RxOffload::default(), now);
    assert_eq!(b.counters()[Counter::UdpNoPorts], 2);
    let mut sent = 0;
    for _ in 0..3 {
        sent += unreachables(&mut b, &mut buf);
        if sent > 0 {
            break;
        }
        // A resolves first: answer B's ARP request.
        b.receive(
            &{
                let mut f = Vec::new();
                f.extend_from_slice(&MAC_B.0);
                f.extend_from_slice(&MAC_A.0);
                f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
                f.extend_from_slice(&MAC_A.0);
                f.extend_from_slice(&A.octets());
                f.extend_from_slice(&MAC_B.0);
                f.extend_from_slice(&B.octets());
                f
            },
            RxOffload::default(),
            now,
        );
    }
    assert_eq!(sent, 1, "a Port Unreachable to 192.0.2.1");
}

#[test]
fn unconnected_socket_ignores_port_unreachable() {
    let mut n = Net::new();
    let c = n.a.udp_socket();
    n.a.udp_send_to(c, b"x", Some(sa(B, 9)), n.now).unwrap();
    n.pump();
    assert_eq!(n.a.counters()[Counter::IcmpInDestUnreachs], 1);
    assert!(!n.a.udp_readiness(c).unwrap().error());
}

#[test]
fn fragmented_udp_reassembled_by_peer_and_by_etherparse() {
    let mut n = Net::new();
    let server = n.b.udp_socket();
    n.b.udp_bind(server, sa(B, 9000)).unwrap();
    let client = n.a.udp_socket();
    let payload: Vec<u8> = (0..4000u32).map(|i| (i * 31 % 251) as u8).collect();
    n.a.udp_send_to(client, &payload, Some(sa(B, 9000)), n.now)
        .unwrap();
    n.pump();
    let (data, _) = recv(&mut n.b, server).unwrap();
    assert_eq!(data, payload);
    assert_eq!(n.a.counters()[Counter::IpFragOKs], 1);
    assert_eq!(n.a.counters()[Counter::IpFragCreates], 3);
    assert_eq!(n.b.counters()[Counter::IpReasmReqds], 3);
    assert_eq!(n.b.counters()[Counter::IpReasmOKs], 1);
    // etherparse's own reassembler agrees.
    let mut pool = etherparse::defrag::IpDefragPool::<(), ()>::new();
    let mut whole = None;
    for f in n.from_a.iter().filter(|f| ethertype(f) == EtherType::IPV4) {
        let ip = ipv4(f);
        assert!(!ip.dont_fragment());
        assert!(f.len() <= 1514);
        let s = SlicedPacket::from_ethernet(f).unwrap();
        if let Some(v) = pool.process_sliced_packet(&s, (), ()).unwrap() {
            whole = Some(v);
        }
    }
    let whole = whole.expect("etherparse reassembled it");
    assert_eq!(&whole.payload[8..], &payload[..]);
    let udp = etherparse::UdpHeader::from_slice(&whole.payload).unwrap().0;
    assert_eq!(
        udp.checksum,
        udp.calc_checksum_ipv4_raw(A.octets(), B.octets(), &whole.payload[8..])
            .unwrap()
    );
}

#[test]
fn big_ping_is_fragmented_both_ways() {
    let mut n = Net::new();
    let data = vec![0x5a; 3000];
    n.a.send_echo_request(B, 1, 1, &data, n.now).unwrap();
    n.pump();
    let r = n.a.poll_echo_reply().unwrap();
    assert_eq!(r.data, data);
    assert_eq!(n.b.counters()[Counter::IpFragCreates], 3);
}

#[test]
fn emsgsize_with_pmtudisc_do() {
    let mut n = Net::new();
    let c = n.a.udp_socket();
    n.a.udp_set_options(c, |o| o.pmtudisc = shunt_stack::PmtuDisc::Do)
        .unwrap();
    assert_eq!(
        n.a.udp_send_to(c, &[0; 1473], Some(sa(B, 9)), n.now),
        Err(Errno::EMSGSIZE)
    );
    assert_eq!(
        n.a.udp_send_to(c, &[0; 1472], Some(sa(B, 9)), n.now),
        Ok(1472)
    );
}

#[test]
fn arp_failure_reports_ehostunreach_to_connected_socket() {
    let mut n = Net::new();
    let ghost = Ipv4Addr::new(192, 0, 2, 99);
    let c = n.a.udp_socket();
    n.a.udp_connect(c, Some(sa(ghost, 53)), n.now).unwrap();
    n.a.udp_send_to(c, b"q1", None, n.now).unwrap();
    n.a.udp_send_to(c, b"q2", None, n.now).unwrap();
    let t0 = n.now;
    n.advance(Duration::from_millis(2_999));
    let arps = n
        .from_a
        .iter()
        .filter(|f| ethertype(f) == EtherType::ARP)
        .count();
    assert_eq!(arps, 3, "three requests, one a second");
    assert!(!n.a.udp_readiness(c).unwrap().error());
    n.advance_to(t0 + Duration::from_secs(3));
    assert!(n.a.udp_readiness(c).unwrap().error());
    assert_eq!(recv(&mut n.a, c).unwrap_err(), Errno::EHOSTUNREACH);
    // One ICMP host unreachable per queued datagram, sent to ourselves.
    assert_eq!(n.a.counters()[Counter::IcmpOutDestUnreachs], 2);
    assert_eq!(n.a.counters()[Counter::IcmpInDestUnreachs], 2);
    assert_eq!(n.a.counters()[Counter::NeighResFailed], 1);
    assert!(
        n.from_a.iter().all(|f| ethertype(f) == EtherType::ARP),
        "nothing but ARP left the host"
    );
    let failed =
        n.a.neighbors()
            .into_iter()
            .find(|e| e.addr == ghost)
            .unwrap();
    assert_eq!(failed.state, NeighborState::Failed);
}

#[test]
fn self_connection_through_loopback() {
    let mut n = Net::new();
    let s1 = n.a.udp_socket();
    let s2 = n.a.udp_socket();
    n.a.udp_bind(s1, sa(A, 1000)).unwrap();
    n.a.udp_bind(s2, sa(A, 2000)).unwrap();
    n.a.udp_connect(s1, Some(sa(A, 2000)), n.now).unwrap();
    n.a.udp_send_to(s1, b"to myself", None, n.now).unwrap();
    assert_eq!(
        recv(&mut n.a, s2).unwrap(),
        (b"to myself".to_vec(), sa(A, 1000))
    );
    n.a.send_echo_request(A, 3, 3, b"self", n.now).unwrap();
    assert_eq!(n.a.poll_echo_reply().unwrap().from, A);
    n.pump();
    assert!(n.from_a.is_empty(), "nothing on the wire");
    // A large datagram to ourselves is not fragmented (loopback MTU).
    let big = vec![1u8; 60000];
    n.a.udp_send_to(s1, &big, None, n.now).unwrap();
    assert_eq!(recv(&mut n.a, s2).unwrap().0, big);
    assert_eq!(n.a.counters()[Counter::IpFragCreates], 0);
}

#[test]
fn broadcast_needs_so_broadcast_and_loops_back() {
    let mut n = Net::new();
    let bcast = Ipv4Addr::new(192, 0, 2, 255);
    let rb = n.b.udp_socket();
    n.b.udp_bind(rb, sa(Ipv4Addr::UNSPECIFIED, 5000)).unwrap();
    let ra = n.a.udp_socket();
    n.a.udp_bind(ra, sa(Ipv4Addr::UNSPECIFIED, 5000)).unwrap();
    let s = n.a.udp_socket();
    assert_eq!(
        n.a.udp_send_to(s, b"all", Some(sa(bcast, 5000)), n.now),
        Err(Errno::EACCES)
    );
    n.a.udp_set_options(s, |o| o.broadcast = true).unwrap();
    n.a.udp_send_to(s, b"all", Some(sa(bcast, 5000)), n.now)
        .unwrap();
    n.pump();
    assert_eq!(recv(&mut n.b, rb).unwrap().0, b"all");
    assert_eq!(recv(&mut n.a, ra).unwrap().0, b"all", "looped back");
    let f = EthernetFrame::parse(&n.from_a[0]).unwrap();
    assert_eq!(f.dst(), Mac::BROADCAST);
    // No port unreachable for broadcasts nobody listens to.
    n.a.udp_send_to(s, b"x", Some(sa(bcast, 5001)), n.now)
        .unwrap();
    n.pump();
    assert_eq!(n.b.counters()[Counter::UdpIgnoredMulti], 1);
    assert_eq!(n.b.counters()[Counter::IcmpOutMsgs], 0);
}

#[test]
fn reassembly_timeout_sends_time_exceeded_through_the_facade() {
    use shunt_stack::IpProto;
    use shunt_stack::wire::{EthernetBuilder, Ipv4Builder};
    let mut n = Net::new();
    n.a.send_echo_request(B, 1, 1, b"", n.now).unwrap();
    n.pump();
    let mut ip = Ipv4Builder::new(A, B, IpProto::UDP);
    ip.ident = 77;
    ip.more_fragments = true;
    let mut f = vec![0u8; 14 + 20 + 64];
    ip.emit(&mut f[14..]).unwrap();
    EthernetBuilder {
        dst: MAC_B,
        src: MAC_A,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut f)
    .unwrap();
    n.b.receive(&f, RxOffload::None, n.now);
    let before = n.from_b.len();
    let ip_frames = |n: &Net| -> Vec<Vec<u8>> {
        n.from_b[before..]
            .iter()
            .filter(|f| ethertype(f) == EtherType::IPV4)
            .cloned()
            .collect()
    };
    n.advance(Duration::from_millis(29_999));
    // (B's entry for A went stale, delay, probe meanwhile: ARP only.)
    assert!(ip_frames(&n).is_empty());
    n.advance(Duration::from_millis(1));
    let te = ip_frames(&n);
    assert_eq!(te.len(), 1);
    let p = SlicedPacket::from_ethernet(&te[0]).unwrap();
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!()
    };
    assert!(matches!(
        i.icmp_type(),
        etherparse::Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::FragmentReassemblyTimeExceeded
        )
    ));
    assert_eq!(n.b.counters()[Counter::IpReasmTimeout], 1);
    assert_eq!(n.b.counters()[Counter::IcmpOutTimeExcds], 1);
}

#[test]
fn frag_needed_lowers_path_mtu() {
    use shunt_stack::IpProto;
    use shunt_stack::wire::icmpv4::{DestUnreachableCode, Icmpv4Message};
    use shunt_stack::wire::{EthernetBuilder, Ipv4Builder};
    let mut n = Net::new();
    let far = Ipv4Addr::new(203, 0, 113, 5);
    n.a.set_ipv4_gateway(B).unwrap();
    let c = n.a.udp_socket();
    n.a.udp_connect(c, Some(sa(far, 4444)), n.now).unwrap();
    n.a.udp_send_to(c, &[7u8; 1400], None, n.now).unwrap();
    n.pump();
    let sent = n.from_a.last().unwrap().clone();
    let quoted = ipv4(&sent).as_bytes().to_vec();
    // The router (B's MAC) says: fragmentation needed, MTU 1000.
    let msg = Icmpv4Message::DestUnreachable {
        code: DestUnreachableCode::FRAG_NEEDED,
        next_hop_mtu: 1000,
        original: &quoted[..28],
    };
    let ip = Ipv4Builder::new(B, A, IpProto::ICMP);
    let mut f = vec![0u8; 14 + 20 + msg.len()];
    msg.emit(&mut f[34..]).unwrap();
    ip.emit(&mut f[14..]).unwrap();
    EthernetBuilder {
        dst: MAC_A,
        src: MAC_B,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut f)
    .unwrap();
    n.a.receive(&f, RxOffload::None, n.now);
    assert_eq!(n.a.ipv4().pmtu.get(&far, n.now).unwrap().mtu, 1000);
    assert_eq!(recv(&mut n.a, c).unwrap_err(), Errno::EMSGSIZE);
    let mut saw = false;
    while let Some(e) = n.a.poll_event() {
        saw |= matches!(e, Event::PathMtu { mtu: 1000, .. });
    }
    assert!(saw);
    // Now 1400 bytes are fragmented to fit 1000.
    n.a.udp_send_to(c, &[7u8; 1400], None, n.now).unwrap();
    n.pump();
    let frags: Vec<_> = n.from_a.iter().rev().take(2).collect();
    assert!(frags.iter().all(|f| f.len() <= 14 + 1000));
}

#[test]
fn frames_for_others_are_dropped_and_counted() {
    let mut n = Net::new();
    let mut f = n.from_a.first().cloned().unwrap_or_else(|| {
        n.a.send_echo_request(B, 1, 1, b"", n.now).unwrap();
        n.connected = false;
        n.pump();
        n.from_a[0].clone()
    });
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    n.b.receive(&f, RxOffload::None, n.now);
    assert_eq!(n.b.counters()[Counter::EthInOtherHost], 1);
    f[6] = 0x01; // group source MAC
    f[0..6].copy_from_slice(&MAC_B.0);
    n.b.receive(&f, RxOffload::None, n.now);
    assert_eq!(n.b.counters()[Counter::EthInBadSrc], 1);
    n.b.receive(&f[..10], RxOffload::None, n.now);
    assert_eq!(n.b.counters()[Counter::EthInMalformed], 1);
}

#[test]
fn readiness_of_udp_socket() {
    let mut n = Net::new();
    let s = n.b.udp_socket();
    n.b.udp_bind(s, sa(B, 53)).unwrap();
    let r = n.b.udp_readiness(s).unwrap();
    assert!(r.writable() && !r.readable());
    let c = n.a.udp_socket();
    n.a.udp_send_to(c, b"q", Some(sa(B, 53)), n.now).unwrap();
    n.pump();
    let r = n.b.udp_readiness(s).unwrap();
    assert!(r.contains(Readiness::IN | Readiness::RDNORM | Readiness::OUT));
    assert_eq!(n.b.udp_next_len(s), Ok(1));
}
