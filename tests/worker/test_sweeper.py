"""The sweeper queues sessions whose turns wait with no task, and only those."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis.asyncio as aioredis

from shared.backends import InMemoryBackend, RedisBackend
from shared.backends.codec import CLIENT_OPTIONS
from shared.settings import Settings
from tests.shared.backends.conftest import new_state, new_turn
from worker.sweeper import sweep_once


def settings(tmp_path: Path) -> Settings:
    return Settings(
        session_backend="redis",  # type: ignore[arg-type]
        crewai_storage_dir=tmp_path,
        sweep_stale_after=30,
        _env_file=None,  # type: ignore[call-arg]
    )


async def test_stranded_sessions_are_queued_again(tmp_path: Path) -> None:
    backend = InMemoryBackend()
    stranded, idle, busy, fresh = (new_state() for _ in range(4))
    for state in (stranded, idle, busy, fresh):
        await backend.create(state, owner_hash="o")
        await backend.mark_pending(state.session_id, 1000.0 if state is not fresh else 1990.0)
    for state in (stranded, busy, fresh):
        await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=None)
    assert await backend.acquire_lease(busy.session_id, "a-live-worker", 60)

    queued: list[str] = []
    count = await sweep_once(backend, settings(tmp_path), queued.append, now=2000.0)

    assert queued == [stranded.session_id] and count == 1
    marks = dict(await backend.stale_pending(older_than=3000.0, limit=100))
    assert idle.session_id not in marks  # nothing waited: forgotten
    assert marks[stranded.session_id] == 2000.0  # looked at again after another interval
    assert marks[fresh.session_id] == 1990.0  # too recent to judge
    assert await sweep_once(backend, settings(tmp_path), queued.append, now=2001.0) == 0


async def test_a_sweeper_sees_only_the_sessions_sent_to_its_queue(redis_url: str) -> None:
    """Deployments (or test runs) that share one Redis must not queue each other's
    sessions: the pending set is kept per task queue."""
    ours = RedisBackend(aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS), session_ttl=60)
    theirs = RedisBackend(
        aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS),
        session_ttl=60,
        queue=f"pocket_portals.other.{uuid.uuid4().hex[:8]}",
    )
    try:
        state = new_state()
        await theirs.mark_pending(state.session_id, 1000.0)
        assert state.session_id not in dict(await ours.stale_pending(2000.0, 1000))
        assert dict(await theirs.stale_pending(2000.0, 10)) == {state.session_id: 1000.0}
    finally:
        await ours.close()
        await theirs.close()
