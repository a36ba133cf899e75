//! UDP sockets (RFC 768) with Linux's semantics, written once for both IP
//! versions.
//!
//! What a program sees, as on Linux (net/ipv4/udp.c, af_inet.c,
//! datagram.c):
//!
//! - **bind**: the address must be unspecified, ours, a broadcast or a
//!   multicast address (`EADDRNOTAVAIL`); a second bind is `EINVAL`; port 0
//!   picks a free port at random in 32768..=60999; a port in use by an
//!   overlapping address (equal, or either the wildcard) is `EADDRINUSE`
//!   unless both sockets set `SO_REUSEADDR`, or both `SO_REUSEPORT`.
//! - **connect**: `ENETUNREACH` without a route, `EACCES` to a broadcast
//!   address without `SO_BROADCAST`; binds a port if there is none and
//!   fixes the local address to the route's source; `AF_UNSPEC`
//!   (`connect(None)`) dissolves the association and forgets what connect
//!   chose (but not what bind fixed).
//! - **send**: `EMSGSIZE` over 65507 bytes or, with `IP_PMTUDISC_DO`, over
//!   the path MTU; `EDESTADDRREQ` without a destination; `EINVAL` to port
//!   0; `EACCES` to broadcast without `SO_BROADCAST`; a pending error is
//!   returned (once) before the datagram goes; `EPIPE` after
//!   `shutdown(SHUT_WR)`. DF is set when the datagram fits the path
//!   (`IP_PMTUDISC_WANT`), else it is fragmented.
//! - **recv**: a pending error first (once: `ECONNREFUSED` after a port
//!   unreachable on a connected socket), then the oldest datagram with its
//!   source; a short buffer truncates (`truncated`, and with `MSG_TRUNC`
//!   the real length is returned); `MSG_PEEK` leaves it queued;
//!   zero-length datagrams are datagrams. `UdpInDatagrams` counts at recv,
//!   as in Linux.
//! - **receive buffer**: a datagram is refused (`UdpRcvbufErrors`,
//!   `UdpInErrors`) when what is queued already exceeds `SO_RCVBUF`
//!   (counted with Linux-like per-datagram overhead), so at least one
//!   datagram always fits.
//! - **demultiplexing**: sockets bound to the destination address before
//!   wildcard ones; among them, a connected match beats an unconnected
//!   one; the most recently bound wins a tie, `SO_REUSEPORT` groups share
//!   by a hash of the source. Broadcast and multicast datagrams go to every
//!   socket on the port that is bound to the wildcard or that address.
//! - **ICMP errors** reach the socket they are about; hard ones set the
//!   pending error of a connected socket only.
//! - **readiness** as `udp_poll` computes it: `EPOLLIN` with data,
//!   `EPOLLERR` with a pending error, `EPOLLOUT` always, `EPOLLRDHUP` and
//!   `EPOLLIN` after `SHUT_RD`, `EPOLLHUP` after both directions.

use std::collections::{HashMap, VecDeque};

use crate::context::{CounterContext, EventContext, RngContext};
use crate::counters::Counter;
use crate::errno::Errno;
use crate::ip::{Ip, IpAddress};
use crate::ip_layer::{IpExt, NextHop, RouteResult};
use crate::time::Instant;

pub mod cork;
pub mod errqueue;

use errqueue::{ErrQueue, ErrRecv, ExtErr, IcmpOrigin};

/// `epoll` event bits as Linux defines them, so that the shim passes them
/// through.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Readiness(pub u32);

impl Readiness {
    pub const IN: u32 = 0x001;
    pub const PRI: u32 = 0x002;
    pub const OUT: u32 = 0x004;
    pub const ERR: u32 = 0x008;
    pub const HUP: u32 = 0x010;
    pub const RDNORM: u32 = 0x040;
    pub const RDBAND: u32 = 0x080;
    pub const WRNORM: u32 = 0x100;
    pub const WRBAND: u32 = 0x200;
    pub const RDHUP: u32 = 0x2000;

    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
    pub fn readable(self) -> bool {
        self.0 & Self::IN != 0
    }
    pub fn writable(self) -> bool {
        self.0 & Self::OUT != 0
    }
    pub fn error(self) -> bool {
        self.0 & Self::ERR != 0
    }
}

impl core::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let names = [
            (Self::IN, "IN"),
            (Self::PRI, "PRI"),
            (Self::OUT, "OUT"),
            (Self::ERR, "ERR"),
            (Self::HUP, "HUP"),
            (Self::RDNORM, "RDNORM"),
            (Self::RDBAND, "RDBAND"),
            (Self::WRNORM, "WRNORM"),
            (Self::WRBAND, "WRBAND"),
            (Self::RDHUP, "RDHUP"),
        ];
        let mut first = true;
        for (b, n) in names {
            if self.0 & b != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        if first {
            f.write_str("0")?;
        }
        Ok(())
    }
}

