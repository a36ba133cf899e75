//! IPv6 between two stacks wired frame to frame, and hand-made frames
//! from a fake third host: DAD, neighbour discovery, ping6, UDP, ICMPv6
//! errors with the right codes and pointers, fragments, extension
//! headers, router advertisements. Every frame a stack sends is parsed
//! and checksummed by etherparse (`stack_v6_util`).

mod stack_v6_util;

use shunt_stack::iface::ndp::AddressState;
use shunt_stack::iface::neighbor::NeighborState;
use shunt_stack::time::{Duration, Instant};
use shunt_stack::wire::icmpv6::{Icmpv6Message, NdpOptions};
use shunt_stack::wire::ipv6::OptionsHeaderBuilder;
use shunt_stack::wire::{EtherType, EthernetFrame, NdpOption};
use shunt_stack::{
    Counter, Errno, Event, IpAddress, IpProto, Ipv6Addr, Mac, RecvFlags, StackConfig, UdpHandle,
};
use stack_v6_util::*;

fn is_v6(f: &[u8]) -> bool {
    EthernetFrame::parse(f).unwrap().ethertype() == EtherType::IPV6
}

fn recv(
    s: &mut shunt_stack::Stack,
    h: UdpHandle,
) -> Result<(Vec<u8>, std::net::SocketAddr), Errno> {
    let mut buf = vec![0u8; 70000];
    let m = s.udp_recv_from(h, &mut buf, RecvFlags::default())?;
    Ok((buf[..m.ret].to_vec(), m.src.unwrap()))
}

/// An ICMPv6 message as bytes, checksummed for `src` → `dst`.
fn icmp_bytes(m: &Icmpv6Message<'_>, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut v = vec![0u8; m.len()];
    m.emit(&src, &dst, &mut v).unwrap();
    v
}

fn opt_bytes(o: NdpOption<'_>) -> Vec<u8> {
    let mut v = vec![0u8; o.len()];
    o.emit(&mut v).unwrap();
    v
}

#[test]
fn dad_then_the_address_is_usable() {
    let mut s = {
        let mut c = StackConfig::new(MAC_A);
        c.seed = 9;
        shunt_stack::Stack::new(c)
    };
    let t0 = Instant::from_millis(1_000_000);
    s.add_ipv6_address(A6, t0).unwrap();
    // Tentative: not ours yet.
    let u = s.udp6_socket();
    assert_eq!(s.udp_bind(u, sa6(A6, 7)), Err(Errno::EADDRNOTAVAIL));
    let st = |s: &shunt_stack::Stack, a| {
        s.ipv6_addresses()
            .into_iter()
            .find(|i| i.addr == a)
            .map(|i| i.state)
    };
    assert_eq!(st(&s, A6), Some(AddressState::Tentative));
    let ll = Ipv6Addr::link_local_from_mac(MAC_A);
    assert_eq!(st(&s, ll), Some(AddressState::Tentative));
    // Run the clock: one DAD probe each, from ::, to the solicited-node
    // group, hop limit 255, with a nonce; MLDv2 reports for the groups.
    let mut frames = Vec::new();
    let mut now = t0;
    let mut buf = vec![0u8; 2000];
    while now < t0 + Duration::from_secs(3) {
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            frames.push(buf[..n].to_vec());
        }
        match s.next_deadline() {
            Some(d) if d <= t0 + Duration::from_secs(3) => {
                now = d.max(now);
                s.on_timer(now);
            }
            _ => break,
        }
    }
    let ns: Vec<_> = frames
        .iter()
        .filter(|f| icmp6(f).is_some_and(|m| m.0 == 135))
        .collect();
    assert_eq!(ns.len(), 2, "one probe per address (dad_transmits 1)");
    for f in &ns {
        assert_eq!(ip6_src(f), Ipv6Addr::UNSPECIFIED);
        assert!(ip6_dst(f).is_solicited_node());
        assert_eq!(hop_limit(f), 255);
        let body = icmp6(f).unwrap().3;
        assert_eq!(body[16], 14, "nonce option (RFC 7527)");
    }
    let mld = frames
        .iter()
        .filter(|f| icmp6(f).is_some_and(|m| m.0 == 143))
        .count();
    assert!(mld >= 2, "MLDv2 reports for the solicited-node groups");
    assert!(frames.iter().all(|f| {
        check_frame(f);
        true
    }));
    assert_eq!(st(&s, A6), Some(AddressState::Assigned));
    assert_eq!(st(&s, ll), Some(AddressState::Assigned));
    assert!(s.ipv6().is_local(&A6));
    assert_eq!(s.udp_bind(u, sa6(A6, 7)), Ok(()));
    let mut ev = Vec::new();
    while let Some(e) = s.poll_event() {
        ev.push(e);
    }
    assert!(ev.contains(&Event::AddressState {
        addr: A6.to_std(),
        state: AddressState::Tentative
    }));
    assert!(ev.contains(&Event::AddressState {
        addr: A6.to_std(),
        state: AddressState::Assigned
    }));
}

