//! The TCP layer: every TCP socket of a stack, the tables that find them
//! (connections by 4-tuple, listeners and bound sockets by port), one
//! timer heap, and the socket API the shim drives with Linux's semantics.
//!
//! Sockets are named by [`SocketId`] (slot index and generation): no
//! `Rc`, no pointers to hand out. A socket the application closed lives
//! on as an orphan until its connection is done; TIME_WAIT is a small
//! record of its own (as Linux's timewait sock) that no longer belongs to
//! the application's socket, which reports `TCP_CLOSE`.

use core::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::conn::{ChallengeLimit, Conn, Env, Seg, send_reset};
use super::listen::{self, Listener, ReqSock};
use super::siphash::{SipBuild, SipHasher13, SipKey};
use super::{
    CcAlgo, ConnKey, Domain, Errno, IpAddr, SockAddr, SockOpts, TcpConfig, TcpContext, TcpCounter,
    TcpEvent, TcpState, emit,
};
use crate::seq::SeqNum;
use crate::time::Instant;
use crate::wire::ParseError;
use crate::wire::tcp::{TcpBuilder, TcpFlags, TcpOptionSet, TcpSegment, Timestamps};
use core::hash::Hasher;

/// A socket's name: slot and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    index: u32,
    gen_: u32,
}

impl SocketId {
    #[cfg(test)]
    pub(crate) fn for_test(index: u32) -> SocketId {
        SocketId { index, gen_: 0 }
    }
    pub fn index(self) -> u32 {
        self.index
    }
    pub fn generation(self) -> u32 {
        self.gen_
    }
}

/// Readiness, as `poll(2)` bits.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Poll(pub u32);

impl Poll {
    pub const IN: u32 = 0x001;
    pub const PRI: u32 = 0x002;
    pub const OUT: u32 = 0x004;
    pub const ERR: u32 = 0x008;
    pub const HUP: u32 = 0x010;
    pub const RDNORM: u32 = 0x040;
    pub const WRNORM: u32 = 0x100;
    pub const RDHUP: u32 = 0x2000;

    pub fn has(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

impl core::fmt::Debug for Poll {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names = [
            (Poll::IN, "IN"),
            (Poll::PRI, "PRI"),
            (Poll::OUT, "OUT"),
            (Poll::ERR, "ERR"),
            (Poll::HUP, "HUP"),
            (Poll::RDNORM, "RDNORM"),
            (Poll::WRNORM, "WRNORM"),
            (Poll::RDHUP, "RDHUP"),
        ];
        let v: Vec<&str> = names
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| *n)
            .collect();
        write!(f, "Poll({})", v.join("|"))
    }
}

/// send(2) flags TCP acts on (`MSG_DONTWAIT`, `MSG_NOSIGNAL` and
/// `MSG_WAITALL` are the caller's business).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendFlags {
    /// `MSG_MORE`: cork for this call.
    pub more: bool,
    /// `MSG_OOB`: the last byte is urgent data.
    pub oob: bool,
}

/// recv(2) flags TCP acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvFlags {
    /// `MSG_PEEK`.
    pub peek: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

/// Integer socket options (value semantics as Linux's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    ReuseAddr,
    ReusePort,
    KeepAlive,
    SndBuf,
    RcvBuf,
    RcvLowat,
    AcceptConn,
    V6Only,
    NoDelay,
    Cork,
    MaxSeg,
    KeepIdle,
    KeepIntvl,
    KeepCnt,
    SynCnt,
    UserTimeout,
    QuickAck,
    DeferAccept,
    Ttl,
    Tos,
    OobInline,
}

/// An ICMP error about a segment we sent, as the IP layer classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable (and the like): the errno Linux's
    /// `icmp_err_convert` gives, and whether it is fatal (port and
    /// protocol unreachable).
    Unreachable { errno: Errno, fatal: bool },
    /// Fragmentation needed / packet too big.
    PacketTooBig { mtu: u16 },
}

/// `TCP_INFO` (a subset of Linux's `struct tcp_info`; times in µs as
/// Linux's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    /// TCPI_OPT_TIMESTAMPS 1, SACK 2, WSCALE 4.
    pub options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub rto: u32,
    pub ato: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub last_data_sent: u32,
    pub last_data_recv: u32,
    pub last_ack_recv: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt: u32,
    pub rttvar: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
    pub min_rtt: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
}

/// Table sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub sockets: usize,
    pub connections: usize,
    pub time_wait: usize,
    pub timers: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SsState {
    Unconnected,
    Connecting,
    Connected,
}

enum Kind {
    Idle,
    Listen(Box<Listener>),
    Conn(Box<Conn>),
}

struct Socket {
    domain: Domain,
    opts: SockOpts,
    /// The bound name (wire form; a dual-stack wildcard stays `::`).
    local: Option<SockAddr>,
    explicit_port: bool,
    explicit_addr: bool,
    /// Port chosen by connect(): shareable with other connections.
    connect_port: bool,
    in_ports: bool,
    hashed: Option<ConnKey>,
    ss: SsState,
    shut_rd: bool,
    shut_wr: bool,
    closed: bool,
    kind: Kind,
}

impl Socket {
    /// Drops an automatically chosen port; an address bind() chose stays
    /// (Linux's SOCK_BINDADDR_LOCK), so a later listen or connect reuses it.
    fn forget_port(&mut self) {
        self.local = match self.local {
            Some(l) if self.explicit_addr => Some(SockAddr::new(l.ip, 0)),
            _ => None,
        };
    }
}

struct TimeWait {
    key: ConnKey,
    snd_nxt: SeqNum,
    rcv_nxt: SeqNum,
    window: u16,
    ts: Option<(u32, u32)>,
    expires: Instant,
    reuseaddr: bool,
    last_oow: Option<Instant>,
}

enum Slot {
    Free(Option<u32>),
    Sock(Box<Socket>),
    Tw(Box<TimeWait>),
}

struct Entry {
    gen_: u32,
    timer: Option<Instant>,
    slot: Slot,
}

struct Keys {
    isn: SipKey,
    ts: SipKey,
    port: SipKey,
    cookie: [SipKey; 2],
}

/// A port user, for the bind rules.
struct PortUse {
    ip: IpAddr,
    dual: bool,
    reuseaddr: bool,
    reuseport: bool,
    listening: bool,
    connect_port: bool,
    owner: u32,
}

pub struct TcpLayer {
    cfg: TcpConfig,
    entries: Vec<Entry>,
    free: Option<u32>,
    conns: HashMap<ConnKey, u32, SipBuild>,
    ports: HashMap<u16, Vec<u32>, SipBuild>,
    listeners: HashMap<u16, Vec<u32>, SipBuild>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    keys: Keys,
    table_key: SipKey,
    port_counter: u32,
    chal: ChallengeLimit,
    /// The last connection a segment went to (bulk flows skip the hash).
    last: Option<(ConnKey, u32, u32)>,
    /// Inside a receive burst, and the connections (slot, generation)
    /// whose ACK waits for its end.
    burst: bool,
    burst_acks: Vec<(u32, u32)>,
}

fn key_from(ctx: &mut impl TcpContext) -> SipKey {
    SipKey(ctx.random_u64(), ctx.random_u64())
}

fn addrs_overlap(a: &PortUse, b: &PortUse) -> bool {
    let fam = match (a.ip.is_v4(), b.ip.is_v4()) {
        (true, true) | (false, false) => true,
        (true, false) => b.dual,
        (false, true) => a.dual,
    };
    fam && (a.ip.is_unspecified() || b.ip.is_unspecified() || a.ip == b.ip)
}

impl TcpLayer {
    /// A layer whose secrets (ISN, cookie, port and table keys) are drawn
    /// from the context's randomness.
    pub fn new<C: TcpContext>(cfg: TcpConfig, ctx: &mut C) -> TcpLayer {
        let keys = Keys {
            isn: key_from(ctx),
            ts: key_from(ctx),
            port: key_from(ctx),
            cookie: [key_from(ctx), key_from(ctx)],
        };
        let table_key = key_from(ctx);
        TcpLayer {
            cfg,
            entries: Vec::new(),
            free: None,
            conns: HashMap::with_hasher(SipBuild(table_key)),
            ports: HashMap::with_hasher(SipBuild(table_key)),
            listeners: HashMap::with_hasher(SipBuild(table_key)),
            timers: BinaryHeap::new(),
            keys,
            table_key,
            port_counter: ctx.random_u64() as u32,
            chal: ChallengeLimit::default(),
            last: None,
            burst: false,
            burst_acks: Vec::new(),
        }
    }

    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    pub fn stats(&self) -> TcpStats {
        let mut s = TcpStats {
            connections: self.conns.len(),
            timers: self.timers.len(),
            ..TcpStats::default()
        };
        for e in &self.entries {
            match e.slot {
                Slot::Sock(_) => s.sockets += 1,
                Slot::Tw(_) => s.time_wait += 1,
                Slot::Free(_) => {}
            }
        }
        s
    }

    // ---- slots ----

    fn alloc(&mut self, slot: Slot) -> u32 {
        if let Some(i) = self.free {
            let e = &mut self.entries[i as usize];
            let Slot::Free(next) = e.slot else {
                unreachable!()
            };
            self.free = next;
            e.slot = slot;
            e.timer = None;
            i
        } else {
            self.entries.push(Entry {
                gen_: 0,
                timer: None,
                slot,
            });
            (self.entries.len() - 1) as u32
        }
    }

    fn free_slot(&mut self, i: u32) {
        let e = &mut self.entries[i as usize];
        e.gen_ = e.gen_.wrapping_add(1);
        e.timer = None;
        e.slot = Slot::Free(self.free);
        self.free = Some(i);
    }

    fn id_of(&self, i: u32) -> SocketId {
        SocketId {
            index: i,
            gen_: self.entries[i as usize].gen_,
        }
    }

    fn sock(&self, id: SocketId) -> Result<&Socket, Errno> {
        match self.entries.get(id.index as usize) {
            Some(Entry {
                gen_,
                slot: Slot::Sock(s),
                ..
            }) if *gen_ == id.gen_ && !s.closed => Ok(s),
            _ => Err(Errno::EINVAL),
        }
    }

