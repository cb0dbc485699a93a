"""Free loopback ports."""

from __future__ import annotations

import random
import socket

__all__ = ["free_port", "free_port_pair"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(offset: int, below: int = 55536) -> int:
    """A free port P below `below` such that P + `offset` is free too (a Redis Cluster node
    listens on its port and on port + 10000 for the cluster bus)."""
    for _ in range(1000):
        port = random.randrange(20000, below)
        if _bindable(port) and _bindable(port + offset):
            return port
    raise RuntimeError("no free pair of ports")
