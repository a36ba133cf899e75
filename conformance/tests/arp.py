"""ARP (RFC 826, RFC 1122 2.3.2, RFC 5227)."""

import time

from lib.harness import (conf_test, ARP, Ether, DUT4, DUT_MAC, H1_4, H1_MAC, H2_4, H2_MAC,
                         X_MAC, UNUSED4)
from lib.pk import echo4, is_echo_reply4, IP, ICMP

BC = "ff:ff:ff:ff:ff:ff"


def req(pdst=DUT4, hwsrc=H1_MAC, psrc=H1_4, esrc=None, edst=BC, **kw):
    return Ether(src=esrc or hwsrc, dst=edst) / ARP(op=1, hwsrc=hwsrc, psrc=psrc, pdst=pdst, **kw)


def is_reply(to_ip=H1_4):
    return lambda p: ARP in p and p[ARP].op == 2 and p[ARP].psrc == DUT4 and p[ARP].pdst == to_ip


def any_arp_from_dut(p):
    return ARP in p and p[ARP].hwsrc == DUT_MAC


def is_request_for(ip):
    return lambda p: ARP in p and p[ARP].op == 1 and p[ARP].pdst == ip and p[Ether].src == DUT_MAC


def arp_control(t):
    """Positive control after a silent-discard test: a valid request is answered."""
    t.mark()
    t.send(req())
    t.expect(is_reply(), 1, "an ARP reply to a valid request (control)")


@conf_test("ARP-1.1", "arp", "The DUT answers an ARP request for its address",
           "RFC 826 'Packet Reception'", "MUST",
           ["HOST-1 broadcasts an ARP request: sender 192.0.2.2/HOST-1-MAC, target 192.0.2.1",
            "Listen for 1 s"],
           "An ARP reply: op 2, sender 192.0.2.1/DUT-MAC, target 192.0.2.2/HOST-1-MAC")
def arp_1_1(t):
    t.no_resolve()
    p = t.exchange(req(), is_reply(), 1, "an ARP reply")
    a = p[ARP]
    t.check(a.hwsrc == DUT_MAC, f"sender hardware address {a.hwsrc}, expected the DUT's {DUT_MAC}")
    t.check(a.hwdst == H1_MAC, f"target hardware address {a.hwdst}, expected {H1_MAC}")


@conf_test("ARP-1.2", "arp", "The ARP reply has the Ethernet/IPv4 format and is unicast to the requester",
           "RFC 826 'Packet format'; RFC 1122 2.3.2.1", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.1", "Listen for 1 s"],
           "Reply in an Ethernet frame of type 0x0806 from DUT-MAC to HOST-1-MAC; ar$hrd 1, "
           "ar$pro 0x0800, ar$hln 6, ar$pln 4")
def arp_1_2(t):
    t.no_resolve()
    p = t.exchange(req(), is_reply(), 1, "an ARP reply")
    e, a = p[Ether], p[ARP]
    t.check(e.type == 0x0806, f"ethertype {e.type:#x}")
    t.check(e.dst == H1_MAC and e.src == DUT_MAC, f"frame {e.src} -> {e.dst}, expected unicast DUT -> HOST-1")
    t.check((a.hwtype, a.ptype, a.hwlen, a.plen) == (1, 0x0800, 6, 4),
            f"hrd/pro/hln/pln {a.hwtype}/{a.ptype:#x}/{a.hwlen}/{a.plen}")


@conf_test("ARP-1.3", "arp", "A unicast ARP request (to the DUT's MAC) is answered",
           "RFC 1122 2.3.2.1 (unicast poll)", "MUST",
           ["HOST-1 sends an ARP request for 192.0.2.1 to DUT-MAC (not broadcast)", "Listen for 1 s"],
           "An ARP reply to HOST-1")
def arp_1_3(t):
    t.no_resolve()
    t.exchange(req(edst=DUT_MAC), is_reply(), 1, "an ARP reply to a unicast request")


@conf_test("ARP-1.4", "arp", "A request padded to the Ethernet minimum (60 octets) is answered",
           "RFC 826; RFC 894 (padding)", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.1 with 18 octets of zero padding",
            "Listen for 1 s"], "An ARP reply")
