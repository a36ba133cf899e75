"""ICMPv4 (RFC 792, RFC 1122 3.2.2, RFC 1812 4.3.2.8 for rate limits)."""

import struct

from lib.harness import conf_test, Ether, DUT4, DUT_MAC, H1_4, H1_MAC, H2_4, BCAST4
from lib.pk import (IP, ICMP, UDP, Raw, IPOption, echo4, is_echo_reply4, frag4, l4_csum_ok,
                    icmp4_err, any_icmp4_about)


def ping_ok(t, what="an Echo Reply (control)"):
    i = t.rand_id()
    return t.exchange(echo4(i), is_echo_reply4(i), 1, what)


def udp4(sport, dport, data=b"probe", dst=DUT4, src=H1_4, ident=None, **kw):
    ip = IP(src=src, dst=dst, **kw)
    if ident is not None:
        ip.id = ident
    return ip / UDP(sport=sport, dport=dport) / Raw(data)


CLOSED = 7999


@conf_test("ICMP-1.1", "icmpv4", "Echo Request is answered by an Echo Reply echoing id, sequence and data",
           "RFC 792 'Echo or Echo Reply Message'; RFC 1122 3.2.2.6", "MUST",
           ["HOST-1 sends an ICMP Echo Request (id, seq, 56 octets of data)", "Listen for 1 s"],
           "Echo Reply: type 0, code 0, same id, sequence and data, valid checksum")
def icmp_1_1(t):
    i = t.rand_id()
    data = t.rand_payload(56)
    p = t.exchange(echo4(i, seq=77, payload=data), is_echo_reply4(i), 1, "an Echo Reply")
    c = p[ICMP]
    t.check(c.code == 0 and c.seq == 77, f"code {c.code} seq {c.seq}")
    t.check(bytes(c.payload)[:56] == data, "data not echoed")
    t.check(l4_csum_ok(p), "bad ICMP checksum")


@conf_test("ICMP-1.2", "icmpv4", "An Echo Request with a bad ICMP checksum is discarded",
           "RFC 792 (checksum); RFC 1122 3.2.2", "MUST",
           ["HOST-1 sends an Echo Request with a wrong ICMP checksum", "Listen for 1 s", "Control"],
           "No Echo Reply")
def icmp_1_2(t):
    i = t.rand_id()
    p = echo4(i)
    p[ICMP].chksum = 0x1234
    t.mark()
    t.send(p)
    t.expect_none(is_echo_reply4(i), 1, "no reply to a bad checksum")
    ping_ok(t)


@conf_test("ICMP-1.3", "icmpv4", "A large Echo Request (1472 data octets, a full frame) is echoed",
           "RFC 1122 3.2.2.6 (data MUST be returned entirely)", "MUST",
           ["HOST-1 sends an Echo Request with 1472 octets of data", "Listen for 1 s"],
           "An Echo Reply with the same 1472 octets")
def icmp_1_3(t):
    i = t.rand_id()
    data = t.rand_payload(1472)
    p = t.exchange(echo4(i, payload=data), is_echo_reply4(i), 1, "an Echo Reply")
    t.check(bytes(p[ICMP].payload) == data, "data differs")


@conf_test("ICMP-1.4", "icmpv4", "An Echo Request with an odd data length gets a correct checksum",
           "RFC 792 (checksum over odd lengths padded)", "MUST",
           ["HOST-1 sends an Echo Request with 33 octets of data", "Listen for 1 s"],
           "Echo Reply with the 33 octets and a valid checksum")
def icmp_1_4(t):
    i = t.rand_id()
    data = t.rand_payload(33)
    p = t.exchange(echo4(i, payload=data), is_echo_reply4(i), 1, "an Echo Reply")
    t.check(bytes(p[ICMP].payload)[:33] == data and l4_csum_ok(p), "bad data or checksum")


@conf_test("ICMP-1.5", "icmpv4", "An Echo Request with no data is answered",
           "RFC 792", "MUST",
           ["HOST-1 sends an Echo Request with 0 octets of data", "Listen for 1 s"], "An Echo Reply")
def icmp_1_5(t):
    i = t.rand_id()
    t.exchange(echo4(i, payload=b""), is_echo_reply4(i), 1, "an Echo Reply")


@conf_test("ICMP-1.6", "icmpv4", "An Echo Request to the subnet broadcast address is not answered (Linux default)",
           "RFC 1122 3.2.2.6 (MAY be silently discarded)", "MAY",
           ["HOST-1 sends an Echo Request to 192.0.2.255 in a broadcast frame", "Listen for 1 s",
            "Control"], "No Echo Reply (as Linux with icmp_echo_ignore_broadcasts = 1)")
