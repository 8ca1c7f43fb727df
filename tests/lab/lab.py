#!/usr/bin/env python3
"""shoal fault lab: H hosts on one machine, real kernels, sockets and processes.

Every host is a network namespace with one veth attached to a Linux bridge that
lives in a namespace of its own, so nothing of the lab touches the root
namespace. Host i has the address SUBNET.i/24 and runs shoald with its own
socket and data directory. Faults are injected inside the host namespaces:

  random loss   nftables `numgen random`, per host, ingress and egress apart
  partitions    nftables drops by address, symmetric or one way
  pauses        SIGSTOP / SIGCONT of one daemon
  crashes       SIGKILL, then a restart with the same data directory; the
                host up (ICMP port unreachable) or silent first (nftables
                drops everything between it and the others)
  leaves        SIGTERM (graceful leave), then a restart

Every assertion reads the view through `shoalctl --format json`, run inside
the host's namespace, and waits by polling with a deadline. See README.md for
the scenarios. Exit status: 0 all scenarios passed, 1 a scenario failed or the
lab could not be set up, 2 usage, 77 skipped (not root, `ip`/`nft` missing, the
kernel refuses namespaces/nftables, or the lab was not asked for). With
SHOAL_REQUIRE_LAB=1 a machine that cannot run the lab exits 1 with the reason
instead of 77 (a lab not asked for is still skipped).
"""

import argparse
import fcntl
import glob
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SKIP = 77
POLL_S = 0.25          # between two looks at the views
CTL_TIMEOUT_S = 5.0    # one shoalctl call
SOCK_PARENT = "/tmp"   # not $TMPDIR: a Unix socket path has at most 107 bytes
SCENARIOS = ["converge", "crash", "hostdown", "loss", "partition", "oneway", "pause", "rolling",
             "flapping"]
# Run only when asked for (--scenario): flapping wants 12 hosts and its own
# ctest (tests/lab/CMakeLists.txt, lab_flapping).
ON_REQUEST = {"flapping"}


class LabFailure(Exception):
    """A scenario's assertion did not hold (or the lab broke)."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP: stop, but still clean up."""


def log(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, check=True, input=None, timeout=30):
    """Runs a short command; returns (rc, stdout, stderr)."""
    try:
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabFailure(f"command timed out after {timeout} s: {' '.join(cmd)}")
    if check and p.returncode != 0:
        raise LabFailure(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}")
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------
# Was the lab asked for? A plain `ctest` must stay fast, so the lab runs only
# when ctest was given a label or name filter that selects it (`ctest -L lab`),
# when SHOAL_LAB=1, or when the script is run by hand.

def requested():
    env = os.environ.get("SHOAL_LAB")
    if env == "1":
        return True, "SHOAL_LAB=1"
    if env == "0":
        return False, "SHOAL_LAB=0"
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return True, "parent unknown"
    if not argv or os.path.basename(argv[0]) != "ctest":
        return True, "not run by ctest"
    tests = ("lab", "lab_flapping")  # the ctest names (tests/lab/CMakeLists.txt)
    filters = {"-L": ("lab",), "--label-regex": ("lab",), "-R": tests, "--tests-regex": tests}
    for i, a in enumerate(argv):
        for flag, subject in filters.items():
            value = None
            if a == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif a.startswith(flag + "=") and flag.startswith("--"):
                value = a[len(flag) + 1:]
            elif flag == "-L" and a.startswith("-L") and len(a) > 2 and not a.startswith("-LE"):
                value = a[2:]
            elif flag == "-R" and a.startswith("-R") and len(a) > 2:
                value = a[2:]
            if value is not None:
                try:
                    if any(re.search(value, t) for t in subject):
                        return True, f"ctest {flag} {value}"
                except re.error:
                    pass
    return False, "ctest without -L lab"


# --------------------------------------------------------------------------
# The network: namespaces, bridge, veths, one nftables table per host.

class Net:
    def __init__(self, prefix, subnet, hosts):
        self.prefix = prefix
        self.subnet = subnet  # "10.77.0": host i is 10.77.0.i/24
        self.hosts = hosts
        self.sw = f"{prefix}sw"
        self.table = prefix.rstrip("-")

    def ns(self, i):
        return f"{self.prefix}h{i}"

    def addr(self, i):
        return f"{self.subnet}.{i}"

    def nsexec(self, i):
        return ["ip", "netns", "exec", self.ns(i)]

    def create(self):
        p = self.prefix
        run(["ip", "netns", "add", self.sw])
        run(["ip", "-n", self.sw, "link", "add", f"{p}br", "type", "bridge"])
        run(["ip", "-n", self.sw, "link", "set", f"{p}br", "up"])
        run(["ip", "-n", self.sw, "link", "set", "lo", "up"])
        for i in range(1, self.hosts + 1):
            ns, sw_end, host_end = self.ns(i), f"{p}v{i}", f"{p}e{i}"
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", sw_end, "netns", self.sw, "type", "veth",
                 "peer", "name", host_end, "netns", ns])
            run(["ip", "-n", self.sw, "link", "set", sw_end, "master", f"{p}br", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", host_end])
            run(["ip", "-n", ns, "link", "set", host_end, "up"])
            run(self.nsexec(i) + ["nft", "-f", "-"], input=(
                f"table inet {self.table} {{\n"
                "  chain in { type filter hook input priority 0; policy accept; }\n"
                "  chain out { type filter hook output priority 0; policy accept; }\n"
                "}\n"))

    # -- faults (all inside host i's namespace) --
    def _rule(self, i, chain, rule):
        run(self.nsexec(i) + ["nft", "add", "rule", "inet", self.table, chain] + rule.split())

    def loss(self, i, direction, permille):
        """Drops `permille`/1000 of the IPv4 packets host i receives from (in)
        or sends to (out) the lab subnet, at random. A counting rule before it
        lets counters() tell what share was really dropped."""
        chain, field = ("in", "saddr") if direction == "in" else ("out", "daddr")
        net = f"{self.subnet}.0/24"
        self._rule(i, chain, f"ip {field} {net} counter comment \"seen\"")
        self._rule(i, chain, f"ip {field} {net} numgen random mod 1000 < {permille} counter drop")

    def block(self, i, direction, peers):
        """Host i drops everything it receives from (in) or sends to (out) the
        given hosts."""
        chain, field = ("in", "saddr") if direction == "in" else ("out", "daddr")
        addrs = ", ".join(self.addr(j) for j in peers)
        self._rule(i, chain, f"ip {field} {{ {addrs} }} counter drop")

    def heal(self, i):
        run(self.nsexec(i) + ["nft", "flush", "chain", "inet", self.table, "in"])
        run(self.nsexec(i) + ["nft", "flush", "chain", "inet", self.table, "out"])

    def counters(self, i, chain):
        """[(packets, is_drop_rule)] for each counter in the chain, in order."""
        _, out, _ = run(self.nsexec(i) + ["nft", "list", "chain", "inet", self.table, chain])
        res = []
        for line in out.splitlines():
            m = re.search(r"counter packets (\d+) bytes \d+", line)
            if m:
                res.append((int(m.group(1)), line.rstrip().endswith("drop")))
        return res


def remove_leftovers(prefix):
    """Removes what an earlier (crashed) run with this prefix left behind:
    daemons in its namespaces, the namespaces, links, tables, socket dirs."""
    _, out, _ = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]
    pids = set()
    for ns in names:
        _, p, _ = run(["ip", "netns", "pids", ns], check=False)
        pids.update(int(x) for x in p.split() if x.isdigit())
    for pid in sorted(pids):
        try:
            os.kill(pid, signal.SIGKILL)  # a daemon of an earlier run of this lab
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if os.path.exists(f"/proc/{p}")}
        if pids:
            time.sleep(0.05)
    for ns in names:
        run(["ip", "netns", "del", ns], check=False)
    # Links or tables in the root namespace never come from this lab, but an
    # older or interrupted version may have left some: remove by prefix only.
    _, out, _ = run(["ip", "-o", "link", "show"], check=False)
    for line in out.splitlines():
        m = re.match(r"\d+: ([^:@]+)[@:]", line)
        if m and m.group(1).startswith(prefix):
            run(["ip", "link", "del", m.group(1)], check=False)
    table = prefix.rstrip("-")
    _, out, _ = run(["nft", "list", "tables"], check=False)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "table" and parts[2].startswith(table):
            run(["nft", "delete", "table", parts[1], parts[2]], check=False)
    for d in glob.glob(os.path.join(SOCK_PARENT, prefix + "*")):
        shutil.rmtree(d, ignore_errors=True)
    return names


