//! The AF_XDP device: shunt on one RX queue of an interface through an
//! XDP socket, side by side with the kernel. An XDP program (hand-written,
//! [`program`]) steers only shunt's frames to the socket and passes
//! everything else to the kernel, which keeps its own address, ARP, ssh,
//! DNS and other programs on the same interface.
//!
//! The device has the interface of [`crate::afpacket::AfPacket`]: open
//! with options, `recv_batch` in place, `send`/`flush` in batches, `fd`
//! to poll, stats, and as an [`App`] the ports "output" (from the wire)
//! and "input" (to send).
//!
//! Loader: the bpf(2) system call directly ([`bpf`]), no libbpf, no ELF,
//! no C toolchain. The program is attached with a BPF link
//! (BPF_LINK_CREATE, attach type BPF_XDP, Linux 5.9), so the kernel
//! detaches it when the last descriptor of the link closes, which
//! includes the process dying by SIGKILL: the kernel gets the interface
//! back by itself.
//!
//! Modes on a veth (measured on Linux 6.18, see ring/tests/xdp.rs):
//! copy mode works with native (driver) XDP and with generic (skb) XDP;
//! zero-copy does not exist on veth (the bind fails with EOPNOTSUPP and
//! the device falls back to copy mode when `zero_copy` is asked for).
//! Native veth XDP refuses an MTU over about 3.5 KiB (ERANGE); [`Attach::Auto`]
//! then falls back to generic XDP.
//!
//! Frames longer than a UMEM frame: generic XDP runs on the skb as the
//! kernel built it, so a local peer's TSO frames and a NIC's GRO frames
//! (up to 64 KiB) reach the socket whole. The socket is bound with
//! XDP_USE_SG (multi-buffer, Linux 6.6) where the kernel has it: such a
//! frame then comes in several RX descriptors, which `recv_batch` copies
//! into one buffer. Without it the kernel drops them (TCP from such a
//! peer stalls). UDP aggregates (UDP_SEGMENT sends, UDP GRO) are dropped
//! here all the same: they stand for many datagrams of a size nothing
//! tells us, and delivered whole they would be one wrong datagram. The program needs no frags flag (BPF_F_XDP_HAS_FRAGS)
//! for this (measured on Linux 6.18): generic XDP makes the skb linear
//! for a program without it, and the socket cuts the linear frame into
//! UMEM frames.
//!
//! Offloads: an XDP socket carries no virtio-net header. Frames sent with
//! a partial checksum are completed in software and GSO frames are cut in
//! software ([`crate::offload`]) before they go into the UMEM. Frames
//! received come with a plain [`VnetHdr`] (checksums not verified), except
//! where the device can deliver the local kernel's frames as built: a veth
//! peer with offloads on (the default) leaves TCP and UDP checksums
//! partial, and so does anything through generic XDP. There the device
//! recognises the partial form ([`offload::infer_partial`]) and marks such
//! frames `NEEDS_CSUM`, as AF_PACKET's virtio-net header would; real NICs
//! in native mode put complete checksums on the wire.

pub mod bpf;
pub mod program;
mod socket;

use std::fmt;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr;
use std::time::{Duration, Instant};

use crate::engine::{App, Io};
use crate::link::Link;
use crate::offload::{self, VnetHdr};
use crate::packet::{MAX_FRAME, Packet};

use program::MapRef;
use socket::{ADDR, DESC, Geometry, Xsk};

/// Bytes per UMEM frame: one page.
pub const FRAME_SIZE: usize = 4096;
/// Headroom the kernel keeps in front of a received frame
/// (XDP_PACKET_HEADROOM).
const XDP_HEADROOM: usize = 256;
/// Most descriptors of one received frame we can take: [`MAX_FRAME`] in
/// the smallest pieces the kernel makes (a UMEM frame less its headroom),
/// and one more.
const MAX_DESCS: u32 = (MAX_FRAME / (FRAME_SIZE - XDP_HEADROOM) + 2) as u32;
/// Bytes of Ethernet header plus one VLAN tag beyond the MTU.
const L2_MAX: usize = 18;
/// Largest MTU whose frames fit a UMEM frame.
pub const MAX_MTU: usize = FRAME_SIZE - XDP_HEADROOM - L2_MAX;
/// `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17): frames one `sendto` may send in
/// copy mode (32 before).
const XDP_MAX_TX_SKB_BUDGET: i32 = 9;
/// How soon the engine comes back to a device whose transmit side is
/// backed up.
const TX_RETRY: Duration = Duration::from_micros(100);
/// How long `open` waits for a queue that a just-closed socket still
/// holds.
const QUEUE_BUSY_WAIT: Duration = Duration::from_secs(1);
/// Kicks of the TX ring per flush at most (each sends up to the
/// kernel's budget).
const MAX_KICKS: usize = 64;
const IFNAMSIZ: usize = 16;
const ARPHRD_ETHER: u16 = 1;
const IFF_UP: u16 = 0x1;

/// How the program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// Native (driver) XDP, else generic.
    Auto,
    /// Native (driver) XDP only: XDP_FLAGS_DRV_MODE.
    Native,
    /// Generic XDP (on the skb, any driver): XDP_FLAGS_SKB_MODE.
    Generic,
}

/// Which frames are shunt's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Shunt has addresses of its own ([`XdpOptions::addrs`]): IPv4 and
    /// IPv6 frames to them, ARP and Neighbor Solicitations for them.
    Dedicated,
    /// Shunt shares the kernel's address: TCP/UDP frames to the
    /// (protocol, port)s it registers ([`XdpSteering::add_port`]).
    Shared,
}

/// Transport protocols for shared-mode steering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp = 6,
    Udp = 17,
}

/// Settings of an [`XdpDevice`].
#[derive(Clone, Debug)]
pub struct XdpOptions {
    /// The RX queue to bind to (the program steers frames of this queue
    /// only; others reach the kernel).
    pub queue_id: u32,
    /// UMEM frames for receiving (also the fill and RX ring sizes): a
    /// power of two.
    pub rx_frames: u32,
    /// UMEM frames for sending (also the TX and completion ring sizes): a
    /// power of two.
    pub tx_frames: u32,
    /// Frames queued before the TX ring is kicked on its own.
    pub tx_batch: usize,
    /// Try zero-copy first (falls back to copy mode if the driver cannot).
    pub zero_copy: bool,
    /// Native or generic XDP.
    pub attach: Attach,
    pub mode: Mode,
    /// Shunt's addresses ([`Mode::Dedicated`]); more can be added later.
    pub addrs: Vec<IpAddr>,
    /// Look for unmarked partial checksums in received frames
    /// ([`offload::infer_partial`]); `None`: when the frames can carry
    /// them (generic XDP, or a veth/tun whose peer is the local kernel).
    pub infer_partial_csum: Option<bool>,
}

impl Default for XdpOptions {
    fn default() -> Self {
        XdpOptions {
            queue_id: 0,
            rx_frames: 4096,
            tx_frames: 2048,
            tx_batch: 64,
            zero_copy: false,
            attach: Attach::Auto,
            mode: Mode::Dedicated,
            addrs: Vec::new(),
            infer_partial_csum: None,
        }
    }
}

use crate::error::os_err;
pub use crate::error::{DeviceError, DeviceKind};

