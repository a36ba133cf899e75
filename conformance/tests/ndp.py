"""Neighbor Discovery and DAD (RFC 4861, RFC 4862)."""

import time

from lib.harness import (conf_test, Ether, DUT6, DUT_MAC, DUT_LL, H1_6, H1_LL, H1_MAC, H2_6,
                         H2_MAC, X_MAC, ALL_NODES, UNUSED6, sol_node, mcast_mac6)
from lib.pk import (IPv6, Raw, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6ND_RA, ICMPv6NDOptSrcLLAddr,
                    ICMPv6NDOptDstLLAddr, ICMPv6NDOptPrefixInfo, ICMPv6NDOptMTU, ICMPv6MLReport2,
                    ICMPv6EchoReply, IPv6ExtHdrFragment, echo6, is_echo_reply6, l4_csum_ok)


def ns(tgt=DUT6, src=H1_6, dst=None, hlim=255, code=0, sllao=H1_MAC, esrc=H1_MAC, opts=b""):
    if dst is None:
        dst = sol_node(tgt)
    edst = mcast_mac6(dst) if dst.startswith("ff") else DUT_MAC
    p = Ether(src=esrc, dst=edst) / IPv6(src=src, dst=dst, hlim=hlim) / ICMPv6ND_NS(tgt=tgt, code=code)
    if sllao:
        p = p / ICMPv6NDOptSrcLLAddr(lladdr=sllao)
    if opts:
        p = p / Raw(opts)
    return p


def na(tgt, dst, mac, S=1, O=1, R=0, hlim=255, code=0, tllao=True, edst=DUT_MAC, src=None):
    p = Ether(src=mac, dst=edst) / IPv6(src=src or tgt, dst=dst, hlim=hlim) / \
        ICMPv6ND_NA(tgt=tgt, S=S, O=O, R=R, code=code)
    if tllao:
        p = p / ICMPv6NDOptDstLLAddr(lladdr=mac)
    return p


def is_na(tgt=DUT6, dst=None):
    return lambda p: (ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == tgt and p[Ether].src == DUT_MAC and
                      (dst is None or p[IPv6].dst == dst))


def is_ns_from_dut(tgt):
    return lambda p: ICMPv6ND_NS in p and p[ICMPv6ND_NS].tgt == tgt and p[Ether].src == DUT_MAC


def control(t):
    t.mark()
    t.send(ns(src=H1_6))
    t.expect(is_na(), 1, "an NA to a valid NS (control)")


def no_na(t, frame, what, tgt=DUT6):
    t.no_resolve()
    t.mark()
    t.send(frame)
    t.expect_none(is_na(tgt), 1, what)
    control(t)


# --- NS handling ---------------------------------------------------------------

@conf_test("NDP-1.1", "ndp", "A Neighbor Solicitation for the DUT's address is answered with a solicited NA",
           "RFC 4861 7.2.4", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 to its solicited-node address, with a Source "
            "Link-Layer Address option", "Listen for 1 s"],
           "NA: hop limit 255, code 0, R=0 S=1 O=1, target 2001:db8::1, Target Link-Layer Address "
           "option = DUT-MAC, sent to 2001:db8::2 at HOST-1-MAC, valid checksum")
def ndp_1_1(t):
    t.no_resolve()
    p = t.exchange(ns(), is_na(), 1, "a Neighbor Advertisement")
    a = p[ICMPv6ND_NA]
    t.check(p[IPv6].hlim == 255 and a.code == 0, f"hop limit {p[IPv6].hlim} code {a.code}")
    t.check((a.R, a.S, a.O) == (0, 1, 1), f"flags R={a.R} S={a.S} O={a.O}")
    t.check(ICMPv6NDOptDstLLAddr in p and p[ICMPv6NDOptDstLLAddr].lladdr == DUT_MAC, "TLLAO missing or wrong")
    t.check(p[IPv6].dst == H1_6 and p[Ether].dst == H1_MAC, f"sent to {p[IPv6].dst} at {p[Ether].dst}")
    t.check(l4_csum_ok(p), "bad checksum")


@conf_test("NDP-1.2", "ndp", "An NS with hop limit 254 is silently discarded",
           "RFC 4861 7.1.1 (IP Hop Limit is 255)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 with hop limit 254", "Listen for 1 s", "Control"],
           "No NA")
def ndp_1_2(t):
    no_na(t, ns(hlim=254), "no NA to hop limit 254")


@conf_test("NDP-1.3", "ndp", "An NS with ICMP code 1 is silently discarded",
           "RFC 4861 7.1.1 (ICMP Code is 0)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 with code 1", "Listen for 1 s", "Control"], "No NA")
