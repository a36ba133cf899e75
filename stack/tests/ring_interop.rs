//! Interop with Linux (run as root): shunt's stack on ring's AF_PACKET
//! device in namespace `t`, which has no kernel address (192.0.2.1/24 is
//! the stack's), and the kernel in namespace `p` (192.0.2.2/24), over a
//! veth with offloads left on: the kernel sends partial checksums and GSO
//! frames up to 64 KiB, which the driver reads from the virtio-net header.
//!
//! Tests: the kernel's `ping`; TCP 100 MiB each way with SHA-256 equal on
//! both ends and an orderly close (FIN both ways, no RST on either side);
//! UDP echo (fragmented datagrams too); connections to closed ports get a
//! RST and ECONNREFUSED, both ways. Each test is bounded in time.
//!
//! Sizes: 100 MiB in release builds, 16 MiB in debug ones;
//! `SHUNT_RING_MIB=N` sets it. Throughput goes to stderr
//! (`cargo test --release -p shunt-stack --test ring_interop -- --nocapture`).

mod ring_driver;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use ring_driver::sha256::{Sha256, hex};
use ring_driver::*;
use shunt_ring::afpacket::{AfPacket, AfPacketOptions};
use shunt_ring::netns;
use shunt_shim_tests::testbed::Testbed;
use shunt_stack::tcp::{Domain, Errno, SockAddr, SocketId, TcpCounter, TcpState};
use shunt_stack::{Ipv4Addr, RecvFlags, Stack};

/// The stack's address (namespace t).
const T: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The kernel's (namespace p).
const P: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// What a whole test may take.
const LIMIT: Duration = Duration::from_secs(60);

/// The tests share two cores: one at a time, so the figures mean something.
static SERIAL: Mutex<()> = Mutex::new(());

fn sock(a: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(a.into()), port)
}

fn mib() -> usize {
    let default = if cfg!(debug_assertions) { 16 } else { 100 };
    std::env::var("SHUNT_RING_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

struct Bed {
    drv: Driver<AfPacketPort>,
    p: String,
    // Dropped last: removes the namespaces.
    _tb: Testbed,
}

fn bed(seed: u64) -> Bed {
    let mut tb = Testbed::new();
    let t = tb.ns("t");
    let p = tb.ns("p");
    tb.veth(&t, "veth0", &p, "veth1");
    tb.addr(&p, "veth1", "192.0.2.2/24");
    let opts = AfPacketOptions {
        rx_block_size: 256 << 10,
        rx_block_count: 64,
        ..AfPacketOptions::default()
    };
    let dev = netns::run_in(&t, move || AfPacket::open("veth0", &opts))
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("{e}"));
    let stack = new_stack(dev.mac(), dev.mtu() as u16, T, 24, seed);
    let drv = Driver::new(stack, AfPacketPort::new(dev), Clock::new());
    Bed { drv, p, _tb: tb }
}

/// Runs `f` on a thread inside namespace `ns` (sockets it makes live there).
fn spawn_in<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> JoinHandle<R> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        netns::enter(&ns).expect("enter namespace");
        f()
    })
}

/// `Tcp:` of this thread's namespace's /proc/net/snmp, by name.
fn kernel_tcp_snmp() -> Vec<(String, i64)> {
    let s = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default();
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("Tcp:")).collect();
    if lines.len() < 2 {
        return Vec::new();
    }
    lines[0]
        .split_whitespace()
        .skip(1)
        .zip(lines[1].split_whitespace().skip(1))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
        .collect()
}

fn snmp_delta(before: &[(String, i64)], after: &[(String, i64)], name: &str) -> i64 {
    let get = |v: &[(String, i64)]| v.iter().find(|(k, _)| k == name).map_or(0, |(_, x)| *x);
    get(after) - get(before)
}

fn gbit(bytes: usize, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}

fn no_resets(s: &Stack) {
    for c in [
        TcpCounter::OutRsts,
        TcpCounter::EstabResets,
        TcpCounter::AttemptFails,
        TcpCounter::TcpAbortOnData,
        TcpCounter::TcpAbortOnClose,
    ] {
        assert_eq!(s.tcp_counter(c), 0, "shunt {}", c.name());
    }
}

