"""The production path as an operator runs it: both images built from the project's
Dockerfiles and the project's docker-compose.yml, unchanged, brought up with
`--scale worker=2` on a real container engine (podman, see tests/support/containers.py).

Turns are played through the published port, every service's healthcheck command runs, and
the stack is stopped with a turn running: SIGTERM to the gateway and the workers with each
service's `stop_grace_period`, then to Redis, in the order Docker Compose stops services that
depend on others. The turn must finish (or go back to the queue), and after the stack comes
back on the same volume the adventure goes on from where it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import yaml

from tests.support.containers import (
    ComposeStack,
    Podman,
    engine_missing,
    engine_unsupported,
    ensure_base_images,
)
from tests.support.player import Player
from tests.support.ports import free_port
from tests.support.processes import REPO_ROOT
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.containers, pytest.mark.timeout(1800)]

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# A fixed project name, so the next run reuses the image layers (the worker's dependencies
# take minutes to install); whatever a killed run left behind is removed first.
PROJECT = "pocketportals-stacktest"
# Each turn waits this long in the offline narrator (the compose file's NARRATOR_DELAY
# drill), so a turn is surely running when the stack is stopped.
NARRATOR_DELAY = 4.0
WORKERS = 2


def _compose() -> dict[str, Any]:
    """The compose file, with the services a plain `up` starts (an opt-in profile's, such as
    observability's, are left out)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    loaded["services"] = {
        name: spec for name, spec in loaded["services"].items() if "profiles" not in spec
    }
    return loaded


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    number = value.rstrip("smh")
    unit = value[len(number) :] or "s"
    return float(number) * units[unit]


def _grace(service: str) -> float:
    # Compose's default when a service names none.
    return _seconds(str(_compose()["services"][service].get("stop_grace_period", "10s")))


def _dump(stack: ComposeStack) -> str:
    parts = []
    for container in stack.containers():
        name = str(container["Names"][0])
        parts.append(f"--- {name} ({container.get('State')}):\n{stack.logs(name)[-3000:]}")
    return "\n".join(parts)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_ready(stack: ComposeStack, url: str) -> None:
    try:
        wait_until(lambda: _ready(url), timeout=180, what=f"{url}/readyz", interval=0.5)
        # Every worker replica's pool is up before turns are counted per replica.
        wait_until(
            lambda: all(
                stack.logs(name).count("pool process ready") >= 1 for name in stack.names("worker")
            ),
            timeout=180,
            what="both worker replicas' pools",
            interval=0.5,
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_dump(stack)}") from None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    unsupported = engine_unsupported()
    if unsupported is not None:
        pytest.skip(unsupported)
    missing = engine_missing()
    if missing is not None:
        pytest.fail(
            f"The stack test needs {missing}. ./scripts/test installs them from Debian's "
            "packages (and podman-compose with the test extra): run it, or install them."
        )
    workdir = tmp_path_factory.mktemp("containers")
    podman = Podman(workdir)
    ensure_base_images(podman, workdir)
    port = free_port()
    stack = ComposeStack(
        podman,
        COMPOSE_FILE,
        PROJECT,
        {"PORTALS_HTTP_PORT": str(port), "NARRATOR_DELAY": str(NARRATOR_DELAY)},
    )
    stack.remove()
    try:
        # Built first: `up --build --scale` would build the worker image once per replica.
        stack.compose_run("build", timeout=1500)
        stack.compose_run("up", "-d", "--scale", f"worker={WORKERS}")
        _wait_ready(stack, _url(stack))
        # What runs is what the repository ships: images built from its Dockerfiles.
        for service in ("api", "worker"):
            for name in stack.names(service):
                assert stack.inspect(name)["ImageName"].endswith(f"{PROJECT}_{service}:latest")
        yield stack
    finally:
        stack.remove()


def _url(stack: ComposeStack) -> str:
    return f"http://127.0.0.1:{stack.env['PORTALS_HTTP_PORT']}"


def _play(player: Player) -> dict[str, Any]:
    """One turn, waited for as long as a busy machine may need (a turn takes NARRATOR_DELAY)."""
    accepted = player.submit({"choice_index": 1})
    assert accepted.status_code == 202, accepted.text
    turn = player.finished(accepted.json()["turn_id"], timeout=120)
    assert turn["status"] == "completed", turn
    return turn


@contextmanager
def _logs_on_failure(stack: ComposeStack) -> Iterator[None]:
    """A failure's report carries every container's log: the stack is gone afterwards."""
    try:
        yield
    except (AssertionError, TimeoutError) as failure:
        raise AssertionError(f"{failure}\n{_dump(stack)}") from failure


def _completed_turns(log: str) -> set[str]:
    turns = set()
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("logger") == "worker.pipeline" and " completed in " in record["message"]:
            turns.add(str(record["turn_id"]))
    return turns


def test_both_worker_replicas_serve_turns_through_the_published_port(
    stack: ComposeStack,
) -> None:
    url = _url(stack)
    workers = stack.names("worker")
    assert len(workers) == WORKERS, workers
    played: set[str] = set()
    # As many players as the stack has pool processes, each playing a turn a round: the
    # broker hands each replica work as soon as it has a free process, until both served.
    players = [Player(url, seed=seed) for seed in range(2 * WORKERS)]

    def play_one(player: Player) -> str:
        turn = _play(player)
        assert player.state()["version"] == turn["result"]["state_version"]
        return str(turn["turn_id"])

    def served_by_each() -> dict[str, set[str]]:
        return {name: _completed_turns(stack.logs(name)) & played for name in workers}

    try:
        with _logs_on_failure(stack), ThreadPoolExecutor(len(players)) as pool:
            for _ in range(10):
                played |= set(pool.map(play_one, players))
                if all(served_by_each().values()):
                    break
    finally:
        for player in players:
            player.close()
    served = served_by_each()
    assert all(served.values()), f"turns served per replica: {served}\n{_dump(stack)}"
    # Every turn ran exactly once, on one replica.
    assert set().union(*served.values()) == played
    assert sum(len(turns) for turns in served.values()) == len(played)


