//! An AF_XDP socket: the UMEM (one anonymous mapping cut into equal
//! frames) and its four rings, each a single-producer single-consumer
//! array shared with the kernel:
//!
//! - fill (we produce UMEM addresses for the kernel to receive into),
//! - RX (the kernel produces descriptors of received frames),
//! - TX (we produce descriptors of frames to send),
//! - completion (the kernel produces addresses of frames it has sent).
//!
//! The first `rx_frames` frames of the UMEM belong to receiving: they go
//! around fill -> RX -> fill. The rest belong to sending: a free list ->
//! TX -> completion -> free list. Nothing is allocated per packet.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

/// One mapping, unmapped on drop.
pub(crate) struct Mapping {
    pub base: *mut u8,
    pub len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len came from a successful mmap that nothing else
        // unmaps; every pointer into it belongs to the owning socket, which
        // is being dropped.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.len) };
    }
}

/// The user side of one ring: the kernel's producer and consumer indices
/// (free-running u32s), our cached copies, and the entries.
pub(crate) struct Ring {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut u8,
    mask: u32,
    size: u32,
    /// Our producer (producer rings) or consumer (consumer rings) index.
    local: u32,
    /// The other side's index as last read.
    cached: u32,
    _map: Mapping,
}

impl Ring {
    /// Map ring `pgoff` of `fd` with `n` entries of `entry` bytes, at the
    /// offsets the kernel gave.
    pub fn map(
        fd: BorrowedFd,
        off: &libc::xdp_ring_offset,
        n: u32,
        entry: usize,
        pgoff: u64,
    ) -> Result<Ring, i32> {
        let len = off.desc as usize + n as usize * entry;
        // SAFETY: a fresh shared mapping of one of the socket's rings, of
        // the size the kernel expects; it is unmapped only when the Ring is
        // dropped, and only the Ring's pointers point into it.
        let base = unsafe {
            rustix::mm::mmap(
                ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED | rustix::mm::MapFlags::POPULATE,
                fd,
                pgoff,
            )
        }
        .map_err(|e| e.raw_os_error())?
        .cast::<u8>();
        // SAFETY: the kernel's offsets lie inside the mapping (its size is
        // desc + entries) and the index fields are 4-byte aligned u32s.
        let (producer, consumer, flags, descs) = unsafe {
            (
                base.add(off.producer as usize) as *const AtomicU32,
                base.add(off.consumer as usize) as *const AtomicU32,
                base.add(off.flags as usize) as *const AtomicU32,
                base.add(off.desc as usize),
            )
        };
        Ok(Ring {
            producer,
            consumer,
            flags,
            descs,
            mask: n - 1,
            size: n,
            local: 0,
            cached: 0,
            _map: Mapping { base, len },
        })
    }

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping; the kernel and we access it
        // only atomically.
        unsafe { &*self.producer }
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as in producer().
        unsafe { &*self.consumer }
    }

    /// The ring's flags word (XDP_RING_NEED_WAKEUP).
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: as in producer().
        let f = unsafe { &*self.flags };
        f.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // --- Producer side (fill, TX): `local` is our producer index,
    // `cached` the kernel's consumer index. ---

    /// Free entries, re-reading the consumer index only if fewer than
    /// `want` seem free.
    #[inline]
    pub fn prod_room(&mut self, want: u32) -> u32 {
        let mut free = self.size - self.local.wrapping_sub(self.cached);
        if free < want {
            self.cached = self.consumer().load(Ordering::Acquire);
            free = self.size - self.local.wrapping_sub(self.cached);
        }
        free
    }

    /// Entries produced and not yet consumed by the kernel.
    #[inline]
    pub fn prod_outstanding(&mut self) -> u32 {
        self.cached = self.consumer().load(Ordering::Acquire);
        self.local.wrapping_sub(self.cached)
    }

    /// Pointer to the entry at producer index + i (i < prod_room()).
    #[inline]
    pub fn prod_slot(&self, i: u32, entry: usize) -> *mut u8 {
        let idx = (self.local.wrapping_add(i) & self.mask) as usize;
        // SAFETY: idx <= mask < size, so the entry is inside the mapping.
        unsafe { self.descs.add(idx * entry) }
    }

    /// Publish `n` entries written through prod_slot.
    #[inline]
    pub fn produce(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.producer().store(self.local, Ordering::Release);
    }

    // --- Consumer side (RX, completion): `local` is our consumer index,
    // `cached` the kernel's producer index. ---

    /// Entries ready, up to `max`.
    #[inline]
    pub fn cons_ready(&mut self, max: u32) -> u32 {
        let mut n = self.cached.wrapping_sub(self.local);
        if n == 0 {
            self.cached = self.producer().load(Ordering::Acquire);
            n = self.cached.wrapping_sub(self.local);
        }
        n.min(max)
    }

    /// Entries ready, re-reading the producer index even if some are
    /// known to be ready already.
    #[inline]
    pub fn cons_ready_fresh(&mut self) -> u32 {
        self.cached = self.producer().load(Ordering::Acquire);
        self.cached.wrapping_sub(self.local)
    }

    /// Pointer to the entry at consumer index + i (i < cons_ready()).
    #[inline]
    pub fn cons_slot(&self, i: u32, entry: usize) -> *const u8 {
        self.prod_slot(i, entry)
    }

    /// Hand `n` consumed entries back.
    #[inline]
    pub fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.consumer().store(self.local, Ordering::Release);
    }
}