/// The socket is gone or closed on our side with nothing left to
/// acknowledge (no FIN of ours outstanding, none of the peer's pending).
fn closed(s: &Stack, id: SocketId) -> bool {
    !matches!(
        s.tcp_layer().state(id),
        Ok(TcpState::Established
            | TcpState::LastAck
            | TcpState::Closing
            | TcpState::FinWait1
            | TcpState::CloseWait)
    )
}

#[test]
fn kernel_ping_gets_echo_replies_and_shunt_pings_the_kernel() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = bed(1);
    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.p,
            "ping",
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "192.0.2.1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ping");
    let mut ping = Some(ping);
    let out = b.drv.run(Duration::from_secs(20), "kernel ping", |_, _| {
        let c = ping.as_mut()?;
        match c.try_wait() {
            Ok(Some(_)) => ping.take().map(|c| c.wait_with_output().unwrap()),
            _ => None,
        }
    });
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "ping failed: {text}");
    assert!(text.contains("3 packets transmitted, 3 received"), "{text}");
    // And the other way: shunt's echo requests, the kernel's replies.
    let mut got = Vec::new();
    for seq in 1..=3u16 {
        let now = b.drv.clock.now();
        b.drv
            .stack
            .send_echo_request(P, 0x5eed, seq, b"shunt ping", now)
            .expect("echo request");
        let r = b.drv.run(Duration::from_secs(5), "echo reply", |s, _| {
            s.poll_echo_reply()
        });
        assert_eq!((r.from, r.ident, r.seq), (P, 0x5eed, seq));
        assert_eq!(r.data, b"shunt ping");
        got.push(r.seq);
    }
    assert_eq!(got, [1, 2, 3]);
}

/// GSO frames handed to the stack whole (it takes TCP segments longer
/// than its MSS, as Linux does after GRO).
#[test]
fn tcp_kernel_to_shunt_bulk_sha256_and_orderly_close() {
    kernel_to_shunt(GsoRx::Whole);
}

/// GSO frames cut into wire-sized segments by ring's `offload::segment`
/// before the stack sees them.
#[test]
fn tcp_kernel_to_shunt_bulk_with_gso_frames_segmented() {
    kernel_to_shunt(GsoRx::Segment);
}

fn kernel_to_shunt(gso: GsoRx) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = bed(2);
    b.drv.gso = gso;
    let len = mib() << 20;
    let now = b.drv.clock.now();
    let l = b.drv.stack.tcp(now, |t, cx| {
        let l = t.socket(Domain::V4);
        t.bind(cx, l, SockAddr::from(sock(T, 5001))).unwrap();
        t.listen(cx, l, 8).unwrap();
        l
    });
    // The kernel: connect, write everything, FIN, wait for shunt's FIN.
    let kernel = spawn_in(&b.p, move || {
        let data = stream(0xd00d, len);
        let sum = Sha256::digest(&data);
        let before = kernel_tcp_snmp();
        let mut c = TcpStream::connect_timeout(&sock(T, 5001), Duration::from_secs(10))
            .expect("kernel connect");
        c.set_write_timeout(Some(Duration::from_secs(40))).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        let t0 = std::time::Instant::now();
        c.write_all(&data).expect("kernel write");
        c.shutdown(std::net::Shutdown::Write)
            .expect("kernel shutdown");
        let mut rest = Vec::new();
        let eof = c.read_to_end(&mut rest);
        let took = t0.elapsed();
        drop(c);
        let after = kernel_tcp_snmp();
        (sum, eof.map(|_| rest.len()), took, before, after)
    });
    let mut conn: Option<TcpReader> = None;
    let mut t_first = None;
    let mut t_eof = None;
    let mut closed_at = None;
    let mut kernel = Some(kernel);
    let (sum, eof, _ktook, before, after) = b.drv.run(LIMIT, "kernel to shunt", |s, now| {
        if conn.is_none() {
            if let Ok((id, _)) = s.tcp(now, |t, cx| t.accept(cx, l)) {
                conn = Some(TcpReader::new(id, len));
            }
        }
        if let Some(r) = conn.as_mut() {
            if !r.eof {
                let at_eof = r.pump(s, now);
                if t_first.is_none() && !r.data.is_empty() {
                    t_first = Some(std::time::Instant::now());
                }
                if at_eof {
                    t_eof = Some(std::time::Instant::now());
                    let id = r.id;
                    s.tcp(now, |t, cx| t.close(cx, id));
                    closed_at = Some(now);
                }
            }
        }
        let k = kernel.as_ref()?;
        if !k.is_finished() {
            return None;
        }
        let r = conn.as_ref()?;
        if !closed(s, r.id) {
            return None;
        }
        kernel
            .take()
            .map(|k| k.join().expect("kernel side panicked"))
    });
    let r = conn.unwrap();
    let took = t_eof.unwrap() - t_first.unwrap();
    eprintln!(
        "kernel -> shunt (GSO frames {gso:?}): {} MiB in {:.3} s: {:.2} Gbit/s (driver {:?})",
        len >> 20,
        took.as_secs_f64(),
        gbit(len, took),
        b.drv.stats
    );
    assert_eq!(r.data.len(), len, "bytes received");
    assert_eq!(hex(&Sha256::digest(&r.data)), hex(&sum), "SHA-256");
    assert_eq!(eof.expect("kernel read after its FIN"), 0, "kernel got EOF");
    assert!(b.drv.stats.rx_gso > 0, "the kernel sent no GSO frame");
    if gso == GsoRx::Segment {
        assert!(b.drv.stats.rx_segments > b.drv.stats.rx_gso);
    }
    no_resets(&b.drv.stack);
    for c in ["OutRsts", "EstabResets", "AttemptFails"] {
        assert_eq!(snmp_delta(&before, &after, c), 0, "kernel {c}");
    }
    assert_eq!(b.drv.stack.tcp_counter(TcpCounter::PassiveOpens), 1);
}

