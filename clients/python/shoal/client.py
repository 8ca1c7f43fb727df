"""A client of shoald's Unix-socket protocol (daemon/PROTOCOL.md), in pure Python.

Frames are a 4-byte big-endian length and one msgpack map; the first request on
a connection is ``handshake``. A :class:`Client` holds one connection for its
calls; :meth:`Client.stream` opens a connection of its own for each stream, so
calls and streams never wait for each other. Calls reconnect with backoff when
the daemon restarts; a stream ends with :class:`ConnectionLost` instead (events
may have been missed; open a new stream).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import msgpack

__all__ = ["Client", "DaemonError", "ConnectionLost", "Lagged", "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 1
DEFAULT_SOCKET = "/run/shoal/shoald.sock"
# Frames from the daemon may be large (a members reply of a big cluster); a
# client should accept at least 16 MiB (PROTOCOL.md, Framing).
MAX_FRAME_BYTES = 64 * 1024 * 1024


class DaemonError(Exception):
    """The daemon answered a request with an error (PROTOCOL.md, Error codes)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(Exception):
    """The connection to the daemon failed or closed."""


class Lagged(Exception):
    """The daemon cut a stream off because the client read too slowly."""

    def __init__(self, dropped: int) -> None:
        super().__init__(f"the daemon dropped {dropped} event(s) and closed the stream")
        self.dropped = dropped