#[test]
fn dad_conflict_leaves_the_address_unassigned() {
    let mut n = Net::new();
    // A wants B's address: B defends it with an advertisement to all
    // nodes, A gives up.
    n.a.add_ipv6_address(B6, n.now).unwrap();
    n.advance(Duration::from_secs(3));
    assert!(!n.a.ipv6().is_local(&B6));
    assert!(n.a.ipv6_addresses().iter().all(|i| i.addr != B6));
    let na = n
        .from_b
        .iter()
        .find(|f| icmp6(f).is_some_and(|m| m.0 == 136))
        .expect("B defends");
    assert_eq!(ip6_dst(na), Ipv6Addr::ALL_NODES);
    let mut ev = Vec::new();
    while let Some(e) = n.a.poll_event() {
        ev.push(e);
    }
    assert!(ev.contains(&Event::AddressState {
        addr: B6.to_std(),
        state: AddressState::DadFailed
    }));
    assert!(ev.contains(&Event::AddressRemoved { addr: B6.to_std() }));
    assert_eq!(n.a.counters()[Counter::NdpDadFailures], 1);
    // B still has it.
    assert!(n.b.ipv6().is_local(&B6));
}

#[test]
fn ping6_resolves_with_ns_na() {
    let mut n = Net::new();
    n.a.send_echo6_request(B6, 7, 1, b"abcdefgh", n.now)
        .unwrap();
    n.pump();
    let a_types: Vec<u8> = n
        .from_a
        .iter()
        .filter_map(|f| icmp6(f).map(|m| m.0))
        .collect();
    let b_types: Vec<u8> = n
        .from_b
        .iter()
        .filter_map(|f| icmp6(f).map(|m| m.0))
        .collect();
    assert_eq!(a_types, vec![135, 128], "NS, then the echo request");
    assert_eq!(b_types, vec![136, 129], "NA, then the echo reply");
    let ns = &n.from_a[0];
    assert_eq!(ip6_dst(ns), B6.solicited_node());
    assert_eq!(hop_limit(ns), 255);
    let na = &n.from_b[0];
    assert_eq!(ip6_dst(na), A6);
    let (_, _, flags, _) = icmp6(na).unwrap();
    assert_eq!(flags[0] & 0x60, 0x60, "solicited and override");
    let r = n.a.poll_echo6_reply().unwrap();
    assert_eq!(
        (r.from, r.ident, r.seq, &r.data[..]),
        (B6, 7, 1, &b"abcdefgh"[..])
    );
    assert_eq!(r.ttl, 64);
    let na = n.a.neighbors6();
    let e = na.iter().find(|e| e.addr == B6).unwrap();
    assert_eq!((e.state, e.mac), (NeighborState::Reachable, Some(MAC_B)));
    // B learned A from the NS's source link-layer option: stale, then
    // delay once used.
    let e = n.b.neighbors6().into_iter().find(|e| e.addr == A6).unwrap();
    assert_eq!(e.mac, Some(MAC_A));
    assert_eq!(n.b.counters()[Counter::Icmp6InNeighborSolicits], 1);
    assert_eq!(n.b.counters()[Counter::Icmp6OutNeighborAdvertisements], 1);
    assert_eq!(n.b.counters()[Counter::Icmp6InEchos], 1);
    assert_eq!(n.b.counters()[Counter::Icmp6OutEchoReplies], 1);
    // The second needs no resolution.
    n.a.send_echo6_request(B6, 7, 2, b"", n.now).unwrap();
    n.pump();
    assert_eq!(n.a.poll_echo6_reply().unwrap().seq, 2);
    // Link-local to link-local works too (fe80::/64 on-link).
    let lb = Ipv6Addr::link_local_from_mac(MAC_B);
    n.a.send_echo6_request(lb, 8, 1, b"ll", n.now).unwrap();
    n.pump();
    let r = n.a.poll_echo6_reply().unwrap();
    assert_eq!(r.from, lb);
    let req = n
        .from_a
        .iter()
        .rev()
        .find(|f| icmp6(f).is_some_and(|m| m.0 == 128))
        .unwrap();
    assert!(
        ip6_src(req).is_link_local(),
        "RFC 6724 rule 2: link-local source"
    );
}

#[test]
fn udp6_echo_and_port_unreachable_to_econnrefused() {
    let mut n = Net::new();
    let server = n.b.udp6_socket();
    n.b.udp_bind(server, sa6(Ipv6Addr::UNSPECIFIED, 7)).unwrap();
    let client = n.a.udp6_socket();
    n.a.udp_connect(client, Some(sa6(B6, 7)), n.now).unwrap();
    assert_eq!(n.a.udp_local_addr(client).unwrap().ip(), A6.to_std());
    assert_eq!(n.a.udp_send_to(client, b"hello", None, n.now), Ok(5));
    n.pump();
    let mut buf = [0u8; 100];
    let m =
        n.b.udp_recv_from(server, &mut buf, RecvFlags::default())
            .unwrap();
    assert_eq!(&buf[..m.ret], b"hello");
    assert_eq!(m.dst, Some(B6.to_std()));
    let from = m.src.unwrap();
    n.b.udp_send_to(server, b"hello", Some(from), n.now)
        .unwrap();
    n.pump();
    assert_eq!(
        recv(&mut n.a, client).unwrap(),
        (b"hello".to_vec(), sa6(B6, 7))
    );
    assert_eq!(n.b.counters()[Counter::Udp6InDatagrams], 1);
    assert_eq!(n.a.counters()[Counter::Udp6OutDatagrams], 1);
    n.b.udp_close(server).unwrap();
    n.a.udp_send_to(client, b"again", None, n.now).unwrap();
    n.pump();
    assert_eq!(n.b.counters()[Counter::Udp6NoPorts], 1);
    let err = n.from_b.last().unwrap();
    let (t, code, _, body) = icmp6(err).unwrap();
    assert_eq!((t, code), (1, 4), "destination unreachable, port");
    assert_eq!(&body[..4], &[0x60, 0, 0, 0][..], "quotes the datagram");
    assert!(n.a.udp_readiness(client).unwrap().error());
    assert_eq!(recv(&mut n.a, client), Err(Errno::ECONNREFUSED));
    assert_eq!(recv(&mut n.a, client), Err(Errno::EAGAIN));
}

