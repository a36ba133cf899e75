//! Ethernet II frames (the DIX header: destination, source, ethertype).
//!
//! The view does not check the destination: whether a frame is for us
//! (our MAC, broadcast, a joined group) is the device's decision and a
//! counter of its own. 802.1Q tags are left visible as an ethertype so the
//! device can count and drop them; 802.3 length frames are refused.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{BuildError, ParseError, U16, header, header_mut};

/// A 48-bit MAC address.
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
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    pub const fn is_broadcast(self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }
    /// The group bit: multicast, broadcast included (IEEE 802 5.2). A
    /// frame sent *from* such an address is bogus.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }
    pub const fn is_unicast(self) -> bool {
        !self.is_multicast()
    }
    /// The U/L bit: set for addresses that were not assigned by a vendor
    /// (veth, tap and containers make these).
    pub const fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}
impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::str::FromStr for Mac {
    type Err = ParseError;
    /// `aa:bb:cc:dd:ee:ff` (or with `-`), as `ip link` prints it.
    fn from_str(s: &str) -> Result<Mac, ParseError> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().ok_or(ParseError::Truncated)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseError::Malformed { offset: 0 });
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| ParseError::Malformed { offset: 0 })?;
        }
        if parts.next().is_some() {
            return Err(ParseError::Malformed { offset: 0 });
        }
        Ok(Mac(out))
    }
}

/// The ethertype field. A newtype, not an enum: unknown values arrive and
/// must be counted, not rejected by the type system.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// Values below this are 802.3 lengths, not ethertypes.
    pub const MIN: u16 = 0x0600;
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EtherType::IPV4 => f.write_str("IPv4"),
            EtherType::ARP => f.write_str("ARP"),
            EtherType::VLAN => f.write_str("802.1Q"),
            EtherType::IPV6 => f.write_str("IPv6"),
            EtherType(t) => write!(f, "EtherType({t:#06x})"),
        }
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    dst: Mac,
    src: Mac,
    ethertype: U16,
}

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// The smallest frame on the wire without FCS; shorter frames are padded,
/// which is why upper layers trust their own length fields.
pub const MIN_FRAME_LEN: usize = 60;

/// A parsed Ethernet II frame.
#[derive(Clone, Copy)]
pub struct EthernetFrame<'a> {
    hdr: &'a Header,
    payload: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<EthernetFrame<'a>, ParseError> {
        let (hdr, payload) = header::<Header>(buf)?;
        if hdr.ethertype.get() < EtherType::MIN {
            return Err(ParseError::Unsupported);
        }
        Ok(EthernetFrame { hdr, payload })
    }
    pub fn dst(&self) -> Mac {
        self.hdr.dst
    }
    pub fn src(&self) -> Mac {
        self.hdr.src
    }
    pub fn ethertype(&self) -> EtherType {
        EtherType(self.hdr.ethertype.get())
    }
    /// Everything after the header, padding included.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

impl fmt::Debug for EthernetFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EthernetFrame")
            .field("dst", &self.dst())
            .field("src", &self.src())
            .field("ethertype", &self.ethertype())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// The fields of an Ethernet II header, to write one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetBuilder {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: EtherType,
}

impl EthernetBuilder {
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Writes the header at the front of `buf`; the payload follows it in
    /// place. Returns the header length. Padding to [`MIN_FRAME_LEN`] is
    /// the device's business (veth and AF_PACKET pad for us).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let (hdr, _) = header_mut::<Header>(buf)?;
        hdr.dst = self.dst;
        hdr.src = self.src;
        hdr.ethertype = U16::new(self.ethertype.0);
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mac_classes() {
        assert!(Mac::BROADCAST.is_broadcast());
        assert!(Mac::BROADCAST.is_multicast());
        assert!(Mac([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!Mac([0x01, 0, 0x5e, 0, 0, 1]).is_broadcast());
        assert!(Mac([0x02, 0, 0, 0, 0, 1]).is_unicast());
        assert!(Mac([0x02, 0, 0, 0, 0, 1]).is_locally_administered());
        let m: Mac = "52:54:00:ab:cd:ef".parse().unwrap();
        assert_eq!(m, Mac([0x52, 0x54, 0, 0xab, 0xcd, 0xef]));
        assert_eq!(m.to_string(), "52:54:00:ab:cd:ef");
        assert!("52:54:00:ab:cd".parse::<Mac>().is_err());
        assert!("52:54:00:ab:cd:ef:00".parse::<Mac>().is_err());
        assert!("52:54:00:ab:cd:+f".parse::<Mac>().is_err());
    }

    #[test]
    fn parse_and_build() {
        let b = EthernetBuilder {
            dst: Mac::BROADCAST,
            src: Mac([2, 0, 0, 0, 0, 1]),
            ethertype: EtherType::ARP,
        };
        let mut buf = [0u8; 20];
        assert_eq!(b.emit(&mut buf), Ok(14));
        buf[14..].copy_from_slice(b"abcdef");
        let f = EthernetFrame::parse(&buf).unwrap();
        assert_eq!(f.dst(), b.dst);
        assert_eq!(f.src(), b.src);
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.payload(), b"abcdef");
        assert_eq!(b.emit(&mut [0u8; 13]), Err(BuildError::BufferTooSmall));
    }

    #[test]
    fn refuses_short_and_8023() {
        assert_eq!(
            EthernetFrame::parse(&[0; 13]).unwrap_err(),
            ParseError::Truncated
        );
        let mut f = [0u8; 60];
        f[12..14].copy_from_slice(&0x05dcu16.to_be_bytes());
        assert_eq!(
            EthernetFrame::parse(&f).unwrap_err(),
            ParseError::Unsupported
        );
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(f) = EthernetFrame::parse(&buf) {
                prop_assert_eq!(f.payload().len() + HEADER_LEN, buf.len());
                let _ = format!("{f:?}");
            }
        }

        #[test]
        fn round_trip(dst: [u8; 6], src: [u8; 6], t in 0x0600u16.., payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let b = EthernetBuilder { dst: Mac(dst), src: Mac(src), ethertype: EtherType(t) };
            let mut buf = vec![0u8; 14 + payload.len()];
            buf[14..].copy_from_slice(&payload);
            b.emit(&mut buf).unwrap();
            let f = EthernetFrame::parse(&buf).unwrap();
            prop_assert_eq!(EthernetBuilder { dst: f.dst(), src: f.src(), ethertype: f.ethertype() }, b);
            prop_assert_eq!(f.payload(), &payload[..]);
        }
    }
}
