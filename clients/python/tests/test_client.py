"""The Python client against real shoald processes (ctest label ``clients``).

Needs SHOALD_BIN (the daemon to run) in the environment and the package on
PYTHONPATH; run by ctest, or by hand:

    SHOALD_BIN=build/daemon/shoald PYTHONPATH=clients/python \
        python3 -m unittest discover -s clients/python/tests -v
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
from typing import Callable, List, Optional

from shoal import Client, ConnectionLost, DaemonError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except (ConnectionLost, DaemonError):
            pass
        time.sleep(0.05)
    return False


class Daemon:
    """One shoald on 127.0.0.1 in a scratch directory."""

    def __init__(self, root: str, name: str, join: Optional[str] = None, port: int = 0) -> None:
        self.name = name
        self.port = port or free_port()
        self.socket = os.path.join(root, name + ".sock")
        self.data = os.path.join(root, name)
        self.log_path = os.path.join(root, name + ".log")
        os.makedirs(self.data, exist_ok=True)
        self.argv = [os.environ["SHOALD_BIN"], "--name", name, "--bind", f"127.0.0.1:{self.port}",
                     "--socket", self.socket, "--data-dir", self.data, "--preset", "local"]
        if join:
            self.argv += ["--join", join]
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log)
        if not wait_for(lambda: Client(self.socket, retries=0).info() is not None, 20):
            raise RuntimeError(f"{self.name} did not start:\n" + self.log())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")


@unittest.skipUnless(os.environ.get("SHOALD_BIN"), "SHOALD_BIN is not set")
class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp(prefix="shoal-py-")
        self.daemons: List[Daemon] = []

    def tearDown(self) -> None:
        for d in self.daemons:
            d.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def daemon(self, name: str, join: Optional[str] = None) -> Daemon:
        d = Daemon(self.root, name, join)
        self.daemons.append(d)
        return d

    def test_view_tags_and_errors(self) -> None:
        n1 = self.daemon("n1")
        n2 = self.daemon("n2", join=n1.addr)
        c = Client(n1.socket)
        self.assertTrue(wait_for(lambda: len(c.members(status=["alive"])) == 2), n1.log())
        self.assertEqual([m["name"] for m in c.members()], ["n1", "n2"])
        self.assertEqual([m["name"] for m in c.members(page_size=1)], ["n1", "n2"])
        self.assertEqual(c.info()["name"], "n1")
        self.assertEqual(c.tags_set({"role": "web", "zone": "eu"}), {"role": "web", "zone": "eu"})
        self.assertEqual(c.tags_unset(["zone"]), {"role": "web"})
        c2 = Client(n2.socket)
        self.assertTrue(wait_for(lambda: [m["name"] for m in c2.members(tags={"role": "w.*"})] == ["n1"]))
        self.assertEqual(c2.members(tags={"role": "w"}), [])
        with self.assertRaises(DaemonError) as e:
            c.member("nobody")
        self.assertEqual(e.exception.code, "not_found")
        with self.assertRaises(DaemonError) as e:
            c.members(name="(")
        self.assertEqual(e.exception.code, "invalid_argument")
        self.assertIn("core", c.stats())

    def test_events_reach_every_stream_once(self) -> None:
        n1 = self.daemon("n1")
        n2 = self.daemon("n2", join=n1.addr)
        c1, c2 = Client(n1.socket), Client(n2.socket)
        self.assertTrue(wait_for(lambda: len(c2.members(status=["alive"])) == 2))
        got: List[dict] = []
        ready = threading.Event()

        def watch() -> None:
            it = c2.stream(["user:deploy"], timeout=5.0)
            ready.set()
            for ev in it:
                got.append(ev)

        t = threading.Thread(target=watch)
        t.start()
        ready.wait(5)
        self.assertTrue(wait_for(lambda: c2.stats()["daemon"]["streams"] >= 1))
        c1.event("restart")
        ltime = c1.event("deploy", "v42")
        t.join(30)
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0]["type"], "user")
        self.assertEqual(got[0]["name"], "deploy")
        self.assertEqual(got[0]["payload"], b"v42")
        self.assertEqual(got[0]["origin"], "n1")
        self.assertEqual(got[0]["ltime"], ltime)
        with self.assertRaises(DaemonError) as e:
            c1.event("x" * 129)
        self.assertEqual(e.exception.code, "invalid_argument")

    def test_query_reaches_the_matching_member_and_its_answer_comes_back(self) -> None:
        n1 = self.daemon("n1")
        n2 = self.daemon("n2", join=n1.addr)
        n3 = self.daemon("n3", join=n1.addr)
        c1, c3 = Client(n1.socket), Client(n3.socket)
        c3.tags_set({"role": "db"})
        self.assertTrue(wait_for(lambda: [m["name"] for m in c1.members(tags={"role": "db"}, status=["alive"])] == ["n3"]))
        self.assertTrue(wait_for(lambda: len(Client(n2.socket).members(status=["alive"])) == 3))
        answered = threading.Event()

        def answer() -> None:
            for ev in c3.stream(["query:load"], timeout=20.0):
                Client(n3.socket).respond(ev["query"], b"0.42")
                answered.set()
                return

        t = threading.Thread(target=answer)
        t.start()
        self.assertTrue(wait_for(lambda: c3.stats()["daemon"]["streams"] >= 1))
        q = c1.query("load", b"now", tags={"role": "db"}, timeout=2.0)
        got = list(q)
        t.join(30)
        self.assertTrue(answered.is_set())
        self.assertEqual(sorted((e["type"], e["from"]) for e in got), [("ack", "n3"), ("response", "n3")], got)
        self.assertEqual([e["payload"] for e in got if e["type"] == "response"], [b"0.42"])
        self.assertEqual(q.summary["acks"], 1)
        self.assertEqual(q.summary["responses"], 1)
        # No filter: every member acks; nobody answers "other".
        everyone = c1.query("other", timeout=3.0)
        self.assertEqual(sorted(e["from"] for e in everyone if e["type"] == "ack"), ["n1", "n2", "n3"])
        with self.assertRaises(DaemonError) as e:
            list(c1.query("load", node="("))
        self.assertEqual(e.exception.code, "invalid_argument")
        with self.assertRaises(DaemonError) as e:
            c1.respond(12345, b"x")
        self.assertEqual(e.exception.code, "not_found")

    def test_snapshot_stream_lists_then_watches(self) -> None:
        n1 = self.daemon("n1")
        n2 = self.daemon("n2", join=n1.addr)
        c1 = Client(n1.socket)
        self.assertTrue(wait_for(lambda: len(c1.members(status=["alive"])) == 2))
        it = c1.stream(["updated"], timeout=10.0, snapshot=True)
        first = [next(it), next(it), next(it)]
        self.assertEqual([e["type"] for e in first], ["member", "member", "snapshot_end"])
        self.assertEqual(sorted(e["member"]["name"] for e in first[:2]), ["n1", "n2"])
        self.assertEqual([e["seq"] for e in first], [1, 2, 3])
        Client(n2.socket).tags_set({"zone": "b"})
        ev = next(it)
        self.assertEqual((ev["type"], ev["member"]["name"], ev["seq"]), ("updated", "n2", 4))
        it.close()

    def test_calls_reconnect_after_a_restart(self) -> None:
        n1 = self.daemon("n1")
        c = Client(n1.socket, retries=40, backoff=0.05, max_backoff=0.5)
        self.assertEqual(c.info()["name"], "n1")
        n1.stop()
        restarter = threading.Timer(0.5, n1.start)
        restarter.start()
        try:
            self.assertEqual(c.info()["name"], "n1")  # retried until the daemon is back
        finally:
            restarter.join()
        quick = Client(os.path.join(self.root, "nobody.sock"), retries=1, backoff=0.01)
        with self.assertRaises(ConnectionLost):
            quick.info()


if __name__ == "__main__":
    unittest.main()
