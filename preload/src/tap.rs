//! What stands between the device and the stack when the program asks
//! for it: `SHUNT_PCAP` records every frame the stack receives and sends
//! (a file `tcpdump -r` reads), `SHUNT_NETEM` passes frames through the
//! ring's impairment app, one instance per direction with its own seed
//! (as `shunt netem` does: `seed` for what comes in, `seed + 1` for what
//! goes out).
//!
//! The recording is the stack's view: incoming frames after the incoming
//! impairment, outgoing frames before the outgoing one (a frame the
//! outgoing impairment drops is in the file, as it left the stack).
//!
//! Without either variable there is no [`Tap`] and the driver keeps its
//! direct path (one `Option` check per turn, not per frame).

use std::os::fd::AsFd;
use std::time::Instant as StdInstant;

use shunt_ring::apps::impair::{Impair, ImpairConfig};
use shunt_ring::apps::pcap::PcapWriter;
use shunt_ring::engine::App;
use shunt_ring::link::Link;
use shunt_ring::offload::VnetHdr;
use shunt_ring::packet::{MAX_FRAME, Packet};
use shunt_stack::Stack;
use shunt_stack::time::Instant;

use crate::config::Config;

pub struct Tap {
    pcap: Option<PcapWriter>,
    /// Device to stack.
    rx: Option<Impair>,
    /// Stack to device.
    tx: Option<Impair>,
    rx_out: Link,
    /// What the outgoing impairment released and the device had no room
    /// for yet.
    tx_out: Link,
    /// Records the writer could not write (disk full...).
    pub pcap_errors: u64,
}

/// A frame as a ring packet (`None`: longer than any frame a packet
/// holds, which neither the kernel nor the stack makes; dropped rather
/// than panicked on).
fn packet(frame: &[u8]) -> Option<Packet> {
    (frame.len() <= MAX_FRAME).then(|| Packet::from_slice(frame))
}

/// Open `path` for the recording, on a descriptor in shunt's high range.
fn open_pcap(path: &str) -> Result<PcapWriter, String> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::TRUNC | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| format!("SHUNT_PCAP: cannot create {path}: {e}"))?;
    let high = crate::engine::high_internal(fd.as_fd())
        .ok_or_else(|| format!("SHUNT_PCAP: no descriptor left for {path}"))?;
    drop(fd);
    PcapWriter::from_fd(high).map_err(|e| format!("SHUNT_PCAP: {path}: {e}"))
}

impl Tap {
    /// `None` when the configuration asks for nothing.
    pub fn new(cfg: &Config) -> Result<Option<Box<Tap>>, String> {
        let netem = cfg.netem.as_ref().filter(|n| !n.is_noop());
        if cfg.pcap.is_none() && netem.is_none() {
            return Ok(None);
        }
        let pcap = cfg.pcap.as_deref().map(open_pcap).transpose()?;
        let imp = |seed: u64| netem.map(|n| Impair::new(ImpairConfig { seed, ..n.clone() }));
        let seed = netem.map_or(0, |n| n.seed);
        Ok(Some(Box::new(Tap {
            pcap,
            rx: imp(seed),
            tx: imp(seed.wrapping_add(1)),
            rx_out: Link::new(),
            tx_out: Link::new(),
            pcap_errors: 0,
        })))
    }

    fn record(pcap: &mut Option<PcapWriter>, errors: &mut u64, frame: &[u8]) {
        if let Some(w) = pcap
            && w.write(frame).is_err()
        {
            *errors += 1;
        }
    }

    /// Everything the incoming impairment released, into the stack.
    fn deliver(&mut self, stack: &mut Stack, now: Instant) -> usize {
        let mut n = 0;
        while let Some(p) = self.rx_out.receive() {
            Self::record(&mut self.pcap, &mut self.pcap_errors, p.data());
            stack.receive(p.data(), crate::engine::rx_offload(p.offload()), now);
            n += 1;
        }
        n
    }

    /// Receive a batch from the device into the stack, and what the
    /// incoming delay line holds that is due. Returns the frames that
    /// moved.
    pub fn receive(
        &mut self,
        dev: &mut crate::device::Device,
        stack: &mut Stack,
        max: usize,
        now: Instant,
        at: StdInstant,
    ) -> usize {
        let mut moved = 0;
        if let Some(rx) = &mut self.rx {
            rx.release(at, &mut self.rx_out);
            moved += self.deliver(stack, now);
        }
        let n = dev.recv_batch(max, |frame, hdr| match &mut self.rx {
            Some(rx) => {
                let Some(mut p) = packet(frame) else { return };
                *p.offload_mut() = *hdr;
                rx.process(p, at, &mut self.rx_out);
                // Per frame: a GSO frame may become dozens of packets.
                while let Some(p) = self.rx_out.receive() {
                    Self::record(&mut self.pcap, &mut self.pcap_errors, p.data());
                    stack.receive(p.data(), crate::engine::rx_offload(p.offload()), now);
                }
            }
            None => {
                Self::record(&mut self.pcap, &mut self.pcap_errors, frame);
                stack.receive(frame, crate::engine::rx_offload(hdr), now);
            }
        });
        moved + n
    }

    /// Move what waits for the device into it; false when the device is
    /// full.
    fn drain_tx(&mut self, dev: &mut crate::device::Device) -> bool {
        while !self.tx_out.is_empty() {
            if !dev.tx_has_room() {
                dev.flush();
                if !dev.tx_has_room() {
                    return false;
                }
            }
            if let Some(p) = self.tx_out.receive() {
                dev.send(p.data(), p.offload());
            }
        }
        true
    }

    /// Everything the stack has to send, through the outgoing impairment,
    /// into the device. Returns (frames the stack gave, device full).
    pub fn transmit(
        &mut self,
        dev: &mut crate::device::Device,
        stack: &mut Stack,
        now: Instant,
        at: StdInstant,
    ) -> (usize, bool) {
        let mut n = 0;
        if let Some(tx) = &mut self.tx {
            tx.release(at, &mut self.tx_out);
        }
        let mut blocked = !self.drain_tx(dev);
        while !blocked {
            if !dev.tx_has_room() {
                dev.flush();
                if !dev.tx_has_room() {
                    blocked = true;
                    break;
                }
            }
            let sent = match &mut self.tx {
                Some(tx) => {
                    let Some(p) = stack.transmit_with(now, packet) else {
                        break;
                    };
                    if let Some(p) = p {
                        Self::record(&mut self.pcap, &mut self.pcap_errors, p.data());
                        tx.process(p, at, &mut self.tx_out);
                        blocked = !self.drain_tx(dev);
                    }
                    true
                }
                None => {
                    let (pcap, errors) = (&mut self.pcap, &mut self.pcap_errors);
                    stack
                        .transmit_with(now, |f| {
                            Self::record(pcap, errors, f);
                            dev.send(f, &VnetHdr::default());
                        })
                        .is_some()
                }
            };
            if !sent {
                break;
            }
            n += 1;
        }
        dev.flush();
        (n, blocked)
    }

    /// When a delayed frame is next due.
    pub fn deadline(&self) -> Option<StdInstant> {
        let a = self.rx.as_ref().and_then(|i| i.deadline());
        let b = self.tx.as_ref().and_then(|i| i.deadline());
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Write out what the recorder buffers (idle times and exit).
    pub fn flush(&mut self) {
        if let Some(w) = &mut self.pcap
            && w.flush().is_err()
        {
            self.pcap_errors += 1;
        }
    }
}
