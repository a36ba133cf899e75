//! The kernel's view of the interface over NETLINK_ROUTE, for shared-address
//! mode (`SHUNT_SHARE_ADDR=1`, crate::shared): its addresses and default
//! gateways (RTM_GETADDR / RTM_GETROUTE dumps) and its neighbour table
//! (an RTM_GETNEIGH dump, then RTNLGRP_NEIGH notifications), plus the one
//! request shunt makes: resolve this neighbour (RTM_NEWNEIGH with
//! NTF_USE, which makes the kernel's `neigh_add` call `neigh_event_send`
//! as if it had a packet for it: the answer comes as a notification).
//!
//! Raw rustix sockets only; every message is parsed with bounds checks
//! (a malformed one is skipped, never a panic).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use shunt_stack::Mac;
use shunt_stack::iface::neighbor::ExternalNeighbor;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_GETNEIGH: u16 = 30;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u32 = 254;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;

const NUD_INCOMPLETE: u16 = 0x01;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_FAILED: u16 = 0x20;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
const NTF_USE: u8 = 0x01;

/// `RTMGRP_NEIGH`: neighbour notifications of both families.
const RTMGRP_NEIGH: u32 = 0x4;

fn af(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn ip_of(family: u8, b: &[u8]) -> Option<IpAddr> {
    match (i32::from(family), b.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        (libc::AF_INET6, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

fn open(groups: u32) -> Result<OwnedFd, String> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("netlink socket: {e}"))?;
    rustix::net::bind(&fd, &SocketAddrNetlink::new(0, groups))
        .map_err(|e| format!("netlink bind: {e}"))?;
    Ok(fd)
}

/// One request: header then `body`.
fn request(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

/// Append one route attribute (padded to 4 bytes).
fn attr(m: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    m.extend_from_slice(&(len as u16).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(data);
    m.resize(m.len() + ((4 - len % 4) % 4), 0);
}

/// The messages of one datagram: (type, payload).
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    core::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(buf[..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let body = &buf[NLMSG_HDRLEN..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((ty, body))
    })
}

/// The attributes after a fixed header of `fixed` bytes: (type, data).
fn attrs(body: &[u8], fixed: usize) -> impl Iterator<Item = (u16, &[u8])> {
    let mut buf = body.get(fixed..).unwrap_or(&[]);
    core::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        if len < 4 || len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        let data = &buf[4..len];
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some((ty, data))
    })
}

/// A dump on a fresh socket: every message of type `want`, until DONE
/// (bounded by a 2 s receive timeout).
fn dump(ty: u16, body: &[u8], want: u16, mut f: impl FnMut(&[u8])) -> Result<(), String> {
    let fd = open(0)?;
    let _ = rustix::net::sockopt::set_socket_timeout(
        &fd,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_secs(2)),
    );
    let req = request(ty, NLM_F_DUMP, 1, body);
    rustix::net::send(&fd, &req, SendFlags::empty()).map_err(|e| format!("netlink: {e}"))?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty()) {
            Ok((n, _)) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("netlink dump: {e}")),
        };
        for (t, b) in messages(&buf[..n.min(buf.len())]) {
            match t {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = b
                        .get(..4)
                        .map_or(0, |c| i32::from_ne_bytes(c.try_into().unwrap_or([0; 4])));
                    return Err(format!("netlink dump: errno {}", -code));
                }
                t if t == want => f(b),
                _ => {}
            }
        }
    }
}

/// The kernel's addresses on `ifindex` with their prefixes (IPv4 first).
pub fn addresses(ifindex: i32) -> Result<Vec<(IpAddr, u8)>, String> {
    let mut out = Vec::new();
    // struct ifaddrmsg: family, prefixlen, flags, scope, index.
    dump(RTM_GETADDR, &[0u8; 8], RTM_NEWADDR, |b| {
        let Some(h) = b.get(..8) else { return };
        if i32::from_ne_bytes([h[4], h[5], h[6], h[7]]) != ifindex {
            return;
        }
        let (family, prefix) = (h[0], h[1]);
        let mut addr = None;
        let mut local = None;
        for (t, d) in attrs(b, 8) {
            match t {
                IFA_ADDRESS => addr = ip_of(family, d),
                IFA_LOCAL => local = ip_of(family, d),
                _ => {}
            }
        }
        // IFA_LOCAL is the interface's own address (IFA_ADDRESS the
        // peer's on a point-to-point link).
        if let Some(a) = local.or(addr) {
            out.push((a, prefix));
        }
    })?;
    out.sort_by_key(|(a, _)| a.is_ipv6());
    Ok(out)
}

