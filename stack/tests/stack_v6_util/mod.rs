//! Shared by the IPv6 stack tests: two hosts on one segment with IPv6
//! addresses (DAD done), hand-made frames from a fake third party, and an
//! independent check (etherparse) of every frame a stack emits, IPv6
//! checksums included.
#![allow(dead_code)]

use std::net::{SocketAddr, SocketAddrV6};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use shunt_stack::time::{Duration, Instant};
use shunt_stack::wire::{EtherType, EthernetBuilder, Ipv6Builder, UdpBuilder};
use shunt_stack::{IpProto, Ipv4Addr, Ipv6Addr, Mac, RxOffload, Stack, StackConfig};

pub const MAC_A: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
pub const MAC_B: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);
/// A third host that exists only as frames the tests write.
pub const MAC_C: Mac = Mac([0x02, 0, 0, 0, 0, 0x0c]);
pub const A6: Ipv6Addr = Ipv6Addr::new([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
pub const B6: Ipv6Addr = Ipv6Addr::new([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]);
pub const C6: Ipv6Addr = Ipv6Addr::new([0x2001, 0xdb8, 0, 0, 0, 0, 0, 3]);
pub const A4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const B4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

pub fn sa6(a: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(a.into(), port, 0, 0))
}

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Parses a frame with etherparse and checks every checksum in it (IPv4
/// or IPv6; fragments are checked once reassembled by the tests).
pub fn check_frame(frame: &[u8]) -> SlicedPacket<'_> {
    let p = SlicedPacket::from_ethernet(frame)
        .unwrap_or_else(|e| panic!("etherparse refuses our frame: {e:?}\n{frame:02x?}"));
    match &p.net {
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            let (s, d) = (h.source(), h.destination());
            if !ip.is_payload_fragmented() {
                match &p.transport {
                    Some(TransportSlice::Udp(u)) => assert_eq!(
                        u.checksum(),
                        u.to_header()
                            .calc_checksum_ipv6_raw(s, d, u.payload())
                            .unwrap(),
                        "UDP checksum"
                    ),
                    Some(TransportSlice::Tcp(t)) => assert_eq!(
                        t.checksum(),
                        t.calc_checksum_ipv6(s, d).unwrap(),
                        "TCP checksum"
                    ),
                    Some(TransportSlice::Icmpv6(i)) => {
                        assert!(i.is_checksum_valid(s, d), "ICMPv6 checksum")
                    }
                    _ => {}
                }
            }
        }
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            assert_eq!(
                h.header_checksum(),
                h.to_header().calc_header_checksum(),
                "IPv4 header checksum"
            );
        }
        _ => {}
    }
    p
}

/// The ICMPv6 message of a frame: (type, code, bytes 4..8, body).
pub fn icmp6(frame: &[u8]) -> Option<(u8, u8, [u8; 4], Vec<u8>)> {
    let p = check_frame(frame);
    match &p.transport {
        Some(TransportSlice::Icmpv6(i)) => Some((
            i.type_u8(),
            i.code_u8(),
            i.bytes5to8(),
            i.slice()[8..].to_vec(),
        )),
        _ => None,
    }
}

pub fn hop_limit(frame: &[u8]) -> u8 {
    frame[14 + 7]
}

pub fn ip6_dst(frame: &[u8]) -> Ipv6Addr {
    Ipv6Addr::from_octets(frame[14 + 24..14 + 40].try_into().unwrap())
}

pub fn ip6_src(frame: &[u8]) -> Ipv6Addr {
    Ipv6Addr::from_octets(frame[14 + 8..14 + 24].try_into().unwrap())
}

/// An Ethernet frame carrying an IPv6 packet: fixed header, then `rest`
/// (extension headers and upper layer), as given.
pub fn frame6(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: IpProto,
    hop: u8,
    rest: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + rest.len()];
    f[54..].copy_from_slice(rest);
    let mut b = Ipv6Builder::new(src, dst, next);
    b.hop_limit = hop;
    b.emit(&mut f[14..]).unwrap();
    EthernetBuilder {
        dst: dst_mac,
        src: src_mac,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut f)
    .unwrap();
    f
}

