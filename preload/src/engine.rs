//! The driver: one [`Stack`] per process on the device (AF_PACKET or AF_XDP) of
//! `SHUNT_IFACE`, and the machinery that makes it progress.
//!
//! **State.** Everything lives in one [`Inner`] behind one mutex: the
//! stack, the device, shunt's socket table and epoll interest lists. A
//! call into shunt takes the mutex, runs a *turn* (receive what the device
//! holds, run due timers, transmit), does its socket operation, transmits
//! what that produced and lets go: inline progress in the calling thread,
//! no handoff on the fast path.
//!
//! **Idle progress.** A progress thread blocks in poll(2) on the device fd,
//! its own eventfd and the stack's next deadline, and runs a turn when any
//! of them fires, so ACKs, retransmissions and keepalives go out while the
//! program sleeps or computes.
//!
//! **Blocking.** A thread that must wait (a blocking recv, accept,
//! connect, poll...) registers its per-thread wake-up eventfd under the
//! mutex, lets go, and sleeps in poll(2) on that eventfd, the device fd and
//! whatever kernel fds the call also watches, until the stack's next
//! deadline at most. Whichever thread runs a turn or an operation that
//! changed something writes to every registered eventfd ([`Inner::notify`]),
//! so a waiter never misses a change made after it registered: it then
//! takes the mutex and checks again. Signals interrupt the poll (EINTR); the
//! caller decides between EINTR and restarting ([`restart_after_signal`]).
//!
//! Every system call here is a raw one (rustix or `libc::syscall`), never a
//! libc symbol the shim exports.

use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, Ordering};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use shunt_ring::offload::{F_DATA_VALID, VnetHdr};
use shunt_stack::time::Instant;
use shunt_stack::{Mac, RxOffload, Stack, StackConfig};

use crate::config::Config;
use crate::device::Device;
use crate::fdtable::{self, Entry};
use crate::lock::Ownership;
use crate::sockets::Tables;
use crate::stat::{EXPORT_EVERY, Export};
use crate::tap::Tap;

/// Frames taken from the device per turn.
const RX_BATCH: usize = 256;

/// How long the device may go unpolled after the application thread that
/// polled it stopped waiting, before the progress thread polls it again:
/// a thread that waits again within it (the next blocking recv, the next
/// poll) keeps the device without waking the progress thread.
const HANDOVER: Duration = Duration::from_millis(1);

/// How often the progress thread looks at a device an application thread
/// polls, in case that thread left without saying so.
const WAITER_GONE: Duration = Duration::from_millis(200);

/// Who sleeps on the device's fd: exactly one thread, so that a frame
/// wakes one thread (and that thread wakes the waiters its turn concerns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DevPoller {
    Progress,
    /// The application thread waiting with this eventfd.
    Waiter(RawFd),
    /// That thread stopped waiting then: the progress thread takes the
    /// device back [`HANDOVER`] later unless a waiter claims it first.
    Left(std::time::Instant),
}

/// The process's stack and everything that drives it.
pub struct Engine {
    inner: Mutex<Inner>,
    /// The device's fd (readable when a receive block is ready).
    pub dev_fd: RawFd,
    /// The progress thread's wake-up eventfd.
    prog_efd: RawFd,
    /// The kernel's neighbour notifications (shared mode; -1: none).
    nl_fd: RawFd,
    /// Set in a forked child: the stack is the parent's, never touched.
    pub forked: AtomicBool,
    /// The interface's index (IP_PKTINFO).
    pub ifindex: i32,
    pub cfg: Config,
    /// The export `shunt stat` reads (`None`: /run/shunt not writable).
    stat: Option<Export>,
}

pub struct Inner {
    pub stack: Stack,
    pub dev: Device,
    base: std::time::Instant,
    /// Eventfds of the threads waiting now.
    waiters: Vec<RawFd>,
    poller: DevPoller,
    /// The device's TX ring was full at the last transmit.
    tx_blocked: bool,
    pub t: Tables,
    /// Sockets shared with forked children.
    pub relays: crate::relay::Relays,
    _own: Ownership,
    /// SHUNT_PCAP / SHUNT_NETEM between the device and the stack.
    tap: Option<Box<Tap>>,
    /// Something changed since the last export for `shunt stat`.
    dirty: bool,
    /// Where to say so (the progress thread's eventfd; -1: no export).
    dirty_efd: RawFd,
    /// The progress thread's eventfd: told when the device's poller
    /// leaves while the progress thread is parked (below).
    prog_efd: RawFd,
    /// The progress thread sleeps for long while an application thread
    /// polls the device: the first release wakes it (once per parking, so
    /// a thread that blocks and returns many times a millisecond does not
    /// wake it each time).
    prog_parked: bool,
    /// SHUNT_SHARE_ADDR=1: port reservations, the kernel's neighbours.
    pub shared: Option<Box<crate::shared::Shared>>,
}