#[test]
fn unresolvable_neighbour_is_address_unreachable_code_3() {
    let mut n = Net::new();
    let gone = v6("2001:db8::99");
    let c = n.a.udp6_socket();
    n.a.udp_connect(c, Some(sa6(gone, 9)), n.now).unwrap();
    n.a.udp_send_to(c, b"anyone?", None, n.now).unwrap();
    n.advance(Duration::from_secs(5));
    // Three multicast solicitations, a second apart, then failure.
    let ns = n
        .from_a
        .iter()
        .filter(|f| icmp6(f).is_some_and(|m| m.0 == 135))
        .count();
    assert_eq!(ns, 3);
    assert_eq!(n.a.counters()[Counter::NeighResFailed], 1);
    // The error went to ourselves (we are the sender) and the connected
    // socket sees it. Code 3 maps to EHOSTUNREACH; code 0 (what Linux
    // sends) would have been ENETUNREACH.
    assert_eq!(n.a.counters()[Counter::Icmp6OutDestUnreachs], 1);
    assert_eq!(n.a.counters()[Counter::Icmp6InDestUnreachs], 1);
    assert_eq!(recv(&mut n.a, c), Err(Errno::EHOSTUNREACH));
}

#[test]
fn fragmented_udp6_reassembled_by_peer_and_by_etherparse() {
    let mut n = Net::new();
    let server = n.b.udp6_socket();
    n.b.udp_bind(server, sa6(B6, 9000)).unwrap();
    let client = n.a.udp6_socket();
    let payload: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
    n.a.udp_send_to(client, &payload, Some(sa6(B6, 9000)), n.now)
        .unwrap();
    n.pump();
    let (data, _) = recv(&mut n.b, server).unwrap();
    assert_eq!(data, payload);
    assert_eq!(n.a.counters()[Counter::Ip6FragOKs], 1);
    assert_eq!(n.a.counters()[Counter::Ip6FragCreates], 3);
    assert_eq!(n.b.counters()[Counter::Ip6ReasmReqds], 3);
    assert_eq!(n.b.counters()[Counter::Ip6ReasmOKs], 1);
    // etherparse slices every fragment (headers, extension chain,
    // payload); its fragment-header accessors read the offset and M bits
    // in the wrong places (etherparse 0.16: M from bit 0x80 of byte 3),
    // so the offsets are read here per RFC 8200 4.5 from the raw header
    // and the pieces put together by hand.
    let mut data = vec![0u8; 0];
    let mut pieces = 0;
    let mut last_seen = false;
    for f in n.from_a.iter().filter(|f| is_v6(f) && f[14 + 6] == 44) {
        assert!(f.len() <= 1514);
        let s = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &s.net else {
            panic!("not IPv6")
        };
        assert!(ip.is_payload_fragmented());
        let piece = ip.payload().payload;
        let word = u16::from_be_bytes([f[54 + 2], f[54 + 3]]);
        let (off, more) = (usize::from(word & !7), word & 1 == 1);
        assert!(!more || piece.len() % 8 == 0);
        if data.len() < off + piece.len() {
            data.resize(off + piece.len(), 0);
        }
        data[off..off + piece.len()].copy_from_slice(piece);
        pieces += 1;
        last_seen |= !more;
    }
    assert!(last_seen);
    assert_eq!(pieces, 3);
    struct Whole {
        payload: Vec<u8>,
    }
    let whole = Whole { payload: data };
    assert_eq!(&whole.payload[8..], &payload[..]);
    let udp = etherparse::UdpHeader::from_slice(&whole.payload).unwrap().0;
    assert_eq!(
        udp.checksum,
        udp.calc_checksum_ipv6_raw(A6.octets(), B6.octets(), &whole.payload[8..])
            .unwrap()
    );
}

/// B with a socket on port 5000 and C's MAC known.
fn with_c() -> (Net, UdpHandle) {
    let mut n = Net::new();
    let s = n.b.udp6_socket();
    n.b.udp_bind(s, sa6(Ipv6Addr::UNSPECIFIED, 5000)).unwrap();
    let now = n.now;
    n.b.add_static_neighbor6(C6, MAC_C, now);
    (n, s)
}

fn c_frame(next: IpProto, rest: &[u8]) -> Vec<u8> {
    frame6(MAC_C, MAC_B, C6, B6, next, 64, rest)
}

