"""A local Redis Cluster for tests: three masters without replicas on free ports, slots split
evenly, started in about a second. Enough to prove that every multi-key step of the backend
stays in one slot (a cluster refuses it otherwise) and that clients follow the slots."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.support.ports import free_port_pair
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

__all__ = ["LocalCluster"]

_SLOTS = 16384
# A node's cluster bus listens on its port + 10000.
_BUS_OFFSET = 10000


class LocalCluster:
    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(
                workdir / f"node{n}",
                port=free_port_pair(_BUS_OFFSET),
                extra_args=["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"],
            )
            for n in range(masters)
        ]

    @property
    def url(self) -> str:
        """What REDIS_URL says for a cluster: any one node, the rest is discovered."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> LocalCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        clients = [redis.Redis(port=node.port, decode_responses=True) for node in self.nodes]
        try:
            share = _SLOTS // len(clients)
            for n, client in enumerate(clients):
                last = _SLOTS - 1 if n == len(clients) - 1 else (n + 1) * share - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", n * share, last)
            for client in clients[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
            wait_until(
                lambda: all(_ready(c, len(clients)) for c in clients),
                timeout=30,
                what="the cluster to agree on its slots",
            )
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _ready(client: redis.Redis, nodes: int) -> bool:
    info = client.execute_command("CLUSTER", "INFO")
    text = info if isinstance(info, str) else info.decode()
    fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
    return (
        fields.get("cluster_state") == "ok" and int(fields.get("cluster_known_nodes", 0)) == nodes
    )