/// The kernel's default gateways through `ifindex` (main table).
pub fn gateways(ifindex: i32) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol,
    // scope, type, flags (u32).
    dump(RTM_GETROUTE, &[0u8; 12], RTM_NEWROUTE, |b| {
        let Some(h) = b.get(..12) else { return };
        let (family, dst_len, mut table) = (h[0], h[1], u32::from(h[4]));
        if dst_len != 0 {
            return;
        }
        let (mut oif, mut gw) = (None, None);
        for (t, d) in attrs(b, 12) {
            match t {
                RTA_OIF if d.len() == 4 => oif = Some(i32::from_ne_bytes([d[0], d[1], d[2], d[3]])),
                RTA_GATEWAY => gw = ip_of(family, d),
                RTA_TABLE if d.len() == 4 => table = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]),
                _ => {}
            }
        }
        if table == RT_TABLE_MAIN
            && oif == Some(ifindex)
            && let Some(g) = gw
            && !out.contains(&g)
        {
            out.push(g);
        }
    })?;
    Ok(out)
}

/// What a neighbour message says, for `ifindex`.
fn neighbor(ty: u16, b: &[u8], ifindex: i32) -> Option<(IpAddr, ExternalNeighbor)> {
    // struct ndmsg: family, pad, pad16, ifindex (i32), state (u16),
    // flags, type.
    let h = b.get(..12)?;
    if i32::from_ne_bytes([h[4], h[5], h[6], h[7]]) != ifindex {
        return None;
    }
    let family = h[0];
    let state = u16::from_ne_bytes([h[8], h[9]]);
    let (mut dst, mut mac) = (None, None);
    for (t, d) in attrs(b, 12) {
        match t {
            NDA_DST => dst = ip_of(family, d),
            NDA_LLADDR if d.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(d);
                mac = Some(Mac(m));
            }
            _ => {}
        }
    }
    let dst = dst?;
    if ty == RTM_DELNEIGH {
        return Some((dst, ExternalNeighbor::Removed));
    }
    let report = match (state, mac) {
        (s, Some(m)) if s & NUD_REACHABLE != 0 => ExternalNeighbor::Reachable(m),
        (s, Some(m)) if s & (NUD_STALE | NUD_DELAY | NUD_PROBE) != 0 => ExternalNeighbor::Stale(m),
        (s, Some(m)) if s & (NUD_PERMANENT | NUD_NOARP) != 0 => ExternalNeighbor::Permanent(m),
        (s, _) if s & NUD_FAILED != 0 => ExternalNeighbor::Failed,
        // Incomplete (resolution under way) or no state: nothing yet.
        (s, _) if s & NUD_INCOMPLETE != 0 => return None,
        _ => return None,
    };
    Some((dst, report))
}

/// The kernel's neighbour table of one interface: notifications in, and
/// resolution requests out.
pub struct Neighbors {
    fd: OwnedFd,
    ifindex: i32,
    seq: u32,
    buf: Vec<u8>,
    /// The notification socket overflowed: dump again.
    lost: bool,
    /// A resolution request failed (said once).
    refused: bool,
}

