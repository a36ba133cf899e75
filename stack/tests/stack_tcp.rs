//! TCP through the whole stack: two `Stack`s wired frame to frame (ARP
//! resolution before the SYN, IPv4 output, etherparse-checked frames),
//! and a self-connection through the stack's loopback.

mod stack_util;

use shunt_stack::tcp::{
    Domain, IpAddr, Poll, RecvFlags, SendFlags, SockAddr, SockOpt, TcpCounter, TcpState,
};
use shunt_stack::time::Duration;
use shunt_stack::{Ipv4Addr, Stack};
use stack_util::*;

fn addr(a: Ipv4Addr, port: u16) -> SockAddr {
    SockAddr::new(IpAddr::V4(a), port)
}

fn recv_all(
    s: &mut Stack,
    id: shunt_stack::tcp::SocketId,
    now: shunt_stack::time::Instant,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.tcp(now, |t, cx| t.recv(cx, id, &mut buf, RecvFlags::default())) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn connect_accept_echo_close_between_two_stacks() {
    let mut n = Net::new();
    let now = n.now;
    let l = n.b.tcp(now, |t, cx| {
        let l = t.socket(Domain::V4);
        t.bind(cx, l, addr(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
        t.listen(cx, l, 16).unwrap();
        l
    });
    let c = n.a.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        assert_eq!(
            t.connect(cx, c, addr(B, 80)),
            Err(shunt_stack::Errno::EINPROGRESS)
        );
        c
    });
    n.advance(Duration::from_millis(10));
    assert_eq!(n.a.tcp_layer().state(c), Ok(TcpState::Established));
    let (s, peer) = n.b.tcp(n.now, |t, cx| t.accept(cx, l)).unwrap();
    assert_eq!(peer.ip, IpAddr::V4(A));
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..200 {
        if sent < data.len() {
            let t = n.now;
            if let Ok(k) = n.a.tcp(t, |tc, cx| {
                tc.send(cx, c, &data[sent..], SendFlags::default())
            }) {
                sent += k;
            }
        }
        n.advance(Duration::from_millis(5));
        let t = n.now;
        got.extend(recv_all(&mut n.b, s, t));
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
    // Echo a little back, then close both ways.
    let t = n.now;
    n.b.tcp(t, |tc, cx| tc.send(cx, s, b"thanks", SendFlags::default()))
        .unwrap();
    n.advance(Duration::from_millis(50));
    let t = n.now;
    assert_eq!(recv_all(&mut n.a, c, t), b"thanks");
    n.a.tcp(t, |tc, cx| tc.close(cx, c));
    n.advance(Duration::from_millis(50));
    let t = n.now;
    assert!(n.b.tcp_layer().poll(s).has(Poll::IN | Poll::RDHUP));
    n.b.tcp(t, |tc, cx| tc.close(cx, s));
    n.advance(Duration::from_millis(50));
    assert_eq!(n.a.tcp_counter(TcpCounter::ActiveOpens), 1);
    assert_eq!(n.b.tcp_counter(TcpCounter::PassiveOpens), 1);
    assert_eq!(n.a.tcp_counter(TcpCounter::RetransSegs), 0);
    // Every frame on the wire went through etherparse in `Net`.
    assert!(n.from_a.len() > 30);
}

#[test]
fn closed_port_gets_rst_and_connect_fails() {
    let mut n = Net::new();
    let c = n.a.tcp(n.now, |t, cx| {
        let c = t.socket(Domain::V4);
        let _ = t.connect(cx, c, addr(B, 81));
        c
    });
    n.advance(Duration::from_millis(10));
    let mut t = n.a.tcp_layer().state(c);
    if t != Ok(TcpState::Close) {
        n.advance(Duration::from_millis(100));
        t = n.a.tcp_layer().state(c);
    }
    assert_eq!(t, Ok(TcpState::Close));
    let e = n.a.tcp(n.now, |tc, _| tc.take_error(c));
    assert_eq!(e, Some(shunt_stack::Errno::ECONNREFUSED));
    let rst = n.from_b.iter().rev().find(|f| f.len() >= 54).unwrap();
    let p = etherparse::SlicedPacket::from_ethernet(rst).unwrap();
    let Some(etherparse::TransportSlice::Tcp(tcp)) = &p.transport else {
        panic!()
    };
    assert!(tcp.rst() && tcp.ack());
}

#[test]
fn connect_to_a_broadcast_address_is_unreachable() {
    let mut s = host(MAC_A, A, 11);
    let now = shunt_stack::time::Instant::ZERO;
    // tcp_v4_connect refuses a broadcast route: the subnet's broadcast
    // address as well as the limited one.
    for dst in [
        Ipv4Addr::new(192, 0, 2, 255),
        Ipv4Addr::new(255, 255, 255, 255),
    ] {
        let r = s.tcp(now, |t, cx| {
            let c = t.socket(Domain::V4);
            t.connect(cx, c, addr(dst, 80))
        });
        assert_eq!(r, Err(shunt_stack::Errno::ENETUNREACH), "{dst:?}");
    }
    // A neighbour on the same subnet is fine.
    let r = s.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        t.connect(cx, c, addr(B, 80))
    });
    assert!(
        r.is_ok() || r == Err(shunt_stack::Errno::EINPROGRESS),
        "{r:?}"
    );
}

