//! What only IPv6 has in the IP layer: the extension-header chain as the
//! receive path must process it (RFC 8200 4), and source address
//! selection (RFC 6724 section 5). Both are pure functions of a packet or
//! of the address list, so they are tested here without a stack.

use core::cmp::Ordering;

use super::AddrEntry;
use crate::ip::{IpAddress, IpProto, Ipv6, Ipv6Addr};
use crate::wire::ParseError;
use crate::wire::icmpv6::ParamProblemCode;
use crate::wire::ipv6::{ExtHeaderKind, FragmentHeader, Ipv6Packet, UnrecognizedAction, option};

/// RFC 6724 3.1 / RFC 4291 2.7: the scope of an address, as a number that
/// orders them (1 interface-local, 2 link-local, 5 site-local, 0xe
/// global). Loopback counts as link-local (RFC 6724 3.1), unique local
/// addresses as global (RFC 6724 3.1, rule 2's note).
pub fn scope(a: &Ipv6Addr) -> u8 {
    if let Some(s) = a.multicast_scope() {
        return s;
    }
    let o = a.octets();
    if a.is_link_local() || a.is_loopback() {
        2
    } else if o[0] == 0xfe && o[1] & 0xc0 == 0xc0 {
        5
    } else {
        0xe
    }
}

/// RFC 6724 section 5 among the usable addresses (tentative ones are not
/// in the list at all: optimistic DAD is off, as on Linux): rule 1 (the
/// destination itself), rule 2 (appropriate scope), rule 3 (avoid
/// deprecated), rule 8 (longest matching prefix, uncapped per Netstack3:
/// an address carries no prefix length). Rules 4-7 do not apply to a host
/// with one interface, no home addresses, no temporary addresses and the
/// default policy table's labels all equal for native IPv6. The first
/// address added wins a tie.
pub fn select_source(addrs: &[AddrEntry<Ipv6>], dst: &Ipv6Addr) -> Option<Ipv6Addr> {
    let mut best: Option<&AddrEntry<Ipv6>> = None;
    for e in addrs.iter().filter(|e| !e.addr.is_ipv4_mapped()) {
        best = match best {
            None => Some(e),
            Some(b) if compare(e, b, dst) == Ordering::Greater => Some(e),
            keep => keep,
        };
    }
    best.map(|e| e.addr)
}

