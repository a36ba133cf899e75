"""IPv4 and fragments (RFC 791, RFC 1122 3.2.1 / 3.3.2, RFC 1191, RFC 815)."""

import struct
import time

from lib.harness import conf_test, Ether, DUT4, DUT_MAC, H1_4, H1_MAC, H2_4, BCAST4, Fail
from lib.pk import (IP, ICMP, UDP, Raw, IPOption, echo4, is_echo_reply4, frag4, raw_frag4,
                    ip4_csum_ok, icmp4_err, any_icmp4_about)


def ping_ok(t, what="an Echo Reply (control)", **kw):
    i = t.rand_id()
    return t.exchange(echo4(i, **kw), is_echo_reply4(i), 1, what)


def raw_ip(t, mutate, ident, what, control=True):
    """Send an echo request whose raw IPv4 header bytes `mutate` changes;
    expect no reply, then prove the DUT alive."""
    b = bytearray(bytes(echo4(ident)))
    mutate(b)
    t.mark()
    t.send(Ether(src=H1_MAC, dst=DUT_MAC, type=0x0800) / Raw(bytes(b)))
    t.expect_none(is_echo_reply4(ident), 1, what)
    if control:
        ping_ok(t)


def fix_csum(b):
    from scapy.utils import checksum
    ihl = (b[0] & 15) * 4
    b[10:12] = b"\0\0"
    b[10:12] = struct.pack("!H", checksum(bytes(b[:max(ihl, 20)])))


@conf_test("IP-1.1", "ipv4", "An Echo Request is answered with a well-formed IPv4 datagram",
           "RFC 1122 3.2.1 / 3.2.2.6; RFC 791 3.1", "MUST",
           ["HOST-1 sends an ICMP Echo Request to 192.0.2.1", "Listen for 1 s"],
           "Echo Reply: version 4, IHL >= 5, source 192.0.2.1, destination 192.0.2.2, "
           "valid header checksum, TTL > 0, total length = frame payload")
def ip_1_1(t):
    p = ping_ok(t, "an Echo Reply")
    ip = p[IP]
    t.check(ip.version == 4 and ip.ihl >= 5, f"version {ip.version} ihl {ip.ihl}")
    t.check(ip.src == DUT4 and ip.dst == H1_4, f"{ip.src} -> {ip.dst}")
    t.check(ip4_csum_ok(p), "bad IPv4 header checksum")
    t.check(ip.ttl > 0, "TTL 0")


@conf_test("IP-1.2", "ipv4", "A datagram with a bad header checksum is silently discarded",
           "RFC 1122 3.2.1.2", "MUST",
           ["HOST-1 sends an Echo Request whose IPv4 header checksum is wrong", "Listen for 1 s",
            "Control: a valid Echo Request is answered"], "No Echo Reply")
def ip_1_2(t):
    def m(b):
        b[10] ^= 0x55
    raw_ip(t, m, t.rand_id(), "no reply to a bad header checksum")


@conf_test("IP-1.3", "ipv4", "A datagram with version 6 in an IPv4 frame is silently discarded",
           "RFC 1122 3.2.1.1", "MUST",
           ["HOST-1 sends an Echo Request in an 0x0800 frame with IP version 6 (checksum fixed)",
            "Listen for 1 s", "Control"], "No Echo Reply")
def ip_1_3(t):
    def m(b):
        b[0] = 0x65
        fix_csum(b)
    raw_ip(t, m, t.rand_id(), "no reply to version 6")


@conf_test("IP-1.4", "ipv4", "A datagram with version 5 is silently discarded",
           "RFC 1122 3.2.1.1", "MUST",
           ["HOST-1 sends an Echo Request with IP version 5", "Listen for 1 s", "Control"],
           "No Echo Reply")
def ip_1_4(t):
    def m(b):
        b[0] = 0x55
        fix_csum(b)
    raw_ip(t, m, t.rand_id(), "no reply to version 5")


@conf_test("IP-1.5", "ipv4", "A datagram with IHL < 5 is silently discarded",
           "RFC 791 3.1 (IHL minimum 5); RFC 1122 3.2.1", "MUST",
           ["HOST-1 sends an Echo Request with IHL 4", "Listen for 1 s", "Control"], "No Echo Reply")
def ip_1_5(t):
    def m(b):
        b[0] = 0x44
        fix_csum(b)
    raw_ip(t, m, t.rand_id(), "no reply to IHL 4")