/// What the virtio-net header says about a received frame's checksum.
pub fn rx_offload(h: &VnetHdr) -> RxOffload {
    if h.needs_csum() {
        RxOffload::Partial
    } else if h.flags & F_DATA_VALID != 0 {
        RxOffload::Verified
    } else {
        RxOffload::None
    }
}

/// Duplicate `fd` into shunt's high range and mark it as shunt's own.
pub fn high_internal(fd: BorrowedFd<'_>) -> Option<OwnedFd> {
    let high = rustix::io::fcntl_dupfd_cloexec(fd, crate::lock::high_fd_base()).ok()?;
    fdtable::set(high.as_raw_fd(), Entry::Internal(1));
    Some(high)
}

/// A new eventfd in the high range, marked as shunt's own.
pub fn new_eventfd() -> Option<RawFd> {
    use rustix::event::{EventfdFlags, eventfd};
    let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok()?;
    let high = high_internal(fd.as_fd())?;
    drop(fd);
    Some(high.into_raw_fd_leak())
}

trait IntoRawLeak {
    fn into_raw_fd_leak(self) -> RawFd;
}
impl IntoRawLeak for OwnedFd {
    fn into_raw_fd_leak(self) -> RawFd {
        std::os::fd::IntoRawFd::into_raw_fd(self)
    }
}

fn efd_write(fd: RawFd) {
    // SAFETY: `fd` is one of shunt's own eventfds, open for the process's
    // life (or the thread's, and only registered while the thread waits).
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = rustix::io::write(b, &1u64.to_ne_bytes());
}

fn efd_drain(fd: RawFd) {
    // SAFETY: as in efd_write.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut buf = [0u8; 8];
    let _ = rustix::io::read(b, &mut buf);
}

