//! The IP version as a type.
//!
//! Everything above the link layer is written once, generic over `I: Ip`:
//! routing, fragmentation, ICMP error rules, sockets. The differences
//! between the versions live here, as associated constants and address
//! methods, so that generic code asks "what is the ICMP protocol number for
//! `I`" instead of matching on a version. IPv6 then arrives as an
//! implementation of the same code, not as a second copy of it (the survey
//! in seeds/004 found that copy missing or broken in every toy stack).
//!
//! Addresses are our own types rather than `std::net`'s so that they can
//! sit inside zero-copy header structs, be built in `const` context and
//! lend out their bytes by reference for checksumming. They convert to and
//! from `std::net` freely.
//!
//! Following Netstack3, an IPv6 address never carries a prefix length:
//! whether an IPv6 address is unicast can be read from the address itself,
//! and on-link prefixes are routes ([`Subnet`]), not properties of an
//! address. IPv4 needs the prefix to recognise a directed broadcast, which
//! is what [`Subnet::broadcast`] is for.

use core::fmt;
use core::hash::Hash;
use core::str::FromStr;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::wire::ipv4::{Ipv4Builder, Ipv4Packet};
use crate::wire::ipv6::{Ipv6Builder, Ipv6Packet};
use crate::wire::{BuildError, EtherType, Mac, ParseError};

mod sealed {
    pub trait Sealed {}
}

/// Which IP version, as a value, for the places that must branch at run
/// time (a socket address, a frame's ethertype).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    V4,
    V6,
}

/// An IP version. Sealed: there are two and there will only be two.
pub trait Ip:
    sealed::Sealed + Copy + fmt::Debug + Default + Eq + Ord + Hash + Send + Sync + 'static
{
    const VERSION: IpVersion;
    const NAME: &'static str;
    type Addr: IpAddress<Version = Self>;

    /// `0.0.0.0` / `::`: "no address yet", the wildcard in bind.
    const UNSPECIFIED: Self::Addr;
    /// `127.0.0.1` / `::1`.
    const LOOPBACK: Self::Addr;
    const LOOPBACK_SUBNET: Subnet<Self::Addr>;
    const MULTICAST_SUBNET: Subnet<Self::Addr>;
    /// Unicast link-local: `169.254.0.0/16` / `fe80::/10`.
    const LINK_LOCAL_SUBNET: Subnet<Self::Addr>;

    /// Length of the fixed header (without IPv4 options or IPv6 extension
    /// headers).
    const HEADER_LEN: usize;
    /// The smallest MTU a link may have (RFC 791: 68, RFC 8200: 1280).
    const MIN_MTU: u16;
    /// Upper bound on the size of an ICMP error datagram we emit: RFC 1812
    /// 4.3.2.3 (576) and RFC 4443 2.4(c) (the IPv6 minimum MTU).
    const ICMP_ERROR_MAX_LEN: usize;
    const ICMP_PROTO: IpProto;
    const ETHERTYPE: EtherType;
    /// Linux's default TTL / hop limit (`net.ipv4.ip_default_ttl`,
    /// `net.ipv6.conf.*.hop_limit`).
    const DEFAULT_TTL: u8 = 64;

    /// The parsed view of this version's header, for code that receives
    /// generically: `I::Packet::parse(buf)`.
    type Packet<'a>: IpPacket<'a, Version = Self>;
    /// The header builder, for code that sends generically.
    type Builder: IpBuilder<Version = Self>;
}

/// What the version-generic IP layer reads from a received packet.
pub trait IpPacket<'a>: Sized + Copy + fmt::Debug {
    type Version: Ip;
    /// The version's checks (see `Ipv4Packet::parse`, `Ipv6Packet::parse`).
    fn parse(buf: &'a [u8]) -> Result<Self, ParseError>;
    fn src(&self) -> <Self::Version as Ip>::Addr;
    fn dst(&self) -> <Self::Version as Ip>::Addr;
    /// TTL or hop limit.
    fn ttl(&self) -> u8;
    /// IPv4's protocol, or IPv6's fixed-header next header (which may name
    /// an extension header).
    fn next_header(&self) -> IpProto;
    /// After the IPv4 header and options, or after the fixed IPv6 header.
    fn payload(&self) -> &'a [u8];
    /// The packet without link padding: what an ICMP error quotes.
    fn as_bytes(&self) -> &'a [u8];
}

