//! libshunt.so with nothing to serve: real programs must work exactly as
//! without it. Each test runs in namespaces of its own (the test bed),
//! with LD_PRELOAD set both without SHUNT_IFACE (the shim inactive) and
//! with SHUNT_IFACE naming a veth whose traffic still goes to the kernel
//! (the stack is not wired in yet, issue 5).
//!
//! Needs root (namespaces), python3, gcc, socat, nc (netcat-openbsd) and
//! curl; libshunt.so comes from `cargo build --release` (target/release).

use std::path::PathBuf;

use shunt_shim_tests::over::{libshunt, python, require, text};
use shunt_shim_tests::testbed::Testbed;

/// The two ways the shim runs with nothing to serve, as shell exports.
fn modes() -> Vec<(&'static str, String)> {
    let lib = libshunt().display().to_string();
    vec![
        ("inactive", format!("export LD_PRELOAD={lib}; ")),
        (
            "iface",
            format!(
                "export LD_PRELOAD={lib} SHUNT_IFACE=veth0 \
                 SHUNT_ADDR=192.0.2.1/24,2001:db8::1/64 SHUNT_GW=192.0.2.254; "
            ),
        ),
    ]
}

/// A namespace pair joined by veth0 (192.0.2.1, 2001:db8::1) and veth1
/// (192.0.2.2, 2001:db8::2), kernel addresses on both ends.
fn pair(tb: &mut Testbed) -> (String, String) {
    let a = tb.ns("a");
    let b = tb.ns("b");
    tb.veth(&a, "veth0", &b, "veth1");
    tb.addr(&a, "veth0", "192.0.2.1/24");
    tb.addr(&a, "veth0", "2001:db8::1/64");
    tb.addr(&b, "veth1", "192.0.2.2/24");
    tb.addr(&b, "veth1", "2001:db8::2/64");
    (a, b)
}

/// Shell: wait until a kernel TCP socket in namespace `ns` listens on `port` (5 s at most), without connecting.
fn wait_listen(ns: &str, port: u16) -> String {
    format!(
        "for i in $(seq 100); do ip netns exec {ns} ss -Hltn 'sport = :{port}' | grep -q . && break; sleep 0.05; done; "
    )
}

/// Shell: wait until `host port` accepts TCP (5 s at most).
fn wait_port(host: &str, port: u16) -> String {
    format!("for i in $(seq 100); do nc -z {host} {port} 2>/dev/null && break; sleep 0.05; done; ")
}

