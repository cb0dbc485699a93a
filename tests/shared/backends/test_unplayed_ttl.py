"""A session lives UNPLAYED_SESSION_TTL until its first turn, then the full session TTL: on
the memory backend, fakeredis and a real Redis alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import fakeredis
import pytest
import redis.asyncio as aioredis

from shared.backends import InMemoryBackend, RedisBackend, SessionBackend
from shared.backends.codec import CLIENT_OPTIONS
from shared.backends.keys import SessionKeys
from tests.shared.backends.conftest import FakeClock, new_state, new_turn

SESSION_TTL = 600
UNPLAYED_TTL = 60

TimeLeft = Callable[[str], Awaitable[float]]


@pytest.fixture(params=["memory", "fakeredis", "redis"])
async def backend_and_clock(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[SessionBackend, TimeLeft]]:
    if request.param == "memory":
        clock = FakeClock()
        memory = InMemoryBackend(session_ttl=SESSION_TTL, clock=clock)

        async def memory_left(session_id: str) -> float:
            return memory._sessions[session_id].expires_at - clock()

        yield memory, memory_left
        return
    if request.param == "fakeredis":
        client = fakeredis.FakeAsyncRedis(**CLIENT_OPTIONS)
    else:
        client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"), **CLIENT_OPTIONS)
    backend = RedisBackend(client, session_ttl=SESSION_TTL)

    async def redis_left(session_id: str) -> float:
        return float(await client.pttl(SessionKeys(session_id).state)) / 1000

    yield backend, redis_left
    await backend.close()


async def test_an_unplayed_session_is_short_lived_until_its_first_turn(
    backend_and_clock: tuple[SessionBackend, TimeLeft],
) -> None:
    backend, time_left = backend_and_clock
    state = new_state()
    await backend.create(state, owner_hash="o", ttl=UNPLAYED_TTL)
    assert 0 < await time_left(state.session_id) <= UNPLAYED_TTL
    await backend.accept_turn(new_turn(state.session_id), max_pending=8, idempotency=None)
    assert await time_left(state.session_id) > UNPLAYED_TTL
    # Without a ttl, a session gets the full one at once (admin imports, tests).
    other = new_state()
    await backend.create(other, owner_hash="o")
    assert await time_left(other.session_id) > UNPLAYED_TTL
