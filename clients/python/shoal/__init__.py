"""shoal: a Python client of shoald, the shoal daemon (daemon/PROTOCOL.md)."""

from .client import PROTOCOL_VERSION, Client, ConnectionLost, DaemonError, Lagged, Query

__all__ = ["Client", "DaemonError", "ConnectionLost", "Lagged", "Query", "PROTOCOL_VERSION"]
__version__ = "0.1.0"
