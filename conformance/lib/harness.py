"""The conformance harness: test registry, the tester's wire, the DUT's control.

A test is a function taking a Ctx, registered with @conf_test(...) and its
IxANVL-style description (id, area, description, RFC reference with its
section and MUST/SHOULD/MAY, topology, steps, expected packets). It sends
frames with ctx.send() and asserts on what the DUT puts on the wire with
ctx.expect() / ctx.expect_none() / ctx.collect(). A test that expects
nothing (a silent discard) is only meaningful because every test first
proves the DUT alive (the worker's readiness probe).
"""

import json
import os
import random
import select
import socket
import struct
import subprocess
import threading
import time

from scapy.all import (ARP, Ether, IP, IPv6, ICMP, UDP, TCP, Raw, conf as scapy_conf)  # noqa: F401
from scapy.layers.inet6 import (ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptSrcLLAddr,
                                ICMPv6NDOptDstLLAddr, ICMPv6EchoRequest, ICMPv6EchoReply)

scapy_conf.verb = 0

# --- addressing (192.0.2.0/24 and 2001:db8::/64 only) ---------------------

DUT_MAC = "02:00:00:00:00:01"
H1_MAC = "02:00:00:00:00:02"      # the tester's own veth MAC; HOST-1
H2_MAC = "02:00:00:00:00:03"      # HOST-2 (a second host the tester plays)
X_MAC = "02:00:00:00:00:0a"       # a spare MAC (address changes)
PROBER_MAC = "02:00:00:00:00:fa"  # the readiness probe's host; no test uses it

DUT4, H1_4, H2_4, UNUSED4, BCAST4 = "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.99", "192.0.2.255"
PROBER4 = "192.0.2.250"
DUT6, H1_6, H2_6, UNUSED6 = "2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::99"
PROBER6 = "2001:db8::fa"


def eui64_ll(mac):
    b = bytearray(int(x, 16) for x in mac.split(":"))
    b[0] ^= 2
    iid = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return socket.inet_ntop(socket.AF_INET6, b"\xfe\x80" + b"\0" * 6 + iid)


DUT_LL, H1_LL, H2_LL = eui64_ll(DUT_MAC), eui64_ll(H1_MAC), eui64_ll(H2_MAC)
ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"


def sol_node(addr):
    b = socket.inet_pton(socket.AF_INET6, addr)
    return socket.inet_ntop(socket.AF_INET6, bytes.fromhex("ff0200000000000000000001ff") + b[13:])


def mcast_mac6(addr):
    b = socket.inet_pton(socket.AF_INET6, addr)
    return "33:33:" + ":".join(f"{x:02x}" for x in b[12:])


TOPOLOGIES = {
    "T1": "One link: the DUT (192.0.2.1, 2001:db8::1, link-local from its MAC) and the "
          "tester playing HOST-1 (192.0.2.2, 2001:db8::2) on a veth pair.",
    "T2": "One link: the DUT, and the tester playing HOST-1 (192.0.2.2, 2001:db8::2) and "
          "HOST-2 (192.0.2.3, 2001:db8::3, MAC 02:00:00:00:00:03).",
    "T3": "As T1, the tester also playing a router (HOST-1's link-local address) "
          "sending Router Advertisements.",
}

AREAS = ["arp", "ipv4", "icmpv4", "ipv6", "icmpv6", "ndp", "udp", "tcp"]

# --- registry ----------------------------------------------------------------

REGISTRY = {}


class TestDef:
    def __init__(self, func, **kw):
        self.func = func
        self.__dict__.update(kw)

    @property
    def key(self):
        return f"{self.area}/{self.id}"

    def describe(self):
        lines = [f"TEST_ID          {self.id}   (area {self.area})",
                 f"TEST_DESCRIPTION {self.desc}",
                 f"TEST_REFERENCE   {self.ref}",
                 f"TEST_CLASSIFICATION {self.level}",
                 f"TEST_TOPOLOGY    {self.topo}: {TOPOLOGIES.get(self.topo, '')}",
                 "TEST_METHOD"]
        for i, s in enumerate(self.steps, 1):
            lines.append(f"  {i}. {s}")
        lines.append(f"TEST_EXPECT      {self.expect}")
        if self.note:
            lines.append(f"TEST_NOTE        {self.note}")
        return "\n".join(lines)


V6_AREAS = ("ipv6", "icmpv6", "ndp")


