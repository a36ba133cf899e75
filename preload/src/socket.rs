//! The internal API between the hooks and the stack: what the stack
//! integration fills in.
//!
//! The hooks own the C boundary: they look the fd up in [`crate::fdtable`],
//! pass kernel fds straight through, catch panics, and turn a
//! [`SysResult`] into the C return value and `errno`. For a shunt fd they
//! call one method of the registered [`ShuntSockets`] with the socket id
//! from the table and the application's arguments. Each method answers:
//!
//! - `Some(Ok(v))`: done, return `v`;
//! - `Some(Err(e))`: done, fail with `errno = e` (exactly Linux's errno);
//! - `None`: shunt does not serve this call for this socket (it was handed
//!   over to its kernel socket, or the call is one the backing kernel
//!   socket answers by itself, like `F_GETFD`): the hook calls the real
//!   function on the same fd. A method that returns `None` must not have
//!   changed anything the kernel call would then do twice.
//!
//! Invariants the integration keeps:
//! - every shunt fd is a real kernel socket of the same family and type
//!   (it reserves the number and the port, and carries FD_CLOEXEC and
//!   O_NONBLOCK as the program set them through the passed-through fcntl);
//! - it marks fds with [`crate::fdtable::set`] *after* the socket state is
//!   ready, and clears them *before* the kernel fd is closed;
//! - methods never call libc symbols that the shim exports (use rustix or
//!   the pointers in [`crate::real`]);
//! - blocking methods honour O_NONBLOCK, SO_RCVTIMEO/SO_SNDTIMEO, signals
//!   (EINTR, or restart under SA_RESTART) as Linux does.
//!
//! [`crate::sockets`] is the integration; it is registered when the stack
//! starts, so a process without `SHUNT_IFACE` never runs any of this.

use core::ffi::{c_int, c_uint, c_ulong};
use std::sync::OnceLock;

use libc::{
    epoll_event, fd_set, mmsghdr, msghdr, nfds_t, pollfd, sigset_t, sockaddr, socklen_t, timespec,
};
pub use rustix::io::Errno;

/// The id the fd table holds for a shunt socket (dup'd fds share it).
pub type SocketId = u32;
/// The id the fd table holds for an epoll instance with shunt members.
pub type EpollId = u32;

pub type SysResult<T> = Result<T, Errno>;
/// `None`: not served by shunt, let the kernel answer on the same fd.
pub type Served<T> = Option<SysResult<T>>;

/// A timeout as the event calls give it: `None` waits for ever.
pub type Timeout = Option<core::time::Duration>;

/// The stack integration. All pointer arguments are the application's, as
/// it passed them (possibly null or invalid: fail with EFAULT where Linux
/// would). Methods are `unsafe` because they dereference them.
///
/// # Safety
///
/// Implementations must keep the invariants in the module documentation.
#[allow(clippy::missing_safety_doc, clippy::too_many_arguments)]
pub unsafe trait ShuntSockets: Sync {
    /// `socket()` made kernel socket `fd` of an INET family with the stack
    /// running: take it (mark the fd, return its id) or leave it to the
    /// kernel (`None`). `ty` includes SOCK_NONBLOCK/SOCK_CLOEXEC.
    fn open(&self, fd: c_int, domain: c_int, ty: c_int, protocol: c_int) -> Option<SocketId>;

    unsafe fn bind(
        &self,
        id: SocketId,
        fd: c_int,
        addr: *const sockaddr,
        len: socklen_t,
    ) -> Served<c_int>;
    fn listen(&self, id: SocketId, fd: c_int, backlog: c_int) -> Served<c_int>;
    /// accept/accept4 (`flags` 0 for accept): the new fd, marked.
    unsafe fn accept(
        &self,
        id: SocketId,
        fd: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
        flags: c_int,
    ) -> Served<c_int>;
    unsafe fn connect(
        &self,
        id: SocketId,
        fd: c_int,
        addr: *const sockaddr,
        len: socklen_t,
    ) -> Served<c_int>;
    unsafe fn getsockname(
        &self,
        id: SocketId,
        fd: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
    ) -> Served<c_int>;
    unsafe fn getpeername(
        &self,
        id: SocketId,
        fd: c_int,
        addr: *mut sockaddr,
        len: *mut socklen_t,
    ) -> Served<c_int>;
    unsafe fn getsockopt(
        &self,
        id: SocketId,
        fd: c_int,
        level: c_int,
        name: c_int,
        val: *mut core::ffi::c_void,
        len: *mut socklen_t,
    ) -> Served<c_int>;
    unsafe fn setsockopt(
        &self,
        id: SocketId,
        fd: c_int,
        level: c_int,
        name: c_int,
        val: *const core::ffi::c_void,
        len: socklen_t,
    ) -> Served<c_int>;
    fn shutdown(&self, id: SocketId, fd: c_int, how: c_int) -> Served<c_int>;

