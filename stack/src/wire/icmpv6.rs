//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages that ride on it
//! (RFC 4861).
//!
//! As for ICMPv4, one enum is both parsed and built. The checksum covers
//! the IPv6 pseudo-header, so parsing and building take the addresses.
//! Parsing checks the structure every receiver must check (lengths, the
//! option TLVs of NDP messages: RFC 4861 7.1.1 drops a message with a
//! zero-length option); the remaining NDP validity rules (hop limit 255,
//! code 0, target not multicast, ...) need the IP header and are the NDP
//! module's.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::checksum::{Checksum, pseudo_header};
use super::{BuildError, Mac, ParseError, U16, U32, header, header_mut, wire_enum};
use crate::ip::{Ip, IpAddress, IpProto, Ipv6, Ipv6Addr};

/// Type, code, checksum and the four type-specific bytes.
pub const HEADER_LEN: usize = 8;

/// Message types.
pub mod msg_type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const MLD_QUERY: u8 = 130;
    pub const MLD_REPORT: u8 = 131;
    pub const MLD_DONE: u8 = 132;
    pub const ROUTER_SOLICITATION: u8 = 133;
    pub const ROUTER_ADVERTISEMENT: u8 = 134;
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
    pub const REDIRECT: u8 = 137;
    pub const MLDV2_REPORT: u8 = 143;
}

/// Error messages are types 0–127 (RFC 4443 2.1): never answered with
/// another error, whatever the type.
pub fn is_error_type(t: u8) -> bool {
    t < 128
}

/// The part of a packet an ICMPv6 error about it may quote: as much as
/// fits without the error exceeding the minimum MTU (RFC 4443 2.4(c)).
pub fn error_quote(packet: &[u8]) -> &[u8] {
    let max = Ipv6::ICMP_ERROR_MAX_LEN - Ipv6::HEADER_LEN - HEADER_LEN;
    &packet[..packet.len().min(max)]
}

wire_enum! {
    /// Destination unreachable codes (RFC 4443 3.1).
    pub struct DestUnreachableCode(u8) {
        NO_ROUTE = 0,
        ADMIN_PROHIBITED = 1,
        BEYOND_SCOPE = 2,
        /// The neighbour could not be resolved — the code Linux gets wrong
        /// (IxANVL ICMPv6-5.5) and we must not.
        ADDRESS_UNREACHABLE = 3,
        PORT_UNREACHABLE = 4,
        SOURCE_POLICY = 5,
        REJECT_ROUTE = 6,
    }
}

wire_enum! {
    /// Time exceeded codes (RFC 4443 3.3).
    pub struct TimeExceededCode(u8) {
        HOP_LIMIT = 0,
        REASSEMBLY = 1,
    }
}

wire_enum! {
    /// Parameter problem codes (RFC 4443 3.4, RFC 7112 for code 3).
    pub struct ParamProblemCode(u8) {
        ERRONEOUS_HEADER = 0,
        UNRECOGNIZED_NEXT_HEADER = 1,
        UNRECOGNIZED_OPTION = 2,
        INCOMPLETE_HEADER_CHAIN = 3,
    }
}

impl ParamProblemCode {
    /// The parameter problem an IPv6 parse error deserves, with its
    /// pointer, if any: malformed fields get code 0, a misplaced next
    /// header code 1. Truncation gets none (RFC 8200 is silent; Linux
    /// drops), except for a first fragment, where the caller sends code 3.
    pub fn for_parse_error(e: ParseError) -> Option<(ParamProblemCode, u32)> {
        match e {
            ParseError::Malformed { offset } => {
                Some((ParamProblemCode::ERRONEOUS_HEADER, offset as u32))
            }
            ParseError::UnrecognizedNextHeader { offset } => {
                Some((ParamProblemCode::UNRECOGNIZED_NEXT_HEADER, offset as u32))
            }
            _ => None,
        }
    }
}

