//! The stack integration: [`ShuntSockets`] over the process's [`Engine`]
//! for TCP and UDP over IPv4 and IPv6.
//!
//! An AF_INET6 socket is the stack's IPv6 socket, dual-stack unless
//! IPV6_V6ONLY (Linux's `bindv6only` 0): a `[::]` listener or UDP socket
//! takes IPv4 traffic too, IPv4 peers named v4-mapped (crate::sockaddr
//! reads and writes the names). Its kernel socket is AF_INET6 as well, so
//! the wildcard port reservation and the hand-over (`::1`, v4-mapped
//! loopback, a scope id of another interface) behave as for IPv4.
//!
//! A shunt socket is a slot of [`Tables`] (its id is the slot index, what
//! the fd table holds) naming the stack's TCP socket or UDP handle, with
//! what the fd model needs: a reference count (dup'd fds share the slot),
//! the fds that name it, the O_NONBLOCK flag as the program set it (the
//! kernel socket carries it too) and the SO_RCVTIMEO/SO_SNDTIMEO values.
//!
//! Options are set on the backing kernel socket first: it validates the
//! call exactly as Linux (same errno), keeps what shunt does not model,
//! answers the getsockopt calls shunt does not serve (SO_TYPE,
//! SO_DOMAIN...), and carries the options over if the socket is handed to
//! the kernel. Options the stack models are then applied to the stack.
//!
//! Handing over: a socket whose destination shunt's interface cannot reach
//! (loopback, 0.0.0.0 or `::`, a route only the kernel has) is given to its kernel
//! socket while it has no state the kernel could not reproduce: its fds
//! are marked as the kernel's, the stack's socket is closed, and the call
//! returns `None` so the hook makes it on the kernel socket.

use core::ffi::{c_int, c_uint, c_ulong, c_void};
use std::net::{IpAddr as StdIp, Ipv4Addr as StdV4, SocketAddr, SocketAddrV4};
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use libc::{
    epoll_event, fd_set, iovec, mmsghdr, msghdr, nfds_t, pollfd, sigset_t, sockaddr, socklen_t,
    timespec,
};
use shunt_stack::tcp::{self, SendFlags, SockOpt, SocketId as TcpId};
use shunt_stack::{Ipv4Addr, Ipv6Addr, UdpHandle};

use crate::engine::{Engine, Inner, WaitEnd, raw_ppoll, restart_after_signal};
use crate::fdtable::{self, Entry};
use crate::real;
use crate::shared::Owner;
use crate::sockaddr::{self as name, AddrUse};
use crate::socket::{EpollId, Errno, Served, ShuntSockets, SocketId, SysResult, Timeout};

#[derive(Clone, Copy, Debug)]
enum Proto {
    Tcp(TcpId),
    Udp(UdpHandle),
}

struct Sock {
    proto: Proto,
    /// AF_INET6: names in and out are `sockaddr_in6`.
    v6: bool,
    refs: u32,
    fds: Vec<c_int>,
    nonblock: bool,
    rcvtimeo: Option<Duration>,
    sndtimeo: Option<Duration>,
    /// SO_RCVBUF/SO_SNDBUF (or their FORCE variants) were set: the kernel
    /// socket holds the value Linux reports.
    bufs_set: bool,
    /// TCP_CONGESTION was set: the kernel socket holds the name (the stack
    /// runs cubic or reno), and accepted sockets take it over as Linux's do.
    cc_set: bool,
    /// Tells this socket from a later one in the same slot.
    serial: u64,
    /// A wildcard listener whose kernel socket listens too (loopback and
    /// the kernel's other interfaces): accept merges both. The kernel
    /// socket is then O_NONBLOCK whatever the program set (`nonblock`).
    klisten: bool,
    /// Calls in progress on the socket: a close from another thread while
    /// one blocks waits for it to return (Linux holds the file until
    /// then), with `zombie` set.
    inflight: u32,
    zombie: bool,
    /// O_ASYNC: SIGIO (or F_SETSIG's signal) to the F_SETOWN owner when
    /// the socket becomes readable or writable, or more data comes;
    /// `async_seen` is the readiness and queued bytes last signalled.
    async_io: bool,
    async_seen: (u32, usize),
    /// F_SETOWN was used: urgent data signals the owner (SIGURG) whether
    /// or not O_ASYNC is set; `urg_seen` counts the pointers signalled.
    owner_set: bool,
    urg_seen: u32,
    /// EPOLLEXCLUSIVE: the readiness and queue length last seen, to tell
    /// a new event (which wakes one set) from a state that lasts.
    excl_seen: (u32, usize),
    /// Sends that found the socket full (EAGAIN or part sent): each makes
    /// the next writability a new edge for EPOLLET members.
    out_gen: u32,
}

impl Sock {
    /// A fresh socket named by `fd`, with Linux's defaults.
    fn open(proto: Proto, v6: bool, fd: c_int, nonblock: bool) -> Sock {
        Sock {
            proto,
            v6,
            refs: 1,
            fds: vec![fd],
            nonblock,
            rcvtimeo: None,
            sndtimeo: None,
            bufs_set: false,
            cc_set: false,
            serial: 0,
            klisten: false,
            inflight: 0,
            zombie: false,
            async_io: false,
            async_seen: (0, 0),
            owner_set: false,
            urg_seen: 0,
            excl_seen: (0, 0),
            out_gen: 0,
        }
    }
}

struct Member {
    fd: c_int,
    sid: SocketId,
    serial: u64,
    events: u32,
    data: u64,
    /// Oneshot member that reported: off until EPOLL_CTL_MOD.
    disabled: bool,
    /// Edge-triggered: what was reported last.
    last: u32,
    last_bytes: usize,
    /// The socket's `out_gen` when OUT was last reported.
    last_out_gen: u32,
    /// EPOLLEXCLUSIVE: on this set's ready list (an event was given to
    /// this set, or the socket was ready when added); off when not ready.
    excl_pending: bool,
}

impl Member {
    /// EPOLLET: readiness `got` (with `bytes` queued to read, the socket's
    /// `out_gen`) is an event this member has not reported: other bits,
    /// more data, or writability after a send that found the socket full.
    fn new_edge(&self, got: u32, bytes: usize, out_gen: u32) -> bool {
        let out = (libc::POLLOUT | libc::POLLWRNORM) as u32;
        got != self.last
            || bytes > self.last_bytes
            || (got & out != 0 && out_gen != self.last_out_gen)
    }
}

#[derive(Default)]
struct EpollSet {
    members: Vec<Member>,
    /// Threads in epoll_wait on this set now.
    waiters: u32,
}

/// Shunt's sockets and epoll interest lists.
#[derive(Default)]
pub struct Tables {
    socks: Vec<Option<Sock>>,
    free: Vec<u32>,
    epolls: Vec<Option<EpollSet>>,
    scratch: Vec<u8>,
    serial: u64,
    /// Sockets with O_ASYNC set, or an F_SETOWN owner: none, and a turn
    /// looks at none.
    async_n: usize,
    owner_n: usize,
    /// Signals (owner, signal) due to O_ASYNC owners, sent when the lock
    /// is released.
    async_due: Vec<(i32, i32)>,
}

impl Tables {
    fn insert(&mut self, mut s: Sock) -> Option<SocketId> {
        self.serial += 1;
        s.serial = self.serial;
        if let Some(i) = self.free.pop() {
            self.socks[i as usize] = Some(s);
            return Some(i);
        }
        let i = self.socks.len() as u32;
        if i > fdtable::MAX_ID {
            return None;
        }
        self.socks.push(Some(s));
        Some(i)
    }
    fn get(&self, id: SocketId) -> Option<&Sock> {
        self.socks.get(id as usize)?.as_ref()
    }
    fn get_mut(&mut self, id: SocketId) -> Option<&mut Sock> {
        self.socks.get_mut(id as usize)?.as_mut()
    }
    fn remove(&mut self, id: SocketId) -> Option<Sock> {
        let s = self.socks.get_mut(id as usize)?.take()?;
        self.free.push(id);
        if s.async_io {
            self.async_n -= 1;
        }
        if s.owner_set {
            self.owner_n -= 1;
        }
        Some(s)
    }

    fn set_owner(&mut self, id: SocketId) {
        if let Some(s) = self.get_mut(id)
            && !s.owner_set
        {
            s.owner_set = true;
            self.owner_n += 1;
        }
    }

    fn set_async(&mut self, id: SocketId, on: bool) {
        let Some(s) = self.get_mut(id) else { return };
        let was = core::mem::replace(&mut s.async_io, on);
        s.async_seen = (0, 0);
        match (was, on) {
            (false, true) => self.async_n += 1,
            (true, false) => self.async_n -= 1,
            _ => {}
        }
    }

    /// After a turn: signals the owners of O_ASYNC sockets that became
    /// readable or writable, got more data, or an error (sk_data_ready,
    /// sk_write_space, sk_error_report each call sk_wake_async).
    pub fn signal_async(&mut self, stack: &shunt_stack::Stack) {
        if self.async_n == 0 && self.owner_n == 0 {
            return;
        }
        for s in self.socks.iter_mut().flatten() {
            if s.owner_set
                && let Proto::Tcp(t) = s.proto
            {
                let n = stack.tcp_layer().urgent_signals(t);
                if n != s.urg_seen {
                    s.urg_seen = n;
                    if let Some(&fd) = s.fds.first() {
                        let owner = kernel_fcntl(fd, libc::F_GETOWN, 0);
                        if owner != 0
                            && owner != -1
                            && !self.async_due.contains(&(owner, libc::SIGURG))
                        {
                            self.async_due.push((owner, libc::SIGURG));
                        }
                    }
                }
            }
            if !s.async_io {
                continue;
            }
            let (r, n) = match s.proto {
                Proto::Tcp(t) => (
                    stack.tcp_layer().poll(t).0,
                    stack.tcp_layer().readable_bytes(t).unwrap_or(0),
                ),
                Proto::Udp(h) => (
                    stack.udp_readiness(h).map(|r| r.0).unwrap_or(0),
                    stack.udp_queued(h).unwrap_or(0),
                ),
            };
            let bits = (libc::POLLIN | libc::POLLOUT) as u32 | POLLERR | POLLHUP;
            let (seen, seen_n) = s.async_seen;
            s.async_seen = (r, n);
            let gained = r & bits & !seen != 0;
            if !gained && n <= seen_n {
                continue;
            }
            let Some(&fd) = s.fds.first() else { continue };
            let owner = kernel_fcntl(fd, libc::F_GETOWN, 0);
            if owner == 0 || owner == -1 {
                continue;
            }
            // F_GETSIG (linux/fcntl.h's 11, missing from the libc crate).
            let sig = match kernel_fcntl(fd, 11, 0) {
                x if x > 0 => x,
                _ => libc::SIGIO,
            };
            if !self.async_due.contains(&(owner, sig)) {
                self.async_due.push((owner, sig));
            }
        }
    }

    /// The O_ASYNC signals due, for [`send_async_signals`] once the lock
    /// is released (a handler that reads the socket must find it free).
    pub fn take_async_signals(&mut self) -> Vec<(i32, i32)> {
        core::mem::take(&mut self.async_due)
    }
}

/// kill(2) for each (owner, signal); a negative owner is a process group,
/// as F_SETOWN means it.
pub fn send_async_signals(due: Vec<(i32, i32)>) {
    for (owner, sig) in due {
        // SAFETY: kill(2) with plain integers.
        let _ =
            unsafe { libc::syscall(libc::SYS_kill, owner as libc::c_long, sig as libc::c_long) };
    }
}

const POLLERR: u32 = libc::POLLERR as u32;
const POLLHUP: u32 = libc::POLLHUP as u32;
const POLLNVAL: u32 = libc::POLLNVAL as u32;

fn e(x: c_int) -> Errno {
    Errno::from_raw_os_error(x)
}
fn se(x: shunt_stack::Errno) -> Errno {
    Errno::from_raw_os_error(x.0)
}
fn errno_now() -> Errno {
    // SAFETY: this thread's errno.
    e(unsafe { *libc::__errno_location() })
}

fn tcp_std(a: tcp::SockAddr) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::from(a.ip), a.port)
}

fn to_tcp(a: SocketAddr) -> tcp::SockAddr {
    tcp::SockAddr::new(a.ip().into(), a.port())
}

/// The program's iovec array as (pointer, length) pairs.
///
/// # Safety
/// `iov` points at `n` iovecs (checked for null).
unsafe fn iovs<'a>(iov: *const iovec, n: usize, need_bufs: bool) -> SysResult<&'a [iovec]> {
    if n == 0 {
        return Ok(&[]);
    }
    if n > 1024 {
        return Err(Errno::INVAL);
    }
    if iov.is_null() {
        return Err(Errno::FAULT);
    }
    // SAFETY: per the contract.
    let v = unsafe { core::slice::from_raw_parts(iov, n) };
    let mut total: usize = 0;
    for x in v {
        if need_bufs && x.iov_len > 0 && x.iov_base.is_null() {
            return Err(Errno::FAULT);
        }
        total = total.saturating_add(x.iov_len);
        if total > isize::MAX as usize {
            return Err(Errno::INVAL);
        }
    }
    Ok(v)
}

fn iov_total(v: &[iovec]) -> usize {
    v.iter().map(|x| x.iov_len).sum()
}

/// Each buffer of `v` after the first `skip` bytes, in order.
fn each_buf(v: &[iovec], mut skip: usize, mut f: impl FnMut(*mut u8, usize) -> bool) {
    for x in v {
        if skip >= x.iov_len {
            skip -= x.iov_len;
            continue;
        }
        // SAFETY: within the program's buffer (pointer arithmetic only).
        let p = unsafe { (x.iov_base as *mut u8).add(skip) };
        let n = x.iov_len - skip;
        skip = 0;
        if !f(p, n) {
            return;
        }
    }
}

fn raise_sigpipe() {
    // SAFETY: raise(3) is not one of the shim's exports.
    unsafe { libc::raise(libc::SIGPIPE) };
}

/// The registered integration.
pub struct Shunt {
    pub e: &'static Engine,
    dad: crate::dad::Dad,
}

fn deadline(t: Option<Duration>) -> Option<std::time::Instant> {
    t.map(|d| std::time::Instant::now() + d)
}

/// Whether a destination goes through shunt's interface (v4-mapped IPv6
/// as the IPv4 address it maps; `::` is loopback, as Linux connects it).
/// A link-local destination scoped to another interface does not.
fn via_shunt(g: &Inner, a: &SocketAddr, ifindex: i32) -> bool {
    match name::canonical(a.ip()) {
        StdIp::V4(v4) => {
            let ip: Ipv4Addr = v4.into();
            if v4.is_loopback() || v4.is_unspecified() {
                return false;
            }
            g.stack.ipv4().is_local(&ip) || g.stack.ipv4().routes.lookup(&ip).is_some()
        }
        StdIp::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                return false;
            }
            if let SocketAddr::V6(s) = a
                && s.scope_id() != 0
                && s.scope_id() != ifindex as u32
            {
                return false;
            }
            let ip: Ipv6Addr = v6.into();
            g.stack.ipv6().is_local(&ip) || g.stack.ipv6().routes.lookup(&ip).is_some()
        }
    }
}

/// Whether a name is scoped to shunt's interface (or to none).
fn scoped_here(a: &SocketAddr, ifindex: i32) -> bool {
    match a {
        SocketAddr::V6(s) => s.scope_id() == 0 || s.scope_id() == ifindex as u32,
        SocketAddr::V4(_) => true,
    }
}

/// Whether `a` (canonical: v4-mapped as IPv4) is one of shunt's
/// addresses.
fn is_local(g: &Inner, a: &StdIp) -> bool {
    match name::canonical(*a) {
        StdIp::V4(v4) => g.stack.ipv4().is_local(&v4.into()),
        StdIp::V6(v6) => g.stack.ipv6().is_local(&v6.into()),
    }
}

impl Shunt {
    fn forked(&self) -> bool {
        self.e.forked.load(core::sync::atomic::Ordering::Acquire)
    }

    /// Before an IPv6 operation that needs an address (crate::dad).
    fn settle_dad(&self) {
        self.dad.settle(self.e);
    }

