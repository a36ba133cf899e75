//! What sockets see while the configured IPv6 addresses go through
//! duplicate address detection.
//!
//! The stack runs DAD on every address of `SHUNT_ADDR` and on the
//! link-local address as Linux does (one probe, 1 s to wait; the first
//! probe after a random delay below 10 ms rather than Linux's 1 s, see
//! crate::engine): the wire sees what `ip addr add` without `nodad`
//! shows, a duplicate is detected and the address is not used, and the
//! stack neither answers for nor accepts traffic to a tentative address.
//!
//! Linux refuses a bind to a tentative address (EADDRNOTAVAIL) and picks
//! no tentative source. For a kernel address that is harmless: it was
//! configured long before the program started. Shunt's addresses come up
//! with the program, so the program's first IPv6 operation that needs one
//! (a bind to a specific IPv6 address, a connect or a sendto to an IPv6
//! peer) waits until DAD is over, 3 s at most, once per process; then it
//! proceeds exactly as Linux would with the address configured (a failed
//! DAD leaves it unusable: EADDRNOTAVAIL). A wildcard listener does not
//! wait: a peer's first segments are answered once DAD ends, as a kernel
//! peer retransmits its neighbour solicitations.

use core::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shunt_stack::iface::ndp::AddressState;

use crate::engine::{Engine, Inner};

/// The longest wait: DAD takes about 1 s.
const MAX_WAIT: Duration = Duration::from_secs(3);

#[derive(Default)]
pub struct Dad {
    settled: AtomicBool,
}

/// Whether an IPv6 address is still tentative.
pub fn pending(g: &Inner) -> bool {
    g.stack
        .ipv6_addresses()
        .iter()
        .any(|a| a.state == AddressState::Tentative)
}

impl Dad {
    /// Wait until no IPv6 address is tentative (see the module docs). One
    /// atomic load once that has happened.
    pub fn settle(&self, e: &Engine) {
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        let mut extra = Vec::new();
        let r = e.wait(Some(Instant::now() + MAX_WAIT), &mut extra, None, |g| {
            (!pending(g)).then_some(())
        });
        if r.is_ok() {
            self.settled.store(true, Ordering::Release);
        }
    }
}
