//! TCP (RFC 9293 and what Linux does by default), sans-IO.
//!
//! # Shape
//!
//! [`TcpLayer`] owns every TCP socket of a stack: listeners, connections,
//! TIME_WAIT remnants, the port table and the timers. It is driven from
//! outside and never calls the OS:
//!
//! - the IP layer hands it segments: [`TcpLayer::receive`] (checksum
//!   verified here over the pseudo-header, unless the caller says the
//!   device did) and ICMP errors about segments it sent
//!   ([`TcpLayer::on_icmp_error`]);
//! - the driver asks [`TcpLayer::next_deadline`] and calls
//!   [`TcpLayer::on_timer`] when it is due;
//! - the socket shim (libshunt.so) calls the socket API: `socket`, `bind`,
//!   `listen`, `accept`, `connect`, `send`, `recv`, `shutdown`, `close`,
//!   options, `poll` (Linux's `tcp_poll` bits), `tcp_info`.
//!
//! Everything TCP needs from the rest of the stack is the narrow
//! [`TcpContext`]: the clock, randomness, counters, events, routes and
//! segment output. Tests implement it with fakes.
//!
//! # Output: push, into the IP layer's buffer
//!
//! Segments go out through [`TcpContext::send`]: TCP says how long the
//! segment is, the IP layer finds room for it (a frame in the TX ring with
//! its own headers in front) and calls TCP's closure with exactly that
//! many bytes; TCP writes its header, copies the payload straight from the
//! send ring and fills in the checksum. So a segment costs no allocation
//! and one payload copy (send ring to frame), and nothing is queued inside
//! TCP waiting to be pulled. Segments are sent where Linux sends them:
//! inside `receive` (ACKs, data the ACK let out), `on_timer` and the
//! socket calls. The IP layer must not call back into `TcpLayer` from
//! inside `send`: a segment to one of the stack's own addresses (a
//! self-connection) is queued by the IP layer and delivered after the
//! current call returns. If `send` fails (no TX buffer), TCP treats the
//! segment as not sent: unsent data stays queued and is tried again on the
//! next event or on [`TcpLayer::flush`].
//!
//! # Wiring it into the IP layer
//!
//! - `receive(ctx, src, dst, bytes, checksum_ok)`: `bytes` is exactly the
//!   TCP segment (IP payload without link padding); `checksum_ok` when the
//!   device said DATA_VALID or the segment came from this stack itself.
//!   GSO super-segments from a kernel peer are fine as they are.
//! - ICMP errors quoting a TCP header: `on_icmp_error(ctx, quoted src,
//!   quoted dst, quoted TCP bytes (≥ 8), IcmpError)`; in SYN_SENT any
//!   unreachable aborts the connect with its errno (Linux), otherwise it
//!   is a soft error; packet-too-big lowers the MSS and resends.
//! - [`Transmit`] carries the socket's `IP_TTL`/`IP_TOS` (0 = default);
//!   TCP segments want DF set (path MTU discovery, as Linux).
//! - After [`SendError::NoBuffer`] call [`TcpLayer::flush`] once transmit
//!   room is back.
//! - Timers: arm the driver's wake-up at [`TcpLayer::next_deadline`].
//!
//! # Addresses
//!
//! Connections are keyed by wire addresses ([`IpAddr`] of either version);
//! a dual-stack IPv6 socket carries IPv4 connections, reported back to the
//! application as v4-mapped names. Nothing here depends on the version
//! beyond the pseudo-header and the header overhead in the MSS.

mod addr;
mod assembler;
pub mod cc;
mod conn;
mod layer;
mod listen;
mod ring;
pub mod rtt;
mod scoreboard;
mod siphash;
pub mod urgent;

pub use crate::errno::Errno;
pub use addr::{ConnKey, Domain, IpAddr, SockAddr};
pub use assembler::Assembler;
pub use cc::{CcAlgo, Congestion};
pub use layer::{
    IcmpError, Poll, RecvFlags, SendFlags, Shutdown, SockOpt, SocketId, TcpInfo, TcpLayer, TcpRow,
    TcpStats,
};
pub use ring::Ring;
pub use rtt::RttEstimator;
pub use scoreboard::Scoreboard;
pub use siphash::{SipBuild, SipHasher13, SipKey, siphash13};

use crate::context::{InstantContext, RngContext};
use crate::time::Duration;
use crate::wire::tcp::TcpBuilder;

