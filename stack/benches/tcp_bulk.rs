//! Bulk TCP in memory, shunt against smoltcp, in one run and one thread.
//!
//! Two shunt stacks, then two smoltcp stacks (an `Interface` and a TCP
//! socket each), are joined back to back in memory: shunt's frames go
//! from one stack's `transmit_with` straight into the other's `receive`,
//! all the frames ready in one direction as one `receive_burst` (what a
//! driver does with a batch of received frames);
//! smoltcp's are written by its interface into a queue of recycled frame
//! buffers that the other interface reads (its device API). Either way a
//! payload byte is copied once from the send buffer onto "the wire".
//! One side writes `SHUNT_BENCH_MIB`
//! MiB (default 1024) and closes, the other reads to EOF; both stacks
//! and both applications run in this one thread, so bytes over the
//! process's CPU time is Gbit/s per CPU core.
//!
//! Same conditions for both: 1448 payload bytes per segment (shunt's
//! MSS with timestamps on a 1500-byte MTU; smoltcp sends no timestamps,
//! so its link MTU is set 12 bytes lower for the same payload), a 256 KiB
//! receive window and send buffer (shunt: SO_RCVBUF/SO_SNDBUF 128 KiB,
//! which Linux semantics double; smoltcp: 256 KiB socket buffers),
//! Nagle on, delayed ACKs on, every checksum computed on send and
//! verified on receive, real monotonic time.
//!
//! Prints `BENCH tcp-bulk-core-shunt`, `BENCH tcp-bulk-core-smoltcp` and
//! `RATIO tcp-bulk-core-vs-smoltcp` (`cargo bench -p shunt-stack --bench
//! tcp_bulk`).

use std::collections::VecDeque;
use std::time::{Duration, Instant as StdInstant};

use shunt_stack::tcp::{Domain, Errno, RecvFlags, SendFlags, SockAddr, SockOpt, TcpState};
use shunt_stack::time::Instant;
use shunt_stack::{Ipv4Addr, Mac, RxOffload, Stack, StackConfig};

const A: [u8; 4] = [192, 0, 2, 1];
const B: [u8; 4] = [192, 0, 2, 2];
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
/// Receive window and send buffer, bytes.
const WINDOW: usize = 256 * 1024;
/// Application write and read size.
const CHUNK: usize = 64 * 1024;
/// Payload bytes per full segment.
const MSS: usize = 1448;
const PORT: u16 = 5001;
/// A run that takes longer than this is a stall.
const LIMIT: Duration = Duration::from_secs(120);

/// One direction of the in-memory wire: frames in order, buffers reused.
#[derive(Default)]
struct Wire {
    q: VecDeque<Vec<u8>>,
    free: Vec<Vec<u8>>,
    frames: u64,
}

fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

struct Result {
    bytes: u64,
    cpu: Duration,
    wall: Duration,
    frames: u64,
}

impl Result {
    fn gbit(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.cpu.as_secs_f64() / 1e9
    }
}

// ---------------------------------------------------------------------------
// shunt
// ---------------------------------------------------------------------------

fn shunt_stack(mac: [u8; 6], addr: [u8; 4]) -> Stack {
    let mut c = StackConfig::new(Mac(mac));
    c.record_events = false;
    c.seed = u64::from(mac[5]);
    let mut s = Stack::new(c);
    s.add_ipv4_address(Ipv4Addr::from(addr), 24, Instant::ZERO)
        .unwrap();
    s
}

fn sockaddr(a: [u8; 4], port: u16) -> SockAddr {
    SockAddr::from(std::net::SocketAddr::from((a, port)))
}

