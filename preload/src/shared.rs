//! Shared-address mode (`SHUNT_SHARE_ADDR=1`): shunt serves the program on
//! the kernel's own address, next to the kernel.
//!
//! - **Ports.** The XDP program steers TCP/UDP frames by (protocol, local
//!   port) (ring::xdp, `Mode::Shared`). Every port a shunt socket uses is
//!   backed by a kernel socket of the same protocol bound to it (bound,
//!   never listening or connected), so the kernel neither hands it out
//!   nor lets another program bind it: an ephemeral port is the one the
//!   kernel picks for that backing socket, an explicit one fails with the
//!   kernel's errno (EADDRINUSE) when the kernel or another program holds
//!   it. The backing socket is AF_INET6 dual-stack when the kernel has
//!   IPv6, as the steering is by port whatever the family. Counted per
//!   (protocol, port): a listener and its accepted connections, or a
//!   SO_REUSEPORT group, share one; the last release closes it and stops
//!   the steering.
//! - **Neighbours.** ARP and neighbour discovery reach the kernel, not
//!   shunt: the stack runs with external neighbours (it never solicits)
//!   and the kernel's table (crate::netlink) feeds it; a neighbour the
//!   stack wants is asked of the kernel, whose answer comes back as a
//!   notification the progress thread reads.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
use shunt_ring::xdp::{Proto, XdpSteering};
use shunt_stack::tcp::SocketId as TcpId;
use shunt_stack::time::Instant;
use shunt_stack::{Stack, UdpHandle};

use crate::netlink::Neighbors;

/// A stack socket that holds a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Tcp(TcpId),
    Udp(UdpHandle),
}

impl Owner {
    fn proto(self) -> Proto {
        match self {
            Owner::Tcp(_) => Proto::Tcp,
            Owner::Udp(_) => Proto::Udp,
        }
    }
}

struct Backing {
    fd: OwnedFd,
    refs: u32,
}

/// The options of the program's socket the backing socket copies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reuse {
    pub addr: bool,
    pub port: bool,
}

pub struct Shared {
    neigh: Neighbors,
    wants: Vec<IpAddr>,
    ports: HashMap<(Proto, u16), Backing>,
    owners: HashMap<Owner, (Proto, u16)>,
    /// Ports of closed TCP sockets: the stack may still use them on the
    /// wire (FIN_WAIT, TIME_WAIT) until [`Shared::sweep`] finds them gone.
    lingering: Vec<(Proto, u16)>,
    last_sweep: Option<std::time::Instant>,
}

impl Shared {
    /// Subscribe to the kernel's neighbour table of `ifindex` and load it
    /// into `stack`. `place` moves an fd into shunt's high range.
    pub fn open(
        ifindex: i32,
        stack: &mut Stack,
        now: Instant,
        place: impl FnOnce(&OwnedFd) -> Option<OwnedFd>,
    ) -> Result<Shared, String> {
        // Subscribed before the dump: a change in between arrives as a
        // notification after the dump's (older) view.
        let neigh = Neighbors::open(ifindex, place)?;
        neigh.dump(|a, r| stack.set_external_neighbor(a, r, now))?;
        Ok(Shared {
            neigh,
            wants: Vec::new(),
            ports: HashMap::new(),
            owners: HashMap::new(),
            lingering: Vec::new(),
            last_sweep: None,
        })
    }

    /// The netlink socket the progress thread polls.
    pub fn netlink_fd(&self) -> RawFd {
        self.neigh.fd()
    }

    /// Apply the kernel's neighbour notifications to `stack`.
    pub fn on_netlink(&mut self, stack: &mut Stack, now: Instant) {
        self.neigh
            .drain(|a, r| stack.set_external_neighbor(a, r, now));
    }

    /// Ask the kernel to resolve what the stack waits for.
    pub fn ask(&mut self, stack: &mut Stack) {
        stack.drain_neighbor_wants(&mut self.wants);
        for a in self.wants.drain(..) {
            if let Err(e) = self.neigh.resolve(a) {
                crate::log!(Debug, "asking the kernel to resolve {a}: {e}");
            }
        }
    }

    /// The port `owner` holds, if any.
    pub fn port_of(&self, owner: Owner) -> Option<u16> {
        self.owners.get(&owner).map(|&(_, p)| p)
    }

