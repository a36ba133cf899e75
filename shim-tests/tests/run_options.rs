//! `shunt run --netem`, `shunt run --pcap` and `shunt stat` on real
//! programs: shunt's side has no kernel address, so what crosses the veth
//! went through shunt's stack, its impairment and its recorder.

use std::io::{BufRead, BufReader};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use shunt_shim_tests::over::{
    first_word, pair, python, random_file, require, shunt_bin, text, wait_listen,
};
use shunt_shim_tests::testbed::Testbed;

/// `shunt run` on veth0 as 192.0.2.1/24 with `opts`, as a shell prefix.
fn shunt_run(opts: &str) -> String {
    format!(
        "{} run --iface veth0 --addr 192.0.2.1/24 {opts} --",
        shunt_bin().display()
    )
}

/// (timestamp, line) of `tcpdump -tt -n -r file [filter]`.
fn tcpdump(tb: &Testbed, ns: &str, file: &str, filter: &str) -> Vec<(f64, String)> {
    let o = tb.sh(
        ns,
        &format!("tcpdump -tt -n -r {file} {filter} 2>/dev/null"),
    );
    assert!(o.status.success(), "tcpdump: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (t, rest) = l.split_once(' ')?;
            Some((t.parse().ok()?, rest.to_string()))
        })
        .collect()
}