/// An ICMPv6 message, parsed or to be built. NDP messages carry their
/// options as [`NdpOptions`]; build those with [`NdpOption::emit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6Message<'a> {
    DestUnreachable {
        code: DestUnreachableCode,
        original: &'a [u8],
    },
    PacketTooBig {
        mtu: u32,
        original: &'a [u8],
    },
    TimeExceeded {
        code: TimeExceededCode,
        original: &'a [u8],
    },
    ParameterProblem {
        code: ParamProblemCode,
        /// Offset of the bad byte in `original`.
        pointer: u32,
        original: &'a [u8],
    },
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    RouterSolicitation {
        options: NdpOptions<'a>,
    },
    RouterAdvertisement {
        cur_hop_limit: u8,
        managed: bool,
        other: bool,
        /// Seconds; 0 means "not a default router".
        router_lifetime: u16,
        /// Milliseconds; 0 means unspecified.
        reachable_time: u32,
        /// Milliseconds; 0 means unspecified.
        retrans_timer: u32,
        options: NdpOptions<'a>,
    },
    NeighborSolicitation {
        target: Ipv6Addr,
        options: NdpOptions<'a>,
    },
    NeighborAdvertisement {
        router: bool,
        solicited: bool,
        override_flag: bool,
        target: Ipv6Addr,
        options: NdpOptions<'a>,
    },
    Redirect {
        target: Ipv6Addr,
        destination: Ipv6Addr,
        options: NdpOptions<'a>,
    },
    /// Anything else (MLD, unknown informational types, known types with a
    /// code NDP does not define), kept whole.
    Other {
        msg_type: u8,
        code: u8,
        rest: [u8; 4],
        body: &'a [u8],
    },
}

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
const RA_MANAGED: u8 = 0x80;
const RA_OTHER: u8 = 0x40;

impl<'a> Icmpv6Message<'a> {
    pub fn msg_type(&self) -> u8 {
        use Icmpv6Message::*;
        match self {
            DestUnreachable { .. } => msg_type::DEST_UNREACHABLE,
            PacketTooBig { .. } => msg_type::PACKET_TOO_BIG,
            TimeExceeded { .. } => msg_type::TIME_EXCEEDED,
            ParameterProblem { .. } => msg_type::PARAMETER_PROBLEM,
            EchoRequest { .. } => msg_type::ECHO_REQUEST,
            EchoReply { .. } => msg_type::ECHO_REPLY,
            RouterSolicitation { .. } => msg_type::ROUTER_SOLICITATION,
            RouterAdvertisement { .. } => msg_type::ROUTER_ADVERTISEMENT,
            NeighborSolicitation { .. } => msg_type::NEIGHBOR_SOLICITATION,
            NeighborAdvertisement { .. } => msg_type::NEIGHBOR_ADVERTISEMENT,
            Redirect { .. } => msg_type::REDIRECT,
            Other { msg_type, .. } => *msg_type,
        }
    }

    pub fn code(&self) -> u8 {
        match self {
            Icmpv6Message::DestUnreachable { code, .. } => code.0,
            Icmpv6Message::TimeExceeded { code, .. } => code.0,
            Icmpv6Message::ParameterProblem { code, .. } => code.0,
            Icmpv6Message::Other { code, .. } => *code,
            _ => 0,
        }
    }

    pub fn is_error(&self) -> bool {
        is_error_type(self.msg_type())
    }

