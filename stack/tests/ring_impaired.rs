//! Two shunt stacks joined by ring's in-memory pair, with ring's
//! impairment app on each direction (stack → impair → link → pair →
//! stack), driven by the ring driver with a fake clock: time advances as
//! a 10 Gbit/s line would carry the frames, and jumps to the next timer
//! when nothing moves, so retransmission timeouts cost no real time.
//!
//! 100 MiB each way at once (release builds; 16 MiB in debug ones,
//! `SHUNT_RING_MIB=N` to choose): with 5% loss, 5% reordering and 1%
//! duplication every byte arrives in order and the transfer finishes;
//! without impairment there is not a single retransmission.
//! `SHUNT_RING_TRACE=1` prints every idle jump of the fake clock (and
//! every frame after the first retransmission timeout).

mod ring_driver;

use std::time::Duration;

use ring_driver::*;
use shunt_ring::apps::impair::{Impair, ImpairConfig};
use shunt_ring::mem;
use shunt_stack::tcp::{Domain, Errno, RecvFlags, SockAddr, SocketId, TcpCounter, TcpState};
use shunt_stack::time::Instant;
use shunt_stack::{Ipv4Addr, Stack};

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
/// Line rate of the fake clock.
const LINE_GBIT: u64 = 10;

fn mib() -> usize {
    let default = if cfg!(debug_assertions) { 16 } else { 100 };
    std::env::var("SHUNT_RING_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sock(a: Ipv4Addr, port: u16) -> SockAddr {
    SockAddr::from(std::net::SocketAddr::new(
        std::net::IpAddr::V4(a.into()),
        port,
    ))
}

/// Reads a socket to EOF, checking every byte against the stream it
/// should be.
struct Checker {
    id: SocketId,
    seed: u64,
    pos: u64,
    eof: bool,
    buf: Vec<u8>,
    want: Vec<u8>,
}

impl Checker {
    fn new(id: SocketId, seed: u64) -> Checker {
        Checker {
            id,
            seed,
            pos: 0,
            eof: false,
            buf: vec![0; 256 * 1024],
            want: vec![0; 256 * 1024],
        }
    }

    fn pump(&mut self, s: &mut Stack, now: Instant) {
        while !self.eof {
            let (id, buf) = (self.id, &mut self.buf);
            match s.tcp(now, |t, cx| t.recv(cx, id, buf, RecvFlags::default())) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    fill(self.seed, self.pos, &mut self.want[..n]);
                    if self.buf[..n] != self.want[..n] {
                        let i = (0..n).find(|&i| self.buf[i] != self.want[i]).unwrap();
                        panic!(
                            "stream {}: byte {} is {:#04x}, not {:#04x}",
                            self.seed,
                            self.pos + i as u64,
                            self.buf[i],
                            self.want[i]
                        );
                    }
                    self.pos += n as u64;
                }
                Err(Errno::EAGAIN) => return,
                Err(e) => panic!("recv: {e:?} at byte {}", self.pos),
            }
        }
    }
}

struct Outcome {
    a: Driver<ImpairedMem>,
    b: Driver<ImpairedMem>,
    fake: Duration,
    real: Duration,
}