/// `ENOENT` (TCP_CONGESTION with an unknown name).
pub const ENOENT: Errno = Errno(2);

/// What TCP needs from the rest of the stack, beyond the clock
/// ([`InstantContext`]) and randomness ([`RngContext`], for secrets and
/// port offsets).
pub trait TcpContext: InstantContext + RngContext {
    /// Adds `n` to a counter.
    fn count(&mut self, counter: TcpCounter, n: u64);
    /// An observable change, emitted at the moment it happens.
    fn event(&mut self, event: TcpEvent);
    /// The route to `dst`: source address (`src` if the socket is bound
    /// to one) and path MTU. `None`: unreachable (`ENETUNREACH`).
    fn route(&mut self, dst: IpAddr, src: Option<IpAddr>) -> Option<Route>;
    /// Whether `addr` is one of the stack's own addresses (bind rules).
    fn is_local_addr(&self, addr: IpAddr) -> bool;
    /// Sends one segment of `tx.len` bytes: the IP layer supplies a
    /// buffer of exactly that length (after its own headers) and calls
    /// `write` once; `write` fills in the whole TCP segment, checksum
    /// included. An error means the segment was not sent.
    fn send(&mut self, tx: Transmit, write: impl FnOnce(&mut [u8])) -> Result<(), SendError>;
    /// Sends `n` segments of `tx.len` bytes each to the same place (a
    /// run of full-sized segments), as `n` calls of [`TcpContext::send`]
    /// would: `write(i, buf)` fills segment `i`. The IP layer may build
    /// the later frames from the first one's headers (software GSO).
    /// Returns how many were sent: it stops at the first error.
    fn send_run(
        &mut self,
        tx: Transmit,
        n: usize,
        mut write: impl FnMut(usize, &mut [u8]),
    ) -> usize {
        for i in 0..n {
            if self.send(tx, |b| write(i, b)).is_err() {
                return i;
            }
        }
        n
    }
}

/// A segment on its way to the IP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TCP header plus payload.
    pub len: usize,
    /// `IP_TTL` / `IPV6_UNICAST_HOPS`; 0: the default.
    pub ttl: u8,
    /// `IP_TOS` / `IPV6_TCLASS`.
    pub tos: u8,
}

/// Why a segment was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No transmit buffer now; try later.
    NoBuffer,
    /// No route to the destination.
    Unreachable,
}

/// Source address and path MTU for a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub src: IpAddr,
    pub mtu: u16,
}

/// TCP's states, numbered as Linux's `TCP_ESTABLISHED`.. (what
/// `tcpi_state` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
}

impl TcpState {
    /// Synchronized states (RFC 9293 3.3.2): the handshake is done.
    pub fn synchronized(self) -> bool {
        !matches!(
            self,
            TcpState::SynSent | TcpState::SynRecv | TcpState::Close | TcpState::Listen
        )
    }
}

/// Observable changes (Linux's socket callbacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// A connection changed state (`sk_state_change`).
    State {
        id: SocketId,
        from: TcpState,
        to: TcpState,
    },
    /// Data, EOF or (on a listener) a connection arrived
    /// (`sk_data_ready`): edge-triggered pollers wake on every one.
    Readable(SocketId),
    /// Send space was freed for a writer that found none
    /// (`sk_write_space`).
    Writable(SocketId),
    /// An error was set (`sk_error_report`).
    Error(SocketId, Errno),
}

macro_rules! counters {
    ($($name:ident = $linux:literal,)*) => {
        /// Counters, named (in [`TcpCounter::name`]) as Linux's
        /// `/proc/net/snmp` (`Tcp:`) and `/proc/net/netstat` (`TcpExt:`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum TcpCounter { $($name,)* }

        impl TcpCounter {
            pub const ALL: &'static [TcpCounter] = &[$(TcpCounter::$name,)*];
            pub const COUNT: usize = Self::ALL.len();
            pub fn name(self) -> &'static str {
                match self { $(TcpCounter::$name => $linux,)* }
            }
        }
    };
}

