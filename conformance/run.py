#!/usr/bin/env python3
"""conformance runner: every packet-level test against Linux, then against shunt.

  python3 conformance/run.py [--column linux|shunt] [--area AREA]... [-k TEXT]...
                             [--jobs N] [--repeat N] [-v] [--emit-known REASON]
  python3 conformance/run.py --list | --describe ID

Builds one namespace pair per worker (tester shunt-<pid>-conf-t<i>, DUT
shunt-<pid>-conf-d<i>, a veth between them), runs the tests spread over the
workers, and prints the table: area, tests, Linux passed, shunt passed; the
tests Linux fails; and `N passed, N failed` for shunt.

  linux  the DUT veth carries 192.0.2.1/24, 2001:db8::1/64 and its EUI-64
         link-local address in the kernel; the DUT server runs plainly.
  shunt  the DUT veth has NO kernel address (addr_gen_mode 1, flushed); the
         DUT server runs under LD_PRELOAD=libshunt.so with SHUNT_IFACE and
         SHUNT_ADDR=192.0.2.1/24,2001:db8::1/64.

Exit status 1 when a test fails on Linux and is not in linux-deviations.txt
(a broken test), when a listed Linux deviation passes on Linux, when a test
fails on shunt and is not in known-failures.txt, when a listed shunt
failure passes, or when either list names a test that does not exist.
Namespaces are removed on exit, failure, Ctrl-C and SIGTERM; namespaces of
runs whose pid is gone (shunt-<deadpid>-*) are removed at start.
"""

import argparse
import json
import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
KNOWN = os.path.join(HERE, "known-failures.txt")
DEVIATIONS = os.path.join(HERE, "linux-deviations.txt")
LIBSHUNT = os.path.join(REPO, "target", "release", "libshunt.so")

from lib import harness as H  # noqa: E402

_children = []
_children_lock = threading.Lock()


class Interrupted(Exception):
    pass


def die(msg):
    print(f"run.py: {msg}", file=sys.stderr)
    sys.exit(2)


sh = H.sh


# --- namespaces -----------------------------------------------------------

def netns_list():
    out = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_kill_and_delete(ns):
    for pid in sh("ip", "netns", "pids", ns, check=False).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    sh("ip", "netns", "del", ns, check=False)


def remove_stale():
    for ns in netns_list():
        m = re.match(r"^shunt-(\d+)-", ns)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            netns_kill_and_delete(ns)


def nsysctl(ns, key, value):
    path = "/proc/sys/" + key.replace(".", "/")
    sh("ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > {path}")


class Bed:
    """One tester/DUT namespace pair."""

    def __init__(self, i):
        pid = os.getpid()
        self.i = i
        self.t = f"shunt-{pid}-conf-t{i}"
        self.d = f"shunt-{pid}-conf-d{i}"
        # The DUT interface name is unique on the machine: libshunt's ownership
        # lock is /run/shunt/<iface>-<addr>.lock, machine-wide.
        self.dif = f"cd{i}p{pid}"[:15]
        self.tif = "tst0"
        self.made = []

    def up(self):
        for ns in (self.t, self.d):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.t, "link", "add", self.tif, "type", "veth", "peer", "name", self.dif,
           "netns", self.d)
        sh("ip", "-n", self.t, "link", "set", self.tif, "address", H.H1_MAC)
        sh("ip", "-n", self.d, "link", "set", self.dif, "address", H.DUT_MAC)
        # The tester's kernel takes no part: no IPv6, no addresses.
        nsysctl(self.t, f"net.ipv6.conf.{self.tif}.disable_ipv6", 1)
        for ns, dev in ((self.t, self.tif), (self.d, self.dif)):
            # Frames on the wire carry complete checksums and are never GSO
            # super-frames, so the tester reads what a real wire would carry.
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "gso", "off",
               "tso", "off", check=False)
        sh("ip", "-n", self.t, "link", "set", self.tif, "promisc", "on", "up")
        d = self.d
        # Determinism: tests that are not about ICMP rate limiting must not
        # lose errors to it (the rate-limit tests restore the defaults); the
        # kernel sends no Router Solicitations of its own during tests.
        nsysctl(d, "net.ipv4.icmp_ratelimit", 0)
        nsysctl(d, "net.ipv6.icmp.ratelimit", 0)
        nsysctl(d, f"net.ipv6.conf.{self.dif}.router_solicitations", 0)
        nsysctl(d, f"net.ipv6.conf.{self.dif}.keep_addr_on_down", 1)
        nsysctl(d, f"net.ipv6.conf.{self.dif}.addr_gen_mode", 1)
        sh("ip", "-n", d, "link", "set", self.dif, "up")

    def column(self, col):
        d, dev = self.d, self.dif
        sh("ip", "-n", d, "addr", "flush", "dev", dev)
        sh("ip", "-n", d, "neigh", "flush", "dev", dev, check=False)
        if col == "linux":
            sh("ip", "-n", d, "addr", "add", f"{H.DUT4}/24", "dev", dev)
            sh("ip", "-n", d, "addr", "add", f"{H.DUT6}/64", "dev", dev, "nodad")
            sh("ip", "-n", d, "addr", "add", f"{H.DUT_LL}/64", "dev", dev, "nodad")
        else:
            left = sh("ip", "-n", d, "-o", "addr", "show", "dev", dev)
            if "inet" in left:
                raise RuntimeError(f"DUT interface still has kernel addresses: {left}")

    def down(self):
        for ns in self.made:
            netns_kill_and_delete(ns)
        self.made = []