#[test]
fn tcp_shunt_to_kernel_bulk_sha256_and_orderly_close() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = bed(3);
    let len = mib() << 20;
    let data = stream(0xbeef, len);
    let sum = Sha256::digest(&data);
    let listener = netns::run_in(&b.p, || TcpListener::bind(sock(P, 5002)))
        .expect("enter namespace")
        .expect("kernel bind");
    // The kernel: accept, read to EOF, then close (its FIN).
    let kernel = spawn_in(&b.p, move || {
        let before = kernel_tcp_snmp();
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut c = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "kernel accept");
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("kernel accept: {e}"),
            }
        };
        c.set_nonblocking(false).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        let mut got = Vec::with_capacity(len);
        let mut buf = vec![0u8; 1 << 20];
        let mut t0 = None;
        loop {
            let n = c.read(&mut buf).expect("kernel read");
            if n == 0 {
                break;
            }
            t0.get_or_insert_with(std::time::Instant::now);
            got.extend_from_slice(&buf[..n]);
        }
        let took = t0.map(|t| t.elapsed());
        drop(c);
        let after = kernel_tcp_snmp();
        (got, took, before, after)
    });
    let now = b.drv.clock.now();
    let id = b.drv.stack.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        assert_eq!(
            t.connect(cx, c, SockAddr::from(sock(P, 5002))),
            Err(Errno::EINPROGRESS)
        );
        c
    });
    let mut w = TcpWriter::new(id, &data);
    let mut r = TcpReader::new(id, 0);
    let mut kernel = Some(kernel);
    let mut close_sent = false;
    let (got, took, before, after) = b.drv.run(LIMIT, "shunt to kernel", |s, now| {
        if s.tcp_layer().state(id) == Ok(TcpState::SynSent) {
            return None;
        }
        if w.pump(s, now) && r.pump(s, now) && !close_sent {
            s.tcp(now, |t, cx| t.close(cx, id));
            close_sent = true;
        }
        if !close_sent || !kernel.as_ref()?.is_finished() {
            return None;
        }
        kernel
            .take()
            .map(|k| k.join().expect("kernel side panicked"))
    });
    // Let the last ACK of the kernel's FIN go out before looking.
    b.drv.run_for(Duration::from_millis(50));
    let took = took.expect("no data");
    eprintln!(
        "shunt -> kernel: {} MiB in {:.3} s: {:.2} Gbit/s (retrans {}, driver {:?})",
        len >> 20,
        took.as_secs_f64(),
        gbit(len, took),
        b.drv.stack.tcp_counter(TcpCounter::RetransSegs),
        b.drv.stats
    );
    assert_eq!(got.len(), len, "bytes the kernel received");
    assert_eq!(hex(&Sha256::digest(&got)), hex(&sum), "SHA-256");
    assert!(r.data.is_empty());
    assert!(
        matches!(
            b.drv.stack.tcp_layer().state(id),
            Err(_) | Ok(TcpState::TimeWait) | Ok(TcpState::Close)
        ),
        "shunt socket after close: {:?}",
        b.drv.stack.tcp_layer().state(id)
    );
    no_resets(&b.drv.stack);
    for c in ["OutRsts", "EstabResets", "AttemptFails"] {
        assert_eq!(snmp_delta(&before, &after, c), 0, "kernel {c}");
    }
    assert_eq!(b.drv.stack.tcp_counter(TcpCounter::ActiveOpens), 1);
}

