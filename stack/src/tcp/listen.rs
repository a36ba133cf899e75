//! Listening sockets: the SYN queue (request state kept until the
//! handshake completes), the accept queue, and SYN cookies for when the
//! SYN queue is full, with Linux's backlog semantics:
//!
//! - a SYN is dropped while the accept queue holds more than `backlog`
//!   connections (`sk_acceptq_is_full`: so `backlog + 1` can queue, and
//!   backlog 0 still queues one);
//! - the SYN queue holds at most `backlog` requests; past that, with
//!   `tcp_syncookies` on, the SYN-ACK carries a cookie and nothing is
//!   kept;
//! - an ACK completing a handshake while the accept queue is full is
//!   dropped (`tcp_abort_on_overflow` = 0) and the SYN-ACK retransmitted
//!   later, so the peer's retransmitted ACK may still get in.
//!
//! The cookie is Linux's (`secure_tcp_syn_cookie`): a keyed hash of the
//! 4-tuple, the peer's ISN, a minute counter in the top 8 bits and the
//! index of the peer's MSS in a 4-entry table. With timestamps, the low 6
//! bits of our TSval carry the peer's window scale and SACK-permitted,
//! so they survive in the ACK's TSecr (`cookie_init_timestamp`).

use std::collections::{HashMap, VecDeque};

use super::conn::{Negotiated, Seg, wscale_for};
use super::layer::SocketId;
use super::siphash::{SipBuild, SipHasher13, SipKey};
use super::{ConnKey, IpAddr, SockAddr, TcpConfig, TcpContext, TcpCounter, emit};
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::tcp::{TcpBuilder, TcpFlags, TcpOptionSet, Timestamps};
use core::hash::Hasher;

/// A half-open connection (Linux's request sock).
#[derive(Clone, Debug)]
pub(crate) struct ReqSock {
    pub local: SockAddr,
    pub remote: SockAddr,
    pub iss: SeqNum,
    pub irs: SeqNum,
    pub neg: Negotiated,
    pub advmss: u16,
    pub window: u16,
    pub ts_off: u32,
    pub pmtu: u16,
    pub retries: u32,
    pub resend_at: Instant,
}

pub(crate) struct Listener {
    pub backlog: u32,
    pub syn_queue: HashMap<ConnKey, ReqSock, SipBuild>,
    pub accept_queue: VecDeque<SocketId>,
    next_timer: Option<Instant>,
}

impl Listener {
    pub fn new(backlog: u32, key: SipKey) -> Listener {
        Listener {
            backlog,
            syn_queue: HashMap::with_hasher(SipBuild(key)),
            accept_queue: VecDeque::new(),
            next_timer: None,
        }
    }

    /// `sk_acceptq_is_full`.
    pub fn accept_full(&self) -> bool {
        self.accept_queue.len() as u32 > self.backlog
    }
    /// `inet_csk_reqsk_queue_is_full`.
    pub fn syn_full(&self) -> bool {
        self.syn_queue.len() as u32 >= self.backlog
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.next_timer
    }

    pub fn add_req(&mut self, key: ConnKey, r: ReqSock) {
        let at = r.resend_at;
        self.syn_queue.insert(key, r);
        self.next_timer = Some(self.next_timer.map_or(at, |t| t.min(at)));
    }

    /// SYN-ACK retransmissions (1 s, doubling, `tcp_synack_retries`).
    pub fn on_timer<C: TcpContext>(&mut self, ctx: &mut C, cfg: &TcpConfig, now: Instant) {
        self.next_timer = None;
        let mut next: Option<Instant> = None;
        self.syn_queue.retain(|_, r| {
            if r.resend_at <= now {
                if r.retries >= u32::from(cfg.synack_retries) {
                    return false;
                }
                r.retries += 1;
                ctx.count(TcpCounter::RetransSegs, 1);
                send_synack(ctx, r, now, None);
                r.resend_at = now + Duration::from_secs(1 << r.retries.min(6));
            }
            next = Some(next.map_or(r.resend_at, |t| t.min(r.resend_at)));
            true
        });
        self.next_timer = next;
    }
}

fn ts_val(now: Instant, off: u32) -> u32 {
    ((now.as_nanos() / 1_000_000) as u32).wrapping_add(off)
}