    /// Run `f` until it stops answering EAGAIN, blocking as the socket's
    /// flags and timeout say. `restart`: Linux restarts the call after a
    /// signal handler with SA_RESTART (and no timeout set).
    fn block<T>(
        &self,
        nonblock: bool,
        timeo: Option<Duration>,
        restart: bool,
        f: impl FnMut(&mut Inner) -> SysResult<T>,
    ) -> SysResult<T> {
        self.block_with(nonblock, timeo, restart, Vec::new(), f)
    }

    /// [`Self::block`], also woken by the kernel pollfds `extra`.
    fn block_with<T>(
        &self,
        nonblock: bool,
        timeo: Option<Duration>,
        restart: bool,
        mut extra: Vec<pollfd>,
        mut f: impl FnMut(&mut Inner) -> SysResult<T>,
    ) -> SysResult<T> {
        {
            let mut g = self.e.lock();
            let r = f(&mut g);
            if nonblock || r.as_ref().err() != Some(&Errno::AGAIN) {
                self.e.done(g);
                return r;
            }
        }
        let dl = deadline(timeo);
        loop {
            let r = self.e.wait(dl, &mut extra, None, |g| match f(g) {
                Err(Errno::AGAIN) => None,
                r => Some(r),
            });
            match r {
                Ok(r) => return r,
                Err(WaitEnd::Timeout) => return Err(Errno::AGAIN),
                Err(WaitEnd::Interrupted) => {
                    if restart && timeo.is_none() && restart_after_signal() {
                        continue;
                    }
                    return Err(Errno::INTR);
                }
            }
        }
    }

    /// A wildcard listener serves the kernel's paths too (loopback, other
    /// interfaces): its kernel socket, bound to the same port, listens,
    /// non-blocking. Best effort: without it, shunt's path alone.
    fn kernel_listen(&self, g: &mut Inner, id: SocketId, fd: c_int, port: u16, backlog: c_int) {
        // SAFETY: sockaddr_storage is plain data; zero is valid.
        let mut st: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let mut len = core::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        // The port is at the same offset in sockaddr_in and sockaddr_in6.
        let kport = match real::getsockname() {
            // SAFETY: the real getsockname into our sockaddr_storage.
            Some(f)
                if unsafe {
                    f(
                        fd,
                        (&mut st as *mut libc::sockaddr_storage).cast(),
                        &mut len,
                    )
                } == 0 =>
            {
                // SAFETY: the kernel wrote an inet name; its port is there.
                u16::from_be(unsafe {
                    (*(&st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()).sin_port
                })
            }
            _ => return,
        };
        let v6 = c_int::from(st.ss_family) == libc::AF_INET6;
        if kport == 0 && kernel_bind(fd, wildcard(v6, port)) != 0 {
            return;
        }
        if kport != 0 && kport != port {
            return;
        }
        let fl = kernel_fcntl(fd, libc::F_GETFL, 0);
        if fl < 0 || kernel_fcntl(fd, libc::F_SETFL, (fl | libc::O_NONBLOCK) as usize) < 0 {
            return;
        }
        let ok = match real::listen() {
            // SAFETY: the real listen(2).
            Some(f) => (unsafe { f(fd, backlog) }) == 0,
            None => false,
        };
        if !ok {
            let _ = kernel_fcntl(fd, libc::F_SETFL, fl as usize);
            return;
        }
        if let Some(s) = g.t.get_mut(id) {
            s.klisten = true;
        }
    }

    /// Give the socket to its kernel socket (see the module docs).
    fn hand_over(&self, g: &mut Inner, id: SocketId) {
        let Some(s) = g.t.remove(id) else { return };
        for fd in &s.fds {
            fdtable::clear(*fd);
        }
        close_proto(g, s.proto);
    }

    /// A call starts on `id`: its settings, and a guard that ends the call.
    fn sock_info(&self, id: SocketId) -> Option<CallInfo<'_>> {
        // No turn here: the call's own first attempt runs one.
        let mut g = self.e.inner_lock();
        let s = g.t.get_mut(id)?;
        s.inflight += 1;
        Some((
            s.proto,
            s.nonblock,
            s.rcvtimeo,
            s.sndtimeo,
            InFlight { sh: self, id },
        ))
    }

    /// Whether an epoll_wait on `ep` would report a shunt member now.
    fn epoll_ready(g: &Inner, ep: EpollId) -> bool {
        let Some(Some(set)) = g.t.epolls.get(ep as usize) else {
            return false;
        };
        set.members.iter().any(|m| {
            if m.disabled || g.t.get(m.sid).is_none_or(|s| s.serial != m.serial) {
                return false;
            }
            let (r, bytes) = Self::readiness(g, m.sid);
            let got = r & (m.events | POLLERR | POLLHUP);
            let out_gen = g.t.get(m.sid).map_or(0, |s| s.out_gen);
            got != 0 && (m.events & libc::EPOLLET as u32 == 0 || m.new_edge(got, bytes, out_gen))
        })
    }

    fn set_waiting(&self, ep: EpollId, on: bool) {
        let mut g = self.e.inner_lock();
        if let Some(Some(set)) = g.t.epolls.get_mut(ep as usize) {
            if on {
                set.waiters += 1;
            } else {
                set.waiters = set.waiters.saturating_sub(1);
            }
        }
    }

    /// What grows with each new event on a socket: the accept queue of a
    /// listener, queued bytes or datagrams otherwise.
    fn excl_count(g: &Inner, id: SocketId) -> usize {
        match g.t.get(id).map(|s| s.proto) {
            Some(Proto::Tcp(t)) => match g.stack.tcp_layer().listen_queues(t) {
                Ok((_, accept)) => accept,
                Err(_) => g.stack.tcp_layer().readable_bytes(t).unwrap_or(0),
            },
            Some(Proto::Udp(h)) => g.stack.udp_queued(h).unwrap_or(0),
            None => 0,
        }
    }

    /// EPOLLEXCLUSIVE (ep_poll_callback with exclusive wake-ups): a new
    /// event on a socket that exclusive members watch goes to one set: the
    /// set now looking (`evaluating`) if it has one, else the first with a
    /// thread waiting, else every set (none was waiting to be woken).
    fn excl_scan(g: &mut Inner, evaluating: EpollId) {
        let excl = libc::EPOLLEXCLUSIVE as u32;
        let mut sids: Vec<SocketId> = Vec::new();
        for set in g.t.epolls.iter().flatten() {
            for m in &set.members {
                if m.events & excl != 0 && !sids.contains(&m.sid) {
                    sids.push(m.sid);
                }
            }
        }
        for sid in sids {
            let (r, _) = Self::readiness(g, sid);
            let n = Self::excl_count(g, sid);
            let Some(s) = g.t.get_mut(sid) else { continue };
            let (seen_r, seen_n) = core::mem::replace(&mut s.excl_seen, (r, n));
            if r & !seen_r == 0 && n <= seen_n {
                continue;
            }
            let has = |set: &EpollSet| {
                set.members
                    .iter()
                    .any(|m| m.sid == sid && m.events & excl != 0)
            };
            let target = match g.t.epolls.get(evaluating as usize) {
                Some(Some(set)) if has(set) => Some(evaluating as usize),
                _ => {
                    g.t.epolls
                        .iter()
                        .position(|x| x.as_ref().is_some_and(|set| set.waiters > 0 && has(set)))
                }
            };
            for (i, set) in g.t.epolls.iter_mut().enumerate() {
                let Some(set) = set else { continue };
                if target.is_some_and(|t| t != i) {
                    continue;
                }
                for m in set.members.iter_mut() {
                    if m.sid == sid && m.events & excl != 0 {
                        m.excl_pending = true;
                    }
                }
            }
        }
    }

    fn readiness(g: &Inner, id: SocketId) -> (u32, usize) {
        match g.t.get(id).map(|s| s.proto) {
            Some(Proto::Tcp(t)) => {
                let mut r = g.stack.tcp_layer().poll(t).0;
                if let Some(s) = g.t.get(id)
                    && s.klisten
                    && kernel_readable(s.fds.first().copied().unwrap_or(-1))
                {
                    r |= (libc::POLLIN | libc::POLLRDNORM) as u32;
                }
                (r, g.stack.tcp_layer().readable_bytes(t).unwrap_or(0))
            }
            Some(Proto::Udp(h)) => (
                g.stack.udp_readiness(h).map(|r| r.0).unwrap_or(POLLNVAL),
                g.stack.udp_next_len(h).unwrap_or(0),
            ),
            None => (POLLNVAL, 0),
        }
    }

    /// recv(MSG_OOB) on TCP: the urgent byte, never blocking (tcp_recv_urg
    /// answers at once: EINVAL with none, EAGAIN before it arrives).
    ///
    /// # Safety
    /// `m` and `v` are the program's msghdr and its iovecs.
    unsafe fn recv_tcp_oob(
        &self,
        tid: TcpId,
        m: &mut msghdr,
        v: &[libc::iovec],
        flags: c_int,
    ) -> SysResult<isize> {
        let peek = flags & libc::MSG_PEEK != 0;
        let r = {
            let mut g = self.e.lock();
            let now = g.now();
            let r = g.stack.tcp(now, |l, _| l.recv_oob(tid, peek));
            self.e.done(g);
            r.map_err(se)?
        };
        m.msg_flags = libc::MSG_OOB;
        m.msg_controllen = 0;
        m.msg_namelen = 0;
        let Some(first) = v.iter().find(|x| x.iov_len > 0) else {
            // No room: the byte is gone all the same (tcp_recv_urg).
            m.msg_flags |= libc::MSG_TRUNC;
            return Ok(0);
        };
        if flags & libc::MSG_TRUNC != 0 {
            return Ok(1);
        }
        crate::usermem::check(core::slice::from_ref(first), true)?;
        // SAFETY: one byte of the program's buffer, checked above.
        unsafe { first.iov_base.cast::<u8>().write(r) };
        Ok(1)
    }

