//! Congestion control: CUBIC (RFC 9438, Linux's default) and NewReno
//! (RFC 5681 / RFC 6582), in bytes. The loss-recovery machinery (which
//! segments to resend, pipe) lives in the connection; this module only
//! answers "how big is the window" on ACKs, loss and timeouts.

use crate::time::{Duration, Instant};

/// Which algorithm (`TCP_CONGESTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CcAlgo {
    #[default]
    Cubic,
    Reno,
}

impl CcAlgo {
    pub fn name(self) -> &'static str {
        match self {
            CcAlgo::Cubic => "cubic",
            CcAlgo::Reno => "reno",
        }
    }
    pub fn from_name(n: &str) -> Option<CcAlgo> {
        match n {
            "cubic" => Some(CcAlgo::Cubic),
            "reno" => Some(CcAlgo::Reno),
            _ => None,
        }
    }
}

/// RFC 6928: ten segments.
pub const INITIAL_CWND_SEGMENTS: u32 = 10;
const BETA: f64 = 0.7;
const C: f64 = 0.4;

#[derive(Clone, Debug)]
pub struct Congestion {
    algo: CcAlgo,
    mss: u32,
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acked in congestion avoidance, not yet turned into growth.
    acked_acc: u32,
    // CUBIC state (in segments and seconds).
    w_max: f64,
    w_last_max: f64,
    k: f64,
    epoch: Option<Instant>,
    w_est: f64,
    cwnd_epoch: f64,
}

impl Congestion {
    pub fn new(algo: CcAlgo, mss: u32) -> Congestion {
        let mss = mss.max(1);
        Congestion {
            algo,
            mss,
            cwnd: INITIAL_CWND_SEGMENTS * mss,
            ssthresh: u32::MAX,
            acked_acc: 0,
            w_max: 0.0,
            w_last_max: 0.0,
            k: 0.0,
            epoch: None,
            w_est: 0.0,
            cwnd_epoch: 0.0,
        }
    }

