#!/usr/bin/env python3
"""N shoald daemons on loopback: user events, a query with a tag filter and
reachability, end to end through shoalctl, the Python client and a
Serf-style event handler. The "Done when" benchmark of the issue
"Serf-grade integration".

    /usr/bin/python3 bench/daemon_cluster.py [--build DIR] [--nodes 32]
        [--events 10] [--queries 10] [--port-base 29000] [--json] [--keep]

(Debian's /usr/bin/python3: the Python client needs python3-msgpack; the
client itself is imported from clients/python, no PYTHONPATH needed.)

What it does, in order:
  start    N daemons on 127.0.0.1 (`--preset local`), each with its own
           socket, data directory and log in a temporary directory
           (shoald and shoalctl are copied there first, so a rebuild of
           --build during the run changes nothing); n2..nN join n1. Every
           4th daemon (n4, n8, ...) has the tag role=db, the others role=web.
           Each runs `--serf-event-handler user:deploy=SCRIPT`, one shell
           script written as a Serf user writes one: it reads $SERF_EVENT,
           $SERF_USER_EVENT, $SERF_SELF_NAME and the payload on stdin, and
           appends "NAME UNIX_NS ltime=L version=PAYLOAD" to a file of its
           daemon. Then it waits until every daemon's `info` says N alive.
  events   a `user:deploy` stream (Python client) on every daemon; then
           --events times `shoalctl event deploy vNN` on n1, each once the
           previous one has reached every stream and every handler, plus
           --event-gap seconds. Per daemon and event: deliveries to the
           stream and handler lines (each must be exactly 1, counted after
           a settle time at the end). Spread: from n1's own delivery to the
           last daemon's (`time_ms` of the stream events, the daemons'
           clock: one host), also in gossip rounds of the local preset
           (gossip_interval, read from config::local() in
           lib/core/config.cpp) against 3·log2(N) rounds.
  queries  a `query:load` responder (Python client: a stream that
           `respond`s with its daemon's name) on EVERY daemon, role=web
           ones included: a web member's responder answers only if the
           query reaches it, so "no web member answered" tests the filter
           instead of holding trivially; each responder also counts the
           queries it saw. Then --queries times `shoalctl query load qNN
           --tag role=db --format json --query-timeout 3` on n1: acks and
           responses must come from exactly the role=db members, each
           response's payload its sender's name, and no web responder may
           see the query.
  reach    SIGSTOP of n17 (of n(N/2+1) when N < 17), then at once
           `shoalctl reachability --format json --query-timeout 2` on n1:
           n17 must be listed (alive or suspect: not yet failed) as not
           answering and every other member as answering. Then how long
           until n1 lists n17 failed (no ICMP: its socket stays open), SIGCONT
           and how long until every daemon sees N alive again (reported,
           not checked).
  cost     CPU seconds of the daemons over the whole run (utime+stime of
           /proc/PID/stat, 10 ms ticks; the handler runs they reaped are
           cutime+cstime, shown apart) and VmRSS at the end; each daemon's
           `stats` counters go to the JSON.

Output: a Markdown section on stdout (with --json, then one line of JSON with
every raw number, the last line of stdout); progress on stderr. Exit status 0
when every acceptance check passed (each daemon got each event exactly once on
its stream and in its handler; every query's acks and responses came from
exactly the matching members; reachability named the stopped member and only
it), 1 when one failed (the figures are printed all the same), 2 when the
cluster could not be set up. Every daemon is SIGCONTed and killed on the way
out, Ctrl-C included. The work directory is removed unless --keep or a check
failed (then its logs stay and its path is printed). About 50 s at N=32 on
the project's 2-core VM (10 events, 10 queries of 3 s).
"""

import argparse
import datetime
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

