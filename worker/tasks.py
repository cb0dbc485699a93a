"""Celery tasks. A task names a session, not a turn: it drains that session's inbox, so a
duplicate or late delivery finds nothing left to do rather than doing it twice."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Reject
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutting_down,
)

from shared.directories import ensure_directory, ensure_file_writable
from shared.errors import BackendUnavailable, ConfigurationError
from shared.game.llm.agents_config import load_agents
from shared.settings import get_settings
from shared.tracing import flush_traces, setup_tracing
from worker.application import (
    PROCESS_SESSION,
    READY_MARK,
    TURN_PRIORITY,
    URGENT_PRIORITY,
    app,
    turn_priority,
    urgent_priority,
)
from worker.lost import TurnRequest, install_lease_releaser, lease_owner
from worker.metrics import prepare_metrics_dir, serve_worker_metrics
from worker.open_files import allow_open_files
from worker.pipeline import DrainOutcome
from worker.runtime import WorkerRuntime, get_runtime
from worker.sweeper import Sweeper, sweep_once

__all__ = ["process_session"]

logger = logging.getLogger(__name__)

# Retry delays while the session store is down: quick at first, then every 10 s.
_OUTAGE_BACKOFF = (1, 2, 5, 10)
_BUG_RETRIES = 3


def _trace() -> None:
    """Traces on (OTEL_EXPORTER_OTLP_ENDPOINT): in a process that runs or publishes tasks,
    after any fork (an exporter's thread does not survive one)."""
    if setup_tracing(get_settings(), "pocket-portals-worker"):
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _flush_traces(**_: Any) -> None:
    """A pool process ends with os._exit, past atexit: its last spans go out now."""
    flush_traces(timeout=2.0)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _warm_up(**_: Any) -> None:
    """Open the runtime in each new child, before its first turn. The game (CrewAI) is
    imported already: by the parent before it forks (see `_prepare_files`), or here."""
    import shared.game.flow  # noqa: F401

    _trace()
    get_runtime()
    logger.info("%s: pool process ready", READY_MARK)


@worker_init.connect  # type: ignore[untyped-decorator]
def _prepare_files(**_: Any) -> None:
    """Refuse to start, naming the setting, rather than run a worker whose metrics or
    heartbeat cannot be written (its health check would call it dead). Celery logs and
    ignores an exception from a signal handler; SystemExit is what stops the worker."""
    settings = get_settings()
    try:
        prepare_metrics_dir(settings)
        ensure_file_writable(settings.worker_heartbeat_file, "WORKER_HEARTBEAT_FILE")
        # Made again by each pool process as it imports the game; a refusal there would
        # only be logged, and every turn would fail.
        ensure_directory(settings.crewai_storage_dir, "CREWAI_STORAGE_DIR")
        load_agents(settings.agents_file)  # a bad AGENTS_FILE refuses here, not at a turn
    except ConfigurationError as exc:
        logger.critical("worker not started: %s", exc.message)
        raise SystemExit(exc.message) from exc
    allow_open_files(settings.worker_step_threads)
    # Imported (never run: a Flow must not have run before a fork) in the parent, once, so
    # a pool process forked later has it already: a child that replaces a dead one takes
    # turns at once instead of after seconds of import, and the children share its pages.
    import shared.game.flow  # noqa: F401


_sweeper: Sweeper | None = None


def _forks(consumer: Any) -> bool:
    from celery.concurrency.prefork import TaskPool as PreforkPool

    pool_cls = getattr(getattr(consumer, "controller", None), "pool_cls", None)
    return isinstance(pool_cls, type) and issubclass(pool_cls, PreforkPool)


@worker_ready.connect  # type: ignore[untyped-decorator]
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    """In the main process, once the pool is up (its children have forked already)."""
    global _sweeper
    if not _forks(sender):
        # A thread pool runs turns in this very process, which never forks: warm it up here,
        # as each prefork child does for itself. (A prefork parent is never traced: a child
        # forked later would share its exporter's connection. The turns it re-queues carry
        # their own trace context.)
        _warm_up()
    settings = get_settings()
    runtime = WorkerRuntime(settings)

    def publish(session_id: str) -> None:
        app.send_task(PROCESS_SESSION, args=[session_id], priority=turn_priority(settings))

    def run_pass(now: float) -> int:
        return runtime.run(sweep_once(runtime.backend, settings, publish, now), timeout=60)

    def release_orphaned(session_id: str, owner: str) -> bool:
        release = runtime.backend.release_orphaned_lease(session_id, owner)
        if not runtime.run(release, timeout=settings.redis_socket_timeout * 2):
            return False
        urgent = urgent_priority(settings)
        if urgent is not None:
            # Its task goes back to the far end of the queue: this one goes to the front.
            try:
                app.send_task(PROCESS_SESSION, args=[session_id], priority=urgent)
            except Exception as exc:
                # The requeued task still comes, behind the backlog.
                logger.warning("could not send a dead pool process's session ahead: %r", exc)
        return True

    install_lease_releaser(release_orphaned)

    _sweeper = Sweeper(run_pass, settings.sweep_interval, settings.worker_heartbeat_file)
    _sweeper.start()
    serve_worker_metrics(settings)


@worker_shutting_down.connect  # type: ignore[untyped-decorator]
def _bound_warm_shutdown(**_: Any) -> None:
    """SIGTERM starts a warm shutdown: no new turns, running ones finish. If they have not
    finished after WORKER_SHUTDOWN_TIMEOUT, escalate to a cold shutdown, which stops them and
    puts their (unacknowledged) tasks back on the queue for another worker."""
    if _sweeper is not None:
        _sweeper.stop()
    timeout = get_settings().worker_shutdown_timeout
    escalate = threading.Timer(timeout, os.kill, args=(os.getpid(), signal.SIGQUIT))
    escalate.daemon = True
    escalate.start()


def _retry(task: Task, exc: Exception | None, countdown: float) -> NoReturn:
    """Retry with a new message; if even that cannot be published (the broker is down too),
    give the message back to the broker instead of letting Celery drop it."""
    try:
        raise task.retry(exc=exc, countdown=countdown)
    except Reject as refused:
        raise Reject(refused.reason, requeue=True) from exc


def _again_later(task: Task, countdown: float) -> None:
    """The same task again as a new message, without raising Retry: a raised Retry makes
    Celery capture the whole stack as billiard's ExceptionInfo, which in a thread-pool worker
    handing sessions on all the time was a fifth of its CPU. For the routine hand-offs (lease
    taken, time budget spent), not for failures."""
    if task.request.is_eager:
        _retry(task, None, countdown)
    try:
        task.retry(countdown=countdown, throw=False)
    except Reject as refused:
        raise Reject(refused.reason, requeue=True) from None


def _back_in_line(request: Any) -> None:
    """An urgent delivery (a dead pool process's session sent ahead) is urgent once: a retry
    or hand-off copies the priority of the message it follows (Celery's retry keeps the
    delivery's), so it is put back to that of every other turn first."""
    delivery = request.delivery_info
    if isinstance(delivery, dict) and delivery.get("priority") == URGENT_PRIORITY:
        delivery["priority"] = TURN_PRIORITY


class _SessionTask(Task):  # type: ignore[misc]
    # The request class the pool's parent uses: it frees a dead child's lease (worker.lost).
    Request = TurnRequest


@app.task(  # type: ignore[untyped-decorator]
    name=PROCESS_SESSION, bind=True, base=_SessionTask, max_retries=None, acks_late=True
)
def process_session(self: Task, session_id: str) -> str:
    _back_in_line(self.request)
    runtime = get_runtime()
    owner = lease_owner(self.request.hostname or "", os.getpid(), threading.get_ident())
    try:
        outcome = runtime.run(runtime.pipeline.drain(session_id, owner=owner))
    except BackendUnavailable as exc:
        # The turn stays at the head of its inbox; try again when the store is back.
        delay = _OUTAGE_BACKOFF[min(self.request.retries, len(_OUTAGE_BACKOFF) - 1)]
        logger.warning("session store unavailable; retrying in %ss", delay)
        _retry(self, exc, delay)
    except Exception as exc:
        # A bug, not an outage: retry a few times, then leave the session to the sweeper,
        # which queues it again later (it is never silently dropped).
        logger.exception("draining session failed", extra={"session_id": session_id})
        if self.request.retries >= _BUG_RETRIES or self.request.is_eager:
            raise
        _retry(self, exc, _OUTAGE_BACKOFF[-1])
    if self.request.is_eager:
        # One process: nobody else can hold the lease for long, and a fresh task would be
        # this same thread; keep draining instead.
        while outcome is DrainOutcome.HANDOFF:
            outcome = runtime.run(runtime.pipeline.drain(session_id, owner=owner))
        return outcome.value
    if outcome is DrainOutcome.LEASE_BUSY:
        # The holder drains our turn too if it is alive; if it died, its lease expires and
        # this retry (a new message, acknowledged before this one) picks the turn up.
        try:
            wait = runtime.run(runtime.pipeline.lease_wait(session_id))
        except BackendUnavailable:
            wait = get_settings().lease_retry_delay
        _again_later(self, wait)
    if outcome is DrainOutcome.HANDOFF:
        _again_later(self, 0)
    return outcome.value
