//! ICMP for IPv4 (RFC 792, RFC 1122 3.2.2, RFC 1191 for fragmentation
//! needed).
//!
//! One enum, [`Icmpv4Message`], is both what parsing yields and what
//! building takes, so a received echo request turns into its reply by
//! changing one variant. Error messages carry the offending datagram as
//! `original`; [`error_quote`] cuts it to what RFC 1812 4.3.2.3 allows.
//! Whether an error may be sent at all (never about an error, a broadcast
//! or a non-first fragment) depends on the host's addresses and is the
//! ICMP module's job; [`carries_error`] is the one piece of it that is
//! pure parsing.

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::checksum::checksum;
use super::ipv4::Ipv4Packet;
use super::{BuildError, ParseError, U16, header, header_mut, wire_enum};
use crate::ip::{Ip, IpProto, Ipv4, Ipv4Addr};

/// Type, code, checksum and the four type-specific bytes.
pub const HEADER_LEN: usize = 8;

/// Message types.
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
}

/// Whether a message type reports an error (RFC 1122 3.2.2: never answer
/// one of these with another error).
pub fn is_error_type(t: u8) -> bool {
    matches!(
        t,
        msg_type::DEST_UNREACHABLE
            | msg_type::SOURCE_QUENCH
            | msg_type::REDIRECT
            | msg_type::TIME_EXCEEDED
            | msg_type::PARAMETER_PROBLEM
    )
}

/// Whether `packet` is itself an ICMP error message (looking only at the
/// first fragment, the one that carries the type). A non-first fragment
/// never gets an error anyway.
pub fn carries_error(packet: &Ipv4Packet<'_>) -> bool {
    packet.protocol() == IpProto::ICMP
        && packet.fragment_offset() == 0
        && packet.payload().first().is_some_and(|&t| is_error_type(t))
}

/// The part of a datagram an ICMP error about it may quote: as much as
/// fits in a 576-byte reply (RFC 1812 4.3.2.3, and what Linux does), far
/// more than RFC 792's header plus 64 bits, so that the peer can find the
/// socket even behind IP options.
pub fn error_quote(datagram: &[u8]) -> &[u8] {
    let max = Ipv4::ICMP_ERROR_MAX_LEN - Ipv4::HEADER_LEN - HEADER_LEN;
    &datagram[..datagram.len().min(max)]
}

wire_enum! {
    /// Destination unreachable codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812
    /// 5.2.7.1).
    pub struct DestUnreachableCode(u8) {
        NET = 0,
        HOST = 1,
        PROTOCOL = 2,
        PORT = 3,
        /// Fragmentation needed and DF set: carries the next-hop MTU
        /// (RFC 1191).
        FRAG_NEEDED = 4,
        SOURCE_ROUTE_FAILED = 5,
        NET_UNKNOWN = 6,
        HOST_UNKNOWN = 7,
        HOST_ISOLATED = 8,
        NET_PROHIBITED = 9,
        HOST_PROHIBITED = 10,
        NET_TOS = 11,
        HOST_TOS = 12,
        ADMIN_PROHIBITED = 13,
        HOST_PRECEDENCE = 14,
        PRECEDENCE_CUTOFF = 15,
    }
}

wire_enum! {
    pub struct TimeExceededCode(u8) {
        TTL = 0,
        /// The reassembly timer ran out (sent only if fragment 0 arrived).
        REASSEMBLY = 1,
    }
}

/// An ICMPv4 message, parsed or to be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4Message<'a> {
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
    DestUnreachable {
        code: DestUnreachableCode,
        /// Meaningful for [`DestUnreachableCode::FRAG_NEEDED`]; zero
        /// otherwise (and from pre-RFC 1191 routers).
        next_hop_mtu: u16,
        original: &'a [u8],
    },
    TimeExceeded {
        code: TimeExceededCode,
        original: &'a [u8],
    },
    ParameterProblem {
        /// 0: pointer indicates the error; 1: missing required option;
        /// 2: bad length (RFC 1108, RFC 1812).
        code: u8,
        /// Offset of the bad byte in `original`.
        pointer: u8,
        original: &'a [u8],
    },
    Redirect {
        code: u8,
        gateway: Ipv4Addr,
        original: &'a [u8],
    },
    /// Anything else (source quench, timestamp, ...), kept whole.
    Other {
        msg_type: u8,
        code: u8,
        rest: [u8; 4],
        body: &'a [u8],
    },
}

impl<'a> Icmpv4Message<'a> {
    pub fn msg_type(&self) -> u8 {
        match self {
            Icmpv4Message::EchoRequest { .. } => msg_type::ECHO_REQUEST,
            Icmpv4Message::EchoReply { .. } => msg_type::ECHO_REPLY,
            Icmpv4Message::DestUnreachable { .. } => msg_type::DEST_UNREACHABLE,
            Icmpv4Message::TimeExceeded { .. } => msg_type::TIME_EXCEEDED,
            Icmpv4Message::ParameterProblem { .. } => msg_type::PARAMETER_PROBLEM,
            Icmpv4Message::Redirect { .. } => msg_type::REDIRECT,
            Icmpv4Message::Other { msg_type, .. } => *msg_type,
        }
    }