/// Sends the SYN-ACK for a request; with `cookie_ts`, the TSval to use.
pub(crate) fn send_synack<C: TcpContext>(
    ctx: &mut C,
    r: &ReqSock,
    now: Instant,
    cookie_ts: Option<u32>,
) -> bool {
    let mut o = TcpOptionSet {
        mss: Some(r.advmss),
        ..TcpOptionSet::default()
    };
    if r.neg.snd_wscale.is_some() {
        o.window_scale = Some(r.neg.rcv_wscale);
    }
    o.sack_permitted = r.neg.sack;
    if let Some(ecr) = r.neg.ts_recent {
        o.timestamps = Some(Timestamps {
            val: cookie_ts.unwrap_or_else(|| ts_val(now, r.ts_off)),
            ecr,
        });
    }
    let b = TcpBuilder {
        src_port: r.local.port,
        dst_port: r.remote.port,
        seq: r.iss,
        ack: r.irs + 1,
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window: r.window,
        urgent_ptr: 0,
        options: o,
    };
    emit(ctx, &r.local, &r.remote, &b, &[], &[], 0, 0)
}

/// What the listener offers a SYN, from the peer's options and its own
/// settings.
#[allow(clippy::too_many_arguments)]
pub(crate) fn request_from_syn(
    cfg: &TcpConfig,
    key: &ConnKey,
    seg: &Seg,
    iss: SeqNum,
    ts_off: u32,
    pmtu: u16,
    rcvbuf: usize,
    rcvbuf_locked: bool,
    user_mss: u16,
    now: Instant,
) -> ReqSock {
    let o = &seg.opts;
    let ovh = super::mss_overhead(key.local.ip);
    let mut advmss = pmtu.saturating_sub(ovh).max(88);
    if user_mss != 0 {
        advmss = advmss.min(user_mss);
    }
    let wspace = if rcvbuf_locked {
        rcvbuf
    } else {
        cfg.rmem[2].max(cfg.rmem_max)
    };
    let neg = Negotiated {
        peer_mss: o.mss,
        snd_wscale: o.window_scale.filter(|_| cfg.window_scaling),
        rcv_wscale: if cfg.window_scaling && o.window_scale.is_some() {
            wscale_for(wspace)
        } else {
            0
        },
        sack: cfg.sack && o.sack_permitted,
        ts_recent: o.timestamps.filter(|_| cfg.timestamps).map(|t| t.val),
    };
    let free = rcvbuf.min(65535) as u32;
    let m = u32::from(advmss);
    let window = if free > m { free / m * m } else { free } as u16;
    ReqSock {
        local: key.local,
        remote: key.remote,
        iss,
        irs: seg.seq,
        neg,
        advmss,
        window,
        ts_off,
        pmtu,
        retries: 0,
        resend_at: now + Duration::from_secs(1),
    }
}

// ---- SYN cookies ----

const COOKIEBITS: u32 = 24;
const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// Linux's `msstab` (IPv4) and `msstab` of syncookies.c for IPv6.
const MSSTAB_V4: [u16; 4] = [536, 1300, 1440, 1460];
const MSSTAB_V6: [u16; 4] = [1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60];
const TS_OPT_MASK: u32 = 0x3f;
const TS_WSCALE_NONE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;

fn msstab(ip: IpAddr) -> &'static [u16; 4] {
    if ip.is_v4() { &MSSTAB_V4 } else { &MSSTAB_V6 }
}

fn cookie_hash(key: SipKey, k: &ConnKey, count: u32) -> u32 {
    let mut h = SipHasher13::new(key);
    h.write(k.local.ip.bytes());
    h.write(k.remote.ip.bytes());
    h.write(&k.local.port.to_be_bytes());
    h.write(&k.remote.port.to_be_bytes());
    h.write(&count.to_le_bytes());
    h.finish() as u32
}

fn minutes(now: Instant) -> u32 {
    (now.as_nanos() / 60_000_000_000) as u32
}

/// The cookie ISN for a SYN with initial sequence `peer_isn` and MSS
/// `peer_mss`; returns (ISN, the MSS the cookie encodes).
pub(crate) fn make_cookie(
    keys: &[SipKey; 2],
    k: &ConnKey,
    peer_isn: SeqNum,
    peer_mss: u16,
    now: Instant,
) -> (SeqNum, u16) {
    let tab = msstab(k.local.ip);
    let idx = tab.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
    let count = minutes(now);
    let c = cookie_hash(keys[0], k, 0)
        .wrapping_add(peer_isn.get())
        .wrapping_add(count << COOKIEBITS)
        .wrapping_add(cookie_hash(keys[1], k, count).wrapping_add(idx as u32) & COOKIEMASK);
    (SeqNum::new(c), tab[idx])
}