TITLE = "{n} shoald daemons on loopback: events, queries, reachability"
EVENT = "deploy"
QUERY = "load"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[daemon_cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class SetupFailed(Exception):
    pass


def quote(argv):
    return " ".join(shlex.quote(a) for a in argv)


def capture(cmd, cwd=ROOT, strip=True):
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            return None
        return r.stdout.strip() if strip else r.stdout
    except (OSError, subprocess.TimeoutExpired):
        return None


def load1():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def cpu_jiffies():
    """(busy, total) jiffies of the whole machine, /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def machine_facts():
    model, mem = "?", None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu": model, "nproc": capture(["nproc"]) or str(os.cpu_count()), "mem_total_gib": mem}


def local_gossip_interval_ms():
    """gossip_interval of config::local(), from its definition (the header,
    include/shoal/config.hpp, declares local(); lib/core/config.cpp sets it)."""
    path = os.path.join(ROOT, "lib", "core", "config.cpp")
    with open(path) as f:
        text = f.read()
    m = re.search(r"config\s+config::local\(\)\s*\{(.*?)\n\}", text, re.S)
    if not m:
        raise SetupFailed(f"config::local() not found in {path}")
    g = re.search(r"gossip_interval\s*=\s*std::chrono::(milliseconds|seconds)\((\d+)\)", m.group(1))
    if not g:
        raise SetupFailed(f"config::local() in {path} sets no gossip_interval (lan's would apply)")
    return int(g.group(2)) * (1000 if g.group(1) == "seconds" else 1), "lib/core/config.cpp, config::local()"


def proc_stat(pid):
    """(utime+stime, cutime+cstime) in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return ((int(rest[11]) + int(rest[12])) / CLK_TCK, (int(rest[13]) + int(rest[14])) / CLK_TCK)


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def port_free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        if kind == socket.SOCK_STREAM:  # as a listener does: TIME_WAIT of an earlier run is no conflict
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def spread(vals):
    v = [x for x in vals if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


HANDLER = r"""#!/bin/sh
# deploy: a Serf event handler, as one writes it for
#   serf agent -event-handler user:deploy=/path/to/deploy
# Serf (and shoald --serf-event-handler) passes the event in the environment
# and the user event's payload on stdin (with a newline added).
if [ "$SERF_EVENT" != "user" ] || [ "$SERF_USER_EVENT" != "deploy" ]; then
    exit 0
fi
read -r version || true
echo "$SERF_SELF_NAME $(date +%s%N) ltime=$SERF_USER_LTIME version=$version" >> "@DIR@/deploy-$SERF_SELF_NAME.log"
"""


# ---------------------------------------------------------------- the cluster

class Stream(threading.Thread):
    """One stream of one daemon, read by the Python client on a thread:
    every event kept with the time it was read; a `query` event is answered
    with the daemon's name when `respond` is set. Ends when the daemon's
    connection closes (at the end of the run)."""

    def __init__(self, client_cls, sock, name, types, respond=False):
        super().__init__(daemon=True)
        self.client_cls, self.sock, self.name, self.types = client_cls, sock, name, types
        self.respond = respond
        self.events = []
        self.respond_errors = []
        self.error = None
        self.lock = threading.Lock()

    def run(self):
        c = self.client_cls(self.sock, timeout=10.0, retries=2)
        try:
            for ev in c.stream(self.types):
                with self.lock:
                    self.events.append((time.time(), ev))
                if self.respond and ev.get("type") == "query":
                    try:
                        c.respond(ev["query"], self.name)
                    except Exception as e:  # noqa: BLE001 - recorded, shown
                        self.respond_errors.append(f"{type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - ConnectionLost at the end is normal
            self.error = f"{type(e).__name__}: {e}"
        finally:
            c.close()

    def snapshot(self):
        with self.lock:
            return list(self.events)


class Cluster:
    def __init__(self, n, work, shoald, shoalctl, port_base, client_cls):
        self.n, self.work = n, work
        self.shoald, self.shoalctl = shoald, shoalctl
        self.port_base = port_base
        self.Client = client_cls
        self.procs = {}
        self.logs = []
        self.clients = {}
        self.stopped = set()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        self.handler = os.path.join(work, "deploy")
        with open(self.handler, "w") as f:
            f.write(HANDLER.replace("@DIR@", work))
        os.chmod(self.handler, 0o755)

    names = property(lambda self: [f"n{i}" for i in range(1, self.n + 1)])

    @staticmethod
    def role(name):
        return "db" if int(name[1:]) % 4 == 0 else "web"

    def port(self, name):
        return self.port_base + int(name[1:])

    def sock(self, name):
        return os.path.join(self.work, f"{name}.sock")

    def handler_file(self, name):
        return os.path.join(self.work, f"deploy-{name}.log")

    def command(self, name):
        data = os.path.join(self.work, f"{name}.data")
        os.makedirs(data, exist_ok=True)
        cmd = [self.shoald, "--name", name, "--bind", f"127.0.0.1:{self.port(name)}",
               "--socket", self.sock(name), "--data-dir", data, "--preset", "local",
               "--tag", f"role={self.role(name)}",
               "--serf-event-handler", f"user:{EVENT}={self.handler}"]
        if name != "n1":
            cmd += ["--join", f"127.0.0.1:{self.port('n1')}"]
        return cmd

    def start(self, name):
        logf = open(os.path.join(self.work, f"{name}.log"), "wb")
        self.logs.append(logf)
        # A session of its own: Ctrl-C in the terminal reaches this script
        # only, which then stops the daemons in order (and their handlers
        # with their process group).
        self.procs[name] = subprocess.Popen(self.command(name), stdout=logf, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env,
                                            start_new_session=True, cwd=self.work)

    def log_tail(self, name, lines=5):
        try:
            with open(os.path.join(self.work, f"{name}.log"), errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-lines:])
        except OSError:
            return ""

    def client(self, name):
        if name not in self.clients:
            self.clients[name] = self.Client(self.sock(name), timeout=5.0, retries=0)
        return self.clients[name]

    def call(self, name, fn):
        """fn(client) or None when the daemon does not answer now."""
        try:
            return fn(self.client(name))
        except Exception:  # noqa: BLE001 - not up yet, or gone: the caller polls
            c = self.clients.pop(name, None)
            if c is not None:
                c.close()
            return None

    def check_alive(self, names=None):
        for name in names or self.procs:
            p = self.procs[name]
            if p.poll() is not None:
                raise SetupFailed(f"{name} exited with status {p.returncode}: {self.log_tail(name)}")

    def wait_all_alive(self, timeout, names=None):
        """Seconds until every daemon in `names` reports N alive (info), or None."""
        names = names or self.names
        t0 = time.monotonic()
        left = set(names)
        while left and time.monotonic() - t0 < timeout:
            self.check_alive(names)
            for name in sorted(left):
                info = self.call(name, lambda c: c.info())
                if info and info.get("members", {}).get("alive") == self.n:
                    left.discard(name)
            if left:
                time.sleep(0.1)
        return None if left else time.monotonic() - t0

    def ctl(self, name, args, timeout=30):
        argv = [self.shoalctl, "--socket", self.sock(name)] + args
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=self.env)

    def stop(self):
        for name, p in self.procs.items():
            if p.poll() is None:
                for sig in (signal.SIGCONT, signal.SIGTERM):
                    try:
                        os.kill(p.pid, sig)
                    except OSError:
                        pass
        for c in self.clients.values():
            c.close()
        self.clients = {}
        deadline = time.monotonic() + 8
        for name, p in self.procs.items():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the daemon's own group: it, and any handler left
            except OSError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {p.pid}) did not die after SIGKILL")
        for f in self.logs:
            f.close()
        self.logs = []


# ---------------------------------------------------------------- phases

def streams_open(cl, want, timeout):
    """Polls each daemon's `stats` until its gauge daemon.streams reaches
    want[name] (the streams this script opened on it)."""
    t0 = time.monotonic()
    left = dict(want)
    while left and time.monotonic() - t0 < timeout:
        cl.check_alive()
        for name in sorted(left):
            st = cl.call(name, lambda c: c.stats())
            if st and st.get("daemon", {}).get("streams", 0) >= left[name]:
                del left[name]
        if left:
            time.sleep(0.05)
    if left:
        raise SetupFailed(f"streams not open after {timeout:.0f} s on {', '.join(sorted(left))}")