/// Why a frame was not queued for transmission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// No free UMEM frame even after reaping completions: try again after
    /// [`XdpDevice::flush`].
    Full,
    /// Shorter than an Ethernet header, longer than the MTU (and not
    /// GSO), or longer than a packet buffer.
    BadLength { len: usize },
    /// The virtio-net header cannot be right for this frame.
    BadHeader,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::Full => f.write_str("transmit ring full"),
            TxError::BadLength { len } => write!(f, "frame of {len} bytes cannot be sent"),
            TxError::BadHeader => f.write_str("virtio-net header does not fit the frame"),
        }
    }
}

impl std::error::Error for TxError {}

/// Counters of a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames and bytes delivered to the caller.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames skipped here (a descriptor outside the UMEM, shorter than 14
    /// bytes; a multi-buffer frame longer than a packet, or carrying UDP:
    /// a GSO/GRO aggregate of datagrams whose size is not known).
    pub rx_errors: u64,
    /// From XDP_STATISTICS: frames the kernel dropped (too big for a
    /// frame without multi-buffer, ...), found the RX ring full, or found
    /// no fill entry for.
    pub rx_dropped: u64,
    pub rx_ring_full: u64,
    pub rx_fill_empty: u64,
    /// Frames and bytes put on the TX ring.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames refused (bad length or header).
    pub tx_errors: u64,
    /// Times a frame could not be queued for want of a free frame.
    pub tx_full: u64,
    /// From XDP_STATISTICS: TX descriptors the kernel found invalid.
    pub tx_invalid: u64,
    /// Kicks that found a frame dropped by the device (copy mode).
    pub tx_dropped: u64,
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
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
    let ret = unsafe { libc::syscall(libc::SYS_ioctl, fd.as_raw_fd(), req, &mut r as *mut IfReq) };
    if ret < 0 { Err(last_errno()) } else { Ok(r) }
}

/// What the interface is: index, MTU, MAC.
struct IfInfo {
    ifindex: u32,
    mtu: usize,
    mac: [u8; 6],
    /// The driver's name (ethtool's), empty if the device does not say.
    driver: String,
}

/// `struct ethtool_drvinfo` (include/uapi/linux/ethtool.h).
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    rest: [u8; 32 * 4 + 12 + 4 * 5],
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 3;

fn driver_name(fd: BorrowedFd, name: &str) -> String {
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 32 * 4 + 12 + 4 * 5],
    };
    let mut r = IfReq {
        name: [0; IFNAMSIZ],
        data: [0; 24],
    };
    r.name[..name.len()].copy_from_slice(name.as_bytes());
    r.data[..8].copy_from_slice(&(&mut info as *mut DrvInfo as usize as u64).to_ne_bytes());
    // SAFETY: SIOCETHTOOL reads the name and the ifr_data pointer from `r`;
    // ETHTOOL_GDRVINFO writes at most sizeof(struct ethtool_drvinfo) bytes
    // at that pointer, which is `info`, that size and alive for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd.as_raw_fd(),
            SIOCETHTOOL,
            &mut r as *mut IfReq,
        )
    };
    if ret < 0 {
        return String::new();
    }
    let n = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    String::from_utf8_lossy(&info.driver[..n]).into_owned()
}

fn if_info(ifname: &str) -> Result<IfInfo, DeviceError> {
    let name = || ifname.to_string();
    // Any socket answers SIOCGIF*; an XDP socket does not (no ioctl).
    let s = socket::socket(libc::AF_INET, libc::SOCK_DGRAM).map_err(|errno| DeviceError::Sys {
        dev: DeviceKind::Xdp,
        ifname: name(),
        op: "socket",
        errno,
    })?;
    let b = s.as_fd();
    let nf = |e: i32| {
        if e == libc::ENODEV {
            DeviceError::NotFound { ifname: name() }
        } else {
            DeviceError::Sys {
                dev: DeviceKind::Xdp,
                ifname: name(),
                op: "ioctl",
                errno: e,
            }
        }
    };
    let r = ifreq(b, ifname, libc::SIOCGIFINDEX).map_err(nf)?;
    let ifindex = u32::from_ne_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]);
    let r = ifreq(b, ifname, libc::SIOCGIFFLAGS).map_err(nf)?;
    if u16::from_ne_bytes([r.data[0], r.data[1]]) & IFF_UP == 0 {
        return Err(DeviceError::Down { ifname: name() });
    }
    let r = ifreq(b, ifname, libc::SIOCGIFMTU).map_err(nf)?;
    let mtu = i32::from_ne_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]).max(68) as usize;
    let r = ifreq(b, ifname, libc::SIOCGIFHWADDR).map_err(nf)?;
    let hwtype = u16::from_ne_bytes([r.data[0], r.data[1]]);
    if hwtype != ARPHRD_ETHER {
        return Err(DeviceError::NotEthernet {
            ifname: name(),
            hwtype,
        });
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&r.data[2..8]);
    let driver = driver_name(b, ifname);
    Ok(IfInfo {
        ifindex,
        mtu,
        mac,
        driver,
    })
}

// ---------------------------------------------------------------------------
// The program, its maps and its link.
// ---------------------------------------------------------------------------

/// The loaded XDP program with its maps, and (once attached) its link.
/// Dropping it detaches the program. Map updates take effect at once.
pub struct XdpSteering {
    mode: Mode,
    insns: usize,
    xsks: OwnedFd,
    addrs4: Option<OwnedFd>,
    addrs6: Option<OwnedFd>,
    ports: Option<OwnedFd>,
    prog: OwnedFd,
    link: Option<OwnedFd>,
    ifname: String,
}

/// Most addresses in dedicated mode, per family.
const MAX_ADDRS: u32 = 64;
/// Most (protocol, port) entries in shared mode.
const MAX_PORTS: u32 = 65536;

