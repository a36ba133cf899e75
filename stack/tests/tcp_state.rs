//! State-machine corners and timers: simultaneous open and close,
//! half-close, RFC 5961 challenge ACKs, keepalive, zero-window probes,
//! delayed ACKs, Nagle and cork, backoff timings, listen backlog and SYN
//! cookies, self-connections, linger and aborts.

mod tcp_harness;

use shunt_stack::SeqNum;
use shunt_stack::tcp::{
    Domain, Errno, Poll, RecvFlags, SendFlags, Shutdown, SockAddr, SockOpt, TcpConfig, TcpCounter,
    TcpState,
};
use shunt_stack::time::{Duration, Instant};
use shunt_stack::wire::tcp::{TcpBuilder, TcpFlags, TcpOptionSet, Timestamps};
use tcp_harness::*;

fn cfg() -> TcpConfig {
    TcpConfig::default()
}

fn send(
    net: &mut Net,
    h: usize,
    id: shunt_stack::tcp::SocketId,
    data: &[u8],
) -> Result<usize, Errno> {
    let host = &mut net.hosts[h];
    host.tcp.send(&mut host.ctx, id, data, SendFlags::default())
}

fn recv_all(net: &mut Net, h: usize, id: shunt_stack::tcp::SocketId) -> Result<Vec<u8>, Errno> {
    let host = &mut net.hosts[h];
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match host
            .tcp
            .recv(&mut host.ctx, id, &mut buf, RecvFlags::default())
        {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) => return Ok(out),
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => return Ok(out),
        }
    }
}

#[test]
fn simultaneous_open() {
    let mut net = Net::new(cfg());
    let a = net.a().tcp.socket(Domain::V4);
    let b = net.b().tcp.socket(Domain::V4);
    let h = net.a();
    h.tcp.bind(&mut h.ctx, a, sa(A, 1000)).unwrap();
    let h = net.b();
    h.tcp.bind(&mut h.ctx, b, sa(B, 2000)).unwrap();
    let h = net.a();
    assert_eq!(
        h.tcp.connect(&mut h.ctx, a, sa(B, 2000)),
        Err(Errno::EINPROGRESS)
    );
    let h = net.b();
    assert_eq!(
        h.tcp.connect(&mut h.ctx, b, sa(A, 1000)),
        Err(Errno::EINPROGRESS)
    );
    assert!(net.run_until(Duration::from_secs(3), |n| {
        n.hosts[0].tcp.state(a) == Ok(TcpState::Established)
            && n.hosts[1].tcp.state(b) == Ok(TcpState::Established)
    }));
    let cap = net.take_capture();
    let flags: Vec<TcpFlags> = cap.iter().map(|p| p.seg().flags()).collect();
    // SYN, SYN, SYN-ACK, SYN-ACK: no RST, no challenge needed.
    assert_eq!(
        &flags[..4],
        &[
            TcpFlags::SYN,
            TcpFlags::SYN,
            TcpFlags::SYN | TcpFlags::ACK,
            TcpFlags::SYN | TcpFlags::ACK
        ]
    );
    assert!(flags.iter().all(|f| !f.rst()));
    assert_eq!(send(&mut net, 0, a, b"ping"), Ok(4));
    net.run_for(Duration::from_millis(5));
    assert_eq!(recv_all(&mut net, 1, b).unwrap(), b"ping");
    let h = net.b();
    assert_eq!(h.tcp.connect(&mut h.ctx, b, sa(A, 1000)), Ok(()));
    assert_eq!(
        h.tcp.connect(&mut h.ctx, b, sa(A, 1000)),
        Err(Errno::EISCONN)
    );
}

#[test]
fn simultaneous_close_both_in_time_wait() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    let h = net.a();
    h.tcp.shutdown(&mut h.ctx, c, Shutdown::Write).unwrap();
    let h = net.b();
    h.tcp.shutdown(&mut h.ctx, s, Shutdown::Write).unwrap();
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::FinWait1));
    net.run_for(Duration::from_millis(1));
    // Both FINs crossed: CLOSING, then TIME_WAIT once the ACKs arrive.
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.hosts[0].tcp.time_wait().len(), 1);
    assert_eq!(net.hosts[1].tcp.time_wait().len(), 1);
    // The sockets themselves report CLOSE (TIME_WAIT lives on without them).
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Close));
    assert_eq!(recv_all(&mut net, 0, c).unwrap(), b"");
}

#[test]
fn half_close_peer_keeps_sending() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    assert_eq!(send(&mut net, 0, c, &[7u8; 3000]), Ok(3000));
    let h = net.a();
    h.tcp.shutdown(&mut h.ctx, c, Shutdown::Write).unwrap();
    assert_eq!(send(&mut net, 0, c, b"x"), Err(Errno::EPIPE));
    assert!(net.hosts[0].tcp.poll(c).has(Poll::OUT));
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::FinWait2));
    assert_eq!(net.hosts[1].tcp.state(s), Ok(TcpState::CloseWait));
    assert_eq!(recv_all(&mut net, 1, s).unwrap().len(), 3000);
    let p = net.hosts[1].tcp.poll(s);
    assert!(p.has(Poll::IN | Poll::RDHUP | Poll::OUT) && !p.has(Poll::HUP));
    // The other direction still works.
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    assert!(net.run_until(Duration::from_secs(5), |n| {
        if sent < big.len() {
            let h = &mut n.hosts[1];
            if let Ok(k) = h
                .tcp
                .send(&mut h.ctx, s, &big[sent..], SendFlags::default())
            {
                sent += k;
            }
        }
        got.extend(recv_all(n, 0, c).unwrap());
        got.len() == big.len()
    }));
    assert_eq!(got, big);
    let h = net.b();
    h.tcp.close(&mut h.ctx, s);
    net.run_for(Duration::from_millis(50));
    let p = net.hosts[0].tcp.poll(c);
    assert!(p.has(Poll::IN | Poll::OUT | Poll::RDHUP | Poll::HUP));
}

fn rst_to(
    net: &mut Net,
    from_host: usize,
    to_host: usize,
    flags: TcpFlags,
    seq_off: i64,
    c: shunt_stack::tcp::SocketId,
    s: shunt_stack::tcp::SocketId,
) {
    // A segment as if from `from_host`'s socket `s` to `c`.
    let info_from = net.hosts[from_host].tcp.tcp_info(s, net.now).unwrap();
    let _ = info_from;
    let local = net.hosts[from_host].tcp.local_addr(s).unwrap();
    let remote = net.hosts[to_host].tcp.local_addr(c).unwrap();
    // The receiver's RCV.NXT is the sender's SND.NXT: read it from the
    // last segment the sender put on the wire.
    let last = net
        .capture
        .iter()
        .rev()
        .find(|p| p.src == local.ip && p.seg().src_port() == local.port)
        .expect("a segment from the peer")
        .clone();
    let sg = last.seg();
    let nxt = sg.seq() + sg.payload().len() as u32 + u32::from(sg.flags().fin());
    let b = TcpBuilder {
        src_port: local.port,
        dst_port: remote.port,
        seq: SeqNum::new((i64::from(nxt.get()) + seq_off) as u32),
        ack: sg.ack(),
        flags,
        window: 1000,
        urgent_ptr: 0,
        options: TcpOptionSet::default(),
    };
    inject(net, to_host, local, remote, b, &[]);
}

