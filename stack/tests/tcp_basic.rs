//! Handshakes, data, closes, resets and the socket API between two TCP
//! layers on an in-memory wire with a fake clock.

mod tcp_harness;

use shunt_stack::tcp::{Domain, Errno, Poll, RecvFlags, SendFlags, SockOpt, TcpCounter, TcpState};
use shunt_stack::time::Duration;
use shunt_stack::wire::tcp::TcpFlags;
use tcp_harness::*;

fn cfg() -> shunt_stack::tcp::TcpConfig {
    shunt_stack::tcp::TcpConfig::default()
}

#[test]
fn handshake_options_and_small_exchange() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    let cap = net.take_capture();
    // SYN, SYN-ACK, ACK with Linux's options.
    let syn = cap[0].seg();
    assert_eq!(syn.flags(), TcpFlags::SYN);
    let o = syn.options().summary();
    assert_eq!(o.mss, Some(1460));
    assert_eq!(o.window_scale, Some(7));
    assert!(o.sack_permitted);
    assert!(o.timestamps.is_some());
    assert_eq!(syn.window(), 64240);
    let synack = cap[1].seg();
    assert_eq!(synack.flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.ack(), syn.seq() + 1);
    assert_eq!(cap[2].seg().flags(), TcpFlags::ACK);

    assert_eq!(net.a().tcp.get_option(c, SockOpt::MaxSeg), Ok(1448));
    let h = net.a();
    assert_eq!(
        h.tcp.send(&mut h.ctx, c, b"hello", SendFlags::default()),
        Ok(5)
    );
    net.run_for(Duration::from_millis(5));
    let h = net.b();
    assert!(h.tcp.poll(s).has(Poll::IN | Poll::RDNORM));
    let mut buf = [0u8; 64];
    assert_eq!(
        h.tcp
            .recv(&mut h.ctx, s, &mut buf, RecvFlags { peek: true }),
        Ok(5)
    );
    assert_eq!(
        h.tcp.recv(&mut h.ctx, s, &mut buf, RecvFlags::default()),
        Ok(5)
    );
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(
        h.tcp.recv(&mut h.ctx, s, &mut buf, RecvFlags::default()),
        Err(Errno::EAGAIN)
    );
    assert_eq!(
        h.tcp.peer_addr(s),
        Ok(sa(A, net.hosts[0].tcp.local_addr(c).unwrap().port))
    );
    let info = net.hosts[0].tcp.tcp_info(c, net.now).unwrap();
    assert_eq!(info.state, TcpState::Established as u8);
    assert_eq!(info.snd_mss, 1448);
    assert_eq!(info.options & 7, 7);
    assert!(info.rtt > 0);
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::ActiveOpens), 1);
    assert_eq!(net.hosts[1].ctx.count(TcpCounter::PassiveOpens), 1);
}

#[test]
fn orderly_close_and_time_wait_expiry() {
    let mut net = Net::new(cfg());
    let (_l, c, s) = connect_pair(&mut net, 80);
    let h = net.a();
    h.tcp.close(&mut h.ctx, c);
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.hosts[1].tcp.state(s), Ok(TcpState::CloseWait));
    let h = net.b();
    let mut buf = [0u8; 8];
    assert_eq!(
        h.tcp.recv(&mut h.ctx, s, &mut buf, RecvFlags::default()),
        Ok(0)
    );
    assert!(h.tcp.poll(s).has(Poll::IN | Poll::RDHUP | Poll::OUT));
    h.tcp.close(&mut h.ctx, s);
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.hosts[0].tcp.time_wait().len(), 1);
    assert_eq!(net.hosts[1].tcp.time_wait().len(), 0);
    assert_eq!(net.hosts[1].tcp.stats().connections, 0);
    net.run_for(Duration::from_secs(59));
    assert_eq!(net.hosts[0].tcp.time_wait().len(), 1);
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.hosts[0].tcp.time_wait().len(), 0);
    assert_eq!(net.hosts[0].tcp.stats().sockets, 0);
}

#[test]
fn rst_on_closed_port_refuses_connect() {
    let mut net = Net::new(cfg());
    let c = net.a().tcp.socket(Domain::V4);
    let h = net.a();
    assert_eq!(
        h.tcp.connect(&mut h.ctx, c, sa(B, 9)),
        Err(Errno::EINPROGRESS)
    );
    assert_eq!(h.tcp.poll(c), Poll(0));
    assert_eq!(h.tcp.connect(&mut h.ctx, c, sa(B, 9)), Err(Errno::EALREADY));
    net.run_for(Duration::from_millis(10));
    let cap = net.take_capture();
    let rst = cap[1].seg();
    assert_eq!(rst.flags(), TcpFlags::RST | TcpFlags::ACK);
    assert_eq!(rst.ack(), cap[0].seg().seq() + 1);
    let h = net.a();
    let p = h.tcp.poll(c);
    assert_eq!(
        p.0,
        Poll::IN | Poll::OUT | Poll::RDHUP | Poll::ERR | Poll::HUP | Poll::RDNORM | Poll::WRNORM
    );
    assert_eq!(h.tcp.take_error(c), Some(Errno::ECONNREFUSED));
    assert_eq!(h.tcp.take_error(c), None);
    assert_eq!(
        h.tcp.connect(&mut h.ctx, c, sa(B, 9)),
        Err(Errno::ECONNABORTED)
    );
    assert_eq!(net.hosts[1].ctx.count(TcpCounter::OutRsts), 1);
    assert_eq!(net.hosts[0].ctx.count(TcpCounter::AttemptFails), 1);
}
