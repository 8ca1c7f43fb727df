#!/usr/bin/env python3
"""Reruns every benchmark that bench/RESULTS.md reports, at the current
commit, and rewrites bench/RESULTS.md (and bench/plots/, and the measured
figures in README.md) from that one run. Python 3 standard library only.
bench/results.sh is the entry point: it installs what the sections need
(python3; serf and nftables for the Serf comparison; gnuplot-nox for the
plots), builds the benchmark targets in the build directory when that build
belongs to this tree, then runs this file with the same arguments.

How to run, at the commit whose figures you want, on a machine left alone
(as root: the Serf comparison needs it for nftables):

    nice -n 19 bench/results.sh
        # every section; rewrites bench/RESULTS.md, bench/plots/ and the
        # <!-- results:NAME --> fragments of README.md; raw outputs in
        # results-raw/ (git ignores it). Then commit those three.
    bench/results.sh --only serf,loopback
        # reruns two sections; the others are rendered from the raw outputs
        # of an earlier run of the SAME commit in --raw (refused otherwise)
    bench/results.sh --quick --raw /tmp/q --out /tmp/RESULTS-quick.md
        # tiny sizes and durations, to check this script only: the output
        # says QUICK in its title and must never be committed (README.md is
        # not touched: the filled copy goes to RAW/README.quick.md)

How long the full run takes: about 30-45 minutes on the 2-core, 24 GiB VM
of this project, left alone. That is an ESTIMATE, not the timing of a full
run: it adds up short runs of the same binaries timed on 2026-12-02 under
nice 19 beside another engineer's work (load average ~1.5): shoal-sim crash
N=1000 120 s: 2.1 s; crash N=5000 30 s: 12.6 s (6.2 s of it the converged
start) and 4.4 GB; lossy-minority N=1000 60 s: 2.6 s; loss N=100 600 s:
0.7 s; bootstrap N=2000: 26 s; shoal-micro about 1 min; one shoal-loopback
N=64 run 38 s; vs_serf at N=4 with 1 crash and a 3 s window 49 s;
daemon_cluster.py at N=32 52 s (timed on 2026-12-02 beside a build). The
N=10,000 runs are extrapolated from those (about 2-4 min and ~17 GB each;
the scheduler never runs two of them at once) and are the main
uncertainty. By section: memory and plots seconds, micro ~1 min, loopback
~7 min (11 runs, one at a time), scale ~13 min, serf ~8-10 min (N=8 and 32, both systems,
kill and host-down series), cluster ~1 min, sim ~3 min, refuse <1 min,
tables ~12 min (at --jobs 2). The script prints each section's wall time as it goes and
in the header of RESULTS.md, so the first full run replaces this estimate.

Options:
  --build DIR      build directory (default build): DIR/bench/shoal-sim,
                   shoal-micro, shoal-core-memory, shoal-loopback,
                   DIR/daemon/shoald and shoalctl
  --out FILE       the RESULTS.md to write (default bench/RESULTS.md; with
                   --quick RAW/RESULTS.quick.md, and never bench/RESULTS.md)
  --raw DIR        every raw output: DIR/SECTION/NAME.out (stdout: JSON),
                   NAME.log (stderr, with the command on its first line),
                   DIR/SECTION/section.json (what ran, exit statuses, load
                   averages, dates) (default results-raw)
  --readme FILE    the README whose markers are filled (default README.md;
                   with --quick RAW/README.quick.md, a filled copy)
  --quick          tiny sizes and durations (QUICK_* below)
  --only S[,S]     rerun these sections only (plots follows tables)
  --jobs N         simulator runs at once in sim, refuse and tables
                   (default 2); memory-heavy runs (N=10,000) never share the
                   machine's memory with each other. micro, loopback and
                   serf always run one thing at a time.
Sections, in the order they run: memory, micro, loopback, scale, serf, cluster,
sim, refuse, tables, plots (the timing-sensitive ones first, before this run
loads the machine with simulator runs). cluster is bench/daemon_cluster.py:
32 shoald daemons, user events, a query with a tag filter, reachability.
scale is shoal-loopback beside bench/memberlist's memberlist-loopback at
N = 64, 256, 512 and 1,024, one run of each (about 13 min; it needs the
Debian packages golang-go and golang-github-hashicorp-memberlist-dev, which
bench/results.sh installs, and says NOT RUN without them).

Every table of the output carries its own line "commit, date, command" and
the 1-minute load average at the start and end of its section (and the
largest seen during it). A run that fails or times out gives a row saying
FAILED with its exit status and its log in --raw, never older numbers; the
exit status is 1 when any section failed or could not run, 2 on bad usage.
Targets (the goals the project set, carried over from the "target" column
of the hand-written RESULTS.md: the checks in SIM_MAIN and LOSSY_CHECKS,
MEMORY_TARGET, SERF_TARGETS and LOOPBACK_TARGETS below) are marked pass or
MISS from the figure itself, never by hand; the cluster section's checks
(each event exactly once everywhere, the exact set of query answers, the
stopped member named by reachability) are computed by daemon_cluster.py,
which exits 1 when one fails: the section is then failed, its figures shown.
"""

import argparse
import datetime
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_ORDER = ["memory", "micro", "loopback", "scale", "serf", "cluster", "sim", "refuse", "tables",
             "plots"]
DOC_ORDER = ["sim", "refuse", "memory", "micro", "tables", "plots", "serf", "loopback", "scale",
             "cluster"]
PARALLEL = {"sim", "refuse", "tables"}
TITLES = {
    "sim": "Protocol core on the simulator",
    "refuse": "Crashes on hosts that refuse against silent hosts",
    "memory": "Memory per member",
    "micro": "Micro-benchmarks",
    "tables": "Scenario tables against N",
    "plots": "Plots",
    "serf": "shoald vs Serf, one run of both",
    "loopback": "Real sockets on loopback",
    "scale": "Scale on loopback: shoal and memberlist, one run of both",
    "cluster": "shoald daemons on loopback: events, queries, reachability",
}
# Quick mode: every simulator run at most this many nodes and simulated
# seconds of its scenario phase, at most this many crashes.
QUICK_NODES = 100
QUICK_DURATION = 20
QUICK_CRASHES = 3
SERF_PORT_BASE = 27000
CLUSTER_PORT_BASE = 29000  # daemon_cluster.py: nI binds CLUSTER_PORT_BASE + I


