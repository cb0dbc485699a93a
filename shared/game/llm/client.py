"""A chat completion through CrewAI's own `LLM` client, with the service's retry policy and
streaming through CrewAI's stream-chunk events.

CrewAI calls stream-chunk handlers synchronously in the calling thread, so the sink for the
chunks of the current call is a context variable: concurrent turns in other threads (a thread
pool) each see their own.

Building an `LLM` builds two OpenAI clients, each with a TLS context that loads the whole CA
bundle: about 65 ms of CPU, most of what a turn cost, and a new connection (a new TLS
handshake) for every call. Idle clients are therefore kept in a pool and lent to one call at
a time, so concurrent calls never share one and each call's token usage is the difference of
its client's counters before and after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from shared.game.crewai_env import configure_crewai, quiet_crewai_console
from shared.settings import Settings, get_settings

configure_crewai(get_settings().crewai_storage_dir)

from crewai import LLM  # noqa: E402
from crewai.events.event_bus import crewai_event_bus  # noqa: E402
from crewai.events.types.llm_events import LLMStreamChunkEvent  # noqa: E402

from shared.errors import NarratorUnavailable  # noqa: E402
from shared.models import TokenUsage  # noqa: E402

quiet_crewai_console()

__all__ = ["ChatClient", "Completion", "LLMPool"]

logger = logging.getLogger(__name__)

ChunkSink = Callable[[str], None]
_sink: ContextVar[ChunkSink | None] = ContextVar("pocket_portals_chunk_sink", default=None)


@crewai_event_bus.on(LLMStreamChunkEvent)
def _forward_chunk(_source: Any, event: LLMStreamChunkEvent) -> None:
    sink = _sink.get()
    if sink is not None and event.chunk:
        sink(event.chunk)


@dataclass(frozen=True)
class Completion:
    text: str
    usage: TokenUsage


class LLMPool:
    """Idle `LLM` clients by the settings they were built with, each lent to one call at a
    time. The pool never holds more clients than calls ran at once at its busiest."""

    def __init__(self) -> None:
        self._idle: dict[tuple[Any, ...], list[LLM]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def lend(self, key: tuple[Any, ...], build: Callable[[], LLM]) -> Iterator[LLM]:
        with self._lock:
            idle = self._idle.get(key)
            llm = idle.pop() if idle else None
        if llm is None:
            llm = build()
        yield llm
        # Only after a call that worked: a client whose call failed may hold a broken
        # connection, and building a new one is cheap next to a failure.
        with self._lock:
            self._idle.setdefault(key, []).append(llm)

    def idle(self) -> int:
        with self._lock:
            return sum(len(clients) for clients in self._idle.values())


_POOL = LLMPool()


def _reason(exc: BaseException) -> str:
    # The exception's type and HTTP status only: messages can quote request details.
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


class ChatClient:
    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        pool: LLMPool | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._pool = pool or _POOL

    def _key(self) -> tuple[Any, ...]:
        # What the clients are built with. max_tokens and stream are not in it: they change
        # from call to call (the turn's token budget), and are set on the lent client, which
        # CrewAI reads when the call runs.
        s = self.settings
        key = s.llm_api_key.get_secret_value() if s.llm_api_key else None
        return (s.llm_model, s.llm_base_url, key, s.llm_temperature, s.llm_timeout)

    def _llm(self, max_tokens: int, stream: bool) -> LLM:
        key = self.settings.llm_api_key
        return LLM(
            model=self.settings.llm_model,
            base_url=self.settings.llm_base_url,
            # Local servers (vLLM, Ollama) want no key, but the OpenAI client insists on one.
            api_key=key.get_secret_value() if key else "not-needed",
            temperature=self.settings.llm_temperature,
            max_tokens=max_tokens,
            timeout=self.settings.llm_timeout,
            max_retries=0,  # our retries, with our backoff and restart signal
            stream=stream,
        )

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        on_chunk: ChunkSink | None = None,
        on_retry: Callable[[int], None] | None = None,
    ) -> Completion:
        """The reply to `messages`. Timeouts, HTTP errors and broken connections are tried
        again `LLM_RETRIES` times with exponential backoff (`on_retry(attempt)` is called
        first, so a caller that streamed part of a reply can say it starts over); then
        `NarratorUnavailable`."""
        attempts = self.settings.llm_retries + 1
        stream = on_chunk is not None
        for attempt in range(1, attempts + 1):
            token = _sink.set(on_chunk)
            try:
                with self._pool.lend(self._key(), lambda: self._llm(max_tokens, stream)) as llm:
                    llm.max_tokens, llm.stream = max_tokens, stream
                    before = llm.get_token_usage_summary()
                    text = llm.call(cast(Any, messages))
                    metrics = llm.get_token_usage_summary().delta_since(before)
            except Exception as exc:
                reason = _reason(exc)
                logger.warning("LLM call failed (attempt %d/%d): %s", attempt, attempts, reason)
                if attempt == attempts:
                    raise NarratorUnavailable(reason) from None
                if on_retry is not None:
                    on_retry(attempt + 1)
                self._sleep(self.settings.llm_retry_backoff * 2 ** (attempt - 1))
                continue
            finally:
                _sink.reset(token)
            usage = TokenUsage(
                prompt_tokens=metrics.prompt_tokens,
                completion_tokens=metrics.completion_tokens,
                total_tokens=metrics.total_tokens,
            )
            return Completion(text if isinstance(text, str) else str(text), usage)
        raise AssertionError("unreachable")
