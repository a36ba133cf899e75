//! The exported hooks: one `#[unsafe(no_mangle)] extern "C"` function per
//! libc entry point.
//!
//! Every hook has the same shape. The kernel path: one load from the fd
//! table ([`fdtable::get`]) and, when it is 0, a tail call to the real
//! function with the arguments unchanged: no lock, no allocation, no
//! panic (the table lookup is bounds-checked without panicking),
//! async-signal-safe. The shunt path is a separate cold function that
//! runs the [`ShuntSockets`] method inside [`served`], which catches
//! panics and falls back to the real function exactly once when shunt
//! does not serve the call (or panicked before doing anything).
//!
//! Hooks that take many fds at once (poll, select, close_range) and the
//! process calls (exec) first check [`fdtable::all_kernel`]: while no fd
//! is shunt's, that one load decides.

// Each hook's safety contract is that of the libc function it stands for.
#![allow(clippy::missing_safety_doc, clippy::too_many_arguments)]

use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use libc::{
    epoll_event, fd_set, iovec, mmsghdr, msghdr, nfds_t, off_t, off64_t, pid_t, pollfd, sigset_t,
    size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};

use crate::fdtable::{self, Entry};
use crate::init::IN_SHUNT;
use crate::socket::{MSG_FROM_READ, Served, ShuntSockets, Timeout, sockets};
use crate::{forked, init, real};

/// A C return type and its failure value.
pub trait Ret: Copy {
    const FAIL: Self;
}
impl Ret for c_int {
    const FAIL: Self = -1;
}
impl Ret for ssize_t {
    const FAIL: Self = -1;
}

#[inline]
fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// The answer when libc has no such function.
#[cold]
pub fn enosys<R: Ret>() -> R {
    set_errno(libc::ENOSYS);
    R::FAIL
}

#[cold]
fn ebadf<R: Ret>() -> R {
    set_errno(libc::EBADF);
    R::FAIL
}

/// Call the real function `name` with the arguments as given.
macro_rules! real {
    ($name:ident($($a:expr),* $(,)?)) => {
        match real::$name() {
            // SAFETY: the real libc function, with exactly the arguments
            // the application passed to the hook.
            Some(f) => unsafe { f($($a),*) },
            None => enosys(),
        }
    };
}

/// Run shunt's side of a call: `op` with the registered integration,
/// panics caught. `kernel` runs (once) when there is no integration, when
/// it does not serve the call, or when it panicked.
#[cold]
#[inline(never)]
fn served<R: Ret>(
    op: impl FnOnce(&'static dyn ShuntSockets) -> Served<R>,
    kernel: impl FnOnce() -> R,
) -> R {
    let Some(s) = sockets() else {
        return kernel();
    };
    if crate::engine::holds_lock() {
        // Re-entered from a signal handler that interrupted shunt code
        // holding the stack's lock on this thread: waiting for it would
        // deadlock. The kernel socket answers instead.
        return kernel();
    }
    let was = IN_SHUNT.with(|c| c.replace(true));
    let r = catch_unwind(AssertUnwindSafe(|| op(s)));
    IN_SHUNT.with(|c| c.set(was));
    match r {
        Ok(Some(Ok(v))) => v,
        Ok(Some(Err(e))) => {
            set_errno(e.raw_os_error());
            R::FAIL
        }
        Ok(None) | Err(_) => kernel(),
    }
}

/// Run `f` with panics caught; on a panic, `fallback`.
#[cold]
fn guarded<T>(f: impl FnOnce() -> T, fallback: impl FnOnce() -> T) -> T {
    if crate::engine::holds_lock() {
        // Re-entered from a signal handler (see `served`).
        return fallback();
    }
    let was = IN_SHUNT.with(|c| c.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_SHUNT.with(|c| c.set(was));
    r.unwrap_or_else(|_| fallback())
}

/// A hook on one fd: kernel path inline, shunt path cold. `$shunt` is the
/// body run for a shunt socket, with the integration as `$s` and the id as
/// `$id`; shunt's own fds answer EBADF (the program never opened them);
/// other kinds (an epoll fd) go to the kernel.
macro_rules! fd_hook {
    (
        $(#[$m:meta])*
        fn $name:ident($fd:ident: c_int $(, $a:ident: $t:ty)* $(,)?) -> $ret:ty;
        |$s:ident, $id:ident| $shunt:expr
    ) => {
        $(#[$m])*
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($fd: c_int $(, $a: $t)*) -> $ret {
            let e = fdtable::get($fd);
            if e == 0 {
                return real!($name($fd $(, $a)*));
            }
            #[cold]
            #[inline(never)]
            fn shunt_path(e: u32, $fd: c_int $(, $a: $t)*) -> $ret {
                match Entry::decode(e) {
                    // A forked child relays the connection through its
                    // parent, then the call is the kernel's.
                    Entry::Socket(id) if forked::in_child() => {
                        guarded(|| forked::first_use(stringify!($name), $fd, id), || ());
                        real!($name($fd $(, $a)*))
                    }
                    Entry::Socket($id) => served(|$s| $shunt, || real!($name($fd $(, $a)*))),
                    Entry::Internal(_) => ebadf(),
                    Entry::Kernel | Entry::Epoll(_) => real!($name($fd $(, $a)*)),
                }
            }
            shunt_path(e, $fd $(, $a)*)
        }
    };
}

/// A hook on one fd whose answer a forked child must get from shunt even
/// after the fd became a relay (crate::forked): like [`fd_hook`], and
/// `$child` answers in a child, for an inherited socket or a relay (`$t`,
/// a [`forked::Target`]). The kernel path costs one more load.
macro_rules! meta_hook {
    (
        fn $name:ident($fd:ident: c_int $(, $a:ident: $ty:ty)* $(,)?) -> $ret:ty;
        |$s:ident, $id:ident| $shunt:expr;
        child |$t:ident| $child:expr
    ) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($fd: c_int $(, $a: $ty)*) -> $ret {
            let e = fdtable::get($fd);
            if e == 0 && !forked::has_relays() {
                return real!($name($fd $(, $a)*));
            }
            #[cold]
            #[inline(never)]
            fn shunt_path(e: u32, $fd: c_int $(, $a: $ty)*) -> $ret {
                let target = match Entry::decode(e) {
                    Entry::Socket(id) if forked::in_child() => Some(forked::target($fd, id)),
                    Entry::Kernel => forked::converted($fd).map(|c| forked::Target { id: c.id, conv: Some(c) }),
                    _ => None,
                };
                if let Some($t) = target {
                    return guarded(|| $child, || real!($name($fd $(, $a)*)));
                }
                match Entry::decode(e) {
                    Entry::Socket($id) => served(|$s| $shunt, || real!($name($fd $(, $a)*))),
                    Entry::Internal(_) => ebadf(),
                    Entry::Kernel | Entry::Epoll(_) => real!($name($fd $(, $a)*)),
                }
            }
            shunt_path(e, $fd $(, $a)*)
        }
    };
}

// --- sockets ----------------------------------------------------------------

/// socket(2): non-INET families go straight to the kernel; the first INET
/// socket starts shunt (lazily, once per process).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    if (domain == libc::AF_INET || domain == libc::AF_INET6) && init::stack_active() {
        return socket_shunt(domain, ty, protocol);
    }
    real!(socket(domain, ty, protocol))
}

#[cold]
#[inline(never)]
fn socket_shunt(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let fd: c_int = real!(socket(domain, ty, protocol));
    if fd < 0 {
        return fd;
    }
    if forked::in_child() {
        // A forked child's own sockets: the kernel's, unless they connect
        // through shunt's interface (then the parent makes the connection).
        guarded(|| forked::open(fd, domain, ty, protocol), || ());
        return fd;
    }
    if let Some(s) = sockets() {
        // The integration marks the fd itself when it takes it; a panic
        // leaves the socket with the kernel.
        guarded(|| s.open(fd, domain, ty, protocol), || None);
    }
    fd
}

/// socketpair(2) is AF_UNIX only on Linux: always the kernel's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    sv: *mut c_int,
) -> c_int {
    real!(socketpair(domain, ty, protocol, sv))
}

