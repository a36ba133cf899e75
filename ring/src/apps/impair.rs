//! Impairment ("clumsy" in Rush's words, netem in Linux's): loss, delay
//! with jitter, reordering, duplication, corruption and a rate limit, all
//! decided by a seeded PRNG so that the same seed and the same input give
//! the same decisions.
//!
//! Decisions are drawn per packet in a fixed order (loss, duplicate, then
//! per copy: corrupt, jitter, reorder) and only for impairments that are
//! configured, so adding traffic of one kind never shifts the decisions of
//! a configuration that does not use it.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::engine::{App, Io};
use crate::link::Link;
use crate::offload;
use crate::packet::Packet;
use crate::rng::Rng;

/// What to do to packets. Probabilities are fractions (0.01 = 1%).
#[derive(Clone, Debug, PartialEq)]
pub struct ImpairConfig {
    pub loss: f64,
    pub delay: Duration,
    /// Uniform in [-jitter, +jitter] around `delay`.
    pub jitter: Duration,
    /// With a delay: the share of packets sent at once, overtaking the
    /// delayed ones (netem's meaning). Without: the share held back until
    /// the next packet has gone.
    pub reorder: f64,
    pub duplicate: f64,
    /// The share of packets with one bit flipped after the Ethernet header.
    pub corrupt: f64,
    /// Bits per second (0: unlimited).
    pub rate: u64,
    pub seed: u64,
    /// Packets queued at most (netem's `limit`); beyond it, drops.
    pub limit: usize,
}

impl Default for ImpairConfig {
    fn default() -> Self {
        ImpairConfig {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            rate: 0,
            seed: 1,
            limit: 10_000,
        }
    }
}

/// Parse "12%" or "0.12" into a fraction in [0, 1].
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|_| format!("bad percentage {s:?} (expected e.g. 2% or 0.02)"))?;
    if !(0.0..=1.0).contains(&v) || v.is_nan() {
        return Err(format!("percentage {s:?} out of range 0-100%"));
    }
    Ok(v)
}

/// Parse "20ms", "1.5s", "300us", "0".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if t == "0" {
        (t, 0.0)
    } else {
        return Err(format!(
            "bad duration {s:?} (expected e.g. 20ms, 1s, 300us)"
        ));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    if !(0.0..=3600.0).contains(&(v * mult)) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// Parse "100mbit", "1gbit", "500kbit", "2000000" (bits per second).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("bps")
        .or_else(|| t.strip_suffix("bit"))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad rate {s:?} (expected e.g. 100mbit)"))?;
    if !(v * mult >= 1.0 && v * mult < 1e13) {
        return Err(format!("rate {s:?} out of range"));
    }
    Ok((v * mult) as u64)
}

impl ImpairConfig {
    /// Parse the `SHUNT_NETEM` form: `loss=1%,delay=20ms,jitter=5ms,
    /// reorder=2%,duplicate=1%,corrupt=0.1%,rate=100mbit,seed=7,limit=1000`.
    pub fn parse(spec: &str) -> Result<ImpairConfig, String> {
        let mut c = ImpairConfig::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("expected key=value in netem spec, got {item:?}"))?;
            c.set(k.trim(), v.trim())?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Set one parameter by name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "loss" => self.loss = parse_percent(value)?,
            "delay" => self.delay = parse_duration(value)?,
            "jitter" => self.jitter = parse_duration(value)?,
            "reorder" => self.reorder = parse_percent(value)?,
            "duplicate" => self.duplicate = parse_percent(value)?,
            "corrupt" => self.corrupt = parse_percent(value)?,
            "rate" => self.rate = parse_rate(value)?,
            "seed" => self.seed = value.parse().map_err(|_| format!("bad seed {value:?}"))?,
            "limit" => {
                self.limit = value
                    .parse()
                    .ok()
                    .filter(|&l| l > 0)
                    .ok_or_else(|| format!("bad limit {value:?}"))?
            }
            _ => return Err(format!("unknown netem parameter {key:?}")),
        }
        Ok(())
    }

    /// Check combinations that make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.jitter > self.delay {
            return Err(format!(
                "jitter {:?} exceeds delay {:?} (packets cannot leave before they arrive)",
                self.jitter, self.delay
            ));
        }
        Ok(())
    }

    /// True if decisions are made per packet (so a 64 KiB GSO frame must
    /// first become the wire packets it stands for).
    pub fn per_packet(&self) -> bool {
        self.loss > 0.0 || self.reorder > 0.0 || self.duplicate > 0.0 || self.corrupt > 0.0
    }

    /// True if nothing is done to packets.
    pub fn is_noop(&self) -> bool {
        self.loss == 0.0
            && self.delay.is_zero()
            && self.reorder == 0.0
            && self.duplicate == 0.0
            && self.corrupt == 0.0
            && self.rate == 0
    }
}

