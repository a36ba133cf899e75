//! The driver's device: AF_PACKET (`SHUNT_BACKEND=packet`, the default)
//! or an AF_XDP queue (`SHUNT_BACKEND=xdp`), behind the few calls the
//! engine and the tap make. Both receive in place in batches and send
//! into a ring, so the enum's match is the only cost of the choice.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use shunt_ring::afpacket::{AfPacket, AfPacketOptions};
use shunt_ring::offload::VnetHdr;
use shunt_ring::xdp::{Attach, Mode, XdpDevice, XdpOptions, XdpSteering};

use crate::config::{Backend, Config};

// One per process, inside the engine state: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Device {
    Packet(AfPacket),
    Xdp(XdpDevice),
}

impl Device {
    /// Open `cfg`'s device. The error is one line naming the interface.
    pub fn open(cfg: &Config) -> Result<Device, String> {
        match cfg.backend {
            Backend::Packet => {
                let opts = AfPacketOptions {
                    rx_block_size: 256 << 10,
                    rx_block_count: 16,
                    tx_frames: 512,
                    sndbuf: 1 << 20,
                    ..AfPacketOptions::default()
                };
                AfPacket::open(&cfg.iface, &opts)
                    .map(Device::Packet)
                    .map_err(|e| e.to_string())
            }
            Backend::Xdp => {
                let opts = XdpOptions {
                    // The fill ring hands frames back in order, so every
                    // RX frame is touched once per lap: 1024 (4 MiB)
                    // stays in cache where 4096 (16 MiB) did not, and
                    // still absorbs a burst (iperf3 -R on a veth: 4096
                    // 6.8-7.2 Gbit/s, 1024 7.6-7.7; 256 and 512 as fast
                    // but with 5-20x the sender's retransmissions).
                    rx_frames: 1024,
                    tx_frames: 2048,
                    tx_batch: 64,
                    // Zero-copy where the driver offers it, else copy
                    // mode (veth: copy; the failed attempt costs ~1 ms).
                    zero_copy: true,
                    attach: Attach::Auto,
                    mode: if cfg.share_addr {
                        Mode::Shared
                    } else {
                        Mode::Dedicated
                    },
                    addrs: if cfg.share_addr {
                        Vec::new()
                    } else {
                        cfg.addrs.iter().map(|a| a.addr).collect()
                    },
                    ..XdpOptions::default()
                };
                XdpDevice::open(&cfg.iface, &opts)
                    .map(Device::Xdp)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// What the device is, for the log: "AF_XDP (native XDP, copy mode)".
    pub fn name(&self) -> String {
        match self {
            Device::Packet(_) => "AF_PACKET".into(),
            Device::Xdp(d) => format!(
                "AF_XDP ({} XDP, {})",
                if d.native() { "native" } else { "generic" },
                if d.zero_copy() {
                    "zero-copy"
                } else {
                    "copy mode"
                }
            ),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Device::Packet(d) => d.fd(),
            Device::Xdp(d) => d.fd(),
        }
    }

    pub fn renumber_fds(&mut self, f: impl FnMut(BorrowedFd<'_>) -> Option<OwnedFd>) {
        match self {
            Device::Packet(d) => d.renumber_fds(f),
            Device::Xdp(d) => d.renumber_fds(f),
        }
    }

    pub fn ifindex(&self) -> i32 {
        match self {
            Device::Packet(d) => d.ifindex(),
            Device::Xdp(d) => d.ifindex() as i32,
        }
    }

    pub fn mtu(&self) -> usize {
        match self {
            Device::Packet(d) => d.mtu(),
            Device::Xdp(d) => d.mtu(),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        match self {
            Device::Packet(d) => d.mac(),
            Device::Xdp(d) => d.mac(),
        }
    }

    /// In a forked child, which never drives the stack (crate::relay):
    /// close its copies of the device's descriptors, so that the parent's
    /// exit or death still detaches the XDP program, frees the queue and
    /// closes the packet socket while children live on. The device keeps
    /// the numbers but is never used (nor dropped: the engine is leaked)
    /// in the child. No allocation: this runs in a fork handler.
    pub fn close_in_child(&mut self) {
        let mut fds = [-1; 8];
        let mut n = 0;
        self.renumber_fds(|fd| {
            if n < fds.len() {
                fds[n] = fd.as_raw_fd();
                n += 1;
            }
            None
        });
        for &fd in &fds[..n] {
            crate::fdtable::clear(fd);
            crate::relay::raw_close(fd);
        }
    }

    /// The XDP program's maps (AF_XDP only).
    pub fn steering(&self) -> Option<&XdpSteering> {
        match self {
            Device::Packet(_) => None,
            Device::Xdp(d) => Some(d.steering()),
        }
    }

    /// Steer frames for `addr` to shunt too (dedicated AF_XDP; a no-op
    /// elsewhere: AF_PACKET sees every frame).
    pub fn add_addr(&self, addr: IpAddr) {
        if let Some(s) = self.steering()
            && s.mode() == Mode::Dedicated
        {
            let _ = s.add_addr(addr);
        }
    }

    /// The device's counters for `shunt stat`, named like nstat's
    /// (`Dev` + what is counted).
    pub fn counters(&mut self) -> Vec<(&'static str, u64)> {
        match self {
            Device::Packet(d) => {
                let s = d.stats();
                vec![
                    ("DevRxPackets", s.rx_packets),
                    ("DevRxBytes", s.rx_bytes),
                    ("DevRxDrops", s.rx_drops),
                    ("DevRxRingFull", s.rx_ring_full),
                    ("DevRxErrors", s.rx_errors),
                    ("DevTxPackets", s.tx_packets),
                    ("DevTxBytes", s.tx_bytes),
                    ("DevTxErrors", s.tx_errors),
                    ("DevTxFull", s.tx_full),
                ]
            }
            Device::Xdp(d) => {
                let s = d.stats();
                vec![
                    ("DevRxPackets", s.rx_packets),
                    ("DevRxBytes", s.rx_bytes),
                    ("DevRxDrops", s.rx_dropped),
                    ("DevRxRingFull", s.rx_ring_full),
                    ("DevRxFillEmpty", s.rx_fill_empty),
                    ("DevRxErrors", s.rx_errors),
                    ("DevTxPackets", s.tx_packets),
                    ("DevTxBytes", s.tx_bytes),
                    ("DevTxErrors", s.tx_errors),
                    ("DevTxFull", s.tx_full),
                    ("DevTxInvalid", s.tx_invalid),
                ]
            }
        }
    }

    #[inline]
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8], &VnetHdr)) -> usize {
        match self {
            Device::Packet(d) => d.recv_batch(max, f),
            Device::Xdp(d) => d.recv_batch(max, f),
        }
    }

    #[inline]
    pub fn tx_has_room(&self) -> bool {
        match self {
            Device::Packet(d) => d.tx_has_room(),
            Device::Xdp(d) => d.tx_has_room(),
        }
    }

    /// Queue a frame; false when it was not taken (full or unsendable).
    #[inline]
    pub fn send(&mut self, frame: &[u8], hdr: &VnetHdr) -> bool {
        match self {
            Device::Packet(d) => d.send(frame, hdr).is_ok(),
            Device::Xdp(d) => d.send(frame, hdr).is_ok(),
        }
    }

    /// After a flush: frames are still waiting in the device for a kick
    /// (AF_XDP; AF_PACKET's sends are done or refused at once).
    #[inline]
    pub fn tx_stalled(&mut self) -> bool {
        match self {
            Device::Packet(_) => false,
            Device::Xdp(d) => d.tx_needs_kick(),
        }
    }

    #[inline]
    pub fn flush(&mut self) {
        match self {
            Device::Packet(d) => d.flush(),
            Device::Xdp(d) => d.flush(),
        }
    }
}
