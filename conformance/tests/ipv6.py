"""IPv6, extension headers and fragments (RFC 8200, RFC 4291, RFC 5095, RFC 5722,
RFC 6946, RFC 7112)."""

import struct

from lib.harness import (conf_test, Ether, DUT6, DUT_MAC, H1_6, H1_MAC, H2_6, ALL_NODES,
                         mcast_mac6, Fail)
from lib.pk import (IPv6, Raw, UDP, ICMPv6EchoRequest, ICMPv6EchoReply, IPv6ExtHdrFragment,
                    IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, HBHOptUnknown, PadN,
                    Pad1, echo6, is_echo_reply6, frags6, raw_frag6, icmp6_err, icmp6_body,
                    any_icmp6_err_from_dut, inner_echo6, inner_frag_id6, l4_csum_ok, opt_unknown)


def ping6_ok(t, what="an Echo Reply (control)", **kw):
    i = t.rand_id()
    return t.exchange(echo6(i, **kw), is_echo_reply6(i), 1, what)


def send_raw6(t, b):
    t.send(Ether(src=H1_MAC, dst=DUT_MAC, type=0x86dd) / Raw(bytes(b)))


@conf_test("IPV6-1.1", "ipv6", "An Echo Request is answered with a well-formed IPv6 packet",
           "RFC 8200 3; RFC 4443 4.2", "MUST",
           ["HOST-1 sends an ICMPv6 Echo Request to 2001:db8::1", "Listen for 1 s"],
           "Echo Reply: version 6, source 2001:db8::1, destination 2001:db8::2, payload length "
           "matching, hop limit 64 (the default), valid checksum")
def ipv6_1_1(t):
    p = ping6_ok(t, "an Echo Reply")
    ip = p[IPv6]
    t.check(ip.version == 6, "version")
    t.check(ip.src == DUT6 and ip.dst == H1_6, f"{ip.src} -> {ip.dst}")
    t.check(ip.plen == len(bytes(ip.payload)), "payload length")
    t.check(ip.hlim == 64, f"hop limit {ip.hlim}, expected 64")
    t.check(l4_csum_ok(p), "bad ICMPv6 checksum")


def silent6(t, frame_bytes, ident, what):
    t.mark()
    send_raw6(t, frame_bytes)
    t.expect_none(lambda p: is_echo_reply6(ident)(p) or any_icmp6_err_from_dut()(p), 1, what)
    ping6_ok(t)


@conf_test("IPV6-1.2", "ipv6", "A packet with version 4 in an IPv6 frame is discarded",
           "RFC 8200 3 (Version = 6)", "MUST",
           ["HOST-1 sends an Echo Request in an 0x86dd frame with version 4", "Listen for 1 s", "Control"],
           "No Echo Reply")
def ipv6_1_2(t):
    i = t.rand_id()
    b = bytearray(bytes(echo6(i)))
    b[0] = 0x40 | (b[0] & 0x0f)
    silent6(t, b, i, "no reply to version 4")


@conf_test("IPV6-1.3", "ipv6", "A packet whose payload length exceeds the frame is discarded",
           "RFC 8200 3 (Payload Length)", "MUST",
           ["HOST-1 sends an Echo Request whose Payload Length is 100 more than it carries",
            "Listen for 1 s", "Control"], "No Echo Reply")
def ipv6_1_3(t):
    i = t.rand_id()
    b = bytearray(bytes(echo6(i)))
    b[4:6] = struct.pack("!H", len(b) - 40 + 100)
    silent6(t, b, i, "no reply to a truncated packet")


@conf_test("IPV6-1.4", "ipv6", "Octets beyond the Payload Length are ignored",
           "RFC 8200 3 (Payload Length defines the packet)", "MUST",
           ["HOST-1 sends an Echo Request followed by 16 octets of 0xff in the frame", "Listen for 1 s"],
           "An Echo Reply with exactly the request's data")
def ipv6_1_4(t):
    i = t.rand_id()
    b = bytes(Ether(src=H1_MAC, dst=DUT_MAC) / echo6(i, payload=b"exact")) + b"\xff" * 16
    p = t.exchange(b, is_echo_reply6(i), 1, "an Echo Reply")
    t.check(p[ICMPv6EchoReply].data == b"exact", f"data {p[ICMPv6EchoReply].data!r}")


@conf_test("IPV6-1.5", "ipv6", "A packet from a multicast source is discarded",
           "RFC 4291 2.7 (multicast MUST NOT be a source); RFC 8200", "MUST",
           ["HOST-1 sends an Echo Request from ff02::1", "Listen for 1 s", "Control"], "No Echo Reply")
