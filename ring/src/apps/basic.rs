//! Source and sink: the two ends of Rush's basic1 benchmark, and handy in
//! tests.

use crate::engine::{App, Io};
use crate::link::Link;
use crate::packet::Packet;

/// Generates copies of a template frame, filling each output link to a
/// tenth of its capacity per breath (as Rush's Source does).
pub struct Source {
    template: Packet,
    /// Stop after this many packets (None: forever).
    pub limit: Option<u64>,
    pub sent: u64,
}

const PER_BREATH: usize = crate::link::LINK_CAPACITY / 10;

impl Source {
    /// A source of `size`-byte frames of zeros.
    pub fn new(size: usize) -> Source {
        Source::from_template(Packet::from_slice(&vec![0u8; size]))
    }

    pub fn from_template(template: Packet) -> Source {
        Source {
            template,
            limit: None,
            sent: 0,
        }
    }
}

impl App for Source {
    fn inputs(&self) -> &'static [&'static str] {
        &[]
    }
    fn pulls(&self) -> bool {
        true
    }
    fn pull(&mut self, io: &mut Io) {
        let Some(out) = io.output(0) else { return };
        let mut n = PER_BREATH.min(out.room());
        if let Some(limit) = self.limit {
            n = n.min((limit - self.sent) as usize);
        }
        let data = self.template.data();
        for _ in 0..n {
            out.transmit(Packet::from_slice(data));
        }
        self.sent += n as u64;
    }
}

/// Frees everything it receives, counting it.
#[derive(Default)]
pub struct Sink {
    pub packets: u64,
    pub bytes: u64,
}

impl App for Sink {
    fn outputs(&self) -> &'static [&'static str] {
        &[]
    }
    fn push(&mut self, io: &mut Io) {
        let Some(input) = io.input(0) else { return };
        while let Some(p) = input.receive() {
            self.packets += 1;
            self.bytes += p.len() as u64;
        }
    }
}

/// Moves packets from its input to its output unchanged.
#[derive(Default)]
pub struct Forwarder;

impl App for Forwarder {
    fn push(&mut self, io: &mut Io) {
        if let (Some(i), Some(o)) = io.pair(0, 0) {
            forward(i, o);
        }
    }
}

/// Move everything from `input` to `output`, as far as `output` has room;
/// what does not fit stays on `input` (back-pressure instead of drops).
#[inline]
pub fn forward(input: &mut Link, output: &mut Link) {
    let n = input.len().min(output.room());
    for _ in 0..n {
        if let Some(p) = input.receive() {
            output.transmit(p);
        }
    }
}