fd_hook! {
    fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.bind(id, fd, addr, len) }
}
fd_hook! {
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    |s, id| s.listen(id, fd, backlog)
}
/// accept(2). In a forked child, an inherited listener's connections come
/// from the parent (crate::forked::accept).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let e = fdtable::get(fd);
    if e == 0 {
        return real!(accept(fd, addr, len));
    }
    accept_shunt(e, fd, addr, len, None)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let e = fdtable::get(fd);
    if e == 0 {
        return real!(accept4(fd, addr, len, flags));
    }
    accept_shunt(e, fd, addr, len, Some(flags))
}

#[cold]
#[inline(never)]
fn accept_shunt(
    e: u32,
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: Option<c_int>,
) -> c_int {
    let kernel = || -> c_int {
        match flags {
            None => real!(accept(fd, addr, len)),
            Some(f) => real!(accept4(fd, addr, len, f)),
        }
    };
    match Entry::decode(e) {
        Entry::Socket(id) if forked::in_child() => guarded(
            // SAFETY: the application's arguments, passed on as given.
            || unsafe { forked::accept(fd, id, addr, len, flags.unwrap_or(0)) },
            || None,
        )
        .unwrap_or_else(kernel),
        Entry::Socket(id) => served(
            // SAFETY: the application's arguments, passed on as given.
            |s| unsafe { s.accept(id, fd, addr, len, flags.unwrap_or(0)) },
            kernel,
        ),
        Entry::Internal(_) => ebadf(),
        Entry::Kernel | Entry::Epoll(_) => kernel(),
    }
}
/// connect(2). In a forked child, a socket it made itself connects
/// through the parent's stack (crate::forked::connect).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let e = fdtable::get(fd);
    if e == 0 {
        return real!(connect(fd, addr, len));
    }
    connect_shunt(e, fd, addr, len)
}