def arp_1_4(t):
    t.no_resolve()
    f = bytes(req())
    t.exchange(f + b"\0" * (60 - len(f)), is_reply(), 1, "an ARP reply")


@conf_test("ARP-1.5", "arp", "The reply goes to the request's sender hardware address, not the frame's source",
           "RFC 826 'Packet Reception' (swap fields, send to the new target hardware address)", "MUST",
           ["HOST-1 sends an ARP request for 192.0.2.1 in a frame from HOST-1-MAC whose sender "
            "hardware address is 02:00:00:00:00:0a", "Listen for 1 s"],
           "An ARP reply with target hardware address 02:00:00:00:00:0a, sent to 02:00:00:00:00:0a")
def arp_1_5(t):
    t.no_resolve()
    p = t.exchange(req(hwsrc=X_MAC, esrc=H1_MAC), is_reply(), 1, "an ARP reply")
    t.check(p[ARP].hwdst == X_MAC, f"target hardware address {p[ARP].hwdst}, expected {X_MAC}")
    t.check(p[Ether].dst == X_MAC, f"frame sent to {p[Ether].dst}, expected {X_MAC}")


def silent(t, frame, what):
    t.no_resolve()
    t.mark()
    t.send(frame)
    t.expect_none(lambda p: ARP in p and p[ARP].op == 2 and p[ARP].psrc == DUT4, 1, what)
    arp_control(t)


@conf_test("ARP-3.2", "arp", "No reply to a request with an unknown hardware type",
           "RFC 826 'Packet Reception' (?Do I have the hardware type in ar$hrd?)", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.1 with ar$hrd 0x1234 (unknown)",
            "Listen for 1 s", "Control: a valid request is answered"],
           "No ARP reply (the seed's ARP 3.2; failed by Seastar, mTCP, rump)")
def arp_3_2(t):
    silent(t, req(hwtype=0x1234), "no reply for an unknown hardware type")


@conf_test("ARP-3.3", "arp", "No reply to a request with an unknown protocol type",
           "RFC 826 'Packet Reception' (?Do I speak the protocol in ar$pro?)", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.1 with ar$pro 0x86dd", "Listen for 1 s",
            "Control: a valid request is answered"], "No ARP reply")
def arp_3_3(t):
    silent(t, req(ptype=0x86dd), "no reply for protocol type 0x86dd")


@conf_test("ARP-3.4", "arp", "No reply to a request whose hardware address length is not 6",
           "RFC 826 'Packet format' (ar$hln)", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.1 with ar$hln 8", "Listen for 1 s",
            "Control: a valid request is answered"], "No ARP reply")
def arp_3_4(t):
    a = bytearray(bytes(req()))
    a[14 + 4] = 8
    silent(t, bytes(a), "no reply for ar$hln 8")


@conf_test("ARP-3.5", "arp", "No reply to a request whose protocol address length is not 4",
           "RFC 826 'Packet format' (ar$pln)", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.1 with ar$pln 16", "Listen for 1 s",
            "Control: a valid request is answered"], "No ARP reply")
def arp_3_5(t):
    a = bytearray(bytes(req()))
    a[14 + 5] = 16
    silent(t, bytes(a), "no reply for ar$pln 16")


@conf_test("ARP-3.6", "arp", "No reply to a request for another host's address",
           "RFC 826 'Packet Reception' (?Am I the target protocol address?)", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.3 (not the DUT)", "Listen for 1 s",
            "Control: a valid request is answered"], "No ARP reply from the DUT")
def arp_3_6(t):
    t.no_resolve()
    t.mark()
    t.send(req(pdst=H2_4))
    t.expect_none(lambda p: ARP in p and p[ARP].op == 2 and p[ARP].hwsrc == DUT_MAC, 1,
                  "no ARP reply for 192.0.2.3")
    arp_control(t)