# --- workers --------------------------------------------------------------

class Worker:
    def __init__(self, bed, col, python):
        self.bed, self.col, self.python = bed, col, python
        self.proc = None

    def start(self):
        cmd = ["ip", "netns", "exec", self.bed.t, self.python, "-u", os.path.join(HERE, "worker.py"),
               "--column", self.col, "--dut-ns", self.bed.d, "--dut-if", self.bed.dif,
               "--tester-if", self.bed.tif, "--libshunt", LIBSHUNT, "--python", self.python]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, start_new_session=True)
        with _children_lock:
            _children.append(self.proc)
        line = self.readline(60)
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError("worker did not start")

    def readline(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return None
        return self.proc.stdout.readline()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        self.proc = None

    def run(self, td):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(td.key + "\n")
        self.proc.stdin.flush()
        limit = td.timeout + 25
        line = self.readline(limit)
        if not line:
            self.kill()
            return {"key": td.key, "ok": False, "reason": f"killed after {limit}s", "secs": limit}
        return json.loads(line)


def run_column(beds, col, tests, python, verbose):
    for b in beds:
        b.column(col)
    if col == "linux":
        time.sleep(0.2)
    q = queue.Queue()
    for td in sorted(tests, key=lambda t: -t.timeout):
        q.put(td)
    results = {}
    lock = threading.Lock()
    errors = []

    def work(bed):
        w = Worker(bed, col, python)
        try:
            while True:
                try:
                    td = q.get_nowait()
                except queue.Empty:
                    return
                res = w.run(td)
                with lock:
                    results[td.key] = res
                    if verbose:
                        print(f"  [{col}] {'PASS' if res['ok'] else 'FAIL'} {td.key} "
                              f"({res['secs']}s){': ' + res['reason'] if not res['ok'] else ''}",
                              flush=True)
                        if not res["ok"]:
                            for line in res.get("log", [])[-80:]:
                                print(f"      | {line}", flush=True)
        except Exception as e:  # noqa: BLE001
            errors.append(f"worker {bed.i}: {e}")
        finally:
            if w.proc and w.proc.poll() is None:
                try:
                    w.proc.stdin.close()
                    w.proc.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    w.kill()

    threads = [threading.Thread(target=work, args=(b,), daemon=True) for b in beds]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.2)
    if errors:
        raise RuntimeError("; ".join(errors))
    for td in tests:
        results.setdefault(td.key, {"key": td.key, "ok": False, "reason": "not run", "secs": 0})
    return results


# --- lists ----------------------------------------------------------------

def load_list(path):
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, _, reason = line.replace("\t", " ").partition(" ")
            if "/" not in key:
                die(f"{os.path.basename(path)}:{n}: expected 'area/TEST-ID reason', got {line!r}")
            out[key] = reason.strip()
    return out