/// RFC 9293 3.10.7.4: SEG.ACK > SND.NXT: send an ACK, drop the segment
/// (Linux: tcp_send_challenge_ack, under the same limits).
#[test]
fn ack_of_unsent_data_is_answered_by_an_ack_and_dropped() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    assert_eq!(send(&mut net, 1, s, b"z"), Ok(1));
    net.run_for(Duration::from_millis(100));
    let local = net.hosts[1].tcp.local_addr(s).unwrap();
    let remote = net.hosts[0].tcp.local_addr(c).unwrap();
    let last = net
        .capture
        .iter()
        .rev()
        .find(|p| p.src == local.ip && p.seg().src_port() == local.port)
        .unwrap()
        .clone();
    let sg = last.seg();
    let nxt = sg.seq() + sg.payload().len() as u32;
    let future = |net: &mut Net| {
        let b = TcpBuilder {
            src_port: local.port,
            dst_port: remote.port,
            seq: nxt,
            ack: sg.ack() + 1000,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 1000,
            urgent_ptr: 0,
            options: TcpOptionSet::default(),
        };
        inject(net, 0, local, remote, b, b"future");
    };
    let sent = net.hosts[0].ctx.out.len();
    future(&mut net);
    assert_eq!(net.hosts[0].ctx.out.len(), sent + 1, "one ACK");
    let ack = net.hosts[0].ctx.out.last().unwrap().seg();
    assert_eq!(ack.flags(), TcpFlags::ACK);
    assert_eq!(ack.ack(), nxt, "the data is not acknowledged");
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::TcpChallengeAck), 1);
    // Another within 500 ms is not answered (the per-socket limit).
    future(&mut net);
    assert_eq!(net.hosts[0].ctx.out.len(), sent + 1);
    assert_eq!(
        net.hosts[0].ctx.count(TcpCounter::TcpAckSkippedChallenge),
        1
    );
    assert_eq!(recv_all(&mut net, 0, c), Ok(b"z".to_vec()));
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Established));
}

#[test]
fn challenge_acks_rfc5961() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    net.run_for(Duration::from_millis(100));
    net.take_capture();
    // In-window but inexact RST: a challenge ACK, no reset.
    let before = net.capture.len();
    let _ = before;
    // (Keep a segment from B in the capture for rst_to to read.)
    assert_eq!(send(&mut net, 1, s, b"z"), Ok(1));
    net.run_for(Duration::from_millis(100));
    rst_to(&mut net, 1, 0, TcpFlags::RST, 100, c, s);
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Established));
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::TcpChallengeAck), 1);
    let ack = net.hosts[0].ctx.out.last().unwrap().seg();
    assert_eq!(ack.flags(), TcpFlags::ACK);
    // A second one within 500 ms is not answered (per-socket limit).
    rst_to(&mut net, 1, 0, TcpFlags::RST, 200, c, s);
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::TcpChallengeAck), 1);
    assert_eq!(
        net.hosts[0].ctx.count(TcpCounter::TcpAckSkippedChallenge),
        1
    );
    net.run_for(Duration::from_millis(600));
    // A SYN in the window: challenge ACK too.
    rst_to(&mut net, 1, 0, TcpFlags::SYN, 10, c, s);
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::TcpChallengeAck), 2);
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::TcpSynChallenge), 1);
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Established));
    // Out-of-window RST: ignored silently.
    rst_to(&mut net, 1, 0, TcpFlags::RST, 10_000_000, c, s);
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Established));
    // The exact RST resets.
    rst_to(&mut net, 1, 0, TcpFlags::RST, 0, c, s);
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Close));
    let h = net.a();
    assert!(
        h.tcp
            .poll(c)
            .has(Poll::ERR | Poll::HUP | Poll::IN | Poll::OUT | Poll::RDHUP)
    );
    let mut buf = [0u8; 4];
    // The byte B sent is still readable, then the error once, then EOF.
    assert_eq!(
        h.tcp.recv(&mut h.ctx, c, &mut buf, RecvFlags::default()),
        Ok(1)
    );
    assert_eq!(
        h.tcp.recv(&mut h.ctx, c, &mut buf, RecvFlags::default()),
        Err(Errno::ECONNRESET)
    );
    assert_eq!(
        h.tcp.recv(&mut h.ctx, c, &mut buf, RecvFlags::default()),
        Ok(0)
    );
    assert_eq!(
        h.tcp.send(&mut h.ctx, c, b"x", SendFlags::default()),
        Err(Errno::EPIPE)
    );
    assert_eq!(
        h.tcp.shutdown(&mut h.ctx, c, Shutdown::Write),
        Err(Errno::ENOTCONN)
    );
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::EstabResets), 1);
}

#[test]
fn send_after_reset_econnreset_then_epipe() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    // B aborts (SO_LINGER {1, 0}).
    net.hosts[1].tcp.set_linger(s, Some(0)).unwrap();
    let h = net.b();
    h.tcp.close(&mut h.ctx, s);
    assert_eq!(h.ctx.count(TcpCounter::OutRsts), 1);
    assert!(h.tcp.time_wait().is_empty(), "no TIME_WAIT after an abort");
    net.run_for(Duration::from_millis(10));
    let h = net.a();
    assert_eq!(
        h.tcp.send(&mut h.ctx, c, b"x", SendFlags::default()),
        Err(Errno::ECONNRESET)
    );
    assert_eq!(
        h.tcp.send(&mut h.ctx, c, b"x", SendFlags::default()),
        Err(Errno::EPIPE)
    );
}

#[test]
fn close_with_unread_data_resets() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    assert_eq!(send(&mut net, 0, c, b"unread"), Ok(6));
    net.run_for(Duration::from_millis(10));
    let h = net.b();
    h.tcp.close(&mut h.ctx, s);
    assert_eq!(h.ctx.count(TcpCounter::TcpAbortOnClose), 1);
    net.run_for(Duration::from_millis(10));
    let h = net.a();
    assert!(h.tcp.poll(c).has(Poll::ERR | Poll::HUP));
    let mut buf = [0u8; 8];
    assert_eq!(
        h.tcp.recv(&mut h.ctx, c, &mut buf, RecvFlags::default()),
        Err(Errno::ECONNRESET)
    );
}

