"""TCP (RFC 9293, RFC 5961, RFC 7323, RFC 2018, RFC 6298, RFC 5681, RFC 6093, RFC 1122 4.2)."""

import time

from lib.harness import conf_test, Ether, DUT4, DUT6, DUT_MAC, H1_4, H1_6, H1_MAC, BCAST4
from lib.pk import IP, IPv6, ICMP, Raw
from lib.tcp import TcpPeer, TCP, opt, has_opt, seq_add, tcp_payload

ECHO, DISCARD, HOLD, CLOSE, SOURCE, CLOSED = 7, 9, 10, 11, 19, 7999


def plen(p):
    return len(tcp_payload(p))


def echo_ok(t, c, data=b"still-alive", what="the echo (connection alive)"):
    t.mark()
    c.send("PA", data)
    got = c.recv(len(data), 1.5)
    t.check(got == data, f"{what}: got {got!r}")


def dut_connect(t, v6=False, lport=None, **kw):
    """The DUT server opens a connection to HOST-1:lport; returns (peer, id, syn)."""
    c = TcpPeer(t, v6=v6, sport=lport or t.rand_port(), dport=None)
    t.mark()
    r = t.dut.cmd("connect", addr=H1_6 if v6 else H1_4, port=c.sport, **kw)
    syn = c.wait_syn()
    return c, r["id"], syn


def accept(t, c, syn_opts=None):
    """Complete the handshake of a connection the DUT opened."""
    c.t.mark()
    c.send("SA", options=syn_opts or [("MSS", 1460)], ts=False)
    c.expect(lambda s: s.flags.A and not s.flags.S and s.ack == c.snd_nxt, 1, "the ACK of our SYN-ACK")


# --- handshake ------------------------------------------------------------------

@conf_test("TCP-1.1", "tcp", "A SYN to a listening port is answered by a SYN-ACK",
           "RFC 9293 3.5 / 3.10.7.2", "MUST",
           ["HOST-1 sends a SYN (ISN x, MSS 1460) to 192.0.2.1 port 7", "Listen for 1 s"],
           "SYN-ACK with ACK x+1 and an MSS option")
def tcp_1_1(t):
    c = TcpPeer(t, dport=ECHO)
    p = c.syn()
    t.check(has_opt(p[TCP], "MSS"), "no MSS option in the SYN-ACK")
    c.rst()


@conf_test("TCP-1.2", "tcp", "The SYN-ACK's MSS is the interface MTU minus 40 (1460)",
           "RFC 9293 3.7.1 (MSS option); RFC 879", "SHOULD",
           ["HOST-1 sends a SYN with MSS 1460 to port 7", "Listen for 1 s"], "SYN-ACK with MSS 1460")
def tcp_1_2(t):
    c = TcpPeer(t, dport=ECHO)
    m = opt(c.syn()[TCP], "MSS")
    t.check(m == 1460, f"MSS {m}")
    c.rst()


@conf_test("TCP-1.3", "tcp", "A SYN to a closed port is answered by RST,ACK with SEQ 0, ACK ISN+1",
           "RFC 9293 3.10.7.1 (CLOSED: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>)", "MUST",
           ["HOST-1 sends a SYN to port 7999 (closed)", "Listen for 1 s"],
           "RST,ACK: sequence 0, acknowledgment ISN+1")
def tcp_1_3(t):
    c = TcpPeer(t, dport=CLOSED)
    t.mark()
    c.send("S", options=[("MSS", 1460)])
    p = c.expect(lambda s: s.flags.R, 1, "a RST")
    s = p[TCP]
    t.check(s.flags.A and s.seq == 0 and s.ack == c.snd_nxt, f"RST flags {s.flags} seq {s.seq} ack {s.ack}")


@conf_test("TCP-1.4", "tcp", "An ACK to a closed port is answered by RST with SEQ = SEG.ACK",
           "RFC 9293 3.10.7.1 (<SEQ=SEG.ACK><CTL=RST>)", "MUST",
           ["HOST-1 sends an ACK (ack 12345) to port 7999", "Listen for 1 s"],
           "RST without ACK, sequence 12345")
def tcp_1_4(t):
    c = TcpPeer(t, dport=CLOSED)
    t.mark()
    c.send("A", ack=12345)
    p = c.expect(lambda s: s.flags.R, 1, "a RST")
    t.check(p[TCP].seq == 12345 and not p[TCP].flags.A, f"RST seq {p[TCP].seq} flags {p[TCP].flags}")


@conf_test("TCP-1.5", "tcp", "A RST to a closed port is not answered",
           "RFC 9293 3.10.7.1 (an incoming RST is discarded)", "MUST",
           ["HOST-1 sends a RST to port 7999", "Listen for 1 s"], "Nothing")
def tcp_1_5(t):
    c = TcpPeer(t, dport=CLOSED)
    t.mark()
    c.send("R")
    c.expect_none(None, 1, "no response to a RST")


@conf_test("TCP-1.6", "tcp", "Three-way handshake and data: the echo service returns the data",
           "RFC 9293 3.5 / 3.10", "MUST",
           ["HOST-1 completes a handshake with port 7", "HOST-1 sends 'hello conformance'", "Listen for 1.5 s"],
           "The data comes back, in sequence, acknowledging HOST-1's data")
def tcp_1_6(t):
    c = TcpPeer(t, dport=ECHO)
    c.handshake()
    echo_ok(t, c, b"hello conformance", "the echo")
    c.rst()


@conf_test("TCP-1.7", "tcp", "IPv6: the SYN-ACK's MSS is 1440",
           "RFC 9293 3.7.1; RFC 8200 5", "SHOULD",
           ["HOST-1 sends a SYN with MSS 1440 to 2001:db8::1 port 7", "Listen for 1 s"],
           "SYN-ACK with MSS 1440", family="6")
def tcp_1_7(t):
    c = TcpPeer(t, v6=True, dport=ECHO)
    m = opt(c.syn(mss=1440)[TCP], "MSS")
    t.check(m == 1440, f"MSS {m}")
    c.rst()


@conf_test("TCP-1.8", "tcp", "An unacknowledged SYN-ACK is retransmitted after ~1 s, then with backoff",
           "RFC 6298 2.1 (initial RTO 1 s) / 5.5 (back off); RFC 9293 3.8.1", "MUST",
           ["HOST-1 sends a SYN to port 7 and never completes the handshake", "Listen for 3.8 s"],
           "The SYN-ACK again after 0.8-1.6 s, and again after at least 1.5 times that")
def tcp_1_8(t):
    c = TcpPeer(t, dport=ECHO)
    first = c.syn()
    ps = [first] + c.collect(lambda s: s.flags.S and s.flags.A, 3.8)[1:]
    t.check(len(ps) >= 3, f"{len(ps) - 1} retransmission(s) in 3.8 s")
    g1, g2 = ps[1].time - ps[0].time, ps[2].time - ps[1].time
    t.check(0.8 <= g1 <= 1.6, f"first retransmission after {g1:.2f} s")
    t.check(g2 >= 1.5 * g1, f"second after {g2:.2f} s: no backoff")
    c.rst()


@conf_test("TCP-1.9", "tcp", "Simultaneous open: SYN received in SYN-SENT is answered by SYN-ACK",
           "RFC 9293 3.5 (Figure 7) / 3.10.7.3", "MUST",
           ["The DUT connects to HOST-1 port P (HOST-1 sees the SYN)",
            "HOST-1 sends its own SYN (no ACK) to the DUT's port", "HOST-1 then ACKs the DUT's SYN",
            "The DUT server reports the connection state"],
           "A SYN-ACK with the DUT's original ISN acknowledging HOST-1's SYN; the connection is established")