#[test]
fn self_connection_inside_one_stack() {
    let mut s = host(MAC_A, A, 9);
    let mut now = shunt_stack::time::Instant::ZERO;
    let l = s.tcp(now, |t, cx| {
        let l = t.socket(Domain::V4);
        t.bind(cx, l, addr(A, 8080)).unwrap();
        t.listen(cx, l, 4).unwrap();
        l
    });
    let c = s.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        let _ = t.connect(cx, c, addr(A, 8080));
        c
    });
    for _ in 0..10 {
        now += Duration::from_millis(1);
        s.on_timer(now);
    }
    assert_eq!(s.tcp_layer().state(c), Ok(TcpState::Established));
    let (a, _) = s.tcp(now, |t, cx| t.accept(cx, l)).unwrap();
    s.tcp(now, |t, cx| t.send(cx, c, b"loop", SendFlags::default()))
        .unwrap();
    for _ in 0..10 {
        now += Duration::from_millis(1);
        s.on_timer(now);
    }
    assert_eq!(recv_all(&mut s, a, now), b"loop");
    // Nothing but the initial gratuitous ARP reached the wire.
    let mut buf = [0u8; 2048];
    let mut frames = 0;
    while s.poll_transmit(now, &mut buf).is_some() {
        frames += 1;
    }
    assert_eq!(frames, 1);
}

/// An ICMP destination unreachable about a SYN ends the connect with the
/// errno Linux's `icmp_err_convert` gives (tcp_v4_err: any unreachable
/// aborts a connection in SYN_SENT).
#[test]
fn icmp_host_unreachable_aborts_a_connect() {
    let now = shunt_stack::time::Instant::ZERO;
    let mut a = host(MAC_A, A, 7);
    a.add_static_neighbor(B, MAC_B, now);
    // Drain the gratuitous ARP of the new address.
    let mut buf = vec![0u8; 2048];
    while a.poll_transmit(now, &mut buf).is_some() {}
    let c = a.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        assert_eq!(
            t.connect(cx, c, addr(B, 80)),
            Err(shunt_stack::Errno::EINPROGRESS)
        );
        c
    });
    let n = a.poll_transmit(now, &mut buf).expect("SYN");
    let syn = buf[..n].to_vec();
    assert!(check_frame(&syn).transport.is_some());
    // The router's answer: Ethernet B -> A, IPv4 B -> A, ICMP 3/1 quoting
    // the SYN's IP header and first 8 bytes of TCP.
    let quote = &syn[14..14 + 20 + 8];
    let mut icmp = vec![3u8, 1, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quote);
    let c16 = !fold(&icmp);
    icmp[2..4].copy_from_slice(&c16.to_be_bytes());
    let mut ip = vec![0x45u8, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&B.octets());
    ip.extend_from_slice(&A.octets());
    let h16 = !fold(&ip);
    ip[10..12].copy_from_slice(&h16.to_be_bytes());
    let mut frame = Vec::new();
    frame.extend_from_slice(&MAC_A.0);
    frame.extend_from_slice(&MAC_B.0);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&icmp);
    a.receive(&frame, shunt_stack::RxOffload::None, now);
    assert_eq!(a.tcp_layer().state(c), Ok(TcpState::Close));
    assert_eq!(
        a.tcp(now, |t, _| t.take_error(c)),
        Some(shunt_stack::Errno::EHOSTUNREACH)
    );
}

/// One's-complement sum of 16-bit words, folded.
fn fold(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(c[0]) << 8 | c.get(1).map_or(0, |&x| u32::from(x));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The TCP frames `s` has ready, drained: (ack number, payload length).
fn drain_tcp(s: &mut Stack, now: shunt_stack::time::Instant) -> Vec<(Vec<u8>, u32, usize)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(n) = s.poll_transmit(now, &mut buf) {
        let p = check_frame(&buf[..n]);
        if let Some(etherparse::TransportSlice::Tcp(t)) = &p.transport {
            let (ack, len) = (t.acknowledgment_number(), t.payload().len());
            out.push((buf[..n].to_vec(), ack, len));
        }
    }
    out
}

