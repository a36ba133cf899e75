//! Real programs over shunt's stack: one end runs under libshunt.so on a
//! veth that has NO kernel address (not even an IPv6 link-local one), the
//! other end is the kernel in a second namespace. Whatever crosses the
//! veth can only have gone through shunt.
//!
//! Needs root (namespaces), python3, curl, socat and nc (netcat-openbsd);
//! libshunt.so comes from `cargo build --release` (target/release).

use std::path::PathBuf;

use shunt_shim_tests::cases;
use shunt_shim_tests::over::{pair, python, random_file, require, shunt_env, text, wait_port};
use shunt_shim_tests::testbed::Testbed;

// The cases shared with xdp_over_shunt.rs (shunt_shim_tests::cases).

#[test]
fn curl_over_shunt_fetches_1mib_from_kernel_http_server() {
    cases::curl_fetches_1mib_from_kernel_http_server(&shunt_env());
}

#[test]
fn kernel_curl_fetches_1mib_from_http_server_over_shunt() {
    cases::kernel_curl_fetches_1mib_from_http_server(&shunt_env());
}

#[test]
fn nc_over_shunt_to_kernel_socat_echo() {
    cases::nc_to_kernel_socat_echo(&shunt_env());
}

#[test]
fn kernel_nc_to_socat_echo_over_shunt() {
    cases::kernel_socat_to_socat_echo(&shunt_env());
}

const PY_SELF: &str = r#"
import socket, threading
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 0))
l.listen(8)
port = l.getsockname()[1]
def serve():
    for _ in range(2):
        c, peer = l.accept()
        data = b""
        while not data.endswith(b"\n"):
            data += c.recv(65536)
        c.sendall(data.upper())
        c.close()
threading.Thread(target=serve, daemon=True).start()
for host in ("192.0.2.1", "127.0.0.1"):
    s = socket.create_connection((host, port), timeout=10)
    msg = (host * 5000 + "\n").encode()
    s.sendall(msg)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    assert got == msg.upper(), (host, len(got))
    print(host, s.getsockname()[0], len(got))
    s.close()
"#;

#[test]
fn one_process_connects_to_its_own_address_and_to_loopback() {
    let mut tb = Testbed::new();
    let (s, _k) = pair(&mut tb);
    let o = tb.sh(
        &s,
        &format!("{} timeout 30 {} -c '{}'", shunt_env(), python(), PY_SELF),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && out.contains("192.0.2.1 192.0.2.1 45001")
            && out.contains("127.0.0.1 127.0.0.1 45001"),
        "{}",
        text(&o)
    );
}

