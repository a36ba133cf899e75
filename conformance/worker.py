#!/usr/bin/env python3
"""One tester: runs inside a tester namespace, drives one DUT namespace.

Started by run.py as
  ip netns exec <tester-ns> python3 worker.py --column C --dut-ns D --dut-if I --tester-if T ...
it reads test keys (area/ID) on stdin, one per line, and writes one JSON
result per line on stdout: {"key", "ok", "reason", "secs", "log"}.
For each test it starts a fresh DUT server, proves the DUT alive (ARP and
NS answered for its addresses: the readiness probe, from a host no test
plays), runs the test, stops the server and undoes the test's changes.
"""

import argparse
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lib import harness as H  # noqa: E402
from lib.harness import Ether, ARP, IPv6, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptSrcLLAddr  # noqa: E402

PROBE_SECS = 3.0


def probe(ctx, v4=True, v6=True):
    """Wait until the DUT answers ARP for 192.0.2.1 and NS for 2001:db8::1."""
    end = time.monotonic() + PROBE_SECS
    got4, got6 = not v4, not v6
    start = ctx.mark()
    while time.monotonic() < end and not (got4 and got6):
        if not got4:
            ctx.send(Ether(src=H.PROBER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                     ARP(op=1, hwsrc=H.PROBER_MAC, psrc=H.PROBER4, pdst=H.DUT4))
        if not got6:
            ctx.send(Ether(src=H.PROBER_MAC, dst=H.mcast_mac6(H.sol_node(H.DUT6))) /
                     IPv6(src=H.PROBER6, dst=H.sol_node(H.DUT6), hlim=255) /
                     ICMPv6ND_NS(tgt=H.DUT6) / ICMPv6NDOptSrcLLAddr(lladdr=H.PROBER_MAC))
        step = time.monotonic() + 0.25
        while time.monotonic() < step and not (got4 and got6):
            if not got4:
                got4 = ctx.wait_for(lambda p: ARP in p and p[ARP].op == 2 and p[ARP].psrc == H.DUT4
                                    and p[ARP].pdst == H.PROBER4, 0.05, since=start) is not None
            if not got6:
                got6 = ctx.wait_for(lambda p: ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == H.DUT6
                                    and p[IPv6].dst == H.PROBER6, 0.05, since=start) is not None
    if not (got4 and got6):
        miss = [n for n, g in (("ARP for 192.0.2.1", got4), ("NS for 2001:db8::1", got6)) if not g]
        raise H.Fail(f"DUT not alive: no answer to {' and '.join(miss)} in {PROBE_SECS:g}s "
                     "(readiness probe)")


def run_one(td, wire, dut):
    ctx = None
    t0 = time.monotonic()
    try:
        dut.start()
        ctx = H.Ctx(wire, dut, td)
        if td.probe:
            probe(ctx, v4="4" in td.family, v6="6" in td.family)
            ctx.mark()
        td.func(ctx)
        ok, reason = True, ""
    except H.Fail as e:
        ok, reason = False, str(e)
    except Exception as e:  # noqa: BLE001 - a crashing test is a failing test
        ok, reason = False, f"test error: {type(e).__name__}: {e} " + \
            traceback.format_exc().strip().splitlines()[-3].strip()
    finally:
        if not ok and ctx is not None and os.environ.get("CONF_DEBUG_NSTAT") and dut.linux:
            out = H.sh("ip", "netns", "exec", dut.ns, "cat", "/proc/net/snmp", "/proc/net/netstat",
                       check=False).splitlines()
            for hdr, val in zip(out[0::2], out[1::2]):
                for k, v in zip(hdr.split()[1:], val.split()[1:]):
                    if v != "0" and hdr.split()[0] in ("Tcp:", "TcpExt:", "Ip:"):
                        ctx.note(f"{hdr.split()[0]} {k} {v}")
            ctx.note(H.sh("ip", "netns", "exec", dut.ns, "ss", "-tan", check=False))
            import struct as _st
            st = wire.sock.getsockopt(263, 6, 8)   # SOL_PACKET, PACKET_STATISTICS
            ctx.note(f"packet stats (packets, drops): {_st.unpack('II', st[:8])}")
            ctx.note(H.sh("ip", "-s", "link", "show", "dev", wire.iface, check=False))
        try:
            dut.stop()
        except Exception:  # noqa: BLE001
            pass
        try:
            dut.cleanup(td.dirty)
        except Exception as e:  # noqa: BLE001
            if ok:
                ok, reason = False, f"cleanup failed: {e}"
        wire.resolve.clear()
    return {"key": td.key, "ok": ok, "reason": reason, "secs": round(time.monotonic() - t0, 2),
            "log": ctx.log if ctx else []}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--column", required=True)
    ap.add_argument("--dut-ns", required=True)
    ap.add_argument("--dut-if", required=True)
    ap.add_argument("--tester-if", required=True)
    ap.add_argument("--libshunt", default="")
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    reg = H.load_tests()
    wire = H.Wire(a.tester_if)
    dut = H.Dut(a.column, a.dut_ns, a.dut_if, a.libshunt, a.python)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        key = line.strip()
        if not key:
            continue
        td = reg.get(key)
        if td is None:
            res = {"key": key, "ok": False, "reason": "no such test", "secs": 0, "log": []}
        else:
            res = run_one(td, wire, dut)
        print(json.dumps(res), flush=True)
        # Drop frames older than this test (memory).
        with wire.cv:
            wire.pkts.clear()
    wire.close()


if __name__ == "__main__":
    main()
