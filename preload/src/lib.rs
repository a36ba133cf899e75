//! libshunt.so: the LD_PRELOAD shim in front of a program's socket calls.
//!
//! Layout:
//! - [`hooks`]: the exported libc entry points (socket API, descriptors,
//!   data calls and their fortified variants, poll/select/epoll, fork,
//!   vfork, exec);
//! - [`fdtable`]: the lock-free table saying which fds are shunt's;
//! - [`real`]: the real libc functions, resolved in the constructor;
//! - [`init`]: constructor and lazy activation on the first INET socket;
//! - [`config`]: the pure `SHUNT_*` parser;
//! - [`lock`]: the per-(interface, address) ownership lock;
//! - [`socket`]: the internal API the stack integration implements;
//! - [`log`]: one-line messages on stderr through raw `write(2)`;
//! - [`usermem`]: `EFAULT` for the program's bad buffers;
//! - [`privdrop`]: start before a privilege drop; the privileged-port rule.
//!
//! - [`engine`]: the driver: the process's stack on the AF_PACKET device,
//!   inline progress, the progress thread, blocking waits;
//! - [`sockets`]: the [`socket::ShuntSockets`] integration for TCP and
//!   UDP over IPv4 and IPv6 (dual-stack AF_INET6 sockets included);
//! - [`sockaddr`]: `sockaddr_in`/`sockaddr_in6` in and out, as Linux
//!   checks and writes them;
//! - [`dad`]: what sockets see while IPv6 addresses are tentative;
//! - [`relay`] and [`forked`]: connections shared with forked children
//!   (and the programs they exec), relayed through the parent;
//! - [`tap`]: `SHUNT_PCAP` and `SHUNT_NETEM` between device and stack;
//! - [`stat`]: the counters and socket table `shunt stat` reads.
//!
//! With `SHUNT_IFACE` set, the first AF_INET or AF_INET6 socket starts the stack
//! ([`init`]); without it every fd is the kernel's and every hook passes
//! its call through.

pub mod config;
pub mod dad;
pub mod device;
pub mod engine;
pub mod fdtable;
pub mod forked;
pub mod hooks;
pub mod init;
pub mod lock;
pub mod log;
pub mod netlink;
pub mod privdrop;
pub mod real;
pub mod relay;
pub mod shared;
pub mod sockaddr;
pub mod socket;
pub mod sockets;
pub mod stat;
pub mod tap;
pub mod usermem;