def tcp_1_9(t):
    c, cid, syn = dut_connect(t)
    t.mark()
    c.send("S", options=[("MSS", 1460)], ack=0)
    p = c.expect(lambda s: s.flags.S and s.flags.A, 1.5, "a SYN-ACK")
    t.check(p[TCP].seq == c.dut_isn and p[TCP].ack == c.snd_nxt,
            f"SYN-ACK seq {p[TCP].seq} ack {p[TCP].ack}")
    c.send("A")
    st = t.dut.cmd("status", id=cid, wait=1.5)
    t.check(st["state"] == "connected", f"DUT connection state {st}")


@conf_test("TCP-1.10", "tcp", "The DUT's SYN carries an MSS option for its MTU",
           "RFC 9293 3.7.1 (SHOULD send MSS in every SYN)", "SHOULD",
           ["The DUT connects to HOST-1", "Listen for 2 s"], "A SYN with MSS 1460 and a non-zero window")
def tcp_1_10(t):
    c, cid, syn = dut_connect(t)
    t.check(opt(syn[TCP], "MSS") == 1460, f"MSS {opt(syn[TCP], 'MSS')}")
    t.check(syn[TCP].window > 0, "zero window in SYN")
    c.rst()


@conf_test("TCP-1.11", "tcp", "A retransmitted SYN in SYN-RECEIVED gets the same SYN-ACK again",
           "RFC 9293 3.10.7.4 / 3.8.1 (retransmission of SYN)", "MUST",
           ["HOST-1 sends a SYN to port 7; the DUT answers", "HOST-1 sends the same SYN again",
            "Listen for 0.8 s"], "A SYN-ACK with the same ISN")
def tcp_1_11(t):
    c = TcpPeer(t, dport=ECHO)
    c.syn()
    t.mark()
    c.send("S", seq=c.isn, options=[("MSS", 1460)])
    p = c.expect(lambda s: s.flags.S and s.flags.A, 0.8, "a second SYN-ACK")
    t.check(p[TCP].seq == c.dut_isn, "different ISN")
    c.rst()


@conf_test("TCP-1.12", "tcp", "A SYN to a broadcast address is silently discarded",
           "RFC 1122 4.2.3.10 (MUST silently discard SYN to broadcast/multicast)", "MUST",
           ["HOST-1 sends a SYN to 192.0.2.255 port 7 in a broadcast frame", "Listen for 1 s"],
           "No SYN-ACK and no RST")
def tcp_1_12(t):
    c = TcpPeer(t, dport=ECHO, dst=BCAST4)
    t.mark()
    t.send(Ether(src=H1_MAC, dst="ff:ff:ff:ff:ff:ff") / c.seg("S", options=[("MSS", 1460)]))
    t.expect_none(lambda p: TCP in p and p[TCP].dport == c.sport, 1, "no answer to a broadcast SYN")


@conf_test("TCP-1.13", "tcp", "Initial sequence numbers differ between connections",
           "RFC 9293 3.4.1; RFC 6528 (ISN generation)", "MUST",
           ["HOST-1 sends two SYNs to port 7 from different ports", "Listen for 1 s"],
           "The two SYN-ACK ISNs differ by more than 1000")
def tcp_1_13(t):
    a, b = TcpPeer(t, dport=ECHO), TcpPeer(t, dport=ECHO)
    ia = a.syn()[TCP].seq
    ib = b.syn()[TCP].seq
    d = min((ia - ib) & 0xffffffff, (ib - ia) & 0xffffffff)
    t.check(d > 1000, f"ISNs {ia} and {ib}")
    a.rst()
    b.rst()


@conf_test("TCP-1.14", "tcp", "A segment with a bad checksum is discarded",
           "RFC 9293 3.1 / 3.10.7 (checksum failure: discard)", "MUST",
           ["HOST-1 sends a SYN to port 7 with a wrong checksum", "Listen for 1 s"], "No SYN-ACK")
def tcp_1_14(t):
    c = TcpPeer(t, dport=ECHO)
    p = c.seg("S", options=[("MSS", 1460)])
    p[TCP].chksum = 0x1234
    t.mark()
    t.send(p)
    c.expect_none(None, 1, "no answer to a bad checksum")


@conf_test("TCP-1.15", "tcp", "An unknown TCP option in a SYN is ignored",
           "RFC 9293 3.1 (MUST ignore options it does not implement)", "MUST",
           ["HOST-1 sends a SYN to port 7 with option kind 99, length 4", "Listen for 1 s"], "A SYN-ACK")
def tcp_1_15(t):
    c = TcpPeer(t, dport=ECHO)
    c.syn(extra=[(99, b"\0\0")])
    c.rst()


@conf_test("TCP-1.16", "tcp", "A SYN with an illegal option length does not break the DUT",
           "RFC 9293 3.1 (MUST handle an illegal option length without crashing)", "MUST",
           ["HOST-1 sends a SYN to port 7 whose options are kind 99 with length 0",
            "HOST-1 sends a normal SYN from another port", "Listen for 1 s"],
           "The normal SYN is answered (the first may be answered or dropped)")
def tcp_1_16(t):
    bad = TcpPeer(t, dport=ECHO)
    p = IP(bytes(bad.seg("S", options=[("NOP", None)] * 4)))
    raw = bytearray(bytes(p))
    raw[40:44] = bytes([99, 0, 1, 1])
    raw[36:38] = b"\0\0"
    p = IP(bytes(raw))
    p[TCP].chksum = None
    t.send(IP(bytes(p)))
    c = TcpPeer(t, dport=ECHO)
    c.syn()
    c.rst()
    bad.rst()


@conf_test("TCP-1.17", "tcp", "A segment with a data offset below 5 is discarded",
           "RFC 9293 3.1 (Data Offset counts the 20-octet header)", "MUST",
           ["HOST-1 sends a SYN to port 7 with data offset 4", "Listen for 1 s"], "No answer")
def tcp_1_17(t):
    c = TcpPeer(t, dport=ECHO)
    p = c.seg("S")
    p[TCP].dataofs = 4
    t.mark()
    t.send(p)
    c.expect_none(None, 1, "no answer")


@conf_test("TCP-1.18", "tcp", "Data on the handshake's final ACK is accepted",
           "RFC 9293 3.10.7.4 (data in an acceptable ACK segment)", "MUST",
           ["HOST-1 sends a SYN, and data 'early' on the ACK that completes the handshake", "Listen for 1.5 s"],
           "The echo of 'early'")
def tcp_1_18(t):
    c = TcpPeer(t, dport=ECHO)
    c.syn()
    t.mark()
    c.send("PA", b"early")
    t.check(c.recv(5, 1.5) == b"early", "no echo")
    c.rst()


def mss_test(t, v6, mss, limit):
    c = TcpPeer(t, v6=v6, dport=SOURCE)
    c.handshake(mss=mss)
    ps = c.collect(lambda s: len(bytes(s.payload)) > 0, 0.6)
    t.check(ps, "no data from the source service")
    big = max(plen(p) for p in ps)
    t.check(big <= limit, f"a {big}-octet segment, limit {limit}")
    c.rst()


@conf_test("TCP-1.19", "tcp", "Without an MSS option the DUT sends segments of at most 536 octets",
           "RFC 9293 3.7.1 (default send MSS 536 for IPv4); RFC 1122 4.2.2.6", "MUST",
           ["HOST-1 connects to port 19 (source) with a SYN without MSS option", "Listen for 0.6 s"],
           "Data segments of at most 536 octets")
def tcp_1_19(t):
    mss_test(t, False, None, 536)


@conf_test("TCP-1.20", "tcp", "The DUT honours the peer's MSS",
           "RFC 9293 3.7.1 (MUST NOT send segments larger than the peer's MSS)", "MUST",
           ["HOST-1 connects to port 19 with MSS 700", "Listen for 0.6 s"],
           "Data segments of at most 700 octets")