/// What the version-generic IP layer needs to write a header. Fields
/// beyond these (IPv4 ident and DF, IPv6 flow label) are set on the
/// concrete builder before it is handed over.
pub trait IpBuilder: Sized + Copy + fmt::Debug {
    type Version: Ip;
    /// Default TTL, no options, not fragmented.
    fn new(
        src: <Self::Version as Ip>::Addr,
        dst: <Self::Version as Ip>::Addr,
        proto: IpProto,
    ) -> Self;
    fn set_ttl(&mut self, ttl: u8);
    fn header_len(&self) -> usize;
    /// Writes the header at the front of `buf`, the rest being the
    /// payload. Returns the header length.
    fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError>;
}

impl<'a> IpPacket<'a> for Ipv4Packet<'a> {
    type Version = Ipv4;
    fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        Ipv4Packet::parse(buf)
    }
    fn src(&self) -> Ipv4Addr {
        Ipv4Packet::src(self)
    }
    fn dst(&self) -> Ipv4Addr {
        Ipv4Packet::dst(self)
    }
    fn ttl(&self) -> u8 {
        Ipv4Packet::ttl(self)
    }
    fn next_header(&self) -> IpProto {
        self.protocol()
    }
    fn payload(&self) -> &'a [u8] {
        Ipv4Packet::payload(self)
    }
    fn as_bytes(&self) -> &'a [u8] {
        Ipv4Packet::as_bytes(self)
    }
}

impl<'a> IpPacket<'a> for Ipv6Packet<'a> {
    type Version = Ipv6;
    fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        Ipv6Packet::parse(buf)
    }
    fn src(&self) -> Ipv6Addr {
        Ipv6Packet::src(self)
    }
    fn dst(&self) -> Ipv6Addr {
        Ipv6Packet::dst(self)
    }
    fn ttl(&self) -> u8 {
        self.hop_limit()
    }
    fn next_header(&self) -> IpProto {
        Ipv6Packet::next_header(self)
    }
    fn payload(&self) -> &'a [u8] {
        Ipv6Packet::payload(self)
    }
    fn as_bytes(&self) -> &'a [u8] {
        Ipv6Packet::as_bytes(self)
    }
}

impl IpBuilder for Ipv4Builder<'static> {
    type Version = Ipv4;
    fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProto) -> Self {
        Ipv4Builder::new(src, dst, proto)
    }
    fn set_ttl(&mut self, ttl: u8) {
        self.ttl = ttl;
    }
    fn header_len(&self) -> usize {
        Ipv4Builder::header_len(self)
    }
    fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        Ipv4Builder::emit(self, buf)
    }
}

impl IpBuilder for Ipv6Builder {
    type Version = Ipv6;
    fn new(src: Ipv6Addr, dst: Ipv6Addr, proto: IpProto) -> Self {
        Ipv6Builder::new(src, dst, proto)
    }
    fn set_ttl(&mut self, ttl: u8) {
        self.hop_limit = ttl;
    }
    fn header_len(&self) -> usize {
        Ipv6Builder::HEADER_LEN
    }
    fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        Ipv6Builder::emit(self, buf)
    }
}

// Unit structs rather than empty enums so that `Default` holds and
// generic structs holding a `PhantomData<I>` can derive their traits.

/// IPv4 as a type parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4;

/// IPv6 as a type parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6;

impl sealed::Sealed for Ipv4 {}
impl sealed::Sealed for Ipv6 {}

impl Ip for Ipv4 {
    const VERSION: IpVersion = IpVersion::V4;
    const NAME: &'static str = "IPv4";
    type Addr = Ipv4Addr;
    const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    const LOOPBACK: Ipv4Addr = Ipv4Addr::LOOPBACK;
    const LOOPBACK_SUBNET: Subnet<Ipv4Addr> = Subnet::new_const(Ipv4Addr::new(127, 0, 0, 0), 8);
    const MULTICAST_SUBNET: Subnet<Ipv4Addr> = Subnet::new_const(Ipv4Addr::new(224, 0, 0, 0), 4);
    const LINK_LOCAL_SUBNET: Subnet<Ipv4Addr> =
        Subnet::new_const(Ipv4Addr::new(169, 254, 0, 0), 16);
    const HEADER_LEN: usize = 20;
    const MIN_MTU: u16 = 68;
    const ICMP_ERROR_MAX_LEN: usize = 576;
    const ICMP_PROTO: IpProto = IpProto::ICMP;
    const ETHERTYPE: EtherType = EtherType::IPV4;
    type Packet<'a> = Ipv4Packet<'a>;
    type Builder = Ipv4Builder<'static>;
}

