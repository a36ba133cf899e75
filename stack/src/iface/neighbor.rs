//! The neighbour table: IP address to MAC, with the reachability states of
//! RFC 4861 7.3.2 that Linux also uses for ARP (`net/core/neighbour.c`).
//!
//! Written once for both IP versions: ARP (`super::arp`) and, later, NDP
//! feed it the same updates and it asks its context for solicitations
//! without knowing whether they are ARP requests or neighbour
//! solicitations.
//!
//! States and timers, with Linux's defaults (`/proc/sys/net/ipv4/neigh/*`):
//!
//! | state | on entry | timer |
//! |---|---|---|
//! | `Incomplete` | a packet needs the MAC: queue it, broadcast a solicitation | every `retrans_time` (1 s) another, `mcast_solicit` (3) in all, then `Failed` |
//! | `Reachable` | a solicited reply, or an upper-layer confirmation | after `reachable_time` (30 s, jittered to 15..45 s) without confirmation: `Delay` if used lately, else `Stale` |
//! | `Stale` | an unsolicited update, or reachability ran out | none: the next packet moves it to `Delay` and goes out |
//! | `Delay` | a packet was sent on a stale entry | after `delay_first_probe_time` (5 s): `Reachable` if confirmed meanwhile, else `Probe` |
//! | `Probe` | unicast solicitations to the cached MAC | every 1 s, `ucast_solicit` (3), then `Failed` |
//! | `Failed` | resolution failed: every queued packet is reported (ICMP host unreachable to its sender) | none; the next packet starts again at `Incomplete` |
//! | `Permanent` | a static entry | none |
//!
//! Packets waiting for resolution are held in a bounded per-entry queue
//! (`unres_qlen_bytes`, 212992 bytes with `sk_buff` overhead); when it is
//! full the oldest is dropped (`unres_discards`), as Linux does.

use std::collections::{HashMap, VecDeque};

use crate::fasthash::FastBuild;

use crate::context::{CounterContext, EventContext, RngContext, TimerContext};
use crate::counters::Counter;
use crate::iface::Frame;
use crate::ip::Ip;
use crate::time::{Duration, Instant};
use crate::wire::Mac;

/// A neighbour's state (RFC 4861 7.3.2; Linux's `NUD_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NeighborState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    Permanent,
}

impl NeighborState {
    /// Whether the entry holds a MAC that may be used (`NUD_VALID`).
    pub fn is_valid(self) -> bool {
        !matches!(self, NeighborState::Incomplete | NeighborState::Failed)
    }
    /// `NUD_CONNECTED`: known reachable right now.
    pub fn is_connected(self) -> bool {
        matches!(self, NeighborState::Reachable | NeighborState::Permanent)
    }
}

/// Linux's neighbour parameters (`/proc/sys/net/ipv4/neigh/default/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    /// `base_reachable_time_ms`.
    pub base_reachable_time: Duration,
    /// `retrans_time_ms`.
    pub retrans_time: Duration,
    /// `delay_first_probe_time`.
    pub delay_first_probe_time: Duration,
    /// `mcast_solicit`: broadcast solicitations while incomplete.
    pub mcast_solicit: u32,
    /// `ucast_solicit`: unicast probes of a stale entry.
    pub ucast_solicit: u32,
    /// `unres_qlen_bytes`.
    pub unres_qlen_bytes: usize,
    /// `gc_thresh3`: the hard limit on entries.
    pub max_entries: usize,
    /// `locktime`: a different MAC within this time of the last update is
    /// ignored (the first of several proxy replies wins), unless the
    /// update is a gratuitous announcement.
    pub locktime: Duration,
    /// Another stack resolves neighbours for this one (shunt sharing the
    /// kernel's address: ARP replies and advertisements go to the
    /// kernel). [`NeighborContext::send_solicitation`] then means "ask
    /// the resolver"; entries come from [`NeighborTable::set_external`]
    /// and never age here (the resolver reports every change).
    pub external: bool,
}

impl Default for NeighborConfig {
    fn default() -> NeighborConfig {
        NeighborConfig {
            base_reachable_time: Duration::from_secs(30),
            retrans_time: Duration::from_secs(1),
            delay_first_probe_time: Duration::from_secs(5),
            mcast_solicit: 3,
            ucast_solicit: 3,
            unres_qlen_bytes: 212_992,
            max_entries: 1024,
            locktime: Duration::from_secs(1),
            external: false,
        }
    }
}

/// The neighbour timer of one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighborTimerId<I: Ip>(pub I::Addr);

/// A neighbour entry changed: its state or its MAC (`state: None`: the
/// entry was removed). Enough to rebuild `ip neigh` from the events alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborEvent<I: Ip> {
    pub addr: I::Addr,
    pub state: Option<NeighborState>,
    pub mac: Option<Mac>,
}

