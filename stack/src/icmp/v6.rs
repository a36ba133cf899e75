//! ICMPv6 codes (RFC 4443) to and from the generic [`IcmpErrorKind`],
//! and the `Icmp6In*`/`Icmp6Out*` counter of each message type.

use super::IcmpErrorKind;
use crate::counters::Counter;
use crate::wire::icmpv6::{
    DestUnreachableCode, Icmpv6Message, ParamProblemCode, TimeExceededCode, error_quote, msg_type,
};

/// The message for an error about `original` (the offending packet, IPv6
/// header first), quoted as far as the minimum MTU allows (RFC 4443
/// 2.4(c)). A failed neighbour resolution is code 3, address unreachable
/// (RFC 4443 3.1; Linux sends 0, the seed's ICMPv6-5.5).
pub fn error_message(kind: IcmpErrorKind, original: &[u8]) -> Icmpv6Message<'_> {
    let original = error_quote(original);
    let unreach = |code: DestUnreachableCode| Icmpv6Message::DestUnreachable { code, original };
    let param = |code: ParamProblemCode, pointer: u32| Icmpv6Message::ParameterProblem {
        code,
        pointer,
        original,
    };
    match kind {
        IcmpErrorKind::NetUnreachable => unreach(DestUnreachableCode::NO_ROUTE),
        IcmpErrorKind::HostUnreachable => unreach(DestUnreachableCode::ADDRESS_UNREACHABLE),
        IcmpErrorKind::AdminProhibited => unreach(DestUnreachableCode::ADMIN_PROHIBITED),
        IcmpErrorKind::PortUnreachable => unreach(DestUnreachableCode::PORT_UNREACHABLE),
        IcmpErrorKind::OtherUnreachable { code } => unreach(DestUnreachableCode(code)),
        IcmpErrorKind::ProtocolUnreachable { pointer } => {
            param(ParamProblemCode::UNRECOGNIZED_NEXT_HEADER, pointer)
        }
        IcmpErrorKind::ParameterProblem { pointer } => {
            param(ParamProblemCode::ERRONEOUS_HEADER, pointer)
        }
        IcmpErrorKind::PacketTooBig { mtu } => Icmpv6Message::PacketTooBig { mtu, original },
        IcmpErrorKind::TtlExceeded => Icmpv6Message::TimeExceeded {
            code: TimeExceededCode::HOP_LIMIT,
            original,
        },
        IcmpErrorKind::ReassemblyTimeout => Icmpv6Message::TimeExceeded {
            code: TimeExceededCode::REASSEMBLY,
            original,
        },
    }
}

/// A parameter problem with an explicit code (2: unrecognized option, 3:
/// incomplete header chain), which [`IcmpErrorKind`] does not name.
pub fn param_problem(code: ParamProblemCode, pointer: u32, original: &[u8]) -> Icmpv6Message<'_> {
    Icmpv6Message::ParameterProblem {
        code,
        pointer,
        original: error_quote(original),
    }
}

/// What a received error says about a packet we sent, with the quote.
/// Unknown codes of known types are still errors (RFC 4443 3.1: treat as
/// code 0), unknown error types are passed to nobody.
pub fn received_error<'a>(msg: &Icmpv6Message<'a>) -> Option<(IcmpErrorKind, &'a [u8])> {
    let kind = match *msg {
        Icmpv6Message::DestUnreachable { code, .. } => match code {
            DestUnreachableCode::ADDRESS_UNREACHABLE | DestUnreachableCode::BEYOND_SCOPE => {
                IcmpErrorKind::HostUnreachable
            }
            DestUnreachableCode::PORT_UNREACHABLE => IcmpErrorKind::PortUnreachable,
            DestUnreachableCode::ADMIN_PROHIBITED
            | DestUnreachableCode::SOURCE_POLICY
            | DestUnreachableCode::REJECT_ROUTE => IcmpErrorKind::AdminProhibited,
            _ => IcmpErrorKind::NetUnreachable,
        },
        Icmpv6Message::PacketTooBig { mtu, .. } => IcmpErrorKind::PacketTooBig { mtu },
        Icmpv6Message::TimeExceeded { code, .. } => match code {
            TimeExceededCode::REASSEMBLY => IcmpErrorKind::ReassemblyTimeout,
            _ => IcmpErrorKind::TtlExceeded,
        },
        Icmpv6Message::ParameterProblem { code, pointer, .. } => match code {
            ParamProblemCode::UNRECOGNIZED_NEXT_HEADER => {
                IcmpErrorKind::ProtocolUnreachable { pointer }
            }
            _ => IcmpErrorKind::ParameterProblem { pointer },
        },
        _ => return None,
    };
    Some((kind, msg.original()?))
}