def ndp_1_3(t):
    no_na(t, ns(code=1), "no NA to code 1")


@conf_test("NDP-1.4", "ndp", "An NS with a bad ICMPv6 checksum is silently discarded",
           "RFC 4861 7.1.1 (valid ICMP checksum)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 with a wrong checksum", "Listen for 1 s", "Control"],
           "No NA")
def ndp_1_4(t):
    f = ns()
    f[ICMPv6ND_NS].cksum = 0x4242
    no_na(t, f, "no NA to a bad checksum")


@conf_test("NDP-1.5", "ndp", "An NS whose target is a multicast address is silently discarded",
           "RFC 4861 7.1.1 (Target Address is not multicast)", "MUST",
           ["HOST-1 sends an NS for ff02::1 to ff02::1", "Listen for 1 s", "Control"], "No NA")
def ndp_1_5(t):
    no_na(t, ns(tgt=ALL_NODES, dst=ALL_NODES), "no NA for a multicast target", tgt=ALL_NODES)


@conf_test("NDP-1.6", "ndp", "An NS with an option of length 0 is silently discarded",
           "RFC 4861 7.1.1 (all included options have a length greater than zero)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 with an extra option: type 14, length 0",
            "Listen for 1 s", "Control"], "No NA")
def ndp_1_6(t):
    no_na(t, ns(opts=b"\x0e\x00" + b"\0" * 6), "no NA to a zero-length option")


@conf_test("NDP-1.7", "ndp", "An NS from the unspecified address with a Source Link-Layer option is discarded",
           "RFC 4861 7.1.1 (unspecified source: no source link-layer address option)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 from :: with an SLLAO", "Listen for 1 s", "Control"],
           "No NA")
def ndp_1_7(t):
    no_na(t, ns(src="::"), "no NA")


@conf_test("NDP-1.8", "ndp", "A DAD probe for the DUT's address is answered to all-nodes with S=0",
           "RFC 4861 7.2.4 (unspecified source: Solicited 0, multicast to all-nodes); RFC 4862 5.4.3",
           "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 from :: without SLLAO (DAD)", "Listen for 1 s"],
           "NA to ff02::1 with S=0, O=1 and the DUT's TLLAO")
def ndp_1_8(t):
    t.no_resolve()
    p = t.exchange(ns(src="::", sllao=None), is_na(), 1, "a Neighbor Advertisement")
    a = p[ICMPv6ND_NA]
    t.check(p[IPv6].dst == ALL_NODES, f"sent to {p[IPv6].dst}, expected ff02::1")
    t.check(a.S == 0, "Solicited flag set")
    t.check(ICMPv6NDOptDstLLAddr in p, "no TLLAO")


@conf_test("NDP-1.9", "ndp", "An NS for another node's address is not answered",
           "RFC 4861 7.2.3 (target must be a valid address of the receiving interface)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::3", "Listen for 1 s", "Control"], "No NA from the DUT")
def ndp_1_9(t):
    no_na(t, ns(tgt=H2_6), "no NA for 2001:db8::3", tgt=H2_6)


@conf_test("NDP-1.10", "ndp", "A unicast NS (reachability probe) without SLLAO is answered",
           "RFC 4861 7.2.3 / 7.2.4 (unicast solicitations need no SLLAO)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 unicast to 2001:db8::1 without SLLAO",
            "HOST-1 answers the DUT's own NS if any", "Listen for 2 s"],
           "A solicited NA (S=1) to 2001:db8::2")
def ndp_1_10(t):
    p = t.exchange(ns(dst=DUT6, sllao=None), is_na(dst=H1_6), 2, "a Neighbor Advertisement")
    t.check(p[ICMPv6ND_NA].S == 1, "S=0")


@conf_test("NDP-1.11", "ndp", "Unknown options in an NS are ignored",
           "RFC 4861 4.6 / 7.1.1 (receivers MUST silently ignore options they do not recognize)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 with SLLAO and an option of unknown type 200, length 1",
            "Listen for 1 s"], "An NA")
def ndp_1_11(t):
    t.no_resolve()
    t.exchange(ns(opts=b"\xc8\x01" + b"\0" * 6), is_na(), 1, "a Neighbor Advertisement")


@conf_test("NDP-1.12", "ndp", "An NS for the DUT's link-local address is answered",
           "RFC 4861 7.2.4; RFC 4862 (link-local address)", "MUST",
           ["HOST-1 sends, from its link-local address, an NS for the DUT's EUI-64 link-local address",
            "Listen for 1 s"], "An NA for the link-local target, to HOST-1's link-local address")
