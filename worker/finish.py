"""How a turn ends in the store: an attempt's result committed, or the turn failed; either
way its client's admission ticket is released and the end counted and logged.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from shared.backends import SessionBackend
from shared.backends.base import Committed
from shared.errors import LeaseLost, PortalsError
from shared.metrics import (
    LLM_REPLY_REPAIRS,
    MODERATION_FLAGGED,
    TURN_PROCESSING_SECONDS,
    TURNS_COMPLETED,
    TURNS_FAILED,
)
from shared.models import SpokenLine, TurnError, TurnRecord, TurnResult, TurnStatus
from shared.settings import Settings
from worker.budget import count_llm_tokens

if TYPE_CHECKING:
    from shared.game.flow import StepResult

__all__ = ["commit_attempt", "fail_turn", "release_admission"]

# Not __name__: operators and the compose stack's test pick a turn's lines (its " completed
# in " line above all) by the pipeline's logger name, wherever their code lives.
logger = logging.getLogger("worker.pipeline")


async def commit_attempt(
    backend: SessionBackend,
    settings: Settings,
    step: StepResult,
    turn: TurnRecord,
    runner: str,
    holder: str,
) -> Committed:
    """Commit what attempt `runner` of `turn` made of it, while `holder` has the lease."""
    state = step.state
    # What a player reads must be text a response can carry: a narrator (an LLM's JSON
    # escapes) can produce a lone surrogate, which no encoding stores or sends.
    for text in (step.narrative, *state.current_choices):
        text.encode("utf-8")
    result = TurnResult(
        narrative=step.narrative,
        choices=state.current_choices,
        state_version=state.version + 1,
        narrator=step.narrator,
        usage=step.usage,
        lines=[SpokenLine(speaker=speaker, text=text) for speaker, text in step.lines],
    )
    done = turn.model_copy(
        update={"status": TurnStatus.COMPLETED, "result": result, "finished_at": time.time()}
    )
    committed = await backend.commit_turn(
        state, done, runner=runner, lease=(holder, settings.lease_ttl), release_ticket=True
    )
    if step.usage is not None and step.usage.total_tokens:
        await count_llm_tokens(backend, turn, step.usage.total_tokens)
    if not committed.ticket_released:
        await release_admission(backend, turn)
    TURNS_COMPLETED.inc()
    for kind in step.repairs:
        LLM_REPLY_REPAIRS.labels(kind).inc()
    if step.moderation is not None:
        for category in step.moderation.categories:
            MODERATION_FLAGGED.labels(category, step.moderation.source).inc()
    took = max(0.0, (done.finished_at or 0.0) - (turn.started_at or done.accepted_at))
    TURN_PROCESSING_SECONDS.labels(step.narrator).observe(took)
    logger.info(
        "turn %s completed in %.1f ms (version %d, %s narrator)",
        turn.turn_id,
        took * 1000,
        result.state_version,
        step.narrator,
        extra={
            "session_id": turn.session_id,
            "turn_id": turn.turn_id,
            "duration_ms": round(took * 1000, 1),
        },
    )
    return committed


async def release_admission(backend: SessionBackend, turn: TurnRecord) -> None:
    """The turn is finished: its client may send another. Not a reason to fail the turn
    (it is committed): a ticket not released lapses by itself."""
    try:
        await backend.release_admission(turn.turn_id, turn.client)
    except PortalsError as exc:
        logger.warning(
            "admission ticket not released: %s",
            exc.code,
            extra={"session_id": turn.session_id, "turn_id": turn.turn_id},
        )


async def fail_turn(
    backend: SessionBackend, turn: TurnRecord, code: str, message: str, *, runner: str | None
) -> None:
    """Record `turn` as failed with `code`, fenced by attempt `runner`'s token (None: by the
    lease alone)."""
    try:
        await _record_failure(backend, turn, code, message, runner)
    except LeaseLost:
        logger.warning(
            "failure not recorded: a later attempt of this turn runs",
            extra={"session_id": turn.session_id, "turn_id": turn.turn_id},
        )


async def _record_failure(
    backend: SessionBackend, turn: TurnRecord, code: str, message: str, runner: str | None
) -> None:
    failed = turn.model_copy(
        update={
            "status": TurnStatus.FAILED,
            "error": TurnError(code=code, message=message),
            "finished_at": time.time(),
        }
    )
    try:
        recorded = await backend.fail_turn(failed, runner=runner)
    except (ValueError, TypeError):
        # The record itself holds what cannot be encoded: keep what can be of its action.
        action = failed.action.encode("utf-8", "replace").decode("utf-8")
        recorded = await backend.fail_turn(
            failed.model_copy(update={"action": action}), runner=runner
        )
    if recorded:
        await release_admission(backend, turn)
        TURNS_FAILED.labels(code).inc()
        logger.warning(
            "turn %s failed: %s",
            turn.turn_id,
            code,
            extra={"session_id": turn.session_id, "turn_id": turn.turn_id},
        )
