//! ARP (RFC 826).
//!
//! Parsing is in two steps on purpose. [`ArpPacket::parse`] reads the
//! generic header and exposes hardware type, protocol type and address
//! lengths exactly as they arrived, so the ARP module can walk RFC 826's
//! "Do I have the hardware type in ar$hrd? ... the protocol type?" and drop
//! (and count) what fails — the check IxANVL ARP 3.2 found missing in
//! Seastar, mTCP and rump. Only then does [`ArpPacket::ethernet_ipv4`] give
//! the typed Ethernet/IPv4 form, which is also what we build.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{BuildError, EtherType, Mac, ParseError, U16, header, header_mut};
use crate::ip::Ipv4Addr;

/// `ar$hrd` for Ethernet (RFC 826; IANA ARP hardware types).
pub const HTYPE_ETHERNET: u16 = 1;

/// The ARP operation (`ar$op`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpOp(pub u16);

impl ArpOp {
    pub const REQUEST: ArpOp = ArpOp(1);
    pub const REPLY: ArpOp = ArpOp(2);
}

impl fmt::Debug for ArpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArpOp::REQUEST => f.write_str("Request"),
            ArpOp::REPLY => f.write_str("Reply"),
            ArpOp(o) => write!(f, "ArpOp({o})"),
        }
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FixedHeader {
    htype: U16,
    ptype: U16,
    hlen: u8,
    plen: u8,
    op: U16,
}

/// An ARP packet of any hardware and protocol type.
#[derive(Clone, Copy)]
pub struct ArpPacket<'a> {
    hdr: &'a FixedHeader,
    /// sender hw, sender proto, target hw, target proto.
    addrs: &'a [u8],
}

impl<'a> ArpPacket<'a> {
    /// Checks that the buffer holds the four addresses the length fields
    /// announce; trailing bytes (Ethernet padding) are ignored.
    pub fn parse(buf: &'a [u8]) -> Result<ArpPacket<'a>, ParseError> {
        let (hdr, rest) = header::<FixedHeader>(buf)?;
        let n = 2 * (usize::from(hdr.hlen) + usize::from(hdr.plen));
        let addrs = rest.get(..n).ok_or(ParseError::Truncated)?;
        Ok(ArpPacket { hdr, addrs })
    }
    pub fn hardware_type(&self) -> u16 {
        self.hdr.htype.get()
    }
    pub fn protocol_type(&self) -> EtherType {
        EtherType(self.hdr.ptype.get())
    }
    pub fn hardware_len(&self) -> u8 {
        self.hdr.hlen
    }
    pub fn protocol_len(&self) -> u8 {
        self.hdr.plen
    }
    pub fn op(&self) -> ArpOp {
        ArpOp(self.hdr.op.get())
    }
    fn field(&self, i: usize) -> &'a [u8] {
        let h = usize::from(self.hdr.hlen);
        let p = usize::from(self.hdr.plen);
        let (start, len) = match i {
            0 => (0, h),
            1 => (h, p),
            2 => (h + p, h),
            _ => (2 * h + p, p),
        };
        self.addrs.get(start..start + len).unwrap_or(&[])
    }
    pub fn sender_hardware_addr(&self) -> &'a [u8] {
        self.field(0)
    }
    pub fn sender_protocol_addr(&self) -> &'a [u8] {
        self.field(1)
    }
    pub fn target_hardware_addr(&self) -> &'a [u8] {
        self.field(2)
    }
    pub fn target_protocol_addr(&self) -> &'a [u8] {
        self.field(3)
    }

    /// The packet as Ethernet/IPv4 ARP, or [`ParseError::Unsupported`] if
    /// the hardware type, protocol type or either length says otherwise.
    pub fn ethernet_ipv4(&self) -> Result<EthernetArp, ParseError> {
        let ok = self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == EtherType::IPV4
            && self.hdr.hlen == 6
            && self.hdr.plen == 4;
        if !ok {
            return Err(ParseError::Unsupported);
        }
        let mac = |b: &[u8]| Mac(<[u8; 6]>::try_from(b).unwrap_or_default());
        let ip = |b: &[u8]| Ipv4Addr::from_octets(<[u8; 4]>::try_from(b).unwrap_or_default());
        Ok(EthernetArp {
            op: self.op(),
            sender_mac: mac(self.sender_hardware_addr()),
            sender_ip: ip(self.sender_protocol_addr()),
            target_mac: mac(self.target_hardware_addr()),
            target_ip: ip(self.target_protocol_addr()),
        })
    }
}

impl fmt::Debug for ArpPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArpPacket")
            .field("htype", &self.hardware_type())
            .field("ptype", &self.protocol_type())
            .field("hlen", &self.hardware_len())
            .field("plen", &self.protocol_len())
            .field("op", &self.op())
            .finish_non_exhaustive()
    }
}

/// An Ethernet/IPv4 ARP packet: the only kind we answer, and the kind we
/// send. Requests carry a zero target MAC (RFC 5227 and Linux do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetArp {
    pub op: ArpOp,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct EthIpv4Body {
    hdr: FixedHeader,
    sha: Mac,
    spa: Ipv4Addr,
    tha: Mac,
    tpa: Ipv4Addr,
}