/// What the neighbour table needs from the stack.
pub trait NeighborContext<I: Ip>:
    TimerContext<NeighborTimerId<I>> + RngContext + CounterContext + EventContext<NeighborEvent<I>>
{
    /// Sends a solicitation for `target` (an ARP request, a neighbour
    /// solicitation): to the broadcast/solicited-node group when
    /// `unicast` is `None`, else to that MAC. `src` is the source address
    /// of the packet that needs the resolution, if it is ours (Linux's
    /// `arp_announce` 0).
    fn send_solicitation(&mut self, target: I::Addr, src: Option<I::Addr>, unicast: Option<Mac>);
    /// Transmits a frame whose destination MAC is now filled in.
    fn send_frame(&mut self, frame: Frame);
    /// Resolution of `target` failed; `frame` was waiting for it. Linux
    /// answers with an ICMP host unreachable to the frame's sender
    /// (`arp_error_report`), which for a local sender ends up as
    /// `EHOSTUNREACH` on its socket.
    fn resolution_failed(&mut self, target: I::Addr, frame: Frame);
    /// A frame is dropped; its buffer goes back to the pool.
    fn drop_frame(&mut self, frame: Frame);
}

/// What the external resolver says about a neighbour
/// ([`NeighborConfig::external`]; the kernel's `NUD_*` states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternalNeighbor {
    /// `NUD_REACHABLE`: use it.
    Reachable(Mac),
    /// `NUD_STALE`/`DELAY`/`PROBE`: use it; the next use asks the
    /// resolver to confirm it.
    Stale(Mac),
    /// `NUD_PERMANENT`/`NOARP`.
    Permanent(Mac),
    /// `NUD_FAILED`: packets waiting for it fail (host unreachable).
    Failed,
    /// The resolver forgot it: the next packet asks again.
    Removed,
}

/// How an update asserts the neighbour's state (`neigh_update`'s `new`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateState {
    /// A solicited, unicast answer: the neighbour is reachable.
    Reachable,
    /// Anything else (a request from it, a broadcast reply): the MAC is
    /// probably right but reachability is not confirmed.
    Stale,
}

/// One update from a received ARP/NDP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborUpdate {
    pub mac: Mac,
    pub state: UpdateState,
    /// May replace a different MAC on a valid entry
    /// (`NEIGH_UPDATE_F_OVERRIDE`).
    pub override_mac: bool,
    /// Create the entry if there is none.
    pub create: bool,
    /// A different MAC without `override_mac` is not taken, but a
    /// reachable entry becomes stale (`NEIGH_UPDATE_F_WEAK_OVERRIDE`: an
    /// NDP advertisement with O=0, RFC 4861 7.2.5).
    pub weak_override: bool,
}

#[derive(Debug)]
struct Entry<I: Ip> {
    state: NeighborState,
    mac: Mac,
    probes: u32,
    updated: Instant,
    used: Instant,
    confirmed: Instant,
    reachable_time: Duration,
    queue: VecDeque<Frame>,
    queue_bytes: usize,
    src_hint: Option<I::Addr>,
}

impl<I: Ip> Entry<I> {
    fn new(now: Instant) -> Entry<I> {
        Entry {
            state: NeighborState::Failed,
            mac: Mac::ZERO,
            probes: 0,
            updated: now,
            used: now,
            confirmed: Instant::ZERO,
            reachable_time: Duration::from_secs(30),
            queue: VecDeque::new(),
            queue_bytes: 0,
            src_hint: None,
        }
    }
}

/// One neighbour table (one per IP version on the device).
#[derive(Debug)]
pub struct NeighborTable<I: Ip> {
    entries: HashMap<I::Addr, Entry<I>, FastBuild>,
    config: NeighborConfig,
    /// The resolved neighbour `send` went to last (address, MAC, last
    /// use), so that a flow's frames skip the table. Only `send` uses it;
    /// every other change of the table first writes it back
    /// ([`NeighborTable::sync`]), so its entry's state cannot change
    /// while it is here.
    fast: Option<(I::Addr, Mac, Instant)>,
}

/// A snapshot of one entry (`ip neigh show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborInfo<I: Ip> {
    pub addr: I::Addr,
    pub state: NeighborState,
    /// `None` while incomplete or failed.
    pub mac: Option<Mac>,
    pub queued: usize,
}

impl<I: Ip> NeighborTable<I> {
    pub fn new(config: NeighborConfig) -> NeighborTable<I> {
        NeighborTable::with_seed(config, FastBuild::default().0)
    }

    /// [`NeighborTable::new`] with the table's hash seed.
    pub fn with_seed(config: NeighborConfig, seed: u64) -> NeighborTable<I> {
        NeighborTable {
            entries: HashMap::with_hasher(FastBuild(seed)),
            config,
            fast: None,
        }
    }

    pub fn config(&self) -> &NeighborConfig {
        &self.config
    }

