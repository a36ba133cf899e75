//! A small driver: runs a shunt [`Stack`] on a ring device (AF_PACKET or
//! an in-memory port) in a loop — frames in from the device (zero-copy
//! from the AF_PACKET ring, offload state read from the virtio-net
//! header), frames out straight into the device's TX, timers from
//! `next_deadline`/`on_timer`, and poll(2) on the device when idle. The
//! stack stays sans-IO: all the I/O is here, on the test side.
#![allow(dead_code)]

pub mod sha256;

use std::time::Duration;

use shunt_ring::Link;
use shunt_ring::Packet;
use shunt_ring::afpacket::{AfPacket, TxError};
use shunt_ring::apps::impair::Impair;
use shunt_ring::mem::MemPort;
use shunt_ring::offload::{self, F_DATA_VALID, VnetHdr};
use shunt_stack::tcp::{Errno, RecvFlags, SendFlags, Shutdown, SocketId};
use shunt_stack::time::Instant;
use shunt_stack::{Ipv4Addr, Mac, RxOffload, Stack, StackConfig};

/// Frames taken from the device per turn.
pub const RX_BATCH: usize = 256;

/// The stack's clock: nanoseconds since `base`, a `std::time::Instant`.
/// A fake clock is the same mapping with time that the test advances.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            base: std::time::Instant::now(),
        }
    }

    /// Real time, as the stack's `Instant`.
    pub fn now(self) -> Instant {
        Instant::from_nanos(self.base.elapsed().as_nanos() as u64)
    }

    /// The `std::time::Instant` a stack instant stands for (what ring's
    /// apps take).
    pub fn to_std(self, t: Instant) -> std::time::Instant {
        self.base + Duration::from_nanos(t.as_nanos())
    }
}

/// What the virtio-net header says about a received frame's checksum.
pub fn rx_offload(h: &VnetHdr) -> RxOffload {
    if h.needs_csum() {
        RxOffload::Partial
    } else if h.flags & F_DATA_VALID != 0 {
        RxOffload::Verified
    } else {
        RxOffload::None
    }
}

/// What the driver does with a GSO frame (a kernel peer's up-to-64 KiB
/// TCP super-segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoRx {
    /// Hand it to the stack whole, as Linux's GRO would: the stack takes
    /// IP packets up to 64 KiB and TCP segments longer than its MSS.
    Whole,
    /// Cut it into MSS-sized wire segments first (`offload::segment`).
    Segment,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct DriverStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_gso: u64,
    pub rx_partial: u64,
    pub rx_verified: u64,
    pub rx_segments: u64,
    pub rx_bad_offload: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub tx_full: u64,
    pub turns: u64,
    pub waits: u64,
}

/// A device the driver can run a stack on.
pub trait Port {
    /// Hands up to `max` received frames to `f` with their virtio-net
    /// header; returns how many.
    fn recv(&mut self, max: usize, f: impl FnMut(&[u8], &VnetHdr)) -> usize;
    /// Room for one more frame now (after a flush if needed).
    fn has_room(&mut self) -> bool {
        true
    }
    /// Queues one plain frame (a copy); false if the device dropped it.
    fn send(&mut self, frame: &[u8]) -> bool;
    /// Hands queued frames to the wire.
    fn flush(&mut self) {}
    /// Blocks until a frame may have arrived or `timeout` passed.
    fn wait(&mut self, timeout: Duration) {
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
    }
    /// Called with the time at the start of every turn.
    fn tick(&mut self, _now: Instant) {}
    /// When the device wants a turn even if nothing arrives.
    fn next_wake(&self) -> Option<Instant> {
        None
    }
}

/// The AF_PACKET device (TPACKET_V3 RX ring read in place, TX ring).
pub struct AfPacketPort {
    pub dev: AfPacket,
    pub tx_errors: u64,
}

impl AfPacketPort {
    pub fn new(dev: AfPacket) -> AfPacketPort {
        AfPacketPort { dev, tx_errors: 0 }
    }
}

