use super::*;
use crate::context::fake::FakeCore;
use crate::ip::{Ipv4, Ipv4Addr};
use crate::ip_layer::route::Route;
use crate::ip_layer::{AddrEntry, IpLayer};
use crate::time::Instant;

const OURS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const OURS2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 5);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const BCAST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 255);
const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

struct Ctx {
    core: FakeCore<(), UdpEvent<Ipv4>>,
    ip: IpLayer<Ipv4>,
    bufs: usize,
}

impl Default for Ctx {
    fn default() -> Ctx {
        let mut ip = IpLayer::new(5);
        ip.add_addr(AddrEntry::v4(OURS, 24).unwrap()).unwrap();
        ip.add_addr(AddrEntry::v4(OURS2, 24).unwrap()).unwrap();
        Ctx {
            core: FakeCore::default(),
            ip,
            bufs: 0,
        }
    }
}

impl RngContext for Ctx {
    fn random_u64(&mut self) -> u64 {
        self.core.rng.next_u64()
    }
}
impl CounterContext for Ctx {
    fn add_counter(&mut self, c: Counter, n: u64) {
        self.core.counters.add(c, n)
    }
}
impl EventContext<UdpEvent<Ipv4>> for Ctx {
    fn on_event(&mut self, e: UdpEvent<Ipv4>) {
        self.core.events.push(e)
    }
}
impl UdpContext<Ipv4> for Ctx {
    fn is_local(&self, a: &Ipv4Addr) -> bool {
        self.ip.is_local(a)
    }
    fn is_broadcast(&self, a: &Ipv4Addr) -> bool {
        self.ip.is_broadcast(a)
    }
    fn route(&self, dst: &Ipv4Addr, src: Option<Ipv4Addr>) -> Result<RouteResult<Ipv4>, Errno> {
        self.ip.route(dst, src, 1500, Instant::ZERO)
    }
    fn alloc_buf(&mut self, len: usize) -> Vec<u8> {
        self.bufs += 1;
        vec![0; len]
    }
    fn free_buf(&mut self, _: Vec<u8>) {
        self.bufs -= 1;
    }
}

fn setup() -> (UdpSockets<Ipv4>, Ctx) {
    (UdpSockets::default(), Ctx::default())
}

fn recv(
    u: &mut UdpSockets<Ipv4>,
    c: &mut Ctx,
    id: UdpSocketId,
) -> Result<(Vec<u8>, RecvMeta<Ipv4Addr>), Errno> {
    let mut buf = [0u8; 2048];
    let m = u.recv(c, id, &mut buf, RecvFlags::default())?;
    Ok((buf[..m.ret.min(2048)].to_vec(), m))
}

#[test]
fn bind_rules() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    assert_eq!(u.local_addr(a), Ok((ANY, 0)));
    assert_eq!(
        u.bind(&mut c, a, Ipv4Addr::new(203, 0, 113, 1), 53),
        Err(Errno::EADDRNOTAVAIL)
    );
    u.bind(&mut c, a, OURS, 53).unwrap();
    assert_eq!(u.bind(&mut c, a, OURS, 54), Err(Errno::EINVAL));
    let b = u.socket();
    assert_eq!(u.bind(&mut c, b, ANY, 53), Err(Errno::EADDRINUSE));
    assert_eq!(u.bind(&mut c, b, OURS, 53), Err(Errno::EADDRINUSE));
    // Another address on the same port is fine.
    u.bind(&mut c, b, OURS2, 53).unwrap();
    // Broadcast and multicast addresses may be bound.
    let d = u.socket();
    u.bind(&mut c, d, BCAST, 67).unwrap();
    let e = u.socket();
    u.bind(&mut c, e, Ipv4Addr::new(239, 1, 1, 1), 5000)
        .unwrap();
    // Port 0: ephemeral.
    let f = u.socket();
    u.bind(&mut c, f, ANY, 0).unwrap();
    let (_, p) = u.local_addr(f).unwrap();
    assert!((32768..=60999).contains(&p));
    // Closing frees the port.
    u.close(&mut c, a).unwrap();
    let g = u.socket();
    u.bind(&mut c, g, OURS, 53).unwrap();
    assert_eq!(u.local_addr(a), Err(Errno::EBADF), "stale handle");
}

