#!/usr/bin/env python3
"""Side-by-side of shoald and HashiCorp Serf on loopback, in one run.

    bench/vs_serf.sh [--sizes 8,32] [--shoald PATH] [--shoalctl PATH]
                     [--serf PATH] [--out DIR] [--steady 30] [--crashes 5]
                     [--crash-mode kill|host-down|both]

(bench/vs_serf.sh installs serf, nftables and python3, then runs this file.)

For each N and each system (serf, then shoald, one after the other so they
never share the CPU), it starts N agents on 127.0.0.1 (lan parameters: serf's
`-profile lan`, shoald's `--preset lan`; agents 1..N-1 join agent 0) and
measures:
  join_convergence_s   from launching agents 1..N-1 (agent 0 already up) until
                       every agent lists all N members alive.
  cpu_s_per_agent_s    CPU time of the agent processes over a steady window
                       (--steady, 30 s, starting 5 s after convergence), per
                       agent per second: nanoseconds on CPU, the first field
                       of /proc/PID/task/TID/schedstat summed over every
                       thread of the agent (/proc/PID/schedstat alone is the
                       main thread's, and /proc/PID/stat counts 10 ms ticks);
                       the total is cpu_ns_in_window. A thread that exits
                       within the window takes its time with it:
                       cpu_threads_exited_in_window counts them (0: the
                       figure is complete; otherwise it is a lower bound).
  rss_kb_per_agent     VmRSS (/proc/PID/status) at the end of the window, mean.
                       VmRSS counts every resident page of shared libraries in
                       full in every process; so two more views are reported:
  pss_kb_per_agent     Pss (/proc/PID/smaps_rollup): shared pages divided among
                       the processes mapping them (the N agents of a system
                       share their binary and libraries).
  anon_kb_per_agent    RssAnon: the agent's own heap and stacks, no file pages.
  bytes_per_agent_s    IP bytes (headers included) of UDP and TCP packets sent
                       from or to the agents' gossip ports, counted by an
                       nftables table of our own on the output hook (every
                       loopback packet passes it once), over the same window,
                       per agent per second. Needs root; skipped otherwise.
  crash_MODE_failed_all_s
                       after the steady window, K agents (--crashes, 5; fewer
                       than N-1, agent 0 never) crash one after another: N-1,
                       then N-2, ..., each once the one before is listed as
                       failed by every live agent (victims are not restarted,
                       so crash k happens in a cluster of N-k+1). Per crash:
                       the time from the crash until every live agent lists
                       the victim as failed; the figure is the median over the
                       K crashes (min, max and every value are in the output
                       too): when a member next probes the victim is chance,
                       and one crash is too few to compare on. Two ways to
                       crash (--crash-mode, default both), each a series of K
                       in a cluster of its own (the second cluster is started
                       and joined afresh, on other ports, with no steady
                       window), side by side in the output:
                         kill       (process gone, host up: ICMP) `kill -9` of
                                    the agent: its host still answers, so a
                                    UDP packet to its port draws ICMP port
                                    unreachable and a TCP SYN a RST. shoald
                                    reads the ICMP (refusal_suspicion_timeout)
                                    and Serf does not.
                         host-down  (silent) the victim's host goes silent
                                    first: an nftables table of our own drops,
                                    on the input hook of lo, every UDP and TCP
                                    packet to or from the victim's gossip
                                    port, so nothing answers (no ICMP, no RST:
                                    the drop comes before the kernel looks for
                                    a socket), and senders see no error
                                    (dropping on the output hook would fail
                                    their sendto with EPERM, which no real
                                    network does); then the agent is killed.
                                    What a powered-off host, a cut cable or a
                                    firewall gives, and what shoald gives with
                                    a keyring (it reads no ICMP then). The
                                    victim's own outgoing TCP connections
                                    (ephemeral ports) are not matched; it is
                                    killed at once. Needs root and nft;
                                    skipped with the reason otherwise.
                       The time starts at the kill, or when the host went
                       silent. For shoald, the ICMP port unreachable its live
                       agents read during each series is reported
                       (crash_MODE_icmp_unreachable_in: non-zero for kill, 0
                       for host-down).
  crash_MODE_failed_first_s
                       the same, until the first live agent lists it as failed.
Nothing polls the agents during the steady window. During the join and the
crashes, agents are polled in rounds: serf through its RPC protocol (msgpack on
TCP, one open connection per agent), shoald through `shoalctl members --format
json`; poll_round_s in the output is the mean time one round took, the time
resolution of those figures (crash_MODE_poll_round_s: the largest over a
series).

Output: OUT/vs_serf.json (every figure, and per crash its victim, times and
poll round under crash_MODE_runs) and OUT/vs_serf.md (a table per N with the ratio
shoal/serf per figure, the crash rows being medians, and a line per system
with the per-crash values). A missing serf or shoald, or one that does not start,
skips that half with the reason printed and recorded.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

NFT_TABLE = "shoal_vs_serf"
NFT_DOWN_TABLE = "shoal_vs_serf_down"
# The two crash modes, in the order they run, and how the output names them.
CRASH_MODES = {"kill": "kill (process gone, host up: ICMP)", "host-down": "host down (silent)"}
MODE_PORT_STEP = 200  # each crash mode's cluster uses ports this far from the previous one's
SETTLE_S = 5.0


def log(msg):
    print(f"[vs_serf {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- msgpack
# The subset Serf's RPC uses: maps, arrays, strings, binaries, ints, bools, nil.

def mp_pack(o):
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if 0 <= o < 2**32:
            return b"\xce" + struct.pack(">I", o)
        return b"\xcf" + struct.pack(">Q", o)
    if isinstance(o, str):
        b = o.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(o, dict):
        if len(o) >= 16:
            raise ValueError("map too large for this packer")
        return bytes([0x80 | len(o)]) + b"".join(mp_pack(k) + mp_pack(v) for k, v in o.items())
    raise TypeError(type(o))


class NeedMore(Exception):
    pass


def mp_unpack(buf, i=0):
    """Returns (object, next index); raises NeedMore when buf is incomplete."""
    def take(n):
        nonlocal i
        if i + n > len(buf):
            raise NeedMore()
        b = buf[i:i + n]
        i += n
        return b

    def seq(n):
        nonlocal i
        out = []
        for _ in range(n):
            o, i = mp_unpack(buf, i)
            out.append(o)
        return out

    def mapping(n):
        nonlocal i
        out = {}
        for _ in range(n):
            k, i = mp_unpack(buf, i)
            v, i = mp_unpack(buf, i)
            out[k.decode() if isinstance(k, bytes) else k] = v
        return out

    t = take(1)[0]
    if t < 0x80:
        return t, i
    if t >= 0xE0:
        return t - 256, i
    if 0x80 <= t <= 0x8F:
        return mapping(t & 0x0F), i
    if 0x90 <= t <= 0x9F:
        return seq(t & 0x0F), i
    if 0xA0 <= t <= 0xBF:
        return take(t & 0x1F).decode(errors="replace"), i
    simple = {0xC0: None, 0xC2: False, 0xC3: True}
    if t in simple:
        return simple[t], i
    if t in (0xC4, 0xC5, 0xC6):  # bin 8/16/32
        n = struct.unpack(">" + "BHI"[t - 0xC4], take(1 << (t - 0xC4)))[0]
        return bytes(take(n)), i
    if t in (0xD9, 0xDA, 0xDB):  # str 8/16/32
        n = struct.unpack(">" + "BHI"[t - 0xD9], take(1 << (t - 0xD9)))[0]
        return take(n).decode(errors="replace"), i
    ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
            0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if t in ints:
        fmt = ints[t]
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0], i
    if t in (0xDC, 0xDD):
        return seq(struct.unpack(">H" if t == 0xDC else ">I", take(2 if t == 0xDC else 4))[0]), i
    if t in (0xDE, 0xDF):
        return mapping(struct.unpack(">H" if t == 0xDE else ">I", take(2 if t == 0xDE else 4))[0]), i
    raise ValueError(f"msgpack type 0x{t:02x} not supported")


class serf_rpc:
    """One connection to a serf agent's RPC port (handshake, members)."""

    def __init__(self, port, timeout=2.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.seq = 0
        self.call("handshake", {"Version": 1}, body=False)

    def _read(self):
        while True:
            try:
                o, n = mp_unpack(self.buf)
                self.buf = self.buf[n:]
                return o
            except NeedMore:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("serf closed the RPC connection")
                self.buf += chunk

    def call(self, command, args=None, body=True):
        seq = self.seq
        self.seq += 1
        msg = mp_pack({"Command": command, "Seq": seq})
        if args is not None:
            msg += mp_pack(args)
        self.sock.sendall(msg)
        header = self._read()
        if header.get("Error"):
            raise RuntimeError(f"serf rpc {command}: {header['Error']}")
        return self._read() if body else None

    def members(self):
        """{name: status}"""
        return {m["Name"]: m["Status"] for m in self.call("members")["Members"]}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- processes

def proc_cpu_ns(pid):
    """(nanoseconds on CPU so far, thread ids) of process `pid`: the first
    field of /proc/PID/task/TID/schedstat (the scheduler's sum_exec_runtime,
    in ns) summed over its threads. /proc/PID/schedstat covers the main
    thread only; /proc/PID/stat's utime+stime covers every thread but in
    clock ticks (10 ms). A thread that has exited is no longer listed, so a
    caller comparing two readings checks the thread ids too."""
    total, tids = 0, set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread exited while we listed them
        tids.add(int(tid))
    return total, tids


def proc_field_kb(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class cluster:
    """N agents of one system. Subclasses: launch(i) and members(i)."""

    name = "?"

    def __init__(self, n, port_base, workdir):
        self.label = f"{self.name}{n}"  # its byte counters
        self.n = n
        self.port_base = port_base
        self.workdir = workdir
        self.procs = [None] * n
        self.logs = []

    def node(self, i):
        return f"n{i}"

    def port(self, i):
        return self.port_base + i

    def start_one(self, i):
        logf = open(os.path.join(self.workdir, f"{self.node(i)}.log"), "wb")
        self.logs.append(logf)
        self.procs[i] = subprocess.Popen(self.command(i), stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def exited(self, i):
        p = self.procs[i]
        return p is not None and p.poll() is not None

    def log_tail(self, i, lines=5):
        try:
            with open(os.path.join(self.workdir, f"{self.node(i)}.log"), errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, i, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited(i):
                raise RuntimeError(f"{self.name} {self.node(i)} exited with code "
                                   f"{self.procs[i].returncode}: {self.log_tail(i)}")
            try:
                if self.members(i) is not None:
                    return
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} {self.node(i)} not answering after {timeout:.0f} s: "
                           f"{self.log_tail(i)}")

    def members_many(self, ids):
        """{i: members or None (no answer)} for agents `ids`."""
        out = {}
        for i in ids:
            try:
                out[i] = self.members(i)
            except Exception:
                out[i] = None
        return out

    def icmp_unreachable_in(self, ids):
        """{i: ICMP port unreachable read so far} for agents `ids`, or None
        when the system does not report it (serf)."""
        return None

    def pids(self, alive_only=True):
        return [p.pid for p in self.procs if p is not None and (not alive_only or p.poll() is None)]

    def stop(self):
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.logs:
            f.close()


class serf_cluster(cluster):
    name = "serf"

    def __init__(self, n, port_base, workdir, serf):
        super().__init__(n, port_base, workdir)
        self.serf = serf
        self.rpc = [None] * n

    def rpc_port(self, i):
        return self.port_base + 500 + i

    def command(self, i):
        cmd = [self.serf, "agent", "-node", self.node(i), "-bind", f"127.0.0.1:{self.port(i)}",
               "-rpc-addr", f"127.0.0.1:{self.rpc_port(i)}", "-profile", "lan",
               "-log-level", "warn"]
        if i > 0:
            cmd += ["-join", f"127.0.0.1:{self.port(0)}"]
        return cmd

    def members(self, i):
        if self.rpc[i] is None:
            self.rpc[i] = serf_rpc(self.rpc_port(i))
        try:
            return self.rpc[i].members()
        except Exception:
            self.rpc[i].close()
            self.rpc[i] = None
            raise

    def stop(self):
        for r in self.rpc:
            if r is not None:
                r.close()
        super().stop()


class shoal_cluster(cluster):
    name = "shoald"

    def __init__(self, n, port_base, workdir, shoald, shoalctl):
        super().__init__(n, port_base, workdir)
        self.shoald = shoald
        self.shoalctl = shoalctl

    def socket(self, i):
        return os.path.join(self.workdir, f"{self.node(i)}.sock")

    def command(self, i):
        data = os.path.join(self.workdir, f"{self.node(i)}.data")
        os.makedirs(data, exist_ok=True)
        cmd = [self.shoald, "--name", self.node(i), "--bind", f"127.0.0.1:{self.port(i)}",
               "--socket", self.socket(i), "--data-dir", data, "--preset", "lan"]
        if i > 0:
            cmd += ["--join", f"127.0.0.1:{self.port(0)}"]
        return cmd

    def ctl(self, i):
        return [self.shoalctl, "--socket", self.socket(i), "members", "--format", "json"]

    @staticmethod
    def parse(returncode, stdout, stderr):
        if returncode != 0:
            raise RuntimeError(stderr.decode(errors="replace").strip())
        return {m["name"]: m["status"] for m in json.loads(stdout)["members"]}

    def members(self, i):
        r = subprocess.run(self.ctl(i), capture_output=True, timeout=5, stdin=subprocess.DEVNULL)
        return self.parse(r.returncode, r.stdout, r.stderr)

    def icmp_unreachable_in(self, ids):
        out = {}
        for i in ids:
            r = subprocess.run([self.shoalctl, "--socket", self.socket(i), "stats", "--format", "json"],
                               capture_output=True, timeout=5, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                return None
            out[i] = int(json.loads(r.stdout)["runtime"]["icmp_unreachable_in"])
        return out

    def members_many(self, ids):
        # One shoalctl per agent, all at once: a round costs one process start,
        # not one per agent.
        procs = {i: subprocess.Popen(self.ctl(i), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL) for i in ids}
        out = {}
        for i, p in procs.items():
            try:
                so, se = p.communicate(timeout=5)
                out[i] = self.parse(p.returncode, so, se)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                out[i] = None
            except Exception:
                out[i] = None
        return out


# ---------------------------------------------------------------- nftables

def fresh_table(table, chain, root_why, skipped):
    """Replaces the nftables table `table` (inet) by an empty one holding
    `chain` (its name and spec). Returns "" on success, otherwise why not
    (`root_why`: what needs root; `skipped`: what is left out)."""
    if os.geteuid() != 0:
        return f"not root: {root_why}"
    if shutil.which("nft") is None:
        return f"nft not found (Debian package nftables): {skipped}"
    byte_counters.nft(f"delete table inet {table}", check=False)
    r = byte_counters.nft(f"add table inet {table}", check=False)
    if r.returncode != 0:
        return f"nft failed ({r.stderr.strip()}): {skipped}"
    byte_counters.nft(f"add chain inet {table} {chain}")
    return ""


class byte_counters:
    """An nftables table of our own counting, per system, the UDP and TCP
    packets from or to its agents' gossip port range."""

    def __init__(self):
        self.reason = fresh_table(NFT_TABLE, "out { type filter hook output priority 0 ; policy accept ; }",
                                  "nftables counters need root, bytes skipped", "bytes skipped")
        self.ok = not self.reason

    @staticmethod
    def nft(cmd, check=True):
        r = subprocess.run(["nft"] + cmd.split(), capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"nft {cmd}: {r.stderr.strip()}")
        return r

    def add(self, label, lo, hi):
        """Counts udp and tcp packets of ports lo..hi under `label`."""
        if not self.ok:
            return
        rng = f"{lo}-{hi}"
        for proto in ("udp", "tcp"):
            c = f"{label}_{proto}"
            self.nft(f"add counter inet {NFT_TABLE} {c}")
            # A packet to or from an agent's port, counted once: loopback
            # packets pass the output hook once, and no packet has both ports
            # in one range (outgoing TCP uses ephemeral ports).
            self.nft(f"add rule inet {NFT_TABLE} out {proto} sport {rng} counter name {c}")
            self.nft(f"add rule inet {NFT_TABLE} out {proto} dport {rng} {proto} sport != {rng} "
                     f"counter name {c}")

    def read(self, label):
        """{"udp": bytes, "tcp": bytes}"""
        out = {}
        for proto in ("udp", "tcp"):
            r = self.nft(f"-j list counter inet {NFT_TABLE} {label}_{proto}")
            for item in json.loads(r.stdout)["nftables"]:
                if "counter" in item:
                    out[proto] = item["counter"]["bytes"]
        return out

    def close(self):
        if self.ok:
            self.nft(f"delete table inet {NFT_TABLE}", check=False)


class silencer:
    """An nftables table of our own that makes an agent's host go silent:
    on the input hook of lo, every UDP and TCP packet to or from its gossip
    port is dropped before the kernel looks for a socket, so no ICMP port
    unreachable and no RST ever answer, and the senders see no error."""

    def __init__(self, wanted=True):
        self.ok = False
        self.reason = ""
        self.ports = []
        if not wanted:
            self.reason = "host-down mode not asked for"
            return
        self.reason = fresh_table(NFT_DOWN_TABLE, "in { type filter hook input priority -300 ; policy accept ; }",
                                  "the host-down mode drops packets with nftables, which needs root",
                                  "host-down mode skipped")
        self.ok = not self.reason

    def silence(self, port):
        for proto in ("udp", "tcp"):
            for field in ("dport", "sport"):
                byte_counters.nft(f"add rule inet {NFT_DOWN_TABLE} in iif lo {proto} {field} {port} "
                                  "counter drop")
        self.ports.append(port)

    def dropped(self):
        """{port: packets dropped} for the silenced ports."""
        r = byte_counters.nft(f"-j list chain inet {NFT_DOWN_TABLE} in")
        out = {p: 0 for p in self.ports}
        for item in json.loads(r.stdout)["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            port, packets = None, 0
            for e in rule["expr"]:
                if "match" in e and isinstance(e["match"].get("right"), int):
                    port = e["match"]["right"]
                if "counter" in e:
                    packets = e["counter"]["packets"]
            if port in out:
                out[port] += packets
        return out

    def clear(self):
        if self.ok:
            byte_counters.nft(f"flush chain inet {NFT_DOWN_TABLE} in", check=False)
        self.ports = []

    def close(self):
        if self.ok:
            byte_counters.nft(f"delete table inet {NFT_DOWN_TABLE}", check=False)


# ---------------------------------------------------------------- measurement

def poll_until(cl, who, done, t0, timeout):
    """Polls agents `who` in rounds until done(i, members) holds for each.
    Returns ({i: seconds since t0 (time.monotonic())}, mean round seconds);
    an i missing from the map did not get there within `timeout` of t0."""
    start = time.monotonic()
    when = {}
    rounds = 0
    while len(when) < len(who) and time.monotonic() - t0 < timeout:
        pending = [i for i in who if i not in when]
        for i, m in cl.members_many(pending).items():
            if m is not None and done(i, m):
                when[i] = time.monotonic() - t0
        rounds += 1
        time.sleep(0.02)
    return when, (time.monotonic() - start) / max(rounds, 1)


class start_failed(Exception):
    pass


def spread(values):
    """(median, min, max) of `values`, or Nones when a value is missing (a
    crash not seen everywhere in time: leaving it out would bias the median)."""
    if not values or any(v is None for v in values):
        return None, None, None
    return round(statistics.median(values), 3), min(values), max(values)


def clamp_crashes(n, crashes, res):
    """Agent 0 is never a victim, and one more agent stays alive so that
    "failed everywhere" still means more than agent 0: at most N-2."""
    res["crashes_requested"] = crashes
    if crashes > n - 2:
        crashes = max(n - 2, 0)
        res["crashes_clamped"] = (f"--crashes {res['crashes_requested']} clamped to {crashes} "
                                  f"at N={n} (it must be below N-1)")
        log(f"N={n}: {res['crashes_clamped']}")
    res["crashes"] = crashes
    return crashes


def mode_key(mode):
    return "crash_" + mode.replace("-", "_")


def run_crashes(cl, res, crashes, timeout_s, mode, quiet):
    """Crashes agents N-1, N-2, ... (`crashes` of them, never agent 0) one at
    a time, each once the previous one is listed as failed by every agent
    still alive. mode "kill": kill -9; "host-down": `quiet` (a silencer)
    silences the agent's port first, then kill -9. Records per crash the time
    from the crash until every live agent, and the first one, lists the
    victim as failed; res gets the median, min and max of both over the
    crashes under crash_MODE_*."""
    n = cl.n
    key = mode_key(mode)
    runs = []
    res[key + "_runs"] = runs
    live = list(range(n))
    icmp0 = cl.icmp_unreachable_in(live)
    for k in range(crashes):
        victim = n - 1 - k
        vname = cl.node(victim)
        live.remove(victim)
        t_crash = time.monotonic()
        if mode == "host-down":
            quiet.silence(cl.port(victim))
        cl.procs[victim].kill()
        killed_after = time.monotonic() - t_crash
        cl.procs[victim].wait()
        if isinstance(cl, serf_cluster) and cl.rpc[victim] is not None:
            cl.rpc[victim].close()
            cl.rpc[victim] = None
        when, round_s = poll_until(cl, live, lambda i, m, v=vname: m.get(v) == "failed", t_crash,
                                   timeout_s)
        run = {"victim": vname, "mode": mode, "live_agents": len(live),
               "failed_all_s": round(max(when.values()), 3) if len(when) == len(live) else None,
               "failed_first_s": round(min(when.values()), 3) if when else None,
               "poll_round_s": round(round_s, 3)}
        if mode == "host-down":
            run["killed_after_silence_s"] = round(killed_after, 4)
            run["packets_dropped"] = quiet.dropped().get(cl.port(victim))
        runs.append(run)
        log(f"{cl.name} N={n}: {mode} crash {k + 1}/{crashes} ({vname}) -> failed everywhere "
            f"{run['failed_all_s']} s (first {run['failed_first_s']} s)"
            + (f"; {run['packets_dropped']} packets dropped" if mode == "host-down" else ""))
        dead = [i for i in live if cl.exited(i)]
        if dead:
            res[key + "_error"] = (f"agents exited during {mode} crash {k + 1} ({vname}): "
                                   f"{[cl.node(i) for i in dead]}: {cl.log_tail(dead[0])}")
            break
        if run["failed_all_s"] is None:
            # The next victim would be crashed while this one is still pending
            # somewhere: stop the series here.
            res[key + "_error"] = (f"{mode} crash {k + 1}: {len(when)} of {len(live)} agents saw "
                                   f"{vname} failed within {timeout_s:.0f} s; no further crashes")
            break
    for field in ("failed_all_s", "failed_first_s"):
        values = [r[field] for r in runs]
        if len(runs) < crashes:  # the series stopped early: no median
            values.append(None)
        res[f"{key}_{field}"], res[f"{key}_{field}_min"], res[f"{key}_{field}_max"] = spread(values)
    res[key + "_poll_round_s"] = max((r["poll_round_s"] for r in runs), default=None)
    icmp1 = cl.icmp_unreachable_in(live)
    if icmp0 is not None and icmp1 is not None:
        # Over the agents alive at the end (the victims' counts died with them).
        res[key + "_icmp_unreachable_in"] = sum(icmp1[i] - icmp0[i] for i in live)
    if mode == "host-down":
        quiet.clear()


def join_cluster(cl, timeout_s):
    """Starts agent 0, then 1..N-1 joining it; returns (seconds from launching
    1..N-1 until every agent lists all N alive, mean poll round), or
    (None, round) when that did not happen within timeout_s. Raises
    start_failed when agent 0 does not come up."""
    n = cl.n
    cl.start_one(0)
    try:
        cl.wait_ready(0, 20)
    except RuntimeError as e:
        raise start_failed(str(e)) from e
    t_launch = time.monotonic()
    for i in range(1, n):
        cl.start_one(i)
    names = [cl.node(i) for i in range(n)]

    def full(i, m):
        return all(m.get(x) == "alive" for x in names)

    when, round_s = poll_until(cl, range(n), full, t_launch, timeout_s)
    dead = [i for i in range(n) if cl.exited(i)]
    if dead:
        raise RuntimeError(f"{cl.name} agents exited during the join: "
                           f"{[cl.node(i) for i in dead]}: {cl.log_tail(dead[0])}")
    if len(when) < n:
        return None, round_s
    return round(max(when.values()), 3), round_s


def run_system(make_cluster, n, counters, steady_s, crashes, timeout_s, modes, quiet):
    """Measures one system at one size: join, steady window and the first
    crash mode's series in one cluster, then each further crash mode's
    series in a fresh cluster (make_cluster(k): the cluster for mode k).
    Raises start_failed when its first agent does not come up (the binary
    is missing features or broken)."""
    cl = make_cluster(0)
    res = {"system": cl.name, "nodes": n, "crash_modes": list(modes)}
    crashes = clamp_crashes(n, crashes, res)
    try:
        join_s, round_s = join_cluster(cl, timeout_s)
        if join_s is None:
            res["join_convergence_s"] = None
            res["error"] = f"no full mesh after {timeout_s:.0f} s"
            return res
        res["join_convergence_s"] = join_s
        res["join_poll_round_s"] = round(round_s, 3)
        log(f"{cl.name} N={n}: full mesh after {res['join_convergence_s']:.2f} s; "
            f"settling {SETTLE_S:.0f} s, then a {steady_s:.0f} s steady window")

        # ---- steady window: no polling ----
        time.sleep(SETTLE_S)
        pids = cl.pids()
        cpu0 = {p: proc_cpu_ns(p) for p in pids}
        b0 = counters.read(cl.label) if counters.ok else None
        w0 = time.monotonic()
        time.sleep(steady_s)
        w1 = time.monotonic()
        b1 = counters.read(cl.label) if counters.ok else None
        cpu1 = {p: proc_cpu_ns(p) for p in pids}
        rss = [proc_rss_kb(p) for p in pids]
        window = w1 - w0
        res["steady_window_s"] = round(window, 2)
        cpu_ns = sum(cpu1[p][0] - cpu0[p][0] for p in pids)
        res["cpu_ns_in_window"] = cpu_ns
        res["cpu_s_per_agent_s"] = cpu_ns / 1e9 / (n * window)
        res["cpu_source"] = "/proc/PID/task/*/schedstat field 1 (ns on CPU), summed over each agent's threads"
        res["cpu_threads_per_agent"] = sum(len(cpu1[p][1]) for p in pids) / len(pids)
        res["cpu_threads_exited_in_window"] = sum(len(cpu0[p][1] - cpu1[p][1]) for p in pids)
        res["rss_kb_per_agent"] = sum(rss) / len(rss)
        res["rss_kb_max"] = max(rss)
        pss = [proc_field_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids]
        anon = [proc_field_kb(f"/proc/{p}/status", "RssAnon:") for p in pids]
        res["pss_kb_per_agent"] = sum(pss) / len(pss)
        res["anon_kb_per_agent"] = sum(anon) / len(anon)
        if b1 is not None:
            udp = (b1["udp"] - b0["udp"]) / (n * window)
            tcp = (b1["tcp"] - b0["tcp"]) / (n * window)
            res["bytes_per_agent_s"] = udp + tcp
            res["udp_bytes_per_agent_s"] = udp
            res["tcp_bytes_per_agent_s"] = tcp
        else:
            res["bytes_per_agent_s"] = None
            res["bytes_skipped"] = counters.reason
        log(f"{cl.name} N={n}: cpu {res['cpu_s_per_agent_s']:.5f} s/agent-s, "
            f"rss {res['rss_kb_per_agent']:.0f} KB/agent, bytes {res['bytes_per_agent_s']}")

        # ---- crashes: agents N-1, N-2, ... one after another ----
        # After the steady window, so the crashes change none of its figures.
        for k, mode in enumerate(modes):
            if k > 0:
                # A fresh cluster, so each mode's series starts from N agents.
                cl.stop()
                cl = make_cluster(k)
                join_s, _ = join_cluster(cl, timeout_s)
                if join_s is None:
                    res[mode_key(mode) + "_error"] = f"the fresh cluster had no full mesh after {timeout_s:.0f} s"
                    continue
                log(f"{cl.name} N={n}: fresh cluster for the {mode} series, full mesh after {join_s:.2f} s; "
                    f"settling {SETTLE_S:.0f} s")
                time.sleep(SETTLE_S)
            run_crashes(cl, res, crashes, timeout_s, mode, quiet)
    except start_failed:
        raise
    except Exception as e:  # a failure mid-run is reported, not fatal
        res["error"] = str(e)
        log(f"{cl.name} N={n}: ERROR {e}")
    finally:
        cl.stop()
        quiet.clear()
    return res


# ---------------------------------------------------------------- report

def figures(modes):
    """(key, label, the issue's target for the ratio shoal/serf) per row;
    lower is better for all. The crash rows of the modes side by side."""
    rows = [("join_convergence_s", "join convergence (s)", None)]
    for field, what, target in (("failed_all_s", "failed everywhere", "≤ 1.0"),
                                ("failed_first_s", "failed at the first agent", None)):
        for m in modes:
            rows.append((f"{mode_key(m)}_{field}", f"crash -> {what}: {CRASH_MODES[m]} (s)", target))
    return rows + FIGURES


FIGURES = [
    ("cpu_s_per_agent_s", "CPU per agent (CPU-s per agent-s, from ns: schedstat, all threads)", "≤ 0.5"),
    ("rss_kb_per_agent", "resident memory per agent (KB, VmRSS)", "≤ 0.25"),
    ("pss_kb_per_agent", "  proportional (KB, Pss: shared pages split)", None),
    ("anon_kb_per_agent", "  anonymous (KB, RssAnon: heap and stacks)", None),
    ("bytes_per_agent_s", "bytes per agent-second (UDP+TCP, IP bytes)", "≤ 1.0"),
    ("udp_bytes_per_agent_s", "  of which UDP", None),
    ("tcp_bytes_per_agent_s", "  of which TCP", None),
]


def fmt(x):
    if x is None:
        return "—"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) < 0.01:
            return f"{x:.6f}"
        return f"{x:.2f}"
    return str(x)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def crash_line(r, mode):
    """The per-crash values of one system in one crash mode, in crash order."""
    key = mode_key(mode)
    runs = r[key + "_runs"]
    parts = [f"{CRASH_MODES[mode]}: {len(runs)} crashes, in turn: {', '.join(x['victim'] for x in runs)}"]
    for field, what in (("failed_all_s", "failed everywhere"),
                        ("failed_first_s", "failed at the first agent")):
        each = ", ".join(fmt(x[field]) for x in runs)
        k = f"{key}_{field}"
        parts.append(f"{what} {each} s (median {fmt(r.get(k))}, min..max "
                     f"{fmt(r.get(k + '_min'))}..{fmt(r.get(k + '_max'))})")
    if mode == "host-down":
        parts.append("packets dropped at the silent port "
                     + ", ".join(str(x.get("packets_dropped")) for x in runs))
    if r.get(key + "_icmp_unreachable_in") is not None:
        parts.append(f"ICMP port unreachable read by the live agents {r[key + '_icmp_unreachable_in']}")
    return "; ".join(parts) + "."


def report(results, skipped, meta):
    lines = []
    lines.append(f"shoald vs serf on loopback, one run ({meta['date']}, {meta['machine']}).")
    lines.append(f"Command: `{meta['command']}`. serf: {meta.get('serf_version', '—')}; "
                 f"shoald: {meta.get('shoald_version', '—')}.")
    descr = {"kill": "**kill (process gone, host up: ICMP)**: `kill -9` of the agent; its host still "
                     "answers a packet to the dead port with ICMP port unreachable (UDP) or a RST (TCP)",
             "host-down": "**host down (silent)**: an nftables table drops every packet to and from the "
                          "victim's port at lo's input hook (no ICMP, no RST, no error for senders), "
                          "then `kill -9`"}
    lines.append("Crash rows: " + "; ".join(descr[m] for m in meta["crash_modes"])
                 + ". Each mode is a series in a cluster of its own, timed from the kill or the silence.")
    lines.append("")
    for s in skipped:
        lines.append(f"**SKIPPED: {s}**")
        lines.append("")
    for n in meta["sizes"]:
        rs = {r["system"]: r for r in results if r["nodes"] == n}
        serf, shoal = rs.get("serf"), rs.get("shoald")
        lines.append(f"### N = {n}")
        lines.append("")
        lines.append("| figure | serf | shoald | shoal/serf | target |")
        lines.append("| --- | --- | --- | --- | --- |")
        crashes = max((r.get("crashes", 0) for r in (serf, shoal) if r), default=0)
        for key, label, target in figures(meta["crash_modes"]):
            a = shoal.get(key) if shoal else None
            b = serf.get(key) if serf else None
            if a is None and b is None and key.endswith("bytes_per_agent_s") and key != "bytes_per_agent_s":
                continue
            if key.startswith("crash_"):
                label = label.replace(" (s)", f" (s, median of {crashes})")
            lines.append(f"| {label} | {fmt(b)} | {fmt(a)} | {fmt(ratio(a, b))} | {target or '—'} |")
        for sysname, r in (("serf", serf), ("shoald", shoal)):
            if r is None:
                continue
            for k in ["error"] + [mode_key(m) + "_error" for m in CRASH_MODES] + ["crashes_clamped",
                                                                                  "bytes_skipped"]:
                if r.get(k):
                    lines.append(f"\n{sysname}: {k.replace('_', ' ')}: {r[k]}")
            if r.get("cpu_threads_per_agent") is not None:
                exited = r.get("cpu_threads_exited_in_window", 0)
                lines.append(f"\n{sysname}: CPU summed over {r['cpu_threads_per_agent']:.1f} threads per agent "
                             f"({r['cpu_ns_in_window']} ns in the window); "
                             + (f"{exited} thread(s) exited during the window, so the CPU figure is a "
                                "lower bound." if exited else "no thread exited during the window."))
            for m in CRASH_MODES:
                if r.get(mode_key(m) + "_runs"):
                    lines.append(f"\n{sysname}: {crash_line(r, m)}")
            if r.get("join_poll_round_s") is not None:
                crash_round = max((r[mode_key(m) + "_poll_round_s"] for m in CRASH_MODES
                                   if r.get(mode_key(m) + "_poll_round_s") is not None), default=None)
                lines.append(f"\n{sysname}: one poll round took {r['join_poll_round_s']} s "
                             f"during the join, at most {crash_round or '—'} s after "
                             f"a crash (the largest over the crashes; the resolution of those "
                             f"times).")
        lines.append("")
    return "\n".join(lines) + "\n"


def version_of(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception as e:
        return f"unknown ({e})"


def machine():
    model = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="8,32")
    ap.add_argument("--serf", default=shutil.which("serf") or "serf")
    ap.add_argument("--shoald", default="build/daemon/shoald")
    ap.add_argument("--shoalctl", default=None, help="default: shoalctl beside --shoald")
    ap.add_argument("--out", default="vs_serf")
    ap.add_argument("--steady", type=float, default=30.0, help="steady window, seconds")
    ap.add_argument("--crashes", type=int, default=5,
                    help="agents killed one after another (N-1, N-2, ...); below N-1")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="limit for the join and for each crash, seconds")
    ap.add_argument("--port-base", type=int, default=17000)
    ap.add_argument("--only", choices=["serf", "shoald"], default=None,
                    help="run one system only (no ratios)")
    ap.add_argument("--crash-mode", choices=["kill", "host-down", "both"], default="both",
                    help="kill: kill -9, the host up (ICMP); host-down: the host goes silent "
                         "(nftables drops), then kill -9; both (default): a series of each, side by side")
    a = ap.parse_args()
    if a.crashes < 1:
        ap.error("--crashes must be at least 1")

    def on_signal(signum, _frame):
        # finally blocks stop the agents and delete the nftables table
        raise SystemExit(f"vs_serf: stopped by signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    if any(not 3 <= n < MODE_PORT_STEP for n in sizes):
        ap.error(f"--sizes: each N in 3..{MODE_PORT_STEP - 1}")
    modes = list(CRASH_MODES) if a.crash_mode == "both" else [a.crash_mode]
    shoalctl = a.shoalctl or os.path.join(os.path.dirname(a.shoald) or ".", "shoalctl")
    os.makedirs(a.out, exist_ok=True)

    skipped = []
    run_serf = a.only in (None, "serf")
    run_shoal = a.only in (None, "shoald")
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
            "command": " ".join(["bench/vs_serf.sh"] + sys.argv[1:]), "sizes": sizes,
            "steady_s": a.steady, "crashes": a.crashes, "crash_modes": modes}
    if run_serf:
        if not (shutil.which(a.serf) or os.access(a.serf, os.X_OK)):
            skipped.append(f"serf half: no serf binary at '{a.serf}' (Debian package serf)")
            run_serf = False
        else:
            meta["serf_version"] = version_of([a.serf, "version"])
    if run_shoal:
        missing = [p for p in (a.shoald, shoalctl) if not os.access(p, os.X_OK)]
        if missing:
            skipped.append(f"shoald half: not found: {', '.join(missing)} (build shoald and "
                           f"shoalctl, or pass --shoald PATH)")
            run_shoal = False
        else:
            meta["shoald_version"] = version_of([a.shoald, "--version"])
    for s in skipped:
        log("SKIPPED " + s)

    counters = byte_counters()
    if not counters.ok:
        log("bytes skipped: " + counters.reason)
        skipped.append("bytes per agent-second: " + counters.reason)
    quiet = silencer(wanted="host-down" in modes)
    if "host-down" in modes and not quiet.ok:
        skipped.append("crash mode host-down: " + quiet.reason)
        log("SKIPPED " + skipped[-1])
        modes.remove("host-down")
        meta["crash_modes"] = modes
    if not modes:
        counters.close()
        raise SystemExit("vs_serf: no crash mode left to run (see the SKIPPED lines)")
    results = []
    work = tempfile.mkdtemp(prefix="vs_serf.")
    try:
        for n in sizes:
            serf_base = a.port_base
            shoal_base = a.port_base + 1000
            if counters.ok:
                counters.add(f"serf{n}", serf_base, serf_base + n - 1)
                counters.add(f"shoald{n}", shoal_base, shoal_base + n - 1)
            for sysname in ("serf", "shoald"):
                if (sysname == "serf" and not run_serf) or (sysname == "shoald" and not run_shoal):
                    continue
                def make_cluster(k, sysname=sysname, n=n):
                    """The cluster of crash mode k: the first on the measured
                    ports, each further one MODE_PORT_STEP ports on."""
                    wd = os.path.join(work, f"{sysname}{n}-{modes[k]}")
                    os.makedirs(wd)
                    if sysname == "serf":
                        return serf_cluster(n, serf_base + k * MODE_PORT_STEP, wd, a.serf)
                    return shoal_cluster(n, shoal_base + k * MODE_PORT_STEP, wd, a.shoald, shoalctl)
                log(f"{sysname} N={n}: starting {n} agents")
                try:
                    results.append(run_system(make_cluster, n, counters, a.steady, a.crashes, a.timeout,
                                              modes, quiet))
                except start_failed as e:
                    skipped.append(f"{sysname} half: its first agent did not start: {e}")
                    log("SKIPPED " + skipped[-1])
                    if sysname == "serf":
                        run_serf = False
                    else:
                        run_shoal = False
    finally:
        counters.close()
        quiet.close()
        shutil.rmtree(work, ignore_errors=True)

    doc = {"meta": meta, "skipped": skipped, "results": results}
    for n in sizes:
        rs = {r["system"]: r for r in results if r["nodes"] == n}
        if "serf" in rs and "shoald" in rs:
            doc.setdefault("ratios_shoal_over_serf", {})[str(n)] = {
                k: ratio(rs["shoald"].get(k), rs["serf"].get(k)) for k, _, _ in figures(modes)}
    with open(os.path.join(a.out, "vs_serf.json"), "w") as f:
        json.dump(doc, f, indent=1)
    md = report(results, skipped, meta)
    with open(os.path.join(a.out, "vs_serf.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {a.out}/vs_serf.json and {a.out}/vs_serf.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
