//! IPv4 headers (RFC 791, with the receive checks of RFC 1122 3.2.1).
//!
//! [`Ipv4Packet::parse`] checks what RFC 1122 3.2.1 says a host must check
//! before looking further — version, header length, total length against
//! the buffer, header checksum — and nothing that depends on the host's
//! own addresses (that is the IP layer's job). Options are tolerated and
//! exposed; [`Ipv4Packet::options`] walks them for the layer that wants to
//! validate them and point an ICMP parameter problem at a bad one.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::checksum::{Checksum, checksum};
use super::{BuildError, ParseError, U16, header, header_mut};
use crate::ip::{IpProto, Ipv4Addr};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Longest header: IHL is four bits of 32-bit words.
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    version_ihl: u8,
    tos: u8,
    total_len: U16,
    ident: U16,
    flags_offset: U16,
    ttl: u8,
    proto: u8,
    checksum: U16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

/// A validated IPv4 datagram (or fragment).
#[derive(Clone, Copy)]
pub struct Ipv4Packet<'a> {
    hdr: &'a Header,
    /// Header and payload, cut at the total length.
    bytes: &'a [u8],
    header_len: usize,
}

impl<'a> Ipv4Packet<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Ipv4Packet<'a>, ParseError> {
        let (hdr, _) = header::<Header>(buf)?;
        if hdr.version_ihl >> 4 != 4 {
            return Err(ParseError::Malformed { offset: 0 });
        }
        let header_len = usize::from(hdr.version_ihl & 0x0f) * 4;
        if header_len < HEADER_LEN {
            return Err(ParseError::Malformed { offset: 0 });
        }
        let total_len = usize::from(hdr.total_len.get());
        if total_len < header_len {
            return Err(ParseError::Malformed { offset: 2 });
        }
        let bytes = buf.get(..total_len).ok_or(ParseError::Truncated)?;
        if checksum(&bytes[..header_len]) != 0 {
            return Err(ParseError::BadChecksum);
        }
        Ok(Ipv4Packet {
            hdr,
            bytes,
            header_len,
        })
    }

    /// The datagram quoted inside an ICMP error: usually cut short, so
    /// the total length may exceed the buffer, and its checksum is not
    /// ours to judge (a router may have quoted it after changing the TTL).
    /// Version and header length are still checked, and the whole header
    /// must be there. `payload()` is whatever part of the payload came.
    pub fn parse_quote(buf: &'a [u8]) -> Result<Ipv4Packet<'a>, ParseError> {
        let (hdr, _) = header::<Header>(buf)?;
        let header_len = usize::from(hdr.version_ihl & 0x0f) * 4;
        if hdr.version_ihl >> 4 != 4 || header_len < HEADER_LEN {
            return Err(ParseError::Malformed { offset: 0 });
        }
        let total_len = usize::from(hdr.total_len.get());
        if total_len < header_len {
            return Err(ParseError::Malformed { offset: 2 });
        }
        if buf.len() < header_len {
            return Err(ParseError::Truncated);
        }
        Ok(Ipv4Packet {
            hdr,
            bytes: &buf[..total_len.min(buf.len())],
            header_len,
        })
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// Differentiated services code point: the upper six bits of the old
    /// TOS byte.
    pub fn dscp(&self) -> u8 {
        self.hdr.tos >> 2
    }
    pub fn ecn(&self) -> u8 {
        self.hdr.tos & 0x03
    }
    pub fn total_len(&self) -> u16 {
        self.hdr.total_len.get()
    }
    pub fn ident(&self) -> u16 {
        self.hdr.ident.get()
    }
    pub fn dont_fragment(&self) -> bool {
        self.hdr.flags_offset.get() & FLAG_DF != 0
    }
    pub fn more_fragments(&self) -> bool {
        self.hdr.flags_offset.get() & FLAG_MF != 0
    }
    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn fragment_offset(&self) -> u16 {
        (self.hdr.flags_offset.get() & OFFSET_MASK) << 3
    }
    /// A fragment of a larger datagram (first, middle or last).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.fragment_offset() != 0
    }
    pub fn ttl(&self) -> u8 {
        self.hdr.ttl
    }
    pub fn protocol(&self) -> IpProto {
        IpProto(self.hdr.proto)
    }
    pub fn header_checksum(&self) -> u16 {
        self.hdr.checksum.get()
    }
    pub fn src(&self) -> Ipv4Addr {
        self.hdr.src
    }
    pub fn dst(&self) -> Ipv4Addr {
        self.hdr.dst
    }
    /// The raw options, between the fixed header and the payload.
    pub fn options_bytes(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..self.header_len).unwrap_or(&[])
    }
    pub fn options(&self) -> Ipv4Options<'a> {
        Ipv4Options::new(self.options_bytes())
    }
    /// The header, options included.
    pub fn header_bytes(&self) -> &'a [u8] {
        self.bytes.get(..self.header_len).unwrap_or(&[])
    }
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(self.header_len..).unwrap_or(&[])
    }
    /// Header and payload, without link padding: what an ICMP error quotes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The fields, as a builder that would write this header again.
    pub fn builder(&self) -> Ipv4Builder<'a> {
        Ipv4Builder {
            src: self.src(),
            dst: self.dst(),
            protocol: self.protocol(),
            ttl: self.ttl(),
            dscp: self.dscp(),
            ecn: self.ecn(),
            ident: self.ident(),
            dont_fragment: self.dont_fragment(),
            more_fragments: self.more_fragments(),
            fragment_offset: self.fragment_offset(),
            options: self.options_bytes(),
        }
    }
}

