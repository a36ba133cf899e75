//! Ownership: one stack per (interface, address) on the machine.
//!
//! A process that starts a stack first claims every address it is to
//! serve by locking `/run/shunt/<iface>-<addr>.lock`. The lock is a POSIX
//! record lock (`fcntl(F_SETLK)`), chosen over `flock` for three reasons:
//! it belongs to the process, not to the open file, so a forked child does
//! not inherit it (the child does not run the parent's stack); it goes away
//! when the process dies, however it dies; and `F_GETLK` names the holder's
//! pid for the warning. The descriptor is close-on-exec (an exec'd image
//! starts its own stack or none) and sits high in the fd space so it never
//! takes a number the program expects from its next `socket()`; it is
//! moved there *before* locking, because closing any descriptor of a
//! POSIX-locked file drops the lock. The holder's pid is also written into
//! the file for people (`cat /run/shunt/*.lock`). The price of POSIX
//! locks: a process that opens and closes its own lock file drops the
//! lock, so nothing in shunt's process may read it (other processes may).
//!
//! Everything here is raw system calls (rustix), never libc symbols that
//! the shim exports.

use std::fmt;
use std::net::IpAddr;

use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Where the lock files live.
pub const LOCK_DIR: &str = "/run/shunt";

/// How far below the descriptor limit shunt's own descriptors go.
const HIGH_FD_GAP: u64 = 64;

/// Held locks; dropping this releases them.
#[derive(Debug)]
pub struct Ownership {
    locks: Vec<(String, OwnedFd)>,
}

impl Ownership {
    /// The descriptors holding the locks (the caller marks them as shunt's
    /// own in the fd table).
    pub fn fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.locks.iter().map(|(_, fd)| fd.as_raw_fd())
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.locks.iter().map(|(p, _)| p.as_str())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// Another process serves this address already.
    Taken {
        iface: String,
        addr: IpAddr,
        pid: Option<i32>,
    },
    /// The lock could not be taken for another reason.
    Io { path: String, errno: Errno },
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::Taken { iface, addr, pid } => {
                write!(
                    f,
                    "{addr} on {iface} is already served by another shunt stack"
                )?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                write!(f, "; this process uses the kernel")
            }
            ClaimError::Io { path, errno } => write!(
                f,
                "cannot take the ownership lock {path}: {errno}; this process uses the kernel"
            ),
        }
    }
}

/// `<dir>/<iface>-<addr>.lock`.
pub fn lock_path(dir: &str, iface: &str, addr: IpAddr) -> String {
    format!("{}/{iface}-{addr}.lock", dir.trim_end_matches('/'))
}

/// The lowest number shunt's own descriptors take: `HIGH_FD_GAP` below
/// the soft descriptor limit (capped so the kernel's fd array stays
/// small), and never below 3.
pub fn high_fd_base() -> i32 {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    let base = soft
        .min(crate::fdtable::DIRECT as u64)
        .saturating_sub(HIGH_FD_GAP);
    base.max(3) as i32
}

/// Duplicate `fd` to the high range (close-on-exec) and close the
/// original. Falls back to the original when the high range is full.
pub fn move_high(fd: OwnedFd) -> OwnedFd {
    match rustix::io::fcntl_dupfd_cloexec(&fd, high_fd_base()) {
        Ok(high) => high,
        Err(_) => fd,
    }
}

fn flock_struct(ty: i16) -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = ty;
    fl.l_whence = libc::SEEK_SET as i16;
    fl
}

/// Lock one address. `Ok(fd)` holds it.
fn claim_one(dir: &str, iface: &str, addr: IpAddr) -> Result<(String, OwnedFd), ClaimError> {
    let path = lock_path(dir, iface, addr);
    let io = |errno| ClaimError::Io {
        path: path.clone(),
        errno,
    };
    match rustix::fs::mkdir(dir, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io(e)),
    }
    let fd = rustix::fs::open(
        path.as_str(),
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
    )
    .map_err(io)?;
    // Before locking: closing a descriptor of the file would drop it.
    let fd = move_high(fd);
    let mut fl = flock_struct(libc::F_WRLCK as i16);
    // SAFETY: fcntl(F_SETLK) through the raw system call (not the fcntl
    // symbol we export) on a descriptor we own, with a valid flock.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fcntl,
            fd.as_raw_fd() as libc::c_long,
            libc::F_SETLK as libc::c_long,
            &mut fl as *mut libc::flock,
        )
    };
    if r != 0 {
        let errno =
            Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        if errno == Errno::AGAIN || errno == Errno::ACCESS {
            let mut probe = flock_struct(libc::F_WRLCK as i16);
            // SAFETY: as above, F_GETLK fills `probe`.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_fcntl,
                    fd.as_raw_fd() as libc::c_long,
                    libc::F_GETLK as libc::c_long,
                    &mut probe as *mut libc::flock,
                )
            };
            let pid = (r == 0 && probe.l_type != libc::F_UNLCK as i16 && probe.l_pid > 0)
                .then_some(probe.l_pid);
            return Err(ClaimError::Taken {
                iface: iface.to_string(),
                addr,
                pid,
            });
        }
        return Err(io(errno));
    }
    // For people: who holds it. Errors here do not matter.
    let pid = format!("{}\n", rustix::process::getpid().as_raw_nonzero());
    let _ = rustix::fs::ftruncate(&fd, 0);
    let _ = rustix::io::pwrite(&fd, pid.as_bytes(), 0);
    Ok((path, fd))
}

