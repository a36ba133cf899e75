"""Packet builders and predicates shared by the tests."""

import struct

from scapy.all import Ether, ARP, IP, IPv6, ICMP, UDP, TCP, Raw, IPOption  # noqa: F401
from scapy.layers.inet import IPerror, UDPerror, TCPerror, ICMPerror  # noqa: F401
from scapy.layers.inet6 import (  # noqa: F401
    ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6DestUnreach, ICMPv6ParamProblem,
    ICMPv6TimeExceeded, ICMPv6PacketTooBig, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6ND_RS,
    ICMPv6ND_RA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr, ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptMTU, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting, HBHOptUnknown, PadN, Pad1, IPerror6, ICMPv6MLReport2, ICMPv6Unknown,
    in6_chksum)
from scapy.utils import checksum

from .harness import (DUT4, DUT6, DUT_MAC, H1_4, H1_6, H1_MAC, DUT_LL)  # noqa: F401


# --- checksums -----------------------------------------------------------------

def ip4_csum_ok(p):
    ip = p[IP]
    hdr = bytes(ip)[:ip.ihl * 4]
    return checksum(hdr) == 0


def l4_csum_ok(p):
    """The transport/ICMP checksum of the first L4 layer is right."""
    if IP in p:
        ip = p[IP]
        raw = bytes(ip)[ip.ihl * 4:ip.len]
        if ip.proto == 1:
            return checksum(raw) == 0
        ph = struct.pack("!4s4sBBH", bytes(map(int, ip.src.split("."))),
                         bytes(map(int, ip.dst.split("."))), 0, ip.proto, len(raw))
        if ip.proto == 17 and raw[6:8] == b"\0\0":
            return True
        return checksum(ph + raw) == 0
    if IPv6 in p:
        for layer in (TCP, UDP):
            if layer in p:
                l4 = p[layer]
                raw = bytes(l4)
                return in6_chksum(6 if layer is TCP else 17, l4.underlayer, raw) == 0 or \
                    _csum6(p[IPv6], 6 if layer is TCP else 17, raw)
        # ICMPv6: the first ICMPv6 layer
        l4 = p[IPv6].payload
        while l4.name.startswith("IPv6 Extension") or isinstance(l4, (IPv6ExtHdrHopByHop,
                                                                     IPv6ExtHdrDestOpt,
                                                                     IPv6ExtHdrRouting,
                                                                     IPv6ExtHdrFragment)):
            l4 = l4.payload
        return _csum6(p[IPv6], 58, bytes(l4))
    return False


def _csum6(ip6, nh, raw):
    import socket
    ph = socket.inet_pton(socket.AF_INET6, ip6.src) + socket.inet_pton(socket.AF_INET6, ip6.dst) + \
        struct.pack("!I3xB", len(raw), nh)
    return checksum(ph + raw) == 0


# --- IPv4 ----------------------------------------------------------------------

def echo4(ident, seq=1, payload=b"conformance", src=H1_4, dst=DUT4, **ipkw):
    return IP(src=src, dst=dst, **ipkw) / ICMP(type=8, id=ident, seq=seq) / Raw(payload)


def is_echo_reply4(ident, seq=None, src=DUT4):
    return lambda p: (ICMP in p and p[ICMP].type == 0 and p[ICMP].id == ident and
                      (seq is None or p[ICMP].seq == seq) and p[IP].src == src)


def frag4(pkt, size, order=None):
    """Cut an IP packet into fragments carrying `size` payload octets (a
    multiple of 8) each, like RFC 791 does; `order` reorders them."""
    pkt = IP(bytes(pkt))           # checksums and lengths computed
    hdr = pkt.copy()
    hdr.remove_payload()
    data = bytes(pkt.payload)
    frags = []
    for off in range(0, len(data), size):
        chunk = data[off:off + size]
        f = hdr.copy()
        f.flags = "MF" if off + size < len(data) else 0
        f.frag = off // 8
        f.len = None
        f.chksum = None
        frags.append(IP(bytes(f / Raw(chunk))))
    if order:
        frags = [frags[i] for i in order]
    return frags


def raw_frag4(hdr_ip, offset_bytes, data, mf):
    f = hdr_ip.copy()
    f.remove_payload()
    f.flags = "MF" if mf else 0
    f.frag = offset_bytes // 8
    f.len = None
    f.chksum = None
    return IP(bytes(f / Raw(data)))


def icmp4_err(type_, code=None, inner_id=None, inner_proto=None, inner_dport=None):
    def pred(p):
        if ICMP not in p or p[ICMP].type != type_ or p[IP].src != DUT4:
            return False
        if code is not None and p[ICMP].code != code:
            return False
        inner = IP(bytes(p[ICMP].payload))
        if inner_id is not None and inner.id != inner_id:
            return False
        if inner_proto is not None and inner.proto != inner_proto:
            return False
        if inner_dport is not None:
            l4 = bytes(inner)[inner.ihl * 4:]
            if len(l4) < 4 or struct.unpack("!H", l4[2:4])[0] != inner_dport:
                return False
        return True
    return pred