    unsafe fn recv_tcp(
        &self,
        tid: TcpId,
        nonblock: bool,
        timeo: Option<Duration>,
        msg: *mut msghdr,
        flags: c_int,
    ) -> SysResult<isize> {
        // SAFETY: the program's msghdr (checked non-null by the caller).
        let m = unsafe { &mut *msg };
        // SAFETY: the program's iovecs (MSG_TRUNC discards: no buffer
        // needed).
        let v = unsafe { iovs(m.msg_iov, m.msg_iovlen, flags & libc::MSG_TRUNC == 0) }?;
        if flags & libc::MSG_OOB != 0 {
            // SAFETY: the program's msghdr and iovecs, as above.
            return unsafe { self.recv_tcp_oob(tid, m, v, flags) };
        }
        if flags & libc::MSG_TRUNC == 0 {
            crate::usermem::check(v, true)?;
        }
        let total = iov_total(v);
        let peek = flags & libc::MSG_PEEK != 0;
        let trunc = flags & libc::MSG_TRUNC != 0;
        let waitall = flags & libc::MSG_WAITALL != 0 && !peek;
        let nb = nonblock || flags & libc::MSG_DONTWAIT != 0;
        let rf = tcp::RecvFlags { peek };
        let mut got = 0usize;
        loop {
            let r = self.block(nb, timeo, got == 0, |g| {
                let now = g.now();
                let mut n = 0usize;
                let mut res = Ok(());
                if total == 0 {
                    // Linux waits for a byte (or EOF, or an error) and
                    // copies none.
                    let lay = g.stack.tcp_layer();
                    let p = lay.poll(tid).0;
                    if lay.readable_bytes(tid).unwrap_or(0) == 0
                        && p & (libc::POLLIN | libc::POLLERR) as u32 == 0
                        && lay.state(tid).is_ok_and(|s| s != tcp::TcpState::Close)
                    {
                        return Err(Errno::AGAIN);
                    }
                    return g
                        .stack
                        .tcp(now, |t, cx| t.recv(cx, tid, &mut [], rf))
                        .map_err(se);
                }
                if trunc && !peek {
                    // Discard without copying.
                    let mut junk = [0u8; 2048];
                    while got + n < total {
                        let want = (total - got - n).min(junk.len());
                        match g
                            .stack
                            .tcp(now, |t, cx| t.recv(cx, tid, &mut junk[..want], rf))
                        {
                            Ok(0) => break,
                            Ok(k) => n += k,
                            Err(x) => {
                                res = Err(x);
                                break;
                            }
                        }
                    }
                } else {
                    let mut off = got;
                    if peek {
                        off = 0;
                    }
                    each_buf(v, off, |p, len| {
                        // SAFETY: the program's buffer, `len` bytes.
                        let buf = unsafe { core::slice::from_raw_parts_mut(p, len) };
                        match g.stack.tcp(now, |t, cx| t.recv(cx, tid, buf, rf)) {
                            Ok(k) => {
                                n += k;
                                k == len && !peek
                            }
                            Err(x) => {
                                res = Err(x);
                                false
                            }
                        }
                    });
                }
                if n > 0 {
                    return Ok(n);
                }
                res.map(|()| 0).map_err(se)
            });
            match r {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if !waitall || got >= total {
                        break;
                    }
                }
                Err(x) => {
                    if got > 0 {
                        break;
                    }
                    return Err(x);
                }
            }
        }
        m.msg_namelen = 0;
        m.msg_controllen = 0;
        m.msg_flags = 0;
        Ok(got as isize)
    }

    unsafe fn send_tcp(
        &self,
        id: SocketId,
        tid: TcpId,
        nonblock: bool,
        timeo: Option<Duration>,
        msg: *const msghdr,
        flags: c_int,
    ) -> SysResult<isize> {
        // SAFETY: the program's msghdr.
        let m = unsafe { &*msg };
        // SAFETY: the program's iovecs.
        let v = unsafe { iovs(m.msg_iov, m.msg_iovlen, true) }?;
        crate::usermem::check(v, false)?;
        let total = iov_total(v);
        let nb = nonblock || flags & libc::MSG_DONTWAIT != 0;
        let sf = SendFlags {
            more: flags & libc::MSG_MORE != 0,
            oob: flags & libc::MSG_OOB != 0,
        };
        let mut sent = 0usize;
        let r = loop {
            let r = self.block(nb, timeo, sent == 0, |g| {
                let now = g.now();
                if total == 0 {
                    return g
                        .stack
                        .tcp(now, |t, cx| t.send(cx, tid, &[], sf))
                        .map_err(se);
                }
                let mut n = 0usize;
                let mut res = Ok(());
                each_buf(v, sent, |p, len| {
                    // SAFETY: the program's buffer, `len` bytes.
                    let buf = unsafe { core::slice::from_raw_parts(p, len) };
                    match g.stack.tcp(now, |t, cx| t.send(cx, tid, buf, sf)) {
                        Ok(k) => {
                            n += k;
                            k == len
                        }
                        Err(x) => {
                            res = Err(x);
                            false
                        }
                    }
                });
                if n > 0 {
                    return Ok(n);
                }
                res.map(|()| 0).map_err(se)
            });
            match r {
                Ok(n) => {
                    sent += n;
                    if nb || sent >= total || n == 0 {
                        break Ok(sent);
                    }
                }
                Err(x) if sent > 0 => {
                    let _ = x;
                    break Ok(sent);
                }
                Err(x) => break Err(x),
            }
        };
        if r == Err(Errno::PIPE) && flags & libc::MSG_NOSIGNAL == 0 {
            raise_sigpipe();
        }
        if r == Err(Errno::AGAIN) || r.is_ok_and(|n| n < total) {
            self.rearm_out_edges(id);
        }
        r.map(|n| n as isize)
    }

    /// Edge-triggered epoll: a send that did not take everything found the
    /// socket full (Linux sets SOCK_NOSPACE), so its next writability is a
    /// new edge (sk_stream_write_space wakes EPOLLET waiters), even when no
    /// epoll_wait saw it unwritable in between (levels alone would miss it:
    /// OUT before, OUT after).
    fn rearm_out_edges(&self, id: SocketId) {
        if let Some(s) = self.e.inner_lock().t.get_mut(id) {
            s.out_gen = s.out_gen.wrapping_add(1);
        }
    }

    unsafe fn recv_udp(
        &self,
        id: SocketId,
        h: UdpHandle,
        nonblock: bool,
        timeo: Option<Duration>,
        msg: *mut msghdr,
        flags: c_int,
    ) -> SysResult<isize> {
        // SAFETY: the program's msghdr.
        let m = unsafe { &mut *msg };
        // SAFETY: the program's iovecs.
        let v = unsafe { iovs(m.msg_iov, m.msg_iovlen, true) }?;
        crate::usermem::check(v, true)?;
        // MSG_OOB means nothing to udp_recvmsg: the datagram comes.
        if flags & libc::MSG_ERRQUEUE != 0 {
            // SAFETY: the program's msghdr and iovecs, as above.
            return unsafe { self.recv_udp_err(h, m, v) };
        }
        let nb = nonblock || flags & libc::MSG_DONTWAIT != 0;
        let rf = shunt_stack::RecvFlags {
            peek: flags & libc::MSG_PEEK != 0,
            trunc: flags & libc::MSG_TRUNC != 0,
            blocking: !nb,
        };
        let _ = id;
        let r = self.block(nb, timeo, true, |g| {
            let direct = v.len() <= 1;
            let r = if direct {
                let buf: &mut [u8] = match v.first() {
                    // SAFETY: the program's buffer.
                    Some(x) => unsafe {
                        core::slice::from_raw_parts_mut(x.iov_base as *mut u8, x.iov_len)
                    },
                    None => &mut [],
                };
                g.stack.udp_recv_from(h, buf, rf)
            } else {
                let mut scratch = core::mem::take(&mut g.t.scratch);
                scratch.resize(65536, 0);
                let r = g.stack.udp_recv_from(h, &mut scratch, rf);
                if let Ok(u) = &r {
                    let mut off = 0;
                    let n = u.len.min(scratch.len());
                    each_buf(v, 0, |p, len| {
                        let k = len.min(n - off);
                        // SAFETY: `k` bytes into the program's buffer.
                        unsafe { core::ptr::copy_nonoverlapping(scratch.as_ptr().add(off), p, k) };
                        off += k;
                        off < n
                    });
                }
                g.t.scratch = scratch;
                r.map(|mut u| {
                    let cap = iov_total(v);
                    if u.len > cap {
                        u.truncated = true;
                        if !rf.trunc {
                            u.ret = cap;
                        }
                    }
                    u
                })
            };
            r.map_err(se)
        })?;
        let v6 = h.version() == shunt_stack::IpVersion::V6;
        let ifx = self.e.ifindex as u32;
        if !m.msg_name.is_null() {
            if let Some(src) = r.src {
                let mut l = m.msg_namelen;
                // SAFETY: the program's name buffer of msg_namelen bytes.
                unsafe { name::write(m.msg_name.cast(), &mut l, src, v6, ifx) }?;
                m.msg_namelen = l;
            } else {
                m.msg_namelen = 0;
            }
        } else {
            m.msg_namelen = 0;
        }
        let mut mflags = if r.truncated { libc::MSG_TRUNC } else { 0 };
        let (opts, now) = {
            let g = self.e.inner_lock();
            let o = g.stack.udp_options(h).unwrap_or_default();
            // The clock only for a timestamp.
            let now = (o.timestamp != shunt_stack::RxTimestamp::Off).then(|| g.now());
            (o, now.unwrap_or_default())
        };
        let mut used = 0usize;
        let mut put = |level: c_int, ty: c_int, data: &[u8]| {
            // SAFETY: the program's control buffer of msg_controllen bytes.
            used += unsafe { put_cmsg(m, used, &mut mflags, level, ty, data) };
        };
        // udp_recvmsg's order: the timestamp, then ip_cmsg_recv's
        // PKTINFO, TTL, TOS.
        if opts.timestamp != shunt_stack::RxTimestamp::Off && r.src.is_some() {
            let (sec, nsec) = realtime_of(now, r.info.at);
            if opts.timestamp == shunt_stack::RxTimestamp::Nanos {
                let ts = libc::timespec {
                    tv_sec: sec,
                    tv_nsec: nsec,
                };
                // SAFETY: timespec is plain data of 16 bytes.
                let data: [u8; 16] = unsafe { core::mem::transmute(ts) };
                put(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &data);
            } else {
                let tv = libc::timeval {
                    tv_sec: sec,
                    tv_usec: nsec / 1000,
                };
                // SAFETY: timeval is plain data of 16 bytes.
                let data: [u8; 16] = unsafe { core::mem::transmute(tv) };
                put(libc::SOL_SOCKET, libc::SCM_TIMESTAMP, &data);
            }
        }
        if let (true, true, Some(dst)) = (opts.recv_pktinfo, v6, r.dst) {
            let data = name::in6_pktinfo(dst, ifx);
            put(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &data);
        } else if let (true, Some(std::net::IpAddr::V4(dst))) = (opts.recv_pktinfo, r.dst) {
            let a = libc::in_addr {
                s_addr: u32::from(dst).to_be(),
            };
            let pi = libc::in_pktinfo {
                ipi_ifindex: self.e.ifindex,
                ipi_spec_dst: a,
                ipi_addr: a,
            };
            // SAFETY: in_pktinfo is plain data.
            let data: [u8; 12] = unsafe { core::mem::transmute(pi) };
            put(libc::IPPROTO_IP, libc::IP_PKTINFO, &data);
        }
        // ip6_datagram_recv_specific_ctl: after PKTINFO, HOPLIMIT then
        // TCLASS, ints.
        if v6 && opts.recv_hoplimit && r.src.is_some() {
            let hl = i32::from(r.info.ttl).to_ne_bytes();
            put(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, &hl);
        }
        if v6 && opts.recv_tclass && r.src.is_some() {
            let tc = i32::from(r.info.tos).to_ne_bytes();
            put(libc::IPPROTO_IPV6, libc::IPV6_TCLASS, &tc);
        }
        // An IPv6 socket's IP_RECVTTL / IP_RECVTOS: IPv4 datagrams only
        // (udpv6_recvmsg's ip_cmsg_recv_offset for is_udp4).
        let ip4 = match r.src {
            Some(SocketAddr::V4(_)) => true,
            Some(SocketAddr::V6(a)) => a.ip().to_ipv4_mapped().is_some(),
            None => false,
        };
        if opts.recv_ttl && ip4 {
            let ttl = i32::from(r.info.ttl).to_ne_bytes();
            put(libc::IPPROTO_IP, libc::IP_TTL, &ttl);
        }
        if opts.recv_tos && ip4 {
            put(libc::IPPROTO_IP, libc::IP_TOS, &[r.info.tos]);
        }
        m.msg_controllen = used as _;
        m.msg_flags = mflags;
        Ok(r.ret as isize)
    }

    /// `recvmsg(MSG_ERRQUEUE)` (ip_recv_error): the offending payload, its
    /// destination as the name, and an IP_RECVERR control message with the
    /// `sock_extended_err` and the ICMP sender. Never blocks.
    ///
    /// # Safety
    /// `m` and `v` are the program's msghdr and its iovecs.
    unsafe fn recv_udp_err(
        &self,
        h: UdpHandle,
        m: &mut msghdr,
        v: &[libc::iovec],
    ) -> SysResult<isize> {
        let cap = iov_total(v).min(65536);
        let mut buf = vec![0u8; cap];
        let e = {
            let mut g = self.e.lock();
            let r = g.stack.udp_recv_err(h, &mut buf);
            self.e.done(g);
            r.map_err(se)?
        };
        let mut off = 0;
        each_buf(v, 0, |p, len| {
            let k = len.min(e.ret - off);
            // SAFETY: `k` bytes into the program's buffer.
            unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr().add(off), p, k) };
            off += k;
            off < e.ret
        });
        let v6 = h.version() == shunt_stack::IpVersion::V6;
        let ifx = self.e.ifindex as u32;
        // The stack names both families v4-mapped.
        let std6 = |a: shunt_stack::Ipv6Addr| -> std::net::Ipv6Addr { a.into() };
        let dst6 = std6(e.dst.0);
        let dst = match (v6, dst6.to_ipv4_mapped()) {
            (false, Some(v4)) => SocketAddr::V4(SocketAddrV4::new(v4, e.dst.1)),
            _ => SocketAddr::V6(std::net::SocketAddrV6::new(dst6, e.dst.1, 0, 0)),
        };
        if !m.msg_name.is_null() {
            let mut l = m.msg_namelen;
            // SAFETY: the program's name buffer of msg_namelen bytes.
            unsafe { name::write(m.msg_name.cast(), &mut l, dst, v6, ifx) }?;
            m.msg_namelen = l;
        }
        let ee = libc::sock_extended_err {
            ee_errno: e.errno.0 as u32,
            ee_origin: if e.origin.icmp6 {
                libc::SO_EE_ORIGIN_ICMP6
            } else {
                libc::SO_EE_ORIGIN_ICMP
            },
            ee_type: e.origin.icmp_type,
            ee_code: e.origin.code,
            ee_pad: 0,
            ee_info: e.origin.info,
            ee_data: 0,
        };
        // SAFETY: sock_extended_err is 16 bytes of plain data.
        let ee: [u8; 16] = unsafe { core::mem::transmute(ee) };
        let mut mflags = libc::MSG_ERRQUEUE;
        if e.truncated {
            mflags |= libc::MSG_TRUNC;
        }
        let offender = std6(e.origin.offender);
        let used = if v6 {
            // ipv6_recv_error: IPV6_RECVERR whatever the ICMP family, the
            // offender a sockaddr_in6 (v4-mapped for ICMP).
            let sa = name::to_v6(
                SocketAddr::V6(std::net::SocketAddrV6::new(offender, 0, 0, 0)),
                ifx,
            );
            let mut data = [0u8; 16 + 28];
            data[..16].copy_from_slice(&ee);
            // SAFETY: sockaddr_in6 is 28 bytes of plain data.
            data[16..].copy_from_slice(&unsafe {
                core::mem::transmute::<libc::sockaddr_in6, [u8; 28]>(name::sin6_bytes(sa))
            });
            // SAFETY: the program's control buffer of msg_controllen bytes.
            unsafe {
                put_cmsg(
                    m,
                    0,
                    &mut mflags,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_RECVERR,
                    &data,
                )
            }
        } else {
            let o4 = offender
                .to_ipv4_mapped()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            let mut data = [0u8; 32];
            data[..16].copy_from_slice(&ee);
            // SAFETY: sockaddr_in is 16 bytes of plain data.
            data[16..].copy_from_slice(&unsafe {
                core::mem::transmute::<libc::sockaddr_in, [u8; 16]>(name::sin_bytes(
                    SocketAddrV4::new(o4, 0),
                ))
            });
            // SAFETY: the program's control buffer of msg_controllen bytes.
            unsafe { put_cmsg(m, 0, &mut mflags, libc::IPPROTO_IP, libc::IP_RECVERR, &data) }
        };
        m.msg_controllen = used as _;
        m.msg_flags = mflags;
        Ok(e.ret as isize)
    }

    unsafe fn send_udp(
        &self,
        id: SocketId,
        h: UdpHandle,
        msg: *const msghdr,
        flags: c_int,
    ) -> Served<isize> {
        // SAFETY: the program's msghdr.
        let m = unsafe { &*msg };
        // SAFETY: the program's iovecs.
        let v = match unsafe { iovs(m.msg_iov, m.msg_iovlen, true) } {
            Ok(v) => v,
            Err(x) => return Some(Err(x)),
        };
        if let Err(x) = crate::usermem::check(v, false) {
            return Some(Err(x));
        }
        if flags & libc::MSG_OOB != 0 {
            return Some(Err(Errno::OPNOTSUPP));
        }
        let v6 = h.version() == shunt_stack::IpVersion::V6;
        let dst = if m.msg_name.is_null() {
            None
        } else {
            // SAFETY: the program's name.
            match unsafe { name::read(m.msg_name.cast(), m.msg_namelen, AddrUse::Send, v6) } {
                Ok(a) => a,
                Err(x) => return Some(Err(x)),
            }
        };
        if let Some(SocketAddr::V6(d)) = dst
            && d.ip().to_ipv4_mapped().is_none()
        {
            self.settle_dad();
        }
        let mut g = self.e.lock();
        if let Some(d) = dst
            && !via_shunt(&g, &d, self.e.ifindex)
            && !matches!(name::canonical(d.ip()), StdIp::V4(v4) if v4.is_broadcast())
            && !d.ip().is_multicast()
            && g.stack
                .udp_local_addr(h)
                .map(|a| a.port() == 0)
                .unwrap_or(true)
        {
            self.hand_over(&mut g, id);
            drop(g);
            return None;
        }
        if dst.is_some()
            && let Err(x) = shared_autobind(&mut g, Proto::Udp(h), v6)
        {
            return Some(Err(x));
        }
        // SAFETY: the program's msghdr, read above.
        let (tos, ttl) = match unsafe { ip_send_cmsgs(m) } {
            Ok(x) => x,
            Err(x) => return Some(Err(x)),
        };
        // A per-datagram TOS / TTL: the socket's own, swapped in for this
        // send only (under the lock, so no other send sees it).
        let saved = if tos.is_some() || ttl.is_some() {
            let o = g.stack.udp_options(h).ok();
            let _ = g.stack.udp_set_options(h, |o| {
                o.tos = tos.unwrap_or(o.tos);
                o.ttl = ttl.or(o.ttl);
            });
            o
        } else {
            None
        };
        let now = g.now();
        let more = flags & libc::MSG_MORE != 0;
        let r = if v.len() <= 1 {
            let buf: &[u8] = match v.first() {
                // SAFETY: the program's buffer.
                Some(x) => unsafe {
                    core::slice::from_raw_parts(x.iov_base as *const u8, x.iov_len)
                },
                None => &[],
            };
            g.stack.udp_send_more(h, buf, dst, now, more)
        } else {
            let mut scratch = core::mem::take(&mut g.t.scratch);
            scratch.clear();
            each_buf(v, 0, |p, len| {
                // SAFETY: the program's buffer.
                scratch.extend_from_slice(unsafe { core::slice::from_raw_parts(p, len) });
                true
            });
            let r = g.stack.udp_send_more(h, &scratch, dst, now, more);
            g.t.scratch = scratch;
            r
        };
        if let Some(o) = saved {
            let _ = g.stack.udp_set_options(h, |x| {
                x.tos = o.tos;
                x.ttl = o.ttl;
            });
        }
        self.e.done(g);
        let r = r.map_err(se);
        if r == Err(Errno::PIPE) && flags & libc::MSG_NOSIGNAL == 0 {
            raise_sigpipe();
        }
        Some(r.map(|n| n as isize))
    }

    fn int_opt(val: *const c_void, len: socklen_t) -> SysResult<i32> {
        if (1..4).contains(&(len as usize)) && !val.is_null() {
            // IPPROTO_IP options take a single byte too (the kernel, asked
            // first, refused the others).
            // SAFETY: one byte of the program's value.
            return Ok(i32::from(unsafe { val.cast::<u8>().read() }));
        }
        if (len as usize) < 4 {
            return Err(Errno::INVAL);
        }
        if val.is_null() {
            return Err(Errno::FAULT);
        }
        // SAFETY: four bytes of the program's value.
        Ok(unsafe { core::ptr::read_unaligned(val.cast::<i32>()) })
    }

    /// Write an int option value as Linux (truncated to `*len`).
    unsafe fn put_int(val: *mut c_void, len: *mut socklen_t, v: i32) -> SysResult<c_int> {
        // SAFETY: the program's pointers.
        unsafe { Self::put_bytes(val, len, &v.to_ne_bytes()) }
    }

    unsafe fn put_bytes(val: *mut c_void, len: *mut socklen_t, b: &[u8]) -> SysResult<c_int> {
        // SAFETY: the program's pointers; an option reports what it copied.
        unsafe { crate::sockaddr::copy_out(val.cast(), len, b, false) }.map(|()| 0)
    }

    fn tcp_opt(level: c_int, name: c_int) -> Option<SockOpt> {
        Some(match (level, name) {
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => SockOpt::ReuseAddr,
            (libc::SOL_SOCKET, libc::SO_REUSEPORT) => SockOpt::ReusePort,
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => SockOpt::KeepAlive,
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => SockOpt::SndBuf,
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => SockOpt::RcvBuf,
            (libc::SOL_SOCKET, libc::SO_RCVLOWAT) => SockOpt::RcvLowat,
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => SockOpt::AcceptConn,
            (libc::SOL_SOCKET, libc::SO_OOBINLINE) => SockOpt::OobInline,
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => SockOpt::NoDelay,
            (libc::IPPROTO_TCP, libc::TCP_CORK) => SockOpt::Cork,
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => SockOpt::MaxSeg,
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => SockOpt::KeepIdle,
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => SockOpt::KeepIntvl,
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => SockOpt::KeepCnt,
            (libc::IPPROTO_TCP, libc::TCP_SYNCNT) => SockOpt::SynCnt,
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => SockOpt::UserTimeout,
            (libc::IPPROTO_TCP, libc::TCP_QUICKACK) => SockOpt::QuickAck,
            (libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT) => SockOpt::DeferAccept,
            (libc::IPPROTO_IP, libc::IP_TTL) => SockOpt::Ttl,
            (libc::IPPROTO_IP, libc::IP_TOS) => SockOpt::Tos,
            _ => return None,
        })
    }

    /// An IPPROTO_IPV6 option the kernel socket accepted, applied to the
    /// stack (the kernel socket keeps answering getsockopt for it).
    fn set_ipv6_opt(
        g: &mut Inner,
        proto: Proto,
        name: c_int,
        val: *const c_void,
        len: socklen_t,
    ) -> SysResult<()> {
        let v = Self::int_opt(val, len)?;
        let now = g.now();
        match proto {
            Proto::Tcp(t) => {
                let o = match name {
                    libc::IPV6_V6ONLY => SockOpt::V6Only,
                    libc::IPV6_UNICAST_HOPS => SockOpt::Ttl,
                    libc::IPV6_TCLASS => SockOpt::Tos,
                    _ => return Ok(()),
                };
                // IPV6_TCLASS -1 is the default, 0.
                let v = if o == SockOpt::Tos { v.max(0) } else { v };
                g.stack
                    .tcp(now, |lay, cx| lay.set_option(cx, t, o, v))
                    .map_err(se)
            }
            Proto::Udp(h) => {
                let on = v != 0;
                match name {
                    libc::IPV6_V6ONLY => g.stack.udp_set_options(h, |o| o.v6only = on),
                    libc::IPV6_UNICAST_HOPS => g
                        .stack
                        .udp_set_options(h, |o| o.ttl = (v >= 0).then_some(v as u8)),
                    libc::IPV6_TCLASS => g.stack.udp_set_options(h, |o| o.tos = v.max(0) as u8),
                    libc::IPV6_RECVPKTINFO => g.stack.udp_set_options(h, |o| o.recv_pktinfo = on),
                    libc::IPV6_RECVHOPLIMIT => g.stack.udp_set_options(h, |o| o.recv_hoplimit = on),
                    libc::IPV6_RECVTCLASS => g.stack.udp_set_options(h, |o| o.recv_tclass = on),
                    libc::IPV6_RECVERR => g.stack.udp_set_options(h, |o| o.recverr6 = on),
                    _ => Ok(()),
                }
                .map_err(se)
            }
        }
    }

    /// `struct tcp_info` as Linux lays it out.
    fn tcp_info_bytes(i: &tcp::TcpInfo) -> [u8; 232] {
        let mut b = [0u8; 232];
        b[0] = i.state;
        b[1] = i.ca_state;
        b[2] = i.retransmits;
        b[3] = i.probes;
        b[4] = i.backoff;
        b[5] = i.options;
        b[6] = (i.snd_wscale & 15) | (i.rcv_wscale << 4);
        let mut put = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        put(8, i.rto);
        put(12, i.ato);
        put(16, i.snd_mss);
        put(20, i.rcv_mss);
        put(24, i.unacked);
        put(28, i.sacked);
        put(32, i.lost);
        put(36, i.retrans);
        put(44, i.last_data_sent);
        put(52, i.last_data_recv);
        put(56, i.last_ack_recv);
        put(60, i.pmtu);
        put(64, i.rcv_ssthresh);
        put(68, i.rtt);
        put(72, i.rttvar);
        put(76, i.snd_ssthresh);
        put(80, i.snd_cwnd);
        put(84, i.advmss);
        put(88, i.reordering);
        put(96, i.rcv_space);
        put(100, i.total_retrans);
        put(136, i.segs_out);
        put(140, i.segs_in);
        put(144, i.notsent_bytes);
        put(148, i.min_rtt);
        put(228, i.snd_wnd);
        b[120..128].copy_from_slice(&i.bytes_acked.to_ne_bytes());
        b[128..136].copy_from_slice(&i.bytes_received.to_ne_bytes());
        b
    }

    /// Close what a socket has in the stack, waiting for SO_LINGER.
    fn close_now(&self, id: SocketId) {
        let mut g = self.e.lock();
        let Some(s) = g.t.get(id) else { return };
        let (proto, nonblock) = (s.proto, s.nonblock);
        if let Proto::Tcp(t) = proto
            && !nonblock
            && let Ok(Some(secs)) = g.stack.tcp_layer().linger(t)
            && secs > 0
            && g.stack.tcp_layer().queued_bytes(t).unwrap_or(0) > 0
        {
            drop(g);
            let dl = deadline(Some(Duration::from_secs(u64::from(secs))));
            let mut extra = Vec::new();
            let _ = self.e.wait(dl, &mut extra, None, |g| {
                (g.stack.tcp_layer().queued_bytes(t).unwrap_or(0) == 0).then_some(())
            });
            g = self.e.lock();
        }
        if let Some(s) = g.t.remove(id) {
            close_proto(&mut g, s.proto);
        }
        self.e.done(g);
    }
}