counters! {
    ActiveOpens = "ActiveOpens",
    PassiveOpens = "PassiveOpens",
    AttemptFails = "AttemptFails",
    EstabResets = "EstabResets",
    InSegs = "InSegs",
    OutSegs = "OutSegs",
    RetransSegs = "RetransSegs",
    InErrs = "InErrs",
    OutRsts = "OutRsts",
    InCsumErrors = "InCsumErrors",
    SyncookiesSent = "SyncookiesSent",
    SyncookiesRecv = "SyncookiesRecv",
    SyncookiesFailed = "SyncookiesFailed",
    ListenOverflows = "ListenOverflows",
    ListenDrops = "ListenDrops",
    PawsEstab = "PAWSEstab",
    DelayedAcks = "DelayedACKs",
    TcpTimeouts = "TCPTimeouts",
    TcpSackRecovery = "TCPSackRecovery",
    TcpRenoRecovery = "TCPRenoRecovery",
    TcpFastRetrans = "TCPFastRetrans",
    TcpSlowStartRetrans = "TCPSlowStartRetrans",
    TcpLostRetransmit = "TCPLostRetransmit",
    TcpChallengeAck = "TCPChallengeACK",
    TcpSynChallenge = "TCPSYNChallenge",
    TcpAckSkippedChallenge = "TCPACKSkippedChallenge",
    TcpAbortOnData = "TCPAbortOnData",
    TcpAbortOnClose = "TCPAbortOnClose",
    TcpAbortOnTimeout = "TCPAbortOnTimeout",
    TcpAbortOnLinger = "TCPAbortOnLinger",
    TcpOfoQueue = "TCPOFOQueue",
    TcpOfoDrop = "TCPOFODrop",
    TcpDsackRecv = "TCPDSACKRecv",
    TcpDsackOldSent = "TCPDSACKOldSent",
    TcpWinProbe = "TCPWinProbe",
    TcpKeepAlive = "TCPKeepAlive",
    TimeWaitKilled = "TWKilled",
    TimeWaitRecycled = "TWRecycled",
    TcpRcvQDrop = "TCPRcvQDrop",
    TcpPureAcks = "TCPPureAcks",
    TcpHpAcks = "TCPHPAcks",
    TcpOrigDataSent = "TCPOrigDataSent",
    TcpLossProbes = "TCPLossProbes",
    TcpLossProbeRecovery = "TCPLossProbeRecovery",
}

/// A plain array of counters, for contexts that just want to keep them.
#[derive(Clone, Debug)]
pub struct TcpCounters(pub [u64; TcpCounter::COUNT]);

impl Default for TcpCounters {
    fn default() -> Self {
        TcpCounters([0; TcpCounter::COUNT])
    }
}

impl TcpCounters {
    pub fn add(&mut self, c: TcpCounter, n: u64) {
        self.0[c as usize] += n;
    }
    pub fn get(&self, c: TcpCounter) -> u64 {
        self.0[c as usize]
    }
}

/// Stack-wide settings, with Linux's defaults (the sysctl each mirrors is
/// named).
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// `net.ipv4.tcp_rmem`: min, default, max (autotuning limit).
    pub rmem: [usize; 3],
    /// `net.ipv4.tcp_wmem`.
    pub wmem: [usize; 3],
    /// `net.core.rmem_max` / `wmem_max`: SO_RCVBUF / SO_SNDBUF clamp.
    pub rmem_max: usize,
    pub wmem_max: usize,
    pub syn_retries: u8,
    pub synack_retries: u8,
    pub retries2: u32,
    pub orphan_retries: u32,
    pub fin_timeout: Duration,
    pub time_wait: Duration,
    pub keepalive_time: u32,
    pub keepalive_intvl: u32,
    pub keepalive_probes: u32,
    pub somaxconn: u32,
    pub syncookies: bool,
    pub timestamps: bool,
    pub sack: bool,
    pub dsack: bool,
    pub window_scaling: bool,
    pub moderate_rcvbuf: bool,
    pub slow_start_after_idle: bool,
    pub congestion_control: CcAlgo,
    /// `net.ipv4.ip_local_port_range`.
    pub local_ports: (u16, u16),
    /// `net.ipv4.tcp_challenge_ack_limit` per second.
    pub challenge_ack_limit: u32,
    /// `net.ipv4.tcp_invalid_ratelimit`.
    pub invalid_ratelimit: Duration,
    pub rto_min: Duration,
    pub delack: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            rmem: [4096, 131072, 6291456],
            wmem: [4096, 16384, 4194304],
            rmem_max: 212992,
            wmem_max: 212992,
            syn_retries: 6,
            synack_retries: 5,
            retries2: 15,
            orphan_retries: 8,
            fin_timeout: Duration::from_secs(60),
            time_wait: Duration::from_secs(60),
            keepalive_time: 7200,
            keepalive_intvl: 75,
            keepalive_probes: 9,
            somaxconn: 4096,
            syncookies: true,
            timestamps: true,
            sack: true,
            dsack: true,
            window_scaling: true,
            moderate_rcvbuf: true,
            slow_start_after_idle: true,
            congestion_control: CcAlgo::Cubic,
            local_ports: (32768, 60999),
            challenge_ack_limit: 1000,
            invalid_ratelimit: Duration::from_millis(500),
            rto_min: rtt::RTO_MIN,
            delack: Duration::from_millis(40),
        }
    }
}

