"""A chat completion through the service's CrewAI LLM (`HttpChatLLM`), with the service's retry
policy, its fallback endpoints (`LLM_FALLBACKS`) and the provider gate (`limits`).

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
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from shared.game.crewai_env import configure_crewai, quiet_crewai_console
from shared.settings import BackendKind, Settings, get_settings

configure_crewai(
    get_settings().crewai_storage_dir,
    traced=bool(get_settings().otel_exporter_otlp_endpoint),
)

from shared.errors import NarratorUnavailable  # noqa: E402
from shared.game.llm.http_llm import (  # noqa: E402
    ChunkSink,
    HttpChatLLM,
    LLMCallFailed,
    resolve_model,
    speaks_anthropic,
)
from shared.game.llm.limits import (  # noqa: E402
    Budget,
    GateLimits,
    LocalGate,
    ProviderGate,
    endpoint_id,
)
from shared.metrics import LLM_CALL_SECONDS, LLM_TIME_TO_FIRST_TOKEN, LLM_TOKENS  # noqa: E402
from shared.models import TokenUsage  # noqa: E402
from shared.tracing import span  # noqa: E402

quiet_crewai_console()

__all__ = [
    "ChatClient",
    "Completion",
    "Endpoint",
    "endpoint_llm",
    "endpoints",
    "provider_gate",
    "shared_llm",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    text: str
    usage: TokenUsage


@dataclass(frozen=True)
class Endpoint:
    """One model on one endpoint, with its provider budget."""

    model: str
    base_url: str | None
    api_key: str | None = field(repr=False)
    budget: Budget
    protocol: str = "auto"

    @property
    def id(self) -> str:
        name, base = resolve_model(self.model, self.base_url, self.protocol)
        return endpoint_id(base, name)


def _endpoint(
    settings: Settings,
    model: str,
    base_url: str | None,
    given: SecretStr | None,
    budget: Budget,
    protocol: str,
) -> Endpoint:
    anthropic = speaks_anthropic(model, base_url, protocol)
    key = given or (settings.anthropic_api_key if anthropic else None)
    secret = key.get_secret_value() if key else None
    return Endpoint(model, base_url, secret, budget, protocol)


def endpoints(settings: Settings) -> list[Endpoint]:
    """The narrator's endpoints in the order they are tried: `LLM_*`, then `LLM_FALLBACKS`."""
    primary = _endpoint(
        settings,
        settings.llm_model,
        settings.llm_base_url,
        settings.llm_api_key,
        Budget(settings.llm_rpm, settings.llm_tpm),
        settings.llm_protocol,
    )
    return [primary] + [
        _endpoint(settings, e.model, e.base_url, e.api_key, Budget(e.rpm, e.tpm), e.protocol)
        for e in settings.llm_fallbacks
    ]


_clients: dict[tuple[Any, ...], HttpChatLLM] = {}
_clients_lock = threading.Lock()


def endpoint_llm(settings: Settings, endpoint: Endpoint) -> HttpChatLLM:
    """The process's client for this endpoint, built on first use."""
    key = (
        endpoint.model,
        endpoint.base_url,
        endpoint.api_key,
        endpoint.protocol,
        settings.llm_temperature,
        settings.llm_timeout,
        settings.worker_step_threads,
        # A client's sockets belong to the process that opened them, never to a fork.
        os.getpid(),
    )
    with _clients_lock:
        llm = _clients.get(key)
        if llm is None:
            llm = _clients[key] = HttpChatLLM(
                model=endpoint.model,
                base_url=endpoint.base_url,
                protocol=endpoint.protocol,
                api_key=endpoint.api_key,
                temperature=settings.llm_temperature,
                timeout=settings.llm_timeout,
                # As many connections kept open as calls can be in flight in this process.
                max_connections=settings.worker_step_threads,
            )
        return llm


def shared_llm(settings: Settings) -> HttpChatLLM:
    """The process's client for the primary endpoint (`LLM_*`)."""
    return endpoint_llm(settings, endpoints(settings)[0])


