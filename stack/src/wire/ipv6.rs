//! IPv6 headers (RFC 8200): the fixed header and the extension-header
//! chain.
//!
//! [`Ipv6Packet::parse`] checks only the fixed header. The chain is walked
//! by [`ExtHeaders`], lazily, because what to do with it is protocol
//! logic, not parsing: an unknown option may mean "skip", "drop" or "drop
//! and send a parameter problem" (RFC 8200 4.2), a routing header with
//! segments left is an error only for an unknown routing type (4.4). So
//! the walker hands out every header with its byte offset in the packet,
//! and every error with the offset an ICMPv6 parameter problem must point
//! at. The offsets count from the start of the IPv6 header, as RFC 4443
//! 3.4's pointer does.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{BuildError, ParseError, U16, U32, header, header_mut};
use crate::ip::{IpProto, Ipv6Addr};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    version_tc_flow: U32,
    payload_len: U16,
    next_header: u8,
    hop_limit: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
}

/// An IPv6 packet with a valid fixed header.
#[derive(Clone, Copy)]
pub struct Ipv6Packet<'a> {
    hdr: &'a Header,
    /// Fixed header and payload, cut at the payload length.
    bytes: &'a [u8],
}

impl<'a> Ipv6Packet<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Ipv6Packet<'a>, ParseError> {
        let (hdr, _) = header::<Header>(buf)?;
        if hdr.version_tc_flow.get() >> 28 != 6 {
            return Err(ParseError::Malformed { offset: 0 });
        }
        let len = HEADER_LEN + usize::from(hdr.payload_len.get());
        let bytes = buf.get(..len).ok_or(ParseError::Truncated)?;
        Ok(Ipv6Packet { hdr, bytes })
    }

    /// The packet quoted inside an ICMPv6 error: usually cut short, so
    /// the payload length may exceed the buffer. `payload()` is whatever
    /// part of the payload came, and the extension-header walk reports
    /// `Truncated` where the quote ends.
    pub fn parse_quote(buf: &'a [u8]) -> Result<Ipv6Packet<'a>, ParseError> {
        let (hdr, _) = header::<Header>(buf)?;
        if hdr.version_tc_flow.get() >> 28 != 6 {
            return Err(ParseError::Malformed { offset: 0 });
        }
        let len = HEADER_LEN + usize::from(hdr.payload_len.get());
        Ok(Ipv6Packet {
            hdr,
            bytes: &buf[..len.min(buf.len())],
        })
    }

    pub fn traffic_class(&self) -> u8 {
        (self.hdr.version_tc_flow.get() >> 20) as u8
    }
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }
    pub fn flow_label(&self) -> u32 {
        self.hdr.version_tc_flow.get() & 0x000f_ffff
    }
    pub fn payload_len(&self) -> u16 {
        self.hdr.payload_len.get()
    }
    /// The fixed header's next header: the first extension header or the
    /// upper-layer protocol.
    pub fn next_header(&self) -> IpProto {
        IpProto(self.hdr.next_header)
    }
    pub fn hop_limit(&self) -> u8 {
        self.hdr.hop_limit
    }
    pub fn src(&self) -> Ipv6Addr {
        self.hdr.src
    }
    pub fn dst(&self) -> Ipv6Addr {
        self.hdr.dst
    }
    /// Everything after the fixed header, extension headers included.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or(&[])
    }
    /// Fixed header and payload, without link padding: what an ICMPv6
    /// error quotes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Walks the extension headers; after the walk, the walker knows the
    /// upper-layer protocol and where it starts.
    pub fn ext_headers(&self) -> ExtHeaders<'a> {
        ExtHeaders {
            packet: self.bytes,
            next_header: self.hdr.next_header,
            next_header_offset: 6,
            at: HEADER_LEN,
            first: true,
            done: false,
        }
    }
    /// The upper-layer protocol, its offset in the packet and its bytes,
    /// skipping every extension header. For a non-first fragment this is
    /// the fragment's data, not a header; callers that care look at the
    /// chain themselves.
    pub fn upper_layer(&self) -> Result<(IpProto, usize, &'a [u8]), ParseError> {
        let mut walk = self.ext_headers();
        for h in &mut walk {
            h?;
        }
        let (proto, offset) = walk.upper_layer();
        Ok((proto, offset, self.bytes.get(offset..).unwrap_or(&[])))
    }
    /// The fields, as a builder that would write this fixed header again.
    pub fn builder(&self) -> Ipv6Builder {
        Ipv6Builder {
            src: self.src(),
            dst: self.dst(),
            next_header: self.next_header(),
            hop_limit: self.hop_limit(),
            traffic_class: self.traffic_class(),
            flow_label: self.flow_label(),
        }
    }
}