def read_handler_lines(cl):
    """{name: [(ns, version)]} from the handlers' files."""
    out = {}
    for name in cl.names:
        rows = []
        try:
            with open(cl.handler_file(name), errors="replace") as f:
                for line in f:
                    m = re.match(r"^(\S+) (\d+) ltime=(\d*) version=(.*)$", line.rstrip("\n"))
                    if m and m.group(1) == name:
                        rows.append((int(m.group(2)), m.group(4)))
                    else:
                        rows.append((None, "unparsed: " + line.rstrip("\n")[:80]))
        except FileNotFoundError:
            pass
        out[name] = rows
    return out


def user_events(stream):
    return [(t, ev) for t, ev in stream.snapshot() if ev.get("type") == "user"]


def payload_text(ev):
    p = ev.get("payload", b"")
    return p.decode(errors="replace") if isinstance(p, (bytes, bytearray)) else str(p)


def run_events(cl, streams, count, gap, timeout, settle, gossip_ms):
    n1 = "n1"
    sent = []
    for k in range(1, count + 1):
        version = f"v{k:02d}"
        t_send = time.time()
        r = cl.ctl(n1, ["event", EVENT, version, "--format", "json"])
        t_ret = time.time()
        rec = {"version": version, "t_send_ms": t_send * 1000, "t_reply_ms": t_ret * 1000,
               "shoalctl_rc": r.returncode, "shoalctl_stderr": r.stderr.strip()[:300]}
        try:
            rec["ltime"] = json.loads(r.stdout)["ltime"]
        except (ValueError, KeyError, TypeError):
            rec["ltime"] = None
        # Poll until every stream and every handler has it, bounded.
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            got = sum(1 for s in streams.values()
                      if any(payload_text(ev) == version for _, ev in user_events(s)))
            lines = read_handler_lines(cl)
            ran = sum(1 for name in cl.names if any(v == version for _, v in lines[name]))
            if got == cl.n and ran == cl.n:
                break
            time.sleep(0.02)
        rec["complete_after_s"] = round(time.monotonic() - t0, 3) if got == cl.n and ran == cl.n else None
        if rec["complete_after_s"] is None:
            log(f"event {version}: after {timeout:.0f} s, {got} of {cl.n} streams and {ran} of "
                f"{cl.n} handlers have it")
        sent.append(rec)
        time.sleep(gap)
    time.sleep(settle)  # late copies would show as duplicates
    lines = read_handler_lines(cl)
    per_event = []
    for rec in sent:
        v = rec["version"]
        stream_count, stream_ms, handler_count, handler_ms = {}, {}, {}, {}
        for name in cl.names:
            evs = [ev for _, ev in user_events(streams[name]) if payload_text(ev) == v]
            stream_count[name] = len(evs)
            stream_ms[name] = min((ev.get("time_ms") for ev in evs), default=None)
            hs = [ns for ns, ver in lines[name] if ver == v and ns is not None]
            handler_count[name] = len(hs)
            handler_ms[name] = min(hs) / 1e6 if hs else None
        got = [t for t in stream_ms.values() if t is not None]
        hgot = [t for t in handler_ms.values() if t is not None]
        origin = stream_ms.get(n1)
        last = max(got) if got else None
        e = dict(rec)
        e.update({
            "stream_count": stream_count, "stream_time_ms": stream_ms,
            "handler_count": handler_count, "handler_time_ms": handler_ms,
            "origin_time_ms": origin,
            "spread_ms": None if origin is None or last is None else last - origin,
            "send_to_last_stream_ms": None if last is None else last - rec["t_send_ms"],
            "send_to_last_handler_ms": None if not hgot else max(hgot) - rec["t_send_ms"],
            "complete": len(got) == cl.n and len(hgot) == cl.n,
        })
        e["spread_rounds"] = None if e["spread_ms"] is None else e["spread_ms"] / gossip_ms
        per_event.append(e)
    # Anything on the user streams or in the handler files that is not one of ours.
    versions = {r["version"] for r in sent}
    stray = {}
    for name in cl.names:
        s = [payload_text(ev) for _, ev in user_events(streams[name])
             if payload_text(ev) not in versions or ev.get("name") != EVENT]
        h = [v for _, v in lines[name] if v not in versions]
        if s or h:
            stray[name] = {"stream": s, "handler": h}
    return per_event, stray


def run_queries(cl, responders, count, qtimeout):
    db = sorted(n for n in cl.names if cl.role(n) == "db")
    web = sorted(n for n in cl.names if cl.role(n) == "web")
    runs = []
    for k in range(1, count + 1):
        payload = f"q{k:02d}"
        argv = [cl.shoalctl, "--socket", cl.sock("n1"), "query", QUERY, payload, "--tag", "role=db",
                "--format", "json", "--query-timeout", f"{qtimeout:g}"]
        t0 = time.time()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL, env=cl.env)
        lines = []
        # shoalctl flushes each line as it arrives: timestamp them as read.
        timer = threading.Timer(qtimeout + 30, p.kill)
        timer.start()
        try:
            for line in p.stdout:
                lines.append((time.time(), line.strip()))
            p.wait()
            err = p.stderr.read()
        finally:
            timer.cancel()
        acks, responses, bad_payload, done, unparsed = [], {}, {}, None, []
        last_resp = None
        for t, line in lines:
            try:
                o = json.loads(line)
            except ValueError:
                unparsed.append(line)
                continue
            if o.get("type") == "ack":
                acks.append(o.get("from"))
            elif o.get("type") == "response":
                responses.setdefault(o.get("from"), []).append(o.get("payload"))
                last_resp = t
                if o.get("payload") != o.get("from"):
                    bad_payload[o.get("from")] = o.get("payload")
            elif o.get("type") == "done":
                done = o
        # The responders' side: which daemons' query:load streams saw it.
        seen = {}
        deadline = time.monotonic() + 1.0  # a stream event lags the reply at most a little
        while True:
            seen = {name: sum(1 for _, ev in responders[name].snapshot()
                              if ev.get("type") == "query" and payload_text(ev) == payload)
                    for name in cl.names}
            if all(seen[n] >= 1 for n in db) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        ack_set, resp_set = set(acks), set(responses)
        r = {
            "payload": payload, "command": quote(["shoalctl"] + argv[1:]), "rc": p.returncode,
            "stderr": err.strip()[:300], "acks": acks, "responses": {k: v for k, v in responses.items()},
            "done": done, "unparsed": unparsed[:5],
            "last_response_ms": None if last_resp is None else (last_resp - t0) * 1000,
            "seen_by_stream": {n: c for n, c in seen.items() if c},
            "ack_exact": ack_set == set(db) and len(acks) == len(db),
            "response_exact": resp_set == set(db) and all(len(v) == 1 for v in responses.values()),
            "payloads_ok": not bad_payload,
            "web_acked": sorted(ack_set & set(web)), "web_answered": sorted(resp_set & set(web)),
            "web_saw": sorted(n for n in web if seen.get(n)),
            "db_missing_ack": sorted(set(db) - ack_set), "db_missing_response": sorted(set(db) - resp_set),
            "db_seen_not_once": sorted(n for n in db if seen.get(n, 0) != 1),
        }
        r["ok"] = (r["rc"] == 0 and r["ack_exact"] and r["response_exact"] and r["payloads_ok"]
                   and not r["web_saw"] and not r["db_seen_not_once"]
                   and done is not None and done.get("acks") == len(db) and done.get("responses") == len(db))
        runs.append(r)
        log(f"query {payload}: {len(acks)} acks, {len(responses)} responses "
            f"({'exact' if r['ok'] else 'NOT exact'})")
    return runs, db, web


