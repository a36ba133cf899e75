//! Shunt sockets in a forked child: the child's side of [`crate::relay`]
//! (read its comment first).
//!
//! The child has a copy of the parent's stack and socket table, frozen at
//! the fork; it never drives it (the engine's `forked` flag), only reads
//! it: which fds name which socket, and a connection's names. On the first
//! use of an inherited connection (any hook on its fd, or an exec that
//! keeps it), [`adopt`] turns every fd of it into one end of a unix
//! socketpair whose other end goes to the parent over the control channel;
//! from then on the calls are the kernel's, and only the first receive
//! ([`RELAYED`]), shutdown and the name and option calls come back here,
//! the relay found by its inode ([`converted`]), so dup'd fds are found
//! too.
//!
//! A listener the child uses becomes an accept channel: a SEQPACKET
//! socket on which the parent passes one accepted connection at a time
//! (its relay's fd, with its names), so accept, O_NONBLOCK and
//! poll/select/epoll readiness are the kernel's again ([`accept`]). A
//! connection the child makes itself through shunt's interface is made by
//! the parent ([`connect`]). Unconnected inherited sockets and UDP ones
//! are not relayed: the child keeps the backing kernel socket, as it did
//! before relays existed.

use core::ffi::{c_int, c_long};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::net::SocketAddrV4;
use std::os::fd::{BorrowedFd, IntoRawFd, RawFd};

use libc::{sockaddr, socklen_t};

use crate::fdtable::{self, Entry};
use crate::relay::{
    Accepted, ConnectReply, Msg, Op, raw_close, raw_fcntl, raw_shutdown, raw_socketpair, send_msg,
};
use crate::socket::SocketId;

/// This process is a forked child of a process with shunt's stack.
static IN_CHILD: AtomicBool = AtomicBool::new(false);
/// The control channel to the parent (-1: none).
static CTRL: AtomicI32 = AtomicI32::new(-1);
/// Some fd was relayed ([`converted`] has entries).
static HAS_RELAYS: AtomicBool = AtomicBool::new(false);
static TOKENS: AtomicU64 = AtomicU64::new(0);

/// A relayed socket, as the child knows it.
#[derive(Clone, Copy)]
pub struct Converted {
    ino: u64,
    pub id: SocketId,
    serial: u64,
    token: u64,
    /// The backing kernel socket, kept for the option calls.
    orig: RawFd,
    /// Local and peer names of a connection made after the fork (the
    /// child's copy of the stack does not know it).
    names: Option<(SocketAddrV4, SocketAddrV4)>,
    /// An accept channel (the relay of a listener).
    listener: bool,
}

/// The id a forked child's own TCP sockets carry in its fd table: no slot
/// of the (copied) socket table, so every call on them is the kernel's,
/// except a connect through shunt's interface ([`connect`]).
pub const CHILD_NEW: SocketId = RELAYED - 1;

/// In a child's fd table, `id | RELAYED` marks a relay whose child has not
/// received through it yet: calls are the kernel's, but the first receive
/// tells the parent ([`Op::Reader`]) and then the fd is the kernel's
/// alone. Slot ids never come near this bit.
pub const RELAYED: SocketId = 1 << 29;

static CONVERTED: parking_lot::Mutex<Vec<Converted>> = parking_lot::Mutex::new(Vec::new());

/// Called in the child's atfork handler.
pub fn start(ctrl: RawFd) {
    CTRL.store(ctrl, Ordering::Release);
    IN_CHILD.store(true, Ordering::Release);
}

#[inline]
pub fn in_child() -> bool {
    IN_CHILD.load(Ordering::Relaxed)
}

/// Whether some kernel fd may be a relay (one load).
#[inline]
pub fn has_relays() -> bool {
    HAS_RELAYS.load(Ordering::Relaxed)
}

fn ino(fd: RawFd) -> Option<u64> {
    // SAFETY: fstat only reads the fd's metadata; a closed fd is EBADF.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let st = rustix::fs::fstat(b).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(st.st_ino)
}

/// The relayed socket kernel fd `fd` is, if it is one.
pub fn converted(fd: c_int) -> Option<Converted> {
    if !has_relays() {
        return None;
    }
    let i = ino(fd)?;
    CONVERTED.lock().iter().find(|c| c.ino == i).copied()
}

fn token() -> u64 {
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u64;
    (pid << 32) | (TOKENS.fetch_add(1, Ordering::Relaxed) + 1)
}