def gate_limits(settings: Settings) -> GateLimits:
    return GateLimits(
        max_wait=settings.llm_max_wait,
        burst=settings.llm_burst_seconds,
        circuit_failures=settings.llm_circuit_failures,
        circuit_open=settings.llm_circuit_open,
    )


_gates: dict[tuple[Any, ...], ProviderGate] = {}


def provider_gate(settings: Settings) -> ProviderGate:
    """The process's gate: in the session store, shared by the fleet, when it is Redis; in
    the process otherwise (dev mode)."""
    limits = gate_limits(settings)
    redis_store = settings.session_backend is BackendKind.REDIS
    key = (redis_store, settings.redis_url if redis_store else None, limits, os.getpid())
    with _clients_lock:
        gate = _gates.get(key)
        if gate is None:
            if redis_store:
                from shared.backends.provider_gate import RedisGate
                from shared.backends.sync_client import connect

                client = connect(settings.redis_url, socket_timeout=settings.redis_socket_timeout)
                gate = RedisGate(client, limits)
            else:
                gate = LocalGate(limits)
            _gates[key] = gate
        return gate


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


def _estimate(messages: list[dict[str, str]], max_tokens: int) -> int:
    """Tokens a call may use, booked against a TPM budget before it is made."""
    return sum(len(m.get("content", "")) for m in messages) // 4 + max_tokens