/// Per-socket options (what setsockopt sets).
#[derive(Clone, Debug)]
pub struct SockOpts {
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub v6only: bool,
    pub keepalive: bool,
    pub nodelay: bool,
    pub cork: bool,
    pub quickack: bool,
    pub keepidle: u32,
    pub keepintvl: u32,
    pub keepcnt: u32,
    /// `SO_LINGER`: `Some(seconds)` when on.
    pub linger: Option<u32>,
    /// `TCP_MAXSEG` (0: none).
    pub user_mss: u16,
    /// `TCP_SYNCNT` (0: the sysctl).
    pub syncnt: u8,
    /// `TCP_USER_TIMEOUT` in ms (0: off).
    pub user_timeout: u32,
    pub sndbuf: usize,
    pub sndbuf_locked: bool,
    pub rcvbuf: usize,
    pub rcvbuf_locked: bool,
    pub rcvlowat: usize,
    pub cc: CcAlgo,
    pub ttl: u8,
    pub tos: u8,
    /// TCP_DEFER_ACCEPT as SYN-ACK retransmissions (Linux keeps it so).
    pub defer_accept: u32,
    pub oobinline: bool,
    /// The creating user (`sk_uid`): SO_REUSEPORT shares a port only
    /// between sockets of one user.
    pub owner: u32,
}

impl SockOpts {
    pub fn new(cfg: &TcpConfig) -> SockOpts {
        SockOpts {
            reuseaddr: false,
            reuseport: false,
            v6only: false,
            keepalive: false,
            nodelay: false,
            cork: false,
            quickack: true,
            keepidle: cfg.keepalive_time,
            keepintvl: cfg.keepalive_intvl,
            keepcnt: cfg.keepalive_probes,
            linger: None,
            user_mss: 0,
            syncnt: 0,
            user_timeout: 0,
            sndbuf: cfg.wmem[1],
            sndbuf_locked: false,
            rcvbuf: cfg.rmem[1],
            rcvbuf_locked: false,
            rcvlowat: 1,
            cc: cfg.congestion_control,
            ttl: 0,
            tos: 0,
            defer_accept: 0,
            owner: 0,
            oobinline: false,
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// Writes one segment through the context: header from `b`, payload
/// from up to two slices (a wrapped ring). One copy of the payload.
#[inline]
pub(crate) fn emit<C: TcpContext>(
    ctx: &mut C,
    src: &SockAddr,
    dst: &SockAddr,
    b: &TcpBuilder,
    p1: &[u8],
    p2: &[u8],
    ttl: u8,
    tos: u8,
) -> bool {
    let hl = b.header_len();
    let len = hl + p1.len() + p2.len();
    let tx = Transmit {
        src: src.ip,
        dst: dst.ip,
        len,
        ttl,
        tos,
    };
    let r = ctx.send(tx, |buf| {
        debug_assert_eq!(buf.len(), len);
        let buf = &mut buf[..len];
        buf[hl..hl + p1.len()].copy_from_slice(p1);
        buf[hl + p1.len()..].copy_from_slice(p2);
        let r = match (src.ip, dst.ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => b.emit(&s, &d, buf),
            (IpAddr::V6(s), IpAddr::V6(d)) => b.emit(&s, &d, buf),
            _ => Err(crate::wire::BuildError::InvalidField),
        };
        debug_assert!(r.is_ok());
        if r.is_err() {
            // The buffer may hold an earlier frame's bytes: never send them.
            buf.fill(0);
        }
    });
    if r.is_ok() {
        ctx.count(TcpCounter::OutSegs, 1);
    }
    r.is_ok()
}

/// Bytes of IP and TCP header under a full-sized segment without
/// options: the MSS is the MTU minus this.
pub(crate) fn mss_overhead(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => 40,
        IpAddr::V6(_) => 60,
    }
}