    /// Parameters a router may change (RFC 4861 6.3.4: reachable time,
    /// retransmission timer).
    pub fn config_mut(&mut self) -> &mut NeighborConfig {
        &mut self.config
    }

    /// Writes the `send` shortcut's last use back into its entry and
    /// drops it: before anything else reads or changes the entries.
    fn sync(&mut self) {
        if let Some((a, _, used)) = self.fast.take()
            && let Some(e) = self.entries.get_mut(&a)
        {
            e.used = e.used.max(used);
        }
    }

    pub fn get(&self, addr: &I::Addr) -> Option<NeighborInfo<I>> {
        self.entries.get(addr).map(|e| info(*addr, e))
    }

    pub fn iter(&self) -> impl Iterator<Item = NeighborInfo<I>> + '_ {
        self.entries.iter().map(|(a, e)| info(*a, e))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the entry's MAC or state was last set from the network: for
    /// ARP's `locktime` rule.
    pub fn last_updated(&self, addr: &I::Addr) -> Option<Instant> {
        self.entries.get(addr).map(|e| e.updated)
    }

    /// Sends `frame` (Ethernet header written, destination MAC to fill)
    /// to the neighbour `next_hop`, resolving it first if need be
    /// (`neigh_resolve_output`).
    pub fn send<C: NeighborContext<I>>(
        &mut self,
        ctx: &mut C,
        next_hop: I::Addr,
        mut frame: Frame,
        src: Option<I::Addr>,
    ) {
        let now = ctx.now();
        if let Some((a, mac, used)) = &mut self.fast
            && *a == next_hop
        {
            *used = now;
            frame.set_dst_mac(*mac);
            ctx.send_frame(frame);
            return;
        }
        self.sync();
        // The common case in one lookup: a resolved neighbour.
        if let Some(e) = self.entries.get_mut(&next_hop)
            && matches!(
                e.state,
                NeighborState::Reachable
                    | NeighborState::Delay
                    | NeighborState::Probe
                    | NeighborState::Permanent
            )
        {
            e.used = now;
            self.fast = Some((next_hop, e.mac, now));
            frame.set_dst_mac(e.mac);
            ctx.send_frame(frame);
            return;
        }
        if !self.entries.contains_key(&next_hop) && !self.make_room(ctx) {
            ctx.increment(Counter::NeighTableFulls);
            ctx.drop_frame(frame);
            return;
        }
        let cfg = self.config;
        let e = self
            .entries
            .entry(next_hop)
            .or_insert_with(|| Entry::new(now));
        e.used = now;
        match e.state {
            NeighborState::Reachable
            | NeighborState::Delay
            | NeighborState::Probe
            | NeighborState::Permanent => {
                frame.set_dst_mac(e.mac);
                ctx.send_frame(frame);
            }
            NeighborState::Stale => {
                frame.set_dst_mac(e.mac);
                e.state = NeighborState::Delay;
                e.updated = now;
                if cfg.external {
                    // The resolver confirms it (the kernel moves its entry
                    // to DELAY and probes) and reports the outcome.
                    ctx.send_solicitation(next_hop, src, Some(e.mac));
                } else {
                    ctx.schedule_timer(cfg.delay_first_probe_time, NeighborTimerId(next_hop));
                }
                emit(ctx, next_hop, e);
                ctx.send_frame(frame);
            }
            NeighborState::Incomplete => enqueue(ctx, &cfg, e, frame),
            NeighborState::Failed => {
                e.state = NeighborState::Incomplete;
                e.updated = now;
                e.probes = 0;
                e.src_hint = src;
                enqueue(ctx, &cfg, e, frame);
                emit(ctx, next_hop, e);
                e.probes += 1;
                ctx.send_solicitation(next_hop, e.src_hint, None);
                ctx.schedule_timer(cfg.retrans_time, NeighborTimerId(next_hop));
            }
        }
    }