impl XdpSteering {
    /// Create the maps and load the program for `mode`, with an XSKMAP of
    /// `queues` entries. `ifname` only names the interface in errors.
    pub fn load(ifname: &str, mode: Mode, queues: u32) -> Result<XdpSteering, DeviceError> {
        let name = ifname.to_string();
        let map_err = |errno: i32| match errno {
            libc::EPERM | libc::EACCES => DeviceError::Permission {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
            },
            libc::EINVAL | libc::ENOSYS => DeviceError::Unsupported {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
                what: "XSKMAP and hash BPF maps",
            },
            errno => DeviceError::Sys {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
                op: "BPF_MAP_CREATE",
                errno,
            },
        };
        let xsks = bpf::map_create(bpf::MAP_XSKMAP, 4, 4, queues.max(1), 0, "shunt_xsks")
            .map_err(map_err)?;
        let ops = match mode {
            Mode::Dedicated => program::DEDICATED,
            Mode::Shared => program::SHARED,
        };
        let (mut addrs4, mut addrs6, mut ports) = (None, None, None);
        for m in program::maps_used(ops) {
            let slot = match m {
                MapRef::Xsks => continue,
                MapRef::Addrs4 => &mut addrs4,
                MapRef::Addrs6 => &mut addrs6,
                MapRef::Ports => &mut ports,
            };
            if slot.is_some() {
                continue;
            }
            let fd = match m {
                MapRef::Addrs4 => bpf::map_create(bpf::MAP_HASH, 4, 1, MAX_ADDRS, 0, "shunt_addr4"),
                MapRef::Addrs6 => {
                    bpf::map_create(bpf::MAP_HASH, 16, 1, MAX_ADDRS, 0, "shunt_addr6")
                }
                _ => bpf::map_create(
                    bpf::MAP_HASH,
                    4,
                    1,
                    MAX_PORTS,
                    bpf::F_NO_PREALLOC,
                    "shunt_ports",
                ),
            }
            .map_err(map_err)?;
            *slot = Some(fd);
        }
        let raw = |o: &Option<OwnedFd>| o.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
        let (a4, a6, p) = (raw(&addrs4), raw(&addrs6), raw(&ports));
        let xs = xsks.as_raw_fd();
        let insns = program::assemble(ops, |m| match m {
            MapRef::Xsks => xs,
            MapRef::Addrs4 => a4,
            MapRef::Addrs6 => a6,
            MapRef::Ports => p,
        })
        .map_err(|log| DeviceError::Verifier {
            ifname: name.clone(),
            errno: libc::EINVAL,
            log,
        })?;
        // bpf_redirect_map is GPL-only.
        let prog =
            bpf::prog_load_xdp(&insns, "Dual MIT/GPL", "shunt_steer").map_err(|e| {
                match e.errno {
                    libc::EPERM if e.log.is_empty() => DeviceError::Permission {
                        dev: DeviceKind::Xdp,
                        ifname: name.clone(),
                    },
                    errno => DeviceError::Verifier {
                        ifname: name.clone(),
                        errno,
                        log: e.log,
                    },
                }
            })?;
        Ok(XdpSteering {
            mode,
            insns: insns.len(),
            xsks,
            addrs4,
            addrs6,
            ports,
            prog,
            link: None,
            ifname: name,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Instructions in the loaded program.
    pub fn instruction_count(&self) -> usize {
        self.insns
    }

    /// The program's descriptor.
    pub fn prog_fd(&self) -> BorrowedFd<'_> {
        self.prog.as_fd()
    }

    /// Put an AF_XDP socket on RX queue `queue`.
    pub fn set_socket(&self, queue: u32, xsk: BorrowedFd) -> std::io::Result<()> {
        let fd = xsk.as_raw_fd() as u32;
        bpf::map_update(self.xsks.as_fd(), &queue.to_ne_bytes(), &fd.to_ne_bytes()).map_err(os_err)
    }

    /// Attach to `ifindex` (in the calling thread's namespace) with a BPF
    /// link; returns whether native XDP was used.
    pub fn attach(&mut self, ifindex: u32, how: Attach, mtu: usize) -> Result<bool, DeviceError> {
        let name = self.ifname.clone();
        let err = |errno: i32, native: bool| match errno {
            libc::EPERM | libc::EACCES => DeviceError::Permission {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
            },
            libc::EBUSY | libc::EEXIST => DeviceError::Busy {
                ifname: name.clone(),
            },
            libc::ERANGE if native => DeviceError::DriverMtu {
                ifname: name.clone(),
                mtu,
            },
            libc::EINVAL if !native => DeviceError::Unsupported {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
                what: "BPF links for XDP (Linux 5.9)",
            },
            errno => DeviceError::Sys {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
                op: "BPF_LINK_CREATE",
                errno,
            },
        };
        let try_native = how != Attach::Generic;
        if try_native {
            match bpf::link_create_xdp(self.prog.as_fd(), ifindex, bpf::XDP_FLAGS_DRV_MODE) {
                Ok(l) => {
                    self.link = Some(l);
                    return Ok(true);
                }
                // No native XDP in this driver, or not at this MTU.
                Err(e @ (libc::EOPNOTSUPP | libc::EINVAL | libc::ERANGE))
                    if how == Attach::Auto =>
                {
                    let _ = e;
                }
                Err(e) => return Err(err(e, true)),
            }
        }
        let l = bpf::link_create_xdp(self.prog.as_fd(), ifindex, bpf::XDP_FLAGS_SKB_MODE)
            .map_err(|e| err(e, false))?;
        self.link = Some(l);
        Ok(false)
    }

    /// Detach now (dropping does too).
    pub fn detach(&mut self) {
        self.link = None;
    }

    fn addr_map(&self, a: &IpAddr) -> std::io::Result<(BorrowedFd<'_>, [u8; 16], usize)> {
        let (map, key, len) = match a {
            IpAddr::V4(v4) => {
                let mut k = [0u8; 16];
                k[..4].copy_from_slice(&v4.octets());
                (&self.addrs4, k, 4)
            }
            IpAddr::V6(v6) => (&self.addrs6, v6.octets(), 16),
        };
        let map = map.as_ref().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "addresses are steered in dedicated mode only",
            )
        })?;
        Ok((map.as_fd(), key, len))
    }

    /// Steer frames for `addr` to shunt ([`Mode::Dedicated`]): IPv4 and
    /// ARP for an IPv4 address; IPv6 and Neighbor Solicitations for an
    /// IPv6 one.
    pub fn add_addr(&self, addr: IpAddr) -> std::io::Result<()> {
        let (map, key, len) = self.addr_map(&addr)?;
        bpf::map_update(map, &key[..len], &[1]).map_err(os_err)
    }

    /// Stop steering `addr`; Ok(false) if it was not steered.
    pub fn remove_addr(&self, addr: IpAddr) -> std::io::Result<bool> {
        let (map, key, len) = self.addr_map(&addr)?;
        bpf::map_delete(map, &key[..len]).map_err(os_err)
    }

    fn port_key(&self, proto: Proto, port: u16) -> std::io::Result<(BorrowedFd<'_>, [u8; 4])> {
        let map = self.ports.as_ref().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "ports are steered in shared mode only",
            )
        })?;
        let p = port.to_be_bytes();
        Ok((map.as_fd(), [p[0], p[1], proto as u8, 0]))
    }

    /// Steer TCP or UDP frames to local port `port` to shunt
    /// ([`Mode::Shared`]): on bind, listen and connect.
    pub fn add_port(&self, proto: Proto, port: u16) -> std::io::Result<()> {
        let (map, key) = self.port_key(proto, port)?;
        bpf::map_update(map, &key, &[1]).map_err(os_err)
    }

    /// Stop steering a port; Ok(false) if it was not steered.
    pub fn remove_port(&self, proto: Proto, port: u16) -> std::io::Result<bool> {
        let (map, key) = self.port_key(proto, port)?;
        bpf::map_delete(map, &key).map_err(os_err)
    }

    /// Run the program once on `frame` (BPF_PROG_TEST_RUN; at least 14
    /// bytes) and return its verdict. The run happens as if on queue 0 of
    /// the namespace's loopback device; a redirect to a queue with a
    /// socket reads XDP_REDIRECT, to an empty one XDP_PASS.
    pub fn test_run(&self, frame: &[u8]) -> std::io::Result<u32> {
        bpf::prog_test_run(self.prog.as_fd(), frame).map_err(os_err)
    }

    fn renumber_fds(&mut self, f: &mut impl FnMut(BorrowedFd<'_>) -> Option<OwnedFd>) {
        for fd in [
            Some(&mut self.xsks),
            self.addrs4.as_mut(),
            self.addrs6.as_mut(),
            self.ports.as_mut(),
            Some(&mut self.prog),
            self.link.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(n) = f(fd.as_fd()) {
                *fd = n;
            }
        }
    }
}

