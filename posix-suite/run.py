#!/usr/bin/env python3
"""posix-suite runner: every test on Linux, then on shunt, side by side.

  python3 posix-suite/run.py [--only CATEGORY]... [--column linux|shunt]
                             [-k NAME]... [--jobs N] [--no-build] [-v]

Builds the C tests (make -C posix-suite), makes a fresh namespace pair for
this run (shunt-<pid>-posix-t for the tests, shunt-<pid>-posix-p for the
peer, a veth between them), starts peer.py in the peer namespace, and runs
each category binary once per column inside the test namespace:

  linux  the test veth carries 192.0.2.1/24 and 2001:db8::1/64 in the kernel;
         the tests run plainly.
  shunt  the same veth is up but has NO kernel address (not even a
         link-local one); the tests run under LD_PRELOAD=libshunt.so with
         SHUNT_IFACE/SHUNT_ADDR, so whatever moves data can only be shunt.

Exit status 1 when a test fails on Linux (a broken test), when a test fails
on shunt and is not in known-failures.txt, when a listed test passes on
shunt, or when known-failures.txt names a test that does not exist.
The namespaces are removed on exit, on failure and on Ctrl-C; namespaces
left by runs whose pid is gone (shunt-<deadpid>-*) are removed at start.
"""

import argparse
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.path.join(HERE, "build")
KNOWN = os.path.join(HERE, "known-failures.txt")
LIBSHUNT = os.path.join(REPO, "target", "release", "libshunt.so")

LOCAL4, PEER4 = "192.0.2.1", "192.0.2.2"
LOCAL6, PEER6 = "2001:db8::1", "2001:db8::2"
IFACE = "veth0"
BINARY_TIMEOUT = 280  # seconds for one category binary in one column

_children = []          # Popen objects this run started
_children_lock = threading.Lock()


class Interrupted(Exception):
    pass


def die(msg):
    print(f"run.py: {msg}", file=sys.stderr)
    sys.exit(2)


def sh(*args, check=True, quiet=False):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


# --- namespaces -----------------------------------------------------------

def netns_list():
    out = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_kill_and_delete(ns):
    # Only processes inside a namespace this suite made: ours, by pid.
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


