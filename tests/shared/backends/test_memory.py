"""What only the memory backend has: `clear()`, `session_count`, and forgetting expired
sessions even when nobody asks for them again."""

from __future__ import annotations

from shared.backends import InMemoryBackend
from tests.shared.backends.conftest import FakeClock, new_state


async def test_expired_sessions_are_forgotten_and_counted_out() -> None:
    clock = FakeClock()
    backend = InMemoryBackend(session_ttl=10, clock=clock)
    old = new_state()
    await backend.create(old, owner_hash="o")
    await backend.mark_pending(old.session_id, 1.0)
    assert backend.session_count == 1
    clock.now += 11
    await backend.create(new_state(), owner_hash="o")  # sweeps the expired one
    assert backend.session_count == 1
    assert old.session_id not in backend._sessions
    assert await backend.stale_pending(older_than=10**9, limit=10) == []
    backend.clear()
    assert backend.session_count == 0
