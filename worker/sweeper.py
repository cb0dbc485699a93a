"""The sweeper: a thread in each worker's main process that finds sessions whose turns wait
with no task to run them, and queues them again.

How a turn can be left so: the gateway died between recording a turn and publishing its task;
the broker refused the task and the turn could not be withdrawn either; a task was dropped.
The gateway marks a session pending *before* recording a turn; the sweeper looks at marks
older than SWEEP_STALE_AFTER: turns still waiting and no lease held → queue the session (and
renew the mark); nothing waiting → forget the mark, unless a newer turn renewed it meanwhile.
Every worker sweeps; a session queued twice is harmless (its second task finds it drained).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from shared.backends import SessionBackend
from shared.backends.keys import SessionKeys
from shared.errors import PortalsError
from shared.metrics import WORKER_HEARTBEAT
from shared.settings import Settings

__all__ = ["Sweeper", "sweep_once"]

logger = logging.getLogger(__name__)

BATCH = 500


async def sweep_once(
    backend: SessionBackend, settings: Settings, enqueue: Callable[[str], None], now: float
) -> int:
    """One pass; returns how many sessions were queued again."""
    # Forget old activity even when nobody scrapes the gateway's metrics.
    await backend.active_sessions(now - settings.active_session_window)
    queued = 0
    for session_id, marked_at in await backend.stale_pending(
        now - settings.sweep_stale_after, BATCH
    ):
        try:
            SessionKeys(session_id)
        except ValueError:
            await backend.settle_pending(session_id, marked_at)
            continue
        if not await backend.pending_count(session_id):
            await backend.settle_pending(session_id, marked_at)
            continue
        await backend.mark_pending(session_id, now)  # look again after another interval
        if await backend.acquire_lease(session_id, "sweeper-probe", 0.001):
            # Nobody holds the lease: nothing is draining it. (The probe lease expires at once.)
            enqueue(session_id)
            queued += 1
    return queued


class Sweeper(threading.Thread):
    def __init__(
        self,
        run_pass: Callable[[float], int],
        interval: float,
        heartbeat: Path | None = None,
    ) -> None:
        super().__init__(name="pocket-portals-sweeper", daemon=True)
        self.run_pass = run_pass
        self.interval = interval
        # Touched after every pass that reached the store: worker.health reads its age.
        self.heartbeat = heartbeat
        self.stopped = threading.Event()

    def run(self) -> None:
        self._beat()
        while not self.stopped.wait(self.interval):
            try:
                queued = self.run_pass(time.time())
            except PortalsError as exc:
                logger.warning("sweep skipped: %s", exc.message)
                continue
            except Exception:
                logger.exception("sweep failed")
                continue
            self._beat()
            if queued:
                logger.warning("sweeper queued %d session(s) whose turns had no task", queued)

    def stop(self) -> None:
        self.stopped.set()

    def _beat(self) -> None:
        WORKER_HEARTBEAT.set(time.time())
        if self.heartbeat is not None:
            try:
                self.heartbeat.parent.mkdir(parents=True, exist_ok=True)
                self.heartbeat.touch()
            except OSError as exc:
                logger.warning("heartbeat file not written: %s", exc)