    /// Applies what a received ARP/NDP packet says about `addr`
    /// (`neigh_update`). Returns whether the entry exists afterwards.
    pub fn update<C: NeighborContext<I>>(
        &mut self,
        ctx: &mut C,
        addr: I::Addr,
        upd: NeighborUpdate,
    ) -> bool {
        let now = ctx.now();
        // The `send` shortcut may hold this entry's old MAC: write it back
        // first (an override must reach the next frame).
        self.sync();
        if !self.entries.contains_key(&addr) {
            if !upd.create || !self.make_room(ctx) {
                return false;
            }
            self.entries.insert(addr, Entry::new(now));
        }
        let cfg = self.config;
        let Some(e) = self.entries.get_mut(&addr) else {
            return false;
        };
        let old = e.state;
        if old == NeighborState::Permanent {
            return true;
        }
        let mut new = match upd.state {
            UpdateState::Reachable => NeighborState::Reachable,
            UpdateState::Stale => NeighborState::Stale,
        };
        let mac = upd.mac;
        if old.is_valid() {
            if mac != e.mac {
                if !upd.override_mac {
                    if upd.weak_override && old == NeighborState::Reachable {
                        ctx.cancel_timer(&NeighborTimerId(addr));
                        e.state = NeighborState::Stale;
                        e.updated = now;
                        emit(ctx, addr, e);
                    }
                    return true;
                }
            } else if new == NeighborState::Stale {
                new = old;
            }
        }
        let changed = new != old || mac != e.mac;
        e.mac = mac;
        e.updated = now;
        if new.is_connected() {
            e.confirmed = now;
        }
        if new != old {
            ctx.cancel_timer(&NeighborTimerId(addr));
            e.state = new;
            e.probes = 0;
            if new == NeighborState::Reachable && !cfg.external {
                e.reachable_time = ctx.jitter(cfg.base_reachable_time);
                ctx.schedule_timer(e.reachable_time, NeighborTimerId(addr));
            }
        }
        if changed {
            emit(ctx, addr, e);
        }
        if !old.is_valid() && new.is_valid() {
            // Flush what waited, through the normal path (a stale entry
            // moves to delay on the first packet, as in Linux).
            let queue = core::mem::take(&mut e.queue);
            e.queue_bytes = 0;
            for f in queue {
                self.send(ctx, addr, f, None);
            }
        }
        true
    }

    /// An upper layer saw proof of two-way reachability (a TCP ACK for
    /// new data): `neigh_confirm`.
    pub fn confirm<C: NeighborContext<I>>(&mut self, ctx: &mut C, addr: &I::Addr) {
        self.sync();
        if let Some(e) = self.entries.get_mut(addr) {
            e.confirmed = ctx.now();
        }
    }

    /// A static entry (`ip neigh replace ... nud permanent`).
    pub fn add_static<C: NeighborContext<I>>(&mut self, ctx: &mut C, addr: I::Addr, mac: Mac) {
        self.sync();
        let now = ctx.now();
        ctx.cancel_timer(&NeighborTimerId(addr));
        let e = self.entries.entry(addr).or_insert_with(|| Entry::new(now));
        e.state = NeighborState::Permanent;
        e.mac = mac;
        e.updated = now;
        emit(ctx, addr, e);
        let queue = core::mem::take(&mut e.queue);
        e.queue_bytes = 0;
        for f in queue {
            self.send(ctx, addr, f, None);
        }
    }

    /// What the external resolver reports about `addr`
    /// ([`NeighborConfig::external`]). A valid report sends what waited
    /// for it; `Failed` fails what waited (as when resolution times out
    /// here); `Removed` forgets a valid entry, keeping one that still
    /// waits (its own request is in flight).
    pub fn set_external<C: NeighborContext<I>>(
        &mut self,
        ctx: &mut C,
        addr: I::Addr,
        report: ExternalNeighbor,
    ) {
        self.sync();
        let now = ctx.now();
        let (state, mac) = match report {
            ExternalNeighbor::Reachable(m) => (NeighborState::Reachable, m),
            ExternalNeighbor::Stale(m) => (NeighborState::Stale, m),
            ExternalNeighbor::Permanent(m) => (NeighborState::Permanent, m),
            ExternalNeighbor::Failed => {
                let Some(e) = self.entries.get_mut(&addr) else {
                    return;
                };
                if e.state == NeighborState::Failed {
                    return;
                }
                ctx.cancel_timer(&NeighborTimerId(addr));
                let was_waiting = e.state == NeighborState::Incomplete;
                e.state = NeighborState::Failed;
                e.updated = now;
                e.mac = Mac::ZERO;
                emit(ctx, addr, e);
                if was_waiting {
                    ctx.increment(Counter::NeighResFailed);
                }
                e.queue_bytes = 0;
                while let Some(f) = e.queue.pop_front() {
                    ctx.resolution_failed(addr, f);
                }
                return;
            }
            ExternalNeighbor::Removed => {
                if self.entries.get(&addr).is_some_and(|e| e.state.is_valid()) {
                    self.remove(ctx, &addr);
                }
                return;
            }
        };
        if !self.entries.contains_key(&addr) && !self.make_room(ctx) {
            ctx.increment(Counter::NeighTableFulls);
            return;
        }
        let e = self.entries.entry(addr).or_insert_with(|| Entry::new(now));
        let changed = e.state != state || e.mac != mac;
        ctx.cancel_timer(&NeighborTimerId(addr));
        e.state = state;
        e.mac = mac;
        e.probes = 0;
        e.updated = now;
        if state.is_connected() {
            e.confirmed = now;
        }
        if changed {
            emit(ctx, addr, e);
        }
        let queue = core::mem::take(&mut e.queue);
        e.queue_bytes = 0;
        for f in queue {
            self.send(ctx, addr, f, None);
        }
    }