impl Inner {
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.base.elapsed().as_nanos() as u64)
    }

    /// Receive a batch, run due timers, transmit. True when anything moved.
    pub fn turn(&mut self) -> bool {
        let now = self.now();
        let at = self.base + Duration::from_nanos(now.as_nanos());
        let (dev, tap) = (&mut self.dev, &mut self.tap);
        // One burst per batch: the ACKs in-order data owes go out once at
        // its end (at most every 64 KiB), as after GRO, not per segment.
        let n = self.stack.receive_burst(now, |stack| match tap {
            None => dev.recv_batch(RX_BATCH, |frame, hdr| {
                // GSO frames go in whole: the stack takes IP packets up to
                // 64 KiB and TCP segments longer than its MSS (as GRO).
                stack.receive(frame, rx_offload(hdr), now);
            }),
            Some(tap) => tap.receive(dev, stack, RX_BATCH, now, at),
        });
        let mut busy = n > 0;
        if self.stack.next_deadline().is_some_and(|d| d <= now) {
            self.stack.on_timer(now);
            busy = true;
        }
        busy |= crate::relay::pump(self);
        busy |= self.transmit() > 0;
        if busy {
            self.notify();
            self.t.signal_async(&self.stack);
        }
        busy
    }

    /// Everything the stack has to send, into the device.
    pub fn transmit(&mut self) -> usize {
        if self.stack.has_neighbor_wants()
            && let Some(sh) = &mut self.shared
        {
            sh.ask(&mut self.stack);
        }
        let now = self.now();
        if let Some(tap) = &mut self.tap {
            let at = self.base + Duration::from_nanos(now.as_nanos());
            let (n, blocked) = tap.transmit(&mut self.dev, &mut self.stack, now, at);
            self.tx_blocked = blocked || self.dev.tx_stalled();
            return n;
        }
        let mut n = 0;
        self.tx_blocked = false;
        loop {
            if !self.dev.tx_has_room() {
                self.dev.flush();
                if !self.dev.tx_has_room() {
                    self.tx_blocked = true;
                    break;
                }
            }
            let dev = &mut self.dev;
            if self
                .stack
                .transmit_with(now, |f| dev.send(f, &VnetHdr::default()))
                .is_none()
            {
                break;
            }
            n += 1;
        }
        self.dev.flush();
        // Frames the device could not push yet: come back soon (waiters
        // sleep at most 200 us while tx_blocked) rather than at the next
        // event, which on a quiet connection is a retransmission timeout.
        if self.dev.tx_stalled() {
            self.tx_blocked = true;
        }
        n
    }

    /// Wake every waiting thread (it re-checks its condition), and mark
    /// the export as out of date.
    pub fn notify(&mut self) {
        for &fd in &self.waiters {
            efd_write(fd);
        }
        if !self.dirty {
            self.dirty = true;
            // The progress thread may sleep without a deadline: it writes
            // the export within EXPORT_EVERY of the change.
            if self.dirty_efd >= 0 {
                efd_write(self.dirty_efd);
            }
        }
    }

    /// The waiter with eventfd `e` stops waiting: if it had the device,
    /// the progress thread takes it back after [`HANDOVER`], or another
    /// waiter at once (woken, it finds nothing new and sleeps on it).
    fn release_device(&mut self, e: RawFd) {
        if self.poller == DevPoller::Waiter(e) {
            self.poller = DevPoller::Left(std::time::Instant::now());
            match self.waiters.iter().find(|&&o| o != e) {
                Some(&o) => efd_write(o),
                // Nobody else waits: the progress thread takes the device
                // back HANDOVER from now (woken now to time it, if it
                // sleeps for long).
                None if self.prog_parked => {
                    self.prog_parked = false;
                    efd_write(self.prog_efd);
                }
                None => {}
            }
        }
    }

    /// How long a waiter may sleep before the stack needs a turn.
    fn stack_wait(&mut self) -> Option<Duration> {
        if self.tx_blocked {
            return Some(Duration::from_micros(200));
        }
        let now = self.now();
        let d = self.stack.next_deadline().map(|d| d.saturating_since(now));
        match &self.tap {
            None => d,
            Some(tap) => {
                // A delayed frame is due: the turn that releases it must
                // run on time.
                let t = tap
                    .deadline()
                    .map(|t| t.saturating_duration_since(std::time::Instant::now()));
                match (d, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }
}

thread_local! {
    /// This thread holds the state's mutex (a signal handler that calls
    /// into shunt then must not wait for it).
    static HOLDS: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Whether this thread holds the stack's mutex now.
pub fn holds_lock() -> bool {
    HOLDS.try_with(|h| h.get()).unwrap_or(false)
}

/// The locked state (see [`Engine::lock`]).
pub struct Locked<'a> {
    /// Released by hand in `drop`, before the O_ASYNC signals go.
    g: core::mem::ManuallyDrop<MutexGuard<'a, Inner>>,
}

impl core::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.g
    }
}

impl core::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.g
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let kills = self.g.t.take_async_signals();
        // SAFETY: the guard is dropped once, here, and never used again.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.g) };
        let _ = HOLDS.try_with(|h| h.set(false));
        // After the lock: a SIGIO handler may read the socket at once.
        crate::sockets::send_async_signals(kills);
    }
}

/// Why a wait ended without its condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEnd {
    Timeout,
    /// A signal handler ran.
    Interrupted,
}

thread_local! {
    static WAITER: WaiterFd = const { WaiterFd(core::cell::Cell::new(-1)) };
}

/// This thread's wake-up eventfd, closed when the thread exits.
struct WaiterFd(core::cell::Cell<RawFd>);

impl Drop for WaiterFd {
    fn drop(&mut self) {
        let fd = self.0.get();
        if fd >= 0 {
            fdtable::clear(fd);
            // SAFETY: our own eventfd, never handed out.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

fn waiter_fd() -> Option<RawFd> {
    WAITER
        .try_with(|w| {
            if w.0.get() < 0
                && let Some(fd) = new_eventfd()
            {
                w.0.set(fd);
            }
            let fd = w.0.get();
            (fd >= 0).then_some(fd)
        })
        .ok()
        .flatten()
}

/// ppoll(2) as a raw system call (with an optional signal mask).
///
/// # Safety
/// `fds` valid pollfds; `sigmask` null or a valid sigset.
pub unsafe fn raw_ppoll(
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Result<usize, rustix::io::Errno> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64 / 2) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    let tsp = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: per the contract; the sigset size is the kernel's (8).
    let r = unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tsp,
            sigmask,
            8usize,
        )
    };
    if r < 0 {
        // SAFETY: reading this thread's errno right after the call.
        Err(rustix::io::Errno::from_raw_os_error(unsafe {
            *libc::__errno_location()
        }))
    } else {
        Ok(r as usize)
    }
}