impl fmt::Debug for Ipv4Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ipv4Packet")
            .field("src", &self.src())
            .field("dst", &self.dst())
            .field("proto", &self.protocol())
            .field("ttl", &self.ttl())
            .field("len", &self.total_len())
            .field("ident", &self.ident())
            .field("df", &self.dont_fragment())
            .field("mf", &self.more_fragments())
            .field("offset", &self.fragment_offset())
            .finish()
    }
}

/// One IPv4 option (NOP and end-of-list are consumed by the iterator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// Offset of the type byte from the start of the IP header: the
    /// pointer for an ICMP parameter problem about this option.
    pub offset: usize,
    pub kind: u8,
    /// The bytes after type and length.
    pub data: &'a [u8],
}

impl Ipv4Option<'_> {
    /// The copied flag: the option goes into every fragment.
    pub fn is_copied(&self) -> bool {
        self.kind & 0x80 != 0
    }
}

/// Option type numbers (IANA "IP Option Numbers").
pub mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const RECORD_ROUTE: u8 = 7;
    pub const TIMESTAMP: u8 = 68;
    pub const LOOSE_SOURCE_ROUTE: u8 = 131;
    pub const STRICT_SOURCE_ROUTE: u8 = 137;
    pub const ROUTER_ALERT: u8 = 148;
}

/// Walks the options. A malformed length ends the walk with
/// `Malformed { offset }` at the option's type byte, as Linux's
/// `ip_options_compile` points its parameter problem.
#[derive(Clone, Debug)]
pub struct Ipv4Options<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Ipv4Options<'a> {
    /// Walks `buf`, the option bytes that follow a 20-byte header.
    pub fn new(buf: &'a [u8]) -> Ipv4Options<'a> {
        Ipv4Options { buf, at: 0 }
    }
}

impl<'a> Iterator for Ipv4Options<'a> {
    type Item = Result<Ipv4Option<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let start = self.at;
            let kind = *self.buf.get(start)?;
            match kind {
                option::END => {
                    self.at = self.buf.len();
                    return None;
                }
                option::NOP => self.at += 1,
                _ => {
                    let offset = HEADER_LEN + start;
                    let bad = Some(Err(ParseError::Malformed { offset }));
                    let Some(&len) = self.buf.get(start + 1) else {
                        self.at = self.buf.len();
                        return bad;
                    };
                    let len = usize::from(len);
                    let Some(data) = self.buf.get(start + 2..start + len).filter(|_| len >= 2)
                    else {
                        self.at = self.buf.len();
                        return bad;
                    };
                    self.at = start + len;
                    return Some(Ok(Ipv4Option { offset, kind, data }));
                }
            }
        }
    }
}

/// The fields of an IPv4 header, to write one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Builder<'a> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProto,
    pub ttl: u8,
    /// Six bits.
    pub dscp: u8,
    /// Two bits.
    pub ecn: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// In bytes; a multiple of 8.
    pub fragment_offset: u16,
    /// Raw options, already padded to a multiple of 4 bytes, at most 40.
    pub options: &'a [u8],
}