impl fmt::Debug for XdpSteering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpSteering")
            .field("mode", &self.mode)
            .field("insns", &self.insns)
            .field("attached", &self.link.is_some())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// The device.
// ---------------------------------------------------------------------------

/// An AF_XDP device on one RX queue of one interface.
pub struct XdpDevice {
    // The program goes first (detached before the socket closes).
    steering: XdpSteering,
    xsk: Xsk,
    /// TX frames not in the kernel's hands (UMEM addresses).
    free: Vec<u64>,
    /// Descriptors written to the TX ring and not yet published.
    tx_pending: u32,
    rx_frames: usize,
    tx_frames: usize,
    ifname: String,
    ifindex: u32,
    queue_id: u32,
    mtu: usize,
    mac: [u8; 6],
    zero_copy: bool,
    native: bool,
    /// Bound with XDP_USE_SG: a frame may span several RX descriptors.
    multi_buffer: bool,
    /// Where a frame that spans several descriptors is put together
    /// ([`MAX_FRAME`] bytes, allocated once).
    rx_buf: Box<[u8]>,
    /// Descriptors of a frame too long for `rx_buf` are being skipped up
    /// to its last one (which may come in a later batch).
    rx_skip: bool,
    batch: usize,
    /// Received frames may carry unmarked partial checksums.
    infer_partial: bool,
    stats: XdpStats,
    /// Last errno from a kick, for reports.
    last_tx_errno: i32,
    /// The last push left packets on the input link.
    tx_blocked: bool,
}

// SAFETY: an XdpDevice exclusively owns its socket, its mappings and its
// BPF objects; the raw pointers all point into those mappings and are used
// only through &mut self (or &self for reads of our own state). Nothing is
// tied to the thread that opened it.
unsafe impl Send for XdpDevice {}

