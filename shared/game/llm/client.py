"""A chat completion through the service's CrewAI LLM (`HttpChatLLM`), with the service's retry
policy.

Building a client loads a TLS context (the whole CA bundle, tens of milliseconds of CPU) and
a new client means a new connection, so one client per configuration is kept for the life
of the process and shared by every call: it is thread-safe, each call's usage is in its own
reply, and its connection pool lets concurrent turns call at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.game.crewai_env import configure_crewai, quiet_crewai_console
from shared.settings import Settings, get_settings

configure_crewai(get_settings().crewai_storage_dir)

from shared.errors import NarratorUnavailable  # noqa: E402
from shared.game.llm.http_llm import ChunkSink, HttpChatLLM  # noqa: E402
from shared.models import TokenUsage  # noqa: E402

quiet_crewai_console()

__all__ = ["ChatClient", "Completion", "shared_llm"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    text: str
    usage: TokenUsage


_clients: dict[tuple[Any, ...], HttpChatLLM] = {}
_clients_lock = threading.Lock()


def _key(settings: Settings) -> tuple[Any, ...]:
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return (
        settings.llm_model,
        settings.llm_base_url,
        key,
        settings.llm_temperature,
        settings.llm_timeout,
        settings.worker_step_threads,
        # A client's sockets belong to the process that opened them, never to a fork.
        os.getpid(),
    )


def shared_llm(settings: Settings) -> HttpChatLLM:
    """The process's client for these settings, built on first use."""
    key = _key(settings)
    with _clients_lock:
        llm = _clients.get(key)
        if llm is None:
            api_key = settings.llm_api_key
            llm = _clients[key] = HttpChatLLM(
                model=settings.llm_model,
                base_url=settings.llm_base_url,
                api_key=api_key.get_secret_value() if api_key else None,
                temperature=settings.llm_temperature,
                timeout=settings.llm_timeout,
                # As many connections kept open as calls can be in flight in this process.
                max_connections=settings.worker_step_threads,
            )
        return llm


def _forgiving(sink: ChunkSink | None) -> ChunkSink | None:
    """The caller's sink, where a failure to pass a piece on (the store slow to take a
    narration delta) loses that piece, not the LLM call: the turn's result still carries the
    whole narrative."""
    if sink is None:
        return None

    def forward(text: str) -> None:
        try:
            sink(text)
        except Exception as exc:
            logger.warning("a streamed piece was not passed on: %s", type(exc).__name__)

    return forward


def _reason(exc: BaseException) -> str:
    # The exception's type and HTTP status only: messages can quote request details.
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")


class ChatClient:
    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep

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
        llm = shared_llm(self.settings)
        sink = _forgiving(on_chunk)
        for attempt in range(1, attempts + 1):
            try:
                reply = llm.complete(messages, max_tokens=max_tokens, on_chunk=sink)
            except Exception as exc:
                reason = _reason(exc)
                logger.warning("LLM call failed (attempt %d/%d): %s", attempt, attempts, reason)
                if attempt == attempts:
                    raise NarratorUnavailable(reason) from None
                if on_retry is not None:
                    on_retry(attempt + 1)
                self._sleep(self.settings.llm_retry_backoff * 2 ** (attempt - 1))
                continue
            return Completion(reply.text, reply.usage)
        raise AssertionError("unreachable")