def ndp_1_12(t):
    t.no_resolve()
    t.exchange(ns(tgt=DUT_LL, src=H1_LL), is_na(DUT_LL, H1_LL), 1, "an NA for the link-local address")


@conf_test("NDP-1.13", "ndp", "An NS's source link-layer address is cached and used",
           "RFC 4861 7.2.3 (SHOULD create or update the Neighbor Cache entry)", "SHOULD",
           ["HOST-2 sends an NS for 2001:db8::1 with SLLAO 02:00:00:00:00:03",
            "HOST-2 sends an Echo Request (and answers no NS)", "Listen for 1 s"],
           "The Echo Reply goes to 02:00:00:00:00:03 without a multicast NS first", topo="T2")
def ndp_1_13(t):
    t.no_resolve()
    t.exchange(ns(src=H2_6, sllao=H2_MAC, esrc=H2_MAC), is_na(dst=H2_6), 1, "an NA")
    i = t.rand_id()
    t.mark()
    t.send(Ether(src=H2_MAC, dst=DUT_MAC) / echo6(i, src=H2_6))
    p = t.expect(is_echo_reply6(i), 1, "an Echo Reply")
    t.check(p[Ether].dst == H2_MAC, f"reply to {p[Ether].dst}")
    t.expect_none(lambda q: is_ns_from_dut(H2_6)(q) and q[IPv6].dst.startswith("ff"), 0.1,
                  "no multicast NS for 2001:db8::3")


@conf_test("NDP-1.14", "ndp", "An NS with a new source link-layer address updates the cache",
           "RFC 4861 7.2.3 (if different, update and set STALE)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 with SLLAO HOST-1-MAC, then one with "
            "SLLAO 02:00:00:00:00:0a", "HOST-1 sends an Echo Request", "Listen for 1 s"],
           "The Echo Reply goes to 02:00:00:00:00:0a")
def ndp_1_14(t):
    t.no_resolve()
    t.exchange(ns(), is_na(), 1, "an NA")
    t.exchange(ns(sllao=X_MAC, esrc=X_MAC), is_na(), 1, "an NA to the second NS")
    i = t.rand_id()
    p = t.exchange(Ether(src=X_MAC, dst=DUT_MAC) / echo6(i), is_echo_reply6(i), 1, "an Echo Reply")
    t.check(p[Ether].dst == X_MAC, f"reply to {p[Ether].dst}, expected {X_MAC}")


@conf_test("NDP-1.15", "ndp", "An NS shorter than 24 octets is silently discarded",
           "RFC 4861 7.1.1 (ICMP length is 24 or more octets)", "MUST",
           ["HOST-1 sends an NS for 2001:db8::1 cut to 20 ICMPv6 octets", "Listen for 1 s", "Control"],
           "No NA")
def ndp_1_15(t):
    from lib.pk import ICMPv6Unknown
    body = bytes(ICMPv6ND_NS(tgt=DUT6, cksum=0))[4:20]          # reserved + 12 octets of the target
    f = Ether(src=H1_MAC, dst=mcast_mac6(sol_node(DUT6))) / \
        IPv6(src=H1_6, dst=sol_node(DUT6), hlim=255) / ICMPv6Unknown(type=135, code=0, msgbody=body)
    no_na(t, f, "no NA to a short NS")


# --- the DUT resolving, NA handling --------------------------------------------

def trigger(t, src=H2_6, mac=H2_MAC, i=None):
    i = i or t.rand_id()
    t.send(Ether(src=mac, dst=DUT_MAC) / echo6(i, src=src))
    return i


@conf_test("NDP-2.1", "ndp", "The DUT's Neighbor Solicitation has the right format",
           "RFC 4861 7.2.2 / 4.3", "MUST",
           ["HOST-2 sends an Echo Request to 2001:db8::1 (the DUT has no entry for 2001:db8::3)",
            "Listen for 1.5 s"],
           "NS to ff02::1:ff00:3 at 33:33:ff:00:00:03: hop limit 255, code 0, target 2001:db8::3, "
           "SLLAO = DUT-MAC, source an address of the DUT, valid checksum", topo="T2")
def ndp_2_1(t):
    t.no_resolve()
    t.mark()
    trigger(t)
    p = t.expect(is_ns_from_dut(H2_6), 1.5, "a Neighbor Solicitation")
    t.check(p[IPv6].dst == sol_node(H2_6) and p[Ether].dst == mcast_mac6(sol_node(H2_6)),
            f"sent to {p[IPv6].dst} at {p[Ether].dst}")
    t.check(p[IPv6].hlim == 255 and p[ICMPv6ND_NS].code == 0, "hop limit or code")
    t.check(ICMPv6NDOptSrcLLAddr in p and p[ICMPv6NDOptSrcLLAddr].lladdr == DUT_MAC, "SLLAO")
    t.check(p[IPv6].src in (DUT6, DUT_LL), f"source {p[IPv6].src}")
    t.check(l4_csum_ok(p), "bad checksum")


