"""The lease's heartbeat: renewed every third of `LEASE_TTL` while a turn's step (or its
retry backoff) runs, so a long step does not cost the session its lease.

A lost lease is only logged: the attempt's commit is what decides whether it counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

from shared.backends import SessionBackend
from shared.errors import PortalsError
from shared.settings import Settings

__all__ = ["with_heartbeat"]

# A turn's lines keep the pipeline's logger name wherever their code lives: operators (and
# the tests) pick the pipeline's lines by it.
logger = logging.getLogger("worker.pipeline")

T = TypeVar("T")


async def with_heartbeat(
    backend: SessionBackend,
    settings: Settings,
    session_id: str,
    holder: str,
    work: Awaitable[T],
) -> T:
    """`work`, with `holder`'s lease of the session renewed until it is done."""
    stop = asyncio.Event()
    heartbeat = asyncio.create_task(_heartbeat(backend, settings, session_id, holder, stop))
    try:
        return await work
    finally:
        # Cancelling alone is not enough: on Python 3.11 a cancellation that lands while
        # a Redis call times out can be lost (asyncio.wait_for, gh-86296), and a
        # heartbeat awaited after that would keep the turn open for ever. It sees `stop`
        # at its next step, and is never waited on for longer than one Redis call.
        stop.set()
        heartbeat.cancel()
        await asyncio.wait({heartbeat}, timeout=settings.redis_socket_timeout + 1)


async def _heartbeat(
    backend: SessionBackend,
    settings: Settings,
    session_id: str,
    holder: str,
    stop: asyncio.Event,
) -> None:
    interval = settings.lease_ttl / 3
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        with contextlib.suppress(PortalsError):
            if not await backend.renew_lease(session_id, holder, settings.lease_ttl):
                # Someone else may now run this turn too; the commit decides who wins.
                logger.warning("lease lost during a turn", extra={"session_id": session_id})
                return