/// Hook `name` is called on `fd`, marked `id`, in the child.
pub fn first_use(name: &str, fd: c_int, id: SocketId) {
    adopt(fd, id, reads(name));
}

/// Whether hook `name` receives data (the child then wants the
/// connection's incoming bytes, see [`crate::relay`]).
pub fn reads(name: &str) -> bool {
    matches!(
        name,
        "read"
            | "readv"
            | "recv"
            | "recvfrom"
            | "recvmsg"
            | "recvmmsg"
            | "__read_chk"
            | "__recv_chk"
            | "__recvfrom_chk"
    )
}

/// Relay inherited socket `id` (which `fd` names): every fd of it in this
/// process becomes one end of a socketpair the parent pumps. `reads`: the
/// first use receives (or waits to), so the relay competes with the parent
/// for incoming data. Does nothing for sockets that are not connections,
/// or when the parent is gone.
pub fn adopt(fd: c_int, id: SocketId, reads: bool) {
    if id == CHILD_NEW {
        return;
    }
    if id & RELAYED != 0 {
        if reads {
            reader(fd);
        }
        return;
    }
    let Some(s) = crate::sockets::SHUNT.get() else {
        return;
    };
    let ctrl = CTRL.load(Ordering::Acquire);
    if ctrl < 0 {
        return;
    }
    let mut g = s.e.inner_lock();
    let Some((serial, mut fds, wr_shut)) = crate::sockets::relayable(&g, id) else {
        // A listener only when the child means to accept (accept, or a
        // wait for input): otherwise connections would go to a child that
        // never takes them.
        if reads && let Some(l) = crate::sockets::listener(&g, id) {
            adopt_listener(&mut g, ctrl, fd, id, l);
            drop(g);
            want(fd);
        }
        return;
    };
    if !fds.contains(&fd) {
        fds.push(fd);
    }
    let Ok([mine, theirs]) = raw_socketpair(libc::SOCK_STREAM) else {
        return;
    };
    let tok = token();
    let m = Msg {
        op: Op::Relay as u32,
        id,
        serial,
        token: tok,
        how: reads.into(),
        ..Msg::default()
    };
    let sent = send_msg(ctrl, &m, theirs);
    raw_close(theirs);
    if sent.is_err() {
        raw_close(mine);
        return;
    }
    if wr_shut {
        // Writes fail (EPIPE, SIGPIPE) as on the shut-down socket.
        raw_shutdown(mine, libc::SHUT_WR);
    }
    // SAFETY: `fd` is open (the hook was called on it).
    let orig = crate::engine::high_internal(unsafe { BorrowedFd::borrow_raw(fd) })
        .map_or(-1, IntoRawFd::into_raw_fd);
    let fl = raw_fcntl(fd, libc::F_GETFL, 0).unwrap_or(0) as c_int;
    for &f in &fds {
        if replace_fd(mine, f) {
            if reads {
                fdtable::clear(f);
            } else {
                fdtable::set(f, Entry::Socket(id | RELAYED));
            }
        }
    }
    let _ = raw_fcntl(mine, libc::F_SETFL, (fl & libc::O_NONBLOCK) as c_long);
    copy_timeouts(orig, mine);
    let i = ino(mine);
    raw_close(mine);
    crate::sockets::forget_all(&mut g.t, id);
    drop(g);
    if let Some(ino) = i {
        remember(Converted {
            ino,
            id,
            serial,
            token: tok,
            orig,
            names: None,
            listener: false,
        });
    }
}

/// Make the program's fd `f` (one that names the inherited socket) name
/// `mine` instead, keeping its close-on-exec flag: dup3 replaces it
/// atomically. False when `f` is not open or the dup fails.
fn replace_fd(mine: RawFd, f: c_int) -> bool {
    let Ok(fdfl) = raw_fcntl(f, libc::F_GETFD, 0) else {
        return false;
    };
    let flags = if fdfl as c_int & libc::FD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    // SAFETY: dup3 onto an fd of the program's that names a socket of
    // ours being relayed.
    unsafe { libc::syscall(libc::SYS_dup3, mine, f, flags) >= 0 }
}

