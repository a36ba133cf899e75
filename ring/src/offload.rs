//! Offload state carried with a frame: the kernel's `struct virtio_net_hdr`
//! (include/uapi/linux/virtio_net.h), which AF_PACKET prepends to every
//! frame when PACKET_VNET_HDR is on. A kernel peer on a veth with offloads
//! on sends TCP with a partial checksum (`NEEDS_CSUM`: the pseudo-header sum
//! is in place, the rest is to be added from `csum_start` and stored at
//! `csum_start + csum_offset`) and as GSO frames up to 64 KiB (`gso_type`,
//! `gso_size`: cut into segments of `gso_size` payload bytes).
//!
//! When such a frame must go somewhere that cannot take it as it is (a
//! pcap file, a wire without offloads, the stack's own parser), finish
//! the work in software: [`complete_checksum`] fills in a partial
//! checksum, [`segment`] cuts a GSO frame into wire-ready frames, and
//! [`finalize`] does whichever applies. Frames are untrusted: anything
//! malformed is an [`OffloadError`], never a panic.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::csum;
use crate::packet::Packet;

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
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
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

// ---------------------------------------------------------------------------
// Completing checksums and cutting GSO frames in software.
// ---------------------------------------------------------------------------

/// Why a frame's offload work could not be done. The caller counts the
/// frame and drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadError {
    /// The frame ends inside a header, or a length field points past it.
    Truncated,
    /// `csum_start`/`csum_offset` point outside the frame.
    CsumOutOfBounds,
    /// Not Ethernet II carrying IPv4 or IPv6 (the EtherType found).
    UnsupportedEtherType(u16),
    /// An IP header that is not what it claims (version, header length,
    /// an IPv4 fragment, an IPv6 fragment header, too many extension
    /// headers).
    BadIpHeader,
    /// The frame is not what the GSO type says (TCPV4 on IPv6, UDP_L4 on
    /// TCP...): the IP protocol found.
    GsoMismatch(u8),
    /// A GSO type this code does not cut (UFO over IPv6, unknown types).
    UnsupportedGso(u8),
    /// `gso_size` is zero (or below 8 for UFO, whose fragments are cut on
    /// 8-byte boundaries).
    BadGsoSize,
    /// A TCP/UDP header length that is too short or runs past the packet.
    BadL4Header,
}

impl std::fmt::Display for OffloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OffloadError::Truncated => f.write_str("frame truncated inside its headers"),
            OffloadError::CsumOutOfBounds => {
                f.write_str("partial checksum offsets point outside the frame")
            }
            OffloadError::UnsupportedEtherType(t) => write!(f, "unsupported EtherType {t:#06x}"),
            OffloadError::BadIpHeader => f.write_str("malformed or unsupported IP header"),
            OffloadError::GsoMismatch(p) => {
                write!(f, "GSO type does not match the frame (IP protocol {p})")
            }
            OffloadError::UnsupportedGso(t) => write!(f, "unsupported GSO type {t}"),
            OffloadError::BadGsoSize => f.write_str("bad GSO segment size"),
            OffloadError::BadL4Header => f.write_str("malformed TCP/UDP header"),
        }
    }
}

impl std::error::Error for OffloadError {}

/// Finish a partial checksum (`NEEDS_CSUM`) in place: sum the frame from
/// `csum_start` to its end (the field at `csum_start + csum_offset` holds
/// the pseudo-header sum, as Linux leaves it), fold, complement, and store
/// it. A result of zero is stored as 0xffff, as the kernel does (for UDP
/// zero means "no checksum"; for TCP the two are the same number).
pub fn complete_checksum(frame: &mut [u8], hdr: &VnetHdr) -> Result<(), OffloadError> {
    let start = hdr.csum_start as usize;
    let at = start + hdr.csum_offset as usize;
    if start > frame.len() || at + 2 > frame.len() {
        return Err(OffloadError::CsumOutOfBounds);
    }
    let c = csum::finish(csum::sum(&frame[start..], 0));
    let c = if c == 0 { 0xffff } else { c };
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Where the headers of an IP frame are.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Offset of the IP header.
    l3: usize,
    v6: bool,
    /// Offset of the TCP/UDP header.
    l4: usize,
    /// IP protocol / IPv6 final next header.
    proto: u8,
    /// End of the IP packet (Ethernet padding excluded).
    end: usize,
}

