//! Random and mutated frames into `Stack::receive`: never a panic, and
//! whatever the stack sends in answer is a well-formed frame.

mod stack_util;

use proptest::prelude::*;
use shunt_stack::time::{Duration, Instant};
use shunt_stack::wire::{EtherType, EthernetBuilder, Ipv4Builder, UdpBuilder};
use shunt_stack::{IpProto, RxOffload};
use stack_util::*;

fn valid_udp(frag: bool) -> Vec<u8> {
    let mut ip = Ipv4Builder::new(A, B, IpProto::UDP);
    ip.more_fragments = frag;
    let mut f = vec![0u8; 14 + 20 + 8 + 24];
    UdpBuilder {
        src_port: 1000,
        dst_port: 7,
    }
    .emit(&A, &B, &mut f[34..])
    .unwrap();
    ip.emit(&mut f[14..]).unwrap();
    EthernetBuilder {
        dst: MAC_B,
        src: MAC_A,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut f)
    .unwrap();
    f
}

fn valid_arp() -> Vec<u8> {
    let mut f = vec![0u8; 42];
    shunt_stack::wire::EthernetArp::request(MAC_A, A, B)
        .emit(&mut f[14..])
        .unwrap();
    EthernetBuilder {
        dst: shunt_stack::Mac::BROADCAST,
        src: MAC_A,
        ethertype: EtherType::ARP,
    }
    .emit(&mut f)
    .unwrap();
    f
}

fn drain_and_check(s: &mut shunt_stack::Stack, now: Instant) {
    let mut buf = vec![0u8; 65536];
    while let Some(n) = s.poll_transmit(now, &mut buf) {
        check_frame(&buf[..n]);
    }
}

fn mutate(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (
        proptest::collection::vec((0..len, any::<u8>()), 0..6),
        proptest::option::of(0..len + 16),
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
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20)) {
        let mut s = host(MAC_B, B, 3);
        let mut now = Instant::ZERO;
        for f in frames {
            s.receive(&f, RxOffload::None, now);
            now += Duration::from_millis(100);
        }
        drain_and_check(&mut s, now);
    }

    #[test]
    fn mutated_frames_never_panic(
        frames in proptest::collection::vec(
            prop_oneof![mutate(valid_udp(false)), mutate(valid_udp(true)), mutate(valid_arp())],
            1..30,
        ),
        offload in prop_oneof![Just(RxOffload::None), Just(RxOffload::Partial), Just(RxOffload::Verified)],
    ) {
        let mut s = host(MAC_B, B, 4);
        let u = s.udp_socket();
        s.udp_bind(u, sa(B, 7)).unwrap();
        let mut now = Instant::ZERO;
        for f in frames {
            s.receive(&f, offload, now);
            drain_and_check(&mut s, now);
            now += Duration::from_secs(5);
            s.on_timer(now);
        }
        let mut buf = [0u8; 100];
        while s.udp_recv_from(u, &mut buf, shunt_stack::RecvFlags::default()).is_ok() {}
        drain_and_check(&mut s, now);
    }
}