#[test]
fn curl_100mib_both_ways() {
    require("curl");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let dir = std::env::temp_dir().join(format!("shunt-os-big-{}", tb.tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let o = tb.sh(
        &k,
        &format!("head -c 100M /dev/urandom > {d}/big && sha256sum < {d}/big"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let want = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let py = python();
    tb.spawn_sh(
        &k,
        &format!("cd {d} && exec {py} -m http.server 8010 --bind 192.0.2.2 >/dev/null 2>&1"),
    );
    let o = tb.sh(&k, &wait_port("192.0.2.2", 8010));
    assert!(o.status.success(), "{}", text(&o));
    // Shunt receives.
    let o = tb.sh(
        &s,
        &format!(
            "{} timeout 60 curl -sS --fail http://192.0.2.2:8010/big | sha256sum",
            shunt_env()
        ),
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(&want),
        "{}",
        text(&o)
    );
    // Shunt sends (after: one shunt process per namespace and address).
    tb.spawn_sh(
        &s,
        &format!(
            "{} cd {d} && exec {py} -m http.server 8011 --bind 0.0.0.0 >/dev/null 2>&1",
            shunt_env()
        ),
    );
    let o = tb.sh(
        &k,
        &format!(
            "{} timeout 60 curl -sS --fail http://192.0.2.1:8011/big | sha256sum",
            wait_port("192.0.2.1", 8011)
        ),
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(&want),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_server_over_shunt_with_kernel_benchmark() {
    require("redis-server");
    require("redis-benchmark");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    tb.spawn_sh(
        &s,
        &format!(
            "{} exec redis-server --port 6379 --save '' --appendonly no --protected-mode no >/dev/null 2>&1",
            shunt_env()
        ),
    );
    let o = tb.sh(
        &k,
        &format!(
            "{} timeout 60 redis-benchmark -h 192.0.2.1 -p 6379 -q -n 20000 -c 20 -t set,get 2>&1 | tr '\\r' '\\n' | grep 'requests per second'",
            wait_port("192.0.2.1", 6379)
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("SET: ") && out.contains("GET: "),
        "{}",
        text(&o)
    );
}

#[test]
fn nginx_over_shunt_fetched_by_kernel_curl() {
    require("nginx");
    require("curl");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let (dir, want) = random_file(&tb, "www", 1);
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/px;\n\
         fastcgi_temp_path {d}/fc; uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;\n\
         server {{ listen 8080; root {d}; }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    tb.spawn_sh(
        &s,
        &format!(
            "{} exec nginx -p {d} -c {d}/nginx.conf >/dev/null 2>&1",
            shunt_env()
        ),
    );
    let o = tb.sh(
        &k,
        &format!(
            "{} timeout 30 curl -sS --fail http://192.0.2.1:8080/f.bin | sha256sum",
            wait_port("192.0.2.1", 8080)
        ),
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(&want),
        "want {want}: {}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client over shunt that makes more short connections to one server
/// than there are ephemeral ports (28232), letting the server close first
/// each time: Linux reuses a port as soon as such a passive close ends,
/// and so must shunt (it once kept every connect()ed port for good:
/// EADDRNOTAVAIL after 28232 connections).
#[test]
fn more_short_connections_than_ephemeral_ports() {
    require("gcc");
    let dir = std::env::temp_dir().join(format!("shunt-os-cps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("cps");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cps.c");
    let o = std::process::Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "gcc: {}", text(&o));
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    tb.spawn_sh(
        &k,
        &format!("exec {} server 192.0.2.2 7010 120", bin.display()),
    );
    let o = tb.sh(&k, &wait_port("192.0.2.2", 7010));
    assert!(o.status.success(), "{}", text(&o));
    // At most 100 s (a loaded machine does a few thousand per second).
    let o = tb.sh(
        &s,
        &format!(
            "{} timeout 110 {} client 192.0.2.2 7010 100 30000",
            shunt_env(),
            bin.display()
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.split_whitespace().next() == Some("30000"),
        "{}",
        text(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A program over shunt that waited in a blocking recv (its thread then
/// slept on the device) and now sleeps outside shunt: the progress thread
/// takes the device back, so what the peer sends meanwhile is received
/// and acknowledged, not left on the wire until the program calls again.
#[test]
fn data_is_acknowledged_while_the_program_sleeps_after_a_blocking_recv() {
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let py = python();
    let server = format!(
        "{} timeout 20 {py} -c '
import socket, time
l = socket.socket(); l.bind((\"0.0.0.0\", 7020)); l.listen(1)
c, _ = l.accept()
assert c.recv(1) == b\"x\"
time.sleep(3)
n = 0
c.settimeout(5)
while n < 60000:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print(n)
'",
        shunt_env()
    );
    tb.spawn_sh(&s, &format!("{server} >/dev/null"));
    // The peer's unacknowledged bytes (SIOCOUTQ) must reach 0 while the
    // program still sleeps (3 s).
    let o = tb.sh(
        &k,
        &format!(
            "timeout 20 {py} -c '
import fcntl, socket, struct, time
for i in range(200):
    try:
        c = socket.create_connection((\"192.0.2.1\", 7020))
        break
    except ConnectionRefusedError:
        time.sleep(0.05)
c.send(b\"x\")
time.sleep(0.5)
c.sendall(b\"y\" * 60000)
t = time.monotonic()
while time.monotonic() - t < 1.5:
    if struct.unpack(\"i\", fcntl.ioctl(c, 0x5411, b\"\\0\" * 4))[0] == 0:
        print(\"acked\")
        break
    time.sleep(0.01)
else:
    print(\"unacked\")
time.sleep(3)
c.close()
'"
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "acked",
        "{}",
        text(&o)
    );
}

/// A namespace that never had an address (loopback down) has no local
/// routing table, and there the kernel lets a socket bind any address: that
/// must not pass for the kernel owning shunt's address. Then the other way:
/// once the kernel has the address, the program runs on the kernel.
#[test]
fn pristine_namespace_is_served_and_kernel_address_is_left_alone() {
    let mut tb = Testbed::new();
    let a = tb.ns_bare("a");
    let b = tb.ns("b");
    tb.veth(&a, "veth0", &b, "veth1");
    let o = tb.sh(&a, "ip -o -4 addr show | grep -c inet || true");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "0",
        "{}",
        text(&o)
    );
    let run = |tb: &Testbed| {
        tb.sh(
            &a,
            &format!(
                "{} SHUNT_LOG=info {} -c 'import socket; socket.socket()'",
                shunt_env(),
                python()
            ),
        )
    };
    let o = run(&tb);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("serving 192.0.2.1/24 on veth0"),
        "{}",
        text(&o)
    );
    let o = tb.sh(&a, "ip addr add 192.0.2.1/24 dev veth0");
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&tb);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("is the kernel's own address"),
        "{}",
        text(&o)
    );
}
