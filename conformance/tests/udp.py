"""UDP (RFC 768, RFC 1122 4.1, RFC 8200 8.1)."""

import struct
import threading

from lib.harness import conf_test, Ether, DUT4, DUT6, DUT_MAC, H1_4, H1_6, H1_MAC, BCAST4
from lib.pk import IP, IPv6, UDP, ICMP, Raw, l4_csum_ok, echo4, is_echo_reply4


def u4(sport, dport=7, data=b"udp-conformance", **kw):
    return IP(src=H1_4, dst=kw.pop("dst", DUT4)) / UDP(sport=sport, dport=dport, **kw) / Raw(data)


def u6(sport, dport=7, data=b"udp-conformance", **kw):
    return IPv6(src=H1_6, dst=DUT6) / UDP(sport=sport, dport=dport, **kw) / Raw(data)


def is_echo(sport, v6=False):
    L = IPv6 if v6 else IP
    return lambda p: L in p and UDP in p and p[L].src == (DUT6 if v6 else DUT4) and \
        p[UDP].sport == 7 and p[UDP].dport == sport


def udp_data(p):
    return bytes(p[UDP].payload)[:p[UDP].len - 8]


def control(t, v6=False):
    s = t.rand_port()
    t.exchange(u6(s) if v6 else u4(s), is_echo(s, v6), 1, "a UDP echo (control)")


@conf_test("UDP-1.1", "udp", "A datagram to the echo port is echoed with ports swapped and a valid checksum",
           "RFC 768; RFC 1122 4.1.3.4 (checksum)", "MUST",
           ["HOST-1 sends a UDP datagram from port P to 192.0.2.1 port 7 (echo)", "Listen for 1 s"],
           "A datagram from port 7 to port P with the same data, length field right, valid non-zero checksum")
def udp_1_1(t):
    s = t.rand_port()
    data = t.rand_payload(100)
    p = t.exchange(u4(s, data=data), is_echo(s), 1, "the UDP echo")
    t.check(udp_data(p) == data, "data differs")
    t.check(p[UDP].len == 108, f"length field {p[UDP].len}")
    t.check(p[UDP].chksum != 0 and l4_csum_ok(p), "checksum zero or wrong")


@conf_test("UDP-1.2", "udp", "A datagram with a bad checksum is silently discarded",
           "RFC 1122 4.1.3.4 (MUST silently discard)", "MUST",
           ["HOST-1 sends a UDP echo request with a wrong non-zero checksum", "Listen for 1 s", "Control"],
           "No echo, no ICMP")
def udp_1_2(t):
    s = t.rand_port()
    t.mark()
    t.send(u4(s, chksum=0x1234))
    t.expect_none(lambda p: is_echo(s)(p) or (ICMP in p and p[ICMP].type == 3), 1, "nothing")
    control(t)


@conf_test("UDP-1.3", "udp", "An IPv4 datagram with checksum 0 (none) is accepted",
           "RFC 768 (all zero: no checksum); RFC 1122 4.1.3.4", "MUST",
           ["HOST-1 sends a UDP echo request with checksum 0", "Listen for 1 s"], "The UDP echo")
def udp_1_3(t):
    s = t.rand_port()
    t.exchange(u4(s, chksum=0), is_echo(s), 1, "the UDP echo")


@conf_test("UDP-1.4", "udp", "An IPv6 datagram with checksum 0 is discarded",
           "RFC 8200 8.1 (UDP checksum is mandatory; zero MUST be discarded)", "MUST",
           ["HOST-1 sends a UDP echo request over IPv6 with checksum 0", "Listen for 1 s", "Control"],
           "No echo", family="6")
def udp_1_4(t):
    s = t.rand_port()
    t.mark()
    t.send(u6(s, chksum=0))
    t.expect_none(is_echo(s, True), 1, "no echo")
    control(t, True)


@conf_test("UDP-1.5", "udp", "A datagram whose UDP length exceeds the IP payload is discarded",
           "RFC 768 (Length); RFC 1122 4.1.3.4", "MUST",
           ["HOST-1 sends a UDP echo request whose length field is 20 more than its size",
            "Listen for 1 s", "Control"], "No echo")