#[test]
fn reuseaddr_and_reuseport() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    let b = u.socket();
    u.set_options(a, |o| o.reuseaddr = true).unwrap();
    u.bind(&mut c, a, ANY, 7000).unwrap();
    assert_eq!(u.bind(&mut c, b, ANY, 7000), Err(Errno::EADDRINUSE));
    u.set_options(b, |o| o.reuseaddr = true).unwrap();
    u.bind(&mut c, b, ANY, 7000).unwrap();
    // Most recently bound takes unicast.
    u.deliver(&mut c, PEER, 1, OURS, 7000, false, b"x");
    assert_eq!(u.queued(b), Ok(1));
    assert_eq!(u.queued(a), Ok(0));
    // Broadcast goes to both.
    u.deliver(&mut c, PEER, 1, BCAST, 7000, true, b"y");
    assert_eq!((u.queued(a), u.queued(b)), (Ok(1), Ok(2)));

    let x = u.socket();
    let y = u.socket();
    u.set_options(x, |o| o.reuseport = true).unwrap();
    u.set_options(y, |o| o.reuseport = true).unwrap();
    u.bind(&mut c, x, OURS, 7001).unwrap();
    u.bind(&mut c, y, OURS, 7001).unwrap();
    for p in 0..200 {
        u.deliver(&mut c, PEER, 1000 + p, OURS, 7001, false, b"z");
    }
    let (qx, qy) = (u.queued(x).unwrap(), u.queued(y).unwrap());
    assert_eq!(qx + qy, 200);
    assert!(qx > 30 && qy > 30, "spread by source: {qx} {qy}");
}

#[test]
fn demux_specific_before_wildcard_connected_before_unconnected() {
    let (mut u, mut c) = setup();
    let wild = u.socket();
    u.set_options(wild, |o| o.reuseaddr = true).unwrap();
    u.bind(&mut c, wild, ANY, 9000).unwrap();
    let spec = u.socket();
    u.set_options(spec, |o| o.reuseaddr = true).unwrap();
    u.bind(&mut c, spec, OURS, 9000).unwrap();
    let conn = u.socket();
    u.set_options(conn, |o| o.reuseaddr = true).unwrap();
    u.bind(&mut c, conn, OURS, 9000).unwrap();
    u.connect(&mut c, conn, Some((PEER, 53))).unwrap();
    assert_eq!(u.lookup(&PEER, 53, &OURS, 9000), Some(conn));
    assert_eq!(u.lookup(&PEER, 54, &OURS, 9000), Some(spec));
    assert_eq!(u.lookup(&PEER, 54, &OURS2, 9000), Some(wild));
    // A broadcast reaches the wildcard socket only (and not the connected
    // one, whose peer differs).
    u.deliver(
        &mut c,
        Ipv4Addr::new(192, 0, 2, 9),
        53,
        BCAST,
        9000,
        true,
        b"b",
    );
    assert_eq!(u.queued(wild), Ok(1));
    assert_eq!(u.queued(spec), Ok(0));
}