#[test]
fn syn_retransmission_backoff_and_etimedout() {
    let mut net = Net::new(cfg());
    net.drop_filter = Some(Box::new(|_| true));
    let c = net.a().tcp.socket(Domain::V4);
    let t0 = net.now;
    let h = net.a();
    assert_eq!(
        h.tcp.connect(&mut h.ctx, c, sa(B, 80)),
        Err(Errno::EINPROGRESS)
    );
    assert!(
        net.run_until(Duration::from_secs(200), |n| n.hosts[0].tcp.state(c)
            == Ok(TcpState::Close))
    );
    let times: Vec<u64> = net.capture.iter().map(|p| (p.at - t0).as_secs()).collect();
    assert_eq!(times, [0, 1, 3, 7, 15, 31, 63]);
    assert_eq!((net.now - t0).as_secs(), 127);
    let h = net.a();
    assert_eq!(h.tcp.take_error(c), Some(Errno::ETIMEDOUT));
    // TCP_SYNCNT 1: about 3 s.
    let c = h.tcp.socket(Domain::V4);
    h.tcp.set_option(&mut h.ctx, c, SockOpt::SynCnt, 1).unwrap();
    let t0 = net.now;
    let h = net.a();
    let _ = h.tcp.connect(&mut h.ctx, c, sa(B, 81));
    assert!(
        net.run_until(Duration::from_secs(20), |n| n.hosts[0].tcp.state(c)
            == Ok(TcpState::Close))
    );
    assert_eq!((net.now - t0).as_secs(), 3);
    let h = net.a();
    assert!(h.tcp.poll(c).has(Poll::ERR));
    assert_eq!(
        h.tcp.connect(&mut h.ctx, c, sa(B, 81)),
        Err(Errno::ETIMEDOUT)
    );
}

#[test]
fn data_rto_backoff_doubles() {
    let mut net = Net::new(cfg());
    let (_l, c, _s) = connect_pair(&mut net, 80);
    net.run_for(Duration::from_secs(1));
    net.take_capture();
    let a_ip = ip(A);
    net.drop_filter = Some(Box::new(move |p| p.src == a_ip));
    let t0 = net.now;
    assert_eq!(send(&mut net, 0, c, b"lost"), Ok(4));
    net.run_for(Duration::from_secs(30));
    let times: Vec<f64> = net
        .capture
        .iter()
        .map(|p| (p.at - t0).as_secs_f64())
        .collect();
    assert!(times.len() >= 6, "{times:?}");
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for w in gaps.windows(2) {
        let r = w[1] / w[0];
        assert!((1.95..2.05).contains(&r), "backoff doubles: {gaps:?}");
    }
    // The first RTO is Linux's: at least 200 ms.
    assert!(gaps[0] >= 0.2 && gaps[0] < 0.25, "{gaps:?}");
    assert!(net.hosts[0].ctx.count(TcpCounter::TcpTimeouts) >= 5);
    assert_eq!(
        net.hosts[0].tcp.tcp_info(c, net.now).unwrap().state,
        TcpState::Established as u8
    );
}

#[test]
fn data_retransmission_gives_up_with_etimedout() {
    let mut net = Net::new(cfg());
    let (_l, c, _s) = connect_pair(&mut net, 80);
    net.run_for(Duration::from_secs(1));
    let a_ip = ip(A);
    net.drop_filter = Some(Box::new(move |p| p.src == a_ip));
    let t0 = net.now;
    assert_eq!(send(&mut net, 0, c, b"lost"), Ok(4));
    assert!(
        net.run_until(Duration::from_secs(2000), |n| n.hosts[0].tcp.state(c)
            == Ok(TcpState::Close))
    );
    let took = (net.now - t0).as_secs_f64();
    // tcp_retries2 = 15: 924.6 s from the first transmission (Linux).
    assert!((924.0..1000.0).contains(&took), "{took}");
    let h = net.a();
    assert_eq!(h.tcp.take_error(c), Some(Errno::ETIMEDOUT));
    assert_eq!(h.ctx.count(TcpCounter::TcpAbortOnTimeout), 1);
}

#[test]
fn keepalive_probes_then_etimedout() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    let h = net.a();
    h.tcp
        .set_option(&mut h.ctx, c, SockOpt::KeepIdle, 10)
        .unwrap();
    h.tcp
        .set_option(&mut h.ctx, c, SockOpt::KeepIntvl, 5)
        .unwrap();
    h.tcp
        .set_option(&mut h.ctx, c, SockOpt::KeepCnt, 3)
        .unwrap();
    h.tcp
        .set_option(&mut h.ctx, c, SockOpt::KeepAlive, 1)
        .unwrap();
    let t0 = net.now;
    net.take_capture();
    // A live peer answers: the connection stays up.
    net.run_for(Duration::from_secs(35));
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Established));
    let probes = from(&net.capture, A).len();
    assert!(probes >= 3, "one probe per idle period: {probes}");
    assert!(net.hosts[0].ctx.count(TcpCounter::TcpKeepAlive) >= 3);
    let _ = (s, t0);
    // Now the peer vanishes.
    net.drop_filter = Some(Box::new(|_| true));
    net.take_capture();
    let t1 = net.now;
    assert!(
        net.run_until(Duration::from_secs(100), |n| n.hosts[0].tcp.state(c)
            == Ok(TcpState::Close))
    );
    let took = (net.now - t1).as_secs();
    // Idle 10 s, then 3 probes 5 s apart, then the reset.
    assert!((20..=30).contains(&took), "{took}");
    let caps = from(&net.capture, A);
    let last = caps.last().unwrap().seg();
    assert!(last.flags().rst());
    let h = net.a();
    assert_eq!(h.tcp.take_error(c), Some(Errno::ETIMEDOUT));
}