def run_reachability(cl, victim, qtimeout, fail_timeout, back_timeout):
    out = {"victim": victim}
    p = cl.procs[victim]
    os.kill(p.pid, signal.SIGSTOP)
    cl.stopped.add(victim)
    t_stop = time.monotonic()
    r = cl.ctl("n1", ["reachability", "--format", "json", "--query-timeout", f"{qtimeout:g}"],
               timeout=qtimeout + 30)
    out["after_stop_s"] = round(time.monotonic() - t_stop, 3)
    out["rc"], out["stderr"] = r.returncode, r.stderr.strip()[:300]
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        doc = None
        out["stdout"] = r.stdout[:500]
    out["result"] = doc
    rows = {m["name"]: m for m in (doc or {}).get("members", [])}
    others = [n for n in cl.names if n != victim]
    out["victim_listed"] = victim in rows
    out["victim_status"] = rows.get(victim, {}).get("status")
    out["victim_not_answering"] = victim in rows and not rows[victim].get("answered")
    out["others_answered"] = sorted(n for n in others if rows.get(n, {}).get("answered"))
    out["others_missing"] = sorted(n for n in others if not rows.get(n, {}).get("answered"))
    out["unexpected"] = sorted(set(rows) - set(cl.names))
    out["ok"] = (doc is not None and out["victim_not_answering"] and not out["others_missing"]
                 and not out["unexpected"] and doc.get("not_answering") == 1
                 and doc.get("answered") == len(others))
    # Reported, not checked: when n1 declares it failed, and the way back.
    failed_after = None
    while time.monotonic() - t_stop < fail_timeout:
        ms = cl.call("n1", lambda c: c.members())
        st = {m["name"]: m["status"] for m in ms} if ms else {}
        if st.get(victim) == "failed":
            failed_after = time.monotonic() - t_stop
            break
        time.sleep(0.1)
    out["failed_at_n1_after_stop_s"] = None if failed_after is None else round(failed_after, 2)
    os.kill(p.pid, signal.SIGCONT)
    cl.stopped.discard(victim)
    back = cl.wait_all_alive(back_timeout)
    out["all_alive_after_cont_s"] = None if back is None else round(back, 2)
    return out


def daemon_costs(cl, wall_s):
    per = {}
    for name, p in cl.procs.items():
        try:
            own, children = proc_stat(p.pid)
            per[name] = {"pid": p.pid, "cpu_s": own, "children_cpu_s": children, "rss_kb": proc_rss_kb(p.pid)}
        except (OSError, IndexError, ValueError) as e:
            per[name] = {"pid": p.pid, "error": str(e)}
    ok = [v for v in per.values() if "cpu_s" in v]
    total = sum(v["cpu_s"] for v in ok)
    rss = [v["rss_kb"] for v in ok if v.get("rss_kb")]
    return {
        "per_daemon": per, "cpu_s_total": round(total, 2),
        "children_cpu_s_total": round(sum(v["children_cpu_s"] for v in ok), 2),
        "wall_s": round(wall_s, 1),
        "cpu_s_per_daemon_s": total / (len(ok) * wall_s) if ok and wall_s > 0 else None,
        "rss_kb_mean": statistics.mean(rss) if rss else None, "rss_kb_max": max(rss) if rss else None,
        "rss_kb_total": sum(rss) if rss else None,
    }


def daemon_stats(cl):
    out = {}
    for name in cl.names:
        st = cl.call(name, lambda c: c.stats())
        if st is None:
            out[name] = None
            continue
        out[name] = st
    return out


def sum_counter(stats, group, key):
    vals = [s[group].get(key) for s in stats.values() if s and key in s.get(group, {})]
    return sum(vals) if vals else None


# ---------------------------------------------------------------- report

def f0(x):
    return "—" if x is None else f"{x:.0f}"


def f1(x):
    return "—" if x is None else f"{x:.1f}"


def f2(x):
    return "—" if x is None else f"{x:.2f}"


def fill(text, width=88):
    """One paragraph, wrapped as bench/results.py wraps its prose."""
    return textwrap.fill(" ".join(text.split()), width=width, break_on_hyphens=False,
                         break_long_words=False) + "\n"


def mark(ok):
    return "pass" if ok else "**FAIL**"


def md_table(headers, rows):
    def cell(c):
        return str(c).replace("|", "\\|").replace("\n", " ")
    cells = [[cell(c) for c in r] for r in rows]
    heads = [cell(h) for h in headers]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(heads)]

    def line(cs):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cs, widths)) + " |"
    return "\n".join([line(heads), "| " + " | ".join("-" * w for w in widths) + " |"]
                     + [line(r) for r in cells]) + "\n"


