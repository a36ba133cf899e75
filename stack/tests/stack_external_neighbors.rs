//! A stack whose neighbours are resolved by someone else (shunt sharing
//! the kernel's address): it never sends ARP, neighbour solicitations,
//! gratuitous ARP or MLD for the kernel's addresses; it asks for the
//! neighbours it needs and sends what waited once told.

use std::net::{IpAddr, SocketAddr};

use shunt_stack::iface::neighbor::{ExternalNeighbor, NeighborConfig, NeighborState};
use shunt_stack::time::{Duration, Instant};
use shunt_stack::{Ipv4Addr, Mac, Stack, StackConfig};

const OUR_MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
const PEER_MAC: Mac = Mac([2, 0, 0, 0, 0, 2]);

fn stack() -> Stack {
    let mut c = StackConfig::new(OUR_MAC);
    c.neighbor = NeighborConfig {
        external: true,
        ..NeighborConfig::default()
    };
    c.ipv6.dad_transmits = 0;
    c.ipv6.link_local = false;
    Stack::new(c)
}

fn frames(s: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Some(n) = s.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn wants(s: &mut Stack) -> Vec<IpAddr> {
    let mut v = Vec::new();
    s.drain_neighbor_wants(&mut v);
    v
}

#[test]
fn ipv4_asks_then_sends_what_waited() {
    let mut s = stack();
    let now = Instant::ZERO;
    s.add_ipv4_address(Ipv4Addr::new(192, 0, 2, 1), 24, now)
        .unwrap();
    assert!(frames(&mut s, now).is_empty(), "no gratuitous ARP");
    let u = s.udp_socket();
    let peer: SocketAddr = "192.0.2.2:9000".parse().unwrap();
    s.udp_bind(u, "0.0.0.0:5000".parse().unwrap()).unwrap();
    assert_eq!(s.udp_send_to(u, b"one", Some(peer), now), Ok(3));
    assert_eq!(s.udp_send_to(u, b"two", Some(peer), now), Ok(3));
    assert!(frames(&mut s, now).is_empty(), "no ARP request");
    assert!(s.has_neighbor_wants());
    assert_eq!(wants(&mut s), vec![peer.ip()]);
    assert!(!s.has_neighbor_wants());
    let later = now + Duration::from_millis(10);
    s.set_external_neighbor(peer.ip(), ExternalNeighbor::Reachable(PEER_MAC), later);
    let out = frames(&mut s, later);
    assert_eq!(out.len(), 2);
    for f in &out {
        assert_eq!(&f[..6], &PEER_MAC.0);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
    }
    assert_eq!(&out[0][out[0].len() - 3..], b"one");
    assert_eq!(s.neighbors()[0].state, NeighborState::Reachable);
}

#[test]
fn ipv4_failure_reported_by_the_resolver_fails_the_sender() {
    let mut s = stack();
    let now = Instant::ZERO;
    s.add_ipv4_address(Ipv4Addr::new(192, 0, 2, 1), 24, now)
        .unwrap();
    let u = s.udp_socket();
    let peer: SocketAddr = "192.0.2.3:9000".parse().unwrap();
    s.udp_connect(u, Some(peer), now).unwrap();
    s.udp_send_to(u, b"x", None, now).unwrap();
    assert_eq!(wants(&mut s), vec![peer.ip()]);
    s.set_external_neighbor(peer.ip(), ExternalNeighbor::Failed, now);
    // Linux: the ICMP host unreachable to ourselves ends up as the
    // connected socket's error.
    assert_eq!(
        s.udp_take_error(u),
        Ok(Some(shunt_stack::Errno::EHOSTUNREACH))
    );
}

#[test]
fn ipv6_no_dad_no_solicitation_no_mld() {
    let mut s = stack();
    let now = Instant::ZERO;
    s.add_ipv6_address_with_prefix(
        "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().into(),
        64,
        now,
    )
    .unwrap();
    let u = s.udp6_socket();
    s.udp_bind(u, "[::]:5000".parse().unwrap()).unwrap();
    let peer: SocketAddr = "[2001:db8::2]:9000".parse().unwrap();
    let t = now + Duration::from_secs(2);
    assert!(frames(&mut s, t).is_empty(), "nothing of its own");
    s.on_timer(t);
    assert!(frames(&mut s, t).is_empty(), "no MLD report, no DAD");
    assert_eq!(s.udp_send_to(u, b"six", Some(peer), t), Ok(3));
    assert!(frames(&mut s, t).is_empty(), "no neighbour solicitation");
    assert_eq!(wants(&mut s), vec![peer.ip()]);
    s.set_external_neighbor(peer.ip(), ExternalNeighbor::Stale(PEER_MAC), t);
    let out = frames(&mut s, t);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0][..6], &PEER_MAC.0);
    assert_eq!(&out[0][12..14], &[0x86, 0xdd]);
    // The stale entry was used: the resolver is asked to confirm it.
    assert_eq!(wants(&mut s), vec![peer.ip()]);
}