    /// Reserve `port` (0: one the kernel picks) for `owner` and steer it
    /// to shunt. Returns the port.
    pub fn reserve(
        &mut self,
        steer: Option<&XdpSteering>,
        owner: Owner,
        port: u16,
        reuse: Reuse,
    ) -> Result<u16, Errno> {
        let proto = owner.proto();
        if let Some(&(_, p)) = self.owners.get(&owner) {
            // Already holds one (a second bind is the stack's EINVAL).
            return Ok(p);
        }
        if port != 0
            && let Some(b) = self.ports.get_mut(&(proto, port))
        {
            // Shunt's own sockets on one port: the stack decides whether
            // they may share it (SO_REUSEADDR/SO_REUSEPORT, a listener's
            // connections).
            b.refs += 1;
            self.owners.insert(owner, (proto, port));
            return Ok(port);
        }
        let fd = backing_socket(proto, port, reuse)?;
        let got = bound_port(&fd)?;
        let fd = crate::engine::high_internal(fd.as_fd()).ok_or(Errno::MFILE)?;
        if let Some(s) = steer
            && let Err(e) = s.add_port(proto, got)
        {
            crate::log!(Warn, "cannot steer port {got}: {e}");
            release_fd(fd);
            return Err(Errno::NOBUFS);
        }
        crate::log!(Debug, "reserved {proto:?} port {got}");
        self.ports.insert((proto, got), Backing { fd, refs: 1 });
        self.owners.insert(owner, (proto, got));
        Ok(got)
    }

    /// A second stack socket on `owner`'s port (an accepted connection on
    /// its listener's).
    pub fn share(&mut self, from: Owner, to: Owner) {
        if let Some(&key) = self.owners.get(&from)
            && let Some(b) = self.ports.get_mut(&key)
        {
            b.refs += 1;
            self.owners.insert(to, key);
        }
    }

    /// `owner` is closed: its port goes when nobody else holds it.
    pub fn release(&mut self, steer: Option<&XdpSteering>, owner: Owner) {
        if let Some(key) = self.owners.remove(&owner) {
            self.unref(steer, key);
        }
    }

    fn unref(&mut self, steer: Option<&XdpSteering>, key: (Proto, u16)) {
        let Some(b) = self.ports.get_mut(&key) else {
            return;
        };
        b.refs -= 1;
        if b.refs > 0 {
            return;
        }
        if let Some(b) = self.ports.remove(&key) {
            crate::log!(Debug, "released {:?} port {}", key.0, key.1);
            if let Some(s) = steer {
                let _ = s.remove_port(key.0, key.1);
            }
            release_fd(b.fd);
        }
    }

    /// The TCP socket `owner` is closed: its connection may live on in
    /// the stack (FIN_WAIT, TIME_WAIT), so its hold on the port stays
    /// until a [`Shared::sweep`] finds the port unused.
    pub fn linger(&mut self, owner: Owner) {
        if let Some(key) = self.owners.remove(&owner) {
            self.lingering.push(key);
        }
    }

    /// Whether a sweep is due (lingering ports, and none in the last
    /// second).
    pub fn sweep_due(&self) -> bool {
        !self.lingering.is_empty()
            && self
                .last_sweep
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1))
    }

    /// Drop the holds of lingering ports the stack no longer uses
    /// (`in_use`: the TCP ports in its table).
    pub fn sweep(&mut self, steer: Option<&XdpSteering>, in_use: &[u16]) {
        self.last_sweep = Some(std::time::Instant::now());
        let mut gone = Vec::new();
        self.lingering.retain(|&(p, port)| {
            let keep = p == Proto::Tcp && in_use.contains(&port);
            if !keep {
                gone.push((p, port));
            }
            keep
        });
        for key in gone {
            self.unref(steer, key);
        }
    }

    /// Ports held now (for tests and `shunt stat`).
    pub fn ports(&self) -> usize {
        self.ports.len()
    }
}

fn release_fd(fd: OwnedFd) {
    crate::fdtable::clear(fd.as_raw_fd());
    drop(fd);
}

