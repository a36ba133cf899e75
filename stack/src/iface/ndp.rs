//! Neighbor Discovery (RFC 4861), duplicate address detection (RFC 4862)
//! and MLDv2 reports (RFC 3810): the state and the rules. The neighbour
//! cache itself is the shared [`super::neighbor::NeighborTable`]`<Ipv6>`;
//! this module keeps what IPv6 adds around it (addresses and their DAD
//! state, routers and prefixes learned from advertisements, the router
//! solicitation and MLD retransmission counts) and the validity checks of
//! RFC 4861 that need the IP header (hop limit 255, targets, sources).
//! The facade (`stack::v6`) sends and receives; what it decides is here.
//!
//! Linux's defaults (`/proc/sys/net/ipv6/conf/*`): `dad_transmits` 1 with
//! a `retrans_time` of 1 s, the first DAD probe after a random delay below
//! `rtr_solicit_delay` (1 s), `optimistic_dad` 0, `enhanced_dad` 1 (a
//! nonce in DAD probes tells our own looped-back probe from a conflict),
//! `accept_ra` 1, `autoconf` 1, `accept_redirects` 1 on a host,
//! `rtr_solicits` 3 every 4 s (here 0 unless asked for: a stack with a
//! static configuration does not solicit), MLD unsolicited reports
//! repeated once (robustness 2) within 1 s.

use crate::ip::{IpAddress, Ipv6Addr, Subnet};
use crate::time::{Duration, Instant};
use crate::wire::Mac;

/// IPv6 configuration of the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdConfig {
    /// Form `fe80::` + EUI-64 when IPv6 is enabled.
    pub link_local: bool,
    /// `dad_transmits`: 0 turns DAD off (addresses are usable at once).
    pub dad_transmits: u32,
    /// `rtr_solicit_delay`: the first DAD probe (and RS) waits a random
    /// time below this.
    pub rtr_solicit_delay: Duration,
    /// `rtr_solicits`: router solicitations once the link-local address is
    /// assigned (0: none).
    pub router_solicitations: u32,
    /// `rtr_solicit_interval`.
    pub rtr_solicit_interval: Duration,
    /// `accept_ra`.
    pub accept_ra: bool,
    /// `autoconf`: addresses from prefixes with the A flag (SLAAC).
    pub autoconf: bool,
    /// `accept_redirects`.
    pub accept_redirects: bool,
    /// `enhanced_dad` (RFC 7527 nonce).
    pub enhanced_dad: bool,
}

impl Default for NdConfig {
    fn default() -> NdConfig {
        NdConfig {
            link_local: true,
            dad_transmits: 1,
            rtr_solicit_delay: Duration::from_secs(1),
            router_solicitations: 0,
            rtr_solicit_interval: Duration::from_secs(4),
            accept_ra: true,
            autoconf: true,
            accept_redirects: true,
            enhanced_dad: true,
        }
    }
}

/// Where an address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrOrigin {
    /// `fe80::` + the MAC's EUI-64.
    LinkLocal,
    /// Added by the user.
    Static,
    /// Formed from a router-advertised prefix (RFC 4862 5.5.3).
    Slaac,
}

/// An address's DAD state (RFC 4862), as events report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressState {
    /// Being checked: not usable, packets to it are dropped.
    Tentative,
    /// Usable.
    Assigned,
    /// Usable, but avoided as a source (preferred lifetime over).
    Deprecated,
    /// Someone else has it: not assigned.
    DadFailed,
}

/// One of the interface's IPv6 addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6AddrInfo {
    pub addr: Ipv6Addr,
    pub state: AddressState,
    pub origin: AddrOrigin,
    /// SLAAC: when the address goes (valid lifetime).
    pub valid_until: Option<Instant>,
    /// SLAAC: when it becomes deprecated (preferred lifetime).
    pub preferred_until: Option<Instant>,
    /// DAD probes still to send.
    pub(crate) probes_left: u32,
    /// The nonce of our DAD probes (RFC 7527).
    pub(crate) nonce: [u8; 6],
}