def resolve_with(t, na_frame_fn, expect_reply_to=None, what=""):
    t.no_resolve()
    i = t.rand_id()
    t.mark()
    trigger(t, i=i)
    p = t.expect(is_ns_from_dut(H2_6), 1.5, "a Neighbor Solicitation")
    t.mark()
    t.send(na_frame_fn(p))
    return i


@conf_test("NDP-2.2", "ndp", "A solicited NA completes resolution; the waiting packet is sent",
           "RFC 4861 7.2.5 / 7.2.2 (queued packets transmitted)", "MUST",
           ["HOST-2 sends an Echo Request; the DUT solicits 2001:db8::3",
            "HOST-2 answers with a solicited NA (S=1, O=1, TLLAO HOST-2-MAC)", "Listen for 1 s"],
           "The Echo Reply is sent to HOST-2-MAC", topo="T2")
def ndp_2_2(t):
    i = resolve_with(t, lambda p: na(H2_6, p[IPv6].src, H2_MAC))
    r = t.expect(is_echo_reply6(i), 1, "the Echo Reply")
    t.check(r[Ether].dst == H2_MAC, f"reply to {r[Ether].dst}")


def na_ignored(t, na_fn):
    i = resolve_with(t, na_fn)
    t.expect_none(lambda p: is_echo_reply6(i)(p), 0.8, "no Echo Reply (the NA must be ignored)")


@conf_test("NDP-2.3", "ndp", "An NA with hop limit 254 is ignored",
           "RFC 4861 7.1.2 (IP Hop Limit is 255)", "MUST",
           ["HOST-2 sends an Echo Request; the DUT solicits 2001:db8::3",
            "HOST-2 answers with an NA of hop limit 254", "Listen for 0.8 s"],
           "No Echo Reply (still unresolved)", topo="T2")
def ndp_2_3(t):
    na_ignored(t, lambda p: na(H2_6, p[IPv6].src, H2_MAC, hlim=254))


@conf_test("NDP-2.4", "ndp", "A solicited NA sent to a multicast address is ignored",
           "RFC 4861 7.1.2 (if the destination is multicast, the Solicited flag is zero)", "MUST",
           ["HOST-2 sends an Echo Request; the DUT solicits 2001:db8::3",
            "HOST-2 answers with an NA with S=1 sent to ff02::1", "Listen for 0.8 s"],
           "No Echo Reply", topo="T2")
def ndp_2_4(t):
    na_ignored(t, lambda p: na(H2_6, ALL_NODES, H2_MAC, S=1, edst="33:33:00:00:00:01"))


@conf_test("NDP-2.5", "ndp", "An NA with ICMP code 1 is ignored",
           "RFC 4861 7.1.2 (ICMP Code is 0)", "MUST",
           ["HOST-2 sends an Echo Request; the DUT solicits 2001:db8::3",
            "HOST-2 answers with an NA of code 1", "Listen for 0.8 s"], "No Echo Reply", topo="T2")
def ndp_2_5(t):
    na_ignored(t, lambda p: na(H2_6, p[IPv6].src, H2_MAC, code=1))


@conf_test("NDP-2.6", "ndp", "An NA whose target is multicast is ignored",
           "RFC 4861 7.1.2 (Target Address is not multicast)", "MUST",
           ["HOST-2 sends an Echo Request; the DUT solicits 2001:db8::3",
            "HOST-2 answers with an NA whose target is ff02::1 (TLLAO HOST-2-MAC)", "Listen for 0.8 s"],
           "No Echo Reply", topo="T2")
def ndp_2_6(t):
    na_ignored(t, lambda p: na(ALL_NODES, p[IPv6].src, H2_MAC, src=H2_6))


def establish_h1(t):
    """Give the DUT a cache entry for HOST-1 at HOST-1-MAC (an answered exchange)."""
    t.resolve.clear()
    t.resolve[H1_6] = H1_MAC
    i = t.rand_id()
    t.exchange(echo6(i), is_echo_reply6(i), 1.5, "an Echo Reply (setup)")
    t.no_resolve()


@conf_test("NDP-2.7", "ndp", "An unsolicited NA with O=1 updates the cached link-layer address",
           "RFC 4861 7.2.5 (Override set: the TLLAO MUST be inserted in the cache)", "MUST",
           ["HOST-1 exchanges an Echo with the DUT (cache entry HOST-1-MAC)",
            "HOST-1 sends an unsolicited NA (S=0, O=1) to ff02::1 with TLLAO 02:00:00:00:00:0a",
            "HOST-1 sends an Echo Request", "Listen for 1 s"],
           "The Echo Reply goes to 02:00:00:00:00:0a")