#[test]
fn the_shim_is_really_loaded() {
    let mut tb = Testbed::new();
    let (a, _) = pair(&mut tb);
    for (mode, env) in modes() {
        let o = tb.sh(&a, &format!("{env} SHUNT_LOG=debug /bin/true"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert!(
            err.contains("shunt: debug: loaded into pid") && err.contains("(0 of "),
            "{mode}: libshunt.so not loaded or real functions missing: {}",
            text(&o)
        );
        // Without SHUNT_LOG a program prints nothing of ours.
        let o = tb.sh(&a, &format!("{env} /bin/true"));
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{mode}: {}",
            text(&o)
        );
    }
}

#[test]
fn curl_fetches_1mib_from_python_http_server() {
    require("curl");
    let mut tb = Testbed::new();
    let (a, b) = pair(&mut tb);
    let dir = std::env::temp_dir().join(format!("shunt-pt-www-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("f.bin");
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let want =
        String::from_utf8_lossy(&tb.sh(&a, &format!("sha256sum < {}", file.display())).stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
    let py = python();
    for (i, (mode, env)) in modes().into_iter().enumerate() {
        let p = 8000 + 10 * i as u16;
        let (p0, p1, p2) = (p, p + 1, p + 2);
        // Loopback, both ends preloaded, in namespace a.
        tb.spawn_sh(
            &a,
            &format!(
                "{env} cd {} && exec {py} -m http.server {p0} --bind 127.0.0.1 >/dev/null 2>&1",
                dir.display()
            ),
        );
        // Over the veth: server in b (kernel, not preloaded), and a second
        // preloaded server in b for the other direction.
        tb.spawn_sh(
            &b,
            &format!(
                "cd {} && exec {py} -m http.server {p1} --bind 192.0.2.2 >/dev/null 2>&1",
                dir.display()
            ),
        );
        tb.spawn_sh(
            &b,
            &format!(
                "{env} cd {} && exec {py} -m http.server {p2} --bind :: >/dev/null 2>&1",
                dir.display()
            ),
        );
        for (url, port, host) in [
            (format!("http://127.0.0.1:{p0}/f.bin"), p0, "127.0.0.1"),
            (format!("http://192.0.2.2:{p1}/f.bin"), p1, "192.0.2.2"),
            (
                format!("http://[2001:db8::2]:{p2}/f.bin"),
                p2,
                "2001:db8::2",
            ),
        ] {
            let o = tb.sh(
                &a,
                &format!(
                    "{} {env} timeout 60 curl -sS -g --fail {url} | sha256sum",
                    wait_port(host, port)
                ),
            );
            let got = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && got.starts_with(&want),
                "{mode} {url}: want {want}\n{}",
                text(&o)
            );
            assert!(o.stderr.is_empty(), "{mode} {url}: {}", text(&o));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socat_and_nc_echo() {
    require("socat");
    require("nc");
    let mut tb = Testbed::new();
    let (a, b) = pair(&mut tb);
    for (i, (mode, env)) in modes().into_iter().enumerate() {
        let p = 7000 + 10 * i as u16;
        let (p0, p1, p2) = (p, p + 1, p + 2);
        // socat forks a child per connection and execs cat in it.
        tb.spawn_sh(
            &b,
            &format!("{env} exec socat TCP-LISTEN:{p0},reuseaddr,fork EXEC:cat"),
        );
        tb.spawn_sh(
            &a,
            &format!("{env} exec socat TCP6-LISTEN:{p1},reuseaddr,fork SYSTEM:'tr a-z A-Z'"),
        );
        let o = tb.sh(
            &a,
            &format!(
                "{} {env} f=$(mktemp); head -c 34000 /dev/zero | tr '\\0' x > $f; \
                 timeout 20 nc -N 192.0.2.2 {p0} < $f | wc -c; rm -f $f",
                wait_port("192.0.2.2", p0)
            ),
        );
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "34000",
            "{mode}: {}",
            text(&o)
        );
        // socat as the client, over IPv6 loopback, with a half-close.
        let o = tb.sh(
            &a,
            &format!(
                "{} {env} yes 'hello over shunt' | head -n 2000 | timeout 20 socat -t 5 - TCP6:[::1]:{p1} | sha256sum; \
                 yes 'hello over shunt' | head -n 2000 | tr a-z A-Z | sha256sum",
                wait_port("::1", p1),
            ),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            o.status.success() && lines.len() == 2 && lines[0] == lines[1],
            "{mode}: {}",
            text(&o)
        );
        // UDP echo with socat and nc -u.
        tb.spawn_sh(
            &b,
            &format!("{env} exec socat UDP-RECVFROM:{p2},fork EXEC:cat"),
        );
        let o = tb.sh(
            &a,
            &format!("sleep 0.3; {env} echo ping | timeout 5 nc -u -w 1 192.0.2.2 {p2}"),
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "ping",
            "{mode}: {}",
            text(&o)
        );
    }
}

const PY_SOCKETS: &str = r#"
import asyncio, os, selectors, socket, sys

# Blocking TCP over the veth and loopback, v4 and v6, with options.
def tcp_roundtrip(family, host):
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    cli = socket.create_connection((host, port), timeout=5)
    cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    conn, peer = srv.accept()
    assert peer[:2] == cli.getsockname()[:2], (peer, cli.getsockname())
    assert conn.getpeername()[:2] == cli.getsockname()[:2]
    data = os.urandom(300_000)
    cli.sendall(data)
    cli.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = conn.recv(65536)
        if not b:
            break
        got += b
    assert got == data
    conn.sendmsg([b"rep", b"ly"])
    conn.close()
    buf = bytearray(16)
    n = cli.recv_into(buf)
    assert bytes(buf[:n]) == b"reply", buf
    assert cli.recv(10) == b""
    cli.close(); srv.close()

for fam, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"),
                  (socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")]:
    tcp_roundtrip(fam, host)

# UDP with recvfrom/sendto, recvmsg, MSG_PEEK, a connect()ed socket.
u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u1.bind(("192.0.2.1", 0))
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u2.bind(("192.0.2.1", 0))
u3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u3.bind(("192.0.2.1", 0))
u2.sendto(b"dgram", u3.getsockname())
assert u3.recv(10, socket.MSG_PEEK) == b"dgram"
data, addr = u3.recvfrom(10)
assert data == b"dgram" and addr == u2.getsockname()
u3.connect(u2.getsockname()); u3.send(b"back")
msg, anc, flags, addr = u2.recvmsg(10)
assert msg == b"back" and addr == u3.getsockname()
u1.sendto(b"x", u1.getsockname()); assert u1.recvfrom(1) == (b"x", u1.getsockname())
for s in (u1, u2, u3): s.close()

# Errors keep Linux's errno.
s = socket.socket()
try:
    s.connect(("127.0.0.1", 1)); raise SystemExit("connect to a closed port worked")
except ConnectionRefusedError:
    pass
s.close()
try:
    os.read(12345, 1); raise SystemExit("read on a bad fd worked")
except OSError as e:
    assert e.errno == 9
s = socket.socket(); s.setblocking(False)
try:
    s.recv(1)
except OSError as e:
    assert e.errno == 107, e  # ENOTCONN
s.close()

# selectors (epoll) over a mix of a pipe, a socketpair and TCP.
sel = selectors.DefaultSelector()
r, w = os.pipe()
a, b = socket.socketpair()
srv = socket.create_server(("127.0.0.1", 0)); c = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
for f, tag in [(r, "pipe"), (b, "pair"), (conn, "tcp")]:
    sel.register(f, selectors.EVENT_READ, tag)
os.write(w, b"1"); a.send(b"2"); c.send(b"3")
seen = set()
while len(seen) < 3:
    for key, ev in sel.select(timeout=5):
        seen.add(key.data)
        (os.read(key.fd, 1) if key.data == "pipe" else key.fileobj.recv(1))
assert seen == {"pipe", "pair", "tcp"}, seen
sel.close()
# select() and poll() too.
import select as sel_mod
c.send(b"x"); os.write(w, b"y")
import time; time.sleep(0.05)
rl, _, _ = sel_mod.select([conn, r], [], [], 5)
assert set(rl) == {conn, r}, rl
p = sel_mod.poll(); p.register(conn, sel_mod.POLLIN); p.register(r, sel_mod.POLLIN)
assert len(p.poll(5000)) == 2

# asyncio: an echo server with 50 concurrent clients.
async def main():
    async def handle(reader, writer):
        while data := await reader.read(4096):
            writer.write(data); await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "192.0.2.1", 0)
    port = server.sockets[0].getsockname()[1]
    async def client(i):
        reader, writer = await asyncio.open_connection("192.0.2.1", port)
        msg = (b"client %d " % i) * 500
        writer.write(msg); await writer.drain(); writer.write_eof()
        got = await reader.read()
        writer.close()
        return got == msg
    results = await asyncio.gather(*(client(i) for i in range(50)))
    server.close(); await server.wait_closed()
    assert all(results)
asyncio.run(main())

# fork + exec: the child execs a shell that writes to an inherited socket.
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    os.dup2(b.fileno(), 1)
    os.execv("/bin/sh", ["sh", "-c", "echo from-exec"])
os.waitpid(pid, 0)
assert a.recv(100) == b"from-exec\n"
print("PYTHON OK")
"#;

#[test]
fn python_sockets_selectors_asyncio_fork_exec() {
    let mut tb = Testbed::new();
    let (a, _) = pair(&mut tb);
    let script = std::env::temp_dir().join(format!("shunt-pt-{}.py", std::process::id()));
    std::fs::write(&script, PY_SOCKETS).unwrap();
    for (mode, env) in modes() {
        let o = tb.sh(
            &a,
            &format!("{env} timeout 120 {} {}", python(), script.display()),
        );
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("PYTHON OK"),
            "{mode}: {}",
            text(&o)
        );
        assert!(o.stderr.is_empty(), "{mode}: {}", text(&o));
    }
    let _ = std::fs::remove_file(&script);
}

/// A C program that exercises the hooks the scripts above may not reach:
/// vfork + execl, fork + execvp, execle and execlp with stack arguments, epoll over pipes and sockets (pwait,
/// pwait2), dup2/dup3/F_DUPFD_CLOEXEC/close_range, ioctl(FIONREAD),
/// readv/writev, sendmmsg/recvmmsg, sendfile, fortified read/recv/poll.
const C_PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d %s errno=%d\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static void tcp_pair(int *cli, int *srv) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); CHECK(l >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(bind(l, (void *)&a, sizeof a) == 0); CHECK(listen(l, 4) == 0);
    socklen_t len = sizeof a; CHECK(getsockname(l, (void *)&a, &len) == 0);
    *cli = socket(AF_INET, SOCK_STREAM, 0); CHECK(connect(*cli, (void *)&a, sizeof a) == 0);
    *srv = accept4(l, NULL, NULL, SOCK_CLOEXEC); CHECK(*srv >= 0); close(l);
}

int main(void) {
    int st;
    pid_t p = vfork();
    if (p == 0) { execl("/bin/sh", "sh", "-c", "exit 7", (char *)0); _exit(127); }
    CHECK(p > 0 && waitpid(p, &st, 0) == p && WEXITSTATUS(st) == 7);
    p = fork();
    if (p == 0) { char *av[] = { "true", NULL }; execvp("true", av); _exit(127); }
    CHECK(p > 0 && waitpid(p, &st, 0) == p && WEXITSTATUS(st) == 0);
    /* Variadic execs with arguments past the registers. */
    p = fork();
    if (p == 0) {
        char *env[] = { "X=1", NULL };
        execle("/bin/sh", "sh", "-c", "test \"$X$0$1$2$3$4$5$6\" = 1abcdefg", "a", "b", "c", "d", "e", "f", "g", (char *)0, env);
        _exit(127);
    }
    CHECK(p > 0 && waitpid(p, &st, 0) == p && WEXITSTATUS(st) == 0);
    p = fork();
    if (p == 0) { execlp("sh", "sh", "-c", "exit $(($# + $1))", "x", "1", "2", "3", "4", "5", "6", "7", (char *)0); _exit(127); }
    CHECK(p > 0 && waitpid(p, &st, 0) == p && WEXITSTATUS(st) == 8);

    int c, s; tcp_pair(&c, &s);
    int pfd[2]; CHECK(pipe2(pfd, O_CLOEXEC) == 0);
    int ep = epoll_create1(EPOLL_CLOEXEC); CHECK(ep >= 0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = s };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    ev.data.fd = pfd[0]; CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, pfd[0], &ev) == 0);
    struct epoll_event out[4];
    CHECK(epoll_wait(ep, out, 4, 0) == 0);
    CHECK(write(c, "abc", 3) == 3 && write(pfd[1], "z", 1) == 1);
    int n = 0, tries = 0;
    while (n < 2 && tries++ < 100) { n = epoll_pwait(ep, out, 4, 100, NULL); }
    CHECK(n == 2);
    struct timespec ts = { 0, 1000000 };
    CHECK(epoll_pwait2(ep, out, 4, &ts, NULL) == 2);
    int avail = 0; CHECK(ioctl(s, FIONREAD, &avail) == 0 && avail == 3);
    char buf[64];
    CHECK(read(s, buf, sizeof buf) == 3 && memcmp(buf, "abc", 3) == 0);
    CHECK(read(pfd[0], buf, 1) == 1);

    /* dup family keeps numbering as Linux. */
    int d = dup(s); CHECK(d > s || d >= 0);
    CHECK(dup2(d, 100) == 100 && dup3(d, 101, O_CLOEXEC) == 101);
    CHECK(fcntl(101, F_GETFD) == FD_CLOEXEC);
    int e = fcntl(d, F_DUPFD_CLOEXEC, 200); CHECK(e == 200);
    CHECK(close_range(100, 101, 0) == 0 && fcntl(100, F_GETFD) == -1 && errno == EBADF);
    close(e); close(d);
    CHECK(close(12345) == -1 && errno == EBADF);

    /* Scatter/gather and batches. */
    struct iovec iov[2] = { { "he", 2 }, { "llo", 3 } };
    CHECK(writev(c, iov, 2) == 5);
    char b1[2], b2[8]; struct iovec riov[2] = { { b1, 2 }, { b2, 8 } };
    CHECK(readv(s, riov, 2) == 5 && memcmp(b1, "he", 2) == 0 && memcmp(b2, "llo", 3) == 0);
    struct mmsghdr mm[2]; memset(mm, 0, sizeof mm);
    struct iovec m0 = { "one", 3 }, m1 = { "two", 3 };
    mm[0].msg_hdr.msg_iov = &m0; mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &m1; mm[1].msg_hdr.msg_iovlen = 1;
    CHECK(sendmmsg(c, mm, 2, 0) == 2);
    struct pollfd pf = { .fd = s, .events = POLLIN };
    CHECK(poll(&pf, 1, 1000) == 1 && (pf.revents & POLLIN));
    char r0[16]; struct iovec ri = { r0, sizeof r0 };
    struct mmsghdr rm; memset(&rm, 0, sizeof rm); rm.msg_hdr.msg_iov = &ri; rm.msg_hdr.msg_iovlen = 1;
    CHECK(recvmmsg(s, &rm, 1, 0, NULL) == 1 && rm.msg_len == 6);

    /* sendfile from a temp file. */
    char path[] = "/tmp/shunt-pt-sfXXXXXX"; int f = mkstemp(path); CHECK(f >= 0); unlink(path);
    CHECK(write(f, "filedata", 8) == 8); off_t off = 0;
    CHECK(sendfile(c, f, &off, 8) == 8 && off == 8);
    CHECK(recv(s, buf, sizeof buf, 0) == 8 && memcmp(buf, "filedata", 8) == 0);

    /* select with a timeout Linux writes back. */
    fd_set rs; FD_ZERO(&rs); FD_SET(s, &rs);
    struct timeval tv = { 0, 20000 };
    CHECK(select(s + 1, &rs, NULL, NULL, &tv) == 0 && tv.tv_usec == 0);

    shutdown(c, SHUT_WR);
    CHECK(recv(s, buf, sizeof buf, 0) == 0);
    close(c); close(s); close(ep); close(pfd[0]); close(pfd[1]); close(f);
    printf("C OK\n");
    return 0;
}
"#;

#[test]
fn c_program_fork_exec_epoll_dup_batches_fortified() {
    require("gcc");
    let dir = std::env::temp_dir().join(format!("shunt-pt-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("prog.c");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let bin = dir.join("prog");
    // Fortified, so __read_chk, __recv_chk, __poll_chk, __fdelt_chk are
    // what the program imports.
    let o = std::process::Command::new("gcc")
        .args(["-O2", "-D_FORTIFY_SOURCE=2", "-Wall", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "gcc: {}", text(&o));
    let mut tb = Testbed::new();
    let (a, _) = pair(&mut tb);
    for (mode, env) in modes() {
        let o = tb.sh(&a, &format!("{env} timeout 60 {}", bin.display()));
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("C OK"),
            "{mode}: {}",
            text(&o)
        );
        assert!(o.stderr.is_empty(), "{mode}: {}", text(&o));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_is_one_line_and_the_program_still_works() {
    let mut tb = Testbed::new();
    let (a, _) = pair(&mut tb);
    let lib = libshunt().display().to_string();
    let py = python();
    let client = format!(
        "{py} -c 'import socket; s=socket.create_server((\"192.0.2.1\",0)); \
         c=socket.create_connection(s.getsockname()); c.send(b\"ok\"); \
         print(s.accept()[0].recv(2).decode())'"
    );
    for (bad, needle) in [
        ("SHUNT_IFACE=veth0 SHUNT_ADDR=garbage", "SHUNT_ADDR"),
        ("SHUNT_ADDR=192.0.2.1/24", "SHUNT_IFACE"),
        (
            "SHUNT_IFACE=veth0 SHUNT_ADDR=192.0.2.1/24 SHUNT_NETEM=loss=",
            "SHUNT_NETEM",
        ),
        (
            "SHUNT_IFACE=veth0 SHUNT_ADDR=192.0.2.1/24 SHUNT_TYPO=1",
            "SHUNT_TYPO",
        ),
    ] {
        let o = tb.sh(&a, &format!("export LD_PRELOAD={lib} {bad}; {client}"));
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert!(o.status.success(), "{bad}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "ok",
            "{bad}: {}",
            text(&o)
        );
        assert_eq!(lines.len(), 1, "{bad}: exactly one line: {}", text(&o));
        assert!(
            lines[0].starts_with("shunt: ")
                && lines[0].contains(needle)
                && lines[0].ends_with("the program runs on the kernel"),
            "{bad}: {}",
            text(&o)
        );
        // A program that opens no INET socket says nothing at all, and
        // SHUNT_LOG=off silences even the error.
        let o = tb.sh(&a, &format!("export LD_PRELOAD={lib} {bad}; echo hi"));
        assert!(o.stderr.is_empty(), "{bad}: {}", text(&o));
        let o = tb.sh(
            &a,
            &format!("export LD_PRELOAD={lib} {bad} SHUNT_LOG=off; {client}"),
        );
        assert!(
            o.stderr.is_empty() && o.status.success(),
            "{bad}: {}",
            text(&o)
        );
    }
}

#[test]
fn shunt_run_execs_the_program_with_the_environment() {
    let shunt = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/release/shunt")
        .canonicalize()
        .expect("target/release/shunt: run `cargo build --release --workspace` first");
    let mut tb = Testbed::new();
    let (a, _) = pair(&mut tb);
    let o = tb.sh(
        &a,
        &format!(
            "{} run --iface veth0 --addr 192.0.2.1/24 --log debug -- sh -c \
             'echo $$ $SHUNT_IFACE $SHUNT_ADDR $LD_PRELOAD'",
            shunt.display()
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("veth0 192.0.2.1/24") && out.trim_end().ends_with("libshunt.so"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shunt: debug: loaded"),
        "{}",
        text(&o)
    );
    let o = tb.sh(
        &a,
        &format!("{} run --iface veth0 --addr nope -- true", shunt.display()),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "{}",
        text(&o)
    );
    let o = tb.sh(
        &a,
        &format!(
            "{} run --iface veth0 --addr 192.0.2.1/24 -- /no/such/program",
            shunt.display()
        ),
    );
    assert_eq!(o.status.code(), Some(127), "{}", text(&o));
}

/// Servers from Debian's packages (installed by `make deps`): redis with redis-benchmark, iperf3 both ways,
/// nginx (no daemon, no master) fetched by curl.
#[test]
fn redis_iperf3_nginx() {
    let mut tb = Testbed::new();
    let (a, b) = pair(&mut tb);
    let dir = std::env::temp_dir().join(format!("shunt-pt-srv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (mode, env)) in modes().into_iter().enumerate() {
        let off = 10 * i as u16;
        {
            require("redis-server");
            require("redis-benchmark");
            let port = 6300 + off;
            tb.spawn_sh(
                &b,
                &format!(
                    "{env} exec redis-server --port {port} --bind 192.0.2.2 --save '' \
                     --appendonly no --protected-mode no --dir {} >/dev/null 2>&1",
                    dir.display()
                ),
            );
            let o = tb.sh(
                &a,
                &format!(
                    "{} {env} timeout 60 redis-benchmark -h 192.0.2.2 -p {port} -n 5000 -q -t set,get",
                    wait_port("192.0.2.2", port)
                ),
            );
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && out.contains("SET:") && out.contains("GET:"),
                "{mode} redis: {}",
                text(&o)
            );
        }
        {
            require("iperf3");
            let port = 5200 + off;
            for (j, reverse) in ["", "-R"].into_iter().enumerate() {
                // One server per run, waited for with ss: a probe connection would be taken by iperf3 for a
                // control connection and make it reset the real client's.
                let port = port + j as u16;
                tb.spawn_sh(
                    &b,
                    &format!("{env} exec iperf3 -s -1 -p {port} >/dev/null 2>&1"),
                );
                let o = tb.sh(
                    &a,
                    &format!(
                        "{} {env} timeout 30 iperf3 -c 2001:db8::2 -p {port} -t 1 {reverse}",
                        wait_listen(&b, port)
                    ),
                );
                let out = String::from_utf8_lossy(&o.stdout);
                assert!(
                    o.status.success() && out.contains("receiver") && out.contains("iperf Done"),
                    "{mode} iperf3 {reverse}: {}",
                    text(&o)
                );
            }
        }
        {
            require("nginx");
            require("curl");
            let port = 8100 + off;
            let conf = dir.join(format!("nginx-{i}.conf"));
            std::fs::write(dir.join("index.html"), "hello from nginx\n").unwrap();
            std::fs::write(
                &conf,
                format!(
                    "daemon off; master_process off; error_log {d}/err-{i}.log; pid {d}/nginx-{i}.pid;\n\
                     events {{ worker_connections 64; }}\n\
                     http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
                     fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
                     server {{ listen 192.0.2.2:{port}; listen [2001:db8::2]:{port}; root {d}; }} }}\n",
                    d = dir.display()
                ),
            )
            .unwrap();
            tb.spawn_sh(
                &b,
                &format!(
                    "{env} exec nginx -c {} -p {}",
                    conf.display(),
                    dir.display()
                ),
            );
            for url in [
                format!("http://192.0.2.2:{port}/index.html"),
                format!("http://[2001:db8::2]:{port}/index.html"),
            ] {
                let o = tb.sh(
                    &a,
                    &format!(
                        "{} {env} timeout 20 curl -sS -g --fail {url}",
                        wait_port("192.0.2.2", port)
                    ),
                );
                assert_eq!(
                    String::from_utf8_lossy(&o.stdout),
                    "hello from nginx\n",
                    "{mode} nginx {url}: {}",
                    text(&o)
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