impl Port for AfPacketPort {
    fn recv(&mut self, max: usize, f: impl FnMut(&[u8], &VnetHdr)) -> usize {
        self.dev.recv_batch(max, f)
    }

    fn has_room(&mut self) -> bool {
        if self.dev.tx_has_room() {
            return true;
        }
        self.dev.flush();
        self.dev.tx_has_room()
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        match self.dev.send(frame, &VnetHdr::default()) {
            Ok(()) => true,
            Err(TxError::Full) => false,
            Err(_) => {
                self.tx_errors += 1;
                false
            }
        }
    }

    fn flush(&mut self) {
        self.dev.flush();
    }

    fn wait(&mut self, timeout: Duration) {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let fd = self.dev.fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let _ = poll(&mut fds, Some(&ts));
    }
}

/// One end of ring's in-memory pair.
pub struct MemDev {
    pub port: MemPort,
}

impl Port for MemDev {
    fn recv(&mut self, max: usize, mut f: impl FnMut(&[u8], &VnetHdr)) -> usize {
        let mut n = 0;
        while n < max {
            let Some(p) = self.port.recv() else { break };
            f(p.data(), p.offload());
            n += 1;
        }
        n
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        self.port.send(Packet::from_slice(frame))
    }
}

/// One end of the in-memory pair with ring's impairment app on what it
/// transmits: stack → impair → link → pair → the other stack.
pub struct ImpairedMem {
    pub port: MemPort,
    pub impair: Impair,
    link: Link,
    clock: Clock,
    now: Instant,
    pub trace: bool,
}

/// A one-line summary of a TCP/IPv4 frame (for traces).
pub fn summary(f: &[u8]) -> String {
    if f.len() < 54 || f[12..14] != [8, 0] || f[23] != 6 {
        return format!("{} bytes", f.len());
    }
    let ihl = usize::from(f[14] & 15) * 4;
    let t = &f[14 + ihl..];
    let tot = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let doff = usize::from(t[12] >> 4) * 4;
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    format!(
        "{}->{} seq {} ack {} len {} flags {:#04x} win {} optlen {} opts {:02x?}",
        u16::from_be_bytes([t[0], t[1]]),
        u16::from_be_bytes([t[2], t[3]]),
        be32(&t[4..]),
        be32(&t[8..]),
        tot - ihl - doff,
        t[13],
        u16::from_be_bytes([t[14], t[15]]),
        doff - 20,
        &t[20..doff]
    )
}

/// How long ring's impairment holds a packet back for reordering when no
/// other packet follows it (its `HOLD_TIMEOUT`).
pub const IMPAIR_HOLD: Duration = Duration::from_millis(10);

impl ImpairedMem {
    pub fn new(port: MemPort, impair: Impair, clock: Clock) -> ImpairedMem {
        ImpairedMem {
            port,
            impair,
            link: Link::new(),
            clock,
            now: Instant::ZERO,
            trace: false,
        }
    }

    fn drain(&mut self) {
        while let Some(p) = self.link.receive() {
            self.port.send(p);
        }
    }
}

impl Port for ImpairedMem {
    fn recv(&mut self, max: usize, mut f: impl FnMut(&[u8], &VnetHdr)) -> usize {
        let mut n = 0;
        while n < max {
            let Some(p) = self.port.recv() else { break };
            f(p.data(), p.offload());
            n += 1;
        }
        n
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        if self.trace {
            eprintln!("TX {:?} {}", self.now, summary(frame));
        }
        let t = self.clock.to_std(self.now);
        self.impair
            .process(Packet::from_slice(frame), t, &mut self.link);
        self.drain();
        true
    }

    fn tick(&mut self, now: Instant) {
        self.now = now;
        self.impair.release(self.clock.to_std(now), &mut self.link);
        self.drain();
    }

    fn next_wake(&self) -> Option<Instant> {
        (self.impair.queued() > 0).then(|| self.now + IMPAIR_HOLD)
    }
}

