"""A worker process's runtime: one event loop, one backend, one pipeline.

Celery runs tasks as plain functions (in a prefork child, or a thread). Async code for a
turn runs on one loop per process, in a daemon thread, so the `redis.asyncio` client is
always used from the loop that created it. The runtime is made lazily and remade after a fork
(a child must not use its parent's loop or sockets). In eager dev mode the gateway installs a
runtime on its own loop with its own backend instead.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from shared.backends import SessionBackend, create_backend
from shared.settings import Settings, get_settings
from worker.pipeline import TurnPipeline
from worker.step import StepRunner

__all__ = ["WorkerRuntime", "get_runtime", "install_runtime", "reset_runtime"]

T = TypeVar("T")


class WorkerRuntime:
    def __init__(
        self,
        settings: Settings,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        backend: SessionBackend | None = None,
        step_runner: StepRunner | None = None,
    ) -> None:
        self.settings = settings
        self._thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="pocket-portals-loop", daemon=True
            )
            self._thread.start()
        self.loop = loop
        if backend is None:
            backend = self.run(self._make_backend())
        self.backend = backend
        self.pipeline = TurnPipeline(backend, settings, loop=loop, step_runner=step_runner)

    async def _make_backend(self) -> SessionBackend:
        return create_backend(self.settings)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the runtime's loop and wait for it. Never call from that loop.

        If the wait is interrupted (a time limit, a signal), the coroutine is cancelled too:
        it must not go on unobserved, holding a session's lease."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        self.pipeline.close()
        if self._thread is None:
            return
        try:
            self.run(self.backend.close(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self.loop.close()


_lock = threading.Lock()
_runtime: WorkerRuntime | None = None
_runtime_pid: int | None = None


def get_runtime() -> WorkerRuntime:
    global _runtime, _runtime_pid
    with _lock:
        if _runtime is None or _runtime_pid != os.getpid():
            _runtime = WorkerRuntime(get_settings())
            _runtime_pid = os.getpid()
        return _runtime


def install_runtime(runtime: WorkerRuntime) -> None:
    """Make `runtime` this process's runtime (eager mode: the gateway's loop and backend)."""
    global _runtime, _runtime_pid
    with _lock:
        _runtime, _runtime_pid = runtime, os.getpid()


def reset_runtime() -> None:
    global _runtime, _runtime_pid
    with _lock:
        runtime, _runtime, _runtime_pid = _runtime, None, None
    if runtime is not None:
        runtime.close()