def stray(ev, where):
    """Daemons whose `where` ("stream" or "handler") got something that was not one of our events."""
    return [nm for nm, s in ev.get("stray", {}).items() if s.get(where)]


def checks_of(doc):
    """[(name, ok, detail)]: the acceptance checks, computed from the figures."""
    out = []
    ev = doc.get("events")
    if ev is not None:
        out.append(("every daemon got every event exactly once on its user:deploy stream",
                    ev["stream_exact_pairs"] == ev["expected_pairs"] and not stray(ev, "stream"),
                    f"{ev['stream_exact_pairs']} of {ev['expected_pairs']} (daemon, event) pairs exactly once"))
        out.append(("every daemon's Serf handler ran exactly once per event",
                    ev["handler_exact_pairs"] == ev["expected_pairs"] and not stray(ev, "handler"),
                    f"{ev['handler_exact_pairs']} of {ev['expected_pairs']} pairs exactly once"))
    q = doc.get("queries")
    if q is not None:
        out.append(("every query's acks and responses came from exactly the role=db members",
                    q["exact_runs"] == len(q["runs"]) and len(q["runs"]) > 0,
                    f"{q['exact_runs']} of {len(q['runs'])} queries exact"))
    r = doc.get("reachability")
    if r is not None:
        out.append((f"reachability named {r['victim']} (stopped) as the one member not answering",
                    bool(r.get("ok")), f"{r['victim']} listed as {r.get('victim_status') or '(not listed)'}, not answering: "
                    f"{r.get('victim_not_answering')}; others missing: {len(r.get('others_missing', []))}"))
    return out


