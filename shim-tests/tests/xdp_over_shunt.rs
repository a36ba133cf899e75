//! Real programs over shunt's AF_XDP device (`SHUNT_BACKEND=xdp`,
//! `shunt run --backend xdp`): the curl, nc/socat and iperf3 cases of
//! over_shunt.rs on a veth with no kernel address; then what only AF_XDP
//! does: the kernel and shunt on one interface at once (the XDP program
//! passes the kernel's frames on), the program gone with the process
//! (SIGKILL), and an MTU AF_XDP cannot take (one line, then the kernel).
//!
//! Needs root (namespaces), python3, curl, socat, nc (netcat-openbsd),
//! iperf3 and ping; libshunt.so and `shunt` come from
//! `cargo build --release` (target/release).

use std::time::{Duration, Instant};

use shunt_shim_tests::cases;
use shunt_shim_tests::over::{
    pair, python, random_file, require, shunt_bin, text, wait_listen, wait_port, xdp_env,
    xdp_env_addr,
};
use shunt_shim_tests::testbed::Testbed;

/// What the cases below stand on: the environment they use gives the
/// program an AF_XDP device, with the XDP program on veth0 while it runs
/// (and not an AF_PACKET socket, over which they would pass as well).
#[test]
fn xdp_env_serves_the_program_on_an_af_xdp_device() {
    let mut tb = Testbed::new();
    let (s, _k) = pair(&mut tb);
    let o = tb.sh(
        &s,
        &format!(
            "{} SHUNT_LOG=debug {} -c 'import socket, subprocess; socket.socket(); \
             print(subprocess.run([\"ip\", \"link\", \"show\", \"dev\", \"veth0\"], \
             capture_output=True, text=True).stdout)'",
            xdp_env(),
            python()
        ),
    );
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success()
            && err.contains("veth0: AF_XDP")
            && err.contains("serving 192.0.2.1/24 on veth0")
            && out.contains("prog/xdp"),
        "{}",
        text(&o)
    );
}

#[test]
fn xdp_curl_fetches_1mib_from_kernel_http_server() {
    cases::curl_fetches_1mib_from_kernel_http_server(&xdp_env());
}

#[test]
fn xdp_kernel_curl_fetches_1mib_from_http_server() {
    cases::kernel_curl_fetches_1mib_from_http_server(&xdp_env());
}

#[test]
fn xdp_nc_to_kernel_socat_echo() {
    cases::nc_to_kernel_socat_echo(&xdp_env());
}

#[test]
fn xdp_kernel_socat_to_socat_echo() {
    cases::kernel_socat_to_socat_echo(&xdp_env());
}

#[test]
fn xdp_iperf3_both_directions() {
    cases::iperf3_both_directions(&xdp_env());
}

/// A test bed with the namespaces of [`pair`] and the kernel on the shunt
/// side too: veth0 carries 192.0.2.1/24 in the kernel, and shunt is to
/// serve 192.0.2.3. (test bed, shunt side, kernel peer)
fn shared_pair() -> (Testbed, String, String) {
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    tb.addr(&s, "veth0", "192.0.2.1/24");
    (tb, s, k)
}

/// A server in `ns` on 192.0.2.2:7300 that takes two connections, reads a
/// line on each, and only once it has both answers each with the line
/// upper-cased and the address it came from: the two clients get their
/// answer only if their connections were open at the same time.
const PY_BARRIER: &str = r#"
import socket
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("192.0.2.2", 7300))
l.listen(4)
l.settimeout(20)
conns = []
for _ in range(2):
    c, peer = l.accept()
    c.settimeout(20)
    line = b""
    while not line.endswith(b"\n"):
        b = c.recv(100)
        if not b:
            break
        line += b
    conns.append((c, peer[0], line))
for c, ip, line in conns:
    c.sendall(line.strip().upper() + b" from " + ip.encode() + b"\n")
    c.close()
"#;

