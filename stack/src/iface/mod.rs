//! The link layer: the Ethernet device, its frames, and address
//! resolution.
//!
//! - [`Device`]: our MAC and MTU, which destination MACs we accept
//!   (ours, broadcast, the groups we joined) and how a frame that arrives
//!   is classified (Linux's `pkt_type`: host, broadcast, multicast).
//! - [`Frame`] and [`BufPool`]: a frame on its way out is one buffer from a
//!   pool, built inside-out in place (see `wire`), queued, and handed back
//!   to the pool once the driver has copied it to the device. In steady
//!   state nothing is allocated per packet.
//! - [`neighbor`]: one neighbour table, generic over the IP version, with
//!   RFC 4861's states (which Linux uses for ARP too).
//! - [`arp`]: ARP (RFC 826) on top of the neighbour table.

pub mod arp;
pub mod ndp;
pub mod neighbor;

use crate::wire::{EtherType, EthernetBuilder, Mac};

/// What the device says about the checksums of a received frame (Linux's
/// `ip_summed`, from the virtio-net header of AF_PACKET or an XDP hint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxOffload {
    /// Nothing known: every checksum is verified here.
    #[default]
    None,
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM` (`CHECKSUM_PARTIAL`): the frame comes
    /// from the local kernel with the transport checksum left for the
    /// device to fill; the field holds only the pseudo-header sum. The
    /// data is trusted as Linux trusts it, and the transport checksum is
    /// not verified.
    Partial,
    /// `VIRTIO_NET_HDR_F_DATA_VALID` (`CHECKSUM_UNNECESSARY`): the device
    /// verified the transport checksum.
    Verified,
}

impl RxOffload {
    /// Whether the transport checksum must be verified in software.
    pub fn verify_l4(self) -> bool {
        self == RxOffload::None
    }
}

/// How a received frame was addressed (Linux's `skb->pkt_type`). ICMP
/// errors are never sent about frames that were not for this host alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketType {
    Host,
    Broadcast,
    Multicast,
    /// Sent by this stack to itself.
    Loopback,
}

impl PacketType {
    /// Link-layer broadcast or multicast.
    pub fn is_group(self) -> bool {
        matches!(self, PacketType::Broadcast | PacketType::Multicast)
    }
}

/// Length of the Ethernet header at the front of every [`Frame`].
pub const ETH_HLEN: usize = crate::wire::ethernet::HEADER_LEN;

/// Linux's default for `sk_buff` bookkeeping that a queued packet costs on
/// top of its bytes: what makes `unres_qlen_bytes` (212992) hold about
/// 101 full-size frames, as `unres_qlen` says.
pub const SKB_OVERHEAD: usize = 576;

/// A frame to send: Ethernet header (whose destination may still be
/// unknown) then the packet, in one pooled buffer whose length is the
/// frame's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    buf: Vec<u8>,
}

impl Frame {
    /// Wraps a buffer whose whole length is the frame.
    pub fn from_vec(buf: Vec<u8>) -> Frame {
        Frame { buf }
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    /// The bytes after the Ethernet header.
    pub fn packet(&self) -> &[u8] {
        self.buf.get(ETH_HLEN..).unwrap_or(&[])
    }
    /// Fills the destination MAC of the Ethernet header.
    pub fn set_dst_mac(&mut self, mac: Mac) {
        if let Some(d) = self.buf.get_mut(..6) {
            d.copy_from_slice(&mac.0);
        }
    }
    /// Writes the whole Ethernet header.
    pub fn set_ethernet(&mut self, dst: Mac, src: Mac, ethertype: EtherType) {
        let _ = EthernetBuilder {
            dst,
            src,
            ethertype,
        }
        .emit(&mut self.buf);
    }
    /// What the frame costs in a queue (bytes plus `sk_buff` overhead).
    pub fn truesize(&self) -> usize {
        self.buf.len() + SKB_OVERHEAD
    }
}

/// Buffers for frames and datagrams, recycled so that steady-state
/// traffic allocates nothing. A buffer that grew (a 64 KiB datagram)
/// keeps its capacity for the next user.
#[derive(Debug, Default)]
pub struct BufPool {
    free: Vec<Vec<u8>>,
    max_free: usize,
    min_capacity: usize,
}

impl BufPool {
    pub fn new(min_capacity: usize, max_free: usize) -> BufPool {
        BufPool {
            free: Vec::new(),
            max_free,
            min_capacity,
        }
    }
    /// A zeroed buffer of `len` bytes.
    pub fn get(&mut self, len: usize) -> Vec<u8> {
        let mut v = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.min_capacity.max(len)));
        v.clear();
        v.resize(len, 0);
        v
    }
    pub fn frame(&mut self, len: usize) -> Frame {
        Frame::from_vec(self.get(len))
    }
    /// A buffer of `len` bytes that may hold an earlier frame's bytes:
    /// only for a caller that overwrites every byte (TCP segments, built
    /// header and payload in full), to save zeroing it first.
    pub fn get_dirty(&mut self, len: usize) -> Vec<u8> {
        let mut v = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.min_capacity.max(len)));
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, 0);
        }
        v
    }
    pub fn put(&mut self, v: Vec<u8>) {
        if self.free.len() < self.max_free {
            self.free.push(v);
        }
    }
    pub fn put_frame(&mut self, f: Frame) {
        self.put(f.into_vec())
    }
    pub fn free_len(&self) -> usize {
        self.free.len()
    }
}

/// The Ethernet device as the stack sees it.
#[derive(Clone, Debug)]
pub struct Device {
    pub mac: Mac,
    /// The IP MTU (1500 on Ethernet).
    pub mtu: u16,
    /// Joined group MACs with a reference count (two IP groups can share
    /// one MAC).
    groups: Vec<(Mac, u32)>,
}

impl Device {
    pub fn new(mac: Mac, mtu: u16) -> Device {
        Device {
            mac,
            mtu,
            groups: Vec::new(),
        }
    }

    pub fn join_group(&mut self, mac: Mac) {
        match self.groups.iter_mut().find(|(m, _)| *m == mac) {
            Some((_, n)) => *n += 1,
            None => self.groups.push((mac, 1)),
        }
    }

    pub fn leave_group(&mut self, mac: Mac) {
        if let Some(i) = self.groups.iter().position(|(m, _)| *m == mac) {
            self.groups[i].1 -= 1;
            if self.groups[i].1 == 0 {
                self.groups.swap_remove(i);
            }
        }
    }

    /// How a frame to `dst` is taken in, or `None` if it is not for us.
    pub fn classify(&self, dst: Mac) -> Option<PacketType> {
        if dst == self.mac {
            Some(PacketType::Host)
        } else if dst.is_broadcast() {
            Some(PacketType::Broadcast)
        } else if dst.is_multicast() && self.groups.iter().any(|(m, _)| *m == dst) {
            Some(PacketType::Multicast)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        let mut d = Device::new(Mac([2, 0, 0, 0, 0, 1]), 1500);
        assert_eq!(d.classify(d.mac), Some(PacketType::Host));
        assert_eq!(d.classify(Mac::BROADCAST), Some(PacketType::Broadcast));
        let g = Mac([1, 0, 0x5e, 0, 0, 1]);
        assert_eq!(d.classify(g), None);
        d.join_group(g);
        d.join_group(g);
        assert_eq!(d.classify(g), Some(PacketType::Multicast));
        d.leave_group(g);
        assert_eq!(d.classify(g), Some(PacketType::Multicast));
        d.leave_group(g);
        assert_eq!(d.classify(g), None);
        assert_eq!(d.classify(Mac([2, 0, 0, 0, 0, 2])), None);
    }

    #[test]
    fn pool_recycles() {
        let mut p = BufPool::new(64, 2);
        let a = p.get(10);
        assert_eq!(a.len(), 10);
        let cap = a.capacity();
        p.put(a);
        let b = p.get(20);
        assert_eq!(b.capacity(), cap);
        assert!(b.iter().all(|&x| x == 0));
        p.put(b);
        p.put(vec![]);
        p.put(vec![]);
        assert_eq!(p.free_len(), 2);
    }

    #[test]
    fn frame_header() {
        let mut f = Frame::from_vec(vec![0; 60]);
        f.set_ethernet(Mac::BROADCAST, Mac([2, 0, 0, 0, 0, 1]), EtherType::ARP);
        f.set_dst_mac(Mac([2, 0, 0, 0, 0, 9]));
        assert_eq!(&f.as_slice()[..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(f.packet().len(), 46);
        assert_eq!(f.truesize(), 60 + SKB_OVERHEAD);
    }
}