#[cold]
#[inline(never)]
fn connect_shunt(e: u32, fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    match Entry::decode(e) {
        Entry::Socket(id) if forked::in_child() => guarded(
            // SAFETY: the application's arguments, passed on as given.
            || unsafe { forked::connect(fd, id, addr, len) },
            || None,
        )
        .unwrap_or_else(|| real!(connect(fd, addr, len))),
        // SAFETY: the application's arguments, passed on as given.
        Entry::Socket(id) => served(
            |s| unsafe { s.connect(id, fd, addr, len) },
            || real!(connect(fd, addr, len)),
        ),
        Entry::Internal(_) => ebadf(),
        Entry::Kernel | Entry::Epoll(_) => real!(connect(fd, addr, len)),
    }
}
meta_hook! {
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.getsockname(id, fd, addr, len) };
    // SAFETY: as above.
    child |t| unsafe { forked::name(&t, false, addr, len) }.unwrap_or_else(|| real!(getsockname(forked::option_fd(&t, fd), addr, len)))
}
meta_hook! {
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.getpeername(id, fd, addr, len) };
    // SAFETY: as above.
    child |t| unsafe { forked::name(&t, true, addr, len) }.unwrap_or_else(|| real!(getpeername(forked::option_fd(&t, fd), addr, len)))
}
meta_hook! {
    fn getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.getsockopt(id, fd, level, name, val, len) };
    child |t| real!(getsockopt(forked::option_fd(&t, fd), level, name, val, len))
}
meta_hook! {
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.setsockopt(id, fd, level, name, val, len) };
    child |t| {
        let r: c_int = real!(setsockopt(forked::option_fd(&t, fd), level, name, val, len));
        if r == 0 && t.conv.is_some() && forked::relay_option(level, name) {
            // The relay itself blocks the child's calls: it times them too.
            let _: c_int = real!(setsockopt(fd, level, name, val, len));
        }
        r
    }
}
meta_hook! {
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    |s, id| s.shutdown(id, fd, how);
    child |t| forked::shutdown(&t, fd, how)
}

// --- data -------------------------------------------------------------------

/// A `msghdr` over one buffer, for the calls that have none.
fn msg1(iov: &mut iovec, name: *mut sockaddr, namelen: socklen_t) -> msghdr {
    // SAFETY: msghdr is plain old data; all-zero is valid (no name, no
    // control), then the fields we need are set.
    let mut m: msghdr = unsafe { core::mem::zeroed() };
    m.msg_name = name.cast();
    m.msg_namelen = namelen;
    m.msg_iov = iov;
    m.msg_iovlen = 1;
    m
}

fn msgv(iov: *const iovec, iovcnt: c_int) -> msghdr {
    // SAFETY: as in msg1.
    let mut m: msghdr = unsafe { core::mem::zeroed() };
    m.msg_iov = iov.cast_mut();
    // A negative count stays huge, which the integration refuses with
    // EINVAL as Linux does.
    m.msg_iovlen = iovcnt as usize;
    m
}

/// recv into one buffer, with an optional source address.
///
/// # Safety
/// Arguments as the application passed them.
unsafe fn recv_one(
    s: &dyn ShuntSockets,
    id: u32,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> Served<ssize_t> {
    let mut iov = iovec {
        iov_base: buf,
        iov_len: len,
    };
    let (name, namelen) = if addr.is_null() || addrlen.is_null() {
        (core::ptr::null_mut(), 0)
    } else {
        // SAFETY: the application's non-null addrlen.
        (addr, unsafe { addrlen.read() })
    };
    let mut m = msg1(&mut iov, name, namelen);
    // SAFETY: the msghdr points at the application's buffers.
    let r = unsafe { s.recvmsg(id, fd, &mut m, flags) };
    if matches!(r, Some(Ok(_))) && !name.is_null() {
        // SAFETY: as above.
        unsafe { addrlen.write(m.msg_namelen) };
    }
    r
}

/// send from one buffer, with an optional destination.
fn send_one(
    s: &dyn ShuntSockets,
    id: u32,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> Served<ssize_t> {
    let mut iov = iovec {
        iov_base: buf.cast_mut(),
        iov_len: len,
    };
    let m = msg1(&mut iov, addr.cast_mut(), addrlen);
    // SAFETY: the msghdr points at the application's buffers.
    unsafe { s.sendmsg(id, fd, &m, flags) }
}

fd_hook! {
    fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { recv_one(s, id, fd, buf, count, MSG_FROM_READ, core::ptr::null_mut(), core::ptr::null_mut()) }
}
fd_hook! {
    fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t;
    |s, id| send_one(s, id, fd, buf, count, 0, core::ptr::null(), 0)
}
fd_hook! {
    fn readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t;
    // SAFETY: the application's iovec array, passed on as given.
    |s, id| unsafe { s.recvmsg(id, fd, &mut msgv(iov, iovcnt), MSG_FROM_READ) }
}
fd_hook! {
    fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t;
    // SAFETY: the application's iovec array, passed on as given.
    |s, id| unsafe { s.sendmsg(id, fd, &msgv(iov, iovcnt), 0) }
}
fd_hook! {
    fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    |s, id| send_one(s, id, fd, buf, len, flags, core::ptr::null(), 0)
}
fd_hook! {
    fn sendto(fd: c_int, buf: *const c_void, len: size_t, flags: c_int, addr: *const sockaddr, addrlen: socklen_t) -> ssize_t;
    |s, id| send_one(s, id, fd, buf, len, flags, addr, addrlen)
}
fd_hook! {
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.sendmsg(id, fd, msg, flags) }
}
fd_hook! {
    fn sendmmsg(fd: c_int, msgs: *mut mmsghdr, vlen: c_uint, flags: c_int) -> c_int;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.sendmmsg(id, fd, msgs, vlen, flags) }
}
fd_hook! {
    fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { recv_one(s, id, fd, buf, len, flags, core::ptr::null_mut(), core::ptr::null_mut()) }
}
fd_hook! {
    fn recvfrom(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { recv_one(s, id, fd, buf, len, flags, addr, addrlen) }
}
fd_hook! {
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.recvmsg(id, fd, msg, flags) }
}
fd_hook! {
    fn recvmmsg(fd: c_int, msgs: *mut mmsghdr, vlen: c_uint, flags: c_int, timeout: *mut timespec) -> c_int;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.recvmmsg(id, fd, msgs, vlen, flags, timeout) }
}