/// `bytes` each way at once between two stacks, A → B impaired by `ab`
/// and B → A by `ba`; each side closes once it has written everything and read EOF.
fn transfer(ab: ImpairConfig, ba: ImpairConfig, bytes: usize, limit: Duration) -> Outcome {
    let clock = Clock::new();
    let (pa, pb) = mem::pair();
    let mut a = Driver::new(
        new_stack(MAC_A, 1500, A, 24, 11),
        ImpairedMem::new(pa, Impair::new(ab), clock),
        clock,
    );
    let mut b = Driver::new(
        new_stack(MAC_B, 1500, B, 24, 22),
        ImpairedMem::new(pb, Impair::new(ba), clock),
        clock,
    );
    a.rx_batch = usize::MAX;
    b.rx_batch = usize::MAX;
    let data_a = stream(1, bytes);
    let data_b = stream(2, bytes);
    let mut now = Instant::from_millis(1);
    let l = b.stack.tcp(now, |t, cx| {
        let l = t.socket(Domain::V4);
        t.bind(cx, l, sock(Ipv4Addr::UNSPECIFIED, 5001)).unwrap();
        t.listen(cx, l, 8).unwrap();
        l
    });
    let c = a.stack.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        assert_eq!(t.connect(cx, c, sock(B, 5001)), Err(Errno::EINPROGRESS));
        c
    });
    let mut wa = TcpWriter::new(c, &data_a);
    let mut ra = Checker::new(c, 2);
    let mut side_b: Option<(TcpWriter, Checker)> = None;
    let (mut closed_a, mut closed_b) = (false, false);
    let start_fake = now;
    let start = std::time::Instant::now();
    let mut fin_rounds = 0;
    let trace = std::env::var_os("SHUNT_RING_TRACE").is_some();
    loop {
        let (tx_a, tx_b) = (a.stats.tx_bytes, b.stats.tx_bytes);
        let mut moved = a.turn(now);
        moved |= b.turn(now);
        if side_b.is_none() {
            if let Ok((s, _)) = b.stack.tcp(now, |t, cx| t.accept(cx, l)) {
                side_b = Some((TcpWriter::new(s, &data_b), Checker::new(s, 1)));
            }
        }
        if a.stack.tcp_layer().state(c) != Ok(TcpState::SynSent) {
            let sent = wa.pump(&mut a.stack, now);
            ra.pump(&mut a.stack, now);
            if sent && ra.eof && !closed_a {
                a.stack.tcp(now, |t, cx| t.close(cx, c));
                closed_a = true;
            }
        }
        if let Some((w, r)) = side_b.as_mut() {
            let sent = w.pump(&mut b.stack, now);
            r.pump(&mut b.stack, now);
            if sent && r.eof && !closed_b {
                let id = r.id;
                b.stack.tcp(now, |t, cx| t.close(cx, id));
                closed_b = true;
            }
        }
        moved |= a.transmit(now) > 0;
        moved |= b.transmit(now) > 0;
        if closed_a && closed_b {
            // A few more rounds for the last FINs and ACKs.
            fin_rounds += 1;
            if fin_rounds > 1000 || (!moved && a.port.impair.queued() + b.port.impair.queued() == 0)
            {
                break;
            }
        }
        assert!(
            start.elapsed() < limit,
            "not done in {limit:?}: A got {} B got {} of {bytes}; fake time {:?}; A {:?} B {:?}",
            ra.pos,
            side_b.as_ref().map_or(0, |s| s.1.pos),
            now - start_fake,
            a.stats,
            b.stats,
        );
        if moved {
            let sent = (a.stats.tx_bytes - tx_a) + (b.stats.tx_bytes - tx_b);
            now += Duration::from_nanos((sent * 8 / LINE_GBIT).max(1000));
        } else {
            let next = match (a.next_wake(), b.next_wake()) {
                (Some(x), Some(y)) => x.min(y),
                (x, y) => x.or(y).unwrap_or_else(|| {
                    panic!(
                        "stalled: nothing to send and no timer: A got {} B got {}",
                        ra.pos,
                        side_b.as_ref().map_or(0, |s| s.1.pos)
                    )
                }),
            };
            if trace {
                // Frames too, once the first timeout has happened.
                let timeouts = a.stack.tcp_counter(TcpCounter::TcpTimeouts)
                    + b.stack.tcp_counter(TcpCounter::TcpTimeouts);
                a.port.trace = timeouts > 0;
                b.port.trace = timeouts > 0;
                eprintln!(
                    "idle at {now:?} until {next:?}: A got {} B got {}; A {} B {}",
                    ra.pos,
                    side_b.as_ref().map_or(0, |s| s.1.pos),
                    conn_info(&a.stack, c, now),
                    side_b
                        .as_ref()
                        .map_or(String::new(), |s| conn_info(&b.stack, s.0.id, now)),
                );
            }
            now = next.max(now + Duration::from_micros(1));
        }
    }
    let (_, rb) = side_b.expect("accepted");
    assert_eq!(ra.pos, bytes as u64);
    assert_eq!(rb.pos, bytes as u64);
    assert_eq!(a.port.port.drops + b.port.port.drops, 0, "pair overflowed");
    Outcome {
        a,
        b,
        fake: now - start_fake,
        real: start.elapsed(),
    }
}

