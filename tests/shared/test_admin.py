"""`portals sessions|migrate|queue`: the operator commands against real Redis servers of
their own (exact counts need a keyspace nobody else writes to)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from shared.admin_commands import Progress
from shared.backends import RedisBackend
from shared.backends.codec import CLIENT_OPTIONS
from shared.backends.keys import SessionKeys
from shared.cli import main
from shared.settings import Settings
from tests.shared.backends.conftest import new_state, new_turn
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until


@dataclass
class Ran:
    code: int
    out: str
    err: str


Run = Callable[..., Ran]


def make_sessions(url: str, count: int, *, updates: int = 1) -> list[str]:
    async def create() -> list[str]:
        backend = RedisBackend(aioredis.Redis.from_url(url, **CLIENT_OPTIONS), session_ttl=600)
        ids = []
        for seed in range(count):
            state = new_state(seed)
            await backend.create(state, owner_hash=f"owner-{seed}")
            for _ in range(updates):
                state = await backend.update(state)
            ids.append(state.session_id)
        await backend.close()
        return ids

    return asyncio.run(create())


@pytest.fixture
def two_servers(redis_server_factory: Callable[..., RedisServer]) -> tuple[str, str]:
    return redis_server_factory().url, redis_server_factory().url


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    def invoke(*argv: str, stdin: str = "", redis_url: str = "redis://127.0.0.1:1/0") -> Ran:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        settings = Settings(_env_file=None, redis_url=redis_url)  # type: ignore[call-arg]
        monkeypatch.setattr("shared.admin_commands.get_settings", lambda: settings)
        code = main(list(argv))
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return invoke


def every_page(run: Run, url: str, *, limit: int) -> list[str]:
    """Session ids from `sessions list`, page after page until the cursor comes back 0."""
    seen: list[str] = []
    cursor = "0"
    for _ in range(1000):
        ran = run("sessions", "--redis-url", url, "list", "--limit", str(limit), "--cursor", cursor)
        assert ran.code == 0
        seen += ran.out.split()
        cursor = re.findall(r"next cursor: (\d+)", ran.err)[0]
        if cursor == "0":
            return seen
    raise AssertionError("the listing never ended")


def test_list_pages_through_every_session_and_counts_them(
    two_servers: tuple[str, str], run: Run
) -> None:
    url, _ = two_servers
    ids = make_sessions(url, 7)
    assert sorted(set(every_page(run, url, limit=2))) == sorted(ids)
    counted = run("sessions", "--redis-url", url, "list", "--count")
    assert counted.code == 0 and json.loads(counted.out) == {"sessions": 7}


def test_show_and_delete_one_session(two_servers: tuple[str, str], run: Run) -> None:
    url, _ = two_servers
    [session_id] = make_sessions(url, 1)
    shown = run("sessions", "--redis-url", url, "show", session_id)
    assert shown.code == 0
    document = json.loads(shown.out)
    assert document["session_id"] == session_id and document["version"] == 1
    assert 0 < document["ttl_seconds"] <= 600
    assert document["state"]["session_id"] == session_id
    assert document["llm_tokens"] == {"total": 0, "by_day": {}}
    assert "owner" not in shown.out  # the token hash is not shown

    async def use_tokens() -> None:
        backend = RedisBackend(aioredis.Redis.from_url(url, **CLIENT_OPTIONS), session_ttl=600)
        await backend.add_llm_tokens(session_id, "client-a", "20261129", 120)
        await backend.add_llm_tokens(session_id, "client-a", "20261130", 80)
        for _ in range(2):
            await backend.accept_turn(new_turn(session_id), max_pending=8, idempotency=None)
        await backend.close()

    asyncio.run(use_tokens())
    document = json.loads(run("sessions", "--redis-url", url, "show", session_id).out)
    assert document["llm_tokens"] == {"total": 200, "by_day": {"20261129": 120, "20261130": 80}}
    assert document["turn_records"] == 2 and document["pending_turns"] == 2
    assert run("sessions", "--redis-url", url, "delete", session_id).code == 0
    assert run("sessions", "--redis-url", url, "show", session_id).code == 3
    assert run("sessions", "--redis-url", url, "delete", session_id).code == 3
    assert run("sessions", "--redis-url", url, "show", "not-an-id").code == 3


def test_export_then_import_keeps_versions_owners_and_ttls(
    two_servers: tuple[str, str], run: Run, tmp_path: Path
) -> None:
    source, target = two_servers
    ids = make_sessions(source, 3, updates=2)
    dump = tmp_path / "sessions.jsonl"
    assert run("sessions", "--redis-url", source, "export", "-o", str(dump)).code == 0
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert sorted(line["session_id"] for line in lines) == sorted(ids)
    assert all(line["version"] == 2 and 0 < line["ttl_ms"] <= 600_000 for line in lines)

    imported = run("sessions", "--redis-url", target, "import", "-i", str(dump))
    assert imported.code == 0 and json.loads(imported.out) == {
        "written": 3,
        "kept_newer": 0,
        "failed": 0,
    }
    for line in lines:
        shown = json.loads(run("sessions", "--redis-url", target, "show", line["session_id"]).out)
        assert shown["version"] == 2 and shown["state"] == line["state"]
        assert 0 < shown["ttl_seconds"] <= 600
    client = redis.Redis.from_url(target, decode_responses=True)
    assert client.hget(SessionKeys(ids[0]).state, "owner") == "owner-0"

    # The target moves on; importing the older export again keeps the newer session.
    asyncio.run(_bump(target, ids[0]))
    again = run("sessions", "--redis-url", target, "import", stdin=dump.read_text())
    assert again.code == 3
    assert json.loads(again.out) == {"written": 0, "kept_newer": 3, "failed": 0}
    asyncio.run(_queue_turn(target, ids[0]))
    forced = run("sessions", "--redis-url", target, "import", "--overwrite", stdin=dump.read_text())
    assert forced.code == 0
    assert json.loads(forced.out) == {"written": 3, "kept_newer": 0, "failed": 0}
    # The replaced copy's queued turn, its records and its events went with it: no worker
    # applies them to the imported state.
    keys = SessionKeys(ids[0])
    assert client.exists(keys.inbox, keys.turns, keys.turn_log, keys.events) == 0
    assert asyncio.run(_head_turn(target, ids[0])) is None


async def _queue_turn(url: str, session_id: str) -> None:
    backend = RedisBackend(aioredis.Redis.from_url(url, **CLIENT_OPTIONS), session_ttl=600)
    await backend.accept_turn(new_turn(session_id), max_pending=8, idempotency=None)
    assert await backend.pending_count(session_id) == 1
    await backend.close()


async def _head_turn(url: str, session_id: str) -> object:
    backend = RedisBackend(aioredis.Redis.from_url(url, **CLIENT_OPTIONS), session_ttl=600)
    try:
        return await backend.head_turn(session_id)
    finally:
        await backend.close()


async def _bump(url: str, session_id: str) -> None:
    backend = RedisBackend(aioredis.Redis.from_url(url, **CLIENT_OPTIONS), session_ttl=600)
    state = await backend.get(session_id)
    assert state is not None
    await backend.update(state)
    await backend.close()


def test_migrate_copies_every_session_between_servers(
    two_servers: tuple[str, str], run: Run
) -> None:
    source, target = two_servers
    ids = make_sessions(source, 4)
    moved = run("migrate", "--from", source, "--to", target)
    assert moved.code == 0 and json.loads(moved.out) == {"written": 4, "kept_newer": 0}
    listed = run("sessions", "--redis-url", target, "list", "--limit", "1000")
    assert sorted(listed.out.split()) == sorted(ids)
    assert run("migrate", "--from", "memory://", "--to", target).code == 1


def test_a_bad_line_or_an_unreachable_store_is_a_clear_failure(
    two_servers: tuple[str, str], run: Run
) -> None:
    url, _ = two_servers
    [session_id] = make_sessions(url, 1)
    exported = run("sessions", "--redis-url", url, "export").out
    assert run("sessions", "--redis-url", url, "delete", session_id).code == 0
    # Bad lines are named and skipped; the good one is still restored.
    lines = ['{"session_id": ', "[1, 2]", '{"session_id": "x"}', exported.strip()]
    bad = run("sessions", "--redis-url", url, "import", stdin="\n".join(lines) + "\n")
    assert bad.code == 1, bad
    assert json.loads(bad.out) == {"written": 1, "kept_newer": 0, "failed": 3}
    assert "line 1: " in bad.err and "line 2: not a JSON object" in bad.err
    assert "line 3: lacks owner_hash, state, version" in bad.err
    assert run("sessions", "--redis-url", url, "show", session_id).code == 0
    down = run("sessions", "--redis-url", "redis://127.0.0.1:1/0", "list")
    assert down.code == 1 and "did not answer" in down.err


def test_queue_stats(two_servers: tuple[str, str], run: Run) -> None:
    url, _ = two_servers
    ran = run("queue", "stats", redis_url=url)
    assert ran.code == 0
    stats = json.loads(ran.out)
    assert stats["waiting_tasks"] == 0 and stats["sessions_with_turns_waiting"] == 0


def test_queue_stats_count_every_priority_on_a_redis_broker(
    redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.application import (
        PROCESS_SESSION,
        TURN_PRIORITY,
        URGENT_PRIORITY,
        close_celery_app,
        create_celery_app,
    )

    queue = f"pocket_portals.test.{uuid.uuid4().hex[:12]}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_url,
        celery_queue=queue,
    )
    monkeypatch.setattr("shared.admin_commands.get_settings", lambda: settings)
    celery = create_celery_app(settings)
    try:
        for priority in (TURN_PRIORITY, TURN_PRIORITY, URGENT_PRIORITY):
            celery.send_task(PROCESS_SESSION, args=["s" * 24], priority=priority)
        assert main(["queue", "stats"]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["queue"] == queue and stats["waiting_tasks"] == 3
    finally:
        with celery.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue=queue)
        close_celery_app(celery)


def test_queue_stats_on_rabbitmq(
    redis_url: str,
    amqp_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker.application import PROCESS_SESSION, close_celery_app, create_celery_app

    queue = f"pocket_portals.test.{uuid.uuid4().hex[:12]}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_url,
        celery_broker_url=amqp_url,
        celery_queue=queue,
    )
    monkeypatch.setattr("shared.admin_commands.get_settings", lambda: settings)
    celery = create_celery_app(settings)
    try:
        for _ in range(3):
            celery.send_task(PROCESS_SESSION, args=["s" * 24])

        def counted() -> dict[str, Any] | None:
            # AMQP publishes are not confirmed: the broker may count a task a moment after
            # its publish returned (a CI run saw 1 of 3).
            assert main(["queue", "stats"]) == 0
            read: dict[str, Any] = json.loads(capsys.readouterr().out)
            return read if read["waiting_tasks"] == 3 else None

        stats = wait_until(counted, timeout=30, what="three tasks counted", interval=0.1)
        assert stats["queue"] == queue
        assert stats["consumers"] == 0 and stats["unacknowledged_tasks"] is None
    finally:
        with celery.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue=queue)
        close_celery_app(celery)


def test_migrate_from_standalone_to_a_cluster(
    two_servers: tuple[str, str], redis_cluster_url: str, run: Run
) -> None:
    source, _ = two_servers
    ids = make_sessions(source, 5)
    moved = run("migrate", "--from", source, "--to", redis_cluster_url)
    assert moved.code == 0 and json.loads(moved.out)["written"] == 5
    # Page by page, one node after another (the cluster is shared by the whole run).
    assert set(ids) <= set(every_page(run, redis_cluster_url, limit=2))
    for session_id in ids:
        shown = run("sessions", "--redis-url", redis_cluster_url, "show", session_id)
        assert shown.code == 0 and json.loads(shown.out)["version"] == 1
        assert run("sessions", "--redis-url", redis_cluster_url, "delete", session_id).code == 0


def test_an_id_that_starts_with_a_dash_is_an_id_not_an_option(
    two_servers: tuple[str, str], run: Run
) -> None:
    url, _ = two_servers
    [session_id] = make_sessions(url, 1)
    keys = SessionKeys(session_id)
    dashed = "-" + session_id[1:]
    client = redis.Redis.from_url(url)
    client.rename(keys.state, SessionKeys(dashed).state)
    state = client.hget(SessionKeys(dashed).state, "state")
    assert state is not None
    shown = run("sessions", "--redis-url", url, "show", dashed)
    # The stored state still names the old id; what matters is that the id reached the store.
    assert shown.code == 0 and json.loads(shown.out)["session_id"] == dashed
    assert run("sessions", "--redis-url", url, "delete", dashed).code == 0


def test_progress_draws_a_bar_with_a_total_and_a_rate_without_one() -> None:
    out = io.StringIO()
    progress = Progress("copied", 200, out=out)
    progress.step(50)
    assert progress.line(progress._started + 2).startswith(
        "[########----------------------]  25% 50/200 copied, 25/s"
    )
    progress.finish()
    assert out.getvalue().endswith("\n") and "50/200 copied" in out.getvalue()
    counting = Progress("exported", out=io.StringIO())
    counting.step(30)
    assert counting.line(counting._started + 3) == "30 exported, 10/s"


def test_every_command_says_which_store_it_reads(
    two_servers: tuple[str, str],
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = two_servers
    given = run("sessions", "--redis-url", url, "list")
    assert f"portals: session store {url} (from --redis-url)" in given.err
    from_settings = run("queue", "stats", redis_url=url)
    assert f"session store {url} (from REDIS_URL)" in from_settings.err
    assert f"broker {url} (CELERY_BROKER_URL is not set: REDIS_URL's)" in from_settings.err
    secret = run("sessions", "--redis-url", "redis://:hunter2@127.0.0.1:1/0", "list")
    assert "hunter2" not in secret.err and "redis://:***@127.0.0.1:1/0" in secret.err
    # Nothing set at all: the default is named as the default. (An id that is not one is
    # refused before any connection, so no Redis on this machine is touched.)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setattr("shared.admin_commands.get_settings", lambda: defaults)
    assert main(["sessions", "show", "not-an-id"]) == 3
    said = capsys.readouterr().err
    assert f"session store {defaults.redis_url} (REDIS_URL is not set: the default)" in said