/// The timers of NDP, DAD and MLD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NdTimer {
    /// Next DAD probe, or the end of DAD, for this address.
    Dad(Ipv6Addr),
    /// Next router solicitation.
    Rs,
    /// Repetition of the unsolicited report for this group.
    Mld(Ipv6Addr),
    /// A router, prefix or address lifetime ran out.
    Lifetimes,
}

/// A default router (RFC 4861 6.3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterEntry {
    pub addr: Ipv6Addr,
    pub expires: Instant,
}

/// An on-link prefix learned from an advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixEntry {
    pub subnet: Subnet<Ipv6Addr>,
    /// `None`: infinite.
    pub expires: Option<Instant>,
}

/// IPv6's per-interface state beyond the IP layer and the neighbour
/// cache.
#[derive(Debug, Default)]
pub struct NdState {
    pub config: NdConfig,
    /// IPv6 is on (`enable_ipv6` or the first address added).
    pub enabled: bool,
    addrs: Vec<Ipv6AddrInfo>,
    pub routers: Vec<RouterEntry>,
    pub prefixes: Vec<PrefixEntry>,
    /// Router solicitations still to send.
    pub rs_left: u32,
    /// From the MTU option of an advertisement (RFC 4861 6.3.4).
    pub mtu: Option<u16>,
    /// Unsolicited MLD reports still to repeat, per group.
    pub mld_repeats: Vec<(Ipv6Addr, u32)>,
}

impl NdState {
    pub fn new(config: NdConfig) -> NdState {
        NdState {
            config,
            ..NdState::default()
        }
    }

    pub fn addrs(&self) -> &[Ipv6AddrInfo] {
        &self.addrs
    }

    pub fn get(&self, a: &Ipv6Addr) -> Option<&Ipv6AddrInfo> {
        self.addrs.iter().find(|e| e.addr == *a)
    }

    pub fn get_mut(&mut self, a: &Ipv6Addr) -> Option<&mut Ipv6AddrInfo> {
        self.addrs.iter_mut().find(|e| e.addr == *a)
    }

    pub fn is_tentative(&self, a: &Ipv6Addr) -> bool {
        self.get(a)
            .is_some_and(|e| e.state == AddressState::Tentative)
    }

    /// Starts tracking an address as tentative (`probes` DAD probes to
    /// send). `false` if it is already there.
    pub fn add(&mut self, addr: Ipv6Addr, origin: AddrOrigin, probes: u32, nonce: [u8; 6]) -> bool {
        if self.get(&addr).is_some() {
            return false;
        }
        self.addrs.push(Ipv6AddrInfo {
            addr,
            state: AddressState::Tentative,
            origin,
            valid_until: None,
            preferred_until: None,
            probes_left: probes,
            nonce,
        });
        true
    }

    pub fn remove(&mut self, addr: &Ipv6Addr) -> Option<Ipv6AddrInfo> {
        let i = self.addrs.iter().position(|e| e.addr == *addr)?;
        Some(self.addrs.remove(i))
    }

    /// The earliest router, prefix or address lifetime end.
    pub fn next_expiry(&self) -> Option<Instant> {
        let r = self.routers.iter().map(|r| r.expires);
        let p = self.prefixes.iter().filter_map(|p| p.expires);
        let a = self
            .addrs
            .iter()
            .flat_map(|a| {
                [
                    a.valid_until,
                    a.preferred_until
                        .filter(|_| a.state == AddressState::Assigned),
                ]
            })
            .flatten();
        r.chain(p).chain(a).min()
    }
}

/// Encoded NDP options for a message to send (at most 16 bytes: one
/// link-layer address or one nonce, which is all a host sends).
#[derive(Clone, Copy, Debug, Default)]
pub struct NdpOptionsBuf {
    buf: [u8; 16],
    len: usize,
}

impl NdpOptionsBuf {
    pub fn one(o: crate::wire::icmpv6::NdpOption<'_>) -> NdpOptionsBuf {
        let mut b = NdpOptionsBuf::default();
        b.len = o.emit(&mut b.buf).unwrap_or(0);
        b
    }
    pub fn options(&self) -> crate::wire::icmpv6::NdpOptions<'_> {
        crate::wire::icmpv6::NdpOptions::from_built(&self.buf[..self.len])
            .unwrap_or(crate::wire::icmpv6::NdpOptions::EMPTY)
    }
}

