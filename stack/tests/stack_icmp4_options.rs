//! Echo and timestamp requests with IPv4 options, and ICMP timestamp
//! requests, into one stack on a fake clock and a fake wall clock: the
//! answers are parsed back by etherparse (`stack_util::check_frame`).

mod stack_util;

use etherparse::{Icmpv4Type, NetSlice, TransportSlice};
use shunt_stack::time::{Duration, Instant};
use shunt_stack::wire::icmpv4::Icmpv4Message;
use shunt_stack::wire::ipv4::Ipv4Builder;
use shunt_stack::{Counter, IpProto, RxOffload, Stack};
use stack_util::*;

/// 2023-11-14 22:13:20 UTC, in Unix nanoseconds.
const WALL: u64 = 1_700_000_000 * 1_000_000_000;
/// The milliseconds since midnight UT at `WALL`.
const WALL_MS: u32 = (22 * 3600 + 13 * 60 + 20) * 1000;

/// B, knowing A's MAC, its own announcements drained.
fn host_b(wall: bool) -> Stack {
    let mut s = host(MAC_B, B, 2);
    s.add_static_neighbor(A, MAC_A, Instant::ZERO);
    if wall {
        s.set_wall_clock(WALL);
    }
    sent(&mut s, Instant::ZERO);
    s
}

/// Every frame `s` sends now, each checked by etherparse.
fn sent(s: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Some(n) = s.poll_transmit(now, &mut buf) {
        check_frame(&buf[..n]);
        out.push(buf[..n].to_vec());
    }
    out
}

/// A frame from A to B carrying `l4` under the header `ip`.
fn frame(ip: &Ipv4Builder<'_>, l4: &[u8]) -> Vec<u8> {
    let hl = ip.header_len();
    let mut f = vec![0u8; 14 + hl + l4.len()];
    f[..6].copy_from_slice(&MAC_B.0);
    f[6..12].copy_from_slice(&MAC_A.0);
    f[12..14].copy_from_slice(&[8, 0]);
    f[14 + hl..].copy_from_slice(l4);
    ip.emit(&mut f[14..]).unwrap();
    f
}

fn icmp(m: &Icmpv4Message<'_>) -> Vec<u8> {
    let mut b = vec![0u8; m.len()];
    m.emit(&mut b).unwrap();
    b
}

fn echo_request(ident: u16, data: &[u8]) -> Vec<u8> {
    icmp(&Icmpv4Message::EchoRequest {
        ident,
        seq: 1,
        data,
    })
}

fn timestamp_request(ident: u16, body: &[u8]) -> Vec<u8> {
    let [a, b] = ident.to_be_bytes();
    icmp(&Icmpv4Message::Other {
        msg_type: 13,
        code: 0,
        rest: [a, b, 0, 3],
        body,
    })
}

/// The IPv4 header options and the ICMP type of a frame B sent to A.
fn reply(f: &[u8]) -> (Vec<u8>, Icmpv4Type) {
    let p = check_frame(f);
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4: {f:02x?}")
    };
    let h = ip.header();
    assert_eq!(
        (h.source(), h.destination()),
        (B.octets(), A.octets()),
        "from B to A"
    );
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!("not ICMP: {f:02x?}")
    };
    (h.options().to_vec(), i.icmp_type())
}

#[test]
fn echo_reply_brings_back_record_route_and_timestamp() {
    let mut b = host_b(true);
    let now = Instant::from_millis(1_500);
    // Record Route with room for 2, timestamps only with room for 4.
    let mut opts = vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0];
    opts.extend([68, 20, 5, 0]);
    opts.extend([0; 16]);
    opts.push(0);
    let mut ip = Ipv4Builder::new(A, B, IpProto::ICMP);
    ip.options = &opts;
    b.receive(
        &frame(&ip, &echo_request(77, b"options")),
        RxOffload::None,
        now,
    );
    let out = sent(&mut b, now);
    assert_eq!(out.len(), 1);
    let (got, t) = reply(&out[0]);
    let Icmpv4Type::EchoReply(e) = t else {
        panic!("{t:?}")
    };
    assert_eq!((e.id, e.seq), (77, 1));
    // B recorded on the way in and on the way out, as Linux does.
    let mut rr = vec![7, 11, 12];
    rr.extend(B.octets());
    rr.extend(B.octets());
    let ms = (WALL_MS + 1_500).to_be_bytes();
    let mut ts = vec![68, 20, 13, 0];
    ts.extend(ms);
    ts.extend(ms);
    ts.extend([0; 8]);
    assert_eq!(got[..11], rr[..]);
    assert_eq!(got[11..31], ts[..]);
    assert_eq!(got[31..], [0], "end of list pads the last word");
    assert_eq!(b.counters().get(Counter::IcmpOutEchoReps), 1);
}

#[test]
fn echo_reply_without_options_has_none() {
    let mut b = host_b(true);
    // Options B does not echo (NOPs, an unknown one) are not returned.
    let opts = [1, 1, 1, 1, 0x1e, 4, 0, 0];
    let mut ip = Ipv4Builder::new(A, B, IpProto::ICMP);
    ip.options = &opts;
    b.receive(
        &frame(&ip, &echo_request(5, b"x")),
        RxOffload::None,
        Instant::ZERO,
    );
    let out = sent(&mut b, Instant::ZERO);
    assert_eq!(out.len(), 1);
    let (got, t) = reply(&out[0]);
    assert!(matches!(t, Icmpv4Type::EchoReply(_)), "{t:?}");
    assert_eq!(got, Vec::<u8>::new());
}