#[test]
fn zero_window_probes_with_backoff_then_resume() {
    let mut net = Net::new(cfg());
    // A small receive buffer on B's listener, inherited by the child.
    let l = net.b().tcp.socket(Domain::V4);
    let h = net.b();
    h.tcp
        .set_option(&mut h.ctx, l, SockOpt::RcvBuf, 4096)
        .unwrap();
    h.tcp.bind(&mut h.ctx, l, sa(B, 80)).unwrap();
    h.tcp.listen(&mut h.ctx, l, 8).unwrap();
    let c = net.a().tcp.socket(Domain::V4);
    let h = net.a();
    let _ = h.tcp.connect(&mut h.ctx, c, sa(B, 80));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(2), |n| {
        let h = n.b();
        if let Ok((id, _)) = h.tcp.accept(&mut h.ctx, l) {
            s = Some(id);
        }
        s.is_some()
    }));
    let s = s.unwrap();
    assert_eq!(net.hosts[1].tcp.get_option(s, SockOpt::RcvBuf), Ok(8192));
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let mut sent = send(&mut net, 0, c, &data).unwrap();
    net.run_for(Duration::from_secs(1));
    net.take_capture();
    let t0 = net.now;
    net.run_for(Duration::from_secs(20));
    let probes: Vec<f64> = from(&net.capture, A)
        .iter()
        .filter(|p| p.seg().payload().is_empty())
        .map(|p| (p.at - t0).as_secs_f64())
        .collect();
    assert!(probes.len() >= 4, "{probes:?}");
    let gaps: Vec<f64> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    for w in gaps.windows(2) {
        assert!(w[1] > w[0] * 1.9, "probe backoff: {gaps:?}");
    }
    assert!(net.hosts[0].ctx.count(TcpCounter::TcpWinProbe) >= 4);
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Established));
    // The reader drains: the window opens, everything arrives.
    let mut got = Vec::new();
    assert!(net.run_until(Duration::from_secs(120), |n| {
        got.extend(recv_all(n, 1, s).unwrap());
        if sent < data.len() {
            let h = &mut n.hosts[0];
            if let Ok(k) = h
                .tcp
                .send(&mut h.ctx, c, &data[sent..], SendFlags::default())
            {
                sent += k;
            }
        }
        got.len() == data.len()
    }));
    assert_eq!(got, data);
}

/// Sends `n` one-byte messages 10 ms apart (each ACKed quickly at the
/// start), so that B leaves quick-ACK mode.
fn exhaust_quickack(net: &mut Net, c: shunt_stack::tcp::SocketId, s: shunt_stack::tcp::SocketId) {
    for _ in 0..20 {
        assert_eq!(send(net, 0, c, b"q"), Ok(1));
        net.run_for(Duration::from_millis(10));
        recv_all(net, 1, s).unwrap();
    }
    net.run_for(Duration::from_millis(100));
    recv_all(net, 1, s).unwrap();
}

#[test]
fn delayed_ack_40ms_and_every_second_segment() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    let h = net.a();
    h.tcp
        .set_option(&mut h.ctx, c, SockOpt::NoDelay, 1)
        .unwrap();
    exhaust_quickack(&mut net, c, s);
    net.take_capture();
    let t0 = net.now;
    assert_eq!(send(&mut net, 0, c, b"one"), Ok(3));
    net.run_for(Duration::from_millis(100));
    let acks = from(&net.capture, B);
    assert_eq!(acks.len(), 1, "one delayed ACK");
    let delay = acks[0].at - t0;
    // Data arrives after 0.5 ms; the ACK 40 ms later.
    assert_eq!(
        delay,
        Duration::from_micros(500) + Duration::from_millis(40)
    );
    assert!(net.hosts[1].ctx.count(TcpCounter::DelayedAcks) >= 1);
    // Two full segments: ACKed at once.
    net.take_capture();
    let t0 = net.now;
    assert_eq!(send(&mut net, 0, c, &[1u8; 2896]), Ok(2896));
    net.run_for(Duration::from_millis(100));
    let acks = from(&net.capture, B);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].at - t0, Duration::from_micros(500));
}

#[test]
fn nagle_holds_small_segments_nodelay_does_not() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    exhaust_quickack(&mut net, c, s);
    net.take_capture();
    // Nagle on: the second small write waits for the first one's ACK
    // (delayed by B: 40 ms).
    assert_eq!(send(&mut net, 0, c, b"aa"), Ok(2));
    assert_eq!(send(&mut net, 0, c, b"bb"), Ok(2));
    assert_eq!(net.hosts[0].ctx.out.len(), 1);
    let t0 = net.now;
    net.run_for(Duration::from_millis(100));
    let data: Vec<_> = from(&net.capture, A)
        .into_iter()
        .filter(|p| !p.seg().payload().is_empty())
        .cloned()
        .collect();
    assert_eq!(data.len(), 2);
    assert!(data[1].at - t0 >= Duration::from_millis(40));
    assert_eq!(recv_all(&mut net, 1, s).unwrap(), b"aabb");
    // TCP_NODELAY: both at once.
    let h = net.a();
    h.tcp
        .set_option(&mut h.ctx, c, SockOpt::NoDelay, 1)
        .unwrap();
    net.take_capture();
    assert_eq!(send(&mut net, 0, c, b"cc"), Ok(2));
    assert_eq!(send(&mut net, 0, c, b"dd"), Ok(2));
    assert_eq!(net.hosts[0].ctx.out.len(), 2);
}

#[test]
fn cork_holds_until_uncork_or_200ms() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    let h = net.a();
    h.tcp.set_option(&mut h.ctx, c, SockOpt::Cork, 1).unwrap();
    net.take_capture();
    assert_eq!(send(&mut net, 0, c, b"head"), Ok(4));
    assert_eq!(net.hosts[0].ctx.out.len(), 0, "corked");
    // A full segment goes at once; the tail stays.
    assert_eq!(send(&mut net, 0, c, &[0u8; 1448]), Ok(1448));
    assert_eq!(net.hosts[0].ctx.out.len(), 1);
    net.run_for(Duration::from_millis(150));
    assert_eq!(recv_all(&mut net, 1, s).unwrap().len(), 1448);
    // Uncorking pushes the rest.
    let h = net.a();
    h.tcp.set_option(&mut h.ctx, c, SockOpt::Cork, 0).unwrap();
    net.run_for(Duration::from_millis(10));
    assert_eq!(recv_all(&mut net, 1, s).unwrap().len(), 4);
    // Corked again: the 200 ms ceiling sends it anyway.
    let h = net.a();
    h.tcp.set_option(&mut h.ctx, c, SockOpt::Cork, 1).unwrap();
    net.take_capture();
    let t0 = net.now;
    assert_eq!(send(&mut net, 0, c, b"tail"), Ok(4));
    net.run_for(Duration::from_millis(300));
    let d: Vec<_> = from(&net.capture, A)
        .into_iter()
        .filter(|p| !p.seg().payload().is_empty())
        .cloned()
        .collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].at - t0, Duration::from_millis(200));
}

