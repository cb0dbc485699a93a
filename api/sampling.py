"""A value the gateway reads from a backend now and then, not on every request.

`Sample` measures at most once per `max_age` seconds, by one measurement at a time that every
request arriving meanwhile awaits (single flight), within `timeout` seconds. A failed
measurement is kept as long as a value would be: with a hung broker or store, requests wait
out one timeout together, once per `max_age`, instead of one after the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, cast

from shared.errors import BackendUnavailable

__all__ = ["Sample"]

T = TypeVar("T")


class Sample(Generic[T]):
    def __init__(
        self, measure: Callable[[], Awaitable[T]], *, max_age: float, timeout: float, what: str
    ) -> None:
        self._measure = measure
        self.max_age = max_age
        self.timeout = timeout
        self.what = what
        self._last: tuple[T | None, BaseException | None, float] = (None, None, float("-inf"))
        self._measuring: asyncio.Future[tuple[T | None, BaseException | None]] | None = None

    async def get(self) -> T:
        """The value, at most `max_age` old; `BackendUnavailable` when it could not be had."""
        value, failure, measured_at = self._last
        if time.monotonic() - measured_at > self.max_age:
            if self._measuring is None:
                self._measuring = asyncio.ensure_future(self._run())
            # Shielded: a request that gives up does not cancel the others' measurement.
            value, failure = await asyncio.shield(self._measuring)
        if failure is not None:
            raise BackendUnavailable(self.what) from failure
        return cast(T, value)

    async def _run(self) -> tuple[T | None, BaseException | None]:
        try:
            outcome: tuple[T | None, BaseException | None] = (
                await asyncio.wait_for(self._measure(), self.timeout),
                None,
            )
        except Exception as exc:
            outcome = (None, exc)
        finally:
            self._measuring = None
        self._last = (*outcome, time.monotonic())
        return outcome

    def close(self) -> None:
        if self._measuring is not None:
            self._measuring.cancel()
