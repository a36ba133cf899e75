//! The AF_XDP device and its XDP program against the kernel (run as
//! root): the program's decisions on crafted frames (BPF_PROG_TEST_RUN),
//! shunt and the kernel side by side on one veth, the program going away
//! with a SIGKILLed process, and the one-line errors.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Shutdown, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use shunt_ring::netns;
use shunt_ring::offload::VnetHdr;
use shunt_ring::xdp::program::{XDP_PASS, XDP_REDIRECT};
use shunt_ring::xdp::{Attach, DeviceError, Mode, Proto, XdpDevice, XdpOptions, XdpSteering};
use shunt_shim_tests::testbed::Testbed;

const SHUNT4: [u8; 4] = [192, 0, 2, 1];
const PEER4: [u8; 4] = [192, 0, 2, 2];
const KERNEL4: [u8; 4] = [192, 0, 2, 3];
const SHUNT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const PEER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const KERNEL6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

struct Bed {
    tb: Testbed,
    a: String,
    b: String,
}

/// Namespaces `a` (veth0: the kernel has 192.0.2.3 and 2001:db8::3;
/// shunt will have 192.0.2.1 and 2001:db8::1) and `b` (veth1: the peer,
/// 192.0.2.2 and 2001:db8::2).
fn bed() -> Bed {
    let mut tb = Testbed::new();
    let a = tb.ns("a");
    let b = tb.ns("b");
    tb.veth(&a, "veth0", &b, "veth1");
    tb.addr(&a, "veth0", "192.0.2.3/24");
    tb.addr(&a, "veth0", "2001:db8::3/64");
    tb.addr(&b, "veth1", "192.0.2.2/24");
    tb.addr(&b, "veth1", "2001:db8::2/64");
    Bed { tb, a, b }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mac_of(ns: &str, ifname: &str) -> [u8; 6] {
    let out = ip(&["-n", ns, "-br", "link", "show", ifname]);
    let field = out.split_whitespace().nth(2).expect("MAC in ip -br output");
    let mut m = [0u8; 6];
    for (i, p) in field.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).unwrap();
    }
    m
}

fn dedicated() -> XdpOptions {
    XdpOptions {
        addrs: vec![IpAddr::from(SHUNT4), IpAddr::from(SHUNT6)],
        ..Default::default()
    }
}

fn open_in(ns: &str, ifname: &'static str, opts: XdpOptions) -> Result<XdpDevice, DeviceError> {
    netns::run_in(ns, move || XdpDevice::open(ifname, &opts)).expect("enter namespace")
}

fn open(ns: &str, opts: XdpOptions) -> XdpDevice {
    open_in(ns, "veth0", opts).unwrap_or_else(|e| panic!("{e}"))
}

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

fn wait_readable(dev: &XdpDevice, ms: i64) {
    let fd = dev.fd();
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: ms * 1_000_000,
    };
    let _ = rustix::event::poll(&mut fds, Some(&ts));
}

// ---------------------------------------------------------------------------
// Crafted frames.
// ---------------------------------------------------------------------------

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// TCP/UDP header stub: ports, then zeros (8 bytes for UDP, 20 for TCP).
fn l4(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut h = vec![0u8; if proto == 6 { 20 } else { 8 }];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h
}

/// IPv4 with `opt_words` 32-bit words of options and flags/fragment field
/// `frag`.
fn ipv4_full(dst: [u8; 4], proto: u8, payload: &[u8], opt_words: usize, frag: u16) -> Vec<u8> {
    let hl = 20 + 4 * opt_words;
    let mut h = vec![0u8; hl];
    h[0] = 0x40 | (hl / 4) as u8;
    h[2..4].copy_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&PEER4);
    h[16..20].copy_from_slice(&dst);
    for i in 0..opt_words {
        h[20 + 4 * i] = 1; // NOP
    }
    h.extend_from_slice(payload);
    eth(0x0800, &h)
}

fn ipv4(dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(dst, proto, payload, 0, 0x4000)
}

fn arp(op: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0u8; 28];
    a[0..2].copy_from_slice(&1u16.to_be_bytes());
    a[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&op.to_be_bytes());
    a[8..14].copy_from_slice(&MAC_B);
    a[14..18].copy_from_slice(&spa);
    a[24..28].copy_from_slice(&tpa);
    eth(0x0806, &a)
}

fn ipv6(dst: [u8; 16], nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = nh;
    h[7] = 255;
    h[8..24].copy_from_slice(&PEER6);
    h[24..40].copy_from_slice(&dst);
    h.extend_from_slice(payload);
    eth(0x86dd, &h)
}

fn solicited_node(a: [u8; 16]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = 0xff;
    m[1] = 0x02;
    m[11] = 1;
    m[12] = 0xff;
    m[13..16].copy_from_slice(&a[13..16]);
    m
}

/// An ICMPv6 message of `ty` with a 16-byte target (NS, NA).
fn icmp6_target(ty: u8, target: [u8; 16]) -> Vec<u8> {
    let mut m = vec![0u8; 24];
    m[0] = ty;
    m[8..24].copy_from_slice(&target);
    m
}

fn verdict(dev: &XdpDevice, f: &[u8]) -> u32 {
    dev.steering()
        .test_run(f)
        .unwrap_or_else(|e| panic!("{e} on {f:02x?}"))
}

/// Every prefix of `frame` from 14 bytes on: PASS below `need` bytes,
/// `full` from there.
fn check_prefixes(dev: &XdpDevice, frame: &[u8], need: usize, full: u32) {
    for len in 14..=frame.len() {
        let want = if len < need { XDP_PASS } else { full };
        let got = verdict(dev, &frame[..len]);
        assert_eq!(
            got,
            want,
            "{len}-byte prefix of a {}-byte frame",
            frame.len()
        );
    }
}

// ---------------------------------------------------------------------------
// (a) The program's decisions.
// ---------------------------------------------------------------------------

