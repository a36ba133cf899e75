//! The AF_PACKET device against the kernel, in a pair of namespaces joined
//! by a veth (run as root). Offloads stay on: the kernel peer sends GSO
//! frames and partial checksums, as it does by default.
//!
//! The transmit-rate figures behind the default TX mode come from the
//! ignored test `tx_rate`:
//! `cargo test --release -p shunt-ring --test afpacket -- --ignored --nocapture tx_rate`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use shunt_ring::afpacket::{AfPacket, AfPacketOptions, DeviceError, RxMode, TxError, TxMode};
use shunt_ring::apps::basic::{Sink, Source};
use shunt_ring::netns;
use shunt_ring::offload::{self, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, VnetHdr};
use shunt_ring::{Engine, Packet, RunOptions};
use shunt_shim_tests::testbed::Testbed;

const ETHERTYPE_TEST: u16 = 0x88b5; // IEEE local experimental

struct Bed {
    tb: Testbed,
    a: String,
    b: String,
}

/// Namespaces `a` (veth0: 192.0.2.1, 2001:db8::1) and `b` (veth1:
/// 192.0.2.2, 2001:db8::2).
fn bed() -> Bed {
    let mut tb = Testbed::new();
    let a = tb.ns("a");
    let b = tb.ns("b");
    tb.veth(&a, "veth0", &b, "veth1");
    tb.addr(&a, "veth0", "192.0.2.1/24");
    tb.addr(&a, "veth0", "2001:db8::1/64");
    tb.addr(&b, "veth1", "192.0.2.2/24");
    tb.addr(&b, "veth1", "2001:db8::2/64");
    Bed { tb, a, b }
}

fn open_in(ns: &str, ifname: &'static str, opts: AfPacketOptions) -> Result<AfPacket, DeviceError> {
    netns::run_in(ns, move || AfPacket::open(ifname, &opts)).expect("enter namespace")
}

fn open(ns: &str, ifname: &'static str) -> AfPacket {
    open_in(ns, ifname, AfPacketOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn open_rx(ns: &str, ifname: &'static str, rx_mode: RxMode) -> AfPacket {
    let opts = AfPacketOptions {
        rx_mode,
        ..Default::default()
    };
    let dev = open_in(ns, ifname, opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dev.rx_mode(), rx_mode);
    dev
}

/// Run `f` on a thread inside namespace `ns`.
fn spawn_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        netns::enter(&ns).expect("enter namespace");
        f()
    })
}

fn wait_readable(dev: &AfPacket, ms: i32) {
    let fd = dev.fd();
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: ms as i64 * 1_000_000,
    };
    let _ = rustix::event::poll(&mut fds, Some(&ts));
}

/// Receive until `f` says done or `limit` passes; returns whether done.
fn recv_until(
    dev: &mut AfPacket,
    limit: Duration,
    mut f: impl FnMut(&[u8], &VnetHdr) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut done = false;
    while Instant::now() < deadline {
        dev.recv_batch(usize::MAX, |frame, hdr| {
            if !done && f(frame, hdr) {
                done = true;
            }
        });
        if done {
            return true;
        }
        wait_readable(dev, 10);
    }
    false
}

/// Everything received until nothing came for `idle`.
fn drain(dev: &mut AfPacket, idle: Duration, limit: Duration) -> Vec<(Vec<u8>, VnetHdr)> {
    let mut v = Vec::new();
    let deadline = Instant::now() + limit;
    let mut last = Instant::now();
    while Instant::now() < deadline && last.elapsed() < idle {
        let n = dev.recv_batch(usize::MAX, |frame, hdr| v.push((frame.to_vec(), *hdr)));
        if n > 0 {
            last = Instant::now();
        }
        wait_readable(dev, 5);
    }
    v
}

fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&ETHERTYPE_TEST.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (i as u32).wrapping_add(seq) as u8;
    }
    f
}

fn test_seq(frame: &[u8]) -> Option<u32> {
    if frame.len() >= 18 && frame[12..14] == ETHERTYPE_TEST.to_be_bytes() {
        Some(u32::from_be_bytes([
            frame[14], frame[15], frame[16], frame[17],
        ]))
    } else {
        None
    }
}

