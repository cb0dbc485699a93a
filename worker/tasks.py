"""Celery tasks. A task names a session, not a turn: it drains that session's inbox, so a
duplicate or late delivery finds nothing left to do rather than doing it twice."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.signals import worker_process_init

from shared.settings import get_settings
from worker.application import PROCESS_SESSION, READY_MARK, app
from worker.pipeline import DrainOutcome
from worker.runtime import get_runtime

__all__ = ["process_session"]

logger = logging.getLogger(__name__)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _warm_up(**_: Any) -> None:
    """Import the game (CrewAI: seconds) and open the runtime in each new child, before its
    first turn, rather than in the parent: a Flow must never have run before a fork."""
    import shared.game.flow  # noqa: F401

    get_runtime()
    logger.info("%s: pool process ready", READY_MARK)


@app.task(name=PROCESS_SESSION, bind=True, max_retries=None, acks_late=True)  # type: ignore[untyped-decorator]
def process_session(self: Task, session_id: str) -> str:
    runtime = get_runtime()
    outcome = runtime.run(runtime.pipeline.drain(session_id))
    if outcome is DrainOutcome.LEASE_BUSY and not self.request.is_eager:
        # The holder drains our turn too if it is alive; if it died, its lease expires and
        # this retry (a new message, acknowledged before this one) picks the turn up.
        raise self.retry(countdown=get_settings().lease_retry_delay)
    return outcome.value