#[test]
fn connect_picks_source_and_autobinds_and_disconnects() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    u.connect(&mut c, a, Some((PEER, 53))).unwrap();
    let (addr, port) = u.local_addr(a).unwrap();
    assert_eq!(addr, OURS);
    assert!(port >= 32768);
    assert_eq!(u.peer_addr(a), Ok((PEER, 53)));
    // Only the peer is heard.
    u.deliver(&mut c, PEER, 53, OURS, port, false, b"ok");
    assert_eq!(
        u.deliver(&mut c, PEER, 54, OURS, port, false, b"no"),
        Delivery::NoSocket
    );
    // AF_UNSPEC: the automatic binding and address are forgotten.
    u.connect(&mut c, a, None).unwrap();
    assert_eq!(u.peer_addr(a), Err(Errno::ENOTCONN));
    assert_eq!(u.local_addr(a), Ok((ANY, 0)));
    // With an explicit bind they stay.
    let b = u.socket();
    u.bind(&mut c, b, ANY, 4000).unwrap();
    u.connect(&mut c, b, Some((PEER, 53))).unwrap();
    assert_eq!(u.local_addr(b), Ok((OURS, 4000)));
    u.connect(&mut c, b, None).unwrap();
    assert_eq!(u.local_addr(b), Ok((ANY, 4000)));
    // No route; broadcast without SO_BROADCAST.
    assert_eq!(
        u.connect(&mut c, b, Some((Ipv4Addr::new(203, 0, 113, 1), 1))),
        Err(Errno::ENETUNREACH)
    );
    assert_eq!(u.connect(&mut c, b, Some((BCAST, 1))), Err(Errno::EACCES));
    u.set_options(b, |o| o.broadcast = true).unwrap();
    u.connect(&mut c, b, Some((BCAST, 1))).unwrap();
}

#[test]
fn send_checks_in_linux_order() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    assert_eq!(
        u.prepare_send(&mut c, a, None, 10),
        Err(Errno::EDESTADDRREQ)
    );
    assert_eq!(
        u.prepare_send(&mut c, a, Some((PEER, 0)), 10),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        u.prepare_send(&mut c, a, Some((PEER, 9)), 65508),
        Err(Errno::EMSGSIZE)
    );
    let p = u.prepare_send(&mut c, a, Some((PEER, 9)), 65507).unwrap();
    assert!(p.fragment && !p.dont_fragment);
    assert_ne!(u.local_addr(a).unwrap().1, 0, "send autobinds");
    let p = u.prepare_send(&mut c, a, Some((PEER, 9)), 1472).unwrap();
    assert!(
        !p.fragment && p.dont_fragment,
        "DF when it fits (PMTUDISC_WANT)"
    );
    assert_eq!((p.src, p.ttl), (OURS, 64));
    let p = u.prepare_send(&mut c, a, Some((PEER, 9)), 1473).unwrap();
    assert!(p.fragment && !p.dont_fragment);
    u.set_options(a, |o| o.pmtudisc = PmtuDisc::Do).unwrap();
    assert_eq!(
        u.prepare_send(&mut c, a, Some((PEER, 9)), 1473),
        Err(Errno::EMSGSIZE)
    );
    u.set_options(a, |o| o.pmtudisc = PmtuDisc::Dont).unwrap();
    let p = u.prepare_send(&mut c, a, Some((PEER, 9)), 100).unwrap();
    assert!(!p.dont_fragment);
    assert_eq!(
        u.prepare_send(&mut c, a, Some((BCAST, 9)), 1),
        Err(Errno::EACCES)
    );
    assert_eq!(
        u.prepare_send(&mut c, a, Some((Ipv4Addr::new(8, 8, 8, 8), 9)), 1),
        Err(Errno::ENETUNREACH)
    );
    let p = u.prepare_send(&mut c, a, Some((Ipv4Addr::new(239, 1, 2, 3), 9)), 1);
    assert_eq!(p, Err(Errno::ENETUNREACH), "multicast needs a route");
    c.ip.routes.add(Route::default_via(PEER)).unwrap();
    let p = u
        .prepare_send(&mut c, a, Some((Ipv4Addr::new(239, 1, 2, 3), 9)), 1)
        .unwrap();
    assert_eq!(p.ttl, 1, "IP_MULTICAST_TTL");
    // Pending error first, then EPIPE.
    u.connect(&mut c, a, Some((PEER, 9))).unwrap();
    let local = u.local_addr(a).unwrap();
    u.deliver_error(local, (PEER, 9), Errno::ECONNREFUSED, true);
    u.shutdown(a, Shutdown::Write).unwrap();
    assert_eq!(u.prepare_send(&mut c, a, None, 1), Err(Errno::ECONNREFUSED));
    assert_eq!(u.prepare_send(&mut c, a, None, 1), Err(Errno::EPIPE));
}

