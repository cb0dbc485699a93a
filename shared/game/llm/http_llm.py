"""`HttpChatLLM`: a CrewAI `BaseLLM` that speaks the OpenAI chat-completions protocol over one
plain httpx client.

CrewAI's own OpenAI provider goes through the openai SDK, which builds a pydantic model for
every streamed chunk, and then emits a CrewAI event for it: 85–110 µs of CPU per chunk, where
reading the stream line by line and decoding each chunk's JSON costs under 10. A provider
that sends one chunk per token made that most of an LLM turn's CPU. This client reads the
server-sent events itself and hands each piece of text straight to the caller's sink; it
emits no event per chunk or per call (the service counts calls and tokens itself).

One instance is thread-safe and meant to be shared: everything a call needs is local to it,
and the httpx client keeps a pool of connections (kept alive, so a call rarely pays a TLS
handshake). It is a `BaseLLM`, so a CrewAI Agent can use it too (`call`).

`LLM_MODEL` keeps CrewAI's provider prefix: `openai/<model>` and the OpenAI-compatible
providers CrewAI knows (`ollama/…`, `openrouter/…`, `hosted_vllm/…`, …) are stripped, and give
the default endpoint when `LLM_BASE_URL` is unset; any other name is sent as it is (an
OpenRouter-style gateway takes `anthropic/claude-…`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from crewai.llms.base_llm import BaseLLM
from crewai.llms.providers.openai_compatible.completion import OPENAI_COMPATIBLE_PROVIDERS
from pydantic import PrivateAttr

from shared.game.llm.anthropic import (
    ANTHROPIC_BASE_URL,
    StreamFailed,
    anthropic_body,
    anthropic_endpoint,
    anthropic_headers,
    read_anthropic_stream,
    read_anthropic_whole,
)
from shared.models import TokenUsage

__all__ = [
    "ChunkSink",
    "HttpChatLLM",
    "LLMCallFailed",
    "Reply",
    "resolve_model",
    "speaks_anthropic",
]

ChunkSink = Callable[[str], None]
OPENAI_BASE_URL = "https://api.openai.com/v1"


class LLMCallFailed(Exception):
    """The endpoint answered with an error status (or not in the protocol)."""

    def __init__(self, status_code: int | None, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status_code}" if status_code else "malformed reply")
        self.status_code = status_code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reply:
    text: str
    usage: TokenUsage


def speaks_anthropic(model: str, base_url: str | None = None, protocol: str = "auto") -> bool:
    """Whether calls go to Anthropic's Messages API rather than chat completions. `auto`: for
    `anthropic/<model>` without a base URL or with Anthropic's own; with another base URL (a
    LiteLLM-style gateway) `anthropic/<model>` is an OpenAI-compatible model name, as before.
    `LLM_PROTOCOL=anthropic` names a proxy of the Messages API."""
    if protocol != "auto":
        return protocol == "anthropic"
    provider, _, name = model.partition("/")
    if not name or provider != "anthropic":
        return False
    return base_url is None or urlsplit(base_url).hostname == urlsplit(ANTHROPIC_BASE_URL).hostname


def resolve_model(model: str, base_url: str | None, protocol: str = "auto") -> tuple[str, str]:
    """(the model name the endpoint expects, the endpoint's base URL)."""
    provider, _, name = model.partition("/")
    if speaks_anthropic(model, base_url, protocol):
        return (name if provider == "anthropic" and name else model), base_url or ANTHROPIC_BASE_URL
    if name and provider == "openai":
        return name, base_url or OPENAI_BASE_URL
    if name and provider in OPENAI_COMPATIBLE_PROVIDERS:
        return name, base_url or OPENAI_COMPATIBLE_PROVIDERS[provider].base_url
    return model, base_url or OPENAI_BASE_URL


# The longest a provider's Retry-After is taken at its word: a wrong or hostile value ("inf",
# a day) would otherwise hold the whole fleet's calls to the endpoint.
MAX_RETRY_AFTER = 300.0


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _usage(data: dict[str, Any] | None) -> TokenUsage:
    data = data or {}
    prompt = int(data.get("prompt_tokens") or 0)
    completion = int(data.get("completion_tokens") or 0)
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(data.get("total_tokens") or prompt + completion),
    )