@conf_test("IP-1.6", "ipv4", "A datagram whose IHL exceeds its total length is silently discarded",
           "RFC 791 3.1", "MUST",
           ["HOST-1 sends a 28-octet Echo Request datagram with IHL 15 (60 octets)", "Listen for 1 s",
            "Control"], "No Echo Reply")
def ip_1_6(t):
    i = t.rand_id()
    b = bytearray(bytes(IP(src=H1_4, dst=DUT4) / ICMP(type=8, id=i)))
    b[0] = 0x4f
    fix_csum(b)
    t.mark()
    t.send(Ether(src=H1_MAC, dst=DUT_MAC, type=0x0800) / Raw(bytes(b)))
    t.expect_none(is_echo_reply4(i), 1, "no reply")
    ping_ok(t)


@conf_test("IP-1.7", "ipv4", "A datagram whose total length exceeds the frame is silently discarded",
           "RFC 791 3.1 (Total Length); RFC 1122 3.2.1", "MUST",
           ["HOST-1 sends an Echo Request whose Total Length is 100 octets more than it carries",
            "Listen for 1 s", "Control"], "No Echo Reply")
def ip_1_7(t):
    def m(b):
        b[2:4] = struct.pack("!H", len(b) + 100)
        fix_csum(b)
    raw_ip(t, m, t.rand_id(), "no reply to a truncated datagram")


@conf_test("IP-1.8", "ipv4", "A datagram whose total length is below its header length is discarded",
           "RFC 791 3.1", "MUST",
           ["HOST-1 sends an Echo Request with Total Length 16 (IHL 5)", "Listen for 1 s", "Control"],
           "No Echo Reply")
def ip_1_8(t):
    def m(b):
        b[2:4] = struct.pack("!H", 16)
        fix_csum(b)
    raw_ip(t, m, t.rand_id(), "no reply to total length 16")


@conf_test("IP-1.9", "ipv4", "Link-layer padding after the datagram is ignored",
           "RFC 894; RFC 1122 3.2.1 (Total Length defines the datagram)", "MUST",
           ["HOST-1 sends an Echo Request (data 'conformance') followed by 20 octets of 0xff "
            "in the same frame", "Listen for 1 s"],
           "Echo Reply whose data is exactly the request's data")
def ip_1_9(t):
    i = t.rand_id()
    f = Ether(src=H1_MAC, dst=DUT_MAC) / echo4(i, payload=b"conformance")
    p = t.exchange(bytes(f) + b"\xff" * 20, is_echo_reply4(i), 1, "an Echo Reply")
    t.check(bytes(p[ICMP].payload)[:p[IP].len - 28] == b"conformance",
            f"echoed data {bytes(p[ICMP].payload)!r}")


@conf_test("IP-1.10", "ipv4", "A datagram for another address is not accepted (no forwarding, no reply)",
           "RFC 1122 3.2.1.3 / 3.3.4.1", "MUST",
           ["HOST-1 sends an Echo Request to 192.0.2.3 in a frame addressed to DUT-MAC",
            "Listen for 1 s", "Control"], "Nothing from the DUT about it: no reply, no forwarding")
def ip_1_10(t):
    i = t.rand_id()
    t.mark()
    t.send(echo4(i, dst=H2_4))
    t.expect_none(lambda p: (ICMP in p and (p[ICMP].id == i or p[ICMP].type != 0))
                  and p[Ether].src == DUT_MAC, 1, "nothing about a datagram for 192.0.2.3")
    ping_ok(t)


def martian(t, src=H1_4, dst=DUT4, what=""):
    i = t.rand_id()
    t.mark()
    t.send(echo4(i, src=src, dst=dst))
    t.expect_none(lambda p: ICMP in p and p[Ether].src == DUT_MAC and
                  (p[ICMP].id == i or p[ICMP].type in (3, 11, 12)), 1, what)
    ping_ok(t)


@conf_test("IP-1.11", "ipv4", "A datagram from the limited broadcast address is discarded",
           "RFC 1122 3.2.1.3 (source must identify a single host)", "MUST",
           ["HOST-1 sends an Echo Request from 255.255.255.255", "Listen for 1 s", "Control"],
           "No Echo Reply, no ICMP error")
def ip_1_11(t):
    martian(t, src="255.255.255.255", what="no reply to a broadcast source")