def ipv6_1_5(t):
    i = t.rand_id()
    silent6(t, echo6(i, src="ff02::1"), i, "no reply to a multicast source")


@conf_test("IPV6-1.6", "ipv6", "A packet to the loopback address arriving on the wire is discarded",
           "RFC 4291 2.5.3 (MUST NOT be received from an interface... as destination ::1)", "MUST",
           ["HOST-1 sends an Echo Request to ::1 (frame to DUT-MAC)", "Listen for 1 s", "Control"],
           "No Echo Reply")
def ipv6_1_6(t):
    i = t.rand_id()
    silent6(t, echo6(i, dst="::1"), i, "no reply to destination ::1")


@conf_test("IPV6-1.7", "ipv6", "A packet from the loopback address arriving on the wire is discarded",
           "RFC 4291 2.5.3 (MUST be dropped)", "MUST",
           ["HOST-1 sends an Echo Request from ::1", "Listen for 1 s", "Control"], "No Echo Reply")
def ipv6_1_7(t):
    i = t.rand_id()
    silent6(t, echo6(i, src="::1"), i, "no reply to source ::1")


@conf_test("IPV6-1.8", "ipv6", "A host accepts a packet with hop limit 1",
           "RFC 8200 3 (hop limit is decremented by forwarding nodes only)", "MUST",
           ["HOST-1 sends an Echo Request with hop limit 1", "Listen for 1 s"], "An Echo Reply")
def ipv6_1_8(t):
    ping6_ok(t, "an Echo Reply", hlim=1)


@conf_test("IPV6-1.9", "ipv6", "A packet for another address is neither answered nor forwarded",
           "RFC 8200 (hosts do not forward); RFC 4294/8504 host requirements", "MUST",
           ["HOST-1 sends an Echo Request to 2001:db8::3 in a frame to DUT-MAC", "Listen for 1 s",
            "Control"], "Nothing from the DUT about it")
def ipv6_1_9(t):
    i = t.rand_id()
    silent6(t, echo6(i, dst=H2_6), i, "nothing about a packet for 2001:db8::3")


@conf_test("IPV6-1.10", "ipv6", "An Echo Request from the unspecified address is not answered",
           "RFC 4291 2.5.2 (:: MUST NOT be a destination); RFC 4443 4.2", "MUST",
           ["HOST-1 sends an Echo Request from ::", "Listen for 1 s", "Control"], "No Echo Reply")
def ipv6_1_10(t):
    i = t.rand_id()
    silent6(t, echo6(i, src="::"), i, "no reply to source ::")


# --- unknown next header / headers order --------------------------------------

@conf_test("IPV6-2.1", "ipv6", "Unknown Next Header: Parameter Problem code 1 pointing at it",
           "RFC 8200 4 (unrecognized Next Header: ICMP Parameter Problem, code 1, pointer)", "MUST",
           ["HOST-1 sends a packet to 2001:db8::1 with Next Header 250 and 8 octets of payload",
            "Listen for 1 s"], "ICMPv6 Parameter Problem, code 1, pointer 6")
def ipv6_2_1(t):
    b = IPv6(src=H1_6, dst=DUT6, nh=250) / Raw(b"\0" * 8)
    t.exchange(b, icmp6_err(4, 1, 6), 1, "Parameter Problem code 1 pointer 6")


@conf_test("IPV6-2.2", "ipv6", "Unknown Next Header after a Destination Options header: pointer to that field",
           "RFC 8200 4", "MUST",
           ["HOST-1 sends a packet with a Destination Options header whose Next Header is 250",
            "Listen for 1 s"], "ICMPv6 Parameter Problem, code 1, pointer 40")
def ipv6_2_2(t):
    b = IPv6(src=H1_6, dst=DUT6) / IPv6ExtHdrDestOpt(nh=250, options=[PadN(optdata=b"\0\0\0\0")]) / Raw(b"\0" * 8)
    t.exchange(b, icmp6_err(4, 1, 40), 1, "Parameter Problem code 1 pointer 40")


@conf_test("IPV6-2.3", "ipv6", "Unknown Next Header after a Hop-by-Hop header: pointer to that field",
           "RFC 8200 4", "MUST",
           ["HOST-1 sends a packet with a Hop-by-Hop header whose Next Header is 250", "Listen for 1 s"],
           "ICMPv6 Parameter Problem, code 1, pointer 40")
