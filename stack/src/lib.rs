//! shunt's protocol stack: a sans-IO TCP/IP core, driven from outside by
//! frames, a clock and socket calls. It never calls the OS.
//!
//! The foundation is three modules that everything else is written on:
//!
//! - [`ip`]: the IP version as a type parameter (`I: Ip`), so that the IP
//!   layer, ICMP error logic, routing and sockets are written once for IPv4
//!   and IPv6 rather than twice (or, as in most small stacks, once and a
//!   half).
//! - [`wire`]: zero-copy views of every header the stack speaks, and
//!   builders that write headers into a caller's buffer. Parsing untrusted
//!   bytes never panics; every malformed packet becomes a [`wire::ParseError`]
//!   that the layer above counts and drops.
//! - [`seq`]: TCP sequence numbers, whose comparisons wrap.
#![forbid(unsafe_code)]

pub mod context;
pub mod counters;
pub mod errno;
pub mod events;
pub mod fasthash;
pub mod icmp;
pub mod iface;
pub mod ip;
pub mod ip_layer;
pub mod seq;
mod stack;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;

pub use counters::{Counter, Counters};
pub use errno::Errno;
pub use events::Event;
pub use iface::RxOffload;
pub use ip::{
    Ip, IpAddress, IpBuilder, IpPacket, IpProto, IpVersion, Ipv4, Ipv4Addr, Ipv6, Ipv6Addr, Subnet,
};
pub use seq::SeqNum;
pub use stack::{EchoReply, Stack, StackConfig, TcpCtx, UdpHandle, UdpRecv};
pub use udp::{
    PmtuDisc, Readiness, RecvFlags, RecvMeta, RxInfo, RxTimestamp, Shutdown, UdpOptions,
};
pub use wire::{BuildError, Mac, ParseError};