/// A kernel nc (192.0.2.1) and an nc over shunt's AF_XDP device
/// (192.0.2.3) on the same veth talk to one peer at the same time.
#[test]
fn xdp_kernel_nc_and_shunt_nc_on_one_interface_at_once() {
    require("nc");
    let (mut tb, s, k) = shared_pair();
    tb.spawn_sh(
        &k,
        &format!("exec timeout 30 {} -c '{PY_BARRIER}'", python()),
    );
    let o = tb.sh(&k, &wait_listen(7300));
    assert!(o.status.success(), "{}", text(&o));
    // nc -q: keep reading after stdin's end until the server closes.
    let o = tb.sh(
        &s,
        &format!(
            "(echo kernel | timeout 20 nc -q 20 192.0.2.2 7300 > /tmp/$$.k 2>&1) & \
             ({} echo shunt | timeout 20 nc -q 20 192.0.2.2 7300 > /tmp/$$.s 2>&1) & \
             wait; echo \"k: $(cat /tmp/$$.k)\"; echo \"s: $(cat /tmp/$$.s)\"; rm -f /tmp/$$.k /tmp/$$.s",
            xdp_env_addr("192.0.2.3/24")
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("k: KERNEL from 192.0.2.1\n") && out.contains("s: SHUNT from 192.0.2.3\n"),
        "{}",
        text(&o)
    );
}

/// `ip link show veth0` in `ns`.
fn link_show(tb: &Testbed, ns: &str) -> String {
    let o = tb.sh(ns, "ip link show dev veth0");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Wait (10 s at most) until `pred` holds for `ip link show veth0`.
fn wait_link(tb: &Testbed, ns: &str, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let l = link_show(tb, ns);
        if pred(&l) || Instant::now() > end {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A program over AF_XDP killed with SIGKILL leaves nothing behind: the
/// XDP program goes with its last descriptor, and the kernel has the
/// interface back, shunt's address included once the kernel takes it.
#[test]
fn xdp_sigkill_detaches_the_program_and_the_kernel_has_the_interface_back() {
    require("ping");
    require("socat");
    let (mut tb, s, k) = shared_pair();
    let shunt = format!(
        "{} run --iface veth0 --addr 192.0.2.3/24 --backend xdp --",
        shunt_bin().display()
    );
    // `shunt run` and `ip netns exec` exec in place: the child's pid is
    // python's.
    let pid = {
        let c = tb.adopt(
            tb.cmd(&s, "sh")
                .args([
                    "-c",
                    &format!(
                        "exec {shunt} {} -c 'import socket, time; socket.socket(); time.sleep(60)'",
                        python()
                    ),
                ])
                .stdin(std::process::Stdio::null())
                .spawn()
                .expect("sh"),
        );
        c.id()
    };
    let attached = wait_link(&tb, &s, |l| l.contains("xdp"));
    assert!(attached.contains("xdp"), "no XDP program: {attached}");
    // shunt's stack answers on 192.0.2.3 (the kernel does not have it).
    let o = tb.sh(&k, "ping -c 1 -W 5 192.0.2.3");
    assert!(o.status.success(), "shunt does not answer: {}", text(&o));
    let o = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .output()
        .expect("kill");
    assert!(o.status.success(), "{}", text(&o));
    let detached = wait_link(&tb, &s, |l| !l.contains("xdp"));
    assert!(!detached.contains("xdp"), "still attached: {detached}");
    // Nobody has 192.0.2.3 now.
    let o = tb.sh(&k, "ping -c 1 -W 1 192.0.2.3");
    assert!(!o.status.success(), "{}", text(&o));
    // The kernel takes the address and serves it.
    tb.addr(&s, "veth0", "192.0.2.3/24");
    tb.spawn_sh(
        &s,
        "exec socat TCP-LISTEN:7301,bind=192.0.2.3,reuseaddr EXEC:cat",
    );
    let o = tb.sh(&s, &wait_listen(7301));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &k,
        "ping -c 1 -W 5 192.0.2.3 >/dev/null && echo back | timeout 10 socat -t 5 - TCP:192.0.2.3:7301",
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "back",
        "{}",
        text(&o)
    );
}

/// An MTU over what a UMEM frame holds: the program says so in one
/// `shunt:` line and runs on the kernel, whose address on the interface
/// then carries its connection.
#[test]
fn xdp_mtu_too_large_is_one_line_and_the_program_runs_on_the_kernel() {
    require("curl");
    let (mut tb, s, k) = shared_pair();
    let o = tb.sh(&s, "ip link set veth0 mtu 9000");
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(&k, "ip link set veth1 mtu 9000");
    assert!(o.status.success(), "{}", text(&o));
    let (dir, want) = random_file(&tb, "mtu", 1);
    tb.spawn_sh(
        &k,
        &format!(
            "cd {} && exec {} -m http.server 8020 --bind 192.0.2.2 >/dev/null 2>&1",
            dir.display(),
            python()
        ),
    );
    let o = tb.sh(&k, &wait_port("192.0.2.2", 8020));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &s,
        &format!(
            "{} timeout 30 curl -sS --fail http://192.0.2.2:8020/f.bin | sha256sum",
            xdp_env_addr("192.0.2.3/24")
        ),
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(&want),
        "want {want}: {}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1
            && lines[0].starts_with("shunt: ")
            && lines[0].contains("AF_XDP")
            && lines[0].contains("MTU 9000")
            && lines[0].contains("runs on the kernel")
            && lines[0].matches("veth0").count() == 1,
        "{}",
        text(&o)
    );
    // Nothing stays attached.
    let l = link_show(&tb, &s);
    assert!(!l.contains("xdp"), "{l}");
    let _ = std::fs::remove_dir_all(&dir);
}
