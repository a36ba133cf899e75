//! `shunt netem IF1 IF2 ...`: Rush's synthetic network. Two AF_PACKET
//! devices joined through an impairment app in each direction, with a
//! report line a second.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use shunt_ring::afpacket::{AfPacket, AfPacketOptions};
use shunt_ring::apps::impair::{Impair, ImpairConfig, parse_duration};
use shunt_ring::apps::pcap::{PcapTap, PcapWriter};
use shunt_ring::{Engine, RunOptions, engine::ConfigError};

use crate::args;

const VALUED: &[&str] = &[
    "loss",
    "delay",
    "jitter",
    "reorder",
    "duplicate",
    "corrupt",
    "rate",
    "seed",
    "limit",
    "pcap",
    "duration",
];
const SWITCHES: &[&str] = &["quiet", "busy"];

pub fn main(argv: &[String]) -> i32 {
    match run(argv) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shunt netem: {e}");
            1
        }
    }
}

fn config(a: &args::Args) -> Result<ImpairConfig, String> {
    let mut cfg = ImpairConfig::default();
    for key in [
        "loss",
        "delay",
        "jitter",
        "reorder",
        "duplicate",
        "corrupt",
        "rate",
        "seed",
        "limit",
    ] {
        if let Some(v) = a.value(key) {
            cfg.set(key, v).map_err(|e| format!("--{key}: {e}"))?;
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

fn cfg_err(e: ConfigError) -> String {
    format!("internal configuration error: {e}")
}

fn run(argv: &[String]) -> Result<(), String> {
    let a = args::parse(argv, VALUED, SWITCHES)?;
    let [if1, if2] = a.positional.as_slice() else {
        return Err("expected two interfaces: shunt netem IF1 IF2 [options]".into());
    };
    if if1 == if2 {
        return Err(format!("cannot bridge {if1} to itself"));
    }
    let cfg = config(&a)?;
    let duration = a
        .value("duration")
        .map(parse_duration)
        .transpose()
        .map_err(|e| format!("--duration: {e}"))?;
    let opts = AfPacketOptions {
        promiscuous: true,
        ..Default::default()
    };
    let dev1 = AfPacket::open(if1, &opts).map_err(|e| e.to_string())?;
    let dev2 = AfPacket::open(if2, &opts).map_err(|e| e.to_string())?;
    let pcap = match a.value("pcap") {
        Some(path) => Some(Rc::new(RefCell::new(
            PcapWriter::create(path).map_err(|e| e.to_string())?,
        ))),
        None => None,
    };

    let mut e = Engine::new();
    e.add_app("if1", Box::new(dev1)).map_err(cfg_err)?;
    e.add_app("if2", Box::new(dev2)).map_err(cfg_err)?;
    // One direction: if1 -> [tap] -> [impair] -> if2 (and mirrored).
    for (from, to, tag, seed) in [
        ("if1", "if2", "12", cfg.seed),
        ("if2", "if1", "21", cfg.seed.wrapping_add(1)),
    ] {
        let mut upstream = format!("{from}.output");
        if let Some(w) = &pcap {
            let name = format!("tap{tag}");
            e.add_app(&name, Box::new(PcapTap::new(w.clone())))
                .map_err(cfg_err)?;
            e.connect(&format!("{upstream} -> {name}.input"))
                .map_err(cfg_err)?;
            upstream = format!("{name}.output");
        }
        if !cfg.is_noop() {
            let name = format!("impair{tag}");
            e.add_app(
                &name,
                Box::new(Impair::new(ImpairConfig {
                    seed,
                    ..cfg.clone()
                })),
            )
            .map_err(cfg_err)?;
            e.connect(&format!("{upstream} -> {name}.input"))
                .map_err(cfg_err)?;
            upstream = format!("{name}.output");
        }
        e.connect(&format!("{upstream} -> {to}.input"))
            .map_err(cfg_err)?;
    }

    let stop = shunt_ring::signal::stop_on_signals();
    if !a.has("quiet") {
        println!("shunt netem: bridging {if1} <-> {if2} ({cfg})");
    }
    let quiet = a.has("quiet");
    let names = [if1.clone(), if2.clone()];
    e.run(
        RunOptions {
            duration,
            stop: Some(stop),
            report_every: Some(Duration::from_secs(1)),
            busy: a.has("busy"),
        },
        |eng, load| {
            if !quiet {
                println!("{load}  drops {}", drops(eng, &names));
            }
        },
    );
    println!("shunt netem: stopped; drops {}", drops(&mut e, &names));
    for (name, report) in e.app_reports() {
        println!("  {name}: {report}");
    }
    Ok(())
}

/// Packets lost inside the bridge per direction: full links, and what the
/// devices could not receive or send.
fn drops(e: &mut Engine, names: &[String; 2]) -> String {
    let mut d = [0u64; 2];
    for (link, st) in e.link_stats() {
        let dir = if link.starts_with("if1") || link.contains("12.") {
            0
        } else {
            1
        };
        d[dir] += st.txdrop;
    }
    for (i, dev) in ["if1", "if2"].iter().enumerate() {
        if let Some(a) = e.app_mut::<AfPacket>(dev) {
            let s = a.stats();
            // What the kernel dropped before we read it belongs to traffic
            // leaving this interface's side; what we failed to send, to the
            // other direction.
            d[i] += s.rx_drops;
            d[1 - i] += s.tx_errors;
        }
    }
    format!(
        "{}->{} {}  {}->{} {}",
        names[0], names[1], d[0], names[1], names[0], d[1]
    )
}
