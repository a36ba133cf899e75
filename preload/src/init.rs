//! Start-up: the constructor (real functions, environment capture, fork
//! handlers) and the lazy activation on the first AF_INET/AF_INET6
//! `socket()`.
//!
//! The constructor runs in every process the library is preloaded into,
//! so it does only what is cheap: resolve the real functions, copy the
//! `SHUNT_*` variables (only if there are any: programs such as nginx and
//! redis later overwrite the original environment block with their process
//! title), and register fork handlers. Parsing the configuration, printing
//! its error, claiming the ownership lock and starting the stack wait for
//! the first INET socket, so a program that never opens one pays nothing
//! and prints nothing.

use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use crate::config::{self, LogLevel, Parsed};
use crate::{fdtable, log, real, socket};

/// `SHUNT_*` as the process started with them.
static ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const KERNEL: u8 = 2;
const ACTIVE: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static INIT_TID: AtomicI32 = AtomicI32::new(0);

/// The constructor, from `.init_array`: glibc passes argc, argv and envp
/// to every object's initialisers.
extern "C" fn constructor(_argc: c_int, _argv: *const *const c_char, envp: *const *const c_char) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let missing = real::resolve_all();
        // SAFETY: envp is the environment block glibc hands to
        // initialisers: a null-terminated array of C strings (or null).
        unsafe { capture_env(envp) };
        if let Some(l) = env_var("SHUNT_LOG").and_then(|v| LogLevel::parse(v).ok()) {
            log::set_level(l);
        }
        install_panic_hook();
        // SAFETY: registering plain extern "C" handlers without captures.
        unsafe {
            libc::pthread_atfork(
                Some(atfork_prepare),
                Some(atfork_parent),
                Some(atfork_child),
            );
        }
        crate::log!(
            Debug,
            "loaded into pid {} ({} of {} real functions missing)",
            rustix::process::getpid().as_raw_nonzero(),
            missing,
            real::NAMES.len()
        );
    }));
}

/// The destructor, from `.fini_array` (exit(3) runs it; _exit(2) does
/// not): let shunt's connections finish what the program queued.
extern "C" fn destructor() {
    if STATE.load(Ordering::Acquire) == ACTIVE
        && let Some(s) = crate::sockets::SHUNT.get()
    {
        let was = IN_SHUNT.with(|c| c.replace(true));
        let _ = catch_unwind(AssertUnwindSafe(|| s.at_exit()));
        IN_SHUNT.with(|c| c.set(was));
    }
}

#[used]
#[unsafe(link_section = ".fini_array")]
static DESTRUCTOR: extern "C" fn() = destructor;

#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = constructor;

/// Copy the `SHUNT_*` entries of `envp`.
///
/// # Safety
/// `envp` is null or a null-terminated array of NUL-terminated strings.
unsafe fn capture_env(envp: *const *const c_char) {
    let mut vars = Vec::new();
    if !envp.is_null() {
        let mut p = envp;
        // SAFETY: per the contract, every entry up to the null one is a
        // valid C string.
        unsafe {
            while !(*p).is_null() {
                let bytes = CStr::from_ptr(*p).to_bytes();
                if bytes.starts_with(b"SHUNT_")
                    && let Ok(s) = std::str::from_utf8(bytes)
                    && let Some((k, v)) = s.split_once('=')
                {
                    vars.push((k.to_string(), v.to_string()));
                }
                p = p.add(1);
            }
        }
    }
    let _ = ENV.set(vars);
}

fn env_var(name: &str) -> Option<&'static str> {
    ENV.get()?
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

thread_local! {
    /// Set while a hook runs shunt code, so our panic hook knows a panic is
    /// ours (in the rlib, linked into a Rust program, others are not).
    pub(crate) static IN_SHUNT: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_SHUNT.with(|c| c.get()) {
            let loc = info.location();
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("panic");
            crate::log!(
                Error,
                "internal error: {msg} at {}:{}; the call goes to the kernel",
                loc.map(|l| l.file()).unwrap_or("?"),
                loc.map(|l| l.line()).unwrap_or(0)
            );
        } else {
            previous(info);
        }
    }));
}

/// Whether shunt's stack serves new INET sockets. The first call decides
/// (parse, report, claim, start); later calls are one load.
#[inline]
pub fn stack_active() -> bool {
    match STATE.load(Ordering::Acquire) {
        KERNEL => false,
        ACTIVE => true,
        _ => activate_slow(),
    }
}