def ipv6_2_3(t):
    b = IPv6(src=H1_6, dst=DUT6) / IPv6ExtHdrHopByHop(nh=250, options=[PadN(optdata=b"\0\0\0\0")]) / Raw(b"\0" * 8)
    t.exchange(b, icmp6_err(4, 1, 40), 1, "Parameter Problem code 1 pointer 40")


@conf_test("IPV6-2.4", "ipv6", "A Hop-by-Hop header not right after the IPv6 header is an unknown Next Header",
           "RFC 8200 4.1 (Hop-by-Hop only immediately after the IPv6 header; else code 1)", "MUST",
           ["HOST-1 sends Echo Request: IPv6 / Destination Options (Next Header 0) / Hop-by-Hop / ICMPv6",
            "Listen for 1 s"], "ICMPv6 Parameter Problem, code 1, pointer 40; no Echo Reply")
def ipv6_2_4(t):
    i = t.rand_id()
    ext = IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")]) / \
        IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0\0\0\0")])
    t.exchange(echo6(i, ext=ext), icmp6_err(4, 1, 40), 1, "Parameter Problem code 1 pointer 40")
    t.expect_none(is_echo_reply6(i), 0.2, "no Echo Reply")


@conf_test("IPV6-2.5", "ipv6", "No Next Header (59): the packet is silently dropped",
           "RFC 8200 4.7", "MUST",
           ["HOST-1 sends a packet with Next Header 59 and 8 octets after it", "Listen for 1 s", "Control"],
           "No ICMPv6 error")
def ipv6_2_5(t):
    t.mark()
    t.send(IPv6(src=H1_6, dst=DUT6, nh=59) / Raw(b"\0" * 8))
    t.expect_none(any_icmp6_err_from_dut(), 1, "no error about No Next Header")
    ping6_ok(t)


@conf_test("IPV6-2.6", "ipv6", "A chain of extension headers is processed in order",
           "RFC 8200 4 / 4.1", "MUST",
           ["HOST-1 sends Echo Request: IPv6 / Hop-by-Hop / Destination Options / Routing (type 4 "
            "unknown to hosts? no: type 253, segments left 0) / Destination Options / ICMPv6",
            "Listen for 1 s"], "An Echo Reply")
def ipv6_2_6(t):
    ext = IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0\0\0\0")]) / \
        IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")]) / \
        IPv6ExtHdrRouting(type=253, segleft=0, addresses=[]) / \
        IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])
    ping6_ok(t, "an Echo Reply", ext=ext)


# --- options --------------------------------------------------------------------

def opt_test(t, hdr_cls, otype, dst=DUT6, expect_reply=False, expect_pp=False):
    i = t.rand_id()
    ext = hdr_cls(options=[opt_unknown(otype)])
    pkt = echo6(i, dst=dst, ext=ext)
    t.mark()
    t.send(pkt)
    if expect_reply:
        t.expect(is_echo_reply6(i), 1, "an Echo Reply (option skipped)")
    else:
        t.expect_none(is_echo_reply6(i), 1 if not expect_pp else 0.5, "no Echo Reply (packet discarded)")
    pp = icmp6_err(4, 2, 42, inner_pred=inner_echo6(i))
    if expect_pp:
        t.expect(pp, 1, "Parameter Problem code 2 pointer 42")
    elif not expect_reply:
        t.expect_none(lambda p: any_icmp6_err_from_dut()(p) and icmp6_body(p)[0] == 4, 0.3,
                      "no Parameter Problem")
    if not expect_reply:
        ping6_ok(t)


@conf_test("IPV6-3.1", "ipv6", "Hop-by-Hop: unknown option with action 00 is skipped",
           "RFC 8200 4.2 (00: skip over this option)", "MUST",
           ["HOST-1 sends an Echo Request with a Hop-by-Hop option of type 0x1e", "Listen for 1 s"],
           "An Echo Reply")
def ipv6_3_1(t):
    opt_test(t, IPv6ExtHdrHopByHop, 0x1e, expect_reply=True)


@conf_test("IPV6-3.2", "ipv6", "Hop-by-Hop: unknown option with action 01 discards silently",
           "RFC 8200 4.2 (01: discard the packet)", "MUST",
           ["HOST-1 sends an Echo Request with a Hop-by-Hop option of type 0x5e", "Listen for 1 s", "Control"],
           "No Echo Reply, no ICMPv6 error")
def ipv6_3_2(t):
    opt_test(t, IPv6ExtHdrHopByHop, 0x5e)