class HttpChatLLM(BaseLLM):
    llm_type: str = "pocket_portals_http"
    timeout: float = 30.0
    max_connections: int = 64
    _client: httpx.Client = PrivateAttr()
    _endpoint: str = PrivateAttr()
    _model_name: str = PrivateAttr()
    protocol: str = "auto"
    _anthropic: bool = PrivateAttr(default=False)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._model_name, base = resolve_model(self.model, self.base_url, self.protocol)
        self._anthropic = speaks_anthropic(self.model, self.base_url, self.protocol)
        if self._anthropic:
            self._endpoint = anthropic_endpoint(base)
            headers = anthropic_headers(self.api_key)
        else:
            self._endpoint = base.rstrip("/") + "/chat/completions"
            headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=self.max_connections
            ),
        )

    def close(self) -> None:
        self._client.close()

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int | None = None,
        on_chunk: ChunkSink | None = None,
    ) -> Reply:
        """One chat completion; streamed when `on_chunk` is given (it gets each piece of
        text as it comes). Raises httpx errors for transport failures and timeouts,
        `LLMCallFailed` for an error status."""
        if self._anthropic:
            return self._complete_anthropic(messages, max_tokens, on_chunk)
        body: dict[str, Any] = {"model": self._model_name, "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        tokens = max_tokens if max_tokens is not None else self.max_tokens
        if tokens is not None:
            body["max_tokens"] = int(tokens)
        if self.stop_sequences:
            body["stop"] = self.stop_sequences
        if on_chunk is None:
            response = self._client.post(self._endpoint, json=body)
            if response.status_code >= 400:
                raise LLMCallFailed(response.status_code, _retry_after(response))
            return self._whole(response.json())
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        with self._client.stream("POST", self._endpoint, json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise LLMCallFailed(response.status_code, _retry_after(response))
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # A server that ignores `stream` answers with the whole completion: nothing
                # was streamed, the caller tells it at once.
                response.read()
                return self._whole(response.json())
            return self._streamed(response, on_chunk)

    def _complete_anthropic(
        self,
        messages: list[dict[str, str]],
        max_tokens: int | None,
        on_chunk: ChunkSink | None,
    ) -> Reply:
        tokens = max_tokens if max_tokens is not None else self.max_tokens
        body = anthropic_body(
            self._model_name,
            messages,
            max_tokens=int(tokens) if tokens is not None else None,
            temperature=self.temperature,
            stop=self.stop_sequences or None,
            stream=on_chunk is not None,
        )
        try:
            if on_chunk is None:
                response = self._client.post(self._endpoint, json=body)
                if response.status_code >= 400:
                    raise LLMCallFailed(response.status_code, _retry_after(response))
                return Reply(*read_anthropic_whole(response.json()))
            with self._client.stream("POST", self._endpoint, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise LLMCallFailed(response.status_code, _retry_after(response))
                return Reply(*read_anthropic_stream(response, on_chunk))
        except (StreamFailed, ValueError):
            raise LLMCallFailed(None) from None

    @staticmethod
    def _whole(data: Any) -> Reply:
        try:
            text = data["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMCallFailed(None) from None
        return Reply(str(text), _usage(data.get("usage")))

    @staticmethod
    def _streamed(response: httpx.Response, on_chunk: ChunkSink) -> Reply:
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        finished = False  # a reply cut off mid-stream is a failed call, not a short story
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # comments, event names, blank separators
            payload = line[5:].strip()
            if payload == "[DONE]":
                finished = True
                break
            try:
                chunk = json.loads(payload)
            except ValueError:
                raise LLMCallFailed(None) from None
            if not isinstance(chunk, dict) or chunk.get("error"):
                raise LLMCallFailed(None)  # an error reported mid-stream (OpenRouter does)
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                finished = finished or bool(choice.get("finish_reason"))
                text = (choice.get("delta") or {}).get("content")
                if text:
                    parts.append(text)
                    on_chunk(text)
        if not finished:
            raise LLMCallFailed(None)
        return Reply("".join(parts), _usage(usage))

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        """CrewAI's interface (for an Agent given this LLM): plain text in, text out; tools
        and response models are not offered to the endpoint."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        reply = self.complete(list(messages))
        self._track_token_usage_internal(
            {
                "prompt_tokens": reply.usage.prompt_tokens,
                "completion_tokens": reply.usage.completion_tokens,
                "total_tokens": reply.usage.total_tokens,
            }
        )
        return reply.text

    def supports_function_calling(self) -> bool:
        return False

    def get_context_window_size(self) -> int:
        return 8192
