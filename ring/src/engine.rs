//! The engine: apps joined by links, run in breaths (Snabb/Rush's model).
//!
//! A breath first lets every app pull packets in from outside (devices,
//! sources), then lets every app push what waits on its input links. When
//! a breath moves nothing, the engine sleeps: in poll(2) on the apps' file
//! descriptors until the earliest app deadline, or with a short backoff if
//! some app cannot say when it will have work. It never spins unless told
//! to ([`RunOptions::busy`]).

use std::any::Any;
use std::fmt;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::link::{Link, LinkStats};
use crate::packet;

/// What an app sees of the engine during a breath: its own links, by the
/// port numbers of [`App::inputs`] and [`App::outputs`].
pub struct Io<'a> {
    links: &'a mut [Link],
    inputs: &'a [Option<usize>],
    outputs: &'a [Option<usize>],
    /// The time of this breath.
    pub now: Instant,
}

impl Io<'_> {
    /// The link on input port `port`, if one is connected.
    #[inline]
    pub fn input(&mut self, port: usize) -> Option<&mut Link> {
        let i = (*self.inputs.get(port)?)?;
        Some(&mut self.links[i])
    }

    /// The link on output port `port`, if one is connected.
    #[inline]
    pub fn output(&mut self, port: usize) -> Option<&mut Link> {
        let i = (*self.outputs.get(port)?)?;
        Some(&mut self.links[i])
    }

    /// Input and output links at once. They are always distinct links: the
    /// engine refuses a link from an app to itself.
    #[inline]
    pub fn pair(&mut self, input: usize, output: usize) -> (Option<&mut Link>, Option<&mut Link>) {
        let i = self.inputs.get(input).copied().flatten();
        let o = self.outputs.get(output).copied().flatten();
        match (i, o) {
            (Some(i), Some(o)) => {
                debug_assert_ne!(i, o);
                let (a, b) = if i < o {
                    let (lo, hi) = self.links.split_at_mut(o);
                    (&mut lo[i], &mut hi[0])
                } else {
                    let (lo, hi) = self.links.split_at_mut(i);
                    (&mut hi[0], &mut lo[o])
                };
                (Some(a), Some(b))
            }
            (Some(i), None) => (Some(&mut self.links[i]), None),
            (None, Some(o)) => (None, Some(&mut self.links[o])),
            (None, None) => (None, None),
        }
    }
}

/// A packet-processing app.
pub trait App: Any {
    /// Names of the input ports, in the order [`Io::input`] numbers them.
    fn inputs(&self) -> &'static [&'static str] {
        &["input"]
    }
    /// Names of the output ports, in the order [`Io::output`] numbers them.
    fn outputs(&self) -> &'static [&'static str] {
        &["output"]
    }
    /// Bring packets in from outside the engine (a device, a generator).
    fn pull(&mut self, _io: &mut Io) {}
    /// Process the packets waiting on the input links.
    fn push(&mut self, _io: &mut Io) {}
    /// A descriptor that becomes readable when [`App::pull`] has work. An
    /// app that pulls but has none makes the engine poll it with backoff.
    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// True if this app pulls packets from outside.
    fn pulls(&self) -> bool {
        false
    }
    /// When this app next has timed work (a delay line releasing packets).
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// A short line on what the app has done, for the periodic report.
    fn report(&self) -> Option<String> {
        None
    }
}

/// A configuration mistake, with the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

struct Slot {
    name: String,
    app: Box<dyn App>,
    inputs: Vec<Option<usize>>,
    outputs: Vec<Option<usize>>,
}

/// Load over an interval: what was freed (forwarded or dropped) per second,
/// as Rush reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    pub elapsed: Duration,
    pub packets: u64,
    pub bytes: u64,
    /// Time spent sleeping in the interval.
    pub slept: Duration,
}

impl Load {
    pub fn pps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    pub fn gbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e9
    }
    pub fn bytes_per_packet(&self) -> u64 {
        self.bytes.checked_div(self.packets).unwrap_or(0)
    }
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "load: time {:.2}s  pps {}  gbps {:.3}  bpp {}  sleep {}us",
            self.elapsed.as_secs_f64(),
            si(self.pps()),
            self.gbps(),
            self.bytes_per_packet(),
            self.slept.as_micros()
        )
    }
}