def conf_test(id, area, desc, ref, level, steps, expect, topo="T1", timeout=10,
              dirty=False, note="", probe=True, family=None):
    """Register a test. `timeout` is the test's own bound in seconds (the
    runner kills it after timeout+15); `dirty` asks the worker to restore the
    Linux DUT's full baseline afterwards (RA-learned state, MTU...); `probe`
    False skips the readiness probe (tests that start the DUT themselves)."""
    assert area in AREAS, area
    assert level in ("MUST", "SHOULD", "MAY", "MUST NOT", "SHOULD NOT"), level

    def deco(f):
        td = TestDef(f, id=id, area=area, desc=desc, ref=ref, level=level, steps=list(steps),
                     expect=expect, topo=topo, timeout=timeout, dirty=dirty, note=note, probe=probe,
                     family=family or ("6" if area in V6_AREAS else "4"))
        if td.key in REGISTRY:
            raise RuntimeError(f"duplicate test {td.key}")
        REGISTRY[td.key] = td
        return f
    return deco


def load_tests():
    import importlib
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
    for f in sorted(os.listdir(here)):
        if f.endswith(".py") and not f.startswith("_"):
            importlib.import_module(f"tests.{f[:-3]}")
    return REGISTRY


class Fail(Exception):
    pass


# --- the wire ------------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


class Wire:
    """AF_PACKET on the tester's end of the veth; a thread captures and parses
    every frame the DUT sends, and answers ARP/NS for the hosts the tester
    plays (ctx.resolve)."""

    def __init__(self, iface):
        self.iface = iface
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((iface, 0))
        self.pkts = []          # (monotonic time, scapy Ether)
        self.cv = threading.Condition()
        self.resolve = {}
        self.stop = False
        self.rpipe, self.wpipe = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        os.write(self.wpipe, b"x")
        self.thread.join(2)
        self.sock.close()
        os.close(self.rpipe)
        os.close(self.wpipe)

    def send(self, frame):
        self.sock.send(bytes(frame))

    def _run(self):
        while not self.stop:
            r, _, _ = select.select([self.sock, self.rpipe], [], [], 1)
            if self.rpipe in r:
                return
            if self.sock not in r:
                continue
            try:
                data, addr = self.sock.recvfrom(65600)
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            now = time.monotonic()
            try:
                p = Ether(data)
            except Exception:  # noqa: BLE001
                p = Raw(data)
            p.time = now
            self._respond(p)
            with self.cv:
                self.pkts.append(p)
                self.cv.notify_all()

    def _respond(self, p):
        res = self.resolve
        if not res:
            return
        try:
            if ARP in p and p[ARP].op == 1 and p[ARP].pdst in res:
                mac = res[p[ARP].pdst]
                self.send(Ether(src=mac, dst=p[ARP].hwsrc) /
                          ARP(op=2, hwsrc=mac, psrc=p[ARP].pdst, hwdst=p[ARP].hwsrc, pdst=p[ARP].psrc))
            elif ICMPv6ND_NS in p and p[ICMPv6ND_NS].tgt in res and p[IPv6].hlim == 255:
                tgt = p[ICMPv6ND_NS].tgt
                mac = res[tgt]
                src = p[IPv6].src
                if src == "::":
                    dst, dmac, s_flag = ALL_NODES, mcast_mac6(ALL_NODES), 0
                else:
                    dst, dmac, s_flag = src, p[Ether].src, 1
                self.send(Ether(src=mac, dst=dmac) / IPv6(src=tgt, dst=dst, hlim=255) /
                          ICMPv6ND_NA(tgt=tgt, R=0, S=s_flag, O=1) / ICMPv6NDOptDstLLAddr(lladdr=mac))
        except Exception:  # noqa: BLE001 - never let the responder kill capture
            pass


# --- the DUT -------------------------------------------------------------------

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DUT_SERVER = os.path.join(HERE, "dut", "dut_server.py")


def sh(*args, check=True, input=None):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, input=input)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