    /// The quoted packet of an error message.
    pub fn original(&self) -> Option<&'a [u8]> {
        match *self {
            Icmpv6Message::DestUnreachable { original, .. }
            | Icmpv6Message::PacketTooBig { original, .. }
            | Icmpv6Message::TimeExceeded { original, .. }
            | Icmpv6Message::ParameterProblem { original, .. } => Some(original),
            Icmpv6Message::Other { msg_type, body, .. } if is_error_type(msg_type) => Some(body),
            _ => None,
        }
    }

    /// The four type-specific header bytes, a fixed body prefix (NDP
    /// addresses and timers) and the variable tail.
    fn parts(&self) -> ([u8; 4], Fixed, &'a [u8]) {
        use Icmpv6Message::*;
        let u32b = |v: u32| v.to_be_bytes();
        let id_seq = |i: u16, s: u16| {
            let [a, b] = i.to_be_bytes();
            let [c, d] = s.to_be_bytes();
            [a, b, c, d]
        };
        match *self {
            DestUnreachable { original, .. } | TimeExceeded { original, .. } => {
                ([0; 4], Fixed::None, original)
            }
            PacketTooBig { mtu, original } => (u32b(mtu), Fixed::None, original),
            ParameterProblem {
                pointer, original, ..
            } => (u32b(pointer), Fixed::None, original),
            EchoRequest { ident, seq, data } | EchoReply { ident, seq, data } => {
                (id_seq(ident, seq), Fixed::None, data)
            }
            RouterSolicitation { options } => ([0; 4], Fixed::None, options.bytes),
            RouterAdvertisement {
                cur_hop_limit,
                managed,
                other,
                router_lifetime,
                reachable_time,
                retrans_timer,
                options,
            } => {
                let mut flags = 0;
                if managed {
                    flags |= RA_MANAGED;
                }
                if other {
                    flags |= RA_OTHER;
                }
                let [l0, l1] = router_lifetime.to_be_bytes();
                (
                    [cur_hop_limit, flags, l0, l1],
                    Fixed::Timers(reachable_time, retrans_timer),
                    options.bytes,
                )
            }
            NeighborSolicitation { target, options } => ([0; 4], Fixed::One(target), options.bytes),
            NeighborAdvertisement {
                router,
                solicited,
                override_flag,
                target,
                options,
            } => {
                let mut flags = 0;
                if router {
                    flags |= NA_ROUTER;
                }
                if solicited {
                    flags |= NA_SOLICITED;
                }
                if override_flag {
                    flags |= NA_OVERRIDE;
                }
                ([flags, 0, 0, 0], Fixed::One(target), options.bytes)
            }
            Redirect {
                target,
                destination,
                options,
            } => ([0; 4], Fixed::Two(target, destination), options.bytes),
            Other { rest, body, .. } => (rest, Fixed::None, body),
        }
    }

    /// The length [`emit`](Self::emit) will write.
    pub fn len(&self) -> usize {
        let (_, fixed, tail) = self.parts();
        HEADER_LEN + fixed.len() + tail.len()
    }

    /// Never true: a message has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the whole message at the front of `buf`, checksummed for a
    /// packet from `src` to `dst`. Returns its length.
    pub fn emit(
        &self,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        buf: &mut [u8],
    ) -> Result<usize, BuildError> {
        let (rest, fixed, tail) = self.parts();
        let len = self.len();
        let len32 = u32::try_from(len).map_err(|_| BuildError::TooLong)?;
        let out = buf.get_mut(..len).ok_or(BuildError::BufferTooSmall)?;
        let (hdr, body) = header_mut::<Header>(out)?;
        hdr.msg_type = self.msg_type();
        hdr.code = self.code();
        hdr.checksum = U16::ZERO;
        hdr.rest = rest;
        let (fixed_out, tail_out) = body.split_at_mut(fixed.len());
        match fixed {
            Fixed::None => {}
            Fixed::One(a) => fixed_out.copy_from_slice(a.bytes()),
            Fixed::Two(a, b) => {
                fixed_out[..16].copy_from_slice(a.bytes());
                fixed_out[16..].copy_from_slice(b.bytes());
            }
            Fixed::Timers(a, b) => {
                fixed_out[..4].copy_from_slice(&a.to_be_bytes());
                fixed_out[4..].copy_from_slice(&b.to_be_bytes());
            }
        }
        tail_out.copy_from_slice(tail);
        let mut c = pseudo_header(src, dst, IpProto::ICMPV6, len32);
        c.add_bytes(out);
        out[2..4].copy_from_slice(&c.checksum().to_be_bytes());
        Ok(len)
    }
}

#[derive(Clone, Copy)]
enum Fixed {
    None,
    One(Ipv6Addr),
    Two(Ipv6Addr, Ipv6Addr),
    Timers(u32, u32),
}

impl Fixed {
    fn len(&self) -> usize {
        match self {
            Fixed::None => 0,
            Fixed::One(_) => 16,
            Fixed::Two(..) => 32,
            Fixed::Timers(..) => 8,
        }
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    msg_type: u8,
    code: u8,
    checksum: U16,
    rest: [u8; 4],
}

/// A checksummed ICMPv6 message.
#[derive(Clone, Copy)]
pub struct Icmpv6Packet<'a> {
    msg: Icmpv6Message<'a>,
    checksum: u16,
}

impl<'a> Icmpv6Packet<'a> {
    /// `buf` is the upper-layer payload, exactly; `src` and `dst` are the
    /// IPv6 header's, for the pseudo-header.
    pub fn parse(
        buf: &'a [u8],
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<Icmpv6Packet<'a>, ParseError> {
        let len = u32::try_from(buf.len()).map_err(|_| ParseError::Malformed { offset: 0 })?;
        let mut c: Checksum = pseudo_header(src, dst, IpProto::ICMPV6, len);
        if c.add_bytes(buf).checksum() != 0 {
            // Checked before the header so that a short message with a bad
            // checksum counts as a checksum error, as on Linux.
            if buf.len() >= HEADER_LEN {
                return Err(ParseError::BadChecksum);
            }
        }
        Self::parse_unverified(buf)
    }

