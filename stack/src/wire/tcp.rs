//! TCP headers and options (RFC 9293 3.1; options from RFC 7323
//! (window scale, timestamps) and RFC 2018 (SACK)).
//!
//! Option parsing follows Linux's `tcp_parse_options`, because peers are
//! tested against Linux: NOPs are skipped, end-of-list stops, an option
//! whose length is under 2 or runs past the header ends the walk
//! silently, and a known option with the wrong length is passed up as
//! [`TcpOption::Unknown`] (so it is ignored, not fatal). [`TcpOptionSet`]
//! is the flat summary the TCP state machine wants, and also what the
//! builder writes, in Linux's layout so that captures look familiar.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::checksum::{Checksum, pseudo_header};
use super::{BuildError, ParseError, U16, U32, header, header_mut};
use crate::ip::{IpAddress, IpProto};
use crate::seq::SeqNum;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Longest header: the data offset is four bits of 32-bit words.
pub const MAX_HEADER_LEN: usize = 60;
/// Most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

/// The eight flag bits (RFC 9293 3.1, RFC 3168 for ECE and CWR).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);
    pub const EMPTY: TcpFlags = TcpFlags(0);

    /// All of `other`'s bits are set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Any of `other`'s bits is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }
    pub const fn syn(self) -> bool {
        self.contains(TcpFlags::SYN)
    }
    pub const fn ack(self) -> bool {
        self.contains(TcpFlags::ACK)
    }
    pub const fn fin(self) -> bool {
        self.contains(TcpFlags::FIN)
    }
    pub const fn rst(self) -> bool {
        self.contains(TcpFlags::RST)
    }
    pub const fn urg(self) -> bool {
        self.contains(TcpFlags::URG)
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, o: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | o.0)
    }
}
impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, o: TcpFlags) {
        self.0 |= o.0;
    }
}
impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, o: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & o.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        if self.0 == 0 {
            return f.write_str("(none)");
        }
        let mut first = true;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    src_port: U16,
    dst_port: U16,
    seq: U32,
    ack: U32,
    /// Data offset in the high nibble; the low nibble is reserved (and
    /// AccECN's AE bit).
    offset: u8,
    flags: u8,
    window: U16,
    checksum: U16,
    urgent: U16,
}

/// A TCP segment whose header length (and, unless told otherwise,
/// checksum) has been checked.
#[derive(Clone, Copy)]
pub struct TcpSegment<'a> {
    hdr: &'a Header,
    options: &'a [u8],
    payload: &'a [u8],
}

