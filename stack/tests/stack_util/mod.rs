//! Shared by the stack-level tests: hosts wired frame to frame, and an
//! independent check (etherparse) of every frame a stack emits.
#![allow(dead_code)]

use std::net::{SocketAddr, SocketAddrV4};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use shunt_stack::time::{Duration, Instant};
use shunt_stack::{Ipv4Addr, Mac, RxOffload, Stack, StackConfig};

pub const MAC_A: Mac = Mac([0x02, 0, 0, 0, 0, 0x0a]);
pub const MAC_B: Mac = Mac([0x02, 0, 0, 0, 0, 0x0b]);
pub const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

pub fn sa(a: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(a.into(), port))
}

/// One's-complement sum of `b` is 0xffff: its checksum field is right.
pub fn sums_to_ones(b: &[u8]) -> bool {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

/// Parses a frame with etherparse and checks every checksum in it.
/// Returns the sliced packet for further assertions.
pub fn check_frame(frame: &[u8]) -> SlicedPacket<'_> {
    let p = SlicedPacket::from_ethernet(frame)
        .unwrap_or_else(|e| panic!("etherparse refuses our frame: {e:?}\n{frame:02x?}"));
    if let Some(NetSlice::Ipv4(ip)) = &p.net {
        let h = ip.header();
        assert_eq!(
            h.header_checksum(),
            h.to_header().calc_header_checksum(),
            "IPv4 header checksum"
        );
        let (s, d) = (h.source(), h.destination());
        let fragmented = h.more_fragments() || h.fragments_offset().value() != 0;
        match &p.transport {
            Some(TransportSlice::Udp(u)) if !fragmented => {
                assert_eq!(
                    u.checksum(),
                    u.to_header()
                        .calc_checksum_ipv4_raw(s, d, u.payload())
                        .unwrap(),
                    "UDP checksum"
                );
            }
            Some(TransportSlice::Tcp(t)) if !fragmented => {
                assert_eq!(
                    t.checksum(),
                    t.calc_checksum_ipv4(s, d).unwrap(),
                    "TCP checksum"
                );
            }
            Some(TransportSlice::Icmpv4(i)) if !fragmented => {
                assert!(sums_to_ones(i.slice()), "ICMP checksum");
            }
            _ => {}
        }
    }
    p
}

/// A stack with one address on 192.0.2.0/24.
pub fn host(mac: Mac, addr: Ipv4Addr, seed: u64) -> Stack {
    let mut c = StackConfig::new(mac);
    c.seed = seed;
    let mut s = Stack::new(c);
    s.add_ipv4_address(addr, 24, Instant::ZERO).unwrap();
    s
}

/// Two stacks on one Ethernet segment, a fake clock, and the frames each
/// sent (checked by etherparse on the way).
pub struct Net {
    pub a: Stack,
    pub b: Stack,
    pub now: Instant,
    /// Every frame sent by A, then by B, in order.
    pub from_a: Vec<Vec<u8>>,
    pub from_b: Vec<Vec<u8>>,
    /// When false, frames are recorded but not delivered.
    pub connected: bool,
}

impl Net {
    pub fn new() -> Net {
        let mut n = Net {
            a: host(MAC_A, A, 1),
            b: host(MAC_B, B, 2),
            now: Instant::ZERO,
            from_a: Vec::new(),
            from_b: Vec::new(),
            connected: true,
        };
        n.pump();
        n.from_a.clear();
        n.from_b.clear();
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

    /// Moves frames both ways until both stacks are quiet.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let fa = Self::drain(&mut self.a, self.now);
            let fb = Self::drain(&mut self.b, self.now);
            if fa.is_empty() && fb.is_empty() {
                return;
            }
            for f in &fa {
                if self.connected {
                    self.b.receive(f, RxOffload::None, self.now);
                }
            }
            for f in &fb {
                if self.connected {
                    self.a.receive(f, RxOffload::None, self.now);
                }
            }
            self.from_a.extend(fa);
            self.from_b.extend(fb);
        }
        panic!("the stacks never went quiet");
    }

    /// Advances the clock to `t`, running each stack's timers when due and
    /// pumping frames between.
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
}
