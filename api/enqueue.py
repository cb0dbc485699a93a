"""Handing a session to the workers.

`CeleryEnqueuer` publishes the task by name: the gateway never imports the game code.
`EagerEnqueuer` (dev mode) runs the same task in this process, in a thread of its own so the
event loop never runs a game step; the task's async parts come back to the gateway's loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from celery import Celery

from api.sampling import Sample
from shared.errors import BackendUnavailable

__all__ = ["CeleryEnqueuer", "EagerEnqueuer", "Enqueuer"]

logger = logging.getLogger(__name__)


class Enqueuer(Protocol):
    async def enqueue(self, session_id: str) -> None:
        """Ask a worker to drain the session; `BackendUnavailable` if that cannot be done."""

    async def ping(self) -> None:
        """Raise `BackendUnavailable` if the broker does not answer."""

    async def depth(self) -> int:
        """Tasks waiting in the queue (at most a second old)."""

    async def aclose(self) -> None: ...


class CeleryEnqueuer:
    def __init__(
        self,
        app: Celery,
        task_name: str,
        *,
        priority: int | None = None,
        timeout: float = 3.0,
        depth_max_age: float = 1.0,
    ) -> None:
        self.app = app
        self.task_name = task_name
        self.priority = priority
        self.timeout = timeout
        self._depth = Sample(
            self._measure, max_age=depth_max_age, timeout=timeout, what="task queue"
        )
        # Publishing blocks on a socket: keep it off the loop, in threads of its own so a slow
        # broker cannot starve the loop's default executor.
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="enqueue")

    def _publish(self, session_id: str) -> None:
        self.app.send_task(self.task_name, args=[session_id], priority=self.priority)

    async def enqueue(self, session_id: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            # As asyncio.to_thread does: the publish (and its trace span) in this context.
            publish = functools.partial(contextvars.copy_context().run, self._publish, session_id)
            await asyncio.wait_for(loop.run_in_executor(self._executor, publish), self.timeout)
        except Exception as exc:
            logger.warning("could not publish a turn task: %s", type(exc).__name__)
            raise BackendUnavailable("task queue") from exc

    def _check_broker(self) -> None:
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=self.timeout)

    async def ping(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._check_broker), self.timeout + 1
            )
        except Exception as exc:
            raise BackendUnavailable("task queue") from exc

    def _measure_depth(self) -> int:
        queue = self.app.conf.task_default_queue
        with self.app.connection_for_read() as connection:
            try:
                declared = connection.default_channel.queue_declare(queue=queue, passive=True)
            except connection.channel_errors:
                return 0  # no worker has declared the queue yet: nothing waits in it
            return int(declared.message_count)

    async def depth(self) -> int:
        # Sampled (see api.sampling): a busy gateway must not ask the broker on every turn,
        # and a hung broker must not hold requests one after the other.
        return await self._depth.get()

    async def _measure(self) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._measure_depth)

    async def aclose(self) -> None:
        self._depth.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        from worker.application import close_celery_app

        close_celery_app(self.app)


class EagerEnqueuer:
    def __init__(self, max_threads: int = 4) -> None:
        # Not the loop's default executor: a running task waits on steps that need that one.
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="eager")
        self._tasks: set[asyncio.Future[None]] = set()

    def warm_up(self) -> None:
        """Import the game (CrewAI takes seconds) in the background, not on the first turn."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._import_game)
        self._tasks.add(future)
        future.add_done_callback(self._done)

    @staticmethod
    def _import_game() -> None:
        import worker.tasks  # noqa: F401

    @staticmethod
    def _run(session_id: str) -> None:
        from worker.tasks import process_session

        process_session.apply(args=[session_id])

    async def enqueue(self, session_id: str) -> None:
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._run, session_id)
        self._tasks.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[None]) -> None:
        self._tasks.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.error("eager turn task failed", exc_info=future.exception())

    async def ping(self) -> None:
        return None

    async def depth(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        self._executor.shutdown(wait=False, cancel_futures=True)