@conf_test("IP-1.12", "ipv4", "A datagram from a multicast source address is discarded",
           "RFC 1122 3.2.1.3", "MUST",
           ["HOST-1 sends an Echo Request from 224.0.0.5", "Listen for 1 s", "Control"],
           "No Echo Reply, no ICMP error")
def ip_1_12(t):
    martian(t, src="224.0.0.5", what="no reply to a multicast source")


@conf_test("IP-1.13", "ipv4", "A datagram from 0.0.0.0 to a unicast address is discarded",
           "RFC 1122 3.2.1.3 ({0,0} only as a source while learning its address)", "MUST",
           ["HOST-1 sends an Echo Request from 0.0.0.0 to 192.0.2.1", "Listen for 1 s", "Control"],
           "No Echo Reply")
def ip_1_13(t):
    martian(t, src="0.0.0.0", what="no reply to source 0.0.0.0")


@conf_test("IP-1.14", "ipv4", "A datagram from a loopback address arriving on the wire is discarded",
           "RFC 1122 3.2.1.3 ({127, any} MUST NOT appear outside a host)", "MUST",
           ["HOST-1 sends an Echo Request from 127.0.0.1", "Listen for 1 s", "Control"],
           "No Echo Reply")
def ip_1_14(t):
    martian(t, src="127.0.0.1", what="no reply to a loopback source")


@conf_test("IP-1.15", "ipv4", "A datagram to a loopback address arriving on the wire is discarded",
           "RFC 1122 3.2.1.3", "MUST",
           ["HOST-1 sends an Echo Request to 127.0.0.1 (frame to DUT-MAC)", "Listen for 1 s", "Control"],
           "No Echo Reply")
def ip_1_15(t):
    martian(t, dst="127.0.0.1", what="no reply to a loopback destination")


@conf_test("IP-1.16", "ipv4", "A host accepts a datagram with TTL 1",
           "RFC 1122 3.2.1.7 (MUST NOT discard a datagram just because TTL < 2)", "MUST",
           ["HOST-1 sends an Echo Request with TTL 1", "Listen for 1 s"], "An Echo Reply")
def ip_1_16(t):
    ping_ok(t, "an Echo Reply to a TTL 1 request", ttl=1)


@conf_test("IP-1.17", "ipv4", "The DUT sends with the recommended default TTL (64)",
           "RFC 1122 3.2.1.7 (TTL MUST NOT be 0, default fixed); IANA/RFC 1700 (64)", "SHOULD",
           ["HOST-1 sends an Echo Request with TTL 1", "Listen for 1 s"],
           "The Echo Reply has TTL 64 (not the request's TTL)")
def ip_1_17(t):
    p = ping_ok(t, "an Echo Reply", ttl=1)
    t.check(p[IP].ttl == 64, f"reply TTL {p[IP].ttl}")


@conf_test("IP-1.18", "ipv4", "The reserved flag bit set on a received datagram is ignored",
           "RFC 791 3.1 (bit 0 reserved); RFC 1122 1.2.2 (robustness)", "SHOULD",
           ["HOST-1 sends an Echo Request with the reserved flag (0x8000) set", "Listen for 1 s"],
           "An Echo Reply")
def ip_1_18(t):
    ping_ok(t, "an Echo Reply", flags=4)


@conf_test("IP-1.19", "ipv4", "An Echo Request with the DF flag set is answered",
           "RFC 791 3.1 (DF only restricts fragmentation)", "MUST",
           ["HOST-1 sends a 1000-octet Echo Request with DF", "Listen for 1 s"], "An Echo Reply")
def ip_1_19(t):
    i = t.rand_id()
    t.exchange(echo4(i, payload=b"d" * 1000, flags="DF"), is_echo_reply4(i), 1, "an Echo Reply")


# --- options ---------------------------------------------------------------


@conf_test("IP-2.1", "ipv4", "A Record Route option in an Echo Request is returned, with the DUT recorded",
           "RFC 1122 3.2.2.6 (Record Route in Echo Reply); RFC 791 3.1 (Record Route)", "SHOULD",
           ["HOST-1 sends an Echo Request with a Record Route option (room for 4 addresses)",
            "Listen for 1 s"],
           "The Echo Reply carries a Record Route option that includes 192.0.2.1")