/// A stack on a device.
pub struct Driver<P: Port> {
    pub stack: Stack,
    pub port: P,
    pub gso: GsoRx,
    pub clock: Clock,
    pub stats: DriverStats,
    /// Frames taken from the device per turn.
    pub rx_batch: usize,
    tx_blocked: bool,
}

/// A stack with one IPv4 address and its prefix route.
pub fn new_stack(mac: [u8; 6], mtu: u16, addr: Ipv4Addr, prefix: u8, seed: u64) -> Stack {
    let mut c = StackConfig::new(Mac(mac));
    c.mtu = mtu;
    c.seed = seed;
    c.record_events = false;
    let mut s = Stack::new(c);
    s.add_ipv4_address(addr, prefix, Instant::ZERO)
        .expect("add address");
    s
}

impl<P: Port> Driver<P> {
    pub fn new(stack: Stack, port: P, clock: Clock) -> Driver<P> {
        Driver {
            stack,
            port,
            gso: GsoRx::Whole,
            clock,
            stats: DriverStats::default(),
            rx_batch: RX_BATCH,
            tx_blocked: false,
        }
    }

    /// One turn at `now`: receive a batch, run due timers, transmit.
    /// Returns whether any frame moved.
    pub fn turn(&mut self, now: Instant) -> bool {
        self.stats.turns += 1;
        self.port.tick(now);
        let (stack, stats, gso) = (&mut self.stack, &mut self.stats, self.gso);
        let n = self.port.recv(self.rx_batch, |frame, hdr| {
            deliver(stack, stats, gso, frame, hdr, now);
        });
        if self.stack.next_deadline().is_some_and(|d| d <= now) {
            self.stack.on_timer(now);
        }
        let m = self.transmit(now);
        n + m > 0
    }

    /// Everything the stack has to send, straight into the device's TX
    /// (the stack lends each frame; the device copies it into its ring).
    pub fn transmit(&mut self, now: Instant) -> usize {
        let mut n = 0;
        self.tx_blocked = false;
        loop {
            if !self.port.has_room() {
                self.stats.tx_full += 1;
                self.tx_blocked = true;
                break;
            }
            let port = &mut self.port;
            let Some((ok, len)) = self.stack.transmit_with(now, |f| (port.send(f), f.len())) else {
                break;
            };
            if ok {
                n += 1;
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
            } else {
                self.stats.tx_dropped += 1;
            }
        }
        self.port.flush();
        n
    }

    /// When the driver must turn again even if no frame arrives.
    pub fn next_wake(&mut self) -> Option<Instant> {
        match (self.stack.next_deadline(), self.port.next_wake()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sleeps on the device until a frame, the next timer, or `max`.
    pub fn idle(&mut self, now: Instant, max: Duration) {
        let mut t = max;
        if let Some(d) = self.next_wake() {
            t = t.min(d.saturating_since(now));
        }
        if self.tx_blocked {
            t = t.min(Duration::from_micros(100));
        }
        if !t.is_zero() {
            self.stats.waits += 1;
            self.port.wait(t);
        }
    }

    /// Drives the stack in real time, calling `app` after every turn,
    /// until `app` returns `Some`; panics if that takes longer than
    /// `limit`.
    pub fn run<T>(
        &mut self,
        limit: Duration,
        what: &str,
        mut app: impl FnMut(&mut Stack, Instant) -> Option<T>,
    ) -> T {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let now = self.clock.now();
            let mut busy = self.turn(now);
            if let Some(v) = app(&mut self.stack, now) {
                self.transmit(now);
                return v;
            }
            busy |= self.transmit(now) > 0;
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not done within {limit:?} (driver: {:?})",
                self.stats
            );
            if !busy {
                self.idle(now, Duration::from_millis(2));
            }
        }
    }

    /// Drives the stack in real time for `d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = std::time::Instant::now() + d;
        self.run(d + Duration::from_secs(1), "run_for", |_, _| {
            (std::time::Instant::now() >= end).then_some(())
        });
    }
}