impl Ip for Ipv6 {
    const VERSION: IpVersion = IpVersion::V6;
    const NAME: &'static str = "IPv6";
    type Addr = Ipv6Addr;
    const UNSPECIFIED: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
    const LOOPBACK: Ipv6Addr = Ipv6Addr::LOOPBACK;
    const LOOPBACK_SUBNET: Subnet<Ipv6Addr> = Subnet::new_const(Ipv6Addr::LOOPBACK, 128);
    const MULTICAST_SUBNET: Subnet<Ipv6Addr> =
        Subnet::new_const(Ipv6Addr::new([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8);
    const LINK_LOCAL_SUBNET: Subnet<Ipv6Addr> =
        Subnet::new_const(Ipv6Addr::new([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10);
    const HEADER_LEN: usize = 40;
    const MIN_MTU: u16 = 1280;
    const ICMP_ERROR_MAX_LEN: usize = 1280;
    const ICMP_PROTO: IpProto = IpProto::ICMPV6;
    const ETHERTYPE: EtherType = EtherType::IPV6;
    type Packet<'a> = Ipv6Packet<'a>;
    type Builder = Ipv6Builder;
}

/// An IP protocol / IPv6 next-header number (IANA "Assigned Internet
/// Protocol Numbers"). A newtype rather than an enum because every value
/// can arrive on the wire and must survive the trip to an ICMP error.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProto(pub u8);

impl IpProto {
    pub const HOPOPT: IpProto = IpProto(0);
    pub const ICMP: IpProto = IpProto(1);
    pub const IGMP: IpProto = IpProto(2);
    pub const TCP: IpProto = IpProto(6);
    pub const UDP: IpProto = IpProto(17);
    pub const IPV6_ROUTE: IpProto = IpProto(43);
    pub const IPV6_FRAG: IpProto = IpProto(44);
    pub const ESP: IpProto = IpProto(50);
    pub const AH: IpProto = IpProto(51);
    pub const ICMPV6: IpProto = IpProto(58);
    pub const IPV6_NONXT: IpProto = IpProto(59);
    pub const IPV6_OPTS: IpProto = IpProto(60);

    fn name(self) -> Option<&'static str> {
        Some(match self {
            IpProto::HOPOPT => "HOPOPT",
            IpProto::ICMP => "ICMP",
            IpProto::IGMP => "IGMP",
            IpProto::TCP => "TCP",
            IpProto::UDP => "UDP",
            IpProto::IPV6_ROUTE => "IPv6-Route",
            IpProto::IPV6_FRAG => "IPv6-Frag",
            IpProto::ESP => "ESP",
            IpProto::AH => "AH",
            IpProto::ICMPV6 => "IPv6-ICMP",
            IpProto::IPV6_NONXT => "IPv6-NoNxt",
            IpProto::IPV6_OPTS => "IPv6-Opts",
            _ => return None,
        })
    }
}

impl fmt::Debug for IpProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "IpProto({})", self.0),
        }
    }
}

/// What generic code may ask of an address of either version.
pub trait IpAddress:
    sealed::Sealed
    + Copy
    + fmt::Debug
    + fmt::Display
    + FromStr
    + Eq
    + Ord
    + Hash
    + Send
    + Sync
    + 'static
{
    type Version: Ip<Addr = Self>;
    /// 32 or 128.
    const BITS: u8;

    /// Network byte order, by reference: what checksums and headers want.
    fn bytes(&self) -> &[u8];
    /// The address with all but the first `prefix` bits cleared
    /// (`prefix` ≥ `BITS` keeps the address whole).
    fn mask(&self, prefix: u8) -> Self;
    /// How many leading bits the two addresses share (RFC 6724's
    /// CommonPrefixLen, uncapped: see the module documentation).
    fn common_prefix_len(&self, other: &Self) -> u8;
    fn is_unspecified(&self) -> bool;
    fn is_loopback(&self) -> bool;
    fn is_multicast(&self) -> bool;
    /// Unicast link-local (`169.254.0.0/16`, `fe80::/10`).
    fn is_link_local(&self) -> bool;
    /// The Ethernet group address a multicast IP address is sent to
    /// (RFC 1112 6.4, RFC 2464 7); `None` if the address is not multicast.
    fn multicast_mac(&self) -> Option<Mac>;
    fn to_std(self) -> std::net::IpAddr;
}

fn prefix_mask_u32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else if prefix >= 32 {
        u32::MAX
    } else {
        u32::MAX << (32 - prefix)
    }
}

