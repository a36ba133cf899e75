//! A privileged program that drops its privileges before its first socket
//! (servers that bind as root and then run as nobody, or set their user
//! first and socket later) could not open the AF_PACKET device afterwards
//! and would run on the kernel. So the calls that change credentials start
//! shunt first, while the process still has `CAP_NET_RAW`: the same
//! decision the first socket would make ([`init::stack_active`]), taken
//! early. Without `CAP_NET_RAW` now, nothing is decided here (a process
//! regaining privileges with `seteuid(0)` must not be sent to the kernel
//! for good).
//!
//! Also here: the port check Linux makes with the credentials of the
//! binder (`CAP_NET_BIND_SERVICE` below `ip_unprivileged_port_start`),
//! which shunt's stack cannot see.

use core::ffi::c_int;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use libc::{gid_t, uid_t};

use crate::{init, real};

const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_RAW: u32 = 13;

/// Whether this thread has capability `cap` in its effective set.
fn has_cap(cap: u32) -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget fills the two data words of version 3.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) };
    r == 0 && d[(cap / 32) as usize].effective & (1 << (cap % 32)) != 0
}

/// Start shunt now if the first socket would have and this may be the
/// last moment it can.
fn before_drop() {
    if has_cap(CAP_NET_RAW) {
        let _ = init::stack_active();
    }
}

/// `EACCES` for a port below `ip_unprivileged_port_start` without
/// `CAP_NET_BIND_SERVICE` (inet_bind's check, after the address's).
pub fn port_allowed(port: u16) -> bool {
    port == 0 || u32::from(port) >= unprivileged_port_start() || has_cap(CAP_NET_BIND_SERVICE)
}

/// This network namespace's ip_unprivileged_port_start, read once.
fn unprivileged_port_start() -> u32 {
    static START: AtomicI32 = AtomicI32::new(-1);
    let v = START.load(Ordering::Relaxed);
    if v >= 0 {
        return v as u32;
    }
    let read = || -> Option<u32> {
        use rustix::fs::{Mode, OFlags, open};
        let fd = open(
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut b = [0u8; 16];
        let n = rustix::io::read(&fd, &mut b).ok()?;
        core::str::from_utf8(&b[..n]).ok()?.trim().parse().ok()
    };
    let v = read().unwrap_or(1024);
    START.store(v as i32, Ordering::Relaxed);
    v
}

/// The real function `name` (resolved on first use, like [`real`]'s).
macro_rules! real_fn {
    ($name:ident: fn($($arg:ty),*) -> $ret:ty) => {{
        static SLOT: AtomicUsize = AtomicUsize::new(0);
        let mut p = SLOT.load(Ordering::Relaxed);
        if p == 0 {
            p = real::resolve(
                // SAFETY: the literal ends with the NUL we add.
                unsafe { core::ffi::CStr::from_bytes_with_nul_unchecked(concat!(stringify!($name), "\0").as_bytes()) },
                &SLOT,
            );
        }
        // SAFETY: dlsym's address for this name in libc, whose prototype
        // is the one given (0: none, a null Option).
        unsafe { core::mem::transmute::<usize, Option<unsafe extern "C" fn($($arg),*) -> $ret>>(p) }
    }};
}

macro_rules! drop_hook {
    ($name:ident($($a:ident: $t:ty),*)) => {
        #[doc = concat!("`", stringify!($name), "`, after starting shunt while it still can.")]
        ///
        /// # Safety
        /// The program's arguments, passed on to libc as given.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($a: $t),*) -> c_int {
            let _ = std::panic::catch_unwind(before_drop);
            match real_fn!($name: fn($($t),*) -> c_int) {
                // SAFETY: the real function with the program's arguments.
                Some(f) => unsafe { f($($a),*) },
                None => crate::hooks::enosys(),
            }
        }
    };
}

drop_hook!(setuid(u: uid_t));
drop_hook!(setgid(g: gid_t));
drop_hook!(seteuid(u: uid_t));
drop_hook!(setegid(g: gid_t));
drop_hook!(setreuid(r: uid_t, e: uid_t));
drop_hook!(setregid(r: gid_t, e: gid_t));
drop_hook!(setresuid(r: uid_t, e: uid_t, s: uid_t));
drop_hook!(setresgid(r: gid_t, e: gid_t, s: gid_t));
drop_hook!(capset(h: *mut libc::c_void, d: *const libc::c_void));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_and_port_rule() {
        // Root (the tests run as root) has both; port 0 and high ports
        // need nothing.
        let root = rustix::process::geteuid().is_root();
        assert_eq!(has_cap(CAP_NET_RAW), root);
        assert!(port_allowed(0));
        assert!(port_allowed(65535));
        assert_eq!(port_allowed(80), root || unprivileged_port_start() <= 80);
    }
}