fn deliver(
    stack: &mut Stack,
    stats: &mut DriverStats,
    gso: GsoRx,
    frame: &[u8],
    hdr: &VnetHdr,
    now: Instant,
) {
    stats.rx_frames += 1;
    stats.rx_bytes += frame.len() as u64;
    if hdr.is_gso() {
        stats.rx_gso += 1;
        if gso == GsoRx::Segment {
            let mut p = Packet::from_slice(frame);
            *p.offload_mut() = *hdr;
            // The segments get full checksums computed here, over data
            // the local kernel handed over: as trusted as a partial one.
            let r = offload::segment(&p, |q| {
                stats.rx_segments += 1;
                stack.receive(q.data(), RxOffload::Verified, now);
            });
            if r.is_err() {
                stats.rx_bad_offload += 1;
            }
            return;
        }
    }
    let off = rx_offload(hdr);
    match off {
        RxOffload::Partial => stats.rx_partial += 1,
        RxOffload::Verified => stats.rx_verified += 1,
        RxOffload::None => {}
    }
    stack.receive(frame, off, now);
}

// ---------------------------------------------------------------------------
// Test data and bulk TCP endpoints.
// ---------------------------------------------------------------------------

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Byte `pos..pos + out.len()` of the pseudo-random stream `seed`.
pub fn fill(seed: u64, pos: u64, out: &mut [u8]) {
    let mut i = 0;
    while i < out.len() {
        let p = pos + i as u64;
        let w = splitmix(seed ^ (p / 8).wrapping_mul(0x2545_f491_4f6c_dd1d)).to_le_bytes();
        let k = (p % 8) as usize;
        let n = (8 - k).min(out.len() - i);
        out[i..i + n].copy_from_slice(&w[k..k + n]);
        i += n;
    }
}

/// The whole stream `seed` of `len` bytes.
pub fn stream(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(seed, 0, &mut v);
    v
}

/// Writes `data` on a shunt TCP socket as fast as it takes it, then
/// shuts down the write side (FIN).
pub struct TcpWriter<'a> {
    pub id: SocketId,
    pub data: &'a [u8],
    pub sent: usize,
    pub shut: bool,
}

impl<'a> TcpWriter<'a> {
    pub fn new(id: SocketId, data: &'a [u8]) -> TcpWriter<'a> {
        TcpWriter {
            id,
            data,
            sent: 0,
            shut: false,
        }
    }

    /// True once everything is written and the FIN queued.
    pub fn pump(&mut self, s: &mut Stack, now: Instant) -> bool {
        while self.sent < self.data.len() {
            let (id, rest) = (self.id, &self.data[self.sent..]);
            match s.tcp(now, |t, cx| t.send(cx, id, rest, SendFlags::default())) {
                Ok(n) => self.sent += n,
                Err(Errno::EAGAIN) => return false,
                Err(e) => panic!("send: {e:?} after {} bytes", self.sent),
            }
        }
        if !self.shut {
            let id = self.id;
            s.tcp(now, |t, cx| t.shutdown(cx, id, Shutdown::Write))
                .expect("shutdown");
            self.shut = true;
        }
        true
    }
}

/// Reads a shunt TCP socket to EOF, keeping what it read.
pub struct TcpReader {
    pub id: SocketId,
    pub data: Vec<u8>,
    pub eof: bool,
    buf: Vec<u8>,
}

impl TcpReader {
    pub fn new(id: SocketId, expect: usize) -> TcpReader {
        TcpReader {
            id,
            data: Vec::with_capacity(expect),
            eof: false,
            buf: vec![0u8; 256 * 1024],
        }
    }

    /// True at EOF.
    pub fn pump(&mut self, s: &mut Stack, now: Instant) -> bool {
        while !self.eof {
            let (id, buf) = (self.id, &mut self.buf);
            match s.tcp(now, |t, cx| t.recv(cx, id, buf, RecvFlags::default())) {
                Ok(0) => self.eof = true,
                Ok(n) => self.data.extend_from_slice(&self.buf[..n]),
                Err(Errno::EAGAIN) => return false,
                Err(e) => panic!("recv: {e:?} after {} bytes", self.data.len()),
            }
        }
        true
    }
}
