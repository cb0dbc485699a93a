"""Whether the gateway takes a new session: not while the session store is nearly full.

Anonymous `POST /sessions` is the one way to make the store grow without a player token. Past
SESSION_STORE_MEMORY_WATERMARK of the store's `maxmemory` (read from INFO, sampled), new
sessions get `503 overloaded` with `Retry-After`, while every existing player goes on: their
turns need far less room than new sessions would take, and the store never reaches the point
where it refuses everyone's writes.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated

from fastapi import Depends

from api.deps import ServicesDep
from api.sampling import Sample
from shared.backends import SessionBackend
from shared.errors import BackendUnavailable, Overloaded
from shared.settings import Settings

__all__ = ["StoreMemoryGuard", "RoomForNewSession"]

logger = logging.getLogger(__name__)

_FULL = "No new adventures for now: the service is full. Adventures under way go on."


class StoreMemoryGuard:
    def __init__(self, backend: SessionBackend, settings: Settings) -> None:
        self.watermark = settings.session_store_memory_watermark
        self._use = Sample(
            backend.memory_use,
            max_age=settings.store_memory_check_interval,
            timeout=settings.redis_socket_timeout,
            what="session store",
        )
        self._warned_at = -math.inf

    async def check(self) -> None:
        if not self.watermark:
            return
        try:
            use = await self._use.get()
        except BackendUnavailable as exc:
            # The creation itself answers 503 if the store cannot take it; but a guard that
            # cannot read (no permission for INFO, say) must not stay off unnoticed.
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                logger.warning("store memory not read, new sessions unguarded: %r", exc.__cause__)
            return
        if use is None:
            return
        used, limit = use
        if used >= self.watermark * limit:
            logger.warning(
                "new session refused: the store uses %d of %d bytes (watermark %.0f%%)",
                used,
                limit,
                self.watermark * 100,
            )
            raise Overloaded(retry_after=60, message=_FULL)

    def close(self) -> None:
        self._use.close()


async def _check(services: ServicesDep) -> None:
    await services.memory_guard.check()


RoomForNewSession = Annotated[None, Depends(_check)]
