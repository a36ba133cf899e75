//! ICMPv4 codes to and from the generic [`IcmpErrorKind`].

use super::IcmpErrorKind;
use crate::counters::Counter;
use crate::wire::icmpv4::{
    DestUnreachableCode, Icmpv4Message, TimeExceededCode, error_quote, msg_type,
};

/// The message for an error about `original` (the offending datagram,
/// header first): quoted as far as RFC 1812's 576 bytes allow.
pub fn error_message(kind: IcmpErrorKind, original: &[u8]) -> Icmpv4Message<'_> {
    let original = error_quote(original);
    let unreach = |code: DestUnreachableCode, next_hop_mtu: u16| Icmpv4Message::DestUnreachable {
        code,
        next_hop_mtu,
        original,
    };
    match kind {
        IcmpErrorKind::NetUnreachable => unreach(DestUnreachableCode::NET, 0),
        IcmpErrorKind::HostUnreachable => unreach(DestUnreachableCode::HOST, 0),
        IcmpErrorKind::ProtocolUnreachable { .. } => unreach(DestUnreachableCode::PROTOCOL, 0),
        IcmpErrorKind::PortUnreachable => unreach(DestUnreachableCode::PORT, 0),
        IcmpErrorKind::PacketTooBig { mtu } => unreach(
            DestUnreachableCode::FRAG_NEEDED,
            u16::try_from(mtu).unwrap_or(u16::MAX),
        ),
        IcmpErrorKind::OtherUnreachable { code } => unreach(DestUnreachableCode(code), 0),
        IcmpErrorKind::AdminProhibited => unreach(DestUnreachableCode(13), 0),
        IcmpErrorKind::TtlExceeded => Icmpv4Message::TimeExceeded {
            code: TimeExceededCode::TTL,
            original,
        },
        IcmpErrorKind::ReassemblyTimeout => Icmpv4Message::TimeExceeded {
            code: TimeExceededCode::REASSEMBLY,
            original,
        },
        IcmpErrorKind::ParameterProblem { pointer } => Icmpv4Message::ParameterProblem {
            code: 0,
            pointer: u8::try_from(pointer).unwrap_or(u8::MAX),
            original,
        },
    }
}

/// What a received error says, or `None` for errors a host ignores
/// (redirects, source quench per RFC 6633, unknown codes).
pub fn received_error<'a>(msg: &Icmpv4Message<'a>) -> Option<(IcmpErrorKind, &'a [u8])> {
    let kind = match *msg {
        Icmpv4Message::DestUnreachable {
            code, next_hop_mtu, ..
        } => match code {
            DestUnreachableCode::NET => IcmpErrorKind::NetUnreachable,
            DestUnreachableCode::HOST => IcmpErrorKind::HostUnreachable,
            DestUnreachableCode::PROTOCOL => IcmpErrorKind::ProtocolUnreachable { pointer: 9 },
            DestUnreachableCode::PORT => IcmpErrorKind::PortUnreachable,
            DestUnreachableCode::FRAG_NEEDED => IcmpErrorKind::PacketTooBig {
                mtu: u32::from(next_hop_mtu),
            },
            DestUnreachableCode(c) if c <= 15 => IcmpErrorKind::OtherUnreachable { code: c },
            _ => return None,
        },
        Icmpv4Message::TimeExceeded { code, .. } => match code {
            TimeExceededCode::TTL => IcmpErrorKind::TtlExceeded,
            TimeExceededCode::REASSEMBLY => IcmpErrorKind::ReassemblyTimeout,
            _ => return None,
        },
        Icmpv4Message::ParameterProblem { pointer, .. } => IcmpErrorKind::ParameterProblem {
            pointer: u32::from(pointer),
        },
        _ => return None,
    };
    Some((kind, msg.original()?))
}

/// The `IcmpIn*` counter for a received message type.
pub fn in_counter(t: u8) -> Option<Counter> {
    Some(match t {
        msg_type::DEST_UNREACHABLE => Counter::IcmpInDestUnreachs,
        msg_type::TIME_EXCEEDED => Counter::IcmpInTimeExcds,
        msg_type::PARAMETER_PROBLEM => Counter::IcmpInParmProbs,
        msg_type::SOURCE_QUENCH => Counter::IcmpInSrcQuenchs,
        msg_type::REDIRECT => Counter::IcmpInRedirects,
        msg_type::ECHO_REQUEST => Counter::IcmpInEchos,
        msg_type::ECHO_REPLY => Counter::IcmpInEchoReps,
        msg_type::TIMESTAMP => Counter::IcmpInTimestamps,
        _ => return None,
    })
}

/// RFC 1122 3.2.2: unknown types are silently discarded; Linux knows
/// types up to 18 (`NR_ICMP_TYPES`) and treats the rest as errors when
/// deciding whether to answer one.
pub const NR_ICMP_TYPES: u8 = 18;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_kinds() {
        let q = [0x45u8; 28];
        for k in [
            IcmpErrorKind::NetUnreachable,
            IcmpErrorKind::HostUnreachable,
            IcmpErrorKind::PortUnreachable,
            IcmpErrorKind::PacketTooBig { mtu: 1400 },
            IcmpErrorKind::TtlExceeded,
            IcmpErrorKind::ReassemblyTimeout,
            IcmpErrorKind::ParameterProblem { pointer: 20 },
            IcmpErrorKind::OtherUnreachable { code: 13 },
        ] {
            let m = error_message(k, &q);
            assert_eq!(received_error(&m), Some((k, &q[..])), "{k:?}");
        }
        let m = error_message(IcmpErrorKind::ProtocolUnreachable { pointer: 9 }, &q);
        assert_eq!(m.code(), 2);
        assert_eq!(m.msg_type(), 3);
        let big = vec![0u8; 2000];
        assert_eq!(
            error_message(IcmpErrorKind::HostUnreachable, &big).len(),
            576 - 20
        );
        assert_eq!(
            received_error(&Icmpv4Message::Redirect {
                code: 1,
                gateway: crate::Ipv4Addr::new(1, 2, 3, 4),
                original: &q
            }),
            None
        );
    }
}