def ip_2_1(t):
    i = t.rand_id()
    opt = IPOption(b"\x07\x13\x04" + b"\0" * 16 + b"\0")   # RR, len 19, ptr 4, + EOL
    p = t.exchange(echo4(i, options=[opt]), is_echo_reply4(i), 1, "an Echo Reply")
    hdr = bytes(p[IP])[20:p[IP].ihl * 4]
    t.check(len(hdr) > 0 and hdr[0] == 7, f"no Record Route option in the reply: {hdr.hex()}")
    addrs = [".".join(map(str, hdr[k:k + 4])) for k in range(3, hdr[1] - 3, 4)]
    t.check(DUT4 in addrs, f"recorded {addrs}, expected 192.0.2.1 among them")


@conf_test("IP-2.2", "ipv4", "A Timestamp option in an Echo Request is returned in the reply",
           "RFC 1122 3.2.2.6 (Timestamp in Echo Reply); RFC 791 3.1 (Internet Timestamp)", "SHOULD",
           ["HOST-1 sends an Echo Request with an Internet Timestamp option (flag 0, room for 4)",
            "Listen for 1 s"],
           "The Echo Reply carries a Timestamp option (type 68)")
def ip_2_2(t):
    i = t.rand_id()
    opt = IPOption(b"\x44\x14\x05\x00" + b"\0" * 16)
    p = t.exchange(echo4(i, options=[opt]), is_echo_reply4(i), 1, "an Echo Reply")
    hdr = bytes(p[IP])[20:p[IP].ihl * 4]
    t.check(len(hdr) > 0 and hdr[0] == 68, f"no Timestamp option in the reply: {hdr.hex()}")
    t.check(hdr[2] > 5, f"no timestamp recorded (pointer {hdr[2]})")


@conf_test("IP-2.3", "ipv4", "An unknown IP option is ignored",
           "RFC 1122 3.2.1.8 (silently ignore options not understood)", "MUST",
           ["HOST-1 sends an Echo Request with option type 0x1e, length 4", "Listen for 1 s"],
           "An Echo Reply")
def ip_2_3(t):
    ping_ok(t, "an Echo Reply", options=[IPOption(b"\x1e\x04\x00\x00")])


@conf_test("IP-2.4", "ipv4", "NOP options are skipped",
           "RFC 791 3.1 (No Operation)", "MUST",
           ["HOST-1 sends an Echo Request with four NOP options", "Listen for 1 s"], "An Echo Reply")
def ip_2_4(t):
    ping_ok(t, "an Echo Reply", options=[IPOption(b"\x01\x01\x01\x01")])


@conf_test("IP-2.5", "ipv4", "Bytes after End of Option List are ignored",
           "RFC 791 3.1 (End of Option List)", "MUST",
           ["HOST-1 sends an Echo Request whose options are EOL followed by 3 octets of 0x55",
            "Listen for 1 s"], "An Echo Reply")
def ip_2_5(t):
    ping_ok(t, "an Echo Reply", options=[IPOption(b"\x00\x55\x55\x55")])


@conf_test("IP-2.6", "ipv4", "An option whose length overruns the header is answered with Parameter Problem",
           "RFC 1122 3.2.2.5 (SHOULD send Parameter Problem); RFC 792 (pointer)", "SHOULD",
           ["HOST-1 sends an Echo Request with option 0x1e of length 40 in a 4-octet option field",
            "Listen for 1 s"],
           "ICMP Parameter Problem (type 12, code 0) pointing at octet 20, and no Echo Reply")
def ip_2_6(t):
    i = t.rand_id()
    ident = t.rand_id()
    t.mark()
    t.send(echo4(i, id=ident, options=[IPOption(b"\x1e\x28\x00\x00")]))
    p = t.expect(icmp4_err(12, 0, inner_id=ident), 1, "an ICMP Parameter Problem")
    ptr = bytes(p[ICMP])[4]
    t.check(ptr == 20, f"pointer {ptr}, expected 20 (the option's first octet)")
    t.expect_none(is_echo_reply4(i), 0.2, "no Echo Reply")


# --- fragments -----------------------------------------------------------------

def frag_ping(t, size, payload_len, order=None, dup=None, what="the reassembled Echo Reply"):
    i = t.rand_id()
    data = t.rand_payload(payload_len)
    fr = frag4(echo4(i, payload=data, id=t.rand_id()), size, order)
    if dup is not None:
        fr.insert(dup + 1, fr[dup])
    t.mark()
    t.send(fr)
    p = t.expect(is_echo_reply4(i), 2, what)
    # The reply may itself be fragmented: reassemble what the DUT sent.
    got = reassemble4(t, p)
    t.check(got[8:] == data, f"echoed {len(got) - 8} octets differ from the {len(data)} sent")
    return p