impl fmt::Debug for Ipv6Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ipv6Packet")
            .field("src", &self.src())
            .field("dst", &self.dst())
            .field("next_header", &self.next_header())
            .field("hop_limit", &self.hop_limit())
            .field("payload_len", &self.payload_len())
            .finish()
    }
}

/// One extension header and where it sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtHeader<'a> {
    /// Offset of the header's first byte in the packet.
    pub offset: usize,
    /// What this header says comes next.
    pub next_header: IpProto,
    pub kind: ExtHeaderKind<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtHeaderKind<'a> {
    HopByHop(Ipv6Options<'a>),
    Routing {
        routing_type: u8,
        segments_left: u8,
        /// Type-specific data after the four fixed bytes.
        data: &'a [u8],
    },
    Fragment(FragmentHeader),
    DestinationOptions(Ipv6Options<'a>),
}

impl ExtHeader<'_> {
    /// Offset of the routing header's type field, for the parameter problem
    /// an unknown routing type with segments left earns (RFC 8200 4.4).
    pub fn routing_type_offset(&self) -> usize {
        self.offset + 2
    }
}

/// Walks an extension-header chain. Yields each extension header in
/// order; ends at the first next-header value that is not hop-by-hop,
/// routing, fragment or destination options (an upper layer, No Next
/// Header, ESP/AH or something unknown: the IP layer decides), or after
/// a fragment header with a non-zero offset, whose payload is not headers.
/// On error it yields the error once and stops.
#[derive(Clone, Debug)]
pub struct ExtHeaders<'a> {
    packet: &'a [u8],
    next_header: u8,
    next_header_offset: usize,
    at: usize,
    first: bool,
    done: bool,
}

impl<'a> ExtHeaders<'a> {
    /// The protocol after the chain and its offset in the packet. Valid
    /// once the iterator has returned `None`.
    pub fn upper_layer(&self) -> (IpProto, usize) {
        (IpProto(self.next_header), self.at)
    }
    /// Offset of the next-header field naming what comes after the chain:
    /// the pointer for a parameter problem with code 1 (unrecognized next
    /// header) if the IP layer knows no such protocol.
    pub fn next_header_offset(&self) -> usize {
        self.next_header_offset
    }

    fn fail(&mut self, e: ParseError) -> Option<Result<ExtHeader<'a>, ParseError>> {
        self.done = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for ExtHeaders<'a> {
    type Item = Result<ExtHeader<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let proto = IpProto(self.next_header);
        let is_ext = matches!(
            proto,
            IpProto::HOPOPT | IpProto::IPV6_ROUTE | IpProto::IPV6_FRAG | IpProto::IPV6_OPTS
        );
        if !is_ext {
            self.done = true;
            return None;
        }
        if proto == IpProto::HOPOPT && !self.first {
            // RFC 8200 4.1: hop-by-hop only immediately after the header.
            return self.fail(ParseError::UnrecognizedNextHeader {
                offset: self.next_header_offset,
            });
        }
        self.first = false;
        let offset = self.at;
        let Some(&[nh, len_byte]) = self.packet.get(offset..offset + 2) else {
            return self.fail(ParseError::Truncated);
        };
        let len = if proto == IpProto::IPV6_FRAG {
            8
        } else {
            (usize::from(len_byte) + 1) * 8
        };
        let Some(body) = self.packet.get(offset..offset + len) else {
            return self.fail(ParseError::Truncated);
        };
        let kind = match proto {
            IpProto::HOPOPT => ExtHeaderKind::HopByHop(Ipv6Options::new(body, offset)),
            IpProto::IPV6_OPTS => ExtHeaderKind::DestinationOptions(Ipv6Options::new(body, offset)),
            IpProto::IPV6_ROUTE => ExtHeaderKind::Routing {
                routing_type: body[2],
                segments_left: body[3],
                data: &body[4..],
            },
            _ => {
                let (f, _) = match header::<FragmentRaw>(body) {
                    Ok(f) => f,
                    Err(e) => return self.fail(e),
                };
                ExtHeaderKind::Fragment(FragmentHeader::from_raw(f))
            }
        };
        self.next_header = nh;
        self.next_header_offset = offset;
        self.at = offset + len;
        if let ExtHeaderKind::Fragment(f) = kind {
            if f.offset != 0 {
                self.done = true;
            }
        }
        Some(Ok(ExtHeader {
            offset,
            next_header: IpProto(nh),
            kind,
        }))
    }
}