#[test]
fn dedicated_program_decisions() {
    let bed = bed();
    let dev = open(&bed.a, dedicated());
    let run = |f: &[u8]| verdict(&dev, f);
    eprintln!(
        "dedicated program: {} instructions, native={}",
        dev.steering().instruction_count(),
        dev.native()
    );
    let udp = l4(17, 5000, 9000);
    // IPv4 to shunt's address, to the kernel's, broadcast.
    let to_shunt = ipv4(SHUNT4, 17, &udp);
    assert_eq!(run(&to_shunt), XDP_REDIRECT);
    assert_eq!(run(&ipv4(KERNEL4, 17, &udp)), XDP_PASS);
    assert_eq!(run(&ipv4([192, 0, 2, 255], 17, &udp)), XDP_PASS);
    assert_eq!(run(&ipv4(SHUNT4, 6, &l4(6, 1, 80))), XDP_REDIRECT);
    assert_eq!(run(&ipv4(SHUNT4, 1, &[8, 0, 0, 0])), XDP_REDIRECT);
    // ARP requests and replies whose target is shunt's; others are the
    // kernel's (its own address, gratuitous ARP of the peer).
    assert_eq!(run(&arp(1, PEER4, SHUNT4)), XDP_REDIRECT);
    assert_eq!(run(&arp(2, PEER4, SHUNT4)), XDP_REDIRECT);
    assert_eq!(run(&arp(1, PEER4, KERNEL4)), XDP_PASS);
    assert_eq!(run(&arp(1, PEER4, PEER4)), XDP_PASS);
    // IPv6 to shunt's address and to the kernel's.
    let to_shunt6 = ipv6(SHUNT6, 17, &udp);
    assert_eq!(run(&to_shunt6), XDP_REDIRECT);
    assert_eq!(run(&ipv6(KERNEL6, 17, &udp)), XDP_PASS);
    // Neighbor Solicitation to the solicited-node group: by its target.
    // The kernel's 2001:db8::3 and shunt's ::1 are in different groups,
    // but fe80::1 would share ::1's group: the target decides.
    let ns_shunt = ipv6(solicited_node(SHUNT6), 58, &icmp6_target(135, SHUNT6));
    assert_eq!(run(&ns_shunt), XDP_REDIRECT);
    let mut ll1 = [0u8; 16];
    ll1[0] = 0xfe;
    ll1[1] = 0x80;
    ll1[15] = 1;
    assert_eq!(
        run(&ipv6(solicited_node(SHUNT6), 58, &icmp6_target(135, ll1))),
        XDP_PASS
    );
    assert_eq!(
        run(&ipv6(
            solicited_node(KERNEL6),
            58,
            &icmp6_target(135, KERNEL6)
        )),
        XDP_PASS
    );
    // A Neighbor Advertisement to all-nodes (unsolicited) stays with the
    // kernel; one unicast to shunt (solicited) goes by destination.
    let all_nodes = {
        let mut a = [0u8; 16];
        a[0] = 0xff;
        a[1] = 2;
        a[15] = 1;
        a
    };
    assert_eq!(
        run(&ipv6(all_nodes, 58, &icmp6_target(136, SHUNT6))),
        XDP_PASS
    );
    assert_eq!(
        run(&ipv6(SHUNT6, 58, &icmp6_target(136, PEER6))),
        XDP_REDIRECT
    );
    // Multicast UDP to the solicited-node group: not NDP, the kernel's.
    assert_eq!(run(&ipv6(solicited_node(SHUNT6), 17, &udp)), XDP_PASS);
    // Other EtherTypes, VLAN-tagged frames.
    assert_eq!(run(&eth(0x88b5, &[0; 50])), XDP_PASS);
    let mut tagged = to_shunt.clone();
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    assert_eq!(run(&tagged), XDP_PASS);
    // Truncated frames: PASS until the field looked at is all there.
    check_prefixes(&dev, &to_shunt, 34, XDP_REDIRECT);
    check_prefixes(&dev, &arp(1, PEER4, SHUNT4), 42, XDP_REDIRECT);
    check_prefixes(&dev, &to_shunt6, 54, XDP_REDIRECT);
    check_prefixes(&dev, &ns_shunt, 78, XDP_REDIRECT);

    // Addresses come and go without reloading.
    let extra = IpAddr::from([192, 0, 2, 9]);
    assert_eq!(run(&ipv4([192, 0, 2, 9], 17, &udp)), XDP_PASS);
    dev.steering().add_addr(extra).unwrap();
    assert_eq!(run(&ipv4([192, 0, 2, 9], 17, &udp)), XDP_REDIRECT);
    assert!(dev.steering().remove_addr(extra).unwrap());
    assert!(!dev.steering().remove_addr(extra).unwrap());
    assert_eq!(run(&ipv4([192, 0, 2, 9], 17, &udp)), XDP_PASS);
    assert!(dev.steering().add_port(Proto::Udp, 9000).is_err());
}