    /// Removes an entry; packets waiting on it are dropped.
    pub fn remove<C: NeighborContext<I>>(&mut self, ctx: &mut C, addr: &I::Addr) -> bool {
        self.sync();
        let Some(e) = self.entries.remove(addr) else {
            return false;
        };
        ctx.cancel_timer(&NeighborTimerId(*addr));
        for f in e.queue {
            ctx.drop_frame(f);
        }
        ctx.on_event(NeighborEvent {
            addr: *addr,
            state: None,
            mac: None,
        });
        true
    }

    /// The entry's timer fired (`neigh_timer_handler`).
    pub fn handle_timer<C: NeighborContext<I>>(&mut self, ctx: &mut C, addr: I::Addr) {
        self.sync();
        let now = ctx.now();
        let cfg = self.config;
        let Some(e) = self.entries.get_mut(&addr) else {
            return;
        };
        let id = NeighborTimerId(addr);
        match e.state {
            NeighborState::Reachable => {
                if now < e.confirmed + e.reachable_time {
                    ctx.schedule_timer_at(e.confirmed + e.reachable_time, id);
                } else if now < e.used + cfg.delay_first_probe_time {
                    e.state = NeighborState::Delay;
                    e.updated = now;
                    ctx.schedule_timer(cfg.delay_first_probe_time, id);
                    emit(ctx, addr, e);
                } else {
                    e.state = NeighborState::Stale;
                    e.updated = now;
                    emit(ctx, addr, e);
                }
            }
            NeighborState::Delay => {
                if now < e.confirmed + cfg.delay_first_probe_time {
                    e.state = NeighborState::Reachable;
                    e.updated = now;
                    e.reachable_time = ctx.jitter(cfg.base_reachable_time);
                    ctx.schedule_timer_at(e.confirmed + e.reachable_time, id);
                    emit(ctx, addr, e);
                } else {
                    e.state = NeighborState::Probe;
                    e.updated = now;
                    e.probes = 1;
                    emit(ctx, addr, e);
                    ctx.send_solicitation(addr, e.src_hint, Some(e.mac));
                    ctx.schedule_timer(cfg.retrans_time, id);
                }
            }
            NeighborState::Incomplete | NeighborState::Probe => {
                let max = if e.state == NeighborState::Incomplete {
                    // An external resolver's own verdict (the kernel's
                    // FAILED after the same probes) normally comes first;
                    // one more interval covers its lateness.
                    cfg.mcast_solicit + u32::from(cfg.external)
                } else {
                    cfg.ucast_solicit
                };
                if e.probes >= max {
                    e.state = NeighborState::Failed;
                    e.updated = now;
                    e.mac = Mac::ZERO;
                    emit(ctx, addr, e);
                    ctx.increment(Counter::NeighResFailed);
                    e.queue_bytes = 0;
                    while let Some(f) = e.queue.pop_front() {
                        ctx.resolution_failed(addr, f);
                    }
                } else {
                    e.probes += 1;
                    let unicast = (e.state == NeighborState::Probe).then_some(e.mac);
                    ctx.send_solicitation(addr, e.src_hint, unicast);
                    ctx.schedule_timer(cfg.retrans_time, id);
                }
            }
            NeighborState::Stale | NeighborState::Failed | NeighborState::Permanent => {}
        }
    }

    /// Frees a slot when the table is full by forgetting the least
    /// recently used failed or stale entry (Linux's forced GC). Returns
    /// whether there is room.
    fn make_room<C: NeighborContext<I>>(&mut self, ctx: &mut C) -> bool {
        self.sync();
        if self.entries.len() < self.config.max_entries {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, NeighborState::Failed | NeighborState::Stale))
            .min_by_key(|(_, e)| (e.state != NeighborState::Failed, e.used))
            .map(|(a, _)| *a);
        match victim {
            Some(a) => self.remove(ctx, &a),
            None => false,
        }
    }
}

fn info<I: Ip>(addr: I::Addr, e: &Entry<I>) -> NeighborInfo<I> {
    NeighborInfo {
        addr,
        state: e.state,
        mac: e.state.is_valid().then_some(e.mac),
        queued: e.queue.len(),
    }
}

fn emit<I: Ip, C: NeighborContext<I>>(ctx: &mut C, addr: I::Addr, e: &Entry<I>) {
    ctx.on_event(NeighborEvent {
        addr,
        state: Some(e.state),
        mac: e.state.is_valid().then_some(e.mac),
    });
}