#[test]
fn recv_truncation_peek_and_zero_length() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    u.bind(&mut c, a, ANY, 5000).unwrap();
    assert_eq!(recv(&mut u, &mut c, a).unwrap_err(), Errno::EAGAIN);
    u.deliver(&mut c, PEER, 1234, OURS, 5000, false, b"hello world");
    u.deliver(&mut c, PEER, 1234, OURS, 5000, false, b"");
    assert_eq!(u.next_len(a), Ok(11));
    let mut small = [0u8; 5];
    let peek = RecvFlags {
        peek: true,
        ..RecvFlags::default()
    };
    let m = u.recv(&mut c, a, &mut small, peek).unwrap();
    assert_eq!((m.ret, m.len, m.truncated), (5, 11, true));
    assert_eq!(&small, b"hello");
    let m = u
        .recv(
            &mut c,
            a,
            &mut small,
            RecvFlags {
                trunc: true,
                ..RecvFlags::default()
            },
        )
        .unwrap();
    assert_eq!(
        (m.ret, m.truncated, m.src, m.dst),
        (11, true, Some((PEER, 1234)), Some(OURS))
    );
    let (data, m) = recv(&mut u, &mut c, a).unwrap();
    assert_eq!((data.len(), m.ret, m.truncated), (0, 0, false));
    assert_eq!(recv(&mut u, &mut c, a).unwrap_err(), Errno::EAGAIN);
    assert_eq!(c.core.counters[Counter::UdpInDatagrams], 2);
    assert_eq!(c.bufs, 0);
}

#[test]
fn receive_buffer_limit() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    u.bind(&mut c, a, ANY, 5000).unwrap();
    u.set_options(a, |o| o.rcvbuf = 4000).unwrap();
    assert_eq!(u.options(a).unwrap().rcvbuf, 8000, "doubled");
    let payload = [0u8; 1000];
    let mut ok = 0;
    for _ in 0..20 {
        u.deliver(&mut c, PEER, 1, OURS, 5000, false, &payload);
        ok = u.queued(a).unwrap();
    }
    // 1768 each: admitted while what is queued is at most 8000.
    assert_eq!(ok, 5);
    assert_eq!(c.core.counters[Counter::UdpRcvbufErrors], 15);
    assert_eq!(c.core.counters[Counter::UdpInErrors], 15);
    u.set_options(a, |o| o.rcvbuf = 1).unwrap();
    assert_eq!(u.options(a).unwrap().rcvbuf, MIN_RCVBUF);
    // Always room for one.
    let b = u.socket();
    u.bind(&mut c, b, ANY, 5001).unwrap();
    u.set_options(b, |o| o.rcvbuf = 1).unwrap();
    u.deliver(&mut c, PEER, 1, OURS, 5001, false, &[0u8; 60000]);
    assert_eq!(u.queued(b), Ok(1));
}

