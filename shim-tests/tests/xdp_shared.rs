//! Shared-address mode (`SHUNT_BACKEND=xdp SHUNT_SHARE_ADDR=1`): shunt
//! serves a program on the kernel's own address, next to the kernel. The
//! shunt side's veth HAS 192.0.2.1/24 and 2001:db8::1/64 in the kernel;
//! the program is started with no SHUNT_ADDR at all. The XDP program
//! steers the ports shunt's sockets hold to shunt, and the ICMP errors
//! about what they sent; everything else (ARP, other ICMP, the kernel's
//! own ports) stays with the kernel.
//!
//! What would fail if the traffic went through the kernel: the kernel's
//! TCP counters of the shunt namespace (/proc/net/snmp PassiveOpens,
//! ActiveOpens) move only for the kernel's own connections, and no kernel
//! socket listens on shunt's port.
//!
//! Needs root (namespaces), python3, curl and ping.

use shunt_shim_tests::over::{libshunt, python, random_file, require, text, wait_listen};
use shunt_shim_tests::testbed::Testbed;

/// Namespace `s` (veth0: 192.0.2.1/24, 2001:db8::1/64 in the kernel) and
/// `k` (veth1: 192.0.2.2/24, 2001:db8::2/64).
fn shared_pair(tb: &mut Testbed) -> (String, String) {
    let s = tb.ns("s");
    let k = tb.ns("k");
    tb.veth(&s, "veth0", &k, "veth1");
    tb.addr(&s, "veth0", "192.0.2.1/24");
    tb.addr(&s, "veth0", "2001:db8::1/64");
    tb.addr(&k, "veth1", "192.0.2.2/24");
    tb.addr(&k, "veth1", "2001:db8::2/64");
    (s, k)
}

/// Exports for a program over shunt sharing veth0's kernel addresses.
fn shared_env() -> String {
    format!(
        "export LD_PRELOAD={} SHUNT_IFACE=veth0 SHUNT_BACKEND=xdp SHUNT_SHARE_ADDR=1; ",
        libshunt().display()
    )
}

/// Shell: the kernel's TCP counter `name` (PassiveOpens, ActiveOpens) in
/// this namespace.
fn tcp_counter(name: &str) -> String {
    format!(
        "awk '/^Tcp:/ {{ if (!h) {{ for (i = 1; i <= NF; i++) if ($i == \"{name}\") c = i; h = 1 }} else print $c }}' /proc/net/snmp"
    )
}

fn number(tb: &Testbed, ns: &str, script: &str) -> u64 {
    let o = tb.sh(ns, script);
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {}", text(&o)))
}

/// Shell: a python HTTP server on `port` serving `dir`, which touches
/// `ready` once it listens (shunt's listener is no kernel socket: `ss`
/// cannot see it, and a probe connection would be a real client).
fn http_server(dir: &str, port: u16, ready: &str) -> String {
    format!(
        "exec {} -c 'import functools, socket, http.server as h\n\
         class S(h.ThreadingHTTPServer): address_family = socket.AF_INET6\n\
         s = S((\"::\", {port}), functools.partial(h.SimpleHTTPRequestHandler, directory=\"{dir}\"))\n\
         open(\"{ready}\", \"w\").close()\n\
         s.serve_forever()' >/dev/null 2>&1",
        python()
    )
}

fn wait_file(path: &str) -> String {
    format!("for i in $(seq 200); do test -e {path} && break; sleep 0.05; done; test -e {path}")
}