/// Check a plain frame with etherparse: header and L4 checksums valid.
/// Returns (tcp seq, payload).
fn check_wire_frame(f: &[u8]) -> (u32, Vec<u8>) {
    let sp = SlicedPacket::from_ethernet(f).unwrap_or_else(|e| panic!("etherparse: {e:?}"));
    let (src, dst, v6) = match sp.net.as_ref().expect("IP") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header().to_header();
            assert_eq!(
                h.header_checksum,
                h.calc_header_checksum(),
                "IPv4 header checksum"
            );
            assert_eq!(h.total_len as usize, f.len() - 14);
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s[..4].copy_from_slice(&h.source);
            d[..4].copy_from_slice(&h.destination);
            (s, d, false)
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header().to_header();
            assert_eq!(h.payload_length as usize, f.len() - 54);
            (h.source, h.destination, true)
        }
    };
    let four = |a: [u8; 16]| [a[0], a[1], a[2], a[3]];
    match sp.transport.expect("transport") {
        TransportSlice::Tcp(t) => {
            let c = if v6 {
                t.calc_checksum_ipv6(src, dst).unwrap()
            } else {
                t.calc_checksum_ipv4(four(src), four(dst)).unwrap()
            };
            assert_eq!(t.checksum(), c, "TCP checksum");
            (t.sequence_number(), t.payload().to_vec())
        }
        TransportSlice::Udp(u) => {
            let h = u.to_header();
            let c = if v6 {
                h.calc_checksum_ipv6_raw(src, dst, u.payload()).unwrap()
            } else {
                h.calc_checksum_ipv4_raw(four(src), four(dst), u.payload())
                    .unwrap()
            };
            assert_eq!(h.checksum, c, "UDP checksum");
            (0, u.payload().to_vec())
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn open_errors_are_one_clear_line() {
    let bed = bed();
    let e = open_in(&bed.a, "nonexistent", AfPacketOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "interface nonexistent not found");
    assert!(matches!(e, DeviceError::NotFound { .. }));

    let e = open_in(&bed.a, "bad/name", AfPacketOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "\"bad/name\" is not a valid interface name");

    let opts = AfPacketOptions {
        rx_block_size: 1000,
        ..Default::default()
    };
    let e = open_in(&bed.a, "veth0", opts).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("bad AF_PACKET options for veth0: rx_block_size 1000"),
        "{e}"
    );

    // More ring than a device may have: refused before the kernel
    // allocates anything.
    let opts = AfPacketOptions {
        rx_mode: RxMode::Blocks,
        rx_block_size: 1 << 30,
        rx_block_count: 1 << 14,
        ..Default::default()
    };
    let e = open_in(&bed.a, "veth0", opts).unwrap_err();
    assert!(matches!(e, DeviceError::RingTooLarge { errno: None, .. }));
    assert!(e.to_string().starts_with("cannot set up 1677721"), "{e}");
    assert!(
        e.to_string().ends_with(
            "MiB of AF_PACKET rings on veth0: over the 4096 MiB limit (use fewer or smaller blocks)"
        ),
        "{e}"
    );

    // Without CAP_NET_RAW (capabilities are per thread: drop it on this one).
    let e = netns::run_in(&bed.a, || {
        drop_cap_net_raw();
        AfPacket::open("veth0", &AfPacketOptions::default())
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "AF_PACKET socket on veth0 needs CAP_NET_RAW (run as root or grant the capability)"
    );

    let out = bed.tb.sh(&bed.a, "ip link set veth0 down");
    assert!(out.status.success());
    let e = open_in(&bed.a, "veth0", AfPacketOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "interface veth0 is down (bring it up with `ip link set veth0 up`)"
    );
}

/// Clear CAP_NET_RAW from the calling thread's effective set.
fn drop_cap_net_raw() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data structs, as the
    // ABI requires; pid 0 is the calling thread.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()),
            0
        );
        d[0].effective &= !(1 << CAP_NET_RAW);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()),
            0
        );
    }
}

#[test]
fn frames_from_a_kernel_udp_socket_are_received() {
    let bed = bed();
    let mut dev = open(&bed.a, "veth0");
    assert_eq!(dev.mtu(), 1500);
    let sender = spawn_in(&bed.b, || {
        let s = UdpSocket::bind("192.0.2.2:0").unwrap();
        for i in 0..100u32 {
            let mut msg = vec![0u8; 100 + i as usize];
            msg[..4].copy_from_slice(&i.to_be_bytes());
            s.send_to(&msg, "192.0.2.1:9000").unwrap();
        }
    });
    sender.join().unwrap();
    let mut seen = [false; 100];
    let mut count = 0;
    let ok = recv_until(&mut dev, Duration::from_secs(3), |frame, hdr| {
        let Ok(sp) = SlicedPacket::from_ethernet(frame) else {
            return false;
        };
        let Some(TransportSlice::Udp(u)) = sp.transport else {
            return false;
        };
        if u.destination_port() != 9000 {
            return false;
        }
        let i = u32::from_be_bytes(u.payload()[..4].try_into().unwrap()) as usize;
        assert_eq!(u.payload().len(), 100 + i);
        // A local kernel sender leaves the UDP checksum partial: finish it
        // and check it.
        let mut f = frame.to_vec();
        if hdr.needs_csum() {
            offload::complete_checksum(&mut f, hdr).unwrap();
        }
        check_wire_frame(&f);
        if !seen[i] {
            seen[i] = true;
            count += 1;
        }
        count == 100
    });
    assert!(ok, "received {count} of 100 datagrams");
    let st = dev.stats();
    assert!(st.rx_packets >= 100 && st.rx_bytes > 100 * 100);
    assert_eq!(st.rx_drops, 0);
}

