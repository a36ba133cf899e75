//! Socket names between the program and shunt: `sockaddr_in` and
//! `sockaddr_in6` read as Linux's inet and inet6 code check them (the same
//! errno for the same mistake), and written back as Linux's
//! `move_addr_to_user` does (truncated, the full length returned).
//!
//! An IPv6 socket speaks only `sockaddr_in6`: IPv4 peers of a dual-stack
//! socket appear v4-mapped (`::ffff:a.b.c.d`), and a link-local name
//! carries the interface's index as its scope id.

use core::ffi::c_int;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use libc::{sockaddr, socklen_t};

use crate::socket::{Errno, SysResult};

/// `SIN6_LEN_RFC2133`: the shortest `sockaddr_in6` Linux takes (without
/// the scope id).
const SIN6_LEN_RFC2133: usize = 24;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddrUse {
    Bind,
    Connect,
    /// connect(2) on a UDP socket (an IPv6 one also takes AF_INET).
    ConnectDgram,
    Send,
}

/// Whether `a` is an IPv6 link-local unicast address (`fe80::/10`), the
/// only scope Linux checks the scope id of.
pub fn is_link_local6(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The address as IPv4 when it is IPv4 or v4-mapped IPv6.
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => a,
        },
        a => a,
    }
}

/// A name the program passed to a socket of family `v6` (AF_INET6) or
/// AF_INET, checked for `how` as Linux does. `Ok(None)`: AF_UNSPEC on
/// connect (dissolve the association) or on an IPv6 sendto (no name).
///
/// An AF_INET name given to an IPv6 UDP socket's connect or sendto is
/// served as Linux does (the IPv4 path of a dual-stack socket): it comes
/// back v4-mapped.
///
/// # Safety
/// `addr` null or the program's pointer of `len` bytes.
pub unsafe fn read(
    addr: *const sockaddr,
    len: socklen_t,
    how: AddrUse,
    v6: bool,
) -> SysResult<Option<SocketAddr>> {
    if (len as i32) < 0 || len as usize > core::mem::size_of::<libc::sockaddr_storage>() {
        return Err(Errno::INVAL);
    }
    if addr.is_null() && len > 0 {
        return Err(Errno::FAULT);
    }
    let family = || {
        // SAFETY: the caller checked that the family's two bytes are there.
        c_int::from(unsafe { core::ptr::read_unaligned(addr.cast::<libc::sa_family_t>()) })
    };
    let connect = matches!(how, AddrUse::Connect | AddrUse::ConnectDgram);
    if connect || (v6 && how == AddrUse::Send) {
        if (len as usize) < 2 {
            return Err(Errno::INVAL);
        }
        if family() == libc::AF_UNSPEC {
            return Ok(None);
        }
    }
    if !v6 {
        // SAFETY: per the contract.
        return unsafe { read_v4(addr, len, how) }.map(|a| a.map(SocketAddr::V4));
    }
    if matches!(how, AddrUse::Send | AddrUse::ConnectDgram) && family() == libc::AF_INET {
        // SAFETY: per the contract.
        let a = unsafe { read_v4(addr, len, how) }?;
        return Ok(
            a.map(|a| SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0)))
        );
    }
    if (len as usize) < SIN6_LEN_RFC2133 {
        return Err(Errno::INVAL);
    }
    let mut sin6: libc::sockaddr_in6 = {
        // SAFETY: sockaddr_in6 is plain data; zero is valid.
        unsafe { core::mem::zeroed() }
    };
    let n = (len as usize).min(core::mem::size_of::<libc::sockaddr_in6>());
    // SAFETY: `n` bytes of the program's name into our zeroed struct (a
    // name without the scope id leaves it 0, as Linux reads it).
    unsafe {
        core::ptr::copy_nonoverlapping(
            addr.cast::<u8>(),
            (&mut sin6 as *mut libc::sockaddr_in6).cast::<u8>(),
            n,
        )
    };
    if c_int::from(sin6.sin6_family) != libc::AF_INET6 {
        return Err(if how == AddrUse::Send {
            Errno::INVAL
        } else {
            Errno::AFNOSUPPORT
        });
    }
    let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
    // Linux keeps the scope id of link-local (and multicast link-scope)
    // names only; other names ignore it.
    let scope = if is_link_local6(&ip) || (ip.is_multicast() && ip.segments()[0] & 0xf == 2) {
        sin6.sin6_scope_id
    } else {
        0
    };
    Ok(Some(SocketAddr::V6(SocketAddrV6::new(
        ip,
        u16::from_be(sin6.sin6_port),
        u32::from_be(sin6.sin6_flowinfo),
        scope,
    ))))
}

