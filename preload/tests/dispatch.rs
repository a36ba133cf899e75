//! The shunt branch of the hooks, driven by a fake integration: a marked
//! fd reaches the `ShuntSockets` method with its id; `Some(Err)` becomes
//! -1 and errno; `None` and a panic both fall back to the real function,
//! once; close, dup and fcntl(F_DUPFD) keep the fd table right; poll and
//! epoll go to the integration only when a shunt fd is involved.
//!
//! One test (the table and the registration are process-global).

use core::ffi::{c_int, c_uint, c_ulong, c_void};
use std::sync::Mutex;

use libc::{
    epoll_event, fd_set, mmsghdr, msghdr, nfds_t, pollfd, sigset_t, sockaddr, socklen_t, timespec,
};
use shunt::fdtable::{self, Entry};
use shunt::socket::{self, Errno, Served, ShuntSockets, SocketId, SysResult, Timeout};

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
}

impl Fake {
    fn note(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

// SAFETY: the fake keeps the invariants trivially (it serves only what
// the test marks, and touches no fd).
unsafe impl ShuntSockets for Fake {
    fn open(&self, fd: c_int, _: c_int, _: c_int, _: c_int) -> Option<SocketId> {
        self.note(format!("open {fd}"));
        None
    }
    unsafe fn bind(
        &self,
        id: SocketId,
        _: c_int,
        _: *const sockaddr,
        _: socklen_t,
    ) -> Served<c_int> {
        self.note(format!("bind {id}"));
        Some(Ok(0))
    }
    fn listen(&self, id: SocketId, _: c_int, _: c_int) -> Served<c_int> {
        self.note(format!("listen {id}"));
        Some(Err(Errno::OPNOTSUPP))
    }
    unsafe fn accept(
        &self,
        _: SocketId,
        _: c_int,
        _: *mut sockaddr,
        _: *mut socklen_t,
        _: c_int,
    ) -> Served<c_int> {
        None
    }
    unsafe fn connect(
        &self,
        _: SocketId,
        _: c_int,
        _: *const sockaddr,
        _: socklen_t,
    ) -> Served<c_int> {
        None
    }
    unsafe fn getsockname(
        &self,
        id: SocketId,
        _: c_int,
        _: *mut sockaddr,
        _: *mut socklen_t,
    ) -> Served<c_int> {
        self.note(format!("getsockname {id}"));
        panic!("fake integration panics");
    }
    unsafe fn getpeername(
        &self,
        _: SocketId,
        _: c_int,
        _: *mut sockaddr,
        _: *mut socklen_t,
    ) -> Served<c_int> {
        None
    }
    unsafe fn getsockopt(
        &self,
        _: SocketId,
        _: c_int,
        _: c_int,
        _: c_int,
        _: *mut c_void,
        _: *mut socklen_t,
    ) -> Served<c_int> {
        None
    }
    unsafe fn setsockopt(
        &self,
        _: SocketId,
        _: c_int,
        _: c_int,
        _: c_int,
        _: *const c_void,
        _: socklen_t,
    ) -> Served<c_int> {
        None
    }
    fn shutdown(&self, _: SocketId, _: c_int, _: c_int) -> Served<c_int> {
        None
    }
    unsafe fn recvmsg(&self, id: SocketId, _: c_int, msg: *mut msghdr, _: c_int) -> Served<isize> {
        self.note(format!("recvmsg {id}"));
        // SAFETY: the hook built a msghdr over the caller's buffer.
        unsafe {
            let iov = &*(*msg).msg_iov;
            let n = iov.iov_len.min(3);
            core::ptr::copy_nonoverlapping(b"abc".as_ptr(), iov.iov_base.cast(), n);
            Some(Ok(n as isize))
        }
    }
    unsafe fn sendmsg(&self, id: SocketId, _: c_int, _: *const msghdr, _: c_int) -> Served<isize> {
        self.note(format!("sendmsg {id}"));
        None
    }
    unsafe fn recvmmsg(
        &self,
        _: SocketId,
        _: c_int,
        _: *mut mmsghdr,
        _: c_uint,
        _: c_int,
        _: *mut timespec,
    ) -> Served<c_int> {
        None
    }
    unsafe fn sendmmsg(
        &self,
        _: SocketId,
        _: c_int,
        _: *mut mmsghdr,
        _: c_uint,
        _: c_int,
    ) -> Served<c_int> {
        None
    }
    unsafe fn sendfile(
        &self,
        _: SocketId,
        _: c_int,
        _: c_int,
        _: *mut i64,
        _: usize,
    ) -> Served<isize> {
        None
    }
    fn fcntl(&self, id: SocketId, _: c_int, cmd: c_int, _: usize) -> Served<c_int> {
        self.note(format!("fcntl {id} {cmd}"));
        None
    }
    unsafe fn ioctl(&self, _: SocketId, _: c_int, _: c_ulong, _: usize) -> Served<c_int> {
        None
    }
    fn close(&self, id: SocketId, fd: c_int) {
        self.note(format!("close {id} {fd}"));
    }
    fn duplicated(&self, id: SocketId, newfd: c_int) {
        self.note(format!("dup {id} {newfd}"));
    }
    unsafe fn poll(
        &self,
        _: *mut pollfd,
        nfds: nfds_t,
        _: Timeout,
        _: *const sigset_t,
    ) -> SysResult<c_int> {
        self.note(format!("poll {nfds}"));
        Ok(0)
    }
    unsafe fn select(
        &self,
        _: c_int,
        _: *mut fd_set,
        _: *mut fd_set,
        _: *mut fd_set,
        _: Timeout,
        _: *const sigset_t,
    ) -> SysResult<(c_int, Timeout)> {
        Ok((0, None))
    }
    unsafe fn epoll_ctl(
        &self,
        _: c_int,
        op: c_int,
        fd: c_int,
        _: *mut epoll_event,
    ) -> SysResult<c_int> {
        self.note(format!("epoll_ctl {op} {fd}"));
        Ok(0)
    }
    unsafe fn epoll_wait(
        &self,
        ep: u32,
        _: c_int,
        _: *mut epoll_event,
        _: c_int,
        _: Timeout,
        _: *const sigset_t,
    ) -> SysResult<c_int> {
        self.note(format!("epoll_wait {ep}"));
        Ok(0)
    }
    fn before_fork(&self) {}
    fn after_fork(&self, _: bool) {}
    fn before_exec(&self) {}
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn shunt_branch_dispatch() {
    static FAKE: std::sync::OnceLock<Fake> = std::sync::OnceLock::new();
    let fake = FAKE.get_or_init(Fake::default);
    assert!(socket::register(fake));
    use shunt::hooks as h;

    let mut sv = [0; 2];
    // SAFETY: plain libc calls on descriptors this test owns.
    unsafe {
        assert_eq!(
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()),
            0
        );
        let (fd, peer) = (sv[0], sv[1]);

        // Unmarked: the kernel, and the fake sees nothing.
        assert_eq!(h::write(fd, b"k".as_ptr().cast(), 1), 1);
        let mut b = [0u8; 8];
        assert_eq!(h::read(peer, b.as_mut_ptr().cast(), 8), 1);
        assert!(fake.take().is_empty());

        fdtable::set(fd, Entry::Socket(7));
        // Served: the fake's bytes, not the kernel's.
        assert_eq!(h::read(fd, b.as_mut_ptr().cast(), 8), 3);
        assert_eq!(&b[..3], b"abc");
        // Not served (None): the real write, exactly once.
        assert_eq!(h::send(fd, b"xy".as_ptr().cast(), 2, 0), 2);
        assert_eq!(
            libc::recv(peer, b.as_mut_ptr().cast(), 8, libc::MSG_DONTWAIT),
            2
        );
        assert_eq!(
            libc::recv(peer, b.as_mut_ptr().cast(), 8, libc::MSG_DONTWAIT),
            -1
        );
        // An errno answer.
        assert_eq!(h::listen(fd, 1), -1);
        assert_eq!(errno(), libc::EOPNOTSUPP);
        // A panic: the kernel answers (AF_UNIX socketpair: an unnamed
        // address, family AF_UNIX).
        let mut sa: libc::sockaddr_storage = core::mem::zeroed();
        let mut len = core::mem::size_of_val(&sa) as socklen_t;
        assert_eq!(
            h::getsockname(
                fd,
                (&mut sa as *mut libc::sockaddr_storage).cast(),
                &mut len
            ),
            0
        );
        assert_eq!(sa.ss_family as c_int, libc::AF_UNIX);
        assert_eq!(
            fake.take(),
            ["recvmsg 7", "sendmsg 7", "listen 7", "getsockname 7"]
        );

        // dup and F_DUPFD share the id; close drops the reference and
        // clears the entry; the kernel fd is closed.
        let d = h::dup(fd);
        assert!(d >= 0);
        assert_eq!(fdtable::lookup(d), Entry::Socket(7));
        let e = h::fcntl(fd, libc::F_DUPFD_CLOEXEC, 500);
        assert_eq!(e, 500);
        assert_eq!(fdtable::lookup(500), Entry::Socket(7));
        assert_eq!(h::fcntl(fd, libc::F_GETFL, 0) & libc::O_RDWR, libc::O_RDWR);
        assert_eq!(h::dup2(fd, 501), 501);
        assert_eq!(fdtable::lookup(501), Entry::Socket(7));
        assert_eq!(h::close(500), 0);
        assert_eq!(fdtable::lookup(500), Entry::Kernel);
        assert_eq!(libc::fcntl(500, libc::F_GETFD), -1);
        // dup2 onto a shunt fd closes it for shunt first.
        assert_eq!(h::dup2(peer, 501), 501);
        assert_eq!(fdtable::lookup(501), Entry::Kernel);
        assert_eq!(h::close(501), 0);
        assert_eq!(
            fake.take(),
            [
                format!("dup 7 {d}"),
                "dup 7 500".to_string(),
                format!("fcntl 7 {}", libc::F_GETFL),
                "dup 7 501".to_string(),
                "close 7 500".to_string(),
                "close 7 501".to_string(),
            ]
        );

        // poll: only sets with a shunt fd reach the integration.
        let mut p = [pollfd {
            fd: peer,
            events: libc::POLLOUT,
            revents: 0,
        }];
        assert_eq!(h::poll(p.as_mut_ptr(), 1, 0), 1);
        let mut p2 = [
            pollfd {
                fd: peer,
                events: libc::POLLOUT,
                revents: 0,
            },
            pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        assert_eq!(h::poll(p2.as_mut_ptr(), 2, 0), 0);
        // epoll: adding a shunt fd goes to the integration; a marked epoll
        // fd's wait too.
        let ep = h::epoll_create1(0);
        let mut ev = epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 1,
        };
        assert_eq!(h::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev), 0);
        assert_eq!(h::epoll_wait(ep, &mut ev, 1, 0), 0);
        fdtable::set(ep, Entry::Epoll(3));
        assert_eq!(h::epoll_wait(ep, &mut ev, 1, 0), 0);
        assert_eq!(
            fake.take(),
            [
                "poll 2".to_string(),
                format!("epoll_ctl {} {fd}", libc::EPOLL_CTL_ADD),
                "epoll_wait 3".to_string()
            ]
        );

        // Shunt's own fds are invisible: EBADF, and close leaves them.
        let own = libc::dup(peer);
        fdtable::set(own, Entry::Internal(1));
        assert_eq!(h::close(own), -1);
        assert_eq!(errno(), libc::EBADF);
        assert_eq!(h::read(own, b.as_mut_ptr().cast(), 1), -1);
        // (The raw system call: in this test binary libc's names may be
        // our hooks.)
        let own_fd = rustix::fd::BorrowedFd::borrow_raw(own);
        assert!(rustix::io::fcntl_getfd(own_fd).is_ok(), "still open");
        fdtable::clear(own);

        assert_eq!(h::close(ep), 0);
        assert_eq!(fdtable::lookup(ep), Entry::Kernel);
        assert_eq!(h::close(d), 0);
        assert_eq!(h::close(fd), 0);
        assert_eq!(h::close(own), 0);
        assert_eq!(h::close(peer), 0);
        assert_eq!(
            fake.take(),
            [format!("close 7 {d}"), format!("close 7 {fd}")]
        );
    }
}