impl<'a> TcpSegment<'a> {
    /// `buf` is the IP payload, exactly (TCP has no length field of its
    /// own); `src` and `dst` are the IP header's, for the pseudo-header.
    pub fn parse<A: IpAddress>(
        buf: &'a [u8],
        src: &A,
        dst: &A,
    ) -> Result<TcpSegment<'a>, ParseError> {
        let seg = Self::parse_unverified(buf)?;
        let len = u32::try_from(buf.len()).map_err(|_| ParseError::Malformed { offset: 0 })?;
        let mut c = pseudo_header(src, dst, IpProto::TCP, len);
        if c.add_bytes(buf).checksum() != 0 {
            return Err(ParseError::BadChecksum);
        }
        Ok(seg)
    }

    /// Checks the header length only: for frames whose checksum the device
    /// has verified (virtio-net `DATA_VALID`).
    pub fn parse_unverified(buf: &'a [u8]) -> Result<TcpSegment<'a>, ParseError> {
        let (hdr, rest) = header::<Header>(buf)?;
        let header_len = usize::from(hdr.offset >> 4) * 4;
        if header_len < HEADER_LEN {
            return Err(ParseError::Malformed { offset: 12 });
        }
        if header_len > buf.len() {
            return Err(ParseError::Truncated);
        }
        let (options, payload) = rest.split_at(header_len - HEADER_LEN);
        Ok(TcpSegment {
            hdr,
            options,
            payload,
        })
    }

    pub fn src_port(&self) -> u16 {
        self.hdr.src_port.get()
    }
    pub fn dst_port(&self) -> u16 {
        self.hdr.dst_port.get()
    }
    pub fn seq(&self) -> SeqNum {
        SeqNum::new(self.hdr.seq.get())
    }
    pub fn ack(&self) -> SeqNum {
        SeqNum::new(self.hdr.ack.get())
    }
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.hdr.flags)
    }
    /// The four reserved bits after the data offset (the lowest is
    /// AccECN's AE). Ignored on receipt, as RFC 9293 says.
    pub fn reserved(&self) -> u8 {
        self.hdr.offset & 0x0f
    }
    /// The window field as sent, before scaling.
    pub fn window(&self) -> u16 {
        self.hdr.window.get()
    }
    pub fn checksum(&self) -> u16 {
        self.hdr.checksum.get()
    }
    pub fn urgent_ptr(&self) -> u16 {
        self.hdr.urgent.get()
    }
    pub fn options(&self) -> TcpOptions<'a> {
        TcpOptions(self.options)
    }
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
    /// Sequence space the segment occupies: its data, plus one each for
    /// SYN and FIN (RFC 9293 3.4, SEG.LEN).
    pub fn seq_len(&self) -> u32 {
        let f = self.flags();
        self.payload.len() as u32 + u32::from(f.syn()) + u32::from(f.fin())
    }
    /// The fields, as a builder that would write this header again
    /// (options as the summary: unknown options are not carried).
    pub fn builder(&self) -> TcpBuilder {
        TcpBuilder {
            src_port: self.src_port(),
            dst_port: self.dst_port(),
            seq: self.seq(),
            ack: self.ack(),
            flags: self.flags(),
            window: self.window(),
            urgent_ptr: self.urgent_ptr(),
            options: self.options().summary(),
        }
    }
}

impl fmt::Debug for TcpSegment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSegment")
            .field("src_port", &self.src_port())
            .field("dst_port", &self.dst_port())
            .field("flags", &self.flags())
            .field("seq", &self.seq())
            .field("ack", &self.ack())
            .field("window", &self.window())
            .field("options", &self.options())
            .field("len", &self.payload.len())
            .finish()
    }
}

/// Option kinds (IANA "TCP Option Kind Numbers").
pub mod option {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// The largest window shift RFC 7323 2.3 allows; larger values are
/// treated as 14 (and Linux logs them).
pub const MAX_WINDOW_SCALE: u8 = 14;

/// One SACK block: `[left, right)` of received, out-of-order data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SackBlock {
    pub left: SeqNum,
    pub right: SeqNum,
}

/// Up to four SACK blocks (all a 40-byte option area can carry), held by
/// value: no lifetime to thread through the scoreboard.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct SackBlocks {
    blocks: [SackBlock; 4],
    len: u8,
}

impl SackBlocks {
    pub const MAX: usize = 4;

    /// Adds a block; returns false (and drops it) if four are held already.
    pub fn push(&mut self, b: SackBlock) -> bool {
        let Some(slot) = self.blocks.get_mut(usize::from(self.len)) else {
            return false;
        };
        *slot = b;
        self.len += 1;
        true
    }
    pub fn as_slice(&self) -> &[SackBlock] {
        &self.blocks[..usize::from(self.len).min(Self::MAX)]
    }
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for SackBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl FromIterator<SackBlock> for SackBlocks {
    fn from_iter<T: IntoIterator<Item = SackBlock>>(iter: T) -> SackBlocks {
        let mut s = SackBlocks::default();
        for b in iter {
            s.push(b);
        }
        s
    }
}

/// Timestamps option values (RFC 7323 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timestamps {
    pub val: u32,
    pub ecr: u32,
}

/// One option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    Mss(u16),
    /// The shift as sent; clamp with [`MAX_WINDOW_SCALE`].
    WindowScale(u8),
    SackPermitted,
    Sack(SackBlocks),
    Timestamps(Timestamps),
    /// An option we do not know, or a known kind with the wrong length;
    /// `data` excludes kind and length.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// The option area of a segment.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions<'a>(&'a [u8]);