/// A kernel socket of `proto` bound to the wildcard address and `port`
/// (dual-stack IPv6 when the kernel has IPv6).
fn backing_socket(proto: Proto, port: u16, reuse: Reuse) -> Result<OwnedFd, Errno> {
    let ty = match proto {
        Proto::Tcp => SocketType::STREAM,
        Proto::Udp => SocketType::DGRAM,
    };
    let (fd, v6) =
        match rustix::net::socket_with(AddressFamily::INET6, ty, SocketFlags::CLOEXEC, None) {
            Ok(fd) => (fd, true),
            Err(Errno::AFNOSUPPORT) => (
                rustix::net::socket_with(AddressFamily::INET, ty, SocketFlags::CLOEXEC, None)?,
                false,
            ),
            Err(e) => return Err(e),
        };
    if proto == Proto::Udp {
        // Datagrams from this host to the port reach it (the wire's go
        // to shunt): nobody reads them, so it keeps the smallest queue.
        let _ = sockopt::set_socket_recv_buffer_size(&fd, 0);
    }
    if reuse.addr {
        sockopt::set_socket_reuseaddr(&fd, true)?;
    }
    if reuse.port {
        sockopt::set_socket_reuseport(&fd, true)?;
    }
    let a = if v6 {
        sockopt::set_ipv6_v6only(&fd, false)?;
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    };
    rustix::net::bind(&fd, &a)?;
    Ok(fd)
}

fn bound_port(fd: &OwnedFd) -> Result<u16, Errno> {
    let a = rustix::net::getsockname(fd)?;
    SocketAddr::try_from(a)
        .map(|a| a.port())
        .map_err(|_| Errno::INVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_sockets_reserve_the_port_in_the_kernel() {
        let r = Reuse::default();
        let a = backing_socket(Proto::Tcp, 0, r).unwrap();
        let p = bound_port(&a).unwrap();
        assert_ne!(p, 0, "the kernel picked one");
        assert_eq!(
            backing_socket(Proto::Tcp, p, r).err(),
            Some(Errno::ADDRINUSE)
        );
        // A plain kernel socket of either family cannot take it either.
        let k = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        assert_eq!(
            rustix::net::bind(&k, &SocketAddr::from(([127, 0, 0, 1], p))),
            Err(Errno::ADDRINUSE)
        );
        drop(a);
        assert!(backing_socket(Proto::Tcp, p, r).is_ok(), "freed on close");
    }

    fn kernel_bind(ty: SocketType, port: u16) -> Result<(), Errno> {
        let k = rustix::net::socket(AddressFamily::INET, ty, None)?;
        rustix::net::bind(&k, &SocketAddr::from(([0, 0, 0, 0], port)))
    }

    #[test]
    fn a_port_is_held_until_its_last_user_goes() {
        let mut st = Stack::new(shunt_stack::StackConfig::new(shunt_stack::Mac([
            2, 0, 0, 0, 0, 1,
        ])));
        // Index 1 (`lo`) exists in every namespace.
        let mut sh =
            Shared::open(1, &mut st, Instant::ZERO, |fd| fd.try_clone().ok()).expect("netlink");
        let (a, b) = (Owner::Udp(st.udp_socket()), Owner::Udp(st.udp_socket()));
        let p = sh.reserve(None, a, 0, Reuse::default()).unwrap();
        assert_eq!(sh.port_of(a), Some(p));
        assert_eq!(kernel_bind(SocketType::DGRAM, p), Err(Errno::ADDRINUSE));
        assert_eq!(
            sh.reserve(None, b, p, Reuse::default()),
            Ok(p),
            "shunt's own share"
        );
        sh.release(None, a);
        assert_eq!(
            kernel_bind(SocketType::DGRAM, p),
            Err(Errno::ADDRINUSE),
            "b holds it"
        );
        sh.release(None, b);
        assert_eq!(sh.ports(), 0);
        assert_eq!(kernel_bind(SocketType::DGRAM, p), Ok(()));

        // A closed TCP socket's port stays while the stack uses it.
        let now = Instant::ZERO;
        let (l, c) = st.tcp(now, |t, _| {
            (
                t.socket(shunt_stack::tcp::Domain::V4),
                t.socket(shunt_stack::tcp::Domain::V4),
            )
        });
        let q = sh
            .reserve(None, Owner::Tcp(l), 0, Reuse::default())
            .unwrap();
        sh.share(Owner::Tcp(l), Owner::Tcp(c));
        sh.release(None, Owner::Tcp(l));
        sh.linger(Owner::Tcp(c));
        assert!(sh.sweep_due());
        sh.sweep(None, &[q]);
        assert!(!sh.sweep_due(), "at most once a second");
        assert_eq!(kernel_bind(SocketType::STREAM, q), Err(Errno::ADDRINUSE));
        sh.sweep(None, &[]);
        assert_eq!(sh.ports(), 0);
        assert_eq!(kernel_bind(SocketType::STREAM, q), Ok(()));
    }
}
