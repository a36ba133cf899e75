//! Unmodified programs over shunt, each way against the kernel and with
//! both sides over shunt (two shunt processes in two namespaces, a veth
//! between, no kernel address on either side): socat moving 100 MiB,
//! iperf3 (TCP each direction, parallel streams, UDP at 1 Gbit/s),
//! redis-benchmark against a kernel redis-server, a python3 asyncio echo
//! server with 200 concurrent clients, curl against http.server.

use std::time::{Duration, Instant};

use shunt_shim_tests::over::{
    both, first_word, pair, python, random_file, require, shunt_env, shunt_env_b, text, wait_listen,
};
use shunt_shim_tests::testbed::Testbed;

/// Wait (60 s at most) until `path` holds a line; its first word.
fn wait_file(path: &std::path::Path) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s.split_whitespace().next().unwrap_or("").to_string();
        }
        assert!(Instant::now() < end, "{} never written", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// socat sends the 100 MiB file from `from_ns` (environment `from_env`)
/// to a socat receiving in `to_ns` (`to_env`) on `to_ip:port`; the
/// receiver's sha256 must be `want`.
#[allow(clippy::too_many_arguments)]
fn socat_transfer(
    tb: &mut Testbed,
    dir: &std::path::Path,
    want: &str,
    (from_ns, from_env): (&str, &str),
    (to_ns, to_env): (&str, &str),
    to_ip: &str,
    port: u16,
) {
    let d = dir.display();
    let sum = dir.join(format!("sum{port}"));
    // A wildcard listener: its kernel socket listens too, so ss sees it.
    tb.spawn_sh(
        to_ns,
        &format!(
            "{to_env} socat -u TCP-LISTEN:{port},reuseaddr - | sha256sum > {}",
            sum.display()
        ),
    );
    let o = tb.sh(to_ns, &wait_listen(port));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        from_ns,
        &format!("{from_env} timeout 120 socat -u OPEN:{d}/f.bin TCP:{to_ip}:{port}"),
    );
    assert!(o.status.success(), "sender: {}", text(&o));
    assert_eq!(wait_file(&sum), want, "100 MiB to {to_ip}:{port}");
}