def render_markdown(doc, standalone=True):
    n = doc["meta"]["nodes"]
    m = doc["meta"]
    out = []
    if standalone:
        out.append(f"## {TITLE.format(n=n)}\n\n")
        mf = m["machine"]
        out.append(md_table(["", ""], [
            ["command", f"`{m['command']}`"],
            ["commit", m["commit"] + (f" (tree differs from it: {', '.join(m['dirty'][:6])}"
                                      + (", ..." if len(m["dirty"]) > 6 else "") + ")" if m["dirty"] else "")],
            ["binaries", f"`{m['shoald']}` (built {m['shoald_mtime']}; {m['shoald_version']}), copied "
                         "before the run"],
            ["machine", f"{mf['cpu']} (/proc/cpuinfo), {mf['nproc']} cores (nproc), "
                        f"{mf['mem_total_gib']} GiB (MemTotal)"],
            ["date", f"{m['started_utc']} to {m['ended_utc']} (wall {m['wall_s']:.0f} s)"],
        ]))
        out.append("\n")
    g = m.get("gossip_interval_ms") or "?"
    bound = m["bound_rounds"]
    load = m.get("load")
    other = m.get("other_cpu_share")
    out.append(fill(f"""Conditions, and which of them favour the figures: all {n} daemons run on one host on
127.0.0.1 (**loopback: no network latency, no loss**; a user event, a query, its acks and
responses are single UDP datagrams that loopback never drops, so "exactly once" and
"exactly the matching set" are tested here without the loss that would remove some acks
and responses on a real network, PROTOCOL.md `query`); no keyring (no encryption work);
preset `local` (gossip every {g} ms, `{m.get('gossip_interval_source', '?')}`: faster than `lan`'s
200 ms, so spreads in milliseconds are shorter than `lan` would give; the rounds figure
divides by {g} ms); one event or query at a time (each event is sent once the previous
one reached every stream and handler, plus {m['event_gap_s']:g} s), so they never share the
broadcast queue; the handler is a three-line shell script. Against the figures: the {n} daemons, this script, its {2 * n} stream
threads, the handler runs (one `sh` per daemon per event) and the `shoalctl` processes
share {m['machine']['nproc']} cores. Machine load: 1-minute load average
{f2(load.get('start'))} at the start and {f2(load.get('end'))} at the end; processes
other than this script and its daemons used {f1(None if other is None else other * 100)}%
of the machine's CPU time during the run ({'quiet' if other is not None and other < 0.05 else 'unknown' if other is None else 'NOT a quiet machine'}).
Times are the daemons' `time_ms` and the handlers' `date +%s%N`, one clock (one host).
"""))
    out.append("\n")
    rows = []
    rows.append([f"join: n2..n{n} started with `--join` n1 until every daemon's `info` says {n} alive (s)",
                 f2(doc.get("join_s")), "—"])
    ev = doc.get("events")
    if ev is not None:
        rows.append([f"user events: `shoalctl event {EVENT} vNN` on n1, each after the previous one "
                     f"reached everyone + {m['event_gap_s']:g} s", f"{ev['count']}", "—"])
        rows.append(["deliveries to the `user:deploy` streams (Python client), total / expected",
                     f"{ev['stream_total']} / {ev['expected_pairs']} "
                     f"({100 * ev['stream_total'] / max(1, ev['expected_pairs']):.1f}%); (daemon, event) "
                     f"pairs delivered exactly once: {ev['stream_exact_pairs']}",
                     mark(ev["stream_exact_pairs"] == ev["expected_pairs"] and not stray(ev, "stream"))])
        rows.append(["runs of the Serf handler (`--serf-event-handler user:deploy=...`, lines in its "
                     "files), total / expected",
                     f"{ev['handler_total']} / {ev['expected_pairs']} "
                     f"({100 * ev['handler_total'] / max(1, ev['expected_pairs']):.1f}%); pairs exactly "
                     f"once: {ev['handler_exact_pairs']}",
                     mark(ev["handler_exact_pairs"] == ev["expected_pairs"] and not stray(ev, "handler"))])
        sp, rd = ev["spread_ms"], ev["spread_rounds"]
        rows.append(["spread: n1's own delivery → the last daemon's delivery (ms), median / max",
                     f"{f0(sp and sp['median'])} / {f0(sp and sp['max'])}", "—"])
        within = rd is not None and rd["max"] <= bound
        rows.append([f"the same in gossip rounds ({g} ms), median / max, against 3·log2({n}) = {bound:.3g} rounds",
                     f"{f1(rd and rd['median'])} / {f1(rd and rd['max'])}",
                     f"max ≤ {bound:.3g}: {'yes' if within else '**no**'} (a comparison, not a check)"])
        s2, h2 = ev["send_to_last_stream_ms"], ev["send_to_last_handler_ms"]
        rows.append(["`shoalctl event` launched → last stream delivery (ms), median / max",
                     f"{f0(s2 and s2['median'])} / {f0(s2 and s2['max'])}", "—"])
        rows.append(["`shoalctl event` launched → last handler's line (ms), median / max",
                     f"{f0(h2 and h2['median'])} / {f0(h2 and h2['max'])}", "—"])
    q = doc.get("queries")
    if q is not None:
        k = len(q["runs"])
        nd = len(q["db"])
        rows.append([f"`shoalctl query {QUERY} qNN --tag role=db --query-timeout {m['query_timeout_s']:g}` "
                     f"on n1 ({nd} role=db members of {n})", f"{k} queries", "—"])
        rows.append(["acks, total / expected; queries whose ack set was exactly the role=db members",
                     f"{q['acks_total']} / {nd * k}; {q['ack_exact_runs']} of {k}",
                     mark(q["ack_exact_runs"] == k)])
        rows.append(["responses (each the responder's name), total / expected; queries whose response "
                     "set was exactly the role=db members",
                     f"{q['responses_total']} / {nd * k}; {q['response_exact_runs']} of {k}",
                     mark(q["response_exact_runs"] == k and q["bad_payload_runs"] == 0)])
        rows.append([f"role=web members ({len(q['web'])}, each with a responder too) that acked / answered / "
                     "saw the query on their stream, over all queries",
                     f"{len(q['web_acked'])} / {len(q['web_answered'])} / {len(q['web_saw'])}",
                     mark(not q["web_acked"] and not q["web_answered"] and not q["web_saw"])])
        lr = q["last_response_ms"]
        rows.append([f"query launched → the last of its {nd} responses read (ms), median / max",
                     f"{f0(lr and lr['median'])} / {f0(lr and lr['max'])}", "—"])
    r = doc.get("reachability")
    if r is not None:
        v = r["victim"]
        rows.append([f"`shoalctl reachability --query-timeout {m['reach_timeout_s']:g}` on n1 right after "
                     f"SIGSTOP of {v}: {v} listed as not answering (its status in n1's view then)",
                     f"{'yes' if r.get('victim_not_answering') else 'no'} ({r.get('victim_status') or 'not listed'})",
                     mark(r.get("victim_not_answering"))])
        no = len(r.get("others_missing", []))
        rows.append([f"the other {n - 1} members listed as answering",
                     f"{len(r.get('others_answered', []))} of {n - 1}"
                     + (f" (missing: {', '.join(r['others_missing'][:8])})" if no else ""),
                     mark(no == 0 and not r.get("unexpected"))])
        rows.append([f"SIGSTOP → n1 lists {v} failed (s; its socket stays open: no ICMP)",
                     f2(r.get("failed_at_n1_after_stop_s")), "—"])
        rows.append([f"SIGCONT → every daemon sees {n} alive again (s)", f2(r.get("all_alive_after_cont_s")), "—"])
    c = doc.get("cost")
    if c is not None:
        rows.append([f"CPU of the {n} daemons over the run (utime+stime, /proc/PID/stat)",
                     f"{c['cpu_s_total']:.2f} s in {c['wall_s']:.0f} s "
                     f"({f2(None if c['cpu_s_per_daemon_s'] is None else c['cpu_s_per_daemon_s'] * 100)}% "
                     f"of a core per daemon); their reaped handler runs: {c['children_cpu_s_total']:.2f} s", "—"])
        rows.append(["resident memory per daemon at the end (VmRSS, KB), mean / max",
                     f"{f0(c['rss_kb_mean'])} / {f0(c['rss_kb_max'])}", "—"])
    out.append(md_table(["figure", "value", "check"], rows))
    st = doc.get("counters")
    if st:
        out.append("\n" + fill(f"Counters summed over the {n} daemons at the end (`stats`): "
                                + ", ".join(f"{k} {v}" for k, v in st.items() if v is not None) + ". "
                                "The protocol core drops a copy of a broadcast whose id it remembers before "
                                "the daemon sees it, so `user_events_duplicate` and `queries_duplicate` count "
                                "only copies that got past it; `query_replies_late` counts acks and responses "
                                "that came after their query ended (the stopped member answering the "
                                "reachability ping once continued, for one)."))
    fails = [c for c in checks_of(doc) if not c[1]]
    notes = doc.get("notes", [])
    if fails or notes:
        out.append("\n")
        for name, _, detail in fails:
            out.append(f"- **FAILED**: {name}: {detail}\n")
        for note in notes:
            out.append(f"- {note}\n")
    if doc.get("error"):
        out.append(f"\n**The run stopped early**: {doc['error']}\n")
    return "".join(out)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--shoald", default=None, help="default BUILD/daemon/shoald")
    ap.add_argument("--shoalctl", default=None, help="default BUILD/daemon/shoalctl")
    ap.add_argument("--nodes", type=int, default=32)
    ap.add_argument("--events", type=int, default=10)
    ap.add_argument("--event-gap", type=float, default=1.0, help="seconds between events (after each is complete)")
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--query-timeout", type=float, default=3.0)
    ap.add_argument("--reach-timeout", type=float, default=2.0)
    ap.add_argument("--port-base", type=int, default=29000, help="daemon nI binds PORT_BASE+I")
    ap.add_argument("--join-timeout", type=float, default=60.0)
    ap.add_argument("--json", action="store_true", help="then one line of JSON, every raw number")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    if not 4 <= a.nodes <= 256:
        ap.error("--nodes: 4..256")
    if a.events < 1 or a.queries < 1:
        ap.error("--events and --queries: at least 1")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    try:
        from shoal import Client  # clients/python
    except ImportError as e:
        print(f"daemon_cluster: cannot import the Python client ({e}); run it with Debian's "
              "/usr/bin/python3 (python3-msgpack)", file=sys.stderr)
        return 2
    shoald = a.shoald or os.path.join(a.build, "daemon", "shoald")
    shoalctl = a.shoalctl or os.path.join(a.build, "daemon", "shoalctl")
    for pth in (shoald, shoalctl):
        if not os.access(pth, os.X_OK):
            print(f"daemon_cluster: {pth} not found (cmake --build {a.build} --target shoald shoalctl)",
                  file=sys.stderr)
            return 2

    n = a.nodes
    victim = "n17" if n >= 17 else f"n{n // 2 + 1}"
    status = capture(["git", "status", "--porcelain", "--untracked-files=no"], strip=False) or ""
    meta = {
        "nodes": n,
        "command": quote([sys.executable, os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:]),
        "commit": capture(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
        "dirty": [l[3:] for l in status.splitlines()],
        "machine": machine_facts(), "shoald": shoald, "shoalctl": shoalctl,
        "shoald_mtime": datetime.datetime.fromtimestamp(os.path.getmtime(shoald), datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M UTC"),
        "started_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "events": a.events, "event_gap_s": a.event_gap, "queries": a.queries,
        "query_timeout_s": a.query_timeout, "reach_timeout_s": a.reach_timeout, "victim": victim,
        "port_base": a.port_base, "load": {"start": load1()}, "bound_rounds": 3 * math.log2(n),
    }
    doc = {"meta": meta, "notes": []}
    t_start = time.monotonic()
    jiffies0 = cpu_jiffies()
    self0 = os.times()
    work = tempfile.mkdtemp(prefix="shoal-cluster.")
    cl = None
    keep = a.keep
    rc = 0
    try:
        g_ms, g_src = local_gossip_interval_ms()
        meta["gossip_interval_ms"], meta["gossip_interval_source"] = g_ms, g_src
        # Copies, so a rebuild of the build directory during the run changes nothing.
        bin_dir = os.path.join(work, "bin")
        os.makedirs(bin_dir)
        for src in (shoald, shoalctl):
            shutil.copy2(src, bin_dir)
        my_shoald = os.path.join(bin_dir, os.path.basename(shoald))
        my_shoalctl = os.path.join(bin_dir, os.path.basename(shoalctl))
        meta["shoald_version"] = (capture([my_shoald, "--version"]) or "?").splitlines()[0]
        busy = [p for p in range(a.port_base + 1, a.port_base + n + 1) if not port_free(p)]
        if busy:
            raise SetupFailed(f"ports in use on 127.0.0.1: {busy[:5]} (choose --port-base)")
        cl = Cluster(n, work, my_shoald, my_shoalctl, a.port_base, Client)
        log(f"{n} daemons in {work}, ports {a.port_base + 1}..{a.port_base + n}, "
            f"gossip interval {g_ms} ms ({g_src})")
        cl.start("n1")
        t0 = time.monotonic()
        while cl.call("n1", lambda c: c.info()) is None:
            cl.check_alive(["n1"])
            if time.monotonic() - t0 > 15:
                raise SetupFailed(f"n1 not answering on its socket after 15 s: {cl.log_tail('n1')}")
            time.sleep(0.05)
        t_join = time.monotonic()
        for name in cl.names[1:]:
            cl.start(name)
        j = cl.wait_all_alive(a.join_timeout)
        if j is None:
            raise SetupFailed(f"not every daemon saw {n} alive within {a.join_timeout:.0f} s")
        doc["join_s"] = time.monotonic() - t_join
        log(f"joined: every daemon sees {n} alive after {doc['join_s']:.2f} s")

        # Streams: one user:deploy stream and one query:load responder per daemon.
        streams = {nm: Stream(Client, cl.sock(nm), nm, [f"user:{EVENT}"]) for nm in cl.names}
        responders = {nm: Stream(Client, cl.sock(nm), nm, [f"query:{QUERY}"], respond=True) for nm in cl.names}
        for s in list(streams.values()) + list(responders.values()):
            s.start()
        streams_open(cl, {nm: 2 for nm in cl.names}, 20)
        log("streams open on every daemon")

        per_event, stray = run_events(cl, streams, a.events, a.event_gap, timeout=10.0, settle=2.0,
                                      gossip_ms=g_ms)
        pairs = n * len(per_event)
        ev = {
            "count": len(per_event), "expected_pairs": pairs, "per_event": per_event, "stray": stray,
            "stream_total": sum(sum(e["stream_count"].values()) for e in per_event),
            "handler_total": sum(sum(e["handler_count"].values()) for e in per_event),
            "stream_exact_pairs": sum(1 for e in per_event for c in e["stream_count"].values() if c == 1),
            "handler_exact_pairs": sum(1 for e in per_event for c in e["handler_count"].values() if c == 1),
            "spread_ms": spread([e["spread_ms"] for e in per_event]),
            "spread_rounds": spread([e["spread_rounds"] for e in per_event]),
            "send_to_last_stream_ms": spread([e["send_to_last_stream_ms"] for e in per_event]),
            "send_to_last_handler_ms": spread([e["send_to_last_handler_ms"] for e in per_event]),
        }
        bad = [(e["version"], nm, e["stream_count"][nm], e["handler_count"][nm]) for e in per_event
               for nm in cl.names if e["stream_count"][nm] != 1 or e["handler_count"][nm] != 1]
        ev["not_once"] = [{"event": v, "daemon": nm, "stream": s, "handler": h} for v, nm, s, h in bad]
        for v, nm, s, h in bad[:10]:
            doc["notes"].append(f"event {v} at {nm}: {s} stream deliveries, {h} handler runs")
        if len(bad) > 10:
            doc["notes"].append(f"... and {len(bad) - 10} more (daemon, event) pairs not exactly once (JSON: events.not_once)")
        for nm, s in list(stray.items())[:5]:
            doc["notes"].append(f"{nm}: unexpected user events or handler lines: {s}")
        for e in per_event:
            if e["shoalctl_rc"] != 0:
                doc["notes"].append(f"`shoalctl event {EVENT} {e['version']}` exited {e['shoalctl_rc']}: "
                                    f"{e['shoalctl_stderr']}")
        doc["events"] = ev
        log(f"events: {ev['stream_total']}/{pairs} stream deliveries, {ev['handler_total']}/{pairs} handler "
            f"runs; spread max {ev['spread_ms'] and ev['spread_ms']['max']} ms")

        runs, db, web = run_queries(cl, responders, a.queries, a.query_timeout)
        q = {"runs": runs, "db": db, "web": web,
             "exact_runs": sum(1 for r in runs if r["ok"]),
             "ack_exact_runs": sum(1 for r in runs if r["ack_exact"]),
             "response_exact_runs": sum(1 for r in runs if r["response_exact"]),
             "bad_payload_runs": sum(1 for r in runs if not r["payloads_ok"]),
             "acks_total": sum(len(r["acks"]) for r in runs),
             "responses_total": sum(sum(len(v) for v in r["responses"].values()) for r in runs),
             "web_acked": sorted({x for r in runs for x in r["web_acked"]}),
             "web_answered": sorted({x for r in runs for x in r["web_answered"]}),
             "web_saw": sorted({x for r in runs for x in r["web_saw"]}),
             "last_response_ms": spread([r["last_response_ms"] for r in runs])}
        for r in runs:
            if not r["ok"]:
                doc["notes"].append(
                    f"query {r['payload']}: rc {r['rc']}; acks missing from {r['db_missing_ack']}, responses "
                    f"missing from {r['db_missing_response']}; web acked {r['web_acked']}, answered "
                    f"{r['web_answered']}, saw it {r['web_saw']}; db streams not seeing it once "
                    f"{r['db_seen_not_once']}; done {r['done']}; stderr {r['stderr']!r}")
        errs = {nm: s.respond_errors for nm, s in responders.items() if s.respond_errors}
        if errs:
            q["respond_errors"] = errs
            doc["notes"].append(f"`respond` errors: {dict(list(errs.items())[:4])}")
        doc["queries"] = q

        log(f"reachability: SIGSTOP {victim}")
        doc["reachability"] = run_reachability(cl, victim, a.reach_timeout, fail_timeout=30.0,
                                               back_timeout=30.0)
        rr = doc["reachability"]
        log(f"reachability: {victim} not answering: {rr['victim_not_answering']} ({rr['victim_status']}); "
            f"others missing {rr['others_missing']}; failed at n1 after {rr['failed_at_n1_after_stop_s']} s; "
            f"all alive again after {rr['all_alive_after_cont_s']} s")
        if rr["all_alive_after_cont_s"] is None:
            doc["notes"].append(f"after SIGCONT, not every daemon saw {n} alive within 30 s (not a check)")

        stats = daemon_stats(cl)
        doc["stats"] = stats
        doc["counters"] = {f"{g}.{k}": sum_counter(stats, g, k) for g, k in [
            ("core", "broadcasts_delivered"), ("core", "user_broadcasts_dropped"),
            ("daemon", "user_events_sent"), ("daemon", "user_events_delivered"),
            ("daemon", "user_events_duplicate"), ("daemon", "user_events_rejected"),
            ("daemon", "queries_sent"), ("daemon", "queries_received"), ("daemon", "queries_duplicate"),
            ("daemon", "queries_rejected"), ("daemon", "query_responses"), ("daemon", "query_replies_late"),
            ("daemon", "streams_lagged"), ("handlers", "handler_runs"), ("handlers", "handler_succeeded"),
            ("handlers", "handler_failed"), ("handlers", "handler_dropped"), ("handlers", "handler_timed_out"),
            ("handlers", "handler_spawn_errors")]}
        wall = time.monotonic() - t_start
        doc["cost"] = daemon_costs(cl, wall)
    except SetupFailed as e:
        doc["error"] = str(e)
        log(f"FAILED to set up: {e}")
        rc = 2
    except KeyboardInterrupt as e:
        doc["error"] = f"interrupted ({e})"
        log(f"interrupted ({e}): stopping the daemons")
        rc = 130
    finally:
        if cl is not None:
            cl.stop()
    jiffies1 = cpu_jiffies()
    self1 = os.times()
    meta["load"]["end"] = load1()
    meta["ended_utc"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    meta["wall_s"] = time.monotonic() - t_start
    # CPU of everything else: the machine's busy jiffies minus the daemons'
    # (and the handler runs they reaped) minus this script and its children.
    c = doc.get("cost")
    if c:
        busy_s = (jiffies1[0] - jiffies0[0]) / CLK_TCK
        total_s = (jiffies1[1] - jiffies0[1]) / CLK_TCK
        mine = (self1.user + self1.system + self1.children_user + self1.children_system
                - self0.user - self0.system - self0.children_user - self0.children_system)
        other = busy_s - c["cpu_s_total"] - c["children_cpu_s_total"] - mine
        meta["machine_busy_s"], meta["machine_total_s"], meta["script_cpu_s"] = busy_s, total_s, mine
        meta["other_cpu_share"] = max(0.0, other / total_s) if total_s > 0 else None
    else:
        meta["other_cpu_share"] = None
    checks = checks_of(doc)
    doc["checks"] = [{"check": nm, "ok": ok, "detail": d} for nm, ok, d in checks]
    if rc == 0 and (not checks or not all(ok for _, ok, _ in checks)):
        rc = 1
    doc["ok"] = rc == 0
    if rc != 0 and rc != 130:
        keep = True
    if keep:
        shutil.rmtree(os.path.join(work, "bin"), ignore_errors=True)
        doc["notes"].append(f"work directory kept: `{work}` (daemon logs nI.log, handler files deploy-nI.log)")
        log(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(render_markdown(doc))
    if a.json:
        print(json.dumps(doc, default=str, separators=(",", ":")))
    for nm, ok, d in checks:
        log(f"check {'pass' if ok else 'FAILED'}: {nm} ({d})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