def reassemble4(t, first):
    """The ICMP message of `first`, reassembled from the DUT's fragments if needed."""
    ip = first[IP]
    if not (ip.flags.MF or ip.frag):
        return bytes(ip.payload)[:ip.len - ip.ihl * 4]
    ident = ip.id
    fr = t.collect(lambda p: IP in p and p[IP].src == DUT4 and p[IP].id == ident, 0.5,
                   since=t.cursor)
    parts = {}
    total = None
    for f in fr:
        f = f[IP]
        data = bytes(f.payload)[:f.len - f.ihl * 4]
        parts[f.frag * 8] = data
        if not f.flags.MF:
            total = f.frag * 8 + len(data)
    if total is None:
        raise Fail("the DUT's reply fragments never ended (no MF=0 fragment)")
    out = bytearray(total)
    covered = 0
    for off in sorted(parts):
        out[off:off + len(parts[off])] = parts[off]
        covered += len(parts[off])
    if covered < total:
        raise Fail("the DUT's reply fragments leave a gap")
    return bytes(out)


@conf_test("IP-7.1", "ipv4", "A datagram in two fragments is reassembled",
           "RFC 791 3.2 (reassembly); RFC 1122 3.3.2", "MUST",
           ["HOST-1 sends a 1000-octet Echo Request in two fragments (504 + 504 octets), in order",
            "Listen for 2 s"], "An Echo Reply carrying the same 1000 data octets")
def ip_7_1(t):
    frag_ping(t, 504, 1000)


@conf_test("IP-7.2", "ipv4", "Fragments arriving in reverse order are reassembled",
           "RFC 791 3.2; RFC 1122 3.3.2", "MUST",
           ["HOST-1 sends a 1000-octet Echo Request as 4 fragments, last first", "Listen for 2 s"],
           "An Echo Reply carrying the same data")
def ip_7_2(t):
    frag_ping(t, 256, 1000, order=[3, 2, 1, 0])


@conf_test("IP-7.3", "ipv4", "Fragments in shuffled order are reassembled",
           "RFC 791 3.2; RFC 1122 3.3.2", "MUST",
           ["HOST-1 sends a 1200-octet Echo Request as 5 fragments in the order 2,0,4,1,3",
            "Listen for 2 s"], "An Echo Reply carrying the same data")
def ip_7_3(t):
    frag_ping(t, 248, 1200, order=[2, 0, 4, 1, 3])


@conf_test("IP-7.4", "ipv4", "Tiny fragments (8 data octets each) are reassembled",
           "RFC 791 3.2 (fragments are multiples of 8 octets); RFC 815", "MUST",
           ["HOST-1 sends a 96-octet Echo Request as 13 fragments of 8 octets", "Listen for 2 s"],
           "An Echo Reply carrying the same data")
def ip_7_4(t):
    frag_ping(t, 8, 96)


@conf_test("IP-7.5", "ipv4", "A duplicated fragment does not prevent reassembly",
           "RFC 791 3.2 (duplicates are expected on the Internet); RFC 815", "MUST",
           ["HOST-1 sends a 1000-octet Echo Request in 4 fragments, the second sent twice",
            "Listen for 2 s"], "An Echo Reply carrying the same data")
def ip_7_5(t):
    frag_ping(t, 256, 1000, dup=1)


@conf_test("IP-7.6", "ipv4", "Overlapping fragments never produce inconsistent data",
           "RFC 791 3.2; RFC 1858 / RFC 3128 (overlap attacks); RFC 5722 (the IPv6 rule)", "MUST",
           ["HOST-1 sends fragment 0-47 (data A) with MF, then fragment 24-71 (data B) without MF "
            "for one 72-octet Echo Request", "Listen for 1.5 s", "Control: a normal Echo Request is answered"],
           "Either no Echo Reply (the datagram is discarded, as Linux does) or a reply whose data is "
           "consistent (all of one copy over the overlap); the DUT keeps working",
           note="RFC 791 lets later data win; Linux discards the whole datagram on overlap (as RFC "
                "5722 requires for IPv6). Both pass; a mix of copies fails.")