/// Claim every address in `addrs` on `iface`, all or nothing.
pub fn claim(dir: &str, iface: &str, addrs: &[IpAddr]) -> Result<Ownership, ClaimError> {
    let mut locks = Vec::with_capacity(addrs.len());
    for &a in addrs {
        // On failure the locks taken so far are released as `locks` drops.
        locks.push(claim_one(dir, iface, a)?);
    }
    Ok(Ownership { locks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn tmpdir(tag: &str) -> String {
        let d = std::env::temp_dir().join(format!("shunt-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.to_string_lossy().into_owned()
    }

    /// Run this test binary again as a second process that tries to claim
    /// `addr` in `dir`; returns its exit code (0 owned, 1 taken, 2 error)
    /// and its one line of output.
    fn second_process(dir: &str, addr: &str) -> (i32, String) {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock::tests::second_process_helper",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SHUNT_LOCK_TEST_DIR", dir)
            .env("SHUNT_LOCK_TEST_ADDR", addr)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.find("CLAIM ").map(|i| &l[i + 6..]))
            .unwrap_or("")
            .to_string();
        let code = line
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(-1);
        (code, line)
    }

    #[test]
    #[ignore = "helper: run by the other tests as a second process"]
    fn second_process_helper() {
        let (Ok(dir), Ok(addr)) = (
            std::env::var("SHUNT_LOCK_TEST_DIR"),
            std::env::var("SHUNT_LOCK_TEST_ADDR"),
        ) else {
            return;
        };
        let addr: IpAddr = addr.parse().unwrap();
        match claim(&dir, "veth0", &[addr]) {
            Ok(_) => println!("CLAIM 0 owned"),
            Err(e @ ClaimError::Taken { .. }) => println!("CLAIM 1 {e}"),
            Err(e) => println!("CLAIM 2 {e}"),
        }
    }

    #[test]
    fn second_process_is_refused_while_the_first_holds() {
        let dir = tmpdir("two");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let own = claim(&dir, "veth0", &[a, b]).expect("first claim");
        assert_eq!(own.paths().count(), 2);
        for fd in own.fds() {
            assert!(fd >= high_fd_base(), "lock fd {fd} is in the high range");
        }

        let (code, line) = second_process(&dir, "192.0.2.1");
        assert_eq!(code, 1, "{line}");
        assert!(
            line.contains("192.0.2.1 on veth0 is already served by another shunt stack")
                && line.contains(&format!("(pid {})", std::process::id()))
                && line.ends_with("this process uses the kernel"),
            "{line}"
        );
        let (code, line) = second_process(&dir, "2001:db8::1");
        assert_eq!(code, 1, "{line}");
        // Another address is free.
        let (code, line) = second_process(&dir, "192.0.2.9");
        assert_eq!(code, 0, "{line}");

        drop(own);
        // Read only now: opening and closing the file in this process
        // would drop its POSIX lock.
        let content = std::fs::read_to_string(lock_path(&dir, "veth0", a)).unwrap();
        assert_eq!(content.trim(), std::process::id().to_string());
        let (code, line) = second_process(&dir, "192.0.2.1");
        assert_eq!(code, 0, "released on drop: {line}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_dead_holder_releases_the_lock() {
        let dir = tmpdir("dead");
        // The helper process claims and exits: its lock dies with it.
        let (code, line) = second_process(&dir, "192.0.2.7");
        assert_eq!(code, 0, "{line}");
        let own = claim(&dir, "veth0", &["192.0.2.7".parse().unwrap()]);
        assert!(own.is_ok(), "{own:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_dir_is_an_io_error() {
        let e = claim(
            "/proc/shunt-no-such-dir",
            "veth0",
            &["192.0.2.1".parse().unwrap()],
        )
        .unwrap_err();
        assert!(matches!(e, ClaimError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("uses the kernel"));
    }

    #[test]
    fn paths() {
        assert_eq!(
            lock_path("/run/shunt/", "veth0", "2001:db8::1".parse().unwrap()),
            "/run/shunt/veth0-2001:db8::1.lock"
        );
    }
}
