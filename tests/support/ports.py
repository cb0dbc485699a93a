"""Free loopback ports for the servers tests start.

Ports come from outside the kernel's ephemeral range: a port from inside it can be taken by
any outgoing connection between the moment it is found free and the moment a server binds it
(or rebinds it on a restart), which made a throwaway server fail to start now and then.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port", "free_port_pair"]

_LOWEST = 10000
_HIGHEST = 65535


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return 32768, 65535  # covers Linux's default and macOS's 49152-65535
    return low, high


def _candidate(offset: int = 0) -> int:
    low, high = _ephemeral_range()
    while True:
        port = random.randrange(_LOWEST, _HIGHEST - offset + 1)
        if all(not low <= p <= high for p in (port, port + offset)):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    for _ in range(1000):
        port = _candidate()
        if _bindable(port):
            return port
    raise RuntimeError("no free port outside the ephemeral range")


def free_port_pair(offset: int) -> int:
    """A free port P such that P + `offset` is free too (a Redis Cluster node listens on its
    port and on port + 10000 for the cluster bus)."""
    for _ in range(1000):
        port = _candidate(offset)
        if _bindable(port) and _bindable(port + offset):
            return port
    raise RuntimeError("no free pair of ports outside the ephemeral range")