/// For traces: the connection as TCP_INFO sees it.
fn conn_info(s: &Stack, id: SocketId, now: Instant) -> String {
    match s.tcp_layer().tcp_info(id, now) {
        Ok(i) => format!(
            "state {} ca {} cwnd {} unacked {} sacked {} lost {} retrans {} backoff {} rto {} us",
            i.state,
            i.ca_state,
            i.snd_cwnd,
            i.unacked,
            i.sacked,
            i.lost,
            i.retransmits,
            i.backoff,
            i.rto
        ),
        Err(e) => format!("{e:?}"),
    }
}

fn report(name: &str, o: &Outcome, bytes: usize) {
    let c = |d: &Driver<ImpairedMem>, k: TcpCounter| d.stack.tcp_counter(k);
    let i = |d: &Driver<ImpairedMem>| d.port.impair.stats;
    eprintln!(
        "{name}: {} MiB each way in {:.2} s real ({:.2} Gbit/s both ways), {:.3} s fake; \
         retrans A {} B {}, timeouts A {} B {}, SACK recoveries A {} B {}; \
         impair A->B {:?}, B->A {:?}",
        bytes >> 20,
        o.real.as_secs_f64(),
        (2 * bytes * 8) as f64 / o.real.as_secs_f64() / 1e9,
        o.fake.as_secs_f64(),
        c(&o.a, TcpCounter::RetransSegs),
        c(&o.b, TcpCounter::RetransSegs),
        c(&o.a, TcpCounter::TcpTimeouts),
        c(&o.b, TcpCounter::TcpTimeouts),
        c(&o.a, TcpCounter::TcpSackRecovery),
        c(&o.b, TcpCounter::TcpSackRecovery),
        i(&o.a),
        i(&o.b),
    );
}

#[test]
fn bulk_both_ways_through_loss_reorder_and_duplication() {
    let bytes = mib() << 20;
    let cfg = |seed| ImpairConfig {
        loss: 0.05,
        reorder: 0.05,
        duplicate: 0.01,
        seed,
        ..ImpairConfig::default()
    };
    let o = transfer(cfg(7), cfg(8), bytes, Duration::from_secs(120));
    report("5% loss, 5% reorder, 1% dup", &o, bytes);
    for d in [&o.a, &o.b] {
        assert!(d.stack.tcp_counter(TcpCounter::RetransSegs) > 0);
        let s = d.port.impair.stats;
        assert!(s.lost > 0 && s.reordered > 0 && s.duplicated > 0, "{s:?}");
    }
}

#[test]
fn bulk_both_ways_without_impairment_retransmits_nothing() {
    let bytes = mib() << 20;
    let o = transfer(
        ImpairConfig::default(),
        ImpairConfig::default(),
        bytes,
        Duration::from_secs(60),
    );
    report("no impairment", &o, bytes);
    for d in [&o.a, &o.b] {
        assert_eq!(d.stack.tcp_counter(TcpCounter::RetransSegs), 0);
        assert_eq!(d.stack.tcp_counter(TcpCounter::TcpTimeouts), 0);
    }
}

/// Payload length and SACK blocks of a TCP/IPv4 frame.
fn tcp_payload_and_sacks(f: &[u8]) -> Option<(usize, usize)> {
    if f.len() < 54 || f[12..14] != [8, 0] || f[23] != 6 {
        return None;
    }
    let ihl = usize::from(f[14] & 15) * 4;
    let tot = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let t = &f[14 + ihl..];
    let doff = usize::from(t[12] >> 4) * 4;
    let mut sacks = 0;
    let mut o = &t[20..doff];
    while let [kind, rest @ ..] = o {
        match kind {
            0 => break,
            1 => o = rest,
            _ => {
                let len = usize::from(*rest.first()?).max(2);
                if *kind == 5 {
                    sacks = (len - 2) / 8;
                }
                o = o.get(len..)?;
            }
        }
    }
    Some((tot - ihl - doff, sacks))
}