fn prefix_mask_u128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else if prefix >= 128 {
        u128::MAX
    } else {
        u128::MAX << (128 - prefix)
    }
}

/// An IPv4 address, stored in network byte order.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct Ipv4Addr([u8; 4]);

impl Ipv4Addr {
    pub const UNSPECIFIED: Ipv4Addr = Ipv4Addr([0; 4]);
    pub const LOOPBACK: Ipv4Addr = Ipv4Addr([127, 0, 0, 1]);
    /// The limited broadcast address, `255.255.255.255`.
    pub const BROADCAST: Ipv4Addr = Ipv4Addr([255; 4]);
    /// `224.0.0.1`, joined by every multicast-capable host (RFC 1112).
    pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr([224, 0, 0, 1]);

    pub const fn new(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr([a, b, c, d])
    }
    pub const fn from_octets(octets: [u8; 4]) -> Ipv4Addr {
        Ipv4Addr(octets)
    }
    pub const fn octets(self) -> [u8; 4] {
        self.0
    }
    pub const fn from_bits(bits: u32) -> Ipv4Addr {
        Ipv4Addr(bits.to_be_bytes())
    }
    pub const fn to_bits(self) -> u32 {
        u32::from_be_bytes(self.0)
    }
    /// `255.255.255.255` only; a subnet's directed broadcast depends on the
    /// prefix, see [`Subnet::broadcast`].
    pub const fn is_limited_broadcast(self) -> bool {
        self.to_bits() == u32::MAX
    }
    /// `::ffff:a.b.c.d`, how a dual-stack socket sees an IPv4 peer.
    pub const fn to_ipv6_mapped(self) -> Ipv6Addr {
        let [a, b, c, d] = self.0;
        Ipv6Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d])
    }
    /// Class E, `240.0.0.0/4` minus the limited broadcast: never a valid
    /// source or destination on the wire.
    pub const fn is_reserved(self) -> bool {
        self.0[0] >= 240 && !self.is_limited_broadcast()
    }
}

impl sealed::Sealed for Ipv4Addr {}

impl IpAddress for Ipv4Addr {
    type Version = Ipv4;
    const BITS: u8 = 32;

    fn bytes(&self) -> &[u8] {
        &self.0
    }
    fn mask(&self, prefix: u8) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.to_bits() & prefix_mask_u32(prefix))
    }
    fn common_prefix_len(&self, other: &Ipv4Addr) -> u8 {
        (self.to_bits() ^ other.to_bits()).leading_zeros() as u8
    }
    fn is_unspecified(&self) -> bool {
        self.0 == [0; 4]
    }
    fn is_loopback(&self) -> bool {
        self.0[0] == 127
    }
    fn is_multicast(&self) -> bool {
        self.0[0] & 0xf0 == 224
    }
    fn is_link_local(&self) -> bool {
        self.0[0] == 169 && self.0[1] == 254
    }
    fn multicast_mac(&self) -> Option<Mac> {
        let [_, b, c, d] = self.0;
        self.is_multicast()
            .then_some(Mac([0x01, 0x00, 0x5e, b & 0x7f, c, d]))
    }
    fn to_std(self) -> std::net::IpAddr {
        std::net::IpAddr::V4(self.into())
    }
}

impl From<std::net::Ipv4Addr> for Ipv4Addr {
    fn from(a: std::net::Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr(a.octets())
    }
}
impl From<Ipv4Addr> for std::net::Ipv4Addr {
    fn from(a: Ipv4Addr) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(a.0)
    }
}
impl From<[u8; 4]> for Ipv4Addr {
    fn from(octets: [u8; 4]) -> Ipv4Addr {
        Ipv4Addr(octets)
    }
}
impl fmt::Display for Ipv4Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&std::net::Ipv4Addr::from(*self), f)
    }
}
impl fmt::Debug for Ipv4Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl FromStr for Ipv4Addr {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<Ipv4Addr, Self::Err> {
        s.parse::<std::net::Ipv4Addr>().map(Into::into)
    }
}

/// An IPv6 address, stored in network byte order. No prefix length: see
/// the module documentation.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(transparent)]
pub struct Ipv6Addr([u8; 16]);

impl Ipv6Addr {
    pub const UNSPECIFIED: Ipv6Addr = Ipv6Addr([0; 16]);
    pub const LOOPBACK: Ipv6Addr = Ipv6Addr::new([0, 0, 0, 0, 0, 0, 0, 1]);
    /// `ff02::1`, link-local all-nodes (RFC 4291 2.7.1).
    pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new([0xff02, 0, 0, 0, 0, 0, 0, 1]);
    /// `ff02::2`, link-local all-routers: where router solicitations go.
    pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new([0xff02, 0, 0, 0, 0, 0, 0, 2]);
    /// `ff02::16`, where MLDv2 reports go (RFC 3810 5.2.14).
    pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new([0xff02, 0, 0, 0, 0, 0, 0, 0x16]);