/// The IP_TOS and IP_TTL control messages of a sendmsg (ip_cmsg_send: an
/// int or a single byte; out of range is EINVAL), and their IPv6 peers
/// IPV6_TCLASS and IPV6_HOPLIMIT.
///
/// # Safety
/// `m.msg_control` is null or the program's buffer of `msg_controllen`.
unsafe fn ip_send_cmsgs(m: &msghdr) -> SysResult<(Option<u8>, Option<u8>)> {
    let (mut tos, mut ttl) = (None, None);
    if m.msg_control.is_null() {
        return Ok((tos, ttl));
    }
    let hdr = core::mem::size_of::<libc::cmsghdr>();
    let (base, total) = (m.msg_control.cast::<u8>(), m.msg_controllen);
    let mut at = 0usize;
    while at + hdr <= total {
        // SAFETY: a header within the program's buffer.
        let c: libc::cmsghdr = unsafe { core::ptr::read_unaligned(base.add(at).cast()) };
        let len = c.cmsg_len;
        if len < hdr || at + len > total {
            return Err(Errno::INVAL);
        }
        let data_len = len - hdr;
        if c.cmsg_level == libc::IPPROTO_IP && matches!(c.cmsg_type, libc::IP_TOS | libc::IP_TTL) {
            let v: i32 = match data_len {
                // SAFETY: four bytes of the program's data.
                4 => unsafe { core::ptr::read_unaligned(base.add(at + hdr).cast::<i32>()) },
                // SAFETY: one byte of the program's data.
                1 if c.cmsg_type == libc::IP_TOS => i32::from(unsafe { *base.add(at + hdr) }),
                _ => return Err(Errno::INVAL),
            };
            if c.cmsg_type == libc::IP_TOS {
                if !(0..=255).contains(&v) {
                    return Err(Errno::INVAL);
                }
                tos = Some(v as u8);
            } else {
                if !(1..=255).contains(&v) {
                    return Err(Errno::INVAL);
                }
                ttl = Some(v as u8);
            }
        } else if c.cmsg_level == libc::IPPROTO_IPV6
            && matches!(c.cmsg_type, libc::IPV6_TCLASS | libc::IPV6_HOPLIMIT)
        {
            // ip6_datagram_send_ctl: exactly an int, -1 (the socket's
            // value) to 255.
            if data_len != 4 {
                return Err(Errno::INVAL);
            }
            // SAFETY: four bytes of the program's data.
            let v = unsafe { core::ptr::read_unaligned(base.add(at + hdr).cast::<i32>()) };
            if !(-1..=255).contains(&v) {
                return Err(Errno::INVAL);
            }
            let v = (v >= 0).then_some(v as u8);
            if c.cmsg_type == libc::IPV6_TCLASS {
                tos = v.or(tos);
            } else {
                ttl = v.or(ttl);
            }
        }
        at += (len + 7) & !7;
    }
    Ok((tos, ttl))
}

/// Write one control message `at` bytes into `m`'s control buffer as
/// Linux's put_cmsg: no room for a header, or a message cut short, is
/// MSG_CTRUNC. Returns the bytes used.
///
/// # Safety
/// `m.msg_control` is null or the program's buffer of `msg_controllen`.
unsafe fn put_cmsg(
    m: &msghdr,
    at: usize,
    flags: &mut c_int,
    level: c_int,
    ty: c_int,
    data: &[u8],
) -> usize {
    let hdr = core::mem::size_of::<libc::cmsghdr>();
    let len = hdr + data.len();
    let space = (len + 7) & !7;
    let room = if m.msg_control.is_null() {
        0
    } else {
        m.msg_controllen.saturating_sub(at)
    };
    if room < hdr {
        *flags |= libc::MSG_CTRUNC;
        return 0;
    }
    let cut = len.min(room);
    if cut < len {
        *flags |= libc::MSG_CTRUNC;
    }
    let c = libc::cmsghdr {
        cmsg_len: cut as _,
        cmsg_level: level,
        cmsg_type: ty,
    };
    // SAFETY: `at` is within the program's buffer (room > 0).
    let p = unsafe { m.msg_control.cast::<u8>().add(at) };
    // SAFETY: `cut` bytes fit the program's buffer (checked above).
    unsafe {
        core::ptr::copy_nonoverlapping((&c as *const libc::cmsghdr).cast::<u8>(), p, hdr);
        core::ptr::copy_nonoverlapping(data.as_ptr(), p.add(hdr), cut - hdr);
    }
    space.min(room)
}

/// The CLOCK_REALTIME (seconds, nanoseconds) of stack instant `at`, given
/// that the stack's clock reads `now`: the realtime clock now, less the age.
fn realtime_of(now: shunt_stack::time::Instant, at: shunt_stack::time::Instant) -> (i64, i64) {
    let rt = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let ns =
        (rt.tv_sec as i128 * 1_000_000_000 + rt.tv_nsec as i128) - (now - at).as_nanos() as i128;
    (
        ns.div_euclid(1_000_000_000) as i64,
        ns.rem_euclid(1_000_000_000) as i64,
    )
}

/// A socket's protocol, O_NONBLOCK, SO_RCVTIMEO, SO_SNDTIMEO, and the
/// call's guard.
type CallInfo<'a> = (
    Proto,
    bool,
    Option<Duration>,
    Option<Duration>,
    InFlight<'a>,
);

/// A call in progress on a socket (see `Sock::inflight`).
struct InFlight<'a> {
    sh: &'a Shunt,
    id: SocketId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let close = {
            let mut g = self.sh.e.inner_lock();
            match g.t.get_mut(self.id) {
                Some(s) => {
                    s.inflight = s.inflight.saturating_sub(1);
                    (s.inflight == 0 && s.zombie).then_some(s.serial)
                }
                None => None,
            }
            // A forked child may still use it (crate::relay).
            .is_some_and(|serial| !g.relays.parent_closed(self.id, serial))
        };
        if close {
            self.sh.close_now(self.id);
        }
    }
}

/// Whether kernel fd `fd` polls readable now.
fn kernel_readable(fd: c_int) -> bool {
    let mut p = [pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd, no timeout, no mask.
    let r = unsafe { raw_ppoll(&mut p, Some(Duration::ZERO), core::ptr::null()) };
    r.is_ok_and(|n| n > 0) && p[0].revents & libc::POLLIN != 0
}

/// The kernel listeners among shunt sockets, as pollfds to wake on.
fn kernel_listeners(g: &Inner, fds: impl Iterator<Item = c_int>) -> Vec<pollfd> {
    fds.filter(|&fd| match fdtable::lookup(fd) {
        Entry::Socket(id) => g.t.get(id).is_some_and(|s| s.klisten),
        _ => false,
    })
    .map(|fd| pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    })
    .collect()
}

/// fcntl(2) on the backing kernel socket.
fn kernel_fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    match real::fcntl() {
        // SAFETY: the real fcntl with an int argument.
        Some(f) => unsafe { f(fd, cmd, arg) },
        None => -1,
    }
}

/// An int option of the backing kernel socket (-1 on error).
fn kernel_int(fd: c_int, level: c_int, name: c_int) -> i32 {
    let mut v: i32 = 0;
    let mut l = 4 as socklen_t;
    match real::getsockopt() {
        // SAFETY: the real getsockopt into our int.
        Some(f) if unsafe { f(fd, level, name, (&mut v as *mut i32).cast(), &mut l) } == 0 => v,
        Some(_) => -1,
        None => -1,
    }
}

/// Gives kernel socket `to` the TCP_CONGESTION name of kernel socket
/// `from` (an accepted connection runs its listener's algorithm).
fn copy_congestion(from: c_int, to: c_int) {
    let mut name = [0u8; 16];
    let mut l = name.len() as socklen_t;
    let (Some(get), Some(set)) = (real::getsockopt(), real::setsockopt()) else {
        return;
    };
    // SAFETY: the real getsockopt into our buffer of `l` bytes.
    if unsafe {
        get(
            from,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_mut_ptr().cast(),
            &mut l,
        )
    } != 0
    {
        return;
    }
    let n = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    // SAFETY: the real setsockopt from our buffer of `n` bytes.
    let _ = unsafe {
        set(
            to,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            n as socklen_t,
        )
    };
}

/// This thread's filesystem uid (what the kernel stamps a socket with),
/// asked with setfsuid(-1), which changes nothing.
fn fsuid() -> Option<u32> {
    // SAFETY: setfsuid with an invalid id only reports the current one.
    let r = unsafe { libc::syscall(libc::SYS_setfsuid, -1i32 as libc::c_long) };
    (r >= 0).then_some(r as u32)
}

/// bind(2) on the backing kernel socket.
fn kernel_bind(fd: c_int, a: SocketAddr) -> c_int {
    let Some(f) = real::bind() else { return -1 };
    match a {
        SocketAddr::V4(a) => {
            let sin = name::sin_bytes(a);
            // SAFETY: the real bind with our sockaddr_in.
            unsafe {
                f(
                    fd,
                    (&sin as *const libc::sockaddr_in).cast(),
                    core::mem::size_of::<libc::sockaddr_in>() as socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let sin6 = name::sin6_bytes(a);
            // SAFETY: the real bind with our sockaddr_in6.
            unsafe {
                f(
                    fd,
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    core::mem::size_of::<libc::sockaddr_in6>() as socklen_t,
                )
            }
        }
    }
}

/// The wildcard name of a socket's family with `port`.
fn wildcard(v6: bool, port: u16) -> SocketAddr {
    if v6 {
        SocketAddr::new(StdIp::V6(std::net::Ipv6Addr::UNSPECIFIED), port)
    } else {
        SocketAddr::new(StdIp::V4(StdV4::UNSPECIFIED), port)
    }
}

/// Whether `a` is the directed broadcast address of one of shunt's
/// subnets.
fn is_bcast(cfg: &crate::config::Config, a: &StdV4) -> bool {
    cfg.addrs.iter().any(|c| match c.addr {
        std::net::IpAddr::V4(x) if c.prefix < 31 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(c.prefix)).unwrap_or(0);
            (u32::from(x) | !mask) == u32::from(*a)
        }
        _ => false,
    })
}

fn owner(p: Proto) -> Owner {
    match p {
        Proto::Tcp(t) => Owner::Tcp(t),
        Proto::Udp(h) => Owner::Udp(h),
    }
}

fn local_port(g: &Inner, p: Proto) -> u16 {
    match p {
        Proto::Tcp(t) => g.stack.tcp_layer().local_addr(t).map_or(0, |l| l.port),
        Proto::Udp(h) => g.stack.udp_local_addr(h).map_or(0, |l| l.port()),
    }
}