/// The options of a hop-by-hop or destination-options header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Options<'a> {
    /// The whole extension header, next-header and length bytes included.
    header: &'a [u8],
    /// Offset of the extension header in the packet.
    base: usize,
}

impl fmt::Debug for Ipv6Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

impl<'a> Ipv6Options<'a> {
    fn new(header: &'a [u8], base: usize) -> Ipv6Options<'a> {
        Ipv6Options { header, base }
    }
}

impl<'a> IntoIterator for Ipv6Options<'a> {
    type Item = Result<Ipv6Option<'a>, ParseError>;
    type IntoIter = Ipv6OptionsIter<'a>;
    fn into_iter(self) -> Ipv6OptionsIter<'a> {
        Ipv6OptionsIter {
            opts: self,
            at: 2,
            done: false,
        }
    }
}

/// Yields each option but Pad1 and PadN; a length running past the header
/// yields `Malformed` at the option's type byte and stops.
#[derive(Clone, Debug)]
pub struct Ipv6OptionsIter<'a> {
    opts: Ipv6Options<'a>,
    at: usize,
    done: bool,
}

impl<'a> Iterator for Ipv6OptionsIter<'a> {
    type Item = Result<Ipv6Option<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let h = self.opts.header;
            let start = self.at;
            let kind = *h.get(start)?;
            if kind == option::PAD1 {
                self.at += 1;
                continue;
            }
            let offset = self.opts.base + start;
            let data = h
                .get(start + 1)
                .and_then(|&l| h.get(start + 2..start + 2 + usize::from(l)));
            let Some(data) = data else {
                self.done = true;
                return Some(Err(ParseError::Malformed { offset }));
            };
            self.at = start + 2 + data.len();
            if kind != option::PADN {
                return Some(Ok(Ipv6Option { offset, kind, data }));
            }
        }
        None
    }
}

/// Option types (IANA "Destination Options and Hop-by-Hop Options").
pub mod option {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const JUMBO: u8 = 0xc2;
    pub const ROUTER_ALERT: u8 = 0x05;
}

/// One hop-by-hop or destination option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Option<'a> {
    /// Offset of the type byte in the packet: the pointer for parameter
    /// problem code 2 if the option is not recognised.
    pub offset: usize,
    pub kind: u8,
    pub data: &'a [u8],
}

/// What RFC 8200 4.2 says to do with an option we do not recognise, as
/// encoded in its type's two high bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnrecognizedAction {
    Skip,
    Discard,
    /// Discard and send parameter problem code 2 pointing at the option.
    DiscardAndReport,
    /// As above, but only if the destination was not multicast.
    DiscardAndReportIfUnicast,
}