def ndp_2_7(t):
    establish_h1(t)
    t.send(na(H1_6, ALL_NODES, X_MAC, S=0, O=1, edst="33:33:00:00:00:01"))
    time.sleep(0.1)
    i = t.rand_id()
    p = t.exchange(echo6(i), is_echo_reply6(i), 1, "an Echo Reply")
    t.check(p[Ether].dst == X_MAC, f"reply to {p[Ether].dst}, expected {X_MAC}")


@conf_test("NDP-2.8", "ndp", "An unsolicited NA with O=0 does not replace the cached address",
           "RFC 4861 7.2.5 (Override clear and address differs: do not update the entry)", "MUST",
           ["HOST-1 exchanges an Echo with the DUT (cache entry HOST-1-MAC)",
            "HOST-1 sends an unsolicited NA (S=0, O=0) with TLLAO 02:00:00:00:00:0a",
            "HOST-1 sends an Echo Request", "Listen for 1 s"],
           "The Echo Reply still goes to HOST-1-MAC")
def ndp_2_8(t):
    establish_h1(t)
    t.send(na(H1_6, ALL_NODES, X_MAC, S=0, O=0, edst="33:33:00:00:00:01"))
    time.sleep(0.1)
    i = t.rand_id()
    p = t.exchange(echo6(i), is_echo_reply6(i), 1, "an Echo Reply")
    t.check(p[Ether].dst == H1_MAC, f"reply to {p[Ether].dst}, expected {H1_MAC}")


@conf_test("NDP-2.9", "ndp", "An unsolicited NA for an unknown target creates no cache entry",
           "RFC 4861 7.2.5 (no entry: the advertisement SHOULD be silently discarded)", "SHOULD",
           ["HOST-2 sends an unsolicited NA for 2001:db8::3 (O=1, TLLAO HOST-2-MAC) to ff02::1",
            "HOST-2 sends an Echo Request", "Listen for 1.5 s"],
           "The DUT sends a multicast NS for 2001:db8::3 (nothing was cached)", topo="T2")
def ndp_2_9(t):
    t.no_resolve()
    t.send(na(H2_6, ALL_NODES, H2_MAC, S=0, O=1, edst="33:33:00:00:00:01"))
    time.sleep(0.1)
    t.mark()
    trigger(t)
    t.expect(lambda p: is_ns_from_dut(H2_6)(p) and p[IPv6].dst.startswith("ff"), 1.5,
             "a multicast NS for 2001:db8::3")


# --- NUD ------------------------------------------------------------------------

@conf_test("NDP-3.1", "ndp", "Neighbor Unreachability Detection: a STALE entry in use is probed by unicast NS",
           "RFC 4861 7.3.3 (STALE -> DELAY; after DELAY_FIRST_PROBE_TIME, unicast NS)", "MUST",
           ["HOST-1 sends an NS with SLLAO (the DUT caches HOST-1 as STALE)",
            "HOST-1 sends an Echo Request (the DUT uses the entry: DELAY)", "Listen for 8 s"],
           "About 5 s later, an NS for 2001:db8::2 unicast to 2001:db8::2 at HOST-1-MAC", timeout=15)
def ndp_3_1(t):
    t.no_resolve()
    t.exchange(ns(), is_na(), 1, "an NA")
    i = t.rand_id()
    t0 = time.monotonic()
    t.exchange(echo6(i), is_echo_reply6(i), 1, "an Echo Reply")
    p = t.expect(lambda p: is_ns_from_dut(H1_6)(p) and p[IPv6].dst == H1_6, 8, "a unicast NS probe")
    t.check(p[Ether].dst == H1_MAC, f"probe sent to {p[Ether].dst}")
    dt = p.time - t0
    t.check(dt >= 3.0, f"probe after {dt:.1f} s; DELAY_FIRST_PROBE_TIME is 5 s")


@conf_test("NDP-3.2", "ndp", "NUD gives up after MAX_UNICAST_SOLICIT (3) unanswered probes, RetransTimer apart",
           "RFC 4861 7.3.3 / 10 (MAX_UNICAST_SOLICIT 3, RETRANS_TIMER 1 s)", "MUST",
           ["As NDP-3.1, but HOST-1 never answers", "Listen for 10 s"],
           "Exactly 3 unicast probes, at least 0.8 s apart", timeout=18)
