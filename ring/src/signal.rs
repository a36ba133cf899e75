//! Stop on SIGINT and SIGTERM: the handler only sets a flag that a run
//! loop polls, so stopping is always clean (links drained, files flushed).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Install handlers for SIGINT and SIGTERM (without SA_RESTART, so a
/// blocking poll returns) and return the flag they set.
pub fn stop_on_signals() -> &'static AtomicBool {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handler is async-signal-safe (one atomic store).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    &STOP
}

/// The flag, for loops that did not install the handlers themselves.
pub fn stop_flag() -> &'static AtomicBool {
    &STOP
}