class Testbed:
    def __init__(self, suffix=""):
        self.tag = f"shunt-{os.getpid()}-posix{suffix}"
        self.t = self.tag + "-t"
        self.p = self.tag + "-p"
        self.peer = None
        self.made = []
        self.extra = []  # per-category testbeds of the shunt column
        self.extra_lock = threading.Lock()

    def up(self):
        remove_stale()
        for ns in (self.t, self.p):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.t, "link", "add", IFACE, "type", "veth",
           "peer", "name", IFACE, "netns", self.p)
        # No link-local address on the test side, ever: in the shunt column
        # the kernel must own no address on the interface at all.
        self.sysctl(self.t, f"net.ipv6.conf.{IFACE}.addr_gen_mode", "1")
        for ns in (self.t, self.p):
            # ICMP errors are part of what tests check: no rate limit.
            self.sysctl(ns, "net.ipv4.icmp_ratelimit", "0")
            self.sysctl(ns, "net.ipv6.icmp.ratelimit", "0")
        self.sysctl(self.p, "net.ipv4.tcp_syncookies", "1")  # the black hole needs it
        sh("ip", "-n", self.t, "link", "set", IFACE, "up")
        sh("ip", "-n", self.p, "link", "set", IFACE, "up")
        sh("ip", "-n", self.p, "addr", "add", f"{PEER4}/24", "dev", IFACE)
        sh("ip", "-n", self.p, "addr", "add", f"{PEER6}/64", "dev", IFACE, "nodad")
        self.start_peer()

    @staticmethod
    def sysctl(ns, key, value):
        # /proc/sys/net shows the namespace of the process that opens it.
        path = "/proc/sys/" + key.replace(".", "/")
        sh("ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > {path}")

    def start_peer(self):
        env = dict(os.environ, PS_PEER4=PEER4, PS_PEER6=PEER6, PYTHONDONTWRITEBYTECODE="1")
        self.peer = subprocess.Popen(
            ["ip", "netns", "exec", self.p, sys.executable, os.path.join(HERE, "peer.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        with _children_lock:
            _children.append(self.peer)
        line = []
        reader = threading.Thread(target=lambda: line.append(self.peer.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)
        if not line or line[0].strip() != "ready":
            raise RuntimeError("peer.py did not become ready")

    def column(self, col):
        """Configure the test side of the veth for one column."""
        sh("ip", "-n", self.t, "addr", "flush", "dev", IFACE)
        sh("ip", "-n", self.p, "neigh", "flush", "dev", IFACE)
        if col == "linux":
            sh("ip", "-n", self.t, "addr", "add", f"{LOCAL4}/24", "dev", IFACE)
            sh("ip", "-n", self.t, "addr", "add", f"{LOCAL6}/64", "dev", IFACE, "nodad")
        else:
            left = sh("ip", "-n", self.t, "-o", "addr", "show", "dev", IFACE)
            if "inet" in left:
                raise RuntimeError(f"test interface still has kernel addresses: {left}")

    def down(self):
        with self.extra_lock:
            extra, self.extra = self.extra, []
        for b in extra:
            b.down()
        if self.peer and self.peer.poll() is None:
            try:
                self.peer.stdin.close()
                self.peer.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for ns in self.made:
            netns_kill_and_delete(ns)
        self.made = []


# --- tests ----------------------------------------------------------------

def categories():
    names = sorted(f[:-2] for f in os.listdir(os.path.join(HERE, "tests")) if f.endswith(".c"))
    return names


def list_tests(cat):
    out = sh(os.path.join(BUILD, cat), "--list")
    tests = []
    for line in out.splitlines():
        parts = line.split("\t")
        if parts and parts[0]:
            tests.append(parts[0])
    return tests


def load_known():
    known = {}
    if not os.path.exists(KNOWN):
        return known
    with open(KNOWN) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, _, reason = line.replace("\t", " ").partition(" ")
            if "/" not in key:
                die(f"known-failures.txt:{n}: expected 'category/test reason', got {line!r}")
            known[key] = reason.strip()
    return known


def run_binary(tb, col, cat, names):
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PS_LOCAL4": LOCAL4, "PS_PEER4": PEER4, "PS_LOCAL6": LOCAL6, "PS_PEER6": PEER6,
    }
    if col == "shunt":
        env.update({
            "LD_PRELOAD": LIBSHUNT,
            "SHUNT_IFACE": IFACE,
            "SHUNT_ADDR": f"{LOCAL4}/24,{LOCAL6}/64",
        })
        for k in ("SHUNT_LOG", "SHUNT_BACKEND", "SHUNT_SPIN_US"):
            if k in os.environ:
                env[k] = os.environ[k]
    cmd = ["ip", "netns", "exec", tb.t, "env", "-i"] + [f"{k}={v}" for k, v in env.items()] \
        + [os.path.join(BUILD, cat)] + names
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    with _children_lock:
        _children.append(p)
    try:
        out, _ = p.communicate(timeout=BINARY_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        out += f"\n(category binary killed after {BINARY_TIMEOUT}s)\n"
    results = {}
    other = []
    for line in out.splitlines():
        m = re.match(r"^(PASS|FAIL) (\w+)(?:: (.*))?$", line)
        if m:
            results[m.group(2)] = (m.group(1) == "PASS", m.group(3) or "")
        elif line.strip():
            other.append(line)
    for n in names:
        if n not in results:
            results[n] = (False, "no result (binary exited %s)%s" % (
                p.returncode, ": " + other[-1] if other else ""))
    return cat, results, time.monotonic() - t0


def category_beds(tb, cats):
    """One namespace pair (and peer) per category, for the shunt column.

    A process's stack owns its (interface, address) within its network
    namespace (the ownership lock): two categories running at once in one
    namespace would race for it, and the loser would silently run on the
    kernel, which has no address there. Each category gets its own pair,
    with the same addresses, so they still run in parallel."""
    def make(i):
        b = Testbed(f"{i}")
        with tb.extra_lock:
            tb.extra.append(b)
        b.up()
        b.column("shunt")
        return b
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(cats)) as ex:
        beds = list(ex.map(make, range(len(cats))))
    return dict(zip(cats, beds))


def run_column(tb, col, selected, jobs, verbose):
    tb.column(col)
    res = {}
    cats = [cat for cat, names in selected.items() if names]
    beds = category_beds(tb, cats) if col == "shunt" else {cat: tb for cat in cats}
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        futs = [ex.submit(run_binary, beds[cat], col, cat, selected[cat]) for cat in cats]
        for f in concurrent.futures.as_completed(futs):
            cat, results, secs = f.result()
            res[cat] = results
            if verbose:
                npass = sum(ok for ok, _ in results.values())
                print(f"  [{col}] {cat}: {npass}/{len(results)} in {secs:.1f}s", flush=True)
    finally:
        # On Ctrl-C, do not wait here: the caller kills the binaries.
        ex.shutdown(wait=False, cancel_futures=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", metavar="CATEGORY", help="run only this category (repeatable)")
    ap.add_argument("--column", choices=["linux", "shunt"], help="run only one column")
    ap.add_argument("-k", action="append", metavar="NAME", dest="keys",
                    help="run only tests whose name contains NAME (repeatable)")
    ap.add_argument("--jobs", type=int, default=0, help="categories run at once (default: all)")
    ap.add_argument("--no-build", action="store_true", help="do not run make first")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failure reason")
    ap.add_argument("--emit-known", metavar="REASON",
                    help="after the report, print a known-failures.txt line with REASON for every "
                         "shunt failure that is not listed yet (review before committing)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        die("needs root (network namespaces)")
    cols = [args.column] if args.column else ["linux", "shunt"]

    if not args.no_build:
        r = subprocess.run(["make", "-s", "-C", HERE, "all"])
        if r.returncode != 0:
            die("build failed")
    if "shunt" in cols and not os.path.exists(LIBSHUNT):
        r = subprocess.run(["cargo", "build", "--release", "-p", "shunt-preload"], cwd=REPO)
        if r.returncode != 0 or not os.path.exists(LIBSHUNT):
            die("cannot build libshunt.so")

    allcats = categories()
    missing = [c for c in allcats if not os.path.exists(os.path.join(BUILD, c))]
    if missing:
        die(f"not built: {', '.join(missing)} (run make -C posix-suite)")
    if args.only:
        bad = [c for c in args.only if c not in allcats]
        if bad:
            die(f"no such category: {', '.join(bad)} (have: {', '.join(allcats)})")
    alltests = {c: list_tests(c) for c in allcats}
    selected = {}
    for c in allcats:
        if args.only and c not in args.only:
            continue
        names = [n for n in alltests[c] if not args.keys or any(k in n for k in args.keys)]
        if names:
            selected[c] = names
    total = sum(len(v) for v in selected.values())
    if total == 0:
        die("no test selected")
    known = load_known()
    jobs = args.jobs or len(selected)

    def on_signal(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    tb = Testbed()
    results = {}
    t0 = time.monotonic()
    try:
        tb.up()
        for col in cols:
            print(f"posix-suite: {col} column, {total} tests in {len(selected)} categories", flush=True)
            results[col] = run_column(tb, col, selected, jobs, args.verbose)
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
                        p.kill()
                    except OSError:
                        pass
        tb.down()
    elapsed = time.monotonic() - t0
    return report(args, cols, selected, alltests, results, known, elapsed)


def report(args, cols, selected, alltests, results, known, elapsed):
    bad = False
    # Table.
    hdr = f"{'category':<12} {'tests':>5}"
    for col in cols:
        hdr += f" {col + ' passed':>13}"
    print()
    print(hdr)
    print("-" * len(hdr))
    tot = {col: 0 for col in cols}
    for cat, names in selected.items():
        row = f"{cat:<12} {len(names):>5}"
        for col in cols:
            n = sum(results[col][cat][t][0] for t in names)
            tot[col] += n
            row += f" {n:>13}"
        print(row)
    print("-" * len(hdr))
    row = f"{'total':<12} {sum(len(v) for v in selected.values()):>5}"
    for col in cols:
        row += f" {tot[col]:>13}"
    print(row)
    print(f"({elapsed:.0f}s)")

    def fails(col):
        return [(f"{cat}/{t}", results[col][cat][t][1]) for cat, names in selected.items()
                for t in names if not results[col][cat][t][0]]

    if "linux" in cols:
        lf = fails("linux")
        if lf:
            bad = True
            print(f"\nBROKEN TESTS: {len(lf)} fail on Linux (a test must pass on Linux first):")
            for k, why in lf:
                print(f"  {k}: {why}")

    # known-failures.txt must name real tests.
    existing = {f"{c}/{t}" for c, ts in alltests.items() for t in ts}
    ghosts = sorted(k for k in known if k not in existing)
    if ghosts:
        bad = True
        print(f"\nknown-failures.txt names {len(ghosts)} test(s) that do not exist:")
        for k in ghosts:
            print(f"  {k}")

    if "shunt" in cols:
        sf = fails("shunt")
        unexpected = [(k, why) for k, why in sf if k not in known]
        expected = [k for k, _ in sf if k in known]
        ran = {f"{cat}/{t}" for cat, names in selected.items() for t in names}
        fixed = sorted(k for k in known if k in ran and k not in {x for x, _ in sf})
        if unexpected:
            bad = True
            print(f"\nUNEXPECTED shunt failures ({len(unexpected)}; fix them, or list them "
                  "in known-failures.txt with a reason):")
            for k, why in unexpected:
                print(f"  {k}: {why}")
        elif args.verbose and sf:
            print("\nshunt failures:")
            for k, why in sf:
                print(f"  {k}: {why}")
        if args.emit_known and unexpected:
            print(f"\n# --emit-known: {len(unexpected)} line(s) for known-failures.txt")
            for k, _ in unexpected:
                print(f"{k:<56} {args.emit_known}")
        if fixed:
            bad = True
            print(f"\nLISTED BUT PASSING on shunt ({len(fixed)}; remove them from known-failures.txt):")
            for k in fixed:
                print(f"  {k}")
        npass = tot["shunt"]
        print(f"\nshunt: {len(expected)} expected failures (known-failures.txt), "
              f"{len(unexpected)} unexpected, {len(fixed)} listed but passing")
        print(f"{'FAILED' if bad else 'OK'}")
        print(f"{npass} passed, {len(sf)} failed")
    else:
        lf = fails("linux")
        print(f"{'FAILED' if bad else 'OK'}")
        print(f"{tot['linux']} passed, {len(lf)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
