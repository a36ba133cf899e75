//! Random and mutated IPv6 frames into `Stack::receive`: never a panic,
//! and whatever the stack sends in answer is a well-formed frame.

mod stack_v6_util;

use proptest::prelude::*;
use shunt_stack::time::{Duration, Instant};
use shunt_stack::wire::icmpv6::{Icmpv6Message, NdpOptions};
use shunt_stack::wire::ipv6::OptionsHeaderBuilder;
use shunt_stack::{IpProto, Ipv6Addr, RxOffload, Stack};
use stack_v6_util::*;

fn drain_and_check(s: &mut Stack, now: Instant) {
    let mut buf = vec![0u8; 65536];
    while let Some(n) = s.poll_transmit(now, &mut buf) {
        check_frame(&buf[..n]);
    }
}

fn valid_frames() -> Vec<Vec<u8>> {
    let udp = udp6(C6, 1, B6, 7, &[5u8; 24]);
    let mut v = vec![frame6(MAC_C, MAC_B, C6, B6, IpProto::UDP, 64, &udp)];
    v.push(frame6(
        MAC_C,
        MAC_B,
        C6,
        B6,
        IpProto::IPV6_FRAG,
        64,
        &frag_hdr(IpProto::UDP, 0, true, 3, &udp[..16]),
    ));
    v.push(frame6(
        MAC_C,
        MAC_B,
        C6,
        B6,
        IpProto::IPV6_FRAG,
        64,
        &frag_hdr(IpProto::UDP, 16, false, 3, &udp[16..]),
    ));
    let b = OptionsHeaderBuilder {
        next_header: IpProto::UDP,
        options: &[0xde, 2, 0, 0],
    };
    let mut ext = vec![0u8; b.header_len()];
    b.emit(&mut ext).unwrap();
    ext.extend_from_slice(&udp);
    v.push(frame6(MAC_C, MAC_B, C6, B6, IpProto::HOPOPT, 64, &ext));
    let ns = Icmpv6Message::NeighborSolicitation {
        target: B6,
        options: NdpOptions::EMPTY,
    };
    let mut body = vec![0u8; ns.len()];
    let dst = B6.solicited_node();
    ns.emit(&C6, &dst, &mut body).unwrap();
    v.push(frame6(MAC_C, MAC_B, C6, dst, IpProto::ICMPV6, 255, &body));
    let echo = Icmpv6Message::EchoRequest {
        ident: 1,
        seq: 1,
        data: b"ping",
    };
    let mut body = vec![0u8; echo.len()];
    echo.emit(&C6, &B6, &mut body).unwrap();
    v.push(frame6(MAC_C, MAC_B, C6, B6, IpProto::ICMPV6, 64, &body));
    v
}

fn host() -> Stack {
    let mut s = host6(MAC_B, B6, None, 3);
    let mut now = Instant::ZERO;
    for _ in 0..10 {
        now += Duration::from_millis(500);
        s.on_timer(now);
    }
    drain_and_check(&mut s, now);
    s
}

fn mutate(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (
        proptest::collection::vec((14..len, any::<u8>()), 0..6),
        proptest::option::of(14..len + 16),
    )
        .prop_map(move |(edits, cut)| {
            let mut v = valid.clone();
            for (i, b) in edits {
                v[i] ^= b;
            }
            if let Some(c) = cut {
                v.resize(c, 0);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_ipv6_frames_never_panic(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20)
    ) {
        let mut s = host();
        let mut now = Instant::from_millis(10_000);
        for body in frames {
            let f = frame6(MAC_C, MAC_B, C6, B6, IpProto(body.first().copied().unwrap_or(0)), 255, &body);
            s.receive(&f, RxOffload::None, now);
            let mut raw = f.clone();
            raw.truncate(14 + body.len().min(60));
            s.receive(&raw, RxOffload::None, now);
            now += Duration::from_millis(100);
        }
        drain_and_check(&mut s, now);
    }

    #[test]
    fn mutated_ipv6_frames_never_panic(
        frames in proptest::collection::vec(
            proptest::strategy::Union::new(valid_frames().into_iter().map(mutate)),
            1..30,
        ),
        offload in prop_oneof![Just(RxOffload::None), Just(RxOffload::Partial), Just(RxOffload::Verified)],
    ) {
        let mut s = host();
        let u = s.udp6_socket();
        s.udp_bind(u, sa6(Ipv6Addr::UNSPECIFIED, 7)).unwrap();
        let mut now = Instant::from_millis(10_000);
        for f in frames {
            s.receive(&f, offload, now);
            drain_and_check(&mut s, now);
            now += Duration::from_secs(7);
            s.on_timer(now);
        }
        let mut buf = [0u8; 100];
        while s.udp_recv_from(u, &mut buf, shunt_stack::RecvFlags::default()).is_ok() {}
        drain_and_check(&mut s, now);
    }
}