impl XdpDevice {
    /// Open the device on `ifname` (in the calling thread's network
    /// namespace): socket, UMEM and rings, bind (zero-copy if asked and
    /// offered, else copy), load the program, put the socket in its map,
    /// add the addresses, attach.
    pub fn open(ifname: &str, opts: &XdpOptions) -> Result<XdpDevice, DeviceError> {
        let name = ifname.to_string();
        if !valid_ifname(ifname) {
            return Err(DeviceError::BadName { ifname: name });
        }
        let bad = |why: String| DeviceError::BadOptions {
            dev: DeviceKind::Xdp,
            ifname: name.clone(),
            why,
        };
        for (what, n) in [("rx_frames", opts.rx_frames), ("tx_frames", opts.tx_frames)] {
            if !n.is_power_of_two() || !(64..=1 << 16).contains(&n) {
                return Err(bad(format!(
                    "{what} {n} must be a power of two from 64 to 65536"
                )));
            }
        }
        if opts.tx_batch == 0 || opts.queue_id >= 1024 {
            return Err(bad(
                "tx_batch must be positive and queue_id below 1024".into()
            ));
        }
        if opts.mode == Mode::Shared && !opts.addrs.is_empty() {
            return Err(bad("addresses are for dedicated mode".into()));
        }
        let info = if_info(ifname)?;
        if info.mtu > MAX_MTU {
            return Err(DeviceError::MtuTooLarge {
                ifname: name,
                mtu: info.mtu,
            });
        }

        let geo = Geometry {
            rx_frames: opts.rx_frames,
            tx_frames: opts.tx_frames,
            frame_size: FRAME_SIZE,
        };
        let sys = |(op, errno): (&'static str, i32)| match errno {
            libc::EPERM | libc::EACCES => DeviceError::Permission {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
            },
            libc::EAFNOSUPPORT if op == "socket" => DeviceError::Unsupported {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
                what: "AF_XDP sockets",
            },
            errno => DeviceError::Sys {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
                op,
                errno,
            },
        };
        let need_wakeup = libc::XDP_USE_NEED_WAKEUP;
        // A socket closed just before (by this process or another) keeps
        // its queue until the kernel's deferred release runs: EBUSY for a
        // moment. Wait that out, not a socket that stays.
        let bind = |s: &Xsk, flags: u16| {
            let deadline = Instant::now() + QUEUE_BUSY_WAIT;
            loop {
                match socket::bind_xdp(s.fd.as_fd(), info.ifindex, opts.queue_id, flags) {
                    Err(libc::EBUSY) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    r => return r,
                }
            }
        };
        // Multi-buffer (XDP_USE_SG, Linux 6.6): a frame longer than a UMEM
        // frame arrives in several descriptors instead of being dropped.
        // Generic XDP sees the skb as built, so a local peer's TSO frames
        // (64 KiB) and a NIC's GRO frames come through it whole. Older
        // kernels refuse the flag (EINVAL); a zero-copy driver without
        // multi-buffer support refuses it with EOPNOTSUPP. A failed bind
        // may leave the socket half set up: each try gets a fresh one.
        let sg = libc::XDP_USE_SG;
        let tries: &[u16] = if opts.zero_copy {
            &[
                libc::XDP_ZEROCOPY | sg,
                libc::XDP_ZEROCOPY,
                libc::XDP_COPY | sg,
                libc::XDP_COPY,
            ]
        } else {
            &[libc::XDP_COPY | sg, libc::XDP_COPY]
        };
        let mut bound = None;
        let mut last = libc::EINVAL;
        for &flags in tries {
            let copy = flags & libc::XDP_COPY != 0;
            // Skip copy mode without SG unless SG was refused (not merely
            // zero-copy).
            if copy && flags & sg == 0 && !matches!(last, libc::EINVAL | libc::EOPNOTSUPP) {
                break;
            }
            let mut s = Xsk::new(&geo).map_err(sys)?;
            prime_fill(&mut s, opts.rx_frames);
            match bind(&s, flags | need_wakeup) {
                Ok(()) => {
                    bound = Some((s, flags));
                    break;
                }
                // The queue is taken whatever the mode.
                Err(libc::EBUSY) => {
                    last = libc::EBUSY;
                    break;
                }
                Err(e) => last = e,
            }
        }
        let Some((xsk, flags)) = bound else {
            return Err(match last {
                libc::ENODEV => DeviceError::NotFound {
                    ifname: name.clone(),
                },
                libc::EINVAL if opts.queue_id > 0 => {
                    bad(format!("{ifname} has no RX queue {}", opts.queue_id))
                }
                libc::EBUSY => DeviceError::QueueBusy {
                    ifname: name.clone(),
                    queue: opts.queue_id,
                },
                e => sys(("bind", e)),
            });
        };
        let zero_copy = flags & libc::XDP_ZEROCOPY != 0;
        let multi_buffer = flags & sg != 0;
        // Let one sendto send a whole TX ring in copy mode (Linux 6.17;
        // older kernels send 32 per call and flush() kicks again).
        let _ = socket::setsockopt(
            xsk.fd.as_fd(),
            libc::SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            &opts.tx_frames,
        );

        let mut steering = XdpSteering::load(ifname, opts.mode, opts.queue_id + 1)?;
        steering
            .set_socket(opts.queue_id, xsk.fd.as_fd())
            .map_err(|e| DeviceError::Sys {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
                op: "XSKMAP update",
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?;
        for a in &opts.addrs {
            steering.add_addr(*a).map_err(|e| DeviceError::Sys {
                dev: DeviceKind::Xdp,
                ifname: name.clone(),
                op: "address map update",
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?;
        }
        let native = steering.attach(info.ifindex, opts.attach, info.mtu)?;
        let infer_partial = opts
            .infer_partial_csum
            .unwrap_or(!native || matches!(info.driver.as_str(), "veth" | "tun"));

        let free: Vec<u64> = (0..opts.tx_frames as u64)
            .map(|i| (opts.rx_frames as u64 + i) * FRAME_SIZE as u64)
            .collect();
        Ok(XdpDevice {
            steering,
            xsk,
            free,
            tx_pending: 0,
            rx_frames: opts.rx_frames as usize,
            tx_frames: opts.tx_frames as usize,
            ifname: name,
            ifindex: info.ifindex,
            queue_id: opts.queue_id,
            mtu: info.mtu,
            mac: info.mac,
            zero_copy,
            native,
            multi_buffer,
            rx_buf: vec![0u8; MAX_FRAME].into_boxed_slice(),
            rx_skip: false,
            batch: opts.tx_batch,
            infer_partial,
            stats: XdpStats::default(),
            last_tx_errno: 0,
            tx_blocked: false,
        })
    }

    /// The socket, to poll for readability (the RX ring has frames).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.xsk.fd.as_fd()
    }

    /// The program and its maps: add or remove addresses and ports.
    pub fn steering(&self) -> &XdpSteering {
        &self.steering
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// The interface's MTU when the device was opened.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The interface's MAC address when the device was opened.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// True if the socket is bound in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// True if the socket is bound with XDP_USE_SG (Linux 6.6): frames
    /// longer than a UMEM frame are received (in several descriptors, put
    /// together here) instead of dropped by the kernel.
    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// True if the program runs as native (driver) XDP, false if generic.
    pub fn native(&self) -> bool {
        self.native
    }

    /// True if received frames are checked for unmarked partial checksums.
    pub fn infers_partial_csum(&self) -> bool {
        self.infer_partial
    }

    /// Renumbers the device's descriptors (the socket, the program, its
    /// maps and its link): `f` gets each one and returns a duplicate to
    /// use instead (the original is closed), as for
    /// [`crate::afpacket::AfPacket::renumber_fds`]. The XSKMAP keeps the
    /// socket itself, not its number.
    pub fn renumber_fds(&mut self, mut f: impl FnMut(BorrowedFd<'_>) -> Option<OwnedFd>) {
        if let Some(fd) = f(self.xsk.fd.as_fd()) {
            self.xsk.fd = fd;
        }
        self.steering.renumber_fds(&mut f);
    }

    /// Read up to `max` frames from the RX ring, calling `f` with each
    /// frame and its virtio-net header (plain, or `NEEDS_CSUM` where the
    /// device infers an unmarked partial checksum), then give their UMEM
    /// frames back through the fill ring. A frame in one descriptor is
    /// read in place; one in several (multi-buffer: every descriptor but
    /// the last has XDP_PKT_CONTD) is copied together first. Returns the
    /// number of frames delivered.
    pub fn recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8], &VnetHdr)) -> usize {
        let x = &mut self.xsk;
        let mut n = x.rx.cons_ready(u32::MAX);
        let plain = VnetHdr::default();
        let mut delivered = 0;
        // Descriptors looked at, and descriptors done with (complete frames
        // delivered or dropped): a frame whose last descriptor is not in
        // the ring yet stays there for the next call.
        let mut i = 0;
        let mut fresh = false;
        while i < n && delivered < max {
            let (addr, len, options) = read_desc(x.rx.cons_slot(i, DESC));
            i += 1;
            let more = options & libc::XDP_PKT_CONTD != 0;
            if self.rx_skip {
                self.rx_skip = more;
                continue;
            }
            if !more {
                match x.umem.slice(addr, len as usize) {
                    Some(frame) if frame.len() >= 14 => {
                        self.stats.rx_packets += 1;
                        self.stats.rx_bytes += len as u64;
                        delivered += 1;
                        if self.infer_partial {
                            f(frame, &offload::infer_partial(frame).unwrap_or(plain));
                        } else {
                            f(frame, &plain);
                        }
                    }
                    _ => self.stats.rx_errors += 1,
                }
                continue;
            }
            // The first of several: find the last.
            let first = i - 1;
            let mut end = None;
            loop {
                let mut j = i;
                while j < n {
                    let (_, _, o) = read_desc(x.rx.cons_slot(j, DESC));
                    j += 1;
                    if o & libc::XDP_PKT_CONTD == 0 {
                        end = Some(j);
                        break;
                    }
                }
                // The kernel publishes a frame's descriptors together, but
                // our view of its producer index may be older.
                if end.is_some() || fresh {
                    break;
                }
                fresh = true;
                n = x.rx.cons_ready_fresh();
            }
            let Some(end) = end else {
                if n - first > MAX_DESCS {
                    // Longer than any frame we take, and not even finished:
                    // drop what is here and the rest as it comes.
                    self.stats.rx_errors += 1;
                    self.rx_skip = true;
                    i = n;
                } else {
                    i = first;
                }
                break;
            };
            let mut total = 0;
            let mut ok = true;
            for k in first..end {
                let (a, l, _) = read_desc(x.rx.cons_slot(k, DESC));
                match x.umem.slice(a, l as usize) {
                    Some(piece) if piece.len() <= self.rx_buf.len() - total => {
                        self.rx_buf[total..total + piece.len()].copy_from_slice(piece);
                        total += piece.len();
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            i = end;
            // Longer than the MTU, so a GSO or GRO aggregate. TCP's are
            // one stretch of the byte stream, but UDP's stand for many
            // datagrams (UDP_SEGMENT, UDP GRO) of a size the socket is not
            // told: delivered whole they would be one wrong datagram.
            if !ok || total < 14 || is_udp(&self.rx_buf[..total]) {
                self.stats.rx_errors += 1;
                continue;
            }
            let frame = &self.rx_buf[..total];
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += total as u64;
            delivered += 1;
            if self.infer_partial {
                f(frame, &offload::infer_partial(frame).unwrap_or(plain));
            } else {
                f(frame, &plain);
            }
        }
        let done = i;
        if done > 0 {
            // The fill ring holds every RX frame, so there is room.
            let room = x.fill.prod_room(done);
            debug_assert!(room >= done);
            let mask = !(FRAME_SIZE as u64 - 1);
            for k in 0..done.min(room) {
                let (addr, _, _) = read_desc(x.rx.cons_slot(k, DESC));
                // SAFETY: k < room, so the slot is ours to write until
                // produce(); fill entries are u64 addresses.
                unsafe { ptr::write_unaligned(x.fill.prod_slot(k, ADDR) as *mut u64, addr & mask) };
            }
            x.fill.produce(done.min(room));
            x.rx.release(done);
        }
        if x.fill.needs_wakeup() && done > 0 {
            let _ = socket::kick_rx(x.fd.as_fd());
        }
        delivered
    }

    /// True if a frame can be queued now.
    pub fn tx_has_room(&self) -> bool {
        !self.free.is_empty()
    }

    /// Take back the TX frames the kernel has sent.
    fn reap(&mut self) {
        let x = &mut self.xsk;
        let n = x.comp.cons_ready(u32::MAX);
        for i in 0..n {
            // SAFETY: i < ready, so the entry was published by the kernel
            // (acquire in cons_ready); completion entries are u64s.
            let addr = unsafe { ptr::read_unaligned(x.comp.cons_slot(i, ADDR) as *const u64) };
            // Only addresses of our TX frames go back on the free list
            // (the kernel returns what we gave it; anything else would be
            // a kernel bug, and is not trusted).
            let first = self.rx_frames as u64 * FRAME_SIZE as u64;
            let end = first + self.tx_frames as u64 * FRAME_SIZE as u64;
            if (first..end).contains(&addr) && addr.is_multiple_of(FRAME_SIZE as u64) {
                self.free.push(addr);
            }
        }
        if n > 0 {
            x.comp.release(n);
        }
    }

    /// A free TX frame, reaping completions (and kicking once) if none.
    fn take_frame(&mut self) -> Option<u64> {
        if self.free.is_empty() {
            self.reap();
        }
        if self.free.is_empty() {
            self.flush();
        }
        self.free.pop()
    }

    /// Write a descriptor for `len` bytes at `addr` to the TX ring.
    fn put_desc(&mut self, addr: u64, len: usize) {
        let x = &mut self.xsk;
        let room = x.tx.prod_room(self.tx_pending + 1);
        // The TX ring has a slot per TX frame, and this frame was free.
        debug_assert!(room > self.tx_pending);
        let slot = x.tx.prod_slot(self.tx_pending, DESC);
        // SAFETY: the slot is past the published producer index and within
        // the free room, so the kernel does not read it before produce();
        // xdp_desc is {u64 addr, u32 len, u32 options}.
        unsafe {
            ptr::write_unaligned(slot as *mut u64, addr);
            ptr::write_unaligned(slot.add(8) as *mut u32, len as u32);
            ptr::write_unaligned(slot.add(12) as *mut u32, 0);
        }
        self.tx_pending += 1;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
    }

    /// Queue a frame (a copy) for transmission. A partial checksum is
    /// completed and a GSO frame cut in software. Batches go to the kernel
    /// when full and on [`XdpDevice::flush`]. [`TxError::Full`] means "not
    /// now": keep the frame and try again after a flush.
    pub fn send(&mut self, frame: &[u8], hdr: &VnetHdr) -> Result<(), TxError> {
        let len = frame.len();
        if hdr.is_gso() {
            return self.send_gso(frame, hdr);
        }
        if len < 14 || len > self.mtu + L2_MAX || len > FRAME_SIZE {
            self.stats.tx_errors += 1;
            return Err(TxError::BadLength { len });
        }
        if hdr.gso_type != offload::GSO_NONE
            || (hdr.needs_csum() && hdr.csum_start as usize + hdr.csum_offset as usize + 2 > len)
        {
            self.stats.tx_errors += 1;
            return Err(TxError::BadHeader);
        }
        let Some(addr) = self.take_frame() else {
            self.stats.tx_full += 1;
            return Err(TxError::Full);
        };
        let buf = &mut self.xsk.umem.frame_mut(addr)[..len];
        buf.copy_from_slice(frame);
        if hdr.needs_csum() {
            // Bounds checked above, so this cannot fail.
            let _ = offload::complete_checksum(buf, hdr);
        }
        self.put_desc(addr, len);
        if self.tx_pending as usize >= self.batch {
            self.flush();
        }
        Ok(())
    }

    /// A GSO frame: cut in software into free TX frames. Refused as Full
    /// unless there are frames enough for the largest possible cut.
    fn send_gso(&mut self, frame: &[u8], hdr: &VnetHdr) -> Result<(), TxError> {
        let len = frame.len();
        if len > MAX_FRAME || hdr.gso_size == 0 {
            self.stats.tx_errors += 1;
            return Err(if len > MAX_FRAME {
                TxError::BadLength { len }
            } else {
                TxError::BadHeader
            });
        }
        let most = len.div_ceil(hdr.gso_size as usize) + 1;
        if self.free.len() < most {
            self.reap();
            if self.free.len() < most {
                self.flush();
            }
            if self.free.len() < most {
                self.stats.tx_full += 1;
                return Err(TxError::Full);
            }
        }
        let mut p = Packet::from_slice(frame);
        *p.offload_mut() = *hdr;
        let mut bad = false;
        let r = offload::segment(&p, |seg| {
            let l = seg.len();
            if l > FRAME_SIZE || l > self.mtu + L2_MAX {
                bad = true;
                return;
            }
            let Some(addr) = self.free.pop() else {
                bad = true;
                return;
            };
            self.xsk.umem.frame_mut(addr)[..l].copy_from_slice(seg.data());
            self.put_desc(addr, l);
        });
        if r.is_err() || bad {
            self.stats.tx_errors += 1;
            return Err(TxError::BadHeader);
        }
        if self.tx_pending as usize >= self.batch {
            self.flush();
        }
        Ok(())
    }

    /// Queue a packet for transmission with the virtio-net header it
    /// carries (copied into the UMEM). On [`TxError::Full`] the packet is
    /// handed back.
    pub fn send_packet(&mut self, p: Packet) -> Result<(), (TxError, Option<Packet>)> {
        match self.send(p.data(), p.offload()) {
            Ok(()) => Ok(()),
            Err(TxError::Full) => Err((TxError::Full, Some(p))),
            Err(e) => Err((e, None)),
        }
    }

    /// Publish the queued descriptors and, if the kernel needs it (always
    /// in copy mode), kick it with one `sendto`; then take back the frames
    /// it has sent.
    pub fn flush(&mut self) {
        let x = &mut self.xsk;
        if self.tx_pending > 0 {
            x.tx.produce(self.tx_pending);
            self.tx_pending = 0;
        }
        for _ in 0..MAX_KICKS {
            if x.tx.prod_outstanding() == 0 || !x.tx.needs_wakeup() {
                break;
            }
            match socket::kick_tx(x.fd.as_fd()) {
                Ok(_) => {}
                // Budget used up (older kernels: 32 per call): again.
                Err(libc::EAGAIN) => continue,
                // Copy mode: the device dropped one frame (NET_XMIT_DROP:
                // the peer's backlog full, longer than its MTU, ...). The
                // kernel consumed and completed that descriptor and stopped
                // there: the frames after it are still on the ring, and
                // nothing else would send them before the next flush.
                Err(libc::EBUSY) if !self.zero_copy => {
                    self.stats.tx_dropped += 1;
                    continue;
                }
                // The driver's queue is busy or full: later.
                Err(libc::EBUSY) | Err(libc::ENOBUFS) | Err(libc::EINTR) => break,
                Err(e) => {
                    self.last_tx_errno = e;
                    break;
                }
            }
        }
        self.reap();
    }

    /// True when published frames wait on the TX ring for a kick that
    /// [`XdpDevice::flush`] could not give (the driver busy, the kernel's
    /// budget used up): the caller should flush again soon, as nothing
    /// else will send them.
    pub fn tx_needs_kick(&mut self) -> bool {
        self.xsk.tx.prod_outstanding() > 0 && self.xsk.tx.needs_wakeup()
    }

    /// Frames handed to the kernel and not yet completed (or not yet
    /// published).
    pub fn tx_in_flight(&self) -> usize {
        self.tx_frames - self.free.len()
    }

    /// Counters, with the kernel's XDP_STATISTICS brought up to date.
    pub fn stats(&mut self) -> XdpStats {
        // SAFETY: xdp_statistics is plain data; all-zero is valid.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        if socket::getsockopt(
            self.xsk.fd.as_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            &mut st,
        )
        .is_ok()
        {
            // Cumulative, not clear-on-read.
            self.stats.rx_dropped = st.rx_dropped + st.rx_invalid_descs;
            self.stats.rx_ring_full = st.rx_ring_full;
            self.stats.rx_fill_empty = st.rx_fill_ring_empty_descs;
            self.stats.tx_invalid = st.tx_invalid_descs;
        }
        self.stats
    }
}

/// Put every RX frame on the fill ring (before bind).
fn prime_fill(x: &mut Xsk, rx_frames: u32) {
    let room = x.fill.prod_room(rx_frames);
    for i in 0..rx_frames.min(room) {
        let addr = i as u64 * FRAME_SIZE as u64;
        // SAFETY: i < room: the slot is ours to write until produce().
        unsafe { ptr::write_unaligned(x.fill.prod_slot(i, ADDR) as *mut u64, addr) };
    }
    x.fill.produce(rx_frames.min(room));
}

/// True if `frame` (14 bytes or more) carries UDP over IPv4 or IPv6, after
/// at most one VLAN tag (IPv6: as the first next header).
fn is_udp(frame: &[u8]) -> bool {
    let be16 = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (mut ethertype, mut l3) = (be16(12), 14);
    if matches!(ethertype, Some(0x8100 | 0x88a8)) {
        (ethertype, l3) = (be16(16), 18);
    }
    match ethertype {
        Some(0x0800) => frame.get(l3 + 9) == Some(&17),
        Some(0x86dd) => frame.get(l3 + 6) == Some(&17),
        _ => false,
    }
}

/// (addr, len, options) of the xdp_desc at `p`.
#[inline]
fn read_desc(p: *const u8) -> (u64, u32, u32) {
    // SAFETY: `p` is a published RX descriptor slot (16 bytes) inside the
    // RX ring mapping.
    unsafe {
        (
            ptr::read_unaligned(p as *const u64),
            ptr::read_unaligned(p.add(8) as *const u32),
            ptr::read_unaligned(p.add(12) as *const u32),
        )
    }
}

impl Drop for XdpDevice {
    fn drop(&mut self) {
        self.flush();
    }
}

impl fmt::Debug for XdpDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpDevice")
            .field("ifname", &self.ifname)
            .field("queue_id", &self.queue_id)
            .field("zero_copy", &self.zero_copy)
            .field("native", &self.native)
            .field("steering", &self.steering)
            .field("stats", &self.stats)
            .finish()
    }
}

/// As an app: output port "output" carries frames from the wire, input
/// port "input" frames to send.
impl App for XdpDevice {
    fn pulls(&self) -> bool {
        true
    }

    fn wait_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd())
    }