impl<'a> Ipv4Builder<'a> {
    /// An unfragmented datagram with Linux's default TTL and no options.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProto) -> Ipv4Builder<'a> {
        Ipv4Builder {
            src,
            dst,
            protocol,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: 0,
            options: &[],
        }
    }

    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Writes the header at the front of `buf`, taking the rest of `buf`
    /// as the payload (so `buf.len()` is the total length), and fills in
    /// the header checksum. Returns the header length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let header_len = self.header_len();
        if self.options.len() % 4 != 0
            || header_len > MAX_HEADER_LEN
            || self.fragment_offset % 8 != 0
            || self.dscp > 0x3f
            || self.ecn > 3
        {
            return Err(BuildError::InvalidField);
        }
        if buf.len() < header_len {
            return Err(BuildError::BufferTooSmall);
        }
        let total_len = u16::try_from(buf.len()).map_err(|_| BuildError::TooLong)?;
        let (hdr, rest) = header_mut::<Header>(buf)?;
        let version_ihl = 0x40 | (header_len / 4) as u8;
        let tos = self.dscp << 2 | self.ecn;
        hdr.version_ihl = version_ihl;
        hdr.tos = tos;
        hdr.total_len = U16::new(total_len);
        hdr.ident = U16::new(self.ident);
        let mut flags = self.fragment_offset >> 3;
        if self.dont_fragment {
            flags |= FLAG_DF;
        }
        if self.more_fragments {
            flags |= FLAG_MF;
        }
        hdr.flags_offset = U16::new(flags);
        hdr.ttl = self.ttl;
        hdr.proto = self.protocol.0;
        hdr.checksum = U16::ZERO;
        hdr.src = self.src;
        hdr.dst = self.dst;
        rest[..self.options.len()].copy_from_slice(self.options);
        // Summed from the fields, not read back from the header just
        // written with narrow stores (a wide load would wait for them).
        let mut c = Checksum::new();
        c.add_u16(u16::from_be_bytes([version_ihl, tos]))
            .add_u16(total_len)
            .add_u16(self.ident)
            .add_u16(flags)
            .add_u16(u16::from_be_bytes([self.ttl, self.protocol.0]))
            .add_u32(u32::from_be_bytes(self.src.octets()))
            .add_u32(u32::from_be_bytes(self.dst.octets()));
        if !self.options.is_empty() {
            c.add_bytes(self.options);
        }
        buf[10..12].copy_from_slice(&c.checksum().to_be_bytes());
        Ok(header_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::mutate;
    use proptest::prelude::*;

    fn build(b: &Ipv4Builder<'_>, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; b.header_len() + payload.len()];
        buf[b.header_len()..].copy_from_slice(payload);
        b.emit(&mut buf).unwrap();
        buf
    }

    fn sample() -> Vec<u8> {
        let mut b = Ipv4Builder::new(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            IpProto::UDP,
        );
        b.options = &[option::ROUTER_ALERT, 4, 0, 0];
        build(&b, b"hello")
    }

    #[test]
    fn parse_checks() {
        let good = sample();
        let p = Ipv4Packet::parse(&good).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), b"hello");
        let opts: Vec<_> = p.options().collect();
        assert_eq!(
            opts,
            vec![Ok(Ipv4Option {
                offset: 20,
                kind: option::ROUTER_ALERT,
                data: &[0, 0]
            })]
        );

        // Padding after the datagram is not payload.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 20]);
        assert_eq!(Ipv4Packet::parse(&padded).unwrap().payload(), b"hello");

        let mut v = good.clone();
        v[0] = 0x65;
        assert_eq!(
            Ipv4Packet::parse(&v).unwrap_err(),
            ParseError::Malformed { offset: 0 }
        );
        let mut v = good.clone();
        v[0] = 0x44;
        assert_eq!(
            Ipv4Packet::parse(&v).unwrap_err(),
            ParseError::Malformed { offset: 0 }
        );
        let mut v = good.clone();
        v[0] = 0x4f; // IHL 60 > buffer
        assert_eq!(
            Ipv4Packet::parse(&v).unwrap_err(),
            ParseError::Malformed { offset: 2 }
        );
        let mut v = good.clone();
        v[3] = 200; // total length past the buffer
        assert_eq!(Ipv4Packet::parse(&v).unwrap_err(), ParseError::Truncated);
        let mut v = good.clone();
        v[3] = 23; // shorter than the header
        assert_eq!(
            Ipv4Packet::parse(&v).unwrap_err(),
            ParseError::Malformed { offset: 2 }
        );
        let mut v = good.clone();
        v[8] ^= 1;
        assert_eq!(Ipv4Packet::parse(&v).unwrap_err(), ParseError::BadChecksum);
        assert_eq!(
            Ipv4Packet::parse(&good[..19]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn bad_option_length_points_at_option() {
        let mut b = Ipv4Builder::new(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            IpProto::UDP,
        );
        b.options = &[option::NOP, option::RECORD_ROUTE, 9, 4];
        let buf = build(&b, &[]);
        let p = Ipv4Packet::parse(&buf).unwrap();
        let opts: Vec<_> = p.options().collect();
        assert_eq!(opts, vec![Err(ParseError::Malformed { offset: 21 })]);
        b.options = &[option::END, 0xff, 0xff, 0xff];
        assert_eq!(
            Ipv4Packet::parse(&build(&b, &[]))
                .unwrap()
                .options()
                .count(),
            0
        );
        b.options = &[7, 1, 0, 0];
        assert_eq!(
            Ipv4Packet::parse(&build(&b, &[])).unwrap().options().next(),
            Some(Err(ParseError::Malformed { offset: 20 }))
        );
    }

    #[test]
    fn builder_refuses() {
        let mut b = Ipv4Builder::new(Ipv4Addr::LOOPBACK, Ipv4Addr::LOOPBACK, IpProto::TCP);
        assert_eq!(b.emit(&mut [0; 19]), Err(BuildError::BufferTooSmall));
        assert_eq!(b.emit(&mut vec![0; 65536]), Err(BuildError::TooLong));
        b.fragment_offset = 4;
        assert_eq!(b.emit(&mut [0; 20]), Err(BuildError::InvalidField));
        b.fragment_offset = 0;
        b.options = &[1, 1, 1];
        assert_eq!(b.emit(&mut [0; 40]), Err(BuildError::InvalidField));
        b.options = &[1; 44];
        assert_eq!(b.emit(&mut [0; 80]), Err(BuildError::InvalidField));
    }

    fn arb_builder() -> impl Strategy<Value = (Ipv4Builder<'static>, Vec<u8>, Vec<u8>)> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            any::<u8>(),
            0u8..64,
            0u8..4,
            any::<u16>(),
            any::<(bool, bool)>(),
            0u16..8192,
            0usize..=10,
            proptest::collection::vec(any::<u8>(), 0..100),
        )
            .prop_map(
                |(s, d, p, ttl, dscp, ecn, ident, (df, mf), off, nopt, payload)| {
                    let b = Ipv4Builder {
                        src: s.into(),
                        dst: d.into(),
                        protocol: IpProto(p),
                        ttl,
                        dscp,
                        ecn,
                        ident,
                        dont_fragment: df,
                        more_fragments: mf,
                        fragment_offset: off << 3,
                        options: &[],
                    };
                    (b, vec![option::NOP; nopt * 4], payload)
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip((mut b, opts, payload) in arb_builder()) {
            b.options = &opts;
            let buf = build(&b, &payload);
            let p = Ipv4Packet::parse(&buf).unwrap();
            prop_assert_eq!(p.builder(), b);
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(p.options().count(), 0);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv4Packet::parse(&buf) {
                let _ = (p.payload(), p.options().count(), p.builder(), format!("{p:?}"));
            }
        }

        #[test]
        fn mutations_never_panic(buf in mutate(sample())) {
            if let Ok(p) = Ipv4Packet::parse(&buf) {
                for o in p.options() {
                    let _ = o;
                }
                prop_assert!(p.as_bytes().len() <= buf.len());
            }
        }

        #[test]
        fn random_options_never_panic(opts in proptest::collection::vec(any::<u8>(), 0..=10)) {
            let mut o = opts.clone();
            o.resize(opts.len().div_ceil(4) * 4, 0);
            let mut b = Ipv4Builder::new(Ipv4Addr::LOOPBACK, Ipv4Addr::LOOPBACK, IpProto::TCP);
            b.options = &o;
            let buf = build(&b, &[]);
            let p = Ipv4Packet::parse(&buf).unwrap();
            for opt in p.options().flatten() {
                prop_assert!(opt.offset + 2 + opt.data.len() <= p.header_len());
            }
        }
    }
}