#[test]
fn receive_burst_acks_in_order_data_once_per_64k() {
    let mut n = Net::new();
    let now = n.now;
    let l = n.b.tcp(now, |t, cx| {
        let l = t.socket(Domain::V4);
        t.set_option(cx, l, SockOpt::RcvBuf, 1 << 17).unwrap();
        t.bind(cx, l, addr(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
        t.listen(cx, l, 16).unwrap();
        l
    });
    let c = n.a.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        t.set_option(cx, c, SockOpt::SndBuf, 1 << 17).unwrap();
        let _ = t.connect(cx, c, addr(B, 80));
        c
    });
    n.advance(Duration::from_millis(10));
    let (s, _) = n.b.tcp(n.now, |t, cx| t.accept(cx, l)).unwrap();
    let data = vec![7u8; 400_000];
    let mut sent = 0;
    // Past the quick-ACK start, with a congestion window of more than
    // 64 KiB.
    for _ in 0..100 {
        let t = n.now;
        if let Ok(k) = n.a.tcp(t, |tc, cx| {
            tc.send(cx, c, &data[sent..200_000], SendFlags::default())
        }) {
            sent += k;
        }
        n.advance(Duration::from_millis(1));
        let t = n.now;
        recv_all(&mut n.b, s, t);
        if sent == 200_000 && n.a.tcp_layer().tcp_info(c, t).unwrap().unacked == 0 {
            break;
        }
    }
    assert_eq!(sent, 200_000);
    // The same flight of segments, one frame at a time and then as one
    // burst: (ACK frames B sends, the last ACK number, the flight's end).
    let mut flight = |n: &mut Net, burst: bool| {
        let t = n.now;
        let k =
            n.a.tcp(t, |tc, cx| {
                tc.send(cx, c, &data[sent..sent + 80_000], SendFlags::default())
            })
            .unwrap();
        sent += k;
        let frames = drain_tcp(&mut n.a, t);
        let segs = frames.iter().filter(|f| f.2 > 0).count();
        assert!(segs >= 50, "a flight of {segs} segments");
        let mut acks = Vec::new();
        if burst {
            n.b.receive_burst(t, |b| {
                for f in &frames {
                    b.receive(&f.0, shunt_stack::RxOffload::None, t);
                }
            });
            acks = drain_tcp(&mut n.b, t);
        } else {
            for f in &frames {
                n.b.receive(&f.0, shunt_stack::RxOffload::None, t);
                acks.extend(drain_tcp(&mut n.b, t));
            }
        }
        for a in &acks {
            assert_eq!(a.2, 0, "a pure ACK");
            n.a.receive(&a.0, shunt_stack::RxOffload::None, t);
        }
        n.advance(Duration::from_millis(1));
        let t = n.now;
        recv_all(&mut n.b, s, t);
        (segs, acks)
    };
    let (segs, acks) = flight(&mut n, false);
    // Every second full segment, as Linux without GRO.
    assert!(
        acks.len() >= segs / 2,
        "{} ACKs for {segs} segments",
        acks.len()
    );
    let (segs, acks) = flight(&mut n, true);
    // 80 000 bytes in one burst: one ACK at 64 KiB, one at the end.
    assert_eq!(acks.len(), 2, "{} ACKs for {segs} segments", acks.len());
    let last = acks[1].1;
    let first = acks[0].1;
    assert!(last.wrapping_sub(first) > 0 && last.wrapping_sub(first) < 80_000 - 65_536 + 1448);
    assert_eq!(n.a.tcp_layer().tcp_info(c, n.now).unwrap().unacked, 0);
    assert_eq!(n.a.tcp_counter(TcpCounter::RetransSegs), 0);
}

/// Linux frees a connection's local port as soon as a passive close ends
/// (no TIME_WAIT on that side), so a client that lets the server close
/// first can make connections to one server for ever. More connections
/// than there are ephemeral ports (28232), one after the other.
#[test]
fn passive_close_frees_the_port_for_the_next_connect() {
    let mut n = Net::new();
    let now = n.now;
    let l = n.b.tcp(now, |t, cx| {
        let l = t.socket(Domain::V4);
        t.bind(cx, l, addr(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
        t.listen(cx, l, 16).unwrap();
        l
    });
    let mut ports = std::collections::HashSet::new();
    for i in 0..30_000 {
        let t = n.now;
        let c = n.a.tcp(t, |tc, cx| {
            let c = tc.socket(Domain::V4);
            let r = tc.connect(cx, c, addr(B, 80));
            assert_eq!(r, Err(shunt_stack::Errno::EINPROGRESS), "connection {i}");
            c
        });
        n.advance(Duration::from_micros(50));
        assert_eq!(
            n.a.tcp_layer().state(c),
            Ok(TcpState::Established),
            "connection {i}"
        );
        ports.insert(n.a.tcp_layer().local_addr(c).unwrap().port);
        let t = n.now;
        let (s, _) = n.b.tcp(t, |tc, cx| tc.accept(cx, l)).unwrap();
        // The server closes first; the client sees the FIN and closes.
        n.b.tcp(t, |tc, cx| tc.close(cx, s));
        n.advance(Duration::from_micros(50));
        let t = n.now;
        assert!(n.a.tcp_layer().poll(c).has(Poll::RDHUP));
        n.a.tcp(t, |tc, cx| tc.close(cx, c));
        n.advance(Duration::from_micros(50));
        n.from_a.clear();
        n.from_b.clear();
    }
    // Every port of the range served, and some more than once.
    assert_eq!(ports.len(), 60999 - 32768 + 1);
}
