//! UDP (RFC 768; RFC 8200 8.1 for IPv6).
//!
//! The checksum rules differ by version and are the reason this module is
//! generic: over IPv4 a zero checksum means "none" and is accepted; over
//! IPv6 the checksum is mandatory and a zero one is dropped. When sending,
//! a computed checksum of zero goes out as 0xffff on both.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::checksum::pseudo_header;
use super::{BuildError, ParseError, U16, header, header_mut};
use crate::ip::{Ip, IpAddress, IpProto, IpVersion};

pub const HEADER_LEN: usize = 8;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    src_port: U16,
    dst_port: U16,
    length: U16,
    checksum: U16,
}

/// A UDP datagram whose length (and, unless told otherwise, checksum)
/// has been checked.
#[derive(Clone, Copy)]
pub struct UdpPacket<'a> {
    hdr: &'a Header,
    payload: &'a [u8],
}

impl<'a> UdpPacket<'a> {
    /// `buf` is the IP payload; `src` and `dst` the IP header's addresses.
    /// Bytes past the UDP length are ignored (RFC 768 leaves the IP length
    /// authoritative only as an upper bound; Linux trims the same way).
    pub fn parse<A: IpAddress>(
        buf: &'a [u8],
        src: &A,
        dst: &A,
    ) -> Result<UdpPacket<'a>, ParseError> {
        let p = Self::parse_unverified(buf)?;
        let ck = p.hdr.checksum.get();
        if ck == 0 {
            return match A::Version::VERSION {
                IpVersion::V4 => Ok(p),
                IpVersion::V6 => Err(ParseError::Malformed { offset: 6 }),
            };
        }
        let len = u32::from(p.hdr.length.get());
        let mut c = pseudo_header(src, dst, IpProto::UDP, len);
        c.add_bytes(&buf[..HEADER_LEN + p.payload.len()]);
        if c.checksum() != 0 {
            return Err(ParseError::BadChecksum);
        }
        Ok(p)
    }

    /// Checks lengths only: for frames whose checksum the device has
    /// verified (virtio-net `DATA_VALID`).
    pub fn parse_unverified(buf: &'a [u8]) -> Result<UdpPacket<'a>, ParseError> {
        let (hdr, rest) = header::<Header>(buf)?;
        let len = usize::from(hdr.length.get());
        if len < HEADER_LEN {
            return Err(ParseError::Malformed { offset: 4 });
        }
        let payload = rest.get(..len - HEADER_LEN).ok_or(ParseError::Truncated)?;
        Ok(UdpPacket { hdr, payload })
    }

    pub fn src_port(&self) -> u16 {
        self.hdr.src_port.get()
    }
    pub fn dst_port(&self) -> u16 {
        self.hdr.dst_port.get()
    }
    /// The length field: header plus payload.
    pub fn length(&self) -> u16 {
        self.hdr.length.get()
    }
    pub fn checksum(&self) -> u16 {
        self.hdr.checksum.get()
    }
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
    pub fn builder(&self) -> UdpBuilder {
        UdpBuilder {
            src_port: self.src_port(),
            dst_port: self.dst_port(),
        }
    }
}

impl fmt::Debug for UdpPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpPacket")
            .field("src_port", &self.src_port())
            .field("dst_port", &self.dst_port())
            .field("len", &self.payload.len())
            .finish()
    }
}