#[test]
fn record_route_with_no_room_for_the_answer_gets_no_reply() {
    let mut b = host_b(true);
    // Room for our entry on the way in (pointer 4, length 9) but not for
    // the one on the way out: Linux's ip_options_echo fails, no reply.
    let opts = [7, 9, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut ip = Ipv4Builder::new(A, B, IpProto::ICMP);
    ip.options = &opts;
    b.receive(
        &frame(&ip, &echo_request(6, b"x")),
        RxOffload::None,
        Instant::ZERO,
    );
    assert!(sent(&mut b, Instant::ZERO).is_empty());
}

#[test]
fn big_reply_carries_the_options_in_its_first_fragment_only() {
    let mut b = host_b(true);
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let req = echo_request(9, &data);
    let opts = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    // Two fragments, the options in the first (Record Route is not
    // copied into later ones).
    let cut = 1456;
    let mut first = Ipv4Builder::new(A, B, IpProto::ICMP);
    first.options = &opts;
    first.ident = 4321;
    first.more_fragments = true;
    let mut second = Ipv4Builder::new(A, B, IpProto::ICMP);
    second.ident = 4321;
    second.fragment_offset = cut as u16;
    let now = Instant::ZERO;
    b.receive(&frame(&first, &req[..cut]), RxOffload::None, now);
    b.receive(&frame(&second, &req[cut..]), RxOffload::None, now);
    let out = sent(&mut b, now);
    assert_eq!(out.len(), 3, "3008 bytes of ICMP in 1500-byte frames");
    let mut icmp_bytes = vec![0u8; req.len()];
    let mut covered = 0;
    for (i, f) in out.iter().enumerate() {
        let p = check_frame(f);
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!()
        };
        let h = ip.header();
        assert!(f.len() - 14 <= 1500);
        let off = usize::from(h.fragments_offset().value()) * 8;
        assert_eq!(off == 0, i == 0, "in order");
        if i == 0 {
            let mut rr = vec![7, 11, 12];
            rr.extend(B.octets());
            rr.extend(B.octets());
            rr.push(0);
            assert_eq!(h.options(), &rr[..]);
        } else {
            // Same header length, the uncopied option turned into NOPs.
            assert_eq!(h.options(), &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
        }
        let payload = ip.payload().payload;
        icmp_bytes[off..off + payload.len()].copy_from_slice(payload);
        covered += payload.len();
    }
    assert_eq!(covered, req.len());
    assert_eq!(icmp_bytes[0], 0, "an echo reply");
    assert_eq!(icmp_bytes[4..], req[4..], "same id, sequence and data");
    assert!(sums_to_ones(&icmp_bytes));
}

#[test]
fn timestamp_request_is_answered_in_ms_since_midnight_ut() {
    let mut b = host_b(true);
    let now = Instant::from_millis(86_400_000 + 250);
    let body = [
        0, 0, 0x30, 0x39, 0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb,
    ];
    let ip = Ipv4Builder::new(A, B, IpProto::ICMP);
    b.receive(
        &frame(&ip, &timestamp_request(0x1234, &body)),
        RxOffload::None,
        now,
    );
    let out = sent(&mut b, now);
    assert_eq!(out.len(), 1);
    let (opts, t) = reply(&out[0]);
    assert!(opts.is_empty());
    let Icmpv4Type::TimestampReply(m) = t else {
        panic!("{t:?}")
    };
    assert_eq!((m.id, m.seq, m.originate_timestamp), (0x1234, 3, 12345));
    // A day and 250 ms after WALL: the same time of day, 250 ms on.
    assert_eq!(m.receive_timestamp, WALL_MS + 250);
    assert_eq!(m.transmit_timestamp, WALL_MS + 250);
    assert_eq!(b.counters().get(Counter::IcmpOutTimestampReps), 1);
    assert_eq!(b.counters().get(Counter::IcmpInTimestamps), 1);
}

#[test]
fn timestamp_without_wall_clock_sets_the_high_bit() {
    let mut b = host_b(false);
    let now = Instant::ZERO + Duration::from_millis(42);
    let ip = Ipv4Builder::new(A, B, IpProto::ICMP);
    b.receive(
        &frame(&ip, &timestamp_request(1, &[0; 12])),
        RxOffload::None,
        now,
    );
    let out = sent(&mut b, now);
    let (_, t) = reply(&out[0]);
    let Icmpv4Type::TimestampReply(m) = t else {
        panic!("{t:?}")
    };
    assert_eq!(m.receive_timestamp, 0x8000_0000 | 42);
}

#[test]
fn short_timestamp_request_is_an_error_and_unanswered() {
    let mut b = host_b(true);
    let ip = Ipv4Builder::new(A, B, IpProto::ICMP);
    b.receive(
        &frame(&ip, &timestamp_request(1, &[0; 3])),
        RxOffload::None,
        Instant::ZERO,
    );
    assert!(sent(&mut b, Instant::ZERO).is_empty());
    assert_eq!(b.counters().get(Counter::IcmpInErrors), 1);
    assert_eq!(b.counters().get(Counter::IcmpOutTimestampReps), 0);
}
