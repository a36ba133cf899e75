//! Fragment reassembly, written once for both IP versions (the version's
//! receive path extracts offset, more-fragments and identification from
//! its header or extension header and hands them here).
//!
//! Linux's rules (`ip_frag_queue`, `inet_frag_queue_insert`), which since
//! the FragmentSmack fixes apply RFC 5722 to IPv4 as well:
//!
//! - a fragment that lies wholly inside data already received is a
//!   duplicate: dropped, the datagram kept;
//! - any other overlap discards the whole datagram (`ReasmOverlaps`,
//!   `ReasmFails`);
//! - a non-last fragment's length is cut to a multiple of 8; a fragment
//!   that ends up empty, a last fragment that ends before data already
//!   seen or disagrees with an earlier last fragment, or data beyond a
//!   known end: the datagram is corrupt and discarded;
//! - a datagram that would exceed 65535 bytes is discarded (ping of death);
//! - 30 s after its first fragment (`ipfrag_time`) an incomplete datagram
//!   expires (`ReasmTimeout`, `ReasmFails`); if its first fragment had
//!   arrived, the caller answers with ICMP time exceeded, code 1;
//! - memory is capped (`ipfrag_high_thresh`, 4 MiB): above it, new
//!   fragments are dropped (`ReasmFails`) until timeouts free some.

use std::collections::HashMap;

use crate::context::{CounterContext, TimerContext};
use crate::counters::Counter;
use crate::iface::SKB_OVERHEAD;
use crate::ip::{Ip, IpProto};
use crate::ip_layer::IpExt;
use crate::time::Duration;

/// What identifies the fragments of one datagram (RFC 791: source,
/// destination, protocol, identification; RFC 8200: the same without the
/// protocol, which is then the next header of the first fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragKey<I: Ip> {
    pub src: I::Addr,
    pub dst: I::Addr,
    pub id: u32,
    pub proto: IpProto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReassemblyTimerId<I: Ip>(pub FragKey<I>);

/// One received fragment, as the version's receive path sees it.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    /// Offset of `payload` in the datagram's payload, in bytes.
    pub offset: usize,
    pub more: bool,
    /// The fragment's own IP header (options or extension headers
    /// included): kept from the first fragment to rebuild the datagram.
    pub header: &'a [u8],
    pub payload: &'a [u8],
}

/// A whole datagram again: the first fragment's header (to be fixed up
/// by the version: lengths, flags, checksum) and the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassembled {
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Kept; more fragments are needed (or it was a duplicate).
    Pending,
    Complete(Reassembled),
    /// The fragment, and possibly its datagram, were dropped.
    Dropped,
}

/// The context reassembly needs: its timers and counters.
pub trait ReassemblyContext<I: Ip>: TimerContext<ReassemblyTimerId<I>> + CounterContext {}
impl<I: Ip, C: TimerContext<ReassemblyTimerId<I>> + CounterContext> ReassemblyContext<I> for C {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// `ipfrag_time`.
    pub timeout: Duration,
    /// `ipfrag_high_thresh`.
    pub high_thresh: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(30),
            high_thresh: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    header: Option<Vec<u8>>,
    data: Vec<u8>,
    /// Received byte ranges, merged, sorted, disjoint.
    runs: Vec<(usize, usize)>,
    /// The highest end seen, or the end the last fragment announced.
    len: usize,
    last_in: bool,
    mem: usize,
}

#[derive(Debug)]
pub struct Reassembler<I: Ip> {
    map: HashMap<FragKey<I>, Pending>,
    mem: usize,
    pub config: ReassemblyConfig,
}

impl<I: IpExt> Default for Reassembler<I> {
    /// The version's timeout (30 s for IPv4, 60 s for IPv6).
    fn default() -> Self {
        Reassembler::new(ReassemblyConfig {
            timeout: I::REASM_TIMEOUT,
            ..ReassemblyConfig::default()
        })
    }
}

