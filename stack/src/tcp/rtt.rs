//! Round-trip time estimation and the retransmission timeout (RFC 6298),
//! with Linux's constants: RTO at least 200 ms above the smoothed RTT
//! (`tcp_rto_min` bounds the variance term, as `tcp_set_rto` does), 1 s
//! before the first sample, at most 120 s, doubling on each backoff.

use crate::time::Duration;

pub const RTO_MIN: Duration = Duration::from_millis(200);
pub const RTO_MAX: Duration = Duration::from_secs(120);
pub const RTO_INITIAL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct RttEstimator {
    /// Smoothed RTT and variance, in microseconds; `None` before the
    /// first sample.
    srtt_us: Option<u64>,
    rttvar_us: u64,
    /// Lowest sample seen (CUBIC and receive autotuning use it).
    min_rtt_us: u64,
    /// The latest sample.
    last_us: u64,
    rto_min: Duration,
    rto: Duration,
    /// Consecutive timeouts since the last fresh sample or new ACK.
    backoff: u32,
}

impl Default for RttEstimator {
    fn default() -> Self {
        RttEstimator::new(RTO_MIN)
    }
}

impl RttEstimator {
    pub fn new(rto_min: Duration) -> RttEstimator {
        RttEstimator {
            srtt_us: None,
            rttvar_us: 0,
            min_rtt_us: u64::MAX,
            last_us: 0,
            rto_min,
            rto: RTO_INITIAL,
            backoff: 0,
        }
    }

    /// A measurement (RFC 6298 2.2/2.3).
    pub fn sample(&mut self, rtt: Duration) {
        // Microseconds without u128 arithmetic (one sample per ACK).
        let r = rtt
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(rtt.subsec_micros()))
            .max(1);
        self.last_us = r;
        self.min_rtt_us = self.min_rtt_us.min(r);
        match self.srtt_us {
            None => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(r);
                self.rttvar_us = (3 * self.rttvar_us + err) / 4;
                self.srtt_us = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt_us.unwrap_or(r);
        let var = Duration::from_micros(4 * self.rttvar_us).max(self.rto_min);
        self.rto = (Duration::from_micros(srtt) + var).min(RTO_MAX);
        self.backoff = 0;
    }

    /// The timeout to arm now: the base RTO doubled per backoff, at most
    /// [`RTO_MAX`].
    /// What [`RttEstimator::rto`] is never below.
    #[inline]
    pub fn rto_floor(&self) -> Duration {
        self.rto.min(RTO_MAX)
    }

    pub fn rto(&self) -> Duration {
        let shift = self.backoff.min(20);
        self.rto.saturating_mul(1 << shift).min(RTO_MAX)
    }
    /// The RTO without backoff.
    pub fn base_rto(&self) -> Duration {
        self.rto
    }
    pub fn backoff(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }
    pub fn backoffs(&self) -> u32 {
        self.backoff
    }
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_us)
    }
    pub fn min_rtt(&self) -> Option<Duration> {
        (self.min_rtt_us != u64::MAX).then(|| Duration::from_micros(self.min_rtt_us))
    }
    pub fn latest(&self) -> Duration {
        Duration::from_micros(self.last_us)
    }
}

/// Linux's `retransmits_timed_out`: the time a connection may spend
/// retransmitting, as if its RTO had started at `base` and doubled
/// `boundary` times (linearly at [`RTO_MAX`] once the doubling reaches it).
/// `tcp_retries2` = 15 with a 200 ms base gives 924.6 s; `tcp_syn_retries`
/// = 6 with the 1 s SYN base gives 127 s.
pub fn retransmit_budget(base: Duration, boundary: u32) -> Duration {
    let base_ms = base.as_millis().max(1) as u64;
    let max_ms = RTO_MAX.as_millis() as u64;
    let thresh = (max_ms / base_ms).max(1).ilog2();
    let ms = if boundary <= thresh {
        ((2u64 << boundary) - 1) * base_ms
    } else {
        ((2u64 << thresh) - 1) * base_ms + u64::from(boundary - thresh) * max_ms
    };
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_with_linux_floor() {
        let mut r = RttEstimator::default();
        assert_eq!(r.rto(), Duration::from_secs(1));
        r.sample(Duration::from_millis(100));
        assert_eq!(r.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(r.rttvar(), Duration::from_millis(50));
        // 100 + max(200, 200) = 300 ms
        assert_eq!(r.rto(), Duration::from_millis(300));
        r.sample(Duration::from_millis(100));
        // rttvar 37.5 ms: 4 * 37.5 = 150 < 200 floor
        assert_eq!(r.rto(), Duration::from_millis(300));
        for _ in 0..50 {
            r.sample(Duration::from_millis(1));
        }
        assert!(r.rto() >= Duration::from_millis(200) && r.rto() < Duration::from_millis(210));
        assert_eq!(r.min_rtt(), Some(Duration::from_millis(1)));
        r.sample(Duration::from_secs(2));
        let big = r.rto();
        assert!(big > Duration::from_secs(2));
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut r = RttEstimator::default();
        let mut seen = vec![];
        for _ in 0..10 {
            seen.push(r.rto().as_secs());
            r.backoff();
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]);
        r.sample(Duration::from_millis(10));
        assert_eq!(r.backoffs(), 0);
    }

    #[test]
    fn linux_budgets() {
        assert_eq!(retransmit_budget(RTO_INITIAL, 6), Duration::from_secs(127));
        assert_eq!(retransmit_budget(RTO_INITIAL, 1), Duration::from_secs(3));
        assert_eq!(
            retransmit_budget(RTO_MIN, 15),
            Duration::from_millis(924_600)
        );
        assert_eq!(retransmit_budget(RTO_INITIAL, 5), Duration::from_secs(63));
    }
}