/// Moves every frame each stack has to the other, except those `keep`
/// refuses; returns the frames moved from A and from B.
fn shuttle(
    a: &mut Stack,
    b: &mut Stack,
    now: Instant,
    mut keep: impl FnMut(bool, &[u8]) -> bool,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        while let Some(f) = a.transmit_with(now, |f| f.to_vec()) {
            moved = true;
            if keep(true, &f) {
                b.receive(&f, shunt_stack::RxOffload::None, now);
            }
            from_a.push(f);
        }
        while let Some(f) = b.transmit_with(now, |f| f.to_vec()) {
            moved = true;
            if keep(false, &f) {
                a.receive(&f, shunt_stack::RxOffload::None, now);
            }
            from_b.push(f);
        }
        if !moved {
            return (from_a, from_b);
        }
    }
}

/// A data segment that also carries SACK blocks (the receiver holds
/// out-of-order data while it sends data of its own) must still fit the
/// MTU: the payload shrinks by the option bytes, as Linux's
/// `tcp_current_mss` does. Otherwise the IP layer refuses every such
/// segment (DF, larger than the MTU) and the connection stalls until it
/// times out, which the bidirectional impaired transfer above hit.
#[test]
fn data_segments_carrying_sack_blocks_fit_the_mtu() {
    let mut a = new_stack(MAC_A, 1500, A, 24, 1);
    let mut b = new_stack(MAC_B, 1500, B, 24, 2);
    let mut now = Instant::from_millis(1);
    let l = b.tcp(now, |t, cx| {
        let l = t.socket(Domain::V4);
        t.bind(cx, l, sock(B, 80)).unwrap();
        t.listen(cx, l, 4).unwrap();
        l
    });
    let c = a.tcp(now, |t, cx| {
        let c = t.socket(Domain::V4);
        let _ = t.connect(cx, c, sock(B, 80));
        c
    });
    shuttle(&mut a, &mut b, now, |_, _| true);
    let (s, _) = b.tcp(now, |t, cx| t.accept(cx, l)).expect("accepted");
    now += Duration::from_millis(1);
    // A sends 8 full segments; the second is lost, and so is its fast
    // retransmission.
    let data = stream(3, 8 * 1448);
    assert_eq!(
        a.tcp(now, |t, cx| t.send(cx, c, &data, Default::default())),
        Ok(data.len())
    );
    let mut n = 0;
    shuttle(&mut a, &mut b, now, |from_a, f| {
        if from_a && tcp_payload_and_sacks(f).is_some_and(|(len, _)| len > 0) {
            n += 1;
            return n != 2 && n <= 8;
        }
        true
    });
    // B, holding out-of-order data, now sends a bulk of its own.
    let reply = stream(4, 16 * 1448);
    let sent = b.tcp(now, |t, cx| t.send(cx, s, &reply, Default::default()));
    assert!(sent.is_ok_and(|k| k > 0), "{sent:?}");
    let mut frames = Vec::new();
    while let Some(f) = b.transmit_with(now, |f| f.to_vec()) {
        frames.push(f);
    }
    let data_with_sack: Vec<_> = frames
        .iter()
        .filter_map(|f| tcp_payload_and_sacks(f))
        .filter(|&(len, sacks)| len > 0 && sacks > 0)
        .collect();
    assert!(
        !data_with_sack.is_empty(),
        "B sent no data segment carrying SACK blocks: {:?}",
        frames
            .iter()
            .map(|f| tcp_payload_and_sacks(f))
            .collect::<Vec<_>>()
    );
    for f in &frames {
        assert!(f.len() <= 1514, "a {}-byte frame", f.len());
    }
}
