//! The in-memory device pair: two ports joined back to back, for tests and
//! benchmarks. What one port transmits, the other receives. The queues are
//! lock-free and bounded, so the two ends may live in different threads.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::engine::{App, Io};
use crate::packet::Packet;

/// Packets in flight in each direction before the pair drops.
pub const PAIR_CAPACITY: usize = 4096;

/// One end of a [`pair`].
pub struct MemPort {
    tx: Arc<ArrayQueue<Packet>>,
    rx: Arc<ArrayQueue<Packet>>,
    /// Packets dropped because the other end's queue was full.
    pub drops: u64,
}

/// Two ports joined back to back.
pub fn pair() -> (MemPort, MemPort) {
    let ab = Arc::new(ArrayQueue::new(PAIR_CAPACITY));
    let ba = Arc::new(ArrayQueue::new(PAIR_CAPACITY));
    (
        MemPort {
            tx: ab.clone(),
            rx: ba.clone(),
            drops: 0,
        },
        MemPort {
            tx: ba,
            rx: ab,
            drops: 0,
        },
    )
}

impl MemPort {
    /// Send a packet to the other end; false (and counted) if its queue is
    /// full.
    pub fn send(&mut self, p: Packet) -> bool {
        match self.tx.push(p) {
            Ok(()) => true,
            Err(_) => {
                self.drops += 1;
                false
            }
        }
    }

    /// The next packet the other end sent.
    pub fn recv(&mut self) -> Option<Packet> {
        self.rx.pop()
    }

    /// Packets waiting to be received.
    pub fn pending(&self) -> usize {
        self.rx.len()
    }
}

/// As an app, a port sends what arrives on its input and puts what it
/// receives on its output.
impl App for MemPort {
    fn pulls(&self) -> bool {
        true
    }
    fn pull(&mut self, io: &mut Io) {
        let Some(out) = io.output(0) else { return };
        let n = out.room().min(self.rx.len());
        for _ in 0..n {
            match self.rx.pop() {
                Some(p) => out.transmit(p),
                None => break,
            }
        }
    }
    fn push(&mut self, io: &mut Io) {
        let Some(input) = io.input(0) else { return };
        while let Some(p) = input.receive() {
            self.send(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_one_end_sends_the_other_receives() {
        let (mut a, mut b) = pair();
        assert!(a.send(Packet::from_slice(b"ping")));
        assert!(b.send(Packet::from_slice(b"pong")));
        assert_eq!(b.recv().unwrap().data(), b"ping");
        assert_eq!(a.recv().unwrap().data(), b"pong");
        assert!(a.recv().is_none() && b.recv().is_none());
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (mut a, b) = pair();
        for _ in 0..PAIR_CAPACITY + 3 {
            a.send(Packet::new());
        }
        assert_eq!(a.drops, 3);
        assert_eq!(b.pending(), PAIR_CAPACITY);
    }

    #[test]
    fn works_across_threads() {
        let (mut a, mut b) = pair();
        let h = std::thread::spawn(move || {
            let mut got = 0u32;
            while got < 50_000 {
                if let Some(p) = b.recv() {
                    assert_eq!(p.data(), &got.to_le_bytes());
                    got += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut i = 0u32;
        while i < 50_000 {
            if a.send(Packet::from_slice(&i.to_le_bytes())) {
                i += 1;
            } else {
                a.drops = 0;
                std::thread::yield_now();
            }
        }
        h.join().unwrap();
    }
}