def log(msg):
    print(f"[results {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def show_date(s):
    """'2026-12-02 07:40 UTC' from an iso() string."""
    dt = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def load1():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def capture(cmd, cwd=ROOT, strip=True):
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            return None
        return r.stdout.strip() if strip else r.stdout
    except (OSError, subprocess.TimeoutExpired):
        return None


def quote(argv):
    return " ".join(shlex.quote(a) for a in argv)


def dur(s):
    """'1 h 02 min', '12 min 05 s', '40 s'."""
    if s is None:
        return "—"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


# ------------------------------------------------------------------ formatting

def f2(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def num(x):
    """An integer with thousands separators, or a float with 2 decimals."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.2f}"


def per_pair(count, n):
    """count / (n (n-1)): false positives per (observer, member) pair."""
    pairs = n * (n - 1)
    if count is None or pairs <= 0:
        return "—"
    if count == 0:
        return "0"
    return f"{count / pairs:.2e}"


def cell(x):
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(headers, rows):
    """A GitHub table whose columns line up in the source too."""
    cells = [[cell(c) for c in r] for r in rows]
    heads = [cell(h) for h in headers]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(heads)]

    def line(cs):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cs, widths)) + " |"

    out = [line(heads), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in cells]
    return "\n".join(out) + "\n"


def wrap(text, width=88):
    """Paragraphs of fixed text, wrapped; blank lines kept; a paragraph
    that starts with "- " is a list item (its lines indented)."""
    paras = text.strip("\n").split("\n\n")
    out = []
    for p in paras:
        words = " ".join(p.split())
        item = words.startswith("- ")
        out.append(textwrap.fill(words, width=width, break_on_hyphens=False, break_long_words=False,
                                 subsequent_indent="  " if item else ""))
    return "\n\n".join(out) + "\n"


# ------------------------------------------------------------------ targets

OPS = {"<=": (lambda a, b: a <= b, "≤"), ">=": (lambda a, b: a >= b, "≥"),
       "==": (lambda a, b: a == b, "=")}


def check(label, value, op, threshold, shown=None):
    """'label ≤ 2.5: pass (1.89)': the mark is computed, never written."""
    fn, sym = OPS[op]
    thr = "yes" if threshold is True else threshold
    if value is None:
        return f"{label} {sym} {thr}: **MISS** (no value)"
    ok = fn(value, threshold)
    v = shown if shown is not None else (num(value) if not isinstance(value, float) else f"{value:.2f}")
    return f"{label} {sym} {thr}: {'pass' if ok else '**MISS**'} ({v})"


def check_ok(value, op, threshold):
    return value is not None and OPS[op][0](value, threshold)


# ------------------------------------------------------------------ git, machine

class Tree:
    """The commit of ROOT and whether its tracked files differ from it
    (the files this script writes do not count)."""

    def __init__(self, written):
        self.commit = capture(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
        self.commit_time = capture(["git", "log", "-1", "--format=%cI"]) or "?"
        # Untracked files count too (a new source file); ignored ones do not.
        status = capture(["git", "status", "--porcelain", "--untracked-files=all"], strip=False) or ""
        changed, untracked = [], []
        for line in status.splitlines():
            path = line[3:].split(" -> ")[-1]
            full = os.path.realpath(os.path.join(ROOT, path))
            if any(full == w or full.startswith(w + os.sep) for w in written):
                continue
            changed.append(path)
            if line.startswith("??"):
                untracked.append(path)
        self.changed = changed
        self.dirty = bool(changed)
        if self.dirty:
            h = hashlib.sha1((capture(["git", "diff", "HEAD", "--"] + changed) or "").encode())
            for path in sorted(untracked):
                try:
                    with open(os.path.join(ROOT, path), "rb") as f:
                        h.update(path.encode() + b"\0" + f.read())
                except OSError:
                    pass
            self.state = self.commit + "-dirty:" + h.hexdigest()[:12]
            self.shown = self.commit + "-dirty"
        else:
            self.state = self.commit
            self.shown = self.commit


def cmake_cache(build):
    out = {}
    try:
        with open(os.path.join(build, "CMakeCache.txt"), errors="replace") as f:
            for line in f:
                m = re.match(r"^([A-Za-z0-9_]+):[A-Z]+=(.*)$", line.rstrip("\n"))
                if m:
                    out[m.group(1)] = m.group(2)
    except OSError:
        pass
    return out


def machine_facts(build):
    facts = {}
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    facts["cpu"] = model
    facts["nproc"] = capture(["nproc"]) or str(os.cpu_count())
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1])
    except OSError:
        pass
    facts["mem_total_gib"] = None if mem is None else round(mem / 1024 / 1024, 1)
    try:
        with open("/etc/debian_version") as f:
            facts["debian"] = f.read().strip()
    except OSError:
        facts["debian"] = "not Debian"
    cache = cmake_cache(build)
    cxx = cache.get("CMAKE_CXX_COMPILER")
    facts["cxx"] = cxx or "? (no CMakeCache.txt)"
    facts["cxx_version"] = (capture([cxx, "--version"]) or "?").splitlines()[0] if cxx else "?"
    bt = cache.get("CMAKE_BUILD_TYPE") or "?"
    facts["build_type"] = bt
    facts["build_flags"] = cache.get("CMAKE_CXX_FLAGS_" + bt.upper(), "")
    facts["static_daemon"] = cache.get("SHOAL_STATIC_DAEMON", "?")
    facts["source_dir"] = cache.get("CMAKE_HOME_DIRECTORY")
    facts["libbenchmark"] = capture(["dpkg-query", "-W", "-f=${Version}", "libbenchmark-dev"]) or "?"
    return facts


def mem_available_gb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 8.0


# ------------------------------------------------------------------ runs

class NotRunnable(Exception):
    """A section that cannot run here (missing package, not root, ...)."""


class Run:
    """One command of a section: stdout to DIR/NAME.out, stderr to NAME.log."""

    def __init__(self, name, argv, *, timeout, est_s=10.0, mem_gb=0.3, parse="json",
                 term_first=False, env=None, meta=None, ok_rcs=(0,)):
        # ok_rcs: exit statuses that still carry a result (the loopback
        # harnesses exit 1 with their JSON when a cluster did not converge)
        self.ok_rcs = tuple(ok_rcs)
        self.name, self.argv, self.timeout = name, argv, timeout
        self.est_s, self.mem_gb, self.parse = est_s, mem_gb, parse
        self.term_first, self.env, self.meta = term_first, env, meta or {}
        self.out = self.log = None
        self.proc = None
        self.started = None
        self.rc = None
        self.timed_out = False
        self.wall_s = None
        self.error = None
        self.started_utc = None

    def record(self):
        ok = self.rc in self.ok_rcs and not self.timed_out and self.error is None
        return {"name": self.name, "argv": self.argv, "command": quote(self.argv),
                "rc": self.rc, "timed_out": self.timed_out, "timeout_s": self.timeout,
                "wall_s": self.wall_s, "started_utc": self.started_utc, "out": self.out,
                "log": self.log, "ok": ok, "error": self.error, "meta": self.meta}


class Executor:
    """Runs a list of Runs, at most `jobs` at once and within a memory budget;
    kills a run that passes its timeout (its whole process group)."""

    def __init__(self, jobs, budget_gb, label):
        self.jobs, self.budget_gb, self.label = jobs, budget_gb, label
        self.running = []

    def start(self, r):
        r.started = time.monotonic()
        r.started_utc = iso(utc_now())
        env = dict(os.environ)
        if r.env:
            env.update(r.env)
        with open(r.log, "w") as fe:
            fe.write(f"$ {quote(r.argv)}\n")
        fo = open(r.out, "w")
        fe = open(r.log, "a")
        try:
            r.proc = subprocess.Popen(r.argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                      cwd=ROOT, env=env, start_new_session=True)
        except OSError as e:
            r.proc = None
            r.rc = 127
            r.error = f"could not start: {e}"
            fe.write(r.error + "\n")
        finally:
            fo.close()
            fe.close()
        self.running.append(r)

    def kill(self, r):
        p = r.proc
        if p is None or p.poll() is not None:
            return
        if r.term_first:  # vs_serf.py stops its agents and removes its nftables tables
            try:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group of the child we started
        except OSError:
            pass
        p.wait()

    def finish(self, r):
        r.wall_s = round(time.monotonic() - r.started, 2)
        if r.proc is not None:
            r.rc = r.proc.returncode
        if r.timed_out:
            r.error = f"timed out after {r.timeout:.0f} s and killed"
        elif r.rc not in r.ok_rcs and r.error is None:
            r.error = f"exit status {r.rc}"
        elif r.parse == "json" and r.error is None:
            try:
                load_stdout_json(r.out)
            except ValueError as e:
                r.error = f"no JSON object on stdout: {e}"
        if r.error:
            with open(r.log, "a") as fe:
                fe.write(f"\n[results] FAILED: {r.error}\n")
        log(f"{self.label}: {r.name} {'FAILED (' + r.error + ')' if r.error else 'done'} "
            f"in {r.wall_s:.1f} s")

    def run_all(self, runs):
        pending = sorted(runs, key=lambda r: -r.est_s)
        total = len(runs)
        try:
            while pending or self.running:
                used = sum(r.mem_gb for r in self.running)
                for r in list(pending):
                    if len(self.running) >= self.jobs:
                        break
                    if self.running and used + r.mem_gb > self.budget_gb:
                        continue
                    pending.remove(r)
                    log(f"{self.label}: [{total - len(pending)}/{total}] {r.name}: {quote(r.argv)}")
                    self.start(r)
                    used += r.mem_gb
                time.sleep(0.2)
                for r in list(self.running):
                    if r.proc is not None and r.proc.poll() is None:
                        if time.monotonic() - r.started > r.timeout:
                            r.timed_out = True
                            self.kill(r)
                        else:
                            continue
                    self.running.remove(r)
                    self.finish(r)
        finally:
            for r in list(self.running):
                self.kill(r)


class LoadWatch(threading.Thread):
    """The largest 1-minute load average seen, sampled every 5 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.max = load1()
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.wait(5):
            v = load1()
            if v is not None and (self.max is None or v > self.max):
                self.max = v

    def stop(self):
        self.stop_ev.set()
        v = load1()
        if v is not None and (self.max is None or v > self.max):
            self.max = v


def load_stdout_json(path):
    """The last line of `path` that is a JSON object."""
    with open(path, errors="replace") as f:
        lines = [l for l in f.read().splitlines() if l.strip().startswith("{")]
    if not lines:
        raise ValueError("none found")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise ValueError(str(e)) from e


# ------------------------------------------------------------------ plans

class Ctx:
    pass


def sim_args(s):
    return s.split()


def arg_value(args, flag, default=None):
    if flag in args:
        i = args.index(flag)
        if i + 1 < len(args):
            return args[i + 1]
    return default


def set_arg(args, flag, value):
    args = list(args)
    if flag in args:
        args[args.index(flag) + 1] = str(value)
    else:
        args += [flag, str(value)]
    return args


def quickify(args):
    """The same run, tiny: at most QUICK_NODES nodes, QUICK_DURATION simulated
    seconds of its phase and QUICK_CRASHES crashes."""
    n = int(arg_value(args, "--nodes", "100"))
    args = set_arg(args, "--nodes", min(n, QUICK_NODES))
    d = float(arg_value(args, "--duration", "1e9"))
    args = set_arg(args, "--duration", int(min(d, QUICK_DURATION)))
    if "--crashes" in args:
        args = set_arg(args, "--crashes", min(int(arg_value(args, "--crashes")), QUICK_CRASHES))
    return args


SCENARIO_DEFAULT_S = {"bootstrap": 30, "crash": 120, "restart": 120, "loss": 300, "slow": 300,
                      "lossy-minority": 300, "partition": 360, "churn": 420}


def sim_estimate(args):
    """(wall seconds, GB) for one shoal-sim run on a 2-core VM: a model
    fitted to short runs of 2026-12-02 (see the header); rough."""
    n = int(arg_value(args, "--nodes", "100"))
    sc = arg_value(args, "--scenario")
    d = float(arg_value(args, "--duration", SCENARIO_DEFAULT_S.get(sc, 300)))
    k = n / 1000.0
    if sc == "bootstrap":
        setup = 5.0 * k ** 2.3
    else:
        setup = 0.3 * k ** 2
    per_sim_s = 0.015 * k ** 1.55
    if sc in ("loss", "lossy-minority"):
        per_sim_s *= 2.5
    return setup + d * per_sim_s + 0.2, 0.05 + 0.19 * k ** 2


def sim_run(ctx, name, args, meta=None):
    if ctx.quick:
        args = quickify(args)
    est, mem = sim_estimate(args)
    timeout = 600 if ctx.quick else max(1800, 20 * est)
    return Run(name, [ctx.bin("shoal-sim")] + args + ["--json"], timeout=timeout, est_s=est,
               mem_gb=mem, meta=dict(meta or {}, args=args))


def describe(d):
    """A run's label from its own JSON: scenario, N, loss, duration."""
    sc = d.get("scenario")
    parts = [f"{sc}, N={d.get('nodes')}"]
    if sc == "loss":
        parts.append(f"loss {d.get('loss', 0) * 100:.0f}%")
    if sc == "crash":
        parts.append(f"{d.get('crashes')} crashes")
    if sc == "partition":
        parts.append(f"halves split for {d.get('split_s')} s, then healed")
    elif d.get("steady_s") is not None and sc != "bootstrap":
        parts.append(f"{d['steady_s']:.0f} s")
    return ", ".join(parts)


# The simulator rows: (name, args, checks). Checks: (label, getter, op,
# threshold); the targets are the ones bench/RESULTS.md has carried.
def _g(*keys):
    def get(d):
        for k in keys:
            if d is None:
                return None
            d = d.get(k)
        return d
    return get


def phase_wall(d):
    if d.get("wall_s") is None or d.get("setup_wall_s") is None:
        return None
    return d["wall_s"] - d["setup_wall_s"]


SIM_MAIN = [
    ("crash_1000", "--scenario crash --nodes 1000 --crashes 10 --seed 1",
     [("mean detect_first_s", _g("detect_first_s", "mean"), "<=", 2.5),
      ("p99 detect_all_s", _g("detect_all_s", "p99"), "<=", 20),
      ("false_dead", _g("false_dead"), "==", 0)]),
    ("bootstrap_2000", "--scenario bootstrap --nodes 2000 --seed 1",
     [("converged_s", _g("converged_s"), "<=", 30)]),
    ("bootstrap_100", "--scenario bootstrap --nodes 100 --seed 1", []),
    ("loss_10", "--scenario loss --nodes 100 --loss 0.1 --duration 3600 --grace 0 --seed 1",
     [("false_dead", _g("false_dead"), "==", 0)]),
    ("loss_20", "--scenario loss --nodes 100 --loss 0.2 --duration 3600 --grace 0 --seed 1", []),
    ("slow_200", "--scenario slow --nodes 200 --seed 1",
     [("false_dead", _g("false_dead"), "==", 0)]),
    ("partition_200", "--scenario partition --nodes 200 --seed 1",
     [("healed_s", _g("healed_s"), "<=", 60)]),
    ("restart_200", "--scenario restart --nodes 200 --seed 1", []),
    ("churn_200", "--scenario churn --nodes 200 --seed 1",
     [("views_agree", _g("views_agree"), "==", True)]),
    ("crash_10000", "--scenario crash --nodes 10000 --crashes 5 --duration 120 --seed 1",
     [("phase wall s (wall_s − setup_wall_s)", phase_wall, "<=", 60)]),
]
# Targets without a threshold: shown, not marked.
SIM_UNMARKED = {"loss_20": "report (no target)", "restart_200": "a few periods (no threshold: not marked)",
                "bootstrap_100": "—"}
LOSSY_SEEDS = [1, 2, 3, 4]
LOSSY_ARGS = "--scenario lossy-minority --nodes 1000 --duration 600 --seed {seed}"
LOSSY_CHECKS = [("removed_s", _g("removed_s"), "<=", 60),
                ("returns_max_per_pair", _g("returns_max_per_pair"), "<=", 1),
                ("false_dead", _g("false_dead"), "==", 0)]
REFUSE_SIZES = [100, 1000]
REFUSE_SEEDS = [1, 2, 3, 4, 5]


def plan_sim(ctx, d):
    runs = [sim_run(ctx, name, sim_args(a)) for name, a, _ in SIM_MAIN]
    runs += [sim_run(ctx, f"lossy_minority_seed{s}", sim_args(LOSSY_ARGS.format(seed=s)))
             for s in LOSSY_SEEDS]
    return runs, ctx.jobs


def plan_refuse(ctx, d):
    runs = []
    for n in REFUSE_SIZES:
        for hosts in ("silent", "refusing"):
            for s in REFUSE_SEEDS:
                a = sim_args(f"--scenario crash --nodes {n} --seed {s}")
                if hosts == "refusing":
                    a.append("--refuse")
                runs.append(sim_run(ctx, f"crash_n{n}_{hosts}_seed{s}", a,
                                    meta={"n": n, "hosts": hosts, "seed": s}))
    return runs, ctx.jobs


def plan_tables(ctx, d):
    env = dict(os.environ)
    if ctx.quick:
        env["SIM_SIZES"] = "60 100"
        env["SIM_JOIN_SIZES"] = "60 100"
    r = subprocess.run(["bash", os.path.join(ROOT, "bench", "sim_tables.sh"), "--list"], cwd=ROOT,
                       env=env, capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        raise NotRunnable(f"`bench/sim_tables.sh --list` failed (exit {r.returncode}): "
                          f"{r.stderr.strip()[-300:]}")
    runs = []
    for line in r.stdout.splitlines():
        a = line.split()
        if not a:
            continue
        name = "_".join(x.lstrip("-").replace(".", "p") for x in a)
        runs.append(sim_run(ctx, name, a))
    return runs, ctx.jobs


def plan_memory(ctx, d):
    n = "1000" if ctx.quick else "10000"
    b = ctx.bin("shoal-core-memory")
    return [Run("members", [b, "--members", n], timeout=600, est_s=5),
            Run("members_tags", [b, "--members", n, "--tags"], timeout=600, est_s=5)], 1


def plan_micro(ctx, d):
    argv = [ctx.bin("shoal-micro"), f"--benchmark_out={os.path.join(d, 'micro.json')}",
            "--benchmark_out_format=json"]
    if ctx.quick:
        argv.append("--benchmark_min_time=0.01")
    return [Run("micro", argv, timeout=300 if ctx.quick else 1800, est_s=60, parse="none",
                meta={"json": os.path.join(d, "micro.json")})], 1


def loopback_plan(quick):
    """(name, args, role). role: on (refusals, the default), off (the
    Lifeguard path: --refusal-timeout 0), size, plain (--compression off)."""
    if quick:  # the first push-pulls come 15-45 s after the start: two runs wait for them
        n, small, large, w, w_off, w_pp = 8, 4, 16, "5", "4", "35"
        reps_on, reps_off = 2, 1
    else:
        n, small, large, w, w_off, w_pp = 64, 16, 256, None, "10", None
        reps_on, reps_off = 5, 3
    win = ["--window", w] if w else []
    win_pp = ["--window", w_pp] if w_pp else []
    plan = [(f"n{n}_on_{i}", ["--nodes", str(n)] + (win_pp if i == 1 else win), "on")
            for i in range(1, reps_on + 1)]
    plan += [(f"n{n}_off_{i}", ["--nodes", str(n), "--refusal-timeout", "0", "--window", w_off], "off")
             for i in range(1, reps_off + 1)]
    plan += [(f"n{small}", ["--nodes", str(small)] + win, "size"),
             (f"n{large}", ["--nodes", str(large)] + win, "size"),
             (f"n{n}_plain", ["--nodes", str(n), "--compression", "off"] + win_pp, "plain")]
    return n, plan


def plan_loopback(ctx, d):
    n, plan = loopback_plan(ctx.quick)
    b = ctx.bin("shoal-loopback")
    return [Run(name, [b] + a + ["--json"], timeout=300 if ctx.quick else 900, est_s=45,
                meta={"role": role, "n64": n}) for name, a, role in plan], 1


SCALE_SIZES = [64, 256, 512, 1024]
SCALE_QUICK_SIZES = [8, 16]


def scale_window(n, quick):
    return 3 if quick else (30 if n <= 256 else 60)


def plan_scale(ctx, d):
    """memberlist-loopback and shoal-loopback at each N, memberlist first,
    one at a time (est: 64/256 about 40 s each side; 512 and 1024 up to
    200 s for memberlist, which waits 120 s for a convergence that may not
    come)."""
    if not os.access(ctx.bin("shoal-loopback"), os.X_OK):
        raise NotRunnable(f"{ctx.bin('shoal-loopback')} not found: build shoal-loopback")
    bindir = os.path.join(d, "bin")
    p = subprocess.run(["sh", os.path.join("bench", "memberlist", "build.sh"), bindir], cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise NotRunnable("bench/memberlist/build.sh failed (exit status "
                          f"{p.returncode}): {p.stderr.strip()[-400:]}")
    ml = p.stdout.strip().splitlines()[-1]
    runs = []
    for n in (SCALE_QUICK_SIZES if ctx.quick else SCALE_SIZES):
        w = scale_window(n, ctx.quick)
        runs.append(Run(f"memberlist_n{n}", [ml, "--nodes", str(n), "--config", "lan", "--window",
                                             f"{w}s", "--json"],
                        timeout=600, est_s=float(10000 - n), ok_rcs=(0, 1),
                        meta={"n": n, "system": "memberlist"}))
        runs.append(Run(f"shoal_n{n}", [ctx.bin("shoal-loopback"), "--nodes", str(n), "--window",
                                        str(w), "--json"],
                        timeout=600, est_s=float(10000 - n) - 0.5, ok_rcs=(0, 1),
                        meta={"n": n, "system": "shoal"}))
    return runs, 1


def plan_serf(ctx, d):
    if os.geteuid() != 0:
        raise NotRunnable("not root: the Serf comparison counts bytes and silences hosts with "
                          "nftables, which needs root")
    if not shutil.which("serf"):
        raise NotRunnable("no `serf` binary: the Debian package serf is not installed "
                          "(bench/results.sh installs it as root)")
    if not shutil.which("nft"):
        raise NotRunnable("no `nft`: the Debian package nftables is not installed")
    for p in (ctx.shoald, ctx.shoalctl):
        if not os.access(p, os.X_OK):
            raise NotRunnable(f"{p} not found: build shoald and shoalctl")
    argv = ["bash", os.path.join("bench", "vs_serf.sh"), "--build", ctx.build, "--out", d,
            "--crash-mode", "both", "--port-base", str(SERF_PORT_BASE)]
    if ctx.quick:
        argv += ["--sizes", "4", "--crashes", "1", "--steady", "3"]
    return [Run("vs_serf", argv, timeout=900 if ctx.quick else 3600, est_s=600, parse="none",
                term_first=True, meta={"json": os.path.join(d, "vs_serf.json")})], 1


def plan_cluster(ctx, d):
    for p in (ctx.shoald, ctx.shoalctl):
        if not os.access(p, os.X_OK):
            raise NotRunnable(f"{p} not found: build shoald and shoalctl")
    try:
        import msgpack  # noqa: F401 - the Python client's one dependency
    except ImportError:
        raise NotRunnable(f"{sys.executable} has no msgpack (Debian: python3-msgpack), which the "
                          "Python client (clients/python) needs")
    argv = [sys.executable, os.path.join("bench", "daemon_cluster.py"), "--build", ctx.build,
            "--port-base", str(CLUSTER_PORT_BASE), "--json"]
    if ctx.quick:
        argv += ["--nodes", "8", "--events", "3", "--queries", "2"]
    # term_first: the daemons run in sessions of their own; SIGTERM lets the
    # script stop them (a SIGKILL of its process group would not reach them).
    return [Run("daemon_cluster", argv, timeout=300 if ctx.quick else 600, est_s=60,
                term_first=True)], 1


def plan_plots(ctx, d):
    tables = ctx.sections.get("tables")
    jsonl = os.path.join(ctx.raw, "tables", "sim_tables.jsonl")
    if not tables or not os.path.exists(jsonl) or os.path.getsize(jsonl) == 0:
        raise NotRunnable("no scenario-table output to plot (the tables section did not run "
                          "or every run of it failed)")
    os.makedirs(ctx.plots, exist_ok=True)
    return [Run("plot_sim", ["bash", os.path.join("bench", "plot_sim.sh"), jsonl, ctx.plots],
                timeout=600, est_s=5, parse="none",
                meta={"plots": ctx.plots, "jsonl": jsonl})], 1


PLANS = {"sim": plan_sim, "refuse": plan_refuse, "tables": plan_tables, "memory": plan_memory,
         "micro": plan_micro, "loopback": plan_loopback, "serf": plan_serf, "plots": plan_plots,
         "scale": plan_scale,
         "cluster": plan_cluster}


def post_jsonl(ctx, d, runs, sec, name):
    """One JSON object per successful run, with the command, in d/NAME."""
    with open(os.path.join(d, name), "w") as f:
        for r in runs:
            if r.record()["ok"]:
                o = load_stdout_json(r.out)
                o["command"] = "shoal-sim " + " ".join(r.meta.get("args", [])) + " --json"
                f.write(json.dumps(o) + "\n")


def post_plots(ctx, d, runs, sec):
    r = runs[0].record()
    for f in ("detection_vs_n.svg", "convergence_vs_n.svg"):
        if r["ok"] and not os.path.exists(os.path.join(ctx.plots, f)):
            runs[0].error = f"{f} not written"
    if runs[0].record()["ok"] and not ctx.quick:
        # The data the committed plots were drawn from, beside them.
        shutil.copy(r["meta"]["jsonl"], os.path.join(ctx.plots, "sim_tables.jsonl"))


def post_serf(ctx, d, runs, sec):
    """vs_serf exits 0 when it skipped a half or a crash series failed: those
    are failures of this section too (its tables show what is missing)."""
    r = runs[0]
    if r.record()["ok"] and not os.path.exists(r.meta["json"]):
        r.error = "vs_serf.json not written"
    if not r.record()["ok"]:
        return
    with open(r.meta["json"]) as f:
        doc = json.load(f)
    problems = [f"skipped: {s}" for s in doc.get("skipped", [])]
    for x in doc.get("results", []):
        for k, v in x.items():
            if (k == "error" or k.endswith("_error")) and v:
                problems.append(f"{x['system']} N={x['nodes']}: {k}: {v}")
    if problems:
        sec["problems"] = problems


def post_micro(ctx, d, runs, sec):
    r = runs[0]
    if r.record()["ok"]:
        try:
            with open(r.meta["json"]) as f:
                json.load(f)
        except (OSError, ValueError) as e:
            r.error = f"micro.json unreadable: {e}"


POSTS = {"sim": lambda *a: post_jsonl(*a, "sim.jsonl"),
         "refuse": lambda *a: post_jsonl(*a, "refuse.jsonl"),
         "tables": lambda *a: post_jsonl(*a, "sim_tables.jsonl"),
         "plots": post_plots, "serf": post_serf, "micro": post_micro}


def run_section(ctx, name):
    d = os.path.join(ctx.raw, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    started = utc_now()
    sec = {"section": name, "commit": ctx.tree.commit, "commit_shown": ctx.tree.shown,
           "tree": ctx.tree.state, "quick": ctx.quick, "build": ctx.build,
           "started_utc": iso(started), "load1_start": load1(), "jobs": 1,
           "invocation": ctx.invocation}
    log(f"== section {name} ({TITLES[name]})")
    watch = LoadWatch()
    watch.start()
    t0 = time.monotonic()
    runs = []
    try:
        try:
            runs, jobs = PLANS[name](ctx, d)
        except NotRunnable as e:
            sec["status"] = "not run"
            sec["reason"] = str(e)
            log(f"{name}: NOT RUN: {e}")
        else:
            for r in runs:
                r.out = os.path.join(d, r.name + ".out")
                r.log = os.path.join(d, r.name + ".log")
            sec["jobs"] = jobs
            budget = max(1.0, 0.9 * mem_available_gb())
            Executor(jobs, budget, name).run_all(runs)
            if name in POSTS:
                POSTS[name](ctx, d, runs, sec)
            ok = all(r.record()["ok"] for r in runs) and not sec.get("problems")
            sec["status"] = "ok" if ok else "failed"
    finally:
        watch.stop()
    sec["wall_s"] = round(time.monotonic() - t0, 1)
    sec["ended_utc"] = iso(utc_now())
    sec["load1_end"] = load1()
    sec["load1_max"] = watch.max
    sec["runs"] = [r.record() for r in runs]
    with open(os.path.join(d, "section.json"), "w") as f:
        json.dump(sec, f, indent=1)
    log(f"== section {name}: {sec['status']} in {dur(sec['wall_s'])}")
    return sec


# ------------------------------------------------------------------ rendering helpers

def stamp(ctx, sec, command):
    """The line under every table: commit, date, command, load."""
    ld = (f"load average (1 min) {f2(sec.get('load1_start'))} at the start of the section, "
          f"{f2(sec.get('load1_end'))} at its end, at most {f2(sec.get('load1_max'))} during it "
          f"({ctx.facts['nproc']} cores)")
    return (f"*commit {sec['commit_shown']}, {show_date(sec['started_utc'])}, command: {command}; "
            f"{ld}.*\n")


def failed_text(r):
    why = r.get("error") or f"exit status {r.get('rc')}"
    if r.get("rc") == -9 and not r.get("timed_out"):
        # Nothing in this script sends SIGKILL: the kernel's OOM killer does
        # when a run outgrows the machine's memory.
        why += ": SIGKILL, the kernel's out-of-memory killer (the log's last line says how far it got)"
    return f"**FAILED** ({why}); log: `{r['log']}`"


def run_json(r):
    if not r or not r.get("ok"):
        return None
    try:
        return load_stdout_json(r["out"])
    except (OSError, ValueError):
        return None


def not_run_text(sec):
    if sec is None:
        return "**NOT RUN** in this run.\n"
    return f"**NOT RUN**: {sec.get('reason', '?')}\n"


def sim_bin_shown(ctx):
    return f"{ctx.build}/bench/shoal-sim"


def runs_by_name(sec):
    return {r["name"]: r for r in sec.get("runs", [])}


def args_of(r):
    return " ".join(r.get("meta", {}).get("args", []))


# ------------------------------------------------------------------ sections

def fp_text(d):
    n = d.get("nodes", 0)
    return (f"false_suspect {num(d.get('false_suspect'))} (per observer–member pair "
            f"{per_pair(d.get('false_suspect'), n)}), false_dead {num(d.get('false_dead'))} "
            f"(per pair {per_pair(d.get('false_dead'), n)})")


def sim_figures(name, d):
    sc = d["scenario"]
    msgs = f"{f2(d.get('msgs_per_node_s'))} msgs/node/s"
    if sc == "crash":
        s = (f"detect_first_s mean {f2(d['detect_first_s']['mean'])} (p99 {f2(d['detect_first_s']['p99'])}); "
             f"first_dead_s mean {f2(d['first_dead_s']['mean'])}; detect_all_s mean "
             f"{f2(d['detect_all_s']['mean'])}, p99 {f2(d['detect_all_s']['p99'])}; undetected "
             f"{d['undetected']} of {d['crashes']}; {fp_text(d)}; {msgs}")
        if d["nodes"] >= 10000 or name == "crash_10000":
            s += (f"; {d['steady_s']:.0f} simulated s in {f2(phase_wall(d), 1)} s wall (wall_s "
                  f"{f2(d['wall_s'], 1)} − setup_wall_s {f2(d['setup_wall_s'], 1)})")
        return s
    if sc == "bootstrap":
        return (f"converged_s {f2(d.get('converged_s'))} (full mesh: {num(bool(d.get('converged')))}); "
                f"then {msgs} over {d['steady_s']:.0f} s; {f2(d['wall_s'], 1)} s wall")
    if sc == "loss":
        return (f"{fp_text(d)}; {msgs}, {f2(d.get('bytes_per_node_s'), 1)} bytes/node/s over "
                f"{d['steady_s']:.0f} s")
    if sc == "slow":
        return (f"{fp_text(d)}; slow nodes {d['slow_nodes']}, of them dead "
                f"in some healthy view at the end {d['slow_seen_dead_at_end']}; false_dead_by_unhealthy "
                f"{num(d.get('false_dead_by_unhealthy'))}; {msgs}")
    if sc == "partition":
        return (f"healed_s {f2(d.get('healed_s'))}; views agree: {num(bool(d.get('views_agree')))}; "
                f"dead in views at the heal {num(d.get('dead_in_views_at_heal'))}; {fp_text(d)}")
    if sc == "restart":
        b = d["back_alive_s"]
        return (f"back_alive_s mean {f2(b['mean'])}, p99 {f2(b['p99'])}; {b['n']} of {d['restarted']} "
                f"back (all: {num(bool(d.get('all_back')))}); {fp_text(d)}")
    if sc == "churn":
        return (f"{d['joins']} joins, {d['leaves']} leaves, {d['crashes']} crashes; views agree "
                f"{f2(d.get('settle_s'))} s after the churn stops (agree: {num(bool(d.get('views_agree')))}); "
                f"{fp_text(d)}")
    return json.dumps(d)[:200]


def conditions(d):
    applies = d["scenario"] in ("partition", "restart")
    g = d.get("grace_s")
    grace = f"grace_s {g:g}" + ("" if g == 0 else (" (applies)" if applies else
                                                     " (no injected fault ends: applies to nothing)"))
    return f"streams: {d.get('streams')}; {grace}; start: {d.get('start')}"


def render_sim(ctx, sec):
    out = []
    cmd = (f"each row's arguments, as `{sim_bin_shown(ctx)} ARGS --json`, "
           f"{sec.get('jobs', 1)} at a time (`{ctx.invocation}`)")
    runs = runs_by_name(sec)
    out.append(wrap("""
The simulated network is a LAN (lan preset). Streams (push-pull, the TCP fallback
ping, joins) feel loss like UDP packets and are retransmitted as TCP would
(`network_config::streams_feel_loss`, the default; `streams` in each row). A false
positive declared within `grace_s` after the end of a fault the scenario injected is not
counted; only partition (the heal) and restart end a fault, so elsewhere no grace
applies whatever `grace_s` says; the loss rows run with `--grace 0`. Unless it says
`join`, a scenario starts converged (`core::adopt_view`), and its figures cover the
scenario phase only (see the header of `bench/shoal_sim.cpp`). False positives are
counted once per node whose view they changed; "per pair" divides that total by the
N × (N − 1) (observer, member) pairs.
"""))
    out.append("\n")
    rows = []
    for name, a, checks in SIM_MAIN:
        r = runs.get(name)
        if r is None:
            rows.append([name, "—", "—", "**NOT RUN**", "—"])
            continue
        d = run_json(r)
        if d is None:
            rows.append([name, f"`{args_of(r)}`", "—", failed_text(r), "—"])
            continue
        marks = [check(label, get(d), op, thr) for label, get, op, thr in checks]
        target = "; ".join(marks) if marks else SIM_UNMARKED.get(name, "—")
        rows.append([describe(d), f"`{args_of(r)}`", conditions(d), sim_figures(name, d), target])
    out.append(md_table(["scenario", "arguments", "conditions", "figures", "target: mark (figure)"], rows))
    out.append("\n" + stamp(ctx, sec, cmd))

    out.append("\n### Lossy minority: 1% of the nodes lose 80% of what they send\n\n")
    out.append(wrap("""
`removed_s`: from the start of the phase until every lossy node is dead in every healthy
view and stays so to the end (a return restarts its clock), the largest over the lossy
nodes; none unless all are removed at the end. A return: a healthy observer that
declared a lossy node dead sees it up again. `pairs`: (healthy observer, lossy node)
pairs; `returns_share_of_pairs`: the share of them that saw at least one return;
`returns_max_per_pair`: the most returns one observer saw of one lossy node (the target
of at most one return per lossy node, counted per observer). `false_dead`: healthy
members declared dead (in any view); `false_dead_by_unhealthy`: the part of them in
the lossy nodes' own views.
"""))
    out.append("\n")
    rows = []
    for s in LOSSY_SEEDS:
        r = runs.get(f"lossy_minority_seed{s}")
        d = run_json(r) if r else None
        if d is None:
            rows.append([s, f"`{args_of(r)}`" if r else "—"] + ["—"] * 8
                        + [failed_text(r) if r else "**NOT RUN**"])
            continue
        marks = "; ".join(check(l, g(d), op, t) for l, g, op, t in LOSSY_CHECKS)
        rows.append([d["seed"], f"`{args_of(r)}`", f2(d.get("removed_s"), 1),
                     f"{d['removed']} of {d['lossy_nodes']}", num(d["returns_total"]),
                     f"{d['returns_share_of_pairs']:.4f}", num(d["returns_max_per_pair"]),
                     num(d["pairs"]), num(d["false_dead"]), num(d.get("false_dead_by_unhealthy")), marks])
    out.append(md_table(["seed", "arguments", "removed_s", "removed", "returns_total",
                         "returns_share_of_pairs", "returns_max_per_pair", "pairs", "false_dead",
                         "false_dead_by_unhealthy", "target: mark (figure)"], rows))
    out.append("\n" + stamp(ctx, sec, cmd))
    out.append("\n" + wrap("""
What the numbers needed, beyond memberlist's design (the mechanisms; the figures are the
rows above):

- **Digest-driven anti-entropy.** Gossip misses a member now and then (each update is
  sent `retransmit_mult * ceil(log10(N+1))` times). Acks carry the view digest; two
  mismatching probes in a row with an empty update queue trigger a push-pull (at most
  every `digest_sync_interval`). This is what brings the large joins to a full mesh.

- **Self-benching of a persistently unhealthy member.** A node that keeps refuting
  accusations and whose own probes hear nothing back (5 of its last 16 with 6
  refutations in a minute, or 4 of 16 with 8, or 5 of 8 with 3, or 2 of 8 with 10)
  stops refuting and stops accusing others until its last 16 probes all heard back.
  While it keeps refuting it probes at the base interval, however high its Lifeguard
  score, so that this evidence comes in seconds. Accusations alone never bench a member.
  Without it the lossy minority is never removed for good, and its accusations reach
  healthy members.

- **Returns.** The remaining returns are refutations sent before a lossy node was
  declared dead and delivered (through its egress loss) after: SWIM lets a newer
  incarnation override a death, and that is kept.
"""))
    return "".join(out)


def render_refuse(ctx, sec):
    runs = runs_by_name(sec)
    out = [wrap("""
A crashed process on a host that stays up (`--refuse`: the host answers a probe of the
dead port with ICMP port unreachable, which the core uses) against a silent host (the
default: a host that is down or cut off answers nothing). One crash per run; the
columns list the seeds in order, then the mean.
"""), "\n"]
    rows = []
    gaps = []
    for n in REFUSE_SIZES:
        for hosts in ("silent", "refusing"):
            ds, failed = [], []
            for s in REFUSE_SEEDS:
                r = runs.get(f"crash_n{n}_{hosts}_seed{s}")
                d = run_json(r) if r else None
                if d is None:
                    failed.append(failed_text(r) if r else f"seed {s}: NOT RUN")
                ds.append(d)
            if failed:
                rows.append([n, hosts, "; ".join(failed), "—", "—", "—", "—", "—"])
                continue
            N = ds[0]["nodes"]

            def series(key):
                v = [d[key]["mean"] for d in ds]
                if any(x is None for x in v):
                    return ", ".join(f2(x) for x in v) + " (mean —)"
                return ", ".join(f2(x) for x in v) + f" ({f2(statistics.mean(v))})"
            if hosts == "refusing":
                gaps += [d["first_dead_s"]["mean"] - d["detect_first_s"]["mean"] for d in ds
                         if d["first_dead_s"]["mean"] is not None and d["detect_first_s"]["mean"] is not None]
            fd = sum(d["false_dead"] for d in ds)
            rows.append([N, hosts, series("detect_first_s"), series("detect_all_s"),
                         f"{fd} ({fd / (len(ds) * N * (N - 1)):.2e} per pair per run)" if fd else "0",
                         f2(statistics.mean(d["msgs_per_node_s"] for d in ds)),
                         num(sum(d.get("refusal_deaths", 0) for d in ds)) if hosts == "refusing" else "—",
                         f"{ds[0]['grace_s']:g} (n/a)"])
    out.append(md_table(["N", "hosts", "detect_first_s by seed (mean)", "detect_all_s by seed (mean)",
                         "false_dead, all seeds", "msgs/node/s, mean", "refusal_deaths, all seeds",
                         "grace_s"], rows))
    seeds = ",".join(str(s) for s in REFUSE_SEEDS)
    example = next((r for r in sec.get("runs", []) if "--refuse" in r.get("meta", {}).get("args", [])), None)
    cmd = (f"`{sim_bin_shown(ctx)} --scenario crash --nodes N --seed S --json [--refuse]` for N in "
           f"{', '.join(str(n) for n in REFUSE_SIZES)} and S in {seeds}"
           + (f" (e.g. `{args_of(example)}`)" if example and ctx.quick else "")
           + f", {sec.get('jobs', 1)} at a time")
    out.append("\n" + stamp(ctx, sec, cmd))
    if gaps:
        out.append("\n" + wrap(f"""
With refusing hosts the first death follows the first suspicion after
{min(gaps):.2f}–{max(gaps):.2f} s in these runs (`refusal_suspicion_timeout` once enough
members saw the port refused), instead of Lifeguard's minimum suspicion timeout; what is
left is the wait for some member to probe the crashed one.
`tests/sim/test_sim_refuse.cpp` checks the model and the protocol on it.
"""))
    return "".join(out)


MEMORY_TARGET = 256  # bytes per known member


def render_memory(ctx, sec):
    rows = []
    for r in sec.get("runs", []):
        d = run_json(r)
        shown = quote(r["argv"])
        if d is None:
            rows.append([f"`{shown}`", failed_text(r), "—", "—"])
            continue
        rows.append([f"`{shown}`" + (" (2 tags)" if d.get("tags") else ""), f2(d["bytes_per_member"], 1),
                     f2(d.get("estimate_per_member"), 1),
                     check("bytes per member", d["bytes_per_member"], "<=", MEMORY_TARGET,
                           shown=f2(d["bytes_per_member"], 1))])
    out = [md_table(["command", "bytes per known member (malloc)", "core::memory_estimate per member",
                     "target: mark (figure)"], rows)]
    out.append("\n" + stamp(ctx, sec, "the one in each row"))
    out.append("\n" + wrap("""
Measured as malloc's in-use bytes (mallinfo2) of one core before and after it learned the
members, after some protocol periods (`bench/core_memory.cpp`).
"""))
    return "".join(out)


def t_unit(v, unit):
    ns = v * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]
    if ns < 1000:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def si(v, unit=""):
    if v is None:
        return "—"
    for k, p in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= p:
            return f"{v / p:.3g} {k}{unit}"
    return f"{v:.3g} {unit}".strip()


MICRO_STD = {"name", "family_index", "per_family_instance_index", "run_name", "run_type",
             "repetitions", "repetition_index", "threads", "iterations", "real_time", "cpu_time",
             "time_unit", "bytes_per_second", "items_per_second", "label", "aggregate_name",
             "aggregate_unit"}


def render_micro(ctx, sec):
    r = sec["runs"][0] if sec.get("runs") else None
    if not r or not r.get("ok"):
        return (failed_text(r) if r else "**NOT RUN**") + "\n\n" + stamp(ctx, sec, "—")
    with open(r["meta"]["json"]) as f:
        doc = json.load(f)
    c = doc.get("context", {})
    rows = []
    ratios = []
    for b in doc.get("benchmarks", []):
        if b.get("run_type") != "iteration":
            continue
        extra = ", ".join(f"{k} {v:,.0f}" if float(v).is_integer() else f"{k} {v:,.4g}"
                          for k, v in b.items() if k not in MICRO_STD and isinstance(v, (int, float)))
        ips, bps = b.get("items_per_second"), b.get("bytes_per_second")
        rows.append([b["name"], t_unit(b["cpu_time"], b["time_unit"]), t_unit(b["real_time"], b["time_unit"]),
                     si(ips), si(bps, "B"), f"{bps / ips:,.0f}" if ips and bps else "—",
                     num(b["iterations"]), extra or "—"])
        if b["cpu_time"]:
            ratios.append(b["real_time"] / b["cpu_time"])
    out = [wrap(f"""
What each benchmark runs is described at the top of `bench/micro.cpp`; every one goes
through the library's own code. Times are CPU time per iteration (and real time beside
it), and the rates are per CPU-second, which is what Google Benchmark divides by; MB/s is
10^6 bytes per second; "bytes per item" is bytes/s divided by items/s. Google Benchmark's
context: {c.get('num_cpus', '?')} CPUs at {c.get('mhz_per_cpu', '?')} MHz, CPU scaling
{'on' if c.get('cpu_scaling_enabled') else 'off'}, load average
{', '.join(f'{x:.2f}' for x in c.get('load_avg', [])) or '?'} when it started, libbenchmark
{ctx.facts['libbenchmark']} built as "{c.get('library_build_type', '?')}" (Debian's build says
debug: that is the harness, not the code measured). Real time over CPU time: median
{f2(statistics.median(ratios)) if ratios else '—'} over the benchmarks (above 1: the CPU
was shared).
"""), "\n"]
    out.append(md_table(["benchmark", "CPU time", "real time", "items/s", "bytes/s", "bytes per item",
                         "iterations", "counters"], rows))
    out.append("\n" + stamp(ctx, sec, f"`{quote(r['argv'])}`"))
    return "".join(out)


def render_tables(ctx, sec):
    runs = [r for r in sec.get("runs", [])]
    ds = [(r, run_json(r)) for r in runs]
    rows_ok = [d for _, d in ds if d]

    def by(scenario, n, **kw):
        for d in rows_ok:
            if d["scenario"] == scenario and d["nodes"] == n and all(d.get(k) == v for k, v in kw.items()):
                return d
        return None
    sizes = sorted({int(arg_value(r["meta"]["args"], "--nodes")) for r in runs})
    out = [wrap(f"""
The runs that `bench/sim_tables.sh` makes (it prints them with `--list`), one shoal-sim
run each, seed 1, lan preset; `bench/sim_tables.sh`'s header says why these sizes and
durations. Seeds are fixed: a rerun on the same build prints the same figures apart from
the wall times. {len(runs)} runs, {sum(r['wall_s'] or 0 for r in runs):.0f} s of wall
time in all, {sec.get('jobs', 1)} at a time.
"""), "\n"]
    failed = [r for r, d in ds if d is None]
    if failed:
        out.append("Failed runs (their rows say FAILED or are missing below):\n\n")
        for r in failed:
            out.append(f"- `{args_of(r)}`: {failed_text(r)}\n")
        out.append("\n")
    cmd = (f"the runs of `bench/sim_tables.sh --list`"
           + (" (with SIM_SIZES=\"60 100\" SIM_JOIN_SIZES=\"60 100\", then made quick)" if ctx.quick else "")
           + f", each `{sim_bin_shown(ctx)} ARGS --json` (listed below), {sec.get('jobs', 1)} at a time; "
           f"raw: `{os.path.join(ctx.raw, 'tables', 'sim_tables.jsonl')}`")
    e_ratio = math.e / (math.e - 1)
    rows = []
    for n in sizes:
        b, c = by("bootstrap", n), by("crash", n)
        conv = (f2(b["converged_s"]) if b.get("converged") else "not converged") if b else (
            "FAILED" if any(arg_value(r["meta"]["args"], "--nodes") == str(n) and
                            arg_value(r["meta"]["args"], "--scenario") == "bootstrap" for r in failed)
            else "not run")
        if c:
            swim = e_ratio * c["probe_interval_s"]
            gap = (c["first_dead_s"]["mean"] - c["detect_first_s"]["mean"]
                   if c["first_dead_s"]["mean"] is not None and c["detect_first_s"]["mean"] is not None else None)
            lifeguard = 4 * max(1.0, math.log10(c["nodes"])) * c["probe_interval_s"]
            rows.append([n, conv, c["crashes"], f"{f2(c['detect_first_s']['mean'])} ({f2(c['detect_first_s']['p99'])})",
                         f2(swim), f2(c["first_dead_s"]["mean"]), f2(gap), f2(lifeguard),
                         f"{f2(c['detect_all_s']['mean'])} ({f2(c['detect_all_s']['p99'])})",
                         c["undetected"], c["false_dead"], f2(c["setup_wall_s"], 0), f2(phase_wall(c), 0)])
        else:
            rows.append([n, conv] + ["—"] * 11)
    out.append(md_table(["N", "join converged_s", "crashes", "detect_first_s mean (p99)",
                         "SWIM e/(e-1) × T (s)", "first_dead_s mean", "first dead − first suspicion (s)",
                         "4 × max(1, log10 N) × T (s)", "detect_all_s mean (p99)", "undetected",
                         "false_dead", "setup wall s", "phase wall s"], rows))
    out.append("\n" + stamp(ctx, sec, cmd))
    out.append("\n" + wrap("""
`detect_first_s`: from a crash to the first suspicion by anyone; `first_dead_s`: to the
first death declaration; `detect_all_s`: to dead in every live view. T is the probe
interval (`probe_interval_s` in the output). The gap between the first suspicion and the
first death is to be compared with Lifeguard's minimum suspicion timeout,
`suspicion_mult` × max(1, log10 N) × T with the lan preset's `suspicion_mult` of 4.
"Setup wall s" is the wall time of the converged start, "phase wall s" that of the
scenario's own phase.
"""))
    out.append("\n")
    rows = []
    for n in sizes:
        for d in sorted((d for d in rows_ok if d["scenario"] == "loss" and d["nodes"] == n),
                        key=lambda d: d["loss"]):
            rows.append([n, f"{d['loss']:.0%}", f"{d['steady_s']:.0f}", f2(d["msgs_per_node_s"]),
                         f2(d["bytes_per_node_s"], 1), d["false_suspect"],
                         per_pair(d["false_suspect"], n), d["false_dead"], per_pair(d["false_dead"], n),
                         d["streams"], f"{d['wall_s']:.0f}"])
    out.append(md_table(["N", "loss", "simulated s", "msgs/node/s", "bytes/node/s", "false_suspect",
                         "per pair", "false_dead", "per pair", "streams", "wall s"], rows))
    out.append("\n" + stamp(ctx, sec, cmd))
    out.append("\n" + wrap("""
Uniform loss on every packet, converged start. `msgs/node/s`: UDP packets sent per node
per second; `bytes/node/s`: UDP and stream bytes sent per node per second. Without loss
the UDP packets are one probe and one ack per node per second at every N; the bytes grow
with N because each periodic push-pull carries the whole state.
"""))
    joins = [d for d in rows_ok if d["scenario"] == "bootstrap" and d.get("converged")]
    if joins:
        out.append("\n" + "".join(
            f"- N={d['nodes']} join: converged in {f2(d['converged_s'])} s simulated; then "
            f"{f2(d['msgs_per_node_s'])} msgs and {f2(d['bytes_per_node_s'], 1)} bytes per node per "
            f"second over {d['steady_s']:.0f} s; {d['wall_s']:.0f} s wall.\n" for d in joins))
    out.append("\nCommands (each `" + sim_bin_shown(ctx) + " ARGS --json`):\n\n")
    out.append("".join(f"- `{args_of(r)}`\n" for r in runs))
    return "".join(out)


def render_plots(ctx, sec):
    r = sec["runs"][0] if sec.get("runs") else None
    if not r or not r.get("ok"):
        return (failed_text(r) if r else "**NOT RUN**") + "\n\n" + stamp(ctx, sec, "—")
    rel = os.path.relpath(r["meta"]["plots"], os.path.dirname(os.path.abspath(ctx.out)))
    jsonl = r["meta"]["jsonl"]
    crashes = []
    with open(jsonl) as f:
        for line in f:
            d = json.loads(line)
            if d["scenario"] == "crash" and d["detect_first_s"]["mean"] is not None:
                crashes.append(d)
    crashes.sort(key=lambda d: d["nodes"])
    swim = math.e / (math.e - 1) * (crashes[0]["probe_interval_s"] if crashes else 1.0)
    diffs = ", ".join(f"{d['detect_first_s']['mean'] - swim:+.2f} s at N={d['nodes']:,}" for d in crashes)
    out = [f"![Crash detection against N]({rel}/detection_vs_n.svg)\n\n"]
    out.append(wrap(f"""
`detection_vs_n.svg`: mean `detect_first_s` and `detect_all_s` against N (error bars up
to the p99), beside SWIM's analytic expected time to first detection, e/(e-1) protocol
periods times the probe interval ({swim:.2f} s), which does not depend on N. Measured
first suspicion minus that: {diffs or '—'}.
"""))
    out.append(f"\n![Join convergence against N]({rel}/convergence_vs_n.svg)\n\n")
    out.append(wrap("""
`convergence_vs_n.svg`: simulated seconds from the first join until every node sees all
N alive (joins spread over the first 10 s).
"""))
    out.append("\n" + stamp(ctx, sec, f"`{quote(r['argv'])}` (gnuplot), drawn from the scenario "
                                       f"tables' runs above"))
    return "".join(out)


SERF_TARGETS = {"cpu_s_per_agent_s": 0.5, "rss_kb_per_agent": 0.25, "bytes_per_agent_s": 1.0,
                "crash_kill_failed_all_s": 1.0, "crash_host_down_failed_all_s": 1.0}
SERF_ROWS = [
    ("join_convergence_s", "join convergence (s)"),
    ("crash_kill_failed_all_s", "crash -> failed everywhere, kill, host up: ICMP (s, median of K)"),
    ("crash_host_down_failed_all_s", "crash -> failed everywhere, host down: silent (s, median of K)"),
    ("crash_kill_failed_first_s", "crash -> failed at the first agent, kill (s, median of K)"),
    ("crash_host_down_failed_first_s", "crash -> failed at the first agent, host down (s, median of K)"),
    ("cpu_s_per_agent_s", "CPU per agent (CPU-s per agent-s: schedstat ns, all threads)"),
    ("rss_kb_per_agent", "resident memory per agent (KB, VmRSS)"),
    ("pss_kb_per_agent", "  proportional (KB, Pss: shared pages split)"),
    ("anon_kb_per_agent", "  anonymous (KB, RssAnon: heap and stacks)"),
    ("bytes_per_agent_s", "bytes per agent-second (UDP+TCP, IP bytes)"),
    ("udp_bytes_per_agent_s", "  of which UDP"),
    ("tcp_bytes_per_agent_s", "  of which TCP"),
]


def sfmt(x):
    if x is None:
        return "—"
    if isinstance(x, float):
        if x == 0:
            return "0"
        return f"{x:.6f}" if abs(x) < 0.01 else f"{x:.2f}"
    return str(x)


def serf_doc(sec):
    r = sec["runs"][0] if sec.get("runs") else None
    if not r or not r.get("ok"):
        return r, None
    try:
        with open(r["meta"]["json"]) as f:
            return r, json.load(f)
    except (OSError, ValueError):
        return r, None


def serf_pair(doc, n):
    rs = {x["system"]: x for x in doc.get("results", []) if x["nodes"] == n}
    return rs.get("serf"), rs.get("shoald")


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def render_serf(ctx, sec):
    r, doc = serf_doc(sec)
    if doc is None:
        return (failed_text(r) if r else not_run_text(sec)) + "\n" + stamp(ctx, sec, "`bench/vs_serf.sh`")
    meta = doc["meta"]
    static = ctx.facts["static_daemon"]
    linked = ("statically linked (SHOAL_STATIC_DAEMON=ON)" if static in ("ON", "TRUE", "1")
              else f"SHOAL_STATIC_DAEMON={static}")
    out = [wrap(f"""
N agents of each system on 127.0.0.1, lan parameters (serf `-profile lan`, shoald
`--preset lan`), agents 1..N-1 joining agent 0, one system after the other so they never
share the CPU; CPU from `/proc/PID/task/*/schedstat` (nanoseconds on CPU, every thread)
over a {meta.get('steady_s', 0):g} s steady window after convergence; memory after that
window; bytes from an nftables table counting the agents' ports (IP bytes). Then
{meta.get('crashes')} agent(s) are crashed one after another (each once the previous one is
failed everywhere), in two series, each in a cluster of its own: `kill` is `kill -9` of
the agent on a host that stays up, so its port answers with ICMP port unreachable, which
shoald reads (`refusal_suspicion_timeout`) and Serf does not: **this condition favours
shoald**; `host down` silences the agent's host first (nftables drops every packet to and
from its port: no ICMP, no RST), which is what a powered-off or cut-off host gives, and
what shoald gives with a keyring: **shoald with a keyring reads no ICMP, so with
encryption the host-down row is the one that applies**. shoald here runs without a keyring
(the lan defaults), {linked};
serf is Debian's package ({meta.get('serf_version', '?')}); shoald: {meta.get('shoald_version', '?')}.
Targets are on the ratio shoal/serf (lower is better).
"""), "\n"]
    for s in doc.get("skipped", []):
        out.append(f"**SKIPPED: {s}**\n\n")
    cmd = f"`{meta.get('command', quote(r['argv']))}` (run as `{quote(r['argv'])}`)"
    for n in meta.get("sizes", []):
        serf, shoal = serf_pair(doc, n)
        k = max((x.get("crashes", 0) for x in (serf, shoal) if x), default=0)
        out.append(f"#### N = {n}\n\n")
        rows = []
        for key, label in SERF_ROWS:
            a = shoal.get(key) if shoal else None
            b = serf.get(key) if serf else None
            if a is None and b is None and key not in ("bytes_per_agent_s",) and "bytes" in key:
                continue
            q = ratio(a, b)
            t = SERF_TARGETS.get(key)
            mark = (check("shoal/serf", q, "<=", t, shown=None if q is None else f"{q:.3f}")
                    if t is not None else "—")
            rows.append([label.replace("K)", f"{k})"), sfmt(b), sfmt(a), sfmt(q), mark])
        out.append(md_table(["figure", "serf", "shoald", "shoal/serf", "target: mark (ratio)"], rows))
        out.append("\n")
        for sysname, x in (("serf", serf), ("shoald", shoal)):
            if x is None:
                out.append(f"- {sysname}: no result (see SKIPPED above)\n")
                continue
            for ek in ["error", "crash_kill_error", "crash_host_down_error", "crashes_clamped", "bytes_skipped"]:
                if x.get(ek):
                    out.append(f"- {sysname}: **{ek.replace('_', ' ')}**: {x[ek]}\n")
            for mode, mk in (("kill", "crash_kill"), ("host down", "crash_host_down")):
                rr = x.get(mk + "_runs") or []
                if rr:
                    icmp = x.get(mk + "_icmp_unreachable_in")
                    out.append(f"- {sysname}, {mode}: victims {', '.join(v['victim'] for v in rr)}; failed "
                               f"everywhere {', '.join(sfmt(v['failed_all_s']) for v in rr)} s"
                               + (f"; ICMP port unreachable read {icmp}" if icmp is not None else "")
                               + f"; poll round at most {sfmt(x.get(mk + '_poll_round_s'))} s\n")
            if x.get("cpu_threads_exited_in_window"):
                out.append(f"- {sysname}: {x['cpu_threads_exited_in_window']} thread(s) exited in the "
                           "window: its CPU figure is a lower bound\n")
        out.append("\n" + stamp(ctx, sec, cmd) + "\n")
    return "".join(out).rstrip("\n") + "\n"


LOOPBACK_TARGETS = [
    # (key, label, memberlist figure (the Real-network issue's, not a run of ours), op, target)
    ("detect_all_removed_s", "removed everywhere after a stop (s)", 8.6, "<=", 8.6),
    ("cpu_s_per_node_s", "CPU per node (CPU-s per node-s)", 0.00065, "<=", 0.00016),
    ("bytes_per_node_s", "bytes per node-second (UDP+TCP socket bytes)", 110, "<=", 110),
    ("rss_per_node_kb", "RSS per node (KB)", 360, "<=", 90),
    ("join_convergence_s", "join convergence (s)", 1.4, None, None),
]


def pp_bytes(d):
    w = d.get("window_counts") or {}
    if not w.get("push_pulls"):
        return None
    return w["tcp_bytes_out"] / w["push_pulls"]


def spread_text(vals, nd=2):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    fmt = (lambda v: f"{v:.6f}") if max(vals) < 0.01 else (lambda v: f"{v:.{nd}f}")
    return f"{fmt(statistics.median(vals))} ({fmt(min(vals))}–{fmt(max(vals))})"


def loopback_data(sec):
    out = []
    for r in sec.get("runs", []):
        out.append((r, run_json(r)))
    return out


def render_loopback(ctx, sec):
    data = loopback_data(sec)
    out = [wrap("""
N nodes of the real runtime (`shoal::node`) in one process on 127.0.0.1, one
`io_context` on one thread, all joined through node 0; then node N-1 is stopped without
leaving. Its host stays up, so its closed port answers pings with ICMP port unreachable:
the prober asks its indirect probers at once, their pings are refused too, and once
`suspicion_mult - 1` members saw the port refused the suspicion ends after
`refusal_suspicion_timeout` instead of Lifeguard's minimum (**this condition favours the
removal time**; a host that is down answers nothing and takes the Lifeguard path, which
the `--refusal-timeout 0` runs show). CPU: nanoseconds on CPU of every thread of the
process (`/proc/self/task/*/schedstat`) over the steady window after convergence, per
node-second; bytes: UDP and TCP bytes handed to the sockets in that window (after
compression, no IP headers); RSS: VmRSS after convergence minus before the nodes were
created, per node; wakeups: voluntary context switches per node-second (the one io thread
serves all N nodes); push-pull bytes: TCP bytes sent in the window divided by the push-pull
exchanges served in it (both directions of one exchange); the last column sums, during
detection, the ICMP port unreachable reports read, the refusals that matched a probe or a
relayed ping, and the deaths declared through the refusal timeout.
"""), "\n"]
    rows = []
    for r, d in data:
        label = r["name"]
        if d is None:
            rows.append([label, f"`{' '.join(r['argv'][1:])}`", failed_text(r)] + ["—"] * 11)
            continue
        dc = d.get("detection_counts") or {}
        gap = (d["detect_all_removed_s"] - d["detect_first_suspect_s"]
               if d.get("detect_all_removed_s") is not None and d.get("detect_first_suspect_s") is not None
               else None)
        rows.append([label, f"`{' '.join(r['argv'][1:])}`", f2(d.get("join_convergence_s")),
                     f2(d.get("detect_first_suspect_s")), f2(d.get("detect_all_removed_s")), f2(gap),
                     f"{d['cpu_s_per_node_s']:.6f}" if d.get("cpu_s_per_node_s") is not None else "—",
                     f2(d.get("bytes_per_node_s"), 1), f2(d.get("rss_per_node_kb"), 0),
                     f2(d.get("wakeups_per_node_s")), f2(pp_bytes(d), 0),
                     f"{d.get('refusal_suspicion_timeout_s', 0):g} s", "on" if d.get("compression", True) else "off",
                     f"{dc.get('icmp_unreachable_in', '—')}, {dc.get('refusals', '—')}, {dc.get('refusal_deaths', '—')}"])
    out.append(md_table(["run", "arguments", "join_convergence_s", "detect_first_suspect_s",
                         "detect_all_removed_s", "removed − first suspicion (s)", "cpu_s_per_node_s",
                         "bytes_per_node_s", "rss_per_node_kb", "wakeups_per_node_s",
                         "push-pull bytes per exchange", "refusal timeout", "compression",
                         "icmp, refusals, refusal deaths"], rows))
    cmd = f"`{ctx.build}/bench/shoal-loopback ARGUMENTS --json`, one run at a time, in the order of the rows"
    out.append("\n" + stamp(ctx, sec, cmd))

    n64 = sec["runs"][0]["meta"].get("n64", 64) if sec.get("runs") else 64
    on = [d for r, d in data if d and r["meta"].get("role") == "on"]
    off = [d for r, d in data if d and r["meta"].get("role") == "off"]
    n_on = len([1 for r, _ in data if r["meta"].get("role") == "on"])
    rows = []
    for key, label, ml, op, t in LOOPBACK_TARGETS:
        vals = [d.get(key) for d in on]
        good = [v for v in vals if v is not None]
        med = statistics.median(good) if good else None
        if t is None:
            mark = "no target"
        else:
            within = sum(1 for v in good if check_ok(v, op, t))
            mark = (check("median", med, op, t, shown=("—" if med is None else
                                                       (f"{med:.6f}" if med < 0.01 else f"{med:.2f}")))
                    + f"; runs within: {within} of {n_on}")
        rows.append([label, spread_text(vals), f"{ml:g}", mark])
    if off:
        rows.append(["removed everywhere, refusal path off (`--refusal-timeout 0`, Lifeguard path) (s)",
                     spread_text([d.get("detect_all_removed_s") for d in off]), "8.6", "comparison only"])
    out.append("\n" + wrap(f"""
At N={n64}: the median (min–max) over the {n_on} default runs against the figures of
hashicorp/memberlist that the Real-network issue quotes for N=64 (the issue's figures on a
machine like this one, not a run of ours); the targets are the issue's: no slower removal,
at most a quarter of its CPU, at most its bytes, at most a quarter of its memory.
""") + "\n")
    out.append(md_table([f"figure, N={n64}", "median (min–max)", "memberlist (the issue's figure)",
                         "target: mark (figure)"], rows))
    plain = [d for r, d in data if d and r["meta"].get("role") == "plain"]
    on_pp = [pp_bytes(d) for d in on if pp_bytes(d) is not None]
    if plain or on_pp:
        pl = pp_bytes(plain[0]) if plain else None
        out.append("\n" + wrap(f"""
Compression (raw deflate, on by default): one push-pull exchange at N={n64} took
{f2(pl, 0) if pl is not None else '— (run failed or no push-pull in its window)'} bytes with
`--compression off` and {spread_text(on_pp, 0)} bytes (median, min–max) with it on.
"""))
    out.append("\n" + stamp(ctx, sec, cmd))
    return "".join(out)


def render_cluster(ctx, sec):
    """The figures of bench/daemon_cluster.py, rendered by that script's own
    render_markdown from its JSON: also when it exited 1 (an acceptance check
    failed: the section is failed, and its table says which check)."""
    r = sec["runs"][0] if sec.get("runs") else None
    doc = None
    if r:
        try:
            doc = load_stdout_json(r["out"])
        except (OSError, ValueError):
            doc = None
    if doc is None or "meta" not in doc:
        return (failed_text(r) if r else not_run_text(sec)) + "\n" + stamp(ctx, sec, "`bench/daemon_cluster.py`")
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    sys.dont_write_bytecode = True  # no bench/__pycache__ left in the tree
    import daemon_cluster  # bench/daemon_cluster.py
    out = []
    if not r.get("ok"):
        out.append(failed_text(r) + " (the figures below are that run's)\n\n")
    out.append(daemon_cluster.render_markdown(doc, standalone=False))
    cmd = f"`{doc['meta']['command']}`"
    if doc["meta"]["command"] != quote(r["argv"]):
        cmd += f" (run as `{quote(r['argv'])}`)"
    out.append("\n" + stamp(ctx, sec, cmd))
    return "".join(out)


SCALE_TARGETS = {  # (N, key): (op, target); ratios are shoal / memberlist of one run
    (64, "cpu_ratio"): ("<=", 0.15), (256, "cpu_ratio"): ("<=", 0.15),
    (64, "bytes_ratio"): ("<=", 0.5), (256, "bytes_ratio"): ("<=", 0.5),
    (1024, "shoal_converged_after_last_join_s"): ("<=", 60.0),
    (1024, "shoal_window_suspicions"): ("<=", 0),
    (1024, "shoal_rss_per_member_b"): ("<=", 512),
}


def scale_pairs(sec):
    by = {}
    for r in sec.get("runs", []):
        by.setdefault(r["meta"]["n"], {})[r["meta"]["system"]] = (r, run_json(r))
    return [(n, by[n].get("memberlist", (None, None)), by[n].get("shoal", (None, None)))
            for n in sorted(by)]


def scale_converged_after_last_join(system, d):
    if d is None:
        return None
    if system == "shoal":
        if d.get("timed_out") or d.get("join_convergence_s") is None:
            return None
        return d["join_convergence_s"] - d["join_calls_s"]
    return d.get("converged_s") if d.get("converged") else None


def render_scale(ctx, sec):
    out = [wrap("""
N nodes of each system in one process on 127.0.0.1, lan parameters (shoal's `lan` preset,
memberlist's `DefaultLANConfig()`), every node joining node 0; memberlist first, then shoal
at the same N, never at the same time. memberlist-loopback (bench/memberlist) paces its
join calls 20 ms apart; shoal-loopback makes each join call as soon as the previous one
returned (each is a push-pull with node 0). Convergence is counted from the last join call
until every node lists every node alive (memberlist: `NumMembers()`, which also counts
suspect members; shoal: confirmed members alive, a stricter count); each side waits at
most 120 s, then measures its window anyway (memberlist) or reports the timeout (shoal).
CPU: nanoseconds on CPU of every thread of the process (`/proc/self/task/*/schedstat`, the
same method on both sides) over the steady window after convergence, per node-second;
bytes: UDP payloads and TCP stream bytes sent in that window, per node-second (no IP
headers); RSS per member: (VmRSS after convergence − before the nodes were created) / N²,
the memory one node spends per member it knows (a Go heap holds garbage until its next
collection; memberlist's figure includes it). Suspicions in the window: suspicions raised
while every node was up (false by construction). Both sides run shoal's and memberlist's
defaults: shoal compresses push-pulls, memberlist compresses too (LZW); neither encrypts.
"""), "\n"]
    rows, checks = [], []
    for n, (rm, m), (rs, s) in scale_pairs(sec):
        for system, r, d in (("memberlist", rm, m), ("shoal", rs, s)):
            if r is None:
                continue
            if d is None:
                rows.append([str(n), system, failed_text(r)] + ["—"] * 7)
                continue
            conv = scale_converged_after_last_join(system, d)
            if conv is None:
                low = d.get("min_members_at_timeout")
                conv_text = "no" + (f" (lowest count {low} of {n})" if low is not None else "")
            else:
                conv_text = f2(conv)
            rss_b = (d["rss_per_node_kb"] * 1024.0 / n if d.get("rss_per_node_kb") is not None
                     else None)
            if system == "shoal":
                susp = (d.get("window_counts") or {}).get("suspicions")
            else:
                susp = d.get("false_suspicions_window")
            cpu = d.get("cpu_s_per_node_s")
            rows.append([str(n), system, f2(d.get("join_calls_s")), conv_text,
                         f"{cpu:.6f}" if cpu is not None else "—", f2(d.get("bytes_per_node_s"), 1),
                         f2(rss_b, 0), cell(susp), (f"{float(d['window_s']):g} s" if d.get("window_s") is not None else "—"),
                         f"`{' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(r['argv']))}`"])
        def ratio(key):
            if not m or not s or m.get(key) in (None, 0) or s.get(key) is None:
                return None
            return s[key] / m[key]
        conv_s = scale_converged_after_last_join("shoal", s)
        rss_s = s["rss_per_node_kb"] * 1024.0 / n if s and s.get("rss_per_node_kb") is not None else None
        vals = {"cpu_ratio": ratio("cpu_s_per_node_s"), "bytes_ratio": ratio("bytes_per_node_s"),
                "shoal_converged_after_last_join_s": conv_s,
                "shoal_window_suspicions": ((s or {}).get("window_counts") or {}).get("suspicions"),
                "shoal_rss_per_member_b": rss_s}
        for key, label in (("cpu_ratio", "CPU per node-second, shoal / memberlist"),
                           ("bytes_ratio", "bytes per node-second, shoal / memberlist"),
                           ("shoal_converged_after_last_join_s", "shoal: last join call to converged (s)"),
                           ("shoal_window_suspicions", "shoal: suspicions in the steady window"),
                           ("shoal_rss_per_member_b", "shoal: RSS per member (B)")):
            v = vals[key]
            t = SCALE_TARGETS.get((n, key))
            if key.startswith("shoal_") and t is None:
                continue
            shown = "—" if v is None else (f"{v:.3f}" if key.endswith("ratio") else f2(v, 1))
            mark = check("value", v, t[0], t[1], shown=shown) if t else "no target"
            checks.append([str(n), label, shown, mark])
    out.append(md_table(["N", "system", "join calls (s)", "converged after the last join call (s)",
                         "CPU per node-second", "bytes per node-second", "RSS per member (B)",
                         "suspicions in the window", "window", "command"], rows))
    out.append("\n" + md_table(["N", "figure", "value", "target"], checks))
    cmd = ("memberlist-loopback (built by `bench/memberlist/build.sh`) and "
           f"`{ctx.build}/bench/shoal-loopback`, with the arguments of each row, one run at a time "
           "in the order of the rows")
    out.append("\n" + stamp(ctx, sec, cmd))
    return "".join(out)


RENDER = {"sim": render_sim, "refuse": render_refuse, "memory": render_memory, "micro": render_micro,
          "tables": render_tables, "plots": render_plots, "serf": render_serf, "loopback": render_loopback,
          "cluster": render_cluster, "scale": render_scale}


def render_section(ctx, name, sec):
    head = f"## {TITLES[name]}\n\n"
    if sec is None:
        return head + "**NOT RUN** in this run.\n", False
    if sec.get("status") == "not run":
        return head + not_run_text(sec) + "\n" + stamp(ctx, sec, "—"), False
    try:
        body = RENDER[name](ctx, sec)
    except Exception as e:  # a rendering bug must not leave old numbers: say it
        import traceback
        traceback.print_exc()
        return head + f"**FAILED to render** ({type(e).__name__}: {e}); raw: `{os.path.join(ctx.raw, name)}`\n", False
    return head + body, sec.get("status") == "ok"


# ------------------------------------------------------------------ README fragments

def span(v):
    """'2.3–3.9', or '2.3' when every value rounds the same."""
    lo, hi = f"{min(v):.1f}", f"{max(v):.1f}"
    return lo if lo == hi else f"{lo}–{hi}"


def frag_loopback_removal(ctx, sec):
    on = [d for r, d in loopback_data(sec) if d and r["meta"].get("role") == "on"]
    off = [d for r, d in loopback_data(sec) if d and r["meta"].get("role") == "off"]
    n = sec["runs"][0]["meta"].get("n64", 64)
    if not on or not off or any(d.get("detect_all_removed_s") is None for d in on + off):
        return None
    a = [d["detect_all_removed_s"] for d in on]
    b = [d["detect_all_removed_s"] for d in off]
    return (f"{span(a)} s at N={n} on loopback instead of {span(b)} s without it "
            f"(`bench/RESULTS.md`, \"Real sockets on loopback\", commit {sec['commit_shown']}, "
            f"{show_date(sec['started_utc'])[:10]})")


def frag_push_pull(ctx, sec):
    data = loopback_data(sec)
    n = sec["runs"][0]["meta"].get("n64", 64)
    plain = [pp_bytes(d) for r, d in data if d and r["meta"].get("role") == "plain"]
    on = [pp_bytes(d) for r, d in data if d and r["meta"].get("role") == "on"]
    on = [x for x in on if x is not None]
    if not plain or plain[0] is None or not on:
        return None
    return (f"from {plain[0] / 1000:.2f} KB to {statistics.median(on) / 1000:.2f} KB on the wire "
            f"(`shoal-loopback --nodes {n}` with `--compression off` and on, push-pull bytes per "
            f"exchange in `bench/RESULTS.md`, commit {sec['commit_shown']}, "
            f"{show_date(sec['started_utc'])[:10]})")


def frag_serf(ctx, sec):
    r, doc = serf_doc(sec)
    if doc is None:
        return None
    sizes = doc["meta"].get("sizes", [])
    pairs = [serf_pair(doc, n) for n in sizes]
    if not sizes or any(s is None or h is None for s, h in pairs):
        return None

    def rr(key):
        return " / ".join(sfmt(ratio(h.get(key), s.get(key))) + "x" for s, h in pairs)

    def meds(key):
        return ", ".join(f"{sfmt(h.get(key))} vs {sfmt(s.get(key))} s" for s, h in pairs)
    k = max(x.get("crashes", 0) for p in pairs for x in p)
    kills = "one kill" if k == 1 else f"median of {k} kills"
    text = (f"Against HashiCorp Serf in one run on the same machine (`bench/vs_serf.sh`, N = "
            f"{' and '.join(str(n) for n in sizes)} agents on loopback, lan parameters, commit "
            f"{sec['commit_shown']}, {show_date(sec['started_utc'])}): shoald used {rr('cpu_s_per_agent_s')} "
            f"Serf's CPU per agent, {rr('rss_kb_per_agent')} its resident memory (VmRSS), and sent "
            f"{rr('bytes_per_agent_s')} its bytes. A killed agent whose host stays up was failed "
            f"everywhere after {rr('crash_kill_failed_all_s')} Serf's time ({kills}: "
            f"{meds('crash_kill_failed_all_s')}), because shoald notices the killed agent's port "
            f"refusing pings; an agent whose host went silent, which is also what shoald sees with "
            f"encryption on (it reads no ICMP then), after {rr('crash_host_down_failed_all_s')} "
            f"({meds('crash_host_down_failed_all_s')}). Details and the commands: `bench/RESULTS.md`.")
    return textwrap.fill(text, width=88, break_on_hyphens=False, break_long_words=False)


FRAGMENTS = {"loopback-removal": ("loopback", frag_loopback_removal),
             "push-pull": ("loopback", frag_push_pull),
             "serf": ("serf", frag_serf)}
MARKER = re.compile(r"<!-- results:([a-z0-9-]+) -->(.*?)<!-- /results -->", re.S)


def fill_readme(ctx, secs, src, dst):
    with open(src) as f:
        text = f.read()
    seen = set()
    problems = []

    def repl(m):
        name = m.group(1)
        seen.add(name)
        if name not in FRAGMENTS:
            problems.append(f"unknown marker results:{name}")
            return m.group(0)
        section, fn = FRAGMENTS[name]
        sec = secs.get(section)
        body = None
        if sec and sec.get("status") != "not run":
            try:
                body = fn(ctx, sec)
            except Exception as e:  # noqa: BLE001 - say it, never keep old figures
                problems.append(f"results:{name}: {type(e).__name__}: {e}")
        if body is None:
            problems.append(f"results:{name}: no figure (the {section} section failed or did not run)")
            body = (f"(not measured: the {section} section of the last `bench/results.sh` run, "
                    f"commit {ctx.tree.shown}, failed or did not run; see `bench/RESULTS.md`)")
        block = m.group(2).startswith("\n")  # a paragraph of its own; else inline
        return f"<!-- results:{name} -->" + (f"\n{body}\n" if block else body) + "<!-- /results -->"
    new = MARKER.sub(repl, text)
    for name in FRAGMENTS:
        if name not in seen:
            problems.append(f"{src} has no <!-- results:{name} --> marker")
    with open(dst, "w") as f:
        f.write(new)
    return problems


# ------------------------------------------------------------------ document

def header(ctx, secs, ok_all, wall_this):
    f = ctx.facts
    title = "# Measured results"
    warn = []
    if ctx.quick:
        title += " — QUICK (tiny sizes: checks bench/results.py only; never commit this file)"
    if ctx.not_from_commit:
        title += " — NOT FROM A COMMIT: the figures come from an uncommitted tree"
        warn.append("**The figures are NOT from a commit**: " + "; ".join(ctx.not_from_commit) + ".")
    starts = [s["started_utc"] for s in secs.values() if s]
    ends = [s["ended_utc"] for s in secs.values() if s]
    walls = sum((s.get("wall_s") or 0) for s in secs.values() if s)
    lines = [title + "\n"]
    lines.append(wrap(f"""
Every table below comes from one run of `bench/results.sh` at one commit; nothing here is
written by hand. To rerun it at the final commit (the header of `bench/results.py` says
how, and how long it takes): `nice -n 19 bench/results.sh`. Seeds are fixed: a rerun of
the simulator rows on the same build prints the same figures apart from wall times; the
real-socket rows (loopback, Serf) vary from run to run.
"""))
    for w in warn:
        lines.append(w + "\n")
    built = {"here": "built by bench/results.sh from this tree just before the run",
             "no": "not rebuilt (--no-build, or the build belongs to another tree); shoal-sim "
                   f"built {f.get('binaries_mtime', '?')}"}.get(ctx.built, ctx.built)
    rows = [
        ["commit", f"{ctx.tree.shown} (committed {ctx.tree.commit_time})"
         + (f"; changed files: {', '.join(ctx.tree.changed[:8])}" if ctx.tree.dirty else "")],
        ["run", f"{show_date(min(starts)) if starts else '—'} to {show_date(max(ends)) if ends else '—'}; "
                f"wall time {dur(walls)} over the sections"
                + (f" ({dur(wall_this)} for this invocation)" if ctx.only else "")],
        ["command", f"`{ctx.invocation}`"],
        ["machine", f"{f['cpu']} (/proc/cpuinfo), {f['nproc']} cores (nproc), "
                    f"{f['mem_total_gib']} GiB (MemTotal), Debian {f['debian']}"],
        ["compiler", f"{f['cxx']}: {f['cxx_version']}"],
        ["build", f"`{ctx.build}`: {f['build_type']} (`{f['build_flags']}`), "
                  f"SHOAL_STATIC_DAEMON={f['static_daemon']}; {built}"],
        ["raw outputs", f"`{ctx.raw}` (not committed)"],
    ]
    lines.append(md_table(["", "this run"], rows))
    srows = []
    for name in DOC_ORDER:
        s = secs.get(name)
        if not s:
            srows.append([TITLES[name], "NOT RUN", "—", "—", "—", "—"])
            continue
        nfail = sum(1 for r in s.get("runs", []) if not r["ok"])
        status = {"ok": "ok", "failed": "**FAILED**", "not run": "**NOT RUN**"}[s["status"]]
        srows.append([TITLES[name], status + (" (kept from an earlier run)" if s.get("kept") else ""),
                      show_date(s["started_utc"]), dur(s.get("wall_s")),
                      f"{f2(s.get('load1_start'))} / {f2(s.get('load1_max'))} / {f2(s.get('load1_end'))}",
                      f"{len(s.get('runs', []))} ({nfail} failed)"])
    lines.append(md_table(["section", "status", "started", "wall", "load avg 1 min: start / max / end",
                           "runs"], srows))
    lines.append(wrap("""
The load average includes this run's own processes and trails them by about a minute;
the timing-sensitive sections (micro-benchmarks, loopback, Serf, the daemon cluster) run
first, one process at a time, before the simulator sections load the machine.
"""))
    return "\n".join(lines)


def render_doc(ctx, secs, wall_this):
    body = []
    ok_all = True
    for name in DOC_ORDER:
        text, ok = render_section(ctx, name, secs.get(name))
        ok_all = ok_all and ok
        body.append(text)
    return header(ctx, secs, ok_all, wall_this) + "\n" + "\n".join(body), ok_all


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(
        prog="bench/results.sh",
        description="Reruns every benchmark and rewrites bench/RESULTS.md and README's figures "
                    "(see the header of bench/results.py).")
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=None)
    ap.add_argument("--raw", default="results-raw")
    ap.add_argument("--readme", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=None, help="sections: " + ",".join(RUN_ORDER))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-build", action="store_true", help="(bench/results.sh: do not build first)")
    a = ap.parse_args()
    os.chdir(ROOT)  # every path is relative to the repository root, as in bench/results.sh
    if a.jobs < 1:
        ap.error("--jobs must be at least 1")
    ctx = Ctx()
    ctx.quick = a.quick
    ctx.jobs = a.jobs
    ctx.build = a.build
    ctx.raw = a.raw
    os.makedirs(ctx.raw, exist_ok=True)
    repo_results = os.path.realpath(os.path.join(ROOT, "bench", "RESULTS.md"))
    repo_readme = os.path.realpath(os.path.join(ROOT, "README.md"))
    if a.quick:
        ctx.out = a.out or os.path.join(ctx.raw, "RESULTS.quick.md")
        ctx.readme_out = a.readme or os.path.join(ctx.raw, "README.quick.md")
        if os.path.realpath(ctx.out) == repo_results or os.path.realpath(ctx.readme_out) == repo_readme:
            ap.error("--quick never writes bench/RESULTS.md or README.md: pass --out/--readme "
                     "elsewhere (default: in --raw)")
        ctx.plots = os.path.join(ctx.raw, "plots", "svg")
    else:
        ctx.out = a.out or os.path.join("bench", "RESULTS.md")
        ctx.readme_out = a.readme or "README.md"
        ctx.plots = os.path.join(os.path.dirname(ctx.out) or ".", "plots")
    ctx.readme_src = a.readme or os.path.join(ROOT, "README.md")
    only = None
    if a.only:
        only = [s.strip() for s in a.only.split(",") if s.strip()]
        bad = [s for s in only if s not in RUN_ORDER]
        if bad:
            ap.error(f"--only: unknown section(s) {', '.join(bad)}; known: {', '.join(RUN_ORDER)}")
        if "tables" in only and "plots" not in only:
            only.append("plots")  # plots are drawn from the tables' runs
    ctx.only = only
    ctx.invocation = "bench/results.sh " + quote(sys.argv[1:]) if sys.argv[1:] else "bench/results.sh"
    ctx.invocation = ctx.invocation.strip()

    written = [os.path.realpath(p) for p in (ctx.out, ctx.readme_out, ctx.plots, ctx.raw)]
    ctx.tree = Tree(written)
    ctx.facts = machine_facts(ctx.build)
    ctx.built = "here" if os.environ.get("SHOAL_RESULTS_BUILT") == "1" else "no"
    try:
        mtime = os.path.getmtime(os.path.join(ctx.build, "bench", "shoal-sim"))
        ctx.facts["binaries_mtime"] = datetime.datetime.fromtimestamp(
            mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except OSError:
        ctx.facts["binaries_mtime"] = "?"
    ctx.not_from_commit = []
    if ctx.tree.dirty:
        ctx.not_from_commit.append(f"the tree at {ctx.tree.commit} has uncommitted changes")
    src = ctx.facts.get("source_dir")
    if src and os.path.realpath(src) != os.path.realpath(ROOT):
        other = capture(["git", "rev-parse", "--short", "HEAD"], cwd=src)
        other_dirty = capture(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src)
        if other != ctx.tree.commit or other_dirty:
            ctx.not_from_commit.append(
                f"the binaries in {ctx.build} were built from {src}, at {other or '?'}"
                + (" with uncommitted changes" if other_dirty else ""))
        else:
            ctx.facts["build_type"] += f" (built from {src}, the same commit)"
    elif not src:
        ctx.not_from_commit.append(f"{ctx.build} has no CMakeCache.txt: which source it was built from is unknown")
    ctx.bin = lambda name: os.path.join(ctx.build, "bench", name)
    ctx.shoald = os.path.join(ctx.build, "daemon", "shoald")
    ctx.shoalctl = os.path.join(ctx.build, "daemon", "shoalctl")
    for name in ("shoal-sim", "shoal-micro", "shoal-core-memory", "shoal-loopback"):
        if not os.access(ctx.bin(name), os.X_OK):
            log(f"warning: {ctx.bin(name)} is missing: its sections will fail")

    # Sections kept from an earlier run must be of this very tree.
    ctx.sections = {}
    to_run = only or RUN_ORDER
    if only:
        problems = []
        for name in RUN_ORDER:
            if name in only:
                continue
            p = os.path.join(ctx.raw, name, "section.json")
            try:
                with open(p) as f:
                    s = json.load(f)
            except (OSError, ValueError):
                problems.append(f"{name}: no earlier output in {p}")
                continue
            if s.get("tree") != ctx.tree.state:
                problems.append(f"{name}: {p} is from {s.get('tree')}, this tree is {ctx.tree.state}")
            elif os.path.realpath(s.get("build", "")) != os.path.realpath(ctx.build):
                problems.append(f"{name}: {p} used the build {s.get('build')}, this run {ctx.build}")
            elif bool(s.get("quick")) != ctx.quick:
                problems.append(f"{name}: {p} is {'a quick' if s.get('quick') else 'a full'} run")
            else:
                s["kept"] = True
                ctx.sections[name] = s
        if problems:
            print("results: --only keeps the other sections from an earlier run of the same commit "
                  "in --raw, and refuses to mix:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 2

    est = {"memory": 5, "micro": 60, "loopback": 420, "scale": 780, "serf": 540, "cluster": 60, "plots": 5,
           "sim": 180, "refuse": 30, "tables": 720}  # seconds; the header of this file says where from
    log(f"commit {ctx.tree.shown}; build {ctx.build}; raw {ctx.raw}; out {ctx.out}; "
        f"sections {', '.join(to_run)}" + (" (QUICK)" if ctx.quick else ""))
    if ctx.not_from_commit:
        log("NOT FROM A COMMIT: " + "; ".join(ctx.not_from_commit))
    if not ctx.quick:
        log("estimated duration (an estimate: see the header of bench/results.py): " + ", ".join(
            f"{n} {dur(est[n])}" for n in to_run) + f"; about {dur(sum(est[n] for n in to_run))} "
            "in all (simulator sections at --jobs 2)")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    t0 = time.monotonic()
    try:
        for name in RUN_ORDER:
            if name in to_run:
                ctx.sections[name] = run_section(ctx, name)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}): nothing written")
        return 130
    wall_this = time.monotonic() - t0

    doc, ok_all = render_doc(ctx, ctx.sections, wall_this)
    os.makedirs(os.path.dirname(os.path.abspath(ctx.out)), exist_ok=True)
    with open(ctx.out, "w") as f:
        f.write(doc)
    log(f"wrote {ctx.out}")
    problems = fill_readme(ctx, ctx.sections, ctx.readme_src, ctx.readme_out)
    for p in problems:
        log(f"README: {p}")
    log(f"wrote {ctx.readme_out}")
    reasons = [f"section {n}: " + (ctx.sections[n]["status"] if ctx.sections.get(n) else "not run")
               for n in RUN_ORDER if not ctx.sections.get(n) or ctx.sections[n]["status"] != "ok"]
    if not ok_all and not reasons:
        reasons.append("a section failed to render (see above)")
    reasons += [f"README: {p}" for p in problems]
    if reasons:
        log("FAILED: " + "; ".join(reasons) + f"; see {ctx.out}")
        return 1
    if ctx.not_from_commit:
        log("done, but the figures are NOT from a commit (see the title)")
    else:
        log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