impl<I: IpExt> Reassembler<I> {
    pub fn new(config: ReassemblyConfig) -> Reassembler<I> {
        Reassembler {
            map: HashMap::new(),
            mem: 0,
            config,
        }
    }

    /// Bytes held (with per-fragment overhead), as counted against the cap.
    pub fn mem(&self) -> usize {
        self.mem
    }

    /// Datagrams in progress.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn insert<C: ReassemblyContext<I>>(
        &mut self,
        ctx: &mut C,
        key: FragKey<I>,
        frag: Fragment<'_>,
    ) -> Outcome {
        ctx.increment(I::counter(Counter::IpReasmReqds));
        if self.mem > self.config.high_thresh {
            ctx.increment(I::counter(Counter::IpReasmFails));
            return Outcome::Dropped;
        }
        let timeout = self.config.timeout;
        let q = self.map.entry(key).or_insert_with(|| {
            ctx.schedule_timer(timeout, ReassemblyTimerId(key));
            Pending::default()
        });
        let offset = frag.offset;
        let mut end = offset + frag.payload.len();
        let corrupt = if !frag.more {
            if end < q.len || (q.last_in && end != q.len) {
                true
            } else {
                q.last_in = true;
                q.len = end;
                false
            }
        } else {
            end &= !7;
            if end > q.len {
                if q.last_in {
                    true
                } else {
                    q.len = end;
                    false
                }
            } else {
                false
            }
        };
        let header_len = q
            .header
            .as_ref()
            .map_or(frag.header.len(), |h| h.len())
            .max(frag.header.len());
        if corrupt || end <= offset || end + header_len > I::REASM_MAX {
            self.discard(ctx, &key);
            return Outcome::Dropped;
        }
        // Duplicate or overlap, against the runs received so far.
        for &(s, e) in &q.runs {
            if end <= s || offset >= e {
                continue;
            }
            if offset >= s && end <= e {
                return Outcome::Pending;
            }
            ctx.increment(I::counter(Counter::IpReasmOverlaps));
            self.discard(ctx, &key);
            return Outcome::Dropped;
        }
        if q.data.len() < end {
            q.data.resize(end, 0);
        }
        q.data[offset..end].copy_from_slice(&frag.payload[..end - offset]);
        insert_run(&mut q.runs, offset, end);
        let cost = frag.payload.len() + SKB_OVERHEAD;
        q.mem += cost;
        self.mem += cost;
        if offset == 0 {
            q.header = Some(frag.header.to_vec());
        }
        let complete = q.header.is_some() && q.last_in && q.runs == [(0, q.len)];
        if !complete {
            return Outcome::Pending;
        }
        let Some(mut q) = self.map.remove(&key) else {
            return Outcome::Dropped;
        };
        self.mem -= q.mem;
        ctx.cancel_timer(&ReassemblyTimerId(key));
        ctx.increment(I::counter(Counter::IpReasmOKs));
        q.data.truncate(q.len);
        Outcome::Complete(Reassembled {
            header: q.header.unwrap_or_default(),
            payload: q.data,
        })
    }

    /// The datagram's time is up. Returns what an ICMP time exceeded
    /// (code 1) would quote, if the first fragment had arrived: its header
    /// and the data that follows it.
    pub fn handle_timer<C: ReassemblyContext<I>>(
        &mut self,
        ctx: &mut C,
        key: &FragKey<I>,
    ) -> Option<Vec<u8>> {
        let q = self.map.remove(key)?;
        self.mem -= q.mem;
        ctx.increment(I::counter(Counter::IpReasmFails));
        ctx.increment(I::counter(Counter::IpReasmTimeout));
        let mut quote = q.header?;
        let first_end = q.runs.first().filter(|r| r.0 == 0).map_or(0, |r| r.1);
        quote.extend_from_slice(&q.data[..first_end.min(q.data.len())]);
        Some(quote)
    }

    fn discard<C: ReassemblyContext<I>>(&mut self, ctx: &mut C, key: &FragKey<I>) {
        if let Some(q) = self.map.remove(key) {
            self.mem -= q.mem;
            ctx.cancel_timer(&ReassemblyTimerId(*key));
        }
        ctx.increment(I::counter(Counter::IpReasmFails));
    }
}