class Dut:
    """One DUT: a namespace, its interface, and the DUT server process."""

    def __init__(self, col, ns, iface, libshunt, python):
        self.col, self.ns, self.iface, self.libshunt, self.python = col, ns, iface, libshunt, python
        self.proc = None
        self.extra_addrs = []       # shunt column: addresses added for this test
        self.saved_sysctls = {}
        self.added_addrs = []       # Linux column: addresses to remove after the test
        self.lock = threading.Lock()

    @property
    def linux(self):
        return self.col == "linux"

    # the server
    def start(self):
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        if self.col == "shunt":
            addrs = [f"{DUT4}/24", f"{DUT6}/64"] + self.extra_addrs
            env.update(LD_PRELOAD=self.libshunt, SHUNT_IFACE=self.iface, SHUNT_ADDR=",".join(addrs))
            for k in ("SHUNT_LOG", "SHUNT_BACKEND", "SHUNT_SPIN_US"):
                if k in os.environ:
                    env[k] = os.environ[k]
        cmd = ["ip", "netns", "exec", self.ns, "env", "-i"] + [f"{k}={v}" for k, v in env.items()] + \
              [self.python, DUT_SERVER]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        line = self._readline(10)
        if not line or not json.loads(line).get("ready"):
            raise Fail("DUT server did not start")

    def _readline(self, timeout):
        fd = self.proc.stdout
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return None
        return fd.readline()

    def stop(self):
        p, self.proc = self.proc, None
        if not p:
            return
        try:
            p.stdin.write('{"cmd":"quit"}\n')
            p.stdin.flush()
            p.wait(1)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        if p.poll() is None:
            try:
                os.killpg(p.pid, 9)
            except OSError:
                pass
            p.wait()

    def restart(self):
        self.stop()
        self.start()

    def cmd(self, cmd, timeout=None, **req):
        req["cmd"] = cmd
        wait = float(req.get("wait", 0))
        with self.lock:
            if not self.proc:
                raise Fail("DUT server not running")
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self._readline(timeout or wait + 10)
        if not line:
            raise Fail(f"DUT server gave no answer to {cmd}")
        rep = json.loads(line)
        if not rep.get("ok"):
            raise Fail(f"DUT server: {cmd}: {rep.get('error')}")
        return rep

    # kernel configuration (Linux column only)
    def ip(self, *args, check=True):
        return sh("ip", "-n", self.ns, *args, check=check)

    def sysctl(self, key, value):
        """Set a sysctl in the DUT namespace (Linux column only); restored
        after the test. Returns False on the shunt column (no kernel stack)."""
        if not self.linux:
            return False
        key = key.replace("IFACE", self.iface)
        path = "/proc/sys/" + key.replace(".", "/")
        if key not in self.saved_sysctls:
            self.saved_sysctls[key] = sh("ip", "netns", "exec", self.ns, "cat", path).strip()
        sh("ip", "netns", "exec", self.ns, "sh", "-c", f"echo {value} > {path}")
        return True

    def add_address(self, cidr, dad=True):
        """Give the DUT one more address, as a fresh configuration (DAD runs).
        Linux: ip addr add; shunt: restart the DUT server with it in SHUNT_ADDR."""
        if self.linux:
            args = ["addr", "add", cidr, "dev", self.iface]
            if not dad:
                args.append("nodad")
            self.ip(*args)
            self.added_addrs.append(cidr)
        else:
            self.extra_addrs.append(cidr)
            self.restart()

    def cleanup(self, full):
        """After a test: undo what it changed (Linux column)."""
        self.extra_addrs = []
        if not self.linux:
            return
        for key, val in self.saved_sysctls.items():
            sh("ip", "netns", "exec", self.ns, "sh", "-c",
               f"echo {val} > /proc/sys/{key.replace('.', '/')}", check=False)
        self.saved_sysctls = {}
        batch = [f"addr del {a} dev {self.iface}" for a in self.added_addrs]
        self.added_addrs = []
        if full:
            # Path MTU exceptions go when the link MTU drops to 1280 and comes back.
            batch += [f"link set dev {self.iface} mtu 1280", f"link set dev {self.iface} mtu 1500"]
            batch += [f"-6 route flush dev {self.iface} proto ra",
                      f"-6 addr flush dev {self.iface} dynamic",
                      f"link set dev {self.iface} mtu 1500"]
        batch += [f"neigh flush dev {self.iface}", "route flush cache", "-6 route flush cache"]
        sh("ip", "-n", self.ns, "-force", "-batch", "-", input="\n".join(batch) + "\n", check=False)
        if full:
            # What Router Advertisements change: hop limit, MTU, timers.
            for key, val in (("net.ipv6.conf.IF.hop_limit", 64), ("net.ipv6.conf.IF.mtu", 1500),
                             ("net.ipv6.neigh.IF.retrans_time_ms", 1000),
                             ("net.ipv6.neigh.IF.base_reachable_time_ms", 30000)):
                path = "/proc/sys/" + key.replace(".", "/").replace("IF", self.iface)
                sh("ip", "netns", "exec", self.ns, "sh", "-c", f"echo {val} > {path}", check=False)
            # Anything RA-learned left: default routes, SLAAC addresses.
            sh("ip", "-n", self.ns, "-6", "route", "del", "default", check=False)
            out = self.ip("-6", "-o", "addr", "show", "dev", self.iface, check=False)
            for line in out.splitlines():
                a = line.split()[3]
                if a.startswith("fe80:") or a == f"{DUT6}/64":
                    continue
                self.ip("-6", "addr", "del", a, "dev", self.iface, check=False)