impl fmt::Display for ImpairConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss={}% delay={:?} jitter={:?} reorder={}% duplicate={}% corrupt={}% rate={} seed={}",
            self.loss * 100.0,
            self.delay,
            self.jitter,
            self.reorder * 100.0,
            self.duplicate * 100.0,
            self.corrupt * 100.0,
            if self.rate == 0 {
                "unlimited".to_string()
            } else {
                format!("{}bit", self.rate)
            },
            self.seed
        )
    }
}

/// What the app has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairStats {
    pub received: u64,
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
    /// Dropped because the queue held `limit` packets.
    pub overlimit: u64,
    /// Offloaded frames that could not be cut into wire packets.
    pub malformed: u64,
}

struct Timed {
    at: Instant,
    seq: u64,
    packet: Packet,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// How long a packet held back for reordering (without a delay) waits for
/// a successor before it goes anyway.
const HOLD_TIMEOUT: Duration = Duration::from_millis(10);
const ETH_HLEN: usize = 14;

pub struct Impair {
    cfg: ImpairConfig,
    rng: Rng,
    queue: BinaryHeap<Timed>,
    seq: u64,
    held: Option<(Packet, Instant)>,
    /// When the rate-limited line is next free.
    line_free: Option<Instant>,
    /// Segments of the GSO frame being processed (kept to avoid allocating).
    segments: Vec<Packet>,
    pub stats: ImpairStats,
}

impl Impair {
    pub fn new(cfg: ImpairConfig) -> Impair {
        let rng = Rng::new(cfg.seed);
        let queue = BinaryHeap::with_capacity(cfg.limit.min(1 << 20));
        Impair {
            cfg,
            rng,
            queue,
            seq: 0,
            held: None,
            line_free: None,
            segments: Vec::new(),
            stats: ImpairStats::default(),
        }
    }

    pub fn config(&self) -> &ImpairConfig {
        &self.cfg
    }

    /// Packets waiting in the delay line.
    pub fn queued(&self) -> usize {
        self.queue.len() + self.held.is_some() as usize
    }

    fn timed(&self) -> bool {
        !self.cfg.delay.is_zero() || self.cfg.rate != 0
    }

    /// Take one frame in; what may leave now goes to `out`.
    ///
    /// A frame a kernel handed over with offloads (a GSO frame, a partial
    /// checksum) is first made into the packets it stands for on a wire
    /// when decisions are per packet: loss then hits one 1500-byte packet,
    /// not 44 at once, and a corrupted packet keeps a checksum that tells.
    pub fn process(&mut self, p: Packet, now: Instant, out: &mut Link) {
        if !p.offload().is_plain() && self.cfg.per_packet() {
            let mut segs = std::mem::take(&mut self.segments);
            match offload::finalize(p, |s| segs.push(s)) {
                Ok(_) => {
                    for s in segs.drain(..) {
                        self.process_plain(s, now, out);
                    }
                }
                Err(_) => self.stats.malformed += 1,
            }
            self.segments = segs;
        } else {
            self.process_plain(p, now, out);
        }
    }

    fn process_plain(&mut self, p: Packet, now: Instant, out: &mut Link) {
        self.stats.received += 1;
        if self.cfg.loss > 0.0 && self.rng.chance(self.cfg.loss) {
            self.stats.lost += 1;
            return;
        }
        if self.cfg.duplicate > 0.0 && self.rng.chance(self.cfg.duplicate) {
            self.stats.duplicated += 1;
            let copy = p.duplicate();
            self.one(copy, now, out);
        }
        self.one(p, now, out);
    }

