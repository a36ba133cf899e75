//! The routing table: longest-prefix match over on-link and gateway
//! routes, one table per IP version (`ip route show table main`).
//!
//! A host's table is small (a few on-link prefixes and a default route),
//! so it is a vector kept sorted by prefix length (longest first) and
//! metric: the first match is the answer, and a lookup is a short scan
//! with no allocation.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::ip::{Ip, Subnet};

/// A number never handed out before in this process: the version of a
/// routing table or address list, so that a cached routing decision can
/// tell it is stale (a replaced table gets a fresh number too).
pub(crate) fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<I: Ip> {
    pub subnet: Subnet<I::Addr>,
    /// `None`: on-link (`scope link`), the destination is its own next
    /// hop. `Some`: via this router.
    pub gateway: Option<I::Addr>,
    /// Preferred source address (`src` in `ip route`), as Linux sets it on
    /// the prefix route of an address it adds.
    pub src: Option<I::Addr>,
    /// Lower wins among routes of the same prefix length.
    pub metric: u32,
}

impl<I: Ip> Route<I> {
    pub fn on_link(subnet: Subnet<I::Addr>) -> Route<I> {
        Route {
            subnet,
            gateway: None,
            src: None,
            metric: 0,
        }
    }
    pub fn via(subnet: Subnet<I::Addr>, gateway: I::Addr) -> Route<I> {
        Route {
            subnet,
            gateway: Some(gateway),
            src: None,
            metric: 0,
        }
    }
    /// The default route via `gateway`.
    pub fn default_via(gateway: I::Addr) -> Route<I> {
        Route::via(default_subnet::<I>(), gateway)
    }
    /// The neighbour a packet to `dst` is handed to.
    pub fn next_hop(&self, dst: I::Addr) -> I::Addr {
        self.gateway.unwrap_or(dst)
    }
}

/// `0.0.0.0/0` / `::/0`.
pub fn default_subnet<I: Ip>() -> Subnet<I::Addr> {
    Subnet::from_host(I::UNSPECIFIED, 0).unwrap_or_else(|_| unreachable!("prefix 0 is valid"))
}

/// Why a route was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// The same prefix, gateway and metric is already there (`EEXIST`).
    Exists,
}

#[derive(Clone, Debug)]
pub struct RoutingTable<I: Ip> {
    routes: Vec<Route<I>>,
    /// Changes with every change of the routes.
    generation: u64,
}

impl<I: Ip> Default for RoutingTable<I> {
    fn default() -> Self {
        RoutingTable {
            routes: Vec::new(),
            generation: next_generation(),
        }
    }
}

impl<I: Ip> RoutingTable<I> {
    /// Differs after any change of the table (see [`next_generation`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn add(&mut self, route: Route<I>) -> Result<(), RouteError> {
        if self.routes.iter().any(|r| {
            r.subnet == route.subnet && r.gateway == route.gateway && r.metric == route.metric
        }) {
            return Err(RouteError::Exists);
        }
        let at = self
            .routes
            .iter()
            .position(|r| {
                (r.subnet.prefix(), core::cmp::Reverse(r.metric))
                    < (route.subnet.prefix(), core::cmp::Reverse(route.metric))
            })
            .unwrap_or(self.routes.len());
        self.routes.insert(at, route);
        self.generation = next_generation();
        Ok(())
    }

    /// Removes routes to `subnet` (through `gateway` if given). Returns how
    /// many went.
    pub fn remove(&mut self, subnet: Subnet<I::Addr>, gateway: Option<I::Addr>) -> usize {
        let before = self.routes.len();
        self.routes
            .retain(|r| !(r.subnet == subnet && (gateway.is_none() || r.gateway == gateway)));
        self.generation = next_generation();
        before - self.routes.len()
    }

    /// Removes every route whose preferred source is `src` (an address
    /// going away takes its prefix route with it).
    pub fn remove_by_src(&mut self, src: I::Addr) {
        self.routes.retain(|r| r.src != Some(src));
        self.generation = next_generation();
    }

    /// Longest-prefix match, then lowest metric.
    pub fn lookup(&self, dst: &I::Addr) -> Option<&Route<I>> {
        self.routes.iter().find(|r| r.subnet.contains(dst))
    }

    /// Whether `addr` is on one of the on-link prefixes.
    pub fn is_on_link(&self, addr: &I::Addr) -> bool {
        self.lookup(addr).is_some_and(|r| r.gateway.is_none())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route<I>> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{Ipv4, Ipv4Addr, Ipv6, Ipv6Addr};

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn n4(s: &str) -> Subnet<Ipv4Addr> {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_then_metric() {
        let mut t = RoutingTable::<Ipv4>::default();
        t.add(Route::default_via(v4("192.0.2.254"))).unwrap();
        t.add(Route::on_link(n4("192.0.2.0/24"))).unwrap();
        t.add(Route::via(n4("198.51.100.0/24"), v4("192.0.2.1")))
            .unwrap();
        t.add(Route::via(n4("198.51.100.128/25"), v4("192.0.2.2")))
            .unwrap();
        let mut worse = Route::via(n4("198.51.100.128/25"), v4("192.0.2.3"));
        worse.metric = 10;
        t.add(worse).unwrap();
        assert_eq!(t.add(worse), Err(RouteError::Exists));

        fn hop(t: &RoutingTable<Ipv4>, d: &str) -> Option<Ipv4Addr> {
            t.lookup(&v4(d)).map(|r| r.next_hop(v4(d)))
        }
        assert_eq!(hop(&t, "192.0.2.77"), Some(v4("192.0.2.77")));
        assert_eq!(hop(&t, "198.51.100.5"), Some(v4("192.0.2.1")));
        assert_eq!(hop(&t, "198.51.100.200"), Some(v4("192.0.2.2")));
        assert_eq!(hop(&t, "203.0.113.1"), Some(v4("192.0.2.254")));
        assert!(t.is_on_link(&v4("192.0.2.9")));
        assert!(!t.is_on_link(&v4("8.8.8.8")));

        assert_eq!(t.remove(n4("198.51.100.128/25"), Some(v4("192.0.2.2"))), 1);
        assert_eq!(hop(&t, "198.51.100.200"), Some(v4("192.0.2.3")));
        assert_eq!(t.remove(default_subnet::<Ipv4>(), None), 1);
        assert_eq!(hop(&t, "203.0.113.1"), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn remove_by_src() {
        let mut t = RoutingTable::<Ipv4>::default();
        let mut r = Route::on_link(n4("192.0.2.0/24"));
        r.src = Some(v4("192.0.2.1"));
        t.add(r).unwrap();
        t.remove_by_src(v4("192.0.2.1"));
        assert!(t.is_empty());
    }

    #[test]
    fn same_code_for_ipv6() {
        let mut t = RoutingTable::<Ipv6>::default();
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        t.add(Route::default_via(gw)).unwrap();
        t.add(Route::on_link("2001:db8::/64".parse().unwrap()))
            .unwrap();
        let d: Ipv6Addr = "2001:db8::5".parse().unwrap();
        assert_eq!(t.lookup(&d).unwrap().next_hop(d), d);
        let far: Ipv6Addr = "2001:db8:1::5".parse().unwrap();
        assert_eq!(t.lookup(&far).unwrap().next_hop(far), gw);
    }
}