/// The fields of a UDP header, to write one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpBuilder {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpBuilder {
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Writes the header at the front of `buf`, taking the rest as the
    /// payload, and fills in length and checksum for a datagram from `src`
    /// to `dst`. Returns the header length.
    pub fn emit<A: IpAddress>(
        &self,
        src: &A,
        dst: &A,
        buf: &mut [u8],
    ) -> Result<usize, BuildError> {
        let len = u16::try_from(buf.len()).map_err(|_| BuildError::TooLong)?;
        let (hdr, _) = header_mut::<Header>(buf)?;
        hdr.src_port = U16::new(self.src_port);
        hdr.dst_port = U16::new(self.dst_port);
        hdr.length = U16::new(len);
        hdr.checksum = U16::ZERO;
        let mut c = pseudo_header(src, dst, IpProto::UDP, u32::from(len));
        c.add_bytes(buf);
        let ck = match c.checksum() {
            0 => 0xffff,
            ck => ck,
        };
        buf[6..8].copy_from_slice(&ck.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{Ipv4Addr, Ipv6Addr};
    use crate::wire::testutil::mutate;
    use proptest::prelude::*;

    const S4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const D4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn build<A: IpAddress>(s: &A, d: &A, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 8 + payload.len()];
        buf[8..].copy_from_slice(payload);
        UdpBuilder {
            src_port: 5353,
            dst_port: 53,
        }
        .emit(s, d, &mut buf)
        .unwrap();
        buf
    }

    #[test]
    fn zero_checksum_v4_only() {
        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut b4 = build(&S4, &D4, b"abc");
        b4[6..8].fill(0);
        assert!(UdpPacket::parse(&b4, &S4, &D4).is_ok());
        let mut b6 = build(&s6, &d6, b"abc");
        assert!(UdpPacket::parse(&b6, &s6, &d6).is_ok());
        b6[6..8].fill(0);
        assert_eq!(
            UdpPacket::parse(&b6, &s6, &d6).unwrap_err(),
            ParseError::Malformed { offset: 6 }
        );
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Find a payload whose checksum computes to zero, then check the
        // builder writes 0xffff and the receiver accepts it.
        let mut found = false;
        for x in 0..=u16::MAX {
            let buf = build(&S4, &D4, &x.to_be_bytes());
            if buf[6..8] == [0xff, 0xff] {
                assert!(UdpPacket::parse(&buf, &S4, &D4).is_ok());
                found = true;
                break;
            }
        }
        assert!(found);
    }

    #[test]
    fn lengths() {
        let good = build(&S4, &D4, b"hello");
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 9]);
        assert_eq!(
            UdpPacket::parse(&padded, &S4, &D4).unwrap().payload(),
            b"hello"
        );
        let mut v = good.clone();
        v[5] = 7;
        assert_eq!(
            UdpPacket::parse(&v, &S4, &D4).unwrap_err(),
            ParseError::Malformed { offset: 4 }
        );
        let mut v = good.clone();
        v[5] = 30;
        assert_eq!(
            UdpPacket::parse(&v, &S4, &D4).unwrap_err(),
            ParseError::Truncated
        );
        let mut v = good.clone();
        v[9] ^= 0x40;
        assert_eq!(
            UdpPacket::parse(&v, &S4, &D4).unwrap_err(),
            ParseError::BadChecksum
        );
        assert_eq!(
            UdpBuilder {
                src_port: 1,
                dst_port: 2
            }
            .emit(&S4, &D4, &mut [0; 7]),
            Err(BuildError::BufferTooSmall)
        );
        assert_eq!(
            UdpBuilder {
                src_port: 1,
                dst_port: 2
            }
            .emit(&S4, &D4, &mut vec![0; 65536]),
            Err(BuildError::TooLong)
        );
    }

    proptest! {
        #[test]
        fn round_trip(sp: u16, dp: u16, s: [u8; 16], d: [u8; 16], payload in proptest::collection::vec(any::<u8>(), 0..100)) {
            let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
            let b = UdpBuilder { src_port: sp, dst_port: dp };
            let mut buf = vec![0u8; 8 + payload.len()];
            buf[8..].copy_from_slice(&payload);
            b.emit(&s, &d, &mut buf).unwrap();
            let p = UdpPacket::parse(&buf, &s, &d).unwrap();
            prop_assert_eq!(p.builder(), b);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = UdpPacket::parse(&buf, &S4, &D4);
            if let Ok(p) = UdpPacket::parse_unverified(&buf) {
                let _ = format!("{p:?}");
            }
        }

        #[test]
        fn mutations_never_panic(buf in mutate(build(&S4, &D4, b"0123456789"))) {
            let _ = UdpPacket::parse(&buf, &S4, &D4);
        }
    }
}