/// Relay inherited listener `id`: its fds become one end of an accept
/// channel the parent passes connections down (relay::Op::Listen).
fn adopt_listener(
    g: &mut crate::engine::Inner,
    ctrl: RawFd,
    fd: c_int,
    id: SocketId,
    (serial, mut fds, nonblock): (u64, Vec<c_int>, bool),
) {
    if !fds.contains(&fd) {
        fds.push(fd);
    }
    let Ok([mine, theirs]) = raw_socketpair(libc::SOCK_SEQPACKET) else {
        return;
    };
    let m = Msg {
        op: Op::Listen as u32,
        id,
        serial,
        ..Msg::default()
    };
    let sent = send_msg(ctrl, &m, theirs);
    raw_close(theirs);
    if sent.is_err() {
        raw_close(mine);
        return;
    }
    // SAFETY: `fd` is open (the hook was called on it).
    let orig = crate::engine::high_internal(unsafe { BorrowedFd::borrow_raw(fd) })
        .map_or(-1, IntoRawFd::into_raw_fd);
    for &f in &fds {
        if replace_fd(mine, f) {
            fdtable::set(f, Entry::Socket(id | RELAYED));
        }
    }
    if nonblock {
        let _ = raw_fcntl(mine, libc::F_SETFL, libc::O_NONBLOCK as c_long);
    }
    let i = ino(mine);
    raw_close(mine);
    let local = crate::sockets::names(g, id).and_then(|(l, _)| l);
    crate::sockets::forget_all(&mut g.t, id);
    if let Some(ino) = i {
        remember(Converted {
            ino,
            id,
            serial,
            token: 0,
            orig,
            names: local.map(|l| (l, SocketAddrV4::new(0.into(), 0))),
            listener: true,
        });
    }
}

/// accept/accept4 in a child on `fd` (marked `id`): an inherited listener
/// takes its connections from the parent, down its accept channel. `None`:
/// the kernel's call.
///
/// # Safety
/// `addr`/`len` as the program passed them.
pub unsafe fn accept(
    fd: c_int,
    id: SocketId,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> Option<c_int> {
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Some(fail(libc::EINVAL));
    }
    let fresh = id & RELAYED == 0;
    if fresh {
        // Relaying it asks for the first connection.
        adopt(fd, id, true);
    }
    let conv = converted(fd)?;
    if !conv.listener {
        return None;
    }
    if !fresh {
        want(fd);
    }
    let mut b = [0u8; Accepted::SIZE];
    let mut iov = libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; zero is valid.
    let mut h: libc::msghdr = unsafe { core::mem::zeroed() };
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = cbuf.as_mut_ptr().cast();
    h.msg_controllen = core::mem::size_of_val(&cbuf);
    let rflags = if flags & libc::SOCK_CLOEXEC != 0 {
        libc::MSG_CMSG_CLOEXEC
    } else {
        0
    };
    // SAFETY: recvmsg into our buffers; blocking as the channel is (the
    // listener's O_NONBLOCK), restarted by the kernel under SA_RESTART.
    let r = unsafe { libc::syscall(libc::SYS_recvmsg, fd, &mut h as *mut libc::msghdr, rflags) };
    if r < 0 {
        // SAFETY: this thread's errno, set by the call.
        return Some(fail(unsafe { *libc::__errno_location() }));
    }
    let mut nfd = -1;
    // SAFETY: reading the control message the kernel wrote into cbuf.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&h);
        if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS
        {
            nfd = libc::CMSG_DATA(c).cast::<c_int>().read_unaligned();
        }
    }
    if r as usize != Accepted::SIZE || nfd < 0 {
        if nfd >= 0 {
            raw_close(nfd);
        }
        // The parent is gone (EOF) or sent nonsense.
        return Some(fail(libc::ECONNABORTED));
    }
    let acc = Accepted::from_bytes(&b);
    if flags & libc::SOCK_NONBLOCK != 0 {
        let _ = raw_fcntl(nfd, libc::F_SETFL, libc::O_NONBLOCK as c_long);
    }
    let local = SocketAddrV4::new(acc.local.0.into(), acc.local.1);
    let peer = SocketAddrV4::new(acc.peer.0.into(), acc.peer.1);
    if let Some(ino) = ino(nfd) {
        remember(Converted {
            ino,
            id: acc.id,
            serial: acc.serial,
            token: acc.token,
            orig: -1,
            names: Some((local, peer)),
            listener: false,
        });
    }
    if !addr.is_null() {
        // SAFETY: per the contract.
        if unsafe { put_sin(peer, addr, len) } < 0 {
            raw_close(nfd);
            return Some(-1);
        }
    }
    Some(nfd)
}