#[inline]
fn be16(b: &[u8], at: usize) -> Result<u16, OffloadError> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(OffloadError::Truncated),
    }
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Parse Ethernet II (up to two VLAN tags), then IPv4 or IPv6 (skipping
/// hop-by-hop, routing and destination options headers).
fn parse(f: &[u8]) -> Result<Layout, OffloadError> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(f, 12)?;
    for _ in 0..2 {
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            ethertype = be16(f, l3 + 2)?;
            l3 += 4;
        }
    }
    match ethertype {
        ETHERTYPE_IPV4 => {
            let h = f.get(l3..l3 + 20).ok_or(OffloadError::Truncated)?;
            let ihl = (h[0] & 0x0f) as usize * 4;
            if h[0] >> 4 != 4 || ihl < 20 {
                return Err(OffloadError::BadIpHeader);
            }
            // A fragment cannot be a GSO frame.
            if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
                return Err(OffloadError::BadIpHeader);
            }
            let tot = u16::from_be_bytes([h[2], h[3]]) as usize;
            // Linux's BIG TCP sends IPv4 GSO frames over 64 KiB with a
            // total length of zero: the frame length is the truth then.
            let end = if tot == 0 { f.len() } else { l3 + tot };
            if end > f.len() || l3 + ihl > end {
                return Err(OffloadError::Truncated);
            }
            Ok(Layout {
                l3,
                v6: false,
                l4: l3 + ihl,
                proto: h[9],
                end,
            })
        }
        ETHERTYPE_IPV6 => {
            let h = f.get(l3..l3 + 40).ok_or(OffloadError::Truncated)?;
            if h[0] >> 4 != 6 {
                return Err(OffloadError::BadIpHeader);
            }
            let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
            let end = if plen == 0 { f.len() } else { l3 + 40 + plen };
            if end > f.len() {
                return Err(OffloadError::Truncated);
            }
            let mut nh = h[6];
            let mut l4 = l3 + 40;
            for _ in 0..8 {
                match nh {
                    // Hop-by-hop, routing, destination options.
                    0 | 43 | 60 => {
                        let e = f.get(l4..l4 + 2).ok_or(OffloadError::Truncated)?;
                        nh = e[0];
                        l4 += (e[1] as usize + 1) * 8;
                        if l4 > end {
                            return Err(OffloadError::Truncated);
                        }
                    }
                    _ => {
                        return Ok(Layout {
                            l3,
                            v6: true,
                            l4,
                            proto: nh,
                            end,
                        });
                    }
                }
            }
            Err(OffloadError::BadIpHeader)
        }
        other => Err(OffloadError::UnsupportedEtherType(other)),
    }
}

/// The offload state of a frame that arrived without one, inferred: a
/// device that gets the kernel's own frames as they were built (AF_XDP on a
/// veth whose peer offloads checksums, or generic XDP) sees TCP and UDP
/// with the checksum work undone and nothing to say so. Such a field holds
/// the folded pseudo-header sum; when it does, this returns the
/// `NEEDS_CSUM` header that [`complete_checksum`] acts on. A complete
/// checksum can equal that sum only by chance, and completing it then
/// yields the same value (the sum over the segment with the field in place
/// is the full checksum either way), so a correct frame is never spoiled;
/// the price is that a frame corrupted on the way is caught with one
/// chance in 65536 less, which is why only devices that can carry such
/// frames ask.
pub fn infer_partial(frame: &[u8]) -> Option<VnetHdr> {
    let lay = parse(frame).ok()?;
    let at = match lay.proto {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return None,
    };
    let len = lay.end.checked_sub(lay.l4)?;
    if at + 2 > len {
        return None;
    }
    let field = be16(frame, lay.l4 + at).ok()?;
    let want = csum::fold(pseudo(frame, &lay, len));
    (field == want && field != 0).then(|| VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: lay.l4 as u16,
        csum_offset: at as u16,
        ..VnetHdr::default()
    })
}

/// Offset of the transport header of an Ethernet frame carrying IPv4 or
/// IPv6 (after up to two VLAN tags and IPv6 extension headers), if it
/// parses.
pub fn l4_offset(frame: &[u8]) -> Option<usize> {
    parse(frame).ok().map(|l| l.l4)
}

/// Length of the TCP/UDP header at `lay.l4`.
fn l4_header_len(f: &[u8], lay: &Layout) -> Result<usize, OffloadError> {
    let n = match lay.proto {
        PROTO_TCP => {
            let doff = *f.get(lay.l4 + 12).ok_or(OffloadError::Truncated)? as usize >> 4;
            if doff < 5 {
                return Err(OffloadError::BadL4Header);
            }
            doff * 4
        }
        PROTO_UDP => 8,
        p => return Err(OffloadError::GsoMismatch(p)),
    };
    if lay.l4 + n > lay.end {
        return Err(OffloadError::BadL4Header);
    }
    Ok(n)
}

