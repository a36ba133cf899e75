//! Shunt sockets shared with forked children: the parent's side.
//!
//! **Why a relay.** Shunt's stack lives in the memory of the process that
//! started it; a forked child has a copy of that memory, not a share of
//! it, and must never drive the copy (it would send for connections the
//! parent owns and take frames off the parent's device ring). So the parent
//! stays the only owner, and a child's use of an inherited connection is
//! relayed to it: the child's fd number is dup'd onto one end of an
//! AF_UNIX stream socketpair whose other end the parent pumps to and from
//! the TCP connection ([`pump`], run in every turn of the driver, so both
//! the program's threads and the progress thread move relay data). In the
//! child, read/write/poll/epoll/select, and every program it execs, then
//! work on a plain kernel fd with no shunt code at all; only shutdown and
//! the name and option calls need shunt's help there ([`crate::forked`]).
//!
//! **Lazy.** A fork costs one control channel (a SEQPACKET socketpair),
//! made in the atfork handlers only when shunt has sockets. The child
//! converts an inherited fd on its first use, or just before an exec, by
//! sending its end of a fresh socketpair over the control channel
//! ([`Op::Relay`]). A child that never touches its sockets costs nothing
//! more and never disturbs the parent.
//!
//! **Lifetime.** A connection closes when the parent has closed its last
//! fd AND no child can still use it: each fork record holds every socket
//! the child inherited until the child closes its copies ([`Op::Drop`]) or
//! every process sharing the control channel is gone (EOF on it); each
//! relay holds its socket until its unix end hangs up (every copy closed:
//! exit, close, exec of a program that closes it). Closing or exiting in a
//! child never sends a FIN or RST; shutdown() does ([`Op::Shutdown`]), as
//! does SHUT_WR on the relay by a program without shunt (the parent tells
//! the two apart: a hang-up is a close, an EOF without one is SHUT_WR).
//!
//! **Flow control.** Each direction buffers at most one chunk
//! ([`CHUNK`]): the unix end is read only when the previous chunk went
//! into the TCP send buffer, and the TCP receive queue is read only when
//! the previous chunk went into the unix socket; a turn moves at most
//! [`TURN_BUDGET`] bytes per relay, so relays never stall the parent's own
//! sockets.
//!
//! **Who reads.** Two readers of one socket race for its bytes, and bytes
//! pumped into a relay nobody reads are lost; so received data goes to
//! one relay per connection ([`down_choice`]): the newest whose child
//! receives (read, recv, or poll/select/epoll for input: the child's hooks
//! see its first receive, [`Op::Reader`]), even while the parent holds an
//! fd; else, only when the parent holds no fd (the socat/prefork pattern:
//! the parent closes the accepted fd after fork) and no fork record holds
//! the connection (no process with shunt's hooks can claim it any more),
//! the newest relay (a program exec'd on the connection reads without
//! hooks to say so, as inetd's children do). A child that only writes, or
//! a helper it execs with the fd, never takes bytes the parent or its
//! hooked parent is about to read. A peer's EOF becomes shutdown(SHUT_WR)
//! on the unix end.
//!
//! **Listeners and new connections.** A child that uses an inherited
//! listener gets an accept channel ([`Op::Listen`]): the parent accepts for
//! it and passes each connection down as a relay, as many as the child
//! asked for (one per accept call, or per wait for input: few are
//! stranded if it dies or stops accepting), the prefork pattern. A connection the child makes itself through shunt's
//! interface is made by the parent and relayed ([`Op::Connect`]).
//!
//! Relay and control fds are shunt's own (high range, marked internal):
//! the program never sees them.

use core::ffi::{c_int, c_long};
use std::os::fd::{BorrowedFd, IntoRawFd, RawFd};

use shunt_stack::tcp::{self, Poll, RecvFlags, SendFlags, SocketId as TcpId};

use crate::engine::Inner;
use crate::fdtable;
use crate::socket::SocketId;

/// The most a relay buffers in each direction.
pub const CHUNK: usize = 64 << 10;
/// The most a relay moves per direction in one turn.
const TURN_BUDGET: usize = 256 << 10;

/// Control operations, child to parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Op {
    /// The attached fd relays socket `id` from now on (`token` names it;
    /// `how` 1: the child reads from it).
    Relay = 1,
    /// The child closed its last fd of `id` without relaying it.
    Drop = 2,
    /// shutdown(`how`) on `id`; the attached fd gets the errno (an i32)
    /// once done. With a `token`, after what that relay holds.
    Shutdown = 3,
    /// A socket the child made connects to IPv4 address `id` (host
    /// order), port `how`, through the parent's stack; the attached fd is
    /// its relay, where the parent first writes a [`ConnectReply`].
    Connect = 4,
    /// The child receives through relay `token` now.
    Reader = 5,
    /// The attached fd is the parent's end of an accept channel for
    /// listener `id`: the parent passes the child connections through it,
    /// one at a time ([`Accepted`] with the relay's child end), as many as
    /// the child asked for (one byte on the channel per accept call).
    Listen = 6,
}