impl<'a> TcpOptions<'a> {
    /// Options from raw bytes (for tests and tools; segments hand theirs
    /// out via [`TcpSegment::options`]).
    pub fn new(bytes: &'a [u8]) -> TcpOptions<'a> {
        TcpOptions(bytes)
    }
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
    /// The known options, flattened; a repeated option keeps the last
    /// value, as Linux does.
    pub fn summary(&self) -> TcpOptionSet {
        let mut s = TcpOptionSet::default();
        // Linux's layout on every segment of a connection with
        // timestamps (RFC 7323 appendix A): NOP NOP TS, read directly.
        if let [
            option::NOP,
            option::NOP,
            option::TIMESTAMPS,
            10,
            v @ ..,
            e0,
            e1,
            e2,
            e3,
        ] = self.0
            && let [v0, v1, v2, v3] = *v
        {
            s.timestamps = Some(Timestamps {
                val: u32::from_be_bytes([v0, v1, v2, v3]),
                ecr: u32::from_be_bytes([*e0, *e1, *e2, *e3]),
            });
            return s;
        }
        for o in *self {
            match o {
                TcpOption::Mss(m) => s.mss = Some(m),
                TcpOption::WindowScale(w) => s.window_scale = Some(w),
                TcpOption::SackPermitted => s.sack_permitted = true,
                TcpOption::Sack(b) => s.sack = b,
                TcpOption::Timestamps(t) => s.timestamps = Some(t),
                TcpOption::Unknown { .. } => {}
            }
        }
        s
    }
}

impl fmt::Debug for TcpOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

impl<'a> IntoIterator for TcpOptions<'a> {
    type Item = TcpOption<'a>;
    type IntoIter = TcpOptionsIter<'a>;
    fn into_iter(self) -> TcpOptionsIter<'a> {
        TcpOptionsIter(self.0)
    }
}

/// Walks the options as Linux does (see the module documentation).
#[derive(Clone, Debug)]
pub struct TcpOptionsIter<'a>(&'a [u8]);

impl<'a> Iterator for TcpOptionsIter<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        loop {
            let (&kind, rest) = self.0.split_first()?;
            match kind {
                option::END => {
                    self.0 = &[];
                    return None;
                }
                option::NOP => {
                    self.0 = rest;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*rest.first()?);
            let Some(data) = self.0.get(2..len).filter(|_| len >= 2) else {
                self.0 = &[];
                return None;
            };
            self.0 = &self.0[len..];
            let be16 = |d: &[u8]| u16::from_be_bytes([d[0], d[1]]);
            let be32 = |d: &[u8]| u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
            return Some(match (kind, data.len()) {
                (option::MSS, 2) => TcpOption::Mss(be16(data)),
                (option::WINDOW_SCALE, 1) => TcpOption::WindowScale(data[0]),
                (option::SACK_PERMITTED, 0) => TcpOption::SackPermitted,
                (option::TIMESTAMPS, 8) => TcpOption::Timestamps(Timestamps {
                    val: be32(data),
                    ecr: be32(&data[4..]),
                }),
                (option::SACK, n) if n >= 8 && n % 8 == 0 => TcpOption::Sack(
                    data.chunks_exact(8)
                        .map(|b| SackBlock {
                            left: SeqNum::new(be32(b)),
                            right: SeqNum::new(be32(&b[4..])),
                        })
                        .collect(),
                ),
                _ => TcpOption::Unknown { kind, data },
            });
        }
    }
}

/// The options a segment carries, flattened: what parsing summarises to
/// and what the builder writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpOptionSet {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: Option<Timestamps>,
    pub sack: SackBlocks,
}

