//! The narrow traits through which every module reaches the world
//! (Netstack3's first tenet, seeds/002): the clock, timers, randomness,
//! counters and events. A module's own context trait (`NeighborContext`,
//! `UdpContext`, ...) is one of these plus the few operations that are
//! really its own (send an ARP request, hand a datagram to IP), so that
//! its unit tests fake exactly that and nothing more.
//!
//! The stack owns no clock and no entropy source: the driver passes `now`
//! into every call and a seed into [`crate::StackConfig`]; [`StackRng`] is
//! the deterministic generator grown from it. [`TimerQueue`] is the one
//! timer store behind every module's `TimerContext`, and the fakes in
//! tests use it too, so a test "sleeps" by moving an `Instant`.

use core::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use crate::counters::Counter;
#[cfg(test)]
use crate::counters::Counters;
use crate::time::{Duration, Instant};

/// The current time, as the driver last told it.
pub trait InstantContext {
    fn now(&self) -> Instant;
}

/// Randomness (ephemeral ports, reachable-time jitter, IP idents, ISNs).
pub trait RngContext {
    fn random_u64(&mut self) -> u64;

    fn random_u32(&mut self) -> u32 {
        (self.random_u64() >> 32) as u32
    }
    /// Uniform in `lo..=hi` (`lo <= hi`).
    fn random_range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi.wrapping_sub(lo).wrapping_add(1);
        if span == 0 {
            return self.random_u64();
        }
        // Lemire's multiply-shift; the bias is below 2^-32 for our spans.
        lo + ((u128::from(self.random_u64()) * u128::from(span)) >> 64) as u64
    }
    /// A duration uniform in `[d/2, 3d/2)`: Linux's jitter for the
    /// neighbour reachable time (`neigh_rand_reach_time`).
    fn jitter(&mut self, d: Duration) -> Duration {
        let n = d.as_nanos().min(u128::from(u64::MAX / 2)) as u64;
        if n < 2 {
            return d;
        }
        Duration::from_nanos(self.random_range(n / 2, n / 2 + n - 1))
    }
}

/// Timers, identified by a module's own id type. Scheduling an id that is
/// already scheduled moves it; at most one instance of an id exists.
pub trait TimerContext<Id>: InstantContext {
    /// Returns the instant the timer was previously scheduled for.
    fn schedule_timer_at(&mut self, at: Instant, id: Id) -> Option<Instant>;
    fn cancel_timer(&mut self, id: &Id) -> Option<Instant>;
    fn scheduled_at(&self, id: &Id) -> Option<Instant>;

    fn schedule_timer(&mut self, after: Duration, id: Id) -> Option<Instant> {
        let at = self.now() + after;
        self.schedule_timer_at(at, id)
    }
}

/// Counters, named after Linux's (see [`crate::counters`]).
pub trait CounterContext {
    fn add_counter(&mut self, c: Counter, n: u64);
    fn increment(&mut self, c: Counter) {
        self.add_counter(c, 1)
    }
}

/// Observable state changes, emitted from where they happen (Netstack3's
/// third tenet). Not a callback: implementations only record the event.
pub trait EventContext<E> {
    fn on_event(&mut self, event: E);
}

/// xoshiro256++ seeded through SplitMix64: small, fast, and reproducible
/// from one `u64`, which is all a sans-IO stack wants from a generator.
/// Not cryptographic: what must be unguessable (ISNs, ports) mixes in a
/// keyed hash on top of it.
#[derive(Clone, Debug)]
pub struct StackRng {
    s: [u64; 4],
}

impl StackRng {
    pub fn new(seed: u64) -> StackRng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        StackRng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let r = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }
}

impl RngContext for StackRng {
    fn random_u64(&mut self) -> u64 {
        self.next_u64()
    }
}

/// A set of timers keyed by id: a binary heap of deadlines with lazy
/// deletion, and a map from id to its live deadline. Rescheduling and
/// cancelling are O(log n) and allocate nothing once the heap has grown
/// to its working size.
#[derive(Clone, Debug)]
pub struct TimerQueue<Id> {
    heap: BinaryHeap<Reverse<(Instant, u64, Id)>>,
    live: HashMap<Id, (Instant, u64)>,
    seq: u64,
}

impl<Id> Default for TimerQueue<Id> {
    fn default() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            seq: 0,
        }
    }
}

impl<Id: Clone + Eq + Hash + Ord> TimerQueue<Id> {
    pub fn schedule(&mut self, at: Instant, id: Id) -> Option<Instant> {
        self.seq += 1;
        let old = self.live.insert(id.clone(), (at, self.seq));
        self.heap.push(Reverse((at, self.seq, id)));
        self.compact();
        old.map(|(t, _)| t)
    }

    pub fn cancel(&mut self, id: &Id) -> Option<Instant> {
        let old = self.live.remove(id).map(|(t, _)| t);
        self.compact();
        old
    }

    pub fn get(&self, id: &Id) -> Option<Instant> {
        self.live.get(id).map(|&(t, _)| t)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_head();
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Removes and returns one timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Id)> {
        self.drop_stale_head();
        let Reverse((t, _, _)) = self.heap.peek()?;
        if *t > now {
            return None;
        }
        let Reverse((t, _, id)) = self.heap.pop()?;
        self.live.remove(&id);
        Some((t, id))
    }

    /// Every live timer, in no particular order (for tests and dumps).
    pub fn iter(&self) -> impl Iterator<Item = (&Id, Instant)> {
        self.live.iter().map(|(id, &(t, _))| (id, t))
    }