#[test]
fn listen_backlog_overflow_drops_then_recovers() {
    let mut net = Net::with_hosts(cfg(), &[A, B, [192, 0, 2, 3], [192, 0, 2, 4]]);
    let l = net.b().tcp.socket(Domain::V4);
    let h = net.b();
    h.tcp.bind(&mut h.ctx, l, sa(B, 80)).unwrap();
    h.tcp.listen(&mut h.ctx, l, 1).unwrap();
    let mut clients = vec![];
    for hi in [0usize, 2, 3] {
        let h = &mut net.hosts[hi];
        let c = h.tcp.socket(Domain::V4);
        let _ = h.tcp.connect(&mut h.ctx, c, sa(B, 80));
        clients.push((hi, c));
        net.run_for(Duration::from_millis(5));
    }
    // Backlog 1 queues two; the third SYN is dropped.
    assert_eq!(net.hosts[1].tcp.listen_queues(l), Ok((0, 2)));
    assert!(net.hosts[1].ctx.count(TcpCounter::ListenOverflows) >= 1);
    let (h3, c3) = clients[2];
    assert_eq!(net.hosts[h3].tcp.state(c3), Ok(TcpState::SynSent));
    assert!(net.hosts[1].tcp.poll(l).has(Poll::IN));
    let h = net.b();
    let (a1, _) = h.tcp.accept(&mut h.ctx, l).unwrap();
    let (a2, _) = h.tcp.accept(&mut h.ctx, l).unwrap();
    assert_eq!(h.tcp.accept(&mut h.ctx, l), Err(Errno::EAGAIN));
    assert_eq!(h.tcp.poll(l), Poll(0));
    // The third client's SYN retransmission (1 s) gets in now.
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.hosts[h3].tcp.state(c3), Ok(TcpState::Established));
    let h = net.b();
    assert!(h.tcp.accept(&mut h.ctx, l).is_ok());
    let _ = (a1, a2);
}

#[test]
fn syn_flood_gets_cookies_and_real_clients_still_connect() {
    let mut net = Net::new(cfg());
    let l = net.b().tcp.socket(Domain::V4);
    let h = net.b();
    h.tcp.bind(&mut h.ctx, l, sa(B, 80)).unwrap();
    h.tcp.listen(&mut h.ctx, l, 8).unwrap();
    // 200 spoofed SYNs from addresses that never answer.
    for i in 0..200u32 {
        let src = SockAddr::v4([198, 51, 100, (i % 250) as u8], 10_000 + i as u16);
        let b = TcpBuilder {
            src_port: src.port,
            dst_port: 80,
            seq: SeqNum::new(i * 7919),
            flags: TcpFlags::SYN,
            window: 65535,
            options: TcpOptionSet {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some(Timestamps { val: 1, ecr: 0 }),
                ..TcpOptionSet::default()
            },
            ..TcpBuilder::default()
        };
        inject(&mut net, 1, src, sa(B, 80), b, &[]);
    }
    let h = net.b();
    assert_eq!(h.tcp.listen_queues(l), Ok((8, 0)));
    assert_eq!(h.ctx.count(TcpCounter::SyncookiesSent), 192);
    h.ctx.out.clear();
    // A real client: its SYN gets a cookie, its ACK makes a connection
    // with window scaling and SACK intact (from the timestamp).
    let c = net.a().tcp.socket(Domain::V4);
    let h = net.a();
    let _ = h.tcp.connect(&mut h.ctx, c, sa(B, 80));
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.hosts[1].ctx.count(TcpCounter::SyncookiesRecv), 1);
    assert_eq!(net.hosts[0].tcp.state(c), Ok(TcpState::Established));
    let h = net.b();
    let (s, peer) = h.tcp.accept(&mut h.ctx, l).unwrap();
    assert_eq!(peer, net.hosts[0].tcp.local_addr(c).unwrap());
    let info = net.hosts[1].tcp.tcp_info(s, net.now).unwrap();
    assert_eq!(info.options & 7, 7, "TS, SACK, wscale survive the cookie");
    assert_eq!(info.snd_wscale, 7);
    let data = vec![5u8; 300_000];
    let mut sent = 0;
    let mut got = 0;
    assert!(net.run_until(Duration::from_secs(10), |n| {
        if sent < data.len() {
            let h = &mut n.hosts[0];
            if let Ok(k) = h
                .tcp
                .send(&mut h.ctx, c, &data[sent..], SendFlags::default())
            {
                sent += k;
            }
        }
        got += recv_all(n, 1, s).unwrap().len();
        got == data.len()
    }));
    // The spoofed requests time out after 5 SYN-ACK retransmissions.
    net.run_for(Duration::from_secs(70));
    assert_eq!(net.hosts[1].tcp.listen_queues(l), Ok((0, 0)));
}

#[test]
fn self_connection_through_own_address() {
    let mut net = Net::new(cfg());
    let l = net.a().tcp.socket(Domain::V4);
    let h = net.a();
    h.tcp.bind(&mut h.ctx, l, sa(A, 7)).unwrap();
    h.tcp.listen(&mut h.ctx, l, 4).unwrap();
    let c = h.tcp.socket(Domain::V4);
    let _ = h.tcp.connect(&mut h.ctx, c, sa(A, 7));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(2), |n| {
        let h = n.a();
        if s.is_none()
            && let Ok((id, _)) = h.tcp.accept(&mut h.ctx, l)
        {
            s = Some(id);
        }
        s.is_some()
    }));
    let s = s.unwrap();
    assert_eq!(send(&mut net, 0, c, b"me to me"), Ok(8));
    net.run_for(Duration::from_millis(5));
    assert_eq!(recv_all(&mut net, 0, s).unwrap(), b"me to me");
    // A socket connecting to its own port (the classic self-connect).
    let h = net.a();
    let x = h.tcp.socket(Domain::V4);
    h.tcp.bind(&mut h.ctx, x, sa(A, 5555)).unwrap();
    let _ = h.tcp.connect(&mut h.ctx, x, sa(A, 5555));
    assert!(
        net.run_until(Duration::from_secs(3), |n| n.hosts[0].tcp.state(x)
            == Ok(TcpState::Established))
    );
    assert_eq!(send(&mut net, 0, x, b"echo"), Ok(4));
    net.run_for(Duration::from_millis(5));
    assert_eq!(recv_all(&mut net, 0, x).unwrap(), b"echo");
}

