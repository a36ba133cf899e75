//! Packet formats: zero-copy views for parsing, and builders that write
//! into the caller's buffer.
//!
//! Every format here follows the same conventions, so that knowing one is
//! knowing them all:
//!
//! - **Parsing** is `Xxx::parse(&[u8]) -> Result<XxxView, ParseError>`. The
//!   view borrows the buffer (header fields are read through `zerocopy`
//!   structs, nothing is copied) and has already checked every length and
//!   field a receiver is told to check before trusting the rest, so its
//!   accessors are infallible. Parsing never panics, whatever the bytes:
//!   malformed input becomes a [`ParseError`] for the layer above to count
//!   and drop (property tests and `stack/fuzz` feed every parser garbage).
//!   A view's `payload()` ends where the header's own length field says,
//!   so Ethernet padding never leaks upwards.
//! - **Building** is a plain struct of field values with
//!   `emit(&self, buf: &mut [u8])`. For headers that carry a payload through
//!   the stack (Ethernet, IPv4, IPv6, UDP, TCP), `emit` writes the header at
//!   the front of `buf` and takes **the rest of `buf` as the payload, already
//!   in place**: it fills in lengths and checksums from it. A frame is thus
//!   built inside-out in one buffer with no allocation or copy: write the
//!   payload at its final offset, then emit TCP over `buf[l4..]`, IP over
//!   `buf[l3..]`, Ethernet over `buf[..]` (see `tests/oracle.rs`). Messages
//!   whose body is small or comes from elsewhere (ARP, ICMP, NDP options)
//!   copy it, and return the length written.
//!
//! Checksums that cover a pseudo-header take the addresses as `I::Addr`, so
//! the same call serves both IP versions.
//!
//! A TCP segment in an Ethernet frame, built in place and read back:
//!
//! ```
//! use shunt_stack::wire::{
//!     EtherType, EthernetBuilder, EthernetFrame, Ipv4Builder, Ipv4Packet, Mac, TcpBuilder,
//!     TcpFlags, TcpSegment,
//! };
//! use shunt_stack::{IpProto, Ipv4Addr, SeqNum};
//!
//! let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
//! let tcp = TcpBuilder {
//!     src_port: 40000,
//!     dst_port: 80,
//!     seq: SeqNum::new(1),
//!     flags: TcpFlags::SYN,
//!     window: 65535,
//!     ..TcpBuilder::default()
//! };
//! let ip = Ipv4Builder::new(src, dst, IpProto::TCP);
//! let payload = b"";
//!
//! let (l3, l4) = (14, 14 + ip.header_len());
//! let mut frame = [0u8; 128];
//! let len = l4 + tcp.header_len() + payload.len();
//! let frame = &mut frame[..len];
//! frame[l4 + tcp.header_len()..].copy_from_slice(payload);
//! tcp.emit(&src, &dst, &mut frame[l4..])?;
//! ip.emit(&mut frame[l3..])?;
//! EthernetBuilder { dst: Mac::BROADCAST, src: Mac([2, 0, 0, 0, 0, 1]), ethertype: EtherType::IPV4 }
//!     .emit(frame)?;
//!
//! let eth = EthernetFrame::parse(frame)?;
//! let ip = Ipv4Packet::parse(eth.payload())?;
//! let seg = TcpSegment::parse(ip.payload(), &ip.src(), &ip.dst())?;
//! assert!(seg.flags().syn());
//! assert_eq!(seg.dst_port(), 80);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOp, ArpPacket, EthernetArp};
pub use checksum::Checksum;
pub use ethernet::{EtherType, EthernetBuilder, EthernetFrame, Mac};
pub use icmpv4::{Icmpv4Message, Icmpv4Packet};
pub use icmpv6::{Icmpv6Message, Icmpv6Packet, NdpOption};
pub use ipv4::{Ipv4Builder, Ipv4Packet};
pub use ipv6::{ExtHeader, Ipv6Builder, Ipv6Packet};
pub use tcp::{TcpBuilder, TcpFlags, TcpOption, TcpOptionSet, TcpOptions, TcpSegment};
pub use udp::{UdpBuilder, UdpPacket};

use core::fmt;