/// `shutdown(2)`'s `how`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

/// `IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PmtuDisc {
    /// `IP_PMTUDISC_DONT`: never DF; fragment by the link MTU.
    Dont,
    /// `IP_PMTUDISC_WANT` (Linux's default): DF when the datagram fits the
    /// path MTU, else fragment.
    #[default]
    Want,
    /// `IP_PMTUDISC_DO`: always DF; `EMSGSIZE` if it does not fit.
    Do,
    /// `IP_PMTUDISC_PROBE`: always DF, ignoring the path MTU.
    Probe,
}

/// Flags of one `recv` call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvFlags {
    /// `MSG_PEEK`.
    pub peek: bool,
    /// `MSG_TRUNC`: return the datagram's real length.
    pub trunc: bool,
    /// The call would block if nothing is queued (a blocking socket
    /// without `MSG_DONTWAIT`): after `SHUT_RD` it then returns 0 instead
    /// of `EAGAIN`.
    pub blocking: bool,
}

/// What one `recv` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta<A> {
    /// The return value: bytes copied, or the datagram's length with
    /// `MSG_TRUNC`.
    pub ret: usize,
    /// The datagram's length.
    pub len: usize,
    /// `MSG_TRUNC` in `msg_flags`: the buffer was shorter.
    pub truncated: bool,
    /// The sender (`None` for the 0 returned after `SHUT_RD`).
    pub src: Option<(A, u16)>,
    /// The datagram's destination address (`IP_PKTINFO`'s
    /// `ipi_addr`).
    pub dst: Option<A>,
    /// What the IP header and the arrival said (`IP_TOS`, `IP_TTL`,
    /// `SO_TIMESTAMP*` control messages); default for the 0 after
    /// `SHUT_RD`.
    pub info: RxInfo,
}

/// Per-datagram facts from the IP header and the moment it arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxInfo {
    /// The TOS byte (IPv6: the traffic class).
    pub tos: u8,
    /// The TTL (IPv6: the hop limit).
    pub ttl: u8,
    /// When the frame came in (the `now` of `Stack::receive`).
    pub at: Instant,
}

/// A socket handle. Generation-checked: a handle of a closed socket never
/// reaches the socket that reuses its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpSocketId {
    index: u32,
    generation: u32,
}

/// A socket's association changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpEvent<I: Ip> {
    Bound {
        id: UdpSocketId,
        local: (I::Addr, u16),
    },
    Connected {
        id: UdpSocketId,
        local: (I::Addr, u16),
        remote: (I::Addr, u16),
    },
    Disconnected {
        id: UdpSocketId,
    },
    Closed {
        id: UdpSocketId,
    },
}

/// What UDP needs from the stack.
pub trait UdpContext<I: IpExt>: RngContext + CounterContext + EventContext<UdpEvent<I>> {
    fn is_local(&self, a: &I::Addr) -> bool;
    fn is_broadcast(&self, a: &I::Addr) -> bool;
    fn route(&self, dst: &I::Addr, src: Option<I::Addr>) -> Result<RouteResult<I>, Errno>;
    /// A buffer for a queued datagram (pooled).
    fn alloc_buf(&mut self, len: usize) -> Vec<u8>;
    fn free_buf(&mut self, buf: Vec<u8>);
}

/// Linux's limits (`net.core.rmem_default` etc.).
pub const RMEM_DEFAULT: usize = 212_992;
pub const RMEM_MAX: usize = 212_992;
pub const WMEM_DEFAULT: usize = 212_992;
pub const WMEM_MAX: usize = 212_992;
/// `SOCK_MIN_RCVBUF` / `SOCK_MIN_SNDBUF` on x86-64.
pub const MIN_RCVBUF: usize = 2304;
pub const MIN_SNDBUF: usize = 4608;
/// The largest UDP payload over IPv4 (65535 - 20 - 8).
pub const MAX_PAYLOAD_V4: usize = 65507;
/// What a queued datagram costs beyond its payload: an approximation of
/// the `sk_buff` truesize of a datagram received from a NIC.
pub const DATAGRAM_OVERHEAD: usize = 768;
/// `ip_local_port_range`.
pub const EPHEMERAL: (u16, u16) = (32768, 60999);

#[derive(Debug)]
struct Datagram<A> {
    src: (A, u16),
    dst: A,
    info: RxInfo,
    buf: Vec<u8>,
    truesize: usize,
}