#[test]
fn curl_over_netem_loss_and_delay_fetches_10mib_intact() {
    require("curl");
    require("tcpdump");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let (dir, want) = random_file(&tb, "netem", 10);
    let d = dir.display();
    tb.spawn_sh(
        &k,
        &format!(
            "cd {d} && exec {} -m http.server 8020 --bind 192.0.2.2 >/dev/null 2>&1",
            python()
        ),
    );
    let o = tb.sh(&k, &wait_listen(8020));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &s,
        &format!(
            "{} timeout 120 curl -sS --fail http://192.0.2.2:8020/f.bin | sha256sum",
            shunt_run(&format!("--netem loss=2%,delay=10ms --pcap {d}/netem.pcap"))
        ),
    );
    assert!(
        o.status.success() && first_word(&o) == want,
        "want {want}: {}",
        text(&o)
    );
    // The impairment was there: the recording (the stack's view: before
    // the outgoing delay, after the incoming one) has the SYN-ACK at least
    // two delays after the first SYN.
    let syn = tcpdump(
        &tb,
        &s,
        &format!("{d}/netem.pcap"),
        "'tcp[tcpflags] & tcp-syn != 0'",
    );
    let out = syn.iter().find(|(_, l)| l.contains("Flags [S],"));
    let back = syn.iter().find(|(_, l)| l.contains("Flags [S.],"));
    let (Some(out), Some(back)) = (out, back) else {
        panic!("no SYN and SYN-ACK in the recording: {syn:?}");
    };
    assert!(
        back.0 - out.0 >= 0.019,
        "SYN-ACK {:.4} s after the SYN: no delay",
        back.0 - out.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pcap_records_every_frame_in_and_out() {
    require("curl");
    require("tcpdump");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let (dir, want) = random_file(&tb, "pcap", 1);
    let d = dir.display();
    tb.spawn_sh(
        &k,
        &format!(
            "cd {d} && exec {} -m http.server 8021 --bind 192.0.2.2 >/dev/null 2>&1",
            python()
        ),
    );
    let o = tb.sh(&k, &wait_listen(8021));
    assert!(o.status.success(), "{}", text(&o));
    // The kernel records the veth too, to compare.
    let dump = tb
        .spawn_sh(
            &k,
            &format!(
                "exec tcpdump -n -i veth1 -w {d}/kernel.pcap -U tcp port 8021 2>{d}/tcpdump.err"
            ),
        )
        .id();
    let end = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(dir.join("tcpdump.err"))
        .is_ok_and(|e| e.contains("listening on"))
    {
        assert!(Instant::now() < end, "tcpdump did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = tb.sh(
        &s,
        &format!(
            "{} timeout 60 curl -sS --fail http://192.0.2.2:8021/f.bin | sha256sum",
            shunt_run(&format!("--pcap {d}/shunt.pcap"))
        ),
    );
    assert!(
        o.status.success() && first_word(&o) == want,
        "want {want}: {}",
        text(&o)
    );
    let file = format!("{d}/shunt.pcap");
    let all = tcpdump(&tb, &s, &file, "");
    let tcp = tcpdump(&tb, &s, &file, "tcp port 8021");
    let arp = tcpdump(&tb, &s, &file, "arp");
    assert!(!arp.is_empty(), "no ARP in the recording");
    assert_eq!(all.len(), tcp.len() + arp.len(), "{all:?}");
    // The whole connection: the SYN, the data, the FINs of both sides
    // (written at exit).
    assert!(
        tcp[0].1.starts_with("IP 192.0.2.1.") && tcp[0].1.contains("> 192.0.2.2.8021: Flags [S],"),
        "{:?}",
        tcp[0]
    );
    let fins_out = tcp
        .iter()
        .filter(|(_, l)| l.starts_with("IP 192.0.2.1.") && l.contains("Flags [F"))
        .count();
    let fins_in = tcp
        .iter()
        .filter(|(_, l)| l.starts_with("IP 192.0.2.2.") && l.contains("Flags [F"))
        .count();
    assert!(fins_out >= 1 && fins_in >= 1, "{tcp:?}");
    let bytes_in: u64 = tcp
        .iter()
        .filter(|(_, l)| l.starts_with("IP 192.0.2.2."))
        .filter_map(|(_, l)| l.rsplit_once("length ")?.1.trim().parse::<u64>().ok())
        .sum();
    assert!(
        bytes_in >= 1 << 20,
        "recorded {bytes_in} bytes of TCP payload in"
    );
    // What shunt sent is what the kernel received: the kernel's capture
    // (which may lag on a loaded machine) comes to the same frames.
    let sent: Vec<&str> = tcp
        .iter()
        .filter(|(_, l)| l.starts_with("IP 192.0.2.1."))
        .map(|(_, l)| l.split(", options").next().unwrap_or(l))
        .collect();
    let kfile = format!("{d}/kernel.pcap");
    let end = Instant::now() + Duration::from_secs(20);
    let mut kernel = tcpdump(&tb, &k, &kfile, "src 192.0.2.1");
    while kernel.len() < sent.len() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        kernel = tcpdump(&tb, &k, &kfile, "src 192.0.2.1");
    }
    let o = tb.sh(&k, &format!("kill -INT {dump}; sleep 0.3"));
    assert!(o.status.success(), "{}", text(&o));
    let kernel: Vec<String> = tcpdump(&tb, &k, &kfile, "src 192.0.2.1")
        .into_iter()
        .map(|(_, l)| l.split(", options").next().unwrap_or(&l).to_string())
        .collect();
    // tcpdump prints relative sequence numbers from the first packet it
    // saw of each connection: compare flags and lengths, in order.
    let shape = |l: &str| {
        let flags = l.split("Flags ").nth(1).and_then(|f| f.split(',').next());
        format!("{flags:?}")
    };
    let want: Vec<String> = sent.iter().map(|l| shape(l)).collect();
    let got: Vec<String> = kernel.iter().map(|l| shape(l)).collect();
    assert_eq!(
        got, want,
        "shunt recorded {sent:#?}\nthe kernel saw {kernel:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const HOLDER: &str = r#"
import os, socket, sys
s = socket.create_connection(("192.0.2.2", 7100), timeout=10)
s.sendall(b"x" * 3000)
print(os.getpid(), s.getsockname()[1], flush=True)
sys.stdin.read()
s.close()
"#;

/// Start a python over shunt holding a connection to the kernel's
/// listener on 7100 until its stdin closes; (its stdin, pid, local port).
fn holder(tb: &mut Testbed, s: &str) -> (ChildStdin, u32, u16) {
    let mut child = tb
        .cmd(s, shunt_bin().to_str().unwrap())
        .args([
            "run",
            "--iface",
            "veth0",
            "--addr",
            "192.0.2.1/24",
            "--",
            python(),
            "-c",
            HOLDER,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("shunt run");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut f = line.split_whitespace();
    let pid: u32 = f.next().and_then(|p| p.parse().ok()).expect(&line);
    let port: u16 = f.next().and_then(|p| p.parse().ok()).expect(&line);
    let stdin = child.stdin.take().unwrap();
    tb.adopt(child);
    (stdin, pid, port)
}

fn stat(args: &[&str]) -> std::process::Output {
    Command::new(shunt_bin())
        .arg("stat")
        .args(args)
        .output()
        .expect("shunt stat")
}

/// `shunt stat PID` until `pred` holds on its output (5 s).
fn stat_until(pid: u32, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let o = stat(&[&pid.to_string()]);
        // Columns squeezed to one space, for matching.
        let out: String = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
            .collect();
        if o.status.success() && pred(&out) {
            return out;
        }
        assert!(Instant::now() < end, "shunt stat {pid}: {}", text(&o));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn counter(out: &str, name: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

#[test]
fn stat_shows_a_running_process_connection_and_counters() {
    require("socat");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    tb.spawn_sh(
        &k,
        "exec socat -u TCP-LISTEN:7100,bind=192.0.2.2,reuseaddr,fork OPEN:/dev/null",
    );
    let o = tb.sh(&k, &wait_listen(7100));
    assert!(o.status.success(), "{}", text(&o));

    let (stdin, pid, port) = holder(&mut tb, &s);
    let conn = format!("192.0.2.1:{port} 192.0.2.2:7100");
    let out = stat_until(pid, |out| {
        out.lines()
            .any(|l| l.starts_with("tcp ") && l.contains("ESTAB") && l.contains(&conn))
            && counter(out, "TcpOutSegs") >= 3
    });
    assert!(
        out.starts_with(&format!(
            "pid {pid} (python3) on veth0 192.0.2.1/24 via AF_PACKET\n"
        )),
        "{out}"
    );
    let line = out.lines().find(|l| l.contains(&conn)).unwrap_or_default();
    assert_eq!(line, format!("tcp ESTAB 0 0 {conn}"), "{out}");
    // The device's own counters too: every frame the stack saw came
    // through it.
    assert!(
        counter(&out, "DevRxPackets") >= counter(&out, "IpInReceives"),
        "{out}"
    );
    for c in [
        "IpInReceives",
        "IpOutRequests",
        "TcpInSegs",
        "TcpOutSegs",
        "DevTxPackets",
    ] {
        assert!(counter(&out, c) > 0, "{c}: {out}");
    }
    assert_eq!(counter(&out, "TcpActiveOpens"), 1, "{out}");
    assert_eq!(counter(&out, "TcpCurrEstab"), 1, "{out}");
    assert!(counter(&out, "ArpInReplies") >= 1, "{out}");

    // Without a pid: every running stack, this one among them.
    let o = stat(&[]);
    let all = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && all.contains(&format!("pid {pid} (python3)"))
            && all.contains(&format!("192.0.2.1:{port} ")),
        "{}",
        text(&o)
    );

    // Clear one-line errors for a process without a stack.
    let o = stat(&[&std::process::id().to_string()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("is not a shunt process") && e.lines().count() == 1,
        "{}",
        text(&o)
    );
    let o = stat(&["4000000000"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no such process"),
        "{}",
        text(&o)
    );

    // A normal exit (EOF on its stdin) removes the export.
    let export = format!("/run/shunt/stat/{pid}");
    assert!(std::path::Path::new(&export).exists());
    drop(stdin);
    let end = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < end, "pid {pid} did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !std::path::Path::new(&export).exists(),
        "export left after a normal exit"
    );

    // A process killed outright leaves its export; shunt stat ignores
    // and removes it.
    let (_stdin2, pid2, _) = holder(&mut tb, &s);
    let export2 = format!("/run/shunt/stat/{pid2}");
    stat_until(pid2, |out| out.contains("ESTAB"));
    let o = tb.sh(&s, &format!("kill -9 {pid2}"));
    assert!(o.status.success(), "{}", text(&o));
    let end = Instant::now() + Duration::from_secs(10);
    while alive(pid2) {
        assert!(Instant::now() < end, "pid {pid2} did not die");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::path::Path::new(&export2).exists());
    // Not reaped yet (a zombie): gone all the same.
    let o = stat(&[]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(&format!("pid {pid2} ")),
        "{}",
        text(&o)
    );
    assert!(
        !std::path::Path::new(&export2).exists(),
        "stale export not removed"
    );
    let o = stat(&[&pid2.to_string()]);
    assert!(!o.status.success(), "{}", text(&o));
}

/// Running (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn netem_delay_releases_frames_on_time() {
    require("curl");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let (dir, want) = random_file(&tb, "ontime", 1);
    let d = dir.display();
    tb.spawn_sh(
        &k,
        &format!(
            "cd {d} && exec {} -m http.server 8022 --bind 192.0.2.2 >/dev/null 2>&1",
            python()
        ),
    );
    let o = tb.sh(&k, &wait_listen(8022));
    assert!(o.status.success(), "{}", text(&o));
    // 30 ms each way, no loss: ARP and the handshake are two round trips
    // (120 ms). Had the driver slept past a delayed frame's deadline until
    // the next timer, the connect would take a retransmission timeout
    // (1 s) or more.
    let o = tb.sh(
        &s,
        &format!(
            "{} timeout 60 curl -sS --fail -o {d}/got.bin -w '%{{time_connect}}\n' http://192.0.2.2:8022/f.bin && sha256sum < {d}/got.bin",
            shunt_run("--netem delay=30ms")
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let connect: f64 = out
        .lines()
        .next()
        .and_then(|x| x.trim().parse().ok())
        .unwrap_or(-1.0);
    assert!(o.status.success() && out.contains(&want), "{}", text(&o));
    assert!(
        (0.115..0.6).contains(&connect),
        "connect took {connect} s: {}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