impl TcpOptionSet {
    /// Bytes the builder writes for these options (a multiple of 4).
    pub fn len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.timestamps.is_some() {
            n += 12; // NOP NOP TS, or SACK-permitted TS
        } else if self.sack_permitted {
            n += 4; // NOP NOP SACK-permitted
        }
        if self.window_scale.is_some() {
            n += 4; // NOP WS
        }
        if !self.sack.is_empty() {
            n += 4 + 8 * self.sack.len(); // NOP NOP SACK
        }
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the bytes [`TcpOptionSet::emit`] writes to a checksum, from
    /// the values (the same layout, word by word).
    fn add_to(&self, c: &mut Checksum) {
        let w = |a: u8, b: u8| u16::from_be_bytes([a, b]);
        if let Some(m) = self.mss {
            c.add_u16(w(option::MSS, 4)).add_u16(m);
        }
        if let Some(t) = self.timestamps {
            if self.sack_permitted {
                c.add_u16(w(option::SACK_PERMITTED, 2));
            } else {
                c.add_u16(w(option::NOP, option::NOP));
            }
            c.add_u16(w(option::TIMESTAMPS, 10))
                .add_u32(t.val)
                .add_u32(t.ecr);
        } else if self.sack_permitted {
            c.add_u16(w(option::NOP, option::NOP))
                .add_u16(w(option::SACK_PERMITTED, 2));
        }
        if let Some(s) = self.window_scale {
            c.add_u16(w(option::NOP, option::WINDOW_SCALE))
                .add_u16(w(3, s));
        }
        if !self.sack.is_empty() {
            c.add_u16(w(option::NOP, option::NOP))
                .add_u16(w(option::SACK, 2 + 8 * self.sack.len() as u8));
            for b in self.sack.as_slice() {
                c.add_u32(b.left.get()).add_u32(b.right.get());
            }
        }
    }

    /// Writes the options in Linux's layout (`tcp_options_write`).
    fn emit(&self, out: &mut [u8]) {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(m) = self.mss {
            put(&[option::MSS, 4]);
            put(&m.to_be_bytes());
        }
        if let Some(t) = self.timestamps {
            if self.sack_permitted {
                put(&[option::SACK_PERMITTED, 2]);
            } else {
                put(&[option::NOP, option::NOP]);
            }
            put(&[option::TIMESTAMPS, 10]);
            put(&t.val.to_be_bytes());
            put(&t.ecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[option::NOP, option::NOP, option::SACK_PERMITTED, 2]);
        }
        if let Some(w) = self.window_scale {
            put(&[option::NOP, option::WINDOW_SCALE, 3, w]);
        }
        if !self.sack.is_empty() {
            put(&[
                option::NOP,
                option::NOP,
                option::SACK,
                2 + 8 * self.sack.len() as u8,
            ]);
            for b in self.sack.as_slice() {
                put(&b.left.get().to_be_bytes());
                put(&b.right.get().to_be_bytes());
            }
        }
    }
}

/// The fields of a TCP header, to write one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpBuilder {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    pub window: u16,
    pub urgent_ptr: u16,
    pub options: TcpOptionSet,
}

