"""The events of a running attempt of a turn: its narration as it is produced, its restarts
and waits, on the session's event stream.

The step's thread hands the words over as it produces them; they are written from the
pipeline's loop, fenced by the attempt's runner token.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from opentelemetry import context as otel_context

from shared.backends import SessionBackend
from shared.errors import LeaseLost
from shared.metrics import LLM_WAITS
from shared.models import EventName, TurnRecord
from shared.settings import Settings
from shared.tracing import span

__all__ = ["AttemptEvents"]

# A turn's lines keep the pipeline's logger name wherever their code lives: operators (and
# the tests) pick the pipeline's lines by it.
logger = logging.getLogger("worker.pipeline")


class AttemptEvents:
    """A turn's narration, published on the session's event stream as it is produced. Called
    from the step's thread; each event is written before the next (their order is the
    story's). Pieces that come within `narration_delta_interval` of the last one published
    wait and go together; the pipeline sends what is left (`flush`) before the commit.

    Every append is fenced by the attempt's runner token: once another attempt of the turn
    has started (this one's lease was lost), the store refuses this one's words and the
    stream goes quiet; the step runs on, but its commit is refused too."""

    def __init__(
        self,
        backend: SessionBackend,
        settings: Settings,
        loop: asyncio.AbstractEventLoop,
        turn: TurnRecord,
        runner: str,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.loop = loop
        self.turn = turn
        self.runner = runner
        self.interval = settings.narration_delta_interval
        self.superseded = False
        self._waiting = ""
        self._speaker = "narrator"
        self._published_at = -math.inf
        # The turn's trace (traces on): each published event is a span of it, whichever
        # thread asked for it.
        self._trace = otel_context.get_current()

    async def _event(self, event: EventName, data: dict[str, object]) -> None:
        if self.superseded:
            return
        token = otel_context.attach(self._trace)
        try:
            with span(f"turn.event {event.value}"):
                await self.backend.append_event(
                    self.turn.session_id,
                    event.value,
                    {"turn_id": self.turn.turn_id, **data},
                    runner=self.runner,
                )
        except LeaseLost:
            self.superseded = True
            logger.warning(
                "attempt superseded: its narration is no longer published",
                extra={"session_id": self.turn.session_id, "turn_id": self.turn.turn_id},
            )
        finally:
            otel_context.detach(token)

    def _publish(self, event: EventName, data: dict[str, object]) -> None:
        if self.superseded:
            return
        future = asyncio.run_coroutine_threadsafe(self._event(event, data), self.loop)
        try:
            future.result(timeout=self.settings.redis_socket_timeout * 2)
        except BaseException:
            future.cancel()  # not left to land later, after words that came after it
            raise

    def delta(self, text: str, speaker: str = "narrator") -> None:
        if speaker != self._speaker and self._waiting:
            # One speaker per event: what one agent said goes out before the next speaks.
            waiting, self._waiting = self._waiting, ""
            self._publish(EventName.NARRATION_DELTA, {"text": waiting, "speaker": self._speaker})
        self._speaker = speaker
        self._waiting += text
        now = time.monotonic()
        if now - self._published_at >= self.interval:
            waiting, self._waiting = self._waiting, ""
            self._publish(EventName.NARRATION_DELTA, {"text": waiting, "speaker": speaker})
            self._published_at = now

    def restart(self, reason: str) -> None:
        self._waiting = ""  # words of the attempt that starts over: the reader drops them
        self._publish(EventName.TURN_RESTARTED, {"reason": reason})

    def waiting(self, reason: str, seconds: float) -> None:
        # The turn has started but waits for its LLM slot: a client shows that, not silence.
        self._publish(
            EventName.TURN_STARTED,
            {"attempt": self.turn.attempts, "waiting": reason, "wait_seconds": round(seconds, 1)},
        )
        LLM_WAITS.labels(reason).inc()

    async def send(self, event: EventName, data: dict[str, object]) -> None:
        """On the loop: one event of this attempt."""
        await self._event(event, data)

    async def flush(self) -> None:
        """On the loop, once the step is done: the narration's last words."""
        if self._waiting:
            waiting, self._waiting = self._waiting, ""
            await self._event(
                EventName.NARRATION_DELTA, {"text": waiting, "speaker": self._speaker}
            )