def tcp_1_20(t):
    mss_test(t, False, 700, 700)


@conf_test("TCP-1.21", "tcp", "IPv6 without an MSS option: segments of at most 1220 octets",
           "RFC 9293 3.7.1 (default IPv6 MSS = 1280 - 60)", "MUST",
           ["HOST-1 connects to [2001:db8::1]:19 with a SYN without MSS option", "Listen for 0.6 s"],
           "Data segments of at most 1220 octets", family="6")
def tcp_1_21(t):
    mss_test(t, True, None, 1220)


# --- RST rules, RFC 5961 -------------------------------------------------------------

def est(t, port=ECHO, **kw):
    c = TcpPeer(t, dport=port)
    c.handshake(**kw)
    return c


def held_ids(t, wait=3.0):
    """The DUT server's HOLD connections, once it has accepted one: the
    handshake completes in the DUT's stack before its server accepts, and
    a loaded machine may run that accept late."""
    end = time.monotonic() + wait
    while True:
        ids = t.dut.cmd("held")["ids"]
        if ids or time.monotonic() >= end:
            return ids
        time.sleep(0.02)


def is_challenge(c):
    return lambda s: s.flags.A and not s.flags.R and not s.flags.S and s.ack == c.snd_nxt


@conf_test("TCP-2.1", "tcp", "A RST with exactly the expected sequence number resets the connection",
           "RFC 9293 3.10.7.4; RFC 5961 3.2 (exact match: reset)", "MUST",
           ["HOST-1 establishes a connection to port 7", "HOST-1 sends RST with SEQ = RCV.NXT",
            "HOST-1 sends data on the old connection", "Listen for 1 s"],
           "The data is answered by a RST (no connection)")
def tcp_2_1(t):
    c = est(t)
    c.send("R", ts=False, advance=False)
    time.sleep(0.1)
    t.mark()
    c.send("PA", b"after-reset")
    c.expect(lambda s: s.flags.R, 1, "a RST for data on a reset connection")


@conf_test("TCP-2.2", "tcp", "A RST in the window but not exact earns a challenge ACK",
           "RFC 5961 3.2 (MUST send a challenge ACK; connection stays)", "MUST",
           ["HOST-1 establishes a connection to port 7", "HOST-1 sends RST with SEQ = RCV.NXT + 100",
            "Listen for 1 s", "HOST-1 sends data"],
           "An ACK (ACK = HOST-1's next sequence); the connection still echoes")
def tcp_2_2(t):
    c = est(t)
    t.mark()
    c.send("R", seq=seq_add(c.snd_nxt, 100), ts=False)
    c.expect(is_challenge(c), 1, "a challenge ACK")
    echo_ok(t, c)
    c.rst()


@conf_test("TCP-2.3", "tcp", "A RST outside the window is silently dropped",
           "RFC 5961 3.2 / RFC 9293 3.10.7.4 (out of window: discard)", "MUST",
           ["HOST-1 establishes a connection to port 7", "HOST-1 sends RST with SEQ = RCV.NXT + 2^30",
            "Listen for 1 s", "HOST-1 sends data"], "No response to the RST; the connection still echoes")
def tcp_2_3(t):
    c = est(t)
    t.mark()
    c.send("R", seq=seq_add(c.snd_nxt, 1 << 30), ts=False)
    c.expect_none(None, 1, "no response to an out-of-window RST")
    echo_ok(t, c)
    c.rst()


@conf_test("TCP-2.4", "tcp", "A SYN in ESTABLISHED earns a challenge ACK, the connection stays",
           "RFC 5961 4.2 (MUST send an ACK; do not reset)", "MUST",
           ["HOST-1 establishes a connection to port 7", "HOST-1 sends a SYN with SEQ = RCV.NXT",
            "Listen for 1 s", "HOST-1 sends data"], "A challenge ACK; the connection still echoes")
def tcp_2_4(t):
    c = est(t)
    t.mark()
    c.send("S", seq=c.snd_nxt, options=[("MSS", 1460)])
    c.expect(is_challenge(c), 1, "a challenge ACK")
    echo_ok(t, c)
    c.rst()


@conf_test("TCP-2.5", "tcp", "A SYN outside the window in ESTABLISHED also earns a challenge ACK",
           "RFC 5961 4.2 (regardless of the sequence number)", "MUST",
           ["HOST-1 establishes a connection to port 7", "HOST-1 sends a SYN with SEQ = RCV.NXT + 2^30",
            "Listen for 1 s"], "A challenge ACK; the connection still echoes")
def tcp_2_5(t):
    c = est(t)
    t.mark()
    c.send("S", seq=seq_add(c.snd_nxt, 1 << 30), options=[("MSS", 1460)])
    c.expect(is_challenge(c), 1, "a challenge ACK")
    echo_ok(t, c)
    c.rst()


@conf_test("TCP-2.6", "tcp", "An ACK older than SND.UNA - MAX.SND.WND earns a challenge ACK",
           "RFC 5961 5.2 (MUST discard and send an ACK)", "MUST",
           ["HOST-1 establishes a connection to port 7", "HOST-1 sends data with ACK = SND.UNA - 2^20",
            "Listen for 1 s"], "An ACK; the data is not echoed")
def tcp_2_6(t):
    c = est(t)
    t.mark()
    c.send("PA", b"stale", ack=(c.rcv_nxt - (1 << 20)) & 0xffffffff, advance=False)
    c.expect(lambda s: s.flags.A and not s.flags.R, 1, "an ACK")
    c.expect_none(lambda s: len(bytes(s.payload)) > 0, 0.5, "no echo of the discarded data")
    c.rst()


@conf_test("TCP-2.7", "tcp", "An ACK for data not yet sent is answered by an ACK and the segment dropped",
           "RFC 9293 3.10.7.4 (SEG.ACK > SND.NXT: send an ACK, drop the segment); RFC 5961 5.2", "MUST",
           ["HOST-1 establishes a connection to port 7", "HOST-1 sends data with ACK = SND.NXT + 1000",
            "Listen for 1 s"], "An ACK from the DUT; the data is not echoed")
def tcp_2_7(t):
    c = est(t)
    t.mark()
    c.send("PA", b"future", ack=seq_add(c.rcv_nxt, 1000), advance=False)
    c.expect_none(lambda s: len(bytes(s.payload)) > 0, 0.5, "no echo of the dropped data")
    c.expect(lambda s: s.flags.A and not s.flags.R, 0.5, "an ACK", since=t.cursor)
    c.rst()


@conf_test("TCP-2.8", "tcp", "RST with an acceptable ACK in SYN-SENT refuses the connection",
           "RFC 9293 3.10.7.3 (SYN-SENT, RST with acceptable ACK: connection reset)", "MUST",
           ["The DUT connects to HOST-1 port P", "HOST-1 answers RST,ACK (ACK = ISN+1)",
            "The DUT server reports the state"], "connect() fails with ECONNREFUSED")
def tcp_2_8(t):
    c, cid, syn = dut_connect(t)
    c.send("RA", seq=0, ack=c.rcv_nxt, ts=False)
    st = t.dut.cmd("status", id=cid, wait=1.5)
    t.check(st["state"] == "error" and st["errno"] == 111, f"state {st}")


@conf_test("TCP-2.9", "tcp", "RST without ACK in SYN-SENT is ignored",
           "RFC 9293 3.10.7.3 (SYN-SENT: a RST without ACK is dropped)", "MUST",
           ["The DUT connects to HOST-1 port P", "HOST-1 sends a RST without ACK",
            "HOST-1 then answers the SYN with a SYN-ACK"], "The connection is established")
def tcp_2_9(t):
    c, cid, syn = dut_connect(t)
    c.send("R", seq=0, ts=False, advance=False)
    time.sleep(0.1)
    accept(t, c)
    st = t.dut.cmd("status", id=cid, wait=1.5)
    t.check(st["state"] == "connected", f"state {st}")