// Fortified variants (_FORTIFY_SOURCE): glibc's versions call its internal
// read/recv/poll, which no preload sees, so they are hooked too. On the
// shunt path a failed size check goes to the real function, which aborts
// with glibc's message.

fd_hook! {
    fn __read_chk(fd: c_int, buf: *mut c_void, nbytes: size_t, buflen: size_t) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| if nbytes > buflen { None } else { unsafe { recv_one(s, id, fd, buf, nbytes, MSG_FROM_READ, core::ptr::null_mut(), core::ptr::null_mut()) } }
}
fd_hook! {
    fn __recv_chk(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| if len > buflen { None } else { unsafe { recv_one(s, id, fd, buf, len, flags, core::ptr::null_mut(), core::ptr::null_mut()) } }
}
fd_hook! {
    fn __recvfrom_chk(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| if len > buflen { None } else { unsafe { recv_one(s, id, fd, buf, len, flags, addr, addrlen) } }
}

/// `FD_SET`'s bounds check: fd numbers are the kernel's, so it is glibc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __fdelt_chk(d: c_long) -> c_long {
    match real::__fdelt_chk() {
        // SAFETY: the real function with the application's argument.
        Some(f) => unsafe { f(d) },
        // Without glibc's check, compute what it returns.
        None => d / (8 * core::mem::size_of::<c_ulong>() as c_long),
    }
}

fd_hook! {
    fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t;
    // SAFETY: the application's arguments; off_t is off64_t on x86_64.
    |s, id| unsafe { s.sendfile(id, out_fd, in_fd, offset, count) }
}
fd_hook! {
    fn sendfile64(out_fd: c_int, in_fd: c_int, offset: *mut off64_t, count: size_t) -> ssize_t;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.sendfile(id, out_fd, in_fd, offset, count) }
}

// --- descriptors --------------------------------------------------------------

/// close(2): a shunt socket drops this fd's reference, then the table entry
/// is cleared and the kernel fd closed (always, even if shunt panicked).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let e = fdtable::get(fd);
    if e == 0 {
        return real!(close(fd));
    }
    close_shunt(e, fd)
}

#[cold]
#[inline(never)]
fn close_shunt(e: u32, fd: c_int) -> c_int {
    match Entry::decode(e) {
        Entry::Socket(id) => {
            drop_fd(id, fd);
            fdtable::clear(fd);
        }
        Entry::Epoll(_) => {
            fdtable::clear(fd);
        }
        Entry::Internal(_) => return ebadf(),
        Entry::Kernel => {}
    }
    real!(close(fd))
}

/// `fd`, a name of shunt socket `id`, goes away: drop its reference (in
/// a forked child, the child's hold on the parent's socket).
fn drop_fd(id: u32, fd: c_int) {
    if forked::in_child() {
        guarded(|| forked::close(fd, id), || ());
    } else if let Some(s) = sockets() {
        guarded(|| s.close(id, fd), || ());
    }
}

/// close_range(2): while no fd is shunt's, the kernel's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if fdtable::all_kernel() && !fdtable::has_internal() {
        return real!(close_range(first, last, flags));
    }
    close_range_shunt(first, last, flags)
}

#[cold]
#[inline(never)]
fn close_range_shunt(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if first > last {
        return real!(close_range(first, last, flags));
    }
    let top = last.min(fdtable::high_water());
    let cloexec = flags & (libc::CLOSE_RANGE_CLOEXEC as c_int) != 0;
    // Shunt's own fds are not the program's to close: close around them.
    let mut from = first;
    let mut fd = first;
    while fd <= top {
        match fdtable::lookup(fd as c_int) {
            Entry::Internal(_) => {
                if fd > from {
                    let r: c_int = real!(close_range(from, fd - 1, flags));
                    if r != 0 {
                        return r;
                    }
                }
                from = fd + 1;
            }
            Entry::Socket(id) if !cloexec => {
                drop_fd(id, fd as c_int);
                fdtable::clear(fd as c_int);
            }
            Entry::Epoll(_) if !cloexec => {
                fdtable::clear(fd as c_int);
            }
            _ => {}
        }
        if fd == c_uint::MAX {
            break;
        }
        fd += 1;
    }
    if from > last {
        return 0;
    }
    real!(close_range(from, last, flags))
}

/// After the kernel made `newfd` a copy of `oldfd`'s socket: share it.
fn dup_done(old: Entry, newfd: c_int) {
    if let Entry::Socket(id) = old {
        if let Some(s) = sockets() {
            guarded(|| s.duplicated(id, newfd), || ());
        }
        fdtable::set(newfd, old);
    }
}