/// Bind the stack's socket to `a` (shared mode: see crate::shared).
fn stack_bind(g: &mut Inner, p: Proto, a: SocketAddr) -> Result<(), Errno> {
    match p {
        Proto::Tcp(t) => {
            let now = g.now();
            g.stack
                .tcp(now, |l, cx| l.bind(cx, t, to_tcp(a)))
                .map_err(se)
        }
        Proto::Udp(h) => g.stack.udp_bind(h, a).map_err(se),
    }
}

/// Shared mode's bind: the port (the kernel's pick for port 0) is
/// reserved by a kernel socket first, whose errno (EADDRINUSE, EACCES)
/// is the call's.
fn shared_bind(
    g: &mut Inner,
    p: Proto,
    mut a: SocketAddr,
    reuse: crate::shared::Reuse,
) -> Result<(), Errno> {
    if local_port(g, p) != 0 {
        return Err(Errno::INVAL);
    }
    let Inner { shared, dev, .. } = g;
    let Some(sh) = shared else {
        return Err(Errno::INVAL);
    };
    let port = sh.reserve(dev.steering(), owner(p), a.port(), reuse)?;
    a.set_port(port);
    let r = stack_bind(g, p, a);
    if r.is_err()
        && let Some(sh) = &mut g.shared
    {
        sh.release(g.dev.steering(), owner(p));
    }
    r
}

/// Shared mode: an unbound socket about to be bound implicitly (connect,
/// listen, sendto) takes a port the kernel picked and reserved instead of
/// one of the stack's (which the kernel might hand out too).
fn shared_autobind(g: &mut Inner, p: Proto, v6: bool) -> Result<(), Errno> {
    if g.shared.is_none() || local_port(g, p) != 0 {
        return Ok(());
    }
    shared_bind(g, p, wildcard(v6, 0), crate::shared::Reuse::default())
}

fn close_proto(g: &mut Inner, p: Proto) {
    match p {
        Proto::Tcp(t) => {
            let now = g.now();
            g.stack.tcp(now, |l, cx| l.close(cx, t));
        }
        Proto::Udp(h) => {
            let _ = g.stack.udp_close(h);
        }
    }
    if let Inner {
        shared: Some(sh),
        dev,
        ..
    } = g
    {
        match p {
            // The connection may go on closing (FIN_WAIT, TIME_WAIT).
            Proto::Tcp(_) => sh.linger(owner(p)),
            Proto::Udp(_) => sh.release(dev.steering(), owner(p)),
        }
    }
}

/// Shared mode: release the ports of closed connections the stack has
/// freed since (see [`crate::shared::Shared::sweep`]).
pub fn shared_sweep(g: &mut Inner) {
    if let Inner {
        shared: Some(sh),
        dev,
        stack,
        ..
    } = g
        && sh.sweep_due()
    {
        let in_use: Vec<u16> = stack
            .tcp_layer()
            .table()
            .iter()
            .filter_map(|r| r.local.map(|l| l.port))
            .collect();
        sh.sweep(dev.steering(), &in_use);
    }
}

/// Linux's select(2) masks.
const SEL_IN: u32 =
    (libc::POLLRDNORM | libc::POLLRDBAND | libc::POLLIN | libc::POLLHUP | libc::POLLERR) as u32;
const SEL_OUT: u32 = (libc::POLLWRBAND | libc::POLLWRNORM | libc::POLLOUT | libc::POLLERR) as u32;
const SEL_EX: u32 = libc::POLLPRI as u32;

// SAFETY: every method keeps the module's invariants: fds are marked after
// the state is ready and cleared before the kernel fd closes (the hooks
// close), the real functions are reached through `real` or raw system
// calls only, and blocking follows the socket's flags and timeouts.
unsafe impl ShuntSockets for Shunt {
    fn open(&self, fd: c_int, domain: c_int, ty: c_int, protocol: c_int) -> Option<SocketId> {
        if self.forked() || (domain != libc::AF_INET && domain != libc::AF_INET6) {
            return None;
        }
        let v6 = domain == libc::AF_INET6;
        let base = ty & 0xf;
        let mut g = self.e.lock();
        let proto = match (base, protocol) {
            (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => {
                let now = g.now();
                let d = if v6 { tcp::Domain::V6 } else { tcp::Domain::V4 };
                Proto::Tcp(g.stack.tcp(now, |t, _| t.socket(d)))
            }
            (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) if v6 => Proto::Udp(g.stack.udp6_socket()),
            (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => Proto::Udp(g.stack.udp_socket()),
            _ => return None,
        };
        // The socket's user, as the kernel's sk_uid: the fsuid at socket().
        let uid = fsuid().unwrap_or_else(|| rustix::process::geteuid().as_raw());
        match proto {
            Proto::Tcp(t) => {
                let now = g.now();
                let _ = g.stack.tcp(now, |l, _| l.set_owner(t, uid));
            }
            Proto::Udp(h) => {
                let _ = g.stack.udp_set_options(h, |o| o.owner = uid);
            }
        }
        let s = Sock::open(proto, v6, fd, ty & libc::SOCK_NONBLOCK != 0);
        let Some(id) = g.t.insert(s) else {
            close_proto(&mut g, proto);
            return None;
        };
        fdtable::set(fd, Entry::Socket(id));
        Some(id)
    }

    unsafe fn bind(
        &self,
        id: SocketId,
        fd: c_int,
        addr: *const sockaddr,
        len: socklen_t,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        let v6 = self.e.inner_lock().t.get(id)?.v6;
        // SAFETY: the program's arguments.
        let a = match unsafe { name::read(addr, len, AddrUse::Bind, v6) } {
            Ok(Some(a)) => a,
            Ok(None) => return Some(Err(Errno::AFNOSUPPORT)),
            Err(x) => return Some(Err(x)),
        };
        let ip = name::canonical(a.ip());
        if let SocketAddr::V6(s6) = a
            && name::is_link_local6(s6.ip())
            && s6.scope_id() == 0
        {
            // Linux: a link-local name needs its interface.
            return Some(Err(Errno::INVAL));
        }
        if matches!(ip, StdIp::V6(_)) && !ip.is_unspecified() {
            self.settle_dad();
        }
        let mut g = self.e.lock();
        let proto = g.t.get(id)?.proto;
        if ip.is_loopback() || !scoped_here(&a, self.e.ifindex) {
            self.hand_over(&mut g, id);
            return None;
        }
        let special = match ip {
            StdIp::V4(v4) => v4.is_broadcast() || v4.is_multicast() || is_bcast(&self.e.cfg, &v4),
            StdIp::V6(v6) => v6.is_multicast(),
        };
        let servable =
            ip.is_unspecified() || is_local(&g, &ip) || (special && matches!(proto, Proto::Udp(_)));
        if !servable {
            // IP_FREEBIND / IP_TRANSPARENT: the kernel binds any address.
            if kernel_int(fd, libc::IPPROTO_IP, libc::IP_FREEBIND) > 0
                || kernel_int(fd, libc::IPPROTO_IP, libc::IP_TRANSPARENT) > 0
            {
                self.hand_over(&mut g, id);
                return None;
            }
            return Some(Err(Errno::ADDRNOTAVAIL));
        }
        if !crate::privdrop::port_allowed(a.port()) {
            return Some(Err(Errno::ACCESS));
        }
        if g.shared.is_some() {
            let reuse = crate::shared::Reuse {
                addr: kernel_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR) > 0,
                port: kernel_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT) > 0,
            };
            let r = shared_bind(&mut g, proto, a, reuse);
            self.e.done(g);
            return Some(r.map(|()| 0));
        }
        // A wildcard name with a port reserves the port in the kernel too,
        // so kernel sockets (IPv6 dual-stack ones, loopback) conflict with
        // it as in Linux.
        let wild = a.ip().is_unspecified();
        if wild && a.port() != 0 && kernel_bind(fd, a) < 0 {
            return Some(Err(errno_now()));
        }
        let r = stack_bind(&mut g, proto, a);
        if r.is_ok() && wild && a.port() == 0 {
            let port = match proto {
                Proto::Tcp(t) => g
                    .stack
                    .tcp_layer()
                    .local_addr(t)
                    .map(|l| l.port)
                    .unwrap_or(0),
                Proto::Udp(h) => g.stack.udp_local_addr(h).map(|l| l.port()).unwrap_or(0),
            };
            if port != 0 {
                let _ = kernel_bind(fd, wildcard(v6, port));
            }
        }
        self.e.done(g);
        Some(r.map(|()| 0))
    }