@conf_test("TCP-2.10", "tcp", "A SYN-ACK with an unacceptable ACK in SYN-SENT is answered by RST",
           "RFC 9293 3.10.7.3 (SEG.ACK =< ISS or > SND.NXT: <SEQ=SEG.ACK><CTL=RST>)", "MUST",
           ["The DUT connects to HOST-1 port P", "HOST-1 answers SYN-ACK with ACK = ISN + 1000",
            "Listen for 1 s"], "A RST with SEQ = ISN + 1000")
def tcp_2_10(t):
    c, cid, syn = dut_connect(t)
    bad = seq_add(c.dut_isn, 1000)
    t.mark()
    c.send("SA", ack=bad, options=[("MSS", 1460)], ts=False)
    p = c.expect(lambda s: s.flags.R, 1, "a RST")
    t.check(p[TCP].seq == bad, f"RST seq {p[TCP].seq}, expected {bad}")


@conf_test("TCP-2.11", "tcp", "RST in SYN-RECEIVED removes the half-open connection",
           "RFC 9293 3.10.7.4 (SYN-RECEIVED, passive open: RST returns to LISTEN)", "MUST",
           ["HOST-1 sends a SYN to port 7; the DUT answers", "HOST-1 sends RST (SEQ = ISN+1)",
            "HOST-1 sends the ACK that would have completed the handshake", "Listen for 1 s"],
           "A RST in answer to that ACK")
def tcp_2_11(t):
    c = TcpPeer(t, dport=ECHO)
    c.syn()
    c.send("R", ts=False, advance=False)
    time.sleep(0.1)
    t.mark()
    c.send("A")
    c.expect(lambda s: s.flags.R, 1, "a RST")


@conf_test("TCP-2.12", "tcp", "A segment beyond the receive window is answered by an ACK and dropped",
           "RFC 9293 3.10.7.4 (unacceptable segment: send an ACK)", "MUST",
           ["HOST-1 establishes a connection to port 7", "HOST-1 sends data at SEQ = RCV.NXT + 2^30",
            "Listen for 1 s"], "An ACK with ACK = RCV.NXT (unchanged); no echo")
def tcp_2_12(t):
    c = est(t)
    t.mark()
    c.send("PA", b"far", seq=seq_add(c.snd_nxt, 1 << 30))
    c.expect(is_challenge(c), 1, "an ACK")
    c.expect_none(lambda s: len(bytes(s.payload)) > 0, 0.3, "no echo")
    c.rst()


@conf_test("TCP-2.13", "tcp", "An old duplicate segment is answered by an ACK",
           "RFC 9293 3.10.7.4 (unacceptable segment: send an ACK)", "MUST",
           ["HOST-1 establishes a connection to port 7 and sends 'abc' (echoed)",
            "HOST-1 sends 'abc' again with the old sequence number", "Listen for 1 s"],
           "An ACK with the current ACK number; no second echo")
def tcp_2_13(t):
    c = est(t)
    old = c.snd_nxt
    echo_ok(t, c, b"abc", "the first echo")
    t.mark()
    c.send("PA", b"abc", seq=old)
    c.expect(is_challenge(c), 1, "a duplicate ACK")
    c.expect_none(lambda s: len(bytes(s.payload)) > 0, 0.3, "no second echo")
    c.rst()


@conf_test("TCP-2.14", "tcp", "RST,ACK with an unacceptable ACK in SYN-SENT is dropped",
           "RFC 9293 3.10.7.3 (unacceptable ACK and RST: drop the segment)", "MUST",
           ["The DUT connects to HOST-1 port P", "HOST-1 sends RST,ACK with ACK = ISN + 1000",
            "HOST-1 then answers the SYN with a SYN-ACK"], "The connection is established")
def tcp_2_14(t):
    c, cid, syn = dut_connect(t)
    c.send("RA", seq=0, ack=seq_add(c.dut_isn, 1000), ts=False, advance=False)
    time.sleep(0.1)
    accept(t, c)
    st = t.dut.cmd("status", id=cid, wait=1.5)
    t.check(st["state"] == "connected", f"state {st}")


# --- window scaling -------------------------------------------------------------

@conf_test("TCP-3.1", "tcp", "Window scale is answered in the SYN-ACK; the SYN-ACK window is not scaled",
           "RFC 7323 2.2 / 2.3", "MUST",
           ["HOST-1 sends a SYN with Window Scale 7 to port 7", "Listen for 1 s"],
           "SYN-ACK with a Window Scale option (shift at most 14) and window at most 65535")
def tcp_3_1(t):
    c = TcpPeer(t, dport=ECHO)
    s = c.syn(ws=7)[TCP]
    ws = opt(s, "WScale")
    t.check(ws is not None and ws <= 14, f"WScale {ws}")
    c.rst()


@conf_test("TCP-3.2", "tcp", "No Window Scale option in the SYN-ACK if the SYN had none",
           "RFC 7323 2.2 (MUST NOT send it in a SYN-ACK unless received)", "MUST NOT",
           ["HOST-1 sends a SYN without Window Scale to port 7", "Listen for 1 s"], "SYN-ACK without WScale")
def tcp_3_2(t):
    c = TcpPeer(t, dport=ECHO)
    s = c.syn()[TCP]
    t.check(not has_opt(s, "WScale"), "WScale in SYN-ACK")
    c.rst()


def flight(c, dur=0.6):
    ps = c.collect(lambda s: len(bytes(s.payload)) > 0, dur)
    if not ps:
        return 0
    return max(((p[TCP].seq + plen(p) - c.rcv_nxt) & 0xffffffff) for p in ps)


@conf_test("TCP-3.3", "tcp", "The peer's window scale is applied to its window",
           "RFC 7323 2.3 (shift the window field by Snd.Wind.Shift)", "MUST",
           ["HOST-1 connects to port 19 (source) with Window Scale 14 and window field 1 "
            "(16384 octets)", "HOST-1 does not ACK; listen for 0.6 s"],
           "The DUT sends more than 1 octet and at most 16384 octets beyond the ACK")
def tcp_3_3(t):
    c = TcpPeer(t, dport=SOURCE)
    c.handshake(ws=14, win=1, ack_win=1)
    n = flight(c)
    t.check(1000 < n <= 16384, f"{n} octets in flight")
    c.rst()


@conf_test("TCP-3.4", "tcp", "A window scale above 14 is used as 14",
           "RFC 7323 2.3 (shift > 14: use 14)", "MUST",
           ["HOST-1 connects to port 19 with Window Scale 15, window field 1; it ACKs the first "
            "flight with window field 1", "Listen for 0.6 s"],
           "Outstanding data never exceeds 16384 octets (1 << 14), though cwnd would allow more")
def tcp_3_4(t):
    c = TcpPeer(t, dport=SOURCE)
    c.handshake(ws=15, win=1, ack_win=1)
    first = flight(c, 0.4)
    t.check(first > 0, "no data")
    # acknowledge everything so far, window field 1 again
    ps = c.collect(lambda s: len(bytes(s.payload)) > 0, 0)
    c.rcv_nxt = max((p[TCP].seq + plen(p)) & 0xffffffff for p in ps)
    t.mark()
    c.send("A", win=1)
    n = flight(c, 0.6)
    t.check(n <= 16384, f"{n} octets outstanding: shift 15 used")
    t.check(n > 0, "no data after the ACK")
    c.rst()


# --- timestamps ---------------------------------------------------------------------

@conf_test("TCP-4.1", "tcp", "Timestamps: the SYN-ACK echoes the SYN's TSval",
           "RFC 7323 3.2 (TSecr = TS.Recent)", "MUST",
           ["HOST-1 sends a SYN with TSopt (TSval v) to port 7", "Listen for 1 s"],
           "SYN-ACK with TSopt whose TSecr = v")