impl EthernetArp {
    /// Length on the wire (before Ethernet padding).
    pub const LEN: usize = 28;

    /// A request for `target_ip`'s MAC.
    pub fn request(sender_mac: Mac, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> EthernetArp {
        EthernetArp {
            op: ArpOp::REQUEST,
            sender_mac,
            sender_ip,
            target_mac: Mac::ZERO,
            target_ip,
        }
    }

    /// A gratuitous ARP announcing our own binding (RFC 5227 3): sender
    /// and target IP both ours.
    pub fn announcement(mac: Mac, ip: Ipv4Addr) -> EthernetArp {
        EthernetArp::request(mac, ip, ip)
    }

    /// The reply to this request, from the owner of its target address.
    pub fn reply(&self, our_mac: Mac) -> EthernetArp {
        EthernetArp {
            op: ArpOp::REPLY,
            sender_mac: our_mac,
            sender_ip: self.target_ip,
            target_mac: self.sender_mac,
            target_ip: self.sender_ip,
        }
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let (b, _) = header_mut::<EthIpv4Body>(buf)?;
        b.hdr.htype = U16::new(HTYPE_ETHERNET);
        b.hdr.ptype = U16::new(EtherType::IPV4.0);
        b.hdr.hlen = 6;
        b.hdr.plen = 4;
        b.hdr.op = U16::new(self.op.0);
        b.sha = self.sender_mac;
        b.spa = self.sender_ip;
        b.tha = self.target_mac;
        b.tpa = self.target_ip;
        Ok(Self::LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::mutate;
    use proptest::prelude::*;

    fn sample() -> EthernetArp {
        EthernetArp::request(
            Mac([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
        )
    }

    #[test]
    fn round_trip_and_reply() {
        let mut buf = [0u8; 46]; // padded, as on the wire
        assert_eq!(sample().emit(&mut buf), Ok(28));
        let p = ArpPacket::parse(&buf).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::IPV4);
        assert_eq!(p.op(), ArpOp::REQUEST);
        let a = p.ethernet_ipv4().unwrap();
        assert_eq!(a, sample());
        let r = a.reply(Mac([2, 0, 0, 0, 0, 2]));
        assert_eq!(r.sender_ip, a.target_ip);
        assert_eq!(r.target_mac, a.sender_mac);
        assert_eq!(r.op, ArpOp::REPLY);
        assert_eq!(
            sample().emit(&mut [0u8; 27]),
            Err(BuildError::BufferTooSmall)
        );
    }

    #[test]
    fn exposes_what_ixanvl_arp_3_2_needs() {
        let mut buf = [0u8; 28];
        sample().emit(&mut buf).unwrap();
        // Unknown hardware type: parses generically, refuses as Ethernet.
        let mut bad = buf;
        bad[0..2].copy_from_slice(&0x1234u16.to_be_bytes());
        let p = ArpPacket::parse(&bad).unwrap();
        assert_eq!(p.hardware_type(), 0x1234);
        assert_eq!(p.ethernet_ipv4(), Err(ParseError::Unsupported));
        // Protocol type not IPv4.
        let mut bad = buf;
        bad[2..4].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(
            ArpPacket::parse(&bad).unwrap().ethernet_ipv4(),
            Err(ParseError::Unsupported)
        );
        // hlen 8: the announced addresses no longer fit.
        let mut bad = buf;
        bad[4] = 8;
        assert_eq!(ArpPacket::parse(&bad).unwrap_err(), ParseError::Truncated);
        // plen 3 fits, but is not IPv4.
        let mut bad = buf;
        bad[5] = 3;
        let p = ArpPacket::parse(&bad).unwrap();
        assert_eq!(p.sender_protocol_addr().len(), 3);
        assert_eq!(p.ethernet_ipv4(), Err(ParseError::Unsupported));
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = ArpPacket::parse(&buf) {
                let _ = (p.sender_hardware_addr(), p.target_protocol_addr(), p.ethernet_ipv4());
                let _ = format!("{p:?}");
            }
        }

        #[test]
        fn mutations_never_panic(buf in mutate({
            let mut b = vec![0u8; 28];
            sample().emit(&mut b).unwrap();
            b
        })) {
            if let Ok(p) = ArpPacket::parse(&buf) {
                let _ = p.ethernet_ipv4();
            }
        }

        #[test]
        fn round_trip(op: u16, sm: [u8; 6], si: [u8; 4], tm: [u8; 6], ti: [u8; 4]) {
            let a = EthernetArp {
                op: ArpOp(op),
                sender_mac: Mac(sm),
                sender_ip: si.into(),
                target_mac: Mac(tm),
                target_ip: ti.into(),
            };
            let mut buf = [0u8; 28];
            a.emit(&mut buf).unwrap();
            prop_assert_eq!(ArpPacket::parse(&buf).unwrap().ethernet_ipv4(), Ok(a));
        }
    }
}
