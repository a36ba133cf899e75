//! Cases that run the same way over either of shunt's devices: the caller
//! passes the shell exports that put a program over shunt on the shunt
//! side of [`crate::over::pair`] as 192.0.2.1/24 (AF_PACKET in
//! over_shunt.rs, AF_XDP in xdp_over_shunt.rs).

use crate::over::{pair, python, random_file, require, text, wait_listen, wait_port};
use crate::testbed::Testbed;

/// curl over shunt fetches 1 MiB from a kernel http.server; sha256 equal,
/// and nothing on stderr (no shunt warning either).
pub fn curl_fetches_1mib_from_kernel_http_server(env: &str) {
    require("curl");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let (dir, want) = random_file(&tb, "www", 1);
    let py = python();
    tb.spawn_sh(
        &k,
        &format!(
            "cd {} && exec {py} -m http.server 8000 --bind 192.0.2.2 >/dev/null 2>&1",
            dir.display()
        ),
    );
    let o = tb.sh(&k, &wait_port("192.0.2.2", 8000));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &s,
        &format!("{env} timeout 60 curl -sS --fail http://192.0.2.2:8000/f.bin | sha256sum"),
    );
    let got = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && got.starts_with(&want),
        "want {want}\n{}",
        text(&o)
    );
    assert!(o.stderr.is_empty(), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A kernel curl fetches 1 MiB twice from an http.server over shunt, and
/// a plain curl on the shunt side's loopback once.
pub fn kernel_curl_fetches_1mib_from_http_server(env: &str) {
    require("curl");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let (dir, want) = random_file(&tb, "www", 1);
    let py = python();
    tb.spawn_sh(
        &s,
        &format!(
            "{env} cd {} && exec {py} -m http.server 8001 --bind 0.0.0.0 >/dev/null 2>&1",
            dir.display()
        ),
    );
    // Each fetch's sha256 must be the file's.
    let fetch = |ns: &str, before: &str, url: &str, what: &str| {
        let o = tb.sh(
            ns,
            &format!("{before}timeout 60 curl -sS --fail {url} | sha256sum"),
        );
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(&want),
            "{what}: want {want}\n{}",
            text(&o)
        );
    };
    let url = "http://192.0.2.1:8001/f.bin";
    fetch(&k, &wait_port("192.0.2.1", 8001), url, "first fetch");
    // A second fetch from the same server process.
    fetch(&k, "", url, "second fetch");
    // The wildcard listener serves the kernel's loopback too: a plain
    // curl on the shunt side's own namespace.
    let local = "http://127.0.0.1:8001/f.bin";
    fetch(&s, "", local, "fetch over loopback");
    let _ = std::fs::remove_dir_all(&dir);
}

/// nc over shunt to a kernel socat echo: 300 KB with a half-close, then a
/// UDP datagram.
pub fn nc_to_kernel_socat_echo(env: &str) {
    require("socat");
    require("nc");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    tb.spawn_sh(&k, "exec socat TCP-LISTEN:7000,reuseaddr,fork EXEC:cat");
    let o = tb.sh(&k, &wait_port("192.0.2.2", 7000));
    assert!(o.status.success(), "{}", text(&o));
    // 300 KB through nc (half-close with -N), counted on the way back.
    let o = tb.sh(
        &s,
        &format!(
            "{env} head -c 300000 /dev/zero | tr '\\0' x | timeout 20 nc -N 192.0.2.2 7000 | wc -c"
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "300000",
        "{}",
        text(&o)
    );
    // UDP: nc -u over shunt to a kernel socat echo.
    tb.spawn_sh(&k, "exec socat UDP-RECVFROM:7002,fork EXEC:cat");
    let o = tb.sh(
        &s,
        &format!("sleep 0.3; {env} echo ping | timeout 5 nc -u -w 1 192.0.2.2 7002"),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "ping",
        "{}",
        text(&o)
    );
}

/// A kernel socat sends 340 KB to a socat echo over shunt and gets it all
/// back (sha256).
pub fn kernel_socat_to_socat_echo(env: &str) {
    require("socat");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    // socat over shunt: one connection, echoed by a cat beside it (not
    // PIPE: socat can block for good writing into its own full pipe).
    tb.spawn_sh(
        &s,
        &format!("{env} exec socat TCP-LISTEN:7001,reuseaddr EXEC:cat"),
    );
    // Waited for with ss (the server takes exactly one connection): the
    // wildcard listener's kernel socket listens too.
    let o = tb.sh(&s, &wait_listen(7001));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &k,
        "yes 'hello over shunt' | head -n 20000 | timeout 20 socat -t 5 - TCP:192.0.2.1:7001 | sha256sum; \
         yes 'hello over shunt' | head -n 20000 | sha256sum",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        o.status.success() && lines.len() == 2 && lines[0] == lines[1],
        "{}",
        text(&o)
    );
}

/// iperf3 over shunt, bounded: the client over shunt sends, then receives
/// (-R), 2 s each, against a kernel server; then a kernel client sends to
/// a server over shunt. Each run must report a transfer.
pub fn iperf3_both_directions(env: &str) {
    require("iperf3");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let runs = [
        (&k, "", "-B 192.0.2.2", &s, env, "192.0.2.2", "", 5300),
        (&k, "", "-B 192.0.2.2", &s, env, "192.0.2.2", "-R", 5301),
        // -4: iperf3's wildcard AF_INET6 listener would take IPv6 too.
        (&s, env, "-4", &k, "", "192.0.2.1", "", 5302),
    ];
    for (srv_ns, srv_env, bind, cli_ns, cli_env, host, rev, port) in runs {
        // One test per server (-1); waited for with ss: a probe
        // connection would become iperf3's control connection.
        tb.spawn_sh(
            srv_ns,
            &format!("{srv_env} exec iperf3 -s {bind} -p {port} -1 >/dev/null 2>&1"),
        );
        let o = tb.sh(srv_ns, &wait_listen(port));
        assert!(o.status.success(), "{}", text(&o));
        let o = tb.sh(
            cli_ns,
            &format!("{cli_env} timeout 30 iperf3 -c {host} -p {port} -t 2 {rev} 2>&1"),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.contains("receiver") && out.contains("iperf Done"),
            "iperf3 -c {host} {rev}: {}",
            text(&o)
        );
    }
}