@conf_test("ARP-3.7", "arp", "No reply to an ARP packet with an unknown opcode",
           "RFC 826 'Packet Reception' (?Is the opcode ares_op$REQUEST?)", "MUST",
           ["HOST-1 broadcasts an ARP packet for 192.0.2.1 with ar$op 5", "Listen for 1 s",
            "Control: a valid request is answered"], "No ARP reply")
def arp_3_7(t):
    f = req()
    f[ARP].op = 5
    silent(t, f, "no reply for opcode 5")


@conf_test("ARP-3.8", "arp", "No reply to a request for a multicast target address",
           "RFC 1122 2.3.2.1; RFC 826", "MUST",
           ["HOST-1 broadcasts an ARP request for 224.0.0.1", "Listen for 1 s",
            "Control: a valid request is answered"], "No ARP reply from the DUT")
def arp_3_8(t):
    t.no_resolve()
    t.mark()
    t.send(req(pdst="224.0.0.1"))
    t.expect_none(lambda p: ARP in p and p[ARP].op == 2 and p[ARP].hwsrc == DUT_MAC, 1,
                  "no ARP reply for 224.0.0.1")
    arp_control(t)


def ping_from(t, src_ip, ident):
    return echo4(ident, src=src_ip)


@conf_test("ARP-4.1", "arp", "A request for the DUT's address enters the sender into the cache",
           "RFC 826 'Packet Reception' (Am I the target? add the triplet)", "MUST",
           ["HOST-2 broadcasts an ARP request for 192.0.2.1 (sender 192.0.2.3/HOST-2-MAC)",
            "HOST-2 sends an ICMP Echo Request to 192.0.2.1 (HOST-2 answers no ARP)",
            "Listen for 1 s"],
           "The Echo Reply goes to HOST-2-MAC and the DUT sends no ARP request for 192.0.2.3",
           topo="T2")
def arp_4_1(t):
    t.no_resolve()
    t.exchange(req(hwsrc=H2_MAC, psrc=H2_4), is_reply(H2_4), 1, "an ARP reply to HOST-2")
    i = t.rand_id()
    t.mark()
    t.send(Ether(src=H2_MAC, dst=DUT_MAC) / echo4(i, src=H2_4))
    p = t.expect(is_echo_reply4(i), 1, "an Echo Reply")
    t.check(p[Ether].dst == H2_MAC, f"reply sent to {p[Ether].dst}, expected {H2_MAC}")
    t.expect_none(is_request_for(H2_4), 0.2, "no ARP request for 192.0.2.3")


@conf_test("ARP-4.2", "arp", "A request for the DUT's address from a known host updates its cache entry",
           "RFC 826 'Packet Reception' (merge_flag: update the sender hardware address)", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.1 from HOST-1-MAC",
            "HOST-1 broadcasts an ARP request for 192.0.2.1 with sender hardware address 02:00:00:00:00:0a",
            "HOST-1 sends an Echo Request to the DUT", "Listen for 1 s"],
           "The Echo Reply goes to 02:00:00:00:00:0a")
def arp_4_2(t):
    t.no_resolve()
    t.exchange(req(), is_reply(), 1, "an ARP reply")
    t.exchange(req(hwsrc=X_MAC, esrc=X_MAC), is_reply(), 1, "an ARP reply to the new address")
    i = t.rand_id()
    p = t.exchange(Ether(src=X_MAC, dst=DUT_MAC) / echo4(i), is_echo_reply4(i), 1, "an Echo Reply")
    t.check(p[Ether].dst == X_MAC, f"reply sent to {p[Ether].dst}, expected the new address {X_MAC}")


@conf_test("ARP-4.3", "arp", "A gratuitous ARP request updates an existing cache entry",
           "RFC 826 'Packet Reception' (merge_flag); RFC 5227 3 (ARP Announcement)", "MUST",
           ["HOST-1 broadcasts an ARP request for 192.0.2.1 (DUT caches HOST-1-MAC)",
            "HOST-1 broadcasts a gratuitous ARP request: sender = target = 192.0.2.2, sender "
            "hardware address 02:00:00:00:00:0a",
            "HOST-1 sends an Echo Request to the DUT", "Listen for 1 s"],
           "The Echo Reply goes to 02:00:00:00:00:0a")
