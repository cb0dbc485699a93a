"""The backends under contract test: memory, fakeredis, and a real Redis server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import fakeredis
import pytest

from shared.backends import InMemoryBackend, RedisBackend, SessionBackend
from shared.backends.codec import CLIENT_OPTIONS, Codec, Compression
from shared.game.rules.choices import choices_for
from shared.ids import new_session_id, new_turn_id
from shared.models import GameState, TurnRecord
from shared.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    backend: SessionBackend
    kind: str
    # Let the TTL of `session_id` run out (memory: jump the clock; Redis: wait until the
    # server has expired it, polled, never longer than needed).
    expire: Callable[[str], Awaitable[None]]
    ttl: int


# The Redis kinds also cover the three storage formats (STORE_COMPRESSION): how values are
# packed must never change what the contract sees.
_URL_FIXTURES = {
    "redis": "redis_url",
    "cluster": "redis_cluster_url",
    "sentinel": "redis_sentinel_url",
}
_COMPRESSION = {
    "fakeredis": Compression.ZSTD,
    "redis": Compression.ZLIB,
    "cluster": Compression.NONE,
    "sentinel": Compression.ZSTD,
}


@pytest.fixture(params=["memory", "fakeredis", "redis", "cluster", "sentinel"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    ttl = 2
    if request.param == "memory":
        clock = FakeClock()

        async def jump(_: str) -> None:
            clock.now += ttl + 1

        yield Harness(
            InMemoryBackend(session_ttl=ttl, turn_records_kept=16, clock=clock), "memory", jump, ttl
        )
        return
    if request.param == "fakeredis":
        backend = RedisBackend(
            fakeredis.FakeAsyncRedis(**CLIENT_OPTIONS),
            session_ttl=ttl,
            turn_records_kept=16,
            max_block=2,
            codec=Codec(_COMPRESSION["fakeredis"]),
        )
    else:
        url = request.getfixturevalue(_URL_FIXTURES[request.param])
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            redis_url=url,
            celery_broker_url="redis://127.0.0.1:1/0",
            redis_session_ttl=ttl,
            turn_records_kept=16,
            redis_socket_timeout=2.5,
            store_compression=_COMPRESSION[request.param].value,
        )
        backend = RedisBackend.from_settings(settings)

    async def wait_out(session_id: str) -> None:
        deadline = time.monotonic() + ttl + 10
        while await backend.exists(session_id):
            assert time.monotonic() < deadline, "Redis did not expire the session"
            await asyncio.sleep(0.1)

    yield Harness(backend, request.param, wait_out, ttl)
    await backend.close()


def new_state(seed: int = 1) -> GameState:
    state = GameState(session_id=new_session_id(), seed=seed)
    return state.model_copy(update={"current_choices": choices_for(state)})


def new_turn(session_id: str, action: str = "Look around") -> TurnRecord:
    return TurnRecord(
        turn_id=new_turn_id(), session_id=session_id, action=action, accepted_at=time.time()
    )