    /// Parses without looking at the checksum: only for frames the device
    /// has vouched for (virtio-net `DATA_VALID`).
    pub fn parse_unverified(buf: &'a [u8]) -> Result<Icmpv6Packet<'a>, ParseError> {
        let (hdr, body) = header::<Header>(buf)?;
        let rest = hdr.rest;
        let rest32 = u32::from_be_bytes(rest);
        let [r0, r1, r2, r3] = rest;
        let addr_at = |at: usize| -> Result<Ipv6Addr, ParseError> {
            body.get(at..at + 16)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(Ipv6Addr::from_octets)
                .ok_or(ParseError::Truncated)
        };
        let opts_at = |at: usize| -> Result<NdpOptions<'a>, ParseError> {
            let bytes = body.get(at..).ok_or(ParseError::Truncated)?;
            NdpOptions::parse(bytes, HEADER_LEN + at)
        };
        let ndp = hdr.code == 0;
        use Icmpv6Message as M;
        let msg = match hdr.msg_type {
            msg_type::DEST_UNREACHABLE => M::DestUnreachable {
                code: DestUnreachableCode(hdr.code),
                original: body,
            },
            msg_type::PACKET_TOO_BIG => M::PacketTooBig {
                mtu: rest32,
                original: body,
            },
            msg_type::TIME_EXCEEDED => M::TimeExceeded {
                code: TimeExceededCode(hdr.code),
                original: body,
            },
            msg_type::PARAMETER_PROBLEM => M::ParameterProblem {
                code: ParamProblemCode(hdr.code),
                pointer: rest32,
                original: body,
            },
            msg_type::ECHO_REQUEST if ndp => M::EchoRequest {
                ident: u16::from_be_bytes([r0, r1]),
                seq: u16::from_be_bytes([r2, r3]),
                data: body,
            },
            msg_type::ECHO_REPLY if ndp => M::EchoReply {
                ident: u16::from_be_bytes([r0, r1]),
                seq: u16::from_be_bytes([r2, r3]),
                data: body,
            },
            msg_type::ROUTER_SOLICITATION if ndp => M::RouterSolicitation {
                options: opts_at(0)?,
            },
            msg_type::ROUTER_ADVERTISEMENT if ndp => {
                let t = |at: usize| -> Result<u32, ParseError> {
                    body.get(at..at + 4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_be_bytes)
                        .ok_or(ParseError::Truncated)
                };
                M::RouterAdvertisement {
                    cur_hop_limit: r0,
                    managed: r1 & RA_MANAGED != 0,
                    other: r1 & RA_OTHER != 0,
                    router_lifetime: u16::from_be_bytes([r2, r3]),
                    reachable_time: t(0)?,
                    retrans_timer: t(4)?,
                    options: opts_at(8)?,
                }
            }
            msg_type::NEIGHBOR_SOLICITATION if ndp => M::NeighborSolicitation {
                target: addr_at(0)?,
                options: opts_at(16)?,
            },
            msg_type::NEIGHBOR_ADVERTISEMENT if ndp => M::NeighborAdvertisement {
                router: r0 & NA_ROUTER != 0,
                solicited: r0 & NA_SOLICITED != 0,
                override_flag: r0 & NA_OVERRIDE != 0,
                target: addr_at(0)?,
                options: opts_at(16)?,
            },
            msg_type::REDIRECT if ndp => M::Redirect {
                target: addr_at(0)?,
                destination: addr_at(16)?,
                options: opts_at(32)?,
            },
            t => M::Other {
                msg_type: t,
                code: hdr.code,
                rest,
                body,
            },
        };
        Ok(Icmpv6Packet {
            msg,
            checksum: hdr.checksum.get(),
        })
    }

    pub fn message(&self) -> Icmpv6Message<'a> {
        self.msg
    }
    pub fn checksum(&self) -> u16 {
        self.checksum
    }
}

impl fmt::Debug for Icmpv6Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.msg, f)
    }
}

/// The option area of an NDP message, its type-length-value structure
/// already checked (every length non-zero and within the message).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct NdpOptions<'a> {
    bytes: &'a [u8],
    /// Offset of `bytes` in the ICMPv6 message, for error offsets.
    base: usize,
}

