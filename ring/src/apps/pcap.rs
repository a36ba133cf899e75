//! pcap files: a writer (nanosecond pcap, Ethernet link type, which
//! tcpdump and Wireshark read), a tap app that records what passes through
//! it, and a reader for tests.
//!
//! Writes go through rustix (raw syscalls) into a buffer flushed every
//! 64 KiB and on drop, so recording costs one copy per packet.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{Mode, OFlags};

use crate::engine::{App, Io};
use crate::packet::Packet;

const MAGIC_NS: u32 = 0xa1b2_3c4d;
const MAGIC_US: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record kept whole (a 64 KiB GSO frame fits).
pub const SNAPLEN: u32 = 262_144;
const FLUSH_AT: usize = 64 * 1024;

pub struct PcapWriter {
    fd: OwnedFd,
    buf: Vec<u8>,
    pub records: u64,
}

impl PcapWriter {
    /// Create (or truncate) `path` and write the file header.
    pub fn create(path: &str) -> io::Result<PcapWriter> {
        let fd = rustix::fs::open(
            path,
            OFlags::CREATE | OFlags::TRUNC | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot create pcap file {path}: {e}"),
            )
        })?;
        PcapWriter::from_fd(fd)
    }

    /// Write the file header to `fd` (an empty file open for writing) and
    /// record into it: for callers that choose the descriptor's number
    /// (libshunt.so keeps its own fds out of the program's range).
    pub fn from_fd(fd: OwnedFd) -> io::Result<PcapWriter> {
        let mut w = PcapWriter {
            fd,
            buf: Vec::with_capacity(FLUSH_AT + SNAPLEN as usize),
            records: 0,
        };
        for v in [MAGIC_NS, 2 | (4 << 16), 0, 0, SNAPLEN, LINKTYPE_ETHERNET] {
            w.buf.extend_from_slice(&v.to_le_bytes());
        }
        w.flush()?;
        Ok(w)
    }

    /// Record one frame, stamped now.
    pub fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.write_at(frame, t.as_secs() as u32, t.subsec_nanos())
    }

    /// Record one frame with a given timestamp.
    pub fn write_at(&mut self, frame: &[u8], secs: u32, nanos: u32) -> io::Result<()> {
        let incl = frame.len().min(SNAPLEN as usize);
        for v in [secs, nanos, incl as u32, frame.len() as u32] {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.buf.extend_from_slice(&frame[..incl]);
        self.records += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        let mut off = 0;
        while off < self.buf.len() {
            match rustix::io::write(&self.fd, &self.buf[off..]) {
                Ok(n) => off += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    self.buf.clear();
                    return Err(e.into());
                }
            }
        }
        self.buf.clear();
        Ok(())
    }
}

impl Drop for PcapWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Records every packet that passes from its input to its output. Several
/// taps may share one writer (both directions of a bridge in one file).
pub struct PcapTap {
    writer: Rc<RefCell<PcapWriter>>,
    pub errors: u64,
}

impl PcapTap {
    pub fn new(writer: Rc<RefCell<PcapWriter>>) -> PcapTap {
        PcapTap { writer, errors: 0 }
    }
}

impl App for PcapTap {
    fn push(&mut self, io: &mut Io) {
        let (input, mut output) = io.pair(0, 0);
        let Some(input) = input else { return };
        let mut w = self.writer.borrow_mut();
        while output.as_ref().is_none_or(|o| !o.is_full()) {
            let Some(p) = input.receive() else { break };
            if w.write(p.data()).is_err() {
                self.errors += 1;
            }
            if let Some(o) = output.as_mut() {
                o.transmit(p);
            }
        }
    }
}

/// One record of a pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub secs: u32,
    pub nanos: u32,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Read a whole pcap file (either timestamp resolution, little-endian).
pub fn read_file(path: &str) -> io::Result<Vec<Record>> {
    let bytes = std::fs::read(path)?;
    parse(&bytes).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: not a pcap file"),
        )
    })
}

/// Parse pcap bytes; None if malformed.
pub fn parse(bytes: &[u8]) -> Option<Vec<Record>> {
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?))
    };
    let magic = u32_at(0)?;
    let ns = match magic {
        MAGIC_NS => true,
        MAGIC_US => false,
        _ => return None,
    };
    let mut off = 24;
    let mut out = Vec::new();
    while off < bytes.len() {
        let secs = u32_at(off)?;
        let frac = u32_at(off + 4)?;
        let incl = u32_at(off + 8)? as usize;
        let orig_len = u32_at(off + 12)?;
        let data = bytes.get(off + 16..off + 16 + incl)?.to_vec();
        out.push(Record {
            secs,
            nanos: if ns { frac } else { frac * 1000 },
            orig_len,
            data,
        });
        off += 16 + incl;
    }
    Some(out)
}

/// Write packets to a file (for tools that record outside an engine).
pub fn write_packets<'a>(
    path: &str,
    packets: impl IntoIterator<Item = &'a Packet>,
) -> io::Result<u64> {
    let mut w = PcapWriter::create(path)?;
    for p in packets {
        w.write(p.data())?;
    }
    w.flush()?;
    Ok(w.records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::basic::{Sink, Source};
    use crate::engine::Engine;

    fn tmp(name: &str) -> String {
        format!(
            "{}/shunt-pcap-{}-{name}.pcap",
            std::env::temp_dir().display(),
            std::process::id()
        )
    }

    #[test]
    fn write_then_read_back() {
        let path = tmp("rw");
        let mut w = PcapWriter::create(&path).unwrap();
        w.write_at(&[1, 2, 3], 10, 999_999_999).unwrap();
        w.write(&vec![7u8; 70_000]).unwrap();
        drop(w);
        let recs = read_file(&path).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[0],
            Record {
                secs: 10,
                nanos: 999_999_999,
                orig_len: 3,
                data: vec![1, 2, 3]
            }
        );
        assert_eq!(recs[1].data.len(), 70_000);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn header_is_standard_pcap() {
        let path = tmp("hdr");
        drop(PcapWriter::create(&path).unwrap());
        let b = std::fs::read(&path).unwrap();
        assert_eq!(b.len(), 24);
        assert_eq!(&b[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(u16::from_le_bytes([b[4], b[5]]), 2);
        assert_eq!(u16::from_le_bytes([b[6], b[7]]), 4);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 1);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn tap_records_what_passes() {
        let path = tmp("tap");
        let w = Rc::new(RefCell::new(PcapWriter::create(&path).unwrap()));
        let mut e = Engine::new();
        let mut src = Source::new(60);
        src.limit = Some(500);
        e.add_app("src", Box::new(src)).unwrap();
        e.add_app("tap", Box::new(PcapTap::new(w.clone()))).unwrap();
        e.add_app("sink", Box::new(Sink::default())).unwrap();
        e.connect("src.output -> tap.input").unwrap();
        e.connect("tap.output -> sink.input").unwrap();
        for _ in 0..20 {
            e.breath();
        }
        assert_eq!(e.app::<Sink>("sink").unwrap().packets, 500);
        drop(e);
        drop(w);
        let recs = read_file(&path).unwrap();
        assert_eq!(recs.len(), 500);
        assert!(recs.iter().all(|r| r.data.len() == 60));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        assert!(parse(b"").is_none());
        assert!(parse(&[0u8; 24]).is_none());
        let mut b = MAGIC_NS.to_le_bytes().to_vec();
        b.extend_from_slice(&[0; 20]);
        b.extend_from_slice(&[1, 2, 3]); // truncated record header
        assert!(parse(&b).is_none());
    }
}