/// The kernel's own TCP, both ends, offloads on: the device sees the
/// sender's GSO frames whole, with vnet headers, and `segment` turns them
/// into valid MTU-sized frames carrying the right bytes.
fn tcp_gso_is_received_and_segmented(v6: bool, rx_mode: RxMode) {
    let bed = bed();
    let mut dev = open_rx(&bed.a, "veth0", rx_mode);
    let server_addr: SocketAddr = if v6 {
        "[2001:db8::1]:5001"
    } else {
        "192.0.2.1:5001"
    }
    .parse()
    .unwrap();
    let listener = netns::run_in(&bed.a, move || TcpListener::bind(server_addr).unwrap()).unwrap();
    const TOTAL: usize = 1 << 20;
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        buf.len()
    });
    let client = spawn_in(&bed.b, move || {
        let mut s = TcpStream::connect_timeout(&server_addr, Duration::from_secs(2)).unwrap();
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        s.write_all(&data).unwrap();
    });
    client.join().unwrap();
    assert_eq!(server.join().unwrap(), TOTAL);
    let frames = drain(&mut dev, Duration::from_millis(100), Duration::from_secs(3));

    let want = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
    let mut isn = None;
    let mut gso_frames = 0;
    let mut segments = 0;
    let mut bytes = 0;
    for (frame, hdr) in &frames {
        let Ok(sp) = SlicedPacket::from_ethernet(frame) else {
            continue;
        };
        let Some(TransportSlice::Tcp(t)) = &sp.transport else {
            continue;
        };
        // Only the client's direction (we must not see our own side's
        // outgoing frames... the kernel in `a` is the other sender).
        if t.destination_port() != 5001 {
            continue;
        }
        if t.syn() {
            isn = Some(t.sequence_number());
            continue;
        }
        if !hdr.is_gso() {
            continue;
        }
        assert_eq!(hdr.gso_type & !offload::GSO_ECN, want);
        assert_eq!(hdr.flags & F_NEEDS_CSUM, F_NEEDS_CSUM);
        assert!(frame.len() > 1514, "GSO frame of {} bytes", frame.len());
        gso_frames += 1;
        let isn = isn.expect("SYN seen before data");
        let mut p = Packet::from_slice(frame);
        *p.offload_mut() = *hdr;
        let mut next_seq = t.sequence_number();
        let mut joined = Vec::new();
        offload::segment(&p, |q| {
            assert!(q.len() <= 1514, "segment of {} bytes", q.len());
            assert!(q.offload().is_plain());
            let (seq, payload) = check_wire_frame(q.data());
            assert_eq!(seq, next_seq);
            let off = seq.wrapping_sub(isn).wrapping_sub(1) as usize;
            for (i, b) in payload.iter().enumerate() {
                assert_eq!(
                    *b as usize,
                    (off + i) % 251,
                    "byte {} of the stream",
                    off + i
                );
            }
            next_seq = seq.wrapping_add(payload.len() as u32);
            joined.extend_from_slice(&payload);
            segments += 1;
        })
        .unwrap();
        assert_eq!(joined, t.payload());
        bytes += joined.len();
    }
    eprintln!(
        "{} frames received, {gso_frames} GSO frames cut into {segments} segments, {bytes} bytes",
        frames.len()
    );
    assert!(
        gso_frames > 0,
        "no GSO frames among {} received",
        frames.len()
    );
    assert!(segments > gso_frames);
    assert!(bytes > TOTAL / 4, "only {bytes} bytes in GSO frames");
}

/// In frames mode the GSO frames (bigger than a slot) come from the
/// socket's queue, in order with the small frames around them.
#[test]
fn kernel_tcp_gso_ipv4_is_received_and_segmented() {
    tcp_gso_is_received_and_segmented(false, RxMode::Frames);
}

#[test]
fn kernel_tcp_gso_ipv6_is_received_and_segmented() {
    tcp_gso_is_received_and_segmented(true, RxMode::Frames);
}

#[test]
fn kernel_tcp_gso_ipv4_is_received_and_segmented_in_blocks() {
    tcp_gso_is_received_and_segmented(false, RxMode::Blocks);
}

