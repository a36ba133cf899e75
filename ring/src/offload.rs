//! Offload state carried with a frame: the kernel's `struct virtio_net_hdr`
//! (include/uapi/linux/virtio_net.h), which AF_PACKET prepends to every
//! frame when PACKET_VNET_HDR is on. A kernel peer on a veth with offloads
//! on sends TCP with a partial checksum (`NEEDS_CSUM`: the pseudo-header sum
//! is in place, the rest is to be added from `csum_start` and stored at
//! `csum_start + csum_offset`) and as GSO frames up to 64 KiB (`gso_type`,
//! `gso_size`: cut into segments of `gso_size` payload bytes).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: checksum is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: checksum already verified.
pub const F_DATA_VALID: u8 = 2;
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
pub const GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr` in host byte order (legacy virtio-net on a
/// little-endian host, which is what AF_PACKET uses).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

/// Size of [`VnetHdr`] on the wire of an AF_PACKET socket.
pub const VNET_HDR_LEN: usize = std::mem::size_of::<VnetHdr>();

impl VnetHdr {
    /// True if the frame needs nothing done before it goes on a wire.
    pub fn is_plain(&self) -> bool {
        self.flags & F_NEEDS_CSUM == 0 && self.gso_type & !GSO_ECN == GSO_NONE
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }
}