/// Socket options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpOptions {
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub broadcast: bool,
    /// As `getsockopt` returns it (doubled).
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// `IP_TTL` (`None`: the default, 64).
    pub ttl: Option<u8>,
    /// `IP_MULTICAST_TTL` (1).
    pub mcast_ttl: u8,
    /// `IP_TOS`.
    pub tos: u8,
    pub pmtudisc: PmtuDisc,
    /// `IPV6_V6ONLY` (IPv6 sockets; Linux's `bindv6only` default 0): when
    /// clear, a socket bound to `::` also receives IPv4 datagrams, as
    /// v4-mapped addresses, and may send to v4-mapped destinations.
    pub v6only: bool,
    /// `IP_PKTINFO` / `IPV6_RECVPKTINFO`: the shim asks for the
    /// destination address of each datagram ([`RecvMeta::dst`], always
    /// filled) only when this is set.
    pub recv_pktinfo: bool,
    /// `IP_RECVTOS`, `IP_RECVTTL`, `SO_TIMESTAMP` / `SO_TIMESTAMPNS`: the
    /// control messages the shim builds from [`RecvMeta::info`].
    pub recv_tos: bool,
    pub recv_ttl: bool,
    /// `IPV6_RECVTCLASS`, `IPV6_RECVHOPLIMIT` (IPv6 sockets): the same
    /// facts as `IPV6_TCLASS` / `IPV6_HOPLIMIT` control messages; an IPv6
    /// socket's `IP_RECVTOS` / `IP_RECVTTL` cover only IPv4 datagrams.
    pub recv_tclass: bool,
    pub recv_hoplimit: bool,
    pub timestamp: RxTimestamp,
    /// `UDP_CORK`: sends gather until it is cleared ([`cork`]).
    pub cork: bool,
    /// The creating user (`sk_uid`): SO_REUSEPORT shares a port only
    /// between sockets of one user (udp_lib_lport_inuse).
    pub owner: u32,
    /// `IP_RECVERR`: ICMP errors are queued ([`errqueue`]) and reported on
    /// unconnected sockets too. Clearing it empties the queue. On an IPv6
    /// socket it covers the ICMP (IPv4) errors about v4-mapped datagrams.
    pub recverr: bool,
    /// `IPV6_RECVERR`: the same for ICMPv6 errors (IPv6 sockets; Linux's
    /// `np->recverr`, apart from `inet->recverr`).
    pub recverr6: bool,
}

/// Which arrival timestamp a socket asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxTimestamp {
    #[default]
    Off,
    /// `SO_TIMESTAMP`: `SCM_TIMESTAMP`, a timeval.
    Micros,
    /// `SO_TIMESTAMPNS`: `SCM_TIMESTAMPNS`, a timespec.
    Nanos,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            reuseaddr: false,
            reuseport: false,
            broadcast: false,
            rcvbuf: RMEM_DEFAULT,
            sndbuf: WMEM_DEFAULT,
            ttl: None,
            mcast_ttl: 1,
            tos: 0,
            pmtudisc: PmtuDisc::Want,
            v6only: false,
            recv_pktinfo: false,
            recv_tos: false,
            recv_ttl: false,
            recv_tclass: false,
            recv_hoplimit: false,
            timestamp: RxTimestamp::Off,
            cork: false,
            owner: 0,
            recverr: false,
            recverr6: false,
        }
    }
}

#[derive(Debug)]
struct Socket<I: Ip> {
    generation: u32,
    /// `inet_rcv_saddr`: what receives are matched against.
    rcv_addr: I::Addr,
    /// `inet_saddr`: the source of what we send (unspecified: by route).
    src_addr: I::Addr,
    /// 0: not bound.
    port: u16,
    /// `SOCK_BINDADDR_LOCK`, `SOCK_BINDPORT_LOCK`.
    addr_locked: bool,
    port_locked: bool,
    remote: Option<(I::Addr, u16)>,
    opts: UdpOptions,
    rx: VecDeque<Datagram<I::Addr>>,
    rx_mem: usize,
    errq: ErrQueue<I::Addr>,
    error: Option<Errno>,
    shut_rd: bool,
    shut_wr: bool,
    /// Bind order, for "most recently bound wins" on a tie.
    bind_seq: u64,
}

/// Everything a send needs, decided by [`UdpSockets::prepare_send`]: the
/// stack turns it into IP packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendPlan<I: Ip> {
    pub src: I::Addr,
    pub src_port: u16,
    pub dst: I::Addr,
    pub dst_port: u16,
    pub route: RouteResult<I>,
    pub ttl: u8,
    pub tos: u8,
    pub dont_fragment: bool,
    /// The datagram does not fit the MTU and is fragmented.
    pub fragment: bool,
}

/// One line of [`UdpSockets::table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRow<A> {
    pub local: (A, u16),
    pub remote: Option<(A, u16)>,
    /// Memory the queued datagrams take (Linux's `Recv-Q` for UDP).
    pub recv_q: usize,
}

/// Every UDP socket of one IP version.
#[derive(Debug)]
pub struct UdpSockets<I: IpExt> {
    slots: Vec<Option<Socket<I>>>,
    free: Vec<u32>,
    generations: Vec<u32>,
    ports: HashMap<u16, Vec<u32>>,
    bind_seq: u64,
    pub ephemeral: (u16, u16),
}

