"""daemon/PROTOCOL.md's own examples against a real shoald (ctest: protocol_conformance).

The page's byte-by-byte worked example is sent as written and the daemon's
bytes are compared with the page's; the page's minimal Python client is run as
written (only the socket path changed); the daemon-to-daemon query example is
checked against msgpack's encoding of what the page says it holds. A change to
either the code or the page that makes them disagree fails here.

Needs SHOALD_BIN and Debian's python3-msgpack:
    SHOALD_BIN=build/daemon/shoald python3 tests/daemon/conformance.py
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
from typing import List

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOCOL_MD = os.path.join(HERE, "..", "..", "daemon", "PROTOCOL.md")


def code_blocks(text: str, after: str) -> List[str]:
    """The fenced blocks that follow the first occurrence of `after`."""
    start = text.index(after)
    return re.findall(r"```[a-z]*\n(.*?)```", text[start:], re.S)


def hex_bytes(block: str) -> bytes:
    """The leading two-digit hex tokens of each line (the rest is commentary)."""
    out = bytearray()
    for line in block.splitlines():
        for tok in line.split():
            if not re.fullmatch(r"[0-9a-f]{2}", tok):
                break
            out.append(int(tok, 16))
    return bytes(out)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_frame(s: socket.socket) -> bytes:
    head = s.recv(4, socket.MSG_WAITALL)
    (n,) = struct.unpack(">I", head)
    return head + s.recv(n, socket.MSG_WAITALL)


@unittest.skipUnless(os.environ.get("SHOALD_BIN"), "SHOALD_BIN is not set")
class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        with open(PROTOCOL_MD, encoding="utf-8") as f:
            cls.doc = f.read()
        cls.root = tempfile.mkdtemp(prefix="shoal-conformance-")
        cls.sock = os.path.join(cls.root, "n1.sock")
        cls.log = open(os.path.join(cls.root, "n1.log"), "wb")
        cls.proc = subprocess.Popen(
            [os.environ["SHOALD_BIN"], "--name", "n1", "--bind", f"127.0.0.1:{free_port()}",
             "--socket", cls.sock, "--preset", "local"], stdout=cls.log, stderr=cls.log)
        end = time.monotonic() + 20
        while time.monotonic() < end and not os.path.exists(cls.sock):
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.proc.kill()
        cls.proc.wait()
        cls.log.close()
        shutil.rmtree(cls.root, ignore_errors=True)

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.sock)
        return s

    def test_worked_example_bytes(self) -> None:
        blocks = code_blocks(self.doc, "## A worked example, byte by byte")
        hello, answer, members = (hex_bytes(b) for b in blocks[:3])
        self.assertEqual(len(hello), 4 + 34)
        self.assertEqual(msgpack.unpackb(hello[4:]), {"id": 1, "cmd": "handshake", "args": {"version": 1}})
        with self.connect() as s:
            s.sendall(hello)
            got = read_frame(s)
            reply = msgpack.unpackb(got[4:])
            # The page names the daemon version it shows: a new version needs the page updated.
            shown = re.search(r"The daemon \(version ([0-9.]+)\) answers", self.doc).group(1)
            self.assertEqual(reply["result"]["daemon"], shown, "update PROTOCOL.md's worked example")
            self.assertEqual(got.hex(" "), answer.hex(" "))
            self.assertEqual(reply["result"]["version"], 1)
            s.sendall(members)
            reply = msgpack.unpackb(read_frame(s)[4:])
            self.assertEqual(reply["id"], 2)
            self.assertEqual([m["name"] for m in reply["result"]["members"]], ["n1"])

    def test_minimal_python_client_runs_as_written(self) -> None:
        block = code_blocks(self.doc, "A minimal client, in Python")[0]
        code = block.replace("/run/shoal/shoald.sock", self.sock)
        out = io.StringIO()
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(10)  # a regression fails here instead of hanging
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "PROTOCOL.md example", "exec"), {})
        finally:
            socket.setdefaulttimeout(old)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 5, out.getvalue())
        self.assertIn("'min_version': 1", lines[0])
        self.assertIn("'name': 'n1'", lines[1])
        self.assertEqual(lines[2], "{'id': 3, 'result': {}}")
        # The tags reply and the stream's event, in either order.
        rest = " ".join(lines[3:])
        self.assertIn("'id': 4, 'result': {'tags': {'role': 'web'}}", rest)
        self.assertIn("'id': 3, 'event': {'seq': 1, 'type': 'updated'", rest)

    def test_query_message_example(self) -> None:
        block = code_blocks(self.doc, "For example the query `load`")[0]
        raw = hex_bytes(block)
        self.assertEqual(len(raw), 43)
        self.assertIn("is these 43 bytes", self.doc)
        self.assertEqual(
            msgpack.unpackb(raw),
            ["shoal.query", 7, "n1", 3, "load", b"now", 1, 2000, "", [["role", "db"]]])
        self.assertEqual(
            raw, msgpack.packb(["shoal.query", 7, "n1", 3, "load", b"now", 1, 2000, "", [["role", "db"]]],
                               use_bin_type=True))

    def test_error_examples(self) -> None:
        with self.connect() as s:
            def call(i: int, cmd: str, args: dict) -> dict:
                body = msgpack.packb({"id": i, "cmd": cmd, "args": args})
                s.sendall(struct.pack(">I", len(body)) + body)
                return msgpack.unpackb(read_frame(s)[4:])

            self.assertEqual(call(1, "members", {})["error"]["code"], "handshake_required")
            self.assertIn("result", call(2, "handshake", {"version": 1}))
            self.assertEqual(call(3, "member", {"name": "db-3"})["error"],
                             {"code": "not_found", "message": "no member named db-3"})
            self.assertEqual(call(4, "nope", {})["error"]["code"], "unknown_command")
            self.assertEqual(call(5, "stream", {"types": [1]})["error"]["code"], "bad_request")
            self.assertEqual(call(6, "stream", {"types": ["nope"]})["error"]["code"], "invalid_argument")
            self.assertEqual(call(7, "members", {"name": "("})["error"]["code"], "invalid_argument")
            self.assertEqual(call(8, "tags", {"set": {"": "x"}})["error"]["code"], "bad_request")
            self.assertEqual(call(9, "join", {"addrs": ["x:1"] * 65})["error"]["code"], "invalid_argument")
            self.assertEqual(call(10, "join", {"addrs": ["x" * 301]})["error"]["code"], "bad_request")
            deep = 1
            for _ in range(40):
                deep = [deep]
            self.assertEqual(call(11, "members", {"x": deep})["error"]["code"], "bad_frame")


if __name__ == "__main__":
    unittest.main(verbosity=2)