@conf_test("IPV6-3.3", "ipv6", "Hop-by-Hop: unknown option with action 10: Parameter Problem code 2",
           "RFC 8200 4.2 (10: discard, send Parameter Problem code 2 pointing at the option type)", "MUST",
           ["HOST-1 sends an Echo Request with a Hop-by-Hop option of type 0x9e", "Listen for 1 s"],
           "No Echo Reply; ICMPv6 Parameter Problem, code 2, pointer 42")
def ipv6_3_3(t):
    opt_test(t, IPv6ExtHdrHopByHop, 0x9e, expect_pp=True)


@conf_test("IPV6-3.4", "ipv6", "Hop-by-Hop: unknown option with action 11 (unicast): Parameter Problem code 2",
           "RFC 8200 4.2 (11: discard; Parameter Problem if the destination is not multicast)", "MUST",
           ["HOST-1 sends an Echo Request to 2001:db8::1 with a Hop-by-Hop option of type 0xde",
            "Listen for 1 s"], "No Echo Reply; Parameter Problem, code 2, pointer 42")
def ipv6_3_4(t):
    opt_test(t, IPv6ExtHdrHopByHop, 0xde, expect_pp=True)


@conf_test("IPV6-3.5", "ipv6", "Unknown option with action 11 to a multicast address: no ICMPv6 error",
           "RFC 8200 4.2 (11: only if the destination was not multicast)", "MUST NOT",
           ["HOST-1 sends an Echo Request to ff02::1 with a Destination option of type 0xde",
            "Listen for 1 s", "Control"], "No Echo Reply and no Parameter Problem")
def ipv6_3_5(t):
    opt_test(t, IPv6ExtHdrDestOpt, 0xde, dst=ALL_NODES)


@conf_test("IPV6-3.6", "ipv6", "Unknown option with action 10 to a multicast address: Parameter Problem anyway",
           "RFC 8200 4.2 (10: regardless of whether the destination was multicast); RFC 4443 2.4 (e.3)",
           "MUST",
           ["HOST-1 sends an Echo Request to ff02::1 with a Destination option of type 0x9e",
            "Listen for 1 s"], "No Echo Reply; Parameter Problem, code 2, pointer 42")
def ipv6_3_6(t):
    opt_test(t, IPv6ExtHdrDestOpt, 0x9e, dst=ALL_NODES, expect_pp=True)


@conf_test("IPV6-3.7", "ipv6", "Destination Options: unknown option with action 00 is skipped",
           "RFC 8200 4.2 / 4.6", "MUST",
           ["HOST-1 sends an Echo Request with a Destination option of type 0x1e", "Listen for 1 s"],
           "An Echo Reply")
def ipv6_3_7(t):
    opt_test(t, IPv6ExtHdrDestOpt, 0x1e, expect_reply=True)


@conf_test("IPV6-3.8", "ipv6", "Destination Options: unknown option with action 01 discards silently",
           "RFC 8200 4.2 / 4.6", "MUST",
           ["HOST-1 sends an Echo Request with a Destination option of type 0x5e", "Listen for 1 s", "Control"],
           "No Echo Reply, no error")
def ipv6_3_8(t):
    opt_test(t, IPv6ExtHdrDestOpt, 0x5e)


@conf_test("IPV6-3.9", "ipv6", "Destination Options: unknown option with action 10: Parameter Problem code 2",
           "RFC 8200 4.2 / 4.6", "MUST",
           ["HOST-1 sends an Echo Request with a Destination option of type 0x9e", "Listen for 1 s"],
           "Parameter Problem, code 2, pointer 42")
def ipv6_3_9(t):
    opt_test(t, IPv6ExtHdrDestOpt, 0x9e, expect_pp=True)


@conf_test("IPV6-3.10", "ipv6", "Destination Options: unknown option with action 11 (unicast): Parameter Problem",
           "RFC 8200 4.2 / 4.6", "MUST",
           ["HOST-1 sends an Echo Request with a Destination option of type 0xde", "Listen for 1 s"],
           "Parameter Problem, code 2, pointer 42")
def ipv6_3_10(t):
    opt_test(t, IPv6ExtHdrDestOpt, 0xde, expect_pp=True)


@conf_test("IPV6-3.11", "ipv6", "Pad1 and PadN options are skipped",
           "RFC 8200 4.2 (Pad1, PadN)", "MUST",
           ["HOST-1 sends an Echo Request with a Destination Options header holding Pad1, Pad1, "
            "PadN(2)", "Listen for 1 s"], "An Echo Reply")
def ipv6_3_11(t):
    ping6_ok(t, "an Echo Reply", ext=IPv6ExtHdrDestOpt(options=[Pad1(), Pad1(), PadN(optdata=b"\0\0")]))