def ip_7_6(t):
    i = t.rand_id()
    ident = t.rand_id()
    full = IP(bytes(echo4(i, payload=b"\0" * 64, id=ident)))
    icmp = bytes(full.payload)     # 72 octets
    a = icmp[:48]
    b = bytearray(icmp[24:])
    b[0:24] = b"B" * 24            # overlapping part differs
    t.mark()
    t.send(raw_frag4(full, 0, a, True), raw_frag4(full, 24, bytes(b), False))
    p = t.wait_for(is_echo_reply4(i), 1.5)
    if p is not None:
        data = bytes(p[ICMP].payload)
        t.check(data[16:40] in (icmp[24:48], b"B" * 24),
                "the reply mixes data from both overlapping copies")
    ping_ok(t)


@conf_test("IP-7.7", "ipv4", "Reassembly timeout with fragment zero: ICMP Time Exceeded code 1",
           "RFC 1122 3.3.2 (SHOULD send Time Exceeded when fragment zero was received); RFC 792", "SHOULD",
           ["Linux DUT: net.ipv4.ipfrag_time = 2 (the test is about the behaviour, not the 30 s "
            "constant); shunt DUT: its own timer, up to 65 s",
            "HOST-1 sends only the first fragment (MF, offset 0) of an Echo Request",
            "Listen until the timeout + 3 s"],
           "ICMP Time Exceeded, code 1 (fragment reassembly time exceeded), quoting the fragment's header",
           timeout=75)
def ip_7_7(t):
    wait = 5 if t.dut.sysctl("net.ipv4.ipfrag_time", 2) else 68
    ident = t.rand_id()
    fr = frag4(echo4(t.rand_id(), payload=b"x" * 200, id=ident), 104)
    t.mark()
    t.send(fr[0])
    p = t.expect(icmp4_err(11, None, inner_id=ident), wait, "ICMP Time Exceeded")
    t.check(p[ICMP].code == 1, f"code {p[ICMP].code}, expected 1 (fragment reassembly)")


@conf_test("IP-7.8", "ipv4", "Reassembly timeout without fragment zero: no ICMP message",
           "RFC 792 (Time Exceeded: if fragment zero is not available no message need be sent); "
           "RFC 1122 3.3.2", "SHOULD NOT",
           ["Linux DUT: net.ipv4.ipfrag_time = 2; shunt: up to 65 s",
            "HOST-1 sends only the last fragment of an Echo Request", "Listen until the timeout + 3 s"],
           "No ICMP message about it", timeout=75)
def ip_7_8(t):
    wait = 5 if t.dut.sysctl("net.ipv4.ipfrag_time", 2) else 68
    ident = t.rand_id()
    fr = frag4(echo4(t.rand_id(), payload=b"x" * 200, id=ident), 104)
    t.mark()
    t.send(fr[-1])
    t.expect_none(any_icmp4_about(ident), wait, "no ICMP error")


@conf_test("IP-7.9", "ipv4", "Fragments with different Identification values are not combined",
           "RFC 791 3.2 (a datagram is identified by source, destination, protocol, id)", "MUST",
           ["HOST-1 sends the first fragment of an Echo Request with id A and the second with id B",
            "Listen for 1.5 s"], "No Echo Reply")
def ip_7_9(t):
    i = t.rand_id()
    a = t.rand_id()
    fa = frag4(echo4(i, payload=b"x" * 200, id=a), 104)
    fb = frag4(echo4(i, payload=b"x" * 200, id=(a + 1) & 0xffff), 104)
    t.mark()
    t.send(fa[0], fb[1])
    t.expect_none(is_echo_reply4(i), 1.5, "no Echo Reply from mismatched fragments")


@conf_test("IP-7.10", "ipv4", "Fragments with different protocol fields are not combined",
           "RFC 791 3.2", "MUST",
           ["HOST-1 sends the first fragment of an Echo Request (protocol 1) and the second with "
            "the same id but protocol 17", "Listen for 1.5 s"], "No Echo Reply")
def ip_7_10(t):
    i = t.rand_id()
    a = t.rand_id()
    fr = frag4(echo4(i, payload=b"x" * 200, id=a), 104)
    second = fr[1].copy()
    second.proto = 17
    second.chksum = None
    t.mark()
    t.send(fr[0], IP(bytes(second)))
    t.expect_none(is_echo_reply4(i), 1.5, "no Echo Reply")


@conf_test("IP-7.11", "ipv4", "Fragments from different sources are not combined",
           "RFC 791 3.2", "MUST",
           ["HOST-1 sends the first fragment of an Echo Request; HOST-2 sends the second with the "
            "same id", "Listen for 1.5 s"], "No Echo Reply", topo="T2")