def _estimated_usage(messages: list[dict[str, str]], text: str) -> TokenUsage:
    prompt = max(1, sum(len(m.get("content", "")) for m in messages) // 4)
    completion = max(1, len(text) // 4)
    return TokenUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


# Error statuses that say the request itself is refused, whatever the endpoint's load.
_REQUEST_REFUSED = {400, 401, 403, 404, 405, 413, 415, 422}


def _spent_nothing(exc: Exception) -> bool:
    """Whether a failed call certainly generated nothing: an error status, or no connection.
    A timeout or a stream cut off may have cost the provider its tokens: they stay booked."""
    return (
        isinstance(exc, LLMCallFailed)
        and exc.status_code is not None
        or isinstance(exc, httpx.ConnectError)
    )


class _Timing:
    """One call's clock: its time to first token (streamed) and its whole time, counted in
    the metrics with its tokens."""

    def __init__(self, sink: ChunkSink | None) -> None:
        self._sink = sink
        self.started = time.monotonic()
        self.first: float | None = None

    def sink(self, text: str) -> None:
        if self.first is None:
            self.first = time.monotonic() - self.started
        if self._sink is not None:
            self._sink(text)

    def account(self, usage: TokenUsage, model: str, agent: str) -> TokenUsage:
        LLM_CALL_SECONDS.labels(model, agent).observe(time.monotonic() - self.started)
        if self.first is not None:
            LLM_TIME_TO_FIRST_TOKEN.labels(model).observe(self.first)
        LLM_TOKENS.labels(model, agent, "prompt").inc(usage.prompt_tokens)
        LLM_TOKENS.labels(model, agent, "completion").inc(usage.completion_tokens)
        first = round(self.first, 3) if self.first is not None else None
        return usage.model_copy(update={"model": model, "time_to_first_token": first}).by(agent)


class _EndpointDown(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


WaitSink = Callable[[str, float], None]


class ChatClient:
    """Chat completions for the narrator: each endpoint in turn (`LLM_FALLBACKS`), each call
    through the provider gate (budget, cool-down, circuit) and retried `LLM_RETRIES` times."""

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        gate: ProviderGate | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        # Without a gate of the process (the worker passes `provider_gate`), one of its own.
        self.gate = gate if gate is not None else LocalGate(gate_limits(settings))
        self.endpoints = endpoints(settings)

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        on_chunk: ChunkSink | None = None,
        on_retry: Callable[[int], None] | None = None,
        on_wait: WaitSink | None = None,
        agent: str = "narrator",
    ) -> Completion:
        """The reply to `messages`. Timeouts, HTTP errors and broken connections are tried
        again `LLM_RETRIES` times (with exponential backoff, or after the provider's
        `Retry-After`), then on the next endpoint; then `NarratorUnavailable`. Before each
        attempt after the first, `on_retry(attempt)` is called, so a caller that streamed
        part of a reply can say it starts over; `on_wait(reason, seconds)` before a wait for
        the provider budget or a cool-down. Its usage is counted as `agent`'s."""
        sink = _forgiving(on_chunk)
        attempt = 0
        reason = "no endpoint"

        def next_attempt() -> None:
            nonlocal attempt
            attempt += 1
            if attempt > 1 and on_retry is not None:
                on_retry(attempt)

        for endpoint in self.endpoints:
            try:
                return self._traced(
                    endpoint, messages, max_tokens, sink, next_attempt, on_wait, agent
                )
            except _EndpointDown as down:
                reason = down.reason
                if len(self.endpoints) > 1:
                    logger.warning("LLM endpoint %s given up: %s", endpoint.id, reason)
        raise NarratorUnavailable(reason)

    def _traced(
        self,
        endpoint: Endpoint,
        messages: list[dict[str, str]],
        max_tokens: int,
        sink: ChunkSink | None,
        next_attempt: Callable[[], None],
        on_wait: WaitSink | None,
        agent: str,
    ) -> Completion:
        """`_on`, as a span with the gen_ai semantic conventions' attributes (model, tokens in
        and out, time to first token); never the prompt or the reply."""
        with span(
            f"chat {endpoint.model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": endpoint.model.split("/", 1)[0],
                "gen_ai.request.model": endpoint.model,
                "gen_ai.request.max_tokens": max_tokens,
                "pocket_portals.agent": agent,
            },
        ) as traced:
            completion = self._on(
                endpoint, messages, max_tokens, sink, next_attempt, on_wait, agent
            )
            usage = completion.usage
            traced.set_attribute("gen_ai.response.model", usage.model or endpoint.model)
            traced.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            traced.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            if usage.time_to_first_token is not None:
                traced.set_attribute(
                    "gen_ai.response.time_to_first_token", usage.time_to_first_token
                )
            return completion

    def _on(
        self,
        endpoint: Endpoint,
        messages: list[dict[str, str]],
        max_tokens: int,
        sink: ChunkSink | None,
        next_attempt: Callable[[], None],
        on_wait: WaitSink | None,
        agent: str,
    ) -> Completion:
        attempts = self.settings.llm_retries + 1
        llm = endpoint_llm(self.settings, endpoint)
        booked = _estimate(messages, max_tokens)
        for tried in range(1, attempts + 1):
            admission = self.gate.admit(endpoint.id, booked, endpoint.budget)
            if admission.refused:
                raise _EndpointDown(admission.refused)
            if admission.wait > 0:
                if on_wait is not None:
                    on_wait(admission.reason, admission.wait)
                self._sleep(admission.wait)
            next_attempt()
            timing = _Timing(sink)
            try:
                reply = llm.complete(
                    messages, max_tokens=max_tokens, on_chunk=timing.sink if sink else None
                )
            except Exception as exc:
                reason = _reason(exc)
                status = getattr(exc, "status_code", None)
                if _spent_nothing(exc):
                    # Refused before any generation: its tokens go back to the budget.
                    self.gate.settle(endpoint.id, booked, 0, endpoint.budget)
                logger.warning("LLM call failed (attempt %d/%d): %s", tried, attempts, reason)
                if status in _REQUEST_REFUSED:
                    # The same request would be refused again (a bad key, a model unknown
                    # there): not the endpoint's health, so no retry and no circuit count.
                    raise _EndpointDown(reason) from None
                retry_after = getattr(exc, "retry_after", None)
                self.gate.failed(endpoint.id, retry_after)
                if tried == attempts:
                    raise _EndpointDown(reason) from None
                if retry_after is None:  # otherwise the gate makes the next attempt wait
                    self._sleep(self.settings.llm_retry_backoff * 2 ** (tried - 1))
                continue
            self.gate.succeeded(endpoint.id)
            used = reply.usage
            if not used.total_tokens:
                # A server that reports no usage: count what was sent and said, roughly.
                used = _estimated_usage(messages, reply.text)
            self.gate.settle(endpoint.id, booked, used.total_tokens, endpoint.budget)
            usage = timing.account(used, endpoint.model, agent)
            return Completion(reply.text, usage)
        raise AssertionError("unreachable")
