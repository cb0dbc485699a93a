"""Celery tasks. A task names a session, not a turn: it drains that session's inbox, so a
duplicate or late delivery finds nothing left to do rather than doing it twice."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from celery import Task
from celery.signals import worker_process_init, worker_shutting_down

from shared.errors import BackendUnavailable
from shared.settings import get_settings
from worker.application import PROCESS_SESSION, READY_MARK, app
from worker.pipeline import DrainOutcome
from worker.runtime import get_runtime

__all__ = ["process_session"]

logger = logging.getLogger(__name__)

# Retry delays while the session store is down: quick at first, then every 10 s.
_OUTAGE_BACKOFF = (1, 2, 5, 10)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _warm_up(**_: Any) -> None:
    """Import the game (CrewAI: seconds) and open the runtime in each new child, before its
    first turn, rather than in the parent: a Flow must never have run before a fork."""
    import shared.game.flow  # noqa: F401

    get_runtime()
    logger.info("%s: pool process ready", READY_MARK)


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _bound_warm_shutdown(**_: Any) -> None:
    """SIGTERM starts a warm shutdown: no new turns, running ones finish. If they have not
    finished after WORKER_SHUTDOWN_TIMEOUT, escalate to a cold shutdown, which stops them and
    puts their (unacknowledged) tasks back on the queue for another worker."""
    timeout = get_settings().worker_shutdown_timeout
    escalate = threading.Timer(timeout, os.kill, args=(os.getpid(), signal.SIGQUIT))
    escalate.daemon = True
    escalate.start()


@app.task(name=PROCESS_SESSION, bind=True, max_retries=None, acks_late=True)  # type: ignore[untyped-decorator]
def process_session(self: Task, session_id: str) -> str:
    runtime = get_runtime()
    try:
        outcome = runtime.run(runtime.pipeline.drain(session_id))
    except BackendUnavailable as exc:
        # The turn stays at the head of its inbox; try again when the store is back. If the
        # broker is down too, this retry cannot be published: the task then fails without an
        # acknowledgement and the broker re-delivers it after its visibility timeout.
        delay = _OUTAGE_BACKOFF[min(self.request.retries, len(_OUTAGE_BACKOFF) - 1)]
        logger.warning("session store unavailable; retrying in %ss", delay)
        raise self.retry(exc=exc, countdown=delay) from exc
    if outcome is DrainOutcome.LEASE_BUSY and not self.request.is_eager:
        # The holder drains our turn too if it is alive; if it died, its lease expires and
        # this retry (a new message, acknowledged before this one) picks the turn up.
        raise self.retry(countdown=get_settings().lease_retry_delay)
    return outcome.value