    fn drop_stale_head(&mut self) {
        while let Some(Reverse((_, seq, id))) = self.heap.peek() {
            match self.live.get(id) {
                Some(&(_, s)) if s == *seq => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }

    /// Rebuilds the heap when dead entries outnumber live ones, so that a
    /// timer rescheduled on every packet does not grow it without bound.
    fn compact(&mut self) {
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live.len() {
            let live = &self.live;
            self.heap
                .retain(|Reverse((_, seq, id))| live.get(id).is_some_and(|&(_, s)| s == *seq));
        }
    }
}

/// The common half of every fake context in unit tests: a clock that only
/// moves when told, timers, counters, recorded events, a seeded RNG.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    #[derive(Debug)]
    pub struct FakeCore<T, E> {
        pub now: Instant,
        pub timers: TimerQueue<T>,
        pub counters: Counters,
        pub events: Vec<E>,
        pub rng: StackRng,
    }

    impl<T, E> Default for FakeCore<T, E> {
        fn default() -> Self {
            FakeCore {
                now: Instant::from_millis(1_000_000),
                timers: TimerQueue::default(),
                counters: Counters::default(),
                events: Vec::new(),
                rng: StackRng::new(7),
            }
        }
    }

    impl<T: Clone + Eq + Hash + Ord, E> FakeCore<T, E> {
        /// Moves the clock to the next due timer (if any, and not past
        /// `limit`) and returns it.
        pub fn advance_to_next(&mut self, limit: Instant) -> Option<T> {
            let t = self.timers.next_deadline()?;
            if t > limit {
                return None;
            }
            self.now = self.now.max(t);
            self.timers.pop_due(self.now).map(|(_, id)| id)
        }
    }

    impl<T, E> InstantContext for FakeCore<T, E> {
        fn now(&self) -> Instant {
            self.now
        }
    }
    impl<T, E> RngContext for FakeCore<T, E> {
        fn random_u64(&mut self) -> u64 {
            self.rng.next_u64()
        }
    }
    impl<T: Clone + Eq + Hash + Ord, E> TimerContext<T> for FakeCore<T, E> {
        fn schedule_timer_at(&mut self, at: Instant, id: T) -> Option<Instant> {
            self.timers.schedule(at, id)
        }
        fn cancel_timer(&mut self, id: &T) -> Option<Instant> {
            self.timers.cancel(id)
        }
        fn scheduled_at(&self, id: &T) -> Option<Instant> {
            self.timers.get(id)
        }
    }
    impl<T, E> CounterContext for FakeCore<T, E> {
        fn add_counter(&mut self, c: Counter, n: u64) {
            self.counters.add(c, n)
        }
    }
    impl<T, E> EventContext<E> for FakeCore<T, E> {
        fn on_event(&mut self, event: E) {
            self.events.push(event)
        }
    }

    /// Implements the base context traits for a test context by
    /// delegating to its `FakeCore` field.
    macro_rules! delegate_core {
        ($ty:ty, $field:ident, $timer:ty, $event:ty) => {
            impl $crate::context::InstantContext for $ty {
                fn now(&self) -> $crate::time::Instant {
                    self.$field.now
                }
            }
            impl $crate::context::RngContext for $ty {
                fn random_u64(&mut self) -> u64 {
                    self.$field.rng.next_u64()
                }
            }
            impl $crate::context::TimerContext<$timer> for $ty {
                fn schedule_timer_at(
                    &mut self,
                    at: $crate::time::Instant,
                    id: $timer,
                ) -> Option<$crate::time::Instant> {
                    self.$field.timers.schedule(at, id)
                }
                fn cancel_timer(&mut self, id: &$timer) -> Option<$crate::time::Instant> {
                    self.$field.timers.cancel(id)
                }
                fn scheduled_at(&self, id: &$timer) -> Option<$crate::time::Instant> {
                    self.$field.timers.get(id)
                }
            }
            impl $crate::context::CounterContext for $ty {
                fn add_counter(&mut self, c: $crate::counters::Counter, n: u64) {
                    self.$field.counters.add(c, n)
                }
            }
            impl $crate::context::EventContext<$event> for $ty {
                fn on_event(&mut self, event: $event) {
                    self.$field.events.push(event)
                }
            }
        };
    }
    pub(crate) use delegate_core;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_queue_reschedule_and_cancel() {
        let mut q = TimerQueue::default();
        let t = |ms| Instant::from_millis(ms);
        assert_eq!(q.schedule(t(10), 'a'), None);
        q.schedule(t(5), 'b');
        assert_eq!(q.schedule(t(20), 'a'), Some(t(10)));
        assert_eq!(q.next_deadline(), Some(t(5)));
        assert_eq!(q.cancel(&'b'), Some(t(5)));
        assert_eq!(q.next_deadline(), Some(t(20)));
        assert_eq!(q.pop_due(t(19)), None);
        assert_eq!(q.pop_due(t(20)), Some((t(20), 'a')));
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn timer_queue_compacts() {
        let mut q = TimerQueue::default();
        for i in 0..10_000u64 {
            q.schedule(Instant::from_millis(i), 1u8);
        }
        assert!(q.heap.len() <= 130, "{}", q.heap.len());
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(Instant::from_millis(9_999)));
    }

    #[test]
    fn rng_is_reproducible_and_ranges_hold() {
        let mut a = StackRng::new(1);
        let mut b = StackRng::new(1);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(StackRng::new(2).next_u64(), StackRng::new(1).next_u64());
        for _ in 0..1000 {
            let v = a.random_range(32768, 60999);
            assert!((32768..=60999).contains(&v));
            let j = a.jitter(Duration::from_secs(30));
            assert!(j >= Duration::from_secs(15) && j < Duration::from_secs(45));
        }
        assert_eq!(a.random_range(5, 5), 5);
    }
}
