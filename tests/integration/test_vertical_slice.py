"""The whole path with real processes: uvicorn gateway → Redis broker → Celery worker
subprocesses → CrewAI flow step → Redis session store, observed over HTTP and SSE."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import httpx
import pytest
import redis

from shared.backends.keys import SessionKeys
from tests.support.player import Player
from tests.support.ports import free_port
from tests.support.processes import CeleryWorker, Gateway, run_python
from tests.support.sse import SseEvent
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

WorkerFactory = Callable[..., CeleryWorker]
GatewayFactory = Callable[..., Gateway]


def completed(turn_id: str) -> Callable[[list[SseEvent]], bool]:
    return lambda events: any(
        e.event == "turn.completed" and e.data["turn_id"] == turn_id for e in events
    )


def test_turns_run_in_a_separate_worker_and_arrive_by_poll_and_sse(
    worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    worker = worker_factory()
    gateway = gateway_factory()
    player = Player(gateway.url, seed=5)
    try:
        submitted: list[str] = []

        def submit() -> None:
            submitted.append(player.submit({"choice_index": 2}).json()["turn_id"])

        events = player.events(
            until=lambda evs: bool(submitted) and completed(submitted[0])(evs),
            on_open=lambda: threading.Thread(target=submit).start(),
        )
        assert [e.event for e in events] == ["turn.queued", "turn.started", "turn.completed"]
        polled = player.turn(submitted[0], wait=30)
        assert polled["status"] == "completed"
        assert events[-1].data["result"] == polled["result"]
        assert "Elowen" in polled["result"]["narrative"]
        # The worker process ran it: the gateway never loads the game.
        assert "pocket_portals.process_session" in worker.log()

        by_action = player.play({"action": "I take the first quest on the board"})
        assert by_action["result"]["state_version"] == 2
        by_choice = player.play({"choice_index": 1})
        state = player.state()
        assert state["version"] == 3
        history = state["state"]["conversation_history"]
        assert [h["turn_id"] for h in history] == [
            submitted[0],
            by_action["turn_id"],
            by_choice["turn_id"],
        ]

        resumed = player.events(last_event_id=events[-1].id, until=completed(by_choice["turn_id"]))
        assert [e.event for e in resumed].count("turn.completed") == 2
    finally:
        player.close()


def test_long_poll_waits_for_a_slow_turn(
    worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    worker_factory({"NARRATOR_DELAY": "1.5"})
    gateway = gateway_factory()
    player = Player(gateway.url)
    try:
        turn_id = player.submit({"choice_index": 1}).json()["turn_id"]
        assert player.turn(turn_id)["status"] in {"queued", "running"}
        assert player.turn(turn_id, wait=30)["status"] == "completed"
    finally:
        player.close()


def test_delete_removes_every_key(
    redis_url: str, worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    worker_factory()
    gateway = gateway_factory()
    player = Player(gateway.url)
    client = redis.Redis.from_url(redis_url)
    try:
        player.play({"choice_index": 1})
        keys = SessionKeys(player.session_id)
        assert client.exists(keys.state, keys.turns, keys.events) == 3
        deleted = player.http.delete(f"/sessions/{player.session_id}", headers=player.auth)
        assert deleted.status_code == 204
        assert client.exists(*keys.all()) == 0
        assert (
            player.http.get(f"/sessions/{player.session_id}", headers=player.auth).status_code
            == 404
        )
    finally:
        client.close()
        player.close()


def test_a_turn_refreshes_the_ttl_of_every_session_key(
    redis_url: str, worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    env = {"REDIS_SESSION_TTL": "300"}
    worker_factory(env)
    gateway = gateway_factory(env)
    player = Player(gateway.url)
    client = redis.Redis.from_url(redis_url)
    try:
        player.play({"choice_index": 1})
        keys = SessionKeys(player.session_id)
        expiring = [k for k in keys.expiring() if client.exists(k)]
        assert len(expiring) >= 4
        for key in expiring:  # as if most of the TTL had passed
            client.expire(key, 20)
        player.play({"choice_index": 1})
        ttls = [client.ttl(k) for k in expiring]
        assert all(250 < ttl <= 300 for ttl in ttls), dict(zip(expiring, ttls, strict=True))
    finally:
        client.close()
        player.close()


def test_an_idle_session_expires_into_a_clean_404(
    worker_factory: WorkerFactory, gateway_factory: GatewayFactory
) -> None:
    env = {"REDIS_SESSION_TTL": "5"}
    worker_factory(env)
    gateway = gateway_factory(env)
    player = Player(gateway.url)
    try:
        played = player.play({"choice_index": 1})
        url = f"/sessions/{player.session_id}"

        def gone() -> bool:
            return player.http.get(url, headers=player.auth).status_code == 404

        wait_until(gone, timeout=30, what="the session to expire", interval=0.25)
        body = player.http.get(url, headers=player.auth).json()
        assert body["error"]["code"] == "session_not_found"
        turn = player.http.get(f"{url}/turns/{played['turn_id']}", headers=player.auth)
        assert turn.status_code == 404
    finally:
        player.close()


def test_broker_down_at_submit_is_503_and_leaves_nothing_queued(
    redis_url: str, gateway_factory: GatewayFactory
) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    gateway = gateway_factory({"CELERY_BROKER_URL": dead_broker})
    player = Player(gateway.url)
    client = redis.Redis.from_url(redis_url)
    try:
        started = time.monotonic()
        response = player.submit({"choice_index": 1})
        assert time.monotonic() - started < 15
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "backend_unavailable"
        assert "Retry-After" in response.headers
        assert client.llen(SessionKeys(player.session_id).inbox) == 0
        ready = httpx.get(f"{gateway.url}/readyz", timeout=30)
        assert ready.status_code == 503
        # Refused, or still being retried by kombu when READINESS_TIMEOUT ends.
        checks = ready.json()["error"]["details"]
        assert checks["broker"] in {"unavailable", "timeout"} and checks["session_store"] == "ok"
    finally:
        client.close()
        player.close()


def test_dev_command_serves_a_playable_game_without_redis(gateway_factory: GatewayFactory) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {
        "SESSION_BACKEND": "memory",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "REDIS_URL": dead,
        "CELERY_BROKER_URL": dead,
    }
    gateway = gateway_factory(env, args=[sys.executable, "-m", "api.dev"])
    player = Player(gateway.url, seed=3)
    try:
        first = player.play({"choice_index": 1})
        assert "Brannoc" in first["result"]["narrative"]
        second = player.play({"choice_index": 1})
        events = player.events(last_event_id="0", until=completed(second["turn_id"]))
        assert [e.event for e in events].count("turn.completed") == 2
        assert "portals play" in gateway.log()
    finally:
        player.close()


def test_gateway_does_not_import_crewai_outside_eager_mode() -> None:
    code = "import sys, api.main; sys.exit('crewai' in sys.modules)"
    env = {"SESSION_BACKEND": "redis", "CELERY_TASK_ALWAYS_EAGER": "false"}
    result = run_python(["-c", code], env)
    assert result.returncode == 0, result.stderr


def test_memory_backend_without_eager_mode_is_refused_at_start() -> None:
    env = {"SESSION_BACKEND": "memory", "CELERY_TASK_ALWAYS_EAGER": "false"}
    for args in (["-c", "import api.main"], ["-m", "celery", "-A", "worker", "worker"]):
        result = run_python(args, env)
        assert result.returncode != 0
        assert "CELERY_TASK_ALWAYS_EAGER=true" in result.stderr