/// A UDP datagram (header and payload) from `src` to `dst`.
pub fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload.len()];
    u[8..].copy_from_slice(payload);
    UdpBuilder {
        src_port: sport,
        dst_port: dport,
    }
    .emit(&src, &dst, &mut u)
    .unwrap();
    u
}

/// A fragment header followed by `data`.
pub fn frag_hdr(next: IpProto, offset: u16, more: bool, ident: u32, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 8];
    shunt_stack::wire::ipv6::FragmentHeader {
        next_header: next,
        offset,
        more,
        ident,
    }
    .emit(&mut v)
    .unwrap();
    v.extend_from_slice(data);
    v
}

/// A stack with IPv6 on, `addr`/64 and (optionally) an IPv4 address.
pub fn host6(mac: Mac, addr: Ipv6Addr, v4: Option<Ipv4Addr>, seed: u64) -> Stack {
    let mut c = StackConfig::new(mac);
    c.seed = seed;
    let mut s = Stack::new(c);
    if let Some(a) = v4 {
        s.add_ipv4_address(a, 24, Instant::ZERO).unwrap();
    }
    s.add_ipv6_address_with_prefix(addr, 64, Instant::ZERO)
        .unwrap();
    s
}

/// Two stacks on one Ethernet segment and a fake clock; every frame is
/// checked by etherparse and recorded.
pub struct Net {
    pub a: Stack,
    pub b: Stack,
    pub now: Instant,
    pub from_a: Vec<Vec<u8>>,
    pub from_b: Vec<Vec<u8>>,
    pub connected: bool,
}

impl Net {
    /// A (2001:db8::1, 192.0.2.1) and B (2001:db8::2, 192.0.2.2), DAD
    /// done, records cleared.
    pub fn new() -> Net {
        Net::with(host6(MAC_A, A6, Some(A4), 1), host6(MAC_B, B6, Some(B4), 2))
    }

    pub fn with(a: Stack, b: Stack) -> Net {
        let mut n = Net {
            a,
            b,
            now: Instant::ZERO,
            from_a: Vec::new(),
            from_b: Vec::new(),
            connected: true,
        };
        n.advance(Duration::from_secs(3));
        n.from_a.clear();
        n.from_b.clear();
        while n.a.poll_event().is_some() {}
        while n.b.poll_event().is_some() {}
        n
    }

    fn drain(s: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Some(n) = s.poll_transmit(now, &mut buf) {
            check_frame(&buf[..n]);
            out.push(buf[..n].to_vec());
        }
        out
    }

    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let fa = Self::drain(&mut self.a, self.now);
            let fb = Self::drain(&mut self.b, self.now);
            if fa.is_empty() && fb.is_empty() {
                return;
            }
            if self.connected {
                for f in &fa {
                    self.b.receive(f, RxOffload::None, self.now);
                }
                for f in &fb {
                    self.a.receive(f, RxOffload::None, self.now);
                }
            }
            self.from_a.extend(fa);
            self.from_b.extend(fb);
        }
        panic!("the stacks never went quiet");
    }

    pub fn advance_to(&mut self, t: Instant) {
        loop {
            self.pump();
            let next = [self.a.next_deadline(), self.b.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(d) if d <= t => {
                    self.now = self.now.max(d);
                    self.a.on_timer(self.now);
                    self.b.on_timer(self.now);
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
        self.pump();
    }

    pub fn advance(&mut self, d: Duration) {
        let t = self.now + d;
        self.advance_to(t);
    }

    /// Feeds B a frame from the fake third host and returns what B sent
    /// in answer.
    pub fn inject_b(&mut self, f: &[u8]) -> Vec<Vec<u8>> {
        let before = self.from_b.len();
        let was = self.connected;
        self.connected = false;
        self.b.receive(f, RxOffload::None, self.now);
        self.pump();
        self.connected = was;
        self.from_b[before..].to_vec()
    }
}