/// Partial sum of the pseudo-header for an L4 segment of `len` bytes.
fn pseudo(f: &[u8], lay: &Layout, len: usize) -> u32 {
    if lay.v6 {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&f[lay.l3 + 8..lay.l3 + 24]);
        d.copy_from_slice(&f[lay.l3 + 24..lay.l3 + 40]);
        csum::pseudo_v6(&s, &d, lay.proto, len as u32)
    } else {
        let s = [
            f[lay.l3 + 12],
            f[lay.l3 + 13],
            f[lay.l3 + 14],
            f[lay.l3 + 15],
        ];
        let d = [
            f[lay.l3 + 16],
            f[lay.l3 + 17],
            f[lay.l3 + 18],
            f[lay.l3 + 19],
        ];
        csum::pseudo_v4(s, d, lay.proto, len as u16)
    }
}

/// Set the IP length field of a segment whose IP packet ends at `end` and
/// recompute the IPv4 header checksum (with `id` and `frag` if given).
fn fix_ip(q: &mut [u8], lay: &Layout, end: usize, id: Option<u16>, frag: Option<u16>) {
    let l3 = lay.l3;
    if lay.v6 {
        put16(q, l3 + 4, (end - l3 - 40) as u16);
    } else {
        put16(q, l3 + 2, (end - l3) as u16);
        if let Some(id) = id {
            put16(q, l3 + 4, id);
        }
        if let Some(frag) = frag {
            put16(q, l3 + 6, frag);
        }
        put16(q, l3 + 10, 0);
        let c = csum::checksum(&q[l3..lay.l4]);
        put16(q, l3 + 10, c);
    }
}