    fn pull(&mut self, io: &mut Io) {
        let Some(out) = io.output(0) else {
            // Nobody takes frames: drop them rather than leave a full ring.
            self.recv_batch(usize::MAX, |_, _| {});
            return;
        };
        let room = out.room();
        self.recv_batch(room, |frame, hdr| {
            let mut p = Packet::new();
            p.room_mut()[..frame.len()].copy_from_slice(frame);
            p.set_len(frame.len());
            *p.offload_mut() = *hdr;
            out.transmit(p);
        });
    }

    fn push(&mut self, io: &mut Io) {
        self.tx_blocked = false;
        if let Some(input) = io.input(0) {
            self.drain(input);
        }
        self.flush();
    }

    fn deadline(&self) -> Option<Instant> {
        (self.tx_blocked || self.tx_pending > 0).then(|| Instant::now() + TX_RETRY)
    }

    fn report(&self) -> Option<String> {
        let s = &self.stats;
        let mut line = format!(
            "{} (AF_XDP queue {}, {}{}, {}): rx {} pkts {} bytes, {} errors; tx {} pkts {} bytes, {} errors, {} full, {} dropped",
            self.ifname,
            self.queue_id,
            if self.zero_copy { "zero-copy" } else { "copy" },
            if self.multi_buffer {
                " multi-buffer"
            } else {
                ""
            },
            if self.native { "native" } else { "generic" },
            s.rx_packets,
            s.rx_bytes,
            s.rx_errors,
            s.tx_packets,
            s.tx_bytes,
            s.tx_errors,
            s.tx_full,
            s.tx_dropped
        );
        if self.last_tx_errno != 0 {
            line.push_str(&format!(" (last tx error: {})", os_err(self.last_tx_errno)));
        }
        Some(line)
    }
}

