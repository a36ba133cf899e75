//! One connection's state (the TCB) and its processing: the RFC 9293
//! state machine from SYN_SENT / SYN_RECV to CLOSE, with Linux's choices
//! where the RFCs leave room (the sequence test of `tcp_sequence`, RFC
//! 5961 challenge ACKs, delayed ACKs, Minshall's Nagle, the probe timer,
//! keepalive, receive-buffer autotuning).
//!
//! The connection never looks anything up: the layer finds it, hands it
//! the parsed segment, a clock reading and the [`Env`] (settings and the
//! stack-wide challenge-ACK budget), then looks at its state afterwards
//! (closed? entered TIME_WAIT?) and re-arms its timer.

use super::assembler::Assembler;
use super::cc::Congestion;
use super::layer::{SocketId, TcpInfo};
use super::ring::Ring;
use super::rtt::{self, RttEstimator, retransmit_budget};
use super::scoreboard::Scoreboard;
use super::urgent::Urgent;
use super::{
    Errno, IpAddr, SockAddr, SockOpts, TcpConfig, TcpContext, TcpCounter, TcpEvent, TcpState,
    Transmit, emit, mss_overhead,
};
use crate::ip::IpProto;
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::checksum::{Checksum, pseudo_header};
use crate::wire::tcp::{
    MAX_WINDOW_SCALE, SackBlock, SackBlocks, TcpBuilder, TcpFlags, TcpOptionSet, Timestamps,
};

/// A parsed incoming segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seg<'a> {
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    pub window: u16,
    pub payload: &'a [u8],
    pub opts: TcpOptionSet,
    /// The urgent pointer (meaningful with URG).
    pub urgent: u16,
}

impl Seg<'_> {
    /// SEG.LEN: data plus SYN and FIN.
    pub fn len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

/// The stack-wide budget of challenge ACKs (`tcp_challenge_ack_limit`
/// per second).
#[derive(Clone, Debug, Default)]
pub(crate) struct ChallengeLimit {
    second: u64,
    count: u32,
}

impl ChallengeLimit {
    pub fn allow(&mut self, now: Instant, limit: u32) -> bool {
        let s = now.as_nanos() / 1_000_000_000;
        if s != self.second {
            self.second = s;
            self.count = 0;
        }
        self.count += 1;
        self.count <= limit
    }
}

pub(crate) struct Env<'a> {
    pub cfg: &'a TcpConfig,
    pub chal: &'a mut ChallengeLimit,
    /// Inside a receive burst (`Stack::receive_burst`): the every-second-
    /// segment ACK waits for the burst's end, as after GRO.
    pub burst: bool,
}

/// In a receive burst, unacknowledged bytes past which the ACK goes at
/// once anyway: Linux's largest GRO packet.
const BURST_ACK_MAX: u32 = 65536;

/// Most full segments built as one run (about a 64 KiB GSO packet).
const RUN_MAX: u32 = 44;

/// Added to the loss probe's two RTTs: the peer's longest delayed ACK when
/// one segment is out (RFC 8985's WCDelAckT, Linux's TCP_RTO_MIN), else
/// Linux's TCP_TIMEOUT_MIN.
const TLP_DELACK: Duration = Duration::from_millis(200);
const TLP_MIN: Duration = Duration::from_millis(2);

/// Linux's `icsk_ca_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CaState {
    Open = 0,
    Disorder = 1,
    Recovery = 3,
    Loss = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RtxKind {
    Retransmit,
    Probe,
}

/// Options agreed in the handshake.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Negotiated {
    pub peer_mss: Option<u16>,
    /// The peer's shift (applies to the windows it sends), if both sides
    /// offered window scaling.
    pub snd_wscale: Option<u8>,
    pub rcv_wscale: u8,
    pub sack: bool,
    /// The peer's TSval from its SYN, if both sides offered timestamps.
    pub ts_recent: Option<u32>,
}

/// Window shift for a receive space (Linux's `tcp_select_initial_window`).
pub(crate) fn wscale_for(space: usize) -> u8 {
    let space = space.max(1) as u64;
    let l = space.ilog2() as i32 - 15;
    l.clamp(0, i32::from(MAX_WINDOW_SCALE)) as u8
}

pub(crate) struct Conn {
    pub id: SocketId,
    pub state: TcpState,
    pub local: SockAddr,
    pub remote: SockAddr,
    pub opts: SockOpts,
    /// Urgent data, both directions (MSG_OOB).
    pub urg: Urgent,
    /// The listener whose accept queue holds this connection.
    pub parent: Option<SocketId>,

    // What the socket reports.
    pub err: Option<Errno>,
    pub soft_err: Option<Errno>,
    pub rcv_shutdown: bool,
    pub snd_shutdown: bool,
    /// SOCK_DONE: the peer's FIN arrived.
    pub done: bool,
    /// A writer found no room (wake it with [`TcpEvent::Writable`]).
    pub nospace: bool,
    pub orphan: bool,

    // Send sequence space.
    pub iss: SeqNum,
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: SeqNum,
    snd_wl2: SeqNum,
    snd_wscale: u8,
    /// Sequence number of the send ring's first byte.
    snd_buf_seq: SeqNum,
    pub snd: Ring,
    /// A FIN follows the data (shutdown(WR) or close).
    fin_queued: bool,
    /// Minshall's Nagle: end of the last small segment sent.
    snd_sml: SeqNum,
    /// Effective send MSS (payload bytes per segment, options excluded).
    pub mss: u32,
    pub advmss: u16,
    pmtu: u16,
    peer_mss: u16,

    // Receive sequence space.
    pub irs: SeqNum,
    pub rcv_nxt: SeqNum,
    /// Right edge of the window last advertised.
    rcv_adv: SeqNum,
    /// RCV.NXT when the last ACK was sent (Linux's `rcv_wup`).
    rcv_wup: SeqNum,
    rcv_wscale: u8,
    pub rcv: Ring,
    asm: Assembler,
    ofo_fin: Option<SeqNum>,
    rcv_mss: u32,
    dsack: Option<SackBlock>,

    // Options.
    ts_ok: bool,
    ts_recent: u32,
    ts_recent_stamp: Instant,
    ts_off: u32,
    sack_ok: bool,
    wscale_ok: bool,
    offered: TcpOptionSet,

    // RTT, congestion, recovery.
    pub rtt: RttEstimator,
    rtt_seq: Option<(SeqNum, Instant)>,
    pub cc: Congestion,
    pub ca: CaState,
    recover: SeqNum,
    high_rxt: SeqNum,
    head_lost_to: SeqNum,
    sb: Scoreboard,
    dupacks: u32,
    reno_sacked: u32,
    cwnd_limited: bool,
    last_send: Instant,
    /// Retransmissions of the current pass, to notice a lost one (later
    /// data SACKed more than an RTT after it went out; Linux's
    /// TCPLostRetransmit).
    rxt_log: std::collections::VecDeque<(SeqNum, SeqNum, Instant)>,

    // Timers.
    rtx_at: Option<Instant>,
    rtx_kind: RtxKind,
    rto_armed_at: Instant,
    /// Tail loss probe (RFC 8985 7): when the probe goes if no ACK comes
    /// first, and, while one is out, `snd_nxt` when it was sent, where
    /// it started, and whether it retransmitted (rather than sent new
    /// data).
    tlp_at: Option<Instant>,
    tlp_high: Option<SeqNum>,
    tlp_seq: SeqNum,
    tlp_retrans: bool,
    retrans_stamp: Option<Instant>,
    pub retransmits: u32,
    pub probes: u32,
    delack_at: Option<Instant>,
    ack_pending: bool,
    ack_now: bool,
    /// The ACK owed waits for the end of the receive burst.
    pub(crate) burst_ack: bool,
    /// On the layer's list of connections to ACK at the burst's end.
    pub(crate) burst_listed: bool,
    quick: u32,
    seen_data: bool,
    last_data_rcv: Instant,
    keepalive_at: Option<Instant>,
    pub last_rcv: Instant,
    fw2_at: Option<Instant>,
    cork_at: Option<Instant>,
    cork_expired: bool,
    last_oow_ack: Option<Instant>,
    syn_sent_at: Instant,

    // Receive autotuning (Linux's `rcvq_space`).
    rcvq_space: u32,
    rcvq_time: Instant,
    rcvq_seq: SeqNum,
    /// Least receive RTT seen through timestamps, ms (`u32::MAX`: none
    /// yet); kept in ms so that each segment costs a compare.
    rcv_rtt_ms: u32,

    // Statistics for TCP_INFO.
    pub total_retrans: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_in: u32,
    pub segs_out: u32,
    pub last_data_sent: Instant,
}

