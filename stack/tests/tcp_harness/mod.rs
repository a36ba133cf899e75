//! Two (or more) TCP layers joined by an in-memory wire with a fake
//! clock and seeded impairments (loss, reordering, duplication). Shared
//! by the `tcp_*` integration tests.
#![allow(dead_code)]

use shunt_stack::Ipv4Addr;
use shunt_stack::context::{InstantContext, RngContext};
use shunt_stack::tcp::{
    IpAddr, Route, SendError, SockAddr, TcpConfig, TcpContext, TcpCounter, TcpCounters, TcpEvent,
    TcpLayer, Transmit,
};
use shunt_stack::time::{Duration, Instant};
use shunt_stack::wire::tcp::TcpSegment;

pub const A: [u8; 4] = [192, 0, 2, 1];
pub const B: [u8; 4] = [192, 0, 2, 2];

pub fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from_octets(a))
}
pub fn sa(a: [u8; 4], port: u16) -> SockAddr {
    SockAddr::v4(a, port)
}

#[derive(Clone, Debug)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub bytes: Vec<u8>,
    pub at: Instant,
}

impl Packet {
    pub fn seg(&self) -> TcpSegment<'_> {
        TcpSegment::parse_unverified(&self.bytes).unwrap()
    }
}

pub struct Ctx {
    pub now: Instant,
    rng: u64,
    pub counters: TcpCounters,
    pub events: Vec<TcpEvent>,
    pub out: Vec<Packet>,
    pub addrs: Vec<IpAddr>,
    pub mtu: u16,
    pub refuse_send: bool,
    /// Parse every segment sent with etherparse and check its checksum.
    pub oracle: bool,
    pub keep_events: bool,
}

impl Ctx {
    pub fn new(addr: IpAddr, seed: u64) -> Ctx {
        Ctx {
            now: Instant::from_millis(1_000_000),
            rng: seed | 1,
            counters: TcpCounters::default(),
            events: Vec::new(),
            out: Vec::new(),
            addrs: vec![addr],
            mtu: 1500,
            refuse_send: false,
            oracle: true,
            keep_events: true,
        }
    }
    pub fn count(&self, c: TcpCounter) -> u64 {
        self.counters.get(c)
    }
}

impl InstantContext for Ctx {
    fn now(&self) -> Instant {
        self.now
    }
}

impl RngContext for Ctx {
    fn random_u64(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// Checks a segment with an independent parser: etherparse over an IPv4
/// or IPv6 header we wrap around it, including the TCP checksum.
pub fn oracle_check(src: IpAddr, dst: IpAddr, seg: &[u8]) {
    use etherparse::{IpNumber, Ipv4Header, Ipv6Header, SlicedPacket, TransportSlice};
    let mut pkt = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let h = Ipv4Header::new(seg.len() as u16, 64, IpNumber::TCP, s.octets(), d.octets())
                .unwrap();
            h.write(&mut pkt).unwrap();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: seg.len() as u16,
                next_header: IpNumber::TCP,
                hop_limit: 64,
                source: s.octets(),
                destination: d.octets(),
            };
            h.write(&mut pkt).unwrap();
        }
        _ => panic!("mixed versions"),
    }
    pkt.extend_from_slice(seg);
    let p = SlicedPacket::from_ip(&pkt).expect("etherparse parses our segment");
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    let ok = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => t.calc_checksum_ipv4(s.octets(), d.octets()).unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => t.calc_checksum_ipv6(s.octets(), d.octets()).unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(ok, t.checksum(), "etherparse disagrees on the checksum");
    assert_eq!(t.header_len() + t.payload().len(), seg.len());
}