# --- routing header --------------------------------------------------------------

@conf_test("IPV6-4.1", "ipv6", "Routing header type 0 with segments left: Parameter Problem code 0",
           "RFC 5095 3 (RH0 processed as an unrecognized routing type); RFC 8200 4.4", "MUST",
           ["HOST-1 sends an Echo Request with a type 0 Routing header, segments left 1, address "
            "2001:db8::2", "Listen for 1 s"],
           "No Echo Reply; ICMPv6 Parameter Problem code 0 pointing at the Routing Type (42)")
def ipv6_4_1(t):
    i = t.rand_id()
    ext = IPv6ExtHdrRouting(type=0, segleft=1, addresses=[H1_6])
    t.exchange(echo6(i, ext=ext), icmp6_err(4, 0, 42), 1, "Parameter Problem code 0 pointer 42")
    t.expect_none(is_echo_reply6(i), 0.2, "no Echo Reply")


@conf_test("IPV6-4.2", "ipv6", "Unknown routing type with segments left 0 is ignored",
           "RFC 8200 4.4 (Segments Left zero: ignore the header)", "MUST",
           ["HOST-1 sends an Echo Request with a Routing header of type 253, segments left 0",
            "Listen for 1 s"], "An Echo Reply")
def ipv6_4_2(t):
    ping6_ok(t, "an Echo Reply", ext=IPv6ExtHdrRouting(type=253, segleft=0, addresses=[H1_6]))


@conf_test("IPV6-4.3", "ipv6", "Routing header type 0 with segments left 0 is ignored",
           "RFC 5095 3; RFC 8200 4.4", "MUST",
           ["HOST-1 sends an Echo Request with a type 0 Routing header, segments left 0", "Listen for 1 s"],
           "An Echo Reply")
def ipv6_4_3(t):
    ping6_ok(t, "an Echo Reply", ext=IPv6ExtHdrRouting(type=0, segleft=0, addresses=[H1_6]))


@conf_test("IPV6-4.4", "ipv6", "Unknown routing type with segments left > 0: Parameter Problem code 0",
           "RFC 8200 4.4", "MUST",
           ["HOST-1 sends an Echo Request with a Routing header of type 253, segments left 1",
            "Listen for 1 s"], "Parameter Problem, code 0, pointer 42")
def ipv6_4_4(t):
    i = t.rand_id()
    ext = IPv6ExtHdrRouting(type=253, segleft=1, addresses=[H1_6])
    t.exchange(echo6(i, ext=ext), icmp6_err(4, 0, 42), 1, "Parameter Problem code 0 pointer 42")


# --- fragments ----------------------------------------------------------------------

def frag6_ping(t, size, n, order=None, dup=None, what="the reassembled Echo Reply"):
    i = t.rand_id()
    data = t.rand_payload(n)
    fid = t.rand_id(32)
    fr = frags6(echo6(i, payload=data), size, fid, order)
    if dup is not None:
        fr.insert(dup + 1, fr[dup])
    t.mark()
    t.send(fr)
    p = t.expect(lambda p: (IPv6ExtHdrFragment in p and p[IPv6].src == DUT6 and
                            p[IPv6ExtHdrFragment].offset == 0 and ICMPv6EchoReply in p and
                            p[ICMPv6EchoReply].id == i) or is_echo_reply6(i)(p), 2, what)
    got = reassemble6(t, p)
    t.check(got[8:] == data, f"echoed {len(got) - 8} octets differ from the {len(data)} sent")
    return p


def reassemble6(t, first):
    if IPv6ExtHdrFragment not in first:
        return bytes(first[IPv6].payload)
    fid = first[IPv6ExtHdrFragment].id
    fr = t.collect(lambda p: IPv6ExtHdrFragment in p and p[IPv6].src == DUT6 and
                   p[IPv6ExtHdrFragment].id == fid, 0.5, since=t.cursor)
    parts, total = {}, None
    for f in fr:
        fh = f[IPv6ExtHdrFragment]
        data = bytes(fh.payload)
        parts[fh.offset * 8] = data
        if not fh.m:
            total = fh.offset * 8 + len(data)
    if total is None:
        raise Fail("the DUT's reply fragments never ended (no M=0 fragment)")
    out = bytearray(total)
    for off, d in parts.items():
        out[off:off + len(d)] = d
    return bytes(out)


@conf_test("IPV6-5.1", "ipv6", "A packet in two fragments is reassembled",
           "RFC 8200 4.5", "MUST",
           ["HOST-1 sends a 1000-octet Echo Request in two fragments, in order", "Listen for 2 s"],
           "An Echo Reply with the same data")