impl Ipv6Option<'_> {
    pub fn unrecognized_action(&self) -> UnrecognizedAction {
        match self.kind >> 6 {
            0 => UnrecognizedAction::Skip,
            1 => UnrecognizedAction::Discard,
            2 => UnrecognizedAction::DiscardAndReport,
            _ => UnrecognizedAction::DiscardAndReportIfUnicast,
        }
    }
    /// Whether the option may change en route (excluded from AH).
    pub fn may_change(&self) -> bool {
        self.kind & 0x20 != 0
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct FragmentRaw {
    next_header: u8,
    reserved: u8,
    offset_flags: U16,
    ident: U32,
}

/// A fragment header (RFC 8200 4.5), for reading and writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    pub next_header: IpProto,
    /// In bytes; a multiple of 8.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

impl FragmentHeader {
    pub const LEN: usize = 8;

    fn from_raw(f: &FragmentRaw) -> FragmentHeader {
        let of = f.offset_flags.get();
        FragmentHeader {
            next_header: IpProto(f.next_header),
            offset: of & !7,
            more: of & 1 != 0,
            ident: f.ident.get(),
        }
    }
    /// An atomic fragment (RFC 6946): offset 0 and no more fragments,
    /// to be processed as a whole packet, never reassembled.
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        if self.offset % 8 != 0 {
            return Err(BuildError::InvalidField);
        }
        let (f, _) = header_mut::<FragmentRaw>(buf)?;
        f.next_header = self.next_header.0;
        f.reserved = 0;
        f.offset_flags = U16::new(self.offset | u16::from(self.more));
        f.ident = U32::new(self.ident);
        Ok(Self::LEN)
    }
}

/// Writes a hop-by-hop or destination-options header holding `options`
/// (already encoded as type-length-value), padded with Pad1/PadN to a
/// multiple of 8 bytes. For the router-alert option of MLD, say.
#[derive(Clone, Copy, Debug)]
pub struct OptionsHeaderBuilder<'a> {
    pub next_header: IpProto,
    pub options: &'a [u8],
}

impl OptionsHeaderBuilder<'_> {
    pub fn header_len(&self) -> usize {
        (2 + self.options.len()).div_ceil(8) * 8
    }
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let len = self.header_len();
        if len > 2048 {
            return Err(BuildError::InvalidField);
        }
        let out = buf.get_mut(..len).ok_or(BuildError::BufferTooSmall)?;
        out[0] = self.next_header.0;
        out[1] = (len / 8 - 1) as u8;
        let end = 2 + self.options.len();
        out[2..end].copy_from_slice(self.options);
        match len - end {
            0 => {}
            1 => out[end] = option::PAD1,
            n => {
                out[end] = option::PADN;
                out[end + 1] = (n - 2) as u8;
                out[end + 2..].fill(0);
            }
        }
        Ok(len)
    }
}

/// The fields of a fixed IPv6 header, to write one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Builder {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: IpProto,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// Twenty bits.
    pub flow_label: u32,
}

impl Ipv6Builder {
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Linux's default hop limit, no traffic class or flow label.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpProto) -> Ipv6Builder {
        Ipv6Builder {
            src,
            dst,
            next_header,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
    }