/// Frames mode hands a lone frame over at once: poll(2) wakes for it
/// without any block timeout (the blocks' timeout is set to 10 s here, so
/// a device that waited for one would miss the 5 s poll).
#[test]
fn a_lone_frame_wakes_the_reader_in_frames_mode() {
    let bed = bed();
    let opts = AfPacketOptions {
        rx_mode: RxMode::Frames,
        rx_block_timeout_ms: 10_000,
        ..Default::default()
    };
    let mut rx = open_in(&bed.b, "veth1", opts).unwrap();
    let mut tx = open(&bed.a, "veth0");
    // Whatever the kernel sent on its own (IPv6 router solicitations...).
    drain(&mut rx, Duration::from_millis(50), Duration::from_secs(1));
    let f = test_frame(rx.mac(), tx.mac(), 42, 100);
    tx.send(&f, &VnetHdr::default()).unwrap();
    tx.flush();
    let mut got = None;
    for _ in 0..8 {
        let fd = rx.fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let five_s = rustix::event::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        let n = rustix::event::poll(&mut fds, Some(&five_s)).unwrap();
        assert_eq!(n, 1, "poll did not wake for the frame");
        rx.recv_batch(usize::MAX, |frame, _| {
            if test_seq(frame) == Some(42) {
                got = Some(frame.to_vec());
            }
        });
        if got.is_some() {
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&f[..]));
}

/// Frames sent in each TX mode arrive at a second device in the peer
/// namespace, in order, intact.
#[test]
fn both_tx_modes_deliver() {
    for rx_mode in [RxMode::Frames, RxMode::Blocks] {
        tx_modes_deliver(rx_mode);
    }
}

/// Both ends in `rx_mode` (which also sets the TX ring's slot layout).
fn tx_modes_deliver(rx_mode: RxMode) {
    let bed = bed();
    let mut rx = open_rx(&bed.b, "veth1", rx_mode);
    for mode in [TxMode::Ring, TxMode::Sendmmsg] {
        let opts = AfPacketOptions {
            tx_mode: mode,
            rx_mode,
            ..Default::default()
        };
        let mut tx = open_in(&bed.a, "veth0", opts).unwrap();
        assert_eq!(tx.tx_mode(), mode);
        let (src, dst) = (tx.mac(), rx.mac());
        const N: u32 = 500;
        for i in 0..N {
            let f = test_frame(dst, src, i, 60 + (i as usize * 7) % 1440);
            loop {
                match tx.send(&f, &VnetHdr::default()) {
                    Ok(()) => break,
                    Err(TxError::Full) => {
                        tx.flush();
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("{mode:?}: {e}"),
                }
            }
        }
        tx.flush();
        let mut next = 0;
        let ok = recv_until(&mut rx, Duration::from_secs(3), |frame, _| {
            if let Some(seq) = test_seq(frame) {
                assert_eq!(seq, next, "{mode:?}: out of order or lost");
                assert_eq!(
                    frame,
                    &test_frame(dst, src, seq, 60 + (seq as usize * 7) % 1440)[..]
                );
                next += 1;
            }
            next == N
        });
        assert!(ok, "{mode:?}: received {next} of {N}");
        let st = tx.stats();
        assert_eq!((st.tx_packets, st.tx_errors), (N as u64, 0), "{mode:?}");
        // Our own transmissions never show up in our receive ring.
        assert_eq!(
            drain(&mut tx, Duration::from_millis(20), Duration::from_secs(1))
                .iter()
                .filter(|(f, _)| test_seq(f).is_some())
                .count(),
            0
        );
        // Bad frames are refused with a reason, not sent.
        assert_eq!(
            tx.send(&[0u8; 10], &VnetHdr::default()),
            Err(TxError::BadLength { len: 10 })
        );
        assert_eq!(
            tx.send(&vec![0u8; 1600], &VnetHdr::default()),
            Err(TxError::BadLength { len: 1600 })
        );
        let bad = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 50,
            csum_offset: 50,
            ..Default::default()
        };
        assert_eq!(tx.send(&[0u8; 60], &bad), Err(TxError::BadHeader));
        assert_eq!(tx.stats().tx_errors, 3);
    }
}

/// A UDP GSO frame (64 KiB, partial checksum) sent with its vnet header
/// reaches the kernel peer as separate datagrams: the kernel honoured the
/// header. In ring mode it is too big for a slot and takes the side path.
#[test]
fn gso_frames_are_sent_with_their_vnet_header() {
    let bed = bed();
    for mode in [TxMode::Ring, TxMode::Sendmmsg] {
        let sock = netns::run_in(&bed.b, || {
            let s = UdpSocket::bind("192.0.2.2:9100").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        })
        .unwrap();
        let opts = AfPacketOptions {
            tx_mode: mode,
            ..Default::default()
        };
        let mut tx = open_in(&bed.a, "veth0", opts).unwrap();
        let peer_mac = netns::run_in(&bed.b, || {
            AfPacket::open("veth1", &AfPacketOptions::default())
                .unwrap()
                .mac()
        })
        .unwrap();
        const MSS: usize = 1000;
        const LEN: usize = 60_000;
        let data: Vec<u8> = (0..LEN).map(|i| (i / MSS) as u8).collect();
        let mut f = Vec::new();
        f.extend_from_slice(&peer_mac);
        f.extend_from_slice(&tx.mac());
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let l4len = 8 + LEN;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4len) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
        ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
        let c = shunt_ring::csum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let pseudo = shunt_ring::csum::pseudo_v4([192, 0, 2, 1], [192, 0, 2, 2], 17, l4len as u16);
        f.extend_from_slice(&4000u16.to_be_bytes());
        f.extend_from_slice(&9100u16.to_be_bytes());
        f.extend_from_slice(&(l4len as u16).to_be_bytes());
        f.extend_from_slice(&shunt_ring::csum::fold(pseudo).to_be_bytes());
        f.extend_from_slice(&data);
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            hdr_len: 42,
            gso_size: MSS as u16,
            csum_start: 34,
            csum_offset: 6,
        };
        // Static neighbour entry not needed: we address the peer's MAC.
        tx.send(&f, &hdr).unwrap();
        tx.flush();
        let mut got = Vec::new();
        let mut buf = [0u8; 2000];
        while got.len() < LEN {
            let (n, from) = sock
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("{mode:?}: after {} bytes: {e}", got.len()));
            assert_eq!(from, "192.0.2.1:4000".parse().unwrap());
            assert_eq!(n, MSS, "{mode:?}: each segment a datagram");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data, "{mode:?}");
        assert_eq!(tx.stats().tx_packets, 1);
    }
}