fn enqueue<I: Ip, C: NeighborContext<I>>(
    ctx: &mut C,
    cfg: &NeighborConfig,
    e: &mut Entry<I>,
    frame: Frame,
) {
    let size = frame.truesize();
    while e.queue_bytes + size > cfg.unres_qlen_bytes {
        let Some(old) = e.queue.pop_front() else {
            break;
        };
        e.queue_bytes -= old.truesize();
        ctx.increment(Counter::NeighUnresDiscards);
        ctx.drop_frame(old);
    }
    if size > cfg.unres_qlen_bytes {
        ctx.increment(Counter::NeighUnresDiscards);
        ctx.drop_frame(frame);
        return;
    }
    e.queue_bytes += size;
    e.queue.push_back(frame);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::context::fake::{FakeCore, delegate_core};
    use crate::ip::{Ipv4, Ipv4Addr};

    type Id = NeighborTimerId<Ipv4>;
    type Ev = NeighborEvent<Ipv4>;

    #[derive(Default)]
    struct Ctx {
        core: FakeCore<Id, Ev>,
        solicits: Vec<(Ipv4Addr, Option<Ipv4Addr>, Option<Mac>)>,
        sent: Vec<Frame>,
        failed: Vec<(Ipv4Addr, Frame)>,
        dropped: usize,
    }
    delegate_core!(Ctx, core, Id, Ev);

    impl NeighborContext<Ipv4> for Ctx {
        fn send_solicitation(&mut self, t: Ipv4Addr, s: Option<Ipv4Addr>, u: Option<Mac>) {
            self.solicits.push((t, s, u));
        }
        fn send_frame(&mut self, frame: Frame) {
            self.sent.push(frame);
        }
        fn resolution_failed(&mut self, t: Ipv4Addr, frame: Frame) {
            self.failed.push((t, frame));
        }
        fn drop_frame(&mut self, _: Frame) {
            self.dropped += 1;
        }
    }

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const MAC: Mac = Mac([2, 0, 0, 0, 0, 2]);
    const MAC2: Mac = Mac([2, 0, 0, 0, 0, 3]);

    fn frame(tag: u8) -> Frame {
        let mut v = vec![0u8; 60];
        v[14] = tag;
        Frame::from_vec(v)
    }

    fn run_timers(t: &mut NeighborTable<Ipv4>, c: &mut Ctx, until: Instant) {
        while let Some(NeighborTimerId(a)) = c.core.advance_to_next(until) {
            t.handle_timer(c, a);
        }
        c.core.now = c.core.now.max(until);
    }

    fn reply(mac: Mac) -> NeighborUpdate {
        NeighborUpdate {
            mac,
            state: UpdateState::Reachable,
            override_mac: false,
            create: false,
            weak_override: false,
        }
    }

    #[test]
    fn resolve_then_send_queued() {
        let mut t = NeighborTable::<Ipv4>::new(NeighborConfig::default());
        let mut c = Ctx::default();
        t.send(&mut c, A, frame(1), Some(SRC));
        t.send(&mut c, A, frame(2), Some(SRC));
        assert_eq!(c.solicits, vec![(A, Some(SRC), None)]);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Incomplete);
        assert_eq!(t.get(&A).unwrap().queued, 2);
        assert!(c.sent.is_empty());
        assert!(t.update(&mut c, A, reply(MAC)));
        assert_eq!(c.sent.len(), 2);
        assert_eq!(&c.sent[0].as_slice()[..6], &MAC.0);
        assert_eq!(c.sent[0].as_slice()[14], 1, "in order");
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Reachable);
        t.send(&mut c, A, frame(3), None);
        assert_eq!(c.sent.len(), 3);
        assert_eq!(c.solicits.len(), 1);
        let states: Vec<_> = c.core.events.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            vec![
                Some(NeighborState::Incomplete),
                Some(NeighborState::Reachable)
            ]
        );
    }

    #[test]
    fn retries_then_fails_and_reports_each_queued_packet() {
        let mut t = NeighborTable::<Ipv4>::new(NeighborConfig::default());
        let mut c = Ctx::default();
        let t0 = c.core.now;
        t.send(&mut c, A, frame(1), Some(SRC));
        t.send(&mut c, A, frame(2), Some(SRC));
        run_timers(&mut t, &mut c, t0 + Duration::from_millis(2_999));
        assert_eq!(c.solicits.len(), 3, "three broadcast requests, 1 s apart");
        assert!(c.failed.is_empty());
        run_timers(&mut t, &mut c, t0 + Duration::from_secs(3));
        assert_eq!(c.failed.len(), 2);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Failed);
        assert_eq!(c.core.counters[Counter::NeighResFailed], 1);
        assert!(c.core.timers.is_empty());
        // The next packet starts over.
        t.send(&mut c, A, frame(3), Some(SRC));
        assert_eq!(c.solicits.len(), 4);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Incomplete);
    }

    #[test]
    fn reachable_stale_delay_probe_failed() {
        let mut t = NeighborTable::<Ipv4>::new(NeighborConfig::default());
        let mut c = Ctx::default();
        t.send(&mut c, A, frame(1), Some(SRC));
        t.update(&mut c, A, reply(MAC));
        let t0 = c.core.now;
        // No traffic: reachable for 15..45 s, then stale, no timer.
        run_timers(&mut t, &mut c, t0 + Duration::from_secs(46));
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Stale);
        assert!(c.core.timers.is_empty());
        // A packet on a stale entry goes out at once and starts DELAY.
        t.send(&mut c, A, frame(2), None);
        assert_eq!(c.sent.len(), 2);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Delay);
        let t1 = c.core.now;
        run_timers(&mut t, &mut c, t1 + Duration::from_secs(5));
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Probe);
        assert_eq!(c.solicits.last(), Some(&(A, Some(SRC), Some(MAC))));
        // Packets still flow to the cached MAC while probing.
        t.send(&mut c, A, frame(3), None);
        assert_eq!(c.sent.len(), 3);
        run_timers(&mut t, &mut c, t1 + Duration::from_secs(8));
        assert_eq!(c.solicits.iter().filter(|s| s.2 == Some(MAC)).count(), 3);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Failed);
    }

    #[test]
    fn delay_confirmed_goes_back_to_reachable() {
        let mut t = NeighborTable::<Ipv4>::new(NeighborConfig::default());
        let mut c = Ctx::default();
        t.update(
            &mut c,
            A,
            NeighborUpdate {
                mac: MAC,
                state: UpdateState::Stale,
                override_mac: false,
                create: true,
                weak_override: false,
            },
        );
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Stale);
        t.send(&mut c, A, frame(1), None);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Delay);
        c.core.now += Duration::from_secs(1);
        t.confirm(&mut c, &A);
        let until = c.core.now + Duration::from_secs(5);
        run_timers(&mut t, &mut c, until);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Reachable);
        assert!(c.solicits.is_empty());
    }

    #[test]
    fn reachable_used_recently_goes_to_delay() {
        let mut t = NeighborTable::<Ipv4>::new(NeighborConfig::default());
        let mut c = Ctx::default();
        t.send(&mut c, A, frame(1), None);
        t.update(&mut c, A, reply(MAC));
        let rt = c.core.timers.get(&NeighborTimerId(A)).unwrap();
        c.core.now = rt.checked_sub(Duration::from_secs(1)).unwrap();
        t.send(&mut c, A, frame(2), None);
        run_timers(&mut t, &mut c, rt);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Delay);
    }

    #[test]
    fn mac_change_needs_override() {
        let mut t = NeighborTable::<Ipv4>::new(NeighborConfig::default());
        let mut c = Ctx::default();
        t.send(&mut c, A, frame(1), None);
        t.update(&mut c, A, reply(MAC));
        t.update(&mut c, A, reply(MAC2));
        assert_eq!(t.get(&A).unwrap().mac, Some(MAC));
        t.update(
            &mut c,
            A,
            NeighborUpdate {
                mac: MAC2,
                state: UpdateState::Stale,
                override_mac: true,
                create: false,
                weak_override: false,
            },
        );
        let i = t.get(&A).unwrap();
        assert_eq!((i.mac, i.state), (Some(MAC2), NeighborState::Stale));
        // Same MAC, stale: state kept.
        t.update(&mut c, A, reply(MAC2));
        t.update(
            &mut c,
            A,
            NeighborUpdate {
                mac: MAC2,
                state: UpdateState::Stale,
                override_mac: false,
                create: false,
                weak_override: false,
            },
        );
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Reachable);
        // No entry, no create: nothing.
        assert!(!t.update(&mut c, SRC, reply(MAC)));
        assert!(t.get(&SRC).is_none());
    }

    #[test]
    fn queue_is_bounded_oldest_dropped() {
        let cfg = NeighborConfig {
            unres_qlen_bytes: 3 * (60 + crate::iface::SKB_OVERHEAD),
            ..NeighborConfig::default()
        };
        let mut t = NeighborTable::<Ipv4>::new(cfg);
        let mut c = Ctx::default();
        for i in 0..5 {
            t.send(&mut c, A, frame(i), None);
        }
        assert_eq!(t.get(&A).unwrap().queued, 3);
        assert_eq!(c.core.counters[Counter::NeighUnresDiscards], 2);
        assert_eq!(c.dropped, 2);
        t.update(&mut c, A, reply(MAC));
        let tags: Vec<u8> = c.sent.iter().map(|f| f.as_slice()[14]).collect();
        assert_eq!(tags, vec![2, 3, 4]);
    }

    #[test]
    fn table_full_evicts_failed_or_drops() {
        let cfg = NeighborConfig {
            max_entries: 2,
            ..NeighborConfig::default()
        };
        let mut t = NeighborTable::<Ipv4>::new(cfg);
        let mut c = Ctx::default();
        let b = Ipv4Addr::new(192, 0, 2, 3);
        let d = Ipv4Addr::new(192, 0, 2, 4);
        t.send(&mut c, A, frame(1), None);
        t.send(&mut c, b, frame(1), None);
        t.send(&mut c, d, frame(1), None);
        assert_eq!(c.core.counters[Counter::NeighTableFulls], 1);
        assert!(t.get(&d).is_none());
        let t0 = c.core.now;
        run_timers(&mut t, &mut c, t0 + Duration::from_secs(3));
        t.send(&mut c, d, frame(1), None);
        assert_eq!(t.get(&d).unwrap().state, NeighborState::Incomplete);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn static_entries_never_change() {
        let mut t = NeighborTable::<Ipv4>::new(NeighborConfig::default());
        let mut c = Ctx::default();
        t.add_static(&mut c, A, MAC);
        t.update(
            &mut c,
            A,
            NeighborUpdate {
                mac: MAC2,
                state: UpdateState::Reachable,
                override_mac: true,
                create: true,
                weak_override: false,
            },
        );
        t.send(&mut c, A, frame(1), None);
        assert_eq!(&c.sent[0].as_slice()[..6], &MAC.0);
        assert!(c.core.timers.is_empty());
        assert!(t.remove(&mut c, &A));
        assert_eq!(c.core.events.last().unwrap().state, None);
    }

    fn external() -> NeighborConfig {
        NeighborConfig {
            external: true,
            ..NeighborConfig::default()
        }
    }

    #[test]
    fn external_queues_asks_then_sends_on_report() {
        let mut t = NeighborTable::<Ipv4>::new(external());
        let mut c = Ctx::default();
        t.send(&mut c, A, frame(1), Some(SRC));
        t.send(&mut c, A, frame(2), Some(SRC));
        assert_eq!(c.solicits, vec![(A, Some(SRC), None)], "one request");
        assert!(c.sent.is_empty());
        t.set_external(&mut c, A, ExternalNeighbor::Reachable(MAC));
        assert_eq!(c.sent.len(), 2);
        assert_eq!(&c.sent[1].as_slice()[..6], &MAC.0);
        assert_eq!(c.sent[0].as_slice()[14], 1, "in order");
        // A reachable entry never ages here: no timer, no probe.
        assert!(c.core.timers.is_empty());
        let until = c.core.now + Duration::from_secs(600);
        run_timers(&mut t, &mut c, until);
        t.send(&mut c, A, frame(3), None);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Reachable);
        assert_eq!(c.solicits.len(), 1);
        assert_eq!(c.sent.len(), 3);
    }

    #[test]
    fn external_stale_is_used_and_confirmed_by_the_resolver() {
        let mut t = NeighborTable::<Ipv4>::new(external());
        let mut c = Ctx::default();
        t.set_external(&mut c, A, ExternalNeighbor::Stale(MAC));
        t.send(&mut c, A, frame(1), Some(SRC));
        assert_eq!(c.sent.len(), 1, "a stale MAC is used at once");
        assert_eq!(c.solicits, vec![(A, Some(SRC), Some(MAC))]);
        t.send(&mut c, A, frame(2), Some(SRC));
        assert_eq!(c.solicits.len(), 1, "asked once per stale period");
        assert!(c.core.timers.is_empty(), "the resolver decides");
        t.set_external(&mut c, A, ExternalNeighbor::Reachable(MAC2));
        t.send(&mut c, A, frame(3), None);
        assert_eq!(&c.sent[2].as_slice()[..6], &MAC2.0);
    }

    #[test]
    fn external_failed_reports_queued_and_removed_forgets() {
        let mut t = NeighborTable::<Ipv4>::new(external());
        let mut c = Ctx::default();
        t.send(&mut c, A, frame(1), Some(SRC));
        // Removal of an entry that waits keeps it waiting.
        t.set_external(&mut c, A, ExternalNeighbor::Removed);
        assert_eq!(t.get(&A).unwrap().queued, 1);
        t.set_external(&mut c, A, ExternalNeighbor::Failed);
        assert_eq!(c.failed.len(), 1);
        assert_eq!(t.get(&A).unwrap().state, NeighborState::Failed);
        t.set_external(&mut c, A, ExternalNeighbor::Permanent(MAC));
        t.set_external(&mut c, A, ExternalNeighbor::Removed);
        assert!(t.get(&A).is_none());
        // Unknown addresses: a failure or removal creates nothing.
        t.set_external(&mut c, SRC, ExternalNeighbor::Failed);
        assert!(t.get(&SRC).is_none());
    }

    #[test]
    fn external_without_answer_fails_after_one_more_interval() {
        let mut t = NeighborTable::<Ipv4>::new(external());
        let mut c = Ctx::default();
        let t0 = c.core.now;
        t.send(&mut c, A, frame(1), Some(SRC));
        run_timers(&mut t, &mut c, t0 + Duration::from_millis(3_999));
        assert!(c.failed.is_empty());
        assert_eq!(c.solicits.len(), 4, "asked again each interval");
        run_timers(&mut t, &mut c, t0 + Duration::from_secs(4));
        assert_eq!(c.failed.len(), 1);
    }
}