#[test]
fn udp_echo_for_a_kernel_socket() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = bed(4);
    let u = b.drv.stack.udp_socket();
    b.drv.stack.udp_bind(u, sock(T, 7)).unwrap();
    let sizes = [1usize, 64, 512, 1472, 1473, 4000, 9000, 30000];
    let kernel = spawn_in(&b.p, move || {
        let s = UdpSocket::bind(sock(P, 0)).expect("kernel bind");
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = vec![0u8; 65536];
        let mut echoed = 0;
        for (i, &n) in sizes.iter().enumerate() {
            let msg = stream(i as u64, n);
            let mut ok = false;
            for _try in 0..3 {
                s.send_to(&msg, sock(T, 7)).expect("kernel send");
                match s.recv_from(&mut buf) {
                    Ok((k, from)) => {
                        assert_eq!(from, sock(T, 7));
                        assert_eq!(&buf[..k], &msg[..], "echo of {n} bytes");
                        ok = true;
                        break;
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => panic!("kernel recv: {e}"),
                }
            }
            assert!(ok, "no echo of a {n}-byte datagram");
            echoed += 1;
        }
        echoed
    });
    let mut kernel = Some(kernel);
    let mut served = 0;
    let mut buf = vec![0u8; 65536];
    let echoed = b.drv.run(Duration::from_secs(30), "udp echo", |s, now| {
        while let Ok(r) = s.udp_recv_from(u, &mut buf, RecvFlags::default()) {
            s.udp_send_to(u, &buf[..r.ret], r.src, now).expect("echo");
            served += 1;
        }
        if !kernel.as_ref()?.is_finished() {
            return None;
        }
        kernel
            .take()
            .map(|k| k.join().expect("kernel side panicked"))
    });
    assert_eq!(echoed, sizes.len());
    assert!(served >= sizes.len());
    eprintln!(
        "udp echo: {echoed} datagrams of {sizes:?} bytes, {served} echoes; counters: {}",
        b.drv.stack.counters()
    );
}

#[test]
fn kernel_connect_to_a_closed_shunt_port_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = bed(5);
    let kernel = spawn_in(&b.p, || {
        TcpStream::connect_timeout(&sock(T, 9), Duration::from_secs(10)).map(|_| ())
    });
    let mut kernel = Some(kernel);
    let r = b
        .drv
        .run(Duration::from_secs(20), "kernel connect", |_, _| {
            if !kernel.as_ref()?.is_finished() {
                return None;
            }
            kernel
                .take()
                .map(|k| k.join().expect("kernel side panicked"))
        });
    let e = r.expect_err("connect to a closed port succeeded");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert_eq!(b.drv.stack.tcp_counter(TcpCounter::OutRsts), 1);
}

#[test]
fn shunt_connect_to_a_closed_kernel_port_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = bed(6);
    let now = b.drv.clock.now();
    let id = b.drv.stack.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        assert_eq!(
            t.connect(cx, c, SockAddr::from(sock(P, 9))),
            Err(Errno::EINPROGRESS)
        );
        c
    });
    let e = b
        .drv
        .run(Duration::from_secs(20), "shunt connect", |s, now| {
            if s.tcp_layer().state(id) == Ok(TcpState::SynSent) {
                return None;
            }
            Some(s.tcp(now, |t, _| t.take_error(id)))
        });
    assert_eq!(e, Some(Errno::ECONNREFUSED));
    assert_eq!(b.drv.stack.tcp_layer().state(id), Ok(TcpState::Close));
    assert_eq!(b.drv.stack.tcp_counter(TcpCounter::AttemptFails), 1);
}