impl Conn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: SocketId,
        local: SockAddr,
        remote: SockAddr,
        opts: SockOpts,
        cfg: &TcpConfig,
        iss: SeqNum,
        ts_off: u32,
        pmtu: u16,
        now: Instant,
    ) -> Conn {
        let ovh = mss_overhead(local.ip);
        let mut advmss = pmtu.saturating_sub(ovh).max(88);
        if opts.user_mss != 0 {
            advmss = advmss.min(opts.user_mss);
        }
        let default_peer = if local.ip.is_v4() { 536 } else { 1220 };
        let rcvbuf = opts.rcvbuf.max(cfg.rmem[0]);
        let sndbuf = opts.sndbuf.max(cfg.wmem[0]);
        let wspace = if opts.rcvbuf_locked {
            rcvbuf
        } else {
            cfg.rmem[2].max(cfg.rmem_max)
        };
        let cc = Congestion::new(opts.cc, u32::from(advmss));
        Conn {
            id,
            state: TcpState::Close,
            local,
            remote,
            opts,
            urg: Urgent::default(),
            parent: None,
            err: None,
            soft_err: None,
            rcv_shutdown: false,
            snd_shutdown: false,
            done: false,
            nospace: false,
            orphan: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNum::new(0),
            snd_wl2: iss,
            snd_wscale: 0,
            snd_buf_seq: iss + 1,
            snd: Ring::with_capacity(sndbuf),
            fin_queued: false,
            snd_sml: iss,
            mss: u32::from(advmss),
            advmss,
            pmtu,
            peer_mss: default_peer,
            irs: SeqNum::new(0),
            rcv_nxt: SeqNum::new(0),
            rcv_adv: SeqNum::new(0),
            rcv_wup: SeqNum::new(0),
            rcv_wscale: if cfg.window_scaling {
                wscale_for(wspace)
            } else {
                0
            },
            rcv: Ring::with_capacity(rcvbuf),
            asm: Assembler::new(),
            ofo_fin: None,
            rcv_mss: u32::from(advmss).min(536),
            dsack: None,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_stamp: now,
            ts_off,
            sack_ok: false,
            wscale_ok: false,
            offered: TcpOptionSet::default(),
            rtt: RttEstimator::new(cfg.rto_min),
            rtt_seq: None,
            cc,
            ca: CaState::Open,
            recover: iss,
            high_rxt: iss,
            head_lost_to: iss,
            sb: Scoreboard::new(),
            dupacks: 0,
            reno_sacked: 0,
            cwnd_limited: false,
            last_send: now,
            rxt_log: std::collections::VecDeque::new(),
            rtx_at: None,
            rtx_kind: RtxKind::Retransmit,
            tlp_at: None,
            tlp_high: None,
            tlp_seq: SeqNum::new(0),
            tlp_retrans: false,
            rto_armed_at: now,
            retrans_stamp: None,
            retransmits: 0,
            probes: 0,
            delack_at: None,
            ack_pending: false,
            ack_now: false,
            burst_ack: false,
            burst_listed: false,
            quick: 0,
            seen_data: false,
            last_data_rcv: now,
            keepalive_at: None,
            last_rcv: now,
            fw2_at: None,
            cork_at: None,
            cork_expired: false,
            last_oow_ack: None,
            syn_sent_at: now,
            rcvq_space: 10 * u32::from(advmss),
            rcvq_time: now,
            rcvq_seq: SeqNum::new(0),
            rcv_rtt_ms: u32::MAX,
            total_retrans: 0,
            bytes_acked: 0,
            bytes_received: 0,
            segs_in: 0,
            segs_out: 0,
            last_data_sent: now,
        }
    }

    // ---- small helpers ----

    fn ts_val(&self, now: Instant) -> u32 {
        ((now.as_nanos() / 1_000_000) as u32).wrapping_add(self.ts_off)
    }

    /// Sequence number just past the queued data.
    fn data_end(&self) -> SeqNum {
        self.snd_buf_seq + self.snd.len() as u32
    }

    fn fin_sent(&self) -> bool {
        self.fin_queued && self.snd_nxt == self.data_end() + 1
    }

    pub fn unsent(&self) -> u32 {
        let e = self.data_end();
        if self.snd_nxt.before(e) {
            (e - self.snd_nxt) as u32
        } else {
            0
        }
    }

    /// Bytes sent and not acknowledged (TCP_INFO unacked, in bytes).
    pub fn in_flight(&self) -> u32 {
        (self.snd_nxt - self.snd_una).max(0) as u32
    }

    pub fn set_state<C: TcpContext>(&mut self, ctx: &mut C, to: TcpState) {
        let from = self.state;
        if from == to {
            return;
        }
        if to == TcpState::Close && matches!(from, TcpState::Established | TcpState::CloseWait) {
            ctx.count(TcpCounter::EstabResets, 1);
        }
        self.state = to;
        ctx.event(TcpEvent::State {
            id: self.id,
            from,
            to,
        });
    }

    fn set_err<C: TcpContext>(&mut self, ctx: &mut C, e: Errno) {
        self.err = Some(e);
        ctx.event(TcpEvent::Error(self.id, e));
    }

    /// Linux's `tcp_done`: to CLOSE, timers off, both directions shut.
    pub fn done_close<C: TcpContext>(&mut self, ctx: &mut C) {
        if matches!(self.state, TcpState::SynSent | TcpState::SynRecv) {
            ctx.count(TcpCounter::AttemptFails, 1);
        }
        self.set_state(ctx, TcpState::Close);
        self.clear_timers();
        self.rcv_shutdown = true;
        self.snd_shutdown = true;
        self.fin_queued = false;
        let n = self.snd.len();
        self.snd.consume(n);
        self.snd.release();
        if self.orphan {
            self.rcv.release();
        }
        ctx.event(TcpEvent::Readable(self.id));
        ctx.event(TcpEvent::Writable(self.id));
    }

    fn clear_timers(&mut self) {
        self.rtx_at = None;
        self.tlp_at = None;
        self.delack_at = None;
        self.burst_ack = false;
        self.keepalive_at = None;
        self.fw2_at = None;
        self.cork_at = None;
        self.ack_pending = false;
        self.ack_now = false;
    }

    /// Linux's `tcp_reset`: the peer reset us.
    fn reset<C: TcpContext>(&mut self, ctx: &mut C) {
        let e = match self.state {
            TcpState::SynSent => Errno::ECONNREFUSED,
            TcpState::CloseWait => Errno::EPIPE,
            TcpState::Close => return,
            _ => Errno::ECONNRESET,
        };
        self.set_err(ctx, e);
        self.done_close(ctx);
    }

    /// Earliest timer.
    #[inline]
    pub fn deadline(&self) -> Option<Instant> {
        // Asked after every segment: a chain of compares, no array.
        fn min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
            match (a, b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, None) => x,
                (None, y) => y,
            }
        }
        min(
            min(min(self.rtx_at, self.delack_at), self.keepalive_at),
            min(min(self.fw2_at, self.cork_at), self.tlp_at),
        )
    }

    // ---- handshake ----

    fn syn_options(
        &self,
        cfg: &TcpConfig,
        now: Instant,
        reply_to: Option<&Negotiated>,
    ) -> TcpOptionSet {
        let mut o = TcpOptionSet {
            mss: Some(self.advmss),
            ..TcpOptionSet::default()
        };
        match reply_to {
            None => {
                if cfg.window_scaling {
                    o.window_scale = Some(self.rcv_wscale);
                }
                o.sack_permitted = cfg.sack;
                if cfg.timestamps {
                    o.timestamps = Some(Timestamps {
                        val: self.ts_val(now),
                        ecr: 0,
                    });
                }
            }
            Some(_) => {
                if self.wscale_ok {
                    o.window_scale = Some(self.rcv_wscale);
                }
                o.sack_permitted = self.sack_ok;
                if self.ts_ok {
                    o.timestamps = Some(Timestamps {
                        val: self.ts_val(now),
                        ecr: self.ts_recent,
                    });
                }
            }
        }
        o
    }

    /// The window in a SYN or SYN-ACK (never scaled): the buffer rounded
    /// down to whole segments, at most 65535.
    fn syn_window(&self) -> u16 {
        let free = self.rcv.free().min(65535) as u32;
        let m = u32::from(self.advmss).max(1);
        let w = if free > m { free / m * m } else { free };
        w as u16
    }

    /// Active open: send the SYN.
    pub fn connect<C: TcpContext>(&mut self, ctx: &mut C, cfg: &TcpConfig, now: Instant) {
        self.set_state(ctx, TcpState::SynSent);
        ctx.count(TcpCounter::ActiveOpens, 1);
        self.syn_sent_at = now;
        self.offered = self.syn_options(cfg, now, None);
        self.snd_nxt = self.iss + 1;
        self.send_syn(ctx, cfg, now);
        self.retrans_stamp = Some(now);
        self.arm_rtx(now, RtxKind::Retransmit);
    }

    fn send_syn<C: TcpContext>(&mut self, ctx: &mut C, cfg: &TcpConfig, now: Instant) {
        let synack = self.state == TcpState::SynRecv;
        let options = if synack {
            let n = Negotiated::default();
            self.syn_options(cfg, now, Some(&n))
        } else {
            let mut o = self.offered;
            if let Some(t) = &mut o.timestamps {
                t.val = self.ts_val(now);
            }
            o
        };
        let b = TcpBuilder {
            src_port: self.local.port,
            dst_port: self.remote.port,
            seq: self.iss,
            ack: if synack { self.rcv_nxt } else { SeqNum::new(0) },
            flags: if synack {
                TcpFlags::SYN | TcpFlags::ACK
            } else {
                TcpFlags::SYN
            },
            window: self.syn_window(),
            urgent_ptr: 0,
            options,
        };
        if synack {
            self.rcv_adv = self.rcv_nxt + u32::from(b.window);
            self.rcv_wup = self.rcv_nxt;
            self.ack_pending = false;
            self.ack_now = false;
        }
        if emit(
            ctx,
            &self.local,
            &self.remote,
            &b,
            &[],
            &[],
            self.opts.ttl,
            self.opts.tos,
        ) {
            self.segs_out += 1;
        }
        self.last_send = now;
    }

    /// Takes the handshake's options (from the peer's SYN or SYN-ACK).
    pub fn negotiate(&mut self, n: &Negotiated, now: Instant) {
        if let Some(m) = n.peer_mss {
            self.peer_mss = m.max(88);
        }
        match n.snd_wscale {
            Some(s) => {
                self.wscale_ok = true;
                self.snd_wscale = s.min(MAX_WINDOW_SCALE);
                self.rcv_wscale = n.rcv_wscale;
            }
            None => {
                self.wscale_ok = false;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        self.sack_ok = n.sack;
        if let Some(ts) = n.ts_recent {
            self.ts_ok = true;
            self.ts_recent = ts;
            self.ts_recent_stamp = now;
        }
        self.update_mss();
    }

    fn update_mss(&mut self) {
        let ovh = mss_overhead(self.local.ip);
        let mut m = u32::from(self.peer_mss).min(u32::from(self.pmtu.saturating_sub(ovh)));
        if self.opts.user_mss != 0 {
            m = m.min(u32::from(self.opts.user_mss));
        }
        if self.ts_ok {
            m = m.saturating_sub(12);
        }
        self.mss = m.max(64);
        self.rcv_mss = self.rcv_mss.max(536).min(u32::from(self.advmss));
        self.cc.set_mss(self.mss);
    }

    /// A new path MTU (ICMP fragmentation needed / packet too big).
    pub fn set_pmtu<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, mtu: u16, now: Instant) {
        let min = if self.local.ip.is_v4() { 68 } else { 1280 };
        let mtu = mtu.max(min);
        if mtu >= self.pmtu {
            return;
        }
        self.pmtu = mtu;
        let old = self.mss;
        self.update_mss();
        if self.mss < old && self.snd_nxt != self.snd_una {
            // Resend what was in flight at the new size (Linux's
            // tcp_simple_retransmit).
            self.high_rxt = self.snd_una;
            self.ca = CaState::Loss;
            self.recover = self.snd_nxt;
            self.sb.clear();
            self.output(ctx, env, now);
        }
    }

    /// Passive open: a connection created in SYN_RECV from a request the
    /// listener kept (or a SYN cookie); the ACK that completes the
    /// handshake is fed to [`Conn::input`] next.
    pub fn accept_init(&mut self, irs: SeqNum, n: &Negotiated, now: Instant) {
        self.state = TcpState::SynRecv;
        self.irs = irs;
        self.rcv_nxt = irs + 1;
        self.rcv_wup = self.rcv_nxt;
        self.rcv_adv = self.rcv_nxt + u32::from(self.syn_window());
        self.snd_nxt = self.iss + 1;
        self.negotiate(n, now);
        self.syn_sent_at = now;
    }

    fn on_established<C: TcpContext>(&mut self, ctx: &mut C, cfg: &TcpConfig, now: Instant) {
        self.set_state(ctx, TcpState::Established);
        self.rcvq_time = now;
        self.rcvq_seq = self.rcv_nxt;
        self.retransmits = 0;
        self.retrans_stamp = None;
        self.rtx_at = None;
        self.rtt.reset_backoff();
        self.last_rcv = now;
        self.last_data_rcv = now;
        if self.opts.keepalive {
            self.keepalive_at = Some(now + self.keepidle());
        }
        let _ = cfg;
        ctx.event(TcpEvent::Writable(self.id));
    }

    fn keepidle(&self) -> Duration {
        Duration::from_secs(u64::from(self.opts.keepidle))
    }

    // ---- input ----

    /// Processes a segment for this connection.
    /// A segment for this connection. True if header prediction took it
    /// (the state is still ESTABLISHED).
    pub fn input<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        env: &mut Env,
        seg: &Seg,
        now: Instant,
    ) -> bool {
        self.segs_in += 1;
        if self.predicted(ctx, env, seg, now) {
            self.output(ctx, env, now);
            return true;
        }
        match self.state {
            TcpState::SynSent => self.input_syn_sent(ctx, env, seg, now),
            TcpState::Close | TcpState::Listen | TcpState::TimeWait => {}
            _ => self.input_sync(ctx, env, seg, now),
        }
        self.output(ctx, env, now);
        false
    }

    fn input_syn_sent<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        env: &mut Env,
        seg: &Seg,
        now: Instant,
    ) {
        let f = seg.flags;
        if f.ack() && (seg.ack.before_or_eq(self.iss) || seg.ack.after(self.snd_nxt)) {
            if !f.rst() {
                self.send_rst_for(ctx, seg);
            }
            return;
        }
        if f.rst() {
            if f.ack() {
                self.reset(ctx);
            }
            return;
        }
        if !f.syn() {
            return;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.rcv_wup = self.rcv_nxt;
        let o = &seg.opts;
        let n = Negotiated {
            peer_mss: o.mss,
            snd_wscale: match (self.offered.window_scale, o.window_scale) {
                (Some(_), Some(s)) => Some(s),
                _ => None,
            },
            rcv_wscale: self.rcv_wscale,
            sack: self.offered.sack_permitted && o.sack_permitted,
            ts_recent: match (self.offered.timestamps, o.timestamps) {
                (Some(_), Some(t)) => Some(t.val),
                _ => None,
            },
        };
        self.negotiate(&n, now);
        self.snd_wnd = u32::from(seg.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
        if f.ack() {
            // RTT of the handshake.
            if let Some(ts) = seg.opts.timestamps.filter(|t| self.ts_ok && t.ecr != 0) {
                let ms = self.ts_val(now).wrapping_sub(ts.ecr);
                if ms < 1 << 31 {
                    self.rtt.sample(Duration::from_millis(u64::from(ms)));
                }
            } else if self.retransmits == 0 {
                self.rtt.sample(now - self.syn_sent_at);
            }
            self.snd_una = seg.ack;
            self.rcv_adv = self.rcv_nxt + u32::from(self.syn_window());
            self.on_established(ctx, env.cfg, now);
            self.ack_now = true;
        } else {
            // Simultaneous open (RFC 9293 3.5, figure 8).
            self.set_state(ctx, TcpState::SynRecv);
            self.send_syn(ctx, env.cfg, now);
            self.arm_rtx(now, RtxKind::Retransmit);
        }
    }

    fn input_sync<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, seg: &Seg, now: Instant) {
        let f = seg.flags;
        // PAWS (RFC 7323 5.3).
        if self.ts_ok
            && !f.rst()
            && let Some(ts) = seg.opts.timestamps
            && (ts.val.wrapping_sub(self.ts_recent) as i32) < 0
            && now - self.ts_recent_stamp < Duration::from_secs(24 * 86400)
        {
            ctx.count(TcpCounter::PawsEstab, 1);
            self.dupack(ctx, env, seg, now);
            return;
        }
        // Sequence test, as Linux's tcp_sequence.
        let end = seg.seq + seg.len();
        let wnd = self.rcv_wnd();
        if end.before(self.rcv_wup) || seg.seq.after(self.rcv_nxt + wnd) {
            if !f.rst() {
                if f.syn() {
                    self.syn_challenge(ctx, env, now);
                } else {
                    self.dupack(ctx, env, seg, now);
                }
            }
            return;
        }
        // RST (RFC 5961 3.2).
        if f.rst() {
            let exact = seg.seq == self.rcv_nxt
                || (seg.seq + 1 == self.rcv_nxt
                    && matches!(
                        self.state,
                        TcpState::CloseWait | TcpState::LastAck | TcpState::Closing
                    ));
            if exact {
                self.reset(ctx);
            } else {
                self.challenge_ack(ctx, env, now);
            }
            return;
        }
        // Timestamps: remember the peer's clock (RFC 7323 4.3).
        if self.ts_ok
            && let Some(ts) = seg.opts.timestamps
            && seg.seq.before_or_eq(self.rcv_wup)
            && (ts.val.wrapping_sub(self.ts_recent) as i32) >= 0
        {
            self.ts_recent = ts.val;
            self.ts_recent_stamp = now;
        }
        // SYN (RFC 5961 4), except the SYN-ACK of a simultaneous open.
        let mut syn_ack_pass = false;
        if f.syn() {
            if self.state == TcpState::SynRecv
                && f.ack()
                && seg.seq + 1 == self.rcv_nxt
                && seg.ack == self.snd_nxt
            {
                syn_ack_pass = true;
            } else {
                self.syn_challenge(ctx, env, now);
                return;
            }
        }
        if !f.ack() {
            return;
        }
        if self.state == TcpState::SynRecv {
            if !(seg.ack.after(self.snd_una) && seg.ack.before_or_eq(self.snd_nxt)) {
                self.send_rst_for(ctx, seg);
                return;
            }
            if self.retransmits == 0 && !self.ts_ok {
                self.rtt.sample(now - self.syn_sent_at);
            }
            self.snd_wnd = u32::from(seg.window) << self.snd_wscale;
            self.max_snd_wnd = self.snd_wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.on_established(ctx, env.cfg, now);
        }
        if !self.process_ack(ctx, env, seg, now) {
            return;
        }
        if self.state == TcpState::Close {
            return;
        }
        // Data and FIN.
        if matches!(
            self.state,
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
        ) && (f.urg() || self.urg.rcv.is_some())
        {
            let copied = self.rcv_nxt - self.rcv.len() as u32;
            let urg = f.urg().then_some(seg.urgent);
            let first = seg.seq + u32::from(syn_ack_pass);
            self.urg
                .on_segment(urg, first, seg.payload, copied, self.rcv_nxt);
        }
        if matches!(
            self.state,
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
        ) && (!seg.payload.is_empty() || f.fin())
        {
            self.rcv_data(ctx, env, seg, syn_ack_pass, now);
        } else if f.fin() && seg.seq + seg.payload.len() as u32 + 1 == self.rcv_nxt {
            // A retransmitted FIN (CLOSE_WAIT, CLOSING, LAST_ACK).
            self.ack_now = true;
        }
    }

    /// Header prediction (Linux's fast path in `tcp_rcv_established`):
    /// the next in-order data segment of an established connection with
    /// nothing of ours in flight, that acknowledges nothing new and
    /// leaves the window as it was. Everything `input_sync` would check
    /// and `process_ack` would do for it comes down to the few lines
    /// below; anything else takes the full path. True if handled.
    #[inline]
    fn predicted<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        env: &mut Env,
        seg: &Seg,
        now: Instant,
    ) -> bool {
        let plain = seg.flags.0 & !TcpFlags::PSH.0 == TcpFlags::ACK.0;
        if !(plain
            && self.state == TcpState::Established
            && seg.seq == self.rcv_nxt
            && seg.ack == self.snd_una
            && self.snd_una == self.snd_nxt
            && !seg.payload.is_empty()
            && seg.opts.sack.is_empty()
            && self.ca == CaState::Open
            && self.dupacks == 0
            && self.sb.is_empty()
            && self.rtx_at.is_none()
            && self.asm.is_empty()
            && self.ofo_fin.is_none()
            && u32::from(seg.window) << self.snd_wscale == self.snd_wnd)
        {
            return false;
        }
        if self.ts_ok {
            // PAWS (RFC 7323 5.3) passed, else the full path counts it.
            let Some(ts) = seg.opts.timestamps else {
                return false;
            };
            if (ts.val.wrapping_sub(self.ts_recent) as i32) < 0 {
                return false;
            }
            if seg.seq.before_or_eq(self.rcv_wup) {
                self.ts_recent = ts.val;
                self.ts_recent_stamp = now;
            }
        }
        // process_ack for an ACK of nothing new with nothing in flight:
        // the window (unchanged) is recorded as updated by this segment,
        // and the congestion state stays Open with no flight.
        self.last_rcv = now;
        self.probes = 0;
        if self.snd_wl1.before(seg.seq) {
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
        }
        let cwnd = self.cc.cwnd();
        self.cwnd_limited = self.mss > cwnd || (self.cc.in_slow_start() && cwnd == 0);
        self.rcv_data(ctx, env, seg, false, now);
        true
    }

    /// The window to accept into (Linux's `tcp_receive_window`).
    fn rcv_wnd(&self) -> u32 {
        let w = self.rcv_adv - self.rcv_nxt;
        w.max(0) as u32
    }

    fn dupack<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, seg: &Seg, now: Instant) {
        let has_data = !seg.payload.is_empty() || seg.flags.fin();
        if has_data {
            // A retransmission of data we have: D-SACK it (RFC 2883).
            let end = seg.seq + seg.payload.len() as u32;
            if env.cfg.dsack && self.sack_ok && seg.seq.before(self.rcv_nxt) {
                self.dsack = Some(SackBlock {
                    left: seg.seq,
                    right: end.earliest(self.rcv_nxt),
                });
                ctx.count(TcpCounter::TcpDsackOldSent, 1);
            }
            self.ack_now = true;
            return;
        }
        if self.oow_limited(env, now) {
            return;
        }
        self.ack_now = true;
    }

    /// Linux's `__tcp_oow_rate_limited`: one out-of-window ACK per
    /// `tcp_invalid_ratelimit`.
    fn oow_limited(&mut self, env: &Env, now: Instant) -> bool {
        if let Some(t) = self.last_oow_ack
            && now - t < env.cfg.invalid_ratelimit
        {
            return true;
        }
        self.last_oow_ack = Some(now);
        false
    }

    fn syn_challenge<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        ctx.count(TcpCounter::TcpSynChallenge, 1);
        self.challenge_ack(ctx, env, now);
    }

    /// RFC 5961 challenge ACK, limited per socket and stack-wide.
    fn challenge_ack<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        if self.oow_limited(env, now) {
            ctx.count(TcpCounter::TcpAckSkippedChallenge, 1);
            return;
        }
        if !env.chal.allow(now, env.cfg.challenge_ack_limit) {
            return;
        }
        ctx.count(TcpCounter::TcpChallengeAck, 1);
        self.send_ack(ctx, now);
    }

    /// RST in reply to an unacceptable segment (RFC 9293 3.10.7.3).
    fn send_rst_for<C: TcpContext>(&mut self, ctx: &mut C, seg: &Seg) {
        send_reset(ctx, self.local, self.remote, seg);
    }

    /// Returns false if the segment is to be dropped.
    fn process_ack<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        env: &mut Env,
        seg: &Seg,
        now: Instant,
    ) -> bool {
        let ack = seg.ack;
        if ack.before(self.snd_una) {
            if ack.before(self.snd_una - self.max_snd_wnd) {
                self.challenge_ack(ctx, env, now);
                return false;
            }
            return true;
        }
        if ack.after(self.snd_nxt) {
            // RFC 9293 3.10.7.4: an ACK of something not yet sent gets an
            // ACK, the segment dropped (Linux's tcp_ack: a challenge ACK,
            // under its limits).
            self.challenge_ack(ctx, env, now);
            return false;
        }
        self.last_rcv = now;
        self.probes = 0;
        let acked = (ack - self.snd_una) as u32;
        let prior_flight = self.pipe();
        let prior_wnd = self.snd_wnd;

        // Window update (Linux's tcp_may_update_window).
        let nwin = u32::from(seg.window) << self.snd_wscale;
        if acked > 0
            || self.snd_wl1.before(seg.seq)
            || (self.snd_wl1 == seg.seq && nwin > self.snd_wnd)
        {
            self.snd_wnd = nwin;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(nwin);
        }
        let window_changed = self.snd_wnd != prior_wnd;
        if window_changed && self.snd_wnd > 0 && self.rtx_kind == RtxKind::Probe {
            self.rtx_at = None;
            self.rtt.reset_backoff();
        }

        // SACK.
        let mut newly_sacked = 0;
        let mut dsack_tlp = false;
        if self.sack_ok && !seg.opts.sack.is_empty() {
            let blocks = seg.opts.sack.as_slice();
            for (i, b) in blocks.iter().enumerate() {
                let is_dsack = i == 0
                    && (b.right.before_or_eq(ack)
                        || blocks.get(1).is_some_and(|n| {
                            n.left.before_or_eq(b.left) && b.right.before_or_eq(n.right)
                        }));
                if is_dsack {
                    ctx.count(TcpCounter::TcpDsackRecv, 1);
                    dsack_tlp |= self.tlp_retrans
                        && self
                            .tlp_high
                            .is_some_and(|h| b.left.before(h) && b.right.after(self.tlp_seq));
                    continue;
                }
                if b.right.after(b.left) && (b.right - b.left) < (1 << 30) {
                    newly_sacked += self.sb.add(b.left, b.right, ack, self.snd_nxt);
                }
            }
        }

        if acked > 0 {
            let was_writable = self.writable();
            // Free what the ring held.
            let data_done = ack.earliest(self.data_end());
            if data_done.after(self.snd_buf_seq) {
                let n = (data_done - self.snd_buf_seq) as usize;
                self.snd.consume(n);
                self.snd_buf_seq = data_done;
                self.bytes_acked += n as u64;
            }
            self.snd_una = ack;
            self.sb.trim(ack);
            if self.high_rxt.before(ack) {
                self.high_rxt = ack;
            }
            // RTT: timestamps, else the timed segment (Karn).
            let mut sampled = false;
            if self.ts_ok
                && let Some(ts) = seg.opts.timestamps
                && ts.ecr != 0
            {
                let ms = self.ts_val(now).wrapping_sub(ts.ecr);
                if ms < 1 << 31 {
                    self.rtt.sample(Duration::from_millis(u64::from(ms)));
                    sampled = true;
                }
            }
            if let Some((s, t)) = self.rtt_seq
                && s.before_or_eq(ack)
            {
                if !sampled {
                    self.rtt.sample(now - t);
                }
                self.rtt_seq = None;
            }
            self.rtt.reset_backoff();
            self.retransmits = 0;
            self.retrans_stamp = None;
            self.soft_err = None;
            if (self.nospace || !was_writable) && self.writable() {
                self.nospace = false;
                ctx.event(TcpEvent::Writable(self.id));
            }
        }

        // The end of a loss probe episode (RFC 8985 7.4, Linux's
        // tcp_process_tlp_ack): a retransmitted probe that the peer did
        // not report as a duplicate repaired a loss, which costs the
        // congestion window what fast recovery would have.
        if let Some(h) = self.tlp_high
            && !ack.before(h)
        {
            if !self.tlp_retrans || dsack_tlp {
                self.tlp_high = None;
            } else if ack.after(h) {
                self.cc.on_loss(self.in_flight());
                self.cc.on_recovery_end();
                ctx.count(TcpCounter::TcpLossProbeRecovery, 1);
                self.tlp_high = None;
            } else if acked == 0 && seg.payload.is_empty() && newly_sacked == 0 {
                // A pure duplicate ACK: original and probe both arrived.
                self.tlp_high = None;
            }
        }

        let is_dup = acked == 0
            && seg.payload.is_empty()
            && !seg.flags.syn()
            && !seg.flags.fin()
            && !window_changed
            && self.snd_nxt != self.snd_una;
        self.congestion(ctx, acked, is_dup, newly_sacked, prior_flight, now);

        // Send buffer autotuning (Linux's tcp_sndbuf_expand).
        if acked > 0 && !self.opts.sndbuf_locked {
            let want = (2 * self.cc.cwnd() as usize).min(env.cfg.wmem[2]);
            if want > self.snd.capacity() {
                let cap = want.max(self.snd.capacity() * 2).min(env.cfg.wmem[2]);
                self.snd.grow(cap);
                if self.nospace {
                    self.nospace = false;
                    ctx.event(TcpEvent::Writable(self.id));
                }
            }
        }

        // Retransmission timer (RFC 6298 5.2, 5.3).
        if self.rtx_kind == RtxKind::Retransmit {
            if self.snd_una == self.snd_nxt {
                self.rtx_at = None;
            } else if acked > 0 {
                self.arm_rtx(now, RtxKind::Retransmit);
            }
        }

        // Our FIN acknowledged?
        if self.fin_sent() && self.snd_una == self.snd_nxt {
            match self.state {
                TcpState::FinWait1 => {
                    self.set_state(ctx, TcpState::FinWait2);
                    if self.orphan {
                        self.fw2_at = Some(now + env.cfg.fin_timeout);
                    }
                }
                TcpState::Closing => {
                    self.set_state(ctx, TcpState::TimeWait);
                    return false;
                }
                TcpState::LastAck => {
                    self.done_close(ctx);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    /// Loss detection and the congestion window (RFC 6675 / RFC 6582).
    fn congestion<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        acked: u32,
        is_dup: bool,
        newly_sacked: u32,
        prior_flight: u32,
        now: Instant,
    ) {
        let mss = self.mss;
        let cwnd_limited = prior_flight + mss > self.cc.cwnd()
            || (self.cc.in_slow_start() && 2 * prior_flight >= self.cc.cwnd());
        self.cwnd_limited = cwnd_limited;
        if newly_sacked > 0 && matches!(self.ca, CaState::Recovery | CaState::Loss) {
            self.check_lost_retransmit(ctx, now);
        }
        match self.ca {
            CaState::Open | CaState::Disorder => {
                if acked > 0 {
                    self.dupacks = 0;
                    self.reno_sacked = 0;
                    self.cc.on_ack(acked, now, self.rtt.min_rtt(), cwnd_limited);
                }
                if is_dup || newly_sacked > 0 {
                    self.dupacks += 1;
                    if !self.sack_ok {
                        self.reno_sacked =
                            (self.reno_sacked + mss).min(self.in_flight().saturating_sub(mss));
                    }
                }
                let lost =
                    self.sack_ok && self.sb.lost_boundary(self.snd_una, mss).after(self.snd_una);
                // A loss probe SACKed above a hole: what is still missing
                // below it went out at least two RTTs before it, so it is
                // lost (what RFC 8985's RACK concludes), however few
                // segments were SACKed.
                let tlp_hole = self.tlp_high.is_some()
                    && self.snd_una.before(self.tlp_seq)
                    && self.sb.next_unsacked(self.tlp_seq) != self.tlp_seq;
                if (lost || tlp_hole || self.dupacks >= 3)
                    && self.snd_una.after_or_eq(self.recover)
                    && self.snd_nxt != self.snd_una
                {
                    self.ca = CaState::Recovery;
                    self.tlp_high = None;
                    self.recover = self.snd_nxt;
                    self.high_rxt = self.snd_una;
                    self.rxt_log.clear();
                    self.head_lost_to = self.snd_una + mss;
                    if tlp_hole {
                        self.head_lost_to = self.head_lost_to.latest(self.tlp_seq);
                    }
                    self.rtt_seq = None;
                    self.cc.on_loss(self.in_flight());
                    ctx.count(
                        if self.sack_ok {
                            TcpCounter::TcpSackRecovery
                        } else {
                            TcpCounter::TcpRenoRecovery
                        },
                        1,
                    );
                } else if !self.sb.is_empty() || self.dupacks > 0 {
                    self.ca = CaState::Disorder;
                } else {
                    self.ca = CaState::Open;
                }
            }
            CaState::Recovery => {
                if acked > 0 {
                    if self.snd_una.after_or_eq(self.recover) {
                        self.ca = CaState::Open;
                        self.cc.on_recovery_end();
                        self.dupacks = 0;
                        self.reno_sacked = 0;
                        if !self.sb.is_empty() {
                            self.ca = CaState::Disorder;
                        }
                    } else if !self.sack_ok {
                        // NewReno partial ACK: the next hole is lost.
                        self.reno_sacked = self.reno_sacked.saturating_sub(acked);
                        self.high_rxt = self.snd_una;
                        self.head_lost_to = self.snd_una + mss;
                    } else {
                        self.head_lost_to = self.head_lost_to.latest(self.snd_una);
                    }
                } else if is_dup && !self.sack_ok {
                    self.reno_sacked =
                        (self.reno_sacked + mss).min(self.in_flight().saturating_sub(mss));
                }
            }
            CaState::Loss => {
                if acked > 0 {
                    self.cc.on_ack(acked, now, self.rtt.min_rtt(), true);
                    if self.snd_una.after_or_eq(self.recover) {
                        self.ca = if self.sb.is_empty() {
                            CaState::Open
                        } else {
                            CaState::Disorder
                        };
                        self.dupacks = 0;
                        self.reno_sacked = 0;
                    }
                }
            }
        }
    }

    /// The retransmission of the first unacknowledged byte went out more
    /// than an RTT (and a reordering allowance) ago, yet data sent later
    /// is being SACKed: it was lost too; start the pass over.
    fn check_lost_retransmit<C: TcpContext>(&mut self, ctx: &mut C, now: Instant) {
        if !self.high_rxt.after(self.snd_una) {
            return;
        }
        while let Some(&(_, e, _)) = self.rxt_log.front() {
            if e.before_or_eq(self.snd_una) {
                self.rxt_log.pop_front();
            } else {
                break;
            }
        }
        let Some(&(s, _, t)) = self.rxt_log.front() else {
            return;
        };
        if s.after(self.snd_una) {
            return;
        }
        let srtt = self.rtt.srtt().unwrap_or(rtt::RTO_INITIAL);
        if now - t > srtt + srtt / 4 + Duration::from_millis(2) {
            self.high_rxt = self.snd_una;
            self.rxt_log.clear();
            ctx.count(TcpCounter::TcpLostRetransmit, 1);
        }
    }

    /// Everything un-SACKed below this is taken as lost.
    fn lost_end(&self) -> SeqNum {
        let l = match self.ca {
            CaState::Loss => self.recover,
            CaState::Recovery => {
                if self.sack_ok {
                    self.sb
                        .lost_boundary(self.snd_una, self.mss)
                        .latest(self.head_lost_to)
                } else {
                    self.head_lost_to
                }
            }
            _ => self.snd_una,
        };
        l.earliest(self.snd_nxt).latest(self.snd_una)
    }

    /// RFC 6675 `pipe`: bytes believed in the network.
    #[inline]
    pub fn pipe(&self) -> u32 {
        let out = self.in_flight();
        match self.ca {
            CaState::Open | CaState::Disorder => {
                if self.sack_ok {
                    out.saturating_sub(self.sb.sacked())
                } else {
                    out.saturating_sub(self.reno_sacked)
                }
            }
            CaState::Recovery | CaState::Loss => {
                let l = self.lost_end();
                let hr = self.high_rxt.latest(self.snd_una).earliest(self.snd_nxt);
                let not_lost = (self.snd_nxt - l) as u32;
                let rexmit = (hr - self.snd_una) as u32;
                if self.sack_ok {
                    not_lost - self.sb.sacked_in(l, self.snd_nxt) + rexmit
                        - self.sb.sacked_in(self.snd_una, hr)
                } else {
                    not_lost.saturating_sub(self.reno_sacked)
                        + rexmit.min((l - self.snd_una) as u32)
                }
            }
        }
    }

    /// RFC 6675 NextSeg rule 1: the next lost range to resend, as
    /// (seq, data bytes, with FIN).
    fn next_lost(&self, mss: u32) -> Option<(SeqNum, u32, bool)> {
        if !matches!(self.ca, CaState::Recovery | CaState::Loss) {
            return None;
        }
        let lost_end = self.lost_end();
        let mut s = self.high_rxt.latest(self.snd_una);
        if self.sack_ok {
            s = self.sb.next_unsacked(s);
        }
        if !s.before(lost_end) {
            return None;
        }
        let mut e = lost_end;
        if let Some(n) = self.sb.next_sacked(s) {
            e = e.earliest(n);
        }
        let data_end = self.data_end();
        let data_stop = e.earliest(data_end);
        let len = if data_stop.after(s) {
            ((data_stop - s) as u32).min(mss)
        } else {
            0
        };
        let fin = self.fin_sent() && s + len == data_end && e.after(data_end);
        if len == 0 && !fin {
            return None;
        }
        Some((s, len, fin))
    }

    // ---- receiving data ----

    fn rcv_data<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        env: &mut Env,
        seg: &Seg,
        syn: bool,
        now: Instant,
    ) {
        let mut seq = seg.seq + u32::from(syn);
        let mut data = seg.payload;
        let mut fin = seg.flags.fin();
        // Data after our own SHUT_RD (or close) in FIN_WAIT: RFC 1122
        // 4.2.2.13, reset (Linux's TCPAbortOnData).
        if self.rcv_shutdown
            && matches!(self.state, TcpState::FinWait1 | TcpState::FinWait2)
            && !data.is_empty()
            && (seq + data.len() as u32).after(self.rcv_nxt)
        {
            ctx.count(TcpCounter::TcpAbortOnData, 1);
            self.send_rst_for(ctx, seg);
            self.reset(ctx);
            return;
        }
        // Old bytes at the front.
        if seq.before(self.rcv_nxt) {
            let d = (self.rcv_nxt - seq) as usize;
            let dup_end = (seq + data.len() as u32).earliest(self.rcv_nxt);
            if env.cfg.dsack && self.sack_ok && dup_end.after(seq) {
                self.dsack = Some(SackBlock {
                    left: seq,
                    right: dup_end,
                });
                ctx.count(TcpCounter::TcpDsackOldSent, 1);
            }
            self.ack_now = true;
            if d >= data.len() {
                let fin_seq = seq + data.len() as u32;
                data = &[];
                if fin && fin_seq.before(self.rcv_nxt) {
                    fin = false;
                }
                seq = self.rcv_nxt;
            } else {
                data = &data[d..];
                seq = self.rcv_nxt;
            }
        }
        // Bytes beyond the window (or the ring).
        let ring_edge = self.rcv_nxt + (self.rcv.capacity() - self.rcv.len()) as u32;
        let edge = self.rcv_adv.latest(self.rcv_nxt).earliest(ring_edge);
        if (seq + data.len() as u32).after(edge) {
            let keep = (edge - seq).max(0) as usize;
            data = &data[..keep.min(data.len())];
            fin = false;
            ctx.count(TcpCounter::TcpRcvQDrop, 1);
            self.ack_now = true;
        }
        if data.is_empty() && !fin {
            return;
        }
        // Quick ACKs at the start and after an idle spell (Linux's
        // tcp_event_data_recv).
        if !data.is_empty() {
            // The RTO is never below its floor: most segments are
            // decided without computing it.
            let idle = now - self.last_data_rcv;
            if !self.seen_data || (idle > self.rtt.rto_floor() && idle > self.rtt.rto()) {
                let w = self.rcv_wnd() / (2 * self.rcv_mss.max(1));
                self.quick = w.clamp(2, 16);
                self.seen_data = true;
            }
            self.last_data_rcv = now;
            self.rcv_mss = self.rcv_mss.max(data.len() as u32).min(65535);
            if let Some(ts) = seg.opts.timestamps.filter(|t| self.ts_ok && t.ecr != 0) {
                let ms = self.ts_val(now).wrapping_sub(ts.ecr);
                if ms < 1 << 31 {
                    self.rcv_rtt_ms = self.rcv_rtt_ms.min(ms.max(1));
                }
            }
        }
        if seq == self.rcv_nxt {
            let had_ofo = !self.asm.is_empty();
            let off = self.rcv.len();
            let n = self.rcv.write_at(off, data);
            self.rcv.commit(n);
            self.rcv_nxt += n as u32;
            self.bytes_received += n as u64;
            while let Some(e) = self.asm.take_front(self.rcv_nxt) {
                let more = (e - self.rcv_nxt) as usize;
                self.rcv.commit(more);
                self.bytes_received += more as u64;
                self.rcv_nxt = e;
            }
            if had_ofo {
                self.ack_now = true;
            }
            if fin || self.ofo_fin == Some(self.rcv_nxt) {
                self.rcv_fin(ctx, now, env.cfg.delack);
            } else if n > 0 {
                ctx.event(TcpEvent::Readable(self.id));
            }
            self.schedule_ack(env, now);
        } else {
            // Out of order: straight to its place in the ring.
            let off = self.rcv.len() + (seq - self.rcv_nxt) as usize;
            let end = seq + data.len() as u32;
            if !data.is_empty() {
                if self.asm.add(seq, end) {
                    self.rcv.write_at(off, data);
                    ctx.count(TcpCounter::TcpOfoQueue, 1);
                } else {
                    ctx.count(TcpCounter::TcpOfoDrop, 1);
                    fin = false;
                }
            }
            if fin {
                self.ofo_fin = Some(end);
            }
            self.quick = self.quick.max(2);
            self.ack_now = true;
        }
    }

    fn rcv_fin<C: TcpContext>(&mut self, ctx: &mut C, now: Instant, delack: Duration) {
        self.rcv_nxt += 1;
        self.ofo_fin = None;
        self.rcv_shutdown = true;
        self.done = true;
        match self.state {
            TcpState::Established => {
                self.set_state(ctx, TcpState::CloseWait);
                // Linux enters pingpong mode: the ACK waits for a reply.
                self.ack_pending = true;
                if self.delack_at.is_none() {
                    self.delack_at = Some(now + delack);
                }
            }
            TcpState::FinWait1 => {
                self.ack_now = true;
                self.set_state(ctx, TcpState::Closing);
            }
            TcpState::FinWait2 => {
                self.ack_now = true;
                self.send_ack(ctx, now);
                self.set_state(ctx, TcpState::TimeWait);
            }
            _ => {}
        }
        ctx.event(TcpEvent::Readable(self.id));
    }

    /// RFC 1122 4.2.3.2 as Linux's __tcp_ack_snd_check: ACK at once every
    /// second full segment, in quick-ACK mode or with out-of-order data;
    /// otherwise within the delayed-ACK time.
    fn schedule_ack(&mut self, env: &Env, now: Instant) {
        if self.ack_now {
            return;
        }
        let unacked = (self.rcv_nxt - self.rcv_wup).max(0) as u32;
        if self.quick > 0 || (unacked > self.rcv_mss && (!env.burst || unacked >= BURST_ACK_MAX)) {
            self.ack_now = true;
            return;
        }
        if unacked > self.rcv_mss {
            // Many in-order segments of a burst are acknowledged as one
            // (GRO); the delayed-ACK timer below still covers a burst
            // that never ends.
            self.burst_ack = true;
        }
        self.ack_pending = true;
        if self.delack_at.is_none() {
            self.delack_at = Some(now + env.cfg.delack);
        }
    }

    // ---- output ----

    /// Window to advertise, scaled, with receiver-side silly window
    /// avoidance (RFC 9293 3.8.6.2.2) and never shrinking the right edge.
    fn select_window(&mut self) -> u16 {
        let cap = self.rcv.capacity() as u32;
        let free = cap - self.rcv.len() as u32;
        let mut win = free;
        let cur = self.rcv_wnd();
        let new_edge = self.rcv_nxt + free;
        let old_edge = self.rcv_nxt + cur;
        if new_edge.after(old_edge) && ((new_edge - old_edge) as u32) < (cap / 2).min(self.rcv_mss)
        {
            win = cur;
        }
        let s = self.rcv_wscale;
        let mut field = (win >> s).min(65535);
        if (field << s) < cur {
            field = cur.div_ceil(1 << s).min(65535);
        }
        self.rcv_adv = self.rcv_nxt + (field << s);
        field as u16
    }

    fn arm_rtx(&mut self, now: Instant, kind: RtxKind) {
        self.rtx_kind = kind;
        let d = match kind {
            RtxKind::Retransmit => self.rtt.rto(),
            RtxKind::Probe => self.rtt.rto().min(rtt::RTO_MAX),
        };
        self.rtx_at = Some(now + d);
        self.rto_armed_at = now;
    }

    /// Builds and sends one segment from the send ring. False if the IP
    /// layer had no room.
    fn xmit<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        seq: SeqNum,
        len: u32,
        fin: bool,
        now: Instant,
    ) -> bool {
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        if len > 0 && (seq + len == self.data_end()) {
            flags |= TcpFlags::PSH;
        }
        let window = self.select_window();
        let urgent_ptr = self.urg.pointer_for(seq, self.snd_una);
        if urgent_ptr.is_some() {
            flags |= TcpFlags::URG;
        }
        let mut b = TcpBuilder {
            src_port: self.local.port,
            dst_port: self.remote.port,
            seq,
            ack: self.rcv_nxt,
            flags,
            window,
            urgent_ptr: urgent_ptr.unwrap_or(0),
            options: TcpOptionSet::default(),
        };
        // Filled in place: a struct built elsewhere and copied in is
        // written narrow and read wide (a store-forwarding stall).
        self.ack_options_into(&mut b.options, now);
        let off = (seq - self.snd_buf_seq).max(0) as usize;
        let (p1, p2) = self.snd.slices(off, len as usize);
        if !emit(
            ctx,
            &self.local,
            &self.remote,
            &b,
            p1,
            p2,
            self.opts.ttl,
            self.opts.tos,
        ) {
            return false;
        }
        self.segs_out += 1;
        self.acked_sent(now);
        self.last_send = now;
        if len > 0 {
            self.last_data_sent = now;
        }
        true
    }

    /// `k` full segments of new data from `seq`, `mss` bytes each, none
    /// the last of the data and with no SACK blocks to carry: the first
    /// is built as [`Conn::xmit`] builds it, the others are its header
    /// with their own sequence number and checksum (software GSO).
    /// Returns how many went out.
    fn xmit_run<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        seq: SeqNum,
        mss: u32,
        k: u32,
        now: Instant,
    ) -> u32 {
        let window = self.select_window();
        let mut b = TcpBuilder {
            src_port: self.local.port,
            dst_port: self.remote.port,
            seq,
            ack: self.rcv_nxt,
            flags: TcpFlags::ACK,
            window,
            urgent_ptr: 0,
            options: TcpOptionSet::default(),
        };
        self.ack_options_into(&mut b.options, now);
        let hl = b.header_len();
        let len = hl + mss as usize;
        let (src, dst) = (self.local.ip, self.remote.ip);
        let pseudo = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header(&s, &d, IpProto::TCP, len as u32),
            (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header(&s, &d, IpProto::TCP, len as u32),
            _ => return 0,
        };
        let tx = Transmit {
            src,
            dst,
            len,
            ttl: self.opts.ttl,
            tos: self.opts.tos,
        };
        let base = (seq - self.snd_buf_seq).max(0) as usize;
        let snd = &self.snd;
        let mut hdr = [0u8; 60];
        let sent = ctx.send_run(tx, k as usize, |i, buf| {
            let buf = &mut buf[..len];
            let (p1, p2) = snd.slices(base + i * mss as usize, mss as usize);
            buf[hl..hl + p1.len()].copy_from_slice(p1);
            buf[hl + p1.len()..].copy_from_slice(p2);
            if i == 0 {
                let r = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => b.emit(&s, &d, buf),
                    (IpAddr::V6(s), IpAddr::V6(d)) => b.emit(&s, &d, buf),
                    _ => Err(crate::wire::BuildError::InvalidField),
                };
                debug_assert!(r.is_ok());
                if r.is_err() {
                    // The buffer may hold an earlier frame's bytes.
                    buf.fill(0);
                }
                hdr[..hl].copy_from_slice(&buf[..hl]);
                hdr[16..18].fill(0);
            } else {
                buf[..hl].copy_from_slice(&hdr[..hl]);
                let s = seq + i as u32 * mss;
                buf[4..8].copy_from_slice(&s.get().to_be_bytes());
                let mut c: Checksum = pseudo;
                let sum = c.add_bytes(buf).checksum();
                buf[16..18].copy_from_slice(&sum.to_be_bytes());
            }
        }) as u32;
        if sent > 0 {
            ctx.count(TcpCounter::OutSegs, u64::from(sent));
            self.segs_out += sent;
            self.acked_sent(now);
            self.last_send = now;
            self.last_data_sent = now;
        }
        sent
    }

    /// SACK blocks the next segment will carry (what `ack_options_into` puts
    /// in).
    fn sack_blocks_pending(&self) -> usize {
        if !self.sack_ok {
            return 0;
        }
        let max = if self.ts_ok { 3 } else { 4 };
        let mut blocks = SackBlocks::default();
        if let Some(d) = self.dsack {
            blocks.push(d);
        }
        let room = max - blocks.len();
        self.asm.sack_blocks(&mut blocks, room);
        blocks.len()
    }

    /// Linux's `tcp_current_mss`: the MSS less the bytes of the SACK
    /// option the next segment carries (NOP NOP SACK, 4 + 8 per block),
    /// so that a data segment with SACK blocks still fits the path MTU.
    fn cur_mss(&self) -> u32 {
        match self.sack_blocks_pending() {
            0 => self.mss,
            n => self.mss.saturating_sub(4 + 8 * n as u32).max(1),
        }
    }

    /// Options on a non-SYN segment: timestamps and SACK blocks (D-SACK
    /// first), as many as fit.
    #[inline]
    fn ack_options_into(&mut self, o: &mut TcpOptionSet, now: Instant) {
        if self.ts_ok {
            o.timestamps = Some(Timestamps {
                val: self.ts_val(now),
                ecr: self.ts_recent,
            });
        }
        if self.sack_ok {
            let max = if self.ts_ok { 3 } else { 4 };
            let blocks = &mut o.sack;
            if let Some(d) = self.dsack.take() {
                blocks.push(d);
            }
            let room = max - blocks.len();
            self.asm.sack_blocks(blocks, room);
        }
    }

    /// Any segment we send carries the ACK.
    fn acked_sent(&mut self, _now: Instant) {
        if self.ack_pending || self.ack_now {
            self.quick = self.quick.saturating_sub(1);
        }
        self.ack_pending = false;
        self.ack_now = false;
        self.burst_ack = false;
        self.delack_at = None;
        self.rcv_wup = self.rcv_nxt;
    }

    /// The end of a receive burst: the ACK it deferred goes now.
    pub fn end_burst<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        self.burst_listed = false;
        if self.burst_ack {
            self.burst_ack = false;
            self.ack_now = true;
            self.output(ctx, env, now);
        }
    }

    /// A pure ACK now.
    pub fn send_ack<C: TcpContext>(&mut self, ctx: &mut C, now: Instant) {
        if !self.state.synchronized() && self.state != TcpState::SynRecv {
            return;
        }
        let seq = self.snd_nxt;
        self.xmit(ctx, seq, 0, false, now);
    }

    /// Linux's tcp_xmit_probe_skb: an ACK with an old sequence number,
    /// which the peer must answer (zero-window and keepalive probes).
    fn send_probe<C: TcpContext>(&mut self, ctx: &mut C, now: Instant) {
        let seq = self.snd_una - 1;
        self.xmit(ctx, seq, 0, false, now);
    }

    /// Sends what the windows, Nagle and cork allow, then any ACK owed.
    pub fn output<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        if matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::Closing
                | TcpState::LastAck
        ) {
            self.send_data(ctx, env, now);
        }
        if (self.ack_now || self.dsack.is_some())
            && (self.state.synchronized() || self.state == TcpState::SynRecv)
            && self.state != TcpState::TimeWait
        {
            self.send_ack(ctx, now);
        }
        if self.snd_nxt != self.snd_una || self.tlp_at.is_some() {
            self.schedule_tlp(now);
        }
    }

    /// Linux's tcp_schedule_loss_probe (RFC 8985 7.2): with data in
    /// flight, SACK, the Open state and no probe out, a probe is due two
    /// smoothed RTTs after the last transmission or ACK (plus the peer's
    /// longest delayed ACK when one segment is out). Only when that is
    /// before the RTO, which stays armed behind it.
    fn schedule_tlp(&mut self, now: Instant) {
        self.tlp_at = None;
        if self.snd_nxt == self.snd_una
            || !self.sack_ok
            || self.ca != CaState::Open
            || self.tlp_high.is_some()
            || self.rtx_kind != RtxKind::Retransmit
            || !matches!(self.state, TcpState::Established | TcpState::CloseWait)
        {
            return;
        }
        let (Some(srtt), Some(rto_at)) = (self.rtt.srtt(), self.rtx_at) else {
            return;
        };
        let extra = if self.in_flight() <= self.mss {
            TLP_DELACK
        } else {
            TLP_MIN
        };
        let at = now + srtt * 2 + extra;
        if at < rto_at {
            self.tlp_at = Some(at);
        }
    }

    /// Linux's tcp_send_loss_probe (RFC 8985 7.3): one segment of new
    /// data if the peer's window takes it, else the last segment sent,
    /// again; then the RTO afresh. Any ACK this draws lets SACK recovery
    /// repair a lost tail without waiting for the RTO.
    fn send_tlp<C: TcpContext>(&mut self, ctx: &mut C, now: Instant) {
        if self.snd_nxt == self.snd_una || self.ca != CaState::Open || self.tlp_high.is_some() {
            return;
        }
        let mss = self.cur_mss();
        let unsent = self.unsent();
        let seq = self.snd_nxt;
        let len = unsent.min(mss);
        let fits = !(seq + len).after(self.snd_una + self.snd_wnd);
        if unsent > 0 && fits {
            let fin = self.fin_queued && len == unsent;
            if !self.xmit(ctx, seq, len, fin, now) {
                return;
            }
            ctx.count(TcpCounter::TcpOrigDataSent, 1);
            self.snd_nxt = seq + len + u32::from(fin);
            if len < mss {
                self.snd_sml = self.snd_nxt;
            }
            self.tlp_retrans = false;
            self.tlp_seq = seq;
        } else {
            let fin = self.fin_sent();
            let end = if fin { self.snd_nxt - 1 } else { self.snd_nxt };
            let len = ((end - self.snd_una).max(0) as u32).min(mss);
            let seq = end - len;
            if !self.xmit(ctx, seq, len, fin, now) {
                return;
            }
            self.tlp_retrans = true;
            self.tlp_seq = seq;
            self.total_retrans += 1;
            self.rtt_seq = None;
            ctx.count(TcpCounter::RetransSegs, 1);
        }
        self.tlp_high = Some(self.snd_nxt);
        ctx.count(TcpCounter::TcpLossProbes, 1);
        self.arm_rtx(now, RtxKind::Retransmit);
    }

    fn send_data<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        // Nothing to retransmit, no new data, no FIN: what the loop below
        // would find at once (a receiver, after every segment).
        let data_end = self.data_end();
        let lost = matches!(self.ca, CaState::Recovery | CaState::Loss);
        let fin_due = self.fin_queued && self.snd_nxt == data_end;
        if !lost && !fin_due && !self.snd_nxt.before(data_end) {
            return;
        }
        // Options only shrink while this runs (a D-SACK goes out once),
        // so segments sized for the first one fit all the others.
        let mss = self.cur_mss();
        let mut pipe = self.pipe();
        let cwnd = self.cc.cwnd();
        let mut window_blocked = false;
        // Restart after idle (RFC 5681 4.1, Linux's tcp_cwnd_restart).
        if env.cfg.slow_start_after_idle
            && self.snd_nxt == self.snd_una
            && self.unsent() > 0
            && now - self.last_send > self.rtt.rto()
        {
            self.cc.on_idle_restart();
        }
        loop {
            // Lost segments first (RFC 6675 NextSeg rule 1).
            if let Some((seq, len, fin)) = self.next_lost(mss) {
                if pipe + len.max(1) > cwnd && pipe > 0 {
                    break;
                }
                if !self.xmit(ctx, seq, len, fin, now) {
                    return;
                }
                self.high_rxt = seq + len + u32::from(fin);
                if self.sack_ok {
                    if self.rxt_log.len() >= 256 {
                        self.rxt_log.pop_front();
                    }
                    self.rxt_log.push_back((seq, self.high_rxt, now));
                }
                pipe += len.max(1);
                self.total_retrans += 1;
                self.rtt_seq = None;
                ctx.count(TcpCounter::RetransSegs, 1);
                ctx.count(
                    if self.ca == CaState::Loss {
                        TcpCounter::TcpSlowStartRetrans
                    } else {
                        TcpCounter::TcpFastRetrans
                    },
                    1,
                );
                if self.rtx_at.is_none() || self.rtx_kind == RtxKind::Probe {
                    self.arm_rtx(now, RtxKind::Retransmit);
                }
                continue;
            }
            let data_end = self.data_end();
            if self.snd_nxt.before(data_end) {
                let unsent = (data_end - self.snd_nxt) as u32;
                let len = unsent.min(mss);
                let wnd_end = self.snd_una + self.snd_wnd;
                if (self.snd_nxt + len).after(wnd_end) {
                    window_blocked = true;
                    break;
                }
                if pipe + len > cwnd {
                    break;
                }
                let fin = self.fin_queued && len == unsent;
                if len < mss && !fin && !self.may_send_partial(now) {
                    break;
                }
                let seq = self.snd_nxt;
                // Full segments that are not the last of the data (that
                // one carries PSH), as many as the windows allow: one
                // header built, the rest copied from it.
                if len == mss && !fin {
                    let k = ((wnd_end - seq) as u32 / mss)
                        .min((cwnd - pipe) / mss)
                        .min((unsent - 1) / mss)
                        .min(RUN_MAX);
                    if k >= 2 && self.sack_blocks_pending() == 0 {
                        let sent = self.xmit_run(ctx, seq, mss, k, now);
                        if sent == 0 {
                            return;
                        }
                        ctx.count(TcpCounter::TcpOrigDataSent, u64::from(sent));
                        if self.rtt_seq.is_none() && self.retransmits == 0 {
                            self.rtt_seq = Some((seq + mss, now));
                        }
                        self.snd_nxt = seq + sent * mss;
                        pipe += sent * mss;
                        if self.rtx_at.is_none() || self.rtx_kind == RtxKind::Probe {
                            self.arm_rtx(now, RtxKind::Retransmit);
                        }
                        if sent < k {
                            return;
                        }
                        continue;
                    }
                }
                if !self.xmit(ctx, seq, len, fin, now) {
                    return;
                }
                ctx.count(TcpCounter::TcpOrigDataSent, 1);
                if self.rtt_seq.is_none() && self.retransmits == 0 {
                    self.rtt_seq = Some((seq + len, now));
                }
                self.snd_nxt = seq + len + u32::from(fin);
                if len < mss {
                    self.snd_sml = self.snd_nxt;
                    self.cork_expired = false;
                    self.cork_at = None;
                }
                pipe += len;
                if self.rtx_at.is_none() || self.rtx_kind == RtxKind::Probe {
                    self.arm_rtx(now, RtxKind::Retransmit);
                }
                continue;
            }
            if self.fin_queued && self.snd_nxt == data_end {
                let seq = self.snd_nxt;
                if !self.xmit(ctx, seq, 0, true, now) {
                    return;
                }
                self.snd_nxt = seq + 1;
                if self.rtx_at.is_none() || self.rtx_kind == RtxKind::Probe {
                    self.arm_rtx(now, RtxKind::Retransmit);
                }
                continue;
            }
            break;
        }
        // Nothing in flight and the window keeps us from sending: probe
        // (Linux's tcp_check_probe_timer).
        if window_blocked && self.snd_una == self.snd_nxt && self.rtx_at.is_none() {
            self.arm_rtx(now, RtxKind::Probe);
        }
    }

    /// The application closed the socket: an orphan in FIN_WAIT_2 waits
    /// `tcp_fin_timeout` for the peer's FIN.
    pub fn orphaned(&mut self, env: &Env, now: Instant) {
        if self.state == TcpState::FinWait2 {
            self.fw2_at = Some(now + env.cfg.fin_timeout);
        }
    }

    /// TCP_CORK cleared: the ceiling timer has nothing left to time.
    pub fn uncork(&mut self) {
        self.cork_at = None;
        self.cork_expired = false;
    }

    /// Nagle (Minshall's variant, as Linux) and cork for a segment
    /// smaller than the MSS.
    fn may_send_partial(&mut self, now: Instant) -> bool {
        if self.opts.cork {
            if self.cork_expired {
                return true;
            }
            // tcp(7): a 200 ms ceiling on corking.
            if self.cork_at.is_none() {
                self.cork_at = Some(now + Duration::from_millis(200));
            }
            return false;
        }
        if self.opts.nodelay {
            return true;
        }
        // Hold a small segment while an earlier small one is unacked.
        !(self.snd_sml.after(self.snd_una) && self.snd_nxt != self.snd_una)
    }

    // ---- timers ----

    pub fn on_timer<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        if let Some(t) = self.tlp_at
            && t <= now
        {
            self.tlp_at = None;
            self.send_tlp(ctx, now);
        }
        if let Some(t) = self.rtx_at
            && t <= now
        {
            self.rtx_at = None;
            match self.state {
                TcpState::SynSent | TcpState::SynRecv => self.syn_timeout(ctx, env, now),
                _ => match self.rtx_kind {
                    RtxKind::Retransmit => self.rto(ctx, env, now),
                    RtxKind::Probe => self.probe_timeout(ctx, env, now),
                },
            }
            if self.state == TcpState::Close {
                return;
            }
        }
        if let Some(t) = self.delack_at
            && t <= now
        {
            self.delack_at = None;
            if self.ack_pending {
                ctx.count(TcpCounter::DelayedAcks, 1);
                self.send_ack(ctx, now);
            }
        }
        if let Some(t) = self.keepalive_at
            && t <= now
        {
            self.keepalive_at = None;
            self.keepalive(ctx, env, now);
            if self.state == TcpState::Close {
                return;
            }
        }
        if let Some(t) = self.fw2_at
            && t <= now
        {
            self.fw2_at = None;
            if self.state == TcpState::FinWait2 {
                self.done_close(ctx);
                return;
            }
        }
        if let Some(t) = self.cork_at
            && t <= now
        {
            self.cork_at = None;
            self.cork_expired = true;
        }
        self.output(ctx, env, now);
    }

    fn budget(&self, env: &Env, syn: bool) -> Duration {
        if self.opts.user_timeout != 0 {
            return Duration::from_millis(u64::from(self.opts.user_timeout));
        }
        if syn {
            let n = if self.opts.syncnt != 0 {
                self.opts.syncnt
            } else if self.state == TcpState::SynRecv {
                env.cfg.synack_retries
            } else {
                env.cfg.syn_retries
            };
            retransmit_budget(rtt::RTO_INITIAL, u32::from(n))
        } else {
            let n = if self.orphan {
                env.cfg.orphan_retries
            } else {
                env.cfg.retries2
            };
            retransmit_budget(rtt::RTO_MIN, n)
        }
    }

    fn timed_out<C: TcpContext>(&mut self, ctx: &mut C, counter: Option<TcpCounter>) {
        if let Some(c) = counter {
            ctx.count(c, 1);
        }
        let e = self.soft_err.unwrap_or(Errno::ETIMEDOUT);
        self.set_err(ctx, e);
        self.done_close(ctx);
    }

    fn syn_timeout<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        let start = self.retrans_stamp.unwrap_or(self.syn_sent_at);
        if now - start >= self.budget(env, true) {
            self.timed_out(ctx, None);
            return;
        }
        self.rtt.backoff();
        self.retransmits += 1;
        self.total_retrans += 1;
        ctx.count(TcpCounter::TcpTimeouts, 1);
        ctx.count(TcpCounter::RetransSegs, 1);
        self.send_syn(ctx, env.cfg, now);
        self.arm_rtx(now, RtxKind::Retransmit);
    }

    fn rto<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        if self.snd_una == self.snd_nxt {
            return;
        }
        let stamp = *self.retrans_stamp.get_or_insert(self.rto_armed_at);
        if now - stamp >= self.budget(env, false) {
            self.timed_out(ctx, Some(TcpCounter::TcpAbortOnTimeout));
            return;
        }
        ctx.count(TcpCounter::TcpTimeouts, 1);
        self.tlp_high = None;
        self.tlp_at = None;
        let flight = self.in_flight();
        if self.ca != CaState::Loss {
            self.cc.on_timeout(flight);
        } else {
            self.cc.on_timeout(flight.min(self.cc.cwnd()));
        }
        self.ca = CaState::Loss;
        self.recover = self.snd_nxt;
        self.high_rxt = self.snd_una;
        self.rxt_log.clear();
        self.sb.clear();
        self.dupacks = 0;
        self.reno_sacked = 0;
        self.rtt_seq = None;
        self.rtt.backoff();
        self.retransmits += 1;
        self.arm_rtx(now, RtxKind::Retransmit);
    }

    fn probe_timeout<C: TcpContext>(&mut self, ctx: &mut C, env: &mut Env, now: Instant) {
        if self.snd_una != self.snd_nxt || (self.unsent() == 0 && !self.fin_queued) {
            return;
        }
        let max = if self.orphan {
            env.cfg.orphan_retries
        } else {
            env.cfg.retries2
        };
        if self.probes >= max {
            self.timed_out(ctx, Some(TcpCounter::TcpAbortOnTimeout));
            return;
        }
        let wnd_room = self.snd_wnd;
        if wnd_room > 0 && self.unsent() > 0 {
            // Linux's tcp_write_wakeup: send what fits.
            let len = self.unsent().min(self.cur_mss()).min(wnd_room);
            let seq = self.snd_nxt;
            if self.xmit(ctx, seq, len, false, now) {
                self.snd_nxt = seq + len;
                self.arm_rtx(now, RtxKind::Retransmit);
                return;
            }
        }
        self.probes += 1;
        ctx.count(TcpCounter::TcpWinProbe, 1);
        self.send_probe(ctx, now);
        self.rtt.backoff();
        self.arm_rtx(now, RtxKind::Probe);
    }

    fn keepalive<C: TcpContext>(&mut self, ctx: &mut C, _env: &mut Env, now: Instant) {
        if !self.opts.keepalive
            || !matches!(
                self.state,
                TcpState::Established
                    | TcpState::CloseWait
                    | TcpState::FinWait1
                    | TcpState::FinWait2
            )
        {
            return;
        }
        let idle = self.keepidle();
        let intvl = Duration::from_secs(u64::from(self.opts.keepintvl));
        if self.snd_una != self.snd_nxt || self.unsent() > 0 {
            self.keepalive_at = Some(now + idle);
            return;
        }
        let elapsed = now - self.last_rcv.max(self.last_data_rcv);
        if elapsed < idle {
            self.keepalive_at = Some(now + (idle - elapsed));
            return;
        }
        let user_timeout = self.opts.user_timeout;
        let expired = if user_timeout != 0 {
            elapsed >= Duration::from_millis(u64::from(user_timeout)) && self.probes > 0
        } else {
            self.probes >= self.opts.keepcnt
        };
        if expired {
            self.send_active_rst(ctx, now);
            self.timed_out(ctx, Some(TcpCounter::TcpAbortOnTimeout));
            return;
        }
        self.probes += 1;
        ctx.count(TcpCounter::TcpKeepAlive, 1);
        self.send_probe(ctx, now);
        self.keepalive_at = Some(now + intvl);
    }

    /// SO_KEEPALIVE switched on or off, or its times changed.
    pub fn keepalive_changed(&mut self, now: Instant) {
        if self.opts.keepalive && self.state.synchronized() && self.state != TcpState::TimeWait {
            let at = self.last_rcv.max(self.last_data_rcv) + self.keepidle();
            self.keepalive_at = Some(at.max(now));
        } else {
            self.keepalive_at = None;
        }
    }

    // ---- the socket side ----

    /// Linux's `sk_stream_is_writeable`: free space at least half of
    /// what is queued.
    pub fn writable(&self) -> bool {
        let queued = self.snd.len();
        self.snd.capacity().saturating_sub(queued) >= queued / 2 && self.snd.capacity() > queued
    }

    /// Queues data (send(2)); the state checks are the layer's.
    pub fn send<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        env: &mut Env,
        data: &[u8],
        more: bool,
        now: Instant,
    ) -> usize {
        let n = self.snd.append(data);
        if n < data.len() {
            self.nospace = true;
        }
        if n > 0 {
            let cork = self.opts.cork;
            if more {
                self.opts.cork = true;
            }
            self.output(ctx, env, now);
            self.opts.cork = cork;
            if more && !cork {
                self.cork_at = None;
            }
        }
        n
    }

    /// send(MSG_OOB): queued as any data, its last byte marked urgent
    /// (tcp_mark_urg) before it goes.
    pub fn send_urgent<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        env: &mut Env,
        data: &[u8],
        now: Instant,
    ) -> usize {
        let n = self.snd.append(data);
        if n < data.len() {
            self.nospace = true;
        }
        if n > 0 {
            self.urg.mark_sent(self.data_end());
            self.output(ctx, env, now);
        }
        n
    }

    /// Copies received data out (recv(2)); `peek` leaves it queued.
    /// Returns the count; the caller decides what an empty queue means.
    pub fn recv<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        env: &mut Env,
        buf: &mut [u8],
        peek: bool,
        now: Instant,
    ) -> usize {
        let n = self.rcv.read_at(0, buf);
        if peek || n == 0 {
            return n;
        }
        let before = self.rcv_wnd();
        self.rcv.consume(n);
        self.rcv_space_adjust(env, now);
        // Linux's tcp_cleanup_rbuf: a window update when reading opened
        // the window by half or more.
        if self.state.synchronized()
            && !self.rcv_shutdown
            && !matches!(self.state, TcpState::TimeWait | TcpState::Close)
        {
            let cap = self.rcv.capacity() as u32;
            let free = cap - self.rcv.len() as u32;
            if 2 * before <= cap && free >= 2 * before.max(1) && free - before >= self.rcv_mss {
                self.ack_now = true;
                self.output(ctx, env, now);
            }
        }
        n
    }

    /// Receive-buffer autotuning (Linux's tcp_rcv_space_adjust): once per
    /// receive RTT, if the application drained more than before, grow the
    /// buffer to twice that (plus growth headroom), up to `tcp_rmem[2]`.
    fn rcv_space_adjust(&mut self, env: &Env, now: Instant) {
        let rcv_rtt = (self.rcv_rtt_ms != u32::MAX)
            .then(|| Duration::from_millis(u64::from(self.rcv_rtt_ms)));
        let rtt = rcv_rtt
            .or(self.rtt.srtt())
            .unwrap_or(Duration::from_millis(10))
            .max(Duration::from_micros(100));
        if now - self.rcvq_time < rtt {
            return;
        }
        let copied_seq = self.rcv_nxt - self.rcv.len() as u32;
        let copied = (copied_seq - self.rcvq_seq).max(0) as u32;
        if copied > self.rcvq_space {
            if env.cfg.moderate_rcvbuf && !self.opts.rcvbuf_locked {
                let mut rcvwin = 2 * u64::from(copied) + 16 * u64::from(self.advmss);
                let grow = rcvwin * u64::from(copied - self.rcvq_space)
                    / u64::from(self.rcvq_space.max(1));
                rcvwin += 2 * grow;
                let want = (rcvwin as usize).min(env.cfg.rmem[2]);
                if want > self.rcv.capacity() {
                    self.rcv.grow(want);
                }
            }
            self.rcvq_space = copied;
        }
        self.rcvq_seq = copied_seq;
        self.rcvq_time = now;
    }

    /// shutdown(SHUT_WR) / close: queue a FIN after the data, moving the
    /// state as Linux's tcp_close_state. Returns whether a FIN is due.
    pub fn close_state<C: TcpContext>(&mut self, ctx: &mut C) -> bool {
        let (to, fin) = match self.state {
            TcpState::Established | TcpState::SynRecv => (TcpState::FinWait1, true),
            TcpState::CloseWait => (TcpState::LastAck, true),
            TcpState::SynSent | TcpState::Listen => (TcpState::Close, false),
            s => (s, false),
        };
        self.set_state(ctx, to);
        if fin {
            self.fin_queued = true;
        }
        fin
    }

    /// RST|ACK now (close with unread data, SO_LINGER {1,0}, abort).
    pub fn send_active_rst<C: TcpContext>(&mut self, ctx: &mut C, now: Instant) {
        if !self.state.synchronized() && self.state != TcpState::SynRecv {
            return;
        }
        let b = TcpBuilder {
            src_port: self.local.port,
            dst_port: self.remote.port,
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            urgent_ptr: 0,
            options: TcpOptionSet::default(),
        };
        let _ = now;
        if emit(
            ctx,
            &self.local,
            &self.remote,
            &b,
            &[],
            &[],
            self.opts.ttl,
            self.opts.tos,
        ) {
            ctx.count(TcpCounter::OutRsts, 1);
        }
    }

    /// What TIME_WAIT must remember once the connection is gone.
    pub fn time_wait_state(&self) -> (SeqNum, SeqNum, u16, Option<(u32, u32)>) {
        let win = ((self.rcv_wnd()) >> self.rcv_wscale).min(65535) as u16;
        let ts = self.ts_ok.then_some((self.ts_recent, self.ts_off));
        (self.snd_nxt, self.rcv_nxt, win, ts)
    }

    pub fn info(&self, now: Instant) -> TcpInfo {
        let mss = self.mss.max(1);
        let mut options = 0u8;
        if self.ts_ok {
            options |= 1;
        }
        if self.sack_ok {
            options |= 2;
        }
        if self.wscale_ok {
            options |= 4;
        }
        let us = |d: Duration| d.as_micros().min(u128::from(u32::MAX)) as u32;
        let ms_since = |t: Instant| (now - t).as_millis().min(u128::from(u32::MAX)) as u32;
        TcpInfo {
            state: self.state as u8,
            ca_state: self.ca as u8,
            retransmits: self.retransmits.min(255) as u8,
            probes: self.probes.min(255) as u8,
            backoff: self.rtt.backoffs().min(255) as u8,
            options,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            rto: us(self.rtt.rto()),
            ato: 40_000,
            snd_mss: self.mss,
            rcv_mss: self.rcv_mss,
            unacked: self.in_flight().div_ceil(mss),
            sacked: self.sb.sacked().div_ceil(mss),
            lost: 0,
            retrans: 0,
            last_data_sent: ms_since(self.last_data_sent),
            last_data_recv: ms_since(self.last_data_rcv),
            last_ack_recv: ms_since(self.last_rcv),
            pmtu: u32::from(self.pmtu),
            rcv_ssthresh: self.rcv.capacity() as u32,
            rtt: self.rtt.srtt().map_or(0, us),
            rttvar: us(self.rtt.rttvar()),
            snd_ssthresh: if self.cc.ssthresh() == u32::MAX {
                0x7fff_ffff
            } else {
                self.cc.ssthresh() / mss
            },
            snd_cwnd: self.cc.cwnd() / mss,
            advmss: u32::from(self.advmss),
            reordering: 3,
            rcv_space: self.rcvq_space,
            total_retrans: self.total_retrans,
            bytes_acked: self.bytes_acked,
            bytes_received: self.bytes_received,
            segs_out: self.segs_out,
            segs_in: self.segs_in,
            notsent_bytes: self.unsent(),
            min_rtt: self.rtt.min_rtt().map_or(0, us),
            snd_wnd: self.snd_wnd,
            rcv_wnd: self.rcv_wnd(),
        }
    }
}