/// The modified EUI-64 interface identifier of a MAC (RFC 4291 2.5.1), in
/// the low 64 bits of the result.
pub fn eui64(mac: Mac) -> u128 {
    Ipv6Addr::link_local_from_mac(mac).to_bits() & u128::from(u64::MAX)
}

/// The SLAAC address for a /64 prefix (RFC 4862 5.5.3 d).
pub fn slaac_addr(prefix: &Subnet<Ipv6Addr>, mac: Mac) -> Option<Ipv6Addr> {
    (prefix.prefix() == 64).then(|| Ipv6Addr::from_bits(prefix.network().to_bits() | eui64(mac)))
}

/// Why an NDP message fails RFC 4861's validity checks (it is dropped and
/// counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not 255: the message crossed a router (7.1.1, 6.1.2, 8.1).
    HopLimit,
    MulticastTarget,
    /// A DAD probe (source `::`) not sent to a solicited-node group.
    DadNotSolicitedNode,
    /// A DAD probe with a source link-layer address option.
    DadWithSourceLinkAddr,
    /// A solicited advertisement to a multicast address.
    SolicitedToMulticast,
    /// Router advertisements and redirects come from link-local addresses.
    SourceNotLinkLocal,
    /// A redirect's target is neither link-local nor the destination.
    RedirectTarget,
    /// A redirect for a multicast destination.
    RedirectMulticastDestination,
}

/// RFC 4861 7.1.1 for a neighbour solicitation (length and options are
/// the parser's; code 0 is what makes it parse as one).
pub fn check_ns(
    hop_limit: u8,
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    target: &Ipv6Addr,
    has_source_link_addr: bool,
) -> Result<(), Invalid> {
    if hop_limit != 255 {
        return Err(Invalid::HopLimit);
    }
    if target.is_multicast() {
        return Err(Invalid::MulticastTarget);
    }
    if src.is_unspecified() {
        if !dst.is_solicited_node() {
            return Err(Invalid::DadNotSolicitedNode);
        }
        if has_source_link_addr {
            return Err(Invalid::DadWithSourceLinkAddr);
        }
    }
    Ok(())
}

/// RFC 4861 7.1.2 for a neighbour advertisement.
pub fn check_na(
    hop_limit: u8,
    dst: &Ipv6Addr,
    target: &Ipv6Addr,
    solicited: bool,
) -> Result<(), Invalid> {
    if hop_limit != 255 {
        return Err(Invalid::HopLimit);
    }
    if target.is_multicast() {
        return Err(Invalid::MulticastTarget);
    }
    if dst.is_multicast() && solicited {
        return Err(Invalid::SolicitedToMulticast);
    }
    Ok(())
}

/// RFC 4861 6.1.2 for a router advertisement.
pub fn check_ra(hop_limit: u8, src: &Ipv6Addr) -> Result<(), Invalid> {
    if hop_limit != 255 {
        return Err(Invalid::HopLimit);
    }
    if !src.is_link_local() {
        return Err(Invalid::SourceNotLinkLocal);
    }
    Ok(())
}

/// RFC 4861 8.1 for a redirect (the "from the current first hop" check
/// needs the routing table and is the caller's).
pub fn check_redirect(
    hop_limit: u8,
    src: &Ipv6Addr,
    target: &Ipv6Addr,
    destination: &Ipv6Addr,
) -> Result<(), Invalid> {
    if hop_limit != 255 {
        return Err(Invalid::HopLimit);
    }
    if !src.is_link_local() {
        return Err(Invalid::SourceNotLinkLocal);
    }
    if destination.is_multicast() {
        return Err(Invalid::RedirectMulticastDestination);
    }
    if !(target.is_link_local() || target == destination) {
        return Err(Invalid::RedirectTarget);
    }
    Ok(())
}

/// MLDv2 multicast address record types (RFC 3810 5.2.12).
pub mod mld_record {
    pub const MODE_IS_EXCLUDE: u8 = 2;
    pub const CHANGE_TO_INCLUDE: u8 = 3;
    pub const CHANGE_TO_EXCLUDE: u8 = 4;
}