def ip_7_11(t):
    i = t.rand_id()
    a = t.rand_id()
    f1 = frag4(echo4(i, payload=b"x" * 200, id=a), 104)
    f2 = frag4(echo4(i, payload=b"x" * 200, id=a, src=H2_4), 104)
    t.mark()
    t.send(f1[0], f2[1])
    t.expect_none(is_echo_reply4(i), 1.5, "no Echo Reply")


@conf_test("IP-7.12", "ipv4", "A fragmented UDP datagram is reassembled and delivered",
           "RFC 791 3.2; RFC 1122 3.3.2", "MUST",
           ["HOST-1 sends a 1800-octet UDP datagram to port 7 (echo) in 3 fragments", "Listen for 2 s"],
           "The UDP echo of the 1800 octets (fragmented by the DUT as needed)")
def ip_7_12(t):
    data = t.rand_payload(1800)
    sport = t.rand_port()
    fr = frag4(IP(src=H1_4, dst=DUT4, id=t.rand_id()) / UDP(sport=sport, dport=7) / Raw(data), 616)
    t.mark()
    t.send(fr)
    p = t.expect(lambda p: IP in p and p[IP].src == DUT4 and p[IP].frag == 0 and UDP in p and
                 p[UDP].dport == sport, 2, "the UDP echo")
    got = reassemble4(t, p)
    t.check(got[8:] == data, "echoed data differs")


@conf_test("IP-7.13", "ipv4", "The DUT fragments a datagram larger than the MTU correctly",
           "RFC 791 3.2 (fragmentation); RFC 1122 3.3.3", "MUST",
           ["HOST-1 sends a 4000-octet Echo Request in fragments", "Listen for 2 s"],
           "The Echo Reply in fragments: each at most 1500 octets, offsets multiples of 8, MF on all "
           "but the last, one Identification, reassembling to the request's data")
def ip_7_13(t):
    p = frag_ping(t, 1480, 4000)
    fr = t.collect(lambda q: IP in q and q[IP].src == DUT4 and q[IP].id == p[IP].id, 0.3)
    t.check(len(fr) >= 3, f"{len(fr)} fragment(s), expected at least 3")
    for f in fr:
        t.check(f[IP].len <= 1500, f"fragment of {f[IP].len} octets")
        last = f[IP].frag * 8 + f[IP].len - f[IP].ihl * 4 == 4008
        t.check(bool(f[IP].flags.MF) != last, "MF wrong")
        if not last:
            t.check((f[IP].len - f[IP].ihl * 4) % 8 == 0, "a non-final fragment's data is not a multiple of 8")


@conf_test("IP-7.14", "ipv4", "A reassembled datagram longer than 65535 octets is discarded",
           "RFC 791 3.1 (Total Length max 65535)", "MUST",
           ["HOST-1 sends fragments of one Echo Request: offset 0 (MF) and a final fragment at "
            "offset 65528 carrying 100 octets", "Listen for 1.5 s", "Control"],
           "No Echo Reply; the DUT keeps answering")
def ip_7_14(t):
    i = t.rand_id()
    ident = t.rand_id()
    full = IP(bytes(echo4(i, payload=b"\0" * 64, id=ident)))
    icmp = bytes(full.payload)
    t.mark()
    t.send(raw_frag4(full, 0, icmp[:64], True), raw_frag4(full, 65528, b"p" * 100, False))
    t.expect_none(is_echo_reply4(i), 1.5, "no Echo Reply")
    ping_ok(t)


@conf_test("IP-7.15", "ipv4", "A fragmented Echo Request with DF on the reply path: DF in a fragment is ignored",
           "RFC 791 3.1 (DF only forbids further fragmentation)", "MUST",
           ["HOST-1 sends a 600-octet Echo Request in 2 fragments, both with DF as well as the "
            "fragment fields", "Listen for 2 s"], "An Echo Reply with the same data")
def ip_7_15(t):
    i = t.rand_id()
    data = t.rand_payload(600)
    fr = frag4(echo4(i, payload=data, id=t.rand_id()), 304)
    out = []
    for f in fr:
        g = f.copy()
        g.flags = int(g.flags) | 2
        g.chksum = None
        out.append(IP(bytes(g)))
    t.mark()
    t.send(out)
    t.expect(is_echo_reply4(i), 2, "an Echo Reply")