    pub const fn new(segments: [u16; 8]) -> Ipv6Addr {
        let mut b = [0u8; 16];
        let mut i = 0;
        while i < 8 {
            let [hi, lo] = segments[i].to_be_bytes();
            b[2 * i] = hi;
            b[2 * i + 1] = lo;
            i += 1;
        }
        Ipv6Addr(b)
    }
    pub const fn from_octets(octets: [u8; 16]) -> Ipv6Addr {
        Ipv6Addr(octets)
    }
    pub const fn octets(self) -> [u8; 16] {
        self.0
    }
    pub const fn from_bits(bits: u128) -> Ipv6Addr {
        Ipv6Addr(bits.to_be_bytes())
    }
    pub const fn to_bits(self) -> u128 {
        u128::from_be_bytes(self.0)
    }
    pub const fn segments(self) -> [u16; 8] {
        let mut s = [0u16; 8];
        let mut i = 0;
        while i < 8 {
            s[i] = u16::from_be_bytes([self.0[2 * i], self.0[2 * i + 1]]);
            i += 1;
        }
        s
    }
    /// The IPv4 address inside `::ffff:a.b.c.d` (RFC 4291 2.5.5.2), the
    /// form a dual-stack socket reports an IPv4 peer in.
    pub const fn to_ipv4_mapped(self) -> Option<Ipv4Addr> {
        match self.0 {
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] => Some(Ipv4Addr([a, b, c, d])),
            _ => None,
        }
    }
    pub const fn is_ipv4_mapped(self) -> bool {
        self.to_ipv4_mapped().is_some()
    }
    /// The solicited-node multicast group for this address
    /// (`ff02::1:ffXX:XXXX`, RFC 4291 2.7.1): where neighbour solicitations
    /// for it are sent, and which group a node joins per address it owns.
    pub const fn solicited_node(self) -> Ipv6Addr {
        let b = self.0;
        Ipv6Addr([
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, b[13], b[14], b[15],
        ])
    }
    pub const fn is_solicited_node(self) -> bool {
        matches!(
            self.0,
            [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, _, _, _]
        )
    }
    /// The scope field of a multicast address (RFC 4291 2.7: 1 interface,
    /// 2 link, 5 site, 8 organisation, 0xe global); `None` for unicast.
    pub const fn multicast_scope(self) -> Option<u8> {
        if self.0[0] == 0xff {
            Some(self.0[1] & 0x0f)
        } else {
            None
        }
    }
    /// `fc00::/7` (RFC 4193).
    pub const fn is_unique_local(self) -> bool {
        self.0[0] & 0xfe == 0xfc
    }
    /// The link-local address a host forms from its MAC: `fe80::` plus the
    /// modified EUI-64 interface identifier (RFC 4291 2.5.1 and appendix A,
    /// RFC 2464 4-5).
    pub const fn link_local_from_mac(mac: Mac) -> Ipv6Addr {
        let m = mac.0;
        Ipv6Addr([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }
}

impl sealed::Sealed for Ipv6Addr {}

impl IpAddress for Ipv6Addr {
    type Version = Ipv6;
    const BITS: u8 = 128;

    fn bytes(&self) -> &[u8] {
        &self.0
    }
    fn mask(&self, prefix: u8) -> Ipv6Addr {
        Ipv6Addr::from_bits(self.to_bits() & prefix_mask_u128(prefix))
    }
    fn common_prefix_len(&self, other: &Ipv6Addr) -> u8 {
        (self.to_bits() ^ other.to_bits()).leading_zeros() as u8
    }
    fn is_unspecified(&self) -> bool {
        self.0 == [0; 16]
    }
    fn is_loopback(&self) -> bool {
        *self == Ipv6Addr::LOOPBACK
    }
    fn is_multicast(&self) -> bool {
        self.0[0] == 0xff
    }
    fn is_link_local(&self) -> bool {
        self.0[0] == 0xfe && self.0[1] & 0xc0 == 0x80
    }
    fn multicast_mac(&self) -> Option<Mac> {
        let b = self.0;
        self.is_multicast()
            .then_some(Mac([0x33, 0x33, b[12], b[13], b[14], b[15]]))
    }
    fn to_std(self) -> std::net::IpAddr {
        std::net::IpAddr::V6(self.into())
    }
}

impl From<std::net::Ipv6Addr> for Ipv6Addr {
    fn from(a: std::net::Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr(a.octets())
    }
}
impl From<Ipv6Addr> for std::net::Ipv6Addr {
    fn from(a: Ipv6Addr) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::from(a.0)
    }
}
impl From<[u8; 16]> for Ipv6Addr {
    fn from(octets: [u8; 16]) -> Ipv6Addr {
        Ipv6Addr(octets)
    }
}
impl fmt::Display for Ipv6Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&std::net::Ipv6Addr::from(*self), f)
    }
}
impl fmt::Debug for Ipv6Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl FromStr for Ipv6Addr {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<Ipv6Addr, Self::Err> {
        s.parse::<std::net::Ipv6Addr>().map(Into::into)
    }
}

