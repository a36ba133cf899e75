//! Why a device could not be opened: one error type for AF_PACKET and
//! AF_XDP, so a caller that picks a backend handles one type. Its
//! Display is one line naming the interface and what is wrong, so that a
//! caller can print it and fall back to the kernel.

use std::fmt;

use crate::xdp::{FRAME_SIZE, MAX_MTU};

/// Which device failed (it decides what is missing, e.g. which
/// capabilities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Packet,
    Xdp,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Packet => "AF_PACKET",
            DeviceKind::Xdp => "AF_XDP",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// Not a name the kernel accepts for an interface.
    BadName { ifname: String },
    /// No such interface in this network namespace.
    NotFound { ifname: String },
    /// The interface exists but is administratively down.
    Down { ifname: String },
    /// Not an Ethernet interface (the ARPHRD link type).
    NotEthernet { ifname: String, hwtype: u16 },
    /// Missing capabilities: CAP_NET_RAW (AF_PACKET); CAP_NET_ADMIN and
    /// CAP_BPF (AF_XDP).
    Permission { ifname: String, dev: DeviceKind },
    /// The kernel lacks something the device needs (AF_PACKET, TPACKET_V3,
    /// AF_XDP sockets, BPF links...).
    Unsupported {
        ifname: String,
        dev: DeviceKind,
        what: &'static str,
    },
    /// Options that cannot work.
    BadOptions {
        ifname: String,
        dev: DeviceKind,
        why: String,
    },
    /// Any other failed system call.
    Sys {
        ifname: String,
        dev: DeviceKind,
        op: &'static str,
        errno: i32,
    },
    /// AF_PACKET: the rings are over the size limit (`errno` None), or
    /// the kernel could not allocate or map them.
    RingTooLarge {
        ifname: String,
        bytes: usize,
        errno: Option<i32>,
    },
    /// AF_XDP: the MTU's frames do not fit a UMEM frame.
    MtuTooLarge { ifname: String, mtu: usize },
    /// AF_XDP: the driver refuses native XDP at this MTU.
    DriverMtu { ifname: String, mtu: usize },
    /// AF_XDP: another XDP program is attached to the interface.
    Busy { ifname: String },
    /// AF_XDP: another AF_XDP socket is bound to the queue.
    QueueBusy { ifname: String, queue: u32 },
    /// AF_XDP: the verifier refused the program (a bug here): errno and
    /// log.
    Verifier {
        ifname: String,
        errno: i32,
        log: String,
    },
}

pub(crate) fn os_err(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::BadName { ifname } => {
                write!(f, "{ifname:?} is not a valid interface name")
            }
            DeviceError::NotFound { ifname } => write!(f, "interface {ifname} not found"),
            DeviceError::Down { ifname } => write!(
                f,
                "interface {ifname} is down (bring it up with `ip link set {ifname} up`)"
            ),
            DeviceError::NotEthernet { ifname, hwtype } => write!(
                f,
                "interface {ifname} is not an Ethernet interface (link type {hwtype})"
            ),
            DeviceError::Permission {
                ifname,
                dev: DeviceKind::Packet,
            } => write!(
                f,
                "AF_PACKET socket on {ifname} needs CAP_NET_RAW (run as root or grant the capability)"
            ),
            DeviceError::Permission {
                ifname,
                dev: DeviceKind::Xdp,
            } => write!(
                f,
                "AF_XDP on {ifname} needs CAP_NET_ADMIN and CAP_BPF (run as root)"
            ),
            DeviceError::Unsupported { ifname, dev, what } => {
                write!(f, "{dev} on {ifname}: this kernel does not support {what}")
            }
            DeviceError::BadOptions { ifname, dev, why } => {
                write!(f, "bad {dev} options for {ifname}: {why}")
            }
            DeviceError::Sys {
                ifname,
                dev,
                op,
                errno,
            } => write!(f, "{dev} {op} on {ifname} failed: {}", os_err(*errno)),
            DeviceError::RingTooLarge {
                ifname,
                bytes,
                errno,
            } => {
                let mib = bytes.div_ceil(1 << 20);
                match errno {
                    Some(e) => write!(
                        f,
                        "cannot set up {mib} MiB of AF_PACKET rings on {ifname}: {} (use fewer or smaller blocks)",
                        os_err(*e)
                    ),
                    None => write!(
                        f,
                        "cannot set up {mib} MiB of AF_PACKET rings on {ifname}: over the {} MiB limit (use fewer or smaller blocks)",
                        crate::afpacket::MAX_RING_BYTES >> 20
                    ),
                }
            }
            DeviceError::MtuTooLarge { ifname, mtu } => write!(
                f,
                "AF_XDP on {ifname}: MTU {mtu} is over {MAX_MTU}, the most a {FRAME_SIZE}-byte UMEM frame holds (lower the MTU or use AF_PACKET)"
            ),
            DeviceError::DriverMtu { ifname, mtu } => write!(
                f,
                "AF_XDP on {ifname}: the driver refuses native XDP at MTU {mtu} (lower the MTU or use generic XDP)"
            ),
            DeviceError::Busy { ifname } => write!(
                f,
                "AF_XDP on {ifname}: another XDP program is attached to the interface"
            ),
            DeviceError::QueueBusy { ifname, queue } => write!(
                f,
                "AF_XDP on {ifname}: RX queue {queue} is taken by another AF_XDP socket"
            ),
            DeviceError::Verifier { ifname, errno, log } => {
                // The last lines say why; one line, joined.
                let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
                let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
                write!(
                    f,
                    "AF_XDP on {ifname}: the kernel refused the XDP program ({}): {tail}",
                    os_err(*errno)
                )
            }
        }
    }
}

impl std::error::Error for DeviceError {}
