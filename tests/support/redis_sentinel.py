"""A local Sentinel deployment for tests: a master, one replica and three Sentinels (quorum 2)
on free ports, with failure detection tuned to about a second so a failover test finishes in
seconds. Every process is a plain `redis-server` (Sentinel mode is `--sentinel`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from tests.support.ports import free_port
from tests.support.redis_server import RedisServer, redis_server_binary
from tests.support.waiting import wait_until

__all__ = ["SERVICE", "LocalSentinel"]

SERVICE = "portals-master"


class LocalSentinel:
    def __init__(self, workdir: Path, sentinels: int = 3) -> None:
        self.workdir = workdir
        self.master = RedisServer(workdir / "master")
        self.replica = RedisServer(
            workdir / "replica",
            extra_args=["--replicaof", "127.0.0.1", str(self.master.port)],
        )
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """What REDIS_URL says for this deployment: the Sentinels and the service name."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> LocalSentinel:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
        self.master.start()
        self.replica.start()
        wait_until(lambda: self.replicated(), timeout=30, what="the replica to sync")
        quorum = len(self.sentinel_ports) // 2 + 1
        for n, port in enumerate(self.sentinel_ports):
            directory = self.workdir / f"sentinel{n}"
            directory.mkdir(parents=True, exist_ok=True)
            config = directory / "sentinel.conf"  # Sentinel rewrites it: one file each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} {quorum}\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            with (directory / "sentinel.log").open("ab") as log:
                self._sentinels.append(
                    subprocess.Popen(
                        [binary, str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
                    )
                )
        wait_until(self._sentinels_agree, timeout=60, what="the Sentinels to find each other")

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def _sentinels_agree(self) -> bool:
        for n, process in enumerate(self._sentinels):
            if process.poll() is not None:
                log = self.workdir / f"sentinel{n}" / "sentinel.log"
                raise RuntimeError(f"a Sentinel exited; see {log}")
        for port in self.sentinel_ports:
            client = self._sentinel(port)
            try:
                reply = client.execute_command("SENTINEL", "CKQUORUM", SERVICE)
                replicas = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
                if not str(reply).startswith("OK") or not replicas:
                    return False
                peers = client.execute_command("SENTINEL", "SENTINELS", SERVICE)
                if len(peers) != len(self.sentinel_ports) - 1:
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    def master_port(self) -> int | None:
        """The master's port as the Sentinels report it (None while they cannot say)."""
        client = self._sentinel(self.sentinel_ports[0])
        try:
            address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            return int(address[1]) if address else None
        except redis.RedisError:
            return None
        finally:
            client.close()

    def replicated(self) -> bool:
        """Whether the replica holds every write the master has acknowledged so far."""
        master = redis.Redis(port=self.master.port, socket_timeout=2, decode_responses=True)
        try:
            info = master.info("replication")
        except redis.RedisError:
            return False
        finally:
            master.close()
        replica = info.get("slave0")
        return (
            isinstance(replica, dict)
            and replica.get("state") == "online"
            and int(replica.get("offset", -1)) == int(info["master_repl_offset"])
        )

    def fail_over(self, timeout: float = 60) -> None:
        """SIGKILL the master once the replica has caught up, and wait until the Sentinels
        have promoted the replica and it takes writes."""
        wait_until(self.replicated, timeout=30, what="the replica to catch up")
        self.master.kill()
        wait_until(
            lambda: self.master_port() == self.replica.port,
            timeout=timeout,
            what="the Sentinels to promote the replica",
        )
        promoted = redis.Redis(port=self.replica.port, socket_timeout=2, decode_responses=True)
        try:
            wait_until(
                lambda: promoted.info("replication").get("role") == "master",
                timeout=timeout,
                what="the replica to become master",
            )
        finally:
            promoted.close()

    def stop(self) -> None:
        for process in self._sentinels:
            process.terminate()
        for process in self._sentinels:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        self._sentinels.clear()
        self.replica.stop()
        self.master.stop()