#[test]
fn duplicate_and_overlapping_fragments() {
    let (mut n, s) = with_c();
    let payload: Vec<u8> = (0..40u8).collect();
    let dgram = udp6(C6, 1, B6, 5000, &payload); // 48 bytes
    // Duplicate fragment (IPV6-8.1): dropped alone, the datagram kept.
    let f1 = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::UDP, 0, true, 1, &dgram[..24]),
    );
    let f2 = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::UDP, 24, false, 1, &dgram[24..]),
    );
    assert!(n.inject_b(&f1).is_empty());
    assert!(n.inject_b(&f1).is_empty());
    assert!(n.inject_b(&f2).is_empty());
    assert_eq!(recv(&mut n.b, s).unwrap().0, payload);
    assert_eq!(n.b.counters()[Counter::Ip6ReasmOKs], 1);
    // Overlap (RFC 5722): the whole datagram is dropped, silently.
    let g1 = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::UDP, 0, true, 2, &dgram[..24]),
    );
    let g2 = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::UDP, 16, false, 2, &dgram[16..]),
    );
    assert!(n.inject_b(&g1).is_empty());
    assert!(n.inject_b(&g2).is_empty());
    assert_eq!(n.b.counters()[Counter::Ip6ReasmOverlaps], 1);
    assert_eq!(recv(&mut n.b, s), Err(Errno::EAGAIN));
    // ... and the rest of it does not revive it: the timeout has nothing
    // to report about a datagram already dropped.
    let g3 = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::UDP, 24, false, 2, &dgram[24..]),
    );
    n.inject_b(&g3);
    assert_eq!(recv(&mut n.b, s), Err(Errno::EAGAIN));
}

#[test]
fn atomic_fragment_is_processed_whole() {
    let (mut n, s) = with_c();
    let dgram = udp6(C6, 1, B6, 5000, b"atomic");
    let f = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::UDP, 0, false, 77, &dgram),
    );
    assert!(n.inject_b(&f).is_empty());
    assert_eq!(recv(&mut n.b, s).unwrap().0, b"atomic");
    assert_eq!(n.b.counters()[Counter::Ip6ReasmFails], 0);
}

#[test]
fn reassembly_timeout_sends_time_exceeded_code_1_after_60s() {
    let (mut n, _s) = with_c();
    let dgram = udp6(C6, 1, B6, 5000, &[9u8; 40]);
    let f1 = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::UDP, 0, true, 5, &dgram[..24]),
    );
    n.connected = false;
    n.inject_b(&f1);
    let before = n.from_b.len();
    n.advance(Duration::from_secs(59));
    assert!(
        n.from_b[before..]
            .iter()
            .all(|f| icmp6(f).is_none_or(|m| m.0 != 3))
    );
    n.advance(Duration::from_secs(2));
    let te = n.from_b[before..]
        .iter()
        .find(|f| icmp6(f).is_some_and(|m| m.0 == 3))
        .expect("time exceeded");
    assert_eq!(icmp6(te).unwrap().1, 1);
    // The first fragment as it came, Fragment header and all (the source
    // knows it by its identification).
    let q = icmp6(te).unwrap().3;
    assert_eq!(q[6], 44, "the quote names a fragment header");
    assert_eq!(&q[40..48], &frag_hdr(IpProto::UDP, 0, true, 5, &[])[..]);
    assert_eq!(&q[48..72], &dgram[..24]);
    assert_eq!(ip6_dst(te), C6);
    assert_eq!(n.b.counters()[Counter::Ip6ReasmTimeout], 1);
}

#[test]
fn fragment_length_not_a_multiple_of_8_is_a_parameter_problem() {
    let (mut n, _s) = with_c();
    let dgram = udp6(C6, 1, B6, 5000, &[1u8; 40]);
    let f = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::UDP, 0, true, 9, &dgram[..20]),
    );
    let out = n.inject_b(&f);
    let (t, code, ptr, _) = icmp6(&out[0]).unwrap();
    assert_eq!((t, code, u32::from_be_bytes(ptr)), (4, 0, 4));
}

#[test]
fn unknown_next_header_is_parameter_problem_code_1() {
    let (mut n, _s) = with_c();
    // Directly after the fixed header: pointer 6.
    let out = n.inject_b(&c_frame(IpProto(253), &[0u8; 8]));
    let (t, code, ptr, body) = icmp6(&out[0]).unwrap();
    assert_eq!((t, code, u32::from_be_bytes(ptr)), (4, 1, 6));
    assert_eq!(body.len(), 48, "the whole packet quoted");
    assert_eq!(ip6_dst(&out[0]), C6);
    // After a destination options header: its next-header field, 40.
    let ext = {
        let b = OptionsHeaderBuilder {
            next_header: IpProto(253),
            options: &[],
        };
        let mut v = vec![0u8; b.header_len()];
        b.emit(&mut v).unwrap();
        v
    };
    let out = n.inject_b(&c_frame(IpProto::IPV6_OPTS, &ext));
    let (t, code, ptr, _) = icmp6(&out[0]).unwrap();
    assert_eq!((t, code, u32::from_be_bytes(ptr)), (4, 1, 40));
    assert_eq!(n.b.counters()[Counter::Ip6InUnknownProtos], 2);
    // Hop-by-hop anywhere but first: code 1 at the field naming it.
    let mut ext2 = ext.clone();
    ext2[0] = 0;
    let out = n.inject_b(&c_frame(IpProto::IPV6_OPTS, &ext2));
    let (t, code, ptr, _) = icmp6(&out[0]).unwrap();
    assert_eq!((t, code, u32::from_be_bytes(ptr)), (4, 1, 40));
    // Routing header type 0 with segments left (RFC 5095): code 0 at the
    // routing type.
    let mut rh = vec![IpProto::UDP.0, 0, 0, 1, 0, 0, 0, 0];
    rh.extend(udp6(C6, 1, B6, 5000, b"x"));
    let out = n.inject_b(&c_frame(IpProto::IPV6_ROUTE, &rh));
    let (t, code, ptr, _) = icmp6(&out[0]).unwrap();
    assert_eq!((t, code, u32::from_be_bytes(ptr)), (4, 0, 42));
}

