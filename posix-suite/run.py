#!/usr/bin/env python3
"""posix-suite runner: every test on Linux, on shunt over AF_PACKET and on
shunt over AF_XDP, side by side.

  python3 posix-suite/run.py [--only CATEGORY]... [--column linux|shunt|xdp]...
                             [-k NAME]... [--jobs N] [--no-build] [-v]

Builds the C tests (make -C posix-suite), makes a fresh namespace pair for
this run (shunt-<pid>-posix-t for the tests, shunt-<pid>-posix-p for the
peer, a veth between them), starts peer.py in the peer namespace, and runs
each category binary once per column inside the test namespace (by
default all three columns, one after the other):

  linux  the test veth carries 192.0.2.1/24 and 2001:db8::1/64 in the kernel;
         the tests run plainly.
  shunt  the same veth is up but has NO kernel address (not even a
         link-local one); the tests run under LD_PRELOAD=libshunt.so with
         SHUNT_IFACE/SHUNT_ADDR and SHUNT_BACKEND=packet, so whatever moves
         data can only be shunt.
  xdp    the same as shunt with SHUNT_BACKEND=xdp: shunt's stack on an
         AF_XDP queue, its XDP program steering the frames for shunt's
         addresses to it.
In both shunt columns each category runs in a namespace pair of its own.

Exit status 1 when a test fails on Linux (a broken test), when a test fails
on a shunt column and is not in that column's list (known-failures.txt for
shunt, known-failures-xdp.txt for xdp), when a listed test passes in its
column, or when a list names a test that does not exist.
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
# Each shunt column's list of expected failures.
KNOWN = {"shunt": "known-failures.txt", "xdp": "known-failures-xdp.txt"}
BACKEND = {"shunt": "packet", "xdp": "xdp"}
COLUMNS = ["linux", "shunt", "xdp"]
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

    def drop_extra(self):
        with self.extra_lock:
            extra, self.extra = self.extra, []
        for b in extra:
            b.down()

    def down(self):
        self.drop_extra()
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


def load_known(col):
    known = {}
    path = os.path.join(HERE, KNOWN[col])
    if not os.path.exists(path):
        return known
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, _, reason = line.replace("\t", " ").partition(" ")
            if "/" not in key:
                die(f"{KNOWN[col]}:{n}: expected 'category/test reason', got {line!r}")
            known[key] = reason.strip()
    return known


def run_binary(tb, col, cat, names):
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PS_LOCAL4": LOCAL4, "PS_PEER4": PEER4, "PS_LOCAL6": LOCAL6, "PS_PEER6": PEER6,
    }
    if col in BACKEND:
        env.update({
            "LD_PRELOAD": LIBSHUNT,
            "SHUNT_IFACE": IFACE,
            "SHUNT_ADDR": f"{LOCAL4}/24,{LOCAL6}/64",
            "SHUNT_BACKEND": BACKEND[col],
        })
        for k in ("SHUNT_LOG", "SHUNT_SPIN_US"):
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


def category_beds(tb, col, cats):
    """One namespace pair (and peer) per category, for a shunt column.

    A process's stack owns its (interface, address) within its network
    namespace (the ownership lock): two categories running at once in one
    namespace would race for it, and the loser would silently run on the
    kernel, which has no address there. Each category gets its own pair,
    with the same addresses, so they still run in parallel."""
    def make(i):
        b = Testbed(f"{col}{i}")
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
    beds = category_beds(tb, col, cats) if col in BACKEND else {cat: tb for cat in cats}
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
    # The next column starts with only the main pair.
    tb.drop_extra()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", metavar="CATEGORY", help="run only this category (repeatable)")
    ap.add_argument("--column", action="append", metavar="linux|shunt|xdp",
                    help="run only this column (repeatable, or a comma list; default: all three)")
    ap.add_argument("-k", action="append", metavar="NAME", dest="keys",
                    help="run only tests whose name contains NAME (repeatable)")
    ap.add_argument("--jobs", type=int, default=0, help="categories run at once (default: all)")
    ap.add_argument("--no-build", action="store_true", help="do not run make first")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failure reason")
    ap.add_argument("--emit-known", metavar="REASON",
                    help="after the report, print a line with REASON for every shunt (or xdp) "
                         "failure its list does not have yet (review before committing)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        die("needs root (network namespaces)")
    cols = COLUMNS
    if args.column:
        asked = {c.strip() for arg in args.column for c in arg.split(",") if c.strip()}
        bad = sorted(asked - set(COLUMNS))
        if bad:
            die(f"no such column: {', '.join(bad)} (have: {', '.join(COLUMNS)})")
        cols = [c for c in COLUMNS if c in asked]

    if not args.no_build:
        r = subprocess.run(["make", "-s", "-C", HERE, "all"])
        if r.returncode != 0:
            die("build failed")
    if any(c in BACKEND for c in cols) and not os.path.exists(LIBSHUNT):
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
    known = {col: load_known(col) for col in BACKEND}
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

    total = sum(len(v) for v in selected.values())
    if "linux" in cols:
        lf = fails("linux")
        if lf:
            bad = True
            print(f"\nBROKEN TESTS: {len(lf)} fail on Linux (a test must pass on Linux first):")
            for k, why in lf:
                print(f"  {k}: {why}")

    # Each list must name real tests.
    existing = {f"{c}/{t}" for c, ts in alltests.items() for t in ts}
    for col in BACKEND:
        ghosts = sorted(k for k in known[col] if k not in existing)
        if ghosts:
            bad = True
            print(f"\n{KNOWN[col]} names {len(ghosts)} test(s) that do not exist:")
            for k in ghosts:
                print(f"  {k}")

    ran = {f"{cat}/{t}" for cat, names in selected.items() for t in names}
    summary = [f"linux: {tot['linux']} passed, {len(fails('linux'))} failed"] if "linux" in cols else []
    for col in (c for c in cols if c in BACKEND):
        listed, name = known[col], KNOWN[col]
        sf = fails(col)
        failed = {k for k, _ in sf}
        unexpected = [(k, why) for k, why in sf if k not in listed]
        expected = [k for k, _ in sf if k in listed]
        fixed = sorted(k for k in listed if k in ran and k not in failed)
        if unexpected:
            bad = True
            print(f"\nUNEXPECTED {col} failures ({len(unexpected)}; fix them, or list them "
                  f"in {name} with a reason):")
            for k, why in unexpected:
                print(f"  {k}: {why}")
        elif args.verbose and sf:
            print(f"\n{col} failures:")
            for k, why in sf:
                print(f"  {k}: {why}")
        if args.emit_known and unexpected:
            print(f"\n# --emit-known: {len(unexpected)} line(s) for {name}")
            for k, _ in unexpected:
                print(f"{k:<56} {args.emit_known}")
        if fixed:
            bad = True
            print(f"\nLISTED BUT PASSING on {col} ({len(fixed)}; remove them from {name}):")
            for k in fixed:
                print(f"  {k}")
        summary.append(f"{col}: {tot[col]} passed, {len(sf)} failed: {len(expected)} expected "
                       f"({name}), {len(unexpected)} unexpected, {len(fixed)} listed but passing")
    print()
    for line in summary:
        print(line)
    print(f"{'FAILED' if bad else 'OK'}")
    # Every column run, counted literally (expected failures included).
    npass = sum(tot.values())
    print(f"{npass} passed, {len(cols) * total - npass} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