impl<'a> NdpOptions<'a> {
    /// No options.
    pub const EMPTY: NdpOptions<'static> = NdpOptions {
        bytes: &[],
        base: 0,
    };

    /// Checks the TLV structure of encoded options. `base` is their offset
    /// in the message, so that errors point at the right byte.
    pub fn parse(bytes: &'a [u8], base: usize) -> Result<NdpOptions<'a>, ParseError> {
        let mut at = 0;
        while at < bytes.len() {
            let len = usize::from(*bytes.get(at + 1).ok_or(ParseError::Truncated)?) * 8;
            if len == 0 {
                return Err(ParseError::Malformed {
                    offset: base + at + 1,
                });
            }
            if at + len > bytes.len() {
                return Err(ParseError::Truncated);
            }
            at += len;
        }
        Ok(NdpOptions { bytes, base })
    }

    /// Options built by [`NdpOption::emit`] into a buffer, for a message
    /// to be sent. Checks them as [`parse`](Self::parse) does.
    pub fn from_built(bytes: &'a [u8]) -> Result<NdpOptions<'a>, BuildError> {
        Self::parse(bytes, 0).map_err(|_| BuildError::InvalidField)
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The first link-layer address option of the given kind that is well
    /// formed: what NS/RS (source) and NA/redirect (target) processing
    /// wants.
    pub fn source_link_addr(&self) -> Option<Mac> {
        self.into_iter().find_map(|o| match o {
            Ok(NdpOption::SourceLinkAddr(m)) => Some(m),
            _ => None,
        })
    }
    pub fn target_link_addr(&self) -> Option<Mac> {
        self.into_iter().find_map(|o| match o {
            Ok(NdpOption::TargetLinkAddr(m)) => Some(m),
            _ => None,
        })
    }
}

impl fmt::Debug for NdpOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

impl<'a> IntoIterator for NdpOptions<'a> {
    type Item = Result<NdpOption<'a>, ParseError>;
    type IntoIter = NdpOptionsIter<'a>;
    fn into_iter(self) -> NdpOptionsIter<'a> {
        NdpOptionsIter { opts: self, at: 0 }
    }
}

/// Yields each option. A known option whose length does not fit its type
/// (a prefix information option of 16 bytes, say) yields
/// `Malformed { offset }` and the walk goes on: RFC 4861 lets a receiver
/// ignore such an option without dropping the message.
#[derive(Clone, Debug)]
pub struct NdpOptionsIter<'a> {
    opts: NdpOptions<'a>,
    at: usize,
}

impl<'a> Iterator for NdpOptionsIter<'a> {
    type Item = Result<NdpOption<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.opts.bytes;
        let start = self.at;
        let kind = *b.get(start)?;
        let len = usize::from(*b.get(start + 1)?) * 8;
        let Some(opt) = b.get(start..start + len).filter(|_| len > 0) else {
            self.at = b.len();
            return None;
        };
        self.at = start + len;
        let data = &opt[2..];
        let bad = Err(ParseError::Malformed {
            offset: self.opts.base + start + 1,
        });
        let mac = || <[u8; 6]>::try_from(data).ok().map(Mac);
        Some(match kind {
            ndp_option::SOURCE_LINK_ADDR => mac().map_or(bad, |m| Ok(NdpOption::SourceLinkAddr(m))),
            ndp_option::TARGET_LINK_ADDR => mac().map_or(bad, |m| Ok(NdpOption::TargetLinkAddr(m))),
            ndp_option::PREFIX_INFO => match header::<PrefixInfoRaw>(data) {
                Ok((p, [])) => Ok(NdpOption::PrefixInfo(PrefixInfo::from_raw(p))),
                _ => bad,
            },
            ndp_option::REDIRECTED_HEADER => match data.get(6..) {
                Some(packet) => Ok(NdpOption::RedirectedHeader(packet)),
                None => bad,
            },
            ndp_option::MTU => match data {
                [_, _, a, b, c, d] => Ok(NdpOption::Mtu(u32::from_be_bytes([*a, *b, *c, *d]))),
                _ => bad,
            },
            ndp_option::NONCE => Ok(NdpOption::Nonce(data)),
            kind => Ok(NdpOption::Other { kind, data }),
        })
    }
}

/// NDP option types (RFC 4861 4.6, RFC 3971 5.3.2 for the nonce).
pub mod ndp_option {
    pub const SOURCE_LINK_ADDR: u8 = 1;
    pub const TARGET_LINK_ADDR: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const REDIRECTED_HEADER: u8 = 4;
    pub const MTU: u8 = 5;
    pub const NONCE: u8 = 14;
}