fn insert_run(runs: &mut Vec<(usize, usize)>, s: usize, e: usize) {
    let at = runs.iter().position(|r| r.0 > s).unwrap_or(runs.len());
    runs.insert(at, (s, e));
    let mut i = 0;
    while i + 1 < runs.len() {
        if runs[i].1 >= runs[i + 1].0 {
            runs[i].1 = runs[i].1.max(runs[i + 1].1);
            runs.remove(i + 1);
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::fake::FakeCore;
    use crate::ip::{Ipv4, Ipv4Addr};
    use crate::time::Instant;
    use proptest::prelude::*;

    type Ctx = FakeCore<ReassemblyTimerId<Ipv4>, ()>;

    fn key(id: u32) -> FragKey<Ipv4> {
        FragKey {
            src: Ipv4Addr::new(192, 0, 2, 2),
            dst: Ipv4Addr::new(192, 0, 2, 1),
            id,
            proto: IpProto::UDP,
        }
    }

    const HDR: &[u8] = &[0x45; 20];

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 256) as u8).collect()
    }

    fn frag(d: &[u8], off: usize, len: usize, more: bool) -> Fragment<'_> {
        Fragment {
            offset: off,
            more,
            header: HDR,
            payload: &d[off..off + len],
        }
    }

    fn complete(o: Outcome) -> Vec<u8> {
        match o {
            Outcome::Complete(r) => {
                assert_eq!(r.header, HDR);
                r.payload
            }
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn in_order_and_out_of_order() {
        let d = data(3000);
        let mut c = Ctx::default();
        let mut r = Reassembler::<Ipv4>::default();
        assert_eq!(
            r.insert(&mut c, key(1), frag(&d, 0, 1480, true)),
            Outcome::Pending
        );
        assert_eq!(
            r.insert(&mut c, key(1), frag(&d, 1480, 1480, true)),
            Outcome::Pending
        );
        assert_eq!(
            complete(r.insert(&mut c, key(1), frag(&d, 2960, 40, false))),
            d
        );
        // Out of order, last first.
        assert_eq!(
            r.insert(&mut c, key(2), frag(&d, 2960, 40, false)),
            Outcome::Pending
        );
        assert_eq!(
            r.insert(&mut c, key(2), frag(&d, 1480, 1480, true)),
            Outcome::Pending
        );
        assert_eq!(
            complete(r.insert(&mut c, key(2), frag(&d, 0, 1480, true))),
            d
        );
        assert_eq!(c.counters[Counter::IpReasmOKs], 2);
        assert_eq!(c.counters[Counter::IpReasmReqds], 6);
        assert!(r.is_empty());
        assert_eq!(r.mem(), 0);
        assert!(c.timers.is_empty());
    }

    #[test]
    fn duplicates_are_ignored() {
        let d = data(2000);
        let mut c = Ctx::default();
        let mut r = Reassembler::<Ipv4>::default();
        r.insert(&mut c, key(1), frag(&d, 0, 800, true));
        assert_eq!(
            r.insert(&mut c, key(1), frag(&d, 0, 800, true)),
            Outcome::Pending
        );
        // Wholly inside received data: a duplicate too.
        assert_eq!(
            r.insert(&mut c, key(1), frag(&d, 8, 400, true)),
            Outcome::Pending
        );
        assert_eq!(
            complete(r.insert(&mut c, key(1), frag(&d, 800, 1200, false))),
            d
        );
        assert_eq!(c.counters[Counter::IpReasmFails], 0);
    }

    #[test]
    fn overlaps_discard_the_datagram() {
        let d = data(2000);
        let mut c = Ctx::default();
        let mut r = Reassembler::<Ipv4>::default();
        r.insert(&mut c, key(1), frag(&d, 0, 800, true));
        assert_eq!(
            r.insert(&mut c, key(1), frag(&d, 400, 800, true)),
            Outcome::Dropped
        );
        assert_eq!(c.counters[Counter::IpReasmOverlaps], 1);
        assert_eq!(c.counters[Counter::IpReasmFails], 1);
        assert!(r.is_empty());
        assert!(c.timers.is_empty());
        // What follows starts a new datagram that cannot complete alone.
        assert_eq!(
            r.insert(&mut c, key(1), frag(&d, 800, 1200, false)),
            Outcome::Pending
        );
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn corrupt_lengths() {
        let d = data(2000);
        let mut c = Ctx::default();
        let mut r = Reassembler::<Ipv4>::default();
        // Two different last fragments.
        r.insert(&mut c, key(1), frag(&d, 800, 800, false));
        assert_eq!(
            r.insert(&mut c, key(1), frag(&d, 800, 1200, false)),
            Outcome::Dropped
        );
        // Data past a known end.
        r.insert(&mut c, key(2), frag(&d, 800, 400, false));
        assert_eq!(
            r.insert(&mut c, key(2), frag(&d, 1200, 800, true)),
            Outcome::Dropped
        );
        // A non-last fragment under 8 bytes is empty once cut: discarded.
        assert_eq!(
            r.insert(&mut c, key(3), frag(&d, 0, 7, true)),
            Outcome::Dropped
        );
        // Non-last fragment lengths are cut to multiples of 8.
        assert_eq!(
            r.insert(&mut c, key(4), frag(&d, 0, 803, true)),
            Outcome::Pending
        );
        assert_eq!(
            complete(r.insert(&mut c, key(4), frag(&d, 800, 1200, false))),
            d
        );
        // Beyond 65535.
        let big = data(65536);
        assert_eq!(
            r.insert(&mut c, key(5), frag(&big, 65512, 24, false)),
            Outcome::Dropped
        );
        assert_eq!(c.counters[Counter::IpReasmFails], 4);
    }

    #[test]
    fn ipv6_limit_excludes_the_fixed_header() {
        // RFC 8200: the payload length (65535 at most) does not count the
        // 40-byte fixed header, which the reassembled header holds.
        use crate::ip::{Ipv6, Ipv6Addr};
        let mut c = FakeCore::<ReassemblyTimerId<Ipv6>, ()>::default();
        let mut r = Reassembler::<Ipv6>::default();
        let hdr = [0x60u8; 40];
        let k = |id| FragKey {
            src: Ipv6Addr::from_octets([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            dst: Ipv6Addr::from_octets([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            id,
            proto: IpProto::IPV6_FRAG,
        };
        let d = data(65535);
        let f = |off: usize, len: usize, more: bool| Fragment {
            offset: off,
            more,
            header: &hdr,
            payload: &d[off..off + len],
        };
        let mut off = 0;
        while off + 1448 < d.len() {
            assert_eq!(r.insert(&mut c, k(1), f(off, 1448, true)), Outcome::Pending);
            off += 1448;
        }
        match r.insert(&mut c, k(1), f(off, d.len() - off, false)) {
            Outcome::Complete(x) => assert_eq!(x.payload, d),
            o => panic!("expected the 65535-byte payload whole, got {o:?}"),
        }
        // One byte more is too big.
        let big = data(65536);
        let g = Fragment {
            offset: 65528,
            more: false,
            header: &hdr,
            payload: &big[65528..],
        };
        assert_eq!(r.insert(&mut c, k(2), g), Outcome::Dropped);
    }

    #[test]
    fn timeout_returns_quote_only_with_first_fragment() {
        let d = data(3000);
        let mut c = Ctx::default();
        let mut r = Reassembler::<Ipv4>::default();
        r.insert(&mut c, key(1), frag(&d, 0, 1480, true));
        r.insert(&mut c, key(2), frag(&d, 1480, 1480, true));
        let t0 = c.now;
        assert_eq!(c.advance_to_next(t0 + Duration::from_millis(29_999)), None);
        let mut quotes = Vec::new();
        while let Some(ReassemblyTimerId(k)) = c.advance_to_next(t0 + Duration::from_secs(30)) {
            quotes.push((k.id, r.handle_timer(&mut c, &k)));
        }
        quotes.sort();
        assert_eq!(quotes.len(), 2);
        let q1 = quotes[0].1.as_ref().unwrap();
        assert_eq!(&q1[..20], HDR);
        assert_eq!(&q1[20..], &d[..1480]);
        assert_eq!(quotes[1], (2, None));
        assert_eq!(c.counters[Counter::IpReasmTimeout], 2);
        assert_eq!(c.counters[Counter::IpReasmFails], 2);
        assert_eq!(r.mem(), 0);
        assert!(r.is_empty());
        assert!(c.now >= Instant::ZERO);
    }

    #[test]
    fn memory_cap() {
        let d = data(3000);
        let mut c = Ctx::default();
        let mut r = Reassembler::<Ipv4>::new(ReassemblyConfig {
            high_thresh: 10_000,
            ..ReassemblyConfig::default()
        });
        let mut id = 0;
        while r.mem() <= 10_000 {
            id += 1;
            assert_eq!(
                r.insert(&mut c, key(id), frag(&d, 0, 1480, true)),
                Outcome::Pending
            );
        }
        assert_eq!(
            r.insert(&mut c, key(999), frag(&d, 0, 1480, true)),
            Outcome::Dropped
        );
        // Even the last fragment of a pending datagram is refused.
        assert_eq!(
            r.insert(&mut c, key(1), frag(&d, 1480, 8, false)),
            Outcome::Dropped
        );
        assert_eq!(c.counters[Counter::IpReasmFails], 2);
        // Timeouts free the memory; then it works again.
        while let Some(ReassemblyTimerId(k)) = c.advance_to_next(c.now + Duration::from_secs(60)) {
            r.handle_timer(&mut c, &k);
        }
        assert_eq!(r.mem(), 0);
        r.insert(&mut c, key(1), frag(&d, 0, 1480, true));
        assert!(matches!(
            r.insert(&mut c, key(1), frag(&d, 1480, 8, false)),
            Outcome::Complete(_)
        ));
    }

    proptest! {
        /// Any order, with duplicates of whole fragments: the datagram
        /// comes back exactly once, byte for byte.
        #[test]
        fn any_order_with_duplicates(
            len in 1usize..5000,
            size in 1usize..200,
            order in proptest::collection::vec(any::<prop::sample::Index>(), 1..80),
        ) {
            let d = data(len);
            let step = (size * 8).min(len.next_multiple_of(8));
            let mut frags: Vec<(usize, usize, bool)> = Vec::new();
            let mut off = 0;
            while off < len {
                let n = step.min(len - off);
                frags.push((off, n, off + n < len));
                off += n;
            }
            let mut seq: Vec<usize> = order.iter().map(|i| i.index(frags.len())).collect();
            seq.extend(0..frags.len());
            let mut c = Ctx::default();
            let mut r = Reassembler::<Ipv4>::default();
            let mut done = 0;
            for i in seq {
                let (o, n, m) = frags[i];
                if let Outcome::Complete(x) = r.insert(&mut c, key(1), frag(&d, o, n, m)) {
                    prop_assert_eq!(&x.payload, &d);
                    done += 1;
                    break;
                }
            }
            prop_assert_eq!(done, 1);
        }

        /// Arbitrary fragments never panic and never leak memory.
        #[test]
        fn arbitrary_fragments(fs in proptest::collection::vec((0usize..70000, 0usize..3000, any::<bool>(), 0u32..3), 0..40)) {
            let d = data(80000);
            let mut c = Ctx::default();
            let mut r = Reassembler::<Ipv4>::default();
            for (o, n, m, id) in fs {
                let _ = r.insert(&mut c, key(id), frag(&d, o, n, m));
            }
            while let Some(ReassemblyTimerId(k)) = c.advance_to_next(c.now + Duration::from_secs(60)) {
                r.handle_timer(&mut c, &k);
            }
            prop_assert_eq!(r.mem(), 0);
            prop_assert!(r.is_empty());
        }
    }
}