class _Connection:
    """One handshaken socket connection: frames out, frames in."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as e:
            self._sock.close()
            raise ConnectionLost(f"cannot connect to {path}: {e}") from e
        self._buf = bytearray()
        self._next_id = 1
        self.handshake = self.call("handshake", {"version": PROTOCOL_VERSION})

    def close(self) -> None:
        self._sock.close()

    def send(self, cmd: str, args: Optional[Mapping[str, Any]]) -> int:
        rid = self._next_id
        self._next_id += 1
        req: Dict[str, Any] = {"id": rid, "cmd": cmd}
        if args is not None:
            req["args"] = dict(args)
        body = msgpack.packb(req, use_bin_type=True)
        try:
            self._sock.sendall(struct.pack(">I", len(body)) + body)
        except OSError as e:
            raise ConnectionLost(f"write failed: {e}") from e
        return rid

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = self._sock.recv(max(65536, n - len(self._buf)))
            except socket.timeout:
                raise
            except OSError as e:
                raise ConnectionLost(f"read failed: {e}") from e
            if not chunk:
                raise ConnectionLost("the daemon closed the connection")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_frame(self) -> Dict[str, Any]:
        (n,) = struct.unpack(">I", self._read_exact(4))
        if n == 0 or n > MAX_FRAME_BYTES:
            raise ConnectionLost(f"frame of {n} bytes from the daemon")
        frame = msgpack.unpackb(self._read_exact(n), raw=False, strict_map_key=False)
        if not isinstance(frame, dict):
            raise ConnectionLost("a frame that is not a map")
        return frame

    def call(self, cmd: str, args: Optional[Mapping[str, Any]] = None) -> Any:
        rid = self.send(cmd, args)
        while True:
            frame = self.read_frame()
            if frame.get("id") != rid or "event" in frame or "lagged" in frame:
                continue  # an event of a stream on this connection: not ours to keep
            if "error" in frame:
                err = frame["error"] or {}
                raise DaemonError(str(err.get("code", "")), str(err.get("message", "")))
            return frame.get("result")

    def set_timeout(self, timeout: Optional[float]) -> None:
        self._sock.settimeout(timeout)


class Client:
    """A client of one shoald.

    >>> c = Client("/run/shoal/shoald.sock")
    >>> [m["name"] for m in c.members(status=["alive"])]
    ['web-1', 'web-2']

    Every method raises :class:`DaemonError` when the daemon refuses the
    request and :class:`ConnectionLost` when it cannot be reached within the
    retries.
    """

    def __init__(
        self,
        socket_path: str = DEFAULT_SOCKET,
        timeout: Optional[float] = 30.0,
        retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
    ) -> None:
        """``timeout``: seconds a call waits for its reply (None: forever).
        ``retries``: reconnection attempts of a call whose connection failed,
        waiting ``backoff`` seconds, doubled each time up to ``max_backoff``.
        Only calls that change nothing are retried after they were sent."""
        self.socket_path = socket_path
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._conn: Optional[_Connection] = None

    # -- connection -------------------------------------------------------

    def _connect(self) -> _Connection:
        if self._conn is None:
            self._conn = _Connection(self.socket_path, self.timeout)
        return self._conn

    def close(self) -> None:
        """Closes the connection (a later call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, cmd: str, args: Optional[Mapping[str, Any]] = None, idempotent: bool = True) -> Any:
        """Sends one request and returns its result. A lost connection is
        reopened with backoff; a request that may have changed something
        (``idempotent=False``) is retried only when it could not be sent."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                conn = self._connect()
            except ConnectionLost:
                if attempt == self.retries:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            try:
                return conn.call(cmd, args)
            except ConnectionLost:
                self.close()
                if attempt == self.retries or not idempotent:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
            except socket.timeout as e:
                self.close()
                raise ConnectionLost(f"no reply to {cmd} within {self.timeout} s") from e
        raise ConnectionLost("unreachable")  # not reached

    @property
    def daemon_version(self) -> str:
        """The daemon's version, from the handshake."""
        return str(self._connect().handshake.get("daemon", ""))

    # -- commands ---------------------------------------------------------

    def members(
        self,
        status: Optional[Sequence[str]] = None,
        name: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        page_size: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Members of the view sorted by name, the local node included.
        ``status``: states to keep (alive, suspect, failed, left); ``name``
        and each value of ``tags``: RE2 patterns matching the whole value.
        The daemon answers in pages (``page_size`` members at most, default
        as many as fit its reply bound); every page is read."""
        args: Dict[str, Any] = {}
        if page_size is not None:
            args["limit"] = int(page_size)
        if status is not None:
            args["status"] = list(status)
        if name is not None:
            args["name"] = name
        if tags is not None:
            args["tags"] = dict(tags)
        out: List[Dict[str, Any]] = []
        while True:  # every page: the daemon bounds each reply and says where the next starts
            page = self.call("members", args)
            out.extend(page["members"])
            nxt = page.get("next")
            if nxt is None:
                return out
            if args.get("after") == nxt:
                raise ConnectionLost("the daemon repeated a page of members")
            args["after"] = nxt

    def member(self, name: str) -> Dict[str, Any]:
        """One member by name (DaemonError ``not_found`` when unknown)."""
        return dict(self.call("member", {"name": name}))

    def info(self) -> Dict[str, Any]:
        """The local node and the daemon: name, address, health score, digest, counts."""
        return dict(self.call("info"))

    def stats(self) -> Dict[str, Any]:
        """Every counter, grouped (core, messages, runtime, daemon)."""
        return dict(self.call("stats"))

    def join(self, addrs: Union[str, Sequence[str]], replay: bool = False) -> Dict[str, Any]:
        """Joins through one or more ``host:port``; returns resolved and contacted counts.
        ``replay``: also deliver the recent user events the members hold."""
        if isinstance(addrs, str):
            addrs = [addrs]
        args: Dict[str, Any] = {"addrs": list(addrs)}
        if replay:
            args["replay"] = True
        return dict(self.call("join", args))

    def leave(self) -> None:
        """Leaves the cluster gracefully; the daemon then exits."""
        try:
            self.call("leave", idempotent=False)
        finally:
            self.close()

    def force_leave(self, name: str) -> None:
        """Marks a failed member as left everywhere."""
        self.call("force-leave", {"name": name}, idempotent=False)

    def tags_set(self, tags: Mapping[str, str], unset: Sequence[str] = ()) -> Dict[str, str]:
        """Sets tags (then removes ``unset``) on the local node; returns the tags in force."""
        args: Dict[str, Any] = {"set": dict(tags)}
        if unset:
            args["unset"] = list(unset)
        return dict(self.call("tags", args)["tags"])

    def tags_unset(self, keys: Sequence[str]) -> Dict[str, str]:
        """Removes tags from the local node; returns the tags in force."""
        return dict(self.call("tags", {"unset": list(keys)})["tags"])

    def event(self, name: str, payload: Union[bytes, str] = b"", coalesce: bool = False) -> int:
        """Sends a user event to every live member; returns its Lamport time.
        ``coalesce``: streams and handlers that coalesce may deliver only the
        last event of this name within their window."""
        if isinstance(payload, str):
            payload = payload.encode()
        args: Dict[str, Any] = {"name": name, "payload": payload}
        if coalesce:
            args["coalesce"] = True
        return int(self.call("event", args, idempotent=False)["ltime"])

    def query(
        self,
        name: str,
        payload: Union[bytes, str] = b"",
        node: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        ack: bool = True,
    ) -> "Query":
        """Asks the members a question. ``node`` and each value of ``tags``
        are RE2 patterns the member's whole name or tag value must match;
        ``timeout``: seconds to gather answers (None: the daemon's default).
        Returns a :class:`Query`: iterate it for the acks and responses as
        they arrive (dicts with ``type`` "ack" or "response", ``from`` and,
        for responses, ``payload``); its ``summary`` holds the daemon's final
        counts once the iteration ends. Runs on a connection of its own."""
        if isinstance(payload, str):
            payload = payload.encode()
        args: Dict[str, Any] = {"name": name, "payload": payload}
        if node is not None:
            args["node"] = node
        if tags is not None:
            args["tags"] = dict(tags)
        if timeout is not None:
            args["timeout_ms"] = max(1, int(timeout * 1000))
        if not ack:
            args["ack"] = False
        return Query(self.socket_path, args, self.timeout)

    def respond(self, query: int, payload: Union[bytes, str] = b"") -> None:
        """Answers a query event of a ``query`` stream (its ``query`` field),
        once, before its ``deadline_ms``."""
        if isinstance(payload, str):
            payload = payload.encode()
        self.call("respond", {"query": int(query), "payload": payload}, idempotent=False)

    def stream(
        self,
        types: Sequence[str] = (),
        timeout: Optional[float] = None,
        snapshot: bool = False,
        coalesce: Optional[float] = None,
    ) -> Iterator[Dict[str, Any]]:
        """Events as they happen, on a connection of its own: membership
        events (``joined``, ``failed``, ...), user events (``user``,
        ``user:NAME``) and queries to answer with :meth:`respond`
        (``query``, ``query:NAME``); every type when ``types`` is empty. Each event is a
        dict with ``type`` (and ``member``, or ``name``, ``payload``,
        ``origin``, ``ltime`` for user events) and ``time_ms``. Raises
        :class:`Lagged` when the daemon cut the stream off, and
        :class:`ConnectionLost` when the connection ends; ``timeout``
        (seconds) ends the iteration quietly after that long without an
        event. Closing the generator closes the connection.

        ``snapshot=True`` (reliable list-then-watch): the stream first yields
        one ``{"type": "member", "member": ...}`` per current member and a
        ``{"type": "snapshot_end", "members": n}``, then live events; nothing
        that changes after the snapshot is missed. Every event has ``seq``,
        consecutive from 1 on each stream.

        ``coalesce`` (seconds): user events sent with ``coalesce=True`` are
        held that long and only the last of each name is yielded."""
        conn = _Connection(self.socket_path, self.timeout)
        try:
            args: Dict[str, Any] = {"types": list(types)}
            if snapshot:
                args["snapshot"] = True
            if coalesce:
                args["coalesce_ms"] = int(coalesce * 1000)
            sid = conn.send("stream", args)
            while True:
                frame = conn.read_frame()
                if frame.get("id") != sid:
                    continue
                if "error" in frame:
                    err = frame["error"] or {}
                    raise DaemonError(str(err.get("code", "")), str(err.get("message", "")))
                if "result" in frame:
                    break
            conn.set_timeout(timeout)
            while True:
                try:
                    frame = conn.read_frame()
                except socket.timeout:
                    return
                if frame.get("id") != sid:
                    continue
                if "lagged" in frame:
                    raise Lagged(int((frame["lagged"] or {}).get("dropped", 0)))
                if "event" in frame:
                    yield dict(frame["event"])
        finally:
            conn.close()


class Query:
    """A query in progress (:meth:`Client.query`): iterating yields its acks
    and responses until the query's timeout; then ``summary`` holds the
    daemon's counts (``acks``, ``responses``, ``duration_ms``)."""

    def __init__(self, socket_path: str, args: Mapping[str, Any], timeout: Optional[float]) -> None:
        self.summary: Optional[Dict[str, Any]] = None
        self._conn = _Connection(socket_path, timeout)
        # The reply comes when the query's timeout has passed (at most 300 s).
        self._conn.set_timeout(None if timeout is None else timeout + 300.0)
        self._rid = self._conn.send("query", args)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        try:
            while self.summary is None:
                frame = self._conn.read_frame()
                if frame.get("id") != self._rid:
                    continue
                if "error" in frame:
                    err = frame["error"] or {}
                    raise DaemonError(str(err.get("code", "")), str(err.get("message", "")))
                if "event" in frame:
                    yield dict(frame["event"])
                elif "result" in frame:
                    self.summary = dict(frame["result"] or {})
        finally:
            self._conn.close()

    def responses(self) -> Dict[str, bytes]:
        """Runs the query to its end; the responses by member name."""
        return {str(e["from"]): bytes(e.get("payload", b"")) for e in self if e.get("type") == "response"}