impl TcpContext for Ctx {
    fn count(&mut self, counter: TcpCounter, n: u64) {
        self.counters.add(counter, n);
    }
    fn event(&mut self, event: TcpEvent) {
        if self.keep_events {
            self.events.push(event);
        }
    }
    fn route(&mut self, dst: IpAddr, src: Option<IpAddr>) -> Option<Route> {
        let src = src.or_else(|| {
            self.addrs
                .iter()
                .copied()
                .find(|a| a.is_v4() == dst.is_v4())
        })?;
        Some(Route { src, mtu: self.mtu })
    }
    fn is_local_addr(&self, addr: IpAddr) -> bool {
        self.addrs.contains(&addr)
    }
    fn send(&mut self, tx: Transmit, write: impl FnOnce(&mut [u8])) -> Result<(), SendError> {
        if self.refuse_send {
            return Err(SendError::NoBuffer);
        }
        let mut bytes = vec![0u8; tx.len];
        write(&mut bytes);
        if self.oracle {
            oracle_check(tx.src, tx.dst, &bytes);
        }
        self.out.push(Packet {
            src: tx.src,
            dst: tx.dst,
            bytes,
            at: self.now,
        });
        Ok(())
    }
}

pub struct Host {
    pub tcp: TcpLayer,
    pub ctx: Ctx,
}

impl Host {
    pub fn new(addr: IpAddr, cfg: TcpConfig, seed: u64) -> Host {
        let mut ctx = Ctx::new(addr, seed);
        let tcp = TcpLayer::new(cfg, &mut ctx);
        Host { tcp, ctx }
    }
}

/// Seeded impairment, applied to every packet put on the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct Impair {
    pub loss: f64,
    pub reorder: f64,
    pub dup: f64,
}

struct InFlight {
    at: Instant,
    order: u64,
    pkt: Packet,
}

pub type DropFilter = Box<dyn FnMut(&Packet) -> bool>;

pub struct Net {
    pub hosts: Vec<Host>,
    pub now: Instant,
    pub delay: Duration,
    pub impair: Impair,
    rng: u64,
    wire: Vec<InFlight>,
    order: u64,
    /// Every packet put on the wire (when `capture` is on).
    pub capture: Vec<Packet>,
    pub capture_on: bool,
    pub delivered: u64,
    /// Drop everything whose filter says so (tests that lose a chosen
    /// segment).
    pub drop_filter: Option<DropFilter>,
}

impl Net {
    pub fn new(cfg: TcpConfig) -> Net {
        Net::with_hosts(cfg, &[A, B])
    }

    pub fn with_hosts(cfg: TcpConfig, addrs: &[[u8; 4]]) -> Net {
        let hosts: Vec<Host> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Host::new(
                    ip(*a),
                    cfg.clone(),
                    0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 7919),
                )
            })
            .collect();
        let now = hosts[0].ctx.now;
        Net {
            hosts,
            now,
            delay: Duration::from_micros(500),
            impair: Impair::default(),
            rng: 0x1234_5678_9abc_def1,
            wire: Vec::new(),
            order: 0,
            capture: Vec::new(),
            capture_on: true,
            delivered: 0,
            drop_filter: None,
        }
    }

    pub fn seed(&mut self, s: u64) {
        self.rng = s | 1;
    }

    fn rand(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn a(&mut self) -> &mut Host {
        &mut self.hosts[0]
    }
    pub fn b(&mut self) -> &mut Host {
        &mut self.hosts[1]
    }

    fn set_now(&mut self, t: Instant) {
        self.now = self.now.max(t);
        for h in &mut self.hosts {
            h.ctx.now = self.now;
        }
    }

    /// Moves what the hosts sent onto the wire.
    pub fn collect(&mut self) {
        for hi in 0..self.hosts.len() {
            let out = std::mem::take(&mut self.hosts[hi].ctx.out);
            for p in out {
                if self.capture_on {
                    self.capture.push(p.clone());
                }
                if let Some(f) = &mut self.drop_filter
                    && f(&p)
                {
                    continue;
                }
                if self.impair.loss > 0.0 && self.rand() < self.impair.loss {
                    continue;
                }
                let copies = if self.impair.dup > 0.0 && self.rand() < self.impair.dup {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let mut at = self.now + self.delay;
                    if self.impair.reorder > 0.0 && self.rand() < self.impair.reorder {
                        let extra = self.delay.as_nanos() as f64 * (1.0 + 2.0 * self.rand());
                        at += Duration::from_nanos(extra as u64);
                    }
                    self.order += 1;
                    self.wire.push(InFlight {
                        at,
                        order: self.order,
                        pkt: p.clone(),
                    });
                }
            }
        }
    }

    fn host_for(&self, dst: IpAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.ctx.addrs.contains(&dst))
    }

    /// Delivers everything due, runs due timers. Returns false if nothing
    /// is left to happen.
    pub fn step(&mut self) -> bool {
        self.collect();
        let next_pkt = self.wire.iter().map(|f| f.at).min();
        let next_timer = self
            .hosts
            .iter()
            .filter_map(|h| h.tcp.next_deadline())
            .min();
        let next = match (next_pkt, next_timer) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        self.set_now(next);
        // Deliver due packets in order.
        let now = self.now;
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.wire.len() {
            if self.wire[i].at <= now {
                due.push(self.wire.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|f| (f.at, f.order));
        for f in due {
            if let Some(h) = self.host_for(f.pkt.dst) {
                let host = &mut self.hosts[h];
                host.tcp
                    .receive(&mut host.ctx, f.pkt.src, f.pkt.dst, &f.pkt.bytes, false);
                self.delivered += 1;
            }
        }
        for h in &mut self.hosts {
            if h.tcp.next_deadline().is_some_and(|t| t <= now) {
                h.tcp.on_timer(&mut h.ctx);
            }
        }
        self.collect();
        true
    }

    /// Steps until `done` or `limit` of fake time passes.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.now > end {
                return false;
            }
            if !self.step() {
                return done(self);
            }
        }
    }

    /// Lets time pass (delivering and firing timers) for `d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.collect();
            let next_pkt = self.wire.iter().map(|f| f.at).min();
            let next_timer = self
                .hosts
                .iter()
                .filter_map(|h| h.tcp.next_deadline())
                .min();
            let next = [next_pkt, next_timer].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => break,
            }
        }
        self.set_now(end);
    }

    /// Packets captured so far that `f` selects, and clears the capture.
    pub fn take_capture(&mut self) -> Vec<Packet> {
        std::mem::take(&mut self.capture)
    }
}

