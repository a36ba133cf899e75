//! The AF_PACKET device: one interface, a mmap'd receive ring (TPACKET_V2
//! slots, handed over frame by frame, or TPACKET_V3 blocks), and a batched
//! transmit path (a mmap'd TX ring kicked once per batch, or `sendmmsg`,
//! one system call per batch).
//!
//! Offloads stay on: with `PACKET_VNET_HDR` the kernel hands over every
//! frame with its `virtio_net_hdr`, so a kernel peer's 64 KiB GSO frames
//! and partial checksums arrive whole and say how to finish them
//! ([`crate::offload`]), and frames we send carry their header too, so a
//! GSO frame we forward is cut by the kernel on egress (or not at all, on
//! a veth). `PACKET_QDISC_BYPASS` skips the qdisc layer on transmit and
//! `PACKET_IGNORE_OUTGOING` keeps our own transmissions out of the
//! receive ring.
//!
//! Receive modes ([`RxMode`]): a TPACKET_V3 ring hands a block over when
//! it is full or when its retire timer (1 ms at the least) fires, and
//! poll(2) wakes only then, so a lone frame (a request, a reply, a SYN)
//! waited about a millisecond: request/response over shunt took 1000 us
//! where the kernel takes 6 (sockperf ping-pong p50). A TPACKET_V2 ring
//! hands each slot over, and wakes poll(2), as soon as its frame is in:
//! the same round trip takes 7-10 us, and bulk TCP through `iperf3` is
//! within the noise of the V3 ring (BENCHMARKS.md, `scripts/bench_apps.sh`).
//! V2 slots are fixed in size (2 KiB at MTU 1500); the kernel queues a
//! bigger frame (a GSO frame of up to 64 KiB) whole on the socket and
//! marks its slot TP_STATUS_COPY, and the device reads it there with one
//! `recvmsg`, so frames still come in order and uncut.
//!
//! All system calls go through rustix or `libc::syscall`, never through
//! libc's socket wrappers: this code runs inside the LD_PRELOAD shim,
//! which hooks those symbols.
//!
//! Transmit modes, measured (veth between two namespaces, 2 cores,
//! sender pinned to the CPU that also runs the veth's receive softirq,
//! median of 5 one-second rounds, frames per second actually delivered):
//!
//! ```text
//!                       counted by an AF_PACKET     counted by the peer's
//!                       receiver on the far side    rx_packets, no reader
//!                       64 B        1500 B          64 B        1500 B
//! TX ring (default)     1.46 M      1.16 M          1.91 M      1.77 M
//! sendmmsg              1.18 M      0.98 M          1.52 M      1.43 M
//! ```
//!
//! The TX ring wins by 18-26 %, but only because its frames are copied
//! whole into the skb (`hdr_len` set to the frame length): left to
//! attach the ring's pages as fragments, the kernel spends the difference
//! on page references and the two modes tie. Reproduce with
//! `cargo test --release -p shunt-ring --test afpacket -- --ignored
//! --nocapture tx_rate`.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::engine::{App, Io};
use crate::link::Link;
use crate::offload::{
    GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4, VNET_HDR_LEN, VnetHdr,
};
use crate::packet::{MAX_FRAME, Packet};

/// How frames are handed to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxMode {
    /// A mmap'd TPACKET TX ring: frames are written into shared slots and
    /// one `sendto(fd, NULL, 0, MSG_DONTWAIT)` per batch sends them all.
    /// Frames too big for a slot (GSO frames) go through `sendmsg` on a
    /// second socket, after the ring has been kicked, so order is kept.
    /// The default: about a fifth faster than `sendmmsg` (module docs).
    Ring,
    /// `sendmmsg`: packets wait in a batch (no copy), one system call
    /// sends the batch.
    Sendmmsg,
}

/// How frames come in from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxMode {
    /// TPACKET_V2: a ring of fixed-size slots, each handed over (and
    /// poll(2) woken) as soon as its frame is in, so a lone frame waits for
    /// nothing. A frame bigger than a slot (a kernel peer's 64 KiB GSO
    /// frame) waits whole on the socket's receive queue instead, its slot
    /// marked TP_STATUS_COPY, and is read from there with one `recvmsg` in
    /// its turn. The default: request/response latency is the kernel's
    /// wake-up, not a block timeout, and bulk throughput is about the same
    /// as with blocks (BENCHMARKS.md).
    Frames,
    /// TPACKET_V3: frames packed into blocks that the kernel hands over
    /// when full or when `rx_block_timeout_ms` expires, with one wake-up
    /// per block. A lone frame waits up to that timeout (at least 1 ms).
    Blocks,
}

/// Settings of an [`AfPacket`] device.
#[derive(Clone, Debug)]
pub struct AfPacketOptions {
    /// Receive ring layout.
    pub rx_mode: RxMode,
    /// Slots in the receive ring ([`RxMode::Frames`]); each holds one
    /// MTU-sized frame (2 KiB at MTU 1500).
    pub rx_frames: usize,
    /// Socket receive buffer for frames too big for a slot
    /// ([`RxMode::Frames`]); set with SO_RCVBUFFORCE when allowed, else
    /// SO_RCVBUF (capped by net.core.rmem_max). When it is full, such
    /// frames are dropped (counted in [`AfPacketStats::rx_errors`]).
    pub rcvbuf: usize,
    /// [`RxMode::Blocks`]: bytes per receive block: a multiple of the page size, at least
    /// 128 KiB so that a 64 KiB GSO frame fits.
    pub rx_block_size: usize,
    /// [`RxMode::Blocks`]: receive blocks in the ring. The kernel hands a block over when it
    /// is full or when the timeout below expires, whichever comes first,
    /// so at low rates each block holds one timeout's worth of frames and
    /// the ring holds `rx_block_count` timeouts' worth: the reader must
    /// come back within that time (32 ms by default) or frames are dropped
    /// (counted in [`AfPacketStats::rx_drops`]). At high rates the blocks
    /// fill first and the ring holds `rx_block_size * rx_block_count`
    /// bytes.
    pub rx_block_count: usize,
    /// [`RxMode::Blocks`]: a block that is not full is handed over after this many
    /// milliseconds: the receive latency at low rates (poll(2) wakes up
    /// when a block is handed over).
    pub rx_block_timeout_ms: u32,
    /// Transmit path.
    pub tx_mode: TxMode,
    /// Frames in the TX ring ([`TxMode::Ring`]).
    pub tx_frames: usize,
    /// Frames handed to the kernel per system call.
    pub tx_batch: usize,
    /// Receive frames for any destination MAC (a bridge needs it).
    pub promiscuous: bool,
    /// Send straight to the driver, skipping the qdisc layer.
    pub qdisc_bypass: bool,
    /// Socket send buffer (bytes of frames in flight); set with
    /// SO_SNDBUFFORCE when allowed, else SO_SNDBUF (capped by
    /// net.core.wmem_max).
    pub sndbuf: usize,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            rx_mode: RxMode::Frames,
            rx_frames: 2048,
            rcvbuf: 8 << 20,
            rx_block_size: 1 << 20,
            rx_block_count: 32,
            rx_block_timeout_ms: 1,
            tx_mode: TxMode::Ring,
            tx_frames: 1024,
            tx_batch: 64,
            promiscuous: false,
            qdisc_bypass: true,
            sndbuf: 4 << 20,
        }
    }
}

use crate::error::os_err;
pub use crate::error::{DeviceError, DeviceKind};

/// Why a frame was not queued for transmission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// The ring or batch is full even after a kick: try again later
    /// (after [`AfPacket::flush`], or when the fd polls writable).
    Full,
    /// Shorter than an Ethernet header, longer than the MTU (and not
    /// GSO), or longer than a packet buffer.
    BadLength { len: usize },
    /// The virtio-net header cannot be right for this frame (checksum
    /// offsets outside it, an unknown GSO type, GSO size zero).
    BadHeader,
    /// The kernel refused the frame (errno).
    Os(i32),
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::Full => f.write_str("transmit ring full"),
            TxError::BadLength { len } => write!(f, "frame of {len} bytes cannot be sent"),
            TxError::BadHeader => f.write_str("virtio-net header does not fit the frame"),
            TxError::Os(e) => write!(f, "send failed: {}", os_err(*e)),
        }
    }
}