def tcp_4_1(t):
    c = TcpPeer(t, dport=ECHO)
    s = c.syn(ts=True)[TCP]
    ts = opt(s, "Timestamp")
    t.check(ts is not None and ts[1] == c.tsval, f"TSopt {ts}, sent TSval {c.tsval}")
    c.rst()


@conf_test("TCP-4.2", "tcp", "No timestamps unless the SYN carried one",
           "RFC 7323 3.2 (TSopt only if received in the SYN)", "MUST NOT",
           ["HOST-1 connects to port 7 without TSopt and sends data", "Listen for 1.5 s"],
           "No TSopt in the SYN-ACK or any later segment")
def tcp_4_2(t):
    c = TcpPeer(t, dport=ECHO)
    s = c.syn()[TCP]
    t.check(not has_opt(s, "Timestamp"), "TSopt in SYN-ACK")
    c.send("A")
    echo_ok(t, c, b"no-ts")
    for p in c.collect(None, 0):
        t.check(not has_opt(p[TCP], "Timestamp"), "TSopt in a later segment")
    c.rst()


@conf_test("TCP-4.3", "tcp", "With timestamps negotiated every segment carries TSopt",
           "RFC 7323 3.2 (MUST send TSopt in every non-RST segment)", "MUST",
           ["HOST-1 connects to port 7 with TSopt and sends data", "Listen for 1.5 s"],
           "Every DUT segment (data and ACKs) carries TSopt")
def tcp_4_3(t):
    c = TcpPeer(t, dport=ECHO)
    c.handshake(ts=True)
    echo_ok(t, c, b"with-ts")
    echo_ok(t, c, b"again")
    for p in c.collect(None, 0.1, since=0):
        if not p[TCP].flags.R:
            t.check(has_opt(p[TCP], "Timestamp"), f"segment without TSopt: {p.summary()}")


@conf_test("TCP-4.4", "tcp", "TSecr echoes the TSval of the latest in-sequence segment",
           "RFC 7323 4.3 (TS.Recent from the segment that advanced the left edge)", "MUST",
           ["HOST-1 connects to port 9 (discard) with TSopt", "HOST-1 sends data with TSval 5000",
            "Then data with TSval 6000", "Listen for 1 s after each"],
           "The ACKs carry TSecr 5000, then 6000")
def tcp_4_4(t):
    c = est(t, DISCARD, ts=True)
    for v in (5000, 6000):
        c.tsval = v - 1
        t.mark()
        c.send("PA", b"x" * 10)
        p = c.expect(lambda s: s.ack == c.snd_nxt, 1, "an ACK")
        ts = opt(p[TCP], "Timestamp")
        t.check(ts and ts[1] == v, f"TSecr {ts[1] if ts else None}, expected {v}")
    c.rst()


@conf_test("TCP-4.5", "tcp", "PAWS: a segment with an old TSval is dropped and acknowledged",
           "RFC 7323 5.3 (R1: TSval < TS.Recent: send ACK, drop)", "MUST",
           ["HOST-1 connects to port 7 with TSopt, sends data with TSval 100000",
            "HOST-1 sends new data with TSval 50", "Listen for 1 s"],
           "An ACK that does not acknowledge the new data; no echo of it")
def tcp_4_5(t):
    c = TcpPeer(t, dport=ECHO)
    c.tsval = 99990
    c.handshake(ts=True)
    echo_ok(t, c, b"recent")
    before = c.snd_nxt
    t.mark()
    c.send("PA", b"ancient", options=[("NOP", None), ("NOP", None), ("Timestamp", (50, c.ts_recent))])
    p = c.expect(lambda s: s.flags.A and not s.flags.R, 1, "an ACK")
    t.check(p[TCP].ack == before, f"ACK {p[TCP].ack}: the old segment was accepted")
    c.expect_none(lambda s: len(bytes(s.payload)) > 0, 0.3, "no echo")
    c.rst()


@conf_test("TCP-4.6", "tcp", "A RST is accepted whatever its timestamp",
           "RFC 7323 5.3 / 5.2 (RSTs acceptable regardless of timestamp)", "SHOULD",
           ["HOST-1 connects to port 7 with TSopt (TSval 100000)",
            "HOST-1 sends RST with SEQ = RCV.NXT and TSval 50", "HOST-1 sends data", "Listen for 1 s"],
           "The data is answered by RST (the connection was reset)")
def tcp_4_6(t):
    c = TcpPeer(t, dport=ECHO)
    c.tsval = 99990
    c.handshake(ts=True)
    c.send("R", options=[("NOP", None), ("NOP", None), ("Timestamp", (50, 0))], advance=False)
    time.sleep(0.1)
    t.mark()
    c.send("PA", b"after")
    c.expect(lambda s: s.flags.R, 1, "a RST")


@conf_test("TCP-4.7", "tcp", "A TSopt on a connection that did not negotiate timestamps is ignored",
           "RFC 7323 3.2 (MUST be ignored and the packet processed normally)", "MUST",
           ["HOST-1 connects to port 7 without TSopt", "HOST-1 sends data carrying a TSopt",
            "Listen for 1.5 s"], "The data is echoed, without TSopt")
def tcp_4_7(t):
    c = est(t)
    t.mark()
    c.send("PA", b"stray-ts", options=[("NOP", None), ("NOP", None), ("Timestamp", (777, 0))])
    got = c.recv(8, 1.5)
    t.check(got == b"stray-ts", f"echo {got!r}")
    for p in c.collect(None, 0):
        t.check(not has_opt(p[TCP], "Timestamp"), "DUT sent TSopt")
    c.rst()


# --- SACK -----------------------------------------------------------------------------

@conf_test("TCP-5.1", "tcp", "SACK-permitted is answered in the SYN-ACK",
           "RFC 2018 2 (SACK-permitted in SYN)", "MAY",
           ["HOST-1 sends a SYN with SACK-permitted to port 7", "Listen for 1 s"],
           "SYN-ACK with SACK-permitted (as Linux)")
def tcp_5_1(t):
    c = TcpPeer(t, dport=ECHO)
    t.check(has_opt(c.syn(sack=True)[TCP], "SAckOK"), "no SACK-permitted")
    c.rst()


def sack_blocks(s):
    v = opt(s, "SAck")
    if not v:
        return []
    return [(v[i], v[i + 1]) for i in range(0, len(v) - 1, 2)]


@conf_test("TCP-5.2", "tcp", "An out-of-order segment is reported in a SACK block of an immediate ACK",
           "RFC 2018 4 (first block: the segment that triggered the ACK); RFC 5681 4.2 (immediate dup ACK)",
           "SHOULD",
           ["HOST-1 connects to port 9 with SACK-permitted", "HOST-1 sends 100 octets at RCV.NXT+100 "
            "(a hole of 100)", "Listen for 0.5 s"],
           "A duplicate ACK (ACK = RCV.NXT) with a SACK block [RCV.NXT+100, RCV.NXT+200)")
def tcp_5_2(t):
    c = est(t, DISCARD, sack=True)
    t.mark()
    c.send("PA", b"o" * 100, seq=seq_add(c.snd_nxt, 100))
    p = c.expect(lambda s: s.ack == c.snd_nxt, 0.5, "a duplicate ACK")
    b = sack_blocks(p[TCP])
    t.check(b and b[0] == (seq_add(c.snd_nxt, 100), seq_add(c.snd_nxt, 200)), f"SACK blocks {b}")
    c.rst()