    fn listen(&self, id: SocketId, fd: c_int, backlog: c_int) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        let mut g = self.e.lock();
        let s = g.t.get(id)?;
        let (proto, v6) = (s.proto, s.v6);
        if matches!(proto, Proto::Tcp(_))
            && let Err(x) = shared_autobind(&mut g, proto, v6)
        {
            self.e.done(g);
            return Some(Err(x));
        }
        let r = match proto {
            Proto::Tcp(t) => {
                let now = g.now();
                let r = g
                    .stack
                    .tcp(now, |l, cx| l.listen(cx, t, backlog))
                    .map_err(se);
                // Shared mode too: the XDP program steers the port's
                // frames from the wire to shunt, so the kernel listener
                // serves this host's own clients only (it can listen next
                // to the port's backing socket when both have
                // SO_REUSEADDR, as servers set; without, shunt's path
                // alone).
                if r.is_ok()
                    && let Ok(local) = g.stack.tcp_layer().local_addr(t)
                    && local.ip.is_unspecified()
                    && !g.t.get(id).is_some_and(|s| s.klisten)
                {
                    self.kernel_listen(&mut g, id, fd, local.port, backlog);
                }
                r
            }
            Proto::Udp(_) => Err(Errno::OPNOTSUPP),
        };
        self.e.done(g);
        Some(r.map(|()| 0))
    }

    unsafe fn accept(
        &self,
        id: SocketId,
        lfd: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
        flags: c_int,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
            return Some(Err(Errno::INVAL));
        }
        let (proto, nonblock, rcvtimeo, _, _call) = self.sock_info(id)?;
        let Proto::Tcp(lt) = proto else {
            return Some(Err(Errno::OPNOTSUPP));
        };
        let (klisten, v6) = {
            let g = self.e.inner_lock();
            let s = g.t.get(id)?;
            (s.klisten, s.v6)
        };
        let extra = if klisten {
            vec![pollfd {
                fd: lfd,
                events: libc::POLLIN,
                revents: 0,
            }]
        } else {
            Vec::new()
        };
        let r = self.block_with(nonblock, rcvtimeo, true, extra, |g| {
            let now = g.now();
            let (child, peer) = match g.stack.tcp(now, |l, cx| l.accept(cx, lt)) {
                Ok(x) => x,
                Err(shunt_stack::Errno::EAGAIN) if klisten => {
                    // The kernel's path: a plain kernel connection.
                    let nfd: c_int = match real::accept4() {
                        // SAFETY: the real accept4 on the non-blocking
                        // kernel listener, with the program's pointers.
                        Some(f) => unsafe { f(lfd, addr, len, flags) },
                        None => -1,
                    };
                    if nfd < 0 {
                        return Err(errno_now());
                    }
                    return Ok((nfd, None));
                }
                Err(x) => return Err(se(x)),
            };
            let nfd: c_int = match real::socket() {
                // SAFETY: the real socket(2).
                Some(f) => unsafe {
                    f(
                        if v6 { libc::AF_INET6 } else { libc::AF_INET },
                        libc::SOCK_STREAM | flags,
                        0,
                    )
                },
                None => -1,
            };
            if nfd < 0 {
                let err = errno_now();
                g.stack.tcp(now, |l, cx| l.close(cx, child));
                return Err(err);
            }
            let cc_set = g.t.get(id).is_some_and(|s| s.cc_set);
            if cc_set {
                copy_congestion(lfd, nfd);
            }
            let s = Sock {
                cc_set,
                ..Sock::open(Proto::Tcp(child), v6, nfd, flags & libc::SOCK_NONBLOCK != 0)
            };
            let Some(cid) = g.t.insert(s) else {
                g.stack.tcp(now, |l, cx| l.close(cx, child));
                // SAFETY: the fd we just made.
                let _ = unsafe { libc::syscall(libc::SYS_close, nfd) };
                return Err(Errno::NFILE);
            };
            if let Some(sh) = &mut g.shared {
                sh.share(Owner::Tcp(lt), Owner::Tcp(child));
            }
            fdtable::set(nfd, Entry::Socket(cid));
            Ok((nfd, Some(peer)))
        });
        let ifx = self.e.ifindex as u32;
        Some(r.and_then(|(nfd, peer)| {
            let Some(peer) = peer else { return Ok(nfd) };
            if !addr.is_null() {
                // SAFETY: the program's pointers.
                unsafe { name::write(addr, len, tcp_std(peer), v6, ifx) }?;
            }
            Ok(nfd)
        }))
    }

    unsafe fn connect(
        &self,
        id: SocketId,
        _fd: c_int,
        addr: *const sockaddr,
        len: socklen_t,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        let (v6, dgram) = {
            let g = self.e.inner_lock();
            let s = g.t.get(id)?;
            (s.v6, matches!(s.proto, Proto::Udp(_)))
        };
        let how = if dgram {
            AddrUse::ConnectDgram
        } else {
            AddrUse::Connect
        };
        // SAFETY: the program's arguments.
        let a = match unsafe { name::read(addr, len, how, v6) } {
            Ok(a) => a,
            Err(x) => return Some(Err(x)),
        };
        if let Some(SocketAddr::V6(s6)) = a {
            if !dgram && name::is_link_local6(s6.ip()) && s6.scope_id() == 0 {
                // Linux: a link-local peer needs its interface.
                return Some(Err(Errno::INVAL));
            }
            if s6.ip().to_ipv4_mapped().is_none() {
                self.settle_dad();
            }
        }
        let mut g = self.e.lock();
        let s = g.t.get(id)?;
        let (proto, nonblock, sndtimeo) = (s.proto, s.nonblock, s.sndtimeo);
        let Some(a) = a else {
            // AF_UNSPEC: dissolve.
            let r = match proto {
                Proto::Tcp(t) => {
                    let now = g.now();
                    g.stack.tcp(now, |l, cx| l.disconnect(cx, t)).map_err(se)
                }
                Proto::Udp(h) => {
                    let now = g.now();
                    g.stack.udp_connect(h, None, now).map_err(se)
                }
            };
            self.e.done(g);
            return Some(r.map(|()| 0));
        };
        if !via_shunt(&g, &a, self.e.ifindex) {
            let fresh = match proto {
                Proto::Tcp(t) => {
                    g.stack.tcp_layer().state(t) == Ok(tcp::TcpState::Close)
                        && g.stack
                            .tcp_layer()
                            .local_addr(t)
                            .map(|l| l.port == 0)
                            .unwrap_or(true)
                }
                Proto::Udp(h) => g
                    .stack
                    .udp_local_addr(h)
                    .map(|l| l.port() == 0)
                    .unwrap_or(true),
            };
            if fresh {
                self.hand_over(&mut g, id);
                return None;
            }
        }
        if let Err(x) = shared_autobind(&mut g, proto, v6) {
            self.e.done(g);
            return Some(Err(x));
        }
        match proto {
            Proto::Udp(h) => {
                let now = g.now();
                let r = g.stack.udp_connect(h, Some(a), now).map_err(se);
                self.e.done(g);
                Some(r.map(|()| 0))
            }
            Proto::Tcp(t) => {
                if let StdIp::V4(v4) = name::canonical(a.ip())
                    && is_bcast(&self.e.cfg, &v4)
                {
                    return Some(Err(Errno::NETUNREACH));
                }
                let now = g.now();
                let r = g
                    .stack
                    .tcp(now, |l, cx| l.connect(cx, t, to_tcp(a)))
                    .map_err(se);
                self.e.done(g);
                if r != Err(Errno::INPROGRESS) || nonblock {
                    return Some(r.map(|()| 0));
                }
                let r = self.block(false, sndtimeo, true, |g| {
                    if matches!(
                        g.stack.tcp_layer().state(t),
                        Ok(tcp::TcpState::SynSent | tcp::TcpState::SynRecv)
                    ) {
                        return Err(Errno::AGAIN);
                    }
                    let now = g.now();
                    // Established, then reset within the same receive
                    // batch: Linux's connect would have returned 0 on the
                    // way (it wakes at ESTABLISHED); the reset is for the
                    // next call, so leave the error pending.
                    if g.stack.tcp_layer().state(t) == Ok(tcp::TcpState::Close)
                        && g.stack
                            .tcp_layer()
                            .tcp_info(t, now)
                            .is_ok_and(|i| i.options != 0 || i.segs_in >= 2)
                    {
                        return Ok(());
                    }
                    match g.stack.tcp(now, |l, cx| l.connect(cx, t, to_tcp(a))) {
                        Err(shunt_stack::Errno::EISCONN) => Ok(()),
                        r => r.map_err(se),
                    }
                });
                Some(match r {
                    Err(Errno::AGAIN) => Err(Errno::INPROGRESS),
                    r => r.map(|()| 0),
                })
            }
        }
    }

    unsafe fn getsockname(
        &self,
        id: SocketId,
        _fd: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        let g = self.e.lock();
        let s = g.t.get(id)?;
        let v6 = s.v6;
        let a = match s.proto {
            Proto::Tcp(t) => g.stack.tcp_layer().local_addr(t).map(tcp_std).map_err(se),
            Proto::Udp(h) => Ok(g.stack.udp_local_addr(h).unwrap_or(wildcard(v6, 0))),
        };
        drop(g);
        let ifx = self.e.ifindex as u32;
        // SAFETY: the program's pointers.
        Some(
            a.and_then(|a| unsafe { name::write(addr, len, a, v6, ifx) })
                .map(|()| 0),
        )
    }

    unsafe fn getpeername(
        &self,
        id: SocketId,
        _fd: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        let g = self.e.lock();
        let s = g.t.get(id)?;
        let v6 = s.v6;
        let a = match s.proto {
            Proto::Tcp(t) => g.stack.tcp_layer().peer_addr(t).map(tcp_std).map_err(se),
            Proto::Udp(h) => g.stack.udp_peer_addr(h).map_err(se),
        };
        drop(g);
        let ifx = self.e.ifindex as u32;
        // SAFETY: the program's pointers.
        Some(
            a.and_then(|a| unsafe { name::write(addr, len, a, v6, ifx) })
                .map(|()| 0),
        )
    }

    unsafe fn getsockopt(
        &self,
        id: SocketId,
        _fd: c_int,
        level: c_int,
        name: c_int,
        val: *mut c_void,
        len: *mut socklen_t,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        let mut g = self.e.lock();
        let proto = g.t.get(id)?.proto;
        let now = g.now();
        let v: SysResult<i32> = match (proto, level, name) {
            (Proto::Tcp(t), libc::SOL_SOCKET, libc::SO_ERROR) => {
                Ok(g.stack.tcp(now, |l, _| l.take_error(t)).map_or(0, |x| x.0))
            }
            (Proto::Udp(h), libc::SOL_SOCKET, libc::SO_ERROR) => {
                Ok(g.stack.udp_take_error(h).ok().flatten().map_or(0, |x| x.0))
            }
            (Proto::Tcp(t), libc::SOL_SOCKET, libc::SO_LINGER) => {
                let l = g.stack.tcp_layer().linger(t).ok().flatten();
                let lg = libc::linger {
                    l_onoff: i32::from(l.is_some()),
                    l_linger: l.unwrap_or(0) as i32,
                };
                drop(g);
                // SAFETY: struct linger is two plain ints.
                let b: [u8; 8] = unsafe { core::mem::transmute(lg) };
                // SAFETY: the program's pointers.
                return Some(unsafe { Self::put_bytes(val, len, &b) });
            }
            (Proto::Tcp(t), libc::IPPROTO_IP, libc::IP_MTU) => match g.stack.tcp_layer().state(t) {
                Ok(tcp::TcpState::Close | tcp::TcpState::Listen | tcp::TcpState::SynSent)
                | Err(_) => Err(Errno::NOTCONN),
                Ok(_) => g
                    .stack
                    .tcp_layer()
                    .tcp_info(t, now)
                    .map(|i| i.pmtu as i32)
                    .map_err(se),
            },
            (Proto::Tcp(t), libc::IPPROTO_TCP, libc::TCP_INFO) => {
                let i = g.stack.tcp_layer().tcp_info(t, now);
                drop(g);
                return Some(i.map_err(se).and_then(|i| {
                    let b = Self::tcp_info_bytes(&i);
                    // SAFETY: the program's pointers.
                    unsafe { Self::put_bytes(val, len, &b) }
                }));
            }
            // The kernel socket answers: the name Linux would report (the
            // stack runs cubic or reno), DEFER_ACCEPT's rounding, buffer
            // sizes the program set (Linux's clamping and doubling).
            (_, libc::IPPROTO_TCP, libc::TCP_CONGESTION | libc::TCP_DEFER_ACCEPT) => return None,
            (_, libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) if g.t.get(id)?.bufs_set => {
                return None;
            }
            (Proto::Tcp(t), lv, nm) => match Self::tcp_opt(lv, nm) {
                Some(o) => g.stack.tcp_layer().get_option(t, o).map_err(se),
                None => return None,
            },
            (Proto::Udp(h), libc::SOL_SOCKET, nm) => {
                let o = g.stack.udp_options(h).ok()?;
                match nm {
                    libc::SO_REUSEADDR => Ok(i32::from(o.reuseaddr)),
                    libc::SO_REUSEPORT => Ok(i32::from(o.reuseport)),
                    libc::SO_BROADCAST => Ok(i32::from(o.broadcast)),
                    libc::SO_ACCEPTCONN => Ok(0),
                    _ => return None,
                }
            }
            (Proto::Udp(h), libc::IPPROTO_IP, nm) => {
                let o = g.stack.udp_options(h).ok()?;
                match nm {
                    libc::IP_TTL => Ok(i32::from(o.ttl.unwrap_or(64))),
                    libc::IP_TOS => Ok(i32::from(o.tos)),
                    _ => return None,
                }
            }
            _ => return None,
        };
        drop(g);
        // SAFETY: the program's pointers.
        Some(v.and_then(|v| unsafe { Self::put_int(val, len, v) }))
    }

    unsafe fn setsockopt(
        &self,
        id: SocketId,
        fd: c_int,
        level: c_int,
        name: c_int,
        val: *const c_void,
        len: socklen_t,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        let proto = self.sock_info(id)?.0;
        // The kernel socket first: Linux's validation, and the options
        // shunt does not model.
        let k: c_int = match real::setsockopt() {
            // SAFETY: the real setsockopt with the program's arguments.
            Some(f) => unsafe { f(fd, level, name, val, len) },
            None => return None,
        };
        if k != 0 {
            return Some(Err(errno_now()));
        }
        let mut g = self.e.lock();
        let now = g.now();
        let r: SysResult<()> = match (proto, level, name) {
            (_, libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) => {
                // SAFETY: the kernel accepted it: a timeval's worth.
                let tv: libc::timeval = unsafe { core::ptr::read_unaligned(val.cast()) };
                // Linux: {0, 0} waits for ever, a negative time not at all.
                let d = if tv.tv_sec < 0 {
                    Some(Duration::ZERO)
                } else {
                    let d = Duration::new(tv.tv_sec as u64, (tv.tv_usec.max(0) as u32) * 1000);
                    (!d.is_zero()).then_some(d)
                };
                if let Some(s) = g.t.get_mut(id) {
                    if name == libc::SO_RCVTIMEO {
                        s.rcvtimeo = d;
                    } else {
                        s.sndtimeo = d;
                    }
                }
                Ok(())
            }
            (Proto::Tcp(t), libc::SOL_SOCKET, libc::SO_LINGER) => {
                // SAFETY: the kernel accepted it: a struct linger.
                let l: libc::linger = unsafe { core::ptr::read_unaligned(val.cast()) };
                let v = (l.l_onoff != 0).then_some(l.l_linger.max(0) as u32);
                g.stack.tcp(now, |lay, _| lay.set_linger(t, v)).map_err(se)
            }
            (Proto::Tcp(t), libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
                if let Some(s) = g.t.get_mut(id) {
                    s.cc_set = true;
                }
                let n = (len as usize).min(16);
                // SAFETY: the kernel accepted `len` bytes.
                let b = unsafe { core::slice::from_raw_parts(val.cast::<u8>(), n) };
                let end = b.iter().position(|&c| c == 0).unwrap_or(n);
                // An algorithm the stack lacks keeps the one it runs.
                if let Ok(s) = core::str::from_utf8(&b[..end]) {
                    let _ = g.stack.tcp(now, |lay, _| lay.set_congestion(t, s));
                }
                Ok(())
            }
            (
                _,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF | libc::SO_SNDBUF | libc::SO_RCVBUFFORCE | libc::SO_SNDBUFFORCE,
            ) => {
                if let Some(s) = g.t.get_mut(id) {
                    s.bufs_set = true;
                }
                let rcv = matches!(name, libc::SO_RCVBUF | libc::SO_RCVBUFFORCE);
                let kv = kernel_int(
                    fd,
                    libc::SOL_SOCKET,
                    if rcv {
                        libc::SO_RCVBUF
                    } else {
                        libc::SO_SNDBUF
                    },
                );
                if let (Proto::Tcp(t), true) = (proto, kv > 0) {
                    let o = if rcv {
                        SockOpt::RcvBuf
                    } else {
                        SockOpt::SndBuf
                    };
                    let _ = g.stack.tcp(now, |lay, cx| lay.set_option(cx, t, o, kv / 2));
                }
                Ok(())
            }
            (_, libc::IPPROTO_IPV6, _) => Self::set_ipv6_opt(&mut g, proto, name, val, len),
            (Proto::Tcp(t), lv, nm) => match Self::tcp_opt(lv, nm) {
                Some(o) => match Self::int_opt(val, len) {
                    Ok(v) => g
                        .stack
                        .tcp(now, |lay, cx| lay.set_option(cx, t, o, v))
                        .map_err(se),
                    Err(x) => Err(x),
                },
                None => Ok(()),
            },
            (Proto::Udp(h), lv, nm) => {
                let v = Self::int_opt(val, len).unwrap_or(0);
                let on = v != 0;
                match (lv, nm) {
                    (libc::SOL_SOCKET, libc::SO_REUSEADDR) => {
                        g.stack.udp_set_options(h, |o| o.reuseaddr = on).map_err(se)
                    }
                    (libc::SOL_SOCKET, libc::SO_REUSEPORT) => {
                        g.stack.udp_set_options(h, |o| o.reuseport = on).map_err(se)
                    }
                    (libc::SOL_SOCKET, libc::SO_BROADCAST) => {
                        g.stack.udp_set_options(h, |o| o.broadcast = on).map_err(se)
                    }
                    (libc::IPPROTO_IP, libc::IP_TTL) => g
                        .stack
                        .udp_set_options(h, |o| o.ttl = if v < 0 { None } else { Some(v as u8) })
                        .map_err(se),
                    (libc::IPPROTO_IP, libc::IP_TOS) => {
                        g.stack.udp_set_options(h, |o| o.tos = v as u8).map_err(se)
                    }
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => g
                        .stack
                        .udp_set_options(h, |o| o.recv_pktinfo = on)
                        .map_err(se),
                    (libc::IPPROTO_IP, libc::IP_RECVERR) => {
                        g.stack.udp_set_options(h, |o| o.recverr = on).map_err(se)
                    }
                    (libc::IPPROTO_UDP, libc::UDP_CORK) => {
                        g.stack.udp_set_cork(h, on, now).map_err(se)
                    }
                    (libc::IPPROTO_IP, libc::IP_RECVTOS) => {
                        g.stack.udp_set_options(h, |o| o.recv_tos = on).map_err(se)
                    }
                    (libc::IPPROTO_IP, libc::IP_RECVTTL) => {
                        g.stack.udp_set_options(h, |o| o.recv_ttl = on).map_err(se)
                    }
                    // sock_set_timestamp: NS on sets both flags, plain on
                    // clears NS, either off clears both.
                    (libc::SOL_SOCKET, libc::SO_TIMESTAMP | libc::SO_TIMESTAMPNS) => {
                        let ts = match (on, nm == libc::SO_TIMESTAMPNS) {
                            (false, _) => shunt_stack::RxTimestamp::Off,
                            (true, false) => shunt_stack::RxTimestamp::Micros,
                            (true, true) => shunt_stack::RxTimestamp::Nanos,
                        };
                        g.stack.udp_set_options(h, |o| o.timestamp = ts).map_err(se)
                    }
                    _ => Ok(()),
                }
            }
        };
        self.e.done(g);
        Some(r.map(|()| 0))
    }

    fn shutdown(&self, id: SocketId, _fd: c_int, how: c_int) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        if !(0..=2).contains(&how) {
            return Some(Err(Errno::INVAL));
        }
        let mut g = self.e.lock();
        let r = match g.t.get(id)?.proto {
            Proto::Tcp(t) => {
                let how = [
                    tcp::Shutdown::Read,
                    tcp::Shutdown::Write,
                    tcp::Shutdown::Both,
                ][how as usize];
                let now = g.now();
                g.stack.tcp(now, |l, cx| l.shutdown(cx, t, how)).map_err(se)
            }
            Proto::Udp(h) => {
                let how = [
                    shunt_stack::Shutdown::Read,
                    shunt_stack::Shutdown::Write,
                    shunt_stack::Shutdown::Both,
                ][how as usize];
                g.stack.udp_shutdown(h, how).map_err(se)
            }
        };
        self.e.done(g);
        Some(r.map(|()| 0))
    }

    unsafe fn recvmsg(
        &self,
        id: SocketId,
        _fd: c_int,
        msg: *mut msghdr,
        flags: c_int,
    ) -> Served<isize> {
        if self.forked() {
            return None;
        }
        if msg.is_null() {
            return Some(Err(Errno::FAULT));
        }
        let (proto, nonblock, rcvtimeo, _, _call) = self.sock_info(id)?;
        let from_read = flags & crate::socket::MSG_FROM_READ != 0;
        let flags = flags & !crate::socket::MSG_FROM_READ;
        if from_read && matches!(proto, Proto::Tcp(_)) {
            // SAFETY: the program's msghdr and iovecs.
            let v = unsafe { iovs((*msg).msg_iov, (*msg).msg_iovlen, true) };
            match v {
                Ok(v) if iov_total(v) == 0 => return Some(Ok(0)),
                Err(x) => return Some(Err(x)),
                _ => {}
            }
        }
        // SAFETY: the program's msghdr.
        Some(unsafe {
            match proto {
                Proto::Tcp(t) => self.recv_tcp(t, nonblock, rcvtimeo, msg, flags),
                Proto::Udp(h) => self.recv_udp(id, h, nonblock, rcvtimeo, msg, flags),
            }
        })
    }

    unsafe fn sendmsg(
        &self,
        id: SocketId,
        _fd: c_int,
        msg: *const msghdr,
        flags: c_int,
    ) -> Served<isize> {
        if self.forked() {
            return None;
        }
        if msg.is_null() {
            return Some(Err(Errno::FAULT));
        }
        let (proto, nonblock, _, sndtimeo, _call) = self.sock_info(id)?;
        // SAFETY: the program's msghdr.
        unsafe {
            match proto {
                Proto::Tcp(t) => Some(self.send_tcp(id, t, nonblock, sndtimeo, msg, flags)),
                Proto::Udp(h) => self.send_udp(id, h, msg, flags),
            }
        }
    }

    unsafe fn recvmmsg(
        &self,
        id: SocketId,
        fd: c_int,
        msgs: *mut mmsghdr,
        vlen: c_uint,
        flags: c_int,
        _timeout: *mut timespec,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        if msgs.is_null() {
            return Some(Err(Errno::FAULT));
        }
        let vlen = vlen.min(1024);
        let mut n = 0;
        let mut fl = flags & !libc::MSG_WAITFORONE;
        while n < vlen {
            // SAFETY: the program's array of `vlen` entries.
            let mm = unsafe { &mut *msgs.add(n as usize) };
            // SAFETY: as above.
            match unsafe { self.recvmsg(id, fd, &mut mm.msg_hdr, fl) }? {
                Ok(k) => mm.msg_len = k as c_uint,
                Err(x) => {
                    if n > 0 {
                        break;
                    }
                    return Some(Err(x));
                }
            }
            n += 1;
            if flags & libc::MSG_WAITFORONE != 0 {
                fl |= libc::MSG_DONTWAIT;
            }
        }
        Some(Ok(n as c_int))
    }

    unsafe fn sendmmsg(
        &self,
        id: SocketId,
        fd: c_int,
        msgs: *mut mmsghdr,
        vlen: c_uint,
        flags: c_int,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        if msgs.is_null() {
            return Some(Err(Errno::FAULT));
        }
        let vlen = vlen.min(1024);
        let mut n = 0;
        while n < vlen {
            // SAFETY: the program's array.
            let mm = unsafe { &mut *msgs.add(n as usize) };
            // SAFETY: as above.
            match unsafe { self.sendmsg(id, fd, &mm.msg_hdr, flags) } {
                Some(Ok(k)) => mm.msg_len = k as c_uint,
                Some(Err(x)) => {
                    if n > 0 {
                        break;
                    }
                    return Some(Err(x));
                }
                None => {
                    if n > 0 {
                        break;
                    }
                    return None;
                }
            }
            n += 1;
        }
        Some(Ok(n as c_int))
    }

    unsafe fn sendfile(
        &self,
        id: SocketId,
        out_fd: c_int,
        in_fd: c_int,
        offset: *mut i64,
        count: usize,
    ) -> Served<isize> {
        if self.forked() {
            return None;
        }
        let mut buf = vec![0u8; count.min(256 << 10)];
        let mut done = 0usize;
        let mut off = if offset.is_null() {
            None
        } else {
            // SAFETY: the program's offset.
            Some(unsafe { offset.read_unaligned() })
        };
        // SAFETY: in_fd is the program's; reads only.
        let inf = unsafe { BorrowedFd::borrow_raw(in_fd as RawFd) };
        while done < count {
            let want = (count - done).min(buf.len());
            let r = match off {
                Some(o) => rustix::io::pread(inf, &mut buf[..want], o as u64),
                None => rustix::io::read(inf, &mut buf[..want]),
            };
            let k = match r {
                Ok(0) => break,
                Ok(k) => k,
                Err(x) => {
                    if done > 0 {
                        break;
                    }
                    return Some(Err(x));
                }
            };
            let mut iov = iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: k,
            };
            // SAFETY: msghdr is plain data; zero is valid.
            let mut m: msghdr = unsafe { core::mem::zeroed() };
            m.msg_iov = &mut iov;
            m.msg_iovlen = 1;
            // SAFETY: our own buffer.
            let s = match unsafe { self.sendmsg(id, out_fd, &m, libc::MSG_NOSIGNAL) } {
                Some(Ok(s)) => s as usize,
                Some(Err(x)) => {
                    if done > 0 {
                        break;
                    }
                    if x == Errno::PIPE {
                        raise_sigpipe();
                    }
                    return Some(Err(x));
                }
                None => return None,
            };
            done += s;
            if let Some(o) = off.as_mut() {
                *o += s as i64;
            } else if s < k {
                // Put back what was not sent.
                let back = (k - s) as i64;
                let _ = rustix::fs::seek(inf, rustix::fs::SeekFrom::Current(-back));
            }
            if s < k {
                break;
            }
        }
        if let Some(o) = off {
            // SAFETY: the program's offset.
            unsafe { offset.write_unaligned(o) };
        }
        Some(Ok(done as isize))
    }

    fn fcntl(&self, id: SocketId, fd: c_int, cmd: c_int, arg: usize) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        // F_SETOWN, F_SETOWN_EX (15: linux/fcntl.h, not in the libc crate).
        if matches!(cmd, libc::F_SETOWN | 15) {
            // The kernel socket keeps the owner; shunt notes that there is
            // one to signal.
            self.e.inner_lock().t.set_owner(id);
            return None;
        }
        if !matches!(cmd, libc::F_SETFL | libc::F_GETFL) {
            return None;
        }
        let mut g = self.e.inner_lock();
        if cmd == libc::F_SETFL {
            g.t.set_async(id, arg as c_int & libc::O_ASYNC != 0);
        }
        let s = g.t.get_mut(id)?;
        let klisten = s.klisten;
        if cmd == libc::F_SETFL {
            s.nonblock = arg as c_int & libc::O_NONBLOCK != 0;
        }
        if !klisten {
            return None;
        }
        // The kernel listener stays non-blocking; the program sees its own
        // flag.
        let nonblock = s.nonblock;
        drop(g);
        let r = if cmd == libc::F_SETFL {
            kernel_fcntl(fd, cmd, arg | libc::O_NONBLOCK as usize)
        } else {
            let fl = kernel_fcntl(fd, cmd, 0);
            if fl < 0 {
                fl
            } else if nonblock {
                fl | libc::O_NONBLOCK
            } else {
                fl & !libc::O_NONBLOCK
            }
        };
        Some(if r < 0 { Err(errno_now()) } else { Ok(r) })
    }

    unsafe fn ioctl(
        &self,
        id: SocketId,
        _fd: c_int,
        request: c_ulong,
        arg: usize,
    ) -> Served<c_int> {
        if self.forked() {
            return None;
        }
        let p = arg as *mut c_int;
        match request {
            libc::FIONBIO => {
                if !p.is_null() {
                    // SAFETY: the program's int.
                    let v = unsafe { p.read_unaligned() };
                    let mut g = self.e.lock();
                    if let Some(s) = g.t.get_mut(id) {
                        s.nonblock = v != 0;
                        if s.klisten {
                            // The kernel listener stays non-blocking.
                            return Some(Ok(0));
                        }
                    }
                }
                None
            }
            // SIOCATMARK (asm-generic/sockios.h; not in the libc crate).
            0x8905 => {
                let g = self.e.lock();
                let Proto::Tcp(t) = g.t.get(id)?.proto else {
                    return None;
                };
                let v = g.stack.tcp_layer().at_mark(t).map_err(se);
                drop(g);
                Some(v.and_then(|v| {
                    if p.is_null() {
                        return Err(Errno::FAULT);
                    }
                    // SAFETY: the program's int.
                    unsafe { p.write_unaligned(c_int::from(v)) };
                    Ok(0)
                }))
            }
            libc::FIONREAD | libc::TIOCOUTQ | 0x894B => {
                let g = self.e.lock();
                let v = match (g.t.get(id)?.proto, request) {
                    (Proto::Tcp(t), libc::FIONREAD) => {
                        g.stack.tcp_layer().readable_bytes(t).map_err(se)
                    }
                    (Proto::Tcp(t), _) => g.stack.tcp_layer().queued_bytes(t).map_err(se),
                    (Proto::Udp(h), libc::FIONREAD) => g.stack.udp_next_len(h).map_err(se),
                    (Proto::Udp(_), _) => Ok(0),
                };
                drop(g);
                Some(v.and_then(|v| {
                    if p.is_null() {
                        return Err(Errno::FAULT);
                    }
                    // SAFETY: the program's int.
                    unsafe { p.write_unaligned(v.min(i32::MAX as usize) as c_int) };
                    Ok(0)
                }))
            }
            _ => None,
        }
    }

    fn close(&self, id: SocketId, fd: c_int) {
        if self.forked() {
            return;
        }
        let last = {
            let mut g = self.e.inner_lock();
            match g.t.get_mut(id) {
                Some(s) => {
                    s.fds.retain(|&x| x != fd);
                    s.refs = s.refs.saturating_sub(1);
                    if s.refs == 0 && s.inflight > 0 {
                        s.zombie = true;
                    }
                    (s.refs == 0 && !s.zombie).then_some(s.serial)
                }
                None => None,
            }
            // A forked child may still use it (crate::relay): the relay
            // code closes it when the child is done.
            .is_some_and(|serial| !g.relays.parent_closed(id, serial))
        };
        if last {
            self.close_now(id);
        }
    }

    fn duplicated(&self, id: SocketId, newfd: c_int) {
        let mut g = self.e.inner_lock();
        if let Some(s) = g.t.get_mut(id) {
            s.refs += 1;
            s.fds.push(newfd);
        }
    }

    unsafe fn poll(
        &self,
        fds: *mut pollfd,
        nfds: nfds_t,
        timeout: Timeout,
        sigmask: *const sigset_t,
    ) -> SysResult<c_int> {
        if nfds > 0 && fds.is_null() {
            return Err(Errno::FAULT);
        }
        // SAFETY: the program's array.
        let arr = unsafe { core::slice::from_raw_parts_mut(fds, nfds as usize) };
        let mut kern: Vec<pollfd> = Vec::new();
        let mut kidx: Vec<usize> = Vec::new();
        for (i, p) in arr.iter().enumerate() {
            if p.fd >= 0 && !matches!(fdtable::lookup(p.fd), Entry::Socket(_)) {
                kern.push(*p);
                kidx.push(i);
            }
        }
        let mut wake = kern.clone();
        wake.extend(kernel_listeners(
            &self.e.inner_lock(),
            arr.iter().map(|p| p.fd),
        ));
        let dl = deadline(timeout);
        // SAFETY: the program's signal mask, null or valid.
        let mask = unsafe { sigmask.as_ref() };
        let r = self.e.wait(dl, &mut wake, mask, |g| {
            let mut n = 0;
            for p in arr.iter_mut() {
                p.revents = 0;
                if let Entry::Socket(id) = fdtable::lookup(p.fd) {
                    let (r, _) = Self::readiness(g, id);
                    let m = r & (p.events as u16 as u32 | POLLERR | POLLHUP | POLLNVAL);
                    p.revents = m as i16;
                }
            }
            if !kern.is_empty() {
                for k in kern.iter_mut() {
                    k.revents = 0;
                }
                // SAFETY: our copy of the kernel pollfds.
                let _ = unsafe { raw_ppoll(&mut kern, Some(Duration::ZERO), core::ptr::null()) };
                for (k, &i) in kern.iter().zip(&kidx) {
                    arr[i].revents = k.revents;
                    // An epoll fd with shunt members is readable when one
                    // of them is ready too.
                    if let Entry::Epoll(ep) = fdtable::lookup(k.fd)
                        && k.events & libc::POLLIN != 0
                        && Self::epoll_ready(g, ep)
                    {
                        arr[i].revents |= libc::POLLIN;
                    }
                }
            }
            for p in arr.iter() {
                if p.revents != 0 {
                    n += 1;
                }
            }
            (n > 0).then_some(n)
        });
        match r {
            Ok(n) => Ok(n),
            Err(WaitEnd::Timeout) => Ok(0),
            Err(WaitEnd::Interrupted) => Err(Errno::INTR),
        }
    }

    unsafe fn select(
        &self,
        nfds: c_int,
        read: *mut fd_set,
        write: *mut fd_set,
        except: *mut fd_set,
        timeout: Timeout,
        sigmask: *const sigset_t,
    ) -> SysResult<(c_int, Timeout)> {
        if nfds < 0 {
            return Err(Errno::INVAL);
        }
        let n = nfds.min(libc::FD_SETSIZE as c_int);
        let sets = [read, write, except];
        // The fds asked about, as pollfds.
        let mut want: Vec<pollfd> = Vec::new();
        for fd in 0..n {
            let mut ev = 0i16;
            for (k, &s) in sets.iter().enumerate() {
                // SAFETY: the program's non-null set; fd < FD_SETSIZE.
                if !s.is_null() && unsafe { libc::FD_ISSET(fd, s) } {
                    ev |= [libc::POLLIN, libc::POLLOUT, libc::POLLPRI][k];
                }
            }
            if ev != 0 {
                want.push(pollfd {
                    fd,
                    events: ev,
                    revents: 0,
                });
            }
        }
        let start = std::time::Instant::now();
        let mut kern: Vec<pollfd> = want
            .iter()
            .filter(|p| !matches!(fdtable::lookup(p.fd), Entry::Socket(_)))
            .copied()
            .collect();
        let mut wake = kern.clone();
        wake.extend(kernel_listeners(
            &self.e.inner_lock(),
            want.iter().map(|p| p.fd),
        ));
        let dl = deadline(timeout);
        // SAFETY: the program's signal mask, null or valid.
        let mask = unsafe { sigmask.as_ref() };
        let r = self.e.wait(dl, &mut wake, mask, |g| {
            for k in kern.iter_mut() {
                k.revents = 0;
            }
            if !kern.is_empty() {
                // SAFETY: our pollfds.
                let _ = unsafe { raw_ppoll(&mut kern, Some(Duration::ZERO), core::ptr::null()) };
            }
            let mut ki = 0;
            let mut bad = false;
            let mut any = false;
            for p in want.iter_mut() {
                let r = if let Entry::Socket(id) = fdtable::lookup(p.fd) {
                    Self::readiness(g, id).0
                } else {
                    let r = kern[ki].revents as u16 as u32;
                    ki += 1;
                    r
                };
                if r & POLLNVAL != 0 {
                    bad = true;
                }
                let mut got = 0;
                if p.events & libc::POLLIN != 0 && r & SEL_IN != 0 {
                    got |= libc::POLLIN;
                }
                if p.events & libc::POLLOUT != 0 && r & SEL_OUT != 0 {
                    got |= libc::POLLOUT;
                }
                if p.events & libc::POLLPRI != 0 && r & SEL_EX != 0 {
                    got |= libc::POLLPRI;
                }
                p.revents = got;
                any |= got != 0;
            }
            if bad {
                return Some(Err(Errno::BADF));
            }
            any.then_some(Ok(()))
        });
        let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
        match r {
            Ok(Err(x)) => return Err(x),
            Ok(Ok(())) => {}
            Err(WaitEnd::Timeout) => {
                for p in want.iter_mut() {
                    p.revents = 0;
                }
            }
            Err(WaitEnd::Interrupted) => return Err(Errno::INTR),
        }
        let mut count = 0;
        for &s in &sets {
            if !s.is_null() {
                // SAFETY: the program's set.
                unsafe { libc::FD_ZERO(s) };
            }
        }
        for p in &want {
            for (k, &s) in sets.iter().enumerate() {
                let bit = [libc::POLLIN, libc::POLLOUT, libc::POLLPRI][k];
                if !s.is_null() && p.revents & bit != 0 {
                    // SAFETY: the program's set; fd < FD_SETSIZE.
                    unsafe { libc::FD_SET(p.fd, s) };
                    count += 1;
                }
            }
        }
        Ok((count, left))
    }

    unsafe fn epoll_ctl(
        &self,
        epfd: c_int,
        op: c_int,
        fd: c_int,
        event: *mut epoll_event,
    ) -> SysResult<c_int> {
        let real_ctl = || -> SysResult<c_int> {
            match real::epoll_ctl() {
                Some(f) => {
                    // SAFETY: the real epoll_ctl with the program's arguments.
                    if unsafe { f(epfd, op, fd, event) } == 0 {
                        Ok(0)
                    } else {
                        Err(errno_now())
                    }
                }
                None => Err(Errno::NOSYS),
            }
        };
        let Entry::Socket(sid) = fdtable::lookup(fd) else {
            return real_ctl();
        };
        if epfd == fd
            || !matches!(
                op,
                libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL
            )
        {
            return Err(Errno::INVAL);
        }
        // epfd must be an epoll instance: ask the kernel (a DEL of an fd
        // that is not in it answers ENOENT on an epoll fd, EINVAL or EBADF
        // otherwise).
        let probe = match real::epoll_ctl() {
            Some(f) => {
                let mut ev = epoll_event { events: 0, u64: 0 };
                // SAFETY: a DEL with a valid (ignored) event pointer.
                if unsafe { f(epfd, libc::EPOLL_CTL_DEL, fd, &mut ev) } == 0 {
                    Ok(())
                } else {
                    Err(errno_now())
                }
            }
            None => Err(Errno::NOSYS),
        };
        match probe {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(x) => return Err(x),
        }
        let (events, data) = if op == libc::EPOLL_CTL_DEL {
            (0, 0)
        } else {
            if event.is_null() {
                return Err(Errno::FAULT);
            }
            // SAFETY: the program's event.
            let ev = unsafe { core::ptr::read_unaligned(event) };
            (ev.events, ev.u64)
        };
        let excl = libc::EPOLLEXCLUSIVE as u32;
        if events & excl != 0 {
            let ok = (libc::EPOLLIN
                | libc::EPOLLOUT
                | libc::EPOLLRDNORM
                | libc::EPOLLRDBAND
                | libc::EPOLLWRNORM
                | libc::EPOLLWRBAND
                | libc::EPOLLERR
                | libc::EPOLLHUP
                | libc::EPOLLWAKEUP
                | libc::EPOLLET
                | libc::EPOLLEXCLUSIVE) as u32;
            if op == libc::EPOLL_CTL_MOD || (op == libc::EPOLL_CTL_ADD && events & !ok != 0) {
                return Err(Errno::INVAL);
            }
        }
        let mut g = self.e.lock();
        let ep = match fdtable::lookup(epfd) {
            Entry::Epoll(ep) if g.t.epolls.get(ep as usize).is_some_and(|x| x.is_some()) => ep,
            _ => {
                if op != libc::EPOLL_CTL_ADD {
                    return Err(Errno::NOENT);
                }
                let ep =
                    g.t.epolls
                        .iter()
                        .position(|x| x.is_none())
                        .unwrap_or(g.t.epolls.len());
                if ep == g.t.epolls.len() {
                    g.t.epolls.push(None);
                }
                g.t.epolls[ep] = Some(EpollSet::default());
                fdtable::set(epfd, Entry::Epoll(ep as u32));
                ep as u32
            }
        };
        let serial = g.t.get(sid).map_or(0, |s| s.serial);
        // ep_insert: an exclusive member ready now is on the ready list.
        let excl_ready = op == libc::EPOLL_CTL_ADD && events & excl != 0 && {
            let (r, _) = Self::readiness(&g, sid);
            let now = (r, Self::excl_count(&g, sid));
            if let Some(s) = g.t.get_mut(sid) {
                s.excl_seen = now;
            }
            r & (events | POLLERR | POLLHUP) != 0
        };
        let Some(set) = g.t.epolls[ep as usize].as_mut() else {
            return Err(Errno::BADF);
        };
        let pos = set
            .members
            .iter()
            .position(|m| m.fd == fd && m.sid == sid && m.serial == serial);
        match op {
            libc::EPOLL_CTL_ADD => {
                if pos.is_some() {
                    return Err(Errno::EXIST);
                }
                set.members.push(Member {
                    fd,
                    sid,
                    serial,
                    events,
                    data,
                    disabled: false,
                    last: 0,
                    last_bytes: 0,
                    last_out_gen: 0,
                    excl_pending: excl_ready,
                });
            }
            libc::EPOLL_CTL_MOD => {
                let Some(i) = pos else {
                    return Err(Errno::NOENT);
                };
                let m = &mut set.members[i];
                if m.events & excl != 0 {
                    return Err(Errno::INVAL);
                }
                m.events = events;
                m.data = data;
                m.disabled = false;
                m.last = 0;
                m.last_bytes = 0;
            }
            libc::EPOLL_CTL_DEL => {
                let Some(i) = pos else {
                    return Err(Errno::NOENT);
                };
                set.members.swap_remove(i);
            }
            _ => return Err(Errno::INVAL),
        }
        Ok(0)
    }

    unsafe fn epoll_wait(
        &self,
        ep: EpollId,
        epfd: c_int,
        events: *mut epoll_event,
        maxevents: c_int,
        timeout: Timeout,
        sigmask: *const sigset_t,
    ) -> SysResult<c_int> {
        if maxevents <= 0 || maxevents as usize > (i32::MAX as usize) / 12 {
            return Err(Errno::INVAL);
        }
        if events.is_null() {
            return Err(Errno::FAULT);
        }
        let max = maxevents as usize;
        let mut wake = vec![pollfd {
            fd: epfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        {
            let g = self.e.inner_lock();
            let fds: Vec<c_int> = match g.t.epolls.get(ep as usize) {
                Some(Some(set)) => set.members.iter().map(|m| m.fd).collect(),
                _ => Vec::new(),
            };
            wake.extend(kernel_listeners(&g, fds.into_iter()));
        }
        self.set_waiting(ep, true);
        let dl = deadline(timeout);
        // SAFETY: the program's signal mask, null or valid.
        let mask = unsafe { sigmask.as_ref() };
        let r = self.e.wait(dl, &mut wake, mask, |g| {
            let mut n = 0usize;
            Self::excl_scan(g, ep);
            let mut set = g.t.epolls.get_mut(ep as usize).and_then(|s| s.take())?;
            // A registration lives as long as the socket (any of its fds).
            set.members
                .retain(|m| g.t.get(m.sid).is_some_and(|s| s.serial == m.serial));
            for m in set.members.iter_mut() {
                if n >= max {
                    break;
                }
                if m.disabled {
                    continue;
                }
                let (r, bytes) = Self::readiness(g, m.sid);
                let want = (m.events
                    & !(libc::EPOLLET | libc::EPOLLONESHOT | libc::EPOLLEXCLUSIVE) as u32)
                    | POLLERR
                    | POLLHUP;
                let got = r & want;
                if m.events & libc::EPOLLEXCLUSIVE as u32 != 0 {
                    // Reported only by the set an event went to, while the
                    // socket stays ready (level-triggered re-queueing).
                    m.excl_pending &= got != 0;
                    if !m.excl_pending {
                        continue;
                    }
                }
                let et = m.events & libc::EPOLLET as u32 != 0;
                let out_gen = g.t.get(m.sid).map_or(0, |s| s.out_gen);
                let report = got != 0 && (!et || m.new_edge(got, bytes, out_gen));
                if et {
                    m.last = got;
                    m.last_bytes = bytes;
                    m.last_out_gen = out_gen;
                }
                if report {
                    // SAFETY: within the program's array of maxevents.
                    unsafe {
                        events.add(n).write_unaligned(epoll_event {
                            events: got,
                            u64: m.data,
                        })
                    };
                    n += 1;
                    if m.events & libc::EPOLLONESHOT as u32 != 0 {
                        m.disabled = true;
                    }
                }
            }
            if let Some(slot) = g.t.epolls.get_mut(ep as usize) {
                *slot = Some(set);
            }
            if n < max {
                let k = match real::epoll_wait() {
                    // SAFETY: the rest of the program's array.
                    Some(f) => unsafe { f(epfd, events.add(n), (max - n) as c_int, 0) },
                    None => 0,
                };
                if k > 0 {
                    n += k as usize;
                }
            }
            (n > 0).then_some(n as c_int)
        });
        self.set_waiting(ep, false);
        match r {
            Ok(n) => Ok(n),
            Err(WaitEnd::Timeout) => Ok(0),
            Err(WaitEnd::Interrupted) => Err(Errno::INTR),
        }
    }

    fn before_fork(&self) {
        if !self.forked() {
            self.e.before_fork();
        }
    }

    fn after_fork(&self, in_child: bool) {
        if self.forked() {
            return;
        }
        self.e.after_fork(in_child);
    }

    fn before_exec(&self) {}
}

impl Shunt {
    /// The process is exiting (exit(3), not _exit(2)): close every socket
    /// as the kernel would, and keep the stack running until the
    /// connections have delivered what was queued and said goodbye (a
    /// kernel's sockets outlive their process; shunt's cannot), for two
    /// seconds at most.
    pub fn at_exit(&self) {
        if self.forked() {
            return;
        }
        let mut g = self.e.lock();
        let ids: Vec<SocketId> = (0..g.t.socks.len() as u32)
            .filter(|&i| g.t.get(i).is_some())
            .collect();
        for id in ids {
            if let Some(s) = g.t.remove(id) {
                for fd in &s.fds {
                    fdtable::clear(*fd);
                }
                close_proto(&mut g, s.proto);
            }
        }
        self.e.done(g);
        // Wait while the connections make progress (segments move), two
        // seconds at most without any, thirty in all.
        let start = std::time::Instant::now();
        let mut last = (0u64, start);
        let mut extra = Vec::new();
        let r = self.e.wait(
            Some(start + Duration::from_secs(30)),
            &mut extra,
            None,
            |g| {
                let st = g.stack.tcp_layer().stats();
                if st.connections.saturating_sub(st.time_wait) == 0 {
                    return Some(true);
                }
                let moved = g.stack.tcp_counter(tcp::TcpCounter::OutSegs)
                    + g.stack.tcp_counter(tcp::TcpCounter::InSegs);
                let now = std::time::Instant::now();
                if moved != last.0 {
                    last = (moved, now);
                } else if now - last.1 > Duration::from_secs(2) {
                    return Some(false);
                }
                None
            },
        );
        if r != Ok(true) {
            crate::log!(
                Debug,
                "exit: connections still open after {:?}",
                start.elapsed()
            );
        }
        self.e.finish();
    }
}

/// The registered integration, for the exit handler.
pub static SHUNT: std::sync::OnceLock<&'static Shunt> = std::sync::OnceLock::new();

/// Make this process's stack and register it. `Err` is one line.
pub fn start(cfg: &crate::config::Config, own: crate::lock::Ownership) -> Result<(), String> {
    let e = Engine::start(cfg, own)?;
    let s: &'static Shunt = Box::leak(Box::new(Shunt {
        e,
        dad: crate::dad::Dad::default(),
    }));
    if !crate::socket::register(s) {
        return Err("a stack integration is registered already".into());
    }
    let _ = SHUNT.set(s);
    Ok(())
}