def icmp_1_6(t):
    i = t.rand_id()
    t.mark()
    t.send(Ether(src=H1_MAC, dst="ff:ff:ff:ff:ff:ff") / echo4(i, dst=BCAST4))
    t.expect_none(is_echo_reply4(i), 1, "no reply to a broadcast Echo Request")
    ping_ok(t)


@conf_test("ICMP-2.1", "icmpv4", "UDP to a closed port: Port Unreachable quoting the IP header and 8 octets",
           "RFC 1122 3.2.2.1 / 4.1.3.1 (SHOULD send port unreachable); RFC 792; RFC 1122 3.2.2 "
           "(MUST include IP header and at least 8 data octets)", "MUST",
           ["HOST-1 sends a UDP datagram to port 7999 (closed)", "Listen for 1 s"],
           "ICMP type 3 code 3 from 192.0.2.1 quoting the datagram's IP header unchanged and the UDP header")
def icmp_2_1(t):
    ident = t.rand_id()
    sport = t.rand_port()
    u = IP(bytes(udp4(sport, CLOSED, ident=ident)))
    p = t.exchange(u, icmp4_err(3, None, inner_id=ident), 1, "an ICMP Destination Unreachable")
    t.check(p[ICMP].code == 3, f"code {p[ICMP].code}, expected 3 (port unreachable)")
    q = bytes(p[ICMP].payload)
    t.check(q[:28] == bytes(u)[:28], "the quoted header and first 8 octets differ from what was sent")
    t.check(l4_csum_ok(p), "bad ICMP checksum")


@conf_test("ICMP-2.2", "icmpv4", "An unknown transport protocol: Protocol Unreachable",
           "RFC 1122 3.2.2.1 (SHOULD send protocol unreachable); RFC 792", "SHOULD",
           ["HOST-1 sends a datagram with protocol 253 to 192.0.2.1", "Listen for 1 s"],
           "ICMP type 3 code 2 quoting the datagram")
def icmp_2_2(t):
    ident = t.rand_id()
    p = t.exchange(IP(src=H1_4, dst=DUT4, proto=253, id=ident) / Raw(b"12345678"),
                   icmp4_err(3, None, inner_id=ident), 1, "an ICMP Destination Unreachable")
    t.check(p[ICMP].code == 2, f"code {p[ICMP].code}, expected 2")


@conf_test("ICMP-2.3", "icmpv4", "An ICMP error is at most 576 octets",
           "RFC 1812 4.3.2.3 (as much as fits in 576); RFC 1122 3.2.2", "SHOULD",
           ["HOST-1 sends a 1400-octet UDP datagram to a closed port", "Listen for 1 s"],
           "Port Unreachable whose IP datagram is at most 576 octets and quotes more than 28 octets")
def icmp_2_3(t):
    ident = t.rand_id()
    p = t.exchange(udp4(t.rand_port(), CLOSED, data=b"q" * 1400, ident=ident),
                   icmp4_err(3, 3, inner_id=ident), 1, "a Port Unreachable")
    t.check(p[IP].len <= 576, f"ICMP error of {p[IP].len} octets")
    t.check(len(bytes(p[ICMP].payload)) > 28, "only the minimum quoted")


def no_error(t, frame, ident, what):
    t.mark()
    t.send(frame)
    t.expect_none(any_icmp4_about(ident), 1, what)
    ping_ok(t)


@conf_test("ICMP-3.1", "icmpv4", "No ICMP error about a datagram to the subnet broadcast address",
           "RFC 1122 3.2.2 (MUST NOT send an error for an IP broadcast destination)", "MUST NOT",
           ["HOST-1 sends a UDP datagram to 192.0.2.255 port 7999 in a broadcast frame",
            "Listen for 1 s", "Control"], "No Port Unreachable")
def icmp_3_1(t):
    ident = t.rand_id()
    no_error(t, Ether(src=H1_MAC, dst="ff:ff:ff:ff:ff:ff") / udp4(t.rand_port(), CLOSED, dst=BCAST4,
                                                                    ident=ident),
             ident, "no error about a broadcast datagram")


@conf_test("ICMP-3.2", "icmpv4", "No ICMP error about a datagram sent as a link-layer broadcast",
           "RFC 1122 3.2.2 (MUST NOT: datagram sent as a link-layer broadcast)", "MUST NOT",
           ["HOST-1 sends a UDP datagram to 192.0.2.1 port 7999 in a frame to ff:ff:ff:ff:ff:ff",
            "Listen for 1 s", "Control"], "No Port Unreachable")