impl XdpDevice {
    /// Move packets from `input` into the TX ring while there is room;
    /// what does not fit stays on the link.
    fn drain(&mut self, input: &mut Link) {
        while let Some(p) = input.peek() {
            if self.send(p.data(), p.offload()) == Err(TxError::Full) {
                break;
            }
            // Sent, or refused for good (counted).
            input.receive();
        }
        self.tx_blocked = !input.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device on an unbound socket whose RX ring the test fills itself
    /// (as the kernel would): needs root for the socket and the program.
    fn fake_device() -> XdpDevice {
        let geo = Geometry {
            rx_frames: 256,
            tx_frames: 64,
            frame_size: FRAME_SIZE,
        };
        // The fill ring is left empty, so that recv_batch has room to
        // give every frame back.
        let xsk = Xsk::new(&geo).expect("AF_XDP socket (root)");
        let steering = XdpSteering::load("fake", Mode::Dedicated, 1).expect("XDP program");
        XdpDevice {
            steering,
            xsk,
            free: Vec::new(),
            tx_pending: 0,
            rx_frames: 256,
            tx_frames: 64,
            ifname: "fake".into(),
            ifindex: 0,
            queue_id: 0,
            mtu: 1500,
            mac: [2, 0, 0, 0, 0, 1],
            zero_copy: false,
            native: false,
            multi_buffer: true,
            rx_buf: vec![0u8; MAX_FRAME].into_boxed_slice(),
            rx_skip: false,
            batch: 64,
            infer_partial: false,
            stats: XdpStats::default(),
            last_tx_errno: 0,
            tx_blocked: false,
        }
    }

    /// Test frames: byte j of frame `id` (so that pieces out of place show).
    fn byte(id: usize, j: usize) -> u8 {
        (j % 253) as u8 ^ (id as u8).wrapping_mul(31)
    }

    /// Put a frame `len` bytes long in UMEM frames from `*next` on, in
    /// pieces of at most `piece`, and return its descriptors (all but the
    /// last with XDP_PKT_CONTD).
    fn pieces(
        d: &mut XdpDevice,
        next: &mut u64,
        id: usize,
        len: usize,
        piece: usize,
    ) -> Vec<[u8; DESC]> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < len || out.is_empty() {
            let n = piece.min(len - at);
            let frame = *next % 256;
            *next += 1;
            let addr = frame * FRAME_SIZE as u64 + XDP_HEADROOM as u64;
            let buf = d.xsk.umem.frame_mut(frame * FRAME_SIZE as u64);
            for j in 0..n {
                buf[XDP_HEADROOM + j] = byte(id, at + j);
            }
            at += n;
            let mut e = [0u8; DESC];
            e[..8].copy_from_slice(&addr.to_ne_bytes());
            e[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
            let more = if at < len { libc::XDP_PKT_CONTD } else { 0 };
            e[12..16].copy_from_slice(&more.to_ne_bytes());
            out.push(e);
        }
        out
    }

    /// (id, len) of each frame delivered, checking every byte.
    fn recv(d: &mut XdpDevice, max: usize) -> Vec<(usize, usize)> {
        let mut got = Vec::new();
        d.recv_batch(max, |f, _| {
            let id = (0..256).find(|&id| f[0] == byte(id, 0)).unwrap();
            for (j, &b) in f.iter().enumerate() {
                assert_eq!(b, byte(id, j), "frame {id} byte {j} of {}", f.len());
            }
            got.push((id, f.len()));
        });
        got
    }

    const PIECE: usize = FRAME_SIZE - XDP_HEADROOM;

    #[test]
    fn udp_is_recognised_under_a_vlan_tag_too() {
        let frame = |tag: bool, ethertype: u16, at: usize, proto: u8| {
            let mut f = vec![0u8; 80];
            let l3 = if tag {
                f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
                f[16..18].copy_from_slice(&ethertype.to_be_bytes());
                18
            } else {
                f[12..14].copy_from_slice(&ethertype.to_be_bytes());
                14
            };
            f[l3 + at] = proto;
            f
        };
        for tag in [false, true] {
            assert!(is_udp(&frame(tag, 0x0800, 9, 17)));
            assert!(is_udp(&frame(tag, 0x86dd, 6, 17)));
            assert!(!is_udp(&frame(tag, 0x0800, 9, 6)));
            assert!(!is_udp(&frame(tag, 0x86dd, 6, 6)));
            assert!(!is_udp(&frame(tag, 0x0806, 9, 17)));
        }
        // Cut short: no panic, not UDP.
        assert!(!is_udp(&frame(true, 0x0800, 9, 17)[..20]));
        assert!(!is_udp(&[0x08; 14]));
    }

    #[test]
    fn multi_buffer_frames_are_put_together() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let mut d = fake_device();
        let mut next = 0;
        // One piece, three pieces, one piece, a 64 KiB frame: whole and in
        // order.
        let mut descs = pieces(&mut d, &mut next, 1, 60, PIECE);
        descs.extend(pieces(&mut d, &mut next, 2, 9000, PIECE));
        descs.extend(pieces(&mut d, &mut next, 3, 1514, PIECE));
        descs.extend(pieces(&mut d, &mut next, 4, 65535 + 14, PIECE));
        d.xsk.rx.kernel_produce(&descs);
        assert_eq!(
            recv(&mut d, 64),
            [(1, 60), (2, 9000), (3, 1514), (4, 65549)]
        );
        assert_eq!(d.stats.rx_errors, 0);

        // A batch ends inside a frame: nothing of it yet, then all of it.
        let descs = pieces(&mut d, &mut next, 5, 10000, PIECE);
        d.xsk.rx.kernel_produce(&descs[..2]);
        assert_eq!(recv(&mut d, 64), []);
        d.xsk.rx.kernel_produce(&descs[2..]);
        assert_eq!(recv(&mut d, 64), [(5, 10000)]);

        // `max` counts frames, not descriptors.
        let mut descs = pieces(&mut d, &mut next, 6, 5000, PIECE);
        descs.extend(pieces(&mut d, &mut next, 7, 5000, PIECE));
        d.xsk.rx.kernel_produce(&descs);
        assert_eq!(recv(&mut d, 1), [(6, 5000)]);
        assert_eq!(recv(&mut d, 1), [(7, 5000)]);

        // Longer than a packet: dropped (one error), the next one kept.
        let mut descs = pieces(&mut d, &mut next, 8, MAX_FRAME + 1, PIECE);
        descs.extend(pieces(&mut d, &mut next, 9, 100, PIECE));
        d.xsk.rx.kernel_produce(&descs);
        assert_eq!(recv(&mut d, 64), [(9, 100)]);
        assert_eq!(d.stats.rx_errors, 1);

        // Longer than a packet and unfinished: dropped as it comes.
        let descs = pieces(
            &mut d,
            &mut next,
            10,
            PIECE * (MAX_DESCS as usize + 3),
            PIECE,
        );
        d.xsk.rx.kernel_produce(&descs[..MAX_DESCS as usize + 1]);
        assert_eq!(recv(&mut d, 64), []);
        assert_eq!(d.stats.rx_errors, 2);
        let mut rest = descs[MAX_DESCS as usize + 1..].to_vec();
        rest.extend(pieces(&mut d, &mut next, 11, 200, PIECE));
        d.xsk.rx.kernel_produce(&rest);
        assert_eq!(recv(&mut d, 64), [(11, 200)]);
        assert_eq!(d.stats.rx_errors, 2);

        // A piece outside the UMEM spoils its frame only.
        let mut descs = pieces(&mut d, &mut next, 12, 5000, PIECE);
        descs[1][..8].copy_from_slice(&u64::MAX.to_ne_bytes());
        descs.extend(pieces(&mut d, &mut next, 13, 300, PIECE));
        d.xsk.rx.kernel_produce(&descs);
        assert_eq!(recv(&mut d, 64), [(13, 300)]);
        assert_eq!(d.stats.rx_errors, 3);
        assert_eq!(d.stats.rx_packets, 10);
        // Every descriptor's UMEM frame went back to the fill ring, and the
        // RX ring is empty.
        assert_eq!(d.xsk.fill.prod_outstanding() as u64, next);
        assert_eq!(d.xsk.rx.cons_ready_fresh(), 0);
    }