#[test]
fn bind_rules() {
    let mut net = Net::new(cfg());
    let h = net.a();
    let a = h.tcp.socket(Domain::V4);
    let b = h.tcp.socket(Domain::V4);
    h.tcp.bind(&mut h.ctx, a, sa(A, 8080)).unwrap();
    assert_eq!(h.tcp.bind(&mut h.ctx, a, sa(A, 8081)), Err(Errno::EINVAL));
    assert_eq!(
        h.tcp.bind(&mut h.ctx, b, sa([0, 0, 0, 0], 8080)),
        Err(Errno::EADDRINUSE)
    );
    assert_eq!(
        h.tcp.bind(&mut h.ctx, b, sa([10, 9, 9, 9], 8080)),
        Err(Errno::EADDRNOTAVAIL)
    );
    // SO_REUSEADDR on both: shared while nobody listens; only one listens.
    let c = h.tcp.socket(Domain::V4);
    let d = h.tcp.socket(Domain::V4);
    h.tcp
        .set_option(&mut h.ctx, c, SockOpt::ReuseAddr, 1)
        .unwrap();
    h.tcp
        .set_option(&mut h.ctx, d, SockOpt::ReuseAddr, 1)
        .unwrap();
    h.tcp.bind(&mut h.ctx, c, sa(A, 9090)).unwrap();
    h.tcp.bind(&mut h.ctx, d, sa([0, 0, 0, 0], 9090)).unwrap();
    h.tcp.listen(&mut h.ctx, c, 1).unwrap();
    assert_eq!(h.tcp.listen(&mut h.ctx, d, 1), Err(Errno::EADDRINUSE));
    // SO_REUSEPORT on both: two listeners.
    let e = h.tcp.socket(Domain::V4);
    let f = h.tcp.socket(Domain::V4);
    h.tcp
        .set_option(&mut h.ctx, e, SockOpt::ReusePort, 1)
        .unwrap();
    h.tcp
        .set_option(&mut h.ctx, f, SockOpt::ReusePort, 1)
        .unwrap();
    h.tcp.bind(&mut h.ctx, e, sa(A, 7070)).unwrap();
    h.tcp.bind(&mut h.ctx, f, sa(A, 7070)).unwrap();
    h.tcp.listen(&mut h.ctx, e, 1).unwrap();
    h.tcp.listen(&mut h.ctx, f, 1).unwrap();
    // Port 0: an ephemeral port from the Linux range.
    let g = h.tcp.socket(Domain::V4);
    h.tcp.bind(&mut h.ctx, g, sa(A, 0)).unwrap();
    let p = h.tcp.local_addr(g).unwrap().port;
    assert!((32768..=60999).contains(&p));
    // Dual-stack [::]:P conflicts with 0.0.0.0:P; V6ONLY lets them coexist.
    let v6 = h.tcp.socket(Domain::V6);
    h.tcp
        .bind(
            &mut h.ctx,
            v6,
            "[::]:6060".parse::<std::net::SocketAddr>().unwrap().into(),
        )
        .unwrap();
    let v4 = h.tcp.socket(Domain::V4);
    assert_eq!(
        h.tcp.bind(&mut h.ctx, v4, sa([0, 0, 0, 0], 6060)),
        Err(Errno::EADDRINUSE)
    );
    let v6b = h.tcp.socket(Domain::V6);
    h.tcp
        .set_option(&mut h.ctx, v6b, SockOpt::V6Only, 1)
        .unwrap();
    h.tcp
        .bind(
            &mut h.ctx,
            v6b,
            "[::]:6061".parse::<std::net::SocketAddr>().unwrap().into(),
        )
        .unwrap();
    h.tcp.bind(&mut h.ctx, v4, sa([0, 0, 0, 0], 6061)).unwrap();
    // Closing frees the port at once (no connection).
    h.tcp.close(&mut h.ctx, a);
    h.tcp.bind(&mut h.ctx, b, sa(A, 8080)).unwrap();
}

#[test]
fn time_wait_holds_the_port_unless_reuseaddr() {
    let mut net = Net::new(cfg());
    let l = net.b().tcp.socket(Domain::V4);
    let h = net.b();
    h.tcp
        .set_option(&mut h.ctx, l, SockOpt::ReuseAddr, 1)
        .unwrap();
    h.tcp.bind(&mut h.ctx, l, sa(B, 80)).unwrap();
    h.tcp.listen(&mut h.ctx, l, 8).unwrap();
    let c = net.a().tcp.socket(Domain::V4);
    let h = net.a();
    let _ = h.tcp.connect(&mut h.ctx, c, sa(B, 80));
    let mut s = None;
    assert!(net.run_until(Duration::from_secs(2), |n| {
        let h = n.b();
        if let Ok((id, _)) = h.tcp.accept(&mut h.ctx, l) {
            s = Some(id);
        }
        s.is_some()
    }));
    // The server closes first: the TIME_WAIT is on B.
    let h = net.b();
    h.tcp.close(&mut h.ctx, s.unwrap());
    h.tcp.close(&mut h.ctx, l);
    net.run_for(Duration::from_millis(5));
    let h = net.a();
    h.tcp.close(&mut h.ctx, c);
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.hosts[1].tcp.time_wait().len(), 1);
    let h = net.b();
    let x = h.tcp.socket(Domain::V4);
    assert_eq!(h.tcp.bind(&mut h.ctx, x, sa(B, 80)), Err(Errno::EADDRINUSE));
    h.tcp
        .set_option(&mut h.ctx, x, SockOpt::ReuseAddr, 1)
        .unwrap();
    h.tcp.bind(&mut h.ctx, x, sa(B, 80)).unwrap();
    h.tcp.listen(&mut h.ctx, x, 8).unwrap();
    // A new SYN from the same 4-tuple with a higher sequence number takes
    // over the TIME_WAIT.
    let old = net.hosts[1].tcp.time_wait()[0];
    let h = net.a();
    let y = h.tcp.socket(Domain::V4);
    h.tcp.bind(&mut h.ctx, y, old.remote).unwrap();
    let _ = h.tcp.connect(&mut h.ctx, y, old.local);
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.hosts[0].tcp.state(y), Ok(TcpState::Established));
    assert_eq!(net.hosts[1].ctx.count(TcpCounter::TimeWaitRecycled), 1);
    assert!(net.hosts[1].tcp.time_wait().is_empty());
    let h = net.b();
    assert!(h.tcp.accept(&mut h.ctx, x).is_ok());
}

