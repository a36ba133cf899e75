//! What tests of programs over shunt share: where libshunt.so and the
//! `shunt` binary are, the namespace pair with no kernel address on
//! shunt's side, and small shell helpers.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::testbed::Testbed;

fn release(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("release")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --release --workspace` first",
        p.display()
    );
    p.canonicalize().expect("canonical path")
}

pub fn libshunt() -> PathBuf {
    release("libshunt.so")
}

/// The `shunt` command.
pub fn shunt_bin() -> PathBuf {
    release("shunt")
}

/// Fail (never skip) when a program the test needs is missing.
pub fn require(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(found, "{program} is not installed (make deps installs it)");
}

pub fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Shell exports that put a program over shunt on `veth0` with `addr`.
pub fn shunt_env_addr(addr: &str) -> String {
    format!(
        "export LD_PRELOAD={} SHUNT_IFACE=veth0 SHUNT_ADDR={addr}; ",
        libshunt().display()
    )
}

/// Shunt on veth0 as 192.0.2.1/24.
pub fn shunt_env() -> String {
    shunt_env_addr("192.0.2.1/24")
}

/// A veth `veth0` in `a` and `veth1` in `b`, up, with no address and no
/// IPv6 link-local address on `a`'s end.
fn link(tb: &Testbed, a: &str, b: &str) {
    let o = tb.sh(
        a,
        &format!(
            "ip link add veth0 type veth peer name veth1 && \
             echo 1 > /proc/sys/net/ipv6/conf/veth0/addr_gen_mode && \
             ip link set veth1 netns {b} && ip link set veth0 up"
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        b,
        "echo 1 > /proc/sys/net/ipv6/conf/veth1/addr_gen_mode && ip link set veth1 up",
    );
    assert!(o.status.success(), "{}", text(&o));
}

/// Namespace `s` (shunt: veth0 up, no kernel address) and `k` (kernel:
/// veth1 with 192.0.2.2/24).
pub fn pair(tb: &mut Testbed) -> (String, String) {
    let s = tb.ns("s");
    let k = tb.ns("k");
    link(tb, &s, &k);
    tb.addr(&k, "veth1", "192.0.2.2/24");
    let o = tb.sh(&s, "ip -o addr show dev veth0");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("inet"),
        "the shunt side has a kernel address: {}",
        text(&o)
    );
    (s, k)
}

/// Two namespaces, shunt on both sides (192.0.2.1 on `a`'s veth0,
/// 192.0.2.2 on `b`'s veth1), no kernel address on either: only shunt's
/// stacks can talk over the veth. Returns (a, b); a program in `b` uses
/// [`shunt_env_b`].
pub fn both(tb: &mut Testbed) -> (String, String) {
    let a = tb.ns("a");
    let b = tb.ns("b");
    link(tb, &a, &b);
    let o = tb.sh(&b, "ip -o addr show dev veth1");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("inet"),
        "{}",
        text(&o)
    );
    (a, b)
}

/// Shunt on `b`'s veth1 as 192.0.2.2/24 (see [`both`]).
pub fn shunt_env_b() -> String {
    format!(
        "export LD_PRELOAD={} SHUNT_IFACE=veth1 SHUNT_ADDR=192.0.2.2/24; ",
        libshunt().display()
    )
}

/// Shell: wait until a TCP listener on `port` exists in this namespace
/// (10 s), without connecting to it (a probe connection is a real client
/// to some servers).
pub fn wait_listen(port: u16) -> String {
    format!(
        "for i in $(seq 200); do ss -Hltn 'sport = :{port}' | grep -q . && break; sleep 0.05; done; "
    )
}

/// Shell: wait until `host port` accepts TCP (10 s), probing with nc.
pub fn wait_port(host: &str, port: u16) -> String {
    format!("for i in $(seq 200); do nc -z {host} {port} 2>/dev/null && break; sleep 0.05; done; ")
}

/// The first word of the output (a sha256sum result).
pub fn first_word(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A file of `mib` MiB of random bytes in a fresh directory for this
/// test bed; (directory, sha256).
pub fn random_file(tb: &Testbed, name: &str, mib: u32) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("shunt-{name}-{}", tb.tag()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let d = dir.display();
    let o = Command::new("sh")
        .args([
            "-c",
            &format!("head -c {mib}M /dev/urandom > {d}/f.bin && sha256sum < {d}/f.bin"),
        ])
        .output()
        .expect("sh");
    assert!(o.status.success(), "{}", text(&o));
    let sum = first_word(&o);
    (dir, sum)
}

/// Shell exports that put a program over shunt's AF_XDP device on `veth0`
/// with `addr` (dedicated mode: the XDP program steers `addr`'s frames to
/// shunt and passes the rest to the kernel).
pub fn xdp_env_addr(addr: &str) -> String {
    format!("{}export SHUNT_BACKEND=xdp; ", shunt_env_addr(addr))
}

/// Shunt over AF_XDP on veth0 as 192.0.2.1/24.
pub fn xdp_env() -> String {
    xdp_env_addr("192.0.2.1/24")
}