@conf_test("TCP-5.3", "tcp", "No SACK blocks without SACK-permitted",
           "RFC 2018 2 (MUST NOT send SACK unless permitted)", "MUST NOT",
           ["HOST-1 connects to port 9 without SACK-permitted", "HOST-1 sends an out-of-order segment",
            "Listen for 0.5 s"], "A duplicate ACK without a SACK option")
def tcp_5_3(t):
    c = est(t, DISCARD)
    t.mark()
    c.send("PA", b"o" * 100, seq=seq_add(c.snd_nxt, 100))
    p = c.expect(lambda s: s.ack == c.snd_nxt, 0.5, "a duplicate ACK")
    t.check(not has_opt(p[TCP], "SAck"), "SACK option sent")
    c.rst()


@conf_test("TCP-5.4", "tcp", "With two holes, the most recent block is reported first",
           "RFC 2018 4 (first SACK block: most recently received)", "MUST",
           ["HOST-1 connects to port 9 with SACK", "HOST-1 sends [+100,+200) then [+300,+400)",
            "Listen for 0.5 s"], "The second duplicate ACK lists [+300,+400) first, then [+100,+200)")
def tcp_5_4(t):
    c = est(t, DISCARD, sack=True)
    n = c.snd_nxt
    c.send("PA", b"a" * 100, seq=seq_add(n, 100))
    c.expect(lambda s: s.ack == n, 0.5, "a first duplicate ACK")
    t.mark()
    c.send("PA", b"b" * 100, seq=seq_add(n, 300))
    p = c.expect(lambda s: s.ack == n, 0.5, "a second duplicate ACK")
    b = sack_blocks(p[TCP])
    t.check(len(b) >= 2 and b[0] == (seq_add(n, 300), seq_add(n, 400)) and
            b[1] == (seq_add(n, 100), seq_add(n, 200)), f"SACK blocks {b}")
    c.rst()


def take_flight(t, c, want=6):
    ps = c.collect(lambda s: len(bytes(s.payload)) > 0, 0.15)
    segs = {}
    for p in ps:
        segs.setdefault(p[TCP].seq, plen(p))
    order = sorted(segs, key=lambda s: (s - c.rcv_nxt) & 0xffffffff)
    t.check(len(order) >= want, f"only {len(order)} segments in the first flight")
    return order, segs


@conf_test("TCP-5.5", "tcp", "The DUT retransmits only what SACK reports missing",
           "RFC 6675 (SACK-based loss recovery); RFC 2018 (SACKed data not retransmitted)", "SHOULD",
           ["HOST-1 connects to port 19 (source) with SACK", "HOST-1 receives the first flight and "
            "sends 3 duplicate ACKs for its first segment, SACKing all the others", "Listen for 1 s"],
           "The first segment is retransmitted; no SACKed segment is")
def tcp_5_5(t):
    c = TcpPeer(t, dport=SOURCE)
    c.handshake(sack=True)
    order, segs = take_flight(t, c)
    first = order[0]
    lo = order[1]
    hi = seq_add(order[-1], segs[order[-1]])
    t.mark()
    for _ in range(3):
        c.send("A", ack=first, options=[("SAck", (lo, hi))])
    t0 = time.monotonic()
    c.expect(lambda s: s.seq == first and len(bytes(s.payload)) > 0, 1, "the retransmission of the hole")
    late = [p for p in c.collect(lambda s: len(bytes(s.payload)) > 0, 0.3)
            if p.time > t0 + 0.05 and ((p[TCP].seq - lo) & 0xffffffff) < ((hi - lo) & 0xffffffff)]
    t.check(not late, f"SACKed data retransmitted: seq {late[0][TCP].seq if late else ''}")
    c.rst()


# --- retransmission --------------------------------------------------------------------

@conf_test("TCP-6.1", "tcp", "The DUT's SYN is retransmitted after the 1 s initial RTO, then backs off",
           "RFC 6298 2.1 (initial RTO 1 s) / 5.5 (RTO doubles)", "MUST",
           ["The DUT connects to HOST-1 port P; HOST-1 stays silent", "Listen for 3.8 s"],
           "The SYN again after 0.8-1.6 s, then after at least 1.5 times that")
def tcp_6_1(t):
    c, cid, syn = dut_connect(t)
    ps = [syn] + c.t.collect(lambda p: TCP in p and p[TCP].dport == c.sport and p[TCP].flags.S, 3.8,
                             since=t.cursor)[1:]
    t.check(len(ps) >= 3, f"{len(ps) - 1} retransmissions")
    g1, g2 = ps[1].time - ps[0].time, ps[2].time - ps[1].time
    t.check(0.8 <= g1 <= 1.6, f"first retransmission after {g1:.2f} s")
    t.check(g2 >= 1.5 * g1, f"then {g2:.2f} s: no backoff")
    c.rst()


@conf_test("TCP-6.2", "tcp", "Unacknowledged data is retransmitted with exponential backoff",
           "RFC 6298 5.4 / 5.5 (retransmit; double the RTO)", "MUST",
           ["HOST-1 connects to port 7 and sends data; it never ACKs the echo", "Listen for 4 s"],
           "The echoed segment is retransmitted at least 3 times, with growing intervals (the last "
           "at least 1.5 times the one before)", timeout=12)
def tcp_6_2(t):
    c = est(t)
    t.mark()
    c.send("PA", b"retransmit-me")
    ps = c.collect(lambda s: len(bytes(s.payload)) > 0, 4)
    t.check(len(ps) >= 4, f"{len(ps) - 1} retransmissions in 4 s")
    t.check(all(p[TCP].seq == ps[0][TCP].seq for p in ps), "different sequence numbers")
    gaps = [b.time - a.time for a, b in zip(ps, ps[1:])]
    t.check(gaps[-1] >= 1.5 * gaps[-2], f"intervals {[round(g, 2) for g in gaps]}: no backoff")
    c.rst()


@conf_test("TCP-6.3", "tcp", "Three duplicate ACKs trigger a fast retransmit",
           "RFC 5681 3.2 (fast retransmit on the third duplicate ACK)", "SHOULD",
           ["HOST-1 connects to port 19 (source) without SACK", "HOST-1 sends 3 duplicate ACKs for the "
            "first segment of the first flight", "Listen for 0.15 s"],
           "The first segment is retransmitted within 0.15 s (before any RTO)")
def tcp_6_3(t):
    c = TcpPeer(t, dport=SOURCE)
    c.handshake()
    order, segs = take_flight(t, c, 4)
    t.mark()
    for _ in range(3):
        c.send("A", ack=order[0])
    c.expect(lambda s: s.seq == order[0] and len(bytes(s.payload)) > 0, 0.15, "a fast retransmit")
    c.rst()


# --- windows ------------------------------------------------------------------------

@conf_test("TCP-7.1", "tcp", "A zero window is probed, with backoff, and the connection kept",
           "RFC 9293 3.8.6.1 (MUST probe a zero window); RFC 1122 4.2.2.17", "MUST",
           ["HOST-1 connects to port 19 (source), the handshake's ACK advertising window 1000",
            "HOST-1 ACKs the 1000 octets with window 0", "Listen for 3 s, ACKing each probe with window 0"],
           "At least 2 probes (at most 1 octet beyond the window each), intervals growing")
def tcp_7_1(t):
    c = TcpPeer(t, dport=SOURCE)
    c.handshake(ack_win=1000)
    got = c.recv(1000, 1.5, ack=False)
    t.check(len(got) == 1000, f"received {len(got)} of the 1000 octets the window allowed")
    end = time.monotonic() + 3
    probes = []
    t.mark()
    c.send("A", win=0)
    while time.monotonic() < end:
        p = t.wait_for(lambda p: c.is_mine(p), end - time.monotonic())
        if p is None:
            break
        t.mark()
        probes.append(p)
        c.send("A", win=0)
    t.check(len(probes) >= 2, f"{len(probes)} probes in 3 s")
    for p in probes:
        over = (p[TCP].seq + plen(p) - c.rcv_nxt) & 0xffffffff
        t.check(over <= 1 or over > 1 << 31, f"probe sends {over} octets into a zero window")
    gaps = [b.time - a.time for a, b in zip(probes, probes[1:])]
    if len(gaps) >= 2:
        t.check(gaps[-1] >= gaps[0], f"probe intervals {[round(g, 2) for g in gaps]}")
    c.rst()