/// A `sockaddr_in`, checked as Linux's inet code does.
///
/// # Safety
/// As [`read`].
unsafe fn read_v4(
    addr: *const sockaddr,
    len: socklen_t,
    how: AddrUse,
) -> SysResult<Option<SocketAddrV4>> {
    if (len as usize) < core::mem::size_of::<libc::sockaddr_in>() {
        return Err(Errno::INVAL);
    }
    // SAFETY: a sockaddr_in's worth of bytes (read unaligned).
    let sin: libc::sockaddr_in = unsafe { core::ptr::read_unaligned(addr.cast()) };
    let a = SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
        u16::from_be(sin.sin_port),
    );
    match c_int::from(sin.sin_family) {
        libc::AF_INET => Ok(Some(a)),
        libc::AF_UNSPEC if how == AddrUse::Send => Ok(Some(a)),
        libc::AF_UNSPEC if how == AddrUse::Bind && a.ip().is_unspecified() => Ok(Some(a)),
        _ => Err(Errno::AFNOSUPPORT),
    }
}

pub fn sin_bytes(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The name an IPv6 socket reports for `a`: IPv4 v4-mapped; a link-local
/// address scoped to `ifindex` (shunt's interface) unless it has a scope.
pub fn to_v6(a: SocketAddr, ifindex: u32) -> SocketAddrV6 {
    match a {
        SocketAddr::V4(a) => SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
        SocketAddr::V6(a) => {
            let scope = if a.scope_id() == 0 && is_link_local6(a.ip()) {
                ifindex
            } else {
                a.scope_id()
            };
            SocketAddrV6::new(*a.ip(), a.port(), a.flowinfo(), scope)
        }
    }
}

/// The name an IPv4 socket reports for `a`.
pub fn to_v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => SocketAddrV4::new(
            a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
            a.port(),
        ),
    }
}

/// `struct in6_pktinfo` (IPV6_PKTINFO) for a datagram to `dst` (an IPv4
/// one v4-mapped, as Linux reports it on a dual-stack socket).
pub fn in6_pktinfo(dst: IpAddr, ifindex: u32) -> [u8; 20] {
    let a = match dst {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut b = [0u8; 20];
    b[..16].copy_from_slice(&a.octets());
    b[16..].copy_from_slice(&ifindex.to_ne_bytes());
    b
}

pub fn sin6_bytes(a: SocketAddrV6) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: a.port().to_be(),
        sin6_flowinfo: a.flowinfo().to_be(),
        sin6_addr: libc::in6_addr {
            s6_addr: a.ip().octets(),
        },
        sin6_scope_id: a.scope_id(),
    }
}

/// Write `a` as a socket of family `v6` names it (see [`to_v6`]), as
/// Linux's move_addr_to_user: truncated to `*len`, the full length back in
/// `*len`.
///
/// # Safety
/// The program's pointers.
pub unsafe fn write(
    addr: *mut sockaddr,
    len: *mut socklen_t,
    a: SocketAddr,
    v6: bool,
    ifindex: u32,
) -> SysResult<()> {
    if v6 {
        let b = sin6_bytes(to_v6(a, ifindex));
        // SAFETY: sockaddr_in6 is plain data; the program's pointers.
        unsafe { write_bytes(addr, len, as_bytes(&b)) }
    } else {
        let b = sin_bytes(to_v4(a));
        // SAFETY: as above.
        unsafe { write_bytes(addr, len, as_bytes(&b)) }
    }
}

fn as_bytes<T>(v: &T) -> &[u8] {
    // SAFETY: only used with sockaddr_in and sockaddr_in6, plain data
    // without padding.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
}

/// # Safety
/// The program's pointers.
unsafe fn write_bytes(addr: *mut sockaddr, len: *mut socklen_t, b: &[u8]) -> SysResult<()> {
    // SAFETY: passed on; a name reports its whole length, as Linux.
    unsafe { copy_out(addr.cast(), len, b, true) }
}