/// The most relays of the child's own connections remembered: a child
/// that connects again and again forgets its oldest ones (their name calls
/// then get the relay's own answers); inherited ones are bounded by what
/// the parent had open.
const REMEMBERED: usize = 4096;

fn remember(c: Converted) {
    let mut v = CONVERTED.lock();
    if v.len() >= REMEMBERED
        && let Some(i) = v.iter().position(|x| x.orig < 0)
    {
        v.remove(i);
    }
    v.push(c);
    HAS_RELAYS.store(true, Ordering::Release);
}

/// socket(2) in a forked child made kernel socket `fd`: mark a TCP one,
/// so that its connect comes here.
pub fn open(fd: c_int, domain: c_int, ty: c_int, protocol: c_int) {
    if domain == libc::AF_INET
        && ty & 0xf == libc::SOCK_STREAM
        && matches!(protocol, 0 | libc::IPPROTO_TCP)
        && CTRL.load(Ordering::Acquire) >= 0
    {
        fdtable::set(fd, Entry::Socket(CHILD_NEW));
    }
}

/// connect(2) in a forked child on `fd` (marked `id`): an inherited
/// socket is relayed first; a socket of the child's own that connects
/// through shunt's interface is connected by the parent and relayed.
/// `None`: the kernel's call.
///
/// The connect blocks until the handshake ends, whatever O_NONBLOCK says
/// (the relay does not exist before).
///
/// # Safety
/// `addr`/`len` as the program passed them.
pub unsafe fn connect(
    fd: c_int,
    id: SocketId,
    addr: *const sockaddr,
    len: socklen_t,
) -> Option<c_int> {
    if id != CHILD_NEW {
        adopt(fd, id, false);
        return None;
    }
    if addr.is_null() || (len as usize) < core::mem::size_of::<libc::sockaddr_in>() {
        return None;
    }
    // SAFETY: the program's address, at least a sockaddr_in long.
    let sin = unsafe { addr.cast::<libc::sockaddr_in>().read_unaligned() };
    if c_int::from(sin.sin_family) != libc::AF_INET {
        return None;
    }
    let dst = SocketAddrV4::new(
        u32::from_be(sin.sin_addr.s_addr).into(),
        u16::from_be(sin.sin_port),
    );
    let s = crate::sockets::SHUNT.get()?;
    if !crate::sockets::routed_by_shunt(&s.e.inner_lock(), dst.ip()) {
        // The kernel's path (loopback...): the socket is the kernel's.
        fdtable::clear(fd);
        return None;
    }
    let ctrl = CTRL.load(Ordering::Acquire);
    if ctrl < 0 {
        return None;
    }
    let Ok([mine, theirs]) = raw_socketpair(libc::SOCK_STREAM) else {
        return Some(fail(libc::ENOBUFS));
    };
    let tok = token();
    let m = Msg {
        op: Op::Connect as u32,
        id: u32::from(*dst.ip()),
        how: i32::from(dst.port()),
        token: tok,
        ..Msg::default()
    };
    let sent = send_msg(ctrl, &m, theirs);
    raw_close(theirs);
    if sent.is_err() {
        raw_close(mine);
        return None;
    }
    let mut b = [0u8; ConnectReply::SIZE];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: read into the rest of our buffer.
        let r =
            unsafe { libc::syscall(libc::SYS_read, mine, b[got..].as_mut_ptr(), b.len() - got) };
        if r > 0 {
            got += r as usize;
        // SAFETY: this thread's errno.
        } else if r < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
            continue;
        } else {
            break;
        }
    }
    let rep = ConnectReply::from_bytes(&b);
    if got < b.len() || rep.err != 0 {
        raw_close(mine);
        return Some(fail(if got < b.len() {
            libc::ECONNABORTED
        } else {
            rep.err
        }));
    }
    // The kernel socket goes with the dup3 below (its options are not
    // kept: option calls then get the relay's answers), its timeouts
    // stay.
    copy_timeouts(fd, mine);
    let fl = raw_fcntl(fd, libc::F_GETFL, 0).unwrap_or(0) as c_int;
    let cloexec = raw_fcntl(fd, libc::F_GETFD, 0).is_ok_and(|f| f as c_int & libc::FD_CLOEXEC != 0);
    // SAFETY: dup3 onto the program's socket fd: the kernel replaces it
    // atomically.
    let r = unsafe {
        libc::syscall(
            libc::SYS_dup3,
            mine,
            fd,
            if cloexec { libc::O_CLOEXEC } else { 0 },
        )
    };
    let _ = raw_fcntl(mine, libc::F_SETFL, (fl & libc::O_NONBLOCK) as c_long);
    let i = ino(mine);
    raw_close(mine);
    if r < 0 {
        return Some(fail(libc::ENOBUFS));
    }
    fdtable::clear(fd);
    let local = SocketAddrV4::new(rep.ip.into(), rep.port as u16);
    if let Some(ino) = i {
        remember(Converted {
            ino,
            id: rep.id,
            serial: rep.serial,
            token: tok,
            orig: -1,
            names: Some((local, dst)),
            listener: false,
        });
    }
    Some(0)
}