    /// Every data call lands here: read, recv, recvfrom, readv and the
    /// fortified variants are turned into a `msghdr` by the hook (with
    /// `msg_name` null for read/recv/readv; read and readv add
    /// [`MSG_FROM_READ`] to `flags`). Returns the byte count and fills
    /// `msg_flags`, `msg_namelen`, `msg_controllen` as Linux does.
    unsafe fn recvmsg(
        &self,
        id: SocketId,
        fd: c_int,
        msg: *mut msghdr,
        flags: c_int,
    ) -> Served<isize>;
    /// write, send, sendto, writev likewise.
    unsafe fn sendmsg(
        &self,
        id: SocketId,
        fd: c_int,
        msg: *const msghdr,
        flags: c_int,
    ) -> Served<isize>;
    unsafe fn recvmmsg(
        &self,
        id: SocketId,
        fd: c_int,
        msgs: *mut mmsghdr,
        vlen: c_uint,
        flags: c_int,
        timeout: *mut timespec,
    ) -> Served<c_int>;
    unsafe fn sendmmsg(
        &self,
        id: SocketId,
        fd: c_int,
        msgs: *mut mmsghdr,
        vlen: c_uint,
        flags: c_int,
    ) -> Served<c_int>;
    /// sendfile/sendfile64 with a shunt socket as `out_fd` (`offset` is an
    /// `off64_t` pointer or null).
    unsafe fn sendfile(
        &self,
        id: SocketId,
        out_fd: c_int,
        in_fd: c_int,
        offset: *mut i64,
        count: usize,
    ) -> Served<isize>;

    /// fcntl on a shunt fd: F_GETFL/F_SETFL (O_NONBLOCK), F_DUPFD and
    /// F_DUPFD_CLOEXEC (the new fd shares `id`); `None` for the rest.
    fn fcntl(&self, id: SocketId, fd: c_int, cmd: c_int, arg: usize) -> Served<c_int>;
    /// ioctl on a shunt fd: FIONREAD, FIONBIO, SIOCOUTQ, SIOCATMARK...;
    /// `None` for the rest.
    unsafe fn ioctl(&self, id: SocketId, fd: c_int, request: c_ulong, arg: usize) -> Served<c_int>;

    /// `fd` (marked `id`) is being closed: drop this fd's reference; the
    /// last one closes the socket (FIN/RST as Linux). The hook then clears
    /// the table entry and closes the kernel fd itself.
    fn close(&self, id: SocketId, fd: c_int);
    /// `newfd` now refers to `id` too (dup, dup2, dup3, F_DUPFD*): the
    /// hook made the kernel duplicate; this takes a reference.
    fn duplicated(&self, id: SocketId, newfd: c_int);

    /// poll/ppoll/__poll_chk over a set with at least one shunt fd.
    unsafe fn poll(
        &self,
        fds: *mut pollfd,
        nfds: nfds_t,
        timeout: Timeout,
        sigmask: *const sigset_t,
    ) -> SysResult<c_int>;
    /// select/pselect over sets with at least one shunt fd. `timeout` is
    /// updated by the caller for select (Linux writes the time left).
    unsafe fn select(
        &self,
        nfds: c_int,
        read: *mut fd_set,
        write: *mut fd_set,
        except: *mut fd_set,
        timeout: Timeout,
        sigmask: *const sigset_t,
    ) -> SysResult<(c_int, Timeout)>;
    /// epoll_ctl where `fd` is a shunt socket or `epfd` is a shunt epoll.
    unsafe fn epoll_ctl(
        &self,
        epfd: c_int,
        op: c_int,
        fd: c_int,
        event: *mut epoll_event,
    ) -> SysResult<c_int>;
    /// epoll_wait and friends on an epoll fd marked `ep`.
    unsafe fn epoll_wait(
        &self,
        ep: EpollId,
        epfd: c_int,
        events: *mut epoll_event,
        maxevents: c_int,
        timeout: Timeout,
        sigmask: *const sigset_t,
    ) -> SysResult<c_int>;

    /// Process events. `fork`: called in the parent before the kernel fork
    /// (quiesce: no thread inside the stack) and after, in the parent and in
    /// the child; the child must never send for the parent's sockets.
    fn before_fork(&self);
    fn after_fork(&self, in_child: bool);
    /// Before exec: the shunt sockets without FD_CLOEXEC survive as bare
    /// kernel sockets; the integration decides what they become.
    fn before_exec(&self);
}

/// In `recvmsg`'s flags: the call was read(2) or readv(2), which return 0
/// at once for zero bytes (sock_read_iter) where recv(2) waits for data.
/// The bit is MSG_CMSG_COMPAT's, which only the kernel ever sets.
pub const MSG_FROM_READ: c_int = 0x8000_0000u32 as c_int;

static SOCKETS: OnceLock<&'static dyn ShuntSockets> = OnceLock::new();

/// Register the stack integration (once, at stack start).
pub fn register(s: &'static dyn ShuntSockets) -> bool {
    SOCKETS.set(s).is_ok()
}

/// The registered integration, if the stack runs.
#[inline]
pub fn sockets() -> Option<&'static dyn ShuntSockets> {
    SOCKETS.get().copied()
}