def ipv6_5_1(t):
    frag6_ping(t, 504, 1000)


@conf_test("IPV6-5.2", "ipv6", "Fragments in reverse order are reassembled",
           "RFC 8200 4.5", "MUST",
           ["HOST-1 sends a 1000-octet Echo Request as 4 fragments, last first", "Listen for 2 s"],
           "An Echo Reply with the same data")
def ipv6_5_2(t):
    frag6_ping(t, 256, 1000, order=[3, 2, 1, 0])


@conf_test("IPV6-5.3", "ipv6", "Tiny fragments (8 octets) are reassembled",
           "RFC 8200 4.5", "MUST",
           ["HOST-1 sends a 56-octet Echo Request as 8 fragments of 8 octets", "Listen for 2 s"],
           "An Echo Reply with the same data")
def ipv6_5_3(t):
    frag6_ping(t, 8, 56)


@conf_test("IPV6-5.4", "ipv6", "Reassembly timeout with the first fragment: Time Exceeded code 1",
           "RFC 8200 4.5 (after 60 s: ICMP Time Exceeded, Fragment Reassembly Time Exceeded)", "SHOULD",
           ["Linux DUT: net.ipv6.ip6frag_time = 2 (the behaviour, not the 60 s constant); shunt: up to 65 s",
            "HOST-1 sends only the first fragment of an Echo Request", "Listen until the timeout + 3 s"],
           "ICMPv6 Time Exceeded, code 1, quoting the fragment", timeout=75)
def ipv6_5_4(t):
    wait = 5 if t.dut.sysctl("net.ipv6.ip6frag_time", 2) else 68
    fid = t.rand_id(32)
    fr = frags6(echo6(t.rand_id(), payload=b"x" * 200), 104, fid)
    t.mark()
    t.send(fr[0])
    t.expect(icmp6_err(3, 1, inner_pred=inner_frag_id6(fid)), wait, "Time Exceeded code 1")


@conf_test("IPV6-5.5", "ipv6", "Reassembly timeout without the first fragment: no ICMPv6 error",
           "RFC 8200 4.5 (Time Exceeded only if the first fragment was received)", "MUST NOT",
           ["Linux DUT: net.ipv6.ip6frag_time = 2; shunt: up to 65 s",
            "HOST-1 sends only the last fragment of an Echo Request", "Listen until the timeout + 3 s"],
           "No ICMPv6 error", timeout=75)
def ipv6_5_5(t):
    wait = 5 if t.dut.sysctl("net.ipv6.ip6frag_time", 2) else 68
    fid = t.rand_id(32)
    fr = frags6(echo6(t.rand_id(), payload=b"x" * 200), 104, fid)
    t.mark()
    t.send(fr[-1])
    t.expect_none(lambda p: any_icmp6_err_from_dut()(p) and
                  inner_frag_id6(fid)(IPv6(icmp6_body(p)[8:])), wait, "no ICMPv6 error")


@conf_test("IPV6-5.6", "ipv6", "A non-final fragment whose length is not a multiple of 8: Parameter Problem",
           "RFC 8200 4.5 (code 0, pointer to the Payload Length field)", "MUST",
           ["HOST-1 sends a fragment with M=1 carrying 13 octets", "Listen for 1 s"],
           "ICMPv6 Parameter Problem, code 0, pointer 4")
def ipv6_6_6(t):
    fid = t.rand_id(32)
    f = raw_frag6(IPv6(src=H1_6, dst=DUT6), 58, fid, 0, b"\x80\0\0\0\0\1\0\1abcde", 1)
    t.exchange(f, icmp6_err(4, 0, 4), 1, "Parameter Problem code 0 pointer 4")


@conf_test("IPV6-5.7", "ipv6", "A fragment that would make the packet exceed 65535 octets: Parameter Problem",
           "RFC 8200 4.5 (code 0, pointing at the Fragment Offset field)", "SHOULD",
           ["HOST-1 sends a fragment at offset 65528 with 16 octets (M=0)", "Listen for 1 s"],
           "ICMPv6 Parameter Problem, code 0, pointer 42")
def ipv6_5_7(t):
    fid = t.rand_id(32)
    f = raw_frag6(IPv6(src=H1_6, dst=DUT6), 58, fid, 65528, b"z" * 16, 0)
    t.exchange(f, icmp6_err(4, 0, 42), 1, "Parameter Problem code 0 pointer 42")