def ndp_3_2(t):
    t.no_resolve()
    t.exchange(ns(), is_na(), 1, "an NA")
    i = t.rand_id()
    t.exchange(echo6(i), is_echo_reply6(i), 1, "an Echo Reply")
    ps = t.collect(lambda p: is_ns_from_dut(H1_6)(p) and p[IPv6].dst == H1_6, 10)
    t.check(len(ps) == 3, f"{len(ps)} unicast probes, expected 3")
    gaps = [b.time - a.time for a, b in zip(ps, ps[1:])]
    t.check(min(gaps) >= 0.8, f"probes {min(gaps):.2f} s apart")


@conf_test("NDP-3.3", "ndp", "Address resolution sends at most MAX_MULTICAST_SOLICIT (3) NS, RetransTimer apart",
           "RFC 4861 7.2.2 / 10 (MAX_MULTICAST_SOLICIT 3, RETRANS_TIMER 1 s)", "MUST",
           ["HOST-1 sends an Echo Request from 2001:db8::99 (nobody answers NS for it)", "Listen for 5 s"],
           "Exactly 3 multicast NS for 2001:db8::99, at least 0.8 s apart", timeout=12)
def ndp_3_3(t):
    t.no_resolve()
    t.mark()
    t.send(echo6(t.rand_id(), src=UNUSED6))
    ps = t.collect(is_ns_from_dut(UNUSED6), 5)
    t.check(len(ps) == 3, f"{len(ps)} NS, expected 3")
    gaps = [b.time - a.time for a, b in zip(ps, ps[1:])]
    t.check(min(gaps) >= 0.8, f"NS {min(gaps):.2f} s apart")


# --- Router Advertisements -------------------------------------------------------

def ra(hlim_cur=0, lifetime=0, reach=0, retrans=0, opts=None, src=H1_LL, hlim=255, code=0):
    p = Ether(src=H1_MAC, dst="33:33:00:00:00:01") / IPv6(src=src, dst=ALL_NODES, hlim=hlim) / \
        ICMPv6ND_RA(chlim=hlim_cur, routerlifetime=lifetime, reachabletime=reach, retranstimer=retrans,
                    code=code) / ICMPv6NDOptSrcLLAddr(lladdr=H1_MAC)
    for o in opts or []:
        p = p / o
    return p


def reply_hlim(t):
    i = t.rand_id()
    return t.exchange(echo6(i), is_echo_reply6(i), 1, "an Echo Reply")[IPv6].hlim


@conf_test("NDP-4.1", "ndp", "A Router Advertisement's Cur Hop Limit is adopted",
           "RFC 4861 6.3.4 (non-zero Cur Hop Limit: SHOULD set CurHopLimit)", "SHOULD",
           ["HOST-1 (as a router, from its link-local address) sends an RA with Cur Hop Limit 33, "
            "router lifetime 0", "HOST-1 sends an Echo Request", "Listen for 1 s"],
           "The Echo Reply has hop limit 33", topo="T3", dirty=True)
def ndp_4_1(t):
    t.send(ra(hlim_cur=33))
    time.sleep(0.2)
    h = reply_hlim(t)
    t.check(h == 33, f"hop limit {h}, expected 33")


def ra_ignored(t, frame):
    t.send(frame)
    time.sleep(0.2)
    h = reply_hlim(t)
    t.check(h == 64, f"hop limit {h}: the invalid RA was accepted")


@conf_test("NDP-4.2", "ndp", "An RA from a global (not link-local) source is ignored",
           "RFC 4861 6.1.2 (IP Source Address is a link-local address)", "MUST",
           ["HOST-1 sends an RA with Cur Hop Limit 33 from 2001:db8::2", "HOST-1 sends an Echo Request",
            "Listen for 1 s"], "The Echo Reply keeps hop limit 64", topo="T3", dirty=True)
def ndp_4_2(t):
    ra_ignored(t, ra(hlim_cur=33, src=H1_6))


@conf_test("NDP-4.3", "ndp", "An RA with hop limit 254 is ignored",
           "RFC 4861 6.1.2 (IP Hop Limit is 255)", "MUST",
           ["HOST-1 sends an RA (Cur Hop Limit 33) with IP hop limit 254", "HOST-1 sends an Echo Request",
            "Listen for 1 s"], "The Echo Reply keeps hop limit 64", topo="T3", dirty=True)
def ndp_4_3(t):
    ra_ignored(t, ra(hlim_cur=33, hlim=254))


@conf_test("NDP-4.4", "ndp", "An RA with ICMP code 1 is ignored",
           "RFC 4861 6.1.2 (ICMP Code is 0)", "MUST",
           ["HOST-1 sends an RA (Cur Hop Limit 33) with code 1", "HOST-1 sends an Echo Request",
            "Listen for 1 s"], "The Echo Reply keeps hop limit 64", topo="T3", dirty=True)
