//! Socket addresses as TCP sees them: either IP version, because a socket
//! of one family (a dual-stack IPv6 socket) carries connections of both.
//!
//! Connections are keyed by their *wire* addresses: a v4-mapped IPv6 peer
//! (`::ffff:192.0.2.1`) is an IPv4 connection on the wire and is stored as
//! [`IpAddr::V4`]. The socket's [`Domain`] says how names are reported back
//! to the application ([`SockAddr::for_domain`]).

use core::fmt;

use crate::ip::{IpAddress, Ipv4Addr, Ipv6Addr};

/// An address of either version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpAddr {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl IpAddr {
    pub const V4_ANY: IpAddr = IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0));
    pub const V6_ANY: IpAddr = IpAddr::V6(Ipv6Addr::from_octets([0; 16]));

    pub fn is_unspecified(&self) -> bool {
        match self {
            IpAddr::V4(a) => a.is_unspecified(),
            IpAddr::V6(a) => a.is_unspecified(),
        }
    }
    pub fn is_multicast(&self) -> bool {
        match self {
            IpAddr::V4(a) => a.is_multicast(),
            IpAddr::V6(a) => a.is_multicast(),
        }
    }
    pub fn is_v4(&self) -> bool {
        matches!(self, IpAddr::V4(_))
    }
    /// A v4-mapped IPv6 address as the IPv4 address it stands for;
    /// anything else unchanged. This is the wire form.
    pub fn to_canonical(self) -> IpAddr {
        match self {
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => self,
            },
            v4 => v4,
        }
    }
    /// The address as an IPv6 socket reports it (`::ffff:a.b.c.d`).
    pub fn to_v6(self) -> Ipv6Addr {
        match self {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        }
    }
    /// Network-order bytes (4 or 16).
    pub fn bytes(&self) -> &[u8] {
        match self {
            IpAddr::V4(a) => a.bytes(),
            IpAddr::V6(a) => a.bytes(),
        }
    }
}

impl fmt::Debug for IpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl fmt::Display for IpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpAddr::V4(a) => fmt::Display::fmt(a, f),
            IpAddr::V6(a) => fmt::Display::fmt(a, f),
        }
    }
}

impl From<Ipv4Addr> for IpAddr {
    fn from(a: Ipv4Addr) -> IpAddr {
        IpAddr::V4(a)
    }
}
impl From<Ipv6Addr> for IpAddr {
    fn from(a: Ipv6Addr) -> IpAddr {
        IpAddr::V6(a)
    }
}
impl From<std::net::IpAddr> for IpAddr {
    fn from(a: std::net::IpAddr) -> IpAddr {
        match a {
            std::net::IpAddr::V4(a) => IpAddr::V4(a.into()),
            std::net::IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_octets(a.octets())),
        }
    }
}
impl From<IpAddr> for std::net::IpAddr {
    fn from(a: IpAddr) -> std::net::IpAddr {
        match a {
            IpAddr::V4(a) => a.to_std(),
            IpAddr::V6(a) => a.to_std(),
        }
    }
}

/// An address and a port.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockAddr {
    pub ip: IpAddr,
    pub port: u16,
}

impl SockAddr {
    pub const fn new(ip: IpAddr, port: u16) -> SockAddr {
        SockAddr { ip, port }
    }
    pub fn v4(a: [u8; 4], port: u16) -> SockAddr {
        SockAddr::new(IpAddr::V4(Ipv4Addr::from_octets(a)), port)
    }
    /// The name as a socket of `domain` reports it: IPv4 addresses mapped
    /// into IPv6 for an IPv6 socket.
    pub fn for_domain(self, domain: Domain) -> SockAddr {
        match domain {
            Domain::V4 => self,
            Domain::V6 => SockAddr::new(IpAddr::V6(self.ip.to_v6()), self.port),
        }
    }
    pub fn to_canonical(self) -> SockAddr {
        SockAddr::new(self.ip.to_canonical(), self.port)
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

impl From<std::net::SocketAddr> for SockAddr {
    fn from(a: std::net::SocketAddr) -> SockAddr {
        SockAddr::new(a.ip().into(), a.port())
    }
}
impl From<SockAddr> for std::net::SocketAddr {
    fn from(a: SockAddr) -> std::net::SocketAddr {
        std::net::SocketAddr::new(a.ip.into(), a.port)
    }
}

/// A socket's address family (`AF_INET` or `AF_INET6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    V4,
    V6,
}

/// Local and remote wire addresses: the connection table's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub local: SockAddr,
    pub remote: SockAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_round_trip() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let m = IpAddr::V6(v4.to_v6());
        assert_eq!(m.to_canonical(), v4);
        let sa = SockAddr::new(v4, 80);
        assert_eq!(sa.for_domain(Domain::V6).to_canonical(), sa);
        assert_eq!(
            format!("{}", sa.for_domain(Domain::V6)),
            "[::ffff:192.0.2.1]:80"
        );
        let std: std::net::SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(std::net::SocketAddr::from(SockAddr::from(std)), std);
    }
}