@conf_test("IPV6-5.8", "ipv6", "An atomic fragment is processed as a whole, at once",
           "RFC 6946 4 (offset 0, M=0: process in isolation)", "MUST",
           ["HOST-1 sends an Echo Request inside a Fragment header with offset 0 and M=0", "Listen for 1 s"],
           "An Echo Reply")
def ipv6_5_8(t):
    i = t.rand_id()
    f = raw_frag6(IPv6(src=H1_6, dst=DUT6), 58, t.rand_id(32), 0,
                  bytes(ICMPv6EchoRequest(id=i, seq=1, data=b"atomic", cksum=0)), 0)
    f = IPv6(bytes(f))       # checksum over the real pseudo header: rebuild the ICMPv6 part
    t.exchange(fix_icmp6(f), is_echo_reply6(i), 1, "an Echo Reply")


def fix_icmp6(f):
    """Recompute the ICMPv6 checksum inside a hand-built fragment."""
    from scapy.layers.inet6 import in6_chksum
    b = bytearray(bytes(f))
    off = 48
    b[off + 2:off + 4] = b"\0\0"
    ck = in6_chksum(58, IPv6(bytes(b)), bytes(b[off:]))
    b[off + 2:off + 4] = struct.pack("!H", ck)
    return IPv6(bytes(b))


@conf_test("IPV6-5.9", "ipv6", "An atomic fragment is not mixed with a pending queue of the same id",
           "RFC 6946 4 (even if fragments with the same id are pending)", "MUST",
           ["HOST-1 sends the first fragment (M=1) of Echo Request A with id X",
            "HOST-1 sends Echo Request B as an atomic fragment with the same id X",
            "HOST-1 sends the last fragment of A", "Listen for 2 s"],
           "Echo Replies to both A and B")
def ipv6_5_9(t):
    a, b = t.rand_id(), t.rand_id()
    fid = t.rand_id(32)
    fa = frags6(echo6(a, payload=b"y" * 200), 104, fid)
    fb = fix_icmp6(IPv6(bytes(raw_frag6(IPv6(src=H1_6, dst=DUT6), 58, fid, 0,
                                         bytes(ICMPv6EchoRequest(id=b, seq=1, data=b"atomic", cksum=0)), 0))))
    t.mark()
    t.send(fa[0], fb)
    t.expect(is_echo_reply6(b), 1, "the Echo Reply to the atomic fragment")
    t.send(fa[1])
    t.expect(is_echo_reply6(a), 1.5, "the Echo Reply to the fragmented request")


@conf_test("IPV6-5.10", "ipv6", "Fragments from different sources are not combined",
           "RFC 8200 4.5 (source, destination, identification)", "MUST",
           ["HOST-1 sends the first fragment, HOST-2 the second with the same id", "Listen for 1.5 s"],
           "No Echo Reply", topo="T2")
def ipv6_5_10(t):
    i = t.rand_id()
    fid = t.rand_id(32)
    f1 = frags6(echo6(i, payload=b"y" * 200), 104, fid)
    f2 = frags6(echo6(i, payload=b"y" * 200, src=H2_6), 104, fid)
    t.mark()
    t.send(f1[0], f2[1])
    t.expect_none(is_echo_reply6(i), 1.5, "no Echo Reply")


@conf_test("IPV6-5.11", "ipv6", "A first fragment without the whole header chain: Parameter Problem code 3",
           "RFC 7112 5; RFC 8200 4.5 (first fragment must hold all headers up to the upper layer)", "SHOULD",
           ["HOST-1 sends a first fragment (M=1) holding 16 octets of a 32-octet Destination Options header",
            "Listen for 1 s"], "ICMPv6 Parameter Problem, code 3 (and the fragment is dropped)")
def ipv6_5_11(t):
    fid = t.rand_id(32)
    dopt = bytes([58, 3]) + bytes([1, 28]) + b"\0" * 28     # 32 octets, next header ICMPv6
    f = raw_frag6(IPv6(src=H1_6, dst=DUT6), 60, fid, 0, dopt[:16], 1)
    t.exchange(f, icmp6_err(4, 3), 1, "Parameter Problem code 3")


@conf_test("IPV6-5.12", "ipv6", "The DUT fragments a reply larger than the link MTU correctly",
           "RFC 8200 4.5 / 5 (fragmentation by the source)", "MUST",
           ["HOST-1 sends a 3000-octet Echo Request in fragments", "Listen for 2 s"],
           "The Echo Reply in fragments of at most 1500 octets with one identification, offsets in "
           "units of 8, M=1 on all but the last, reassembling to the same data")