/// Ask the parent for one connection down accept channel `fd`.
fn want(fd: c_int) {
    let _ = crate::relay::raw_send(fd, &[1], libc::MSG_DONTWAIT);
}

/// The child receives through relay `fd` for the first time: the parent
/// now passes it incoming data even while it holds an fd itself.
fn reader(fd: c_int) {
    let conv = converted(fd);
    if conv.is_some_and(|c| c.listener) {
        // An accept channel stays marked: accept must come here.
        return;
    }
    fdtable::clear(fd);
    let ctrl = CTRL.load(Ordering::Acquire);
    if let (Some(c), true) = (conv, ctrl >= 0) {
        let m = Msg {
            op: Op::Reader as u32,
            id: c.id,
            serial: c.serial,
            token: c.token,
            ..Msg::default()
        };
        let _ = send_msg(ctrl, &m, -1);
    }
}

/// What a metadata call on `fd`, marked `id` in a child, acts on.
pub fn target(fd: c_int, id: SocketId) -> Target {
    if id & RELAYED != 0
        && let Some(c) = converted(fd)
    {
        return Target {
            id: c.id,
            conv: Some(c),
        };
    }
    Target { id, conv: None }
}

/// Before an exec: relay every inherited connection that survives it.
pub fn before_exec() {
    let top = fdtable::high_water().min(i32::MAX as u32) as c_int;
    for fd in 0..=top {
        if let Entry::Socket(id) = fdtable::lookup(fd)
            && raw_fcntl(fd, libc::F_GETFD, 0).is_ok_and(|f| f as c_int & libc::FD_CLOEXEC == 0)
        {
            adopt(fd, id, false);
        }
    }
}

/// The child closes `fd` of inherited socket `id` (not relayed): after its
/// last fd, the parent stops holding the socket for it.
pub fn close(fd: c_int, id: SocketId) {
    if id & RELAYED != 0 {
        // A relay: its hang-up tells the parent.
        return;
    }
    let Some(s) = crate::sockets::SHUNT.get() else {
        return;
    };
    let last = {
        let mut g = s.e.inner_lock();
        crate::sockets::forget_fd(&mut g.t, id, fd)
    };
    let ctrl = CTRL.load(Ordering::Acquire);
    if let (Some(serial), true) = (last, ctrl >= 0) {
        let m = Msg {
            op: Op::Drop as u32,
            id,
            serial,
            ..Msg::default()
        };
        let _ = send_msg(ctrl, &m, -1);
    }
}

/// Send `m` and wait for the parent's answer (an errno, 0 for success).
fn request(m: Msg) -> c_int {
    let ctrl = CTRL.load(Ordering::Acquire);
    if ctrl < 0 {
        return libc::ENOTCONN;
    }
    let Ok([mine, theirs]) = raw_socketpair(libc::SOCK_SEQPACKET) else {
        return libc::ENOBUFS;
    };
    let sent = send_msg(ctrl, &m, theirs);
    raw_close(theirs);
    if sent.is_err() {
        raw_close(mine);
        return libc::ENOTCONN;
    }
    let mut b = [0u8; 4];
    let r = loop {
        // SAFETY: read into our 4-byte buffer.
        let r = unsafe { libc::syscall(libc::SYS_read, mine, b.as_mut_ptr(), 4usize) };
        // SAFETY: this thread's errno.
        if r < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
            continue;
        }
        break r;
    };
    raw_close(mine);
    if r == 4 {
        c_int::from_ne_bytes(b)
    } else {
        libc::ENOTCONN
    }
}

fn fail(e: c_int) -> c_int {
    if e == 0 {
        return 0;
    }
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() = e };
    -1
}