/// Whether `a` is a better source than `b` for `dst` (Greater: prefer a).
fn compare(a: &AddrEntry<Ipv6>, b: &AddrEntry<Ipv6>, dst: &Ipv6Addr) -> Ordering {
    // Rule 1: prefer the same address.
    if a.addr == *dst {
        return Ordering::Greater;
    }
    if b.addr == *dst {
        return Ordering::Less;
    }
    // Rule 2: prefer appropriate scope.
    let (sa, sb, sd) = (scope(&a.addr), scope(&b.addr), scope(dst));
    if sa < sb {
        return if sa < sd {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    if sb < sa {
        return if sb < sd {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // Rule 3: avoid deprecated addresses.
    if a.deprecated != b.deprecated {
        return if a.deprecated {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // Rule 8: longest matching prefix.
    a.addr
        .common_prefix_len(dst)
        .cmp(&b.addr.common_prefix_len(dst))
}

/// What the receive path does with a packet after walking its extension
/// headers (RFC 8200 4.1-4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the upper layer (`proto`, which may be unknown: the caller
    /// answers that with parameter problem code 1 at `nh_offset`) the
    /// bytes from `offset`.
    Upper {
        proto: IpProto,
        offset: usize,
        /// Offset of the next-header field that named `proto`.
        nh_offset: usize,
    },
    /// A fragment to reassemble: its header sits at `header_offset`
    /// (everything before is the unfragmentable part), named by the
    /// next-header field at `nh_offset`.
    Fragment {
        frag: FragmentHeader,
        header_offset: usize,
        nh_offset: usize,
    },
    /// Dropped without an answer; `truncated`: the chain ran past the
    /// packet (`Ip6InTruncatedPkts`), else a header error
    /// (`Ip6InHdrErrors`) or an option whose action is "discard".
    Drop { truncated: bool },
    /// Dropped with an ICMPv6 parameter problem pointing at `pointer`.
    Error {
        code: ParamProblemCode,
        pointer: u32,
        /// Sent even to a multicast destination (RFC 4443 2.4(e.3)).
        allow_group: bool,
    },
}

/// Walks the chain of a packet addressed to us (`dst_multicast`: to a
/// group): hop-by-hop options first only (else code 1), options by their
/// action bits (4.2), routing headers with segments left answered with
/// code 0 at the routing type (4.4; type 0 is no exception, RFC 5095),
/// atomic fragments processed as whole packets (RFC 6946), destination
/// options as hop-by-hop.
pub fn walk(p: &Ipv6Packet<'_>, dst_multicast: bool) -> Verdict {
    let mut chain = p.ext_headers();
    let mut nh_offset = 6;
    loop {
        let h = match chain.next() {
            None => break,
            Some(Ok(h)) => h,
            Some(Err(ParseError::UnrecognizedNextHeader { offset })) => {
                return Verdict::Error {
                    code: ParamProblemCode::UNRECOGNIZED_NEXT_HEADER,
                    pointer: offset as u32,
                    allow_group: false,
                };
            }
            Some(Err(ParseError::Truncated)) => return Verdict::Drop { truncated: true },
            Some(Err(_)) => return Verdict::Drop { truncated: false },
        };
        match h.kind {
            ExtHeaderKind::HopByHop(opts) | ExtHeaderKind::DestinationOptions(opts) => {
                let hbh = matches!(h.kind, ExtHeaderKind::HopByHop(_));
                for o in opts {
                    let o = match o {
                        Ok(o) => o,
                        // A TLV running past its header: Linux drops it
                        // silently (`ip6_parse_tlv`), so do we.
                        Err(_) => return Verdict::Drop { truncated: false },
                    };
                    if hbh && o.kind == option::ROUTER_ALERT && o.data.len() == 2 {
                        continue;
                    }
                    match o.unrecognized_action() {
                        UnrecognizedAction::Skip => {}
                        UnrecognizedAction::Discard => return Verdict::Drop { truncated: false },
                        UnrecognizedAction::DiscardAndReport => {
                            return Verdict::Error {
                                code: ParamProblemCode::UNRECOGNIZED_OPTION,
                                pointer: o.offset as u32,
                                allow_group: true,
                            };
                        }
                        UnrecognizedAction::DiscardAndReportIfUnicast => {
                            if dst_multicast {
                                return Verdict::Drop { truncated: false };
                            }
                            return Verdict::Error {
                                code: ParamProblemCode::UNRECOGNIZED_OPTION,
                                pointer: o.offset as u32,
                                allow_group: false,
                            };
                        }
                    }
                }
            }
            ExtHeaderKind::Routing { segments_left, .. } => {
                if segments_left != 0 {
                    return Verdict::Error {
                        code: ParamProblemCode::ERRONEOUS_HEADER,
                        pointer: h.routing_type_offset() as u32,
                        allow_group: false,
                    };
                }
            }
            ExtHeaderKind::Fragment(frag) => {
                if !frag.is_atomic() {
                    return Verdict::Fragment {
                        frag,
                        header_offset: h.offset,
                        nh_offset,
                    };
                }
            }
        }
        nh_offset = h.offset;
    }
    let (proto, offset) = chain.upper_layer();
    Verdict::Upper {
        proto,
        offset,
        nh_offset: chain.next_header_offset(),
    }
}

/// The first fragment again, from what reassembly kept of it (the
/// unfragmentable part, its last next-header field naming the fragmentable
/// part, then the first fragment's data): the packet a Time Exceeded
/// (reassembly) quotes. RFC 8200 4.5 sends it "to the source of that
/// fragment", and Linux quotes the fragment as received, Fragment header
/// included, which is how the source recognizes it (by its identification).
pub fn first_fragment_quote(reassembled: &[u8], ident: u32) -> Vec<u8> {
    const FIXED: usize = 40;
    if reassembled.len() < FIXED {
        return reassembled.to_vec();
    }
    // The unfragmentable part: hop-by-hop, destination options (before a
    // routing header) and routing headers, in the order RFC 8200 4.1 gives.
    let mut nh_off = 6;
    let mut at = FIXED;
    while matches!(reassembled[nh_off], 0 | 43 | 60)
        && at + 8 <= reassembled.len()
        && (reassembled[nh_off] != 60 || reassembled[at] == 43)
    {
        nh_off = at;
        at += (usize::from(reassembled[at + 1]) + 1) * 8;
    }
    let at = at.min(reassembled.len());
    let mut q = Vec::with_capacity(reassembled.len() + 8);
    q.extend_from_slice(&reassembled[..at]);
    let inner = q[nh_off];
    q[nh_off] = IpProto::IPV6_FRAG.0;
    // Offset 0, M=1.
    q.extend_from_slice(&[inner, 0, 0, 1]);
    q.extend_from_slice(&ident.to_be_bytes());
    q.extend_from_slice(&reassembled[at..]);
    let plen = (q.len() - FIXED).min(usize::from(u16::MAX)) as u16;
    q[4..6].copy_from_slice(&plen.to_be_bytes());
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fragment_quote_puts_the_fragment_header_back() {
        let mut r = vec![0u8; 40];
        r[0] = 0x60;
        r[6] = 58;
        r.extend_from_slice(&[128, 0, 0, 0, 1, 2, 3, 4]);
        let q = first_fragment_quote(&r, 0xdead_beef);
        assert_eq!(q.len(), 56);
        assert_eq!(q[6], 44);
        assert_eq!(&q[4..6], &16u16.to_be_bytes());
        assert_eq!(&q[40..48], &[58, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&q[48..], &r[40..]);
        // After a hop-by-hop header: that header names the fragment.
        let mut r = vec![0u8; 40];
        r[6] = 0;
        r.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        r.extend_from_slice(&[0xaa; 8]);
        let q = first_fragment_quote(&r, 7);
        assert_eq!((q[6], q[40]), (0, 44));
        assert_eq!(&q[48..52], &[17, 0, 0, 1]);
        assert_eq!(&q[56..], &[0xaa; 8]);
    }
    use crate::wire::ipv6::{Ipv6Builder, OptionsHeaderBuilder};

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn entries(list: &[(&str, bool)]) -> Vec<AddrEntry<Ipv6>> {
        list.iter()
            .map(|&(s, deprecated)| AddrEntry {
                deprecated,
                ..AddrEntry::v6(a(s))
            })
            .collect()
    }

    #[test]
    fn rfc6724_rules() {
        let l = entries(&[
            ("fe80::1", false),
            ("2001:db8::1", false),
            ("2001:db8:1::1", false),
        ]);
        // Rule 2: a link-local destination gets the link-local source, a
        // global one a global source.
        assert_eq!(select_source(&l, &a("fe80::2")), Some(a("fe80::1")));
        assert_eq!(select_source(&l, &a("ff02::1")), Some(a("fe80::1")));
        assert_eq!(select_source(&l, &a("2001:db8::9")), Some(a("2001:db8::1")));
        // Rule 8: the longest match.
        assert_eq!(
            select_source(&l, &a("2001:db8:1::9")),
            Some(a("2001:db8:1::1"))
        );
        assert_eq!(select_source(&l, &a("2001:db9::9")), Some(a("2001:db8::1")));
        // Rule 1.
        assert_eq!(
            select_source(&l, &a("2001:db8:1::1")),
            Some(a("2001:db8:1::1"))
        );
        // Rule 3 before rule 8.
        let l = entries(&[("2001:db8::1", true), ("2001:db9::1", false)]);
        assert_eq!(select_source(&l, &a("2001:db8::9")), Some(a("2001:db9::1")));
        // Only a link-local: used for a global destination too.
        let l = entries(&[("fe80::1", false)]);
        assert_eq!(select_source(&l, &a("2001:db8::9")), Some(a("fe80::1")));
        assert_eq!(select_source(&[], &a("2001:db8::9")), None);
        assert_eq!(scope(&a("ff05::1")), 5);
        assert_eq!(scope(&a("fd00::1")), 0xe);
        assert_eq!(scope(&a("::1")), 2);
    }

    fn packet(first: IpProto, ext: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 40 + ext.len() + payload.len()];
        buf[40..40 + ext.len()].copy_from_slice(ext);
        buf[40 + ext.len()..].copy_from_slice(payload);
        Ipv6Builder::new(a("2001:db8::2"), a("2001:db8::1"), first)
            .emit(&mut buf)
            .unwrap();
        buf
    }

    fn opts(nh: IpProto, o: &[u8]) -> Vec<u8> {
        let b = OptionsHeaderBuilder {
            next_header: nh,
            options: o,
        };
        let mut v = vec![0u8; b.header_len()];
        b.emit(&mut v).unwrap();
        v
    }

    #[test]
    fn option_actions() {
        for (kind, multicast, want) in [
            (0x1e, false, Verdict::Drop { truncated: false }),
            (0x3e, false, Verdict::Drop { truncated: false }),
            (0x7e, false, Verdict::Drop { truncated: false }),
            (
                0x9e,
                true,
                Verdict::Error {
                    code: ParamProblemCode::UNRECOGNIZED_OPTION,
                    pointer: 42,
                    allow_group: true,
                },
            ),
            (
                0xde,
                false,
                Verdict::Error {
                    code: ParamProblemCode::UNRECOGNIZED_OPTION,
                    pointer: 42,
                    allow_group: false,
                },
            ),
            (0xde, true, Verdict::Drop { truncated: false }),
        ] {
            let p = packet(
                IpProto::IPV6_OPTS,
                &opts(IpProto::UDP, &[kind, 2, 0, 0]),
                &[0; 8],
            );
            let v = walk(&Ipv6Packet::parse(&p).unwrap(), multicast);
            if kind >> 6 == 0 {
                // Skip: goes on to the upper layer.
                assert_eq!(
                    v,
                    Verdict::Upper {
                        proto: IpProto::UDP,
                        offset: 48,
                        nh_offset: 40
                    }
                );
            } else {
                assert_eq!(v, want, "{kind:#x}");
            }
        }
    }

    #[test]
    fn chain_rules() {
        // Hop-by-hop after a destination options header: code 1 at the
        // next-header field that names it.
        let mut ext = opts(IpProto::HOPOPT, &[]);
        ext.extend(opts(IpProto::UDP, &[]));
        let p = packet(IpProto::IPV6_OPTS, &ext, &[0; 8]);
        assert_eq!(
            walk(&Ipv6Packet::parse(&p).unwrap(), false),
            Verdict::Error {
                code: ParamProblemCode::UNRECOGNIZED_NEXT_HEADER,
                pointer: 40,
                allow_group: false
            }
        );
        // Routing header type 0 with segments left: code 0 at its type.
        let rh = [IpProto::UDP.0, 0, 0, 1, 0, 0, 0, 0];
        let p = packet(IpProto::IPV6_ROUTE, &rh, &[0; 8]);
        assert_eq!(
            walk(&Ipv6Packet::parse(&p).unwrap(), false),
            Verdict::Error {
                code: ParamProblemCode::ERRONEOUS_HEADER,
                pointer: 42,
                allow_group: false
            }
        );
        // ... and with none left, ignored.
        let rh = [IpProto::UDP.0, 0, 0, 0, 0, 0, 0, 0];
        let p = packet(IpProto::IPV6_ROUTE, &rh, &[0; 8]);
        assert!(matches!(
            walk(&Ipv6Packet::parse(&p).unwrap(), false),
            Verdict::Upper {
                proto: IpProto::UDP,
                offset: 48,
                ..
            }
        ));
        // An atomic fragment is processed whole (RFC 6946).
        let fh = [IpProto::UDP.0, 0, 0, 0, 0, 0, 0, 7];
        let p = packet(IpProto::IPV6_FRAG, &fh, &[0; 8]);
        assert!(matches!(
            walk(&Ipv6Packet::parse(&p).unwrap(), false),
            Verdict::Upper {
                proto: IpProto::UDP,
                ..
            }
        ));
        // A real fragment goes to reassembly.
        let fh = [IpProto::UDP.0, 0, 0, 1, 0, 0, 0, 7];
        let p = packet(IpProto::IPV6_FRAG, &fh, &[0; 8]);
        assert!(matches!(
            walk(&Ipv6Packet::parse(&p).unwrap(), false),
            Verdict::Fragment {
                header_offset: 40,
                nh_offset: 6,
                ..
            }
        ));
        // Unknown upper layer: its next-header field.
        let p = packet(IpProto::IPV6_OPTS, &opts(IpProto(253), &[]), &[]);
        assert_eq!(
            walk(&Ipv6Packet::parse(&p).unwrap(), false),
            Verdict::Upper {
                proto: IpProto(253),
                offset: 48,
                nh_offset: 40
            }
        );
        // Truncated chain.
        let p = packet(IpProto::IPV6_OPTS, &[IpProto::UDP.0, 3], &[]);
        assert_eq!(
            walk(&Ipv6Packet::parse(&p).unwrap(), false),
            Verdict::Drop { truncated: true }
        );
    }
}