// --- fork support: what crate::relay and crate::forked need of the table ---

/// The sockets a child forked now inherits: (id, serial) of every socket
/// with an fd.
pub(crate) fn inherited(t: &Tables) -> Vec<(SocketId, u64)> {
    (0..t.socks.len() as u32)
        .filter_map(|i| t.get(i).filter(|s| s.refs > 0).map(|s| (i, s.serial)))
        .collect()
}

/// The TCP socket of slot `id` if it still holds generation `serial`.
pub(crate) fn tcp_of(t: &Tables, id: SocketId, serial: u64) -> Option<TcpId> {
    match t.get(id)? {
        Sock {
            proto: Proto::Tcp(tcp),
            serial: s,
            ..
        } if *s == serial => Some(*tcp),
        _ => None,
    }
}

/// How many of this process's fds name socket `id`.
pub(crate) fn parent_refs(t: &Tables, id: SocketId) -> u32 {
    t.get(id).map_or(0, |s| s.refs)
}

pub(crate) fn serial_of(t: &Tables, id: SocketId) -> Option<u64> {
    t.get(id).map(|s| s.serial)
}

/// No fd and no child holds socket `id` any more: close it as the last
/// close(2) would have (SO_LINGER's wait aside: nobody is there to wait).
pub(crate) fn close_orphan(g: &mut Inner, id: SocketId, serial: u64) {
    if g.t
        .get(id)
        .is_some_and(|s| s.serial == serial && s.refs == 0 && s.inflight == 0)
        && let Some(s) = g.t.remove(id)
    {
        close_proto(g, s.proto);
    }
}