/// A reset in reply to `seg` (RFC 9293 3.10.7.1): from its ACK number if
/// it had one, else acknowledging it.
pub(crate) fn send_reset<C: TcpContext>(
    ctx: &mut C,
    local: SockAddr,
    remote: SockAddr,
    seg: &Seg,
) -> bool {
    if seg.flags.rst() {
        return false;
    }
    let b = if seg.flags.ack() {
        TcpBuilder {
            src_port: local.port,
            dst_port: remote.port,
            seq: seg.ack,
            ack: SeqNum::new(0),
            flags: TcpFlags::RST,
            window: 0,
            urgent_ptr: 0,
            options: TcpOptionSet::default(),
        }
    } else {
        TcpBuilder {
            src_port: local.port,
            dst_port: remote.port,
            seq: SeqNum::new(0),
            ack: seg.seq + seg.len(),
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            urgent_ptr: 0,
            options: TcpOptionSet::default(),
        }
    };
    let ok = emit(ctx, &local, &remote, &b, &[], &[], 0, 0);
    if ok {
        ctx.count(TcpCounter::OutRsts, 1);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::layer::SocketId;

    fn conn(rcvbuf: usize) -> Conn {
        let cfg = TcpConfig::default();
        let mut opts = SockOpts::new(&cfg);
        opts.rcvbuf = rcvbuf;
        Conn::new(
            SocketId::for_test(1),
            SockAddr::v4([192, 0, 2, 1], 80),
            SockAddr::v4([192, 0, 2, 2], 40000),
            opts,
            &cfg,
            SeqNum::new(1000),
            0,
            1500,
            Instant::ZERO,
        )
    }

    #[test]
    fn window_scale_from_buffer_space() {
        assert_eq!(wscale_for(6_291_456), 7, "Linux's default tcp_rmem[2]");
        assert_eq!(wscale_for(65535), 0);
        assert_eq!(wscale_for(131_072), 2);
        assert_eq!(wscale_for(1 << 30), 14, "capped at 14");
    }

    #[test]
    fn advertised_window_scaled_never_shrinks_and_avoids_sws() {
        let mut c = conn(131_072);
        let neg = Negotiated {
            peer_mss: Some(1460),
            snd_wscale: Some(7),
            rcv_wscale: 7,
            sack: true,
            ts_recent: None,
        };
        c.accept_init(SeqNum::new(5000), &neg, Instant::ZERO);
        assert_eq!(c.syn_window(), 64240);
        assert_eq!(c.select_window(), 1024, "131072 >> 7");
        assert_eq!(c.rcv_wnd(), 131_072);
        // 1000 bytes arrive and sit unread: the right edge stays put, the
        // field rounds up rather than shrink it.
        c.rcv.append(&[0u8; 1000]);
        c.rcv_nxt += 1000;
        assert_eq!(c.select_window(), 1017);
        assert!(c.rcv_wnd() >= 130_072);
        // The reader takes 100 bytes: less than an MSS of new space, so
        // the edge does not move (receiver SWS avoidance).
        c.rcv.consume(100);
        let before = c.rcv_adv;
        c.select_window();
        assert_eq!(c.rcv_adv, before);
        // Another 2000: now it moves.
        c.rcv.consume(900);
        c.rcv_nxt += 0;
        c.select_window();
        assert!(c.rcv_adv.after(before));
        assert_eq!(c.rcv_wnd(), 131_072);
    }

    #[test]
    fn mss_from_options_and_mtu() {
        let mut c = conn(131_072);
        let neg = Negotiated {
            peer_mss: Some(1460),
            snd_wscale: Some(7),
            rcv_wscale: 7,
            sack: true,
            ts_recent: Some(1),
        };
        c.accept_init(SeqNum::new(5000), &neg, Instant::ZERO);
        assert_eq!(c.mss, 1448, "1460 less the timestamp option");
        c.pmtu = 1400;
        c.update_mss();
        assert_eq!(c.mss, 1348);
        let mut c = conn(131_072);
        c.accept_init(SeqNum::new(5000), &Negotiated::default(), Instant::ZERO);
        assert_eq!(c.mss, 536, "no MSS option: RFC 9293's default");
    }
}