def udp_1_5(t):
    s = t.rand_port()
    p = u4(s)
    p[UDP].len = 8 + len(b"udp-conformance") + 20
    t.mark()
    t.send(p)
    t.expect_none(is_echo(s), 1, "no echo")
    control(t)


@conf_test("UDP-1.6", "udp", "Octets beyond the UDP length are not part of the datagram",
           "RFC 768 (Length); RFC 1122 4.1.3.4", "MUST",
           ["HOST-1 sends a UDP echo request with length 8+5 followed by 10 more octets in the IP payload",
            "Listen for 1 s"], "The echo carries exactly the 5 data octets")
def udp_1_6(t):
    s = t.rand_port()
    body = b"hello" + b"XXXXXXXXXX"
    p = IP(src=H1_4, dst=DUT4) / UDP(sport=s, dport=7, len=13) / Raw(body)
    # the checksum covers the 13 octets the length field names
    raw = bytearray(bytes(p))
    raw[26:28] = b"\0\0"
    from scapy.utils import checksum
    ph = struct.pack("!4s4sBBH", bytes([192, 0, 2, 2]), bytes([192, 0, 2, 1]), 0, 17, 13)
    ck = checksum(ph + bytes(raw[20:33])) or 0xffff
    raw[26:28] = struct.pack("!H", ck)
    r = t.exchange(IP(bytes(raw)), is_echo(s), 1, "the UDP echo")
    t.check(udp_data(r) == b"hello", f"echoed {udp_data(r)!r}")


@conf_test("UDP-1.7", "udp", "A datagram with UDP length below 8 is discarded",
           "RFC 768 (minimum length 8)", "MUST",
           ["HOST-1 sends a UDP echo request with length field 4", "Listen for 1 s", "Control"], "No echo")
def udp_1_7(t):
    s = t.rand_port()
    p = u4(s)
    p[UDP].len = 4
    t.mark()
    t.send(p)
    t.expect_none(is_echo(s), 1, "no echo")
    control(t)


@conf_test("UDP-1.8", "udp", "UDP over IPv6: echoed with a valid, non-zero checksum",
           "RFC 768; RFC 8200 8.1 (checksum mandatory)", "MUST",
           ["HOST-1 sends a UDP datagram to 2001:db8::1 port 7", "Listen for 1 s"],
           "The echo, with the same data and a valid non-zero checksum", family="6")
def udp_1_8(t):
    s = t.rand_port()
    data = t.rand_payload(77)
    p = t.exchange(u6(s, data=data), is_echo(s, True), 1, "the UDP echo")
    t.check(udp_data(p) == data, "data differs")
    t.check(p[UDP].chksum != 0 and l4_csum_ok(p), "checksum zero or wrong")


@conf_test("UDP-1.9", "udp", "UDP over IPv6 with a bad checksum is discarded",
           "RFC 8200 8.1; RFC 1122 4.1.3.4", "MUST",
           ["HOST-1 sends a UDP echo request over IPv6 with a wrong checksum", "Listen for 1 s", "Control"],
           "No echo", family="6")
def udp_1_9(t):
    s = t.rand_port()
    t.mark()
    t.send(u6(s, chksum=0x1234))
    t.expect_none(is_echo(s, True), 1, "no echo")
    control(t, True)


@conf_test("UDP-1.10", "udp", "A zero-length datagram is delivered and echoed",
           "RFC 768", "MUST",
           ["HOST-1 sends a UDP datagram with no data to port 7", "Listen for 1 s"],
           "An echo of length 8")
def udp_1_10(t):
    s = t.rand_port()
    p = t.exchange(u4(s, data=b""), is_echo(s), 1, "the UDP echo")
    t.check(p[UDP].len == 8, f"length {p[UDP].len}")


@conf_test("UDP-1.11", "udp", "A full-size datagram (1472 octets) is echoed",
           "RFC 768; RFC 1122 4.1", "MUST",
           ["HOST-1 sends a UDP datagram with 1472 octets to port 7", "Listen for 1 s"],
           "The echo with the same 1472 octets")