/// Copy `b` to the program's buffer `dst` of `*len` bytes (truncated, as
/// Linux), then store in `*len` the whole length (`full`: socket names)
/// or what was copied (option values).
///
/// # Safety
/// The program's pointers.
pub(crate) unsafe fn copy_out(
    dst: *mut u8,
    len: *mut socklen_t,
    b: &[u8],
    full: bool,
) -> SysResult<()> {
    if len.is_null() {
        return Err(Errno::FAULT);
    }
    // SAFETY: the program's non-null pointer.
    let l = unsafe { len.read_unaligned() } as i32;
    if l < 0 {
        return Err(Errno::INVAL);
    }
    let n = (l as usize).min(b.len());
    if n > 0 {
        if dst.is_null() {
            return Err(Errno::FAULT);
        }
        // SAFETY: `n` bytes of the program's buffer.
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), dst, n) };
    }
    let reported = if full { b.len() } else { n };
    // SAFETY: as above.
    unsafe { len.write_unaligned(reported as socklen_t) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(b: &[u8], how: AddrUse, v6: bool) -> SysResult<Option<SocketAddr>> {
        // SAFETY: our buffer of b.len() bytes.
        unsafe { read(b.as_ptr().cast(), b.len() as socklen_t, how, v6) }
    }

    fn sin6(ip: &str, port: u16, flow: u32, scope: u32) -> Vec<u8> {
        let s = sin6_bytes(SocketAddrV6::new(ip.parse().unwrap(), port, flow, scope));
        as_bytes(&s).to_vec()
    }

    #[test]
    fn v6_names_are_checked_as_linux() {
        let b = sin6("2001:db8::1", 80, 7, 5);
        let a = rd(&b, AddrUse::Bind, true).unwrap().unwrap();
        // A global address ignores its scope id; the flow label stays.
        assert_eq!(
            a,
            SocketAddr::V6(SocketAddrV6::new("2001:db8::1".parse().unwrap(), 80, 7, 0))
        );
        // Link-local keeps it.
        let b = sin6("fe80::1", 80, 0, 5);
        let SocketAddr::V6(a) = rd(&b, AddrUse::Connect, true).unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(a.scope_id(), 5);
        // The RFC 2133 length (no scope id) is accepted, shorter is not.
        assert!(rd(&b[..24], AddrUse::Bind, true).unwrap().is_some());
        assert_eq!(rd(&b[..23], AddrUse::Bind, true), Err(Errno::INVAL));
        // A sockaddr_in on an IPv6 socket's bind: EINVAL (too short).
        let v4 = as_bytes(&sin_bytes("192.0.2.1:7".parse().unwrap())).to_vec();
        assert_eq!(rd(&v4, AddrUse::Bind, true), Err(Errno::INVAL));
        // ... and on sendto: served v4-mapped.
        assert_eq!(
            rd(&v4, AddrUse::Send, true).unwrap(),
            Some("[::ffff:192.0.2.1]:7".parse().unwrap())
        );
        // AF_UNSPEC dissolves on connect.
        let mut u = b.clone();
        u[0] = 0;
        u[1] = 0;
        assert_eq!(rd(&u, AddrUse::Connect, true), Ok(None));
        assert_eq!(rd(&u, AddrUse::Bind, true), Err(Errno::AFNOSUPPORT));
    }

    #[test]
    fn names_written_as_linux() {
        let mut st = [0u8; 128];
        let mut len: socklen_t = 128;
        let a: SocketAddr = "192.0.2.7:9".parse().unwrap();
        // SAFETY: our buffers.
        unsafe { write(st.as_mut_ptr().cast(), &mut len, a, true, 3) }.unwrap();
        assert_eq!(len as usize, core::mem::size_of::<libc::sockaddr_in6>());
        let back = rd(&st[..len as usize], AddrUse::Connect, true)
            .unwrap()
            .unwrap();
        assert_eq!(back, "[::ffff:192.0.2.7]:9".parse().unwrap());
        // Link-local gets the interface's scope.
        let a: SocketAddr = "[fe80::2]:9".parse().unwrap();
        let mut len: socklen_t = 128;
        // SAFETY: our buffers.
        unsafe { write(st.as_mut_ptr().cast(), &mut len, a, true, 3) }.unwrap();
        let SocketAddr::V6(b) = rd(&st[..28], AddrUse::Connect, true).unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(b.scope_id(), 3);
        // Truncated: the full length comes back.
        let mut len: socklen_t = 4;
        // SAFETY: our buffers.
        unsafe { write(st.as_mut_ptr().cast(), &mut len, a, true, 3) }.unwrap();
        assert_eq!(len, 28);
        let mut len: socklen_t = 128;
        // SAFETY: our buffers.
        unsafe { write(st.as_mut_ptr().cast(), &mut len, a, false, 3) }.unwrap();
        assert_eq!(len as usize, core::mem::size_of::<libc::sockaddr_in>());
    }
}
