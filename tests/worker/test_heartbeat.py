"""The lease's heartbeat stops with the work it guards, even when its cancellation is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.backends import InMemoryBackend
from shared.settings import Settings
from worker.heartbeat import with_heartbeat


class _SwallowingBackend(InMemoryBackend):
    """A store whose lease renewal eats a cancellation, as a Redis call on Python 3.11 can
    when the cancel lands while its timeout fires (asyncio.wait_for, gh-86296)."""

    def __init__(self) -> None:
        super().__init__()
        self.renewals = 0
        self.renewing = asyncio.Event()

    async def renew_lease(self, session_id: str, holder: str, ttl: float) -> bool:
        self.renewals += 1
        self.renewing.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            pass  # lost, as described above
        return True


async def test_a_heartbeat_that_loses_its_cancellation_does_not_hold_the_turn(
    tmp_path: Path,
) -> None:
    settings = Settings(
        session_backend="redis",
        crewai_storage_dir=tmp_path,  # type: ignore[arg-type]
        lease_ttl=0.3,  # a renewal every 0.1 s
        redis_socket_timeout=1,
        _env_file=None,
    )  # type: ignore[call-arg]
    backend = _SwallowingBackend()

    async def step() -> str:
        await backend.renewing.wait()  # end the step while a renewal is under way
        return "told"

    result = await asyncio.wait_for(
        with_heartbeat(backend, settings, "s", "holder", step()), timeout=10
    )
    assert result == "told"
    renewals = backend.renewals
    await asyncio.sleep(0.5)
    assert backend.renewals == renewals  # the heartbeat stopped, even with its cancel lost