/// A connection passed down an accept channel (with its relay's fd).
#[derive(Clone, Copy, Debug, Default)]
pub struct Accepted {
    pub token: u64,
    pub id: u32,
    pub serial: u64,
    /// Local and peer addresses (host order) and ports.
    pub local: (u32, u16),
    pub peer: (u32, u16),
}

impl Accepted {
    pub const SIZE: usize = 36;

    fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.token.to_ne_bytes());
        b[8..12].copy_from_slice(&self.id.to_ne_bytes());
        b[12..20].copy_from_slice(&self.serial.to_ne_bytes());
        b[20..24].copy_from_slice(&self.local.0.to_ne_bytes());
        b[24..28].copy_from_slice(&u32::from(self.local.1).to_ne_bytes());
        b[28..32].copy_from_slice(&self.peer.0.to_ne_bytes());
        b[32..36].copy_from_slice(&u32::from(self.peer.1).to_ne_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Accepted {
        let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let d = |i: usize| u64::from(w(i)) | (u64::from(w(i + 4)) << 32);
        Accepted {
            token: d(0),
            id: w(8),
            serial: d(12),
            local: (w(20), w(24) as u16),
            peer: (w(28), w(32) as u16),
        }
    }
}

/// A child's accept channel on one of the parent's listeners.
struct Acceptor {
    fd: RawFd,
    id: SocketId,
    serial: u64,
    /// Connections the child asked for (one byte per accept call or
    /// wait for input): only those are passed down, so a child that
    /// stops accepting strands none the parent could accept itself.
    wants: usize,
    dead: bool,
}

/// Tokens of relays the parent makes (accepted connections); children's
/// tokens carry their pid in the high half, never this bit.
static PARENT_TOKENS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1 << 63);

/// The parent's answer to [`Op::Connect`], the first bytes on the relay.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectReply {
    /// 0, or connect(2)'s errno.
    pub err: i32,
    pub id: u32,
    pub serial: u64,
    /// The connection's local address (host order) and port.
    pub ip: u32,
    pub port: u32,
}

impl ConnectReply {
    pub const SIZE: usize = 24;

    fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.err.to_ne_bytes());
        b[4..8].copy_from_slice(&self.id.to_ne_bytes());
        b[8..16].copy_from_slice(&self.serial.to_ne_bytes());
        b[16..20].copy_from_slice(&self.ip.to_ne_bytes());
        b[20..24].copy_from_slice(&self.port.to_ne_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> ConnectReply {
        let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        ConnectReply {
            err: w(0) as i32,
            id: w(4),
            serial: u64::from(w(8)) | (u64::from(w(12)) << 32),
            ip: w(16),
            port: w(20),
        }
    }
}

/// One control message.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Msg {
    pub op: u32,
    pub id: u32,
    pub serial: u64,
    pub token: u64,
    pub how: i32,
    pub _pad: u32,
}

impl Msg {
    fn bytes(&self) -> &[u8] {
        // SAFETY: Msg is repr(C) plain data without padding bytes (the
        // explicit `_pad` fills the tail).
        unsafe {
            core::slice::from_raw_parts(
                (self as *const Msg).cast::<u8>(),
                core::mem::size_of::<Msg>(),
            )
        }
    }
}

// --- raw system calls (the shim never calls its own exports) -------------

fn errno() -> c_int {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn check(r: c_long) -> Result<usize, c_int> {
    if r < 0 { Err(errno()) } else { Ok(r as usize) }
}

pub fn raw_close(fd: RawFd) {
    // SAFETY: closing an fd this module owns.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

pub fn raw_fcntl(fd: RawFd, cmd: c_int, arg: c_long) -> Result<usize, c_int> {
    // SAFETY: fcntl with an integer argument.
    check(unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) })
}

pub fn raw_socketpair(ty: c_int) -> Result<[RawFd; 2], c_int> {
    let mut sv = [-1 as c_int; 2];
    // SAFETY: socketpair writes two ints into `sv`.
    check(unsafe {
        libc::syscall(
            libc::SYS_socketpair,
            libc::AF_UNIX,
            ty | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    })?;
    Ok(sv)
}

pub fn raw_shutdown(fd: RawFd, how: c_int) {
    // SAFETY: shutdown on a socket this module owns.
    unsafe { libc::syscall(libc::SYS_shutdown, fd, how) };
}

fn raw_recv(fd: RawFd, buf: &mut [u8]) -> Result<usize, c_int> {
    // SAFETY: recvfrom into our buffer, no address.
    check(unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            libc::MSG_DONTWAIT,
            0usize,
            0usize,
        )
    })
}