#[test]
fn shared_program_decisions() {
    let bed = bed();
    let dev = open(
        &bed.a,
        XdpOptions {
            mode: Mode::Shared,
            ..Default::default()
        },
    );
    let st = dev.steering();
    let run = |f: &[u8]| verdict(&dev, f);
    eprintln!("shared program: {} instructions", st.instruction_count());
    st.add_port(Proto::Udp, 9000).unwrap();
    st.add_port(Proto::Tcp, 80).unwrap();
    let udp9000 = ipv4(KERNEL4, 17, &l4(17, 5000, 9000));
    assert_eq!(run(&udp9000), XDP_REDIRECT);
    assert_eq!(run(&ipv4(KERNEL4, 17, &l4(17, 5000, 9001))), XDP_PASS);
    assert_eq!(run(&ipv4(KERNEL4, 6, &l4(6, 5000, 80))), XDP_REDIRECT);
    // The port is per protocol.
    assert_eq!(run(&ipv4(KERNEL4, 6, &l4(6, 5000, 9000))), XDP_PASS);
    assert_eq!(run(&ipv4(KERNEL4, 17, &l4(17, 5000, 80))), XDP_PASS);
    // The source port does not count.
    assert_eq!(run(&ipv4(KERNEL4, 17, &l4(17, 9000, 5000))), XDP_PASS);
    // IPv4 options move the L4 header.
    let with_opts = ipv4_full(KERNEL4, 17, &l4(17, 5000, 9000), 3, 0);
    assert_eq!(run(&with_opts), XDP_REDIRECT);
    check_prefixes(&dev, &with_opts, 14 + 32 + 4, XDP_REDIRECT);
    // Fragments (first or not) are the kernel's.
    assert_eq!(
        run(&ipv4_full(KERNEL4, 17, &l4(17, 5000, 9000), 0, 0x2000)),
        XDP_PASS
    );
    assert_eq!(
        run(&ipv4_full(KERNEL4, 17, &l4(17, 5000, 9000), 0, 0x0010)),
        XDP_PASS
    );
    // A bad header length is the kernel's.
    let mut bad = udp9000.clone();
    bad[14] = 0x44;
    assert_eq!(run(&bad), XDP_PASS);
    // IPv6, with no extension headers.
    let udp6 = ipv6(KERNEL6, 17, &l4(17, 5000, 9000));
    assert_eq!(run(&udp6), XDP_REDIRECT);
    assert_eq!(run(&ipv6(KERNEL6, 6, &l4(6, 5000, 80))), XDP_REDIRECT);
    assert_eq!(run(&ipv6(KERNEL6, 6, &l4(6, 5000, 81))), XDP_PASS);
    let mut hbh = vec![17u8, 0, 1, 4, 0, 0, 0, 0];
    hbh.extend_from_slice(&l4(17, 5000, 9000));
    assert_eq!(run(&ipv6(KERNEL6, 0, &hbh)), XDP_PASS);
    // ARP and NDP are the kernel's in shared mode.
    assert_eq!(run(&arp(1, PEER4, KERNEL4)), XDP_PASS);
    assert_eq!(
        run(&ipv6(
            solicited_node(KERNEL6),
            58,
            &icmp6_target(135, KERNEL6)
        )),
        XDP_PASS
    );
    // ICMP errors quoting a packet shunt sent (the quoted *source* port
    // is shunt's) are shunt's; others, and echo, are the kernel's.
    let icmp4 = |ty: u8, code: u8, quoted: &[u8]| {
        let mut m = vec![ty, code, 0, 0, 0, 0, 5, 220];
        m.extend_from_slice(&quoted[14..]);
        ipv4(KERNEL4, 1, &m)
    };
    let sent_udp = ipv4(PEER4, 17, &l4(17, 9000, 5000));
    let unreach = icmp4(3, 3, &sent_udp);
    assert_eq!(run(&unreach), XDP_REDIRECT);
    check_prefixes(&dev, &unreach, 14 + 20 + 8 + 20 + 2, XDP_REDIRECT);
    let frag_needed = icmp4(3, 4, &ipv4(PEER4, 6, &l4(6, 80, 5000)));
    assert_eq!(run(&frag_needed), XDP_REDIRECT);
    assert_eq!(run(&icmp4(11, 0, &sent_udp)), XDP_REDIRECT);
    assert_eq!(run(&icmp4(12, 0, &sent_udp)), XDP_REDIRECT);
    // Options in the quoted header move its L4 header.
    let quoted_opts = ipv4_full(PEER4, 17, &l4(17, 9000, 5000), 2, 0);
    assert_eq!(run(&icmp4(3, 1, &quoted_opts)), XDP_REDIRECT);
    let mut bad_quote = unreach.clone();
    bad_quote[14 + 20 + 8] = 0x44;
    assert_eq!(run(&bad_quote), XDP_PASS);
    assert_eq!(
        run(&icmp4(3, 3, &ipv4(PEER4, 17, &l4(17, 5000, 9000)))),
        XDP_PASS
    );
    assert_eq!(
        run(&icmp4(3, 3, &ipv4(PEER4, 6, &l4(6, 9000, 5000)))),
        XDP_PASS
    );
    assert_eq!(run(&icmp4(8, 0, &sent_udp)), XDP_PASS);
    assert_eq!(run(&icmp4(0, 0, &sent_udp)), XDP_PASS);
    let icmp6 = |ty: u8, quoted: &[u8]| {
        let mut m = vec![ty, 0, 0, 0, 0, 0, 5, 0];
        m.extend_from_slice(&quoted[14..]);
        ipv6(KERNEL6, 58, &m)
    };
    let too_big = icmp6(2, &ipv6(PEER6, 6, &l4(6, 80, 5000)));
    assert_eq!(run(&too_big), XDP_REDIRECT);
    check_prefixes(&dev, &too_big, 14 + 40 + 8 + 40 + 2, XDP_REDIRECT);
    for ty in [1, 3, 4] {
        assert_eq!(
            run(&icmp6(ty, &ipv6(PEER6, 17, &l4(17, 9000, 5000)))),
            XDP_REDIRECT,
            "ICMPv6 type {ty}"
        );
    }
    assert_eq!(
        run(&icmp6(1, &ipv6(PEER6, 17, &l4(17, 9001, 5000)))),
        XDP_PASS
    );
    for ty in [0, 128, 129, 135, 136] {
        assert_eq!(
            run(&icmp6(ty, &ipv6(PEER6, 17, &l4(17, 9000, 5000)))),
            XDP_PASS,
            "ICMPv6 type {ty}"
        );
    }
    // Truncated.
    check_prefixes(&dev, &udp9000, 38, XDP_REDIRECT);
    check_prefixes(&dev, &udp6, 58, XDP_REDIRECT);
    // Removing a port.
    assert!(st.remove_port(Proto::Udp, 9000).unwrap());
    assert!(!st.remove_port(Proto::Udp, 9000).unwrap());
    assert_eq!(run(&udp9000), XDP_PASS);
    assert!(st.add_addr(IpAddr::from(SHUNT4)).is_err());
}

/// Random frames never make the program do anything but PASS or
/// REDIRECT (and the verifier already proved it cannot read out of
/// bounds).
#[test]
fn random_frames_pass_or_redirect() {
    let bed = bed();
    let d = open(&bed.a, dedicated());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds = [
        ipv4(SHUNT4, 17, &l4(17, 1, 2)),
        arp(1, PEER4, SHUNT4),
        ipv6(SHUNT6, 17, &l4(17, 1, 2)),
        ipv6(solicited_node(SHUNT6), 58, &icmp6_target(135, SHUNT6)),
    ];
    for i in 0..4000 {
        let mut f = seeds[i % seeds.len()].clone();
        let len = 14 + (next() as usize % (f.len() - 13));
        f.truncate(len);
        for _ in 0..(next() % 4) {
            let at = next() as usize % f.len();
            f[at] = next() as u8;
        }
        let v = verdict(&d, &f);
        assert!(v == XDP_PASS || v == XDP_REDIRECT, "verdict {v}");
    }
}

