//! The driver's device: AF_PACKET (`SHUNT_BACKEND=packet`, the default)
//! or an AF_XDP queue (`SHUNT_BACKEND=xdp`), behind the few calls the
//! engine and the tap make. Both receive in place in batches and send
//! into a ring, so the enum's match is the only cost of the choice.

use std::net::IpAddr;
use std::os::fd::{BorrowedFd, OwnedFd};

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
                    // Copy mode is the default (the rule); a
                    // driver with zero-copy gets it only when asked.
                    zero_copy: false,
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

    pub fn name(&self) -> &'static str {
        match self {
            Device::Packet(_) => "AF_PACKET",
            Device::Xdp(d) if d.native() => "AF_XDP (native XDP)",
            Device::Xdp(_) => "AF_XDP (generic XDP)",
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

    #[inline]
    pub fn flush(&mut self) {
        match self {
            Device::Packet(d) => d.flush(),
            Device::Xdp(d) => d.flush(),
        }
    }
}