/// 1234567.0 -> "1.235M".
pub fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.3}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.3}K", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// How [`Engine::run`] runs.
#[derive(Clone, Copy, Default)]
pub struct RunOptions<'a> {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop when this flag turns true (checked every breath).
    pub stop: Option<&'a AtomicBool>,
    /// Call the report callback this often.
    pub report_every: Option<Duration>,
    /// Never sleep.
    pub busy: bool,
}

#[derive(Default)]
pub struct Engine {
    apps: Vec<Slot>,
    links: Vec<Link>,
    link_names: Vec<String>,
    pollfds_scratch: Vec<i32>,
    idle_backoff: Duration,
    slept: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(100);

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Add an app under a unique name.
    pub fn add_app(&mut self, name: &str, app: Box<dyn App>) -> Result<(), ConfigError> {
        if name.is_empty() || name.contains(['.', ' ']) {
            return Err(ConfigError(format!("bad app name {name:?}")));
        }
        if self.apps.iter().any(|s| s.name == name) {
            return Err(ConfigError(format!("app {name:?} already exists")));
        }
        let inputs = vec![None; app.inputs().len()];
        let outputs = vec![None; app.outputs().len()];
        self.apps.push(Slot {
            name: name.to_string(),
            app,
            inputs,
            outputs,
        });
        Ok(())
    }