def fill_window(t, c):
    """Send data to the HOLD service, never more than its advertised window,
    until it advertises window 0."""
    win = c.peer_win
    for _ in range(200):
        if win == 0:
            return
        t.mark()
        c.send("PA", b"w" * min(500, win))
        p = c.expect(lambda s: s.flags.A and s.ack == c.snd_nxt, 1, "an ACK of the data")
        win = p[TCP].window
    t.fail("the DUT never advertised a zero window")


@conf_test("TCP-7.2", "tcp", "A full receive buffer is advertised as a zero window; probes are answered",
           "RFC 9293 3.8.6.1 (MUST accept and acknowledge a zero-window probe with the current window)",
           "MUST",
           ["HOST-1 connects to port 10 (hold: small buffer, never read) and sends 500-octet segments "
            "until the DUT advertises window 0", "HOST-1 sends a 1-octet probe", "Listen for 1 s"],
           "An ACK with window 0 that does not acknowledge the probe octet")
def tcp_7_2(t):
    c = est(t, HOLD)
    fill_window(t, c)
    t.mark()
    c.send("PA", b"p", advance=False)
    p = c.expect(lambda s: s.flags.A, 1, "an ACK to the probe")
    t.check(p[TCP].ack == c.snd_nxt and p[TCP].window == 0, f"ACK {p[TCP].ack} window {p[TCP].window}")
    c.rst()


@conf_test("TCP-7.3", "tcp", "When the application reads, the DUT opens the window with an update",
           "RFC 9293 3.8.6.2.2 / RFC 1122 4.2.3.3 (window update when the window opens enough)", "SHOULD",
           ["As TCP-7.2 up to the zero window", "The DUT server reads everything from the socket",
            "Listen for 1 s"], "An ACK with a non-zero window")
def tcp_7_3(t):
    c = est(t, HOLD)
    fill_window(t, c)
    held = held_ids(t)
    t.check(held, "the DUT server holds no connection")
    t.mark()
    for _ in range(10):
        r = t.dut.cmd("recv", id=held[-1], wait=0.1)
        if not r["data"]:
            break
    c.expect(lambda s: s.flags.A and s.window > 0, 1, "a window update")
    c.rst()


# --- closing ---------------------------------------------------------------------

def closed_by_dut(t):
    """Connect to the CLOSE service (port 11): the DUT closes at once."""
    c = est(t, CLOSE)
    p = c.expect(lambda s: s.flags.F, 1, "the DUT's FIN")
    c.rcv_nxt = seq_add(p[TCP].seq, plen(p) + 1)
    return c


@conf_test("TCP-8.1", "tcp", "In TIME-WAIT a retransmitted FIN is acknowledged again",
           "RFC 9293 3.10.7.4 (TIME-WAIT: acknowledge a retransmitted FIN, restart 2 MSL)", "MUST",
           ["HOST-1 connects to port 11 (the DUT closes first)", "HOST-1 ACKs the DUT's FIN and sends "
            "its own FIN; the DUT ACKs it (TIME-WAIT)", "HOST-1 retransmits its FIN", "Listen for 1 s"],
           "A second ACK of HOST-1's FIN")
def tcp_8_1(t):
    c = closed_by_dut(t)
    fin_seq = c.snd_nxt
    t.mark()
    c.send("FA")
    c.expect(lambda s: s.flags.A and s.ack == c.snd_nxt, 1, "the ACK of our FIN")
    t.mark()
    c.send("FA", seq=fin_seq)
    c.expect(lambda s: s.flags.A and s.ack == c.snd_nxt, 1, "an ACK of the retransmitted FIN")


@conf_test("TCP-8.2", "tcp", "A new SYN with a higher sequence number reopens a TIME-WAIT connection",
           "RFC 9293 3.10.7.4 / RFC 6191 (MAY accept a new SYN in TIME-WAIT)", "MAY",
           ["As TCP-8.1 until TIME-WAIT", "HOST-1 sends a SYN from the same port with ISN = old + 100000",
            "Listen for 1 s"], "A SYN-ACK (as Linux)")
def tcp_8_2(t):
    c = closed_by_dut(t)
    t.mark()
    c.send("FA")
    c.expect(lambda s: s.flags.A and s.ack == c.snd_nxt, 1, "the ACK of our FIN")
    n = TcpPeer(t, dport=CLOSE, sport=c.sport)
    n.isn = n.snd_nxt = seq_add(c.snd_nxt, 100000)
    n.syn()
    n.rst()


@conf_test("TCP-8.3", "tcp", "Passive close: FIN is acknowledged, the DUT closes, then the connection is gone",
           "RFC 9293 3.6 / 3.10.7.4 (CLOSE-WAIT, LAST-ACK)", "MUST",
           ["HOST-1 connects to port 7 and sends FIN", "The echo service closes on EOF: the DUT sends FIN",
            "HOST-1 ACKs it and then sends data", "Listen for 1 s"],
           "The DUT ACKs HOST-1's FIN and sends its own FIN; the later data is answered by RST")
def tcp_8_3(t):
    c = est(t)
    t.mark()
    c.send("FA")
    p = c.expect(lambda s: s.flags.F, 1.5, "the DUT's FIN")
    t.check(p[TCP].ack == c.snd_nxt, "FIN does not acknowledge ours")
    c.rcv_nxt = seq_add(p[TCP].seq, 1)
    c.send("A")
    time.sleep(0.1)
    t.mark()
    c.send("PA", b"late", seq=c.snd_nxt)
    c.expect(lambda s: s.flags.R, 1, "a RST")


@conf_test("TCP-8.4", "tcp", "Simultaneous close: a FIN in FIN-WAIT-1 is acknowledged (CLOSING)",
           "RFC 9293 3.6 (Figure 13) / 3.10.7.4", "MUST",
           ["The DUT connects to HOST-1; HOST-1 accepts", "The DUT server closes: the DUT sends FIN",
            "HOST-1 sends its FIN without acknowledging the DUT's", "Listen for 1 s"],
           "The DUT acknowledges HOST-1's FIN")
def tcp_8_4(t):
    c, cid, syn = dut_connect(t)
    accept(t, c)
    t.mark()
    t.dut.cmd("close", id=cid)
    p = c.expect(lambda s: s.flags.F, 1, "the DUT's FIN")
    t.mark()
    c.send("FA")               # ACK field = RCV.NXT before the DUT's FIN
    c.expect(lambda s: s.flags.A and s.ack == c.snd_nxt, 1, "the ACK of our FIN")
    c.rcv_nxt = seq_add(p[TCP].seq, 1)
    c.send("A")


@conf_test("TCP-8.5", "tcp", "Data arriving after the DUT's application closed is answered by RST",
           "RFC 9293 3.10.7.4 / RFC 1122 4.2.2.13 (no receiver: reset)", "SHOULD",
           ["HOST-1 connects to port 11 (the DUT closes at once)", "HOST-1 sends data", "Listen for 1 s"],
           "A RST")
def tcp_8_5(t):
    c = closed_by_dut(t)
    t.mark()
    c.send("PA", b"nobody-reads")
    c.expect(lambda s: s.flags.R, 1, "a RST")


