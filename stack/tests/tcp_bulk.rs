//! Bulk transfers both ways at once between two TCP layers on the
//! in-memory wire: byte-exact, with and without impairment.
//!
//! Sizes default to 16 MiB each way (the tests run unoptimised);
//! `SHUNT_TCP_BULK_MIB=100` runs the full 100 MiB of the issue.

mod tcp_harness;

use shunt_stack::tcp::{Errno, RecvFlags, SendFlags, SocketId, TcpConfig, TcpCounter};
use shunt_stack::time::Duration;
use tcp_harness::*;

/// A deterministic byte stream: byte `i` of stream `k`.
struct Stream {
    k: u64,
    pos: u64,
}

impl Stream {
    fn byte(k: u64, i: u64) -> u8 {
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k;
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (x >> 32) as u8
    }
    fn fill(&self, out: &mut [u8]) {
        for (j, b) in out.iter_mut().enumerate() {
            *b = Stream::byte(self.k, self.pos + j as u64);
        }
    }
}

struct Side {
    id: SocketId,
    pending: Vec<u8>,
    off: usize,
    tx: Stream,
    rx: Stream,
    total: u64,
    shut: bool,
    eof: bool,
}

fn pump(net: &mut Net, h: usize, side: &mut Side, buf: &mut [u8]) {
    let host = &mut net.hosts[h];
    // Write while there is room (generating each byte once).
    while side.tx.pos < side.total {
        if side.off == side.pending.len() {
            let n = ((side.total - side.tx.pos) as usize).min(64 * 1024);
            side.pending.resize(n, 0);
            side.tx.fill(&mut side.pending);
            side.off = 0;
        }
        match host.tcp.send(
            &mut host.ctx,
            side.id,
            &side.pending[side.off..],
            SendFlags::default(),
        ) {
            Ok(w) => {
                side.tx.pos += w as u64;
                side.off += w;
            }
            Err(Errno::EAGAIN) => break,
            Err(e) => panic!("send: {e:?}"),
        }
    }
    if side.tx.pos == side.total && !side.shut {
        host.tcp
            .shutdown(&mut host.ctx, side.id, shunt_stack::tcp::Shutdown::Write)
            .unwrap();
        side.shut = true;
    }
    // Read everything there is, checking every byte.
    loop {
        match host
            .tcp
            .recv(&mut host.ctx, side.id, buf, RecvFlags::default())
        {
            Ok(0) => {
                side.eof = true;
                break;
            }
            Ok(n) => {
                for (j, &b) in buf[..n].iter().enumerate() {
                    let want = Stream::byte(side.rx.k, side.rx.pos + j as u64);
                    assert_eq!(
                        b,
                        want,
                        "byte {} of stream {}",
                        side.rx.pos + j as u64,
                        side.rx.k
                    );
                }
                side.rx.pos += n as u64;
            }
            Err(Errno::EAGAIN) => break,
            Err(e) => panic!("recv: {e:?}"),
        }
    }
    host.ctx.events.clear();
}