/// A connected pair: (listener on B, client on A, server-side accepted).
pub fn connect_pair(
    net: &mut Net,
    port: u16,
) -> (
    shunt_stack::tcp::SocketId,
    shunt_stack::tcp::SocketId,
    shunt_stack::tcp::SocketId,
) {
    use shunt_stack::tcp::{Domain, Errno};
    let l = net.b().tcp.socket(Domain::V4);
    let h = net.b();
    h.tcp.bind(&mut h.ctx, l, sa(B, port)).unwrap();
    h.tcp.listen(&mut h.ctx, l, 128).unwrap();
    let c = net.a().tcp.socket(Domain::V4);
    let h = net.a();
    assert_eq!(
        h.tcp.connect(&mut h.ctx, c, sa(B, port)),
        Err(Errno::EINPROGRESS)
    );
    let mut s = None;
    let ok = net.run_until(Duration::from_secs(5), |n| {
        if s.is_none() {
            let h = n.b();
            if let Ok((id, _)) = h.tcp.accept(&mut h.ctx, l) {
                s = Some(id);
            }
        }
        s.is_some() && n.hosts[0].tcp.state(c) == Ok(shunt_stack::tcp::TcpState::Established)
    });
    assert!(ok, "handshake");
    let h = net.a();
    assert_eq!(h.tcp.connect(&mut h.ctx, c, sa(B, port)), Ok(()));
    (l, c, s.unwrap())
}

/// Builds a segment and hands it to host `h` as if it came off the wire.
pub fn inject(
    net: &mut Net,
    h: usize,
    src: SockAddr,
    dst: SockAddr,
    b: shunt_stack::wire::tcp::TcpBuilder,
    payload: &[u8],
) {
    let mut bytes = vec![0u8; b.header_len() + payload.len()];
    bytes[b.header_len()..].copy_from_slice(payload);
    match (src.ip, dst.ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.emit(&s, &d, &mut bytes).unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.emit(&s, &d, &mut bytes).unwrap(),
        _ => panic!("mixed"),
    };
    let host = &mut net.hosts[h];
    host.tcp
        .receive(&mut host.ctx, src.ip, dst.ip, &bytes, false);
}

/// Segments in a capture from `src` (by address), with their times.
pub fn from(cap: &[Packet], src: [u8; 4]) -> Vec<&Packet> {
    cap.iter().filter(|p| p.src == ip(src)).collect()
}