/// The kernel strips a VLAN tag before AF_PACKET sees the frame; the
/// device puts it back.
#[test]
fn vlan_tags_are_put_back() {
    for rx_mode in [RxMode::Frames, RxMode::Blocks] {
        vlan_tag_is_put_back(rx_mode);
    }
}

fn vlan_tag_is_put_back(rx_mode: RxMode) {
    let bed = bed();
    let mut rx = open_rx(&bed.a, "veth0", rx_mode);
    let mut tx = open(&bed.b, "veth1");
    let mut f = test_frame([0xff; 6], tx.mac(), 7, 100);
    // Insert an 802.1Q tag, VLAN 5, priority 3.
    let tag = [0x81, 0x00, 0x60, 0x05];
    f.splice(12..12, tag);
    tx.send(&f, &VnetHdr::default()).unwrap();
    tx.flush();
    let mut got = None;
    recv_until(&mut rx, Duration::from_secs(2), |frame, _| {
        if frame.len() > 18 && frame[16..18] == ETHERTYPE_TEST.to_be_bytes() {
            got = Some(frame.to_vec());
            return true;
        }
        false
    });
    assert_eq!(got.as_deref(), Some(&f[..]));
}

/// The device as an engine app: a source feeds one device, the other
/// device's output feeds a sink.
#[test]
fn devices_as_engine_apps() {
    let bed = bed();
    for mode in [TxMode::Ring, TxMode::Sendmmsg] {
        let opts = AfPacketOptions {
            tx_mode: mode,
            ..Default::default()
        };
        let tx = open_in(&bed.a, "veth0", opts).unwrap();
        let rx = open(&bed.b, "veth1");
        let mut src =
            Source::from_template(Packet::from_slice(&test_frame(rx.mac(), tx.mac(), 1, 200)));
        src.limit = Some(20_000);
        let mut e = Engine::new();
        e.add_app("src", Box::new(src)).unwrap();
        e.add_app("tx", Box::new(tx)).unwrap();
        e.add_app("rx", Box::new(rx)).unwrap();
        e.add_app("sink", Box::new(Sink::default())).unwrap();
        e.connect("src.output -> tx.input").unwrap();
        e.connect("rx.output -> sink.input").unwrap();
        e.run(
            RunOptions {
                duration: Some(Duration::from_millis(500)),
                ..Default::default()
            },
            |_, _| {},
        );
        let (sink_packets, sink_bytes) = {
            let sink = e.app::<Sink>("sink").unwrap();
            (sink.packets, sink.bytes)
        };
        let sent = e.app::<Source>("src").unwrap().sent;
        assert_eq!(sent, 20_000);
        let txs = e.app_mut::<AfPacket>("tx").unwrap().stats();
        assert_eq!(txs.tx_packets + txs.tx_errors, 20_000, "{mode:?}: {txs:?}");
        // Loss between the devices is possible under load but must be rare.
        assert!(
            sink_packets >= 19_000,
            "{mode:?}: sink got {sink_packets} of 20000 ({txs:?})"
        );
        // (The sink also gets what the kernel sends on its own: IPv6
        // neighbour discovery and the like.)
        assert!(sink_bytes >= 19_000 * 200);
        let report = e
            .app_reports()
            .map(|(n, r)| format!("{n}: {r}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(report.contains("veth0: rx"), "{report}");
    }
}

/// Pin the calling thread to one CPU (if the machine has it).
fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn rx_packets_counter(bed: &Bed) -> u64 {
    let out = bed
        .tb
        .sh(&bed.b, "cat /sys/class/net/veth1/statistics/rx_packets");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rx_packets")
}

/// Frames per second delivered across the veth by one TX mode: the
/// sender (pinned to CPU 0, where the veth's receive softirq also runs)
/// sends as fast as it can for `secs`; on the far side either a receiving
/// device (pinned to CPU 1) counts what arrives, or (`by_device` false)
/// the peer interface's rx_packets counter does, with nobody reading.
/// Returns (delivered/s, handed to the kernel/s).
fn measure(
    bed: &Bed,
    mode: TxMode,
    size: usize,
    batch: usize,
    secs: f64,
    by_device: bool,
) -> (f64, f64) {
    let opts = AfPacketOptions {
        tx_mode: mode,
        tx_batch: batch,
        ..Default::default()
    };
    let mut tx = open_in(&bed.a, "veth0", opts).unwrap();
    let mut rx = open(&bed.b, "veth1");
    let frame = test_frame(rx.mac(), tx.mac(), 0, size - 4); // size counts the FCS
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let counter = if by_device {
        let (stop, received) = (stop.clone(), received.clone());
        Some(std::thread::spawn(move || {
            pin(1);
            while !stop.load(Ordering::Relaxed) {
                let n = rx.recv_batch(usize::MAX, |_, _| {});
                received.fetch_add(n as u64, Ordering::Relaxed);
                if n == 0 {
                    wait_readable(&rx, 5);
                }
            }
        }))
    } else {
        drop(rx);
        None
    };
    let count = || {
        if by_device {
            received.load(Ordering::Relaxed)
        } else {
            rx_packets_counter(bed)
        }
    };
    let hdr = VnetHdr::default();
    // Warm up, then count from a clean start.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(100) {
        let _ = tx.send(&frame, &hdr);
    }
    tx.flush();
    std::thread::sleep(Duration::from_millis(20));
    let r0 = count();
    let s0 = tx.stats().tx_packets;
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        for _ in 0..256 {
            if tx.send(&frame, &hdr).is_err() {
                tx.flush();
            }
        }
    }
    tx.flush();
    let el = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(50));
    let got = count() - r0;
    stop.store(true, Ordering::Relaxed);
    if let Some(c) = counter {
        c.join().unwrap();
    }
    let sent = tx.stats().tx_packets - s0;
    (got as f64 / el, sent as f64 / el)
}

