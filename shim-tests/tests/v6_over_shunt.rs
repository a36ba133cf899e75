//! Real programs over shunt's stack, over IPv6: one end runs under
//! libshunt.so on a veth that has NO kernel address (not even an IPv6
//! link-local one), with `SHUNT_ADDR=192.0.2.1/24,2001:db8::1/64`; the
//! other end is the kernel in a second namespace, 192.0.2.2/24 and
//! 2001:db8::2/64 (`nodad`: usable at once). Whatever crosses the veth can
//! only have gone through shunt: its neighbour discovery, DAD, IPv6 and
//! dual-stack sockets.
//!
//! Needs root (namespaces), python3, curl, socat, nc (netcat-openbsd) and
//! iperf3; libshunt.so comes from `cargo build --release` (target/release).

use shunt_shim_tests::over::{libshunt, python, random_file, require, text, wait_port};
use shunt_shim_tests::testbed::Testbed;

/// The shunt environment, as shell exports: both families.
fn shunt_env() -> String {
    format!(
        "export LD_PRELOAD={} SHUNT_IFACE=veth0 SHUNT_ADDR=192.0.2.1/24,2001:db8::1/64; ",
        libshunt().display()
    )
}

/// Namespace `s` (shunt: veth0 up, no kernel address, no link-local) and
/// `k` (kernel: veth1 with 192.0.2.2/24 and 2001:db8::2/64 nodad).
fn pair(tb: &mut Testbed) -> (String, String) {
    let s = tb.ns("s");
    let k = tb.ns("k");
    let o = tb.sh(
        &s,
        "ip link add veth0 type veth peer name veth1 && \
         echo 1 > /proc/sys/net/ipv6/conf/veth0/addr_gen_mode",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &s,
        &format!("ip link set veth1 netns {k} && ip link set veth0 up"),
    );
    assert!(o.status.success(), "{}", text(&o));
    tb.addr(&k, "veth1", "192.0.2.2/24");
    tb.addr(&k, "veth1", "2001:db8::2/64");
    let o = tb.sh(&k, "ip link set veth1 up");
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(&s, "ip -o addr show dev veth0");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("inet"),
        "the shunt side has a kernel address: {}",
        text(&o)
    );
    (s, k)
}