/// A prefix: a network address whose bits past `prefix` are all zero.
/// What routes, on-link prefixes and IPv4 interface subnets are made of.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet<A> {
    network: A,
    prefix: u8,
}

/// Why an address and prefix length do not make a [`Subnet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubnetError {
    /// Longer than the address.
    PrefixTooLong,
    /// The address has bits set past the prefix (`192.0.2.1/24`); use
    /// [`Subnet::from_host`] if that is meant.
    HostBitsSet,
    /// Not `address/prefix`.
    Syntax,
}

impl fmt::Display for SubnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubnetError::PrefixTooLong => "prefix length longer than the address",
            SubnetError::HostBitsSet => "address has bits set past the prefix",
            SubnetError::Syntax => "expected address/prefix",
        })
    }
}
impl std::error::Error for SubnetError {}

impl<A> Subnet<A> {
    /// For the constants in [`Ip`]; the caller vouches the value is
    /// canonical (a unit test checks every use).
    pub(crate) const fn new_const(network: A, prefix: u8) -> Subnet<A> {
        Subnet { network, prefix }
    }
}

impl<A: IpAddress> Subnet<A> {
    /// A subnet from its canonical network address; refuses host bits so
    /// that a typo in a route is caught rather than silently widened.
    pub fn new(network: A, prefix: u8) -> Result<Subnet<A>, SubnetError> {
        if prefix > A::BITS {
            return Err(SubnetError::PrefixTooLong);
        }
        if network.mask(prefix) != network {
            return Err(SubnetError::HostBitsSet);
        }
        Ok(Subnet { network, prefix })
    }
    /// The subnet an address lies in (`192.0.2.1/24` → `192.0.2.0/24`).
    pub fn from_host(addr: A, prefix: u8) -> Result<Subnet<A>, SubnetError> {
        if prefix > A::BITS {
            return Err(SubnetError::PrefixTooLong);
        }
        Ok(Subnet {
            network: addr.mask(prefix),
            prefix,
        })
    }
    pub fn network(&self) -> A {
        self.network
    }
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    pub fn contains(&self, addr: &A) -> bool {
        addr.mask(self.prefix) == self.network
    }
    /// Whether every address of `other` is in `self`.
    pub fn contains_subnet(&self, other: &Subnet<A>) -> bool {
        other.prefix >= self.prefix && self.contains(&other.network)
    }
}

impl Subnet<Ipv4Addr> {
    /// The directed broadcast address (all host bits set). For /31 (RFC
    /// 3021) and /32 there is none, as on Linux.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix < 31)
            .then(|| Ipv4Addr::from_bits(self.network.to_bits() | !prefix_mask_u32(self.prefix)))
    }
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(prefix_mask_u32(self.prefix))
    }
}