/// After a wait was interrupted by a signal handler: whether a call that
/// Linux restarts under SA_RESTART should go on (true) or fail with EINTR.
/// The handler that ran is not known here, so this looks at every caught
/// signal: restart only when all of them have SA_RESTART.
pub fn restart_after_signal() -> bool {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..34).contains(&sig) {
            continue;
        }
        let mut old = [0u64; 4];
        // SAFETY: rt_sigaction with a null new action only reads the
        // current one into `old` (the kernel's layout: handler, flags,
        // restorer, mask of 8 bytes).
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                core::ptr::null::<u8>(),
                old.as_mut_ptr(),
                8usize,
            )
        };
        if r != 0 {
            continue;
        }
        let handler = old[0] as usize;
        let flags = old[1] as c_int;
        if handler != libc::SIG_DFL && handler != libc::SIG_IGN && flags & libc::SA_RESTART == 0 {
            return false;
        }
    }
    true
}

impl Engine {
    /// Open the device, build the stack, start the progress thread.
    pub fn start(cfg: &Config, own: Ownership) -> Result<&'static Engine, String> {
        let mut dev = Device::open(cfg)?;
        crate::log!(Debug, "{}: {} device", cfg.iface, dev.name());
        dev.renumber_fds(high_internal);
        let dev_fd = dev.fd().as_raw_fd();
        let ifindex = dev.ifindex();
        fdtable::set(dev_fd, Entry::Internal(1));
        let mut sc = StackConfig::new(Mac(dev.mac()));
        sc.mtu = dev.mtu().min(65535) as u16;
        sc.record_events = false;
        // DAD's first probe waits below 10 ms, not Linux's 1 s
        // (`rtr_solicit_delay`, RFC 4862 5.4.2's SHOULD against a link
        // coming up on many hosts at once): the process starting is not a
        // link coming up, its addresses are usable after 1 s, and the
        // link-local and the configured addresses finish DAD together.
        sc.ipv6.rtr_solicit_delay = Duration::from_millis(10);
        if cfg.backend == crate::config::Backend::Xdp && !cfg.share_addr {
            // Dedicated AF_XDP serves the addresses it is given: the
            // program steers those. An address SLAAC would form is not
            // steered, and the kernel, with the same MAC, may form the
            // same one: shunt takes none (router advertisements still
            // give routes and the MTU).
            sc.ipv6.autoconf = false;
        }
        if cfg.share_addr {
            // The kernel owns the addresses (it ran DAD, it has the
            // link-local one) and resolves the neighbours.
            sc.neighbor.external = true;
            sc.ipv6.dad_transmits = 0;
            sc.ipv6.link_local = false;
        }
        let mut seed = [0u8; 8];
        // SAFETY: getrandom(2) into our 8-byte buffer.
        let _ = unsafe { libc::syscall(libc::SYS_getrandom, seed.as_mut_ptr(), 8usize, 0) };
        sc.seed = u64::from_ne_bytes(seed);
        let mut stack = Stack::new(sc);
        let base = std::time::Instant::now();
        // ICMP timestamps and IPv4 timestamp options are UTC ms of day.
        if let Ok(wall) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            stack.set_wall_clock(wall.as_nanos() as u64);
        }
        for a in &cfg.addrs {
            match a.addr {
                std::net::IpAddr::V4(a4) => {
                    stack.add_ipv4_address(a4.into(), a.prefix, Instant::ZERO)
                }
                // Like `ip addr add ADDR/PREFIX` on a link that is up: the
                // link-local address from the MAC, the address and its
                // on-link prefix route, both through DAD (crate::dad says
                // what sockets see meanwhile).
                std::net::IpAddr::V6(a6) => {
                    stack.add_ipv6_address_with_prefix(a6.into(), a.prefix, Instant::ZERO)
                }
            }
            .map_err(|e| format!("SHUNT_ADDR {}/{}: {e:?}", a.addr, a.prefix))?;
        }
        for g in &cfg.gateways {
            match *g {
                std::net::IpAddr::V4(g4) => stack.set_ipv4_gateway(g4.into()),
                std::net::IpAddr::V6(g6) => stack.set_ipv6_gateway(g6.into()),
            }
            .map_err(|e| format!("SHUNT_GW {g}: {e:?}"))?;
        }
        if !cfg.share_addr {
            // Dedicated AF_XDP steers the configured addresses (the device
            // has them); also the link-local address, unless the kernel
            // has the same one on this interface (same MAC): it keeps it.
            for a in stack.ipv6_addresses() {
                let ip = std::net::IpAddr::V6(a.addr.into());
                if !crate::init::kernel_has_scoped(ip, ifindex as u32) {
                    dev.add_addr(ip);
                }
            }
        }
        let shared = if cfg.share_addr {
            let sh = crate::shared::Shared::open(ifindex, &mut stack, Instant::ZERO, |fd| {
                high_internal(fd.as_fd())
            })?;
            Some(Box::new(sh))
        } else {
            None
        };
        let nl_fd = shared.as_ref().map_or(-1, |s| s.netlink_fd());
        let prog_efd = new_eventfd().ok_or("cannot create an eventfd")?;
        let tap = Tap::new(cfg)?;
        let stat = Export::new(cfg, &dev.name());
        let engine: &'static Engine = Box::leak(Box::new(Engine {
            inner: Mutex::new(Inner {
                stack,
                dev,
                base,
                waiters: Vec::new(),
                poller: DevPoller::Progress,
                tx_blocked: false,
                t: Tables::default(),
                relays: crate::relay::Relays::new(prog_efd),
                _own: own,
                tap,
                dirty: true,
                dirty_efd: if stat.is_some() { prog_efd } else { -1 },
                prog_efd,
                prog_parked: false,
                shared,
            }),
            nl_fd,
            dev_fd,
            prog_efd,
            forked: AtomicBool::new(false),
            ifindex,
            cfg: cfg.clone(),
            stat,
        }));
        engine.lock().transmit();
        std::thread::Builder::new()
            .name("shunt-progress".into())
            .spawn(move || engine.progress())
            .map_err(|e| format!("cannot start the progress thread: {e}"))?;
        if let Some(x) = &engine.stat {
            // Without it, `shunt stat` does not see this process; the
            // program runs all the same.
            let _ = std::thread::Builder::new()
                .name("shunt-stat".into())
                .spawn(move || x.run());
        }
        Ok(engine)
    }

    /// The state, locked, after a turn.
    pub fn lock(&self) -> Locked<'_> {
        let mut g = self.inner_lock();
        // A forked child never drives the parent's stack (crate::relay).
        if !self.forked.load(Ordering::Relaxed) {
            g.turn();
        }
        g
    }

    /// The state, locked, without a turn.
    pub fn inner_lock(&self) -> Locked<'_> {
        let g = self.inner.lock();
        HOLDS.with(|h| h.set(true));
        Locked {
            g: core::mem::ManuallyDrop::new(g),
        }
    }

    /// After an operation that may have changed what others wait for.
    pub fn done(&self, mut g: Locked<'_>) {
        g.transmit();
        g.notify();
        let Inner { t, stack, .. } = &mut *g;
        t.signal_async(stack);
        drop(g);
    }

    /// At exit (after the exit drain): write out the recording, remove
    /// the export.
    pub fn finish(&self) {
        if self.forked.load(Ordering::Acquire) {
            return;
        }
        if let Some(tap) = &mut self.inner_lock().tap {
            tap.flush();
        }
        if let Some(x) = &self.stat {
            x.remove();
        }
    }

    /// Quiesce for fork: hold the mutex across it.
    pub fn before_fork(&self) {
        let mut g = self.inner.lock();
        crate::relay::prepare(&mut g);
        core::mem::forget(g);
    }

    pub fn after_fork(&self, in_child: bool) {
        if in_child {
            self.forked.store(true, Ordering::Release);
        }
        // SAFETY: before_fork locked the mutex in this (or the parent's)
        // thread and forgot the guard: this thread has it to itself.
        let g = unsafe { &mut *self.inner.data_ptr() };
        crate::relay::after(g, in_child);
        if in_child {
            g.dev.close_in_child();
        }
        if !in_child {
            // The progress thread now also watches the new control channel.
            efd_write(self.prog_efd);
            // SAFETY: before_fork locked it in this thread and forgot the
            // guard.
            unsafe { self.inner.force_unlock() };
            return;
        }
        // Not an unlock: a thread of the parent parked on the mutex at the
        // fork (the progress thread wanting a turn, a program thread in a
        // shunt call) is queued in parking_lot's table but does not exist
        // here, and an unlock may hand the lock to it (eventual fairness)
        // or leave the parked bit that makes later unlocks wake it: the
        // child would block forever on its first use of a socket. The
        // child has this one thread, so the mutex starts afresh (the
        // stale queue entries matter only if two of the child's threads
        // ever contend for it: one unlock may then wake a ghost).
        let raw = core::ptr::from_ref(
            // SAFETY: only the reference is taken; the guard of
            // before_fork, held by this thread, was forgotten.
            unsafe { self.inner.raw() },
        )
        .cast_mut();
        // SAFETY: no other thread exists in the child to hold the mutex;
        // the raw mutex is one atomic (interior mutability): a write
        // through the shared reference is sound.
        unsafe { raw.write(<parking_lot::RawMutex as parking_lot::lock_api::RawMutex>::INIT) };
    }

    fn progress(&'static self) {
        // Signals are the program's threads' business: a process-directed
        // signal must never run a handler on this thread (it could call
        // into shunt while this thread holds the lock).
        // SAFETY: a full set, applied to this thread only.
        unsafe {
            let mut all: libc::sigset_t = core::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, core::ptr::null_mut());
        }
        let mut fds = Vec::new();
        let mut exported: Option<std::time::Instant> = None;
        loop {
            if self.forked.load(Ordering::Acquire) {
                return;
            }
            let (timeout, text, due) = {
                let mut g = self.inner.lock();
                let busy = g.turn();
                crate::sockets::shared_sweep(&mut g);
                if !busy && let Some(tap) = &mut g.tap {
                    tap.flush();
                }
                let mut text = None;
                let mut timeout = g.stack_wait();
                let now = std::time::Instant::now();
                g.prog_parked = false;
                let poll_dev = match g.poller {
                    DevPoller::Progress => true,
                    // The waiter sleeps on the device and runs the timers
                    // (its sleep ends at the stack's deadline) and tells
                    // this thread when it leaves (`release_device`). A
                    // waiter that never comes back (a signal handler that
                    // longjmps out of its poll) costs at most WAITER_GONE
                    // of unpolled device, not 1000 wake-ups a second.
                    DevPoller::Waiter(_) => {
                        timeout = Some(timeout.map_or(WAITER_GONE, |t| t.min(WAITER_GONE)));
                        g.prog_parked = true;
                        false
                    }
                    DevPoller::Left(t) if now >= t + HANDOVER => {
                        g.poller = DevPoller::Progress;
                        true
                    }
                    DevPoller::Left(t) => {
                        let left = t + HANDOVER - now;
                        timeout = Some(timeout.map_or(left, |x| x.min(left)));
                        false
                    }
                };
                // The eventfd first, the device while this thread is its
                // poller, then the relays (they move when their unix ends
                // are ready too).
                fds.clear();
                fds.push(libc::pollfd {
                    fd: self.prog_efd,
                    events: libc::POLLIN,
                    revents: 0,
                });
                if poll_dev {
                    fds.push(libc::pollfd {
                        fd: self.dev_fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
                if self.nl_fd >= 0 {
                    fds.push(libc::pollfd {
                        fd: self.nl_fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
                g.relays.pollfds(&mut fds);
                if self.stat.is_some() && g.dirty {
                    let now = std::time::Instant::now();
                    let due = exported.map_or(now, |t| t + EXPORT_EVERY);
                    if due <= now {
                        let dev = g.dev.counters();
                        text = Some(Export::render(&g.stack, &dev));
                        g.dirty = false;
                        exported = Some(now);
                    } else {
                        let left = due - now;
                        timeout = Some(timeout.map_or(left, |t| t.min(left)));
                    }
                }
                (timeout, text, g.t.take_async_signals())
            };
            crate::sockets::send_async_signals(due);
            if let (Some(x), Some(text)) = (&self.stat, text) {
                x.submit(text);
            }
            if timeout.is_some_and(|t| t.is_zero()) {
                continue;
            }
            // SAFETY: valid pollfds, no mask.
            let _ = unsafe { raw_ppoll(&mut fds, timeout, core::ptr::null()) };
            if fds[0].revents != 0 {
                efd_drain(self.prog_efd);
            }
            if self.nl_fd >= 0 && fds.iter().any(|p| p.fd == self.nl_fd && p.revents != 0) {
                let mut g = self.inner.lock();
                let now = g.now();
                let Inner { shared, stack, .. } = &mut *g;
                if let Some(sh) = shared {
                    sh.on_netlink(stack, now);
                }
                // What waited goes out in the next turn; a failure is a
                // socket error now.
                g.notify();
            }
        }
    }

    /// Run `f` on the locked state until it answers `Some`, sleeping in
    /// between until something changes, `deadline` passes (`None`: no
    /// limit) or a signal handler runs. `extra` are kernel pollfds to
    /// wake up for (`f` looks at them itself, e.g. with a zero-timeout
    /// poll);
    /// `sigmask` is applied during the sleep (ppoll).
    pub fn wait<T>(
        &self,
        deadline: Option<std::time::Instant>,
        extra: &mut Vec<libc::pollfd>,
        sigmask: Option<&libc::sigset_t>,
        mut f: impl FnMut(&mut Inner) -> Option<T>,
    ) -> Result<T, WaitEnd> {
        let efd = waiter_fd();
        let base = extra.len();
        if let Some(e) = efd {
            extra.push(libc::pollfd {
                fd: e,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SHUNT_SPIN_US: busy-poll the device this long before sleeping.
        let spin_end = (self.cfg.spin_us > 0)
            .then(|| std::time::Instant::now() + Duration::from_micros(self.cfg.spin_us.into()));
        // This thread took the device while spinning (it runs a turn per
        // try, so the progress thread need not wake for its frames).
        let mut spin_claim = false;
        let r = loop {
            let mut g = self.lock();
            if let Some(v) = f(&mut g) {
                if spin_claim && let Some(e) = efd {
                    g.release_device(e);
                }
                self.done(g);
                break Ok(v);
            }
            let now = std::time::Instant::now();
            if spin_end.is_some_and(|e| now < e) && deadline.is_none_or(|d| now < d) {
                if let Some(e) = efd
                    && !matches!(g.poller, DevPoller::Waiter(o) if o != e)
                {
                    g.poller = DevPoller::Waiter(e);
                    spin_claim = true;
                }
                drop(g);
                core::hint::spin_loop();
                continue;
            }
            let left = match deadline {
                Some(d) if d <= now => {
                    if spin_claim && let Some(e) = efd {
                        g.release_device(e);
                    }
                    drop(g);
                    break Err(WaitEnd::Timeout);
                }
                Some(d) => Some(d - now),
                None => None,
            };
            let mut t = g.stack_wait();
            if efd.is_none() {
                // No eventfd: poll the state every millisecond.
                t = Some(t.map_or(Duration::from_millis(1), |x| {
                    x.min(Duration::from_millis(1))
                }));
            }
            let t = match (t, left) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // One thread sleeps on the device: this one unless another
            // waiter does (its turns wake this one through the eventfd).
            // Without an eventfd it cannot be told, so it polls as well.
            let poll_dev = match (efd, g.poller) {
                (None, _) => true,
                (Some(e), DevPoller::Waiter(o)) if o != e => false,
                (Some(e), _) => {
                    g.poller = DevPoller::Waiter(e);
                    true
                }
            };
            if poll_dev {
                extra.push(libc::pollfd {
                    fd: self.dev_fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if let Some(e) = efd {
                g.waiters.push(e);
            }
            g.transmit();
            drop(g);
            for p in extra.iter_mut() {
                p.revents = 0;
            }
            let mask = sigmask.map_or(core::ptr::null(), |m| m as *const libc::sigset_t);
            // SAFETY: valid pollfds; the caller's mask.
            let r = unsafe { raw_ppoll(extra, t, mask) };
            if poll_dev {
                extra.pop();
            }
            if let Some(e) = efd {
                let mut g = self.inner_lock();
                if let Some(i) = g.waiters.iter().position(|&x| x == e) {
                    g.waiters.swap_remove(i);
                }
                g.release_device(e);
                spin_claim = false;
                drop(g);
                efd_drain(e);
            }
            if r == Err(rustix::io::Errno::INTR) {
                break Err(WaitEnd::Interrupted);
            }
        };
        extra.truncate(base);
        r
    }
}