#[test]
fn curl_over_shunt_fetches_1mib_from_kernel_http_server_v6() {
    require("curl");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let (dir, want) = random_file(&tb, "www", 1);
    let py = python();
    tb.spawn_sh(
        &k,
        &format!(
            "cd {} && exec {py} -m http.server 8000 --bind 2001:db8::2 >/dev/null 2>&1",
            dir.display()
        ),
    );
    let o = tb.sh(&k, &wait_port("2001:db8::2", 8000));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &s,
        &format!(
            "{} timeout 60 curl -sS --fail -g 'http://[2001:db8::2]:8000/f.bin' | sha256sum",
            shunt_env()
        ),
    );
    let got = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && got.starts_with(&want),
        "want {want}\n{}",
        text(&o)
    );
    // The kernel saw an IPv6 peer: shunt's address, learned by NDP.
    let o = tb.sh(&k, "ip -6 neigh show dev veth1");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("2001:db8::1"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nc_over_shunt_to_kernel_socat_echo_v6() {
    require("socat");
    require("nc");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    tb.spawn_sh(
        &k,
        "exec socat TCP6-LISTEN:7000,bind=[2001:db8::2],reuseaddr,fork EXEC:cat",
    );
    let o = tb.sh(&k, &wait_port("2001:db8::2", 7000));
    assert!(o.status.success(), "{}", text(&o));
    // 300 KB through nc (half-close with -N), counted on the way back.
    let o = tb.sh(
        &s,
        &format!(
            "{} head -c 300000 /dev/zero | tr '\\0' x | timeout 20 nc -6 -N 2001:db8::2 7000 | wc -c",
            shunt_env()
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "300000",
        "{}",
        text(&o)
    );
    // UDP: nc -u over shunt to a kernel socat echo, over IPv6.
    tb.spawn_sh(
        &k,
        "exec socat UDP6-RECVFROM:7002,bind=[2001:db8::2],fork EXEC:cat",
    );
    let o = tb.sh(
        &s,
        &format!(
            "sleep 0.3; {} echo ping6 | timeout 5 nc -6 -u -w 1 2001:db8::2 7002",
            shunt_env()
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "ping6",
        "{}",
        text(&o)
    );
}

/// A dual-stack echo server: one `[::]` listener (IPV6_V6ONLY 0) serves
/// two connections and prints each peer's name as the socket reports it.
const PY_DUAL: &str = r#"
import socket, sys
l = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
l.bind(("::", 7003))
l.listen(8)
print("listening", flush=True)
for _ in range(2):
    c, peer = l.accept()
    data = b""
    while not data.endswith(b"\n"):
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.sendall(data)
    print("peer", peer[0], "local", c.getsockname()[0], flush=True)
    c.close()
"#;

#[test]
fn kernel_socat_to_dual_stack_server_over_shunt_v6_and_v4() {
    require("socat");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let log = std::env::temp_dir().join(format!("shunt-v6-dual-{}.log", tb.tag()));
    let py = python();
    tb.spawn_sh(
        &s,
        &format!(
            "{} exec {py} -c '{PY_DUAL}' > {}",
            shunt_env(),
            log.display()
        ),
    );
    // Each client retries while the server starts and shunt's address
    // goes through DAD (up to 2 s); no probe connection: the server
    // counts its connections.
    let client = |host: &str, msg: &str| {
        format!(
            "for i in $(seq 100); do grep -q listening {log} 2>/dev/null && break; sleep 0.05; done; \
             for i in $(seq 20); do out=$(echo {msg} | timeout 5 socat -t 3 - TCP:{host}:7003 2>/dev/null) \
             && [ -n \"$out\" ] && echo \"$out\" && break; sleep 0.3; done",
            log = log.display()
        )
    };
    let o = tb.sh(&k, &client("[2001:db8::1]", "over-ipv6"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "over-ipv6",
        "{}",
        text(&o)
    );
    let o = tb.sh(&k, &client("192.0.2.1", "over-ipv4"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "over-ipv4",
        "{}",
        text(&o)
    );
    // The same [::] socket took both; the IPv4 peer is v4-mapped.
    let mut seen = String::new();
    for _ in 0..50 {
        seen = std::fs::read_to_string(&log).unwrap_or_default();
        if seen.matches("peer").count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        seen.contains("peer 2001:db8::2 local 2001:db8::1")
            && seen.contains("peer ::ffff:192.0.2.2 local ::ffff:192.0.2.1"),
        "server log:\n{seen}"
    );
    let _ = std::fs::remove_file(&log);
}

#[test]
fn iperf3_6_client_over_shunt_both_directions() {
    require("iperf3");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    for (i, rev) in ["", "-R"].iter().enumerate() {
        let port = 5201 + i as u16;
        tb.spawn_sh(
            &k,
            &format!("exec iperf3 -s -B 2001:db8::2 -p {port} -1 >/dev/null 2>&1"),
        );
        // Waited for with ss: a probe connection would become iperf3's control connection.
        let o = tb.sh(
            &k,
            &format!(
                "for i in $(seq 200); do ss -Hltn 'sport = :{port}' | grep -q . && break; sleep 0.05; done"
            ),
        );
        assert!(o.status.success(), "{}", text(&o));
        let o = tb.sh(
            &s,
            &format!(
                "{} timeout 30 iperf3 -6 -c 2001:db8::2 -p {port} -t 2 {rev} 2>&1",
                shunt_env()
            ),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success()
                && out.contains("receiver")
                && out.contains("iperf Done")
                && out.contains("2001:db8::2"),
            "iperf3 -6 {rev}: {}",
            text(&o)
        );
    }
}