def arp_4_3(t):
    t.no_resolve()
    t.exchange(req(), is_reply(), 1, "an ARP reply")
    t.send(req(hwsrc=X_MAC, esrc=X_MAC, pdst=H1_4))
    time.sleep(0.1)
    i = t.rand_id()
    p = t.exchange(Ether(src=X_MAC, dst=DUT_MAC) / echo4(i), is_echo_reply4(i), 1, "an Echo Reply")
    t.check(p[Ether].dst == X_MAC, f"reply sent to {p[Ether].dst}, expected {X_MAC}")


@conf_test("ARP-4.4", "arp", "A gratuitous ARP from an unknown host does not create a cache entry",
           "RFC 826 'Packet Reception' (add the triplet only if I am the target)", "SHOULD",
           ["HOST-2 broadcasts a gratuitous ARP request (sender = target = 192.0.2.3)",
            "HOST-2 sends an Echo Request to the DUT", "Listen for 1 s"],
           "The DUT broadcasts an ARP request for 192.0.2.3 before it can reply", topo="T2")
def arp_4_4(t):
    t.no_resolve()
    t.send(req(hwsrc=H2_MAC, psrc=H2_4, pdst=H2_4))
    time.sleep(0.1)
    t.mark()
    t.send(Ether(src=H2_MAC, dst=DUT_MAC) / echo4(t.rand_id(), src=H2_4))
    t.expect(is_request_for(H2_4), 1.5, "an ARP request for 192.0.2.3 (not learned from the GARP)")


@conf_test("ARP-5.1", "arp", "The DUT's ARP request has the right format",
           "RFC 826 'Packet Generation'; RFC 1122 2.3.2.1", "MUST",
           ["HOST-2 sends an Echo Request to 192.0.2.1 (the DUT has no entry for 192.0.2.3)",
            "Listen for 1.5 s"],
           "A broadcast ARP request: frame from DUT-MAC to ff:ff:ff:ff:ff:ff, type 0x0806, op 1, "
           "hrd 1, pro 0x0800, hln 6, pln 4, sender 192.0.2.1/DUT-MAC, target 192.0.2.3",
           topo="T2")
def arp_5_1(t):
    t.no_resolve()
    t.mark()
    t.send(Ether(src=H2_MAC, dst=DUT_MAC) / echo4(t.rand_id(), src=H2_4))
    p = t.expect(is_request_for(H2_4), 1.5, "an ARP request for 192.0.2.3")
    e, a = p[Ether], p[ARP]
    t.check(e.dst == "ff:ff:ff:ff:ff:ff", f"request sent to {e.dst}, expected broadcast")
    t.check((a.hwtype, a.ptype, a.hwlen, a.plen) == (1, 0x0800, 6, 4),
            f"hrd/pro/hln/pln {a.hwtype}/{a.ptype:#x}/{a.hwlen}/{a.plen}")
    t.check(a.hwsrc == DUT_MAC and a.psrc == DUT4, f"sender {a.psrc}/{a.hwsrc}")


@conf_test("ARP-5.2", "arp", "The packet waiting for resolution is sent once the reply arrives",
           "RFC 1122 2.3.2.2 (save at least one packet)", "SHOULD",
           ["HOST-2 sends an Echo Request to 192.0.2.1", "HOST-2 answers the DUT's ARP request "
            "with 02:00:00:00:00:03", "Listen for 1.5 s"],
           "The Echo Reply is sent to 02:00:00:00:00:03", topo="T2")
def arp_5_2(t):
    t.no_resolve()
    t.resolve[H2_4] = H2_MAC
    i = t.rand_id()
    t.mark()
    t.send(Ether(src=H2_MAC, dst=DUT_MAC) / echo4(i, src=H2_4))
    p = t.expect(is_echo_reply4(i), 1.5, "the Echo Reply after resolution")
    t.check(p[Ether].dst == H2_MAC, f"reply sent to {p[Ether].dst}")