/// Transmit rate of each TX mode, counted by a receiving device on the
/// far side of the veth; the median of several rounds, modes interleaved.
/// Prints BENCH lines; ignored by default (run it with --release).
/// TX_RATE_SECS, TX_RATE_ROUNDS and TX_RATE_BATCH change the defaults.
#[test]
#[ignore]
fn tx_rate() {
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<f64>().ok());
    let secs = env("TX_RATE_SECS").unwrap_or(1.0);
    let rounds = env("TX_RATE_ROUNDS").unwrap_or(5.0) as usize;
    let batch = env("TX_RATE_BATCH")
        .map(|b| b as usize)
        .unwrap_or(AfPacketOptions::default().tx_batch);
    let bed = bed();
    pin(0);
    let modes = [(TxMode::Ring, "txring"), (TxMode::Sendmmsg, "sendmmsg")];
    for (by_device, how) in [(true, "afpacket-rx"), (false, "rx_packets")] {
        for size in [64usize, 1500] {
            let mut res: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
            let mut lost = 0.0;
            for _ in 0..rounds {
                for (i, (mode, _)) in modes.iter().enumerate() {
                    let (delivered, sent) = measure(&bed, *mode, size, batch, secs, by_device);
                    res[i].push(delivered);
                    lost += (sent - delivered).max(0.0) * secs;
                }
            }
            let mut med = Vec::new();
            for (i, (_, name)) in modes.iter().enumerate() {
                res[i].sort_by(|a, b| a.partial_cmp(b).unwrap());
                let m = res[i][res[i].len() / 2];
                med.push(m);
                println!("BENCH afpacket-{name}-{size}B-{how} {m:.0} pps");
                let r: Vec<f64> = res[i].iter().map(|v| (*v / 1e3).round() / 1e3).collect();
                println!("# {name} {size}B batch {batch}, counted by {how}: Mpps per round {r:?}");
            }
            println!(
                "RATIO afpacket-txring-vs-sendmmsg-{size}B-{how} {:.3}",
                med[0] / med[1]
            );
            println!("# frames handed to the kernel but not counted on the far side: {lost:.0}");
        }
    }
}