#[cold]
#[inline(never)]
fn activate_slow() -> bool {
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    loop {
        match STATE.compare_exchange(UNINIT, BUSY, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                INIT_TID.store(tid, Ordering::Relaxed);
                let r = catch_unwind(AssertUnwindSafe(activate)).unwrap_or(KERNEL);
                STATE.store(r, Ordering::Release);
                return r == ACTIVE;
            }
            Err(KERNEL) => return false,
            Err(ACTIVE) => return true,
            Err(_) => {
                // Another thread is starting the stack; this thread waits
                // for its answer, unless it is that thread (a signal
                // handler or a library calling socket() during start-up).
                if INIT_TID.load(Ordering::Relaxed) == tid {
                    return false;
                }
                rustix::thread::sched_yield();
            }
        }
    }
}

/// Decide the process's mode from its environment.
fn activate() -> u8 {
    let vars = ENV.get().map(Vec::as_slice).unwrap_or(&[]);
    match config::parse(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Err(e) => {
            log::set_level(e.log);
            crate::log!(Error, "{e}; the program runs on the kernel");
            KERNEL
        }
        Ok(Parsed::Inactive { log }) => {
            log::set_level(log);
            crate::log!(Debug, "no SHUNT_IFACE: every socket stays with the kernel");
            KERNEL
        }
        Ok(Parsed::Active(cfg)) => {
            log::set_level(cfg.log);
            start_stack(&cfg)
        }
    }
}

/// Start the stack for `cfg`: claim the addresses ([`claim_or_warn`]) in
/// this network namespace's lock directory, open the device, register the
/// [`socket::ShuntSockets`] integration. Any failure is one line on stderr
/// and the process runs on the kernel.
fn start_stack(cfg: &config::Config) -> u8 {
    let shared;
    let cfg = if cfg.share_addr {
        match shared_config(cfg) {
            Ok(c) => {
                shared = c;
                &shared
            }
            Err(e) => {
                crate::log!(
                    Error,
                    "{}; the program runs on the kernel",
                    naming(&cfg.iface, &e)
                );
                return KERNEL;
            }
        }
    } else {
        cfg
    };
    // The kernel is a stack too: never two stacks on one address (unless
    // shared: then the address is the kernel's, steered by port).
    if let Some(a) = cfg
        .addrs
        .iter()
        .find(|a| !cfg.share_addr && kernel_has(a.addr))
    {
        crate::log!(
            Info,
            "{} is the kernel's own address in this namespace; the program runs on the kernel",
            a.addr
        );
        return KERNEL;
    }
    let dir = lock_dir();
    let Some(own) = claim_or_warn(cfg, &dir) else {
        return KERNEL;
    };
    match crate::sockets::start(cfg, own) {
        Ok(()) => {
            let addrs: Vec<String> = cfg.addrs.iter().map(|a| a.to_string()).collect();
            crate::log!(
                Info,
                "serving {} on {} with shunt's stack",
                addrs.join(","),
                cfg.iface
            );
            ACTIVE
        }
        Err(e) => {
            crate::log!(
                Error,
                "{}; the program runs on the kernel",
                naming(&cfg.iface, &e)
            );
            KERNEL
        }
    }
}

/// Shared-address mode: without SHUNT_ADDR, the kernel's addresses of
/// the interface (with their prefixes); without SHUNT_GW, its default
/// gateways through it.
fn shared_config(cfg: &config::Config) -> Result<config::Config, String> {
    let mut c = cfg.clone();
    let ifindex = ifindex_of(&cfg.iface).ok_or("no such interface")?;
    if c.addrs.is_empty() {
        c.addrs = crate::netlink::addresses(ifindex)?
            .into_iter()
            .map(|(addr, prefix)| config::Cidr { addr, prefix })
            .collect();
        if c.addrs.is_empty() {
            return Err("SHUNT_SHARE_ADDR=1: the interface has no address".into());
        }
    }
    if c.gateways.is_empty() {
        c.gateways = crate::netlink::gateways(ifindex)?;
    }
    Ok(c)
}

/// The index of interface `name` (SIOCGIFINDEX, a raw system call).
fn ifindex_of(name: &str) -> Option<i32> {
    use std::os::fd::AsRawFd;
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let fd = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .ok()?;
    // SAFETY: ifreq is plain data; zero is valid.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFINDEX reads the name and writes the index into our
    // ifreq; a raw system call, not our ioctl hook.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd.as_raw_fd(),
            libc::SIOCGIFINDEX,
            &mut req as *mut libc::ifreq,
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: the kernel filled the index member.
    Some(unsafe { req.ifr_ifru.ifru_ifindex })
}

/// `e`, with the interface in front unless it names it already (device
/// errors do: "AF_XDP on veth0: ...").
fn naming(iface: &str, e: &str) -> String {
    if e.contains(iface) {
        e.to_string()
    } else {
        format!("{iface}: {e}")
    }
}