/// What a metadata call in the child acts on: an inherited socket not
/// relayed (`conv` None) or a relay.
pub struct Target {
    pub id: SocketId,
    pub conv: Option<Converted>,
}

/// shutdown(2) in the child: the shared connection is shut down (the
/// parent gets EPIPE, the peer the FIN), after what the child wrote.
pub fn shutdown(t: &Target, fd: c_int, how: c_int) -> c_int {
    if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) {
        return fail(libc::EINVAL);
    }
    let mut conv = t.conv;
    if conv.is_none() && how != libc::SHUT_RD {
        // Relay it first, so that the child's own writes after the
        // shutdown fail as on Linux (EPIPE, SIGPIPE).
        adopt(fd, t.id, false);
        conv = converted(fd);
    }
    let serial = match conv {
        Some(c) => c.serial,
        None => match crate::sockets::SHUNT
            .get()
            .and_then(|s| crate::sockets::serial_of(&s.e.inner_lock().t, t.id))
        {
            Some(x) => x,
            None => return fail(libc::ENOTCONN),
        },
    };
    let mut token = 0;
    if let Some(c) = conv
        && how != libc::SHUT_RD
    {
        // In band: the parent applies the shutdown once it has read
        // everything written before it (its EOF on the relay).
        raw_shutdown(fd, libc::SHUT_WR);
        token = c.token;
    }
    fail(request(Msg {
        op: Op::Shutdown as u32,
        id: t.id,
        serial,
        token,
        how,
        _pad: 0,
    }))
}

/// # Safety
/// `addr`/`len` as the program passed them.
unsafe fn put_sin(a: SocketAddrV4, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if len.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: the program's non-null length.
    let l = unsafe { len.read() };
    if (l as i32) < 0 {
        return fail(libc::EINVAL);
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let n = (l as usize).min(core::mem::size_of::<libc::sockaddr_in>());
    if n > 0 && addr.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: at most the program's `l` bytes into its buffer.
    unsafe {
        core::ptr::copy_nonoverlapping(
            (&sin as *const libc::sockaddr_in).cast::<u8>(),
            addr.cast(),
            n,
        );
        len.write(core::mem::size_of::<libc::sockaddr_in>() as socklen_t);
    }
    0
}

/// getsockname (`peer` false) or getpeername from the copy of the stack.
///
/// # Safety
/// `addr`/`len` as the program passed them.
pub unsafe fn name(
    t: &Target,
    peer: bool,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> Option<c_int> {
    let (local, remote) = match t.conv.and_then(|c| c.names.map(|n| (n, c.listener))) {
        Some(((l, p), listener)) => (Some(l), (!listener).then_some(p)),
        None => {
            let s = crate::sockets::SHUNT.get()?;
            crate::sockets::names(&s.e.inner_lock(), t.id)?
        }
    };
    match if peer { remote } else { local } {
        // SAFETY: per the contract.
        Some(a) => Some(unsafe { put_sin(a, addr, len) }),
        None if peer => Some(fail(libc::ENOTCONN)),
        None => None,
    }
}

/// Options the relay's own socket must carry too: the timeouts of the
/// child's blocking calls on it.
pub fn relay_option(level: c_int, name: c_int) -> bool {
    level == libc::SOL_SOCKET
        && matches!(
            name,
            libc::SO_RCVTIMEO | libc::SO_SNDTIMEO | libc::SO_RCVTIMEO_NEW | libc::SO_SNDTIMEO_NEW
        )
}

/// Copy the timeouts of the backing socket `from` onto the relay `to`.
fn copy_timeouts(from: RawFd, to: RawFd) {
    for name in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        let mut tv = [0u64; 2];
        let mut len = core::mem::size_of_val(&tv) as socklen_t;
        // SAFETY: getsockopt into our 16-byte timeval, setsockopt from it.
        unsafe {
            if libc::syscall(
                libc::SYS_getsockopt,
                from,
                libc::SOL_SOCKET,
                name,
                tv.as_mut_ptr(),
                &mut len,
            ) == 0
                && tv != [0, 0]
            {
                libc::syscall(
                    libc::SYS_setsockopt,
                    to,
                    libc::SOL_SOCKET,
                    name,
                    tv.as_ptr(),
                    len,
                );
            }
        }
    }
}

/// The fd an option call goes to: the backing kernel socket.
pub fn option_fd(t: &Target, fd: c_int) -> c_int {
    match t.conv {
        Some(c) if c.orig >= 0 => c.orig,
        _ => fd,
    }
}