/// Size of `struct xdp_desc`.
pub(crate) const DESC: usize = 16;
/// Size of a fill/completion ring entry (a u64 UMEM address).
pub(crate) const ADDR: usize = 8;

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

pub(crate) fn socket(family: i32, ty: i32) -> Result<OwnedFd, i32> {
    // SAFETY: socket(2) takes no pointers; on success we own the new fd.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_socket,
            family,
            ty | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: the kernel just returned this descriptor and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub(crate) fn setsockopt<T>(fd: BorrowedFd, level: i32, name: i32, val: &T) -> Result<(), i32> {
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

pub(crate) fn getsockopt<T>(
    fd: BorrowedFd,
    level: i32,
    name: i32,
    val: &mut T,
) -> Result<usize, i32> {
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

/// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`: make the kernel send what
/// the TX ring holds.
pub(crate) fn kick_tx(fd: BorrowedFd) -> Result<usize, i32> {
    // SAFETY: no buffers are passed; the kernel reads the TX ring and the
    // UMEM, which stay mapped for the life of the socket.
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

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`: tell the kernel the
/// fill ring has entries again.
pub(crate) fn kick_rx(fd: BorrowedFd) -> Result<usize, i32> {
    // SAFETY: no buffers are passed; the kernel reads the fill ring, which
    // stays mapped for the life of the socket.
    check(unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd.as_raw_fd(),
            ptr::null_mut::<u8>(),
            0usize,
            libc::MSG_DONTWAIT,
            ptr::null_mut::<u8>(),
            ptr::null_mut::<libc::socklen_t>(),
        )
    })
}

pub(crate) fn bind_xdp(fd: BorrowedFd, ifindex: u32, queue: u32, flags: u16) -> Result<(), i32> {
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: `sa` is a live sockaddr_xdp and we pass its size.
    check(unsafe {
        libc::syscall(
            libc::SYS_bind,
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_xdp,
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// The UMEM area: anonymous, page aligned, registered with the socket.
pub(crate) struct Umem {
    pub map: Mapping,
    pub frame_size: usize,
}

impl Umem {
    pub fn new(frames: usize, frame_size: usize) -> Result<Umem, i32> {
        let len = frames * frame_size;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to
        // it, and it is unmapped only when the Umem is dropped (after the
        // socket that uses it is closed: see XdpDevice's field order).
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::POPULATE,
            )
        }
        .map_err(|e| e.raw_os_error())?
        .cast::<u8>();
        Ok(Umem {
            map: Mapping { base, len },
            frame_size,
        })
    }

    /// The bytes at UMEM address `addr`, `len` long, if inside the area.
    #[inline]
    pub fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let a = usize::try_from(addr).ok()?;
        if a.checked_add(len)? > self.map.len {
            return None;
        }
        // SAFETY: the range is inside the mapping (checked); the kernel
        // wrote it before publishing the descriptor and does not touch it
        // until we give the frame back through the fill ring.
        Some(unsafe { std::slice::from_raw_parts(self.map.base.add(a), len) })
    }

    /// The frame at `addr` (a frame start), writable.
    #[inline]
    pub fn frame_mut(&mut self, addr: u64) -> &mut [u8] {
        let a = addr as usize;
        assert!(a + self.frame_size <= self.map.len);
        // SAFETY: inside the mapping (asserted); the frame is on our free
        // list, so the kernel is not reading it.
        unsafe { std::slice::from_raw_parts_mut(self.map.base.add(a), self.frame_size) }
    }
}

/// The socket with its UMEM and rings.
pub(crate) struct Xsk {
    // Field order matters for drop: rings are unmapped, then the socket is
    // closed, then the UMEM goes.
    pub fill: Ring,
    pub comp: Ring,
    pub rx: Ring,
    pub tx: Ring,
    pub fd: OwnedFd,
    pub umem: Umem,
}

/// Ring sizes.
pub(crate) struct Geometry {
    pub rx_frames: u32,
    pub tx_frames: u32,
    pub frame_size: usize,
}

impl Xsk {
    /// socket, UMEM_REG, ring sizes, MMAP_OFFSETS, the four mappings. Not
    /// bound yet. Errors: (operation, errno).
    pub fn new(g: &Geometry) -> Result<Xsk, (&'static str, i32)> {
        let fd = socket(libc::AF_XDP, libc::SOCK_RAW).map_err(|e| ("socket", e))?;
        let frames = (g.rx_frames + g.tx_frames) as usize;
        let umem = Umem::new(frames, g.frame_size).map_err(|e| ("UMEM mmap", e))?;
        let b = fd.as_fd();
        let reg = libc::xdp_umem_reg {
            addr: umem.map.base as u64,
            len: umem.map.len as u64,
            chunk_size: g.frame_size as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(b, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg).map_err(|e| ("XDP_UMEM_REG", e))?;
        // The fill ring holds every RX frame, so refilling never waits;
        // completion likewise for TX frames.
        let sizes = [
            (libc::XDP_UMEM_FILL_RING, g.rx_frames, "XDP_UMEM_FILL_RING"),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                g.tx_frames,
                "XDP_UMEM_COMPLETION_RING",
            ),
            (libc::XDP_RX_RING, g.rx_frames, "XDP_RX_RING"),
            (libc::XDP_TX_RING, g.tx_frames, "XDP_TX_RING"),
        ];
        for (opt, n, what) in sizes {
            setsockopt(b, libc::SOL_XDP, opt, &n).map_err(|e| (what, e))?;
        }
        // SAFETY: xdp_mmap_offsets is plain data; all-zero is valid and the
        // kernel fills it.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let n = getsockopt(b, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS, &mut off)
            .map_err(|e| ("XDP_MMAP_OFFSETS", e))?;
        if n != std::mem::size_of::<libc::xdp_mmap_offsets>() {
            // A kernel before 5.4 (no flags field).
            return Err(("XDP_MMAP_OFFSETS", libc::EOPNOTSUPP));
        }
        let m = |e| ("ring mmap", e);
        let fill = Ring::map(
            b,
            &off.fr,
            g.rx_frames,
            ADDR,
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )
        .map_err(m)?;
        let comp = Ring::map(
            b,
            &off.cr,
            g.tx_frames,
            ADDR,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )
        .map_err(m)?;
        let rx = Ring::map(
            b,
            &off.rx,
            g.rx_frames,
            DESC,
            libc::XDP_PGOFF_RX_RING as u64,
        )
        .map_err(m)?;
        let tx = Ring::map(
            b,
            &off.tx,
            g.tx_frames,
            DESC,
            libc::XDP_PGOFF_TX_RING as u64,
        )
        .map_err(m)?;
        Ok(Xsk {
            fill,
            comp,
            rx,
            tx,
            fd,
            umem,
        })
    }
}

#[cfg(test)]
impl Ring {
    /// Play the kernel on a consumer ring (RX) of an unbound socket:
    /// write `entries` past its producer index and publish them.
    pub fn kernel_produce(&mut self, entries: &[[u8; DESC]]) {
        let p = self.producer().load(Ordering::Relaxed);
        for (k, e) in entries.iter().enumerate() {
            let idx = (p.wrapping_add(k as u32) & self.mask) as usize;
            // SAFETY: idx <= mask < size, so the entry is inside the
            // mapping; the socket is not bound, so the kernel writes no
            // entries of its own.
            unsafe { ptr::copy_nonoverlapping(e.as_ptr(), self.descs.add(idx * DESC), DESC) };
        }
        self.producer()
            .store(p.wrapping_add(entries.len() as u32), Ordering::Release);
    }
}