/// Whether the kernel holds `addr` in this network namespace. IPv4: the
/// interfaces' addresses (SIOCGIFCONF), as a bind test would pass for any
/// address in a namespace that never had one (no local routing table, so
/// the kernel takes every address for a broadcast one). IPv6: a kernel UDP
/// socket can bind it (raw system calls, nothing of ours is involved).
pub fn kernel_has(addr: std::net::IpAddr) -> bool {
    kernel_has_scoped(addr, 0)
}

/// [`kernel_has`], with the scope (interface index) a link-local IPv6
/// address needs.
pub fn kernel_has_scoped(addr: std::net::IpAddr, scope: u32) -> bool {
    use rustix::net::{AddressFamily, SocketType, bind, socket};
    let (fam, sa) = match addr {
        std::net::IpAddr::V4(a) => return kernel_ipv4_addrs().contains(&a),
        std::net::IpAddr::V6(a) => (
            AddressFamily::INET6,
            std::net::SocketAddr::V6(std::net::SocketAddrV6::new(a, 0, 0, scope)),
        ),
    };
    match socket(fam, SocketType::DGRAM, None) {
        Ok(fd) => bind(&fd, &sa).is_ok(),
        Err(_) => false,
    }
}

/// The IPv4 addresses of this namespace's interfaces (up to 64).
fn kernel_ipv4_addrs() -> Vec<std::net::Ipv4Addr> {
    use std::os::fd::AsRawFd;
    let Ok(fd) = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    ) else {
        return Vec::new();
    };
    let mut reqs = [[0u8; core::mem::size_of::<libc::ifreq>()]; 64];
    let mut conf = libc::ifconf {
        ifc_len: core::mem::size_of_val(&reqs) as libc::c_int,
        ifc_ifcu: libc::__c_anonymous_ifc_ifcu {
            ifcu_buf: reqs.as_mut_ptr().cast(),
        },
    };
    // SAFETY: SIOCGIFCONF writes at most ifc_len bytes of struct ifreq
    // records at ifcu_buf, which points to `reqs` of that size, and sets
    // ifc_len to what it wrote; a raw system call, not our ioctl hook.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd.as_raw_fd(),
            libc::SIOCGIFCONF,
            &mut conf as *mut libc::ifconf,
        )
    };
    if r < 0 {
        return Vec::new();
    }
    let n = (conf.ifc_len.max(0) as usize / core::mem::size_of::<libc::ifreq>()).min(reqs.len());
    // ifr_addr (a sockaddr_in) follows the 16-byte name: family, port,
    // then the address.
    reqs[..n]
        .iter()
        .filter(|r| u16::from_ne_bytes([r[16], r[17]]) == libc::AF_INET as u16)
        .map(|r| std::net::Ipv4Addr::new(r[20], r[21], r[22], r[23]))
        .collect()
}

/// The lock directory of this network namespace: an interface name and an
/// address are only unique within one (`/run/shunt/netns-<inode>`).
fn lock_dir() -> String {
    let base = crate::lock::LOCK_DIR;
    let _ = rustix::fs::mkdir(base, rustix::fs::Mode::from_raw_mode(0o755));
    match rustix::fs::stat("/proc/thread-self/ns/net") {
        Ok(st) => format!("{base}/netns-{}", st.st_ino),
        Err(_) => base.to_string(),
    }
}

/// Claim `cfg`'s addresses in `dir`: on success mark the lock fds as
/// shunt's own; when another process holds one, print the one warning
/// line and return `None` (the process then uses the kernel).
pub fn claim_or_warn(cfg: &config::Config, dir: &str) -> Option<crate::lock::Ownership> {
    let addrs: Vec<_> = cfg.addrs.iter().map(|c| c.addr).collect();
    match crate::lock::claim(dir, &cfg.iface, &addrs) {
        Ok(own) => {
            for fd in own.fds() {
                fdtable::set(fd, fdtable::Entry::Internal(0));
            }
            Some(own)
        }
        Err(e) => {
            crate::log!(Warn, "{e}");
            None
        }
    }
}

extern "C" fn atfork_prepare() {
    if !fdtable::all_kernel()
        && let Some(s) = socket::sockets()
    {
        let _ = catch_unwind(AssertUnwindSafe(|| s.before_fork()));
    }
}

extern "C" fn atfork_parent() {
    if !fdtable::all_kernel()
        && let Some(s) = socket::sockets()
    {
        let _ = catch_unwind(AssertUnwindSafe(|| s.after_fork(false)));
    }
}

extern "C" fn atfork_child() {
    if !fdtable::all_kernel()
        && let Some(s) = socket::sockets()
    {
        let _ = catch_unwind(AssertUnwindSafe(|| s.after_fork(true)));
    }
}