    fn sock_mut(&mut self, id: SocketId) -> Result<&mut Socket, Errno> {
        match self.entries.get_mut(id.index as usize) {
            Some(Entry {
                gen_,
                slot: Slot::Sock(s),
                ..
            }) if *gen_ == id.gen_ && !s.closed => Ok(s),
            _ => Err(Errno::EINVAL),
        }
    }

    fn sock_at(&mut self, i: u32) -> Option<&mut Socket> {
        match &mut self.entries[i as usize].slot {
            Slot::Sock(s) => Some(s),
            _ => None,
        }
    }

    /// Runs `f` on the connection in slot `i` with the environment.
    fn with_conn<R>(&mut self, i: u32, f: impl FnOnce(&mut Conn, &mut Env) -> R) -> Option<R> {
        let TcpLayer {
            entries,
            cfg,
            chal,
            burst,
            ..
        } = self;
        let Slot::Sock(s) = &mut entries[i as usize].slot else {
            return None;
        };
        let Kind::Conn(c) = &mut s.kind else {
            return None;
        };
        let mut env = Env {
            cfg,
            chal,
            burst: *burst,
        };
        Some(f(c, &mut env))
    }

    // ---- timers ----

    #[inline]
    fn reschedule(&mut self, i: u32) {
        let e = &self.entries[i as usize];
        let d = match &e.slot {
            Slot::Sock(s) => match &s.kind {
                Kind::Conn(c) => c.deadline(),
                Kind::Listen(l) => l.deadline(),
                Kind::Idle => None,
            },
            Slot::Tw(t) => Some(t.expires),
            Slot::Free(_) => None,
        };
        if let Some(d) = d
            && e.timer.is_none_or(|t| d < t)
        {
            let gen_ = e.gen_;
            self.entries[i as usize].timer = Some(d);
            self.timers.push(Reverse((d, i, gen_)));
        }
    }