#[test]
fn socat_100mib_each_way_with_checksum() {
    require("socat");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let (dir, want) = random_file(&tb, "socat", 100);
    let env = shunt_env();
    // Shunt sends, the kernel receives; then the other way.
    socat_transfer(
        &mut tb,
        &dir,
        &want,
        (&s, &env),
        (&k, ""),
        "192.0.2.2",
        7200,
    );
    socat_transfer(
        &mut tb,
        &dir,
        &want,
        (&k, ""),
        (&s, &env),
        "192.0.2.1",
        7201,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socat_100mib_both_sides_over_shunt() {
    require("socat");
    let mut tb = Testbed::new();
    let (a, b) = both(&mut tb);
    let (dir, want) = random_file(&tb, "socat2", 100);
    let (ea, eb) = (shunt_env(), shunt_env_b());
    socat_transfer(
        &mut tb,
        &dir,
        &want,
        (&a, &ea),
        (&b, &eb),
        "192.0.2.2",
        7202,
    );
    socat_transfer(
        &mut tb,
        &dir,
        &want,
        (&b, &eb),
        (&a, &ea),
        "192.0.2.1",
        7203,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// iperf3 with `-J`, summarized by python: "bits_per_second lost_percent".
fn iperf3(tb: &Testbed, ns: &str, env: &str, args: &str) -> (f64, f64) {
    let py = python();
    let o = tb.sh(
        ns,
        &format!(
            "{env} timeout 60 iperf3 -J {args} > /tmp/iperf3-$$.json; r=$?; \
             unset LD_PRELOAD; {py} -c 'import json,sys; j=json.load(open(sys.argv[1])); e=j[\"end\"]; \
             s=e.get(\"sum_received\") or e[\"sum\"]; print(s[\"bits_per_second\"], s.get(\"lost_percent\", 0))' /tmp/iperf3-$$.json; \
             rm -f /tmp/iperf3-$$.json; exit $r"
        ),
    );
    assert!(o.status.success(), "iperf3 {args}: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let mut f = out
        .split_whitespace()
        .map(|x| x.parse::<f64>().unwrap_or(-1.0));
    let bps = f.next().unwrap_or(-1.0);
    let lost = f.next().unwrap_or(-1.0);
    assert!(bps > 0.0, "iperf3 {args}: {}", text(&o));
    (bps, lost)
}

/// One iperf3 server run (`-1`) in `ns` on `port`, waited for with ss.
fn iperf3_server(tb: &mut Testbed, ns: &str, env: &str, bind: &str, port: u16) {
    tb.spawn_sh(
        ns,
        &format!("{env} exec iperf3 -s {bind} -p {port} -1 >/dev/null 2>&1"),
    );
    let o = tb.sh(ns, &wait_listen(port));
    assert!(o.status.success(), "{}", text(&o));
}

/// A 1 Gbit/s UDP run's receiver report. The receiving program drops
/// what its socket buffer cannot hold (Linux's 208 KiB default): kernel to
/// kernel, the 2-core test machine loses about a third at 1 Gbit/s, and a
/// shunt receiver loses the same way (every frame reaches its stack;
/// `shunt stat` counts the rest in UdpRcvbufErrors). The bound is loose:
/// the report must be there and a good part of the traffic must arrive.
fn udp_sane(bps: f64, lost: f64) {
    assert!((0.0..75.0).contains(&lost), "{lost}% lost");
    assert!(bps > 0.15e9, "UDP received at {bps} bit/s");
}

#[test]
fn iperf3_client_over_shunt_tcp_10s_each_way_parallel_and_udp_1g() {
    require("iperf3");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let env = shunt_env();
    for (i, args) in ["-t 10", "-t 10 -R", "-t 5 -P 4", "-t 5 -P 4 -R"]
        .iter()
        .enumerate()
    {
        let port = 5210 + i as u16;
        iperf3_server(&mut tb, &k, "", "-B 192.0.2.2", port);
        let (bps, _) = iperf3(&tb, &s, &env, &format!("-c 192.0.2.2 -p {port} {args}"));
        eprintln!("iperf3 {args}: {:.2} Gbit/s", bps / 1e9);
    }
    // UDP at 1 Gbit/s from shunt to the kernel.
    iperf3_server(&mut tb, &k, "", "-B 192.0.2.2", 5219);
    let (bps, lost) = iperf3(&tb, &s, &env, "-c 192.0.2.2 -p 5219 -u -b 1G -t 5");
    eprintln!("iperf3 -u -b 1G: {:.2} Gbit/s, {lost}% lost", bps / 1e9);
    udp_sane(bps, lost);
}

#[test]
fn iperf3_server_over_shunt_and_both_sides_over_shunt() {
    require("iperf3");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let env = shunt_env();
    // The kernel's client against a server over shunt.
    for (i, args) in ["-t 5", "-t 5 -R", "-t 5 -P 4"].iter().enumerate() {
        let port = 5220 + i as u16;
        // -4: a wildcard listener of AF_INET6 (iperf3's default) stays
        // with the kernel until shunt serves IPv6.
        iperf3_server(&mut tb, &s, &env, "-4", port);
        let (bps, _) = iperf3(&tb, &k, "", &format!("-c 192.0.2.1 -p {port} {args}"));
        eprintln!("kernel iperf3 {args} to shunt: {:.2} Gbit/s", bps / 1e9);
    }
    // Both sides over shunt.
    let (a, b) = both(&mut tb);
    let (ea, eb) = (shunt_env(), shunt_env_b());
    for (i, args) in ["-t 5", "-t 5 -R -P 4"].iter().enumerate() {
        let port = 5230 + i as u16;
        iperf3_server(&mut tb, &b, &eb, "-4", port);
        let (bps, _) = iperf3(&tb, &a, &ea, &format!("-c 192.0.2.2 -p {port} {args}"));
        eprintln!("shunt iperf3 {args} to shunt: {:.2} Gbit/s", bps / 1e9);
    }
    let (bps, lost) = {
        iperf3_server(&mut tb, &b, &eb, "-4", 5239);
        iperf3(&tb, &a, &ea, "-c 192.0.2.2 -p 5239 -u -b 1G -t 5")
    };
    eprintln!(
        "shunt iperf3 -u -b 1G to shunt: {:.2} Gbit/s, {lost}% lost",
        bps / 1e9
    );
    udp_sane(bps, lost);
}

#[test]
fn redis_benchmark_over_shunt_against_kernel_redis_server() {
    require("redis-server");
    require("redis-benchmark");
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    tb.spawn_sh(
        &k,
        "exec redis-server --port 6380 --bind 192.0.2.2 --protected-mode no --save '' --appendonly no >/dev/null 2>&1",
    );
    let o = tb.sh(&k, &wait_listen(6380));
    assert!(o.status.success(), "{}", text(&o));
    let o = tb.sh(
        &s,
        &format!(
            "{} timeout 60 redis-benchmark -h 192.0.2.2 -p 6380 -q -n 20000 -c 20 -t set,get,lpush,lpop 2>&1 \
             | tr '\\r' '\\n' | grep 'requests per second'",
            shunt_env()
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    for t in ["SET: ", "GET: ", "LPUSH: ", "LPOP: "] {
        assert!(o.status.success() && out.contains(t), "{t}{}", text(&o));
    }
    // What the benchmark wrote is there.
    let o = tb.sh(&k, "redis-cli -h 192.0.2.2 -p 6380 dbsize");
    let n: u64 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(n >= 1, "{}", text(&o));
}

const ECHO_SERVER: &str = r#"
import asyncio
async def handle(r, w):
    while True:
        line = await r.readline()
        if not line:
            break
        w.write(line)
        await w.drain()
    w.close()
async def main():
    srv = await asyncio.start_server(handle, "0.0.0.0", PORT, backlog=512)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
"#;

const ECHO_CLIENTS: &str = r#"
import asyncio, sys
async def client(i):
    r, w = await asyncio.open_connection(HOST, PORT)
    for j in range(20):
        msg = ("%d %d %s\n" % (i, j, "x" * (i * 37 % 3000))).encode()
        w.write(msg)
        await w.drain()
        got = await r.readline()
        assert got == msg, (i, j, len(got))
    w.close()
    await w.wait_closed()
    return 20
async def main():
    done = await asyncio.gather(*(client(i) for i in range(200)))
    print("answers", sum(done))
asyncio.run(main())
"#;

/// The asyncio echo server in `srv` (environment `srv_env`) on `port`,
/// 200 clients of 20 round trips each from `cli` to `host`.
fn asyncio_echo(
    tb: &mut Testbed,
    (srv, srv_env): (&str, &str),
    (cli, cli_env): (&str, &str),
    host: &str,
    port: u16,
) {
    let py = python();
    let server = ECHO_SERVER.replace("PORT", &port.to_string());
    tb.spawn_sh(srv, &format!("{srv_env} exec {py} -c '{server}'"));
    let o = tb.sh(srv, &wait_listen(port));
    assert!(o.status.success(), "{}", text(&o));
    let clients = ECHO_CLIENTS
        .replace("HOST", &format!("\"{host}\""))
        .replace("PORT", &port.to_string());
    let o = tb.sh(cli, &format!("{cli_env} timeout 60 {py} -c '{clients}'"));
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("answers 4000"),
        "{}",
        text(&o)
    );
}

#[test]
fn asyncio_echo_server_over_shunt_200_clients() {
    let mut tb = Testbed::new();
    let (s, k) = pair(&mut tb);
    let env = shunt_env();
    asyncio_echo(&mut tb, (&s, &env), (&k, ""), "192.0.2.1", 7300);
    // And both sides over shunt.
    let (a, b) = both(&mut tb);
    let (ea, eb) = (shunt_env(), shunt_env_b());
    asyncio_echo(&mut tb, (&b, &eb), (&a, &ea), "192.0.2.2", 7301);
}

#[test]
fn curl_and_http_server_both_over_shunt_1mib_and_100mib() {
    require("curl");
    let mut tb = Testbed::new();
    let (a, b) = both(&mut tb);
    let (dir, want_big) = random_file(&tb, "both-http", 100);
    let d = dir.display();
    let o = tb.sh(
        &a,
        &format!("head -c 1M {d}/f.bin > {d}/small.bin; sha256sum < {d}/small.bin"),
    );
    let want_small = first_word(&o);
    tb.spawn_sh(
        &b,
        &format!(
            "{} cd {d} && exec {} -m http.server 8030 --bind 0.0.0.0 >/dev/null 2>&1",
            shunt_env_b(),
            python()
        ),
    );
    let o = tb.sh(&b, &wait_listen(8030));
    assert!(o.status.success(), "{}", text(&o));
    for (file, want) in [("small.bin", &want_small), ("f.bin", &want_big)] {
        let o = tb.sh(
            &a,
            &format!(
                "{} timeout 60 curl -sS --fail http://192.0.2.2:8030/{file} | sha256sum",
                shunt_env()
            ),
        );
        assert!(
            o.status.success() && first_word(&o) == *want,
            "{file}: want {want}: {}",
            text(&o)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nc_half_close_to_socat_echo_both_sides_over_shunt() {
    require("socat");
    require("nc");
    let mut tb = Testbed::new();
    let (a, b) = both(&mut tb);
    tb.spawn_sh(
        &b,
        &format!(
            // One connection, echoed by a cat beside socat. Not PIPE: socat
            // echoing through its own pipe can block for good in an 8 KiB
            // write into that pipe once it holds 60 KiB (it is the only
            // reader), which happens whenever its TCP peer is slow to take
            // the echo for a while.
            "{} exec socat TCP-LISTEN:7400,reuseaddr EXEC:cat",
            shunt_env_b()
        ),
    );
    let o = tb.sh(&b, &wait_listen(7400));
    assert!(o.status.success(), "{}", text(&o));
    // nc -N shuts its writing side at the end of its input and still
    // reads the whole echo.
    let o = tb.sh(
        &a,
        &format!(
            "{} head -c 3000000 /dev/urandom > /tmp/nc-$$ && timeout 30 nc -N 192.0.2.2 7400 < /tmp/nc-$$ | sha256sum; \
             sha256sum < /tmp/nc-$$; rm -f /tmp/nc-$$",
            shunt_env()
        ),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let sums: Vec<&str> = out
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert!(
        o.status.success() && sums.len() == 2 && sums[0] == sums[1],
        "{}",
        text(&o)
    );
}

#[test]
fn nginx_over_shunt_fetched_by_curl_over_shunt() {
    require("nginx");
    require("curl");
    let mut tb = Testbed::new();
    let (a, b) = both(&mut tb);
    let (dir, want) = random_file(&tb, "both-nginx", 4);
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/px;\n\
         fastcgi_temp_path {d}/fc; uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;\n\
         server {{ listen 8081; root {d}; }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    tb.spawn_sh(
        &b,
        &format!(
            "{} exec nginx -p {d} -c {d}/nginx.conf >/dev/null 2>&1",
            shunt_env_b()
        ),
    );
    let o = tb.sh(&b, &wait_listen(8081));
    assert!(o.status.success(), "{}", text(&o));
    for _ in 0..3 {
        let o = tb.sh(
            &a,
            &format!(
                "{} timeout 30 curl -sS --fail http://192.0.2.2:8081/f.bin | sha256sum",
                shunt_env()
            ),
        );
        assert!(
            o.status.success() && first_word(&o) == want,
            "want {want}: {}",
            text(&o)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
