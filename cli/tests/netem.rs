//! `shunt netem` end to end: two host namespaces whose veths meet in a
//! middle namespace where the bridge runs. Needs root (namespaces,
//! AF_PACKET); every test builds its own bed and removes it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shunt_ring::netns;
use shunt_shim_tests::testbed::Testbed;

const SHUNT: &str = env!("CARGO_BIN_EXE_shunt");
const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

struct Bed {
    tb: Testbed,
    a: String,
    m: String,
    b: String,
}

/// a:veth0 (192.0.2.1) -- m:veth0 [bridge] m:veth1 -- b:veth0 (192.0.2.2),
/// with static neighbour entries so that impairment never hits ARP.
fn bed() -> Bed {
    let mut tb = Testbed::new();
    let a = tb.ns("a");
    let m = tb.ns("m");
    let b = tb.ns("b");
    tb.veth(&a, "veth0", &m, "veth0");
    tb.veth(&m, "veth1", &b, "veth0");
    tb.addr(&a, "veth0", "192.0.2.1/24");
    tb.addr(&b, "veth0", "192.0.2.2/24");
    let mac = |ns: &str| {
        let out = tb.sh(ns, "cat /sys/class/net/veth0/address");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (mac_a, mac_b) = (mac(&a), mac(&b));
    assert!(
        tb.sh(
            &a,
            &format!("ip neigh replace {B} lladdr {mac_b} dev veth0 nud permanent")
        )
        .status
        .success()
    );
    assert!(
        tb.sh(
            &b,
            &format!("ip neigh replace {A} lladdr {mac_a} dev veth0 nud permanent")
        )
        .status
        .success()
    );
    Bed { tb, a, m, b }
}

impl Bed {
    /// Start the bridge with extra arguments; waits until it reports.
    fn netem(&mut self, extra: &[&str]) -> Child {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.m, SHUNT, "netem", "veth0", "veth1"])
            .args(extra);
        let child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shunt netem");
        // The devices are open once the banner is out; give the rings a moment.
        std::thread::sleep(Duration::from_millis(300));
        child
    }
}

