"""A pool process that dies mid-turn gives its session back at once.

A prefork child killed mid-turn (OOM killer, SIGKILL, a hard time limit) still holds its
session's lease, and the session would wait for the lease to expire (`LEASE_TTL`) before
another worker could serve it. The pool's parent learns of the death at once: Celery calls
its request's `on_failure` with `WorkerLostError` (or `on_timeout` for a hard limit) before
the task is put back on the queue. `TurnRequest` then releases the lease if the dead child
held it: drains name their lease holder `<node>/<instance>/<pid>/<thread>/<random>`
(`lease_owner`), so the parent knows which holder was the child's. `<instance>` is drawn once
per worker, in the parent before it forks: containers that share a hostname and number their
processes alike still never name each other's holders. This is safe against a child that is in fact
alive: the next attempt's start supersedes it, and a superseded attempt can neither commit
nor publish (see `SessionBackend.start_turn`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from billiard.einfo import ExceptionInfo, ExceptionWithTraceback
from celery.exceptions import WorkerLostError
from celery.worker.request import Request

from shared.metrics import ORPHANED_LEASES_RELEASED

__all__ = ["TurnRequest", "install_lease_releaser", "lease_owner"]

logger = logging.getLogger(__name__)

# (session_id, owner prefix) -> whether a lease was released. Set in the pool's parent.
LeaseReleaser = Callable[[str, str], bool]
_releaser: LeaseReleaser | None = None


# Drawn as the worker's parent imports this module (before the pool forks): its children
# inherit it.
INSTANCE = uuid.uuid4().hex[:12]


def lease_owner(node: str, pid: int, thread: int | None = None) -> str:
    """The prefix of the lease holders of the drains run by process `pid` of this worker
    (by its thread `thread`: a thread runs one drain at a time)."""
    prefix = f"{node}/{INSTANCE}/{pid}/"
    return prefix if thread is None else f"{prefix}{thread}/"


def install_lease_releaser(releaser: LeaseReleaser | None) -> None:
    global _releaser
    _releaser = releaser


class TurnRequest(Request):  # type: ignore[misc]
    def on_failure(
        self, exc_info: ExceptionInfo, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):  # as the pool hands it over
            exc = exc.exc
        if isinstance(exc, WorkerLostError):
            self._release_lease()
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if not soft:  # the child is being killed
            self._release_lease()
        super().on_timeout(soft, timeout)

    def _release_lease(self) -> None:
        args: Any = self.args
        if _releaser is None or not self.worker_pid or not args:
            return
        session_id = str(args[0])
        try:
            released = _releaser(session_id, lease_owner(self.hostname, self.worker_pid))
        except Exception as exc:
            # The lease then expires by itself, as it would without this.
            logger.warning("could not release a dead pool process's lease: %r", exc)
            return
        if released:
            ORPHANED_LEASES_RELEASED.inc()
            logger.warning(
                "pool process %d died mid-turn: its session's lease is released",
                self.worker_pid,
                extra={"session_id": session_id},
            )