#[test]
fn unknown_options_by_their_action_bits() {
    let (mut n, s) = with_c();
    let dst_opts = |kind: u8, dst: Ipv6Addr| {
        let b = OptionsHeaderBuilder {
            next_header: IpProto::UDP,
            options: &[kind, 2, 0, 0],
        };
        let mut v = vec![0u8; b.header_len()];
        b.emit(&mut v).unwrap();
        v.extend(udp6(C6, 1, dst, 5000, b"opt"));
        v
    };
    // 00: skipped, delivered.
    let out = n.inject_b(&c_frame(IpProto::IPV6_OPTS, &dst_opts(0x1e, B6)));
    assert!(out.is_empty());
    assert_eq!(recv(&mut n.b, s).unwrap().0, b"opt");
    // 01: dropped silently.
    let out = n.inject_b(&c_frame(IpProto::IPV6_OPTS, &dst_opts(0x5e, B6)));
    assert!(out.is_empty());
    assert_eq!(recv(&mut n.b, s), Err(Errno::EAGAIN));
    // 10: parameter problem code 2 at the option...
    let out = n.inject_b(&c_frame(IpProto::IPV6_OPTS, &dst_opts(0x9e, B6)));
    let (t, code, ptr, _) = icmp6(&out[0]).unwrap();
    assert_eq!((t, code, u32::from_be_bytes(ptr)), (4, 2, 42));
    // ... even to a multicast destination (RFC 4443 2.4(e.3)).
    let all = Ipv6Addr::ALL_NODES;
    let f = frame6(
        MAC_C,
        all.multicast_mac().unwrap(),
        C6,
        all,
        IpProto::IPV6_OPTS,
        64,
        &dst_opts(0x9e, all),
    );
    let out = n.inject_b(&f);
    assert_eq!(icmp6(&out[0]).unwrap().1, 2);
    // 11: reported for unicast, not for multicast.
    let out = n.inject_b(&c_frame(IpProto::IPV6_OPTS, &dst_opts(0xde, B6)));
    assert_eq!(icmp6(&out[0]).unwrap().1, 2);
    let f = frame6(
        MAC_C,
        all.multicast_mac().unwrap(),
        C6,
        all,
        IpProto::IPV6_OPTS,
        64,
        &dst_opts(0xde, all),
    );
    assert!(n.inject_b(&f).is_empty());
    assert_eq!(recv(&mut n.b, s), Err(Errno::EAGAIN));
}

#[test]
fn ns_and_na_need_hop_limit_255() {
    let mut n = Net::new();
    let cll = v6("fe80::c");
    let sll = opt_bytes(NdpOption::SourceLinkAddr(MAC_C));
    let ns = Icmpv6Message::NeighborSolicitation {
        target: B6,
        options: NdpOptions::parse(&sll, 24).unwrap(),
    };
    let dst = B6.solicited_node();
    let body = icmp_bytes(&ns, cll, dst);
    let mk = |hop| {
        frame6(
            MAC_C,
            dst.multicast_mac().unwrap(),
            cll,
            dst,
            IpProto::ICMPV6,
            hop,
            &body,
        )
    };
    assert!(n.inject_b(&mk(64)).is_empty());
    assert_eq!(n.b.counters()[Counter::NdpInInvalid], 1);
    assert!(
        n.b.neighbors6().iter().all(|e| e.addr != cll),
        "nothing learned"
    );
    let out = n.inject_b(&mk(255));
    let (t, _, flags, body) = icmp6(&out[0]).unwrap();
    assert_eq!(t, 136);
    assert_eq!(flags[0] & 0xe0, 0x60, "S and O, not R");
    assert_eq!(&body[..16], &B6.octets()[..]);
    assert_eq!(ip6_dst(&out[0]), cll);
    assert_eq!(hop_limit(&out[0]), 255);
    assert_eq!(&out[0][..6], &MAC_C.0[..], "to the MAC the NS gave");
    let e =
        n.b.neighbors6()
            .into_iter()
            .find(|e| e.addr == cll)
            .unwrap();
    assert_eq!(e.mac, Some(MAC_C));
    // An NA with hop limit 64 is ignored too: A starts resolving C...
    n.connected = false;
    let now = n.now;
    n.a.add_static_neighbor6(B6, MAC_B, now);
    n.a.send_echo6_request(C6, 1, 1, b"", n.now).unwrap();
    n.pump();
    let tll = opt_bytes(NdpOption::TargetLinkAddr(MAC_C));
    let na = Icmpv6Message::NeighborAdvertisement {
        router: false,
        solicited: true,
        override_flag: true,
        target: C6,
        options: NdpOptions::parse(&tll, 24).unwrap(),
    };
    let body = icmp_bytes(&na, C6, A6);
    let mk = |hop| frame6(MAC_C, MAC_A, C6, A6, IpProto::ICMPV6, hop, &body);
    n.a.receive(&mk(254), shunt_stack::RxOffload::None, n.now);
    let st = |n: &Net| n.a.neighbors6().into_iter().find(|e| e.addr == C6).unwrap();
    assert_eq!(st(&n).state, NeighborState::Incomplete);
    n.a.receive(&mk(255), shunt_stack::RxOffload::None, n.now);
    assert_eq!(
        (st(&n).state, st(&n).mac),
        (NeighborState::Reachable, Some(MAC_C))
    );
    // An NS for a multicast target, or a DAD probe to a unicast
    // destination, is invalid.
    let ns = Icmpv6Message::NeighborSolicitation {
        target: B6,
        options: NdpOptions::EMPTY,
    };
    let body = icmp_bytes(&ns, Ipv6Addr::UNSPECIFIED, B6);
    let f = frame6(
        MAC_C,
        MAC_B,
        Ipv6Addr::UNSPECIFIED,
        B6,
        IpProto::ICMPV6,
        255,
        &body,
    );
    assert!(n.inject_b(&f).is_empty());
    assert_eq!(n.b.counters()[Counter::NdpInInvalid], 2);
}