/// One NDP option, parsed or to be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdpOption<'a> {
    /// Ethernet only (RFC 2464 6): six bytes of address.
    SourceLinkAddr(Mac),
    TargetLinkAddr(Mac),
    PrefixInfo(PrefixInfo),
    /// As much of the redirected packet as fits.
    RedirectedHeader(&'a [u8]),
    Mtu(u32),
    /// DAD nonce (RFC 7527 uses it to tell our own looped-back NS).
    Nonce(&'a [u8]),
    Other {
        kind: u8,
        data: &'a [u8],
    },
}

/// Prefix information (RFC 4861 4.6.2): what SLAAC and on-link routes are
/// made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixInfo {
    pub prefix_len: u8,
    pub on_link: bool,
    pub autonomous: bool,
    /// Seconds; `u32::MAX` is infinity.
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct PrefixInfoRaw {
    prefix_len: u8,
    flags: u8,
    valid: U32,
    preferred: U32,
    reserved: U32,
    prefix: Ipv6Addr,
}

impl PrefixInfo {
    fn from_raw(p: &PrefixInfoRaw) -> PrefixInfo {
        PrefixInfo {
            prefix_len: p.prefix_len,
            on_link: p.flags & 0x80 != 0,
            autonomous: p.flags & 0x40 != 0,
            valid_lifetime: p.valid.get(),
            preferred_lifetime: p.preferred.get(),
            prefix: p.prefix,
        }
    }
}

impl NdpOption<'_> {
    fn kind_and_body_len(&self) -> (u8, usize) {
        match self {
            NdpOption::SourceLinkAddr(_) => (ndp_option::SOURCE_LINK_ADDR, 6),
            NdpOption::TargetLinkAddr(_) => (ndp_option::TARGET_LINK_ADDR, 6),
            NdpOption::PrefixInfo(_) => (ndp_option::PREFIX_INFO, 30),
            NdpOption::RedirectedHeader(p) => (ndp_option::REDIRECTED_HEADER, 6 + p.len()),
            NdpOption::Mtu(_) => (ndp_option::MTU, 6),
            NdpOption::Nonce(n) => (ndp_option::NONCE, n.len()),
            NdpOption::Other { kind, data } => (*kind, data.len()),
        }
    }

    /// Encoded length: type, length and body, padded to 8 bytes.
    pub fn len(&self) -> usize {
        (2 + self.kind_and_body_len().1).div_ceil(8) * 8
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the option, zero-padded, at the front of `buf`. Returns its
    /// length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let (kind, _) = self.kind_and_body_len();
        let len = self.len();
        if len > 255 * 8 {
            return Err(BuildError::TooLong);
        }
        let out = buf.get_mut(..len).ok_or(BuildError::BufferTooSmall)?;
        out.fill(0);
        out[0] = kind;
        out[1] = (len / 8) as u8;
        let body = &mut out[2..];
        match *self {
            NdpOption::SourceLinkAddr(m) | NdpOption::TargetLinkAddr(m) => {
                body[..6].copy_from_slice(&m.0)
            }
            NdpOption::PrefixInfo(p) => {
                let (raw, _) = header_mut::<PrefixInfoRaw>(body)?;
                raw.prefix_len = p.prefix_len;
                raw.flags = if p.on_link { 0x80 } else { 0 } | if p.autonomous { 0x40 } else { 0 };
                raw.valid = U32::new(p.valid_lifetime);
                raw.preferred = U32::new(p.preferred_lifetime);
                raw.reserved = U32::ZERO;
                raw.prefix = p.prefix;
            }
            NdpOption::RedirectedHeader(p) => body[6..6 + p.len()].copy_from_slice(p),
            NdpOption::Mtu(m) => body[2..6].copy_from_slice(&m.to_be_bytes()),
            NdpOption::Nonce(d) | NdpOption::Other { data: d, .. } => {
                body[..d.len()].copy_from_slice(d)
            }
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::mutate;
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    const SRC: &str = "fe80::1";
    const DST: &str = "ff02::1:ff00:2";

    fn emit(m: &Icmpv6Message<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; m.len()];
        assert_eq!(m.emit(&a(SRC), &a(DST), &mut buf), Ok(m.len()));
        buf
    }
    fn parse(buf: &[u8]) -> Result<Icmpv6Message<'_>, ParseError> {
        Icmpv6Packet::parse(buf, &a(SRC), &a(DST)).map(|p| p.message())
    }

    fn opts(list: &[NdpOption<'_>]) -> Vec<u8> {
        let mut v = vec![0u8; list.iter().map(|o| o.len()).sum()];
        let mut at = 0;
        for o in list {
            at += o.emit(&mut v[at..]).unwrap();
        }
        v
    }

    #[test]
    fn neighbor_solicitation() {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        let o = opts(&[
            NdpOption::SourceLinkAddr(mac),
            NdpOption::Nonce(&[1, 2, 3, 4, 5, 6]),
        ]);
        let m = Icmpv6Message::NeighborSolicitation {
            target: a("fe80::2"),
            options: NdpOptions::from_built(&o).unwrap(),
        };
        let buf = emit(&m);
        assert_eq!(buf.len(), 8 + 16 + 16);
        let got = parse(&buf).unwrap();
        let Icmpv6Message::NeighborSolicitation { target, options } = got else {
            panic!()
        };
        assert_eq!(target, a("fe80::2"));
        assert_eq!(options.source_link_addr(), Some(mac));
        assert_eq!(options.target_link_addr(), None);
        let all: Vec<_> = options.into_iter().collect();
        assert_eq!(all[1], Ok(NdpOption::Nonce(&[1, 2, 3, 4, 5, 6])));
        // Wrong addresses: checksum fails.
        assert_eq!(
            Icmpv6Packet::parse(&buf, &a("fe80::3"), &a(DST)).unwrap_err(),
            ParseError::BadChecksum
        );
    }

    #[test]
    fn zero_length_option_drops_message() {
        let o = opts(&[NdpOption::SourceLinkAddr(Mac([2, 0, 0, 0, 0, 1]))]);
        let m = Icmpv6Message::NeighborSolicitation {
            target: a("fe80::2"),
            options: NdpOptions::from_built(&o).unwrap(),
        };
        let mut buf = emit(&m);
        buf[25] = 0; // option length
        let mut msg = buf.clone();
        msg[2..4].fill(0);
        let c = pseudo_header(&a(SRC), &a(DST), IpProto::ICMPV6, msg.len() as u32)
            .add_bytes(&msg)
            .checksum();
        buf[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse(&buf), Err(ParseError::Malformed { offset: 25 }));
        assert!(NdpOptions::from_built(&[1, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn router_advertisement() {
        let pi = PrefixInfo {
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            prefix: a("2001:db8::"),
        };
        let o = opts(&[
            NdpOption::SourceLinkAddr(Mac([2, 0, 0, 0, 0, 0xfe])),
            NdpOption::Mtu(1500),
            NdpOption::PrefixInfo(pi),
            NdpOption::Other {
                kind: 25,
                data: &[0; 22],
            },
        ]);
        let m = Icmpv6Message::RouterAdvertisement {
            cur_hop_limit: 64,
            managed: false,
            other: true,
            router_lifetime: 1800,
            reachable_time: 30000,
            retrans_timer: 1000,
            options: NdpOptions::from_built(&o).unwrap(),
        };
        let buf = emit(&m);
        let got = parse(&buf).unwrap();
        assert_eq!(got.msg_type(), msg_type::ROUTER_ADVERTISEMENT);
        let Icmpv6Message::RouterAdvertisement {
            options,
            other,
            reachable_time,
            ..
        } = got
        else {
            panic!()
        };
        assert!(other);
        assert_eq!(reachable_time, 30000);
        let all: Vec<_> = options.into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(all[1], NdpOption::Mtu(1500));
        assert_eq!(all[2], NdpOption::PrefixInfo(pi));
        assert!(matches!(all[3], NdpOption::Other { kind: 25, .. }));
    }

    #[test]
    fn errors() {
        let orig = [0x60u8; 2000];
        let q = error_quote(&orig);
        assert_eq!(q.len(), 1232);
        for m in [
            Icmpv6Message::DestUnreachable {
                code: DestUnreachableCode::ADDRESS_UNREACHABLE,
                original: q,
            },
            Icmpv6Message::PacketTooBig {
                mtu: 1280,
                original: q,
            },
            Icmpv6Message::TimeExceeded {
                code: TimeExceededCode::REASSEMBLY,
                original: q,
            },
            Icmpv6Message::ParameterProblem {
                code: ParamProblemCode::UNRECOGNIZED_OPTION,
                pointer: 50,
                original: q,
            },
        ] {
            let buf = emit(&m);
            assert_eq!(buf.len() + 40, 1280);
            let got = parse(&buf).unwrap();
            assert_eq!(got, m);
            assert!(got.is_error());
            assert_eq!(got.original(), Some(q));
        }
        assert_eq!(
            ParamProblemCode::for_parse_error(ParseError::UnrecognizedNextHeader { offset: 48 }),
            Some((ParamProblemCode::UNRECOGNIZED_NEXT_HEADER, 48))
        );
        assert_eq!(
            ParamProblemCode::for_parse_error(ParseError::Truncated),
            None
        );
    }

    #[test]
    fn ndp_with_nonzero_code_is_other() {
        let m = Icmpv6Message::Other {
            msg_type: 135,
            code: 1,
            rest: [0; 4],
            body: &[0; 16],
        };
        assert_eq!(parse(&emit(&m)).unwrap(), m);
        let short = Icmpv6Message::Other {
            msg_type: 135,
            code: 0,
            rest: [0; 4],
            body: &[0; 15],
        };
        assert_eq!(parse(&emit(&short)), Err(ParseError::Truncated));
    }

    fn sample_ns() -> Vec<u8> {
        let o = opts(&[NdpOption::SourceLinkAddr(Mac([2, 0, 0, 0, 0, 1]))]);
        emit(&Icmpv6Message::NeighborSolicitation {
            target: a("fe80::2"),
            options: NdpOptions::from_built(&o).unwrap(),
        })
    }

    proptest! {
        #[test]
        fn round_trip(t: u8, code in prop_oneof![Just(0u8), any::<u8>()], rest: [u8; 4],
                      body in proptest::collection::vec(any::<u8>(), 0..80)) {
            let m = Icmpv6Message::Other { msg_type: t, code, rest, body: &body };
            let buf = emit(&m);
            if let Ok(got) = parse(&buf) {
                prop_assert_eq!(got.msg_type(), t);
                // Packet Too Big's code is "ignored by the receiver".
                if t != msg_type::PACKET_TOO_BIG {
                    prop_assert_eq!(got.code(), code);
                }
                let again = emit(&got);
                prop_assert_eq!(parse(&again).unwrap(), got);
                // Reserved bits of known types are zeroed on the way out,
                // and so is Packet Too Big's code.
                if !matches!(got, Icmpv6Message::Other { .. }) && !matches!(t, 1..=3 | 133..=137) {
                    prop_assert_eq!(&again, &buf);
                }
                if matches!(got, Icmpv6Message::Other { .. }) {
                    prop_assert_eq!(again, buf);
                }
            }
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = Icmpv6Packet::parse_unverified(&buf) {
                walk(p.message());
            }
        }

        #[test]
        fn ndp_bodies_never_panic(t in 133u8..=137, rest: [u8; 4], body in proptest::collection::vec(any::<u8>(), 0..120)) {
            let m = Icmpv6Message::Other { msg_type: t, code: 0, rest, body: &body };
            let buf = emit(&m);
            if let Ok(m) = parse(&buf) {
                walk(m);
            }
        }

        #[test]
        fn mutations_never_panic(buf in mutate(sample_ns())) {
            if let Ok(p) = Icmpv6Packet::parse_unverified(&buf) {
                walk(p.message());
            }
        }

        #[test]
        fn option_round_trip(kind in 6u8.., data in proptest::collection::vec(any::<u8>(), 0..40), mac: [u8; 6], mtu: u32) {
            prop_assume!(kind != ndp_option::NONCE);
            let list = [NdpOption::Other { kind, data: &data }, NdpOption::TargetLinkAddr(Mac(mac)), NdpOption::Mtu(mtu)];
            let o = opts(&list);
            let parsed: Vec<_> = NdpOptions::from_built(&o).unwrap().into_iter().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(parsed.len(), 3);
            // Other options come back padded.
            let NdpOption::Other { kind: k, data: d } = parsed[0] else { panic!() };
            prop_assert_eq!(k, kind);
            prop_assert_eq!(&d[..data.len()], &data[..]);
            prop_assert!(d[data.len()..].iter().all(|&b| b == 0));
            prop_assert_eq!(&parsed[1..], &list[1..]);
        }
    }

    fn walk(m: Icmpv6Message<'_>) {
        let _ = (m.original(), m.is_error(), m.len(), format!("{m:?}"));
        if let Icmpv6Message::RouterSolicitation { options }
        | Icmpv6Message::RouterAdvertisement { options, .. }
        | Icmpv6Message::NeighborSolicitation { options, .. }
        | Icmpv6Message::NeighborAdvertisement { options, .. }
        | Icmpv6Message::Redirect { options, .. } = m
        {
            for o in options {
                let _ = o;
            }
        }
    }
}
