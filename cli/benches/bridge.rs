//! `shunt netem` forwarding rate against the kernel's own veth path, in one
//! run. A batched AF_PACKET sender (ring's TX ring, able to offer about
//! 2 Mpps here, far more than one iperf3) blasts UDP frames from namespace
//! a; what arrives is counted at b's interface. Measured twice per frame
//! size: straight through a veth pair (the kernel baseline), and through a
//! middle namespace where `shunt netem` bridges two veths.
//!
//! Prints `BENCH` and `RATIO` lines (DESIGN.md). Needs root.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shunt_ring::afpacket::{AfPacket, AfPacketOptions};
use shunt_ring::netns;
use shunt_ring::offload::VnetHdr;
use shunt_shim_tests::testbed::Testbed;

const SHUNT: &str = env!("CARGO_BIN_EXE_shunt");

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// An Ethernet/IPv4/UDP frame of `len` bytes (without FCS) from a to a MAC
/// nobody owns: every box on the path forwards it, none delivers it up.
fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = len - 14;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
    ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
    let c = shunt_ring::csum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp_len = ip_len - 20;
    f[34..36].copy_from_slice(&9999u16.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&(udp_len as u16).to_be_bytes());
    f
}

fn rx_packets(tb: &Testbed, ns: &str) -> u64 {
    let out = tb.sh(ns, "cat /sys/class/net/veth0/statistics/rx_packets");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Send `len`-byte frames from `ns`'s veth0 for `secs`; returns packets/s
/// counted at `sink_ns`'s veth0.
fn blast(tb: &Testbed, ns: &str, sink_ns: &str, len: usize, secs: f64) -> f64 {
    let f = frame(len);
    let mut dev = netns::run_in(ns, || AfPacket::open("veth0", &AfPacketOptions::default()))
        .expect("enter namespace")
        .expect("open sender");
    let before = rx_packets(tb, sink_ns);
    let sender = std::thread::spawn(move || {
        pin(0);
        let hdr = VnetHdr::default();
        let t0 = Instant::now();
        let until = Duration::from_secs_f64(secs);
        while t0.elapsed() < until {
            for _ in 0..64 {
                if dev.send(&f, &hdr).is_err() {
                    break;
                }
            }
            dev.flush();
        }
        t0.elapsed()
    });
    let elapsed = sender.join().expect("sender");
    std::thread::sleep(Duration::from_millis(200));
    let after = rx_packets(tb, sink_ns);
    (after - before) as f64 / elapsed.as_secs_f64()
}

fn netem(tb: &Testbed, m: &str) -> Child {
    let c = Command::new("taskset")
        .args([
            "-c", "1", "ip", "netns", "exec", m, SHUNT, "netem", "veth0", "veth1", "--quiet",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start shunt netem");
    let _ = tb;
    std::thread::sleep(Duration::from_millis(300));
    c
}

fn main() {
    let secs: f64 = std::env::var("BRIDGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    // Straight veth: a -- b.
    let mut direct = Testbed::new();
    let da = direct.ns("a");
    let db = direct.ns("b");
    direct.veth(&da, "veth0", &db, "veth0");
    // Bridged: a -- m [shunt netem] -- b.
    let mut bridged = Testbed::new();
    let ba = bridged.ns("a");
    let bm = bridged.ns("m");
    let bb = bridged.ns("b");
    bridged.veth(&ba, "veth0", &bm, "veth0");
    bridged.veth(&bm, "veth1", &bb, "veth0");
    let mut bridge = netem(&bridged, &bm);

    for (name, len) in [("64B", 60usize), ("1500B", 1514)] {
        let kernel = blast(&direct, &da, &db, len, secs);
        let shunt = blast(&bridged, &ba, &bb, len, secs);
        let gbps = |pps: f64| pps * (len + 4) as f64 * 8.0 / 1e9;
        println!(
            "BENCH kernel-veth-{name} {:.0} pps ({:.2} Gbit/s)",
            kernel,
            gbps(kernel)
        );
        println!(
            "BENCH netem-bridge-{name} {:.0} pps ({:.2} Gbit/s)",
            shunt,
            gbps(shunt)
        );
        println!(
            "RATIO netem-bridge-vs-kernel-veth-{name} {:.2}",
            shunt / kernel.max(1.0)
        );
    }
    let _ = bridge.kill();
    let _ = bridge.wait();
}