#[test]
fn router_advertisement_adds_prefix_route_default_router_and_slaac() {
    let mut n = Net::new();
    let router = v6("fe80::1");
    let rmac = Mac([0x02, 0, 0, 0, 0, 0x0e]);
    let prefix = v6("2001:db8:5::");
    let mut opts = opt_bytes(NdpOption::SourceLinkAddr(rmac));
    opts.extend(opt_bytes(NdpOption::Mtu(1400)));
    opts.extend(opt_bytes(NdpOption::PrefixInfo(
        shunt_stack::wire::icmpv6::PrefixInfo {
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 3600,
            preferred_lifetime: 1800,
            prefix,
        },
    )));
    let ra = Icmpv6Message::RouterAdvertisement {
        cur_hop_limit: 50,
        managed: false,
        other: false,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        options: NdpOptions::parse(&opts, 16).unwrap(),
    };
    let all = Ipv6Addr::ALL_NODES;
    let body = icmp_bytes(&ra, router, all);
    // From a global source: invalid.
    let bad = frame6(
        rmac,
        all.multicast_mac().unwrap(),
        C6,
        all,
        IpProto::ICMPV6,
        255,
        &icmp_bytes(&ra, C6, all),
    );
    n.inject_b(&bad);
    assert_eq!(n.b.counters()[Counter::NdpInInvalid], 1);
    let f = frame6(
        rmac,
        all.multicast_mac().unwrap(),
        router,
        all,
        IpProto::ICMPV6,
        255,
        &body,
    );
    n.inject_b(&f);
    let routes: Vec<_> = n.b.ipv6().routes.iter().copied().collect();
    assert!(
        routes
            .iter()
            .any(|r| r.subnet.to_string() == "2001:db8:5::/64" && r.gateway.is_none())
    );
    assert!(
        routes
            .iter()
            .any(|r| r.subnet.prefix() == 0 && r.gateway == Some(router))
    );
    assert_eq!(n.b.ipv6().default_ttl, 50);
    assert_eq!(n.b.ipv6_routers().len(), 1);
    let mut ev = Vec::new();
    while let Some(e) = n.b.poll_event() {
        ev.push(e);
    }
    assert!(ev.contains(&Event::RouteAdded {
        dst: prefix.to_std(),
        prefix: 64,
        gateway: None
    }));
    assert!(ev.contains(&Event::RouteAdded {
        dst: Ipv6Addr::UNSPECIFIED.to_std(),
        prefix: 0,
        gateway: Some(router.to_std())
    }));
    // SLAAC: prefix + EUI-64, tentative, then assigned.
    let slaac = v6("2001:db8:5::ff:fe00:b");
    assert!(
        n.b.ipv6_addresses()
            .iter()
            .any(|i| i.addr == slaac && i.state == AddressState::Tentative)
    );
    n.advance(Duration::from_secs(3));
    assert!(n.b.ipv6().is_local(&slaac));
    // The router's MAC came with it; an off-link destination goes there
    // with the advertised MTU.
    let e =
        n.b.neighbors6()
            .into_iter()
            .find(|e| e.addr == router)
            .unwrap();
    assert_eq!(e.mac, Some(rmac));
    let r =
        n.b.ipv6()
            .route(&v6("2001:db8:77::1"), None, 1400, n.now)
            .unwrap();
    assert_eq!(r.next_hop, shunt_stack::ip_layer::NextHop::Neighbor(router));
    // Router lifetime 0 withdraws the default route.
    let ra0 = Icmpv6Message::RouterAdvertisement {
        cur_hop_limit: 0,
        managed: false,
        other: false,
        router_lifetime: 0,
        reachable_time: 0,
        retrans_timer: 0,
        options: NdpOptions::EMPTY,
    };
    let f = frame6(
        rmac,
        all.multicast_mac().unwrap(),
        router,
        all,
        IpProto::ICMPV6,
        255,
        &icmp_bytes(&ra0, router, all),
    );
    n.inject_b(&f);
    assert!(n.b.ipv6().routes.iter().all(|r| r.subnet.prefix() != 0));
    assert_eq!(n.b.ipv6().default_ttl, 50, "0 leaves the hop limit alone");
}

