//! Connections shared with forked children, over shunt's stack: a forking
//! server (the parent accepts, a child serves, the parent closes its copy),
//! a prefork server (children accept on the listener they inherited), a
//! client whose children exit, close or use the inherited socket, and
//! children forked while another thread keeps shunt busy; over AF_XDP, a
//! child that outlives its parent does not keep the XDP program attached.
//! As in over_shunt.rs, one end runs under libshunt.so on a veth without
//! any kernel address, the other end is the kernel in a second namespace.
//!
//! Needs root (namespaces), python3 and socat; libshunt.so comes from
//! `cargo build --release` (target/release).

use shunt_shim_tests::over::{pair, python, require, shunt_env, text, wait_listen};
use shunt_shim_tests::testbed::Testbed;

/// Kernel clients, in parallel: each sends its own 300 KB, half-closes,
/// and must read back exactly what it sent.
const PY_CLIENTS: &str = r#"
import socket, sys, threading, time
N, SIZE = 5, 300_000
res = {}
def client(i):
    data = bytes((j * 7 + i * 13) % 251 for j in range(SIZE))
    for attempt in range(100):
        try:
            s = socket.create_connection(("192.0.2.1", 7010), timeout=30)
            break
        except OSError:
            time.sleep(0.1)
    else:
        res[i] = "no connection"
        return
    def send():
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    got = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    t.join()
    s.close()
    res[i] = "ok" if bytes(got) == data else "got %d bytes, want %d (equal prefix: %s)" % (
        len(got), len(data), bytes(got) == data[:len(got)])
ts = [threading.Thread(target=client, args=(i,)) for i in range(N)]
for t in ts: t.start()
for t in ts: t.join()
for i in range(N):
    print(i, res.get(i))
sys.exit(0 if all(res.get(i) == "ok" for i in range(N)) else 1)
"#;

#[test]
fn socat_fork_server_over_shunt_echoes_to_several_kernel_clients() {
    require("socat");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    // The parent accepts and forks; the child serves the accepted socket
    // through `cat` and the parent closes its copy at once.
    tb.spawn_sh(
        &s,
        &format!(
            "{} exec socat TCP-LISTEN:7010,fork,reuseaddr EXEC:cat",
            shunt_env()
        ),
    );
    let py = python();
    let o = tb
        .cmd(&k, "timeout")
        .args(["90", py, "-c", PY_CLIENTS])
        .output()
        .expect("cannot run python3");
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" ok")).count(),
        5,
        "{}",
        text(&o)
    );
}

/// Under shunt: one connection to a kernel echo server; children that
/// exit without touching it, close it, write on it, or make their own
/// round trip on it; after each, the parent's connection still echoes
/// byte-exactly.
const PY_PARENT: &str = r#"
import os, socket, sys
s = socket.create_connection(("192.0.2.2", 7011), timeout=20)
def roundtrip(msg):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        b = s.recv(65536)
        assert b, "EOF after %d of %d bytes" % (len(got), len(msg))
        got += b
    assert got == msg, "echo differs (%d bytes)" % len(got)
roundtrip(b"before\n")
# A child that exits at once, without running exit handlers.
pid = os.fork()
if pid == 0:
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
roundtrip(bytes(range(256)) * 800)
# A child that closes its copy and exits normally (exit handlers run).
pid = os.fork()
if pid == 0:
    s.close()
    sys.exit(0)
assert os.waitpid(pid, 0)[1] == 0
roundtrip(b"x" * 200_000)
# A child that writes on the inherited socket: the parent reads the echo.
pid = os.fork()
if pid == 0:
    s.sendall(b"from the child\n")
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
got = b""
while len(got) < 15:
    b = s.recv(100)
    assert b, "EOF"
    got += b
assert got == b"from the child\n", got
# A child that makes its own round trip while the parent keeps its fd.
pid = os.fork()
if pid == 0:
    try:
        roundtrip(b"the child asks, the server answers\n" * 4000)
    except BaseException:
        import traceback; traceback.print_exc()
        os._exit(1)
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0, "the round trip of the child failed"
roundtrip(b"after\n" * 1000)
print("intact")
"#;

#[test]
fn forked_children_leave_the_parents_connection_intact() {
    require("socat");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    // Not PIPE: socat can block for good writing into its own full pipe.
    tb.spawn_sh(&k, "exec socat TCP-LISTEN:7011,reuseaddr EXEC:cat");
    let o = tb.sh(&k, &wait_listen(7011));
    assert!(o.status.success(), "{}", text(&o));
    let py = python();
    let o = tb.sh(
        &s,
        &format!("{} timeout 60 {py} -c '{PY_PARENT}'", shunt_env()),
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("intact"),
        "{}",
        text(&o)
    );
}

/// Under shunt: a prefork server. The parent listens and never accepts;
/// three children accept on the listener they inherited (one waits in
/// select first) and answer each connection with the peer's address (as
/// accept gave it) and the bytes.
const PY_PREFORK: &str = r#"
import os, select, socket, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 7012))
l.listen(16)
kids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        while True:
            if i == 2:
                # This one waits in select(2) first, as event-driven
                # servers do.
                select.select([l], [], [])
            c, peer = l.accept()
            data = b""
            while not data.endswith(b"\n"):
                b = c.recv(65536)
                if not b:
                    break
                data += b
            c.sendall(("%s:%d " % peer).encode() + data)
            c.close()
    kids.append(pid)