    #[test]
    fn errors_display_one_line() {
        let v = "veth0".to_string();
        let all = [
            DeviceError::Permission {
                dev: DeviceKind::Xdp,
                ifname: v.clone(),
            },
            DeviceError::MtuTooLarge {
                ifname: v.clone(),
                mtu: 9000,
            },
            DeviceError::DriverMtu {
                ifname: v.clone(),
                mtu: 4000,
            },
            DeviceError::Busy { ifname: v.clone() },
            DeviceError::QueueBusy {
                ifname: v.clone(),
                queue: 0,
            },
            DeviceError::Unsupported {
                dev: DeviceKind::Xdp,
                ifname: v.clone(),
                what: "AF_XDP sockets",
            },
            DeviceError::Verifier {
                ifname: v.clone(),
                errno: libc::EACCES,
                log: "0: (bf) r6 = r1\ninvalid access to packet\n\nprocessed 3 insns\n".into(),
            },
            DeviceError::Sys {
                dev: DeviceKind::Xdp,
                ifname: v.clone(),
                op: "bind",
                errno: libc::EINVAL,
            },
        ];
        for e in all {
            let s = e.to_string();
            assert!(!s.contains('\n') && s.contains("veth0"), "{s}");
        }
        assert_eq!(
            DeviceError::Permission {
                dev: DeviceKind::Xdp,
                ifname: v.clone()
            }
            .to_string(),
            "AF_XDP on veth0 needs CAP_NET_ADMIN and CAP_BPF (run as root)"
        );
        assert_eq!(
            DeviceError::MtuTooLarge {
                ifname: v,
                mtu: 9000
            }
            .to_string(),
            "AF_XDP on veth0: MTU 9000 is over 3822, the most a 4096-byte UMEM frame holds (lower the MTU or use AF_PACKET)"
        );
    }
}