fn stop(mut child: Child) -> String {
    // SIGTERM, as a service manager would.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert!(st.success(), "netem exited with {st}: {out}");
            return out;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "netem did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `n` numbered datagrams from a to b at a steady pace; return how
/// many distinct ones arrived.
fn udp_stream(bed: &Bed, n: u32, port: u16) -> u32 {
    let rx = netns::run_in(&bed.b, move || UdpSocket::bind((B, port)).unwrap()).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let receiver = std::thread::spawn(move || {
        let mut seen = vec![false; n as usize];
        let mut buf = [0u8; 2048];
        while let Ok(len) = rx.recv(&mut buf) {
            if len >= 4 {
                let i = u32::from_be_bytes(buf[..4].try_into().unwrap());
                if let Some(s) = seen.get_mut(i as usize) {
                    *s = true;
                }
            }
        }
        seen.iter().filter(|&&s| s).count() as u32
    });
    netns::run_in(&bed.a, move || {
        let tx = UdpSocket::bind((A, 0)).unwrap();
        let mut payload = [0u8; 200];
        let start = Instant::now();
        for i in 0..n {
            payload[..4].copy_from_slice(&i.to_be_bytes());
            tx.send_to(&payload, (B, port)).unwrap();
            // 20,000 datagrams/s: far below what the bridge moves, so only
            // the impairment drops.
            let due = start + Duration::from_micros(50 * i as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    })
    .unwrap();
    receiver.join().unwrap()
}

#[test]
fn no_connectivity_without_the_bridge() {
    let bed = bed();
    assert_eq!(udp_stream(&bed, 100, 7000), 0);
    let ping = bed.tb.sh(&bed.a, &format!("ping -c 1 -W 1 {B}"));
    assert!(
        !ping.status.success(),
        "ping went through with no bridge running"
    );
}

#[test]
fn udp_and_ping_cross_the_bridge_and_sigterm_stops_it() {
    let mut bed = bed();
    let child = bed.netem(&[]);
    let ping = bed.tb.sh(&bed.a, &format!("ping -c 3 -i 0.2 -W 2 {B}"));
    assert!(
        ping.status.success(),
        "ping failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    assert_eq!(udp_stream(&bed, 2000, 7001), 2000);
    let out = stop(child);
    assert!(out.contains("stopped"), "{out}");
    // And once it has stopped, nothing crosses.
    assert_eq!(udp_stream(&bed, 50, 7002), 0);
}

fn sha256(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn tcp_20mib_transfer_is_byte_exact() {
    tcp_transfer(&[], 20 << 20);
}

/// A counter from the bridge's final report line of app `app`.
fn counter(report: &str, app: &str, name: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{app}:")))
        .unwrap_or("");
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    panic!("no {name} for {app} in report:\n{report}");
}

/// Kernel TCP with offloads on sends 64 KiB GSO frames with partial
/// checksums: the bridge cuts them into wire packets before deciding their
/// fate, and corrupted ones are caught by the receiver's checksum.
#[test]
fn tcp_through_a_hostile_bridge_is_byte_exact() {
    let report = tcp_transfer(
        &[
            "--loss",
            "1%",
            "--reorder",
            "2%",
            "--duplicate",
            "1%",
            "--corrupt",
            "0.5%",
            "--seed",
            "3",
        ],
        4 << 20,
    );
    // The data direction really was impaired, packet by packet.
    for what in ["lost", "dup", "corrupt", "reorder"] {
        assert!(
            counter(&report, "impair12", what) > 0,
            "no {what}:\n{report}"
        );
    }
    assert!(
        counter(&report, "impair12", "in") > 2800,
        "GSO frames not cut into packets:\n{report}"
    );
    assert_eq!(counter(&report, "impair12", "malformed"), 0);
}

fn tcp_transfer(netem_args: &[&str], size: usize) -> String {
    let mut bed = bed();
    let child = bed.netem(netem_args);
    let dir = std::env::temp_dir().join(format!("shunt-netem-tcp-{}-{size}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("src");
    let dst = dir.join("dst");
    // Deterministic pseudo-random content.
    let mut data = vec![0u8; size];
    let mut x = 0x1234_5678_9abc_def0u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&src, &data).unwrap();
    // Kernel TCP with offloads left on, through the bridge.
    let listener = netns::run_in(&bed.b, || TcpListener::bind((B, 5001)).unwrap()).unwrap();
    let dst2 = dst.clone();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        std::fs::write(&dst2, &got).unwrap();
        got.len()
    });
    netns::run_in(&bed.a, move || {
        let mut s = TcpStream::connect((B, 5001)).unwrap();
        s.write_all(&data).unwrap();
    })
    .unwrap();
    assert_eq!(server.join().unwrap(), size);
    assert_eq!(sha256(src.to_str().unwrap()), sha256(dst.to_str().unwrap()));
    let report = stop(child);
    let _ = std::fs::remove_dir_all(&dir);
    report
}

#[test]
fn ten_percent_loss_loses_seven_to_thirteen_percent_of_udp() {
    let mut bed = bed();
    let child = bed.netem(&["--loss", "10%", "--seed", "7"]);
    let n = 10_000;
    let got = udp_stream(&bed, n, 7003);
    let lost = (n - got) as f64 / n as f64;
    assert!(
        (0.07..=0.13).contains(&lost),
        "lost {:.2}% ({got} of {n} arrived)",
        lost * 100.0
    );
    stop(child);
}

#[test]
fn pcap_file_is_readable_by_tcpdump() {
    let mut bed = bed();
    let path = std::env::temp_dir().join(format!("shunt-netem-{}.pcap", std::process::id()));
    let path_s = path.to_str().unwrap().to_string();
    let child = bed.netem(&["--pcap", &path_s]);
    assert_eq!(udp_stream(&bed, 100, 7004), 100);
    stop(child);
    let out = Command::new("tcpdump")
        .args(["-nn", "-r", &path_s, "udp and dst port 7004"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tcpdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, 100);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn missing_interface_is_one_clear_line() {
    let bed = bed();
    let out = bed
        .tb
        .cmd(&bed.m, SHUNT)
        .args(["netem", "nosuch0", "veth1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nosuch0"), "{err}");
}

#[test]
fn missing_capability_is_one_clear_line() {
    let bed = bed();
    let out = bed
        .tb
        .cmd(&bed.m, "setpriv")
        .args([
            "--bounding-set=-net_raw,-net_admin",
            "--inh-caps=-net_raw,-net_admin",
            SHUNT,
            "netem",
            "veth0",
            "veth1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("veth0") && err.contains("CAP_NET_RAW"),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_one_clear_line() {
    for args in [
        vec!["netem", "veth0"],
        vec!["netem", "veth0", "veth1", "--loss", "150%"],
        vec![
            "netem", "veth0", "veth1", "--delay", "5ms", "--jitter", "10ms",
        ],
        vec!["netem", "veth0", "veth1", "--bogus"],
    ] {
        let out = Command::new(SHUNT).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}