@conf_test("ARP-5.3", "arp", "A resolved address is cached: no new request for the next packet",
           "RFC 1122 2.3.2.1 (ARP cache)", "MUST",
           ["HOST-2 sends an Echo Request; HOST-2 answers the DUT's ARP request",
            "HOST-2 sends a second Echo Request; HOST-2 answers no more ARP", "Listen for 1 s"],
           "The second Echo Reply is sent without a new ARP request", topo="T2")
def arp_5_3(t):
    t.no_resolve()
    t.resolve[H2_4] = H2_MAC
    i = t.rand_id()
    t.exchange(Ether(src=H2_MAC, dst=DUT_MAC) / echo4(i, src=H2_4), is_echo_reply4(i), 1.5,
               "the first Echo Reply")
    t.no_resolve()
    t.mark()
    t.send(Ether(src=H2_MAC, dst=DUT_MAC) / echo4(i, seq=2, src=H2_4))
    t.expect(is_echo_reply4(i, 2), 1, "the second Echo Reply")
    t.expect_none(is_request_for(H2_4), 0.1, "no second ARP request")


@conf_test("ARP-5.4", "arp", "Unanswered ARP requests are retransmitted no more than once per second",
           "RFC 1122 2.3.2.1 (prevent ARP flooding)", "SHOULD",
           ["HOST-1 sends an Echo Request from 192.0.2.99 (nobody answers ARP for it)",
            "Listen for 3.5 s"],
           "ARP requests for 192.0.2.99, at least 2, at least 0.8 s apart, at most 5",
           timeout=12)
def arp_5_4(t):
    t.no_resolve()
    t.mark()
    t.send(echo4(t.rand_id(), src=UNUSED4))
    ps = t.collect(is_request_for(UNUSED4), 3.5)
    t.check(len(ps) >= 2, f"{len(ps)} ARP request(s) in 3.5 s, expected retransmissions")
    t.check(len(ps) <= 5, f"{len(ps)} ARP requests in 3.5 s: flooding")
    gaps = [b.time - a.time for a, b in zip(ps, ps[1:])]
    t.check(min(gaps) >= 0.8, f"requests {min(gaps):.2f} s apart")


@conf_test("ARP-6.1", "arp", "An ARP probe (sender IP 0.0.0.0) for the DUT's address is answered",
           "RFC 5227 2.1.1 / 2.4 (address defence); RFC 826", "MUST",
           ["HOST-2 broadcasts an ARP probe: sender 0.0.0.0/HOST-2-MAC, target 192.0.2.1",
            "Listen for 1 s"],
           "An ARP reply from 192.0.2.1/DUT-MAC to HOST-2-MAC", topo="T2")
def arp_6_1(t):
    t.no_resolve()
    p = t.exchange(req(hwsrc=H2_MAC, psrc="0.0.0.0"),
                   lambda p: ARP in p and p[ARP].op == 2 and p[ARP].psrc == DUT4, 1, "an ARP reply")
    t.check(p[ARP].hwdst == H2_MAC and p[Ether].dst == H2_MAC, f"reply to {p[Ether].dst}/{p[ARP].hwdst}")


@conf_test("ARP-6.2", "arp", "An ARP probe does not put the prober's hardware address in the cache",
           "RFC 5227 2.1.1 (a probe's sender IP is 0; nothing to cache)", "MUST",
           ["HOST-2 broadcasts an ARP probe for 192.0.2.1 (sender 0.0.0.0/HOST-2-MAC)",
            "HOST-1 sends an Echo Request to the DUT (HOST-1 answers no ARP)", "Listen for 1 s"],
           "The DUT asks for 192.0.2.2 by ARP (nothing usable was cached); it never sends the "
           "reply to HOST-2-MAC", topo="T2")
def arp_6_2(t):
    t.no_resolve()
    t.send(req(hwsrc=H2_MAC, psrc="0.0.0.0"))
    time.sleep(0.1)
    i = t.rand_id()
    t.mark()
    t.send(echo4(i))
    t.expect(is_request_for(H1_4), 1.5, "an ARP request for 192.0.2.2")
    t.expect_none(lambda p: is_echo_reply4(i)(p) and p[Ether].dst == H2_MAC, 0.1,
                  "no reply sent to the prober's MAC")
