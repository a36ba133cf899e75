//! Observable state changes, emitted from where they happen (Netstack3's
//! third tenet, seeds/002): a consumer that applies every event in order
//! can rebuild the stack's addresses, routes, neighbour table and socket
//! associations without ever asking the stack.

use std::net::IpAddr;

use crate::iface::neighbor::NeighborState;
use crate::ip::Ipv4;
use crate::tcp::TcpEvent;
use crate::udp::UdpEvent;
use crate::wire::Mac;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    AddressAdded {
        addr: IpAddr,
        prefix: u8,
    },
    AddressRemoved {
        addr: IpAddr,
    },
    RouteAdded {
        dst: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
    },
    RouteRemoved {
        dst: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
    },
    /// A neighbour entry's state or MAC changed; `state: None` when it was
    /// removed.
    Neighbor {
        addr: IpAddr,
        state: Option<NeighborState>,
        mac: Option<Mac>,
    },
    /// A path MTU was learned (or lowered) for a destination.
    PathMtu {
        dst: IpAddr,
        mtu: u16,
    },
    /// A UDP socket's association changed.
    Udp4(UdpEvent<Ipv4>),
    /// A TCP socket changed (state, readable, writable, error).
    Tcp(TcpEvent),
}