/// Why a packet was refused. Coarse on purpose: each variant maps onto the
/// counters Linux keeps (`/proc/net/snmp`), and the offsets are what an
/// ICMP parameter-problem message must point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The buffer ends before the header, or before what a length field
    /// promises (Linux: `InTruncatedPkts`, or a length error).
    Truncated,
    /// A field holds a value the protocol forbids (wrong version, header
    /// length below the minimum, lengths that contradict each other, a
    /// malformed option). `offset` is the byte at fault, counted from the
    /// start of the buffer given to `parse` — the pointer of an ICMP
    /// parameter problem (code 0 for ICMPv6).
    Malformed { offset: usize },
    /// An IPv6 next-header value that may not appear where it does
    /// (hop-by-hop options anywhere but first). `offset` points at the
    /// next-header field that named it: ICMPv6 parameter problem code 1.
    UnrecognizedNextHeader { offset: usize },
    /// Checksum mismatch (`InCsumErrors`).
    BadChecksum,
    /// Well-formed but not something this stack speaks (an 802.3 length
    /// field where an ethertype should be, ARP for another hardware type).
    Unsupported,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("truncated"),
            ParseError::Malformed { offset } => write!(f, "malformed field at byte {offset}"),
            ParseError::UnrecognizedNextHeader { offset } => {
                write!(f, "unrecognized next header at byte {offset}")
            }
            ParseError::BadChecksum => f.write_str("bad checksum"),
            ParseError::Unsupported => f.write_str("unsupported"),
        }
    }
}
impl std::error::Error for ParseError {}

/// Why a builder refused to write. These are bugs in the caller (a buffer
/// sized wrongly, a field out of range), never a property of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuildError {
    /// `buf` cannot hold the header (and whatever body is copied in).
    BufferTooSmall,
    /// The packet is longer than its length field can say.
    TooLong,
    /// A field value the format cannot carry (options not a multiple of 4
    /// bytes, a fragment offset not a multiple of 8, too many TCP options).
    InvalidField,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuildError::BufferTooSmall => "buffer too small",
            BuildError::TooLong => "packet too long for its length field",
            BuildError::InvalidField => "field value cannot be encoded",
        })
    }
}
impl std::error::Error for BuildError {}

/// Declares a newtype over a wire value with named constants and a Debug
/// that prints the name. Newtypes rather than enums: every value can
/// arrive, and an unknown one must still be quoted back or counted.
macro_rules! wire_enum {
    ($(#[$m:meta])* $vis:vis struct $name:ident($t:ty) { $($(#[$cm:meta])* $c:ident = $v:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(pub $t);
        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*
        }
        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match *self {
                    $($name::$c => f.write_str(stringify!($c)),)*
                    $name(v) => write!(f, concat!(stringify!($name), "({})"), v),
                }
            }
        }
    };
}
pub(crate) use wire_enum;

/// Source and destination ports from the first four bytes of a TCP or UDP
/// header. For the header quoted in an ICMP error, which is often cut to
/// 8 bytes, too short for `TcpSegment` or `UdpPacket` to parse but enough
/// to find the socket the error is about (RFC 1122 3.2.2, RFC 4443 2.4).
pub fn l4_ports(header: &[u8]) -> Option<(u16, u16)> {
    match header {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

/// Big-endian field types for the zero-copy header structs.
pub(crate) use zerocopy::network_endian::{U16, U32};

/// Splits a header struct off the front of `buf`, or says the buffer is
/// too short. The one place a cast can fail, so that parsers never unwrap.
pub(crate) fn header<T>(buf: &[u8]) -> Result<(&T, &[u8]), ParseError>
where
    T: zerocopy::FromBytes + zerocopy::KnownLayout + zerocopy::Immutable + zerocopy::Unaligned,
{
    T::ref_from_prefix(buf).map_err(|_| ParseError::Truncated)
}

/// The mutable counterpart of [`header`], for builders.
pub(crate) fn header_mut<T>(buf: &mut [u8]) -> Result<(&mut T, &mut [u8]), BuildError>
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::KnownLayout + zerocopy::Unaligned,
{
    T::mut_from_prefix(buf).map_err(|_| BuildError::BufferTooSmall)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared by the per-format tests: random mutations of valid packets.
    use proptest::prelude::*;

    /// A valid packet with a handful of bytes overwritten, bits flipped,
    /// and possibly cut short or extended: the inputs most likely to get
    /// past the first checks of a parser and trip a later one.
    pub fn mutate(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let len = valid.len().max(1);
        (
            proptest::collection::vec((0..len, any::<u8>()), 0..8),
            proptest::option::of(0..=len + 8),
        )
            .prop_map(move |(edits, cut)| {
                let mut v = valid.clone();
                for (i, b) in edits {
                    if i < v.len() {
                        v[i] ^= b;
                    }
                }
                if let Some(c) = cut {
                    v.resize(c, 0xa5);
                }
                v
            })
    }
}