/// Checks the cookie an ACK returns (its ACK number - 1); the MSS it
/// encodes if valid (at most two minutes old).
pub(crate) fn check_cookie(
    keys: &[SipKey; 2],
    k: &ConnKey,
    seg: &Seg,
    now: Instant,
) -> Option<u16> {
    let cookie = (seg.ack - 1).get();
    let peer_isn = (seg.seq - 1).get();
    let count = minutes(now);
    let c = cookie.wrapping_sub(cookie_hash(keys[0], k, 0).wrapping_add(peer_isn));
    let diff = count.wrapping_sub(c >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
    if diff >= 2 {
        return None;
    }
    let idx = c.wrapping_sub(cookie_hash(keys[1], k, count.wrapping_sub(diff))) & COOKIEMASK;
    msstab(k.local.ip).get(idx as usize).copied()
}

/// The TSval of a cookie SYN-ACK: the clock with its low bits replaced
/// by the options (never ahead of the clock).
pub(crate) fn cookie_ts(now: Instant, ts_off: u32, neg: &Negotiated) -> u32 {
    let clock = ts_val(now, ts_off);
    let mut opts = match neg.snd_wscale {
        Some(w) => u32::from(w) & 0xf,
        None => TS_WSCALE_NONE,
    };
    if neg.sack {
        opts |= TS_SACK;
    }
    let mut ts = (clock & !TS_OPT_MASK) | opts;
    if (ts.wrapping_sub(clock) as i32) > 0 {
        ts = ts.wrapping_sub(TS_OPT_MASK + 1);
    }
    ts
}

/// The options a cookie ACK brings back: from its TSecr, or none.
pub(crate) fn cookie_options(
    cfg: &TcpConfig,
    seg: &Seg,
    mss: u16,
    rcvbuf: usize,
    rcvbuf_locked: bool,
) -> Negotiated {
    let wspace = if rcvbuf_locked {
        rcvbuf
    } else {
        cfg.rmem[2].max(cfg.rmem_max)
    };
    match seg.opts.timestamps {
        Some(ts) if cfg.timestamps => {
            let w = ts.ecr & 0xf;
            let snd_wscale = (w != TS_WSCALE_NONE).then_some(w as u8);
            Negotiated {
                peer_mss: Some(mss),
                snd_wscale,
                rcv_wscale: if snd_wscale.is_some() {
                    wscale_for(wspace)
                } else {
                    0
                },
                sack: ts.ecr & TS_SACK != 0 && cfg.sack,
                ts_recent: Some(ts.val),
            }
        }
        _ => Negotiated {
            peer_mss: Some(mss),
            ..Negotiated::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::TcpFlags;

    fn key() -> ConnKey {
        ConnKey {
            local: SockAddr::v4([192, 0, 2, 1], 80),
            remote: SockAddr::v4([192, 0, 2, 2], 40000),
        }
    }

    #[test]
    fn cookie_round_trip_and_expiry() {
        let keys = [SipKey(1, 2), SipKey(3, 4)];
        let k = key();
        let t0 = Instant::from_millis(3_600_000);
        let peer_isn = SeqNum::new(0xdead_beef);
        let (isn, mss) = make_cookie(&keys, &k, peer_isn, 1460, t0);
        assert_eq!(mss, 1460);
        let (_, m2) = make_cookie(&keys, &k, peer_isn, 1400, t0);
        assert_eq!(m2, 1300);
        let ack = |isn: SeqNum| Seg {
            seq: peer_isn + 1,
            ack: isn + 1,
            flags: TcpFlags::ACK,
            window: 0,
            payload: &[],
            opts: TcpOptionSet::default(),
            urgent: 0,
        };
        assert_eq!(check_cookie(&keys, &k, &ack(isn), t0), Some(1460));
        assert_eq!(
            check_cookie(&keys, &k, &ack(isn), t0 + Duration::from_secs(90)),
            Some(1460)
        );
        assert_eq!(
            check_cookie(&keys, &k, &ack(isn), t0 + Duration::from_secs(180)),
            None
        );
        assert_eq!(check_cookie(&keys, &k, &ack(isn + 1), t0), None);
        let mut other = k;
        other.remote.port += 1;
        assert_eq!(check_cookie(&keys, &other, &ack(isn), t0), None);
    }

    #[test]
    fn cookie_timestamp_carries_options() {
        let neg = Negotiated {
            snd_wscale: Some(7),
            sack: true,
            ts_recent: Some(5),
            ..Negotiated::default()
        };
        let now = Instant::from_millis(1_000_123);
        let ts = cookie_ts(now, 77, &neg);
        assert!((ts_val(now, 77).wrapping_sub(ts) as i32) >= 0);
        let seg = Seg {
            seq: SeqNum::new(1),
            ack: SeqNum::new(1),
            flags: TcpFlags::ACK,
            window: 0,
            payload: &[],
            opts: TcpOptionSet {
                timestamps: Some(Timestamps { val: 9, ecr: ts }),
                ..TcpOptionSet::default()
            },
            urgent: 0,
        };
        let n = cookie_options(&TcpConfig::default(), &seg, 1460, 0, false);
        assert_eq!(n.snd_wscale, Some(7));
        assert!(n.sack);
        assert_eq!(n.rcv_wscale, 7);
        assert_eq!(n.ts_recent, Some(9));
    }
}