# --- main -----------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--column", choices=["linux", "shunt"], help="run one column only")
    ap.add_argument("--area", action="append", choices=H.AREAS, help="run one area (repeatable)")
    ap.add_argument("-k", action="append", dest="keys", metavar="TEXT",
                    help="run only tests whose id contains TEXT (repeatable)")
    ap.add_argument("--jobs", type=int, default=4, help="tester/DUT pairs run at once (default 4)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the Linux column N times; a test must pass every time")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every result")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--describe", metavar="ID", help="print a test's full description and exit")
    ap.add_argument("--emit-known", metavar="REASON",
                    help="print known-failures.txt lines with REASON for unlisted shunt failures")
    args = ap.parse_args()

    reg = H.load_tests()
    if args.list:
        for td in reg.values():
            print(f"{td.key:<24} {td.level:<6} {td.ref:<40} {td.desc}")
        return 0
    if args.describe:
        hits = [td for td in reg.values() if td.id == args.describe or td.key == args.describe]
        if not hits:
            die(f"no test {args.describe}")
        for td in hits:
            print(td.describe())
        return 0
    if os.geteuid() != 0:
        die("needs root (network namespaces)")
    cols = [args.column] if args.column else ["linux", "shunt"]
    if "shunt" in cols and not os.path.exists(LIBSHUNT):
        r = subprocess.run(["cargo", "build", "--release", "-p", "shunt-preload"], cwd=REPO)
        if r.returncode != 0 or not os.path.exists(LIBSHUNT):
            die("cannot build libshunt.so")
    tests = [td for td in reg.values()
             if (not args.area or td.area in args.area)
             and (not args.keys or any(k in td.id for k in args.keys))]
    if not tests:
        die("no test selected")
    known = load_list(KNOWN)
    devs = load_list(DEVIATIONS)

    def on_signal(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    python = sys.executable
    beds = [Bed(i) for i in range(max(1, args.jobs))]
    results = {}
    t0 = time.monotonic()
    try:
        remove_stale()
        for b in beds:
            b.up()
        for col in cols:
            reps = args.repeat if col == "linux" else 1
            for rep in range(reps):
                extra = f" (run {rep + 1}/{reps})" if reps > 1 else ""
                print(f"conformance: {col} column, {len(tests)} tests on {len(beds)} workers{extra}",
                      flush=True)
                tc = time.monotonic()
                res = run_column(beds, col, tests, python, args.verbose)
                print(f"  {col}: {sum(r['ok'] for r in res.values())}/{len(res)} passed in "
                      f"{time.monotonic() - tc:.0f}s", flush=True)
                if col in results:
                    for k, r in res.items():   # a test passes only if it passes every run
                        if not r["ok"] and results[col][k]["ok"]:
                            results[col][k] = dict(r, reason=f"run {rep + 1}: {r['reason']}")
                else:
                    results[col] = res
    except Interrupted as e:
        print(f"\nrun.py: interrupted ({e}), cleaning up", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with _children_lock:
            for p in _children:
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except OSError:
                        pass
        for b in beds:
            b.down()
    return report(args, cols, tests, reg, results, known, devs, time.monotonic() - t0)


def report(args, cols, tests, reg, results, known, devs, elapsed):
    bad = False
    hdr = f"{'area':<8} {'tests':>5}" + "".join(f" {c + ' passed':>13}" for c in cols)
    print()
    print(hdr)
    print("-" * len(hdr))
    tot = {c: 0 for c in cols}
    for area in H.AREAS:
        ts = [td for td in tests if td.area == area]
        if not ts:
            continue
        row = f"{area:<8} {len(ts):>5}"
        for c in cols:
            n = sum(results[c][td.key]["ok"] for td in ts)
            tot[c] += n
            row += f" {n:>13}"
        print(row)
    print("-" * len(hdr))
    print(f"{'total':<8} {len(tests):>5}" + "".join(f" {tot[c]:>13}" for c in cols))
    print(f"({elapsed:.0f}s)")

    existing = set(reg)
    for name, lst in (("known-failures.txt", known), ("linux-deviations.txt", devs)):
        ghosts = sorted(k for k in lst if k not in existing)
        if ghosts:
            bad = True
            print(f"\n{name} names {len(ghosts)} test(s) that do not exist:")
            for k in ghosts:
                print(f"  {k}")

    ran = {td.key for td in tests}
    if "linux" in cols:
        lf = [(td, results["linux"][td.key]) for td in tests if not results["linux"][td.key]["ok"]]
        listed = [(td, r) for td, r in lf if td.key in devs]
        broken = [(td, r) for td, r in lf if td.key not in devs]
        print(f"\nTests Linux fails: {len(lf)}")
        for td, r in listed:
            print(f"  {td.key} [{td.level}, {td.ref}]: known Linux deviation: {devs[td.key]}")
            print(f"      observed: {r['reason']}")
        if broken:
            bad = True
            print(f"\nBROKEN TESTS: {len(broken)} fail on Linux and are not known Linux deviations "
                  "(linux-deviations.txt):")
            for td, r in broken:
                print(f"  {td.key}: {r['reason']}")
        fixed = sorted(k for k in devs if k in ran and results["linux"][k]["ok"])
        if fixed:
            bad = True
            print(f"\nlinux-deviations.txt lists {len(fixed)} test(s) that pass on Linux:")
            for k in fixed:
                print(f"  {k}")

    if "shunt" in cols:
        sf = [(td.key, results["shunt"][td.key]["reason"]) for td in tests
              if not results["shunt"][td.key]["ok"]]
        unexpected = [(k, why) for k, why in sf if k not in known]
        failed = {k for k, _ in sf}
        fixed = sorted(k for k in known if k in ran and k not in failed)
        if unexpected:
            bad = True
            print(f"\nUNEXPECTED shunt failures ({len(unexpected)}; fix them, or list them in "
                  "known-failures.txt with a reason):")
            for k, why in unexpected:
                print(f"  {k}: {why}")
        elif args.verbose and sf:
            print("\nshunt failures:")
            for k, why in sf:
                print(f"  {k}: {why}")
        if fixed:
            bad = True
            print(f"\nknown-failures.txt lists {len(fixed)} test(s) that now pass on shunt "
                  "(delete their lines):")
            for k in fixed:
                print(f"  {k}")
        print(f"\nshunt: {len(sf) - len(unexpected)} expected failures (known-failures.txt), "
              f"{len(unexpected)} unexpected, {len(fixed)} listed but passing")
        if args.emit_known and unexpected:
            print("\n# candidate known-failures.txt lines:")
            for k, _ in unexpected:
                print(f"{k:<28} {args.emit_known}")
    print("FAILED" if bad else "OK")
    if "shunt" in cols:
        n = len(tests)
        p = sum(results["shunt"][td.key]["ok"] for td in tests)
        print(f"{p} passed, {n - p} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
