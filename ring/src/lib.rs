//! Packet I/O for shunt, after Snabb and Rush: packets from a preallocated
//! pool, links that are bounded rings of packets, apps that pull and push
//! packets over links, an engine that runs them in breaths, and devices
//! that put packets on a wire (memory pair, AF_PACKET) or a file (pcap).

pub mod afpacket;
pub mod apps;
pub mod csum;
pub mod engine;
pub mod error;
pub mod link;
pub mod mem;
pub mod netns;
pub mod offload;
pub mod packet;
pub mod rng;
pub mod signal;
mod sys;
pub mod xdp;

pub use engine::{App, Engine, Io, Load, RunOptions};
pub use link::{Link, LinkStats};
pub use packet::Packet;