def ipv6_5_12(t):
    p = frag6_ping(t, 1448, 3000)
    t.check(IPv6ExtHdrFragment in p, "the reply was not fragmented")
    fid = p[IPv6ExtHdrFragment].id
    fr = t.collect(lambda q: IPv6ExtHdrFragment in q and q[IPv6].src == DUT6 and
                   q[IPv6ExtHdrFragment].id == fid, 0.3)
    t.check(len(fr) >= 3, f"{len(fr)} fragments")
    for f in fr:
        t.check(len(bytes(f[IPv6])) <= 1500, "fragment larger than the MTU")
        fh = f[IPv6ExtHdrFragment]
        if fh.m:
            t.check(len(bytes(fh.payload)) % 8 == 0, "non-final fragment not a multiple of 8")


@conf_test("IPV6-8.1", "ipv6", "A duplicated fragment does not prevent reassembly",
           "RFC 8200 4.5; RFC 5722 4 with erratum 3089 (exact duplicates are not overlaps and are "
           "ignored)", "SHOULD",
           ["HOST-1 sends a 1000-octet Echo Request in 4 fragments, the second sent twice",
            "Listen for 2 s"],
           "An Echo Reply (the seed's IPV6-8.1: failed by Linux under RFC 2460, correct under RFC 8200)")
def ipv6_8_1(t):
    frag6_ping(t, 256, 1000, dup=1)


@conf_test("IPV6-8.2", "ipv6", "Overlapping fragments: the whole packet is silently discarded",
           "RFC 5722 4 (MUST silently discard the datagram)", "MUST",
           ["HOST-1 sends fragment 0-47 (M=1) and fragment 24-71 (M=0) of one Echo Request",
            "Listen for 1.5 s", "Control"], "No Echo Reply and no ICMPv6 error")
def ipv6_8_2(t):
    i = t.rand_id()
    fid = t.rand_id(32)
    icmp = bytes(IPv6(bytes(echo6(i, payload=b"\0" * 64))).payload)   # 72 octets
    h = IPv6(src=H1_6, dst=DUT6)
    t.mark()
    t.send(raw_frag6(h, 58, fid, 0, icmp[:48], 1), raw_frag6(h, 58, fid, 24, icmp[24:], 0))
    t.expect_none(lambda p: is_echo_reply6(i)(p) or (any_icmp6_err_from_dut()(p) and
                  inner_frag_id6(fid)(IPv6(icmp6_body(p)[8:]))), 1.5, "nothing")
    ping6_ok(t)


@conf_test("IPV6-8.3", "ipv6", "Overlap then the missing piece: the datagram stays discarded",
           "RFC 5722 4 (the entire datagram, and constituent fragments, MUST be discarded)", "MUST",
           ["HOST-1 sends fragments 0-47 (M=1) and 40-55 (M=1, overlapping), then 48-71 (M=0)",
            "Listen for 1.5 s"], "No Echo Reply")
def ipv6_8_3(t):
    i = t.rand_id()
    fid = t.rand_id(32)
    icmp = bytes(IPv6(bytes(echo6(i, payload=b"\0" * 64))).payload)
    h = IPv6(src=H1_6, dst=DUT6)
    t.mark()
    t.send(raw_frag6(h, 58, fid, 0, icmp[:48], 1), raw_frag6(h, 58, fid, 40, icmp[40:56], 1),
           raw_frag6(h, 58, fid, 48, icmp[48:], 0))
    t.expect_none(is_echo_reply6(i), 1.5, "no Echo Reply")


@conf_test("IPV6-8.4", "ipv6", "A fragmented UDP datagram is reassembled and delivered",
           "RFC 8200 4.5", "MUST",
           ["HOST-1 sends a 1600-octet UDP datagram to port 7 in 3 fragments", "Listen for 2 s"],
           "The UDP echo of the data")
def ipv6_8_4(t):
    data = t.rand_payload(1600)
    sport = t.rand_port()
    fr = frags6(IPv6(src=H1_6, dst=DUT6) / UDP(sport=sport, dport=7) / Raw(data), 560, t.rand_id(32))
    t.mark()
    t.send(fr)
    p = t.expect(lambda p: IPv6 in p and p[IPv6].src == DUT6 and
                 ((UDP in p and p[UDP].dport == sport) or
                  (IPv6ExtHdrFragment in p and p[IPv6ExtHdrFragment].offset == 0 and UDP in p and
                   p[UDP].dport == sport)), 2, "the UDP echo")
    got = reassemble6(t, p)
    t.check(got[8:] == data, "echoed data differs")