def icmp_3_2(t):
    ident = t.rand_id()
    no_error(t, Ether(src=H1_MAC, dst="ff:ff:ff:ff:ff:ff") / udp4(t.rand_port(), CLOSED, ident=ident),
             ident, "no error about a link-layer broadcast")


@conf_test("ICMP-3.3", "icmpv4", "No ICMP error about a datagram to a multicast address",
           "RFC 1122 3.2.2 (MUST NOT: IP multicast destination)", "MUST NOT",
           ["HOST-1 sends a UDP datagram to 224.0.0.1 port 7999 (frame to 01:00:5e:00:00:01)",
            "Listen for 1 s", "Control"], "No Port Unreachable")
def icmp_3_3(t):
    ident = t.rand_id()
    no_error(t, Ether(src=H1_MAC, dst="01:00:5e:00:00:01") /
             udp4(t.rand_port(), CLOSED, dst="224.0.0.1", ident=ident, ttl=1),
             ident, "no error about a multicast datagram")


@conf_test("ICMP-3.4", "icmpv4", "No ICMP error about an ICMP error message",
           "RFC 1122 3.2.2 (MUST NOT send an ICMP error about an ICMP error)", "MUST NOT",
           ["HOST-1 sends an ICMP Destination Unreachable to 192.0.2.1 whose IP header has a "
            "malformed option (which would earn a Parameter Problem)", "Listen for 1 s", "Control"],
           "No Parameter Problem")
def icmp_3_4(t):
    ident = t.rand_id()
    inner = bytes(IP(src=DUT4, dst=H1_4) / UDP(sport=7, dport=1234))
    pkt = IP(src=H1_4, dst=DUT4, id=ident, options=[IPOption(b"\x1e\x28\x00\x00")]) / \
        ICMP(type=3, code=3) / Raw(inner)
    no_error(t, pkt, ident, "no error about an ICMP error")


@conf_test("ICMP-3.5", "icmpv4", "A fragmented UDP datagram to a closed port earns one error",
           "RFC 1122 3.2.2 (MUST NOT send errors about non-initial fragments)", "MUST",
           ["HOST-1 sends a 1200-octet UDP datagram to port 7999 in 3 fragments", "Listen for 1.5 s"],
           "Exactly one Port Unreachable (about the reassembled datagram / fragment zero)")
def icmp_3_5(t):
    ident = t.rand_id()
    fr = frag4(udp4(t.rand_port(), CLOSED, data=b"f" * 1200, ident=ident), 408)
    t.mark()
    t.send(fr)
    ps = t.collect(any_icmp4_about(ident), 1.5)
    t.check(len(ps) == 1, f"{len(ps)} ICMP errors, expected exactly 1")
    t.check(ps[0][ICMP].type == 3 and ps[0][ICMP].code == 3, f"got {ps[0].summary()}")


@conf_test("ICMP-3.6", "icmpv4", "No ICMP error about a datagram from a subnet broadcast source",
           "RFC 1122 3.2.2 (MUST NOT: source does not define a single host)", "MUST NOT",
           ["HOST-1 sends a UDP datagram from 192.0.2.255 to 192.0.2.1 port 7999", "Listen for 1 s",
            "Control"], "No Port Unreachable")
def icmp_3_6(t):
    ident = t.rand_id()
    no_error(t, udp4(t.rand_port(), CLOSED, src=BCAST4, ident=ident), ident,
             "no error to a broadcast source")


@conf_test("ICMP-4.1", "icmpv4", "ICMP error messages are rate limited",
           "RFC 1812 4.3.2.8; RFC 1122 3.2.2 (rate limiting recommended)", "SHOULD",
           ["Linux DUT: default net.ipv4.icmp_ratelimit (1000)", "HOST-1 sends 40 UDP datagrams "
            "to closed ports back to back", "Listen for 1 s"],
           "At least one and fewer than 40 Port Unreachable messages")
def icmp_4_1(t):
    t.dut.sysctl("net.ipv4.icmp_ratelimit", 1000)
    base = t.rand_port()
    frames = [udp4(base, CLOSED, ident=(base + k) & 0xffff) for k in range(40)]
    t.mark()
    t.send(frames)
    ps = t.collect(icmp4_err(3, 3, inner_proto=17), 1)
    ps = [p for p in ps if (IP(bytes(p[ICMP].payload)).id - base) & 0xffff < 40]
    t.check(len(ps) >= 1, "no Port Unreachable at all")
    t.check(len(ps) < 40, f"{len(ps)} Port Unreachables for 40 datagrams: not rate limited")


