//! Observable state changes, emitted from where they happen (Netstack3's
//! third tenet, seeds/002): a consumer that applies every event in order
//! can rebuild the stack's addresses, routes, neighbour table and socket
//! associations without ever asking the stack.

use std::net::IpAddr;

use crate::iface::ndp::AddressState;
use crate::iface::neighbor::NeighborState;
use crate::ip::{Ipv4, Ipv6};
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
    /// A route appeared (configured, an IPv4 address's prefix, or learned
    /// from a router advertisement or redirect).
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
    /// An IPv6 address's DAD state changed (RFC 4862): tentative when
    /// added, then assigned, or DAD failed (the address is then removed:
    /// `AddressRemoved` follows). Deprecated when its preferred lifetime
    /// ends. IPv6 addresses are announced by `AddressAdded` with prefix
    /// 128 (they carry no prefix; on-link prefixes are routes).
    AddressState {
        addr: IpAddr,
        state: AddressState,
    },
    /// A UDP socket's association changed.
    Udp4(UdpEvent<Ipv4>),
    /// An IPv6 UDP socket's association changed.
    Udp6(UdpEvent<Ipv6>),
    /// A TCP socket changed (state, readable, writable, error).
    Tcp(TcpEvent),
}