def test_every_services_healthcheck_passes(stack: ComposeStack) -> None:
    services = _compose()["services"]
    checked = []
    for service, spec in services.items():
        assert "healthcheck" in spec, f"{service} has no healthcheck"
        for name in stack.names(service):
            done = stack.podman.run("healthcheck", "run", name, check=False, timeout=60)
            assert done.returncode == 0, (
                f"healthcheck of {name}: {done.stdout}{done.stderr}\n{stack.logs(name)[-3000:]}"
            )
            checked.append(name)
    assert len(checked) == len(services) - 1 + WORKERS


def test_the_observability_profiles_prometheus_scrapes_every_replica_with_the_rules(
    stack: ComposeStack,
) -> None:
    """`--profile observability`'s Prometheus, brought up beside the running stack: it finds
    the gateway and each worker replica by the compose network's names (the replicas by DNS
    service discovery) and loads the service's alert rules, which evaluate without error.
    Debian's Prometheus stands in for the upstream image (tests/support/containers.py);
    Grafana and Jaeger have no such stand-in here (neither is packaged by Debian)."""
    port = free_port()
    stack.env["PROMETHEUS_PORT"] = str(port)
    url = f"http://127.0.0.1:{port}"
    expected = [
        group["name"]
        for group in yaml.safe_load((REPO_ROOT / "deploy/prometheus/rules.yml").read_text())[
            "groups"
        ]
    ]

    def scraped() -> dict[str, list[str]] | None:
        try:
            active = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]
        except (httpx.HTTPError, ValueError):
            return None
        health: dict[str, list[str]] = {}
        for target in active["activeTargets"]:
            health.setdefault(target["labels"]["job"], []).append(target["health"])
        everyone = (
            health.get("pocket-portals-gateway") == ["up"]
            and health.get("pocket-portals-worker") == ["up"] * WORKERS
        )
        return health if everyone else None

    def evaluated() -> list[dict[str, Any]] | None:
        groups: list[dict[str, Any]] = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"][
            "groups"
        ]
        rules = [rule for group in groups for rule in group["rules"]]
        return groups if rules and all(rule["health"] == "ok" for rule in rules) else None

    try:
        with _logs_on_failure(stack):
            stack.compose_run("--profile", "observability", "up", "-d", "--no-deps", "prometheus")
            wait_until(scraped, timeout=180, what="every replica scraped", interval=1)
            groups = wait_until(evaluated, timeout=120, what="the rules evaluated", interval=1)
        assert [group["name"] for group in groups] == expected
    finally:
        for name in stack.names("prometheus"):
            stack.podman.run("rm", "-f", "-t", "0", name, check=False)


def test_stopping_the_stack_mid_turn_loses_nothing(stack: ComposeStack) -> None:
    with _logs_on_failure(stack):
        _stop_mid_turn_and_come_back(stack)


def _stop_mid_turn_and_come_back(stack: ComposeStack) -> None:
    url = _url(stack)
    player = Player(url, seed=7)
    try:
        first = _play(player)
        accepted = player.submit({"choice_index": 1})
        assert accepted.status_code == 202, accepted.text
        turn_id = accepted.json()["turn_id"]
        wait_until(
            lambda: player.turn(turn_id)["status"] == "running",
            timeout=60,
            what="the turn to start",
        )
    finally:
        player.close()

    # Dependents first, each with its stop_grace_period, then what they depend on.
    services = _compose()["services"]
    dependents = [name for name, spec in services.items() if "depends_on" in spec]
    started = time.monotonic()
    stack.stop(
        [name for service in dependents for name in stack.names(service)],
        max(_grace(service) for service in dependents),
    )
    stopping = time.monotonic() - started
    rest = [service for service in services if service not in dependents]
    stack.stop([name for service in rest for name in stack.names(service)], 10)
    for name in (name for service in services for name in stack.names(service)):
        state = stack.inspect(name)["State"]
        # 0: a warm shutdown; 137 would be the engine's SIGKILL after the grace period.
        assert state["ExitCode"] == 0, f"{name} exited {state['ExitCode']}\n{stack.logs(name)}"
    assert stopping < _grace("worker"), stopping

    worker_logs = {name: stack.logs(name) for name in stack.names("worker")}
    finished = [name for name, log in worker_logs.items() if turn_id in _completed_turns(log)]
    requeued = [
        name for name, log in worker_logs.items() if "Restoring" in log and "unacknowledged" in log
    ]
    assert finished or requeued, _dump(stack)

    # The same volume: the adventure goes on where it was, the stopped turn applied once.
    stack.compose_run("up", "-d", "--scale", f"worker={WORKERS}")
    _wait_ready(stack, url)
    resumed = Player.resume(url, player.session_id, player.token, timeout=90)
    try:
        # A re-queued turn waits for the broker's redelivery or the sweeper: bounded by
        # SWEEP_STALE_AFTER plus a sweep, far under this.
        turn = resumed.finished(turn_id, timeout=120)
        assert turn["status"] == "completed", turn
        assert turn["result"]["state_version"] == first["result"]["state_version"] + 1
        after = _play(resumed)
        assert after["result"]["state_version"] == turn["result"]["state_version"] + 1
        assert resumed.state()["version"] == after["result"]["state_version"]
    finally:
        resumed.close()