/// Before the kernel silently closes `fd` (dup2/dup3 onto it).
fn implicit_close(fd: c_int) {
    match fdtable::lookup(fd) {
        Entry::Socket(id) => {
            drop_fd(id, fd);
            fdtable::clear(fd);
        }
        Entry::Epoll(_) => {
            fdtable::clear(fd);
        }
        // The integration moves its own fds out of the way before this
        // can matter (not needed while it has none).
        Entry::Internal(_) | Entry::Kernel => {}
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let e = fdtable::get(fd);
    if e == 0 {
        return real!(dup(fd));
    }
    dup_shunt(e, fd)
}

#[cold]
#[inline(never)]
fn dup_shunt(e: u32, fd: c_int) -> c_int {
    let old = Entry::decode(e);
    if let Entry::Internal(_) = old {
        return ebadf();
    }
    let newfd: c_int = real!(dup(fd));
    if newfd >= 0 {
        dup_done(old, newfd);
    }
    newfd
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(oldfd: c_int, newfd: c_int) -> c_int {
    if fdtable::get(oldfd) | fdtable::get(newfd) == 0 {
        return real!(dup2(oldfd, newfd));
    }
    dup23_shunt(oldfd, newfd, None)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    if fdtable::get(oldfd) | fdtable::get(newfd) == 0 {
        return real!(dup3(oldfd, newfd, flags));
    }
    dup23_shunt(oldfd, newfd, Some(flags))
}

#[cold]
#[inline(never)]
fn dup23_shunt(oldfd: c_int, newfd: c_int, flags: Option<c_int>) -> c_int {
    let old = fdtable::lookup(oldfd);
    if let Entry::Internal(_) = old {
        return ebadf();
    }
    let call = || -> c_int {
        match flags {
            None => real!(dup2(oldfd, newfd)),
            Some(f) => real!(dup3(oldfd, newfd, f)),
        }
    };
    if oldfd == newfd {
        // dup2: a no-op on a valid fd; dup3: EINVAL. Nothing changes.
        return call();
    }
    // Validate oldfd first (dup2 on a bad oldfd must not close newfd).
    // SAFETY: F_GETFD through the real fcntl only reads the fd's flags.
    if real!(fcntl(oldfd, libc::F_GETFD, 0)) < 0 {
        return -1;
    }
    implicit_close(newfd);
    let r = call();
    if r >= 0 {
        dup_done(old, r);
    }
    r
}

/// fcntl(2), read as `(fd, cmd, arg)`: the third argument of every
/// command is an int or a pointer, both passed in the same register.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    let e = fdtable::get(fd);
    if e == 0 {
        return real!(fcntl(fd, cmd, arg));
    }
    fcntl_shunt(e, fd, cmd, arg, false)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    let e = fdtable::get(fd);
    if e == 0 {
        return real!(fcntl64(fd, cmd, arg));
    }
    fcntl_shunt(e, fd, cmd, arg, true)
}

#[cold]
#[inline(never)]
fn fcntl_shunt(e: u32, fd: c_int, cmd: c_int, arg: usize, is64: bool) -> c_int {
    let kernel = || -> c_int {
        if is64 {
            real!(fcntl64(fd, cmd, arg))
        } else {
            real!(fcntl(fd, cmd, arg))
        }
    };
    match Entry::decode(e) {
        Entry::Internal(_) => ebadf(),
        Entry::Socket(id) => {
            if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
                let newfd = kernel();
                if newfd >= 0 {
                    dup_done(Entry::Socket(id), newfd);
                }
                return newfd;
            }
            if forked::in_child() {
                // Relayed first, so that F_SETFL reaches the relay.
                guarded(|| forked::first_use("fcntl", fd, id), || ());
                return kernel();
            }
            served(|s| s.fcntl(id, fd, cmd, arg), kernel)
        }
        Entry::Kernel | Entry::Epoll(_) => kernel(),
    }
}

fd_hook! {
    /// ioctl(2), read as `(fd, request, arg)` like fcntl.
    fn ioctl(fd: c_int, request: c_ulong, arg: usize) -> c_int;
    // SAFETY: the application's arguments, passed on as given.
    |s, id| unsafe { s.ioctl(id, fd, request, arg) }
}

// --- readiness ----------------------------------------------------------------

fn ms_timeout(ms: c_int) -> Timeout {
    (ms >= 0).then(|| core::time::Duration::from_millis(ms as u64))
}

/// A timespec timeout (null: for ever); `Err` is EINVAL as Linux.
///
/// # Safety
/// `ts` is null or the application's pointer.
unsafe fn ts_timeout(ts: *const timespec) -> Result<Timeout, crate::socket::Errno> {
    if ts.is_null() {
        return Ok(None);
    }
    // SAFETY: the application's non-null pointer.
    let t = unsafe { ts.read() };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return Err(crate::socket::Errno::INVAL);
    }
    Ok(Some(core::time::Duration::new(
        t.tv_sec as u64,
        t.tv_nsec as u32,
    )))
}