impl TcpBuilder {
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Writes the header and options at the front of `buf`, taking the
    /// rest as the payload, and fills in the checksum for a segment from
    /// `src` to `dst`. Returns the header length. Options that do not fit
    /// in 40 bytes (timestamps with four SACK blocks) are refused: the
    /// caller decides which SACK block to drop.
    pub fn emit<A: IpAddress>(
        &self,
        src: &A,
        dst: &A,
        buf: &mut [u8],
    ) -> Result<usize, BuildError> {
        let opt_len = self.options.len();
        if opt_len > MAX_OPTIONS_LEN {
            return Err(BuildError::InvalidField);
        }
        let header_len = HEADER_LEN + opt_len;
        if buf.len() < header_len {
            return Err(BuildError::BufferTooSmall);
        }
        let seg_len = u32::try_from(buf.len()).map_err(|_| BuildError::TooLong)?;
        let (hdr, rest) = header_mut::<Header>(buf)?;
        let offset = ((header_len / 4) as u8) << 4;
        hdr.src_port = U16::new(self.src_port);
        hdr.dst_port = U16::new(self.dst_port);
        hdr.seq = U32::new(self.seq.get());
        hdr.ack = U32::new(self.ack.get());
        hdr.offset = offset;
        hdr.flags = self.flags.0;
        hdr.window = U16::new(self.window);
        hdr.checksum = U16::ZERO;
        hdr.urgent = U16::new(self.urgent_ptr);
        self.options.emit(&mut rest[..opt_len]);
        // The payload from the buffer; the header and options from their
        // values (reading back what was just written with narrow stores
        // would wait for them).
        let mut c = pseudo_header(src, dst, IpProto::TCP, seg_len);
        c.add_u16(self.src_port)
            .add_u16(self.dst_port)
            .add_u32(self.seq.get())
            .add_u32(self.ack.get())
            .add_u16(u16::from_be_bytes([offset, self.flags.0]))
            .add_u16(self.window)
            .add_u16(self.urgent_ptr);
        self.options.add_to(&mut c);
        c.add_bytes(&buf[header_len..]);
        buf[16..18].copy_from_slice(&c.checksum().to_be_bytes());
        Ok(header_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{Ipv4Addr, Ipv6Addr};
    use crate::wire::testutil::mutate;
    use proptest::prelude::*;

    const S: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const D: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn syn() -> TcpBuilder {
        TcpBuilder {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum::new(0xffff_fff0),
            flags: TcpFlags::SYN,
            window: 64240,
            options: TcpOptionSet {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some(Timestamps { val: 12345, ecr: 0 }),
                sack: SackBlocks::default(),
            },
            ..TcpBuilder::default()
        }
    }

    fn build(b: &TcpBuilder, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; b.header_len() + payload.len()];
        buf[b.header_len()..].copy_from_slice(payload);
        b.emit(&S, &D, &mut buf).unwrap();
        buf
    }

    #[test]
    fn linux_syn_layout() {
        let buf = build(&syn(), &[]);
        assert_eq!(buf.len(), 40);
        assert_eq!(
            &buf[20..],
            &[
                2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7
            ]
        );
        let s = TcpSegment::parse(&buf, &S, &D).unwrap();
        assert_eq!(s.builder(), syn());
        assert_eq!(s.seq_len(), 1);
        assert_eq!(format!("{:?}", s.flags()), "SYN");
        assert_eq!(format!("{:?}", TcpFlags::SYN | TcpFlags::ACK), "SYN|ACK");
    }

    #[test]
    fn sack_blocks_and_limits() {
        let mut b = syn();
        b.flags = TcpFlags::ACK;
        b.options = TcpOptionSet {
            timestamps: Some(Timestamps { val: 1, ecr: 2 }),
            sack: (0..3)
                .map(|i| SackBlock {
                    left: SeqNum::new(i * 100),
                    right: SeqNum::new(i * 100 + 50),
                })
                .collect(),
            ..TcpOptionSet::default()
        };
        assert_eq!(b.header_len(), 60);
        let buf = build(&b, b"data");
        let s = TcpSegment::parse(&buf, &S, &D).unwrap();
        assert_eq!(s.options().summary(), b.options);
        assert_eq!(s.payload(), b"data");
        b.options.sack.push(SackBlock::default());
        assert_eq!(b.options.sack.len(), 4);
        assert!(!b.options.sack.push(SackBlock::default()));
        assert_eq!(b.emit(&S, &D, &mut [0; 100]), Err(BuildError::InvalidField));
        b.options.timestamps = None;
        assert_eq!(b.header_len(), 56);
        assert!(b.emit(&S, &D, &mut [0; 56]).is_ok());
    }

    #[test]
    fn option_walk_like_linux() {
        fn walk(b: &[u8]) -> Vec<TcpOption<'_>> {
            TcpOptions::new(b).into_iter().collect()
        }
        // Unknown options are skipped by their length.
        assert_eq!(
            walk(&[30, 4, 0xaa, 0xbb, 2, 4, 1, 0]),
            vec![
                TcpOption::Unknown {
                    kind: 30,
                    data: &[0xaa, 0xbb]
                },
                TcpOption::Mss(256)
            ]
        );
        // Wrong length for a known kind: passed up as unknown.
        assert_eq!(
            walk(&[2, 3, 5, 1, 1, 1]),
            vec![TcpOption::Unknown {
                kind: 2,
                data: &[5]
            }]
        );
        // Length below 2 or past the end: the walk stops.
        assert_eq!(walk(&[1, 1, 30, 1, 2, 4, 1, 0]), vec![]);
        assert_eq!(walk(&[2, 4, 1, 0, 30, 9, 0, 0]), vec![TcpOption::Mss(256)]);
        assert_eq!(walk(&[0, 2, 4, 1, 0]), vec![]);
        assert_eq!(walk(&[1, 30]), vec![]);
        // SACK with a partial block is ignored.
        assert!(matches!(
            walk(&[5, 6, 0, 0, 0, 0])[..],
            [TcpOption::Unknown { kind: 5, .. }]
        ));
        // Last value wins.
        assert_eq!(
            TcpOptions::new(&[2, 4, 0, 1, 2, 4, 0, 2]).summary().mss,
            Some(2)
        );
    }