fn shunt_bulk(total: u64) -> Result {
    let mut a = shunt_stack(MAC_A, A);
    let mut b = shunt_stack(MAC_B, B);
    let mut frames = 0u64;
    let start = StdInstant::now();
    let now = || Instant::from_nanos(start.elapsed().as_nanos() as u64);
    let half = (WINDOW / 2) as i32;
    let t0 = now();
    let l = b.tcp(t0, |t, cx| {
        let l = t.socket(Domain::V4);
        t.set_option(cx, l, SockOpt::RcvBuf, half).unwrap();
        t.set_option(cx, l, SockOpt::SndBuf, half).unwrap();
        t.bind(cx, l, sockaddr(B, PORT)).unwrap();
        t.listen(cx, l, 4).unwrap();
        l
    });
    let c = a.tcp(t0, |t, cx| {
        let c = t.socket(Domain::V4);
        t.set_option(cx, c, SockOpt::RcvBuf, half).unwrap();
        t.set_option(cx, c, SockOpt::SndBuf, half).unwrap();
        assert_eq!(t.connect(cx, c, sockaddr(B, PORT)), Err(Errno::EINPROGRESS));
        c
    });
    let src = vec![0x5au8; CHUNK];
    let mut sink = vec![0u8; CHUNK];
    let (mut sent, mut got, mut shut, mut eof) = (0u64, 0u64, false, false);
    let mut server = None;
    let cpu0 = cpu_time();
    let wall0 = StdInstant::now();
    while !eof {
        let t = now();
        // The writer.
        if a.tcp_layer().state(c) == Ok(TcpState::Established) {
            while sent < total {
                let n = ((total - sent) as usize).min(CHUNK);
                match a.tcp(t, |tc, cx| tc.send(cx, c, &src[..n], SendFlags::default())) {
                    Ok(k) => sent += k as u64,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("shunt send: {e:?}"),
                }
            }
            if sent == total && !shut {
                a.tcp(t, |tc, cx| {
                    tc.shutdown(cx, c, shunt_stack::tcp::Shutdown::Write)
                })
                .unwrap();
                shut = true;
            }
        }
        // A -> B: each frame lent by A straight to B (no copy: shunt's
        // frames are built in its own buffers, where smoltcp builds them
        // in the device's; either way one copy from the send buffer).
        b.receive_burst(t, |b| {
            while a
                .transmit_with(t, |f| b.receive(f, RxOffload::None, t))
                .is_some()
            {
                frames += 1;
            }
        });
        // The reader.
        if server.is_none() {
            server = b.tcp(t, |tc, cx| tc.accept(cx, l)).ok().map(|(s, _)| s);
        }
        if let Some(s) = server {
            loop {
                match b.tcp(t, |tc, cx| tc.recv(cx, s, &mut sink, RecvFlags::default())) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(k) => got += k as u64,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("shunt recv: {e:?}"),
                }
            }
        }
        // B -> A.
        a.receive_burst(t, |a| {
            while b
                .transmit_with(t, |f| a.receive(f, RxOffload::None, t))
                .is_some()
            {
                frames += 1;
            }
        });
        for s in [&mut a, &mut b] {
            if s.next_deadline().is_some_and(|d| d <= t) {
                s.on_timer(t);
            }
        }
        assert!(wall0.elapsed() < LIMIT, "shunt stalled: {got} of {total}");
    }
    let r = Result {
        bytes: got,
        cpu: cpu_time() - cpu0,
        wall: wall0.elapsed(),
        frames,
    };
    assert_eq!(got, total);
    let info = a.tcp_layer().tcp_info(c, now()).unwrap();
    assert_eq!(info.snd_mss as usize, MSS, "shunt MSS");
    assert_eq!(a.tcp_counter(shunt_stack::tcp::TcpCounter::RetransSegs), 0);
    r
}

// ---------------------------------------------------------------------------
// smoltcp
// ---------------------------------------------------------------------------

mod smol {
    use super::*;
    use smoltcp::iface::{Config, Interface, PollResult, SocketSet};
    use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant as SmolInstant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