#[test]
fn ipv6_and_v4_mapped_connections() {
    use shunt_stack::Ipv6Addr;
    use shunt_stack::tcp::IpAddr;
    let mut net = Net::new(cfg());
    let a6 = IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap());
    let b6 = IpAddr::V6("2001:db8::2".parse::<Ipv6Addr>().unwrap());
    net.hosts[0].ctx.addrs.push(a6);
    net.hosts[1].ctx.addrs.push(b6);
    // A dual-stack listener on B.
    let l = net.b().tcp.socket(Domain::V6);
    let h = net.b();
    h.tcp
        .bind(
            &mut h.ctx,
            l,
            "[::]:443".parse::<std::net::SocketAddr>().unwrap().into(),
        )
        .unwrap();
    h.tcp.listen(&mut h.ctx, l, 8).unwrap();
    // An IPv6 client.
    let c6 = net.a().tcp.socket(Domain::V6);
    let h = net.a();
    let _ = h
        .tcp
        .connect(&mut h.ctx, c6, shunt_stack::tcp::SockAddr::new(b6, 443));
    // An IPv4 client.
    let c4 = h.tcp.socket(Domain::V4);
    let _ = h.tcp.connect(&mut h.ctx, c4, sa(B, 443));
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.hosts[0].tcp.state(c6), Ok(TcpState::Established));
    assert_eq!(net.hosts[0].tcp.state(c4), Ok(TcpState::Established));
    assert_eq!(net.hosts[0].tcp.get_option(c6, SockOpt::MaxSeg), Ok(1428));
    let h = net.b();
    let (s1, p1) = h.tcp.accept(&mut h.ctx, l).unwrap();
    let (s2, p2) = h.tcp.accept(&mut h.ctx, l).unwrap();
    assert_eq!(p1.ip, a6);
    // The IPv4 peer as an IPv6 socket names it: v4-mapped.
    assert_eq!(format!("{}", p2.ip), "::ffff:192.0.2.1");
    assert_eq!(
        format!("{}", h.tcp.local_addr(s2).unwrap().ip),
        "::ffff:192.0.2.2"
    );
    assert_eq!(send(&mut net, 0, c6, b"six"), Ok(3));
    assert_eq!(send(&mut net, 0, c4, b"four"), Ok(4));
    net.run_for(Duration::from_millis(10));
    assert_eq!(recv_all(&mut net, 1, s1).unwrap(), b"six");
    assert_eq!(recv_all(&mut net, 1, s2).unwrap(), b"four");
    // A v6 socket connecting to a v4-mapped address talks IPv4.
    let m = net.a().tcp.socket(Domain::V6);
    let h = net.a();
    let _ = h.tcp.connect(
        &mut h.ctx,
        m,
        "[::ffff:192.0.2.2]:443"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    );
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.hosts[0].tcp.state(m), Ok(TcpState::Established));
    assert!(net.capture.iter().any(|p| p.src == a6));
}

#[test]
fn fresh_socket_semantics() {
    let mut net = Net::new(cfg());
    let h = net.a();
    let x = h.tcp.socket(Domain::V4);
    assert_eq!(h.tcp.poll(x).0, Poll::OUT | Poll::WRNORM | Poll::HUP);
    let mut buf = [0u8; 4];
    assert_eq!(
        h.tcp.recv(&mut h.ctx, x, &mut buf, RecvFlags::default()),
        Err(Errno::ENOTCONN)
    );
    assert_eq!(
        h.tcp.send(&mut h.ctx, x, b"x", SendFlags::default()),
        Err(Errno::EPIPE)
    );
    assert_eq!(
        h.tcp.shutdown(&mut h.ctx, x, Shutdown::Read),
        Err(Errno::ENOTCONN)
    );
    assert_eq!(h.tcp.peer_addr(x), Err(Errno::ENOTCONN));
    assert_eq!(h.tcp.get_option(x, SockOpt::MaxSeg), Ok(536));
    assert_eq!(h.tcp.get_option(x, SockOpt::RcvBuf), Ok(131072));
    assert_eq!(h.tcp.get_option(x, SockOpt::SndBuf), Ok(16384));
    h.tcp
        .set_option(&mut h.ctx, x, SockOpt::RcvBuf, 65536)
        .unwrap();
    assert_eq!(h.tcp.get_option(x, SockOpt::RcvBuf), Ok(131072));
    h.tcp.set_option(&mut h.ctx, x, SockOpt::SndBuf, 1).unwrap();
    assert_eq!(h.tcp.get_option(x, SockOpt::SndBuf), Ok(4608));
    assert_eq!(
        h.tcp.set_option(&mut h.ctx, x, SockOpt::MaxSeg, 50),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        h.tcp.set_option(&mut h.ctx, x, SockOpt::KeepCnt, 128),
        Err(Errno::EINVAL)
    );
    assert_eq!(h.tcp.congestion(x), Ok("cubic"));
    assert_eq!(h.tcp.set_congestion(x, "bbr"), Err(Errno(2)));
    h.tcp.set_congestion(x, "reno").unwrap();
    assert_eq!(h.tcp.get_option(x, SockOpt::SynCnt), Ok(6));
    let _ = Instant::ZERO;
}

#[test]
fn paws_drops_old_timestamps() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    assert_eq!(send(&mut net, 1, s, b"fresh"), Ok(5));
    net.run_for(Duration::from_millis(10));
    assert_eq!(recv_all(&mut net, 0, c).unwrap(), b"fresh");
    // Replay B's segment with a timestamp from the past and new data at
    // the right sequence number: PAWS drops it and A answers with an ACK.
    let last = net
        .capture
        .iter()
        .rev()
        .find(|p| p.src == ip(B) && !p.seg().payload().is_empty())
        .unwrap()
        .clone();
    let sg = last.seg();
    let mut b = sg.builder();
    let ts = b.options.timestamps.unwrap();
    b.options.timestamps = Some(Timestamps {
        val: ts.val.wrapping_sub(1000),
        ecr: ts.ecr,
    });
    b.seq = sg.seq() + 5;
    let out_before = net.hosts[0].ctx.out.len();
    let me = net.hosts[0].tcp.local_addr(c).unwrap();
    inject(&mut net, 0, sa(B, 80), me, b, b"stale");
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::PawsEstab), 1);
    assert_eq!(
        net.hosts[0].ctx.out.len(),
        out_before + 1,
        "a duplicate ACK"
    );
    assert_eq!(recv_all(&mut net, 0, c).unwrap(), b"");
    // The same segment with a current timestamp is accepted.
    b.options.timestamps = Some(Timestamps {
        val: ts.val.wrapping_add(1),
        ecr: ts.ecr,
    });
    inject(&mut net, 0, sa(B, 80), me, b, b"later");
    assert_eq!(recv_all(&mut net, 0, c).unwrap(), b"later");
}

#[test]
fn closing_a_listener_resets_unaccepted_connections() {
    let mut net = Net::new(cfg());
    let (l, c, _s) = connect_pair(&mut net, 80);
    let c2 = net.a().tcp.socket(Domain::V4);
    let h = net.a();
    let _ = h.tcp.connect(&mut h.ctx, c2, sa(B, 80));
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.hosts[0].tcp.state(c2), Ok(TcpState::Established));
    let h = net.b();
    h.tcp.close(&mut h.ctx, l);
    net.run_for(Duration::from_millis(10));
    let h = net.a();
    assert_eq!(h.tcp.take_error(c2), Some(Errno::ECONNRESET));
    // The accepted one is untouched.
    assert_eq!(h.tcp.state(c), Ok(TcpState::Established));
    assert_eq!(net.hosts[1].tcp.stats().connections, 1);
}