def udp_1_11(t):
    s = t.rand_port()
    data = t.rand_payload(1472)
    p = t.exchange(u4(s, data=data), is_echo(s), 1, "the UDP echo")
    t.check(udp_data(p) == data, "data differs")


@conf_test("UDP-1.12", "udp", "A reply to a datagram sent to the broadcast address comes from a unicast address",
           "RFC 1122 4.1.3.5 (MUST use a specific source address, not broadcast)", "MUST",
           ["HOST-1 sends a UDP echo request to 192.0.2.255 port 7 in a broadcast frame",
            "Listen for 1 s"], "The echo, from 192.0.2.1")
def udp_1_12(t):
    s = t.rand_port()
    p = t.exchange(Ether(src=H1_MAC, dst="ff:ff:ff:ff:ff:ff") / u4(s, dst=BCAST4),
                   lambda p: IP in p and UDP in p and p[UDP].dport == s and p[UDP].sport == 7, 1,
                   "the UDP echo")
    t.check(p[IP].src == DUT4, f"echo from {p[IP].src}")


def refused(t, v6):
    from scapy.layers.inet6 import ICMPv6DestUnreach
    res = {}
    dst = H1_6 if v6 else H1_4
    th = threading.Thread(target=lambda: res.update(t.dut.cmd("udp", addr=dst, port=4000,
                                                               data="6869", wait=2)))
    L = IPv6 if v6 else IP
    t.mark()
    th.start()
    p = t.expect(lambda p: L in p and UDP in p and p[UDP].dport == 4000 and p[L].dst == dst, 1.5,
                 "the DUT's datagram")
    if v6:
        t.send(IPv6(src=H1_6, dst=DUT6) / ICMPv6DestUnreach(code=4) / Raw(bytes(p[IPv6])))
    else:
        t.send(IP(src=H1_4, dst=DUT4) / ICMP(type=3, code=3) / Raw(bytes(p[IP])[:28]))
    th.join()
    t.check(res.get("recv_errno") == 111 or any(e["errno"] == 111 for e in res.get("errors", [])),
            f"socket saw {res}, expected ECONNREFUSED")


@conf_test("UDP-2.1", "udp", "ICMP Port Unreachable is reported to the sending UDP socket",
           "RFC 1122 4.1.3.3 (UDP MUST pass ICMP errors to the application)", "MUST",
           ["The DUT server sends a datagram from a connected UDP socket to 192.0.2.2 port 4000",
            "HOST-1 answers with ICMP Port Unreachable quoting it", "The DUT server reads the socket"],
           "The socket reports ECONNREFUSED")
def udp_2_1(t):
    refused(t, False)


@conf_test("UDP-2.2", "udp", "ICMPv6 Port Unreachable is reported to the sending UDP socket (IPv6)",
           "RFC 1122 4.1.3.3; RFC 4443 2.4", "MUST",
           ["The DUT server sends a datagram from a connected UDP socket to 2001:db8::2 port 4000",
            "HOST-1 answers with ICMPv6 Destination Unreachable code 4", "The DUT server reads the socket"],
           "The socket reports ECONNREFUSED", family="6")
def udp_2_2(t):
    refused(t, True)


@conf_test("UDP-2.3", "udp", "The DUT's own UDP datagrams carry a valid checksum and length",
           "RFC 768; RFC 1122 4.1.3.4 (SHOULD generate checksums; on by default)", "SHOULD",
           ["The DUT server sends a 20-octet datagram to 192.0.2.2 port 4001", "Listen for 1.5 s"],
           "A datagram with length 28 and a valid non-zero checksum")
def udp_2_3(t):
    th = threading.Thread(target=lambda: t.dut.cmd("udp", addr=H1_4, port=4001, data="41" * 20, wait=0.5))
    t.mark()
    th.start()
    p = t.expect(lambda p: IP in p and UDP in p and p[UDP].dport == 4001, 1.5, "the DUT's datagram")
    th.join()
    t.check(p[UDP].len == 28 and p[UDP].chksum != 0 and l4_csum_ok(p), "length or checksum wrong")