#[test]
fn shunt_and_kernel_servers_share_the_address() {
    require("curl");
    require("ping");
    let mut tb = Testbed::new();
    let (s, k) = shared_pair(&mut tb);
    let (dir, want) = random_file(&tb, "shared-www", 1);
    let d = dir.display().to_string();
    let ready = format!("{d}/ready");
    // Shunt's server on 8001, the kernel's on 8002, same addresses.
    tb.spawn_sh(
        &s,
        &format!("{} {}", shared_env(), http_server(&d, 8001, &ready)),
    );
    tb.spawn_sh(&s, &http_server(&d, 8002, &format!("{d}/ready-kernel")));
    let o = tb.sh(
        &s,
        &format!("{} && {}", wait_file(&ready), wait_listen(8002)),
    );
    assert!(o.status.success(), "{}", text(&o));

    let passive = number(&tb, &s, &tcp_counter("PassiveOpens"));
    for url in [
        "http://192.0.2.1:8001/f.bin",
        "http://[2001:db8::1]:8001/f.bin",
    ] {
        let o = tb.sh(
            &k,
            &format!("timeout 30 curl -gsS --fail {url} | sha256sum"),
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(&want),
            "{url}: want {want}\n{}",
            text(&o)
        );
    }
    assert_eq!(
        number(&tb, &s, &tcp_counter("PassiveOpens")),
        passive,
        "shunt's connections went through the kernel"
    );
    // The kernel's server on the same address answers meanwhile, through
    // the kernel (its counter moves).
    let o = tb.sh(
        &k,
        "timeout 30 curl -sS --fail http://192.0.2.1:8002/f.bin | sha256sum",
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with(&want),
        "kernel server: {}",
        text(&o)
    );
    assert_eq!(number(&tb, &s, &tcp_counter("PassiveOpens")), passive + 1);

    // This host's own clients reach shunt's server through its kernel
    // listener (the wire's frames for the port all go to shunt).
    for url in ["http://127.0.0.1:8001/f.bin", "http://192.0.2.1:8001/f.bin"] {
        let o = tb.sh(
            &s,
            &format!("timeout 30 curl -gsS --fail {url} | sha256sum"),
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(&want),
            "{url} from the same host: {}",
            text(&o)
        );
    }

    // Reserved: the kernel refuses shunt's port to anyone else, either
    // family, SO_REUSEADDR or not (shunt's socket listens); another port
    // is free.
    let py = python();
    let o = tb.sh(
        &s,
        &format!(
            "{py} -c 'import socket, errno\n\
             for fam, a in ((socket.AF_INET, \"0.0.0.0\"), (socket.AF_INET6, \"::\"), (socket.AF_INET, \"192.0.2.1\")):\n\
             \x20   t = socket.socket(fam)\n\
             \x20   t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, a == \"::\")\n\
             \x20   try:\n\
             \x20       t.bind((a, 8001)); print(\"bound\", a)\n\
             \x20   except OSError as e:\n\
             \x20       print(errno.errorcode[e.errno], a)\n\
             socket.socket().bind((\"192.0.2.1\", 8003)); print(\"free 8003\")'"
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "EADDRINUSE 0.0.0.0\nEADDRINUSE ::\nEADDRINUSE 192.0.2.1\nfree 8003\n",
        "{}",
        text(&o)
    );

    // The kernel's own traffic on the address goes on: ICMP both ways,
    // a kernel client from the shared namespace.
    let o = tb.sh(&s, "ping -c1 -W2 192.0.2.2 && ping -6 -c1 -W2 2001:db8::2");
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(&k, "ping -c1 -W2 192.0.2.1 && ping -6 -c1 -W2 2001:db8::1");
    assert!(o.status.success(), "{}", text(&o));
    tb.spawn_sh(&k, &http_server(&d, 8004, &format!("{d}/ready-k")));
    let o = tb.sh(
        &s,
        &format!(
            "{} && timeout 30 curl -sS --fail http://192.0.2.2:8004/f.bin | sha256sum",
            wait_file(&format!("{d}/ready-k"))
        ),
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with(&want),
        "kernel client: {}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shunt_client_fetches_from_kernel_server_with_no_neighbour_known() {
    require("curl");
    let mut tb = Testbed::new();
    let (s, k) = shared_pair(&mut tb);
    let (dir, want) = random_file(&tb, "shared-cli", 1);
    let d = dir.display().to_string();
    let ready = format!("{d}/ready");
    tb.spawn_sh(&k, &http_server(&d, 8000, &ready));
    let o = tb.sh(&k, &wait_file(&ready));
    assert!(o.status.success(), "{}", text(&o));
    for (host, peer) in [("192.0.2.2", "192.0.2.2"), ("[2001:db8::2]", "2001:db8::2")] {
        // Nothing in the kernel's table: shunt must have the kernel
        // resolve the peer (it never sends ARP or NS itself).
        let o = tb.sh(
            &s,
            &format!(
                "ip neigh flush dev veth0 && ip -6 neigh flush dev veth0 && ip neigh show {peer} dev veth0"
            ),
        );
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("lladdr"),
            "{}",
            text(&o)
        );
        let active = number(&tb, &s, &tcp_counter("ActiveOpens"));
        let o = tb.sh(
            &s,
            &format!(
                "{} timeout 30 curl -gsS --fail http://{host}:8000/f.bin | sha256sum",
                shared_env()
            ),
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(&want),
            "{host}: want {want}\n{}",
            text(&o)
        );
        assert_eq!(
            number(&tb, &s, &tcp_counter("ActiveOpens")),
            active,
            "the connection to {host} was the kernel's"
        );
        let o = tb.sh(&s, &format!("ip neigh show {peer} dev veth0"));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("lladdr"),
            "the kernel resolved {peer} for shunt: {}",
            text(&o)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An implicit port (a connect, a sendto on an unbound socket) is the
/// kernel's pick, held by a kernel socket: `ss` lists the UDP one, and a
/// kernel bind to either fails.
#[test]
fn ephemeral_ports_are_reserved_in_the_kernel() {
    let mut tb = Testbed::new();
    let (s, k) = shared_pair(&mut tb);
    let py = python();
    // A kernel TCP listener and UDP sink in `k`.
    let dir = std::env::temp_dir().join(format!("shunt-shared-eph-{}", tb.tag()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let d = dir.display().to_string();
    tb.spawn_sh(
        &k,
        &format!(
            "exec {py} -c 'import socket, time\n\
             l = socket.socket(); l.bind((\"192.0.2.2\", 7000)); l.listen()\n\
             open(\"{d}/ready\", \"w\").close()\n\
             c, _ = l.accept(); time.sleep(20)'"
        ),
    );
    let o = tb.sh(&k, &wait_file(&format!("{d}/ready")));
    assert!(o.status.success(), "{}", text(&o));
    // The shunt client writes its two ports, then holds them.
    tb.spawn_sh(
        &s,
        &format!(
            "{} exec {py} -c 'import socket, time\n\
             t = socket.create_connection((\"192.0.2.2\", 7000), timeout=10)\n\
             u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b\"x\", (\"192.0.2.2\", 7001))\n\
             open(\"{d}/ports.tmp\", \"w\").write(\"%d %d\" % (t.getsockname()[1], u.getsockname()[1]))\n\
             import os; os.rename(\"{d}/ports.tmp\", \"{d}/ports\")\n\
             time.sleep(20)'",
            shared_env()
        ),
    );
    let o = tb.sh(&s, &wait_file(&format!("{d}/ports")));
    assert!(o.status.success(), "{}", text(&o));
    let ports = std::fs::read_to_string(dir.join("ports")).expect("ports");
    let (tp, up) = ports.split_once(' ').expect("two ports");
    let (tp, up): (u16, u16) = (tp.parse().unwrap(), up.parse().unwrap());
    assert!(tp > 0 && up > 0, "{ports}");
    // The kernel's UDP table shows the reservation bound on the port.
    let o = tb.sh(&s, &format!("ss -Huan 'sport = :{up}'"));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(":{up}")),
        "UDP port {up} not reserved: {}",
        text(&o)
    );
    // The TCP connection is shunt's: the kernel has no such connection.
    let o = tb.sh(&s, &format!("ss -Htan 'sport = :{tp}'"));
    assert!(o.stdout.is_empty(), "a kernel connection: {}", text(&o));
    let o = tb.sh(
        &s,
        &format!(
            "{py} -c 'import socket, errno\n\
             for ty, p in ((socket.SOCK_STREAM, {tp}), (socket.SOCK_DGRAM, {up})):\n\
             \x20   try:\n\
             \x20       socket.socket(socket.AF_INET, ty).bind((\"0.0.0.0\", p)); print(\"bound\")\n\
             \x20   except OSError as e:\n\
             \x20       print(errno.errorcode[e.errno])'"
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "EADDRINUSE\nEADDRINUSE\n",
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An explicit port the kernel (another program) holds is refused to
/// shunt with the kernel's errno; a free one is shunt's.
#[test]
fn a_port_the_kernel_holds_is_refused_to_shunt() {
    let mut tb = Testbed::new();
    let (s, _k) = shared_pair(&mut tb);
    let py = python();
    tb.spawn_sh(
        &s,
        &format!(
            "exec {py} -c 'import socket, time\n\
             l = socket.socket(); l.bind((\"0.0.0.0\", 8009)); l.listen()\n\
             time.sleep(30)'"
        ),
    );
    let o = tb.sh(&s, &wait_listen(8009));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &s,
        &format!(
            "{} export SHUNT_LOG=info; {py} -c 'import socket, errno\n\
             for p in (8009, 8010):\n\
             \x20   t = socket.socket()\n\
             \x20   try:\n\
             \x20       t.bind((\"192.0.2.1\", p)); print(\"bound\", p)\n\
             \x20   except OSError as e:\n\
             \x20       print(errno.errorcode[e.errno], p)'",
            shared_env()
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "EADDRINUSE 8009\nbound 8010\n",
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("with shunt's stack"),
        "the program ran on the kernel: {}",
        text(&o)
    );
}

/// ICMP errors about what shunt sent reach shunt's sockets, not the
/// kernel's: a connected UDP socket over shunt learns that the peer's port
/// is closed (ICMP and ICMPv6 port unreachable: ECONNREFUSED), as it would
/// on Linux. Without the XDP program's ICMP steering the error went to the
/// kernel, and the recv timed out.
#[test]
fn icmp_errors_reach_shunts_sockets() {
    let mut tb = Testbed::new();
    let (s, _k) = shared_pair(&mut tb);
    let prog = r#"
import socket, sys
for fam, peer in ((socket.AF_INET, "192.0.2.2"), (socket.AF_INET6, "2001:db8::2")):
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.connect((peer, 9))
    u.send(b"anyone?")
    try:
        u.recv(100)
        print(peer, "got data")
    except ConnectionRefusedError:
        print(peer, "refused")
    except socket.timeout:
        print(peer, "timeout")
"#;
    let o = tb.sh(
        &s,
        &format!("{} timeout 30 {} -c '{prog}'", shared_env(), python()),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && out.contains("192.0.2.2 refused")
            && out.contains("2001:db8::2 refused"),
        "{}",
        text(&o)
    );
}