impl<A: fmt::Display> fmt::Display for Subnet<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}
impl<A: fmt::Display> fmt::Debug for Subnet<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<A: IpAddress> FromStr for Subnet<A> {
    type Err = SubnetError;
    /// `network/prefix`, with no host bits.
    fn from_str(s: &str) -> Result<Subnet<A>, SubnetError> {
        let (a, p) = s.split_once('/').ok_or(SubnetError::Syntax)?;
        let addr = a.parse::<A>().map_err(|_| SubnetError::Syntax)?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SubnetError::Syntax);
        }
        let prefix = p.parse::<u8>().map_err(|_| SubnetError::PrefixTooLong)?;
        Subnet::new(addr, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn constants_are_canonical<I: Ip>() {
        for s in [
            I::LOOPBACK_SUBNET,
            I::MULTICAST_SUBNET,
            I::LINK_LOCAL_SUBNET,
        ] {
            assert_eq!(Subnet::new(s.network(), s.prefix()), Ok(s), "{}", I::NAME);
        }
        assert!(I::LOOPBACK_SUBNET.contains(&I::LOOPBACK));
        assert!(I::LOOPBACK.is_loopback());
        assert!(I::UNSPECIFIED.is_unspecified());
        assert!(!I::LOOPBACK.is_multicast());
        assert!(usize::from(I::MIN_MTU) <= I::ICMP_ERROR_MAX_LEN);
    }

    /// The shape of the IP layer to come: one function, both versions.
    fn generic_round_trip<I: Ip>(src: I::Addr, dst: I::Addr) {
        let mut b = <I::Builder as IpBuilder>::new(src, dst, IpProto::UDP);
        b.set_ttl(7);
        let mut buf = vec![0u8; b.header_len() + 3];
        let h = b.emit(&mut buf).unwrap();
        buf[h..].copy_from_slice(b"abc");
        let p = I::Packet::parse(&buf).unwrap();
        assert_eq!((p.src(), p.dst(), p.ttl()), (src, dst, 7));
        assert_eq!(p.next_header(), IpProto::UDP);
        assert_eq!(p.payload(), b"abc");
        assert_eq!(p.as_bytes(), &buf[..]);
        assert_eq!(I::HEADER_LEN, h);
    }

    #[test]
    fn generic_over_version() {
        generic_round_trip::<Ipv4>(v4("192.0.2.1"), v4("192.0.2.2"));
        generic_round_trip::<Ipv6>(v6("2001:db8::1"), v6("2001:db8::2"));
    }

    #[test]
    fn trait_constants() {
        constants_are_canonical::<Ipv4>();
        constants_are_canonical::<Ipv6>();
        assert_eq!(Ipv4::ICMP_PROTO, IpProto(1));
        assert_eq!(Ipv6::ICMP_PROTO, IpProto(58));
        assert_eq!(Ipv4::ETHERTYPE, EtherType(0x0800));
        assert_eq!(Ipv6::ETHERTYPE, EtherType(0x86dd));
    }

    #[test]
    fn v4_scopes() {
        assert!(v4("224.0.0.1").is_multicast());
        assert!(v4("239.255.255.255").is_multicast());
        assert!(!v4("240.0.0.1").is_multicast());
        assert!(v4("240.0.0.1").is_reserved());
        assert!(!Ipv4Addr::BROADCAST.is_reserved());
        assert!(Ipv4Addr::BROADCAST.is_limited_broadcast());
        assert!(v4("169.254.3.4").is_link_local());
        assert!(v4("127.9.9.9").is_loopback());
        assert!(Ipv4::LINK_LOCAL_SUBNET.contains(&v4("169.254.255.255")));
        assert!(Ipv4::MULTICAST_SUBNET.contains(&v4("230.1.2.3")));
    }

    #[test]
    fn v6_scopes() {
        assert!(v6("fe80::1").is_link_local());
        assert!(v6("febf::1").is_link_local());
        assert!(!v6("fec0::1").is_link_local());
        assert!(v6("ff02::1").is_multicast());
        assert_eq!(v6("ff05::2").multicast_scope(), Some(5));
        assert_eq!(v6("2001:db8::1").multicast_scope(), None);
        assert!(v6("fd00::1").is_unique_local());
        assert_eq!(
            v6("::ffff:192.0.2.1").to_ipv4_mapped(),
            Some(v4("192.0.2.1"))
        );
        assert_eq!(v6("::192.0.2.1").to_ipv4_mapped(), None);
        assert_eq!(v4("192.0.2.1").to_ipv6_mapped(), v6("::ffff:192.0.2.1"));
        assert_eq!(Ipv6Addr::ALL_NODES, v6("ff02::1"));
        assert_eq!(Ipv6Addr::ALL_MLDV2_ROUTERS, v6("ff02::16"));
    }

    #[test]
    fn solicited_node() {
        let a = v6("2001:db8::abcd:1234:5678");
        let s = a.solicited_node();
        assert_eq!(s, v6("ff02::1:ff34:5678"));
        assert!(s.is_solicited_node());
        assert!(!a.is_solicited_node());
        assert_eq!(
            s.multicast_mac(),
            Some(Mac([0x33, 0x33, 0xff, 0x34, 0x56, 0x78]))
        );
    }

    #[test]
    fn multicast_macs() {
        // RFC 1112 6.4: the high bit of the second octet is dropped.
        assert_eq!(
            v4("239.129.2.3").multicast_mac(),
            Some(Mac([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]))
        );
        assert_eq!(v4("192.0.2.1").multicast_mac(), None);
        assert_eq!(
            v6("ff02::1").multicast_mac(),
            Some(Mac([0x33, 0x33, 0, 0, 0, 1]))
        );
        assert_eq!(v6("fe80::1").multicast_mac(), None);
        assert!(v4("224.0.0.1").multicast_mac().unwrap().is_multicast());
    }

    #[test]
    fn eui64_link_local() {
        let mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(
            Ipv6Addr::link_local_from_mac(mac),
            v6("fe80::5054:ff:fe12:3456")
        );
    }

    #[test]
    fn subnets() {
        let s: Subnet<Ipv4Addr> = "192.0.2.0/24".parse().unwrap();
        assert!(s.contains(&v4("192.0.2.200")));
        assert!(!s.contains(&v4("192.0.3.1")));
        assert_eq!(s.broadcast(), Some(v4("192.0.2.255")));
        assert_eq!(s.netmask(), v4("255.255.255.0"));
        assert_eq!(s.to_string(), "192.0.2.0/24");
        assert_eq!(
            "192.0.2.1/24".parse::<Subnet<Ipv4Addr>>(),
            Err(SubnetError::HostBitsSet)
        );
        assert_eq!(
            "192.0.2.0/33".parse::<Subnet<Ipv4Addr>>(),
            Err(SubnetError::PrefixTooLong)
        );
        assert_eq!(
            "192.0.2.0".parse::<Subnet<Ipv4Addr>>(),
            Err(SubnetError::Syntax)
        );
        assert_eq!(
            "192.0.2.0/+1".parse::<Subnet<Ipv4Addr>>(),
            Err(SubnetError::Syntax)
        );
        assert_eq!(Subnet::from_host(v4("192.0.2.1"), 24), Ok(s));
        assert_eq!(
            Subnet::from_host(v4("192.0.2.1"), 31).unwrap().broadcast(),
            None
        );
        let all: Subnet<Ipv4Addr> = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&v4("1.2.3.4")));
        assert!(all.contains_subnet(&s));
        assert!(!s.contains_subnet(&all));

        let p: Subnet<Ipv6Addr> = "2001:db8::/64".parse().unwrap();
        assert!(p.contains(&v6("2001:db8::1234")));
        assert!(!p.contains(&v6("2001:db8:0:1::1")));
        assert_eq!(
            Subnet::new(v6("2001:db8::1"), 128).unwrap().network(),
            v6("2001:db8::1")
        );
    }

    #[test]
    fn common_prefix() {
        assert_eq!(v6("fe80::1").common_prefix_len(&v6("fe80::2")), 126);
        assert_eq!(v6("::1").common_prefix_len(&v6("::1")), 128);
        assert_eq!(v4("10.0.0.0").common_prefix_len(&v4("11.0.0.0")), 7);
    }

    #[test]
    fn std_round_trip() {
        let a = v6("2001:db8::1");
        assert_eq!(Ipv6Addr::from(std::net::Ipv6Addr::from(a)), a);
        assert_eq!(a.to_string(), "2001:db8::1");
        assert_eq!(format!("{:?}", v4("192.0.2.1")), "192.0.2.1");
        assert_eq!(Ipv6Addr::new(a.segments()), a);
        assert_eq!(Ipv6Addr::from_bits(a.to_bits()), a);
        assert_eq!(format!("{:?}", IpProto::TCP), "TCP");
        assert_eq!(format!("{:?}", IpProto(253)), "IpProto(253)");
    }

    proptest::proptest! {
        #[test]
        fn mask_and_contains(bits: u32, other: u32, prefix in 0u8..=32) {
            let a = Ipv4Addr::from_bits(bits);
            let s = Subnet::from_host(a, prefix).unwrap();
            proptest::prop_assert!(s.contains(&a));
            proptest::prop_assert_eq!(Subnet::new(s.network(), prefix), Ok(s));
            let b = Ipv4Addr::from_bits(other);
            proptest::prop_assert_eq!(s.contains(&b), a.common_prefix_len(&b) >= prefix);
        }

        #[test]
        fn mask_v6(bits: u128, prefix in 0u8..=128) {
            let a = Ipv6Addr::from_bits(bits);
            let m = a.mask(prefix);
            proptest::prop_assert!(m.common_prefix_len(&a) >= prefix);
            proptest::prop_assert_eq!(m.mask(prefix), m);
        }
    }
}