/// The `Icmp6In*` counter for a received message type.
pub fn in_counter(t: u8) -> Option<Counter> {
    Some(match t {
        msg_type::DEST_UNREACHABLE => Counter::Icmp6InDestUnreachs,
        msg_type::PACKET_TOO_BIG => Counter::Icmp6InPktTooBigs,
        msg_type::TIME_EXCEEDED => Counter::Icmp6InTimeExcds,
        msg_type::PARAMETER_PROBLEM => Counter::Icmp6InParmProblems,
        msg_type::ECHO_REQUEST => Counter::Icmp6InEchos,
        msg_type::ECHO_REPLY => Counter::Icmp6InEchoReplies,
        msg_type::MLD_QUERY => Counter::Icmp6InGroupMembQueries,
        msg_type::MLD_REPORT => Counter::Icmp6InGroupMembResponses,
        msg_type::MLD_DONE => Counter::Icmp6InGroupMembReductions,
        msg_type::ROUTER_SOLICITATION => Counter::Icmp6InRouterSolicits,
        msg_type::ROUTER_ADVERTISEMENT => Counter::Icmp6InRouterAdvertisements,
        msg_type::NEIGHBOR_SOLICITATION => Counter::Icmp6InNeighborSolicits,
        msg_type::NEIGHBOR_ADVERTISEMENT => Counter::Icmp6InNeighborAdvertisements,
        msg_type::REDIRECT => Counter::Icmp6InRedirects,
        msg_type::MLDV2_REPORT => Counter::Icmp6InMLDv2Reports,
        _ => return None,
    })
}

/// The `Icmp6Out*` counter for a sent message type (errors are counted
/// by the generic rules, [`super::IcmpState::check_error`]).
pub fn out_counter(t: u8) -> Option<Counter> {
    Some(match t {
        msg_type::ECHO_REQUEST => Counter::Icmp6OutEchos,
        msg_type::ECHO_REPLY => Counter::Icmp6OutEchoReplies,
        msg_type::ROUTER_SOLICITATION => Counter::Icmp6OutRouterSolicits,
        msg_type::NEIGHBOR_SOLICITATION => Counter::Icmp6OutNeighborSolicits,
        msg_type::NEIGHBOR_ADVERTISEMENT => Counter::Icmp6OutNeighborAdvertisements,
        msg_type::MLDV2_REPORT => Counter::Icmp6OutMLDv2Reports,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_codes() {
        let q = [0x60u8; 48];
        for k in [
            IcmpErrorKind::NetUnreachable,
            IcmpErrorKind::HostUnreachable,
            IcmpErrorKind::PortUnreachable,
            IcmpErrorKind::AdminProhibited,
            IcmpErrorKind::PacketTooBig { mtu: 1280 },
            IcmpErrorKind::TtlExceeded,
            IcmpErrorKind::ReassemblyTimeout,
            IcmpErrorKind::ParameterProblem { pointer: 40 },
            IcmpErrorKind::ProtocolUnreachable { pointer: 6 },
        ] {
            let m = error_message(k, &q);
            assert_eq!(received_error(&m), Some((k, &q[..])), "{k:?}");
        }
        // Address unreachable is code 3, never 0 (ICMPv6-5.5).
        let m = error_message(IcmpErrorKind::HostUnreachable, &q);
        assert_eq!((m.msg_type(), m.code()), (1, 3));
        let m = error_message(IcmpErrorKind::PortUnreachable, &q);
        assert_eq!((m.msg_type(), m.code()), (1, 4));
        let m = error_message(IcmpErrorKind::ProtocolUnreachable { pointer: 6 }, &q);
        assert_eq!((m.msg_type(), m.code()), (4, 1));
        // The error fits the minimum MTU.
        let big = vec![0u8; 3000];
        assert_eq!(
            error_message(IcmpErrorKind::PortUnreachable, &big).len(),
            1280 - 40
        );
        assert_eq!(in_counter(135), Some(Counter::Icmp6InNeighborSolicits));
        assert_eq!(
            out_counter(136),
            Some(Counter::Icmp6OutNeighborAdvertisements)
        );
    }
}