    pub fn code(&self) -> u8 {
        match self {
            Icmpv4Message::EchoRequest { .. } | Icmpv4Message::EchoReply { .. } => 0,
            Icmpv4Message::DestUnreachable { code, .. } => code.0,
            Icmpv4Message::TimeExceeded { code, .. } => code.0,
            Icmpv4Message::ParameterProblem { code, .. }
            | Icmpv4Message::Redirect { code, .. }
            | Icmpv4Message::Other { code, .. } => *code,
        }
    }

    pub fn is_error(&self) -> bool {
        is_error_type(self.msg_type())
    }

    /// The quoted datagram of an error message: where the IP layer finds
    /// which socket the error is about (see [`Ipv4Packet::parse_quote`]).
    pub fn original(&self) -> Option<&'a [u8]> {
        match *self {
            Icmpv4Message::DestUnreachable { original, .. }
            | Icmpv4Message::TimeExceeded { original, .. }
            | Icmpv4Message::ParameterProblem { original, .. }
            | Icmpv4Message::Redirect { original, .. } => Some(original),
            Icmpv4Message::Other { msg_type, body, .. } if is_error_type(msg_type) => Some(body),
            _ => None,
        }
    }

    fn parts(&self) -> ([u8; 4], &'a [u8]) {
        let id_seq = |i: u16, s: u16| {
            let [a, b] = i.to_be_bytes();
            let [c, d] = s.to_be_bytes();
            [a, b, c, d]
        };
        match *self {
            Icmpv4Message::EchoRequest { ident, seq, data }
            | Icmpv4Message::EchoReply { ident, seq, data } => (id_seq(ident, seq), data),
            Icmpv4Message::DestUnreachable {
                next_hop_mtu,
                original,
                ..
            } => (id_seq(0, next_hop_mtu), original),
            Icmpv4Message::TimeExceeded { original, .. } => ([0; 4], original),
            Icmpv4Message::ParameterProblem {
                pointer, original, ..
            } => ([pointer, 0, 0, 0], original),
            Icmpv4Message::Redirect {
                gateway, original, ..
            } => (gateway.octets(), original),
            Icmpv4Message::Other { rest, body, .. } => (rest, body),
        }
    }

    /// The length [`emit`](Self::emit) will write.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.parts().1.len()
    }

    /// Never true: a message has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the whole message (header, then the body copied in) at the
    /// front of `buf` with its checksum. Returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let (rest, body) = self.parts();
        let len = HEADER_LEN + body.len();
        let out = buf.get_mut(..len).ok_or(BuildError::BufferTooSmall)?;
        let (hdr, tail) = header_mut::<Header>(out)?;
        hdr.msg_type = self.msg_type();
        hdr.code = self.code();
        hdr.checksum = U16::ZERO;
        hdr.rest = rest;
        tail.copy_from_slice(body);
        let c = checksum(out);
        out[2..4].copy_from_slice(&c.to_be_bytes());
        Ok(len)
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

/// A checksummed ICMPv4 message.
#[derive(Clone, Copy)]
pub struct Icmpv4Packet<'a> {
    msg: Icmpv4Message<'a>,
    checksum: u16,
}

impl<'a> Icmpv4Packet<'a> {
    /// `buf` is the IP payload, exactly (ICMP has no length of its own).
    pub fn parse(buf: &'a [u8]) -> Result<Icmpv4Packet<'a>, ParseError> {
        let (hdr, body) = header::<Header>(buf)?;
        if checksum(buf) != 0 {
            return Err(ParseError::BadChecksum);
        }
        let [r0, r1, r2, r3] = hdr.rest;
        let hi = u16::from_be_bytes([r0, r1]);
        let lo = u16::from_be_bytes([r2, r3]);
        let msg = match hdr.msg_type {
            msg_type::ECHO_REQUEST | msg_type::ECHO_REPLY if hdr.code == 0 => {
                let (ident, seq, data) = (hi, lo, body);
                if hdr.msg_type == msg_type::ECHO_REQUEST {
                    Icmpv4Message::EchoRequest { ident, seq, data }
                } else {
                    Icmpv4Message::EchoReply { ident, seq, data }
                }
            }
            msg_type::DEST_UNREACHABLE => Icmpv4Message::DestUnreachable {
                code: DestUnreachableCode(hdr.code),
                next_hop_mtu: lo,
                original: body,
            },
            msg_type::TIME_EXCEEDED => Icmpv4Message::TimeExceeded {
                code: TimeExceededCode(hdr.code),
                original: body,
            },
            msg_type::PARAMETER_PROBLEM => Icmpv4Message::ParameterProblem {
                code: hdr.code,
                pointer: r0,
                original: body,
            },
            msg_type::REDIRECT => Icmpv4Message::Redirect {
                code: hdr.code,
                gateway: Ipv4Addr::from_octets(hdr.rest),
                original: body,
            },
            t => Icmpv4Message::Other {
                msg_type: t,
                code: hdr.code,
                rest: hdr.rest,
                body,
            },
        };
        Ok(Icmpv4Packet {
            msg,
            checksum: hdr.checksum.get(),
        })
    }

    pub fn message(&self) -> Icmpv4Message<'a> {
        self.msg
    }
    pub fn checksum(&self) -> u16 {
        self.checksum
    }
}