    fn one(&mut self, mut p: Packet, now: Instant, out: &mut Link) {
        if self.cfg.corrupt > 0.0 && self.rng.chance(self.cfg.corrupt) && p.len() > ETH_HLEN {
            let span = (p.len() - ETH_HLEN) as u64;
            let byte = ETH_HLEN + self.rng.below(span) as usize;
            let bit = self.rng.below(8) as u8;
            p.data_mut()[byte] ^= 1 << bit;
            self.stats.corrupted += 1;
        }
        let mut at = now + self.cfg.delay;
        if !self.cfg.jitter.is_zero() {
            let j = self.cfg.jitter.as_nanos() as u64;
            let off = self.rng.below(2 * j + 1);
            at = (now + self.cfg.delay + Duration::from_nanos(off))
                .checked_sub(self.cfg.jitter)
                .unwrap_or(now);
        }
        if self.cfg.reorder > 0.0 && self.rng.chance(self.cfg.reorder) {
            self.stats.reordered += 1;
            if self.timed() {
                // Overtake the delay line.
                self.send(p, out);
                return;
            } else {
                // Hold it until the next packet has gone.
                if let Some((old, _)) = self.held.take() {
                    self.send(old, out);
                }
                self.held = Some((p, now + HOLD_TIMEOUT));
                return;
            }
        }
        // Preamble, FCS and inter-frame gap take line time too.
        let bits = (p.len() as u64 + 24) * 8;
        if let Some(ns) = (bits * 1_000_000_000).checked_div(self.cfg.rate) {
            let start = self.line_free.map_or(at, |f| f.max(at));
            let done = start + Duration::from_nanos(ns);
            self.line_free = Some(done);
            at = done;
        }
        if at <= now && self.queue.is_empty() {
            self.send(p, out);
        } else if self.queue.len() >= self.cfg.limit {
            self.stats.overlimit += 1;
        } else {
            self.seq += 1;
            self.queue.push(Timed {
                at,
                seq: self.seq,
                packet: p,
            });
        }
        if let Some((held, _)) = self.held.take() {
            self.send(held, out);
        }
    }

    fn send(&mut self, p: Packet, out: &mut Link) {
        self.stats.sent += 1;
        out.transmit(p);
    }

    /// Release what is due at `now`.
    pub fn release(&mut self, now: Instant, out: &mut Link) {
        while let Some(top) = self.queue.peek() {
            if top.at > now || out.is_full() {
                break;
            }
            let t = self.queue.pop().expect("peeked");
            self.send(t.packet, out);
        }
        if let Some((_, until)) = &self.held
            && *until <= now
            && let Some((p, _)) = self.held.take()
        {
            self.send(p, out);
        }
    }