impl std::error::Error for TxError {}

/// Counters of a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfPacketStats {
    /// Frames and bytes delivered to the caller.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames the kernel dropped because the ring was full (and frames it
    /// could not describe with a vnet header), from PACKET_STATISTICS.
    pub rx_drops: u64,
    /// Times the kernel found every block still in our hands
    /// ([`RxMode::Blocks`]; a full slot ring counts in `rx_drops`).
    pub rx_ring_full: u64,
    /// Frames skipped here: truncated by the ring, malformed ring
    /// entries, too large for a packet buffer.
    pub rx_errors: u64,
    /// Frames and bytes handed to the kernel.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames refused (bad length or header) or failed in the kernel.
    pub tx_errors: u64,
    /// Times a frame could not be queued because the ring or batch was
    /// full (the caller kept it or dropped it).
    pub tx_full: u64,
}

// ---------------------------------------------------------------------------
// Raw system calls.
// ---------------------------------------------------------------------------

const ETH_P_ALL: u16 = 0x0003;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const IFF_UP: u16 = 0x1;
const IFNAMSIZ: usize = 16;
/// Offset of the frame data in a TX ring slot: TPACKET3_HDRLEN (or
/// TPACKET2_HDRLEN on a V2 socket) minus `sizeof(struct sockaddr_ll)`
/// (net/packet/af_packet.c, tpacket_parse_header).
const TX_DATA_OFF: usize = 48;
const TX_DATA_OFF_V2: usize = 32;
/// Size of `struct tpacket2_hdr`: status 0, len 4, snaplen 8, mac 12 (u16),
/// net 14, sec 16, nsec 20, vlan_tci 24 (u16), vlan_tpid 26 (u16).
const TP2_HDR: usize = 32;
/// Smallest and largest receive slot ([`RxMode::Frames`]).
const RX_SLOT_MIN: usize = 2048;
const RX_SLOT_MAX: usize = 16384;
/// Receive ring block size in [`RxMode::Frames`] (at least a page): a
/// power of two, so the kernel allocates it without waste.
const RX_FRAMES_BLOCK: usize = 64 << 10;
/// Size of `struct tpacket3_hdr`, aligned.
const TP3_HDR: usize = 48;
/// Size of `struct tpacket_block_desc`.
const BLOCK_DESC: usize = 48;
/// Bytes of Ethernet header plus one VLAN tag beyond the MTU.
const L2_MAX: usize = 18;
/// How soon the engine comes back to a device whose transmit side is
/// backed up.
const TX_RETRY: Duration = Duration::from_micros(100);
/// Attempts in a row a frame sent by `sendmsg`/`sendmmsg` may be refused
/// with ENOBUFS (the device or qdisc queue was full) before it is dropped.
const MAX_ENOBUFS: u32 = 64;
/// Largest receive plus transmit ring memory of one device: the kernel
/// allocates it up front, zeroed and unswappable, so a typo must not ask
/// for most of the machine.
pub const MAX_RING_BYTES: usize = 4 << 30;
/// Empty pulls between two looks at the socket error.
const IDLE_ERROR_CHECK: u32 = 16;

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(ret: libc::c_long) -> Result<usize, i32> {
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret as usize)
    }
}