@conf_test("ICMP-5.1", "icmpv4", "A Timestamp Request is answered with a Timestamp Reply",
           "RFC 1122 3.2.2.8 (MAY implement; if so, MUST answer correctly); RFC 792", "MAY",
           ["HOST-1 sends an ICMP Timestamp Request (type 13) with originate timestamp 12345",
            "Listen for 1 s"],
           "Timestamp Reply (type 14, code 0), same id and sequence, originate 12345, receive and "
           "transmit timestamps filled (as Linux)")
def icmp_5_1(t):
    i = t.rand_id()
    p = t.exchange(IP(src=H1_4, dst=DUT4) / ICMP(type=13, id=i, seq=3, ts_ori=12345, ts_rx=0, ts_tx=0),
                   lambda p: ICMP in p and p[ICMP].type == 14 and p[ICMP].id == i, 1, "a Timestamp Reply")
    c = p[ICMP]
    t.check(c.code == 0 and c.seq == 3 and c.ts_ori == 12345, f"code {c.code} seq {c.seq} ori {c.ts_ori}")
    t.check(c.ts_rx != 0 or c.ts_tx != 0, "receive/transmit timestamps not filled")


@conf_test("ICMP-5.2", "icmpv4", "Information Requests are not answered",
           "RFC 1122 3.2.2.7 (SHOULD NOT implement Information Request/Reply)", "SHOULD NOT",
           ["HOST-1 sends an ICMP Information Request (type 15)", "Listen for 1 s", "Control"],
           "No Information Reply")
def icmp_5_2(t):
    i = t.rand_id()
    t.mark()
    t.send(IP(src=H1_4, dst=DUT4) / ICMP(type=15, id=i))
    t.expect_none(lambda p: ICMP in p and p[ICMP].type == 16, 1, "no Information Reply")
    ping_ok(t)


@conf_test("ICMP-5.3", "icmpv4", "Address Mask Requests are not answered by a non-authoritative host",
           "RFC 1122 3.2.2.9 (MUST NOT send Address Mask Replies unless authoritative)", "MUST NOT",
           ["HOST-1 sends an ICMP Address Mask Request (type 17)", "Listen for 1 s", "Control"],
           "No Address Mask Reply")
def icmp_5_3(t):
    i = t.rand_id()
    t.mark()
    t.send(IP(src=H1_4, dst=DUT4) / ICMP(type=17, id=i) / Raw(b"\0\0\0\0"))
    t.expect_none(lambda p: ICMP in p and p[ICMP].type == 18, 1, "no Address Mask Reply")
    ping_ok(t)


@conf_test("ICMP-6.1", "icmpv4", "An ICMP message of unknown type is silently discarded",
           "RFC 1122 3.2.2 (unknown type MUST be silently discarded)", "MUST",
           ["HOST-1 sends an ICMP message of type 42 (and one of type 100)", "Listen for 1 s", "Control"],
           "No response of any kind")
def icmp_6_1(t):
    t.mark()
    t.send(IP(src=H1_4, dst=DUT4) / ICMP(type=42, code=0) / Raw(b"\0" * 8),
           IP(src=H1_4, dst=DUT4) / ICMP(type=100, code=0) / Raw(b"\0" * 8))
    t.expect_none(lambda p: ICMP in p and p[IP].src == DUT4, 1, "no ICMP response")
    ping_ok(t)


@conf_test("ICMP-6.2", "icmpv4", "A Redirect for an on-link destination from a non-gateway is ignored",
           "RFC 1122 3.2.2.2 (a Redirect must come from the current first-hop gateway)", "SHOULD",
           ["HOST-2 sends an ICMP Redirect (code 1): 'for 192.0.2.2 use 192.0.2.3', quoting a datagram "
            "from 192.0.2.1 to 192.0.2.2", "HOST-1 sends an Echo Request", "Listen for 1 s"],
           "The Echo Reply still goes to HOST-1's MAC, directly", topo="T2")
def icmp_6_2(t):
    ping_ok(t, "an Echo Reply (neighbour resolved)")
    inner = bytes(IP(src=DUT4, dst=H1_4, proto=1) / ICMP(type=0, id=1))[:28]
    t.send(Ether(src="02:00:00:00:00:03", dst=DUT_MAC) / IP(src=H2_4, dst=DUT4) /
           ICMP(type=5, code=1, gw=H2_4) / Raw(inner))
    p = ping_ok(t, "an Echo Reply after the Redirect")
    t.check(p[Ether].dst == H1_MAC, f"reply went to {p[Ether].dst}: the redirect was obeyed")