impl Neighbors {
    /// Subscribe to the neighbour notifications of `ifindex`; the socket
    /// is non-blocking and given to `place` (shunt's high fd range).
    pub fn open(
        ifindex: i32,
        place: impl FnOnce(&OwnedFd) -> Option<OwnedFd>,
    ) -> Result<Neighbors, String> {
        let fd = open(RTMGRP_NEIGH)?;
        let fd = place(&fd).ok_or("cannot place the netlink socket")?;
        rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| format!("netlink: {e}"))?;
        // Room for a burst of notifications (an overflow costs a dump).
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
        Ok(Neighbors {
            fd,
            ifindex,
            seq: 1,
            buf: vec![0u8; 64 << 10],
            lost: false,
            refused: false,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Every entry of the interface now.
    pub fn dump(&self, mut f: impl FnMut(IpAddr, ExternalNeighbor)) -> Result<(), String> {
        let ifindex = self.ifindex;
        dump(RTM_GETNEIGH, &[0u8; 12], RTM_NEWNEIGH, |b| {
            if let Some((a, r)) = neighbor(RTM_NEWNEIGH, b, ifindex) {
                f(a, r);
            }
        })
    }

    /// The notifications that arrived (non-blocking). After an overflow
    /// the table is dumped again.
    pub fn drain(&mut self, mut f: impl FnMut(IpAddr, ExternalNeighbor)) {
        for _ in 0..64 {
            let n = match rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::NOBUFS) => {
                    self.lost = true;
                    continue;
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break,
            };
            let n = n.min(self.buf.len());
            for (t, b) in messages(&self.buf[..n]) {
                if (t == RTM_NEWNEIGH || t == RTM_DELNEIGH)
                    && let Some((a, r)) = neighbor(t, b, self.ifindex)
                {
                    f(a, r);
                } else if t == NLMSG_ERROR
                    && let Some(c) = b.get(..4)
                    && let Ok(c) = <[u8; 4]>::try_from(c)
                    && i32::from_ne_bytes(c) != 0
                    && !self.refused
                {
                    // A resolution request refused (EPERM without
                    // CAP_NET_ADMIN when the socket was opened): packets
                    // to unknown neighbours then wait for the kernel to
                    // resolve them for its own traffic, or fail.
                    self.refused = true;
                    crate::log!(
                        Warn,
                        "the kernel refuses neighbour resolution requests (errno {})",
                        -i32::from_ne_bytes(c)
                    );
                }
            }
        }
        if core::mem::take(&mut self.lost) {
            let _ = self.dump(&mut f);
        }
    }

    /// Ask the kernel to resolve `addr` on the interface (as if it had a
    /// packet for it); its verdict arrives as a notification.
    pub fn resolve(&mut self, addr: IpAddr) -> Result<(), rustix::io::Errno> {
        let mut body = Vec::with_capacity(32);
        body.push(af(&addr));
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(&self.ifindex.to_ne_bytes());
        // State NONE: a new entry starts resolution (INCOMPLETE); an
        // existing one is only "used" (a stale one is re-verified).
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.push(NTF_USE);
        body.push(0);
        match addr {
            IpAddr::V4(a) => attr(&mut body, NDA_DST, &a.octets()),
            IpAddr::V6(a) => attr(&mut body, NDA_DST, &a.octets()),
        }
        self.seq = self.seq.wrapping_add(1);
        let req = request(RTM_NEWNEIGH, NLM_F_CREATE, self.seq, &body);
        rustix::net::send(self.fd.as_fd(), &req, SendFlags::DONTWAIT).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndmsg(family: u8, ifindex: i32, state: u16, dst: &[u8], mac: Option<[u8; 6]>) -> Vec<u8> {
        let mut b = vec![family, 0, 0, 0];
        b.extend_from_slice(&ifindex.to_ne_bytes());
        b.extend_from_slice(&state.to_ne_bytes());
        b.extend_from_slice(&[0, 0]);
        attr(&mut b, NDA_DST, dst);
        if let Some(m) = mac {
            attr(&mut b, NDA_LLADDR, &m);
        }
        b
    }

    #[test]
    fn neighbour_messages_map_to_reports() {
        let m = [2, 0, 0, 0, 0, 2];
        let b = ndmsg(
            libc::AF_INET as u8,
            3,
            NUD_REACHABLE,
            &[192, 0, 2, 2],
            Some(m),
        );
        assert_eq!(
            neighbor(RTM_NEWNEIGH, &b, 3),
            Some((
                "192.0.2.2".parse().unwrap(),
                ExternalNeighbor::Reachable(Mac(m))
            ))
        );
        assert_eq!(neighbor(RTM_NEWNEIGH, &b, 4), None, "other interface");
        let b = ndmsg(libc::AF_INET as u8, 3, NUD_DELAY, &[192, 0, 2, 2], Some(m));
        assert_eq!(
            neighbor(RTM_NEWNEIGH, &b, 3).unwrap().1,
            ExternalNeighbor::Stale(Mac(m))
        );
        let b = ndmsg(libc::AF_INET as u8, 3, NUD_FAILED, &[192, 0, 2, 2], None);
        assert_eq!(
            neighbor(RTM_NEWNEIGH, &b, 3).unwrap().1,
            ExternalNeighbor::Failed
        );
        let b = ndmsg(
            libc::AF_INET as u8,
            3,
            NUD_INCOMPLETE,
            &[192, 0, 2, 2],
            None,
        );
        assert_eq!(neighbor(RTM_NEWNEIGH, &b, 3), None);
        let v6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let b = ndmsg(libc::AF_INET6 as u8, 3, NUD_STALE, &v6.octets(), Some(m));
        assert_eq!(
            neighbor(RTM_DELNEIGH, &b, 3).unwrap(),
            (IpAddr::V6(v6), ExternalNeighbor::Removed)
        );
    }

    #[test]
    fn truncated_messages_are_skipped() {
        let b = ndmsg(
            libc::AF_INET as u8,
            3,
            NUD_REACHABLE,
            &[192, 0, 2, 2],
            Some([1; 6]),
        );
        let msg = request(RTM_NEWNEIGH, 0, 1, &b);
        for cut in 0..msg.len() {
            for (t, body) in messages(&msg[..cut]) {
                let _ = neighbor(t, body, 3);
            }
        }
        let mut bad = msg.clone();
        bad[NLMSG_HDRLEN + 12] = 200; // an attribute longer than the message
        for (t, body) in messages(&bad) {
            assert_eq!(neighbor(t, body, 3), None);
        }
    }

    #[test]
    fn this_namespace_has_loopback_addresses() {
        // Index 1 is `lo` in every namespace.
        let a = addresses(1).expect("RTM_GETADDR dump");
        assert!(a.contains(&("127.0.0.1".parse().unwrap(), 8)), "{a:?}");
    }
}