    /// Writes the fixed header at the front of `buf`, taking the rest as
    /// the payload (extension headers included). Returns the header length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        if self.flow_label > 0x000f_ffff {
            return Err(BuildError::InvalidField);
        }
        let payload_len = buf
            .len()
            .checked_sub(HEADER_LEN)
            .ok_or(BuildError::BufferTooSmall)?;
        let payload_len = u16::try_from(payload_len).map_err(|_| BuildError::TooLong)?;
        let (hdr, _) = header_mut::<Header>(buf)?;
        hdr.version_tc_flow =
            U32::new(6 << 28 | u32::from(self.traffic_class) << 20 | self.flow_label);
        hdr.payload_len = U16::new(payload_len);
        hdr.next_header = self.next_header.0;
        hdr.hop_limit = self.hop_limit;
        hdr.src = self.src;
        hdr.dst = self.dst;
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::mutate;
    use proptest::prelude::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Fixed header + HBH(router alert) + DstOpts(unknown option 0x9e) +
    /// Fragment(first) + 8 bytes of "UDP".
    fn chained() -> Vec<u8> {
        let mut buf = vec![0u8; 40 + 8 + 8 + 8 + 8];
        let mut at = 40;
        at += OptionsHeaderBuilder {
            next_header: IpProto::IPV6_OPTS,
            options: &[option::ROUTER_ALERT, 2, 0, 0],
        }
        .emit(&mut buf[at..])
        .unwrap();
        at += OptionsHeaderBuilder {
            next_header: IpProto::IPV6_FRAG,
            options: &[0x9e, 1, 0xaa],
        }
        .emit(&mut buf[at..])
        .unwrap();
        at += FragmentHeader {
            next_header: IpProto::UDP,
            offset: 0,
            more: true,
            ident: 0xdead_beef,
        }
        .emit(&mut buf[at..])
        .unwrap();
        buf[at..].copy_from_slice(b"udphdr!!");
        Ipv6Builder::new(addr("2001:db8::1"), addr("2001:db8::2"), IpProto::HOPOPT)
            .emit(&mut buf)
            .unwrap();
        buf
    }

    #[test]
    fn walks_chain_with_offsets() {
        let buf = chained();
        let p = Ipv6Packet::parse(&buf).unwrap();
        let mut walk = p.ext_headers();
        let h: Vec<_> = (&mut walk).collect::<Result<_, _>>().unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].offset, 40);
        let ExtHeaderKind::HopByHop(o) = h[0].kind else {
            panic!()
        };
        let o: Vec<_> = o.into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            o,
            vec![Ipv6Option {
                offset: 42,
                kind: option::ROUTER_ALERT,
                data: &[0, 0]
            }]
        );
        assert_eq!(h[1].offset, 48);
        let ExtHeaderKind::DestinationOptions(o) = h[1].kind else {
            panic!()
        };
        let o = o.into_iter().next().unwrap().unwrap();
        assert_eq!(o.offset, 50);
        assert_eq!(
            o.unrecognized_action(),
            UnrecognizedAction::DiscardAndReport
        );
        assert_eq!(
            h[2].kind,
            ExtHeaderKind::Fragment(FragmentHeader {
                next_header: IpProto::UDP,
                offset: 0,
                more: true,
                ident: 0xdead_beef
            })
        );
        assert_eq!(walk.upper_layer(), (IpProto::UDP, 64));
        assert_eq!(walk.next_header_offset(), 56);
        assert_eq!(
            p.upper_layer().unwrap(),
            (IpProto::UDP, 64, &b"udphdr!!"[..])
        );
    }

    #[test]
    fn hop_by_hop_must_be_first() {
        let mut buf = chained();
        buf[48] = 0; // DstOpts now says hop-by-hop follows
        let p = Ipv6Packet::parse(&buf).unwrap();
        let errs: Vec<_> = p.ext_headers().filter_map(Result::err).collect();
        assert_eq!(
            errs,
            vec![ParseError::UnrecognizedNextHeader { offset: 48 }]
        );
    }

    #[test]
    fn truncated_chain_and_bad_option() {
        let mut buf = chained();
        buf[49] = 9; // DstOpts claims 80 bytes
        let p = Ipv6Packet::parse(&buf).unwrap();
        assert_eq!(p.upper_layer(), Err(ParseError::Truncated));
        let mut buf = chained();
        buf[51] = 200; // option length past its header
        let p = Ipv6Packet::parse(&buf).unwrap();
        let h = p.ext_headers().nth(1).unwrap().unwrap();
        let ExtHeaderKind::DestinationOptions(o) = h.kind else {
            panic!()
        };
        assert_eq!(
            o.into_iter().next(),
            Some(Err(ParseError::Malformed { offset: 50 }))
        );
    }

    #[test]
    fn non_first_fragment_ends_walk() {
        let mut buf = vec![0u8; 40 + 8 + 4];
        FragmentHeader {
            next_header: IpProto::TCP,
            offset: 1448,
            more: false,
            ident: 1,
        }
        .emit(&mut buf[40..])
        .unwrap();
        buf[48] = 0; // would look like hop-by-hop if parsed as a header
        Ipv6Builder::new(Ipv6Addr::LOOPBACK, Ipv6Addr::LOOPBACK, IpProto::IPV6_FRAG)
            .emit(&mut buf)
            .unwrap();
        let p = Ipv6Packet::parse(&buf).unwrap();
        let (proto, off, rest) = p.upper_layer().unwrap();
        assert_eq!((proto, off, rest.len()), (IpProto::TCP, 48, 4));
    }

    #[test]
    fn fixed_header_checks() {
        let buf = chained();
        assert_eq!(
            Ipv6Packet::parse(&buf[..39]).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            Ipv6Packet::parse(&buf[..60]).unwrap_err(),
            ParseError::Truncated
        );
        let mut v = buf.clone();
        v[0] = 0x45;
        assert_eq!(
            Ipv6Packet::parse(&v).unwrap_err(),
            ParseError::Malformed { offset: 0 }
        );
        let mut padded = buf.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(Ipv6Packet::parse(&padded).unwrap().as_bytes(), &buf[..]);
    }

    #[test]
    fn options_header_padding() {
        for n in 0..20 {
            let opts = vec![0x1e; n]; // garbage is fine: only lengths matter here
            let b = OptionsHeaderBuilder {
                next_header: IpProto::TCP,
                options: &opts,
            };
            let mut buf = vec![0u8; b.header_len()];
            assert_eq!(b.emit(&mut buf), Ok(b.header_len()));
            assert_eq!(buf.len() % 8, 0);
            assert_eq!(usize::from(buf[1]) * 8 + 8, buf.len());
        }
    }

    proptest! {
        #[test]
        fn round_trip(s: [u8; 16], d: [u8; 16], nh: u8, hl: u8, tc: u8, fl in 0u32..0x10_0000,
                      payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let b = Ipv6Builder { src: s.into(), dst: d.into(), next_header: IpProto(nh), hop_limit: hl, traffic_class: tc, flow_label: fl };
            let mut buf = vec![0u8; 40 + payload.len()];
            buf[40..].copy_from_slice(&payload);
            b.emit(&mut buf).unwrap();
            let p = Ipv6Packet::parse(&buf).unwrap();
            prop_assert_eq!(p.builder(), b);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn fragment_round_trip(nh: u8, off in 0u16..8192, more: bool, ident: u32) {
            let f = FragmentHeader { next_header: IpProto(nh), offset: off << 3, more, ident };
            let mut buf = vec![0u8; 48];
            f.emit(&mut buf[40..]).unwrap();
            Ipv6Builder::new(Ipv6Addr::LOOPBACK, Ipv6Addr::LOOPBACK, IpProto::IPV6_FRAG).emit(&mut buf).unwrap();
            let p = Ipv6Packet::parse(&buf).unwrap();
            let h = p.ext_headers().next().unwrap().unwrap();
            prop_assert_eq!(h.kind, ExtHeaderKind::Fragment(f));
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = Ipv6Packet::parse(&buf) {
                walk_everything(&p);
            }
        }

        #[test]
        fn random_chain_never_panics(nh in prop::sample::select(vec![0u8, 43, 44, 60, 6]),
                                     rest in proptest::collection::vec(any::<u8>(), 0..120)) {
            let mut buf = vec![0u8; 40 + rest.len()];
            buf[40..].copy_from_slice(&rest);
            Ipv6Builder::new(Ipv6Addr::LOOPBACK, Ipv6Addr::LOOPBACK, IpProto(nh)).emit(&mut buf).unwrap();
            walk_everything(&Ipv6Packet::parse(&buf).unwrap());
        }

        #[test]
        fn mutations_never_panic(buf in mutate(chained())) {
            if let Ok(p) = Ipv6Packet::parse(&buf) {
                walk_everything(&p);
            }
        }
    }

    fn walk_everything(p: &Ipv6Packet<'_>) {
        let _ = format!("{p:?}");
        let mut walk = p.ext_headers();
        for h in &mut walk {
            let Ok(h) = h else { continue };
            assert!(h.offset >= 40 && h.offset < p.as_bytes().len());
            if let ExtHeaderKind::HopByHop(o) | ExtHeaderKind::DestinationOptions(o) = h.kind {
                for opt in o.into_iter().flatten() {
                    assert!(opt.offset + 2 + opt.data.len() <= p.as_bytes().len());
                    let _ = opt.unrecognized_action();
                }
            }
        }
        let (_, off) = walk.upper_layer();
        assert!(off <= p.as_bytes().len());
        let _ = p.upper_layer();
    }
}