def ndp_4_4(t):
    ra_ignored(t, ra(hlim_cur=33, code=1))


@conf_test("NDP-4.5", "ndp", "An RA's MTU option lowers the link MTU",
           "RFC 4861 6.3.4 (MTU option: SHOULD set LinkMTU)", "SHOULD",
           ["HOST-1 sends an RA with an MTU option of 1280", "HOST-1 sends a 1400-octet Echo Request",
            "Listen for 1 s"], "The Echo Reply comes in fragments of at most 1280 octets",
           topo="T3", dirty=True)
def ndp_4_5(t):
    t.send(ra(opts=[ICMPv6NDOptMTU(mtu=1280)]))
    time.sleep(0.2)
    i = t.rand_id()
    t.mark()
    t.send(echo6(i, payload=b"m" * 1400))
    p = t.expect(lambda p: IPv6 in p and p[IPv6].src == DUT6 and
                 (is_echo_reply6(i)(p) or IPv6ExtHdrFragment in p), 1, "the Echo Reply")
    t.check(IPv6ExtHdrFragment in p and len(bytes(p[IPv6])) <= 1280,
            f"reply packet of {len(bytes(p[IPv6]))} octets, not fragmented to 1280")


@conf_test("NDP-4.6", "ndp", "An RA's Retrans Timer sets the NS retransmission interval",
           "RFC 4861 6.3.4 (non-zero Retrans Timer: SHOULD set RetransTimer)", "SHOULD",
           ["HOST-1 sends an RA with Retrans Timer 300 ms", "HOST-1 sends an Echo Request from "
            "2001:db8::99 (unresolvable)", "Listen for 2 s"],
           "The DUT's 3 NS for 2001:db8::99 are about 0.3 s apart (0.2 - 0.6 s)", topo="T3", dirty=True)
def ndp_4_6(t):
    t.send(ra(retrans=300))
    time.sleep(0.2)
    t.mark()
    t.send(echo6(t.rand_id(), src=UNUSED6))
    ps = t.collect(is_ns_from_dut(UNUSED6), 2)
    t.check(len(ps) >= 2, f"{len(ps)} NS")
    gaps = [b.time - a.time for a, b in zip(ps, ps[1:])]
    t.check(all(0.2 <= g <= 0.6 for g in gaps), f"NS gaps {[round(g, 2) for g in gaps]}")


@conf_test("NDP-4.7", "ndp", "An RA prefix with the A flag starts SLAAC with DAD",
           "RFC 4862 5.5.3 (form an address from the prefix) / 5.4 (DAD before use)", "MUST",
           ["HOST-1 sends an RA with a Prefix Information option 2001:db8::/64, L=1 A=1, "
            "lifetimes 600/300", "Listen for 3 s"],
           "A DAD NS (source ::) for an address in 2001:db8::/64 other than 2001:db8::1",
           topo="T3", dirty=True)
def ndp_4_7(t):
    t.mark()
    t.send(ra(opts=[ICMPv6NDOptPrefixInfo(prefix="2001:db8::", prefixlen=64, L=1, A=1,
                                          validlifetime=600, preferredlifetime=300)]))
    p = t.expect(lambda p: ICMPv6ND_NS in p and p[IPv6].src == "::" and p[Ether].src == DUT_MAC and
                 p[ICMPv6ND_NS].tgt.startswith("2001:db8::") and p[ICMPv6ND_NS].tgt != DUT6, 3,
                 "a DAD NS for a SLAAC address")
    t.note(f"SLAAC address {p[ICMPv6ND_NS].tgt}")


# --- DAD ---------------------------------------------------------------------------

NEW6 = "2001:db8::10"


def is_dad_ns(tgt=NEW6):
    return lambda p: (ICMPv6ND_NS in p and p[ICMPv6ND_NS].tgt == tgt and p[IPv6].src == "::" and
                      p[Ether].src == DUT_MAC)


def start_dad(t):
    t.no_resolve()
    t.mark()
    t.dut.add_address(f"{NEW6}/64")
    return t.expect(is_dad_ns(), 3, "a DAD NS for 2001:db8::10")


@conf_test("NDP-5.1", "ndp", "Duplicate Address Detection: the DAD NS has the right format",
           "RFC 4862 5.4.2", "MUST",
           ["Configure 2001:db8::10/64 on the DUT (Linux: ip addr add; shunt: SHUNT_ADDR)",
            "Listen for 3 s"],
           "NS from :: to ff02::1:ff00:10 at 33:33:ff:00:00:10, hop limit 255, code 0, target "
           "2001:db8::10, no SLLAO")