#[test]
fn packet_too_big_lowers_the_path_mtu_never_below_1280() {
    let (mut n, _s) = with_c();
    let quote = {
        let mut q = vec![0u8; 48];
        q[..40].copy_from_slice(&frame6(MAC_B, MAC_C, B6, C6, IpProto::UDP, 64, &[0; 8])[14..54]);
        q
    };
    let ptb = |mtu| {
        let m = Icmpv6Message::PacketTooBig {
            mtu,
            original: &quote,
        };
        c_frame(IpProto::ICMPV6, &icmp_bytes(&m, C6, B6))
    };
    n.inject_b(&ptb(1400));
    assert_eq!(n.b.ipv6().pmtu.get(&C6, n.now).unwrap().mtu, 1400);
    n.inject_b(&ptb(600));
    assert_eq!(n.b.ipv6().pmtu.get(&C6, n.now).unwrap().mtu, 1280);
    // UDP to C is now cut at 1280.
    let u = n.b.udp6_socket();
    let before = n.from_b.len();
    n.b.udp_send_to(u, &[0u8; 2000], Some(sa6(C6, 9)), n.now)
        .unwrap();
    n.pump();
    assert!(n.from_b[before..].iter().all(|f| f.len() <= 14 + 1280));
    assert_eq!(n.from_b.len() - before, 2);
}

#[test]
fn dual_stack_udp_socket_talks_to_ipv4_peers() {
    let mut n = Net::new();
    let server = n.b.udp6_socket();
    n.b.udp_bind(server, sa6(Ipv6Addr::UNSPECIFIED, 53))
        .unwrap();
    // An IPv4 socket cannot take the port the dual-stack socket holds.
    let v4 = n.b.udp_socket();
    let any4 = std::net::SocketAddr::from(([0, 0, 0, 0], 53));
    assert_eq!(n.b.udp_bind(v4, any4), Err(Errno::EADDRINUSE));
    let client = n.a.udp_socket();
    n.a.udp_send_to(
        client,
        b"q",
        Some(std::net::SocketAddr::from(([192, 0, 2, 2], 53))),
        n.now,
    )
    .unwrap();
    n.pump();
    let (d, from) = recv(&mut n.b, server).unwrap();
    assert_eq!(d, b"q");
    let mapped = A4.to_ipv6_mapped();
    assert_eq!(from.ip(), mapped.to_std());
    // Reply to the v4-mapped address: goes out as IPv4.
    n.b.udp_send_to(server, b"r", Some(from), n.now).unwrap();
    n.pump();
    let mut buf = [0u8; 10];
    let m =
        n.a.udp_recv_from(client, &mut buf, RecvFlags::default())
            .unwrap();
    assert_eq!(
        m.src,
        Some(std::net::SocketAddr::from(([192, 0, 2, 2], 53)))
    );
    // IPV6_V6ONLY: no IPv4 for that socket.
    let only = n.b.udp6_socket();
    n.b.udp_set_options(only, |o| o.v6only = true).unwrap();
    n.b.udp_bind(only, sa6(Ipv6Addr::UNSPECIFIED, 54)).unwrap();
    assert_eq!(
        n.b.udp_send_to(only, b"x", Some(sa6(mapped, 53)), n.now),
        Err(Errno::ENETUNREACH)
    );
    n.a.udp_send_to(
        client,
        b"q",
        Some(std::net::SocketAddr::from(([192, 0, 2, 2], 54))),
        n.now,
    )
    .unwrap();
    n.pump();
    assert_eq!(recv(&mut n.b, only), Err(Errno::EAGAIN));
    assert_eq!(n.b.counters()[Counter::UdpNoPorts], 1);
    // The option is fixed once bound.
    assert_eq!(
        n.b.udp_set_options(only, |o| o.v6only = false),
        Err(Errno::EINVAL)
    );
}