    pub fn algo(&self) -> CcAlgo {
        self.algo
    }
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    pub fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }
    /// The MSS changed (path MTU, options): keep the window in segments.
    pub fn set_mss(&mut self, mss: u32) {
        let mss = mss.max(1);
        if mss != self.mss {
            let segs = (self.cwnd / self.mss).max(1);
            self.cwnd = segs * mss;
            self.mss = mss;
        }
    }

    /// `acked` new bytes were acknowledged outside recovery. `cwnd_limited`
    /// says whether the sender was using its window (growth is only
    /// earned by a window in use, as Linux's `tcp_is_cwnd_limited`).
    pub fn on_ack(
        &mut self,
        acked: u32,
        now: Instant,
        min_rtt: Option<Duration>,
        cwnd_limited: bool,
    ) {
        if !cwnd_limited || acked == 0 {
            return;
        }
        let mut acked = acked;
        if self.in_slow_start() {
            let room = self.ssthresh - self.cwnd;
            let grow = acked.min(room);
            self.cwnd = self.cwnd.saturating_add(grow);
            acked -= grow;
            if acked == 0 {
                return;
            }
        }
        match self.algo {
            CcAlgo::Reno => self.reno_ca(acked),
            CcAlgo::Cubic => self.cubic_ca(acked, now, min_rtt),
        }
    }

    fn reno_ca(&mut self, acked: u32) {
        self.acked_acc = self.acked_acc.saturating_add(acked);
        while self.acked_acc >= self.cwnd {
            self.acked_acc -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
    }

    fn cubic_ca(&mut self, acked: u32, now: Instant, min_rtt: Option<Duration>) {
        let mss = f64::from(self.mss);
        let cwnd_segs = f64::from(self.cwnd) / mss;
        let epoch = match self.epoch {
            Some(e) => e,
            None => {
                // RFC 9438 4.2: a new congestion-avoidance epoch.
                self.epoch = Some(now);
                self.cwnd_epoch = cwnd_segs;
                self.w_est = cwnd_segs;
                if self.w_max < cwnd_segs {
                    self.w_max = cwnd_segs;
                }
                self.k = ((self.w_max - cwnd_segs) / C).cbrt();
                now
            }
        };
        let rtt = min_rtt.unwrap_or(Duration::from_millis(100)).as_secs_f64();
        // Target one RTT ahead (RFC 9438 4.2).
        let t = (now - epoch).as_secs_f64() + rtt;
        let target = (C * (t - self.k).powi(3) + self.w_max).clamp(cwnd_segs, 1.5 * cwnd_segs);
        // Reno-friendly estimate (4.3).
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        let segs_acked = f64::from(acked) / mss;
        self.w_est += alpha * segs_acked / cwnd_segs;
        let next = if self.w_est > target {
            // Reno-friendly region: grow like Reno would.
            cwnd_segs + (self.w_est - cwnd_segs).max(0.0).min(segs_acked)
        } else {
            cwnd_segs + (target - cwnd_segs) / cwnd_segs * segs_acked
        };
        let grown = (next * mss) as u32;
        // Keep fractional growth across ACKs.
        self.acked_acc = self
            .acked_acc
            .saturating_add(grown.saturating_sub(self.cwnd));
        if self.acked_acc >= self.mss / 8 || grown > self.cwnd + self.mss {
            self.cwnd = self.cwnd.saturating_add(self.acked_acc);
            self.acked_acc = 0;
        }
    }

    /// Loss detected by duplicate ACKs or SACK (entering fast recovery).
    /// `flight` is the data outstanding.
    pub fn on_loss(&mut self, flight: u32) {
        let _ = flight;
        match self.algo {
            CcAlgo::Reno => {
                self.ssthresh = (self.cwnd / 2).max(2 * self.mss);
            }
            CcAlgo::Cubic => {
                let segs = f64::from(self.cwnd) / f64::from(self.mss);
                // Fast convergence (RFC 9438 4.7).
                self.w_max = if segs < self.w_last_max {
                    segs * (1.0 + BETA) / 2.0
                } else {
                    segs
                };
                self.w_last_max = segs;
                self.epoch = None;
                self.ssthresh = ((f64::from(self.cwnd) * BETA) as u32).max(2 * self.mss);
            }
        }
        self.cwnd = self.ssthresh;
        self.acked_acc = 0;
    }

    /// Retransmission timeout: back to one segment and slow start.
    pub fn on_timeout(&mut self, flight: u32) {
        let _ = flight;
        match self.algo {
            CcAlgo::Reno => self.ssthresh = (self.cwnd / 2).max(2 * self.mss),
            CcAlgo::Cubic => {
                let segs = f64::from(self.cwnd) / f64::from(self.mss);
                self.w_max = segs;
                self.w_last_max = segs;
                self.epoch = None;
                self.ssthresh = ((f64::from(self.cwnd) * BETA) as u32).max(2 * self.mss);
            }
        }
        self.cwnd = self.mss;
        self.acked_acc = 0;
    }

    /// Leaving recovery: the window is the threshold (RFC 6582 3.2 step 3,
    /// RFC 9438's cwnd = ssthresh).
    pub fn on_recovery_end(&mut self) {
        self.cwnd = self.ssthresh.max(2 * self.mss);
    }

    /// RFC 5681 restart after an idle period longer than an RTO, as Linux
    /// (`tcp_cwnd_restart`) with slow-start-after-idle on.
    pub fn on_idle_restart(&mut self) {
        self.cwnd = self.cwnd.min(INITIAL_CWND_SEGMENTS * self.mss);
        self.epoch = None;
    }

    /// Switch algorithm (TCP_CONGESTION), keeping the window.
    pub fn set_algo(&mut self, algo: CcAlgo) {
        self.algo = algo;
        self.epoch = None;
        self.acked_acc = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn slow_start_then_reno_avoidance() {
        let mut c = Congestion::new(CcAlgo::Reno, MSS);
        assert_eq!(c.cwnd(), 10 * MSS);
        let t = Instant::ZERO;
        c.on_ack(10 * MSS, t, None, true);
        assert_eq!(c.cwnd(), 20 * MSS);
        c.on_ack(5 * MSS, t, None, false);
        assert_eq!(c.cwnd(), 20 * MSS, "no growth when not cwnd-limited");
        c.on_loss(20 * MSS);
        assert_eq!((c.cwnd(), c.ssthresh()), (10 * MSS, 10 * MSS));
        // One window of ACKs adds one MSS.
        c.on_ack(10 * MSS, t, None, true);
        assert_eq!(c.cwnd(), 11 * MSS);
        c.on_timeout(11 * MSS);
        assert_eq!(c.cwnd(), MSS);
        assert_eq!(c.ssthresh(), 5500);
    }

    #[test]
    fn cubic_backs_off_by_beta_and_regrows_to_wmax() {
        let mut c = Congestion::new(CcAlgo::Cubic, MSS);
        let mut now = Instant::ZERO;
        c.on_ack(90 * MSS, now, None, true);
        assert_eq!(c.cwnd(), 100 * MSS);
        c.on_loss(100 * MSS);
        assert_eq!(c.cwnd(), 70 * MSS);
        assert!(!c.in_slow_start());
        // A long RTT, so that the cubic curve (not the Reno-friendly
        // estimate) decides.
        let rtt = Duration::from_millis(100);
        // K = cbrt(30 / 0.4) ~ 4.2 s: near W_max then, well above after.
        let mut at_k = 0;
        let mut early = 0;
        for step in 0..80 {
            now += rtt;
            let w = c.cwnd();
            c.on_ack(w, now, Some(rtt), true);
            if step == 20 {
                early = c.cwnd() / MSS;
            }
            if step == 41 {
                at_k = c.cwnd() / MSS;
            }
        }
        assert!((90..100).contains(&early), "concave approach: {early}");
        assert!((95..=105).contains(&at_k), "cwnd near W_max at K: {at_k}");
        assert!(
            c.cwnd() > 120 * MSS,
            "convex growth past W_max: {}",
            c.cwnd() / MSS
        );
        // Fast convergence: a second loss below the last max lowers W_max.
        let w = c.cwnd();
        c.on_loss(w);
        assert_eq!(c.cwnd(), (w as f64 * 0.7) as u32);
    }

    #[test]
    fn cubic_reno_friendly_at_small_windows() {
        let mut c = Congestion::new(CcAlgo::Cubic, MSS);
        c.on_loss(10 * MSS);
        let start = c.cwnd();
        let mut now = Instant::ZERO;
        let rtt = Duration::from_millis(1);
        for _ in 0..100 {
            now += rtt;
            let w = c.cwnd();
            c.on_ack(w, now, Some(rtt), true);
        }
        // At 1 ms RTT cubic alone would barely move in 100 ms; the Reno
        // estimate grows ~0.53 segment per RTT.
        assert!(c.cwnd() >= start + 40 * MSS, "{}", c.cwnd());
    }
}