def ndp_5_1(t):
    p = start_dad(t)
    t.check(p[IPv6].dst == sol_node(NEW6) and p[Ether].dst == mcast_mac6(sol_node(NEW6)),
            f"sent to {p[IPv6].dst} at {p[Ether].dst}")
    t.check(p[IPv6].hlim == 255 and p[ICMPv6ND_NS].code == 0, "hop limit or code")
    t.check(ICMPv6NDOptSrcLLAddr not in p, "SLLAO present in a DAD NS")


@conf_test("NDP-5.2", "ndp", "DAD: the node joins the tentative address's solicited-node group (MLDv2 report)",
           "RFC 4862 5.4.2 (MUST join the solicited-node group before sending the NS); RFC 3810",
           "MUST",
           ["Configure 2001:db8::10/64 on the DUT", "Listen for 3 s"],
           "An MLDv2 Report listing ff02::1:ff00:10")
def ndp_5_2(t):
    t.no_resolve()
    t.mark()
    t.dut.add_address(f"{NEW6}/64")
    grp = sol_node(NEW6)

    def lists_group(p):
        if ICMPv6MLReport2 not in p:
            return False
        return any(r.dst == grp for r in p[ICMPv6MLReport2].records)
    t.expect(lists_group, 3, "an MLDv2 report for ff02::1:ff00:10")


def dad_failed(t):
    time.sleep(1.5)
    t.mark()
    t.send(ns(tgt=NEW6))
    t.expect_none(is_na(NEW6), 1, "no NA for the duplicate address")
    i = t.rand_id()
    t.send(echo6(i, dst=NEW6))
    t.expect_none(is_echo_reply6(i), 0.5, "no Echo Reply from the duplicate address")
    control(t)


@conf_test("NDP-5.3", "ndp", "DAD: an NA for the tentative address makes it a duplicate (not used)",
           "RFC 4862 5.4.4 / 5.4.5 (MUST NOT be assigned)", "MUST",
           ["Configure 2001:db8::10/64 on the DUT", "On the DAD NS, HOST-1 sends an NA for "
            "2001:db8::10 (O=1, TLLAO HOST-1-MAC) to ff02::1", "After 1.5 s, HOST-1 sends an NS and an "
            "Echo Request for 2001:db8::10", "Listen for 1.5 s"],
           "No NA and no Echo Reply for 2001:db8::10", timeout=15)
def ndp_5_3(t):
    start_dad(t)
    t.send(na(NEW6, ALL_NODES, H1_MAC, S=0, O=1, edst="33:33:00:00:00:01"))
    dad_failed(t)


@conf_test("NDP-5.4", "ndp", "DAD: another node's DAD NS for the same address makes it a duplicate",
           "RFC 4862 5.4.3 (NS from :: for a tentative address: duplicate)", "MUST",
           ["Configure 2001:db8::10/64 on the DUT", "On the DAD NS, HOST-1 sends its own DAD NS for "
            "2001:db8::10 (from ::)", "After 1.5 s, HOST-1 sends an NS and an Echo Request for "
            "2001:db8::10", "Listen for 1.5 s"], "No NA and no Echo Reply", timeout=15)
def ndp_5_4(t):
    start_dad(t)
    t.send(ns(tgt=NEW6, src="::", sllao=None))
    dad_failed(t)


@conf_test("NDP-5.5", "ndp", "A tentative address does not answer address resolution",
           "RFC 4862 5.4.3 (NS for a tentative address from a unicast source: silently discard)", "MUST",
           ["Configure 2001:db8::10/64 on the DUT", "Right after the DAD NS, HOST-1 sends an NS (with "
            "SLLAO) for 2001:db8::10", "Listen for 0.5 s"], "No NA")
def ndp_5_5(t):
    start_dad(t)
    t.mark()
    t.send(ns(tgt=NEW6))
    t.expect_none(is_na(NEW6), 0.5, "no NA for a tentative address")


@conf_test("NDP-5.6", "ndp", "After DAD succeeds, the address answers Neighbor Solicitations",
           "RFC 4862 5.4 / 5.4.5 (address becomes preferred)", "MUST",
           ["Configure 2001:db8::10/64 on the DUT; HOST-1 stays silent during DAD",
            "2 s after the DAD NS, HOST-1 sends an NS for 2001:db8::10", "Listen for 1 s"],
           "An NA for 2001:db8::10", timeout=12)
def ndp_5_6(t):
    start_dad(t)
    time.sleep(2)
    t.exchange(ns(tgt=NEW6), is_na(NEW6), 1, "an NA for 2001:db8::10")