// ---------------------------------------------------------------------------
// (b) Shunt and the kernel on one interface.
// ---------------------------------------------------------------------------

/// An ARP reply from shunt's address to the asker, if `f` asks for it.
fn arp_reply(f: &[u8], mac: [u8; 6]) -> Option<Vec<u8>> {
    if f.len() < 42 || f[12..14] != [8, 6] || f[20..22] != [0, 1] || f[38..42] != SHUNT4 {
        return None;
    }
    let mut r = f[..42].to_vec();
    r[0..6].copy_from_slice(&f[6..12]);
    r[6..12].copy_from_slice(&mac);
    r[20..22].copy_from_slice(&[0, 2]);
    r[22..28].copy_from_slice(&mac);
    r[28..32].copy_from_slice(&SHUNT4);
    r[32..38].copy_from_slice(&f[22..28]);
    r[38..42].copy_from_slice(&f[28..32]);
    Some(r)
}

/// (destination, port, payload, UDP checksum correct) of an IPv4/IPv6 UDP
/// frame.
fn udp_of(f: &[u8]) -> Option<(IpAddr, u16, Vec<u8>, bool)> {
    let sp = SlicedPacket::from_ethernet(f).ok()?;
    let (src, dst) = match sp.net.as_ref()? {
        NetSlice::Ipv4(ip) => (
            IpAddr::from(ip.header().source()),
            IpAddr::from(ip.header().destination()),
        ),
        NetSlice::Ipv6(ip) => (
            IpAddr::from(ip.header().source()),
            IpAddr::from(ip.header().destination()),
        ),
    };
    let TransportSlice::Udp(u) = sp.transport? else {
        return None;
    };
    let h = u.to_header();
    let ok = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.calc_checksum_ipv4_raw(s.octets(), d.octets(), u.payload())
                .ok()
                == Some(h.checksum)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            h.calc_checksum_ipv6_raw(s.octets(), d.octets(), u.payload())
                .ok()
                == Some(h.checksum)
        }
        _ => false,
    };
    Some((dst, h.destination_port, u.payload().to_vec(), ok))
}