/// Whether any fd of a pollfd array is a shunt socket.
///
/// # Safety
/// `fds` points at `nfds` pollfds (as the application promised).
unsafe fn poll_has_shunt(fds: *const pollfd, nfds: nfds_t) -> bool {
    if fds.is_null() {
        return false;
    }
    (0..nfds as usize).any(|i| {
        // SAFETY: within the application's array.
        let fd = unsafe { (*fds.add(i)).fd };
        matches!(fdtable::lookup(fd), Entry::Socket(_) | Entry::Epoll(_))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    if fdtable::all_kernel() {
        return real!(poll(fds, nfds, timeout));
    }
    poll_shunt(fds, nfds, timeout)
}

#[cold]
#[inline(never)]
fn poll_shunt(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the application's array and count.
    if !unsafe { poll_has_shunt(fds, nfds) } || unsafe { child_adopt_pollfds(fds, nfds) } {
        return real!(poll(fds, nfds, timeout));
    }
    served(
        // SAFETY: the application's arguments, passed on as given.
        |s| Some(unsafe { s.poll(fds, nfds, ms_timeout(timeout), core::ptr::null()) }),
        || real!(poll(fds, nfds, timeout)),
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if fdtable::all_kernel() {
        return real!(__poll_chk(fds, nfds, timeout, fdslen));
    }
    poll_chk_shunt(fds, nfds, timeout, fdslen)
}

#[cold]
#[inline(never)]
fn poll_chk_shunt(fds: *mut pollfd, nfds: nfds_t, timeout: c_int, fdslen: size_t) -> c_int {
    let fits = (fdslen / core::mem::size_of::<pollfd>()) as u64 >= nfds;
    // SAFETY: the application's array and count (checked against its size).
    if !fits || !unsafe { poll_has_shunt(fds, nfds) } {
        return real!(__poll_chk(fds, nfds, timeout, fdslen));
    }
    poll_shunt(fds, nfds, timeout)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    ts: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    if fdtable::all_kernel() {
        return real!(ppoll(fds, nfds, ts, sigmask));
    }
    ppoll_shunt(fds, nfds, ts, sigmask, None)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    ts: *const timespec,
    sigmask: *const sigset_t,
    fdslen: size_t,
) -> c_int {
    if fdtable::all_kernel() {
        return real!(__ppoll_chk(fds, nfds, ts, sigmask, fdslen));
    }
    ppoll_shunt(fds, nfds, ts, sigmask, Some(fdslen))
}

#[cold]
#[inline(never)]
fn ppoll_shunt(
    fds: *mut pollfd,
    nfds: nfds_t,
    ts: *const timespec,
    sigmask: *const sigset_t,
    fdslen: Option<size_t>,
) -> c_int {
    let kernel = || -> c_int {
        match fdslen {
            None => real!(ppoll(fds, nfds, ts, sigmask)),
            Some(l) => real!(__ppoll_chk(fds, nfds, ts, sigmask, l)),
        }
    };
    let fits = fdslen.is_none_or(|l| (l / core::mem::size_of::<pollfd>()) as u64 >= nfds);
    // SAFETY: the application's array and count (checked when fortified).
    if !fits || !unsafe { poll_has_shunt(fds, nfds) } || unsafe { child_adopt_pollfds(fds, nfds) } {
        return kernel();
    }
    served(
        // SAFETY: the application's arguments, passed on as given.
        |s| Some(unsafe { ts_timeout(ts) }.and_then(|t| unsafe { s.poll(fds, nfds, t, sigmask) })),
        kernel,
    )
}

/// In a forked child: relay the inherited connections of a pollfd array
/// (crate::forked); true when the call is then the kernel's.
///
/// # Safety
/// `fds` points at `nfds` pollfds (as the application promised).
unsafe fn child_adopt_pollfds(fds: *const pollfd, nfds: nfds_t) -> bool {
    if !forked::in_child() {
        return false;
    }
    for i in 0..nfds as usize {
        // SAFETY: within the application's array.
        let p = unsafe { fds.add(i).read() };
        if let Entry::Socket(id) = fdtable::lookup(p.fd) {
            let reads = p.events & libc::POLLIN != 0;
            guarded(|| forked::adopt(p.fd, id, reads), || ());
        }
    }
    true
}

/// In a forked child: relay the inherited connections of select's sets;
/// true when the call is then the kernel's.
///
/// # Safety
/// Each set is null or the application's fd_set.
unsafe fn child_adopt_sets(nfds: c_int, sets: [*mut fd_set; 3]) -> bool {
    if !forked::in_child() {
        return false;
    }
    for fd in 0..nfds.clamp(0, libc::FD_SETSIZE as c_int) {
        if let Entry::Socket(id) = fdtable::lookup(fd)
            // SAFETY: a non-null application fd_set; fd < FD_SETSIZE.
            && sets.iter().any(|&set| !set.is_null() && unsafe { libc::FD_ISSET(fd, set) })
        {
            // SAFETY: as above.
            let reads = !sets[0].is_null() && unsafe { libc::FD_ISSET(fd, sets[0]) };
            guarded(|| forked::adopt(fd, id, reads), || ());
        }
    }
    true
}

/// Whether any fd below `nfds` in the three sets is a shunt socket.
///
/// # Safety
/// Each set is null or the application's fd_set.
unsafe fn select_has_shunt(nfds: c_int, sets: [*mut fd_set; 3]) -> bool {
    let n = nfds.clamp(0, libc::FD_SETSIZE as c_int);
    (0..n).any(|fd| {
        matches!(fdtable::lookup(fd), Entry::Socket(_))
            && sets.iter().any(|&set| {
                // SAFETY: a non-null application fd_set; fd < FD_SETSIZE.
                !set.is_null() && unsafe { libc::FD_ISSET(fd, set) }
            })
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn select(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    if fdtable::all_kernel() {
        return real!(select(nfds, readfds, writefds, exceptfds, timeout));
    }
    select_shunt(nfds, readfds, writefds, exceptfds, timeout)
}

#[cold]
#[inline(never)]
fn select_shunt(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    let kernel = || -> c_int { real!(select(nfds, readfds, writefds, exceptfds, timeout)) };
    let sets = [readfds, writefds, exceptfds];
    // SAFETY: the application's sets.
    if !unsafe { select_has_shunt(nfds, sets) } || unsafe { child_adopt_sets(nfds, sets) } {
        return kernel();
    }
    served(
        |s| {
            let t = if timeout.is_null() {
                None
            } else {
                // SAFETY: the application's non-null timeval.
                let tv = unsafe { timeout.read() };
                if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
                    return Some(Err(crate::socket::Errno::INVAL));
                }
                Some(core::time::Duration::new(
                    tv.tv_sec as u64,
                    tv.tv_usec as u32 * 1000,
                ))
            };
            // SAFETY: the application's arguments, passed on as given.
            let r = unsafe { s.select(nfds, readfds, writefds, exceptfds, t, core::ptr::null()) };
            Some(r.map(|(n, left)| {
                if let (false, Some(left)) = (timeout.is_null(), left) {
                    // Linux writes back the time not slept.
                    // SAFETY: the application's non-null timeval.
                    unsafe {
                        timeout.write(timeval {
                            tv_sec: left.as_secs() as _,
                            tv_usec: left.subsec_micros() as _,
                        })
                    };
                }
                n
            }))
        },
        kernel,
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    ts: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    if fdtable::all_kernel() {
        return real!(pselect(nfds, readfds, writefds, exceptfds, ts, sigmask));
    }
    pselect_shunt(nfds, readfds, writefds, exceptfds, ts, sigmask)
}

#[cold]
#[inline(never)]
fn pselect_shunt(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    ts: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    let kernel = || -> c_int { real!(pselect(nfds, readfds, writefds, exceptfds, ts, sigmask)) };
    let sets = [readfds, writefds, exceptfds];
    // SAFETY: the application's sets.
    if !unsafe { select_has_shunt(nfds, sets) } || unsafe { child_adopt_sets(nfds, sets) } {
        return kernel();
    }
    served(
        |s| {
            // SAFETY: the application's arguments, passed on as given.
            Some(unsafe { ts_timeout(ts) }.and_then(|t| unsafe {
                s.select(nfds, readfds, writefds, exceptfds, t, sigmask)
                    .map(|(n, _)| n)
            }))
        },
        kernel,
    )
}

/// A new epoll instance watches nothing: the kernel's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_create(size: c_int) -> c_int {
    real!(epoll_create(size))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_create1(flags: c_int) -> c_int {
    real!(epoll_create1(flags))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    event: *mut epoll_event,
) -> c_int {
    if fdtable::get(epfd) | fdtable::get(fd) == 0 {
        return real!(epoll_ctl(epfd, op, fd, event));
    }
    epoll_ctl_shunt(epfd, op, fd, event)
}

#[cold]
#[inline(never)]
fn epoll_ctl_shunt(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int {
    let kernel = || -> c_int { real!(epoll_ctl(epfd, op, fd, event)) };
    if forked::in_child() {
        // The parent's epoll bookkeeping is not the child's: relay the
        // connection and let the kernel watch it.
        if let Entry::Socket(id) = fdtable::lookup(fd) {
            // SAFETY: the application's event, read when non-null.
            let reads = !event.is_null()
                && unsafe { event.read_unaligned() }.events & libc::EPOLLIN as u32 != 0;
            guarded(|| forked::adopt(fd, id, reads), || ());
        }
        return match (fdtable::lookup(epfd), fdtable::lookup(fd)) {
            (Entry::Internal(_), _) | (_, Entry::Internal(_)) => ebadf(),
            _ => kernel(),
        };
    }
    match (fdtable::lookup(epfd), fdtable::lookup(fd)) {
        (Entry::Internal(_), _) | (_, Entry::Internal(_)) => ebadf(),
        (Entry::Kernel, Entry::Kernel | Entry::Epoll(_)) => kernel(),
        // SAFETY: the application's arguments, passed on as given.
        _ => served(
            |s| Some(unsafe { s.epoll_ctl(epfd, op, fd, event) }),
            kernel,
        ),
    }
}

/// The three epoll waits: `Kernel` entries pass through; a shunt epoll
/// goes to the integration.
fn epoll_wait_shunt(
    e: u32,
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: Result<Timeout, crate::socket::Errno>,
    sigmask: *const sigset_t,
    kernel: impl FnOnce() -> c_int,
) -> c_int {
    match Entry::decode(e) {
        // A child never waits on the parent's stack: the kernel part only.
        Entry::Epoll(_) if forked::in_child() => kernel(),
        Entry::Epoll(ep) => {
            served(
                // SAFETY: the application's arguments, passed on as given.
                |s| {
                    Some(timeout.and_then(|t| unsafe {
                        s.epoll_wait(ep, epfd, events, maxevents, t, sigmask)
                    }))
                },
                kernel,
            )
        }
        Entry::Internal(_) => ebadf(),
        Entry::Kernel | Entry::Socket(_) => kernel(),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    let e = fdtable::get(epfd);
    if e == 0 {
        return real!(epoll_wait(epfd, events, maxevents, timeout));
    }
    epoll_wait_shunt(
        e,
        epfd,
        events,
        maxevents,
        Ok(ms_timeout(timeout)),
        core::ptr::null(),
        || real!(epoll_wait(epfd, events, maxevents, timeout)),
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const sigset_t,
) -> c_int {
    let e = fdtable::get(epfd);
    if e == 0 {
        return real!(epoll_pwait(epfd, events, maxevents, timeout, sigmask));
    }
    epoll_wait_shunt(
        e,
        epfd,
        events,
        maxevents,
        Ok(ms_timeout(timeout)),
        sigmask,
        || real!(epoll_pwait(epfd, events, maxevents, timeout, sigmask)),
    )
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    ts: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    let e = fdtable::get(epfd);
    if e == 0 {
        return real!(epoll_pwait2(epfd, events, maxevents, ts, sigmask));
    }
    // SAFETY: the application's timeout pointer.
    let t = unsafe { ts_timeout(ts) };
    epoll_wait_shunt(e, epfd, events, maxevents, t, sigmask, || {
        real!(epoll_pwait2(epfd, events, maxevents, ts, sigmask))
    })
}

// --- processes ----------------------------------------------------------------

/// fork(2): the real fork. Shunt's fork work runs in the pthread_atfork
/// handlers the constructor registers, so forks that libc makes
/// internally (daemon, forkpty) are covered too; this hook exists so the
/// set of entry points is complete and `vfork` has a fork to become.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fork() -> pid_t {
    real!(fork())
}

/// What vfork becomes while shunt has sockets: a child that shares our
/// memory could close or write shunt sockets through the hooks and corrupt
/// the parent's stack, so it gets a copy instead (libvma and Onload's
/// default do the same). `fork` returns normally in both processes, so
/// this plain function is fine.
extern "C" fn vfork_as_fork() -> pid_t {
    real!(fork())
}

/// vfork(2). A vfork child must not return from the function that called
/// vfork, and a wrapper's frame would be exactly that; so this is a naked
/// function that makes no frame: while no fd is shunt's it *jumps* to
/// glibc's vfork (which then returns straight to our caller, in parent and
/// child alike), and otherwise jumps to `vfork_as_fork`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn vfork() -> pid_t {
    core::arch::naked_asm!(
        "mov rax, qword ptr [rip + {shunt_fds}]",
        "test rax, rax",
        "jnz 2f",
        "mov rax, qword ptr [rip + {real_vfork}]",
        "test rax, rax",
        "jz 2f",
        "jmp rax",
        "2:",
        "jmp {as_fork}",
        shunt_fds = sym fdtable::SHUNT_FDS,
        real_vfork = sym real::slot::vfork,
        as_fork = sym vfork_as_fork,
    )
}

#[inline]
fn before_exec() {
    if !fdtable::all_kernel() {
        before_exec_shunt();
    }
}

#[cold]
#[inline(never)]
fn before_exec_shunt() {
    if forked::in_child() {
        // Inherited connections that survive the exec go on as relays.
        guarded(forked::before_exec, || ());
    } else if let Some(s) = sockets() {
        guarded(|| s.before_exec(), || ());
    }
}

/// execve and friends pass the environment on exactly as the program gives
/// it: a program that clears its child's environment (env -i, sudo-like
/// tools) expects the child not to see LD_PRELOAD, and "the program cannot
/// tell" wins over keeping shunt in every descendant. `shunt run` sets the
/// environment once; children that inherit it keep shunt. Close-on-exec
/// needs no help: every shunt fd is a kernel socket carrying the program's
/// FD_CLOEXEC, so the kernel closes it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    before_exec();
    real!(execve(path, argv, envp))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    before_exec();
    real!(execv(path, argv))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    before_exec();
    real!(execvp(file, argv))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    before_exec();
    real!(execvpe(file, argv, envp))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    before_exec();
    real!(fexecve(fd, argv, envp))
}

/// For the variadic `execl`, `execlp` and `execle` (which is `which`, 0 to
/// 2): run the pre-exec step, and return the real function's address (0 if
/// libc has none). Called from the trampolines below with the caller's
/// argument registers saved.
extern "C" fn exec_prepare(which: usize) -> usize {
    before_exec();
    let f = match which {
        0 => real::execl().map(|f| f as usize),
        1 => real::execlp().map(|f| f as usize),
        _ => real::execle().map(|f| f as usize),
    };
    f.unwrap_or(0)
}

extern "C" fn exec_enosys() -> c_int {
    enosys()
}

/// `execl(path, arg0, ..., NULL)` and friends take a variable argument
/// list, which stable Rust cannot receive. They need no parsing here: a
/// naked trampoline saves the argument registers (and `al`, the vector
/// register count of a variadic call), calls [`exec_prepare`], restores
/// them and jumps to glibc's function with the caller's stack untouched,
/// so the arguments beyond the sixth are where glibc expects them. glibc's
/// own execl calls its internal execve, which no preload sees: without
/// these, a program using execl would skip the pre-exec step.
macro_rules! exec_trampoline {
    ($name:ident, $which:literal) => {
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name() -> c_int {
            core::arch::naked_asm!(
                // Entry: rsp = 8 mod 16; seven pushes make it 0 mod 16.
                "push rdi",
                "push rsi",
                "push rdx",
                "push rcx",
                "push r8",
                "push r9",
                "push rax",
                concat!("mov edi, ", $which),
                "call {prepare}",
                "mov r11, rax",
                "pop rax",
                "pop r9",
                "pop r8",
                "pop rcx",
                "pop rdx",
                "pop rsi",
                "pop rdi",
                "test r11, r11",
                "jz 2f",
                "jmp r11",
                "2:",
                "jmp {enosys}",
                prepare = sym exec_prepare,
                enosys = sym exec_enosys,
            )
        }
    };
}

exec_trampoline!(execl, 0);
exec_trampoline!(execlp, 1);
exec_trampoline!(execle, 2);