def any_icmp4_about(inner_id):
    """Any ICMP error (types 3, 4, 5, 11, 12) from the DUT quoting IP id `inner_id`."""
    def pred(p):
        if ICMP not in p or p[ICMP].type not in (3, 4, 5, 11, 12):
            return False
        try:
            return IP(bytes(p[ICMP].payload)).id == inner_id
        except Exception:  # noqa: BLE001
            return False
    return pred


# --- IPv6 ----------------------------------------------------------------------

def echo6(ident, seq=1, payload=b"conformance", src=H1_6, dst=DUT6, hlim=64, ext=None):
    p = IPv6(src=src, dst=dst, hlim=hlim)
    if ext is not None:
        p = p / ext
    return p / ICMPv6EchoRequest(id=ident, seq=seq, data=payload)


def is_echo_reply6(ident, seq=None, src=None):
    return lambda p: (ICMPv6EchoReply in p and p[ICMPv6EchoReply].id == ident and
                      (seq is None or p[ICMPv6EchoReply].seq == seq) and
                      (src is None or p[IPv6].src == src))


def frags6(pkt, size, ident, order=None, nh=None):
    """Cut an IPv6 packet (IPv6 header + payload, no extension headers) into
    fragments with `size` octets of fragmentable part each."""
    pkt = IPv6(bytes(pkt))
    nh = pkt.nh if nh is None else nh
    data = bytes(pkt.payload)
    hdr = pkt.copy()
    hdr.remove_payload()
    frags = []
    for off in range(0, len(data), size):
        chunk = data[off:off + size]
        h = hdr.copy()
        h.plen = None
        h.nh = 44
        fh = IPv6ExtHdrFragment(nh=nh, offset=off // 8, m=1 if off + size < len(data) else 0, id=ident)
        frags.append(h / fh / Raw(chunk))
    if order:
        frags = [frags[i] for i in order]
    return frags


def raw_frag6(hdr6, nh, ident, offset_bytes, data, m):
    h = hdr6.copy()
    h.remove_payload()
    h.plen = None
    h.nh = 44
    return h / IPv6ExtHdrFragment(nh=nh, offset=offset_bytes // 8, m=m, id=ident) / Raw(data)


def icmp6_body(p):
    """The ICMPv6 header and body bytes (after the IPv6 header and any
    extension headers), or b''."""
    ip = p[IPv6]
    nh = ip.nh
    raw = bytes(ip.payload)[:ip.plen]
    while nh in (0, 43, 60):
        nh = raw[0]
        raw = raw[(raw[1] + 1) * 8:]
    return raw if nh == 58 else b""


def icmp6_err(type_, code=None, pointer=None, inner_pred=None, src=None):
    """An ICMPv6 error from the DUT; inner_pred gets the quoted IPv6 packet."""
    def pred(p):
        if IPv6 not in p:
            return False
        b = icmp6_body(p)
        if len(b) < 8 or b[0] != type_:
            return False
        if code is not None and b[1] != code:
            return False
        if pointer is not None and struct.unpack("!I", b[4:8])[0] != pointer:
            return False
        if src is not None and p[IPv6].src != src:
            return False
        if inner_pred is not None:
            try:
                if not inner_pred(IPv6(b[8:])):
                    return False
            except Exception:  # noqa: BLE001
                return False
        return True
    return pred


def any_icmp6_err_from_dut():
    def pred(p):
        if IPv6 not in p:
            return False
        b = icmp6_body(p)
        return len(b) >= 8 and b[0] < 128
    return pred


def inner_echo6(ident):
    def pred(inner):
        b = bytes(inner)
        # find the ICMPv6 echo request in the quoted packet (after ext headers)
        nh, off = b[6], 40
        while nh in (0, 43, 60, 44):
            if off + 8 > len(b):
                return False
            if nh == 44:
                nh, off = b[off], off + 8
                continue
            nh, off = b[off], off + (b[off + 1] + 1) * 8
        return nh == 58 and len(b) >= off + 6 and b[off] == 128 and \
            struct.unpack("!H", b[off + 4:off + 6])[0] == ident
    return pred


def inner_frag_id6(ident):
    def pred(inner):
        b = bytes(inner)
        nh, off = b[6], 40
        while nh in (0, 43, 60):
            nh, off = b[off], off + (b[off + 1] + 1) * 8
        return nh == 44 and len(b) >= off + 8 and struct.unpack("!I", b[off + 4:off + 8])[0] == ident
    return pred


def opt_unknown(otype, data=b"\0\0\0\0"):
    return HBHOptUnknown(otype=otype, optdata=data)