fn side_by_side(attach: Attach) {
    let bed = bed();
    // The peer keeps its offloads: its UDP checksums reach the XDP socket
    // partial and unmarked, and the device must say so (counted below).
    let mut dev = open(
        &bed.a,
        XdpOptions {
            attach,
            ..dedicated()
        },
    );
    assert!(!dev.zero_copy());
    let mac = dev.mac();
    let show = ip(&["-n", &bed.a, "link", "show", "veth0"]);
    assert!(show.contains("xdp"), "{show}");
    eprintln!(
        "{attach:?}: native={} ({})",
        dev.native(),
        show.lines()
            .find(|l| l.contains("prog/xdp"))
            .unwrap_or("")
            .trim()
    );

    const N: u32 = 300;
    // The kernel's socket on its own address.
    let kernel = spawn_in(&bed.a, || {
        let s = UdpSocket::bind("192.0.2.3:9000").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut seen = vec![false; N as usize];
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            if n >= 4 {
                let i = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                if i < seen.len() {
                    seen[i] = true;
                }
            }
        }
        seen.iter().filter(|&&b| b).count() as u32
    });
    // The peer: UDP to shunt's address and to the kernel's, interleaved,
    // over IPv4 and IPv6 (shunt answers ARP below; NDP by a static
    // neighbour entry, as the test has no NDP responder).
    ip(&[
        "-n",
        &bed.b,
        "neigh",
        "replace",
        "2001:db8::1",
        "lladdr",
        &mac.map(|b| format!("{b:02x}")).join(":"),
        "dev",
        "veth1",
    ]);
    let peer = spawn_in(&bed.b, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let s6 = UdpSocket::bind("[::]:0").unwrap();
        // One first, so that ARP is resolved before the burst.
        let _ = s.send_to(&u32::MAX.to_be_bytes(), "192.0.2.1:9000");
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..N {
            let mut msg = vec![0u8; 64 + (i as usize % 900)];
            msg[..4].copy_from_slice(&i.to_be_bytes());
            s.send_to(&msg, "192.0.2.1:9000").unwrap();
            s.send_to(&msg, "192.0.2.3:9000").unwrap();
            s6.send_to(&msg, "[2001:db8::1]:9000").unwrap();
            if i % 32 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let mut seen4 = vec![false; N as usize];
    let mut seen6 = vec![false; N as usize];
    let (mut bad_csum, mut other, mut arps, mut partial) = (0, 0, 0, 0);
    let mut peer_mac = None;
    assert!(
        dev.infers_partial_csum(),
        "a veth must be checked for partial checksums"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !(seen4.iter().all(|&b| b) && seen6.iter().all(|&b| b)) {
        let mut replies: Vec<Vec<u8>> = Vec::new();
        dev.recv_batch(64, |f, hdr| {
            let mut owned;
            let mut f = f;
            if hdr.needs_csum() {
                partial += 1;
                owned = f.to_vec();
                shunt_ring::offload::complete_checksum(&mut owned, hdr).unwrap();
                f = &owned;
            }
            if let Some(r) = arp_reply(f, mac) {
                arps += 1;
                peer_mac = Some(<[u8; 6]>::try_from(&f[6..12]).unwrap());
                replies.push(r);
                return;
            }
            match udp_of(f) {
                Some((dst, 9000, p, ok)) if p.len() >= 4 => {
                    let i = u32::from_be_bytes(p[..4].try_into().unwrap());
                    if !ok {
                        bad_csum += 1;
                    }
                    let seen = match dst {
                        IpAddr::V4(d) if d.octets() == SHUNT4 => &mut seen4,
                        IpAddr::V6(d) if d.octets() == SHUNT6 => &mut seen6,
                        _ => {
                            other += 1;
                            return;
                        }
                    };
                    if let Some(s) = seen.get_mut(i as usize) {
                        *s = true;
                    }
                }
                _ => other += 1,
            }
        });
        for r in &replies {
            dev.send(r, &VnetHdr::default()).unwrap();
        }
        dev.flush();
        wait_readable(&dev, 5);
    }
    peer.join().unwrap();
    let kernel_got = kernel.join().unwrap();
    let (got4, got6) = (
        seen4.iter().filter(|&&b| b).count(),
        seen6.iter().filter(|&&b| b).count(),
    );
    let st = dev.stats();
    eprintln!(
        "{attach:?}: shunt got {got4}/{N} IPv4 and {got6}/{N} IPv6 datagrams ({partial} with partial checksums completed, {bad_csum} with bad UDP checksums, {other} other frames, {arps} ARP requests answered); the kernel got {kernel_got}/{N}; {st:?}"
    );
    // Every datagram from the peer's kernel came partial: the inference is
    // what made their checksums good.
    assert!(
        partial >= 2 * N as usize,
        "{partial} partial checksums inferred"
    );
    assert!(arps >= 1);
    assert_eq!(got4, N as usize, "IPv4 datagrams to shunt");
    assert_eq!(got6, N as usize, "IPv6 datagrams to shunt");
    assert_eq!(kernel_got, N, "datagrams to the kernel");
    assert_eq!(bad_csum, 0);

    // And the other way: shunt sends, the peer's kernel receives.
    let peer_mac = peer_mac.unwrap();
    assert_eq!(peer_mac, mac_of(&bed.b, "veth1"));
    let rx = spawn_in(&bed.b, || {
        // Dual-stack: IPv4 senders show as ::ffff:192.0.2.1.
        let s = UdpSocket::bind("[::]:9001").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut n = 0;
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = s.recv_from(&mut buf) {
            assert_eq!(len, 100);
            let ip = match from.ip() {
                IpAddr::V6(v6) => v6
                    .to_ipv4_mapped()
                    .map(IpAddr::V4)
                    .unwrap_or(IpAddr::V6(v6)),
                v4 => v4,
            };
            assert!(
                ip == IpAddr::from(SHUNT4) || ip == IpAddr::from(SHUNT6),
                "{from}"
            );
            n += 1;
            if n == 2 * N {
                break;
            }
        }
        n
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut frame = Vec::new();
    for i in 0..N {
        for v6 in [false, true] {
            frame.clear();
            let b = PacketBuilder::ethernet2(mac, peer_mac);
            let b = if v6 {
                b.ipv6(SHUNT6, PEER6, 64)
            } else {
                b.ipv4(SHUNT4, PEER4, 64)
            };
            let mut payload = [0u8; 100];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            b.udp(9000, 9001).write(&mut frame, &payload).unwrap();
            while dev.send(&frame, &VnetHdr::default()).is_err() {
                dev.flush();
            }
        }
        // Paced, so that the peer's socket buffer keeps up.
        if i % 16 == 15 {
            dev.flush();
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    dev.flush();
    let got = rx.join().unwrap();
    let st = dev.stats();
    eprintln!(
        "{attach:?}: the peer got {got}/{} frames sent by shunt; {st:?}",
        2 * N
    );
    assert_eq!(got, 2 * N);
    assert_eq!(st.tx_packets, (2 * N + arps) as u64);
}

#[test]
fn kernel_and_shunt_side_by_side_native() {
    side_by_side(Attach::Native);
}

#[test]
fn kernel_and_shunt_side_by_side_generic() {
    side_by_side(Attach::Generic);
}

// ---------------------------------------------------------------------------
// (c) The program goes with the process.
// ---------------------------------------------------------------------------

/// Not a test: the child of `sigkill_detaches_the_program`, which runs
/// this test binary again with SHUNT_XDP_HOLD_NS set.
#[test]
#[ignore]
fn hold_xdp_helper() {
    let Ok(ns) = std::env::var("SHUNT_XDP_HOLD_NS") else {
        return;
    };
    let dev = open(&ns, dedicated());
    println!("READY {}", dev.native());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn sigkill_detaches_the_program() {
    let bed = bed();
    // The kernel has shunt's address too: while the program runs, frames
    // for it go to the (unread) XDP socket; afterwards, to the kernel.
    bed.tb.addr(&bed.a, "veth0", "192.0.2.1/24");
    let mac = mac_of(&bed.a, "veth0");
    ip(&[
        "-n",
        &bed.b,
        "neigh",
        "replace",
        "192.0.2.1",
        "lladdr",
        &mac.map(|b| format!("{b:02x}")).join(":"),
        "dev",
        "veth1",
    ]);
    let count_at_kernel = |bed: &Bed| {
        let rx = spawn_in(&bed.a, || {
            let s = UdpSocket::bind("192.0.2.1:9000").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(400)))
                .unwrap();
            let mut n = 0;
            let mut buf = [0u8; 64];
            while s.recv_from(&mut buf).is_ok() {
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(50));
        spawn_in(&bed.b, || {
            let s = UdpSocket::bind("192.0.2.2:0").unwrap();
            for _ in 0..10 {
                s.send_to(b"hello", "192.0.2.1:9000").unwrap();
            }
        })
        .join()
        .unwrap();
        rx.join().unwrap()
    };
    assert_eq!(count_at_kernel(&bed), 10);

    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "hold_xdp_helper", "--nocapture"])
        .env("SHUNT_XDP_HOLD_NS", &bed.a)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    /// Kills the child if the test fails before it does.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("READY"));
    assert!(ready.is_some(), "the child did not attach");
    let show = ip(&["-n", &bed.a, "link", "show", "veth0"]);
    assert!(show.contains("prog/xdp"), "{show}");
    assert_eq!(count_at_kernel(&bed), 0, "the program steers to the child");

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let _ = child.0.wait();
    let t = Instant::now();
    let mut show = String::new();
    while t.elapsed() < Duration::from_secs(5) {
        show = ip(&["-n", &bed.a, "link", "show", "veth0"]);
        if !show.contains("xdp") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("detached {:?} after SIGKILL", t.elapsed());
    assert!(!show.contains("xdp"), "still attached: {show}");
    assert_eq!(
        count_at_kernel(&bed),
        10,
        "the kernel has the interface back"
    );
}

// ---------------------------------------------------------------------------
// (d) Errors, modes.
// ---------------------------------------------------------------------------

/// Clear capabilities from the calling thread's effective set.
fn drop_caps(caps: &[u32]) {
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
        for &c in caps {
            d[(c / 32) as usize].effective &= !(1 << (c % 32));
        }
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()),
            0
        );
    }
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

#[test]
fn open_errors_are_one_clear_line() {
    let bed = bed();
    let e = open_in(&bed.a, "nonexistent", dedicated()).unwrap_err();
    assert_eq!(e.to_string(), "interface nonexistent not found");

    // Without CAP_NET_ADMIN and CAP_BPF (nor CAP_SYS_ADMIN, which
    // implies it).
    let e = netns::run_in(&bed.a, || {
        drop_caps(&[CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN]);
        XdpDevice::open("veth0", &dedicated())
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "AF_XDP on veth0 needs CAP_NET_ADMIN and CAP_BPF (run as root)"
    );

    let bad = XdpOptions {
        rx_frames: 1000,
        ..dedicated()
    };
    let e = open_in(&bed.a, "veth0", bad).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("bad AF_XDP options for veth0: rx_frames 1000"),
        "{e}"
    );

    // An MTU whose frames do not fit a 4096-byte UMEM frame.
    ip(&["-n", &bed.a, "link", "set", "veth0", "mtu", "9000"]);
    let e = open_in(&bed.a, "veth0", dedicated()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "AF_XDP on veth0: MTU 9000 is over 3822, the most a 4096-byte UMEM frame holds (lower the MTU or use AF_PACKET)"
    );
    // One that fits a frame but not native veth XDP.
    ip(&["-n", &bed.a, "link", "set", "veth0", "mtu", "3800"]);
    ip(&["-n", &bed.b, "link", "set", "veth1", "mtu", "3800"]);
    match open_in(
        &bed.a,
        "veth0",
        XdpOptions {
            attach: Attach::Native,
            ..dedicated()
        },
    ) {
        Err(e) => {
            eprintln!("native at MTU 3800: {e}");
            assert!(matches!(e, DeviceError::DriverMtu { .. }), "{e}");
        }
        Ok(d) => eprintln!("native at MTU 3800 works (native={})", d.native()),
    }
    // Auto falls back to generic XDP.
    let d = open_in(&bed.a, "veth0", dedicated()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("auto at MTU 3800: native={}", d.native());
    drop(d);
    ip(&["-n", &bed.a, "link", "set", "veth0", "mtu", "1500"]);

    // A second device on the same queue.
    let first = open(&bed.a, dedicated());
    let e = open_in(&bed.a, "veth0", dedicated()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "AF_XDP on veth0: RX queue 0 is taken by another AF_XDP socket"
    );
    drop(first);
    // Another XDP program on the interface.
    let ifindex: u32 = ip(&["-n", &bed.a, "-o", "link", "show", "veth0"])
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let other = netns::run_in(&bed.a, move || {
        let mut s = XdpSteering::load("veth0", Mode::Shared, 1).unwrap();
        s.attach(ifindex, Attach::Generic, 1500).unwrap();
        s
    })
    .unwrap();
    let e = open_in(&bed.a, "veth0", dedicated()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "AF_XDP on veth0: another XDP program is attached to the interface"
    );
    drop(other);

    let out = bed.tb.sh(&bed.a, "ip link set veth0 down");
    assert!(out.status.success());
    let e = open_in(&bed.a, "veth0", dedicated()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "interface veth0 is down (bring it up with `ip link set veth0 up`)"
    );
}

#[test]
fn zero_copy_falls_back_to_copy_on_veth() {
    let bed = bed();
    for attach in [Attach::Native, Attach::Generic] {
        let d = open(
            &bed.a,
            XdpOptions {
                zero_copy: true,
                attach,
                ..dedicated()
            },
        );
        eprintln!(
            "{attach:?} with zero_copy asked: zero_copy={} native={}",
            d.zero_copy(),
            d.native()
        );
        assert!(!d.zero_copy());
        assert_eq!(d.native(), attach == Attach::Native);
    }
}

/// A frame the kernel drops on the way out (here: longer than the peer's
/// MTU, so veth refuses to forward it; a full backlog on the peer does
/// the same) must not hold back the frames queued after it: one flush
/// sends them all. In copy mode the kick that meets the drop fails with
/// EBUSY after consuming that descriptor, and the rest stay on the TX
/// ring; before the fix flush stopped there and they waited for the next
/// flush, which may be the next RTO.
#[test]
fn a_dropped_frame_does_not_hold_back_the_rest_of_the_batch() {
    let bed = bed();
    ip(&["-n", &bed.b, "link", "set", "veth1", "mtu", "1000"]);
    let peer = mac_of(&bed.b, "veth1");
    let me = mac_of(&bed.a, "veth0");
    let udp = |payload: usize| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(me, peer)
            .ipv4(SHUNT4, PEER4, 64)
            .udp(9000, 9)
            .write(&mut f, &vec![0u8; payload])
            .unwrap();
        f
    };
    let (big, small) = (udp(1400), udp(18));
    let hdr = VnetHdr::default();
    // Counted by a socket, not by the peer's rx_packets, which also counts
    // what the kernel in `a` sends on its own (MLD, router solicitations).
    let sink = netns::run_in(&bed.b, || UdpSocket::bind("192.0.2.2:9"))
        .expect("enter namespace")
        .unwrap();
    sink.set_nonblocking(true).unwrap();
    for attach in [Attach::Native, Attach::Generic] {
        let mut dev = open(
            &bed.a,
            XdpOptions {
                attach,
                ..dedicated()
            },
        );
        for f in [&big, &small, &big, &small, &small] {
            dev.send(f, &hdr).unwrap();
        }
        dev.flush();
        std::thread::sleep(Duration::from_millis(100));
        let mut got = 0;
        let mut buf = [0u8; 2048];
        while sink.recv(&mut buf).is_ok() {
            got += 1;
        }
        assert_eq!(
            got, 3,
            "{attach:?}: the peer got {got} of the 3 small frames after one flush"
        );
        assert_eq!(dev.tx_in_flight(), 0, "{attach:?}: every frame completed");
        assert_eq!(dev.stats().tx_dropped, 2, "{attach:?}: the two big frames");
    }
}

/// Byte `i` of the stream the kernel sends in
/// `generic_xdp_takes_frames_longer_than_a_umem_frame`.
fn stream_byte(i: usize) -> u8 {
    (i % 251) as u8 ^ (i >> 16) as u8
}

/// A TCP segment from shunt's address (port 5001) to the peer.
#[allow(clippy::too_many_arguments)]
fn tcp_out(
    me: [u8; 6],
    peer: [u8; 6],
    dport: u16,
    seq: u32,
    ack: u32,
    syn: bool,
    fin: bool,
    window: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(me, peer)
        .ipv4(SHUNT4, PEER4, 64)
        .tcp(5001, dport, seq, window)
        .ack(ack);
    let b = if syn {
        // MSS 1460, NOP, window scale 7: the sender may have 8 MiB in
        // flight, so TSO makes frames of up to 64 KiB.
        b.syn()
            .options_raw(&[2, 4, 0x05, 0xb4, 1, 3, 3, 7])
            .unwrap()
    } else if fin {
        b.fin()
    } else {
        b
    };
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    f
}

/// Generic XDP hands over the skb as the kernel built it: from a local
/// peer with TSO on (as it is by default on a veth), TCP frames of up to
/// 64 KiB. The kernel drops those at the XDP socket unless it is bound
/// with XDP_USE_SG, and then they come in several descriptors, which the
/// device must put together into one frame, with the partial checksum
/// the peer left recognised. Here a kernel TCP sender sends 8 MiB to a
/// minimal in-order receiver written on the device (SYN-ACK, an ACK per
/// segment, ARP), and every byte must arrive, in frames longer than a
/// UMEM frame.
#[test]
fn generic_xdp_takes_frames_longer_than_a_umem_frame() {
    const LEN: usize = 8 << 20;
    let bed = bed();
    let mut dev = open(
        &bed.a,
        XdpOptions {
            attach: Attach::Generic,
            ..dedicated()
        },
    );
    assert!(!dev.native());
    assert!(dev.multi_buffer(), "XDP_USE_SG refused (Linux 6.6 has it)");
    let me = dev.mac();
    let sender = spawn_in(&bed.b, || {
        let addr = "192.0.2.1:5001".parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        let data: Vec<u8> = (0..LEN).map(stream_byte).collect();
        s.write_all(&data)?;
        s.shutdown(Shutdown::Write)
    });

    let mut got: Vec<u8> = Vec::with_capacity(LEN);
    let (mut rcv_nxt, mut isn1, mut fin, mut peer) = (0u32, 0u32, false, None);
    let mut fin_at: Option<usize> = None;
    let mut ooo: std::collections::BTreeMap<usize, Vec<u8>> = Default::default();
    let iss = 0x1000_0000u32;
    let (mut big, mut largest, mut big_partial, mut small) = (0usize, 0usize, 0usize, 0usize);
    let mut bad_csum = 0;
    let mut unparsed: Vec<usize> = Vec::new();
    // The last segments: (sequence number less rcv_nxt, payload length).
    let mut recent: Vec<(i32, usize)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fin && Instant::now() < deadline {
        let mut frames: Vec<(Vec<u8>, VnetHdr)> = Vec::new();
        dev.recv_batch(64, |f, hdr| frames.push((f.to_vec(), *hdr)));
        let mut replies: Vec<Vec<u8>> = Vec::new();
        for (mut f, hdr) in frames {
            if f.len() > 4096 {
                big += 1;
                largest = largest.max(f.len());
                if hdr.needs_csum() {
                    big_partial += 1;
                }
            } else {
                small += 1;
            }
            if hdr.needs_csum() {
                shunt_ring::offload::complete_checksum(&mut f, &hdr).unwrap();
            }
            if let Some(r) = arp_reply(&f, me) {
                replies.push(r);
                continue;
            }
            let Ok(sp) = SlicedPacket::from_ethernet(&f) else {
                // A frame cut short (or put together wrongly) lands here.
                unparsed.push(f.len());
                continue;
            };
            let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(t))) = (&sp.net, &sp.transport)
            else {
                continue;
            };
            if ip.header().destination() != SHUNT4 || t.destination_port() != 5001 {
                continue;
            }
            if recent.len() == 16 {
                recent.remove(0);
            }
            recent.push((
                t.sequence_number().wrapping_sub(rcv_nxt) as i32,
                t.payload().len(),
            ));
            let h = ip.header();
            let sum = t
                .to_header()
                .calc_checksum_ipv4_raw(h.source(), h.destination(), t.payload())
                .unwrap();
            if sum != t.checksum() {
                bad_csum += 1;
                continue;
            }
            let src_mac: [u8; 6] = f[6..12].try_into().unwrap();
            let dport = t.source_port();
            if t.syn() {
                isn1 = t.sequence_number().wrapping_add(1);
                rcv_nxt = isn1;
                peer = Some((src_mac, dport));
                replies.push(tcp_out(
                    me, src_mac, dport, iss, rcv_nxt, true, false, 65535,
                ));
                continue;
            }
            // Out-of-order data is kept (the sender, without SACK, would
            // otherwise send it all again after a timeout: a thread of this
            // test held up on two busy cores is enough for that).
            let off = t.sequence_number().wrapping_sub(isn1) as usize;
            let len = t.payload().len();
            if t.fin() {
                fin_at = Some(off + len);
            }
            if off + len > got.len() && off < LEN {
                let e = ooo.entry(off).or_default();
                if e.len() < len {
                    *e = t.payload().to_vec();
                }
            }
            while let Some(e) = ooo.first_entry() {
                if *e.key() > got.len() {
                    break;
                }
                let (o, d) = e.remove_entry();
                if o + d.len() > got.len() {
                    got.extend_from_slice(&d[got.len() - o..]);
                }
            }
            rcv_nxt = isn1.wrapping_add(got.len() as u32);
            if fin_at == Some(got.len()) {
                fin = true;
                rcv_nxt = rcv_nxt.wrapping_add(1);
            }
            // In order or not, say where we are (duplicate ACKs bring a
            // lost segment back at once).
            replies.push(tcp_out(
                me,
                src_mac,
                dport,
                iss.wrapping_add(1),
                rcv_nxt,
                false,
                fin,
                65535,
            ));
        }
        for r in &replies {
            while dev.send(r, &VnetHdr::default()).is_err() {
                dev.flush();
            }
        }
        dev.flush();
        if replies.is_empty() {
            wait_readable(&dev, 5);
        }
    }
    let st = dev.stats();
    eprintln!(
        "generic XDP: {} of {LEN} bytes, {big} frames over 4096 bytes (largest {largest}, {big_partial} partial), {small} others, {bad_csum} bad checksums, unparsed: {unparsed:?}; last segments (seq - rcv_nxt, len): {recent:?}; {st:?}",
        got.len()
    );
    let sent = sender.join().unwrap();
    assert!(peer.is_some(), "no SYN");
    assert!(sent.is_ok(), "the sender: {sent:?}");
    assert!(fin, "no FIN in time: {} of {LEN} bytes", got.len());
    assert_eq!(got.len(), LEN);
    let first_bad = got
        .iter()
        .enumerate()
        .position(|(i, &b)| b != stream_byte(i));
    assert_eq!(first_bad, None, "stream differs");
    assert!(big > 0, "no frame longer than a UMEM frame");
    assert!(largest > 4096 * 2, "largest frame {largest} bytes");
    assert_eq!(big_partial, big, "every TSO frame has a partial checksum");
    assert_eq!(bad_csum, 0);
    assert!(
        unparsed.is_empty(),
        "frames that do not parse: {unparsed:?}"
    );
    assert_eq!(st.rx_errors, 0);
}

/// The same path with UDP: a kernel sender's UDP_SEGMENT sends (30000
/// bytes in 1400-byte datagrams) cross the veth as one GSO frame, and
/// generic XDP hands it over whole. It stands for 22 datagrams of a size
/// nothing tells the socket, so the device drops it (counted) rather than
/// deliver one wrong 30000-byte datagram; datagrams that fit a frame
/// still come through.
#[test]
fn generic_xdp_drops_udp_gso_aggregates() {
    let bed = bed();
    let mut dev = open(
        &bed.a,
        XdpOptions {
            attach: Attach::Generic,
            ..dedicated()
        },
    );
    assert!(dev.multi_buffer());
    let me = dev.mac();
    let sender = spawn_in(&bed.b, || {
        use std::os::fd::AsRawFd;
        let s = UdpSocket::bind("192.0.2.2:0").unwrap();
        // One first, so that ARP is resolved before the rest.
        s.send_to(&[0u8; 100], "192.0.2.1:9000").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let seg: libc::c_int = 1400;
        // SAFETY: a live socket, and a c_int option of its size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                &seg as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "UDP_SEGMENT");
        for _ in 0..3 {
            s.send_to(&[7u8; 30000], "192.0.2.1:9000").unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        // And one of one segment only.
        s.send_to(&[9u8; 1000], "192.0.2.1:9000").unwrap();
    });
    let (mut lens, mut arps) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let mut replies = Vec::new();
        dev.recv_batch(64, |f, _| {
            if let Some(r) = arp_reply(f, me) {
                arps += 1;
                replies.push(r);
            } else if let Some((_, 9000, p, _)) = udp_of(f) {
                lens.push(p.len());
            }
        });
        for r in &replies {
            dev.send(r, &VnetHdr::default()).unwrap();
        }
        dev.flush();
        wait_readable(&dev, 5);
    }
    sender.join().unwrap();
    let st = dev.stats();
    eprintln!("UDP GSO over generic XDP: datagrams of {lens:?} delivered; {st:?}");
    assert!(arps >= 1);
    assert!(lens.iter().all(|&l| l <= 1472), "{lens:?}");
    assert!(lens.contains(&100) && lens.contains(&1000), "{lens:?}");
    assert_eq!(st.rx_errors, 3, "the three aggregates");
}

// ---------------------------------------------------------------------------
// Figures.
// ---------------------------------------------------------------------------

/// The peer's rx_packets on veth1.
fn peer_rx_packets(ns: &str) -> u64 {
    let out = ip(&["-n", ns, "-s", "-o", "link", "show", "veth1"]);
    // "... RX: bytes packets errors ... \    <bytes> <packets> ..."
    let after = out.split("RX:").nth(1).unwrap_or("");
    let nums: Vec<u64> = after
        .split(|c: char| c.is_whitespace() || c == '\\')
        .filter_map(|w| w.parse().ok())
        .collect();
    nums.get(1).copied().unwrap_or(0)
}

/// Transmit rate, AF_XDP (copy mode, native and generic attach) against
/// AF_PACKET (TX ring), 64-byte frames, counted by the peer's rx_packets
/// (no reader): one second each, best of three.
/// `cargo test --release -p shunt-ring --test xdp -- --ignored --nocapture tx_rate`
#[test]
#[ignore]
fn tx_rate() {
    use shunt_ring::afpacket::{AfPacket, AfPacketOptions};
    let bed = bed();
    let peer = mac_of(&bed.b, "veth1");
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(mac_of(&bed.a, "veth0"), peer)
        .ipv4(SHUNT4, PEER4, 64)
        .udp(9000, 9)
        .write(&mut frame, &[0u8; 18])
        .unwrap();
    let secs = Duration::from_secs(1);
    let measure = |send: &mut dyn FnMut()| {
        let mut best = 0f64;
        for _ in 0..3 {
            let before = peer_rx_packets(&bed.b);
            let t = Instant::now();
            while t.elapsed() < secs {
                send();
            }
            std::thread::sleep(Duration::from_millis(50));
            let n = peer_rx_packets(&bed.b) - before;
            best = best.max(n as f64 / t.elapsed().as_secs_f64());
        }
        best
    };
    let hdr = VnetHdr::default();
    let mut results = Vec::new();
    for attach in [Attach::Native, Attach::Generic] {
        let mut dev = open(
            &bed.a,
            XdpOptions {
                attach,
                ..dedicated()
            },
        );
        let pps = measure(&mut || {
            for _ in 0..64 {
                if dev.send(&frame, &hdr).is_err() {
                    dev.flush();
                }
            }
        });
        drop(dev);
        std::thread::sleep(Duration::from_millis(100));
        results.push((format!("{attach:?}").to_lowercase(), pps));
    }
    let mut ap = netns::run_in(&bed.a, || {
        AfPacket::open("veth0", &AfPacketOptions::default())
    })
    .unwrap()
    .unwrap();
    let base = measure(&mut || {
        for _ in 0..64 {
            if ap.send(&frame, &hdr).is_err() {
                ap.flush();
            }
        }
    });
    println!("BENCH tx-64b-afpacket {:.0} pps", base);
    for (name, pps) in results {
        println!("BENCH tx-64b-afxdp-copy-{name} {pps:.0} pps");
        println!(
            "RATIO tx-64b-afxdp-copy-{name}-vs-afpacket {:.2}",
            pps / base
        );
    }
}