    /// One end of the wire pair.
    pub struct End<'a> {
        rx: &'a mut Wire,
        tx: &'a mut Wire,
    }

    pub struct Rx<'a> {
        buf: Vec<u8>,
        free: &'a mut Vec<Vec<u8>>,
    }

    pub struct Tx<'a> {
        wire: &'a mut Wire,
    }

    impl phy::RxToken for Rx<'_> {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            let r = f(&self.buf);
            self.free.push(self.buf);
            r
        }
    }

    impl phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut b = self.wire.free.pop().unwrap_or_default();
            b.resize(len, 0);
            let r = f(&mut b);
            self.wire.q.push_back(b);
            self.wire.frames += 1;
            r
        }
    }

    impl Device for End<'_> {
        type RxToken<'b>
            = Rx<'b>
        where
            Self: 'b;
        type TxToken<'b>
            = Tx<'b>
        where
            Self: 'b;

        fn receive(&mut self, _t: SmolInstant) -> Option<(Rx<'_>, Tx<'_>)> {
            let buf = self.rx.q.pop_front()?;
            Some((
                Rx {
                    buf,
                    free: &mut self.rx.free,
                },
                Tx { wire: self.tx },
            ))
        }

        fn transmit(&mut self, _t: SmolInstant) -> Option<Tx<'_>> {
            Some(Tx { wire: self.tx })
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut c = DeviceCapabilities::default();
            c.medium = Medium::Ethernet;
            // 1448 payload bytes per segment, as shunt's with timestamps.
            c.max_transmission_unit = 14 + 20 + 20 + MSS;
            c
        }
    }

    fn iface(mac: [u8; 6], addr: [u8; 4], dev: &mut End<'_>, now: SmolInstant) -> Interface {
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = u64::from(mac[5]);
        let mut i = Interface::new(cfg, dev, now);
        i.update_ip_addrs(|a| {
            a.push(IpCidr::new(
                IpAddress::v4(addr[0], addr[1], addr[2], addr[3]),
                24,
            ))
            .unwrap();
        });
        i
    }

    fn socket() -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; WINDOW]),
            tcp::SocketBuffer::new(vec![0; WINDOW]),
        )
    }

    /// Polls until nothing more happens (each poll sends at most one
    /// segment per socket).
    fn poll(i: &mut Interface, t: SmolInstant, dev: &mut End<'_>, s: &mut SocketSet<'_>) {
        while i.poll(t, dev, s) != PollResult::None {}
    }

    pub fn bulk(total: u64) -> Result {
        let (mut ab, mut ba) = (Wire::default(), Wire::default());
        let start = StdInstant::now();
        let now = || SmolInstant::from_micros(start.elapsed().as_micros() as i64);
        let t0 = now();
        let mut ia = iface(
            MAC_A,
            A,
            &mut End {
                rx: &mut ba,
                tx: &mut ab,
            },
            t0,
        );
        let mut ib = iface(
            MAC_B,
            B,
            &mut End {
                rx: &mut ab,
                tx: &mut ba,
            },
            t0,
        );
        let mut sa = SocketSet::new(vec![]);
        let mut sb = SocketSet::new(vec![]);
        let mut server = socket();
        server.listen(PORT).unwrap();
        let hb = sb.add(server);
        let mut client = socket();
        client
            .connect(
                ia.context(),
                (IpAddress::v4(B[0], B[1], B[2], B[3]), PORT),
                49152,
            )
            .unwrap();
        let ha = sa.add(client);
        let src = vec![0x5au8; CHUNK];
        let mut sink = vec![0u8; CHUNK];
        let (mut sent, mut got, mut shut, mut eof) = (0u64, 0u64, false, false);
        let cpu0 = cpu_time();
        let wall0 = StdInstant::now();
        while !eof {
            let t = now();
            {
                let c = sa.get_mut::<tcp::Socket>(ha);
                while sent < total && c.can_send() {
                    let n = ((total - sent) as usize).min(CHUNK);
                    match c.send_slice(&src[..n]) {
                        Ok(0) => break,
                        Ok(k) => sent += k as u64,
                        Err(e) => panic!("smoltcp send: {e:?}"),
                    }
                }
                if sent == total && !shut {
                    c.close();
                    shut = true;
                }
            }
            poll(
                &mut ia,
                t,
                &mut End {
                    rx: &mut ba,
                    tx: &mut ab,
                },
                &mut sa,
            );
            poll(
                &mut ib,
                t,
                &mut End {
                    rx: &mut ab,
                    tx: &mut ba,
                },
                &mut sb,
            );
            {
                let s = sb.get_mut::<tcp::Socket>(hb);
                while s.can_recv() {
                    match s.recv_slice(&mut sink) {
                        Ok(0) => break,
                        Ok(k) => got += k as u64,
                        Err(e) => panic!("smoltcp recv: {e:?}"),
                    }
                }
                if got == total && !s.may_recv() {
                    eof = true;
                }
            }
            // The reader's window updates go out now.
            poll(
                &mut ib,
                t,
                &mut End {
                    rx: &mut ab,
                    tx: &mut ba,
                },
                &mut sb,
            );
            assert!(wall0.elapsed() < LIMIT, "smoltcp stalled: {got} of {total}");
        }
        Result {
            bytes: got,
            cpu: cpu_time() - cpu0,
            wall: wall0.elapsed(),
            frames: ab.frames + ba.frames,
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either: a short run then.
    let quick = std::env::args().all(|a| a != "--bench");
    let mib: u64 = std::env::var("SHUNT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 8 } else { 1024 });
    let total = mib << 20;
    // For profiling one of them: SHUNT_BENCH_ONLY=shunt|smoltcp.
    let only = std::env::var("SHUNT_BENCH_ONLY").unwrap_or_default();
    if only == "shunt" {
        let s = shunt_bulk(total);
        println!("BENCH tcp-bulk-core-shunt {:.2} Gbit/s", s.gbit());
        return;
    }
    if only == "smoltcp" {
        let m = smol::bulk(total);
        println!("BENCH tcp-bulk-core-smoltcp {:.2} Gbit/s", m.gbit());
        return;
    }
    // Warm up both (page faults, caches), then measure.
    shunt_bulk(total.min(16 << 20));
    smol::bulk(total.min(16 << 20));
    let s = shunt_bulk(total);
    let m = smol::bulk(total);
    for (name, r) in [("shunt", &s), ("smoltcp", &m)] {
        eprintln!(
            "{name}: {} MiB in {:.3} s CPU ({:.3} s wall), {} frames",
            r.bytes >> 20,
            r.cpu.as_secs_f64(),
            r.wall.as_secs_f64(),
            r.frames
        );
    }
    println!("BENCH tcp-bulk-core-shunt {:.2} Gbit/s", s.gbit());
    println!("BENCH tcp-bulk-core-smoltcp {:.2} Gbit/s", m.gbit());
    println!("RATIO tcp-bulk-core-vs-smoltcp {:.2}", s.gbit() / m.gbit());
}