/// In a child: a connection that can be relayed (its generation, its
/// fds, and whether it can no longer send).
pub(crate) fn relayable(g: &Inner, id: SocketId) -> Option<(u64, Vec<c_int>, bool)> {
    use tcp::TcpState as S;
    let s = g.t.get(id)?;
    let Proto::Tcp(t) = s.proto else { return None };
    let l = g.stack.tcp_layer();
    let state = l.state(t).ok()?;
    if state == S::Listen || l.peer_addr(t).is_err() {
        return None;
    }
    let wr_shut = matches!(
        state,
        S::FinWait1 | S::FinWait2 | S::Closing | S::TimeWait | S::LastAck | S::Close
    );
    Some((s.serial, s.fds.clone(), wr_shut))
}

/// In a child: its fds of socket `id` are relayed now.
pub(crate) fn forget_all(t: &mut Tables, id: SocketId) {
    if let Some(s) = t.get_mut(id) {
        s.fds.clear();
        s.refs = 0;
    }
}

/// In a child: `fd` of socket `id` is closed; the generation when it was
/// the last.
pub(crate) fn forget_fd(t: &mut Tables, id: SocketId, fd: c_int) -> Option<u64> {
    let s = t.get_mut(id)?;
    s.fds.retain(|&x| x != fd);
    s.refs = s.refs.saturating_sub(1);
    (s.refs == 0).then_some(s.serial)
}

/// A TCP socket's local and peer names (the child answers from its copy).
pub(crate) fn names(
    g: &Inner,
    id: SocketId,
) -> Option<(Option<SocketAddrV4>, Option<SocketAddrV4>)> {
    let Proto::Tcp(t) = g.t.get(id)?.proto else {
        return None;
    };
    let l = g.stack.tcp_layer();
    Some((
        l.local_addr(t).ok().map(tcp_v4),
        l.peer_addr(t).ok().map(tcp_v4),
    ))
}

/// Whether `a` is reached through shunt's interface.
pub(crate) fn routed_by_shunt(g: &Inner, a: &StdV4) -> bool {
    via_shunt(g, &SocketAddr::V4(SocketAddrV4::new(*a, 0)), 0)
}

/// A TCP name as the IPv4 name a forked child's relay carries (relays
/// are IPv4 only: an IPv6 name other than a v4-mapped one reads as
/// 0.0.0.0).
fn tcp_v4(a: tcp::SockAddr) -> SocketAddrV4 {
    name::to_v4(tcp_std(a))
}

/// A forked child's new connection to `dst`, made by the parent: a TCP
/// socket no fd names (its relay holds it), connecting. The errno when the
/// stack refuses at once.
pub(crate) fn connect_for_child(
    g: &mut Inner,
    dst: SocketAddrV4,
) -> Result<(SocketId, u64, TcpId), c_int> {
    let now = g.now();
    let t = g.stack.tcp(now, |l, _| l.socket(tcp::Domain::V4));
    let Some(id) = g.t.insert(held_sock(Proto::Tcp(t), false)) else {
        close_proto(g, Proto::Tcp(t));
        return Err(libc::EMFILE);
    };
    let serial = g.t.get(id).map_or(0, |s| s.serial);
    if let Err(x) = shared_autobind(g, Proto::Tcp(t), false) {
        if let Some(s) = g.t.remove(id) {
            close_proto(g, s.proto);
        }
        return Err(x.raw_os_error());
    }
    match g
        .stack
        .tcp(now, |l, cx| l.connect(cx, t, to_tcp(SocketAddr::V4(dst))))
    {
        Ok(()) | Err(shunt_stack::Errno::EINPROGRESS) => Ok((id, serial, t)),
        Err(e) => {
            if let Some(s) = g.t.remove(id) {
                close_proto(g, s.proto);
            }
            Err(e.0)
        }
    }
}

/// A socket no fd of this process names: a child's relay holds it.
fn held_sock(proto: Proto, v6: bool) -> Sock {
    Sock {
        refs: 0,
        fds: Vec::new(),
        ..Sock::open(proto, v6, -1, true)
    }
}

/// In a child: a TCP listener (its generation, its fds, and whether the
/// program made it non-blocking).
pub(crate) fn listener(g: &Inner, id: SocketId) -> Option<(u64, Vec<c_int>, bool)> {
    let s = g.t.get(id)?;
    let Proto::Tcp(t) = s.proto else { return None };
    (g.stack.tcp_layer().state(t).ok()? == tcp::TcpState::Listen)
        .then(|| (s.serial, s.fds.clone(), s.nonblock))
}

/// A connection off listener `id` (generation `serial`) for a forked
/// child, which no fd of this process names (its relay holds it): its
/// slot, generation, TCP socket, local and peer names.
pub(crate) fn accept_for_child(
    g: &mut Inner,
    id: SocketId,
    serial: u64,
) -> Option<(SocketId, u64, TcpId, SocketAddrV4, SocketAddrV4)> {
    let lt = tcp_of(&g.t, id, serial)?;
    let now = g.now();
    let (child, peer) = g.stack.tcp(now, |l, cx| l.accept(cx, lt)).ok()?;
    let local = g
        .stack
        .tcp_layer()
        .local_addr(child)
        .map(tcp_v4)
        .unwrap_or(SocketAddrV4::new(StdV4::UNSPECIFIED, 0));
    let v6 = g.t.get(id).is_some_and(|s| s.v6);
    let Some(cid) = g.t.insert(held_sock(Proto::Tcp(child), v6)) else {
        g.stack.tcp(now, |l, cx| l.close(cx, child));
        return None;
    };
    if let Some(sh) = &mut g.shared {
        sh.share(Owner::Tcp(lt), Owner::Tcp(child));
    }
    let cserial = g.t.get(cid)?.serial;
    Some((cid, cserial, child, local, tcp_v4(peer)))
}