#[test]
fn reset_while_queued_is_still_accepted() {
    let mut net = Net::new(cfg());
    let l = net.b().tcp.socket(Domain::V4);
    let h = net.b();
    h.tcp.bind(&mut h.ctx, l, sa(B, 80)).unwrap();
    h.tcp.listen(&mut h.ctx, l, 8).unwrap();
    let c = net.a().tcp.socket(Domain::V4);
    let h = net.a();
    let _ = h.tcp.connect(&mut h.ctx, c, sa(B, 80));
    net.run_for(Duration::from_millis(10));
    assert_eq!(send(&mut net, 0, c, b"early"), Ok(5));
    net.hosts[0].tcp.set_linger(c, Some(0)).unwrap();
    net.run_for(Duration::from_millis(10));
    let h = net.a();
    h.tcp.close(&mut h.ctx, c);
    net.run_for(Duration::from_millis(10));
    let h = net.b();
    let (s, _) = h.tcp.accept(&mut h.ctx, l).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        h.tcp.recv(&mut h.ctx, s, &mut buf, RecvFlags::default()),
        Ok(5)
    );
    assert_eq!(
        h.tcp.recv(&mut h.ctx, s, &mut buf, RecvFlags::default()),
        Err(Errno::ECONNRESET)
    );
}

/// RFC 8985 7: the last segment of a flight is lost and the peer's ACK
/// for the one before it waits for its delayed-ACK timer. A probe two
/// RTTs after the last ACK retransmits the tail, long before the RTO; the
/// next ACK past the probe costs the congestion window.
#[test]
fn lost_tail_is_repaired_by_a_loss_probe_before_the_rto() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    // Past the quick-ACK start, with an RTT sample.
    let warm = vec![1u8; 200_000];
    let mut sent = 0;
    let mut got = 0;
    let ok = net.run_until(Duration::from_secs(5), |n| {
        if sent < warm.len() {
            sent += send(n, 0, c, &warm[sent..]).unwrap_or(0);
        }
        got += recv_all(n, 1, s).unwrap().len();
        got == warm.len() && n.hosts[0].tcp.tcp_info(c, n.now).unwrap().unacked == 0
    });
    assert!(ok, "warm-up");
    net.run_for(Duration::from_millis(50));
    let mss = net.hosts[0].tcp.tcp_info(c, net.now).unwrap().snd_mss as usize;
    let data: Vec<u8> = (0..10 * mss).map(|i| (i % 251) as u8).collect();
    let a_ip = ip(A);
    let mut n = 0;
    net.drop_filter = Some(Box::new(move |p| {
        if p.src != a_ip || p.seg().payload().is_empty() {
            return false;
        }
        n += 1;
        n == 10
    }));
    let t0 = net.now;
    assert_eq!(send(&mut net, 0, c, &data), Ok(data.len()));
    let mut got = Vec::new();
    let ok = net.run_until(Duration::from_secs(2), |n| {
        got.extend(recv_all(n, 1, s).unwrap());
        got.len() == data.len() && n.hosts[0].tcp.tcp_info(c, n.now).unwrap().unacked == 0
    });
    assert!(ok, "the tail never arrived");
    assert_eq!(got, data);
    let took = net.now - t0;
    assert!(took < Duration::from_millis(50), "repaired after {took:?}");
    let h = &net.hosts[0];
    assert_eq!(h.ctx.count(TcpCounter::TcpLossProbes), 1);
    assert_eq!(h.ctx.count(TcpCounter::TcpTimeouts), 0);
    assert_eq!(h.ctx.count(TcpCounter::RetransSegs), 1);
    assert_eq!(h.ctx.count(TcpCounter::TcpLossProbeRecovery), 0);
    let cwnd = h.tcp.tcp_info(c, net.now).unwrap().snd_cwnd;
    // More data: its ACK passes the probe, which had repaired a loss.
    assert_eq!(send(&mut net, 0, c, &data[..mss]), Ok(mss));
    net.run_for(Duration::from_millis(100));
    assert_eq!(recv_all(&mut net, 1, s).unwrap(), &data[..mss]);
    let h = &net.hosts[0];
    assert_eq!(h.ctx.count(TcpCounter::TcpLossProbeRecovery), 1);
    assert!(h.tcp.tcp_info(c, net.now).unwrap().snd_cwnd < cwnd);
}

/// The last two segments of a flight are lost: the probe (the last one
/// again) is SACKed above the hole, which is then lost however few
/// segments were SACKed, and repaired at once, without the RTO.
#[test]
fn two_lost_tail_segments_are_repaired_after_the_loss_probe() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    let warm = vec![1u8; 200_000];
    let mut sent = 0;
    let mut got = 0;
    let ok = net.run_until(Duration::from_secs(5), |n| {
        if sent < warm.len() {
            sent += send(n, 0, c, &warm[sent..]).unwrap_or(0);
        }
        got += recv_all(n, 1, s).unwrap().len();
        got == warm.len() && n.hosts[0].tcp.tcp_info(c, n.now).unwrap().unacked == 0
    });
    assert!(ok, "warm-up");
    net.run_for(Duration::from_millis(50));
    let mss = net.hosts[0].tcp.tcp_info(c, net.now).unwrap().snd_mss as usize;
    let data: Vec<u8> = (0..10 * mss).map(|i| (i % 251) as u8).collect();
    let a_ip = ip(A);
    let mut n = 0;
    net.drop_filter = Some(Box::new(move |p| {
        if p.src != a_ip || p.seg().payload().is_empty() {
            return false;
        }
        n += 1;
        n == 9 || n == 10
    }));
    let t0 = net.now;
    assert_eq!(send(&mut net, 0, c, &data), Ok(data.len()));
    let mut got = Vec::new();
    let ok = net.run_until(Duration::from_secs(2), |n| {
        got.extend(recv_all(n, 1, s).unwrap());
        got.len() == data.len() && n.hosts[0].tcp.tcp_info(c, n.now).unwrap().unacked == 0
    });
    assert!(ok, "the tail never arrived");
    assert_eq!(got, data);
    let took = net.now - t0;
    assert!(took < Duration::from_millis(50), "repaired after {took:?}");
    let h = &net.hosts[0];
    assert_eq!(h.ctx.count(TcpCounter::TcpLossProbes), 1);
    assert_eq!(h.ctx.count(TcpCounter::TcpTimeouts), 0);
    assert_eq!(h.ctx.count(TcpCounter::TcpSackRecovery), 1);
    assert_eq!(h.ctx.count(TcpCounter::RetransSegs), 2);
}
