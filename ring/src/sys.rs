//! The few system calls the engine itself makes, through rustix (raw
//! syscalls, never the libc symbols that libshunt.so exports).

use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

/// Most descriptors the engine waits on at once.
const MAX_FDS: usize = 16;

/// Wait until one of `fds` is readable or `timeout` passes. Errors (EINTR)
/// just end the wait early: the caller loops anyway.
pub fn poll_readable(fds: &[i32], timeout: Duration) {
    let ts = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as i64,
    };
    let n = fds.len().min(MAX_FDS);
    if n == 0 {
        let _ = rustix::thread::nanosleep(&ts);
        return;
    }
    let mut pfds: [PollFd<'_>; MAX_FDS] = std::array::from_fn(|i| {
        // Slots past n repeat the first fd; only the first n are polled.
        let fd = if i < n { fds[i] } else { fds[0] };
        // SAFETY: the descriptors come from apps that own them and outlive
        // this call; poll(2) only reads them.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        PollFd::from_borrowed_fd(b, PollFlags::IN)
    });
    let _ = rustix::event::poll(&mut pfds[..n], Some(&ts));
}