/// The hop-by-hop options of every MLD message: router alert, value 0
/// (RFC 2711, RFC 3810 5).
pub const ROUTER_ALERT_MLD: [u8; 4] = [crate::wire::ipv6::option::ROUTER_ALERT, 2, 0, 0];

/// Whether joining `group` is reported (RFC 3810 6: never the all-nodes
/// group, nor interface-local scope).
pub fn reported(group: &Ipv6Addr) -> bool {
    *group != Ipv6Addr::ALL_NODES && group.multicast_scope().is_some_and(|s| s > 1)
}

/// The body of an MLDv2 report after the ICMPv6 header (whose four
/// type-specific bytes are reserved and the record count): one record
/// without sources per group.
pub fn report_records(records: &[(u8, Ipv6Addr)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(records.len() * 20);
    for (kind, group) in records {
        v.extend_from_slice(&[*kind, 0, 0, 0]);
        v.extend_from_slice(group.bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn validity_checks() {
        let t = a("2001:db8::1");
        let sn = t.solicited_node();
        assert_eq!(check_ns(255, &a("fe80::2"), &sn, &t, true), Ok(()));
        assert_eq!(
            check_ns(254, &a("fe80::2"), &sn, &t, true),
            Err(Invalid::HopLimit)
        );
        assert_eq!(
            check_ns(255, &a("fe80::2"), &sn, &sn, true),
            Err(Invalid::MulticastTarget)
        );
        assert_eq!(
            check_ns(255, &Ipv6Addr::UNSPECIFIED, &sn, &t, false),
            Ok(())
        );
        assert_eq!(
            check_ns(255, &Ipv6Addr::UNSPECIFIED, &t, &t, false),
            Err(Invalid::DadNotSolicitedNode)
        );
        assert_eq!(
            check_ns(255, &Ipv6Addr::UNSPECIFIED, &sn, &t, true),
            Err(Invalid::DadWithSourceLinkAddr)
        );
        assert_eq!(check_na(255, &a("fe80::1"), &t, true), Ok(()));
        assert_eq!(
            check_na(255, &Ipv6Addr::ALL_NODES, &t, true),
            Err(Invalid::SolicitedToMulticast)
        );
        assert_eq!(
            check_na(64, &a("fe80::1"), &t, true),
            Err(Invalid::HopLimit)
        );
        assert_eq!(check_ra(255, &a("fe80::1")), Ok(()));
        assert_eq!(check_ra(255, &t), Err(Invalid::SourceNotLinkLocal));
        assert_eq!(
            check_redirect(255, &a("fe80::1"), &a("fe80::9"), &a("2001:db8:5::1")),
            Ok(())
        );
        assert_eq!(
            check_redirect(255, &a("fe80::1"), &t, &t),
            Ok(()),
            "target == destination: on-link"
        );
        assert_eq!(
            check_redirect(255, &a("fe80::1"), &t, &a("2001:db8:5::1")),
            Err(Invalid::RedirectTarget)
        );
    }

    #[test]
    fn slaac_and_state() {
        let mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        let p: Subnet<Ipv6Addr> = "2001:db8:1::/64".parse().unwrap();
        assert_eq!(
            slaac_addr(&p, mac),
            Some(a("2001:db8:1::5054:ff:fe12:3456"))
        );
        let p48: Subnet<Ipv6Addr> = "2001:db8::/48".parse().unwrap();
        assert_eq!(slaac_addr(&p48, mac), None);
        let mut s = NdState::new(NdConfig::default());
        assert!(s.add(a("fe80::1"), AddrOrigin::LinkLocal, 1, [1; 6]));
        assert!(!s.add(a("fe80::1"), AddrOrigin::LinkLocal, 1, [1; 6]));
        assert!(s.is_tentative(&a("fe80::1")));
        s.get_mut(&a("fe80::1")).unwrap().state = AddressState::Assigned;
        assert!(!s.is_tentative(&a("fe80::1")));
        assert_eq!(s.next_expiry(), None);
        assert!(s.remove(&a("fe80::1")).is_some());
        assert!(reported(&a("ff02::1:ff00:1")));
        assert!(!reported(&Ipv6Addr::ALL_NODES));
        assert_eq!(report_records(&[(4, a("ff02::1:ff00:1"))]).len(), 20);
    }
}