pub fn raw_send(fd: RawFd, buf: &[u8], flags: c_int) -> Result<usize, c_int> {
    // SAFETY: sendto from our buffer, no address.
    check(unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf.as_ptr(),
            buf.len(),
            flags | libc::MSG_NOSIGNAL,
            0usize,
            0usize,
        )
    })
}

/// Whether the fd polls a hang-up (or error) now.
fn revents(fd: RawFd) -> i16 {
    let mut p = [libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    }];
    // SAFETY: one valid pollfd, zero timeout, no mask.
    let _ = unsafe {
        crate::engine::raw_ppoll(&mut p, Some(core::time::Duration::ZERO), core::ptr::null())
    };
    p[0].revents
}

/// Send `m` on `ctrl`, with `fd` attached (SCM_RIGHTS) when not -1.
pub fn send_msg(ctrl: RawFd, m: &Msg, fd: RawFd) -> Result<(), c_int> {
    send_with_fd(ctrl, m.bytes(), fd, 0)
}

/// Send `data` as one message on `sock`, with `fd` attached when not -1.
fn send_with_fd(sock: RawFd, data: &[u8], fd: RawFd, flags: c_int) -> Result<(), c_int> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; zero is valid.
    let mut h: libc::msghdr = unsafe { core::mem::zeroed() };
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    if fd >= 0 {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure computations.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(core::mem::size_of::<c_int>() as u32),
                libc::CMSG_LEN(core::mem::size_of::<c_int>() as u32),
            )
        };
        h.msg_control = cbuf.as_mut_ptr().cast();
        h.msg_controllen = space as usize;
        // SAFETY: the control buffer is 32 bytes, more than CMSG_SPACE of
        // one int (24), and aligned for cmsghdr; CMSG_FIRSTHDR is then
        // non-null.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&h);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = len as usize;
            libc::CMSG_DATA(c).cast::<c_int>().write_unaligned(fd);
        }
    }
    loop {
        // SAFETY: a valid msghdr over our buffers.
        let r = unsafe {
            libc::syscall(
                libc::SYS_sendmsg,
                sock,
                &h as *const libc::msghdr,
                libc::MSG_NOSIGNAL | flags,
            )
        };
        match check(r) {
            Ok(_) => return Ok(()),
            Err(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// What one non-blocking receive on a control channel gave.
enum Recv {
    Msg(Msg, RawFd),
    Eof,
    Empty,
}

fn recv_msg(ctrl: RawFd) -> Recv {
    let mut m = Msg::default();
    let mut iov = libc::iovec {
        iov_base: (&mut m as *mut Msg).cast(),
        iov_len: core::mem::size_of::<Msg>(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; zero is valid.
    let mut h: libc::msghdr = unsafe { core::mem::zeroed() };
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = cbuf.as_mut_ptr().cast();
    h.msg_controllen = core::mem::size_of_val(&cbuf);
    // SAFETY: a valid msghdr over our buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_recvmsg,
            ctrl,
            &mut h as *mut libc::msghdr,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    let n = match check(r) {
        Ok(0) => return Recv::Eof,
        Ok(n) => n,
        Err(libc::EAGAIN | libc::EINTR) => return Recv::Empty,
        Err(_) => return Recv::Eof,
    };
    let mut fd = -1;
    // SAFETY: walking the control messages the kernel wrote into cbuf.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = libc::CMSG_DATA(c).cast::<c_int>().read_unaligned();
                if fd < 0 {
                    fd = k;
                } else {
                    raw_close(k);
                }
            }
            c = libc::CMSG_NXTHDR(&h, c);
        }
    }
    if n != core::mem::size_of::<Msg>() {
        if fd >= 0 {
            raw_close(fd);
        }
        return Recv::Empty;
    }
    Recv::Msg(m, fd)
}

/// Move `fd` into shunt's high range as one of its own fds (the low
/// number is closed); -1 if that fails.
pub fn own_fd(fd: RawFd) -> RawFd {
    // SAFETY: `fd` is open and ours; borrowed for the duplication only.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let high = crate::engine::high_internal(b).map_or(-1, IntoRawFd::into_raw_fd);
    raw_close(fd);
    high
}

/// Close one of shunt's own fds.
fn close_own(fd: RawFd) {
    fdtable::clear(fd);
    raw_close(fd);
}

fn reply(fd: RawFd, err: c_int) {
    if fd >= 0 {
        let _ = raw_send(fd, &err.to_ne_bytes(), libc::MSG_DONTWAIT);
        close_own(fd);
    }
}

fn how_of(how: i32) -> Option<tcp::Shutdown> {
    match how {
        libc::SHUT_RD => Some(tcp::Shutdown::Read),
        libc::SHUT_WR => Some(tcp::Shutdown::Write),
        libc::SHUT_RDWR => Some(tcp::Shutdown::Both),
        _ => None,
    }
}

// --- the parent's state ------------------------------------------------------

/// One fork: the control channel and what the child inherited.
struct Record {
    ctrl: RawFd,
    holds: Vec<(SocketId, u64)>,
}

/// One relayed connection.
struct Relay {
    fd: RawFd,
    id: SocketId,
    serial: u64,
    tcp: TcpId,
    token: u64,
    up: Vec<u8>,
    up_off: usize,
    down: Vec<u8>,
    down_off: usize,
    /// The unix end read EOF (the child closed or shut down writing).
    eof_up: bool,
    /// SHUT_WR applied to the connection for this relay's EOF.
    wr_done: bool,
    /// The peer's EOF was passed on (SHUT_WR on the unix end).
    down_eof: bool,
    /// A child's shutdown waiting for this relay's data to go first.
    shut_after: Option<(i32, RawFd)>,
    /// An [`Op::Connect`] not answered yet.
    connecting: bool,
    /// The child reads: received data goes to it even while the parent
    /// holds an fd (they compete, as two readers of one socket do).
    reader: bool,
    dead: bool,
}

impl Relay {
    fn new(fd: RawFd, id: SocketId, serial: u64, tcp: TcpId, token: u64) -> Relay {
        Relay {
            fd,
            id,
            serial,
            tcp,
            token,
            up: Vec::new(),
            up_off: 0,
            down: Vec::new(),
            down_off: 0,
            eof_up: false,
            wr_done: false,
            down_eof: false,
            shut_after: None,
            connecting: false,
            reader: false,
            dead: false,
        }
    }
}

/// A fork under way: the parent's and the child's ends of its control
/// channel, and what the child inherits.
type Pending = (RawFd, RawFd, Vec<(SocketId, u64)>);

/// The relays of the parent's sockets (lives in the driver's state).
pub struct Relays {
    records: Vec<Record>,
    relays: Vec<Relay>,
    acceptors: Vec<Acceptor>,
    /// Made in the prepare handler, taken in the parent or child one.
    pending: Option<Pending>,
    scratch: Vec<u8>,
    pfds: Vec<libc::pollfd>,
    /// The progress thread's eventfd (-1: none): it sleeps on the relays'
    /// fds, so it must hear when what it should watch changed.
    wake: RawFd,
}

impl Default for Relays {
    fn default() -> Relays {
        Relays::new(-1)
    }
}

impl Relays {
    pub fn new(wake: RawFd) -> Relays {
        Relays {
            records: Vec::new(),
            relays: Vec::new(),
            acceptors: Vec::new(),
            pending: None,
            scratch: Vec::new(),
            pfds: Vec::new(),
            wake,
        }
    }

    fn wake(&self) {
        if self.wake >= 0 {
            let _ = rustix::io::write(
                // SAFETY: the progress thread's eventfd, open for the
                // process's life.
                unsafe { BorrowedFd::borrow_raw(self.wake) },
                &1u64.to_ne_bytes(),
            );
        }
    }

    /// The parent closed its last fd of `id`: whether a child still holds
    /// it (then received data now goes to its relays: the progress thread
    /// is told).
    pub fn parent_closed(&self, id: SocketId, serial: u64) -> bool {
        let held = self.held(id, serial);
        if held {
            self.wake();
        }
        held
    }

    /// Whether a child may still use socket `id` (slot generation `serial`).
    pub fn held(&self, id: SocketId, serial: u64) -> bool {
        self.records.iter().any(|r| r.holds.contains(&(id, serial)))
            || self
                .acceptors
                .iter()
                .any(|a| a.id == id && a.serial == serial && !a.dead)
            || self
                .relays
                .iter()
                .any(|r| r.id == id && r.serial == serial && !r.dead)
    }

    fn idle(&self) -> bool {
        self.records.is_empty() && self.relays.is_empty() && self.acceptors.is_empty()
    }

    /// The fds the progress thread sleeps on.
    pub fn pollfds(&self, out: &mut Vec<libc::pollfd>) {
        for r in &self.records {
            out.push(libc::pollfd {
                fd: r.ctrl,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for a in &self.acceptors {
            out.push(libc::pollfd {
                fd: a.fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for r in self.relays.iter().filter(|r| !r.connecting) {
            if r.up_off < r.up.len() && r.down_off == r.down.len() {
                // Waiting for the connection to take the child's data
                // (the device wakes the thread): a hang-up, reported
                // whatever the events, would only make it spin.
                continue;
            }
            let mut ev = 0;
            if !r.eof_up && r.up_off == r.up.len() {
                ev |= libc::POLLIN;
            }
            if r.down_off < r.down.len() {
                ev |= libc::POLLOUT;
            }
            out.push(libc::pollfd {
                fd: r.fd,
                events: ev,
                revents: 0,
            });
        }
    }
}

/// atfork prepare (the driver's lock held): a control channel if the
/// child will inherit shunt sockets.
pub fn prepare(g: &mut Inner) {
    let holds = crate::sockets::inherited(&g.t);
    if holds.is_empty() {
        return;
    }
    let Ok([a, b]) = raw_socketpair(libc::SOCK_SEQPACKET) else {
        return;
    };
    let (a, b) = (own_fd(a), own_fd(b));
    if a < 0 || b < 0 {
        for fd in [a, b] {
            if fd >= 0 {
                close_own(fd);
            }
        }
        return;
    }
    g.relays.pending = Some((a, b, holds));
}

/// atfork parent/child (the driver's lock still held).
pub fn after(g: &mut Inner, in_child: bool) {
    let pending = g.relays.pending.take();
    if !in_child {
        if let Some((mine, theirs, holds)) = pending {
            close_own(theirs);
            g.relays.records.push(Record { ctrl: mine, holds });
        }
        return;
    }
    // The child: the parent's ends are not its business.
    let r = core::mem::take(&mut g.relays);
    for rec in &r.records {
        close_own(rec.ctrl);
    }
    for rel in &r.relays {
        close_own(rel.fd);
        if let Some((_, fd)) = rel.shut_after {
            close_own(fd);
        }
    }
    let ctrl = match pending {
        Some((theirs, mine, _)) => {
            close_own(theirs);
            mine
        }
        None => -1,
    };
    crate::forked::start(ctrl);
}

/// Move relay data and answer the children (in every turn, lock held).
/// True when anything moved.
pub fn pump(g: &mut Inner) -> bool {
    if g.relays.idle() {
        return false;
    }
    let mut r = core::mem::take(&mut g.relays);
    let mut busy = false;
    let mut released = Vec::new();
    // One poll for every fd, then system calls only where something is
    // ready.
    let mut pfds = core::mem::take(&mut r.pfds);
    pfds.clear();
    for rec in &r.records {
        pfds.push(libc::pollfd {
            fd: rec.ctrl,
            events: libc::POLLIN,
            revents: 0,
        });
    }
    let nrec = pfds.len();
    for a in &r.acceptors {
        pfds.push(libc::pollfd {
            fd: a.fd,
            events: libc::POLLIN,
            revents: 0,
        });
    }
    let nacc = r.acceptors.len();
    for rel in &r.relays {
        let want = !rel.eof_up && !rel.connecting && rel.up_off == rel.up.len();
        pfds.push(libc::pollfd {
            fd: rel.fd,
            events: if want { libc::POLLIN } else { 0 },
            revents: 0,
        });
    }
    // SAFETY: valid pollfds, zero timeout, no mask.
    let _ = unsafe {
        crate::engine::raw_ppoll(
            &mut pfds,
            Some(core::time::Duration::ZERO),
            core::ptr::null(),
        )
    };
    // Control channels first: a relay announced there may already carry
    // data.
    for (i, rec) in r.records.iter_mut().enumerate() {
        if pfds[i].revents == 0 {
            continue;
        }
        loop {
            match recv_msg(rec.ctrl) {
                Recv::Empty => break,
                Recv::Eof => {
                    close_own(rec.ctrl);
                    rec.ctrl = -1;
                    released.append(&mut rec.holds);
                    busy = true;
                    break;
                }
                Recv::Msg(m, fd) => {
                    busy = true;
                    control(
                        g,
                        &mut r.relays,
                        &mut r.acceptors,
                        rec,
                        m,
                        fd,
                        &mut released,
                    );
                }
            }
        }
    }
    r.records.retain(|rec| rec.ctrl >= 0);
    let before = r.relays.len();
    let scratch = &mut r.scratch;
    let down = down_choice(&r.relays, &r.records);
    for (i, rel) in r.relays.iter_mut().enumerate() {
        // Relays announced just now were not polled: try them.
        let ev = pfds
            .get(nrec + nacc + i)
            .map_or(libc::POLLIN, |p| p.revents);
        busy |= pump_one(g, rel, scratch, ev, down.contains(&i));
    }
    // Accept channels: a connection for each child that took its last.
    for (i, a) in r.acceptors.iter_mut().enumerate() {
        let ev = if i < nacc {
            pfds[nrec + i].revents
        } else {
            libc::POLLIN
        };
        busy |= feed(g, a, &mut r.relays, ev);
    }
    r.acceptors.retain(|a| {
        if a.dead {
            close_own(a.fd);
            released.push((a.id, a.serial));
        }
        !a.dead
    });
    r.pfds = pfds;
    r.relays.retain(|rel| {
        if rel.dead {
            close_own(rel.fd);
            released.push((rel.id, rel.serial));
        }
        !rel.dead
    });
    for (id, serial) in released {
        if !r.held(id, serial) {
            crate::sockets::close_orphan(g, id, serial);
        }
    }
    if busy || r.relays.len() != before {
        // What the progress thread should watch may have changed (a new
        // relay, a buffer that filled or drained): it recomputes.
        r.wake();
    }
    g.relays = r;
    busy
}

fn control(
    g: &mut Inner,
    relays: &mut Vec<Relay>,
    acceptors: &mut Vec<Acceptor>,
    rec: &mut Record,
    m: Msg,
    fd: RawFd,
    released: &mut Vec<(SocketId, u64)>,
) {
    let fd = if fd >= 0 { own_fd(fd) } else { fd };
    let tcp = crate::sockets::tcp_of(&g.t, m.id, m.serial);
    match m.op {
        x if x == Op::Relay as u32 => match tcp {
            Some(t)
                if fd >= 0 && raw_fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK as c_long).is_ok() =>
            {
                let mut r = Relay::new(fd, m.id, m.serial, t, m.token);
                r.reader = m.how == 1;
                relays.push(r)
            }
            // The socket is gone: the child's end reads EOF.
            _ if fd >= 0 => close_own(fd),
            _ => {}
        },
        x if x == Op::Connect as u32 && fd >= 0 => {
            let dst = std::net::SocketAddrV4::new(m.id.into(), m.how as u16);
            match crate::sockets::connect_for_child(g, dst) {
                Ok((id, serial, t)) => {
                    let mut r = Relay::new(fd, id, serial, t, m.token);
                    r.connecting = true;
                    r.reader = true;
                    relays.push(r);
                }
                Err(e) => {
                    let rep = ConnectReply {
                        err: e,
                        ..ConnectReply::default()
                    };
                    let _ = raw_send(fd, &rep.to_bytes(), libc::MSG_DONTWAIT);
                    close_own(fd);
                }
            }
        }
        x if x == Op::Listen as u32 && fd >= 0 => {
            if tcp.is_some() && raw_fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK as c_long).is_ok() {
                acceptors.push(Acceptor {
                    fd,
                    id: m.id,
                    serial: m.serial,
                    wants: 0,
                    dead: false,
                });
            } else {
                close_own(fd);
            }
        }
        x if x == Op::Reader as u32 => {
            if let Some(r) = relays.iter_mut().find(|r| r.token == m.token) {
                r.reader = true;
            }
        }
        x if x == Op::Drop as u32 => {
            if let Some(i) = rec.holds.iter().position(|&h| h == (m.id, m.serial)) {
                released.push(rec.holds.swap_remove(i));
            }
        }
        x if x == Op::Shutdown as u32 => {
            let rel = relays
                .iter_mut()
                .find(|r| m.token != 0 && r.token == m.token && !r.dead);
            match (rel, tcp) {
                (Some(rel), _) => {
                    if let Some((_, old)) = rel.shut_after.replace((m.how, fd)) {
                        reply(old, 0);
                    }
                }
                (None, Some(t)) => reply(fd, shutdown(g, t, m.how)),
                (None, None) => reply(fd, libc::ENOTCONN),
            }
        }
        _ => {
            if fd >= 0 {
                close_own(fd);
            }
        }
    }
}

/// Unread bytes the other end has not taken yet (SIOCOUTQ).
fn outq(fd: RawFd) -> usize {
    let mut n: c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    let r = unsafe { libc::syscall(libc::SYS_ioctl, fd, libc::TIOCOUTQ, &mut n as *mut c_int) };
    if r < 0 { usize::MAX } else { n as usize }
}

fn sin_parts(a: std::net::SocketAddrV4) -> (u32, u16) {
    (u32::from(*a.ip()), a.port())
}

/// One accept channel: when its child has taken the last connection and
/// the listener has one queued, pass it down with a fresh relay.
fn feed(g: &mut Inner, a: &mut Acceptor, relays: &mut Vec<Relay>, ev: i16) -> bool {
    if ev & (libc::POLLHUP | libc::POLLERR) != 0 {
        a.dead = true;
        return true;
    }
    if ev & libc::POLLIN != 0 {
        let mut b = [0u8; 64];
        while let Ok(n @ 1..) = raw_recv(a.fd, &mut b) {
            a.wants = a.wants.saturating_add(n);
        }
    }
    if a.wants == 0 {
        return false;
    }
    let Some(lt) = crate::sockets::tcp_of(&g.t, a.id, a.serial) else {
        a.dead = true;
        return true;
    };
    if g.stack.tcp_layer().poll(lt).0 & Poll::IN == 0 || outq(a.fd) != 0 {
        return false;
    }
    let Some((cid, cserial, t, local, peer)) = crate::sockets::accept_for_child(g, a.id, a.serial)
    else {
        return false;
    };
    let pair = raw_socketpair(libc::SOCK_STREAM);
    let Ok([mine, theirs]) = pair else {
        crate::sockets::close_orphan(g, cid, cserial);
        return true;
    };
    let mine = own_fd(mine);
    let token = PARENT_TOKENS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    let msg = Accepted {
        token,
        id: cid,
        serial: cserial,
        local: sin_parts(local),
        peer: sin_parts(peer),
    };
    let sent = send_with_fd(a.fd, &msg.to_bytes(), theirs, libc::MSG_DONTWAIT);
    raw_close(theirs);
    if mine < 0
        || sent.is_err()
        || raw_fcntl(mine, libc::F_SETFL, libc::O_NONBLOCK as c_long).is_err()
    {
        if mine >= 0 {
            close_own(mine);
        }
        crate::sockets::close_orphan(g, cid, cserial);
        a.dead |= sent.is_err();
        return true;
    }
    let mut r = Relay::new(mine, cid, cserial, t, token);
    r.reader = true;
    relays.push(r);
    a.wants -= 1;
    true
}

/// shutdown(2) on the connection: 0 or the errno.
fn shutdown(g: &mut Inner, t: TcpId, how: i32) -> c_int {
    let Some(h) = how_of(how) else {
        return libc::EINVAL;
    };
    let now = g.now();
    match g.stack.tcp(now, |l, cx| l.shutdown(cx, t, h)) {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}

/// A child's connection made for it: answer once the handshake is over.
/// True when it is (or failed).
fn connected(g: &mut Inner, r: &mut Relay) -> bool {
    use shunt_stack::tcp::TcpState;
    let state = g.stack.tcp_layer().state(r.tcp);
    let mut rep = ConnectReply {
        id: r.id,
        serial: r.serial,
        ..ConnectReply::default()
    };
    match state {
        Ok(TcpState::SynSent | TcpState::SynRecv) => return false,
        Ok(TcpState::Close) | Err(_) => {
            let now = g.now();
            let t = r.tcp;
            rep.err = g
                .stack
                .tcp(now, |l, _| l.take_error(t))
                .map_or(libc::ECONNREFUSED, |e| e.0);
            r.dead = true;
        }
        Ok(_) => {
            if let Ok(l) = g.stack.tcp_layer().local_addr(r.tcp)
                && let tcp::IpAddr::V4(ip) = l.ip
            {
                rep.ip = u32::from_be_bytes(ip.octets());
                rep.port = l.port.into();
            }
        }
    }
    r.connecting = false;
    // The relay's buffer is empty: the reply fits at once.
    if raw_send(r.fd, &rep.to_bytes(), libc::MSG_DONTWAIT).is_err() {
        r.dead = true;
    }
    true
}

/// Which relays receive what arrives on their connection: one per
/// connection (bytes split between two would reach neither program
/// whole): the newest that reads; else, once no fork record holds the
/// connection (no process with shunt's hooks can still claim it), the
/// newest (a program exec'd on the connection reads without hooks to say
/// so). A relay that only inherited the fd across an exec (a helper the
/// child runs) never takes bytes its hooked parent is about to read.
/// Indexes into `relays`.
fn down_choice(relays: &[Relay], records: &[Record]) -> Vec<usize> {
    let mut pick: Vec<usize> = Vec::new();
    for (i, r) in relays.iter().enumerate() {
        if r.dead || r.connecting {
            continue;
        }
        match pick
            .iter_mut()
            .find(|&&mut j| relays[j].id == r.id && relays[j].serial == r.serial)
        {
            Some(j) => {
                if r.reader || !relays[*j].reader {
                    *j = i;
                }
            }
            None => pick.push(i),
        }
    }
    pick.retain(|&i| {
        let r = &relays[i];
        r.reader
            || !records
                .iter()
                .any(|rec| rec.holds.contains(&(r.id, r.serial)))
    });
    pick
}

/// Move one relay's data; `ev` is what its unix end polled now; `down_ok`:
/// it is the one relay of its connection that gets incoming data.
fn pump_one(g: &mut Inner, r: &mut Relay, scratch: &mut Vec<u8>, ev: i16, down_ok: bool) -> bool {
    if r.connecting && !connected(g, r) {
        return false;
    }
    if r.dead {
        return true;
    }
    let mut busy = false;
    // Child to peer.
    let mut budget = TURN_BUDGET;
    let readable = ev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
    while budget > 0 {
        if r.up_off == r.up.len() {
            r.up.clear();
            r.up_off = 0;
            if r.eof_up || !readable {
                break;
            }
            r.up.resize(CHUNK, 0);
            match raw_recv(r.fd, &mut r.up) {
                Ok(0) | Err(libc::ECONNRESET) => {
                    r.up.clear();
                    r.eof_up = true;
                    busy = true;
                    break;
                }
                Ok(n) => r.up.truncate(n),
                Err(_) => {
                    r.up.clear();
                    break;
                }
            }
        }
        let now = g.now();
        let (t, data) = (r.tcp, &r.up[r.up_off..]);
        match g
            .stack
            .tcp(now, |l, cx| l.send(cx, t, data, SendFlags::default()))
        {
            Ok(n) => {
                r.up_off += n;
                budget = budget.saturating_sub(n);
                busy = true;
            }
            Err(e) if e.0 == libc::EAGAIN => break,
            // The connection cannot send (shut down, reset): what the
            // child wrote is lost, as its write would have failed.
            Err(_) => {
                r.up_off = r.up.len();
                budget = budget.saturating_sub(CHUNK);
            }
        }
    }
    if r.eof_up && r.up_off == r.up.len() {
        if let Some((how, fd)) = r.shut_after.take() {
            let e = shutdown(g, r.tcp, how);
            reply(fd, e);
            r.wr_done |= how != libc::SHUT_RD;
            busy = true;
        }
        // Polled after the EOF was read: a child that exits right after
        // its last write hangs up between an earlier poll and the read.
        if ev & libc::POLLHUP != 0 || revents(r.fd) & libc::POLLHUP != 0 {
            // Every copy of the child's end is closed: a close, never a
            // FIN of its own.
            r.dead = true;
            return true;
        }
        if !r.wr_done {
            // EOF without a hang-up: the child (or a program it exec'd)
            // shut down writing.
            r.wr_done = true;
            shutdown(g, r.tcp, libc::SHUT_WR);
            busy = true;
        }
    }
    // Peer to child, while the parent holds no fd of its own or the child
    // reads, and to one relay of the socket only.
    if !down_ok || (crate::sockets::parent_refs(&g.t, r.id) != 0 && !r.reader) || r.down_eof {
        return busy;
    }
    if ev & libc::POLLHUP != 0 {
        // The child is gone (the relay dies once its data is out): take
        // nothing more off the connection for it.
        return busy;
    }
    let incoming = g.stack.tcp_layer().poll(r.tcp).0 & (Poll::IN | Poll::HUP | Poll::ERR) != 0;
    if r.down_off == r.down.len() && !incoming {
        return busy;
    }
    let mut budget = TURN_BUDGET;
    while budget > 0 {
        if r.down_off == r.down.len() {
            r.down.clear();
            r.down_off = 0;
            scratch.resize(CHUNK, 0);
            let now = g.now();
            let t = r.tcp;
            let buf = &mut scratch[..];
            match g
                .stack
                .tcp(now, |l, cx| l.recv(cx, t, buf, RecvFlags::default()))
            {
                Ok(0) => {
                    raw_shutdown(r.fd, libc::SHUT_WR);
                    r.down_eof = true;
                    busy = true;
                    break;
                }
                Ok(n) => r.down.extend_from_slice(&scratch[..n]),
                Err(e) if e.0 == libc::EAGAIN => break,
                Err(_) => {
                    raw_shutdown(r.fd, libc::SHUT_WR);
                    r.down_eof = true;
                    busy = true;
                    break;
                }
            }
        }
        match raw_send(r.fd, &r.down[r.down_off..], libc::MSG_DONTWAIT) {
            Ok(n) => {
                r.down_off += n;
                budget = budget.saturating_sub(n);
                busy = true;
            }
            Err(libc::EAGAIN | libc::EINTR) => break,
            Err(_) => {
                r.dead = true;
                return true;
            }
        }
    }
    busy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_reply_round_trips() {
        let r = ConnectReply {
            err: libc::ECONNREFUSED,
            id: 0x1234_5678,
            serial: 0x0102_0304_0506_0708,
            ip: 0xc000_0201,
            port: 40000,
        };
        let b = ConnectReply::from_bytes(&r.to_bytes());
        assert_eq!(
            (b.err, b.id, b.serial, b.ip, b.port),
            (r.err, r.id, r.serial, r.ip, r.port)
        );
    }

    #[test]
    fn control_messages_cross_a_seqpacket_pair_with_their_fd() {
        let [a, b] = raw_socketpair(libc::SOCK_SEQPACKET).expect("socketpair");
        let [x, y] = raw_socketpair(libc::SOCK_STREAM).expect("socketpair");
        let m = Msg {
            op: Op::Relay as u32,
            id: 7,
            serial: 9,
            token: 11,
            how: 1,
            _pad: 0,
        };
        send_msg(a, &m, x).expect("send");
        raw_close(x);
        let Recv::Msg(got, fd) = recv_msg(b) else {
            panic!("no message");
        };
        assert_eq!(
            (got.op, got.id, got.serial, got.token, got.how),
            (1, 7, 9, 11, 1)
        );
        // The fd that came across is the other end of y's pair.
        assert!(fd >= 0);
        assert_eq!(raw_send(fd, b"hi", 0), Ok(2));
        let mut buf = [0u8; 4];
        assert_eq!(raw_recv(y, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"hi");
        assert!(matches!(recv_msg(b), Recv::Empty));
        raw_close(a);
        assert!(matches!(recv_msg(b), Recv::Eof));
        for fd in [b, y, fd] {
            raw_close(fd);
        }
    }
}
