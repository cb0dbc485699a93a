"""docker-compose.yml without a container engine: each service's own command, environment and
healthcheck, run as plain processes on this machine (the stack test runs the real images).

Only what cannot be the same outside a container is translated: each Redis service (its
host name) becomes a throwaway redis-server run with the service's own command, listening
ports become free ones, and absolute paths (which inside the image belong to the container)
move under a fresh temporary directory that nobody has created yet, as in a new container.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.nginx import NginxProxy, nginx_binary
from tests.support.player import Player
from tests.support.ports import free_port
from tests.support.processes import REPO_ROOT, ManagedProcess
from tests.support.redis_server import RedisServer, redis_server_binary
from tests.support.waiting import wait_until
from worker.application import READY_MARK

pytestmark = pytest.mark.integration

_PLACEHOLDER = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
_BIN = Path(sys.executable).parent


@dataclass
class Translation:
    # Each Redis service's name and the port of the redis-server that stands in for it.
    redis_ports: dict[str, int]
    # A port inside a container and the free one that stands in for it here.
    ports: dict[str, int]
    root: Path

    def word(self, word: str) -> str:
        word = _PLACEHOLDER.sub(lambda match: match.group(2) or "", word)
        for service, port in self.redis_ports.items():
            word = word.replace(f"{service}:6379", f"127.0.0.1:{port}")
        word = word.replace("0.0.0.0", "127.0.0.1")
        for inside, here in self.ports.items():
            word = word.replace(f"127.0.0.1:{inside}", f"127.0.0.1:{here}")
        if word.startswith("/") and not word.startswith("/dev/"):
            return str(self.root / word.lstrip("/"))
        return str(self.ports.get(word, word))

    def command(self, words: list[str]) -> list[str]:
        translated = [self.word(str(word)) for word in words]
        program = translated[0]
        if program == "python":
            return [sys.executable, *translated[1:]]
        if (_BIN / program).exists():
            return [str(_BIN / program), *translated[1:]]
        return translated

    def environment(self, service: dict[str, Any]) -> dict[str, str]:
        env = {name: self.word(str(value)) for name, value in service["environment"].items()}
        # Settings' own default path for it belongs to the container too.
        env.setdefault("WORKER_HEARTBEAT_FILE", self.word("/tmp/pocket-portals-worker.heartbeat"))
        return env


@dataclass
class PlainStack:
    services: dict[str, Any]
    translation: Translation
    env: dict[str, dict[str, str]]
    processes: dict[str, ManagedProcess]

    @property
    def url(self) -> str:
        """Where players come in: the proxy, as the compose file publishes it."""
        return f"http://127.0.0.1:{self.translation.ports['8080']}"

    def healthcheck(self, service: str) -> subprocess.CompletedProcess[str]:
        test = self.services[service]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        command = self.translation.command(test[1:])
        if command[0] == "redis-cli":  # in its container it asks the server beside it
            command[1:1] = ["-p", str(self.translation.redis_ports[service])]
        return subprocess.run(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **self.env.get(service, {})},
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def plain_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainStack]:
    if redis_server_binary() is None or shutil.which("redis-cli") is None:
        pytest.fail("This test runs the compose file's redis-server and redis-cli: install them.")
    if nginx_binary() is None or shutil.which("wget") is None:
        pytest.fail("This test runs the proxy (nginx) and its healthcheck (wget): install them.")
    services = {
        name: spec
        for name, spec in yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())[
            "services"
        ].items()
        # The stack's own services: an opt-in profile (observability) is not started by `up`.
        if "profiles" not in spec
    }
    workdir = tmp_path_factory.mktemp("compose")
    redis_services = [name for name, spec in services.items() if "redis" in spec.get("image", "")]
    translation = Translation(
        {name: free_port() for name in redis_services},
        {"8000": free_port(), "8080": free_port(), "9808": free_port()},
        workdir / "root",
    )
    servers = []
    for name in redis_services:
        command = services[name]["command"]
        assert command[0] == "redis-server"
        servers.append(
            RedisServer(
                workdir / name,
                port=translation.redis_ports[name],
                extra_args=[translation.word(str(arg)) for arg in command[1:]],
            ).start()
        )
    env = {name: translation.environment(services[name]) for name in ("api", "worker")}
    processes = {
        name: ManagedProcess(
            name, translation.command(services[name]["command"]), env[name], workdir
        )
        for name in ("api", "worker")
    }
    assert services["proxy"]["volumes"] == ["./docker/nginx.conf:/etc/nginx/nginx.conf:ro"]
    proxy = NginxProxy(
        workdir / "proxy",
        f"127.0.0.1:{translation.ports['8000']}",
        port=translation.ports["8080"],
    )
    try:
        for process in processes.values():
            process.start()
        proxy.start()
        yield PlainStack(services, translation, env, processes)
    finally:
        proxy.stop()
        for process in processes.values():
            process.stop()
        for server in servers:
            server.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def test_compose_services_start_and_play_a_turn_as_plain_processes(
    plain_stack: PlainStack,
) -> None:
    gateway, worker = plain_stack.processes["api"], plain_stack.processes["worker"]

    def up() -> bool:
        gateway.check_alive()
        worker.check_alive()
        return _answers(f"{plain_stack.url}/readyz") and READY_MARK in worker.log()

    wait_until(up, timeout=120, what="the compose services as processes", interval=0.2)
    player = Player(plain_stack.url, seed=3)
    try:
        turn = player.play({"choice_index": 1}, wait=30)
        assert turn["result"]["state_version"] == 1
    finally:
        player.close()
    # The directories the compose file names were made by the service itself.
    multiproc = Path(plain_stack.env["worker"]["PROMETHEUS_MULTIPROC_DIR"])
    assert any(multiproc.glob("*.db"))
    metrics = f"http://127.0.0.1:{plain_stack.translation.ports['9808']}/metrics"
    wait_until(lambda: _answers(metrics), timeout=60, what="the worker's metrics port")
    assert "pocket_portals_turns_completed_total 1.0" in httpx.get(metrics).text


def test_every_compose_healthcheck_passes_as_a_plain_process(plain_stack: PlainStack) -> None:
    def passes(service: str) -> subprocess.CompletedProcess[str] | None:
        if service in plain_stack.processes:
            plain_stack.processes[service].check_alive()
        result = plain_stack.healthcheck(service)
        return result if result.returncode == 0 else None

    for service in plain_stack.services:
        wait_until(
            partial(passes, service), timeout=60, what=f"the {service} healthcheck", interval=0.5
        )


def test_worker_stops_warm_on_sigterm(plain_stack: PlainStack) -> None:
    worker = plain_stack.processes["worker"]
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0, worker.log()[-3000:]