# --- the test context ----------------------------------------------------------


def default_resolve():
    return {H1_4: H1_MAC, H1_6: H1_MAC, H1_LL: H1_MAC,
            H2_4: H2_MAC, H2_6: H2_MAC, H2_LL: H2_MAC,
            PROBER4: PROBER_MAC, PROBER6: PROBER_MAC}


class Ctx:
    def __init__(self, wire, dut, testdef):
        self.wire = wire
        self.dut = dut
        self.td = testdef
        self.col = dut.col
        self.cursor = len(wire.pkts)
        self.resolve = wire.resolve
        self.resolve.clear()
        self.resolve.update(default_resolve())
        self.log = []
        self.rng = random.Random()

    # tester host identities
    def no_resolve(self, *addrs):
        """Stop answering ARP/NS for these addresses (all if none given)."""
        if not addrs:
            self.resolve.clear()
        for a in addrs:
            self.resolve.pop(a, None)

    def note(self, msg):
        self.log.append(msg)

    def fail(self, msg):
        raise Fail(msg)

    def check(self, cond, msg):
        if not cond:
            raise Fail(msg)

    # sending
    def send(self, *frames, gap=0.0):
        for f in frames:
            if isinstance(f, (list, tuple)):
                for g in f:
                    self.send(g, gap=gap)
                continue
            if not isinstance(f, (bytes, bytearray)) and not f.haslayer(Ether):
                if f.haslayer(IPv6) or isinstance(f, IPv6):
                    dst = DUT_MAC
                    if f[IPv6].dst.startswith("ff"):
                        dst = mcast_mac6(f[IPv6].dst)
                else:
                    dst = DUT_MAC
                f = Ether(src=H1_MAC, dst=dst) / f
            self.wire.send(f)
            if gap:
                time.sleep(gap)

    def mark(self):
        """Later expect/collect calls only look at frames captured from now on."""
        with self.wire.cv:
            self.cursor = len(self.wire.pkts)
        return self.cursor

    # receiving
    def _scan(self, pred, start, deadline, want_all=False):
        found = []
        i = start
        with self.wire.cv:
            while True:
                while i < len(self.wire.pkts):
                    p = self.wire.pkts[i]
                    i += 1
                    try:
                        ok = pred(p)
                    except (IndexError, AttributeError, TypeError, ValueError, struct.error):
                        ok = False
                    if ok:
                        if not want_all:
                            return p
                        found.append(p)
                left = deadline - time.monotonic()
                if left <= 0:
                    return found if want_all else None
                self.wire.cv.wait(left)

    def wait_for(self, pred, timeout=1.0, since=None):
        """The first matching frame from the cursor (or `since`), or None."""
        return self._scan(pred, self.cursor if since is None else since, time.monotonic() + timeout)

    def expect(self, pred, timeout=1.0, what="a response", since=None):
        p = self.wait_for(pred, timeout, since)
        if p is None:
            with self.wire.cv:
                seen = self.wire.pkts[self.cursor if since is None else since:]
            for q in seen[-8:]:
                self.note(f"seen: {q.summary()}")
            raise Fail(f"expected {what} within {timeout:g}s, got none")
        return p

    def expect_none(self, pred, timeout=1.0, what="no response", since=None):
        p = self.wait_for(pred, timeout, since)
        if p is not None:
            raise Fail(f"expected {what}, got: {p.summary()}")

    def collect(self, pred, duration, since=None):
        return self._scan(pred, self.cursor if since is None else since,
                          time.monotonic() + duration, want_all=True)

    # A response that must come may first need the DUT to resolve HOST-1
    # (or wait for a busy 2-core machine): exchanges wait at least this
    # long. No test times a response with exchange(); a late one still
    # arrives in order, and one that never comes still fails.
    EXCHANGE_MIN_WAIT = 3.0

    def exchange(self, frame, pred, timeout=1.0, what="a response"):
        self.mark()
        self.send(frame)
        return self.expect(pred, max(timeout, self.EXCHANGE_MIN_WAIT), what)

    def sleep(self, s):
        time.sleep(s)

    def rand_id(self, bits=16):
        return self.rng.randrange(1, 1 << bits)

    def rand_port(self):
        return self.rng.randrange(20000, 60000)

    def rand_payload(self, n):
        return bytes(self.rng.randrange(256) for _ in range(n))