#[test]
fn ipv4_is_unchanged_when_ipv6_is_off() {
    let mut s = shunt_stack::Stack::new(StackConfig::new(MAC_A));
    let f = frame6(
        MAC_C,
        MAC_A,
        C6,
        A6,
        IpProto::UDP,
        64,
        &udp6(C6, 1, A6, 2, b"x"),
    );
    s.receive(&f, shunt_stack::RxOffload::None, Instant::ZERO);
    let mut buf = [0u8; 100];
    assert_eq!(s.poll_transmit(Instant::ZERO, &mut buf), None);
    assert_eq!(s.counters()[Counter::Ip6InDiscards], 1);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn fragment_beyond_65535_is_a_parameter_problem_at_the_offset() {
    // RFC 8200 4.5: offset 65528 + 16 octets exceeds 65535: code 0,
    // pointer to the fragment offset field (40 + 2).
    let (mut n, _s) = with_c();
    let f = c_frame(
        IpProto::IPV6_FRAG,
        &frag_hdr(IpProto::ICMPV6, 65528, false, 11, &[0x7a; 16]),
    );
    let out = n.inject_b(&f);
    let (t, code, ptr, _) = icmp6(out.first().expect("an ICMPv6 error")).unwrap();
    assert_eq!((t, code, u32::from_be_bytes(ptr)), (4, 0, 42));
}

#[test]
fn unsolicited_na_to_all_nodes_with_override_replaces_the_mac() {
    // RFC 4861 7.2.5: S=0, O=1 with a different TLLAO: the new address
    // goes into the cache (stale), and the next reply goes there.
    let mut n = Net::new();
    n.a.send_echo6_request(B6, 1, 1, b"", n.now).unwrap();
    n.pump();
    let e = |n: &Net| n.a.neighbors6().into_iter().find(|e| e.addr == B6).unwrap();
    assert_eq!(e(&n).mac, Some(MAC_B));
    let tll = opt_bytes(NdpOption::TargetLinkAddr(MAC_C));
    let na = Icmpv6Message::NeighborAdvertisement {
        router: false,
        solicited: false,
        override_flag: true,
        target: B6,
        options: NdpOptions::parse(&tll, 24).unwrap(),
    };
    let all = Ipv6Addr::ALL_NODES;
    let body = icmp_bytes(&na, B6, all);
    let f = frame6(
        MAC_C,
        all.multicast_mac().unwrap(),
        B6,
        all,
        IpProto::ICMPV6,
        255,
        &body,
    );
    n.a.receive(&f, shunt_stack::RxOffload::None, n.now);
    assert_eq!(e(&n).mac, Some(MAC_C));
    // ... and the next frame to B goes there (not to a cached MAC).
    let before = n.from_a.len();
    n.a.send_echo6_request(B6, 1, 2, b"", n.now).unwrap();
    n.pump();
    let req = n.from_a[before..]
        .iter()
        .find(|f| icmp6(f).is_some_and(|m| m.0 == 128))
        .expect("an echo request");
    assert_eq!(&req[..6], &MAC_C.0[..]);
}

#[test]
fn ipv6_recverr_queues_port_unreachable_with_origin_and_payload() {
    let mut n = Net::new();
    let c = n.a.udp6_socket();
    n.a.udp_set_options(c, |o| o.recverr6 = true).unwrap();
    // Unconnected: without IPV6_RECVERR nothing would be reported.
    n.a.udp_send_to(c, b"lost", Some(sa6(B6, 4000)), n.now)
        .unwrap();
    n.pump();
    assert!(
        n.a.udp_readiness(c).unwrap().error(),
        "POLLERR while queued"
    );
    let mut buf = [0u8; 64];
    let e = n.a.udp_recv_err(c, &mut buf).unwrap();
    assert_eq!(&buf[..e.ret], b"lost");
    assert!(!e.truncated);
    assert_eq!(e.errno, Errno::ECONNREFUSED);
    assert_eq!((e.origin.icmp_type, e.origin.code), (1, 4));
    assert!(e.origin.icmp6);
    assert_eq!((e.origin.offender, e.dst), (B6, (B6, 4000)));
    assert_eq!(n.a.udp_recv_err(c, &mut buf), Err(Errno::EAGAIN));
    // The queued error was also the socket's error.
    assert_eq!(recv(&mut n.a, c), Err(Errno::EAGAIN));
    assert!(!n.a.udp_readiness(c).unwrap().error());
    // IP_RECVERR alone does not cover ICMPv6 errors.
    let d = n.a.udp6_socket();
    n.a.udp_set_options(d, |o| o.recverr = true).unwrap();
    n.a.udp_send_to(d, b"lost", Some(sa6(B6, 4000)), n.now)
        .unwrap();
    n.pump();
    assert_eq!(n.a.udp_recv_err(d, &mut buf), Err(Errno::EAGAIN));
    assert!(!n.a.udp_readiness(d).unwrap().error());
}

#[test]
fn ipv6_recverr_reports_unresolvable_neighbour_as_code_3() {
    let mut n = Net::new();
    let c = n.a.udp6_socket();
    n.a.udp_set_options(c, |o| o.recverr6 = true).unwrap();
    n.a.udp_send_to(c, b"anyone?", Some(sa6(v6("2001:db8::99"), 9)), n.now)
        .unwrap();
    n.advance(Duration::from_secs(5));
    let mut buf = [0u8; 64];
    let e = n.a.udp_recv_err(c, &mut buf).unwrap();
    assert_eq!((e.origin.icmp_type, e.origin.code), (1, 3));
    assert_eq!(e.errno, Errno::EHOSTUNREACH);
    assert_eq!(e.origin.offender, A6, "we sent the error to ourselves");
    assert_eq!(&buf[..e.ret], b"anyone?");
}

#[test]
fn dual_stack_socket_ip_recverr_queues_icmp_errors_v4_mapped() {
    let mut n = Net::new();
    let c = n.b.udp6_socket();
    n.b.udp_set_options(c, |o| o.recverr = true).unwrap();
    let to = sa6(A4.to_ipv6_mapped(), 4000);
    n.b.udp_send_to(c, b"v4", Some(to), n.now).unwrap();
    n.pump();
    let mut buf = [0u8; 64];
    let e = n.b.udp_recv_err(c, &mut buf).unwrap();
    assert_eq!(&buf[..e.ret], b"v4");
    assert_eq!((e.origin.icmp_type, e.origin.code), (3, 3));
    assert!(!e.origin.icmp6);
    assert_eq!(e.origin.offender, A4.to_ipv6_mapped());
    assert_eq!(e.dst, (A4.to_ipv6_mapped(), 4000));
}