    fn endpoint<'s>(&self, spec: &'s str) -> Result<(usize, &'s str), ConfigError> {
        let (app, port) = spec
            .trim()
            .split_once('.')
            .ok_or_else(|| ConfigError(format!("expected APP.PORT, got {spec:?}")))?;
        let idx = self
            .apps
            .iter()
            .position(|s| s.name == app)
            .ok_or_else(|| ConfigError(format!("no app named {app:?}")))?;
        Ok((idx, port))
    }

    /// Connect two ports: `"a.output -> b.input"`.
    pub fn connect(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (from, to) = spec
            .split_once("->")
            .ok_or_else(|| ConfigError(format!("expected \"a.out -> b.in\", got {spec:?}")))?;
        let (fa, fport) = self.endpoint(from)?;
        let (ta, tport) = self.endpoint(to)?;
        if fa == ta {
            return Err(ConfigError(format!("link from an app to itself: {spec:?}")));
        }
        let fi = self.apps[fa]
            .app
            .outputs()
            .iter()
            .position(|p| *p == fport)
            .ok_or_else(|| {
                ConfigError(format!("{} has no output {fport:?}", self.apps[fa].name))
            })?;
        let ti = self.apps[ta]
            .app
            .inputs()
            .iter()
            .position(|p| *p == tport)
            .ok_or_else(|| ConfigError(format!("{} has no input {tport:?}", self.apps[ta].name)))?;
        if self.apps[fa].outputs[fi].is_some() {
            return Err(ConfigError(format!("{} is already connected", from.trim())));
        }
        if self.apps[ta].inputs[ti].is_some() {
            return Err(ConfigError(format!("{} is already connected", to.trim())));
        }
        let l = self.links.len();
        self.links.push(Link::new());
        self.link_names
            .push(format!("{} -> {}", from.trim(), to.trim()));
        self.apps[fa].outputs[fi] = Some(l);
        self.apps[ta].inputs[ti] = Some(l);
        Ok(())
    }

    /// One breath: pull, then push. Returns the packets put on links.
    pub fn breath(&mut self) -> u64 {
        let before: u64 = self.links.iter().map(|l| l.stats().txpackets).sum();
        let now = Instant::now();
        for s in self.apps.iter_mut() {
            if s.app.pulls() {
                let mut io = Io {
                    links: &mut self.links,
                    inputs: &s.inputs,
                    outputs: &s.outputs,
                    now,
                };
                s.app.pull(&mut io);
            }
        }
        for s in self.apps.iter_mut() {
            let mut io = Io {
                links: &mut self.links,
                inputs: &s.inputs,
                outputs: &s.outputs,
                now,
            };
            s.app.push(&mut io);
        }
        let after: u64 = self.links.iter().map(|l| l.stats().txpackets).sum();
        after - before
    }

    /// Sleep until an app has work: poll(2) on the apps' descriptors, bounded
    /// by the earliest deadline.
    fn sleep(&mut self) {
        let now = Instant::now();
        let mut limit = MAX_POLL;
        let mut blind = false;
        self.pollfds_scratch.clear();
        for s in &self.apps {
            if let Some(d) = s.app.deadline() {
                limit = limit.min(d.saturating_duration_since(now));
            }
            if s.app.pulls() {
                match s.app.wait_fd() {
                    Some(fd) => self
                        .pollfds_scratch
                        .push(std::os::fd::AsRawFd::as_raw_fd(&fd)),
                    None => blind = true,
                }
            }
        }
        if blind {
            self.idle_backoff = (self.idle_backoff * 2 + Duration::from_micros(1)).min(MAX_BACKOFF);
            limit = limit.min(self.idle_backoff);
        }
        if limit.is_zero() {
            return;
        }
        let t0 = Instant::now();
        crate::sys::poll_readable(&self.pollfds_scratch, limit);
        self.slept += t0.elapsed();
    }

    /// Run breaths until the duration passes or the stop flag is set,
    /// calling `report` with the load of each interval.
    pub fn run(&mut self, opts: RunOptions, mut report: impl FnMut(&mut Engine, &Load)) {
        let start = Instant::now();
        let mut last = start;
        let mut last_freed = packet::freed();
        self.slept = Duration::ZERO;
        loop {
            let moved = self.breath();
            let now = Instant::now();
            if let Some(every) = opts.report_every
                && now.duration_since(last) >= every
            {
                let freed = packet::freed();
                let load = Load {
                    elapsed: now.duration_since(last),
                    packets: freed.0 - last_freed.0,
                    bytes: freed.1 - last_freed.1,
                    slept: self.slept,
                };
                report(self, &load);
                self.slept = Duration::ZERO;
                last = now;
                last_freed = freed;
            }
            if opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                break;
            }
            if opts
                .duration
                .is_some_and(|d| now.duration_since(start) >= d)
            {
                break;
            }
            if moved == 0 && !opts.busy {
                self.sleep();
            } else if moved != 0 {
                self.idle_backoff = Duration::ZERO;
            }
        }
    }

    /// Counters of every link, by name (`"a.output -> b.input"`).
    pub fn link_stats(&self) -> impl Iterator<Item = (&str, LinkStats)> {
        self.link_names
            .iter()
            .map(String::as_str)
            .zip(self.links.iter().map(Link::stats))
    }

    /// Per-app report lines.
    pub fn app_reports(&self) -> impl Iterator<Item = (&str, String)> {
        self.apps
            .iter()
            .filter_map(|s| s.app.report().map(|r| (s.name.as_str(), r)))
    }

    /// The app named `name`, if it is a `T`.
    pub fn app<T: App>(&self, name: &str) -> Option<&T> {
        let s = self.apps.iter().find(|s| s.name == name)?;
        (s.app.as_ref() as &dyn Any).downcast_ref::<T>()
    }

    /// The app named `name`, mutably, if it is a `T`.
    pub fn app_mut<T: App>(&mut self, name: &str) -> Option<&mut T> {
        let s = self.apps.iter_mut().find(|s| s.name == name)?;
        (s.app.as_mut() as &mut dyn Any).downcast_mut::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::basic::{Sink, Source};
    use crate::packet::Packet;

    /// Doubles every packet: one copy to each output.
    struct Tee;
    impl App for Tee {
        fn outputs(&self) -> &'static [&'static str] {
            &["a", "b"]
        }
        fn push(&mut self, io: &mut Io) {
            while let Some(p) = io.input(0).and_then(Link::receive) {
                let q = p.duplicate();
                if let Some(l) = io.output(0) {
                    l.transmit(p);
                }
                if let Some(l) = io.output(1) {
                    l.transmit(q);
                }
            }
        }
    }

    #[test]
    fn source_to_sink_moves_packets() {
        let mut e = Engine::new();
        e.add_app("src", Box::new(Source::new(60))).unwrap();
        e.add_app("sink", Box::new(Sink::default())).unwrap();
        e.connect("src.output -> sink.input").unwrap();
        for _ in 0..10 {
            e.breath();
        }
        let sink = e.app::<Sink>("sink").unwrap();
        assert!(sink.packets > 0);
        assert_eq!(sink.bytes, sink.packets * 60);
        let (name, st) = e.link_stats().next().unwrap();
        assert_eq!(name, "src.output -> sink.input");
        assert_eq!(st.rxpackets, sink.packets);
    }

    #[test]
    fn tee_fans_out() {
        let mut e = Engine::new();
        e.add_app("src", Box::new(Source::new(100))).unwrap();
        e.add_app("tee", Box::new(Tee)).unwrap();
        e.add_app("s1", Box::new(Sink::default())).unwrap();
        e.add_app("s2", Box::new(Sink::default())).unwrap();
        e.connect("src.output -> tee.input").unwrap();
        e.connect("tee.a -> s1.input").unwrap();
        e.connect("tee.b -> s2.input").unwrap();
        for _ in 0..5 {
            e.breath();
        }
        let a = e.app::<Sink>("s1").unwrap().packets;
        let b = e.app::<Sink>("s2").unwrap().packets;
        assert!(a > 0);
        assert_eq!(a, b);
    }

    #[test]
    fn config_errors_are_reported() {
        let mut e = Engine::new();
        e.add_app("src", Box::new(Source::new(60))).unwrap();
        e.add_app("sink", Box::new(Sink::default())).unwrap();
        assert!(e.add_app("src", Box::new(Sink::default())).is_err());
        assert!(e.add_app("a.b", Box::new(Sink::default())).is_err());
        assert!(e.connect("src.output sink.input").is_err());
        assert!(e.connect("nope.output -> sink.input").is_err());
        assert!(e.connect("src.nope -> sink.input").is_err());
        assert!(e.connect("src.output -> sink.nope").is_err());
        e.connect("src.output -> sink.input").unwrap();
        let err = e.connect("src.output -> sink.input").unwrap_err();
        assert!(err.0.contains("already connected"), "{err}");
    }

    #[test]
    fn run_stops_on_flag_and_duration_and_reports() {
        let mut e = Engine::new();
        e.add_app("src", Box::new(Source::new(60))).unwrap();
        e.add_app("sink", Box::new(Sink::default())).unwrap();
        e.connect("src.output -> sink.input").unwrap();
        let mut reports = 0;
        let t = Instant::now();
        e.run(
            RunOptions {
                duration: Some(Duration::from_millis(120)),
                report_every: Some(Duration::from_millis(50)),
                ..Default::default()
            },
            |_, load| {
                assert!(load.packets > 0);
                assert_eq!(load.bytes_per_packet(), 60);
                reports += 1;
            },
        );
        assert!(t.elapsed() >= Duration::from_millis(120));
        assert!((2..=3).contains(&reports), "{reports} reports");
        let stop = AtomicBool::new(true);
        e.run(
            RunOptions {
                stop: Some(&stop),
                ..Default::default()
            },
            |_, _| {},
        );
    }

    /// An app with nothing to do makes the engine sleep, not spin.
    struct Idle;
    impl App for Idle {
        fn pulls(&self) -> bool {
            true
        }
        fn deadline(&self) -> Option<Instant> {
            None
        }
    }

    #[test]
    fn idle_engine_sleeps() {
        let mut e = Engine::new();
        e.add_app("idle", Box::new(Idle)).unwrap();
        let mut slept = Duration::ZERO;
        e.run(
            RunOptions {
                duration: Some(Duration::from_millis(100)),
                report_every: Some(Duration::from_millis(99)),
                ..Default::default()
            },
            |_, l| slept += l.slept,
        );
        assert!(slept >= Duration::from_millis(50), "slept only {slept:?}");
        let _ = Packet::new();
    }
}