@conf_test("TCP-8.6", "tcp", "Closing with unread data sends RST, not FIN",
           "RFC 1122 4.2.2.13; RFC 2525 2.17 (close with pending receive data: RST)", "SHOULD",
           ["HOST-1 connects to port 10 (hold) and sends 100 octets (ACKed, unread)",
            "The DUT server closes the socket", "Listen for 1 s"], "A RST (and no FIN)")
def tcp_8_6(t):
    c = est(t, HOLD)
    t.mark()
    c.send("PA", b"u" * 100)
    c.expect(lambda s: s.ack == c.snd_nxt, 1, "the ACK of the data")
    held = held_ids(t)
    t.check(held, "the DUT server holds no connection")
    t.mark()
    t.dut.cmd("close", id=held[-1])
    p = c.expect(lambda s: s.flags.R or s.flags.F, 1, "a RST")
    t.check(p[TCP].flags.R, f"got {p[TCP].flags}, expected RST")


# --- urgent ------------------------------------------------------------------------

def urg(t, data, urp, what):
    c = est(t, DISCARD)
    t.mark()
    c.send("PAU", data, urgptr=urp)
    c.expect(lambda s: s.ack == c.snd_nxt, 1, f"an ACK covering the urgent segment ({what})")
    t.mark()
    c.send("PA", b"after")
    c.expect(lambda s: s.ack == c.snd_nxt, 1, "an ACK of the next segment")
    c.rst()


@conf_test("TCP-9.1", "tcp", "A segment with URG and the pointer inside it is accepted",
           "RFC 9293 3.8.5 (MUST support the urgent mechanism); RFC 6093", "MUST",
           ["HOST-1 connects to port 9 (discard) and sends 20 octets with URG, pointer 10",
            "HOST-1 sends 5 more octets"], "Both segments are acknowledged")
def tcp_9_1(t):
    urg(t, b"u" * 20, 10, "pointer inside")


@conf_test("TCP-9.2", "tcp", "An urgent pointer beyond the segment is accepted safely",
           "RFC 9293 3.8.5 (urgent pointer may point beyond the segment); RFC 6093", "MUST",
           ["HOST-1 connects to port 9 and sends 10 octets with URG, pointer 5000",
            "HOST-1 sends 5 more octets"], "Both segments are acknowledged")
def tcp_9_2(t):
    urg(t, b"u" * 10, 5000, "pointer beyond")


@conf_test("TCP-9.3", "tcp", "URG with pointer 0 is accepted safely",
           "RFC 6093 (urgent pointer semantics); RFC 9293 3.8.5", "MUST",
           ["HOST-1 connects to port 9 and sends 10 octets with URG, pointer 0",
            "HOST-1 sends 5 more octets"], "Both segments are acknowledged")
def tcp_9_3(t):
    urg(t, b"u" * 10, 0, "pointer 0")


# --- acknowledgment behaviour ------------------------------------------------------

@conf_test("TCP-10.1", "tcp", "Data is acknowledged within 500 ms",
           "RFC 9293 3.8.6.3 / RFC 1122 4.2.3.2 (ACK delay MUST be less than 0.5 s)", "MUST",
           ["HOST-1 connects to port 9 (discard) and sends 100 octets", "Listen for 0.5 s"],
           "An ACK of the 100 octets within 0.5 s")
def tcp_10_1(t):
    c = est(t, DISCARD)
    t.mark()
    c.send("PA", b"d" * 100)
    c.expect(lambda s: s.ack == c.snd_nxt, 0.5, "an ACK within 0.5 s")
    c.rst()


@conf_test("TCP-10.2", "tcp", "Filling a hole is acknowledged at once, covering the queued data",
           "RFC 5681 4.2 (SHOULD ACK immediately a segment that fills a gap)", "SHOULD",
           ["HOST-1 connects to port 9, sends [+100,+200) then [0,+100)", "Listen for 0.3 s"],
           "An ACK for +200 within 0.3 s")
def tcp_10_2(t):
    c = est(t, DISCARD)
    n = c.snd_nxt
    c.send("PA", b"b" * 100, seq=seq_add(n, 100))
    t.mark()
    c.send("PA", b"a" * 100, seq=n)
    c.expect(lambda s: s.ack == seq_add(n, 200), 0.3, "an ACK of everything")
    c.rst()


@conf_test("TCP-10.3", "tcp", "ICMP Port Unreachable aborts a connection attempt",
           "RFC 1122 4.2.3.9 (hard errors: SHOULD abort); RFC 5461", "SHOULD",
           ["The DUT connects to HOST-1 port P", "HOST-1 answers the SYN with ICMP Port Unreachable",
            "The DUT server reports the state"], "connect() fails with ECONNREFUSED")
def tcp_10_3(t):
    c, cid, syn = dut_connect(t)
    t.send(IP(src=H1_4, dst=DUT4) / ICMP(type=3, code=3) / Raw(bytes(syn[IP])[:28]))
    st = t.dut.cmd("status", id=cid, wait=1.5)
    t.check(st["state"] == "error" and st["errno"] == 111, f"state {st}")


@conf_test("TCP-10.4", "tcp", "Fragmentation Needed lowers the segment size (path MTU discovery)",
           "RFC 1191 3 (MUST reduce the PMTU estimate); RFC 1122 4.2.2.6", "MUST",
           ["HOST-1 connects to port 19 (source)", "HOST-1 answers a 1500-octet segment with ICMP "
            "Fragmentation Needed, next-hop MTU 1280, and does not ACK", "Listen for 2 s"],
           "The segment is retransmitted in datagrams of at most 1280 octets", dirty=True)
def tcp_10_4(t):
    c = TcpPeer(t, dport=SOURCE)
    c.handshake()
    seg = c.expect_data(1)
    t.check(seg[IP].len == 1500, f"first segment in a {seg[IP].len}-octet datagram")
    t.mark()
    t.send(IP(src=H1_4, dst=DUT4) / ICMP(type=3, code=4, nexthopmtu=1280) / Raw(bytes(seg[IP])[:28]))
    p = c.expect(lambda s: s.seq == seg[TCP].seq, 2, "the retransmission")
    t.check(p[IP].len <= 1280, f"retransmitted in a {p[IP].len}-octet datagram")
    c.rst()


@conf_test("TCP-10.5", "tcp", "The DUT's TCP segments carry DF (path MTU discovery on)",
           "RFC 1191 3 (DF set when doing PMTU discovery); RFC 1122 4.2.2.6", "MAY",
           ["HOST-1 connects to port 19", "Listen for 1 s"], "Data segments with DF set (as Linux)")
def tcp_10_5(t):
    c = TcpPeer(t, dport=SOURCE)
    c.handshake()
    seg = c.expect_data(1)
    t.check(seg[IP].flags.DF, "DF not set")
    c.rst()


@conf_test("TCP-11.1", "tcp", "IPv6: handshake and echo",
           "RFC 9293; RFC 8200 8.1 (checksum with the IPv6 pseudo-header)", "MUST",
           ["HOST-1 connects to [2001:db8::1]:7 and sends data", "Listen for 1.5 s"], "The echo", family="6")
def tcp_11_1(t):
    c = TcpPeer(t, v6=True, dport=ECHO)
    c.handshake(mss=1440)
    echo_ok(t, c, b"v6-echo", "the echo")
    c.rst()


@conf_test("TCP-11.2", "tcp", "IPv6: a SYN to a closed port is answered by RST,ACK",
           "RFC 9293 3.10.7.1", "MUST",
           ["HOST-1 sends a SYN to [2001:db8::1]:7999", "Listen for 1 s"], "RST,ACK with ACK = ISN+1", family="6")
def tcp_11_2(t):
    c = TcpPeer(t, v6=True, dport=CLOSED)
    t.mark()
    c.send("S", options=[("MSS", 1440)])
    p = c.expect(lambda s: s.flags.R, 1, "a RST")
    t.check(p[TCP].ack == c.snd_nxt, "ACK")