    #[test]
    fn header_checks() {
        let good = build(&syn(), b"x");
        let mut v = good.clone();
        v[12] = 0x40;
        assert_eq!(
            TcpSegment::parse_unverified(&v).unwrap_err(),
            ParseError::Malformed { offset: 12 }
        );
        let mut v = good.clone();
        v[12] = 0xf0;
        assert_eq!(
            TcpSegment::parse_unverified(&v).unwrap_err(),
            ParseError::Truncated
        );
        let mut v = good.clone();
        v[40] ^= 1;
        assert_eq!(
            TcpSegment::parse(&v, &S, &D).unwrap_err(),
            ParseError::BadChecksum
        );
        // (Swapping src and dst would not do: the sum commutes.)
        let other = Ipv4Addr::new(192, 0, 2, 3);
        assert_eq!(
            TcpSegment::parse(&good, &S, &other).unwrap_err(),
            ParseError::BadChecksum
        );
        assert_eq!(
            TcpSegment::parse(&good[..19], &S, &D).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            syn().emit(&S, &D, &mut [0; 39]),
            Err(BuildError::BufferTooSmall)
        );
    }

    fn arb_options() -> impl Strategy<Value = TcpOptionSet> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u8..=14),
            any::<bool>(),
            proptest::option::of(any::<(u32, u32)>()),
            proptest::collection::vec(any::<(u32, u32)>(), 0..=3),
        )
            .prop_map(|(mss, ws, sp, ts, sack)| TcpOptionSet {
                mss,
                window_scale: ws,
                sack_permitted: sp,
                timestamps: ts.map(|(val, ecr)| Timestamps { val, ecr }),
                sack: sack
                    .into_iter()
                    .map(|(l, r)| SackBlock {
                        left: SeqNum::new(l),
                        right: SeqNum::new(r),
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn round_trip(sp: u16, dp: u16, seq: u32, ack: u32, flags: u8, window: u16, urg: u16,
                      options in arb_options(), payload in proptest::collection::vec(any::<u8>(), 0..64),
                      s6: [u8; 16], d6: [u8; 16]) {
            let b = TcpBuilder {
                src_port: sp, dst_port: dp, seq: SeqNum::new(seq), ack: SeqNum::new(ack),
                flags: TcpFlags(flags), window, urgent_ptr: urg, options,
            };
            prop_assume!(b.header_len() <= MAX_HEADER_LEN);
            let (s6, d6) = (Ipv6Addr::from(s6), Ipv6Addr::from(d6));
            let mut buf = vec![0u8; b.header_len() + payload.len()];
            buf[b.header_len()..].copy_from_slice(&payload);
            b.emit(&s6, &d6, &mut buf).unwrap();
            let s = TcpSegment::parse(&buf, &s6, &d6).unwrap();
            prop_assert_eq!(s.builder(), b);
            prop_assert_eq!(s.payload(), &payload[..]);
            prop_assert_eq!(s.header_len(), b.header_len());
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TcpSegment::parse(&buf, &S, &D);
            if let Ok(s) = TcpSegment::parse_unverified(&buf) {
                let _ = (s.options().summary(), s.seq_len(), format!("{s:?}"));
            }
        }

        #[test]
        fn random_options_never_panic(opts in proptest::collection::vec(any::<u8>(), 0..=40)) {
            let n = TcpOptions::new(&opts).into_iter().count();
            prop_assert!(n <= opts.len());
            let _ = TcpOptions::new(&opts).summary();
        }

        #[test]
        fn mutations_never_panic(buf in mutate(build(&syn(), b"payload"))) {
            if let Ok(s) = TcpSegment::parse_unverified(&buf) {
                let _ = s.options().summary();
            }
        }
    }
}