/// Over a VLAN, the kernel's partial-checksum offsets still fit the frame
/// as the device delivers it (with the tag put back).
#[test]
fn vlan_partial_checksum_offsets_fit_the_tagged_frame() {
    let mut tb = Testbed::new();
    let a = tb.ns("a");
    let b = tb.ns("b");
    tb.veth(&a, "veth0", &b, "veth1");
    for (ns, dev, addr) in [(&a, "veth0", "192.0.2.1/24"), (&b, "veth1", "192.0.2.2/24")] {
        let out = tb.sh(
            ns,
            &format!(
                "ip link add link {dev} name {dev}.5 type vlan id 5 && ip link set {dev}.5 up"
            ),
        );
        if !out.status.success() {
            // A kernel without 802.1Q (CONFIG_VLAN_8021Q) cannot run this.
            eprintln!(
                "skipped: no VLAN devices: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        tb.addr(ns, &format!("{dev}.5"), addr);
    }
    let mut dev = open(&a, "veth0");
    spawn_in(&b, || {
        let s = UdpSocket::bind("192.0.2.2:0").unwrap();
        for _ in 0..3 {
            s.send_to(b"tagged and partial", "192.0.2.1:9000").unwrap();
        }
    })
    .join()
    .unwrap();
    let mut checked = 0;
    recv_until(&mut dev, Duration::from_secs(3), |frame, hdr| {
        let Ok(sp) = SlicedPacket::from_ethernet(frame) else {
            return false;
        };
        let Some(TransportSlice::Udp(u)) = sp.transport else {
            return false;
        };
        if u.destination_port() != 9000 {
            return false;
        }
        assert_eq!(&frame[12..16], &[0x81, 0x00, 0x00, 0x05]);
        let mut f = frame.to_vec();
        if hdr.needs_csum() {
            assert_eq!(hdr.csum_start, 18 + 20, "csum_start counts the tag");
            offload::complete_checksum(&mut f, hdr).unwrap();
        }
        let sp = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = sp.net else {
            panic!()
        };
        let Some(TransportSlice::Udp(u)) = sp.transport else {
            panic!()
        };
        let h = u.to_header();
        assert_eq!(
            h.checksum,
            h.calc_checksum_ipv4_raw(ip.header().source(), ip.header().destination(), u.payload())
                .unwrap()
        );
        checked += 1;
        checked == 3
    });
    assert_eq!(checked, 3);
}

/// The interface going down makes the socket report ENETDOWN (POLLERR);
/// the device as an app clears it instead of letting the engine spin, and
/// receives again once the interface is back up.
#[test]
fn link_down_and_up() {
    let bed = bed();
    let dev = open(&bed.a, "veth0");
    assert!(bed.tb.sh(&bed.a, "ip link set veth0 down").status.success());
    let mut e = Engine::new();
    e.add_app("dev", Box::new(dev)).unwrap();
    e.add_app("sink", Box::new(Sink::default())).unwrap();
    e.connect("dev.output -> sink.input").unwrap();
    // A spinning engine burns the whole run in CPU time.
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let c0 = cpu();
    e.run(
        RunOptions {
            duration: Some(Duration::from_millis(300)),
            ..Default::default()
        },
        |_, _| {},
    );
    let used = cpu() - c0;
    assert!(
        used < Duration::from_millis(100),
        "engine spun: {used:?} of CPU in 300 ms"
    );
    let report = e.app_reports().map(|(_, r)| r).collect::<String>();
    assert!(report.contains("socket error: Network is down"), "{report}");

    assert!(bed.tb.sh(&bed.a, "ip link set veth0 up").status.success());
    let dev = e.app_mut::<AfPacket>("dev").unwrap();
    assert_eq!(dev.take_error(), None);
    spawn_in(&bed.b, || {
        let s = UdpSocket::bind("192.0.2.2:0").unwrap();
        // The first datagrams may wait for ARP; send a few, spaced.
        for _ in 0..20 {
            s.send_to(b"back up", "192.0.2.1:9000").unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .join()
    .unwrap();
    let ok = recv_until(dev, Duration::from_secs(3), |frame, _| {
        frame.len() >= 49 && frame.ends_with(b"back up")
    });
    assert!(ok, "nothing received after the link came back");
}

/// Behind a slow qdisc and with a tiny send buffer the kernel takes only
/// part of each batch and drops at the qdisc; the device keeps what was
/// not taken (or dropped with ENOBUFS) and sends it with later flushes, in
/// order, none lost or stuck.
#[test]
fn backpressure_loses_nothing() {
    let bed = bed();
    let out = bed.tb.sh(
        &bed.a,
        "tc qdisc add dev veth0 root tbf rate 200mbit burst 16kb latency 2ms",
    );
    if !out.status.success() {
        eprintln!(
            "skipped: no tbf qdisc: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    for mode in [TxMode::Ring, TxMode::Sendmmsg] {
        let mut rx = open(&bed.b, "veth1");
        let opts = AfPacketOptions {
            tx_mode: mode,
            qdisc_bypass: false,
            sndbuf: 1,
            tx_frames: 32,
            tx_batch: 32,
            ..Default::default()
        };
        let mut tx = open_in(&bed.a, "veth0", opts).unwrap();
        let (src, dst) = (tx.mac(), rx.mac());
        const N: u32 = 3000;
        let qdisc_drops_before = qdisc_drops(&bed, "veth0");
        let receiver = std::thread::spawn(move || {
            // Which frames arrived, and how often one arrived after a later
            // one.
            let mut seen = vec![false; N as usize];
            let (mut got, mut highest, mut inversions) = (0u32, None::<u32>, 0u32);
            recv_until(&mut rx, Duration::from_secs(5), |frame, _| {
                if let Some(seq) = test_seq(frame).filter(|&s| s < N) {
                    if highest.is_some_and(|h| seq < h) {
                        inversions += 1;
                    }
                    highest = highest.max(Some(seq));
                    if !std::mem::replace(&mut seen[seq as usize], true) {
                        got += 1;
                    }
                }
                seen[N as usize - 1]
            });
            (seen[N as usize - 1], got, inversions, rx.stats())
        });
        let mut sent = 0;
        let mut full = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            while sent < N {
                match tx.send(&test_frame(dst, src, sent, 1400), &VnetHdr::default()) {
                    Ok(()) => sent += 1,
                    Err(TxError::Full) => {
                        full += 1;
                        break;
                    }
                    Err(e) => panic!("{mode:?}: {e}"),
                }
            }
            tx.flush();
            if receiver.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let (ok, got, inversions, rxs) = receiver.join().unwrap();
        let report = shunt_ring::App::report(&tx).unwrap();
        assert!(
            ok,
            "{mode:?}: the last frame never arrived ({got} of {N}, {sent} queued, full {full} times): {report}; {rxs:?}"
        );
        // With sendmmsg the kernel says which frame it refused, and the
        // device sends it again before any later one: nothing is lost or
        // reordered. A TX ring kick that the qdisc answers with a drop has
        // already released (or re-armed) the slot, so the device cannot
        // know which frame went: losses must all be the qdisc's own, as
        // `tc -s` counts them, and only then may order suffer.
        let missing = u64::from(N - got);
        let qdisc = qdisc_drops(&bed, "veth0") - qdisc_drops_before;
        match mode {
            TxMode::Sendmmsg => {
                assert_eq!(
                    (missing, inversions),
                    (0, 0),
                    "{report}; qdisc dropped {qdisc}"
                )
            }
            TxMode::Ring => {
                assert!(
                    missing <= qdisc,
                    "{missing} lost, qdisc dropped {qdisc}: {report}"
                );
                assert!(
                    inversions == 0 || qdisc > 0,
                    "{inversions} reordered with no qdisc drop: {report}"
                );
            }
        }
        assert!(
            full > 0,
            "{mode:?}: the test never filled the ring: {report}"
        );
        assert_eq!(tx.stats().tx_errors, 0, "{report}");
        eprintln!("{mode:?}: {report}");
    }
}

/// Packets the root qdisc of `ifname` in namespace a has dropped.
fn qdisc_drops(bed: &Bed, ifname: &str) -> u64 {
    let out = bed.tb.sh(&bed.a, &format!("tc -s qdisc show dev {ifname}"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("dropped ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Promiscuous membership lasts as long as the device.
#[test]
fn promiscuous_while_open() {
    let bed = bed();
    let promiscuity = || {
        let out = bed.tb.sh(&bed.a, "ip -d link show veth0");
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let n = s
            .split("promiscuity ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string);
        n.unwrap_or_else(|| panic!("no promiscuity in {s}"))
    };
    assert_eq!(promiscuity(), "0");
    let opts = AfPacketOptions {
        promiscuous: true,
        ..Default::default()
    };
    let dev = open_in(&bed.a, "veth0", opts).unwrap();
    assert_eq!(promiscuity(), "1");
    drop(dev);
    assert_eq!(promiscuity(), "0");
}

/// `recv_batch(max)` stops after `max` frames and picks up where it left
/// off inside a block.
#[test]
fn recv_batch_resumes_inside_a_block() {
    for rx_mode in [RxMode::Frames, RxMode::Blocks] {
        recv_batch_resumes(rx_mode);
    }
}

fn recv_batch_resumes(rx_mode: RxMode) {
    let bed = bed();
    let mut rx = open_rx(&bed.b, "veth1", rx_mode);
    let mut tx = open(&bed.a, "veth0");
    let (src, dst) = (tx.mac(), rx.mac());
    for i in 0..50 {
        tx.send(&test_frame(dst, src, i, 100), &VnetHdr::default())
            .unwrap();
    }
    tx.flush();
    let mut next = 0u32;
    let deadline = Instant::now() + Duration::from_secs(3);
    while next < 50 && Instant::now() < deadline {
        let max = 1 + (next as usize % 3);
        let n = rx.recv_batch(max, |frame, _| {
            if let Some(seq) = test_seq(frame) {
                assert_eq!(seq, next);
                next += 1;
            }
        });
        assert!(n <= max);
        if n == 0 {
            wait_readable(&rx, 10);
        }
    }
    assert_eq!(next, 50);
}