impl fmt::Debug for Icmpv4Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.msg, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Builder;
    use crate::wire::testutil::mutate;
    use proptest::prelude::*;

    fn emit(m: &Icmpv4Message<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; m.len()];
        assert_eq!(m.emit(&mut buf), Ok(m.len()));
        buf
    }

    #[test]
    fn echo_round_trip_and_reply() {
        let req = Icmpv4Message::EchoRequest {
            ident: 0x1234,
            seq: 7,
            data: b"ping!",
        };
        let buf = emit(&req);
        let p = Icmpv4Packet::parse(&buf).unwrap();
        assert_eq!(p.message(), req);
        let Icmpv4Message::EchoRequest { ident, seq, data } = p.message() else {
            panic!()
        };
        let rep = emit(&Icmpv4Message::EchoReply { ident, seq, data });
        // A reply differs from its request only in type and checksum.
        assert_eq!(rep[0], 0);
        assert_eq!(rep[4..], buf[4..]);
        assert_eq!(checksum(&rep), 0);

        let mut bad = buf.clone();
        bad[9] ^= 1;
        assert_eq!(
            Icmpv4Packet::parse(&bad).unwrap_err(),
            ParseError::BadChecksum
        );
        assert_eq!(
            Icmpv4Packet::parse(&buf[..7]).unwrap_err(),
            ParseError::Truncated
        );
    }

    #[test]
    fn errors_quote_and_are_recognised() {
        let mut dgram = vec![0u8; 1000];
        Ipv4Builder::new(
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 1),
            IpProto::UDP,
        )
        .emit(&mut dgram)
        .unwrap();
        let q = error_quote(&dgram);
        assert_eq!(q.len(), 548);
        let m = Icmpv4Message::DestUnreachable {
            code: DestUnreachableCode::FRAG_NEEDED,
            next_hop_mtu: 1400,
            original: q,
        };
        let buf = emit(&m);
        assert_eq!(buf.len() + 20, 576);
        let p = Icmpv4Packet::parse(&buf).unwrap();
        assert_eq!(p.message(), m);
        assert!(p.message().is_error());
        assert_eq!(p.message().original(), Some(q));
        let quoted = Ipv4Packet::parse_quote(q).unwrap();
        assert_eq!(quoted.protocol(), IpProto::UDP);
        assert_eq!(quoted.src(), Ipv4Addr::new(192, 0, 2, 2));
        // The socket is found from the ports even in an 8-byte quote.
        let short = Ipv4Packet::parse_quote(&dgram[..28]).unwrap();
        assert_eq!(short.payload().len(), 8);
        assert_eq!(crate::wire::l4_ports(short.payload()), Some((0, 0)));
        assert_eq!(crate::wire::l4_ports(&[1, 2, 3]), None);

        // Wrapped in IP, the error is recognised as one.
        let mut ip = vec![0u8; 20 + buf.len()];
        ip[20..].copy_from_slice(&buf);
        Ipv4Builder::new(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            IpProto::ICMP,
        )
        .emit(&mut ip)
        .unwrap();
        assert!(carries_error(&Ipv4Packet::parse(&ip).unwrap()));
        assert!(!carries_error(&Ipv4Packet::parse(&dgram).unwrap()));
        assert_eq!(format!("{:?}", DestUnreachableCode::PORT), "PORT");
        assert_eq!(
            format!("{:?}", DestUnreachableCode(99)),
            "DestUnreachableCode(99)"
        );
    }

    fn arb_message() -> impl Strategy<Value = (u8, u8, [u8; 4], Vec<u8>)> {
        (
            prop::sample::select(vec![0u8, 3, 4, 5, 8, 11, 12, 13, 42]),
            prop_oneof![Just(0u8), any::<u8>()],
            any::<[u8; 4]>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
    }

    proptest! {
        /// Parse → emit gives back the same bytes, for every type.
        #[test]
        fn round_trip((t, code, rest, body) in arb_message()) {
            let m = Icmpv4Message::Other { msg_type: t, code, rest, body: &body };
            let buf = emit(&m);
            let p = Icmpv4Packet::parse(&buf).unwrap();
            let again = emit(&p.message());
            // Unused bytes of error types are zeroed on the way back out.
            if !matches!(t, 3 | 11 | 12) {
                prop_assert_eq!(&again, &buf);
            }
            prop_assert_eq!(p.message().msg_type(), t);
            prop_assert_eq!(p.message().code(), code);
            prop_assert_eq!(Icmpv4Packet::parse(&again).unwrap().message(), p.message());
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Icmpv4Packet::parse(&buf) {
                let _ = (p.message().original(), p.message().is_error(), format!("{p:?}"));
            }
        }

        #[test]
        fn mutations_never_panic(buf in mutate(emit(&Icmpv4Message::EchoRequest { ident: 1, seq: 2, data: b"abcdefgh" }))) {
            let _ = Icmpv4Packet::parse(&buf);
        }
    }
}