/// Cut a GSO frame into wire-ready frames of at most `gso_size` payload
/// bytes each, handing each to `out` with a plain [`VnetHdr`]; returns how
/// many. TCP (v4, v6): sequence numbers advance, FIN and PSH stay only on
/// the last segment, CWR only on the first. UDP_L4 (UDP GSO): every
/// segment is a datagram of its own. Legacy UDP (UFO, IPv4 only): the
/// datagram is checksummed whole and cut into IP fragments. IPv4 lengths,
/// IDs (+1 per segment; UFO fragments share the ID) and header checksums
/// are rewritten, IPv6 payload lengths too, and each segment gets its full
/// L4 checksum whether or not the frame had `NEEDS_CSUM`. Ethernet II with
/// up to two VLAN tags; anything else is an error and nothing is emitted.
pub fn segment(p: &Packet, mut out: impl FnMut(Packet)) -> Result<usize, OffloadError> {
    let hdr = *p.offload();
    let f = p.data();
    let gso = hdr.gso_type & !GSO_ECN;
    let lay = parse(f)?;
    match (gso, lay.v6) {
        (GSO_TCPV4, false) | (GSO_TCPV6, true) if lay.proto == PROTO_TCP => {}
        (GSO_TCPV4, _) | (GSO_TCPV6, _) if lay.proto != PROTO_TCP => {
            return Err(OffloadError::GsoMismatch(lay.proto));
        }
        (GSO_TCPV4, _) | (GSO_TCPV6, _) => return Err(OffloadError::GsoMismatch(lay.proto)),
        (GSO_UDP_L4, _) | (GSO_UDP, false) if lay.proto == PROTO_UDP => {}
        (GSO_UDP_L4, _) | (GSO_UDP, false) => return Err(OffloadError::GsoMismatch(lay.proto)),
        _ => return Err(OffloadError::UnsupportedGso(gso)),
    }
    let mss = hdr.gso_size as usize;
    if mss == 0 {
        return Err(OffloadError::BadGsoSize);
    }
    let thl = l4_header_len(f, &lay)?;
    if gso == GSO_UDP {
        return fragment_udp(f, &lay, mss, out);
    }
    let hlen = lay.l4 + thl;
    let headers = &f[..hlen];
    let payload = &f[hlen..lay.end];
    let nseg = payload.len().div_ceil(mss).max(1);
    // Every segment's IP length must fit its 16-bit field (a huge
    // gso_size on a BIG TCP or jumbogram frame would not).
    let ip_fixed = if lay.v6 { 40 } else { 0 };
    if hlen - lay.l3 - ip_fixed + mss.min(payload.len()) > u16::MAX as usize {
        return Err(OffloadError::BadGsoSize);
    }
    let id0 = if lay.v6 { 0 } else { be16(f, lay.l3 + 4)? };
    let seq0 = u32::from_be_bytes([f[lay.l4 + 4], f[lay.l4 + 5], f[lay.l4 + 6], f[lay.l4 + 7]]);
    let tcp = lay.proto == PROTO_TCP;
    for i in 0..nseg {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let mut q = Packet::new();
        q.append(headers);
        q.append(chunk);
        let d = q.data_mut();
        let end = hlen + chunk.len();
        fix_ip(d, &lay, end, Some(id0.wrapping_add(i as u16)), None);
        let l4 = lay.l4;
        let check_at = if tcp {
            let seq = seq0.wrapping_add((i * mss) as u32);
            d[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            if i + 1 < nseg {
                d[l4 + 13] &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                d[l4 + 13] &= !TCP_CWR;
            }
            l4 + 16
        } else {
            put16(d, l4 + 4, (end - l4) as u16);
            l4 + 6
        };
        put16(d, check_at, 0);
        let s = csum::sum(chunk, csum::sum(&d[l4..hlen], pseudo(d, &lay, end - l4)));
        let c = csum::finish(s);
        put16(d, check_at, if c == 0 && !tcp { 0xffff } else { c });
        out(q);
    }
    Ok(nseg)
}

/// UFO: checksum the whole UDP datagram, then cut it into IPv4 fragments
/// of `mss` bytes (rounded down to a multiple of 8) of IP payload each.
fn fragment_udp(
    f: &[u8],
    lay: &Layout,
    mss: usize,
    mut out: impl FnMut(Packet),
) -> Result<usize, OffloadError> {
    let frag = mss & !7;
    if frag == 0 {
        return Err(OffloadError::BadGsoSize);
    }
    let l4 = lay.l4;
    let dgram = &f[l4..lay.end];
    let ulen = dgram.len();
    if ulen > u16::MAX as usize {
        return Err(OffloadError::BadL4Header);
    }
    if l4 - lay.l3 + frag.min(ulen) > u16::MAX as usize {
        return Err(OffloadError::BadGsoSize);
    }
    // The checksum of the whole datagram, with the UDP length set to the
    // datagram's (the field is summed, the check field counts as zero).
    let s = csum::sum(&dgram[8..], pseudo(f, lay, ulen));
    let s = csum::add(s, csum::sum(&dgram[0..4], 0));
    let s = csum::add(s, ulen as u32);
    let c = csum::finish(s);
    let check = if c == 0 { 0xffff } else { c };
    let id = be16(f, lay.l3 + 4)?;
    let nseg = ulen.div_ceil(frag);
    for i in 0..nseg {
        let off = i * frag;
        let chunk = &dgram[off..(off + frag).min(ulen)];
        let mut q = Packet::new();
        q.append(&f[..l4]);
        q.append(chunk);
        let d = q.data_mut();
        if i == 0 {
            put16(d, l4 + 4, ulen as u16);
            put16(d, l4 + 6, check);
        }
        let mf = if i + 1 < nseg { 0x2000 } else { 0 };
        fix_ip(
            d,
            lay,
            l4 + chunk.len(),
            Some(id),
            Some(mf | (off / 8) as u16),
        );
        out(q);
    }
    Ok(nseg)
}

/// Make a frame wire-ready: cut it if it is a GSO frame, complete its
/// checksum in place if it is partial, and hand the result(s) to `out`
/// with a plain [`VnetHdr`]. Returns the number of frames handed on; on
/// an error nothing is handed on and the packet is dropped (the caller
/// counts it).
pub fn finalize(mut p: Packet, mut out: impl FnMut(Packet)) -> Result<usize, OffloadError> {
    let hdr = *p.offload();
    if hdr.is_gso() {
        return segment(&p, out);
    }
    if hdr.needs_csum() {
        complete_checksum(p.data_mut(), &hdr)?;
    }
    *p.offload_mut() = VnetHdr::default();
    out(p);
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    const SRC4: [u8; 4] = [192, 0, 2, 1];
    const DST4: [u8; 4] = [192, 0, 2, 2];
    const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const SEQ0: u32 = 0xfffe_0000; // wraps during a 64 KiB frame

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// A GSO frame as a Linux sender hands it to a device: full-length IP
    /// header, pseudo-header sum (for the whole L4 length) in the checksum
    /// field, NEEDS_CSUM with csum_start at L4.
    fn gso_frame(
        v6: bool,
        proto: u8,
        data: &[u8],
        gso_type: u8,
        mss: u16,
        tcp_flags: u8,
    ) -> Packet {
        let mut f = vec![0u8; 14];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        let l4len = if proto == PROTO_TCP { 32 } else { 8 } + data.len();
        if v6 {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(l4len as u16).to_be_bytes());
            ip[6] = proto;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&SRC6);
            ip[24..40].copy_from_slice(&DST6);
            f.extend_from_slice(&ip);
        } else {
            f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + l4len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&0xfff0u16.to_be_bytes()); // wraps too
            ip[6] = if gso_type == GSO_UDP { 0 } else { 0x40 }; // DF
            ip[8] = 64;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&SRC4);
            ip[16..20].copy_from_slice(&DST4);
            let c = csum::checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        let l4 = f.len();
        let pseudo = if v6 {
            csum::pseudo_v6(&SRC6, &DST6, proto, l4len as u32)
        } else {
            csum::pseudo_v4(SRC4, DST4, proto, l4len as u16)
        };
        let csum_offset;
        if proto == PROTO_TCP {
            let mut th = [0u8; 32];
            th[0..2].copy_from_slice(&40000u16.to_be_bytes());
            th[2..4].copy_from_slice(&5201u16.to_be_bytes());
            th[4..8].copy_from_slice(&SEQ0.to_be_bytes());
            th[8..12].copy_from_slice(&77u32.to_be_bytes());
            th[12] = 8 << 4;
            th[13] = tcp_flags;
            th[14..16].copy_from_slice(&512u16.to_be_bytes());
            // NOP NOP timestamps.
            th[20..22].copy_from_slice(&[1, 1]);
            th[22..24].copy_from_slice(&[8, 10]);
            th[24..28].copy_from_slice(&12345u32.to_be_bytes());
            th[28..32].copy_from_slice(&54321u32.to_be_bytes());
            th[16..18].copy_from_slice(&csum::fold(pseudo).to_be_bytes());
            f.extend_from_slice(&th);
            csum_offset = 16;
        } else {
            let mut uh = [0u8; 8];
            uh[0..2].copy_from_slice(&4000u16.to_be_bytes());
            uh[2..4].copy_from_slice(&5000u16.to_be_bytes());
            uh[4..6].copy_from_slice(&(l4len as u16).to_be_bytes());
            uh[6..8].copy_from_slice(&csum::fold(pseudo).to_be_bytes());
            f.extend_from_slice(&uh);
            csum_offset = 6;
        }
        let hdr_len = f.len() as u16;
        f.extend_from_slice(data);
        let mut p = Packet::from_slice(&f);
        *p.offload_mut() = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type,
            hdr_len,
            gso_size: mss,
            csum_start: l4 as u16,
            csum_offset,
        };
        p
    }

    /// Check one segment with etherparse; return (ip id or 0, seq or 0,
    /// tcp flags (fin, psh, cwr), payload).
    fn check_segment(seg: &[u8]) -> (u16, u32, (bool, bool, bool), Vec<u8>) {
        let sp = SlicedPacket::from_ethernet(seg).unwrap_or_else(|e| panic!("etherparse: {e:?}"));
        let l3 = if seg[12..14] == [0x81, 0x00] { 18 } else { 14 };
        let mut id = 0;
        let (src, dst, v6) = match sp.net.as_ref().expect("no IP") {
            NetSlice::Ipv4(ip) => {
                let h = ip.header().to_header();
                assert_eq!(
                    h.header_checksum,
                    h.calc_header_checksum(),
                    "IPv4 header checksum"
                );
                assert_eq!(h.total_len as usize, seg.len() - l3);
                id = h.identification;
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s[..4].copy_from_slice(&h.source);
                d[..4].copy_from_slice(&h.destination);
                (s, d, false)
            }
            NetSlice::Ipv6(ip) => {
                let h = ip.header().to_header();
                assert_eq!(h.payload_length as usize, seg.len() - l3 - 40);
                (h.source, h.destination, true)
            }
        };
        let four = |a: [u8; 16]| [a[0], a[1], a[2], a[3]];
        match sp.transport.expect("no transport") {
            TransportSlice::Tcp(t) => {
                let c = if v6 {
                    t.calc_checksum_ipv6(src, dst).unwrap()
                } else {
                    t.calc_checksum_ipv4(four(src), four(dst)).unwrap()
                };
                assert_eq!(t.checksum(), c, "TCP checksum");
                (
                    id,
                    t.sequence_number(),
                    (t.fin(), t.psh(), t.cwr()),
                    t.payload().to_vec(),
                )
            }
            TransportSlice::Udp(u) => {
                let h = u.to_header();
                assert_eq!(h.length as usize, u.slice().len());
                let c = if v6 {
                    h.calc_checksum_ipv6_raw(src, dst, u.payload()).unwrap()
                } else {
                    h.calc_checksum_ipv4_raw(four(src), four(dst), u.payload())
                        .unwrap()
                };
                assert_eq!(h.checksum, c, "UDP checksum");
                (id, 0, (false, false, false), u.payload().to_vec())
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    fn cut(p: &Packet) -> Vec<Packet> {
        let mut v = Vec::new();
        let n = segment(p, |q| v.push(q)).unwrap();
        assert_eq!(n, v.len());
        v
    }

    #[test]
    fn tcp_gso_64k_cut_into_valid_segments() {
        for v6 in [false, true] {
            let data = payload(65_000 - 100);
            let mss = 1448;
            let gso = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
            // ACK|PSH|FIN|CWR on the super-frame.
            let p = gso_frame(
                v6,
                PROTO_TCP,
                &data,
                gso,
                mss,
                0x10 | TCP_PSH | TCP_FIN | TCP_CWR,
            );
            let segs = cut(&p);
            assert_eq!(segs.len(), data.len().div_ceil(mss as usize));
            let mut all = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                assert!(s.offload().is_plain());
                assert!(s.len() <= 14 + if v6 { 40 } else { 20 } + 32 + mss as usize);
                let (id, seq, (fin, psh, cwr), pl) = check_segment(s.data());
                let last = i + 1 == segs.len();
                assert_eq!(
                    seq,
                    SEQ0.wrapping_add(all.len() as u32),
                    "seq of segment {i}"
                );
                assert_eq!(
                    (fin, psh, cwr),
                    (last, last, i == 0),
                    "flags of segment {i}"
                );
                if !v6 {
                    assert_eq!(id, 0xfff0u16.wrapping_add(i as u16));
                }
                if !last {
                    assert_eq!(pl.len(), mss as usize);
                }
                all.extend_from_slice(&pl);
            }
            assert_eq!(all, data);
        }
    }

    #[test]
    fn udp_gso_each_segment_a_datagram() {
        for v6 in [false, true] {
            let data = payload(60_001);
            let mss = 1400;
            let p = gso_frame(v6, PROTO_UDP, &data, GSO_UDP_L4, mss, 0);
            let segs = cut(&p);
            assert_eq!(segs.len(), data.len().div_ceil(mss as usize));
            let mut all = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                let (id, _, _, pl) = check_segment(s.data());
                if !v6 {
                    assert_eq!(id, 0xfff0u16.wrapping_add(i as u16));
                }
                assert!(pl.len() <= mss as usize);
                all.extend_from_slice(&pl);
            }
            assert_eq!(all, data);
        }
    }

    #[test]
    fn ufo_cut_into_ipv4_fragments() {
        let data = payload(20_000);
        let p = gso_frame(false, PROTO_UDP, &data, GSO_UDP, 1480, 0);
        let segs = cut(&p);
        let mut dgram = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let d = s.data();
            let ip = etherparse::Ipv4HeaderSlice::from_slice(&d[14..])
                .unwrap()
                .to_header();
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            assert_eq!(ip.identification, 0xfff0, "fragments share the ID");
            assert_eq!(ip.more_fragments, i + 1 < segs.len());
            assert_eq!(ip.fragment_offset.value() as usize * 8, dgram.len());
            assert_eq!(ip.total_len as usize, d.len() - 14);
            assert!(d.len() - 34 <= 1480);
            dgram.extend_from_slice(&d[34..]);
        }
        // The reassembled datagram carries a valid checksum.
        let u = etherparse::UdpSlice::from_slice(&dgram).unwrap();
        let h = u.to_header();
        assert_eq!(h.length as usize, dgram.len());
        assert_eq!(
            h.checksum,
            h.calc_checksum_ipv4_raw(SRC4, DST4, u.payload()).unwrap()
        );
        assert_eq!(u.payload(), &data[..]);
        // IPv6 UFO is refused.
        let p6 = gso_frame(true, PROTO_UDP, &data, GSO_UDP, 1480, 0);
        assert_eq!(
            segment(&p6, |_| {}),
            Err(OffloadError::UnsupportedGso(GSO_UDP))
        );
    }

    #[test]
    fn small_gso_frame_gives_one_segment_and_vlan_is_kept() {
        let data = payload(100);
        let p = gso_frame(false, PROTO_TCP, &data, GSO_TCPV4, 1448, 0x18);
        let segs = cut(&p);
        assert_eq!(segs.len(), 1);
        assert_eq!(check_segment(segs[0].data()).3, data);
        // The same frame behind an 802.1Q tag.
        let mut f = p.data()[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        f.extend_from_slice(&p.data()[12..]);
        let mut q = Packet::from_slice(&f);
        *q.offload_mut() = *p.offload();
        q.offload_mut().gso_size = 40;
        let segs = cut(&q);
        assert_eq!(segs.len(), 3);
        for s in &segs {
            assert_eq!(&s.data()[12..16], &[0x81, 0x00, 0x00, 0x05]);
            check_segment(s.data());
        }
    }

    #[test]
    fn complete_checksum_and_finalize() {
        for (v6, proto) in [
            (false, PROTO_TCP),
            (true, PROTO_TCP),
            (false, PROTO_UDP),
            (true, PROTO_UDP),
        ] {
            let data = payload(999);
            let p = gso_frame(v6, proto, &data, GSO_NONE, 0, 0x18);
            let mut out = Vec::new();
            assert_eq!(finalize(p, |q| out.push(q)), Ok(1));
            assert!(out[0].offload().is_plain());
            assert_eq!(check_segment(out[0].data()).3, data);
        }
        // A GSO frame through finalize.
        let p = gso_frame(true, PROTO_TCP, &payload(5000), GSO_TCPV6, 1000, 0x10);
        let mut n = 0;
        assert_eq!(
            finalize(p, |q| {
                check_segment(q.data());
                n += 1;
            }),
            Ok(5)
        );
        assert_eq!(n, 5);
        // Offsets outside the frame.
        let mut f = [0u8; 60];
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 50,
            csum_offset: 9,
            ..Default::default()
        };
        assert_eq!(
            complete_checksum(&mut f, &h),
            Err(OffloadError::CsumOutOfBounds)
        );
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 61,
            csum_offset: 0,
            ..Default::default()
        };
        assert_eq!(
            complete_checksum(&mut f, &h),
            Err(OffloadError::CsumOutOfBounds)
        );
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 58,
            csum_offset: 0,
            ..Default::default()
        };
        assert_eq!(complete_checksum(&mut f, &h), Ok(()));
        assert_eq!(&f[58..], &[0xff, 0xff]);
    }

    #[test]
    fn unmarked_partial_checksums_are_inferred() {
        for (v6, proto) in [
            (false, PROTO_TCP),
            (true, PROTO_TCP),
            (false, PROTO_UDP),
            (true, PROTO_UDP),
        ] {
            // As the kernel built it: pseudo-header sum in the field.
            let p = gso_frame(v6, proto, &payload(777), GSO_NONE, 0, 0x18);
            let want = *p.offload();
            let mut f = p.data().to_vec();
            assert_eq!(
                infer_partial(&f),
                Some(VnetHdr {
                    flags: F_NEEDS_CSUM,
                    csum_start: want.csum_start,
                    csum_offset: want.csum_offset,
                    ..VnetHdr::default()
                })
            );
            complete_checksum(&mut f, &want).unwrap();
            check_segment(&f);
            // Complete now: nothing to infer, unless the checksum happens to
            // equal the pseudo-header sum, and completing is then harmless.
            match infer_partial(&f) {
                None => {}
                Some(h) => {
                    let before = f.clone();
                    complete_checksum(&mut f, &h).unwrap();
                    assert_eq!(f, before);
                }
            }
            // A flipped bit in the checksum field: not the partial form.
            let mut g = p.data().to_vec();
            let at = want.csum_start as usize + want.csum_offset as usize;
            g[at + 1] ^= 4;
            assert_eq!(infer_partial(&g), None);
        }
        // Not TCP/UDP, not IP, truncated: nothing, never a panic.
        let p = gso_frame(false, PROTO_UDP, &payload(10), GSO_NONE, 0, 0);
        let mut f = p.data().to_vec();
        f[23] = 1; // ICMP
        assert_eq!(infer_partial(&f), None);
        for n in 0..f.len() {
            let _ = infer_partial(&f[..n]);
        }
        let mut rng = Rng::new(7);
        for _ in 0..2000 {
            let mut g = p.data().to_vec();
            let i = rng.below(g.len() as u64) as usize;
            g[i] = rng.next_u64() as u8;
            let _ = infer_partial(&g);
        }
    }

    #[test]
    fn errors_not_panics() {
        let p = gso_frame(false, PROTO_TCP, &payload(3000), GSO_UDP_L4, 1000, 0x10);
        assert_eq!(
            segment(&p, |_| {}),
            Err(OffloadError::GsoMismatch(PROTO_TCP))
        );
        let p = gso_frame(true, PROTO_TCP, &payload(3000), GSO_TCPV4, 1000, 0x10);
        assert_eq!(
            segment(&p, |_| {}),
            Err(OffloadError::GsoMismatch(PROTO_TCP))
        );
        let p = gso_frame(false, PROTO_TCP, &payload(3000), GSO_TCPV4, 0, 0x10);
        assert_eq!(segment(&p, |_| {}), Err(OffloadError::BadGsoSize));
        let p = gso_frame(false, PROTO_TCP, &payload(3000), 9, 1000, 0x10);
        assert_eq!(segment(&p, |_| {}), Err(OffloadError::UnsupportedGso(9)));
        let mut arp = Packet::from_slice(&[0u8; 60]);
        arp.data_mut()[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        arp.offload_mut().gso_type = GSO_TCPV4;
        arp.offload_mut().gso_size = 100;
        assert_eq!(
            segment(&arp, |_| {}),
            Err(OffloadError::UnsupportedEtherType(0x0806))
        );
        // A jumbo IPv6 frame (payload length 0) cut into segments too big
        // for the 16-bit payload length field.
        let mut big = gso_frame(true, PROTO_TCP, &payload(65_600), GSO_TCPV6, 65_535, 0x10);
        big.data_mut()[18..20].copy_from_slice(&[0, 0]);
        assert_eq!(segment(&big, |_| {}), Err(OffloadError::BadGsoSize));
        let mut short = Packet::from_slice(&p.data()[..40]);
        *short.offload_mut() = *p.offload();
        assert_eq!(segment(&short, |_| {}), Err(OffloadError::Truncated));
        assert!(OffloadError::Truncated.to_string().contains("truncated"));
    }

    /// Random bytes with random headers, and valid frames with random
    /// damage: never a panic, and whatever comes out parses.
    #[test]
    fn fuzz_never_panics() {
        let mut rng = Rng::new(0x5eed);
        let templates = [
            gso_frame(false, PROTO_TCP, &payload(4000), GSO_TCPV4, 1000, 0x19),
            gso_frame(true, PROTO_TCP, &payload(4000), GSO_TCPV6, 1000, 0x19),
            gso_frame(false, PROTO_UDP, &payload(4000), GSO_UDP_L4, 1000, 0),
            gso_frame(true, PROTO_UDP, &payload(4000), GSO_UDP_L4, 1000, 0),
            gso_frame(false, PROTO_UDP, &payload(4000), GSO_UDP, 1000, 0),
        ];
        let types = [
            GSO_NONE,
            GSO_TCPV4,
            GSO_UDP,
            GSO_TCPV6,
            GSO_UDP_L4,
            GSO_ECN | GSO_TCPV4,
            2,
            200,
        ];
        for round in 0..20_000 {
            let mut p = if round % 2 == 0 {
                let len = rng.below(200) as usize;
                let mut p = Packet::new();
                for _ in 0..len {
                    p.append(&[rng.next_u64() as u8]);
                }
                if len >= 14 && rng.chance(0.7) {
                    let t: u16 = if rng.chance(0.5) {
                        ETHERTYPE_IPV4
                    } else {
                        ETHERTYPE_IPV6
                    };
                    p.data_mut()[12..14].copy_from_slice(&t.to_be_bytes());
                    if len > 14 {
                        p.data_mut()[14] = if t == ETHERTYPE_IPV4 { 0x45 } else { 0x60 };
                    }
                }
                p
            } else {
                let t = &templates[rng.below(templates.len() as u64) as usize];
                let mut p = t.duplicate();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(100) as usize;
                    p.data_mut()[i] = rng.next_u64() as u8;
                }
                if rng.chance(0.3) {
                    let l = rng.below(p.len() as u64) as usize;
                    p.truncate(l);
                }
                p
            };
            let h = p.offload_mut();
            if round % 2 == 0 || rng.chance(0.3) {
                h.flags = rng.next_u64() as u8 & 3;
                h.gso_type = types[rng.below(types.len() as u64) as usize];
                h.gso_size = if rng.chance(0.5) {
                    rng.below(2000) as u16
                } else {
                    rng.next_u64() as u16
                };
                h.csum_start = rng.below(300) as u16;
                h.csum_offset = rng.below(300) as u16;
            }
            let h = *p.offload();
            let mut f = p.data().to_vec();
            let _ = complete_checksum(&mut f, &h);
            let _ = segment(&p, |q| {
                assert!(q.len() <= crate::packet::MAX_FRAME);
            });
            let _ = finalize(p, |q| assert!(q.offload().is_plain()));
        }
    }
}
