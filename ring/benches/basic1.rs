//! Rush's basic1: a source app feeding a sink app through one link, in
//! memory. Prints `BENCH basic1 <Mpps> Mpps`.

use std::time::{Duration, Instant};

use shunt_ring::Engine;
use shunt_ring::apps::basic::{Sink, Source};

fn main() {
    let secs: f64 = std::env::var("BASIC1_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let mut e = Engine::new();
    e.add_app("source", Box::new(Source::new(60))).unwrap();
    e.add_app("sink", Box::new(Sink::default())).unwrap();
    e.connect("source.output -> sink.input").unwrap();
    // Warm up the pool and caches.
    for _ in 0..10_000 {
        e.breath();
    }
    let before = e.app::<Sink>("sink").unwrap().packets;
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let mut breaths = 0u64;
    while t0.elapsed() < limit {
        for _ in 0..1000 {
            e.breath();
        }
        breaths += 1000;
    }
    let dt = t0.elapsed().as_secs_f64();
    let n = e.app::<Sink>("sink").unwrap().packets - before;
    println!("BENCH basic1 {:.1} Mpps", n as f64 / dt / 1e6);
    println!(
        "BENCH basic1-packets-per-breath {:.0} packets",
        n as f64 / breaths as f64
    );
}
