//! TCP over IPv6 through the whole stack (neighbour discovery before the
//! SYN, IPv6 output, etherparse-checked frames), and a dual-stack listener
//! taking an IPv4 connection.

mod stack_v6_util;

use shunt_stack::tcp::{
    Domain, IpAddr, Poll, RecvFlags, SendFlags, SockAddr, TcpCounter, TcpState,
};
use shunt_stack::time::{Duration, Instant};
use shunt_stack::{Ipv6Addr, Stack};
use stack_v6_util::*;

fn recv_all(s: &mut Stack, id: shunt_stack::tcp::SocketId, now: Instant) -> Vec<u8> {
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

fn transfer(
    n: &mut Net,
    from_a: bool,
    c: shunt_stack::tcp::SocketId,
    s: shunt_stack::tcp::SocketId,
    data: &[u8],
) {
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..400 {
        if sent < data.len() {
            let t = n.now;
            let tx = if from_a { &mut n.a } else { &mut n.b };
            if let Ok(k) = tx.tcp(t, |tc, cx| {
                tc.send(cx, c, &data[sent..], SendFlags::default())
            }) {
                sent += k;
            }
        }
        n.advance(Duration::from_millis(5));
        let t = n.now;
        let rx = if from_a { &mut n.b } else { &mut n.a };
        got.extend(recv_all(rx, s, t));
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
}

#[test]
fn connect_transfer_close_over_ipv6() {
    let mut n = Net::new();
    let now = n.now;
    let l = n.b.tcp(now, |t, cx| {
        let l = t.socket(Domain::V6);
        t.bind(cx, l, SockAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 80))
            .unwrap();
        t.listen(cx, l, 16).unwrap();
        l
    });
    let c = n.a.tcp(now, |t, cx| {
        let c = t.socket(Domain::V6);
        assert_eq!(
            t.connect(cx, c, SockAddr::new(IpAddr::V6(B6), 80)),
            Err(shunt_stack::Errno::EINPROGRESS)
        );
        c
    });
    n.advance(Duration::from_millis(10));
    assert_eq!(n.a.tcp_layer().state(c), Ok(TcpState::Established));
    let (s, peer) = n.b.tcp(n.now, |t, cx| t.accept(cx, l)).unwrap();
    assert_eq!(peer.ip, IpAddr::V6(A6));
    // The SYN went out after neighbour discovery, in IPv6 with MSS 1440.
    let syn = n
        .from_a
        .iter()
        .find(|f| f[12..14] == [0x86, 0xdd] && f[14 + 6] == 6)
        .unwrap();
    let p = check_frame(syn);
    let Some(etherparse::TransportSlice::Tcp(t)) = &p.transport else {
        panic!()
    };
    assert!(t.syn());
    let mss = t.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    });
    assert_eq!(mss, Some(1440));
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    transfer(&mut n, true, c, s, &data);
    transfer(&mut n, false, s, c, b"thanks");
    // Full-size segments fill the link exactly.
    let max = n.from_a.iter().map(|f| f.len()).max().unwrap();
    assert_eq!(max, 1514);
    let t = n.now;
    n.a.tcp(t, |tc, cx| tc.close(cx, c));
    n.advance(Duration::from_millis(50));
    let t = n.now;
    assert!(n.b.tcp_layer().poll(s).has(Poll::IN | Poll::RDHUP));
    n.b.tcp(t, |tc, cx| tc.close(cx, s));
    n.advance(Duration::from_millis(50));
    assert_eq!(n.a.tcp_counter(TcpCounter::ActiveOpens), 1);
    assert_eq!(n.b.tcp_counter(TcpCounter::PassiveOpens), 1);
    assert_eq!(n.a.tcp_counter(TcpCounter::RetransSegs), 0);
    assert!(matches!(
        n.a.tcp_layer().state(c),
        Ok(TcpState::TimeWait) | Err(_)
    ));
}

#[test]
fn dual_stack_listener_accepts_an_ipv4_connection() {
    let mut n = Net::new();
    let now = n.now;
    let l = n.b.tcp(now, |t, cx| {
        let l = t.socket(Domain::V6);
        t.bind(
            cx,
            l,
            SockAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 8080),
        )
        .unwrap();
        t.listen(cx, l, 16).unwrap();
        l
    });
    let c = n.a.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        let _ = t.connect(cx, c, SockAddr::new(IpAddr::V4(B4), 8080));
        c
    });
    n.advance(Duration::from_millis(10));
    assert_eq!(n.a.tcp_layer().state(c), Ok(TcpState::Established));
    let (s, peer) = n.b.tcp(n.now, |t, cx| t.accept(cx, l)).unwrap();
    // The wire address is IPv4; an AF_INET6 socket reports it v4-mapped.
    assert_eq!(peer.ip.to_canonical(), IpAddr::V4(A4));
    assert_eq!(peer.ip.to_v6(), A4.to_ipv6_mapped());
    transfer(&mut n, true, c, s, b"over IPv4 to a dual-stack listener");
    // An IPv6 client reaches the same listener.
    let c6 = n.a.tcp(n.now, |t, cx| {
        let c = t.socket(Domain::V6);
        let _ = t.connect(cx, c, SockAddr::new(IpAddr::V6(B6), 8080));
        c
    });
    n.advance(Duration::from_millis(10));
    assert_eq!(n.a.tcp_layer().state(c6), Ok(TcpState::Established));
    let (_, peer6) = n.b.tcp(n.now, |t, cx| t.accept(cx, l)).unwrap();
    assert_eq!(peer6.ip, IpAddr::V6(A6));
}

#[test]
fn tcp_self_connection_over_ipv6_loopback_path() {
    let mut n = Net::new();
    let now = n.now;
    let l = n.a.tcp(now, |t, cx| {
        let l = t.socket(Domain::V6);
        t.bind(cx, l, SockAddr::new(IpAddr::V6(A6), 9)).unwrap();
        t.listen(cx, l, 4).unwrap();
        l
    });
    let c = n.a.tcp(now, |t, cx| {
        let c = t.socket(Domain::V6);
        let _ = t.connect(cx, c, SockAddr::new(IpAddr::V6(A6), 9));
        c
    });
    let before = n.from_a.len();
    n.advance(Duration::from_millis(10));
    assert_eq!(n.a.tcp_layer().state(c), Ok(TcpState::Established));
    assert!(n.a.tcp(n.now, |t, cx| t.accept(cx, l)).is_ok());
    assert_eq!(n.from_a.len(), before, "nothing on the wire");
}