#[test]
fn icmp_error_only_on_connected_and_once() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    u.bind(&mut c, a, ANY, 6000).unwrap();
    assert_eq!(
        u.deliver_error((OURS, 6000), (PEER, 53), Errno::ECONNREFUSED, true),
        Some(a)
    );
    assert!(!u.readiness(a).unwrap().error());
    u.connect(&mut c, a, Some((PEER, 53))).unwrap();
    u.deliver_error((OURS, 6000), (PEER, 53), Errno::EHOSTUNREACH, false);
    assert!(
        !u.readiness(a).unwrap().error(),
        "soft errors are not reported"
    );
    u.deliver_error((OURS, 6000), (PEER, 53), Errno::ECONNREFUSED, true);
    u.deliver(&mut c, PEER, 53, OURS, 6000, false, b"late");
    let r = u.readiness(a).unwrap();
    assert!(r.error() && r.readable());
    assert_eq!(recv(&mut u, &mut c, a).unwrap_err(), Errno::ECONNREFUSED);
    assert!(!u.readiness(a).unwrap().error());
    assert_eq!(recv(&mut u, &mut c, a).unwrap().0, b"late");
    // An error for another peer finds no socket.
    assert_eq!(
        u.deliver_error((OURS, 6000), (PEER, 54), Errno::ECONNREFUSED, true),
        None
    );
    u.deliver_error((OURS, 6000), (PEER, 53), Errno::ECONNREFUSED, true);
    assert_eq!(u.take_error(a), Ok(Some(Errno::ECONNREFUSED)));
    assert_eq!(u.take_error(a), Ok(None));
}

#[test]
fn shutdown_and_readiness() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    assert_eq!(
        u.readiness(a).unwrap(),
        Readiness(Readiness::OUT | Readiness::WRNORM | Readiness::WRBAND)
    );
    assert_eq!(u.shutdown(a, Shutdown::Read), Err(Errno::ENOTCONN));
    let r = u.readiness(a).unwrap();
    assert!(r.contains(Readiness::RDHUP | Readiness::IN));
    assert!(!r.contains(Readiness::HUP));
    let blocking = RecvFlags {
        blocking: true,
        ..RecvFlags::default()
    };
    let mut buf = [0u8; 4];
    assert_eq!(u.recv(&mut c, a, &mut buf, blocking).unwrap().ret, 0);
    assert_eq!(
        u.recv(&mut c, a, &mut buf, RecvFlags::default()),
        Err(Errno::EAGAIN)
    );
    let _ = u.shutdown(a, Shutdown::Write);
    assert!(u.readiness(a).unwrap().contains(Readiness::HUP));
    assert_eq!(
        format!("{:?}", Readiness(Readiness::IN | Readiness::ERR)),
        "IN|ERR"
    );
}

#[test]
fn events_describe_associations() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    u.bind(&mut c, a, ANY, 7).unwrap();
    u.connect(&mut c, a, Some((PEER, 7))).unwrap();
    u.connect(&mut c, a, None).unwrap();
    u.close(&mut c, a).unwrap();
    assert_eq!(
        c.core.events,
        vec![
            UdpEvent::Bound {
                id: a,
                local: (ANY, 7)
            },
            UdpEvent::Connected {
                id: a,
                local: (OURS, 7),
                remote: (PEER, 7)
            },
            UdpEvent::Disconnected { id: a },
            UdpEvent::Closed { id: a },
        ]
    );
}

#[test]
fn each_datagram_keeps_its_tos_ttl_and_arrival() {
    let (mut u, mut c) = setup();
    let a = u.socket();
    u.bind(&mut c, a, ANY, 5002).unwrap();
    let first = RxInfo {
        tos: 0x28,
        ttl: 64,
        at: crate::time::Instant::from_millis(10),
    };
    let second = RxInfo {
        tos: 0x10,
        ttl: 3,
        at: crate::time::Instant::from_millis(25),
    };
    u.deliver_with(&mut c, (PEER, 9), (OURS, 5002), false, b"a", first);
    u.deliver_with(&mut c, (PEER, 9), (OURS, 5002), false, b"b", second);
    let mut b = [0u8; 4];
    let peek = RecvFlags {
        peek: true,
        ..RecvFlags::default()
    };
    assert_eq!(u.recv(&mut c, a, &mut b, peek).unwrap().info, first);
    assert_eq!(
        u.recv(&mut c, a, &mut b, RecvFlags::default())
            .unwrap()
            .info,
        first
    );
    assert_eq!(
        u.recv(&mut c, a, &mut b, RecvFlags::default())
            .unwrap()
            .info,
        second
    );
}