    /// Release everything now (on shutdown).
    pub fn flush(&mut self, out: &mut Link) {
        while let Some(t) = self.queue.pop() {
            self.send(t.packet, out);
        }
        if let Some((p, _)) = self.held.take() {
            self.send(p, out);
        }
    }
}

impl App for Impair {
    fn push(&mut self, io: &mut Io) {
        let now = io.now;
        let (input, output) = io.pair(0, 0);
        let Some(output) = output else {
            // Nowhere to go: consume and drop.
            if let Some(input) = input {
                while input.receive().is_some() {}
            }
            return;
        };
        self.release(now, output);
        if let Some(input) = input {
            while !output.is_full() {
                let Some(p) = input.receive() else { break };
                self.process(p, now, output);
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let q = self.queue.peek().map(|t| t.at);
        let h = self.held.as_ref().map(|(_, t)| *t);
        match (q, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn report(&self) -> Option<String> {
        let s = &self.stats;
        Some(format!(
            "in {} out {} lost {} dup {} corrupt {} reorder {} overlimit {} malformed {} queued {}",
            s.received,
            s.sent,
            s.lost,
            s.duplicated,
            s.corrupted,
            s.reordered,
            s.overlimit,
            s.malformed,
            self.queued()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(i: u32) -> Packet {
        let mut f = vec![0u8; 64];
        f[14..18].copy_from_slice(&i.to_be_bytes());
        Packet::from_slice(&f)
    }

    fn number(p: &Packet) -> u32 {
        u32::from_be_bytes(p.data()[14..18].try_into().unwrap())
    }

    /// Push `n` numbered packets through at 1 µs intervals of fake time,
    /// draining as it goes; returns the numbers that came out, in order.
    fn run(cfg: ImpairConfig, n: u32) -> (Vec<u32>, ImpairStats) {
        let mut imp = Impair::new(cfg);
        let mut out = Link::new();
        let t0 = Instant::now();
        let mut got = Vec::new();
        for i in 0..n {
            let now = t0 + Duration::from_micros(i as u64);
            imp.release(now, &mut out);
            imp.process(numbered(i), now, &mut out);
            while let Some(p) = out.receive() {
                got.push(number(&p));
            }
        }
        imp.flush(&mut out);
        while let Some(p) = out.receive() {
            got.push(number(&p));
        }
        (got, imp.stats)
    }

    #[test]
    fn parses_specs() {
        let c = ImpairConfig::parse("loss=1%,delay=20ms,jitter=5ms,reorder=2%,seed=7").unwrap();
        assert_eq!(c.loss, 0.01);
        assert_eq!(c.delay, Duration::from_millis(20));
        assert_eq!(c.jitter, Duration::from_millis(5));
        assert_eq!(c.reorder, 0.02);
        assert_eq!(c.seed, 7);
        let c = ImpairConfig::parse("rate=100mbit,duplicate=0.5,corrupt=0.1%").unwrap();
        assert_eq!(c.rate, 100_000_000);
        assert_eq!(c.duplicate, 0.5);
        assert!((c.corrupt - 0.001).abs() < 1e-12);
        assert_eq!(parse_rate("1gbit").unwrap(), 1_000_000_000);
        assert_eq!(parse_rate("500k").unwrap(), 500_000);
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("300us").unwrap(), Duration::from_micros(300));
        for bad in [
            "loss=120%",
            "loss=x",
            "delay=5",
            "bogus=1",
            "loss",
            "jitter=5ms",
            "rate=0",
            "limit=0",
        ] {
            assert!(ImpairConfig::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(ImpairConfig::parse("").unwrap().is_noop());
    }

    #[test]
    fn noop_passes_everything_in_order() {
        let (got, st) = run(ImpairConfig::default(), 5000);
        assert_eq!(got, (0..5000).collect::<Vec<_>>());
        assert_eq!(st.sent, 5000);
    }

    #[test]
    fn loss_rate_is_within_bounds() {
        let cfg = ImpairConfig {
            loss: 0.10,
            seed: 42,
            ..Default::default()
        };
        let (got, st) = run(cfg, 100_000);
        let lost = 100_000 - got.len();
        assert_eq!(lost as u64, st.lost);
        assert!((9_500..10_500).contains(&lost), "lost {lost}");
        // Survivors keep their order.
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn same_seed_same_decisions_other_seed_other_decisions() {
        let cfg = ImpairConfig {
            loss: 0.05,
            duplicate: 0.02,
            reorder: 0.03,
            corrupt: 0.01,
            seed: 7,
            ..Default::default()
        };
        let a = run(cfg.clone(), 20_000);
        let b = run(cfg.clone(), 20_000);
        assert_eq!(a, b);
        let c = run(ImpairConfig { seed: 8, ..cfg }, 20_000);
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn duplicate_rate_within_bounds() {
        let (got, st) = run(
            ImpairConfig {
                duplicate: 0.05,
                seed: 3,
                ..Default::default()
            },
            50_000,
        );
        let extra = got.len() - 50_000;
        assert_eq!(extra as u64, st.duplicated);
        assert!((2_000..3_000).contains(&extra), "{extra}");
    }

    #[test]
    fn reorder_without_delay_swaps_neighbours_and_loses_nothing() {
        let (got, st) = run(
            ImpairConfig {
                reorder: 0.1,
                seed: 5,
                ..Default::default()
            },
            20_000,
        );
        assert_eq!(got.len(), 20_000);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..20_000).collect::<Vec<_>>());
        let inversions = got.windows(2).filter(|w| w[0] > w[1]).count() as u64;
        assert!(
            inversions > 0 && inversions <= st.reordered,
            "{inversions} vs {}",
            st.reordered
        );
        assert!((1_700..2_300).contains(&st.reordered), "{}", st.reordered);
    }

    #[test]
    fn corrupt_flips_exactly_one_bit_after_ethernet() {
        let mut imp = Impair::new(ImpairConfig {
            corrupt: 1.0,
            ..Default::default()
        });
        let mut out = Link::new();
        let now = Instant::now();
        for _ in 0..1000 {
            imp.process(Packet::from_slice(&[0u8; 100]), now, &mut out);
        }
        while let Some(p) = out.receive() {
            let ones: u32 = p.data().iter().map(|b| b.count_ones()).sum();
            assert_eq!(ones, 1);
            assert!(p.data()[..ETH_HLEN].iter().all(|&b| b == 0));
        }
        assert_eq!(imp.stats.corrupted, 1000);
    }

    #[test]
    fn delay_holds_packets_until_due() {
        let mut imp = Impair::new(ImpairConfig {
            delay: Duration::from_millis(20),
            ..Default::default()
        });
        let mut out = Link::new();
        let t0 = Instant::now();
        imp.process(numbered(1), t0, &mut out);
        assert!(out.is_empty());
        assert_eq!(imp.deadline(), Some(t0 + Duration::from_millis(20)));
        imp.release(t0 + Duration::from_millis(19), &mut out);
        assert!(out.is_empty());
        imp.release(t0 + Duration::from_millis(20), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let cfg = ImpairConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(3),
            seed: 9,
            ..Default::default()
        };
        let mut imp = Impair::new(cfg);
        let mut out = Link::new();
        let t0 = Instant::now();
        for i in 0..1000 {
            imp.process(numbered(i), t0, &mut out);
        }
        let mut times: Vec<Duration> = Vec::new();
        while let Some(t) = imp.queue.pop() {
            times.push(t.at - t0);
        }
        let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        assert!(*min >= Duration::from_millis(7) && *max <= Duration::from_millis(13));
        assert!(*max - *min > Duration::from_millis(5), "jitter too narrow");
    }

    #[test]
    fn reorder_with_delay_overtakes() {
        let cfg = ImpairConfig {
            delay: Duration::from_millis(5),
            reorder: 0.2,
            seed: 11,
            ..Default::default()
        };
        let mut imp = Impair::new(cfg);
        let mut out = Link::new();
        let t0 = Instant::now();
        for i in 0..1000 {
            imp.process(numbered(i), t0 + Duration::from_micros(i as u64), &mut out);
        }
        // Reordered ones left at once; the rest wait for the delay.
        assert_eq!(out.len() as u64, imp.stats.reordered);
        assert!((150..250).contains(&imp.stats.reordered));
        imp.release(t0 + Duration::from_secs(1), &mut out);
        assert_eq!(out.len(), 1000);
    }

    #[test]
    fn rate_limit_spaces_departures() {
        // 1500-byte frames at 12.192 Mbit/s: (1500+24)*8 bits = 1 ms each.
        let cfg = ImpairConfig {
            rate: 12_192_000,
            ..Default::default()
        };
        let mut imp = Impair::new(cfg);
        let mut out = Link::new();
        let t0 = Instant::now();
        for _ in 0..10 {
            imp.process(Packet::from_slice(&[0u8; 1500]), t0, &mut out);
        }
        imp.release(t0 + Duration::from_micros(4_500), &mut out);
        assert_eq!(out.len(), 4);
        imp.release(t0 + Duration::from_millis(10), &mut out);
        assert_eq!(out.len(), 10);
    }

    /// An Ethernet/IPv4/UDP frame whose UDP checksum is partial, the way a
    /// kernel with offloads hands it over.
    fn partial_udp() -> Packet {
        let payload = [0x5au8; 100];
        let udp_len = 8 + payload.len();
        let mut f = vec![0u8; 14 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
        ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
        let c = crate::csum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        udp[2..4].copy_from_slice(&5678u16.to_be_bytes());
        udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        let pseudo = crate::csum::pseudo_v4([192, 0, 2, 1], [192, 0, 2, 2], 17, udp_len as u16);
        udp[6..8].copy_from_slice(&crate::csum::fold(pseudo).to_be_bytes());
        f.extend_from_slice(&udp);
        f.extend_from_slice(&payload);
        let mut p = Packet::from_slice(&f);
        *p.offload_mut() = offload::VnetHdr {
            flags: offload::F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            ..Default::default()
        };
        p
    }

    #[test]
    fn offloaded_frames_leave_as_valid_wire_packets() {
        let mut imp = Impair::new(ImpairConfig {
            duplicate: 1.0,
            ..Default::default()
        });
        let mut out = Link::new();
        imp.process(partial_udp(), Instant::now(), &mut out);
        assert_eq!(out.len(), 2);
        while let Some(p) = out.receive() {
            assert!(p.offload().is_plain());
            let udp = etherparse::SlicedPacket::from_ethernet(p.data()).unwrap();
            let Some(etherparse::TransportSlice::Udp(u)) = udp.transport else {
                panic!("not UDP")
            };
            let Some(etherparse::NetSlice::Ipv4(ip)) = udp.net else {
                panic!("not IPv4")
            };
            let want = u
                .to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
                .unwrap();
            assert_eq!(u.checksum(), want);
        }
    }

    #[test]
    fn delay_alone_keeps_offloaded_frames_whole() {
        let mut imp = Impair::new(ImpairConfig {
            delay: Duration::from_millis(1),
            ..Default::default()
        });
        let mut out = Link::new();
        let t0 = Instant::now();
        imp.process(partial_udp(), t0, &mut out);
        imp.release(t0 + Duration::from_millis(1), &mut out);
        assert!(out.receive().unwrap().offload().needs_csum());
    }

    #[test]
    fn queue_limit_drops_and_counts() {
        let cfg = ImpairConfig {
            delay: Duration::from_secs(1),
            limit: 100,
            ..Default::default()
        };
        let mut imp = Impair::new(cfg);
        let mut out = Link::new();
        let t0 = Instant::now();
        for i in 0..150 {
            imp.process(numbered(i), t0, &mut out);
        }
        assert_eq!(imp.stats.overlimit, 50);
        assert_eq!(imp.queued(), 100);
    }
}