impl<I: IpExt> Default for UdpSockets<I> {
    fn default() -> Self {
        UdpSockets {
            slots: Vec::new(),
            free: Vec::new(),
            generations: Vec::new(),
            ports: HashMap::new(),
            bind_seq: 0,
            ephemeral: EPHEMERAL,
        }
    }
}

type R<T> = Result<T, Errno>;

impl<I: IpExt> UdpSockets<I> {
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, id: UdpSocketId) -> R<&Socket<I>> {
        self.slots
            .get(id.index as usize)
            .and_then(Option::as_ref)
            .filter(|s| s.generation == id.generation)
            .ok_or(Errno::EBADF)
    }

    fn get_mut(&mut self, id: UdpSocketId) -> R<&mut Socket<I>> {
        self.slots
            .get_mut(id.index as usize)
            .and_then(Option::as_mut)
            .filter(|s| s.generation == id.generation)
            .ok_or(Errno::EBADF)
    }

    fn id_of(&self, index: u32) -> UdpSocketId {
        UdpSocketId {
            index,
            generation: self.generations[index as usize],
        }
    }

    /// `socket(AF_INET, SOCK_DGRAM, 0)`.
    pub fn socket(&mut self) -> UdpSocketId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.generations[index as usize];
        self.slots[index as usize] = Some(Socket {
            generation,
            rcv_addr: I::UNSPECIFIED,
            src_addr: I::UNSPECIFIED,
            port: 0,
            addr_locked: false,
            port_locked: false,
            remote: None,
            opts: UdpOptions::default(),
            rx: VecDeque::new(),
            rx_mem: 0,
            errq: ErrQueue::default(),
            error: None,
            shut_rd: false,
            shut_wr: false,
            bind_seq: 0,
        });
        UdpSocketId { index, generation }
    }

    /// `close(2)`: queued datagrams are freed, the port released.
    pub fn close<C: UdpContext<I>>(&mut self, ctx: &mut C, id: UdpSocketId) -> R<()> {
        self.get(id)?;
        self.unhash(id.index);
        let Some(s) = self.slots[id.index as usize].take() else {
            return Err(Errno::EBADF);
        };
        for d in s.rx {
            ctx.free_buf(d.buf);
        }
        self.generations[id.index as usize] = self.generations[id.index as usize].wrapping_add(1);
        self.free.push(id.index);
        ctx.on_event(UdpEvent::Closed { id });
        Ok(())
    }

    fn unhash(&mut self, index: u32) {
        let Some(Some(s)) = self.slots.get(index as usize) else {
            return;
        };
        if s.port == 0 {
            return;
        }
        if let Some(v) = self.ports.get_mut(&s.port) {
            v.retain(|&i| i != index);
            if v.is_empty() {
                self.ports.remove(&s.port);
            }
        }
    }

    /// Whether `index` may take `port` at `addr` (`udp_lib_lport_inuse`).
    fn port_free(&self, index: u32, addr: &I::Addr, port: u16) -> bool {
        let Some(Some(me)) = self.slots.get(index as usize) else {
            return false;
        };
        let Some(v) = self.ports.get(&port) else {
            return true;
        };
        v.iter().all(|&j| {
            let Some(Some(o)) = self.slots.get(j as usize) else {
                return true;
            };
            j == index
                || (o.opts.reuseaddr && me.opts.reuseaddr)
                || (o.opts.reuseport && me.opts.reuseport && o.opts.owner == me.opts.owner)
                || !(o.rcv_addr == *addr || o.rcv_addr.is_unspecified() || addr.is_unspecified())
        })
    }

    fn hash_port<C: UdpContext<I>>(
        &mut self,
        ctx: &mut C,
        index: u32,
        addr: I::Addr,
        port: u16,
    ) -> R<u16> {
        let port = if port == 0 {
            let (lo, hi) = self.ephemeral;
            let n = u32::from(hi - lo) + 1;
            let start = ctx.random_range(0, u64::from(n - 1)) as u32;
            (0..n)
                .map(|k| lo + ((start + k) % n) as u16)
                .find(|&p| self.port_free(index, &addr, p))
                .ok_or(Errno::EADDRINUSE)?
        } else if self.port_free(index, &addr, port) {
            port
        } else {
            return Err(Errno::EADDRINUSE);
        };
        self.bind_seq += 1;
        let seq = self.bind_seq;
        let s = self.slots[index as usize].as_mut().ok_or(Errno::EBADF)?;
        s.port = port;
        s.rcv_addr = addr;
        s.bind_seq = seq;
        self.ports.entry(port).or_default().push(index);
        Ok(port)
    }

    /// `bind(2)`.
    pub fn bind<C: UdpContext<I>>(
        &mut self,
        ctx: &mut C,
        id: UdpSocketId,
        addr: I::Addr,
        port: u16,
    ) -> R<()> {
        let s = self.get(id)?;
        if s.port != 0 {
            return Err(Errno::EINVAL);
        }
        let group = addr.is_multicast() || ctx.is_broadcast(&addr);
        if !(addr.is_unspecified() || group || ctx.is_local(&addr)) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let requested = port;
        let port = self.hash_port(ctx, id.index, addr, port)?;
        let s = self.get_mut(id)?;
        s.src_addr = if group { I::UNSPECIFIED } else { addr };
        s.addr_locked = !addr.is_unspecified();
        s.port_locked = requested != 0;
        ctx.on_event(UdpEvent::Bound {
            id,
            local: (addr, port),
        });
        Ok(())
    }

    /// Binds an ephemeral port to the wildcard if the socket has none
    /// (`inet_autobind`: what send and connect do first).
    fn autobind<C: UdpContext<I>>(&mut self, ctx: &mut C, id: UdpSocketId) -> R<()> {
        if self.get(id)?.port != 0 {
            return Ok(());
        }
        let port = self
            .hash_port(ctx, id.index, I::UNSPECIFIED, 0)
            .map_err(|_| Errno::EAGAIN)?;
        let s = self.get_mut(id)?;
        s.port_locked = false;
        ctx.on_event(UdpEvent::Bound {
            id,
            local: (I::UNSPECIFIED, port),
        });
        Ok(())
    }

    /// `connect(2)`; `None` is `AF_UNSPEC`.
    pub fn connect<C: UdpContext<I>>(
        &mut self,
        ctx: &mut C,
        id: UdpSocketId,
        remote: Option<(I::Addr, u16)>,
    ) -> R<()> {
        let Some((addr, port)) = remote else {
            let s = self.get_mut(id)?;
            let had = s.remote.take().is_some();
            if !s.addr_locked {
                s.rcv_addr = I::UNSPECIFIED;
                s.src_addr = I::UNSPECIFIED;
            }
            if !s.port_locked {
                self.unhash(id.index);
                let s = self.get_mut(id)?;
                s.port = 0;
            }
            if had {
                ctx.on_event(UdpEvent::Disconnected { id });
            }
            return Ok(());
        };
        self.autobind(ctx, id)?;
        let s = self.get(id)?;
        let route = ctx.route(&addr, Some(s.src_addr))?;
        if route.is_broadcast() && !s.opts.broadcast {
            return Err(Errno::EACCES);
        }
        let s = self.get_mut(id)?;
        if s.src_addr.is_unspecified() {
            s.src_addr = route.src;
        }
        if s.rcv_addr.is_unspecified() {
            s.rcv_addr = route.src;
        }
        s.remote = Some((addr, port));
        let local = (s.rcv_addr, s.port);
        ctx.on_event(UdpEvent::Connected {
            id,
            local,
            remote: (addr, port),
        });
        Ok(())
    }

    /// `getsockname(2)`: `0.0.0.0:0` before bind.
    pub fn local_addr(&self, id: UdpSocketId) -> R<(I::Addr, u16)> {
        let s = self.get(id)?;
        Ok((s.rcv_addr, s.port))
    }

    /// `getpeername(2)`: `ENOTCONN` unless connected.
    pub fn peer_addr(&self, id: UdpSocketId) -> R<(I::Addr, u16)> {
        self.get(id)?.remote.ok_or(Errno::ENOTCONN)
    }

    pub fn options(&self, id: UdpSocketId) -> R<UdpOptions> {
        Ok(self.get(id)?.opts)
    }

    /// Sets options. `rcvbuf`/`sndbuf` take the value given to
    /// `setsockopt` and store it doubled and clamped, as Linux does.
    pub fn set_options(&mut self, id: UdpSocketId, f: impl FnOnce(&mut UdpOptions)) -> R<()> {
        let s = self.get_mut(id)?;
        let before = s.opts;
        f(&mut s.opts);
        // Either flag cleared purges the queue (ip_setsockopt,
        // do_ipv6_setsockopt: skb_queue_purge).
        if (before.recverr && !s.opts.recverr) || (before.recverr6 && !s.opts.recverr6) {
            s.errq.clear();
        }
        if s.opts.rcvbuf != before.rcvbuf {
            s.opts.rcvbuf = (s.opts.rcvbuf.min(RMEM_MAX) * 2).max(MIN_RCVBUF);
        }
        if s.opts.sndbuf != before.sndbuf {
            s.opts.sndbuf = (s.opts.sndbuf.min(WMEM_MAX) * 2).max(MIN_SNDBUF);
        }
        Ok(())
    }

    /// `getsockopt(SO_ERROR)`: the pending error, cleared.
    pub fn take_error(&mut self, id: UdpSocketId) -> R<Option<Errno>> {
        Ok(self.get_mut(id)?.error.take())
    }

    /// `FIONREAD`/`SIOCINQ`: the length of the next datagram.
    pub fn next_len(&self, id: UdpSocketId) -> R<usize> {
        Ok(self.get(id)?.rx.front().map_or(0, |d| d.buf.len()))
    }

    /// Whether binding `port` at `addr` would conflict with a socket of
    /// this table that has neither `SO_REUSEADDR` nor `SO_REUSEPORT` in
    /// common with the binder (`reuse`: its two flags). For the facade's
    /// check across the two versions' tables: an IPv6 socket bound to `::`
    /// without `IPV6_V6ONLY` holds the port for IPv4 too.
    pub fn port_conflict(&self, addr: &I::Addr, port: u16, reuse: (bool, bool)) -> bool {
        let Some(v) = self.ports.get(&port) else {
            return false;
        };
        v.iter().any(|&j| {
            let Some(Some(o)) = self.slots.get(j as usize) else {
                return false;
            };
            !((o.opts.reuseaddr && reuse.0) || (o.opts.reuseport && reuse.1))
                && (o.rcv_addr == *addr || o.rcv_addr.is_unspecified() || addr.is_unspecified())
        })
    }

    /// Whether a dual-stack socket (not `IPV6_V6ONLY`, bound to the
    /// wildcard or a v4-mapped address) holds `port`: the IPv4 side of
    /// the conflict check.
    pub fn dual_stack_holds(&self, port: u16, v4: &I::Addr, reuse: (bool, bool)) -> bool {
        let Some(v) = self.ports.get(&port) else {
            return false;
        };
        v.iter().any(|&j| {
            let Some(Some(o)) = self.slots.get(j as usize) else {
                return false;
            };
            !(o.opts.v6only || (o.opts.reuseaddr && reuse.0) || (o.opts.reuseport && reuse.1))
                && (o.rcv_addr.is_unspecified() || o.rcv_addr == *v4 || v4.is_unspecified())
        })
    }

    /// Every bound socket, as `ss -uan` lists them.
    pub fn table(&self) -> Vec<UdpRow<I::Addr>> {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.port != 0)
            .map(|s| UdpRow {
                local: (s.rcv_addr, s.port),
                remote: s.remote,
                recv_q: s.rx_mem,
            })
            .collect()
    }

    /// Datagrams queued.
    pub fn queued(&self, id: UdpSocketId) -> R<usize> {
        Ok(self.get(id)?.rx.len())
    }

    /// `shutdown(2)`: `ENOTCONN` if not connected, though the flags are set
    /// all the same (Linux's `inet_shutdown`).
    pub fn shutdown(&mut self, id: UdpSocketId, how: Shutdown) -> R<()> {
        let s = self.get_mut(id)?;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            s.shut_rd = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            s.shut_wr = true;
        }
        if s.remote.is_none() {
            return Err(Errno::ENOTCONN);
        }
        Ok(())
    }

    /// `udp_poll`.
    pub fn readiness(&self, id: UdpSocketId) -> R<Readiness> {
        let s = self.get(id)?;
        let mut r = Readiness::OUT | Readiness::WRNORM | Readiness::WRBAND;
        if s.error.is_some() || !s.errq.is_empty() {
            r |= Readiness::ERR;
        }
        if s.shut_rd {
            r |= Readiness::RDHUP | Readiness::IN | Readiness::RDNORM;
        }
        if s.shut_rd && s.shut_wr {
            r |= Readiness::HUP;
        }
        if !s.rx.is_empty() {
            r |= Readiness::IN | Readiness::RDNORM;
        }
        Ok(Readiness(r))
    }

    /// Everything `sendto` decides before the datagram is built: the
    /// socket's checks in Linux's order, the route, DF and fragmentation.
    pub fn prepare_send<C: UdpContext<I>>(
        &mut self,
        ctx: &mut C,
        id: UdpSocketId,
        dst: Option<(I::Addr, u16)>,
        len: usize,
    ) -> R<SendPlan<I>> {
        self.get(id)?;
        if len > MAX_PAYLOAD_V4 + (I::HEADER_LEN - 20) {
            return Err(Errno::EMSGSIZE);
        }
        let (dst, dst_port) = match dst {
            Some((_, 0)) => return Err(Errno::EINVAL),
            Some(d) => d,
            None => self.get(id)?.remote.ok_or(Errno::EDESTADDRREQ)?,
        };
        self.autobind(ctx, id)?;
        let s = self.get(id)?;
        let route = ctx.route(&dst, Some(s.src_addr))?;
        if route.is_broadcast() && !s.opts.broadcast {
            return Err(Errno::EACCES);
        }
        let total = I::HEADER_LEN + crate::wire::udp::HEADER_LEN + len;
        let mtu = usize::from(route.mtu);
        let fits = total <= mtu;
        let (dont_fragment, fragment) = match s.opts.pmtudisc {
            PmtuDisc::Do | PmtuDisc::Probe if !fits => return Err(Errno::EMSGSIZE),
            PmtuDisc::Do | PmtuDisc::Probe => (true, false),
            PmtuDisc::Want => (fits && !route.pmtu_locked, !fits),
            PmtuDisc::Dont => (false, !fits),
        };
        let s = self.get_mut(id)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        if s.shut_wr {
            return Err(Errno::EPIPE);
        }
        let ttl = if dst.is_multicast() {
            s.opts.mcast_ttl
        } else {
            s.opts.ttl.unwrap_or(I::DEFAULT_TTL)
        };
        Ok(SendPlan {
            src: route.src,
            src_port: s.port,
            dst,
            dst_port,
            route,
            ttl,
            tos: s.opts.tos,
            dont_fragment: dont_fragment && route.next_hop != NextHop::Local,
            fragment,
        })
    }

    /// `recvmsg(2)` into `buf`.
    pub fn recv<C: UdpContext<I>>(
        &mut self,
        ctx: &mut C,
        id: UdpSocketId,
        buf: &mut [u8],
        flags: RecvFlags,
    ) -> R<RecvMeta<I::Addr>> {
        let s = self.get_mut(id)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let Some(d) = s.rx.front() else {
            if s.shut_rd && flags.blocking {
                return Ok(RecvMeta {
                    ret: 0,
                    len: 0,
                    truncated: false,
                    src: None,
                    dst: None,
                    info: RxInfo::default(),
                });
            }
            return Err(Errno::EAGAIN);
        };
        let n = d.buf.len().min(buf.len());
        buf[..n].copy_from_slice(&d.buf[..n]);
        let meta = RecvMeta {
            ret: if flags.trunc { d.buf.len() } else { n },
            len: d.buf.len(),
            truncated: d.buf.len() > buf.len(),
            src: Some(d.src),
            dst: Some(d.dst),
            info: d.info,
        };
        if !flags.peek {
            if let Some(d) = s.rx.pop_front() {
                s.rx_mem -= d.truesize;
                ctx.free_buf(d.buf);
            }
            ctx.increment(I::counter(Counter::UdpInDatagrams));
        }
        Ok(meta)
    }

    fn matches(s: &Socket<I>, src: &I::Addr, sport: u16) -> Option<u32> {
        // An IPv6-only socket never sees IPv4 traffic (v4-mapped).
        if s.opts.v6only && I::is_v4_mapped(src) {
            return None;
        }
        let mut score = 2;
        if let Some((ra, rp)) = s.remote {
            if ra != *src || (rp != 0 && rp != sport) {
                return None;
            }
            score += 4;
            if rp != 0 {
                score += 4;
            }
        }
        Some(score)
    }

    /// The socket a unicast datagram (or an error about one we sent) is
    /// for: `__udp4_lib_lookup`.
    pub fn lookup(
        &self,
        src: &I::Addr,
        sport: u16,
        dst: &I::Addr,
        dport: u16,
    ) -> Option<UdpSocketId> {
        let v = self.ports.get(&dport)?;
        for want in [*dst, I::UNSPECIFIED] {
            let mut best: Option<(u32, u64, u32)> = None;
            for &i in v {
                let Some(Some(s)) = self.slots.get(i as usize) else {
                    continue;
                };
                if s.rcv_addr != want {
                    continue;
                }
                let Some(score) = Self::matches(s, src, sport) else {
                    continue;
                };
                if best.is_none_or(|(bs, bseq, _)| (score, s.bind_seq) > (bs, bseq)) {
                    best = Some((score, s.bind_seq, i));
                }
            }
            if let Some((score, _, i)) = best {
                let s = self.slots[i as usize].as_ref()?;
                if s.opts.reuseport && s.remote.is_none() {
                    // A reuseport group: pick by a hash of the source.
                    let group: Vec<u32> = v
                        .iter()
                        .copied()
                        .filter(|&j| {
                            self.slots[j as usize].as_ref().is_some_and(|o| {
                                o.opts.reuseport
                                    && o.rcv_addr == want
                                    && Self::matches(o, src, sport) == Some(score)
                            })
                        })
                        .collect();
                    if !group.is_empty() {
                        let h = src.bytes().iter().fold(u32::from(sport), |h, &b| {
                            h.wrapping_mul(31).wrapping_add(u32::from(b))
                        });
                        return Some(self.id_of(group[(h as usize) % group.len()]));
                    }
                }
                return Some(self.id_of(i));
            }
        }
        None
    }

    /// Queues a datagram on one socket, or refuses it for want of buffer.
    fn enqueue<C: UdpContext<I>>(
        &mut self,
        ctx: &mut C,
        index: u32,
        src: (I::Addr, u16),
        dst: I::Addr,
        payload: &[u8],
        info: RxInfo,
    ) -> bool {
        let Some(Some(s)) = self.slots.get_mut(index as usize) else {
            return false;
        };
        if s.rx_mem > s.opts.rcvbuf || s.shut_rd {
            ctx.increment(I::counter(Counter::UdpRcvbufErrors));
            ctx.increment(I::counter(Counter::UdpInErrors));
            return false;
        }
        let mut buf = ctx.alloc_buf(payload.len());
        buf.copy_from_slice(payload);
        let truesize = payload.len() + DATAGRAM_OVERHEAD;
        s.rx_mem += truesize;
        s.rx.push_back(Datagram {
            src,
            dst,
            info,
            buf,
            truesize,
        });
        true
    }

    /// Delivers a received datagram whose checksum has been checked.
    /// `group`: its destination was a broadcast or multicast address.
    /// Returns whether any socket took it (false: `UdpNoPorts`, and the
    /// caller decides about ICMP).
    #[allow(clippy::too_many_arguments)]
    pub fn deliver<C: UdpContext<I>>(
        &mut self,
        ctx: &mut C,
        src: I::Addr,
        sport: u16,
        dst: I::Addr,
        dport: u16,
        group: bool,
        payload: &[u8],
    ) -> Delivery {
        let info = RxInfo::default();
        self.deliver_with(ctx, (src, sport), (dst, dport), group, payload, info)
    }

    /// [`Self::deliver`] with the datagram's TOS, TTL and arrival time.
    pub fn deliver_with<C: UdpContext<I>>(
        &mut self,
        ctx: &mut C,
        (src, sport): (I::Addr, u16),
        (dst, dport): (I::Addr, u16),
        group: bool,
        payload: &[u8],
        info: RxInfo,
    ) -> Delivery {
        if !group {
            return match self.lookup(&src, sport, &dst, dport) {
                Some(id) => {
                    self.enqueue(ctx, id.index, (src, sport), dst, payload, info);
                    Delivery::Delivered
                }
                None => Delivery::NoSocket,
            };
        }
        let Some(v) = self.ports.get(&dport) else {
            return Delivery::NoSocket;
        };
        let targets: Vec<u32> = v
            .iter()
            .copied()
            .filter(|&i| {
                self.slots[i as usize].as_ref().is_some_and(|s| {
                    (s.rcv_addr.is_unspecified() || s.rcv_addr == dst)
                        && Self::matches(s, &src, sport).is_some()
                })
            })
            .collect();
        if targets.is_empty() {
            return Delivery::NoSocket;
        }
        for i in targets {
            self.enqueue(ctx, i, (src, sport), dst, payload, info);
        }
        Delivery::Delivered
    }

    /// An ICMP error about a datagram we sent from `local` to `remote`
    /// (`__udp4_lib_err`). Returns the socket it was for, if any.
    pub fn deliver_error(
        &mut self,
        local: (I::Addr, u16),
        remote: (I::Addr, u16),
        errno: Errno,
        hard: bool,
    ) -> Option<UdpSocketId> {
        self.deliver_error_ext(local, remote, errno, hard, None)
    }

    /// [`Self::deliver_error`] with the ICMP message's origin and the
    /// quoted payload, for `IP_RECVERR` (`ext`; without it nothing is
    /// queued).
    pub fn deliver_error_ext(
        &mut self,
        local: (I::Addr, u16),
        remote: (I::Addr, u16),
        errno: Errno,
        hard: bool,
        ext: Option<(IcmpOrigin<I::Addr>, &[u8])>,
    ) -> Option<UdpSocketId> {
        let id = self.lookup(&remote.0, remote.1, &local.0, local.1)?;
        let s = self.get_mut(id).ok()?;
        // An ICMPv6 error asks IPV6_RECVERR, an ICMP one IP_RECVERR (also
        // on an IPv6 socket: __udp4_lib_err reads inet->recverr).
        let recverr = match ext {
            Some((o, _)) if o.icmp6 => s.opts.recverr6,
            _ => s.opts.recverr,
        };
        if recverr {
            // __udp4_lib_err / __udp6_lib_err: with IP(V6)_RECVERR every
            // error is queued and becomes the socket's error, connected or
            // not.
            if let Some((origin, payload)) = ext {
                let e = ExtErr {
                    errno,
                    origin,
                    dst: remote,
                    payload: payload.to_vec(),
                };
                s.errq.push(e, s.opts.rcvbuf);
            }
            s.error = Some(errno);
        } else if hard && s.remote.is_some() {
            s.error = Some(errno);
        }
        Some(id)
    }

    /// `recvmsg(MSG_ERRQUEUE)`: the oldest queued error (`EAGAIN` if
    /// none; it never blocks).
    pub fn recv_err(&mut self, id: UdpSocketId, buf: &mut [u8]) -> R<ErrRecv<I::Addr>> {
        let s = self.get_mut(id)?;
        let (r, next) = s.errq.pop(buf).ok_or(Errno::EAGAIN)?;
        s.error = next;
        Ok(r)
    }
}

impl core::ops::BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, o: Readiness) -> Readiness {
        Readiness(self.0 | o.0)
    }
}

/// Where a received datagram went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    NoSocket,
}

#[cfg(test)]
mod tests;