fn socket_packet() -> Result<OwnedFd, i32> {
    // SAFETY: socket(2) takes no pointers; on success we own the new fd.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: the kernel just returned this descriptor and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn setsockopt<T>(fd: BorrowedFd, level: i32, name: i32, val: &T) -> Result<(), i32> {
    // SAFETY: `val` is a live T and we pass its exact size; the kernel only
    // reads it.
    check(unsafe {
        libc::syscall(
            libc::SYS_setsockopt,
            fd.as_raw_fd(),
            level,
            name,
            val as *const T,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn getsockopt<T>(fd: BorrowedFd, level: i32, name: i32, val: &mut T) -> Result<usize, i32> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live, writable T of `len` bytes and `len` is a
    // live socklen_t; the kernel writes at most `len` bytes.
    check(unsafe {
        libc::syscall(
            libc::SYS_getsockopt,
            fd.as_raw_fd(),
            level,
            name,
            val as *mut T,
            &mut len as *mut _,
        )
    })?;
    Ok(len as usize)
}

/// `struct ifreq`: a name and a 24-byte union.
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    data: [u8; 24],
}

fn ifreq(fd: BorrowedFd, name: &str, req: libc::c_ulong) -> Result<IfReq, i32> {
    let mut r = IfReq {
        name: [0; IFNAMSIZ],
        data: [0; 24],
    };
    r.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: the SIOCGIF* requests read the name from and write at most
    // sizeof(struct ifreq) bytes into `r`, which is that size.
    check(unsafe { libc::syscall(libc::SYS_ioctl, fd.as_raw_fd(), req, &mut r as *mut IfReq) })?;
    Ok(r)
}

fn bind_ll(fd: BorrowedFd, ifindex: i32, protocol: u16) -> Result<(), i32> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a live sockaddr_ll and we pass its size.
    check(unsafe {
        libc::syscall(
            libc::SYS_bind,
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`: send what the TX ring
/// holds.
fn kick(fd: BorrowedFd) -> Result<usize, i32> {
    // SAFETY: no buffers are passed; the kernel reads the TX ring, which
    // is mapped for the life of the socket.
    check(unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd.as_raw_fd(),
            ptr::null::<u8>(),
            0usize,
            libc::MSG_DONTWAIT,
            ptr::null::<u8>(),
            0 as libc::socklen_t,
        )
    })
}

/// Validate the kernel's view of a vnet header and frame, as far as
/// cheaply possible (the kernel drops what it rejects without a word when
/// the TX ring is used).
fn check_frame(frame: &[u8], hdr: &VnetHdr, mtu: usize) -> Result<(), TxError> {
    let len = frame.len();
    if !(14..=MAX_FRAME).contains(&len) || (!hdr.is_gso() && len > mtu + L2_MAX) {
        return Err(TxError::BadLength { len });
    }
    if hdr.needs_csum() && hdr.csum_start as usize + hdr.csum_offset as usize + 2 > len {
        return Err(TxError::BadHeader);
    }
    if hdr.is_gso() {
        let t = hdr.gso_type & !GSO_ECN;
        if !matches!(t, GSO_TCPV4 | GSO_TCPV6 | GSO_UDP | GSO_UDP_L4) || hdr.gso_size == 0 {
            return Err(TxError::BadHeader);
        }
    } else if hdr.gso_type != GSO_NONE {
        return Err(TxError::BadHeader);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The shared mapping.
// ---------------------------------------------------------------------------

/// The rings' mapping: receive blocks first, then the TX ring.
struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len came from a successful mmap that nothing else
        // unmaps; every pointer into it belongs to the owning AfPacket,
        // which is being dropped.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

// ---------------------------------------------------------------------------
// Receive ring.
// ---------------------------------------------------------------------------

struct RxRing {
    base: *mut u8,
    block_size: usize,
    blocks: usize,
    /// Block being read.
    block: usize,
    /// Packets left in the current block (0: not started).
    left: u32,
    /// Offset of the next packet in the current block.
    off: usize,
    /// A frame with its VLAN tag put back (the kernel strips it).
    scratch: Vec<u8>,
}

impl RxRing {
    #[inline]
    fn block_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: i < blocks, so the offset is inside the RX part of the
        // mapping.
        unsafe { self.base.add(i * self.block_size) }
    }

    #[inline]
    fn status(&self, i: usize) -> &AtomicU32 {
        // The kernel and we hand blocks over through block_status and
        // touch it only atomically.
        // SAFETY: block_status is a 4-byte aligned u32 at offset 8 of the
        // block descriptor at the (page aligned) start of block i.
        unsafe { &*(self.block_ptr(i).add(8) as *const AtomicU32) }
    }

    #[inline]
    fn read_u32(&self, off: usize) -> u32 {
        debug_assert!(off + 4 <= self.block_size);
        // SAFETY: callers bound `off + 4` by the block size, so the read is
        // inside the current block, which the kernel does not write while
        // it is ours (TP_STATUS_USER, checked with acquire ordering).
        unsafe { ptr::read_unaligned(self.block_ptr(self.block).add(off) as *const u32) }
    }

    #[inline]
    fn read_u16(&self, off: usize) -> u16 {
        debug_assert!(off + 2 <= self.block_size);
        // SAFETY: as in read_u32.
        unsafe { ptr::read_unaligned(self.block_ptr(self.block).add(off) as *const u16) }
    }

    /// Give the current block back to the kernel and move to the next.
    #[inline]
    fn release(&mut self) {
        self.status(self.block)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.block = (self.block + 1) % self.blocks;
        self.left = 0;
    }

    /// Read up to `max` frames in place, calling `f` on each; returns the
    /// number of frames delivered (malformed entries are counted in
    /// `stats.rx_errors` and skipped).
    fn recv(
        &mut self,
        max: usize,
        stats: &mut AfPacketStats,
        mut f: impl FnMut(&[u8], &VnetHdr),
    ) -> usize {
        let mut n = 0;
        while n < max {
            if self.left == 0 {
                let st = self.status(self.block).load(Ordering::Acquire);
                if st & libc::TP_STATUS_USER == 0 {
                    break;
                }
                let num = self.read_u32(12);
                let first = self.read_u32(16) as usize;
                if num == 0 || first < BLOCK_DESC || first >= self.block_size {
                    self.release();
                    continue;
                }
                self.left = num;
                self.off = first;
            }
            let off = self.off;
            if off + TP3_HDR > self.block_size {
                stats.rx_errors += self.left as u64;
                self.release();
                continue;
            }
            let next = self.read_u32(off) as usize;
            let snaplen = self.read_u32(off + 12) as usize;
            let len = self.read_u32(off + 16) as usize;
            let status = self.read_u32(off + 20);
            let mac = self.read_u16(off + 24) as usize;
            let end = off + mac + snaplen;
            self.left -= 1;
            let last = self.left == 0;
            if !last && (next == 0 || off + next + TP3_HDR > self.block_size) {
                // Broken chain: skip the rest of the block.
                stats.rx_errors += self.left as u64;
                self.left = 0;
            }
            let vlan = status & libc::TP_STATUS_VLAN_VALID != 0;
            if mac < TP3_HDR + VNET_HDR_LEN
                || end > self.block_size
                || snaplen < len
                || snaplen < 14
                // Too big to put the tag back without allocating.
                || (vlan && snaplen + 4 > self.scratch.capacity())
            {
                stats.rx_errors += 1;
            } else {
                let b = self.block_ptr(self.block);
                // VnetHdr is plain data with alignment 2: read unaligned.
                // SAFETY: off + mac - VNET_HDR_LEN .. off + mac + snaplen is
                // inside the block (checked above), ours until released.
                let (hdr, frame) = unsafe {
                    let hdr =
                        ptr::read_unaligned(b.add(off + mac - VNET_HDR_LEN) as *const VnetHdr);
                    (hdr, std::slice::from_raw_parts(b.add(off + mac), snaplen))
                };
                stats.rx_packets += 1;
                stats.rx_bytes += snaplen as u64;
                n += 1;
                if vlan {
                    let tci = self.read_u32(off + 32) as u16;
                    let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        self.read_u16(off + 36)
                    } else {
                        0x8100
                    };
                    let (tagged, hdr) = put_tag_back(&mut self.scratch, frame, tci, tpid, &hdr);
                    f(tagged, &hdr);
                } else {
                    f(frame, &hdr);
                }
            }
            if self.left == 0 {
                self.release();
            } else {
                self.off = off + next;
            }
        }
        n
    }
}

/// `frame` with its VLAN tag (which the kernel took out) put back after the
/// MAC addresses, in `scratch`; the vnet header's offsets count the tag.
fn put_tag_back<'a>(
    scratch: &'a mut Vec<u8>,
    frame: &[u8],
    tci: u16,
    tpid: u16,
    hdr: &VnetHdr,
) -> (&'a [u8], VnetHdr) {
    scratch.clear();
    scratch.extend_from_slice(&frame[..12]);
    scratch.extend_from_slice(&tpid.to_be_bytes());
    scratch.extend_from_slice(&tci.to_be_bytes());
    scratch.extend_from_slice(&frame[12..]);
    let mut hdr = *hdr;
    fix_vlan_offsets(scratch, &mut hdr);
    (scratch, hdr)
}

/// The TPACKET_V2 receive ring ([`RxMode::Frames`]).
struct FrameRing {
    base: *mut u8,
    slot_size: usize,
    slots: usize,
    /// Next slot to read.
    head: usize,
    /// A frame read from the socket's queue (TP_STATUS_COPY): vnet header
    /// then frame.
    big: Vec<u8>,
    /// A frame with its VLAN tag put back.
    scratch: Vec<u8>,
}

impl FrameRing {
    #[inline]
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: i < slots and the slots are laid out contiguously (the
        // block size is a multiple of the slot size), so this stays in the
        // RX part of the mapping.
        unsafe { self.base.add(i * self.slot_size) }
    }

    #[inline]
    fn status(&self, i: usize) -> &AtomicU32 {
        // The kernel and we hand slots over through tp_status and touch it
        // only atomically.
        // SAFETY: tp_status is the 4-byte aligned u32 at offset 0 of the
        // 16-byte aligned slot.
        unsafe { &*(self.slot(i) as *const AtomicU32) }
    }

    #[inline]
    fn read_u32(&self, off: usize) -> u32 {
        debug_assert!(off + 4 <= TP2_HDR);
        // SAFETY: off + 4 is inside the slot header of the head slot, which
        // the kernel does not write while it is ours (TP_STATUS_USER,
        // checked with acquire ordering).
        unsafe { ptr::read_unaligned(self.slot(self.head).add(off) as *const u32) }
    }

    #[inline]
    fn read_u16(&self, off: usize) -> u16 {
        debug_assert!(off + 2 <= TP2_HDR);
        // SAFETY: as in read_u32.
        unsafe { ptr::read_unaligned(self.slot(self.head).add(off) as *const u16) }
    }

    /// Read up to `max` frames, calling `f` on each, in the order the
    /// kernel took them; frames too big for a slot come from `fd`'s
    /// receive queue. Returns the number of frames delivered.
    fn recv(
        &mut self,
        fd: BorrowedFd,
        max: usize,
        stats: &mut AfPacketStats,
        mut f: impl FnMut(&[u8], &VnetHdr),
    ) -> usize {
        let mut n = 0;
        while n < max {
            let status = self.status(self.head).load(Ordering::Acquire);
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            let len = self.read_u32(4) as usize;
            let snaplen = self.read_u32(8) as usize;
            let mac = self.read_u16(12) as usize;
            let vlan = status & libc::TP_STATUS_VLAN_VALID != 0;
            let tci = self.read_u16(24);
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                self.read_u16(26)
            } else {
                0x8100
            };
            // The frame and its vnet header: in the slot, or whole on the
            // socket's queue.
            let got: Option<(&[u8], VnetHdr)> = if status & libc::TP_STATUS_COPY != 0 {
                match recv_big(fd, &mut self.big) {
                    Some(total) if total >= VNET_HDR_LEN + 14 => {
                        let p = self.big.as_ptr() as *const VnetHdr;
                        // SAFETY: big is longer than a VnetHdr (plain data,
                        // alignment 2: read unaligned).
                        let hdr = unsafe { ptr::read_unaligned(p) };
                        Some((&self.big[VNET_HDR_LEN..total], hdr))
                    }
                    _ => None,
                }
            } else if mac < TP2_HDR + VNET_HDR_LEN
                || mac + snaplen > self.slot_size
                || snaplen < len
                || snaplen < 14
            {
                None
            } else {
                let s = self.slot(self.head);
                // SAFETY: mac - VNET_HDR_LEN .. mac + snaplen is inside the
                // slot (checked above), ours until released.
                unsafe {
                    let hdr = ptr::read_unaligned(s.add(mac - VNET_HDR_LEN) as *const VnetHdr);
                    Some((std::slice::from_raw_parts(s.add(mac), snaplen), hdr))
                }
            };
            match got {
                // Too big to put the tag back without allocating.
                Some((frame, _)) if vlan && frame.len() + 4 > self.scratch.capacity() => {
                    stats.rx_errors += 1;
                }
                Some((frame, hdr)) => {
                    stats.rx_packets += 1;
                    stats.rx_bytes += frame.len() as u64;
                    n += 1;
                    if vlan {
                        let (tagged, hdr) = put_tag_back(&mut self.scratch, frame, tci, tpid, &hdr);
                        f(tagged, &hdr);
                    } else {
                        f(frame, &hdr);
                    }
                }
                None => stats.rx_errors += 1,
            }
            self.status(self.head)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.head = (self.head + 1) % self.slots;
        }
        n
    }
}

/// The oldest frame on `fd`'s receive queue, with its vnet header in
/// front, into `buf`; its length, or `None` if there was none or it was
/// cut short.
fn recv_big(fd: BorrowedFd, buf: &mut [u8]) -> Option<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: the iovec points at buf, live for the call; the kernel
    // writes at most its length.
    let r = check(unsafe {
        libc::syscall(
            libc::SYS_recvmsg,
            fd.as_raw_fd(),
            &mut msg as *mut libc::msghdr,
            libc::MSG_DONTWAIT,
        )
    });
    match r {
        Ok(n) if msg.msg_flags & libc::MSG_TRUNC == 0 && n <= buf.len() => Some(n),
        _ => None,
    }
}

enum Rx {
    Frames(FrameRing),
    Blocks(RxRing),
}

/// A frame whose VLAN tag was put back: make the vnet header's offsets
/// count the tag. Kernels differ (some add the tag's 4 bytes to
/// `csum_start` when the tag is out of band, some do not), so look at
/// where the transport header is: if the offsets point 4 bytes short of
/// it, they were computed for the untagged frame.
fn fix_vlan_offsets(tagged: &[u8], hdr: &mut VnetHdr) {
    if !hdr.needs_csum() {
        return;
    }
    if let Some(l4) = crate::offload::l4_offset(tagged)
        && hdr.csum_start as usize + 4 == l4
    {
        hdr.csum_start += 4;
        if hdr.hdr_len != 0 {
            hdr.hdr_len = hdr.hdr_len.saturating_add(4);
        }
    }
}

// ---------------------------------------------------------------------------
// Transmit paths.
// ---------------------------------------------------------------------------

struct TxRing {
    base: *mut u8,
    frame_size: usize,
    frames: usize,
    /// Next slot to fill.
    head: usize,
    /// Oldest slot the kernel may not have taken yet: it takes slots in
    /// order, so the unsent ones run from here to `head`.
    unsent: usize,
    /// Slots filled and not yet taken by the kernel.
    pending: usize,
    /// Slot header offsets: tp_status, tp_len, frame data (TPACKET_V3 or,
    /// on a V2 socket, TPACKET_V2 layout).
    status_off: usize,
    len_off: usize,
    data_off: usize,
    /// A socket without a TX ring for frames that do not fit a slot.
    big: OwnedFd,
    /// ENOBUFS in a row on `big`.
    big_enobufs: u32,
}

impl TxRing {
    #[inline]
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: i < frames and the slots are laid out contiguously (the
        // block size is a multiple of the frame size), so this stays in the
        // TX part of the mapping.
        unsafe { self.base.add(i * self.frame_size) }
    }

    #[inline]
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: tp_status is the 4-byte aligned u32 at offset 20 (V3) or
        // 0 (V2) of the 16-byte aligned slot; the kernel and we hand slots
        // over through it atomically.
        unsafe { &*(self.slot(i).add(self.status_off) as *const AtomicU32) }
    }

    #[inline]
    fn has_room(&self) -> bool {
        // Timestamp flags may ride along in the high bits.
        let busy =
            libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING | libc::TP_STATUS_WRONG_FORMAT;
        self.status(self.head).load(Ordering::Acquire) & busy == 0
    }

    /// After a kick: move past the slots the kernel has taken (sent,
    /// in flight, or skipped as malformed).
    fn reap(&mut self) {
        while self.pending > 0
            && self.status(self.unsent).load(Ordering::Acquire) & libc::TP_STATUS_SEND_REQUEST == 0
        {
            self.unsent = (self.unsent + 1) % self.frames;
            self.pending -= 1;
        }
    }

    /// Largest frame (without vnet header) a slot holds.
    fn max_frame(&self) -> usize {
        self.frame_size - self.data_off - VNET_HDR_LEN
    }

    /// Copy a frame into the head slot, which must be available.
    fn put(&mut self, frame: &[u8], hdr: &VnetHdr) {
        let s = self.slot(self.head);
        let total = VNET_HDR_LEN + frame.len();
        // hdr_len is how much of the frame the kernel copies into the skb;
        // the rest it attaches as fragments of the ring's pages (with a
        // page reference each). Copying a whole MTU-sized frame is cheaper.
        let mut h = *hdr;
        if !h.is_gso() {
            h.hdr_len = frame.len() as u16;
        }
        let d = self.data_off;
        debug_assert!(d + total <= self.frame_size);
        // SAFETY: the slot is AVAILABLE, so the kernel does not touch it
        // until we set SEND_REQUEST; the writes stay inside the slot
        // (checked by the caller against max_frame).
        unsafe {
            if self.status_off != 0 {
                ptr::write_unaligned(s as *mut u32, 0); // V3 tp_next_offset
            }
            ptr::write_unaligned(s.add(self.len_off) as *mut u32, total as u32);
            ptr::write_unaligned(s.add(d) as *mut VnetHdr, h);
            ptr::copy_nonoverlapping(frame.as_ptr(), s.add(d + VNET_HDR_LEN), frame.len());
        }
        self.status(self.head)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.head = (self.head + 1) % self.frames;
        self.pending += 1;
    }
}

struct Mmsg {
    /// Packets waiting to be sent, oldest first.
    pkts: Vec<Packet>,
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<[libc::iovec; 2]>,
    /// ENOBUFS in a row on the oldest packet.
    enobufs: u32,
}

enum Tx {
    Ring(TxRing),
    Mmsg(Mmsg),
}

// ---------------------------------------------------------------------------
// The device.
// ---------------------------------------------------------------------------

/// An AF_PACKET device on one interface.
pub struct AfPacket {
    // Field order matters for drop: the rings' pointers die with the
    // mapping, which is unmapped before the socket closes.
    rx: Rx,
    tx: Tx,
    _map: Mapping,
    fd: OwnedFd,
    ifname: String,
    ifindex: i32,
    mtu: usize,
    mac: [u8; 6],
    batch: usize,
    stats: AfPacketStats,
    /// Last errno from a failed transmit, for reports.
    last_tx_errno: i32,
    /// Last pending socket error (ENETDOWN when the link went down).
    last_sock_errno: i32,
    /// Pulls in a row that found nothing.
    idle_pulls: u32,
    /// The last push left packets on the input link (the ring was full).
    tx_blocked: bool,
}

// SAFETY: an AfPacket exclusively owns its sockets and its mapping; the raw
// pointers all point into that mapping and are used only through &mut
// self. Nothing is tied to the thread that opened it (the socket stays in
// the namespace it was created in, whichever thread uses it).
unsafe impl Send for AfPacket {}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions (and is no I/O call).
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

impl AfPacket {
    /// Open the device on `ifname` (in the calling thread's network
    /// namespace).
    pub fn open(ifname: &str, opts: &AfPacketOptions) -> Result<AfPacket, DeviceError> {
        let name = ifname.to_string();
        if !valid_ifname(ifname) {
            return Err(DeviceError::BadName { ifname: name });
        }
        let bad = |why: String| DeviceError::BadOptions {
            dev: DeviceKind::Packet,
            ifname: name.clone(),
            why,
        };
        let page = page_size();
        if opts.rx_block_size < 128 << 10
            || !opts.rx_block_size.is_multiple_of(page)
            || opts.rx_block_size > 1 << 30
        {
            return Err(bad(format!(
                "rx_block_size {} must be a multiple of {page} between 128 KiB and 1 GiB",
                opts.rx_block_size
            )));
        }
        if opts.rx_block_count == 0 || opts.rx_block_count > 1 << 20 {
            return Err(bad(format!(
                "rx_block_count {} must be 1..=1048576",
                opts.rx_block_count
            )));
        }
        if opts.rx_frames == 0 || opts.rx_frames > 1 << 20 {
            return Err(bad(format!(
                "rx_frames {} must be 1..=1048576",
                opts.rx_frames
            )));
        }
        let frames = opts.rx_mode == RxMode::Frames;
        if opts.tx_batch == 0 || opts.tx_frames == 0 || opts.tx_frames > 1 << 20 {
            return Err(bad(
                "tx_batch and tx_frames must be positive (tx_frames at most 2^20)".into(),
            ));
        }
        let sys = |op: &'static str| {
            let n = name.clone();
            move |errno: i32| DeviceError::Sys {
                dev: DeviceKind::Packet,
                ifname: n,
                op,
                errno,
            }
        };

        let fd = socket_packet().map_err(|e| match e {
            libc::EPERM | libc::EACCES => DeviceError::Permission {
                dev: DeviceKind::Packet,
                ifname: name.clone(),
            },
            libc::EAFNOSUPPORT | libc::EINVAL => DeviceError::Unsupported {
                dev: DeviceKind::Packet,
                ifname: name.clone(),
                what: "AF_PACKET sockets",
            },
            e => sys("socket")(e),
        })?;
        let b = fd.as_fd();

        // The interface: index, state, MTU, address.
        let not_found = |e: i32| {
            if e == libc::ENODEV {
                DeviceError::NotFound {
                    ifname: name.clone(),
                }
            } else {
                sys("ioctl")(e)
            }
        };
        let r = ifreq(b, ifname, libc::SIOCGIFINDEX).map_err(not_found)?;
        let ifindex = i32::from_ne_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]);
        let r = ifreq(b, ifname, libc::SIOCGIFFLAGS).map_err(not_found)?;
        if u16::from_ne_bytes([r.data[0], r.data[1]]) & IFF_UP == 0 {
            return Err(DeviceError::Down { ifname: name });
        }
        let r = ifreq(b, ifname, libc::SIOCGIFMTU).map_err(not_found)?;
        let mtu = i32::from_ne_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]).max(68) as usize;
        let r = ifreq(b, ifname, libc::SIOCGIFHWADDR).map_err(not_found)?;
        let hwtype = u16::from_ne_bytes([r.data[0], r.data[1]]);
        if hwtype != ARPHRD_ETHER && hwtype != ARPHRD_LOOPBACK {
            return Err(DeviceError::NotEthernet {
                ifname: name,
                hwtype,
            });
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&r.data[2..8]);

        // Socket options; the ones that shape the rings come first.
        let sol = libc::SOL_PACKET;
        let one: libc::c_int = 1;
        let (version, what) = if frames {
            (libc::tpacket_versions::TPACKET_V2, "TPACKET_V2 rings")
        } else {
            (libc::tpacket_versions::TPACKET_V3, "TPACKET_V3 rings")
        };
        setsockopt(b, sol, libc::PACKET_VERSION, &(version as libc::c_int)).map_err(|_| {
            DeviceError::Unsupported {
                dev: DeviceKind::Packet,
                ifname: name.clone(),
                what,
            }
        })?;
        setsockopt(b, sol, libc::PACKET_VNET_HDR, &one).map_err(|_| DeviceError::Unsupported {
            dev: DeviceKind::Packet,
            ifname: name.clone(),
            what: "PACKET_VNET_HDR",
        })?;
        let ring = opts.tx_mode == TxMode::Ring;
        if ring {
            // Skip frames the kernel rejects instead of stopping the ring
            // at them (a stopped ring would never move again).
            setsockopt(b, sol, libc::PACKET_LOSS, &one).map_err(sys("setsockopt(PACKET_LOSS)"))?;
        }
        if opts.qdisc_bypass {
            setsockopt(b, sol, libc::PACKET_QDISC_BYPASS, &one)
                .map_err(sys("setsockopt(PACKET_QDISC_BYPASS)"))?;
        }
        setsockopt(b, sol, libc::PACKET_IGNORE_OUTGOING, &one).map_err(|_| {
            DeviceError::Unsupported {
                dev: DeviceKind::Packet,
                ifname: name.clone(),
                what: "PACKET_IGNORE_OUTGOING (Linux 4.20)",
            }
        })?;
        let sndbuf = opts.sndbuf.min(i32::MAX as usize / 2) as libc::c_int;
        if setsockopt(b, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            let _ = setsockopt(b, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf);
        }
        if frames {
            // Frames bigger than a slot: queue them whole on the socket
            // (any non-zero threshold turns this on) rather than cut them.
            setsockopt(b, sol, libc::PACKET_COPY_THRESH, &one)
                .map_err(sys("setsockopt(PACKET_COPY_THRESH)"))?;
            let rcvbuf = opts.rcvbuf.min(i32::MAX as usize / 2) as libc::c_int;
            if setsockopt(b, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf).is_err() {
                let _ = setsockopt(b, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf);
            }
        }

        // Ring geometry first, so that an oversized request is refused
        // before the kernel allocates anything.
        // Frames: slots for an MTU frame with a VLAN tag, the V2 header,
        // the sockaddr_ll and vnet header the kernel puts before it (the
        // frame starts at 76 bytes for an Ethernet header), as a power of
        // two, in power-of-two blocks.
        let rx_slot = (TP2_HDR + 20 + 32 + VNET_HDR_LEN + L2_MAX + mtu)
            .next_power_of_two()
            .clamp(RX_SLOT_MIN, RX_SLOT_MAX);
        let rx_block = RX_FRAMES_BLOCK.max(page).max(rx_slot);
        let slots_per_block = rx_block / rx_slot;
        let (rx_block_size, rx_blocks, rx_frame_size, rx_frame_nr) = if frames {
            let blocks = opts.rx_frames.div_ceil(slots_per_block);
            (rx_block, blocks, rx_slot, blocks * slots_per_block)
        } else {
            // (A V3 receive ring's frames are variable; the frame size
            // only has to divide the block size.)
            let (size, n) = (opts.rx_block_size, opts.rx_block_count);
            (size, n, size, n)
        };
        let rx_bytes = rx_block_size * rx_blocks;
        // TX ring: slots big enough for an MTU frame with a VLAN tag and
        // the vnet header (jumbo MTUs up to 16 KiB slots; bigger frames
        // take the side path, like GSO frames); blocks a whole number of
        // slots and pages.
        let tx_data_off = if frames { TX_DATA_OFF_V2 } else { TX_DATA_OFF };
        let tx_frame_size = (tx_data_off + VNET_HDR_LEN + L2_MAX + mtu)
            .next_multiple_of(16)
            .clamp(2048, 16384);
        let unit = tx_frame_size / gcd(tx_frame_size, page) * page;
        let tx_block_size = unit * (65536 / unit).max(1);
        let per_block = tx_block_size / tx_frame_size;
        let tx_blocks = opts.tx_frames.div_ceil(per_block);
        let tx_frames = tx_blocks * per_block;
        let tx_bytes = if ring { tx_block_size * tx_blocks } else { 0 };
        let total = rx_bytes + tx_bytes;
        if total > MAX_RING_BYTES {
            return Err(DeviceError::RingTooLarge {
                ifname: name,
                bytes: total,
                errno: None,
            });
        }
        let too_large = |bytes: usize| {
            let n = name.clone();
            move |errno: i32| match errno {
                libc::ENOMEM | libc::ENOBUFS => DeviceError::RingTooLarge {
                    ifname: n,
                    bytes,
                    errno: Some(errno),
                },
                errno => DeviceError::Sys {
                    dev: DeviceKind::Packet,
                    ifname: n,
                    op: "ring setup",
                    errno,
                },
            }
        };
        // (A V2 socket reads only the leading struct tpacket_req part.)
        let req = libc::tpacket_req3 {
            tp_block_size: rx_block_size as u32,
            tp_block_nr: rx_blocks as u32,
            tp_frame_size: rx_frame_size as u32,
            tp_frame_nr: rx_frame_nr as u32,
            tp_retire_blk_tov: opts.rx_block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(b, sol, libc::PACKET_RX_RING, &req).map_err(too_large(total))?;
        if ring {
            let req = libc::tpacket_req3 {
                tp_block_size: tx_block_size as u32,
                tp_block_nr: tx_blocks as u32,
                tp_frame_size: tx_frame_size as u32,
                tp_frame_nr: tx_frames as u32,
                tp_retire_blk_tov: 0,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            setsockopt(b, sol, libc::PACKET_TX_RING, &req).map_err(too_large(total))?;
        }
        // SAFETY: a fresh shared mapping of the socket's rings, whose size
        // is exactly what the kernel expects; nothing else maps it, and it
        // is unmapped only when the device is dropped.
        let base = unsafe {
            rustix::mm::mmap(
                ptr::null_mut(),
                total,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                b,
                0,
            )
        }
        .map_err(|e| too_large(total)(e.raw_os_error()))?
        .cast::<u8>();
        let map = Mapping { base, len: total };

        // Now receive from this interface only.
        bind_ll(b, ifindex, ETH_P_ALL).map_err(|e| match e {
            libc::ENODEV => DeviceError::NotFound {
                ifname: name.clone(),
            },
            e => sys("bind")(e),
        })?;
        if opts.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            setsockopt(b, sol, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(sys("setsockopt(PACKET_ADD_MEMBERSHIP)"))?;
        }

        let rx = if frames {
            Rx::Frames(FrameRing {
                base,
                slot_size: rx_slot,
                slots: rx_frame_nr,
                head: 0,
                big: vec![0; VNET_HDR_LEN + MAX_FRAME],
                scratch: Vec::with_capacity(MAX_FRAME + 4),
            })
        } else {
            Rx::Blocks(RxRing {
                base,
                block_size: rx_block_size,
                blocks: rx_blocks,
                block: 0,
                left: 0,
                off: 0,
                scratch: Vec::with_capacity(MAX_FRAME + 4),
            })
        };
        let tx = if ring {
            // The second socket: no ring, no receive hook (protocol 0),
            // same offloads.
            let big = socket_packet().map_err(sys("socket"))?;
            let bb = big.as_fd();
            setsockopt(bb, sol, libc::PACKET_VNET_HDR, &one)
                .map_err(sys("setsockopt(PACKET_VNET_HDR)"))?;
            if opts.qdisc_bypass {
                setsockopt(bb, sol, libc::PACKET_QDISC_BYPASS, &one)
                    .map_err(sys("setsockopt(PACKET_QDISC_BYPASS)"))?;
            }
            if setsockopt(bb, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
                let _ = setsockopt(bb, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf);
            }
            bind_ll(bb, ifindex, 0).map_err(sys("bind"))?;
            Tx::Ring(TxRing {
                // SAFETY: the TX ring follows the RX blocks in the mapping.
                base: unsafe { base.add(rx_bytes) },
                frame_size: tx_frame_size,
                frames: tx_frames,
                status_off: if frames { 0 } else { 20 },
                len_off: if frames { 4 } else { 16 },
                data_off: tx_data_off,
                head: 0,
                unsent: 0,
                pending: 0,
                big,
                big_enobufs: 0,
            })
        } else {
            // SAFETY: mmsghdr and iovec are plain data; all-zero is valid
            // (null pointers, zero lengths) and is overwritten before use.
            let zero_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
            let zero_iov = libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            };
            Tx::Mmsg(Mmsg {
                pkts: Vec::with_capacity(opts.tx_batch),
                msgs: vec![zero_msg; opts.tx_batch],
                iovs: vec![[zero_iov; 2]; opts.tx_batch],
                enobufs: 0,
            })
        };

        Ok(AfPacket {
            rx,
            tx,
            _map: map,
            fd,
            ifname: name,
            ifindex,
            mtu,
            mac,
            batch: opts.tx_batch,
            stats: AfPacketStats::default(),
            last_tx_errno: 0,
            last_sock_errno: 0,
            idle_pulls: 0,
            tx_blocked: false,
        })
    }

    /// The socket, to poll for readability (a frame or block is ready).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Renumbers the device's descriptors: `f` gets each one and returns a
    /// duplicate to use instead (the original is closed). A preloaded
    /// library moves them out of the numbers the program expects from its
    /// next `open` or `socket`. The rings belong to the socket, not to the
    /// number, so they stay mapped.
    pub fn renumber_fds(&mut self, mut f: impl FnMut(BorrowedFd<'_>) -> Option<OwnedFd>) {
        if let Some(fd) = f(self.fd.as_fd()) {
            self.fd = fd;
        }
        if let Tx::Ring(r) = &mut self.tx
            && let Some(fd) = f(r.big.as_fd())
        {
            r.big = fd;
        }
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// The interface's MTU when the device was opened.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The interface's MAC address when the device was opened.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn tx_mode(&self) -> TxMode {
        match self.tx {
            Tx::Ring(_) => TxMode::Ring,
            Tx::Mmsg(_) => TxMode::Sendmmsg,
        }
    }

    /// Read up to `max` frames in place from the receive ring, calling `f`
    /// with each frame and its virtio-net header, and give each block back
    /// to the kernel once all its frames are read. A VLAN tag the kernel
    /// stripped is put back into the frame (that one frame is copied).
    /// Returns the number of frames delivered.
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8], &VnetHdr)) -> usize {
        match &mut self.rx {
            Rx::Frames(r) => r.recv(self.fd.as_fd(), max, &mut self.stats, f),
            Rx::Blocks(r) => r.recv(max, &mut self.stats, f),
        }
    }

    /// How frames come in.
    pub fn rx_mode(&self) -> RxMode {
        match self.rx {
            Rx::Frames(_) => RxMode::Frames,
            Rx::Blocks(_) => RxMode::Blocks,
        }
    }

    /// True if a frame can be queued now without a kick.
    pub fn tx_has_room(&self) -> bool {
        match &self.tx {
            Tx::Ring(r) => r.has_room(),
            Tx::Mmsg(m) => m.pkts.len() < m.msgs.len(),
        }
    }

    /// Queue a frame (a copy) for transmission with its virtio-net header.
    /// Batches go to the kernel when full and on [`AfPacket::flush`].
    /// [`TxError::Full`] means "not now": keep the frame and try again
    /// after a flush; any other error is final (and counted).
    pub fn send(&mut self, frame: &[u8], hdr: &VnetHdr) -> Result<(), TxError> {
        if let Tx::Ring(_) = self.tx {
            return self.send_ring(frame, hdr);
        }
        if let Err(e) = check_frame(frame, hdr, self.mtu) {
            self.stats.tx_errors += 1;
            return Err(e);
        }
        if !self.mmsg_room() {
            return Err(TxError::Full);
        }
        let mut p = Packet::from_slice(frame);
        *p.offload_mut() = *hdr;
        self.mmsg_push(p);
        Ok(())
    }

    /// Queue a packet for transmission, with the virtio-net header it
    /// carries. In [`TxMode::Sendmmsg`] the packet itself waits in the
    /// batch (no copy); in [`TxMode::Ring`] it is copied into the ring.
    /// On [`TxError::Full`] the packet is handed back.
    pub fn send_packet(&mut self, p: Packet) -> Result<(), (TxError, Option<Packet>)> {
        if let Tx::Ring(_) = self.tx {
            return match self.send_ring(p.data(), p.offload()) {
                Ok(()) => Ok(()),
                Err(TxError::Full) => Err((TxError::Full, Some(p))),
                Err(e) => Err((e, None)),
            };
        }
        if let Err(e) = check_frame(p.data(), p.offload(), self.mtu) {
            self.stats.tx_errors += 1;
            return Err((e, None));
        }
        if !self.mmsg_room() {
            return Err((TxError::Full, Some(p)));
        }
        self.mmsg_push(p);
        Ok(())
    }

    /// Room in the sendmmsg batch, flushing once if it is full.
    fn mmsg_room(&mut self) -> bool {
        if self.tx_has_room() {
            return true;
        }
        self.flush();
        if self.tx_has_room() {
            return true;
        }
        self.stats.tx_full += 1;
        false
    }

    fn mmsg_push(&mut self, p: Packet) {
        let Tx::Mmsg(m) = &mut self.tx else {
            unreachable!("mmsg_push in ring mode")
        };
        m.pkts.push(p);
        if m.pkts.len() >= self.batch {
            self.flush();
        }
    }

    fn send_ring(&mut self, frame: &[u8], hdr: &VnetHdr) -> Result<(), TxError> {
        if let Err(e) = check_frame(frame, hdr, self.mtu) {
            self.stats.tx_errors += 1;
            return Err(e);
        }
        let Tx::Ring(r) = &mut self.tx else {
            unreachable!("send_ring in sendmmsg mode")
        };
        if frame.len() > r.max_frame() {
            // Send what the ring holds first, to keep order.
            self.kick_ring();
            let Tx::Ring(r) = &mut self.tx else {
                unreachable!()
            };
            if r.pending > 0 {
                // The ring could not be emptied: going around it would
                // reorder.
                self.stats.tx_full += 1;
                return Err(TxError::Full);
            }
            return match sendmsg_one(r.big.as_fd(), frame, hdr) {
                Ok(()) => {
                    r.big_enobufs = 0;
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += frame.len() as u64;
                    Ok(())
                }
                // Socket buffer full; or the device dropped the frame
                // (congestion: try again, but not forever).
                Err(libc::EAGAIN) => {
                    self.stats.tx_full += 1;
                    Err(TxError::Full)
                }
                Err(libc::ENOBUFS) if r.big_enobufs < MAX_ENOBUFS => {
                    r.big_enobufs += 1;
                    self.stats.tx_full += 1;
                    Err(TxError::Full)
                }
                Err(e) => {
                    r.big_enobufs = 0;
                    self.stats.tx_errors += 1;
                    self.last_tx_errno = e;
                    Err(TxError::Os(e))
                }
            };
        }
        if !r.has_room() {
            self.kick_ring();
            let Tx::Ring(r) = &self.tx else {
                unreachable!()
            };
            if !r.has_room() {
                self.stats.tx_full += 1;
                return Err(TxError::Full);
            }
        }
        let Tx::Ring(r) = &mut self.tx else {
            unreachable!()
        };
        r.put(frame, hdr);
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += frame.len() as u64;
        if r.pending >= self.batch {
            self.kick_ring();
        }
        Ok(())
    }

    fn kick_ring(&mut self) {
        let Tx::Ring(r) = &mut self.tx else { return };
        if r.pending == 0 {
            return;
        }
        match kick(self.fd.as_fd()) {
            // The kernel may stop early without an error (socket buffer
            // full after some frames went): reap() counts what it took.
            Ok(_) => {}
            // Congestion (socket buffer full, device queue full): the
            // frames stay in the ring and the next kick sends them.
            Err(libc::EAGAIN) | Err(libc::ENOBUFS) => {}
            Err(e) => {
                // The frames also stay; note why for the report.
                self.last_tx_errno = e;
            }
        }
        r.reap();
    }

    /// Hand everything queued to the kernel: one kick of the TX ring, or
    /// `sendmmsg` calls for the batch. Frames the kernel cannot take yet
    /// (socket buffer full) stay queued for the next flush.
    pub fn flush(&mut self) {
        let fd = self.fd.as_fd();
        let m = match &mut self.tx {
            Tx::Ring(_) => return self.kick_ring(),
            Tx::Mmsg(m) => m,
        };
        let n = m.pkts.len();
        if n == 0 {
            return;
        }
        for i in 0..n {
            let p = &m.pkts[i];
            m.iovs[i] = [
                libc::iovec {
                    iov_base: p.offload() as *const VnetHdr as *mut libc::c_void,
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: p.data().as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                },
            ];
            let h = &mut m.msgs[i].msg_hdr;
            h.msg_name = ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = m.iovs[i].as_mut_ptr();
            h.msg_iovlen = 2;
            h.msg_control = ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut done = 0;
        while done < n {
            // SAFETY: msgs[done..n] are initialised msghdrs whose iovecs
            // point into packets owned by `m.pkts`, alive until drained
            // below; the kernel only reads them (and writes msg_len).
            let r = check(unsafe {
                libc::syscall(
                    libc::SYS_sendmmsg,
                    fd.as_raw_fd(),
                    m.msgs.as_mut_ptr().add(done),
                    (n - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            });
            match r {
                Ok(0) => break,
                Ok(k) => {
                    m.enobufs = 0;
                    for p in &m.pkts[done..done + k] {
                        self.stats.tx_packets += 1;
                        self.stats.tx_bytes += p.len() as u64;
                    }
                    done += k;
                }
                // Socket buffer full: keep the rest for later.
                Err(libc::EAGAIN) | Err(libc::EINTR) => break,
                // The device or qdisc dropped this frame (queue full):
                // congestion, so keep it and try again later, as the
                // kernel does with TX ring frames; but not forever.
                Err(libc::ENOBUFS) if m.enobufs < MAX_ENOBUFS => {
                    m.enobufs += 1;
                    break;
                }
                Err(e) => {
                    // This frame failed: count it, drop it, go on.
                    self.stats.tx_errors += 1;
                    self.last_tx_errno = e;
                    m.enobufs = 0;
                    done += 1;
                }
            }
        }
        m.pkts.drain(..done);
    }

    /// Counters, with the kernel's receive drops brought up to date.
    pub fn stats(&mut self) -> AfPacketStats {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        if getsockopt(
            self.fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut st,
        )
        .is_ok()
        {
            // Clear-on-read: accumulate.
            self.stats.rx_drops += st.tp_drops as u64;
            self.stats.rx_ring_full += st.tp_freeze_q_cnt as u64;
        }
        self.stats
    }

    /// The pending socket error (SO_ERROR), cleared by reading: ENETDOWN
    /// after the interface went down, for example.
    pub fn take_error(&self) -> Option<i32> {
        let mut e: libc::c_int = 0;
        match getsockopt(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR, &mut e) {
            Ok(_) if e != 0 => Some(e),
            _ => None,
        }
    }
}

/// One frame through `sendmsg` with its vnet header in front.
fn sendmsg_one(fd: BorrowedFd, frame: &[u8], hdr: &VnetHdr) -> Result<(), i32> {
    let mut iov = [
        libc::iovec {
            iov_base: hdr as *const VnetHdr as *mut libc::c_void,
            iov_len: VNET_HDR_LEN,
        },
        libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        },
    ];
    // SAFETY: msghdr is plain data; all-zero is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = 2;
    // SAFETY: msg and the iovecs point at live buffers for the duration of
    // the call; the kernel only reads them.
    check(unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            fd.as_raw_fd(),
            &msg as *const libc::msghdr,
            libc::MSG_DONTWAIT,
        )
    })
    .map(drop)
}

impl Drop for AfPacket {
    fn drop(&mut self) {
        // Send what is queued; the kernel keeps frames in flight alive on
        // its own after close.
        self.flush();
    }
}

impl fmt::Debug for AfPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfPacket")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("tx_mode", &self.tx_mode())
            .field("stats", &self.stats)
            .finish()
    }
}

/// As an app: output port "output" carries frames from the wire, input
/// port "input" frames to send. Packets keep their virtio-net header both
/// ways.
impl App for AfPacket {
    fn pulls(&self) -> bool {
        true
    }

    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd())
    }

    fn pull(&mut self, io: &mut Io) {
        let Some(out) = io.output(0) else {
            // Nobody takes frames: drop them here rather than leave a full
            // ring that polls readable forever.
            let n = self.recv_batch(usize::MAX, |_, _| {});
            self.note_pull(n);
            return;
        };
        let room = out.room();
        let mut too_big = 0;
        let n = self.recv_batch(room, |frame, hdr| {
            if frame.len() > MAX_FRAME {
                too_big += 1;
                return;
            }
            let mut p = Packet::new();
            p.room_mut()[..frame.len()].copy_from_slice(frame);
            p.set_len(frame.len());
            *p.offload_mut() = *hdr;
            out.transmit(p);
        });
        self.stats.rx_errors += too_big;
        self.stats.rx_packets -= too_big;
        self.note_pull(n);
    }

    fn push(&mut self, io: &mut Io) {
        self.tx_blocked = false;
        if let Some(input) = io.input(0) {
            self.drain(input);
        }
        self.flush();
    }

    /// While frames wait for room in the ring (or for the kernel to take
    /// a batch), come back soon rather than sleep on the receive side.
    fn deadline(&self) -> Option<Instant> {
        let backlog = match &self.tx {
            Tx::Ring(r) => r.pending > 0,
            Tx::Mmsg(m) => !m.pkts.is_empty(),
        };
        (self.tx_blocked || backlog).then(|| Instant::now() + TX_RETRY)
    }

    fn report(&self) -> Option<String> {
        let s = &self.stats;
        let mut line = format!(
            "{}: rx {} pkts {} bytes, {} errors; tx {} pkts {} bytes, {} errors, {} full",
            self.ifname,
            s.rx_packets,
            s.rx_bytes,
            s.rx_errors,
            s.tx_packets,
            s.tx_bytes,
            s.tx_errors,
            s.tx_full
        );
        if self.last_tx_errno != 0 {
            line.push_str(&format!(" (last tx error: {})", os_err(self.last_tx_errno)));
        }
        if self.last_sock_errno != 0 {
            line.push_str(&format!(
                " (socket error: {})",
                os_err(self.last_sock_errno)
            ));
        }
        Some(line)
    }
}

impl AfPacket {
    /// Move packets from `input` into the transmit ring or batch while
    /// there is room; what does not fit stays on the link.
    fn drain(&mut self, input: &mut Link) {
        while let Some(p) = input.peek() {
            let r = match self.tx {
                // Copied from the link: take it off only once it is in.
                Tx::Ring(_) => self.send_ring(p.data(), p.offload()),
                Tx::Mmsg(_) => {
                    if !self.mmsg_room() {
                        break;
                    }
                    let Some(p) = input.receive() else { break };
                    let _ = self.send_packet(p);
                    continue;
                }
            };
            if r == Err(TxError::Full) {
                break;
            }
            // Sent, or refused for good (counted).
            input.receive();
        }
        self.tx_blocked = !input.is_empty();
    }

    /// After an empty pull, now and then, read and clear a pending socket
    /// error: when the interface goes down the kernel sets ENETDOWN, which
    /// makes poll(2) return at once (POLLERR) until someone reads it, and
    /// the engine would spin. The device recovers by itself when the
    /// interface comes back up.
    fn note_pull(&mut self, n: usize) {
        if n > 0 {
            self.idle_pulls = 0;
            return;
        }
        self.idle_pulls = self.idle_pulls.wrapping_add(1);
        if self.idle_pulls.is_multiple_of(IDLE_ERROR_CHECK)
            && let Some(e) = self.take_error()
        {
            self.last_sock_errno = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::F_NEEDS_CSUM;

    #[test]
    fn vlan_offsets_are_fixed_once() {
        // Tagged IPv4/UDP frame: L4 at 14 + 4 + 20.
        let mut f = vec![0u8; 80];
        f[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        f[16..18].copy_from_slice(&[0x08, 0x00]);
        f[18] = 0x45;
        f[20..22].copy_from_slice(&62u16.to_be_bytes());
        f[27] = 17;
        // Offsets for the untagged frame: moved.
        let mut h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            hdr_len: 42,
            ..Default::default()
        };
        fix_vlan_offsets(&f, &mut h);
        assert_eq!((h.csum_start, h.hdr_len), (38, 46));
        // Offsets that already count the tag: left alone.
        fix_vlan_offsets(&f, &mut h);
        assert_eq!((h.csum_start, h.hdr_len), (38, 46));
        // No partial checksum, or garbage: left alone.
        let mut h = VnetHdr {
            csum_start: 34,
            ..Default::default()
        };
        fix_vlan_offsets(&f, &mut h);
        assert_eq!(h.csum_start, 34);
        let mut h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            ..Default::default()
        };
        fix_vlan_offsets(&[1, 2, 3], &mut h);
        assert_eq!(h.csum_start, 34);
    }

    #[test]
    fn frames_are_checked_before_sending() {
        let plain = VnetHdr::default();
        assert_eq!(
            check_frame(&[0; 13], &plain, 1500),
            Err(TxError::BadLength { len: 13 })
        );
        assert_eq!(check_frame(&[0; 1518], &plain, 1500), Ok(()));
        assert_eq!(
            check_frame(&[0; 1519], &plain, 1500),
            Err(TxError::BadLength { len: 1519 })
        );
        let gso = VnetHdr {
            gso_type: crate::offload::GSO_TCPV4,
            gso_size: 1448,
            ..Default::default()
        };
        assert_eq!(check_frame(&vec![0; 60_000], &gso, 1500), Ok(()));
        assert_eq!(
            check_frame(&vec![0; MAX_FRAME + 1], &gso, 1500),
            Err(TxError::BadLength { len: MAX_FRAME + 1 })
        );
        let zero = VnetHdr { gso_size: 0, ..gso };
        assert_eq!(check_frame(&[0; 100], &zero, 1500), Err(TxError::BadHeader));
        let unknown = VnetHdr {
            gso_type: 9,
            gso_size: 100,
            ..Default::default()
        };
        assert_eq!(
            check_frame(&[0; 100], &unknown, 1500),
            Err(TxError::BadHeader)
        );
        let csum = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 90,
            csum_offset: 8,
            ..Default::default()
        };
        assert_eq!(check_frame(&[0; 100], &csum, 1500), Ok(()));
        assert_eq!(check_frame(&[0; 99], &csum, 1500), Err(TxError::BadHeader));
    }

    #[test]
    fn errors_display_one_line() {
        let all = [
            DeviceError::BadName {
                ifname: "a/b".into(),
            },
            DeviceError::NotFound {
                ifname: "veth9".into(),
            },
            DeviceError::Down {
                ifname: "veth0".into(),
            },
            DeviceError::NotEthernet {
                ifname: "tun0".into(),
                hwtype: 65534,
            },
            DeviceError::Permission {
                dev: DeviceKind::Packet,
                ifname: "veth0".into(),
            },
            DeviceError::Unsupported {
                dev: DeviceKind::Packet,
                ifname: "veth0".into(),
                what: "TPACKET_V3 rings",
            },
            DeviceError::BadOptions {
                dev: DeviceKind::Packet,
                ifname: "veth0".into(),
                why: "x".into(),
            },
            DeviceError::RingTooLarge {
                ifname: "veth0".into(),
                bytes: 3 << 30,
                errno: Some(libc::ENOMEM),
            },
            DeviceError::Sys {
                dev: DeviceKind::Packet,
                ifname: "veth0".into(),
                op: "bind",
                errno: libc::EINVAL,
            },
        ];
        for e in all {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s}");
            assert!(
                s.contains("veth") || s.contains("tun0") || s.contains("a/b"),
                "{s}"
            );
        }
        assert_eq!(
            DeviceError::NotFound {
                ifname: "veth9".into()
            }
            .to_string(),
            "interface veth9 not found"
        );
        assert!(
            DeviceError::RingTooLarge {
                ifname: "veth0".into(),
                bytes: 3 << 30,
                errno: Some(libc::ENOMEM)
            }
            .to_string()
            .starts_with(
                "cannot set up 3072 MiB of AF_PACKET rings on veth0: Cannot allocate memory"
            )
        );
    }
}