    /// When [`TcpLayer::on_timer`] next has work (possibly earlier: a
    /// spurious call is harmless).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|r| r.0.0)
    }

    /// Runs every timer due at `ctx.now()`.
    pub fn on_timer<C: TcpContext>(&mut self, ctx: &mut C) {
        let now = ctx.now();
        while let Some(&Reverse((t, i, gen_))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let e = &mut self.entries[i as usize];
            if e.gen_ != gen_ || e.timer != Some(t) {
                continue;
            }
            e.timer = None;
            match &mut e.slot {
                Slot::Sock(s) => match &mut s.kind {
                    Kind::Conn(_) => {
                        self.with_conn(i, |c, env| c.on_timer(ctx, env, now));
                        self.post(ctx, i);
                    }
                    Kind::Listen(l) => {
                        l.on_timer(ctx, &self.cfg, now);
                        self.reschedule(i);
                    }
                    Kind::Idle => {}
                },
                Slot::Tw(tw) => {
                    if tw.expires <= now {
                        self.tw_kill(i);
                    } else {
                        self.reschedule(i);
                    }
                }
                Slot::Free(_) => {}
            }
        }
    }

    /// Retries output for every connection (after the IP layer had no
    /// transmit buffer).
    pub fn flush<C: TcpContext>(&mut self, ctx: &mut C) {
        let now = ctx.now();
        for i in 0..self.entries.len() as u32 {
            if self
                .with_conn(i, |c, env| c.output(ctx, env, now))
                .is_some()
            {
                self.post(ctx, i);
            }
        }
    }

    /// After a connection ran: TIME_WAIT handover, unhashing when closed,
    /// freeing orphans, timer.
    fn post<C: TcpContext>(&mut self, ctx: &mut C, i: u32) {
        let now = ctx.now();
        let Some(s) = self.sock_at(i) else { return };
        let Kind::Conn(c) = &mut s.kind else {
            self.reschedule(i);
            return;
        };
        if c.state == TcpState::TimeWait {
            let (snd_nxt, rcv_nxt, window, ts) = c.time_wait_state();
            let key = ConnKey {
                local: c.local,
                remote: c.remote,
            };
            c.done_close(ctx);
            let reuseaddr = s.opts.reuseaddr;
            let tw = TimeWait {
                key,
                snd_nxt,
                rcv_nxt,
                window,
                ts,
                expires: now + self.cfg.time_wait,
                reuseaddr,
                last_oow: None,
            };
            self.unhash(i);
            let t = self.alloc(Slot::Tw(Box::new(tw)));
            self.conns.insert(key, t);
            self.ports.entry(key.local.port).or_default().push(t);
            self.reschedule(t);
        }
        let Some(s) = self.sock_at(i) else { return };
        let Kind::Conn(c) = &s.kind else { return };
        if c.state == TcpState::Close {
            self.unhash(i);
            let s = self.sock_at(i).expect("socket");
            if s.closed {
                self.release_port(i);
                self.free_slot(i);
                return;
            }
        }
        self.reschedule(i);
    }

    /// Removes a closed connection from the connection table (and its
    /// port, unless bind() chose it).
    fn unhash(&mut self, i: u32) {
        let Some(s) = self.sock_at(i) else { return };
        if let Some(k) = s.hashed.take() {
            if self.conns.get(&k) == Some(&i) {
                self.conns.remove(&k);
            }
            let s = self.sock_at(i).expect("socket");
            if !s.explicit_port {
                s.connect_port = false;
                // The port is found through `local`: forget it after.
                self.release_port(i);
                self.sock_at(i).expect("socket").forget_port();
            }
        }
    }

    fn release_port(&mut self, i: u32) {
        let port = match &self.entries[i as usize].slot {
            Slot::Sock(s) if s.in_ports => s.local.map(|l| l.port),
            Slot::Sock(s) => {
                let _ = s;
                None
            }
            Slot::Tw(t) => Some(t.key.local.port),
            Slot::Free(_) => None,
        };
        if let Slot::Sock(s) = &mut self.entries[i as usize].slot {
            s.in_ports = false;
        }
        let Some(port) = port else { return };
        if let Some(v) = self.ports.get_mut(&port) {
            v.retain(|&x| x != i);
            if v.is_empty() {
                self.ports.remove(&port);
            }
        }
    }

    fn add_port(&mut self, i: u32, port: u16) {
        self.ports.entry(port).or_default().push(i);
        if let Some(s) = self.sock_at(i) {
            s.in_ports = true;
        }
    }

    fn tw_kill(&mut self, i: u32) {
        if let Slot::Tw(t) = &self.entries[i as usize].slot {
            let k = t.key;
            if self.conns.get(&k) == Some(&i) {
                self.conns.remove(&k);
            }
        }
        self.release_port(i);
        self.free_slot(i);
    }

    // ---- secrets ----

    fn isn(&self, k: &ConnKey, now: Instant) -> SeqNum {
        let mut h = SipHasher13::new(self.keys.isn);
        h.write(k.local.ip.bytes());
        h.write(k.remote.ip.bytes());
        h.write(&k.local.port.to_be_bytes());
        h.write(&k.remote.port.to_be_bytes());
        // RFC 6528: M is a 4 µs timer; Linux's is 64 ns.
        SeqNum::new((h.finish() as u32).wrapping_add((now.as_nanos() >> 6) as u32))
    }

    fn ts_off(&self, k: &ConnKey) -> u32 {
        let mut h = SipHasher13::new(self.keys.ts);
        h.write(k.local.ip.bytes());
        h.write(k.remote.ip.bytes());
        h.finish() as u32
    }

    // ---- input ----

    /// A segment from the IP layer: `src`/`dst` are the IP header's,
    /// `bytes` the IP payload. `checksum_ok`: the device (or a local
    /// sender) vouches for the checksum, so it is not computed again.
    pub fn receive<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        src: IpAddr,
        dst: IpAddr,
        bytes: &[u8],
        checksum_ok: bool,
    ) {
        let parsed = if checksum_ok {
            TcpSegment::parse_unverified(bytes)
        } else {
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => TcpSegment::parse(bytes, &s, &d),
                (IpAddr::V6(s), IpAddr::V6(d)) => TcpSegment::parse(bytes, &s, &d),
                _ => Err(ParseError::Malformed { offset: 0 }),
            }
        };
        let t = match parsed {
            Ok(t) => t,
            Err(e) => {
                if e == ParseError::BadChecksum {
                    ctx.count(TcpCounter::InCsumErrors, 1);
                }
                ctx.count(TcpCounter::InErrs, 1);
                return;
            }
        };
        ctx.count(TcpCounter::InSegs, 1);
        if t.src_port() == 0 || t.dst_port() == 0 || src.is_multicast() || dst.is_multicast() {
            return;
        }
        let seg = Seg {
            seq: t.seq(),
            ack: t.ack(),
            flags: t.flags(),
            window: t.window(),
            payload: t.payload(),
            opts: t.options().summary(),
            urgent: t.urgent_ptr(),
        };
        let key = ConnKey {
            local: SockAddr::new(dst, t.dst_port()),
            remote: SockAddr::new(src, t.src_port()),
        };
        self.input(ctx, key, &seg);
    }

    /// Starts a receive burst: until [`TcpLayer::end_burst`], in-order
    /// data is acknowledged once per burst (up to 64 KiB), not every
    /// second segment, as Linux acknowledges a GRO packet.
    pub fn begin_burst(&mut self) {
        self.burst = true;
    }

    /// Ends a receive burst: sends the ACKs it deferred.
    pub fn end_burst<C: TcpContext>(&mut self, ctx: &mut C) {
        self.burst = false;
        let now = ctx.now();
        let mut list = std::mem::take(&mut self.burst_acks);
        for &(i, g) in &list {
            if self.entries.get(i as usize).is_none_or(|e| e.gen_ != g) {
                continue;
            }
            if self
                .with_conn(i, |c, env| c.end_burst(ctx, env, now))
                .is_some()
            {
                self.post(ctx, i);
            }
        }
        list.clear();
        self.burst_acks = list;
    }

    /// The connection-table slot for `key`, through the one-entry cache.
    #[inline]
    fn lookup(&mut self, key: &ConnKey) -> Option<u32> {
        if let Some((k, i, g)) = self.last
            && k == *key
            && let Some(e) = self.entries.get(i as usize)
            && e.gen_ == g
            && let Slot::Sock(s) = &e.slot
            && s.hashed == Some(k)
        {
            return Some(i);
        }
        let i = *self.conns.get(key)?;
        if let Slot::Sock(_) = self.entries[i as usize].slot {
            self.last = Some((*key, i, self.entries[i as usize].gen_));
        }
        Some(i)
    }

    fn input<C: TcpContext>(&mut self, ctx: &mut C, key: ConnKey, seg: &Seg) {
        let now = ctx.now();
        if let Some(i) = self.lookup(&key) {
            match &self.entries[i as usize].slot {
                Slot::Tw(_) => {
                    if !self.tw_input(ctx, i, seg, now) {
                        return;
                    }
                    // A new SYN took over the TIME_WAIT: on to a listener.
                }
                Slot::Sock(_) => {
                    let r = self.with_conn(i, |c, env| {
                        let predicted = c.input(ctx, env, seg, now);
                        let list = c.burst_ack && !c.burst_listed;
                        c.burst_listed |= list;
                        (predicted, list)
                    });
                    let Some((predicted, list)) = r else { return };
                    if list {
                        let g = self.entries[i as usize].gen_;
                        self.burst_acks.push((i, g));
                    }
                    if predicted {
                        // Still ESTABLISHED: only the timers may have moved.
                        self.reschedule(i);
                    } else {
                        self.post(ctx, i);
                    }
                    return;
                }
                Slot::Free(_) => return,
            }
        }
        if let Some(l) = self.find_listener(&key) {
            self.listen_input(ctx, l, key, seg, now);
            return;
        }
        // No socket: RFC 9293 3.10.7.1.
        send_reset(ctx, key.local, key.remote, seg);
    }

    /// TIME_WAIT (Linux's tcp_timewait_state_process). Returns true if a
    /// new SYN recycled the entry and should go to a listener.
    fn tw_input<C: TcpContext>(&mut self, ctx: &mut C, i: u32, seg: &Seg, now: Instant) -> bool {
        let Slot::Tw(tw) = &mut self.entries[i as usize].slot else {
            return false;
        };
        let f = seg.flags;
        if f.rst() {
            // tcp_rfc1337 = 0: a reset ends TIME_WAIT.
            ctx.count(TcpCounter::TimeWaitKilled, 1);
            self.tw_kill(i);
            return false;
        }
        if f.syn() && !f.ack() {
            let newer_ts = match (tw.ts, seg.opts.timestamps) {
                (Some((recent, _)), Some(t)) => (t.val.wrapping_sub(recent) as i32) > 0,
                _ => false,
            };
            if seg.seq.after(tw.rcv_nxt) || newer_ts {
                ctx.count(TcpCounter::TimeWaitRecycled, 1);
                self.tw_kill(i);
                return true;
            }
        }
        let retransmitted_fin = f.fin() && seg.seq + seg.len() == tw.rcv_nxt;
        if retransmitted_fin {
            tw.expires = now + self.cfg.time_wait;
        } else {
            if let Some(t) = tw.last_oow
                && now - t < self.cfg.invalid_ratelimit
            {
                return false;
            }
            tw.last_oow = Some(now);
        }
        let tw = &**tw;
        let options = TcpOptionSet {
            timestamps: tw.ts.map(|(recent, off)| Timestamps {
                val: ((now.as_nanos() / 1_000_000) as u32).wrapping_add(off),
                ecr: recent,
            }),
            ..TcpOptionSet::default()
        };
        let b = TcpBuilder {
            src_port: tw.key.local.port,
            dst_port: tw.key.remote.port,
            seq: tw.snd_nxt,
            ack: tw.rcv_nxt,
            flags: TcpFlags::ACK,
            window: tw.window,
            urgent_ptr: 0,
            options,
        };
        emit(ctx, &tw.key.local, &tw.key.remote, &b, &[], &[], 0, 0);
        self.reschedule(i);
        false
    }

    fn port_use(&self, i: u32) -> Option<PortUse> {
        match &self.entries[i as usize].slot {
            Slot::Sock(s) => {
                let l = s.local?;
                Some(PortUse {
                    ip: l.ip,
                    dual: s.domain == Domain::V6 && !s.opts.v6only && l.ip == IpAddr::V6_ANY,
                    reuseaddr: s.opts.reuseaddr,
                    reuseport: s.opts.reuseport,
                    listening: matches!(s.kind, Kind::Listen(_)),
                    connect_port: s.connect_port,
                    owner: s.opts.owner,
                })
            }
            Slot::Tw(t) => Some(PortUse {
                ip: t.key.local.ip,
                dual: false,
                reuseaddr: t.reuseaddr,
                reuseport: false,
                listening: false,
                connect_port: false,
                owner: 0,
            }),
            Slot::Free(_) => None,
        }
    }

    /// The listener for a SYN: exact address before wildcard, IPv4
    /// sockets before dual-stack IPv6 ones, a SO_REUSEPORT group spread
    /// by a hash of the 4-tuple.
    fn find_listener(&self, key: &ConnKey) -> Option<u32> {
        let list = self.listeners.get(&key.local.port)?;
        let mut best: Option<(u8, u32)> = None;
        let mut group: [u32; 16] = [0; 16];
        let mut ng = 0;
        for &i in list {
            let Some(u) = self.port_use(i) else { continue };
            let score = if u.ip == key.local.ip {
                3
            } else if u.ip.is_unspecified() && u.ip.is_v4() == key.local.ip.is_v4() {
                2
            } else if u.dual && key.local.ip.is_v4() {
                1
            } else {
                continue;
            };
            match best {
                Some((b, _)) if b > score => {}
                Some((b, _)) if b == score => {
                    if ng < group.len() {
                        group[ng] = i;
                        ng += 1;
                    }
                }
                _ => {
                    best = Some((score, i));
                    group[0] = i;
                    ng = 1;
                }
            }
        }
        best?;
        if ng == 1 {
            return Some(group[0]);
        }
        let mut h = SipHasher13::new(self.table_key);
        h.write(key.remote.ip.bytes());
        h.write(&key.remote.port.to_be_bytes());
        Some(group[(h.finish() % ng as u64) as usize])
    }

    fn listener_mut(&mut self, i: u32) -> Option<&mut Listener> {
        match self.sock_at(i) {
            Some(Socket {
                kind: Kind::Listen(l),
                ..
            }) => Some(l),
            _ => None,
        }
    }

    fn listen_input<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        li: u32,
        key: ConnKey,
        seg: &Seg,
        now: Instant,
    ) {
        let f = seg.flags;
        let (rcvbuf, locked, user_mss, accept_full, syn_full, req) = {
            let Some(s) = self.sock_at(li) else { return };
            let Kind::Listen(l) = &s.kind else { return };
            (
                s.opts.rcvbuf,
                s.opts.rcvbuf_locked,
                s.opts.user_mss,
                l.accept_full(),
                l.syn_full(),
                l.syn_queue.get(&key).cloned(),
            )
        };
        if f.rst() {
            if let Some(r) = req
                && seg.seq == r.irs + 1
                && let Some(l) = self.listener_mut(li)
            {
                l.syn_queue.remove(&key);
            }
            return;
        }
        if f.ack() {
            if f.syn() {
                send_reset(ctx, key.local, key.remote, seg);
                return;
            }
            let req = if let Some(r) = req {
                if seg.ack != r.iss + 1 {
                    send_reset(ctx, key.local, key.remote, seg);
                    return;
                }
                if seg.seq != r.irs + 1 {
                    return;
                }
                if accept_full {
                    ctx.count(TcpCounter::ListenOverflows, 1);
                    ctx.count(TcpCounter::ListenDrops, 1);
                    return;
                }
                if let Some(l) = self.listener_mut(li) {
                    l.syn_queue.remove(&key);
                }
                r
            } else if self.cfg.syncookies
                && let Some(mss) = listen::check_cookie(&self.keys.cookie, &key, seg, now)
            {
                ctx.count(TcpCounter::SyncookiesRecv, 1);
                if accept_full {
                    ctx.count(TcpCounter::ListenOverflows, 1);
                    ctx.count(TcpCounter::ListenDrops, 1);
                    return;
                }
                let neg = listen::cookie_options(&self.cfg, seg, mss, rcvbuf, locked);
                let pmtu = ctx
                    .route(key.remote.ip, Some(key.local.ip))
                    .map_or(1500, |r| r.mtu);
                let ovh = super::mss_overhead(key.local.ip);
                let mut advmss = pmtu.saturating_sub(ovh).max(88);
                if user_mss != 0 {
                    advmss = advmss.min(user_mss);
                }
                ReqSock {
                    local: key.local,
                    remote: key.remote,
                    iss: seg.ack - 1,
                    irs: seg.seq - 1,
                    neg,
                    advmss,
                    window: 0,
                    ts_off: self.ts_off(&key),
                    pmtu,
                    retries: 0,
                    resend_at: now,
                }
            } else {
                if self.cfg.syncookies {
                    ctx.count(TcpCounter::SyncookiesFailed, 1);
                }
                send_reset(ctx, key.local, key.remote, seg);
                return;
            };
            self.create_child(ctx, li, key, &req, seg, now);
            return;
        }
        if !f.syn() {
            return;
        }
        // A SYN.
        if let Some(r) = req {
            if r.irs == seg.seq {
                listen::send_synack(ctx, &r, now, None);
            }
            return;
        }
        if accept_full {
            ctx.count(TcpCounter::ListenOverflows, 1);
            ctx.count(TcpCounter::ListenDrops, 1);
            return;
        }
        let pmtu = ctx
            .route(key.remote.ip, Some(key.local.ip))
            .map_or(1500, |r| r.mtu);
        let ts_off = self.ts_off(&key);
        if syn_full {
            if !self.cfg.syncookies {
                ctx.count(TcpCounter::ListenDrops, 1);
                return;
            }
            let peer_mss = seg.opts.mss.unwrap_or(536);
            let (iss, _) = listen::make_cookie(&self.keys.cookie, &key, seg.seq, peer_mss, now);
            let r = listen::request_from_syn(
                &self.cfg, &key, seg, iss, ts_off, pmtu, rcvbuf, locked, user_mss, now,
            );
            let ts = r
                .neg
                .ts_recent
                .map(|_| listen::cookie_ts(now, ts_off, &r.neg));
            if listen::send_synack(ctx, &r, now, ts) {
                ctx.count(TcpCounter::SyncookiesSent, 1);
            }
            return;
        }
        let iss = self.isn(&key, now);
        let r = listen::request_from_syn(
            &self.cfg, &key, seg, iss, ts_off, pmtu, rcvbuf, locked, user_mss, now,
        );
        listen::send_synack(ctx, &r, now, None);
        if let Some(l) = self.listener_mut(li) {
            l.add_req(key, r);
        }
        self.reschedule(li);
    }

    /// The handshake completed: a connection in the accept queue.
    fn create_child<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        li: u32,
        key: ConnKey,
        r: &ReqSock,
        seg: &Seg,
        now: Instant,
    ) {
        let lid = self.id_of(li);
        let (domain, mut opts, reuse) = {
            let s = self.sock_at(li).expect("listener");
            (s.domain, s.opts.clone(), s.opts.reuseaddr)
        };
        // The accept queue's settings stay with the listener
        // (inet_csk_clone_lock clears icsk_accept_queue).
        opts.defer_accept = 0;
        let _ = reuse;
        let i = self.alloc(Slot::Free(None));
        let id = self.id_of(i);
        let mut c = Conn::new(
            id,
            key.local,
            key.remote,
            opts.clone(),
            &self.cfg,
            r.iss,
            r.ts_off,
            r.pmtu,
            now,
        );
        c.advmss = r.advmss.max(c.advmss.min(r.advmss));
        c.parent = Some(lid);
        c.accept_init(r.irs, &r.neg, now);
        ctx.count(TcpCounter::PassiveOpens, 1);
        self.entries[i as usize].slot = Slot::Sock(Box::new(Socket {
            domain,
            opts,
            local: Some(key.local),
            explicit_port: false,
            explicit_addr: false,
            connect_port: false,
            in_ports: false,
            hashed: Some(key),
            ss: SsState::Connected,
            shut_rd: false,
            shut_wr: false,
            closed: false,
            kind: Kind::Conn(Box::new(c)),
        }));
        self.conns.insert(key, i);
        self.add_port(i, key.local.port);
        if let Some(Socket {
            kind: Kind::Listen(l),
            ..
        }) = self.sock_at(li).map(|s| &mut *s)
        {
            l.accept_queue.push_back(id);
        }
        let now = ctx.now();
        self.with_conn(i, |c, env| c.input(ctx, env, seg, now));
        self.post(ctx, i);
        ctx.event(TcpEvent::Readable(lid));
    }

    /// An ICMP error quoting a segment we sent (`quote`: the TCP header's
    /// first 8 bytes or more; `src`/`dst`: the quoted IP header's).
    pub fn on_icmp_error<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        src: IpAddr,
        dst: IpAddr,
        quote: &[u8],
        err: IcmpError,
    ) {
        if quote.len() < 8 {
            return;
        }
        let sport = u16::from_be_bytes([quote[0], quote[1]]);
        let dport = u16::from_be_bytes([quote[2], quote[3]]);
        let seq = SeqNum::new(u32::from_be_bytes([quote[4], quote[5], quote[6], quote[7]]));
        let key = ConnKey {
            local: SockAddr::new(src, sport),
            remote: SockAddr::new(dst, dport),
        };
        let Some(&i) = self.conns.get(&key) else {
            return;
        };
        let now = ctx.now();
        let r = self.with_conn(i, |c, env| {
            // RFC 5927: only about data in flight.
            if !(seq.after_or_eq(c.snd_una) && seq.before(c.snd_nxt)) {
                return;
            }
            match err {
                IcmpError::PacketTooBig { mtu } => c.set_pmtu(ctx, env, mtu, now),
                IcmpError::Unreachable { errno, fatal } => {
                    if matches!(c.state, TcpState::SynSent | TcpState::SynRecv) {
                        c.err = Some(errno);
                        ctx.event(TcpEvent::Error(c.id, errno));
                        c.done_close(ctx);
                    } else {
                        let _ = fatal;
                        c.soft_err = Some(errno);
                    }
                }
            }
        });
        if r.is_some() {
            self.post(ctx, i);
        }
    }

    // ---- ports ----

    /// Linux's inet_bind_conflict: overlapping addresses conflict unless
    /// both set SO_REUSEPORT, or both set SO_REUSEADDR and the other is
    /// not listening.
    fn conflicts(&self, me: Option<u32>, port: u16, u: &PortUse) -> bool {
        let Some(list) = self.ports.get(&port) else {
            return false;
        };
        for &j in list {
            if Some(j) == me {
                continue;
            }
            let Some(o) = self.port_use(j) else { continue };
            if !addrs_overlap(u, &o) {
                continue;
            }
            // inet_bind_conflict: SO_REUSEPORT only among one user's
            // sockets.
            if u.reuseport && o.reuseport && u.owner == o.owner {
                continue;
            }
            if u.reuseaddr && o.reuseaddr && !o.listening {
                continue;
            }
            return true;
        }
        false
    }

    /// A port for bind(port 0) / listen's autobind: one nobody uses.
    fn pick_free_port(&mut self, ctx: &mut impl TcpContext) -> Option<u16> {
        let (lo, hi) = self.cfg.local_ports;
        let n = u32::from(hi - lo) + 1;
        let start = ctx.random_u64() as u32;
        (0..n)
            .map(|k| lo + ((start.wrapping_add(k)) % n) as u16)
            .find(|p| !self.ports.contains_key(p))
    }

    /// RFC 6056 algorithm 3 (Linux's): a keyed-hash offset per
    /// destination plus a global counter, skipping ports bind() holds and
    /// 4-tuples in use.
    fn pick_connect_port(&mut self, local: IpAddr, remote: SockAddr) -> Option<u16> {
        let (lo, hi) = self.cfg.local_ports;
        let n = u32::from(hi - lo) + 1;
        let mut h = SipHasher13::new(self.keys.port);
        h.write(local.bytes());
        h.write(remote.ip.bytes());
        h.write(&remote.port.to_be_bytes());
        let offset = h.finish() as u32;
        for k in 0..n {
            let port = lo + (offset.wrapping_add(self.port_counter).wrapping_add(k) % n) as u16;
            if let Some(list) = self.ports.get(&port)
                && list.iter().any(|&j| {
                    self.port_use(j).is_none_or(|u| {
                        !u.connect_port && !matches!(self.entries[j as usize].slot, Slot::Tw(_))
                    })
                })
            {
                continue;
            }
            let key = ConnKey {
                local: SockAddr::new(local, port),
                remote,
            };
            if self.conns.contains_key(&key) {
                continue;
            }
            self.port_counter = self.port_counter.wrapping_add(k + 1);
            return Some(port);
        }
        None
    }

    // ---- the socket API ----

    /// socket(AF_INET or AF_INET6, SOCK_STREAM, 0).
    pub fn socket(&mut self, domain: Domain) -> SocketId {
        let opts = SockOpts::new(&self.cfg);
        let i = self.alloc(Slot::Sock(Box::new(Socket {
            domain,
            opts,
            local: None,
            explicit_port: false,
            explicit_addr: false,
            connect_port: false,
            in_ports: false,
            hashed: None,
            ss: SsState::Unconnected,
            shut_rd: false,
            shut_wr: false,
            closed: false,
            kind: Kind::Idle,
        })));
        self.id_of(i)
    }

    /// The wire address for `addr` on a socket of `domain`.
    fn wire_addr(domain: Domain, v6only: bool, addr: SockAddr) -> Result<SockAddr, Errno> {
        match (domain, addr.ip) {
            (Domain::V4, IpAddr::V4(_)) => Ok(addr),
            (Domain::V4, IpAddr::V6(_)) => Err(Errno::EAFNOSUPPORT),
            (Domain::V6, IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) if v6only => {
                    let _ = v4;
                    Err(Errno::EINVAL)
                }
                Some(v4) => Ok(SockAddr::new(IpAddr::V4(v4), addr.port)),
                None => Ok(addr),
            },
            (Domain::V6, IpAddr::V4(_)) => Err(Errno::EINVAL),
        }
    }

    pub fn bind<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        id: SocketId,
        addr: SockAddr,
    ) -> Result<(), Errno> {
        let s = self.sock(id)?;
        // An address kept without its port (after a disconnect) does not
        // count as bound: Linux checks inet_num.
        if s.local.is_some_and(|l| l.port != 0) || !matches!(s.kind, Kind::Idle) {
            return Err(Errno::EINVAL);
        }
        let wire = Self::wire_addr(s.domain, s.opts.v6only, addr)?;
        if !wire.ip.is_unspecified() && !ctx.is_local_addr(wire.ip) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let mut u = self.port_use_for(id, wire.ip);
        let port = if wire.port == 0 {
            self.pick_free_port(ctx).ok_or(Errno::EADDRINUSE)?
        } else {
            u.listening = false;
            if self.conflicts(Some(id.index), wire.port, &u) {
                return Err(Errno::EADDRINUSE);
            }
            wire.port
        };
        let s = self.sock_mut(id)?;
        s.local = Some(SockAddr::new(wire.ip, port));
        s.explicit_port = wire.port != 0;
        s.explicit_addr = !wire.ip.is_unspecified();
        self.add_port(id.index, port);
        Ok(())
    }

    fn port_use_for(&self, id: SocketId, ip: IpAddr) -> PortUse {
        let s = self.sock(id).expect("socket");
        PortUse {
            ip,
            dual: s.domain == Domain::V6 && !s.opts.v6only && ip == IpAddr::V6_ANY,
            reuseaddr: s.opts.reuseaddr,
            reuseport: s.opts.reuseport,
            owner: s.opts.owner,
            listening: false,
            connect_port: false,
        }
    }

    pub fn listen<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        id: SocketId,
        backlog: i32,
    ) -> Result<(), Errno> {
        let somax = self.cfg.somaxconn;
        let backlog = if backlog < 0 || backlog as u32 > somax {
            somax
        } else {
            backlog as u32
        };
        let lkey = self.table_key;
        let s = self.sock_mut(id)?;
        match &mut s.kind {
            Kind::Listen(l) => {
                l.backlog = backlog;
                return Ok(());
            }
            Kind::Conn(c) if c.state != TcpState::Close => return Err(Errno::EINVAL),
            Kind::Conn(_) => {
                s.kind = Kind::Idle;
            }
            Kind::Idle => {}
        }
        if s.ss != SsState::Unconnected {
            s.ss = SsState::Unconnected;
        }
        let (domain, local) = (s.domain, s.local);
        let local = match local {
            Some(l) if l.port != 0 => l,
            _ => {
                let ip = local.map(|l| l.ip).unwrap_or(match domain {
                    Domain::V4 => IpAddr::V4_ANY,
                    Domain::V6 => IpAddr::V6_ANY,
                });
                let port = self.pick_free_port(ctx).ok_or(Errno::EADDRINUSE)?;
                let s = self.sock_mut(id)?;
                s.local = Some(SockAddr::new(ip, port));
                self.add_port(id.index, port);
                SockAddr::new(ip, port)
            }
        };
        let mut u = self.port_use_for(id, local.ip);
        u.listening = true;
        if self.conflicts(Some(id.index), local.port, &u) {
            return Err(Errno::EADDRINUSE);
        }
        let s = self.sock_mut(id)?;
        s.kind = Kind::Listen(Box::new(Listener::new(backlog, lkey)));
        s.shut_rd = false;
        s.shut_wr = false;
        self.listeners.entry(local.port).or_default().push(id.index);
        Ok(())
    }

    /// accept(2): the oldest established connection and its peer's name.
    pub fn accept<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        id: SocketId,
    ) -> Result<(SocketId, SockAddr), Errno> {
        let _ = ctx;
        let s = self.sock_mut(id)?;
        let Kind::Listen(l) = &mut s.kind else {
            return Err(Errno::EINVAL);
        };
        let Some(child) = l.accept_queue.pop_front() else {
            return Err(Errno::EAGAIN);
        };
        let domain = s.domain;
        let cs = self.sock_mut(child)?;
        let Kind::Conn(c) = &mut cs.kind else {
            return Err(Errno::EINVAL);
        };
        c.parent = None;
        Ok((child, c.remote.for_domain(domain)))
    }

    /// connect(2). Starts the handshake and returns `EINPROGRESS`; a
    /// blocking caller waits for writability and calls again, which
    /// returns the outcome as Linux's `__inet_stream_connect` does.
    pub fn connect<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        id: SocketId,
        addr: SockAddr,
    ) -> Result<(), Errno> {
        let now = ctx.now();
        let s = self.sock_mut(id)?;
        match s.ss {
            SsState::Connected => return Err(Errno::EISCONN),
            SsState::Connecting => {
                let state = match &s.kind {
                    Kind::Conn(c) => c.state,
                    _ => TcpState::Close,
                };
                match state {
                    TcpState::SynSent | TcpState::SynRecv => return Err(Errno::EALREADY),
                    TcpState::Close => {
                        s.ss = SsState::Unconnected;
                        let e = match &mut s.kind {
                            Kind::Conn(c) => c.err.take(),
                            _ => None,
                        };
                        return Err(e.unwrap_or(Errno::ECONNABORTED));
                    }
                    _ => {
                        s.ss = SsState::Connected;
                        return Ok(());
                    }
                }
            }
            SsState::Unconnected => {}
        }
        match &s.kind {
            Kind::Listen(_) => return Err(Errno::EISCONN),
            Kind::Conn(c) if c.state != TcpState::Close => return Err(Errno::EISCONN),
            _ => {}
        }
        let remote = Self::wire_addr(s.domain, s.opts.v6only, addr).map_err(|e| {
            if e == Errno::EINVAL {
                Errno::ENETUNREACH
            } else {
                e
            }
        })?;
        if remote.ip.is_multicast() {
            return Err(Errno::ENETUNREACH);
        }
        if let IpAddr::V4(a) = remote.ip
            && a.is_limited_broadcast()
        {
            return Err(Errno::ENETUNREACH);
        }
        let bound = s.local;
        let bound_ip = bound.map(|b| b.ip).filter(|ip| !ip.is_unspecified());
        if let Some(b) = bound_ip
            && b.is_v4() != remote.ip.is_v4()
        {
            return Err(Errno::ENETUNREACH);
        }
        let route = ctx.route(remote.ip, bound_ip).ok_or(Errno::ENETUNREACH)?;
        let local_ip = bound_ip.unwrap_or(route.src);
        let (port, new_port) = match bound {
            Some(b) if b.port != 0 => {
                let key = ConnKey {
                    local: SockAddr::new(local_ip, b.port),
                    remote,
                };
                if self.conns.contains_key(&key) {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                (b.port, false)
            }
            _ => (
                self.pick_connect_port(local_ip, remote)
                    .ok_or(Errno::EADDRNOTAVAIL)?,
                true,
            ),
        };
        let key = ConnKey {
            local: SockAddr::new(local_ip, port),
            remote,
        };
        let iss = self.isn(&key, now);
        let ts_off = self.ts_off(&key);
        let s = self.sock_mut(id)?;
        let opts = s.opts.clone();
        let c = Conn::new(
            id, key.local, remote, opts, &self.cfg, iss, ts_off, route.mtu, now,
        );
        let s = self.sock_mut(id)?;
        s.kind = Kind::Conn(Box::new(c));
        s.local = Some(key.local);
        s.hashed = Some(key);
        s.shut_rd = false;
        s.shut_wr = false;
        if new_port {
            s.connect_port = true;
            self.add_port(id.index, port);
        }
        let s = self.sock_mut(id)?;
        s.ss = SsState::Connecting;
        self.conns.insert(key, id.index);
        let cfg = &self.cfg;
        if let Some(Socket {
            kind: Kind::Conn(c),
            ..
        }) = self.entries[id.index as usize].slot.sock_mut()
        {
            c.connect(ctx, cfg, now);
        }
        self.post(ctx, id.index);
        Err(Errno::EINPROGRESS)
    }

    /// connect(AF_UNSPEC): Linux's tcp_disconnect.
    pub fn disconnect<C: TcpContext>(&mut self, ctx: &mut C, id: SocketId) -> Result<(), Errno> {
        let now = ctx.now();
        let s = self.sock_mut(id)?;
        match &mut s.kind {
            Kind::Conn(c) => {
                if matches!(
                    c.state,
                    TcpState::Established
                        | TcpState::CloseWait
                        | TcpState::FinWait1
                        | TcpState::FinWait2
                        | TcpState::SynRecv
                ) {
                    c.send_active_rst(ctx, now);
                }
                if c.state != TcpState::Close {
                    c.done_close(ctx);
                }
            }
            Kind::Listen(_) => {
                self.stop_listener(ctx, id.index);
            }
            Kind::Idle => {}
        }
        self.post(ctx, id.index);
        let s = self.sock_mut(id)?;
        s.kind = Kind::Idle;
        s.ss = SsState::Unconnected;
        s.shut_rd = false;
        s.shut_wr = false;
        if !s.explicit_port && s.in_ports {
            self.release_port(id.index);
            self.sock_mut(id)?.forget_port();
        }
        Ok(())
    }

    fn stop_listener<C: TcpContext>(&mut self, ctx: &mut C, i: u32) {
        let now = ctx.now();
        let s = self.sock_at(i).expect("socket");
        let port = s.local.map(|l| l.port);
        let Kind::Listen(l) = core::mem::replace(&mut s.kind, Kind::Idle) else {
            return;
        };
        if let Some(p) = port
            && let Some(v) = self.listeners.get_mut(&p)
        {
            v.retain(|&x| x != i);
            if v.is_empty() {
                self.listeners.remove(&p);
            }
        }
        // Connections nobody accepted are reset (inet_csk_listen_stop).
        for child in l.accept_queue {
            let ci = child.index;
            if let Some(Socket {
                kind: Kind::Conn(c),
                closed,
                ..
            }) = self.sock_at(ci).map(|s| &mut *s)
            {
                if c.state.synchronized() && c.state != TcpState::Close {
                    c.send_active_rst(ctx, now);
                }
                c.orphan = true;
                *closed = true;
                if c.state != TcpState::Close {
                    c.done_close(ctx);
                }
                self.post(ctx, ci);
            }
        }
        let s = self.sock_at(i).expect("socket");
        if !s.explicit_port {
            self.release_port(i);
            self.sock_at(i).expect("socket").forget_port();
        }
    }

    /// send(2): bytes queued, or the error Linux's tcp_sendmsg returns.
    pub fn send<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        id: SocketId,
        data: &[u8],
        flags: SendFlags,
    ) -> Result<usize, Errno> {
        let now = ctx.now();
        let s = self.sock_mut(id)?;
        let Kind::Conn(c) = &mut s.kind else {
            return Err(Errno::EPIPE);
        };
        if !matches!(c.state, TcpState::Established | TcpState::CloseWait) {
            if let Some(e) = c.err.take() {
                return Err(e);
            }
            if !matches!(c.state, TcpState::SynSent | TcpState::SynRecv) {
                return Err(Errno::EPIPE);
            }
            return Err(Errno::EAGAIN);
        }
        if c.err.is_some() || c.snd_shutdown {
            return Err(c.err.take().unwrap_or(Errno::EPIPE));
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self
            .with_conn(id.index, |c, env| {
                if flags.oob {
                    c.send_urgent(ctx, env, data, now)
                } else {
                    c.send(ctx, env, data, flags.more, now)
                }
            })
            .unwrap_or(0);
        self.post(ctx, id.index);
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        Ok(n)
    }

    /// recv(2): bytes copied, 0 at end of stream, or the error.
    pub fn recv<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        id: SocketId,
        buf: &mut [u8],
        flags: RecvFlags,
    ) -> Result<usize, Errno> {
        let now = ctx.now();
        let s = self.sock_mut(id)?;
        let shut_rd = s.shut_rd;
        let Kind::Conn(c) = &mut s.kind else {
            if shut_rd && matches!(s.kind, Kind::Idle) {
                return Ok(0);
            }
            return Err(Errno::ENOTCONN);
        };
        if c.rcv.is_empty() || buf.is_empty() {
            if c.done {
                return Ok(0);
            }
            if let Some(e) = c.err.take() {
                return Err(e);
            }
            if c.rcv_shutdown {
                return Ok(0);
            }
            if c.state == TcpState::Close {
                return Err(Errno::ENOTCONN);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            return Err(Errno::EAGAIN);
        }
        // Urgent data out of line: skip the byte at the mark, stop a read
        // at the next one.
        let inline = s.opts.oobinline;
        let copied = c.rcv_nxt - c.rcv.len() as u32;
        let (skip, max) = c.urg.plan_read(copied, c.rcv.len(), inline);
        if skip > 0 && flags.peek {
            let n = buf.len().min(max);
            return match c.rcv.read_at(skip, &mut buf[..n]) {
                0 => Err(Errno::EAGAIN),
                n => Ok(n),
            };
        }
        c.rcv.consume(skip);
        if max == 0 {
            // Only the out-of-line byte was queued: nothing to read yet,
            // or the end of the stream.
            c.urg.consumed(c.rcv_nxt - c.rcv.len() as u32);
            if c.rcv_shutdown || c.done {
                return Ok(0);
            }
            return Err(Errno::EAGAIN);
        }
        let buf_len = buf.len().min(max);
        let buf = &mut buf[..buf_len];
        let n = self
            .with_conn(id.index, |c, env| {
                let n = c.recv(ctx, env, buf, flags.peek, now);
                c.urg.consumed(c.rcv_nxt - c.rcv.len() as u32);
                n
            })
            .unwrap_or(0);
        self.post(ctx, id.index);
        Ok(n)
    }

    /// recv(MSG_OOB): the urgent byte (tcp_recv_urg).
    pub fn recv_oob(&mut self, id: SocketId, peek: bool) -> Result<u8, Errno> {
        let s = self.sock_mut(id)?;
        let inline = s.opts.oobinline;
        let Kind::Conn(c) = &mut s.kind else {
            return Err(Errno::EINVAL);
        };
        match c.urg.recv_oob(peek, inline) {
            Ok(b) => Ok(b),
            Err(super::urgent::UrgError::NotYet) => Err(Errno::EAGAIN),
            Err(super::urgent::UrgError::Invalid) => Err(Errno::EINVAL),
        }
    }

    /// How many urgent pointers the connection took (SIGURG each).
    pub fn urgent_signals(&self, id: SocketId) -> u32 {
        match self.sock(id).map(|s| &s.kind) {
            Ok(Kind::Conn(c)) => c.urg.signals,
            _ => 0,
        }
    }

    /// SIOCATMARK: the next byte to read is the urgent one.
    pub fn at_mark(&self, id: SocketId) -> Result<bool, Errno> {
        Ok(match &self.sock(id)?.kind {
            Kind::Conn(c) => c.urg.at_mark(c.rcv_nxt - c.rcv.len() as u32),
            _ => false,
        })
    }

    /// shutdown(2), as Linux's inet_shutdown.
    pub fn shutdown<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        id: SocketId,
        how: Shutdown,
    ) -> Result<(), Errno> {
        let now = ctx.now();
        let (rd, wr) = match how {
            Shutdown::Read => (true, false),
            Shutdown::Write => (false, true),
            Shutdown::Both => (true, true),
        };
        let s = self.sock_mut(id)?;
        if s.ss == SsState::Connecting {
            let st = match &s.kind {
                Kind::Conn(c) => c.state,
                _ => TcpState::Close,
            };
            if !matches!(st, TcpState::SynSent | TcpState::SynRecv | TcpState::Close) {
                s.ss = SsState::Connected;
            }
        }
        match &mut s.kind {
            Kind::Idle => {
                s.shut_rd |= rd;
                s.shut_wr |= wr;
                Err(Errno::ENOTCONN)
            }
            Kind::Listen(_) => {
                if rd {
                    self.stop_listener(ctx, id.index);
                    let s = self.sock_mut(id)?;
                    s.ss = SsState::Unconnected;
                }
                Ok(())
            }
            Kind::Conn(c) => match c.state {
                TcpState::Close => {
                    c.rcv_shutdown |= rd;
                    c.snd_shutdown |= wr;
                    Err(Errno::ENOTCONN)
                }
                TcpState::SynSent => {
                    c.err = Some(Errno::ECONNRESET);
                    c.done_close(ctx);
                    s.ss = SsState::Unconnected;
                    self.post(ctx, id.index);
                    Ok(())
                }
                _ => {
                    c.rcv_shutdown |= rd;
                    if wr && !c.snd_shutdown {
                        c.snd_shutdown = true;
                        c.close_state(ctx);
                    }
                    self.with_conn(id.index, |c, env| c.output(ctx, env, now));
                    self.post(ctx, id.index);
                    Ok(())
                }
            },
        }
    }

    /// close(2), as Linux's tcp_close: a FIN after the data, or a reset if
    /// unread data is thrown away or SO_LINGER is {1, 0}. The socket id is
    /// dead afterwards; the connection finishes on its own.
    pub fn close<C: TcpContext>(&mut self, ctx: &mut C, id: SocketId) {
        let now = ctx.now();
        let Ok(s) = self.sock_mut(id) else { return };
        match &mut s.kind {
            Kind::Idle => {
                self.release_port(id.index);
                self.free_slot(id.index);
            }
            Kind::Listen(_) => {
                self.stop_listener(ctx, id.index);
                self.release_port(id.index);
                self.free_slot(id.index);
            }
            Kind::Conn(c) => {
                s.closed = true;
                c.orphan = true;
                c.rcv_shutdown = true;
                c.snd_shutdown = true;
                let linger0 = s.opts.linger == Some(0);
                if c.state == TcpState::Close {
                    // Nothing left to do.
                } else if !c.rcv.is_empty() {
                    ctx.count(TcpCounter::TcpAbortOnClose, 1);
                    c.send_active_rst(ctx, now);
                    c.done_close(ctx);
                } else if linger0 {
                    ctx.count(TcpCounter::TcpAbortOnLinger, 1);
                    if matches!(
                        c.state,
                        TcpState::Established
                            | TcpState::CloseWait
                            | TcpState::FinWait1
                            | TcpState::FinWait2
                            | TcpState::SynRecv
                    ) {
                        c.send_active_rst(ctx, now);
                    }
                    c.done_close(ctx);
                } else {
                    c.close_state(ctx);
                    if c.state == TcpState::Close {
                        c.done_close(ctx);
                    } else {
                        self.with_conn(id.index, |c, env| {
                            c.output(ctx, env, now);
                            c.orphaned(env, now);
                        });
                    }
                }
                // A queued child closed before accept is the listener's
                // business no more.
                self.post(ctx, id.index);
            }
        }
    }

    /// Readiness, exactly as Linux's tcp_poll.
    pub fn poll(&self, id: SocketId) -> Poll {
        let Ok(s) = self.sock(id) else {
            return Poll(0);
        };
        let mut m = 0;
        match &s.kind {
            Kind::Listen(l) => {
                if !l.accept_queue.is_empty() {
                    m |= Poll::IN | Poll::RDNORM;
                }
            }
            Kind::Idle => {
                // TCP_CLOSE: hang-up, and an empty send queue is writable.
                m |= Poll::HUP;
                if s.shut_rd {
                    m |= Poll::IN | Poll::RDNORM | Poll::RDHUP;
                }
                m |= Poll::OUT | Poll::WRNORM;
            }
            Kind::Conn(c) => {
                if (c.rcv_shutdown && c.snd_shutdown) || c.state == TcpState::Close {
                    m |= Poll::HUP;
                }
                if c.rcv_shutdown {
                    m |= Poll::IN | Poll::RDNORM | Poll::RDHUP;
                }
                if !matches!(c.state, TcpState::SynSent | TcpState::SynRecv) {
                    // tcp_poll: the out-of-line urgent byte at the head
                    // does not count as readable data.
                    let copied = c.rcv_nxt - c.rcv.len() as u32;
                    let urg = usize::from(!s.opts.oobinline && c.urg.at_mark(copied));
                    if c.rcv.len() >= s.opts.rcvlowat.max(1) + urg {
                        m |= Poll::IN | Poll::RDNORM;
                    }
                    if c.urg.pri() {
                        m |= Poll::PRI;
                    }
                    if c.snd_shutdown || c.state == TcpState::Close || c.writable() {
                        m |= Poll::OUT | Poll::WRNORM;
                    }
                }
                if c.err.is_some() {
                    m |= Poll::ERR;
                }
            }
        }
        Poll(m)
    }

    /// SO_ERROR: the pending error, cleared.
    pub fn take_error(&mut self, id: SocketId) -> Option<Errno> {
        let s = self.sock_mut(id).ok()?;
        match &mut s.kind {
            Kind::Conn(c) => c.err.take().or_else(|| c.soft_err.take()),
            _ => None,
        }
    }

    /// The connection state (`TCP_INFO`'s tcpi_state).
    pub fn state(&self, id: SocketId) -> Result<TcpState, Errno> {
        Ok(match &self.sock(id)?.kind {
            Kind::Idle => TcpState::Close,
            Kind::Listen(_) => TcpState::Listen,
            Kind::Conn(c) => c.state,
        })
    }

    /// getsockname(2).
    pub fn local_addr(&self, id: SocketId) -> Result<SockAddr, Errno> {
        let s = self.sock(id)?;
        let any = match s.domain {
            Domain::V4 => IpAddr::V4_ANY,
            Domain::V6 => IpAddr::V6_ANY,
        };
        let l = s.local.unwrap_or(SockAddr::new(any, 0));
        if l.ip == IpAddr::V6_ANY {
            return Ok(l);
        }
        Ok(l.for_domain(s.domain))
    }

    /// getpeername(2).
    pub fn peer_addr(&self, id: SocketId) -> Result<SockAddr, Errno> {
        let s = self.sock(id)?;
        match &s.kind {
            Kind::Conn(c) if s.ss != SsState::Connecting || c.state.synchronized() => {
                if c.state == TcpState::Close || c.state == TcpState::SynSent {
                    return Err(Errno::ENOTCONN);
                }
                Ok(c.remote.for_domain(s.domain))
            }
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// Bytes readable now (FIONREAD / SIOCINQ).
    pub fn readable_bytes(&self, id: SocketId) -> Result<usize, Errno> {
        match &self.sock(id)?.kind {
            Kind::Conn(c) => Ok(c.rcv.len()),
            Kind::Listen(_) => Err(Errno::EINVAL),
            Kind::Idle => Ok(0),
        }
    }

    /// Bytes queued and not yet acknowledged (SIOCOUTQ).
    pub fn queued_bytes(&self, id: SocketId) -> Result<usize, Errno> {
        match &self.sock(id)?.kind {
            Kind::Conn(c) => Ok(c.snd.len()),
            _ => Ok(0),
        }
    }

    pub fn tcp_info(&self, id: SocketId, now: Instant) -> Result<TcpInfo, Errno> {
        let s = self.sock(id)?;
        Ok(match &s.kind {
            Kind::Conn(c) => c.info(now),
            Kind::Listen(l) => TcpInfo {
                state: TcpState::Listen as u8,
                unacked: l.accept_queue.len() as u32,
                sacked: l.backlog,
                rto: 1_000_000,
                snd_mss: 536,
                rcv_mss: 536,
                advmss: 536,
                snd_cwnd: 10,
                snd_ssthresh: 0x7fff_ffff,
                reordering: 3,
                ..TcpInfo::default()
            },
            Kind::Idle => TcpInfo {
                state: TcpState::Close as u8,
                rto: 1_000_000,
                snd_mss: 536,
                rcv_mss: 536,
                advmss: 536,
                snd_cwnd: 10,
                snd_ssthresh: 0x7fff_ffff,
                reordering: 3,
                ..TcpInfo::default()
            },
        })
    }

    pub fn set_option<C: TcpContext>(
        &mut self,
        ctx: &mut C,
        id: SocketId,
        opt: SockOpt,
        val: i32,
    ) -> Result<(), Errno> {
        let now = ctx.now();
        let cfg_rmem_max = self.cfg.rmem_max;
        let cfg_wmem_max = self.cfg.wmem_max;
        let s = self.sock_mut(id)?;
        let on = val != 0;
        let mut push = false;
        let mut keep = false;
        {
            let o = &mut s.opts;
            match opt {
                SockOpt::ReuseAddr => o.reuseaddr = on,
                SockOpt::ReusePort => o.reuseport = on,
                SockOpt::KeepAlive => {
                    o.keepalive = on;
                    keep = true;
                }
                SockOpt::SndBuf => {
                    let v = (val.max(0) as usize).min(cfg_wmem_max);
                    let v = if val < 0 { cfg_wmem_max } else { v };
                    o.sndbuf = (2 * v).max(4608);
                    o.sndbuf_locked = true;
                }
                SockOpt::RcvBuf => {
                    let v = if val < 0 {
                        cfg_rmem_max
                    } else {
                        (val as usize).min(cfg_rmem_max)
                    };
                    o.rcvbuf = (2 * v).max(2304);
                    o.rcvbuf_locked = true;
                }
                SockOpt::RcvLowat => o.rcvlowat = val.max(1) as usize,
                SockOpt::AcceptConn => return Err(Errno::ENOPROTOOPT),
                SockOpt::V6Only => {
                    if s.domain != Domain::V6 {
                        return Err(Errno::ENOPROTOOPT);
                    }
                    if s.local.is_some() {
                        return Err(Errno::EINVAL);
                    }
                    o.v6only = on;
                }
                SockOpt::NoDelay => {
                    o.nodelay = on;
                    push = on;
                }
                SockOpt::Cork => {
                    o.cork = on;
                    push = !on;
                    if let Kind::Conn(c) = &mut s.kind
                        && !on
                    {
                        c.uncork();
                    }
                }
                SockOpt::MaxSeg => {
                    if val != 0 && !(88..=32767).contains(&val) {
                        return Err(Errno::EINVAL);
                    }
                    o.user_mss = val as u16;
                }
                SockOpt::KeepIdle => {
                    if !(1..=32767).contains(&val) {
                        return Err(Errno::EINVAL);
                    }
                    o.keepidle = val as u32;
                    keep = true;
                }
                SockOpt::KeepIntvl => {
                    if !(1..=32767).contains(&val) {
                        return Err(Errno::EINVAL);
                    }
                    o.keepintvl = val as u32;
                }
                SockOpt::KeepCnt => {
                    if !(1..=127).contains(&val) {
                        return Err(Errno::EINVAL);
                    }
                    o.keepcnt = val as u32;
                }
                SockOpt::SynCnt => {
                    if !(1..=127).contains(&val) {
                        return Err(Errno::EINVAL);
                    }
                    o.syncnt = val as u8;
                }
                SockOpt::UserTimeout => {
                    if val < 0 {
                        return Err(Errno::EINVAL);
                    }
                    o.user_timeout = val as u32;
                }
                SockOpt::QuickAck => o.quickack = on,
                SockOpt::DeferAccept => o.defer_accept = u32::from(secs_to_retrans(val)),
                SockOpt::Ttl => {
                    if val == -1 {
                        o.ttl = 0;
                    } else if !(1..=255).contains(&val) {
                        return Err(Errno::EINVAL);
                    } else {
                        o.ttl = val as u8;
                    }
                }
                SockOpt::Tos => o.tos = (val as u8) & !0x3,
                SockOpt::OobInline => o.oobinline = on,
            }
        }
        let opts = s.opts.clone();
        if let Kind::Conn(c) = &mut s.kind {
            let old_cc = c.opts.cc;
            c.opts = opts;
            c.opts.cc = old_cc;
            if keep {
                c.keepalive_changed(now);
            }
            if matches!(opt, SockOpt::SndBuf)
                && c.opts.sndbuf > c.snd.capacity()
                && c.snd.capacity() > 0
            {
                c.snd.grow(c.opts.sndbuf);
            }
            if matches!(opt, SockOpt::RcvBuf)
                && c.opts.rcvbuf > c.rcv.capacity()
                && c.rcv.capacity() > 0
            {
                c.rcv.grow(c.opts.rcvbuf);
            }
            if push {
                self.with_conn(id.index, |c, env| c.output(ctx, env, now));
            }
            self.post(ctx, id.index);
        }
        Ok(())
    }

    pub fn get_option(&self, id: SocketId, opt: SockOpt) -> Result<i32, Errno> {
        let s = self.sock(id)?;
        let o = match &s.kind {
            Kind::Conn(c) => &c.opts,
            _ => &s.opts,
        };
        let b = |x: bool| i32::from(x);
        Ok(match opt {
            SockOpt::ReuseAddr => b(s.opts.reuseaddr),
            SockOpt::ReusePort => b(s.opts.reuseport),
            SockOpt::KeepAlive => b(o.keepalive),
            SockOpt::SndBuf => match &s.kind {
                Kind::Conn(c) if !o.sndbuf_locked && c.snd.capacity() > 0 => {
                    c.snd.capacity() as i32
                }
                _ => o.sndbuf as i32,
            },
            SockOpt::RcvBuf => match &s.kind {
                Kind::Conn(c) if !o.rcvbuf_locked && c.rcv.capacity() > 0 => {
                    c.rcv.capacity() as i32
                }
                _ => o.rcvbuf as i32,
            },
            SockOpt::RcvLowat => o.rcvlowat as i32,
            SockOpt::AcceptConn => b(matches!(s.kind, Kind::Listen(_))),
            SockOpt::V6Only => {
                if s.domain != Domain::V6 {
                    return Err(Errno::EOPNOTSUPP);
                }
                b(s.opts.v6only)
            }
            SockOpt::NoDelay => b(o.nodelay),
            SockOpt::Cork => b(o.cork),
            SockOpt::MaxSeg => match &s.kind {
                Kind::Conn(c) if c.state.synchronized() => c.mss as i32,
                _ => {
                    if o.user_mss != 0 {
                        i32::from(o.user_mss)
                    } else {
                        536
                    }
                }
            },
            SockOpt::KeepIdle => o.keepidle as i32,
            SockOpt::KeepIntvl => o.keepintvl as i32,
            SockOpt::KeepCnt => o.keepcnt as i32,
            SockOpt::SynCnt => {
                if o.syncnt != 0 {
                    i32::from(o.syncnt)
                } else {
                    i32::from(self.cfg.syn_retries)
                }
            }
            SockOpt::UserTimeout => o.user_timeout as i32,
            SockOpt::QuickAck => b(o.quickack),
            SockOpt::DeferAccept => retrans_to_secs(o.defer_accept as u8),
            SockOpt::Ttl => {
                if o.ttl == 0 {
                    64
                } else {
                    i32::from(o.ttl)
                }
            }
            SockOpt::Tos => i32::from(o.tos),
            SockOpt::OobInline => b(o.oobinline),
        })
    }

    /// SO_LINGER: `Some(seconds)` when on.
    pub fn set_linger(&mut self, id: SocketId, linger: Option<u32>) -> Result<(), Errno> {
        let s = self.sock_mut(id)?;
        s.opts.linger = linger;
        if let Kind::Conn(c) = &mut s.kind {
            c.opts.linger = linger;
        }
        Ok(())
    }

    /// The user that created the socket (its `sk_uid`), for SO_REUSEPORT.
    pub fn set_owner(&mut self, id: SocketId, uid: u32) -> Result<(), Errno> {
        self.sock_mut(id)?.opts.owner = uid;
        Ok(())
    }

    pub fn linger(&self, id: SocketId) -> Result<Option<u32>, Errno> {
        Ok(self.sock(id)?.opts.linger)
    }

    /// TCP_CONGESTION: "cubic" or "reno" (ENOENT otherwise).
    pub fn set_congestion(&mut self, id: SocketId, name: &str) -> Result<(), Errno> {
        let algo = CcAlgo::from_name(name).ok_or(super::ENOENT)?;
        let s = self.sock_mut(id)?;
        s.opts.cc = algo;
        if let Kind::Conn(c) = &mut s.kind {
            c.opts.cc = algo;
            c.cc.set_algo(algo);
        }
        Ok(())
    }

    pub fn congestion(&self, id: SocketId) -> Result<&'static str, Errno> {
        let s = self.sock(id)?;
        Ok(match &s.kind {
            Kind::Conn(c) => c.cc.algo().name(),
            _ => s.opts.cc.name(),
        })
    }

    /// A listening socket's queue lengths (SYN queue, accept queue).
    pub fn listen_queues(&self, id: SocketId) -> Result<(usize, usize), Errno> {
        match &self.sock(id)?.kind {
            Kind::Listen(l) => Ok((l.syn_queue.len(), l.accept_queue.len())),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Every socket with a name, as `ss -tan` lists them: bound and
    /// listening sockets, connections (those the application closed and
    /// those waiting in an accept queue too) and TIME_WAIT entries.
    pub fn table(&self) -> Vec<TcpRow> {
        let mut rows = Vec::new();
        for e in &self.entries {
            match &e.slot {
                Slot::Sock(s) => {
                    let row = match &s.kind {
                        Kind::Conn(c) => TcpRow {
                            state: c.state,
                            local: s.local,
                            remote: Some(c.remote),
                            recv_q: c.rcv.len(),
                            send_q: c.snd.len(),
                        },
                        Kind::Listen(l) => TcpRow {
                            state: TcpState::Listen,
                            local: s.local,
                            remote: None,
                            recv_q: l.accept_queue.len(),
                            send_q: l.backlog as usize,
                        },
                        // An unbound, unconnected socket has no entry in
                        // Linux's tables either.
                        Kind::Idle if s.closed || s.local.is_none() => continue,
                        Kind::Idle => TcpRow {
                            state: TcpState::Close,
                            local: s.local,
                            remote: None,
                            recv_q: 0,
                            send_q: 0,
                        },
                    };
                    rows.push(row);
                }
                Slot::Tw(t) => rows.push(TcpRow {
                    state: TcpState::TimeWait,
                    local: Some(t.key.local),
                    remote: Some(t.key.remote),
                    recv_q: 0,
                    send_q: 0,
                }),
                Slot::Free(_) => {}
            }
        }
        rows
    }

    /// The 4-tuples in TIME_WAIT (for tests and `ss`).
    pub fn time_wait(&self) -> Vec<ConnKey> {
        self.entries
            .iter()
            .filter_map(|e| match &e.slot {
                Slot::Tw(t) => Some(t.key),
                _ => None,
            })
            .collect()
    }
}

/// One line of [`TcpLayer::table`]: what `ss -tan` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRow {
    pub state: TcpState,
    /// The bound name (`None`: not bound yet).
    pub local: Option<SockAddr>,
    pub remote: Option<SockAddr>,
    /// Connections: bytes received and not read. Listeners: connections
    /// waiting for accept.
    pub recv_q: usize,
    /// Connections: bytes not yet acknowledged. Listeners: the backlog.
    pub send_q: usize,
}

impl Slot {
    fn sock_mut(&mut self) -> Option<&mut Socket> {
        match self {
            Slot::Sock(s) => Some(s),
            _ => None,
        }
    }
}

/// TCP_DEFER_ACCEPT seconds as SYN-ACK retransmissions (Linux's
/// secs_to_retrans with a 1 s initial timeout doubling up to 120 s).
fn secs_to_retrans(secs: i32) -> u8 {
    let (mut timeout, mut period, mut n) = (1i32, 1i32, 1u8);
    if secs <= 0 {
        return 0;
    }
    while secs > period && n < 255 {
        n += 1;
        timeout = (timeout * 2).min(120);
        period += timeout;
    }
    n
}

/// The seconds getsockopt reports for `n` retransmissions (retrans_to_secs).
fn retrans_to_secs(n: u8) -> i32 {
    let (mut timeout, mut period) = (1i32, 0i32);
    if n > 0 {
        period = 1;
        for _ in 1..n {
            timeout = (timeout * 2).min(120);
            period += timeout;
        }
    }
    period
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defer_accept_rounds_as_linux() {
        let round = |s| retrans_to_secs(secs_to_retrans(s));
        // Measured on Linux: 1 -> 1, 2..3 -> 3, 4..7 -> 7, 5 -> 7, 8 -> 15.
        let want = [
            (-5, 0),
            (0, 0),
            (1, 1),
            (2, 3),
            (3, 3),
            (4, 7),
            (5, 7),
            (7, 7),
            (8, 15),
        ];
        for (secs, got) in want {
            assert_eq!(round(secs), got, "{secs} s");
        }
        // 1+2+4+...+64 = 127, then 120 s steps.
        assert_eq!(round(128), 247);
        assert_eq!(secs_to_retrans(i32::MAX), 255);
    }

    #[test]
    fn listener_shut_rd_keeps_bound_address() {
        let mut f = Fake {
            now: Instant::ZERO,
            rng: 3,
        };
        let mut t = TcpLayer::new(TcpConfig::default(), &mut f);
        let ip = IpAddr::V4(crate::Ipv4Addr::new(192, 0, 2, 1));
        let l = t.socket(Domain::V4);
        t.bind(&mut f, l, SockAddr::new(ip, 0)).unwrap();
        t.listen(&mut f, l, 4).unwrap();
        t.shutdown(&mut f, l, Shutdown::Read).unwrap();
        // The port bind() chose is gone, the address it was given stays.
        assert_eq!(t.local_addr(l).unwrap(), SockAddr::new(ip, 0));
        t.listen(&mut f, l, 4).unwrap();
        let a = t.local_addr(l).unwrap();
        assert_eq!(a.ip, ip);
        assert_ne!(a.port, 0);
        // A wildcard-bound listener forgets everything, as before.
        let w = t.socket(Domain::V4);
        t.bind(&mut f, w, SockAddr::new(IpAddr::V4_ANY, 0)).unwrap();
        t.listen(&mut f, w, 4).unwrap();
        t.shutdown(&mut f, w, Shutdown::Read).unwrap();
        assert_eq!(t.local_addr(w).unwrap().port, 0);
        assert!(t.local_addr(w).unwrap().ip.is_unspecified());
    }

    #[test]
    fn reuseport_only_between_one_users_sockets() {
        let mut f = Fake {
            now: Instant::ZERO,
            rng: 9,
        };
        let mut t = TcpLayer::new(TcpConfig::default(), &mut f);
        let ip = IpAddr::V4(crate::Ipv4Addr::new(192, 0, 2, 1));
        let open = |t: &mut TcpLayer, f: &mut Fake, uid: u32| {
            let s = t.socket(Domain::V4);
            t.set_option(f, s, SockOpt::ReusePort, 1).unwrap();
            t.set_owner(s, uid).unwrap();
            s
        };
        let a = open(&mut t, &mut f, 0);
        t.bind(&mut f, a, SockAddr::new(ip, 5000)).unwrap();
        let b = open(&mut t, &mut f, 0);
        t.bind(&mut f, b, SockAddr::new(ip, 5000)).unwrap();
        let c = open(&mut t, &mut f, 65534);
        assert_eq!(
            t.bind(&mut f, c, SockAddr::new(ip, 5000)),
            Err(Errno::EADDRINUSE)
        );
    }

    #[test]
    fn defer_accept_option_reads_rounded() {
        let mut f = Fake {
            now: Instant::ZERO,
            rng: 5,
        };
        let mut t = TcpLayer::new(TcpConfig::default(), &mut f);
        let s = t.socket(Domain::V4);
        t.set_option(&mut f, s, SockOpt::DeferAccept, 5).unwrap();
        assert_eq!(t.get_option(s, SockOpt::DeferAccept).unwrap(), 7);
        t.set_option(&mut f, s, SockOpt::DeferAccept, -1).unwrap();
        assert_eq!(t.get_option(s, SockOpt::DeferAccept).unwrap(), 0);
    }
    use crate::context::{InstantContext, RngContext};
    use crate::tcp::{Route, SendError, Transmit};

    struct Fake {
        now: Instant,
        rng: u64,
    }
    impl InstantContext for Fake {
        fn now(&self) -> Instant {
            self.now
        }
    }
    impl RngContext for Fake {
        fn random_u64(&mut self) -> u64 {
            self.rng = self
                .rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.rng
        }
    }
    impl TcpContext for Fake {
        fn count(&mut self, _: TcpCounter, _: u64) {}
        fn event(&mut self, _: TcpEvent) {}
        fn route(&mut self, _: IpAddr, _: Option<IpAddr>) -> Option<Route> {
            None
        }
        fn is_local_addr(&self, _: IpAddr) -> bool {
            true
        }
        fn send(&mut self, _: Transmit, _: impl FnOnce(&mut [u8])) -> Result<(), SendError> {
            Ok(())
        }
    }

    fn key(port: u16) -> ConnKey {
        ConnKey {
            local: SockAddr::v4([192, 0, 2, 1], port),
            remote: SockAddr::v4([192, 0, 2, 2], 80),
        }
    }

    #[test]
    fn isn_rfc6528() {
        let mut f = Fake {
            now: Instant::from_millis(5000),
            rng: 1,
        };
        let t = TcpLayer::new(TcpConfig::default(), &mut f);
        let t0 = f.now;
        // Same tuple, same time: same ISN; the clock moves it forward by
        // one per 64 ns.
        assert_eq!(t.isn(&key(1), t0), t.isn(&key(1), t0));
        let later = t0 + crate::time::Duration::from_micros(64);
        assert_eq!(t.isn(&key(1), later) - t.isn(&key(1), t0), 1000);
        // Other tuples are unrelated.
        let d = t.isn(&key(2), t0) - t.isn(&key(1), t0);
        assert!(d.unsigned_abs() > 1 << 16, "{d}");
        // Another stack (another secret) gives another ISN.
        let mut g = Fake { now: t0, rng: 99 };
        let u = TcpLayer::new(TcpConfig::default(), &mut g);
        assert_ne!(u.isn(&key(1), t0), t.isn(&key(1), t0));
    }

    #[test]
    fn ephemeral_ports_rfc6056() {
        let mut f = Fake {
            now: Instant::ZERO,
            rng: 7,
        };
        let mut t = TcpLayer::new(TcpConfig::default(), &mut f);
        let local = IpAddr::V4(crate::Ipv4Addr::new(192, 0, 2, 1));
        let r = SockAddr::v4([192, 0, 2, 2], 80);
        let p1 = t.pick_connect_port(local, r).unwrap();
        let p2 = t.pick_connect_port(local, r).unwrap();
        assert!((32768..=60999).contains(&p1));
        // Algorithm 3: consecutive for one destination (the counter moves).
        assert_eq!(p2, if p1 == 60999 { 32768 } else { p1 + 1 });
        // Another destination starts somewhere else.
        let q = t
            .pick_connect_port(local, SockAddr::v4([192, 0, 2, 3], 443))
            .unwrap();
        assert!(q.abs_diff(p2) > 2);
    }
}