os.waitpid(kids[0], 0)
"#;

/// Kernel clients, in parallel: each must get back its own address (as the
/// server saw it) and its 100 KB.
const PY_PREFORK_CLIENTS: &str = r#"
import socket, sys, threading, time
N = 8
res = {}
def client(i):
    data = bytes(97 + (j * 7 + i) % 26 for j in range(100_000)) + b"\n"
    for attempt in range(100):
        try:
            s = socket.create_connection(("192.0.2.1", 7012), timeout=30)
            break
        except OSError:
            time.sleep(0.1)
    else:
        res[i] = "no connection"
        return
    me = "%s:%d " % s.getsockname()
    s.sendall(data)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    want = me.encode() + data
    res[i] = "ok" if got == want else "got %r..., want %r..." % (got[:40], want[:40])
ts = [threading.Thread(target=client, args=(i,)) for i in range(N)]
for t in ts: t.start()
for t in ts: t.join()
for i in range(N):
    print(i, res.get(i))
sys.exit(0 if all(res.get(i) == "ok" for i in range(N)) else 1)
"#;

#[test]
fn prefork_children_accept_on_an_inherited_listener_over_shunt() {
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let py = python();
    tb.spawn_sh(&s, &format!("{} exec {py} -c '{PY_PREFORK}'", shunt_env()));
    let o = tb
        .cmd(&k, "timeout")
        .args(["60", py, "-c", PY_PREFORK_CLIENTS])
        .output()
        .expect("cannot run python3");
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" ok")).count(),
        8,
        "{}",
        text(&o)
    );
}

/// Under shunt: a thread keeps the connection busy (so shunt's threads
/// often wait for its lock) while the main thread forks children that
/// close their copy of the socket at once (a shunt call in the child).
/// Every child must exit: none may inherit the lock held by a thread that
/// exists only in the parent.
const PY_FORK_WHILE_BUSY: &str = r#"
import os, socket, sys, threading, time
s = socket.create_connection(("192.0.2.2", 7013), timeout=20)
stop = False
def busy():
    while not stop:
        s.sendall(b"x" * 1000)
        got = 0
        while got < 1000:
            b = s.recv(65536)
            assert b, "EOF"
            got += len(b)
t = threading.Thread(target=busy)
t.start()
hung = 0
for i in range(150):
    pid = os.fork()
    if pid == 0:
        s.close()
        os._exit(0)
    for _ in range(300):
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
        time.sleep(0.01)
    else:
        hung += 1
        os.kill(pid, 9)
        os.waitpid(pid, 0)
stop = True
t.join()
print("hung", hung)
"#;

#[test]
fn children_forked_while_shunt_is_busy_never_hang() {
    require("socat");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    tb.spawn_sh(&k, "exec socat TCP-LISTEN:7013,reuseaddr PIPE");
    let o = tb.sh(&k, &wait_listen(7013));
    assert!(o.status.success(), "{}", text(&o));
    let py = python();
    let o = tb.sh(
        &s,
        &format!("{} timeout 120 {py} -c '{PY_FORK_WHILE_BUSY}'", shunt_env()),
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("hung 0"),
        "{}",
        text(&o)
    );
}

/// A shunt program over AF_XDP forks a child that outlives it: the child
/// holds the inherited listener (and, before it closed them, the device's
/// descriptors: the XDP link kept the program attached). Killing the
/// parent with SIGKILL must detach the program while the child lives.
#[test]
fn xdp_program_detaches_when_the_parent_dies_though_children_live() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let mut tb = Testbed::new();
    let (s, _k) = pair(&mut tb);
    let prog = r#"
import os, socket, sys, time
l = socket.socket()
l.bind(("192.0.2.1", 7030))
l.listen(4)
c = os.fork()
if c == 0:
    time.sleep(60)
    os._exit(0)
print(os.getpid(), c, flush=True)
time.sleep(60)
"#;
    let child = tb
        .cmd(&s, "sh")
        .args([
            "-c",
            &format!(
                "{} export SHUNT_BACKEND=xdp; exec {} -c '{prog}'",
                shunt_env(),
                python()
            ),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run sh");
    let child = tb.adopt(child);
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout piped");
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .expect("the program's pids");
    let pids: Vec<u32> = line
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{line:?}");
    let xdp = |tb: &Testbed| {
        let o = tb.sh(&s, "ip link show dev veth0");
        String::from_utf8_lossy(&o.stdout).contains("xdp")
    };
    assert!(xdp(&tb), "no XDP program on veth0 while shunt runs");
    let o = tb.sh(&s, &format!("kill -9 {}", pids[0]));
    assert!(o.status.success(), "{}", text(&o));
    let t0 = Instant::now();
    while xdp(&tb) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let attached = xdp(&tb);
    let child_lives = std::path::Path::new(&format!("/proc/{}", pids[1])).exists();
    let _ = tb.sh(&s, &format!("kill -9 {}", pids[1]));
    assert!(child_lives, "the child should still live");
    assert!(
        !attached,
        "the XDP program is still attached 5 s after the parent died, the child living"
    );
}