fn mib() -> u64 {
    std::env::var("SHUNT_TCP_BULK_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// Transfers `bytes` each way; returns the fake time it took.
fn transfer(net: &mut Net, bytes: u64, limit: Duration) -> Duration {
    for h in &mut net.hosts {
        h.ctx.oracle = false;
        h.ctx.keep_events = false;
    }
    let (_l, c, s) = connect_pair(net, 5001);
    net.capture_on = false;
    let start = net.now;
    let mut a = Side {
        id: c,
        pending: Vec::new(),
        off: 0,
        tx: Stream { k: 1, pos: 0 },
        rx: Stream { k: 2, pos: 0 },
        total: bytes,
        shut: false,
        eof: false,
    };
    let mut b = Side {
        id: s,
        pending: Vec::new(),
        off: 0,
        tx: Stream { k: 2, pos: 0 },
        rx: Stream { k: 1, pos: 0 },
        total: bytes,
        shut: false,
        eof: false,
    };
    let mut buf = vec![0u8; 256 * 1024];
    let end = net.now + limit;
    while !(a.eof && b.eof) {
        pump(net, 0, &mut a, &mut buf);
        pump(net, 1, &mut b, &mut buf);
        assert!(
            net.now < end,
            "transfer stalled: a got {} b got {} of {}",
            a.rx.pos,
            b.rx.pos,
            bytes
        );
        if !net.step() {
            pump(net, 0, &mut a, &mut buf);
            pump(net, 1, &mut b, &mut buf);
            assert!(
                a.eof && b.eof,
                "nothing left to do: a got {} b got {}",
                a.rx.pos,
                b.rx.pos
            );
        }
    }
    assert_eq!(a.rx.pos, bytes);
    assert_eq!(b.rx.pos, bytes);
    net.now - start
}

fn report(net: &Net, name: &str, bytes: u64, took: Duration) {
    let gbit = (bytes * 2 * 8) as f64 / took.as_secs_f64() / 1e9;
    eprintln!(
        "{name}: {} MiB each way in {:.3} s of fake time ({gbit:.2} Gbit/s both ways); retrans a={} b={}, timeouts a={} b={}, sack recoveries a={} b={}",
        bytes >> 20,
        took.as_secs_f64(),
        net.hosts[0].ctx.count(TcpCounter::RetransSegs),
        net.hosts[1].ctx.count(TcpCounter::RetransSegs),
        net.hosts[0].ctx.count(TcpCounter::TcpTimeouts),
        net.hosts[1].ctx.count(TcpCounter::TcpTimeouts),
        net.hosts[0].ctx.count(TcpCounter::TcpSackRecovery),
        net.hosts[1].ctx.count(TcpCounter::TcpSackRecovery),
    );
}

#[test]
fn bulk_both_ways_no_loss_no_retransmissions() {
    let mut net = Net::new(TcpConfig::default());
    let bytes = mib() << 20;
    let took = transfer(&mut net, bytes, Duration::from_secs(60));
    report(&net, "no loss", bytes, took);
    for h in &net.hosts {
        assert_eq!(h.ctx.count(TcpCounter::RetransSegs), 0);
        assert_eq!(h.ctx.count(TcpCounter::TcpTimeouts), 0);
    }
}

#[test]
fn bulk_both_ways_loss_reorder_duplication() {
    let mut net = Net::new(TcpConfig::default());
    net.impair = Impair {
        loss: 0.05,
        reorder: 0.05,
        dup: 0.01,
    };
    let bytes = mib() << 20;
    let took = transfer(&mut net, bytes, Duration::from_secs(3600));
    report(&net, "5% loss, 5% reorder, 1% dup", bytes, took);
    assert!(net.hosts[0].ctx.count(TcpCounter::RetransSegs) > 0);
}

#[test]
fn bulk_newreno_without_sack_under_loss() {
    let cfg = TcpConfig {
        sack: false,
        congestion_control: shunt_stack::tcp::CcAlgo::Reno,
        ..TcpConfig::default()
    };
    let mut net = Net::new(cfg);
    net.impair = Impair {
        loss: 0.02,
        reorder: 0.02,
        dup: 0.01,
    };
    let bytes = (mib() / 4).max(1) << 20;
    let took = transfer(&mut net, bytes, Duration::from_secs(3600));
    report(&net, "NewReno, no SACK, 2% loss", bytes, took);
    assert!(net.hosts[0].ctx.count(TcpCounter::TcpRenoRecovery) > 0);
}

/// One connection over a 1 ms path fills 10 Gbit/s: the receive buffer
/// autotunes from 128 KiB towards tcp_rmem[2], the send buffer follows
/// the congestion window.
#[test]
fn one_connection_fills_10_gbit_at_1ms() {
    let mut net = Net::new(TcpConfig::default());
    for h in &mut net.hosts {
        h.ctx.oracle = false;
        h.ctx.keep_events = false;
    }
    let (_l, c, s) = connect_pair(&mut net, 5001);
    net.capture_on = false;
    let total: u64 = 48 << 20;
    let chunk = vec![0x5au8; 1 << 20];
    let (mut sent, mut got) = (0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    let mut mark = None;
    while got < total {
        let h = &mut net.hosts[0];
        while sent < total {
            let n = ((total - sent) as usize).min(chunk.len());
            match h.tcp.send(&mut h.ctx, c, &chunk[..n], SendFlags::default()) {
                Ok(k) => sent += k as u64,
                Err(_) => break,
            }
        }
        let h = &mut net.hosts[1];
        while let Ok(k) = h.tcp.recv(&mut h.ctx, s, &mut buf, RecvFlags::default()) {
            if k == 0 {
                break;
            }
            got += k as u64;
        }
        if mark.is_none() && got >= 16 << 20 {
            mark = Some((net.now, got));
        }
        assert!(net.step());
    }
    let (t0, g0) = mark.unwrap();
    let gbit = (got - g0) as f64 * 8.0 / (net.now - t0).as_secs_f64() / 1e9;
    let rcvbuf = net.hosts[1]
        .tcp
        .get_option(s, shunt_stack::tcp::SockOpt::RcvBuf)
        .unwrap();
    let sndbuf = net.hosts[0]
        .tcp
        .get_option(c, shunt_stack::tcp::SockOpt::SndBuf)
        .unwrap();
    eprintln!("steady state {gbit:.1} Gbit/s over 1 ms; rcvbuf {rcvbuf}, sndbuf {sndbuf}");
    assert!(gbit >= 10.0, "{gbit:.2} Gbit/s");
    assert!(rcvbuf as u64 >= 2 * 1_250_000, "{rcvbuf}");
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::RetransSegs), 0);
}