# --------------------------------------------------------------------------
# Daemons and their views.

class Host:
    def __init__(self, lab, i):
        self.lab, self.i = lab, i
        self.name = f"h{i}"
        self.dir = os.path.join(lab.work_dir, self.name)
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "shoald.log")
        self.sock = os.path.join(lab.sock_dir, f"{self.name}.sock")
        self.proc = None
        self.lives = 0

    def argv(self, join):
        a = self.lab.args
        cmd = self.lab.net.nsexec(self.i) + [
            a.shoald, "--name", self.name,
            "--bind", f"{self.lab.net.addr(self.i)}:7946",
            "--socket", self.sock, "--data-dir", self.data_dir,
            "--preset", a.preset, "--log-level", a.log_level,
            "--leave-timeout", str(a.leave_timeout), "--tag", f"lab-host={self.i}"]
        if join:
            for s in self.lab.seeds:
                if s != self.i:
                    cmd += ["--join", f"{self.lab.net.addr(s)}:7946"]
        return cmd

    def start(self, join=True):
        """join=False: a restart relying on what the data dir remembers."""
        assert self.proc is None or self.proc.poll() is not None
        os.makedirs(self.dir, exist_ok=True)
        self.lives += 1
        with open(self.log_path, "a") as f:
            f.write(f"==== lab: life {self.lives} of {self.name} "
                    f"({'with' if join else 'without'} --join) at {time.strftime('%H:%M:%S')}\n")
        out = open(self.log_path, "a")
        # Own session: a ^C on the terminal reaches the driver only, which
        # then cleans up in order.
        self.proc = subprocess.Popen(self.argv(join), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if not self.running():
            raise LabFailure(f"{self.name}: cannot send signal {sig}: shoald is not running")
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabFailure(f"{self.name}: shoald did not exit within {timeout} s")

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


class Lab:
    def __init__(self, args):
        self.args = args
        self.net = Net(args.prefix, args.subnet, args.hosts)
        self.work_dir = args.work_dir
        self.sock_dir = None
        self.hosts = []
        self.seeds = [1, 2, 3][:args.hosts]
        self.expect_down = set()  # hosts whose daemon is meant not to run now
        self.bounds = {}  # refuse -> (simulator's worst, bound), once computed

    # ---- shoalctl ----
    def ctl_many(self, hosts, args):
        """Runs shoalctl ARGS --format json on each host, in parallel, inside its
        namespace. Returns {host: parsed json or None (with the reason)}."""
        procs = {}
        for h in hosts:
            cmd = self.net.nsexec(h.i) + [self.args.shoalctl, "--socket", h.sock, "--timeout", str(CTL_TIMEOUT_S - 1)] \
                + args + ["--format", "json"]
            procs[h] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        res = {}
        deadline = time.monotonic() + CTL_TIMEOUT_S
        for h, p in procs.items():
            try:
                out, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                res[h] = (None, "shoalctl timed out")
                continue
            if p.returncode != 0:
                res[h] = (None, f"shoalctl exit {p.returncode}: {err.strip()[:200]}")
                continue
            try:
                res[h] = (json.loads(out), "")
            except ValueError as e:
                raise LabFailure(f"{h.name}: shoalctl printed no JSON ({e}): {out[:300]!r}")
        return res

    def views(self, hosts=None):
        """{host: {member name: member} or None} for the running daemons."""
        self.check_daemons()
        hosts = [h for h in (hosts or self.hosts) if h.i not in self.expect_down]
        out = {}
        for h, (doc, why) in self.ctl_many(hosts, ["members"]).items():
            if doc is None:
                out[h] = None
                continue
            ms = doc.get("members")
            if not isinstance(ms, list):
                raise LabFailure(f"{h.name}: shoalctl members JSON without a members array: {doc!r}")
            out[h] = {m["name"]: m for m in ms}
        return out

    def check_daemons(self):
        for h in self.hosts:
            if h.i in self.expect_down or h.running():
                continue
            rc = h.proc.returncode if h.proc else None
            raise LabFailure(f"shoald on {h.name} exited unexpectedly (status {rc}); "
                             f"log {h.log_path}, last lines:\n{h.log_tail()}")

    def core_counters(self, hosts=None, extra=()):
        """Counters summed over the running daemons (shoalctl stats).
        `deaths`: how many times any node saw any member go from alive or
        suspect to failed; `suspicions`: suspicions any node started. `extra`
        adds "group.name" counters (e.g. "runtime.icmp_unreachable_in"),
        returned under that key."""
        want = {"deaths": ("core", "deaths"), "suspicions": ("core", "suspicions")}
        want.update({k: tuple(k.split(".", 1)) for k in extra})
        total = {k: 0 for k in want}
        for h, (doc, why) in self.ctl_many([h for h in (hosts or self.hosts) if h.i not in self.expect_down],
                                           ["stats"]).items():
            if doc is None:
                raise LabFailure(f"{h.name}: stats: {why}")
            for k, (group, name) in want.items():
                total[k] += int(doc[group][name])
        return total

    # ---- waiting ----
    def wait_until(self, what, timeout, pred, hosts=None, on_poll=None, since=None, every=POLL_S):
        """Polls the views until pred(views) returns (True, _); returns the
        seconds from `since` (default: now) to the end of the poll that saw it.
        pred returns (ok, why-not). on_poll(views, start, end) sees every
        poll (monotonic times). Fails after timeout."""
        t0 = time.monotonic() if since is None else since
        while True:
            start = time.monotonic()
            v = self.views(hosts)
            end = time.monotonic()
            if on_poll:
                on_poll(v, start, end)
            ok, why = pred(v)
            if ok:
                log(f"  {what}: after {end - t0:.2f} s")
                return end - t0
            if end - t0 > timeout:
                raise LabFailure(f"{what}: not within {timeout:.1f} s: {why}\n{self.summary(v)}")
            time.sleep(every)

    def summary(self, views):
        lines = []
        for h, v in sorted(views.items(), key=lambda kv: kv[0].i):
            if v is None:
                lines.append(f"    {h.name}: (no answer)")
                continue
            lines.append(f"    {h.name} sees: " + " ".join(
                f"{n}={m['status']}/{m['incarnation']}" for n, m in sorted(v.items())))
        return "\n".join(lines)

    def names(self, hosts=None):
        return {h.name for h in (hosts or self.hosts)}

    def full_mesh(self, hosts=None):
        """Every running daemon (of `hosts`) answers and sees exactly the lab's
        hosts, all alive."""
        want = self.names()

        def pred(views):
            for h, v in views.items():
                if hosts is not None and h not in hosts:
                    continue
                if v is None:
                    return False, f"{h.name} does not answer"
                if set(v) != want:
                    return False, f"{h.name} knows {sorted(v)}"
                bad = [f"{n}={m['status']}" for n, m in v.items() if m["status"] != "alive"]
                if bad:
                    return False, f"{h.name} sees {' '.join(sorted(bad))}"
            return True, ""
        return pred

    @staticmethod
    def status_everywhere(target, status, observers):
        """Every observer sees `target` with this status."""
        def pred(views):
            for h in observers:
                v = views.get(h)
                if v is None:
                    return False, f"{h.name} does not answer"
                m = v.get(target.name)
                if m is None or m["status"] != status:
                    return False, f"{h.name} sees {target.name} {m['status'] if m else 'absent'}"
            return True, ""
        return pred

    def up(self):
        return [h for h in self.hosts if h.i not in self.expect_down]

    # ---- the cluster ----
    def start_all(self):
        for h in self.hosts:
            h.start(join=True)

    def restore(self):
        """After a failed scenario: heal every fault, resume, restart what is
        down, and wait for the full mesh, so the next scenario starts clean."""
        for h in self.hosts:
            self.net.heal(h.i)
            if h.running():
                h.proc.send_signal(signal.SIGCONT)
        for h in self.hosts:
            if not h.running():
                h.start(join=True)
        self.expect_down.clear()
        self.wait_until("restore: full mesh", 90, self.full_mesh())

    def stop_all(self):
        for h in self.hosts:
            if h.proc is not None and h.proc.poll() is None:
                h.proc.send_signal(signal.SIGCONT)
                h.proc.kill()
        for h in self.hosts:
            if h.proc is not None:
                try:
                    h.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log(f"warning: shoald on {h.name} (pid {h.proc.pid}) did not die")


# --------------------------------------------------------------------------
# Scenarios. Each returns a dict of what it measured; a failed assertion
# raises LabFailure. Each starts from (and leaves) a converged cluster.

def sc_converge(lab):
    """1. H hosts started at once (hosts 2..H join through h1..h3) converge."""
    lab.start_all()
    took = lab.wait_until(f"{len(lab.hosts)} hosts see each other alive", 60, lab.full_mesh())
    return {"converged_s": round(took, 2)}


# The two ways a host's daemon dies, and the simulator model that bounds each.
CRASH_MODELS = {
    # the process is gone, its host is up: UDP to its port draws ICMP port
    # unreachable, TCP a RST, which shoald reads (refusal_suspicion_timeout)
    True: "kill (process gone, host up: ICMP)",
    # the host is gone (powered off, or a firewall drops everything): silence
    False: "host down (silent)",
}


def sim_bound(lab, refuse):
    """The detection bound for one crash at this N and preset, from the
    simulator: max over seeds of detect_all_s (the crash until the last node
    declares it failed), plus the real-kernel margin. refuse: the crashed
    node's host refuses (shoal-sim --refuse, ICMP and RST) or stays silent.
    Computed once per model and run."""
    if refuse in lab.bounds:
        return lab.bounds[refuse]
    a = lab.args
    t0 = time.monotonic()
    worst, per_seed = 0.0, []
    for seed in range(1, a.sim_seeds + 1):
        cmd = [a.shoal_sim, "--scenario", "crash", "--nodes", str(len(lab.hosts)), "--crashes", "1",
               "--preset", a.preset, "--duration", "60", "--seed", str(seed), "--json", "--quiet"]
        if refuse:
            cmd.append("--refuse")
        _, out, _ = run(cmd, timeout=120)
        r = json.loads(out)
        d = r["detect_all_s"]
        if r.get("undetected") or d.get("max") is None:
            raise LabFailure(f"simulator did not detect the crash: {out.strip()}")
        if bool(r.get("refuse")) != refuse:
            raise LabFailure(f"simulator output does not say refuse={refuse}: {out.strip()}")
        per_seed.append(d["max"])
        worst = max(worst, d["max"])
    bound = worst + a.margin
    per_seed.sort()
    log(f"  simulator, {CRASH_MODELS[refuse]} (shoal-sim --scenario crash{' --refuse' if refuse else ''}, "
        f"seeds 1..{a.sim_seeds}, N={len(lab.hosts)}, preset {a.preset}, {time.monotonic() - t0:.1f} s): "
        f"detect_all_s median {per_seed[len(per_seed) // 2]:.2f} s, max {worst:.2f} s; "
        f"bound {worst:.2f} + {a.margin:.2f} margin = {bound:.2f} s")
    lab.bounds[refuse] = (worst, bound)
    return worst, bound


def watch_failure(lab, victim, others, t0, sim_worst, bound):
    """Polls until every host of `others` shows `victim` failed; the failure
    began at t0. Returns (lowest, highest): per observer, the start of the
    last poll that still saw the victim up and the end of the first that saw
    it failed, the death lying in between; lowest/highest are the largest of
    each over the observers (the last observer's interval). Fails when the
    upper end is over the bound."""
    not_yet, seen = {h.name: 0.0 for h in others}, {}

    def note(views, start, end):
        for h, v in views.items():
            if h.name in seen:
                continue
            if v and v.get(victim.name, {}).get("status") == "failed":
                seen[h.name] = end - t0
            else:
                not_yet[h.name] = start - t0
    lab.wait_until(f"{victim.name} failed everywhere", bound + 30,
                   lab.status_everywhere(victim, "failed", others), on_poll=note, since=t0, every=0.05)
    slowest, lowest = max(seen.values()), max(not_yet.values())
    log(f"  {victim.name} failed in each view between (s after t0): "
        + " ".join(f"{n}={not_yet[n]:.2f}..{t:.2f}" for n, t in sorted(seen.items())))
    if slowest > bound:
        raise LabFailure(f"{victim.name} failed everywhere only {lowest:.2f}..{slowest:.2f} s "
                         f"after t0, over the bound {bound:.2f} s (simulator {sim_worst:.2f} s "
                         f"+ margin {lab.args.margin} s)")
    return lowest, slowest


DETECTION_COUNTERS = ("runtime.icmp_unreachable_in", "core.refusals", "core.refusal_deaths")


def sc_crash(lab):
    """2. kill -9 one daemon, its host up (ICMP port unreachable, RST): failed
    everywhere within the bound of the simulator with --refuse; restart it
    (same data dir, no --join): alive everywhere."""
    sim_worst, bound = sim_bound(lab, refuse=True)
    victim = lab.hosts[len(lab.hosts) // 2]
    others = [h for h in lab.hosts if h is not victim]
    c0 = lab.core_counters(others, DETECTION_COUNTERS)
    lab.expect_down.add(victim.i)
    victim.signal(signal.SIGKILL)
    t0 = time.monotonic()
    lowest, slowest = watch_failure(lab, victim, others, t0, sim_worst, bound)
    victim.wait_exit(10)
    c1 = lab.core_counters(others, DETECTION_COUNTERS)
    d = {k: c1[k] - c0[k] for k in DETECTION_COUNTERS}
    log(f"  the others' counters during the detection: " + ", ".join(f"{k} +{v}" for k, v in d.items()))
    if d["runtime.icmp_unreachable_in"] == 0:
        raise LabFailure(f"no ICMP port unreachable reached the others after {victim.name}'s kill: "
                         f"this is not the scenario the --refuse bound models")
    lab.expect_down.discard(victim.i)
    victim.start(join=False)
    back = lab.wait_until(f"{victim.name} restarted without --join: full mesh", 30, lab.full_mesh())
    return {"model": "kill", "detect_all_s": f"{lowest:.2f}..{slowest:.2f}", "bound_s": round(bound, 2),
            "sim_s": round(sim_worst, 2), "icmp_in": d["runtime.icmp_unreachable_in"],
            "refusal_deaths": d["core.refusal_deaths"], "back_alive_s": round(back, 2)}


def sc_hostdown(lab):
    """3. A host goes silent (nftables in its namespace drops everything
    between it and the others, so no ICMP and no RST), then its daemon is
    killed: failed everywhere within the bound of the silent-host simulator
    (no --refuse); heal, restart it (no --join): alive everywhere."""
    sim_worst, bound = sim_bound(lab, refuse=False)
    victim = lab.hosts[len(lab.hosts) // 2 + 1]
    others = [h for h in lab.hosts if h is not victim]
    peers = [o.i for o in others]
    c0 = lab.core_counters(others, DETECTION_COUNTERS)
    # The failure starts when the host goes silent; the kill follows at once
    # (its sends already fail inside its namespace, nothing leaves it).
    lab.net.block(victim.i, "in", peers)
    lab.net.block(victim.i, "out", peers)
    t0 = time.monotonic()
    lab.expect_down.add(victim.i)
    victim.signal(signal.SIGKILL)
    log(f"  {victim.name} silent, killed {time.monotonic() - t0:.3f} s later")
    lowest, slowest = watch_failure(lab, victim, others, t0, sim_worst, bound)
    victim.wait_exit(10)
    c1 = lab.core_counters(others, DETECTION_COUNTERS)
    d = {k: c1[k] - c0[k] for k in DETECTION_COUNTERS}
    dropped_in = sum(p for p, drop in lab.net.counters(victim.i, "in") if drop)
    log(f"  {dropped_in} packets to {victim.name} dropped; the others' counters during the detection: "
        + ", ".join(f"{k} +{v}" for k, v in d.items()))
    if dropped_in == 0:
        raise LabFailure(f"{victim.name}: the silent host's ingress rule dropped nothing")
    if d["runtime.icmp_unreachable_in"] or d["core.refusals"]:
        raise LabFailure(f"{victim.name} was meant to be silent, yet the others read refusals: {d}")
    lab.net.heal(victim.i)
    lab.expect_down.discard(victim.i)
    victim.start(join=False)
    back = lab.wait_until(f"{victim.name} healed and restarted without --join: full mesh", 30, lab.full_mesh())
    return {"model": "silent", "detect_all_s": f"{lowest:.2f}..{slowest:.2f}", "bound_s": round(bound, 2),
            "sim_s": round(sim_worst, 2), "dropped_in": dropped_in, "back_alive_s": round(back, 2)}


def sc_loss(lab):
    """4. 10% loss on every packet between hosts for 120 s (each host drops
    5.13% of what it receives and 5.13% of what it sends, so a packet crossing
    two hosts is lost with probability 1 - 0.9487^2 = 10%): nobody is ever
    marked failed."""
    permille = lab.args.loss_permille
    c0 = lab.core_counters()
    deaths0 = c0["deaths"]
    for h in lab.hosts:
        lab.net.loss(h.i, "in", permille)
        lab.net.loss(h.i, "out", permille)
    seen = {"suspect": 0, "failed": []}

    def watch(views):
        for h, v in views.items():
            for n, m in (v or {}).items():
                if m["status"] == "suspect":
                    seen["suspect"] += 1
                elif m["status"] != "alive":
                    seen["failed"].append(f"{h.name} saw {n} {m['status']}")
    t0 = time.monotonic()
    polls = 0
    while time.monotonic() - t0 < lab.args.loss_seconds:
        watch(lab.views())
        polls += 1
        if seen["failed"]:
            raise LabFailure(f"under loss: {seen['failed'][0]} after {time.monotonic() - t0:.1f} s")
        # Once a second: core.deaths catches what falls between two polls,
        # and fewer shoalctl runs leave the CPU to the daemons.
        time.sleep(min(1.0, max(0.0, lab.args.loss_seconds - (time.monotonic() - t0))))
    c1 = lab.core_counters()
    deaths1, suspicions = c1["deaths"], c1["suspicions"] - c0["suspicions"]
    seen_pk = dropped = 0
    for h in lab.hosts:
        for chain in ("in", "out"):
            c = lab.net.counters(h.i, chain)
            seen_pk += sum(p for p, drop in c if not drop)
            dropped += sum(p for p, drop in c if drop)
    for h in lab.hosts:
        lab.net.heal(h.i)
    rate = dropped / seen_pk if seen_pk else 0.0
    log(f"  loss: {dropped} of {seen_pk} packet passes dropped ({100 * rate:.2f}% per pass, "
        f"{100 * (1 - (1 - rate) ** 2):.2f}% per packet); {polls} polls, suspect seen {seen['suspect']} times; "
        f"core.suspicions +{suspicions}; core.deaths {deaths0} -> {deaths1}")
    if seen_pk == 0 or dropped == 0:
        raise LabFailure("the loss rules dropped nothing: the fault was not injected")
    if deaths1 != deaths0:
        raise LabFailure(f"under loss some node declared a member failed between two polls: "
                         f"core.deaths summed over the nodes went {deaths0} -> {deaths1}")
    lab.wait_until("after loss: full mesh", 30, lab.full_mesh())
    return {"per_packet_loss_pct": round(100 * (1 - (1 - rate) ** 2), 2), "suspicions": suspicions, "polls": polls}


def sc_partition(lab):
    """5. Partition H/2 | H/2 for 60 s (each side declares the other failed),
    heal: full view everywhere within 60 s, no operator action."""
    half = len(lab.hosts) // 2
    a, b = lab.hosts[:half], lab.hosts[half:]
    t0 = time.monotonic()
    for side, other in ((a, b), (b, a)):
        for h in side:
            lab.net.block(h.i, "in", [o.i for o in other])
            lab.net.block(h.i, "out", [o.i for o in other])

    def split(views):
        for side, other in ((a, b), (b, a)):
            for h in side:
                v = views.get(h)
                if v is None:
                    return False, f"{h.name} does not answer"
                for o in other:
                    if v.get(o.name, {}).get("status") != "failed":
                        return False, f"{h.name} sees {o.name} {v.get(o.name, {}).get('status')}"
                for o in side:
                    if v.get(o.name, {}).get("status") != "alive":
                        return False, f"{h.name} sees {o.name} (same side) {v.get(o.name, {}).get('status')}"
        return True, ""
    split_s = lab.wait_until("each side sees the other failed, its own alive", lab.args.partition_seconds, split)
    rest = lab.args.partition_seconds - (time.monotonic() - t0)
    if rest > 0:
        time.sleep(rest)  # the scenario's fixed duration, not a wait for a condition
    for h in lab.hosts:
        lab.net.heal(h.i)
    healed = lab.wait_until("healed: full mesh", 60, lab.full_mesh())
    return {"split_s": round(split_s, 2), "healed_s": round(healed, 2)}


def sc_oneway(lab):
    """6. One host receives nothing from the others (its packets still go
    out): the others declare it failed; after healing it is alive everywhere."""
    x = lab.hosts[-1]
    others = [h for h in lab.hosts if h is not x]
    deaths0 = lab.core_counters(others)["deaths"]
    lab.net.block(x.i, "in", [o.i for o in others])
    # x hears no ack and suspects everyone; what it gossips must not kill a
    # healthy member: the healthy nodes may only ever see x go failed.
    healthy_failed = set()

    def watch(views, *_):
        for h, v in views.items():
            if h is x:
                continue  # x itself has declared everyone dead; it learns better after the heal
            for n, m in (v or {}).items():
                if n != x.name and m["status"] == "failed":
                    healthy_failed.add(f"{h.name} saw {n} failed")
    failed = lab.wait_until(f"{x.name} (deaf) failed in every other view", 60,
                            lab.status_everywhere(x, "failed", others), hosts=others, on_poll=watch)
    dropped_in = sum(p for p, drop in lab.net.counters(x.i, "in") if drop)
    lab.net.heal(x.i)
    healed = lab.wait_until("healed: full mesh", 60, lab.full_mesh(), on_poll=watch)
    deaths = lab.core_counters(others)["deaths"] - deaths0
    log(f"  ingress drops at {x.name}: {dropped_in}; deaths declared by the healthy nodes: {deaths} "
        f"(one per node for {x.name}: {len(others)})")
    if dropped_in == 0:
        raise LabFailure(f"{x.name}: the ingress block dropped nothing")
    if healthy_failed or deaths != len(others):
        raise LabFailure(f"the deaf {x.name} got healthy members declared failed: "
                         f"{sorted(healthy_failed) or 'between polls'}; core.deaths over the healthy nodes "
                         f"+{deaths}, expected +{len(others)} (each sees {x.name} fail once)")
    return {"failed_s": round(failed, 2), "healed_s": round(healed, 2), "dropped_in": dropped_in}


# (suspicion_mult, probe_interval s) of each preset: lib/core/config.cpp.
PRESET_SUSPICION = {"lan": (4, 1.0), "wan": (6, 5.0), "local": (3, 0.5)}
# A pause is tried again when the machine stretched it past the bound (it
# proves nothing) or when nobody probed the daemon while it was stopped (no
# suspicion: nothing was tested); at most this many times.
PAUSE_ATTEMPTS = 5


def min_suspicion_s(preset, n):
    """Lifeguard's minimum suspicion timeout (lib/core/formulas.hpp
    suspicion_min): suspicion_mult * max(1, log10 N) * probe_interval."""
    mult, interval = PRESET_SUSPICION[preset]
    return mult * max(1.0, math.log10(n)) * interval


def proc_state(pid):
    """The process's state letter from /proc/PID/stat (T: stopped), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


class Pauser(threading.Thread):
    """SIGSTOPs a process, holds it `pause` seconds from the moment the
    kernel shows it stopped, SIGCONTs it, and records what it observed
    (time.monotonic()): stop_sent, stopped_seen (first /proc state T),
    cont_sent, running_seen (first state other than T after SIGCONT). The
    pause the process got lies between cont_sent - stopped_seen (it was
    stopped at least that long) and running_seen - stop_sent (at most)."""

    POLL_S = 0.001

    def __init__(self, proc, pause):
        super().__init__(daemon=True)
        self.proc, self.pause, self.t, self.error = proc, pause, {}, None

    def _wait_state(self, stopped, key, limit=5.0):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            st = proc_state(self.proc.pid)
            if st is None:
                raise LabFailure(f"pid {self.proc.pid} is gone")
            if (st == "T") == stopped:
                self.t[key] = time.monotonic()
                return
            time.sleep(self.POLL_S)
        raise LabFailure(f"pid {self.proc.pid}: state never {'T' if stopped else 'running'} within {limit} s")

    def run(self):
        try:
            self.t["stop_sent"] = time.monotonic()
            self.proc.send_signal(signal.SIGSTOP)
            self._wait_state(True, "stopped_seen")
            time.sleep(max(0.0, self.t["stopped_seen"] + self.pause - time.monotonic()))
            self.t["cont_sent"] = time.monotonic()
            self.proc.send_signal(signal.SIGCONT)
            self._wait_state(False, "running_seen")
        except BaseException as e:  # reported by the scenario; SIGCONT whatever happened
            self.error = e
            self.proc.send_signal(signal.SIGCONT)

    def observed(self):
        """(at least, at most) seconds the process was stopped."""
        t = self.t
        return t["cont_sent"] - t["stopped_seen"], t["running_seen"] - t["stop_sent"]


def sc_pause(lab):
    """7. SIGSTOP one daemon for less than the minimum suspicion timeout: it
    is at most suspected, never failed; after SIGCONT alive everywhere. The
    pause it got is measured (SIGSTOP to SIGCONT as /proc shows them) and
    checked against the bound; a pause that was not below it, or that no
    node felt (no suspicion), is tried again."""
    x = lab.hosts[1]
    others = [h for h in lab.hosts if h is not x]
    floor = min_suspicion_s(lab.args.preset, len(lab.hosts))
    # A suspicion starts at the earliest a probe timeout after the stop and
    # lasts at least `floor`: a pause of 2/3 of it leaves a third to refute.
    pause = lab.args.pause_seconds or round(floor * 2 / 3, 3)
    if pause >= floor:
        raise LabFailure(f"--pause-seconds {pause} is not below the minimum suspicion timeout {floor:.2f} s")
    mult, interval = PRESET_SUSPICION[lab.args.preset]
    log(f"  minimum suspicion timeout {mult} * max(1, log10 {len(lab.hosts)}) * {interval} s = {floor:.2f} s "
        f"(preset {lab.args.preset}); pausing {x.name} for {pause:.2f} s")
    attempts, result = [], None
    for attempt in range(1, PAUSE_ATTEMPTS + 1):
        c0 = lab.core_counters()
        seen = {}

        def watch(views, *_):
            for h, v in views.items():
                st = (v or {}).get(x.name, {}).get("status")
                if st and st != "alive":
                    seen.setdefault(st, set()).add(h.name)
        # Stop and resume from a thread, so polls do not stretch the pause.
        pauser = Pauser(x.proc, pause)
        pauser.start()
        try:
            while pauser.is_alive():
                watch(lab.views(others))
                time.sleep(0.1)
        finally:
            pauser.join()
        if pauser.error:
            raise LabFailure(f"pausing {x.name}: {pauser.error}")
        lo, hi = pauser.observed()
        back = lab.wait_until(f"{x.name} resumed: full mesh", 30, lab.full_mesh(), on_poll=watch,
                              since=pauser.t["cont_sent"])
        c1 = lab.core_counters()
        suspicions = c1["suspicions"] - c0["suspicions"]
        below = hi < floor
        attempts.append(f"{lo:.3f}..{hi:.3f}")
        log(f"  attempt {attempt}: stopped {lo:.3f}..{hi:.3f} s (SIGSTOP..SIGCONT as observed), "
            f"{'below' if below else 'NOT below'} the minimum suspicion timeout {floor:.2f} s; "
            "statuses other than alive seen: "
            + (", ".join(f"{s} by {sorted(n)}" for s, n in seen.items()) or "none")
            + f"; core.suspicions +{suspicions}; core.deaths {c0['deaths']} -> {c1['deaths']}")
        if not below:
            # The machine stretched the pause past the bound: a death would
            # be right, so this attempt proves nothing. Try again.
            continue
        if "failed" in seen:
            raise LabFailure(f"{x.name} was declared failed during a pause of {lo:.3f}..{hi:.3f} s, below the "
                             f"minimum suspicion timeout {floor:.2f} s, by {sorted(seen['failed'])}")
        if c1["deaths"] != c0["deaths"]:
            raise LabFailure(f"a node declared a member failed during a pause of {lo:.3f}..{hi:.3f} s, below "
                             f"{floor:.2f} s: core.deaths {c0['deaths']} -> {c1['deaths']}")
        result = {"stopped_s": f"{lo:.3f}..{hi:.3f}", "min_suspicion_s": round(floor, 2),
                  "below_bound": True, "attempts": attempt, "suspicions": suspicions,
                  "back_alive_s": round(back, 2)}
        if suspicions > 0:
            return result
        # Nobody probed x while it was stopped (a probe must start in the
        # pause's first probe interval to time out before SIGCONT): the
        # check held but was never put to the test.
        log(f"  attempt {attempt}: no suspicion, the pause was not felt; again")
    if result is not None:
        log(f"  no attempt was felt (no suspicion in {PAUSE_ATTEMPTS}); the last pause below the bound "
            "killed nobody, which is all this run shows")
        return result
    raise LabFailure(f"no pause of {x.name} stayed below the minimum suspicion timeout {floor:.2f} s in "
                     f"{PAUSE_ATTEMPTS} attempts (observed {', '.join(attempts)} s): the machine is too loaded "
                     f"to test this; nothing was checked")


def sc_rolling(lab):
    """8. Rolling restart: each host in turn leaves gracefully (SIGTERM), is
    seen left everywhere, restarts without --join and is alive everywhere
    again. At the end all alive, nobody stuck failed."""
    per = []
    for h in lab.hosts:
        others = [o for o in lab.hosts if o is not h]
        t0 = time.monotonic()
        lab.expect_down.add(h.i)
        h.signal(signal.SIGTERM)
        rc = h.wait_exit(lab.args.leave_timeout + 10)
        if rc != 0:
            raise LabFailure(f"{h.name}: shoald exited with {rc} after SIGTERM (expected 0)\n{h.log_tail()}")
        lab.wait_until(f"{h.name} left everywhere", 30, lab.status_everywhere(h, "left", others))
        lab.expect_down.discard(h.i)
        h.start(join=False)
        lab.wait_until(f"{h.name} back: full mesh", 30, lab.full_mesh())
        per.append(time.monotonic() - t0)
    lab.wait_until("after the rolling restart: full mesh", 30, lab.full_mesh())
    return {"per_host_s": round(sum(per) / len(per), 2)}


class Monitor:
    """`shoalctl monitor --format json` on each of `hosts`, in its namespace,
    collecting the membership events every daemon reports (exact: no event
    falls between two polls). events: [(monotonic time, observer, type,
    member name, damped)]."""

    def __init__(self, lab, hosts, types=("joined", "failed", "left")):
        self.events = []
        self.errors = []
        self._lock = threading.Lock()
        self._procs = []
        for h in hosts:
            cmd = lab.net.nsexec(h.i) + [lab.args.shoalctl, "--socket", h.sock, "monitor",
                                         "--type", ",".join(types), "--format", "json"]
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
            self._procs.append((h, p))
            threading.Thread(target=self._read, args=(h, p), daemon=True).start()

    def _read(self, h, p):
        for line in p.stdout:
            try:
                e = json.loads(line)
                m = e["member"]
                item = (time.monotonic(), h, e["type"], m["name"], bool(m.get("damped", False)))
            except (ValueError, KeyError, TypeError) as ex:
                with self._lock:
                    self.errors.append(f"{h.name}: bad monitor line {line[:200]!r}: {ex}")
                continue
            with self._lock:
                self.events.append(item)

    def stop(self):
        for h, p in self._procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for h, p in self._procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode not in (0, -signal.SIGTERM):
                self.errors.append(f"{h.name}: shoalctl monitor exit {p.returncode}: "
                                   f"{p.stderr.read().strip()[:200]}")
        with self._lock:
            return list(self.events)


def sc_flapping(lab):
    """9. Two hosts flap: each loses all ingress for --flap-down s, then
    recovers for --flap-up s, --flap-cycles times, then --flap-recovery s of
    calm. Flap damping (config flap_half_life, flap_damp_penalty,
    flap_stable_time) must hold each healthy observer's view of a flapping
    member to at most 4 changes between up and down (down, back, down again,
    back once stable), never fail or damp a healthy member in a healthy
    view, and leave every member alive everywhere at the end."""
    if len(lab.hosts) < 4:
        raise LabFailure("flapping needs at least 4 hosts")
    a = lab.args
    faulty = lab.hosts[-2:]
    healthy = [h for h in lab.hosts if h not in faulty]
    faulty_names = {h.name for h in faulty}
    damped_seen = set()   # (observer, member) pairs a healthy view showed damped

    def watch(views, *_):
        for h, v in views.items():
            for n, m in (v or {}).items():
                # suspect is allowed: the deaf hosts' own suspicions reach the others
                if h in healthy and n not in faulty_names and (m["status"] in ("failed", "left") or m.get("damped")):
                    damped_seen.add(f"{h.name} saw {n} {m['status']}{' damped' if m.get('damped') else ''}")

    mon = Monitor(lab, healthy)
    time.sleep(1.0)  # the streams are open before the first fault (their replies come first)
    deaths0 = lab.core_counters(healthy)["deaths"]
    t0 = time.monotonic()
    others = [h.i for h in healthy]
    for cycle in range(a.flap_cycles):
        for f in faulty:
            lab.net.block(f.i, "in", others + [g.i for g in faulty if g is not f])
        end = time.monotonic() + a.flap_down
        while time.monotonic() < end:  # the scenario's fixed timing; the polls only watch
            watch(lab.views(healthy))
            time.sleep(1.0)
        for f in faulty:
            lab.net.heal(f.i)
        end = time.monotonic() + a.flap_up
        while time.monotonic() < end:
            watch(lab.views(healthy))
            time.sleep(1.0)
        log(f"  cycle {cycle + 1}/{a.flap_cycles} done at {time.monotonic() - t0:.0f} s")
    end = time.monotonic() + a.flap_recovery
    while time.monotonic() < end:
        watch(lab.views(healthy))
        time.sleep(1.0)
    final = lab.views()
    events = mon.stop()
    deaths = lab.core_counters(healthy)["deaths"] - deaths0

    # Changes per (healthy observer, flapping member): each failed or left
    # is a change to down, each joined one back up.
    changes = {(h.name, f.name): [] for h in healthy for f in faulty}
    healthy_down = []
    for t, obs, typ, name, damped in events:
        if name in faulty_names:
            changes[(obs.name, name)].append(f"{typ}@{t - t0:.0f}s")
        elif typ in ("failed", "left"):
            healthy_down.append(f"{obs.name} saw {name} {typ} at {t - t0:.0f} s")
    counts = sorted(len(v) for v in changes.values())
    total = sum(counts)
    log(f"  monitor events from {len(healthy)} healthy observers about {len(faulty)} flapping members: "
        f"{total} changes over {len(changes)} pairs, per pair min {counts[0]} max {counts[-1]}; "
        f"core.deaths over the healthy nodes +{deaths}")
    worst = max(changes.items(), key=lambda kv: len(kv[1]))
    log(f"  the busiest pair {worst[0][0]}->{worst[0][1]}: {' '.join(worst[1]) or 'none'}")
    problems = list(mon.errors)
    if counts[-1] > a.flap_max_changes:
        problems.append(f"a pair saw {counts[-1]} changes (at most {a.flap_max_changes}): "
                        f"{worst[0][0]} sees {worst[0][1]}: {' '.join(worst[1])}")
    if counts[0] < 2:
        problems.append(f"a pair saw {counts[0]} changes: the fault did not take a flapping member down "
                        "(nothing was tested)")
    if healthy_down:
        problems.append("healthy members went down in healthy views: " + "; ".join(healthy_down[:5]))
    if damped_seen:
        problems.append("healthy views showed a healthy member failed, left or damped: "
                        + "; ".join(sorted(damped_seen)[:5]))
    ok, why = lab.full_mesh()(final)
    if not ok:
        problems.append(f"not every member alive everywhere {a.flap_recovery:.0f} s after the last cycle: "
                        f"{why}\n{lab.summary(final)}")
    if problems:
        raise LabFailure("; ".join(problems))
    return {"pairs": len(changes), "changes_total": total, "changes_max_per_pair": counts[-1],
            "changes_min_per_pair": counts[0], "deaths": deaths}


RUNNERS = {"converge": sc_converge, "crash": sc_crash, "hostdown": sc_hostdown, "loss": sc_loss,
           "partition": sc_partition, "oneway": sc_oneway, "pause": sc_pause, "rolling": sc_rolling,
           "flapping": sc_flapping}


# --------------------------------------------------------------------------

REQUIRE_ENV = "SHOAL_REQUIRE_LAB"


def required():
    """SHOAL_REQUIRE_LAB=1 (scripts/test's lab stage): a machine that cannot
    run the lab is an error, not a skip. A lab that was not asked for (a
    plain ctest) is still skipped: the lab stage runs it."""
    return os.environ.get(REQUIRE_ENV) == "1"


def preflight(args):
    """Returns a reason to skip, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, bridge, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (Debian: apt-get install iproute2 nftables)"
    for path, what in ((args.shoald, "--shoald"), (args.shoalctl, "--shoalctl")):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"lab: {what} {path}: not an executable")
    # Can this kernel do it at all? (containers without CAP_NET_ADMIN cannot)
    probe = f"{args.prefix}probe"
    try:
        rc, _, err = run(["ip", "netns", "add", probe], check=False)
        if rc != 0:
            return f"cannot create a network namespace: {err.strip()}"
        rc, _, err = run(["ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe"], check=False)
        if rc != 0:
            return f"nftables unusable in a namespace: {err.strip()}"
        rc, _, err = run(["ip", "-n", probe, "link", "add", "probebr", "type", "bridge"], check=False)
        if rc != 0:
            return f"cannot create a bridge: {err.strip()}"
    finally:
        run(["ip", "netns", "del", probe], check=False)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shoald", required=True)
    ap.add_argument("--shoalctl", required=True)
    ap.add_argument("--shoal-sim", required=True,
                    help="simulator, for the crash and hostdown bounds (with and without --refuse)")
    ap.add_argument("--hosts", type=int, default=8, help="H, 4..32 (default 8)")
    ap.add_argument("--preset", default="local", choices=["lan", "wan", "local"])
    ap.add_argument("--scenario", action="append", choices=SCENARIOS,
                    help="run only these (repeatable; converge always runs first)")
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "shoal-lab-run"),
                    help="logs and data dirs (wiped at start, kept at the end)")
    ap.add_argument("--prefix", default="shoallab-", help="name prefix of every namespace, link, table")
    ap.add_argument("--subnet", default="10.77.0", help="the /24 used inside the namespaces")
    ap.add_argument("--log-level", default="debug")
    ap.add_argument("--leave-timeout", type=float, default=3.0)
    ap.add_argument("--sim-seeds", type=int, default=200)
    ap.add_argument("--margin", type=float, default=1.0, help="seconds added to the simulator's bounds")
    ap.add_argument("--loss-permille", type=int, default=51, help="per host and direction (51: 10%% per packet)")
    ap.add_argument("--loss-seconds", type=float, default=120)
    ap.add_argument("--partition-seconds", type=float, default=60)
    ap.add_argument("--pause-seconds", type=float, default=None,
                    help="default: 2/3 of the minimum suspicion timeout")
    ap.add_argument("--flap-down", type=float, default=20, help="flapping: seconds without ingress per cycle")
    ap.add_argument("--flap-up", type=float, default=20, help="flapping: seconds healthy per cycle")
    ap.add_argument("--flap-cycles", type=int, default=4)
    ap.add_argument("--flap-recovery", type=float, default=60, help="flapping: calm seconds counted after the last cycle")
    ap.add_argument("--flap-max-changes", type=int, default=4,
                    help="flapping: most up/down changes one healthy observer may see of one flapping member")
    args = ap.parse_args()
    if not 4 <= args.hosts <= 32:
        ap.error("--hosts must be in 4..32")
    if not re.fullmatch(r"[a-z][a-z0-9]{1,8}-", args.prefix):
        ap.error("--prefix: 2..9 lowercase letters/digits and a trailing '-' (interface names are short)")
    if not re.fullmatch(r"(10|172\.(1[6-9]|2\d|3[01])|192\.168)(\.\d{1,3}){0,2}", args.subnet) \
            or args.subnet.count(".") != 2:
        ap.error("--subnet: the first three octets of a private /24, e.g. 10.77.0")

    ok, why = requested()
    if not ok:
        print(f"lab: SKIPPED: not asked for ({why}); a plain ctest skips the fault lab (minutes, root). "
              "Run it with `ctest -L lab` or SHOAL_LAB=1.")
        return SKIP
    reason = preflight(args)
    if reason:
        if required():
            print(f"lab: FAILED: {reason}; {REQUIRE_ENV}=1 says this machine must run the lab")
            return 1
        print(f"lab: SKIPPED: {reason} ({REQUIRE_ENV}=1 makes this an error)")
        return SKIP

    selected = ["converge"] + [s for s in SCENARIOS[1:]
                               if (s in args.scenario if args.scenario else s not in ON_REQUEST)]
    lock_path = f"/run/lock/{args.prefix.rstrip('-')}.lock"
    lock = open(lock_path, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another lab run holds {lock_path}; waiting for it")
        fcntl.flock(lock, fcntl.LOCK_EX)

    def on_signal(sig, _frame):
        raise Interrupted(f"signal {sig}")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    results = []
    lab = None
    t_start = time.monotonic()
    try:
        left = remove_leftovers(args.prefix)
        if left:
            log(f"removed leftovers of an earlier run: {' '.join(left)}")
        shutil.rmtree(args.work_dir, ignore_errors=True)
        os.makedirs(args.work_dir)
        lab = Lab(args)
        lab.sock_dir = tempfile.mkdtemp(prefix=args.prefix, dir=SOCK_PARENT)
        lab.net.create()
        lab.hosts = [Host(lab, i) for i in range(1, args.hosts + 1)]
        log(f"{args.hosts} hosts on {args.subnet}.0/24, preset {args.preset}, logs in {args.work_dir}")
        for name in selected:
            log(f"scenario {name}: {RUNNERS[name].__doc__.strip().splitlines()[0]}")
            t0 = time.monotonic()
            try:
                m = RUNNERS[name](lab)
                results.append((name, "PASS", time.monotonic() - t0, m))
                log(f"scenario {name}: PASS in {time.monotonic() - t0:.1f} s {m}")
            except (LabFailure, Exception) as e:  # an unexpected exception is a lab bug: report, go on
                results.append((name, "FAIL", time.monotonic() - t0, {}))
                detail = str(e) if isinstance(e, LabFailure) else traceback.format_exc()
                log(f"scenario {name}: FAIL after {time.monotonic() - t0:.1f} s: {detail}")
                if name == "converge":
                    break
                try:
                    lab.restore()
                except LabFailure as e2:
                    log(f"cannot restore the cluster, stopping: {e2}")
                    break
    except Interrupted as e:
        log(f"interrupted ({e}); cleaning up")
        results.append(("interrupted", "FAIL", 0, {}))
    except LabFailure as e:
        log(f"lab setup failed: {e}")
        results.append(("setup", "FAIL", 0, {}))
    finally:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        if lab:
            lab.stop_all()
        remove_leftovers(args.prefix)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)

    total = time.monotonic() - t_start
    print("\nscenario    result  seconds  measured")
    for name, res, secs, m in results:
        print(f"{name:<11} {res:<7} {secs:7.1f}  {' '.join(f'{k}={v}' for k, v in m.items())}")
    print(f"total {total:.1f} s; daemon logs in {args.work_dir}")
    failed = [r for r in results if r[1] != "PASS"]
    ran = {r[0] for r in results}
    missing = [s for s in selected if s not in ran]
    if missing:
        print(f"not run: {' '.join(missing)}")
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
