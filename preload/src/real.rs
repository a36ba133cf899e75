//! The real functions behind every hook, found with `dlsym(RTLD_NEXT)`.
//!
//! The constructor resolves them all eagerly ([`resolve_all`]), so the hot
//! path is one relaxed load of a pointer. A hook can run before our
//! constructor (another library's constructor may call `read` or `close`
//! first: initialisation order between unrelated objects is not ours to
//! choose), so an unresolved pointer is resolved on the spot; a symbol that
//! libc does not have (a program built against a newer glibc) makes the
//! hook fail with ENOSYS, which is what a missing system call gives.

use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

use libc::{
    epoll_event, fd_set, iovec, mmsghdr, msghdr, nfds_t, off_t, off64_t, pid_t, pollfd, sigset_t,
    size_t, sockaddr, socklen_t, ssize_t, timespec, timeval,
};

/// Look `name` up in the objects after ours and remember it in `slot`.
/// Returns 0 when libc does not have it.
#[cold]
#[inline(never)]
pub fn resolve(name: &core::ffi::CStr, slot: &AtomicUsize) -> usize {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name only reads
    // the loader's tables; it is safe to call at any time after ld.so has
    // mapped us (it may take the loader lock).
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    if p != 0 {
        slot.store(p, Ordering::Relaxed);
    }
    p
}

macro_rules! real_functions {
    ($( $name:ident : fn($($arg:ty),*) -> $ret:ty; )*) => {
        /// One slot per real function; 0 until resolved.
        #[allow(non_upper_case_globals)]
        pub mod slot {
            use core::sync::atomic::AtomicUsize;
            $( pub static $name: AtomicUsize = AtomicUsize::new(0); )*
        }

        $(
            /// The real function, or `None` when libc has none.
            #[inline(always)]
            pub fn $name() -> Option<unsafe extern "C" fn($($arg),*) -> $ret> {
                let mut p = slot::$name.load(Ordering::Relaxed);
                if p == 0 {
                    p = resolve(
                        // SAFETY: the literal ends with the NUL we add.
                        unsafe {
                            core::ffi::CStr::from_bytes_with_nul_unchecked(
                                concat!(stringify!($name), "\0").as_bytes(),
                            )
                        },
                        &slot::$name,
                    );
                    if p == 0 {
                        return None;
                    }
                }
                // Variadic functions: the x86_64 SysV convention passes the
                // integer or pointer third argument in the same register as
                // a fixed one, so the fixed prototype below is ABI-correct.
                // SAFETY: `p` is dlsym's address for this very name in libc,
                // whose C prototype is the one declared here.
                Some(unsafe {
                    core::mem::transmute::<usize, unsafe extern "C" fn($($arg),*) -> $ret>(p)
                })
            }
        )*

        /// Resolve every real function (the constructor calls this).
        pub fn resolve_all() -> usize {
            let mut missing = 0;
            $( if $name().is_none() { missing += 1; } )*
            missing
        }

        /// The names of the real functions, for logs and tests.
        pub const NAMES: &[&str] = &[$( stringify!($name) ),*];
    };
}

real_functions! {
    socket: fn(c_int, c_int, c_int) -> c_int;
    socketpair: fn(c_int, c_int, c_int, *mut c_int) -> c_int;
    bind: fn(c_int, *const sockaddr, socklen_t) -> c_int;
    listen: fn(c_int, c_int) -> c_int;
    accept: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    accept4: fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
    connect: fn(c_int, *const sockaddr, socklen_t) -> c_int;
    getsockname: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    getpeername: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    getsockopt: fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
    setsockopt: fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;
    shutdown: fn(c_int, c_int) -> c_int;
    close: fn(c_int) -> c_int;
    close_range: fn(c_uint, c_uint, c_int) -> c_int;
    dup: fn(c_int) -> c_int;
    dup2: fn(c_int, c_int) -> c_int;
    dup3: fn(c_int, c_int, c_int) -> c_int;
    fcntl: fn(c_int, c_int, usize) -> c_int;
    fcntl64: fn(c_int, c_int, usize) -> c_int;
    ioctl: fn(c_int, c_ulong, usize) -> c_int;
    read: fn(c_int, *mut c_void, size_t) -> ssize_t;
    write: fn(c_int, *const c_void, size_t) -> ssize_t;
    readv: fn(c_int, *const iovec, c_int) -> ssize_t;
    writev: fn(c_int, *const iovec, c_int) -> ssize_t;
    send: fn(c_int, *const c_void, size_t, c_int) -> ssize_t;
    sendto: fn(c_int, *const c_void, size_t, c_int, *const sockaddr, socklen_t) -> ssize_t;
    sendmsg: fn(c_int, *const msghdr, c_int) -> ssize_t;
    sendmmsg: fn(c_int, *mut mmsghdr, c_uint, c_int) -> c_int;
    recv: fn(c_int, *mut c_void, size_t, c_int) -> ssize_t;
    recvfrom: fn(c_int, *mut c_void, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t;
    recvmsg: fn(c_int, *mut msghdr, c_int) -> ssize_t;
    recvmmsg: fn(c_int, *mut mmsghdr, c_uint, c_int, *mut timespec) -> c_int;
    sendfile: fn(c_int, c_int, *mut off_t, size_t) -> ssize_t;
    sendfile64: fn(c_int, c_int, *mut off64_t, size_t) -> ssize_t;
    poll: fn(*mut pollfd, nfds_t, c_int) -> c_int;
    ppoll: fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int;
    select: fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *mut timeval) -> c_int;
    pselect: fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *const timespec, *const sigset_t) -> c_int;
    epoll_create: fn(c_int) -> c_int;
    epoll_create1: fn(c_int) -> c_int;
    epoll_ctl: fn(c_int, c_int, c_int, *mut epoll_event) -> c_int;
    epoll_wait: fn(c_int, *mut epoll_event, c_int, c_int) -> c_int;
    epoll_pwait: fn(c_int, *mut epoll_event, c_int, c_int, *const sigset_t) -> c_int;
    epoll_pwait2: fn(c_int, *mut epoll_event, c_int, *const timespec, *const sigset_t) -> c_int;
    fork: fn() -> pid_t;
    vfork: fn() -> pid_t;
    execve: fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
    execv: fn(*const c_char, *const *const c_char) -> c_int;
    execvp: fn(*const c_char, *const *const c_char) -> c_int;
    execvpe: fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
    fexecve: fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
    // Variadic: never called from Rust, only jumped to (hooks::execl).
    execl: fn() -> c_int;
    execlp: fn() -> c_int;
    execle: fn() -> c_int;
    __read_chk: fn(c_int, *mut c_void, size_t, size_t) -> ssize_t;
    __recv_chk: fn(c_int, *mut c_void, size_t, size_t, c_int) -> ssize_t;
    __recvfrom_chk: fn(c_int, *mut c_void, size_t, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t;
    __poll_chk: fn(*mut pollfd, nfds_t, c_int, size_t) -> c_int;
    __ppoll_chk: fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t, size_t) -> c_int;
    __fdelt_chk: fn(c_long) -> c_long;
}
