"""Anthropic's Messages API for `HttpChatLLM` (`LLM_MODEL=anthropic/<model>`): the request,
and the reply whole or streamed. Pure functions over httpx responses; the transport, retries
and accounting are the same as for OpenAI-compatible endpoints.

The original Pocket Portals ran on Claude. Its API differs from chat completions in what the
service needs: the system prompt is a field of its own, `max_tokens` is required, the key
goes in `x-api-key` with an `anthropic-version`, usage is `input_tokens`/`output_tokens`, and
a stream is typed events (`content_block_delta` carries text, `message_delta` the final
usage, `message_stop` the end, `error` a failure mid-stream).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from shared.models import TokenUsage

__all__ = [
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_VERSION",
    "StreamFailed",
    "anthropic_body",
    "anthropic_endpoint",
    "anthropic_headers",
    "read_anthropic_stream",
    "read_anthropic_whole",
]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
# Anthropic requires max_tokens; a call that names none gets this.
DEFAULT_MAX_TOKENS = 1024


class StreamFailed(Exception):
    """The reply was not in the protocol, was cut off, or reported an error."""


def anthropic_endpoint(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


def anthropic_headers(api_key: str | None) -> dict[str, str]:
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    if api_key:
        headers["x-api-key"] = api_key
    return headers


def anthropic_body(
    model: str,
    messages: list[dict[str, str]],
    *,
    max_tokens: int | None,
    temperature: float | None,
    stop: list[str] | None,
    stream: bool,
) -> dict[str, Any]:
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": int(max_tokens or DEFAULT_MAX_TOKENS),
        "messages": [
            {"role": m["role"], "content": m["content"]}
            for m in messages
            if m.get("role") in ("user", "assistant")
        ],
    }
    if system:
        body["system"] = system
    if temperature is not None:
        body["temperature"] = min(temperature, 1.0)  # Anthropic's range is 0 to 1
    if stop:
        body["stop_sequences"] = stop
    if stream:
        body["stream"] = True
    return body


def _usage(data: dict[str, Any] | None) -> TokenUsage:
    data = data or {}
    prompt = int(data.get("input_tokens") or 0)
    completion = int(data.get("output_tokens") or 0)
    return TokenUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def read_anthropic_whole(data: Any) -> tuple[str, TokenUsage]:
    try:
        blocks = data["content"]
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    except (KeyError, TypeError, AttributeError):
        raise StreamFailed("not a Messages reply") from None
    return text, _usage(data.get("usage"))


def read_anthropic_stream(
    response: httpx.Response, on_chunk: Callable[[str], None]
) -> tuple[str, TokenUsage]:
    parts: list[str] = []
    prompt: dict[str, Any] = {}
    final: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # `event:` lines name what the data's `type` says again
        try:
            event = json.loads(line[5:].strip())
        except ValueError:
            raise StreamFailed("not JSON") from None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "error":
            raise StreamFailed("error event")
        if kind == "message_start":
            prompt = (event.get("message") or {}).get("usage") or {}
        elif kind == "content_block_delta":
            text = (event.get("delta") or {}).get("text")
            if text:
                parts.append(text)
                on_chunk(text)
        elif kind == "message_delta":
            final = event.get("usage") or final
        elif kind == "message_stop":
            usage = {**prompt, **{k: v for k, v in final.items() if v is not None}}
            return "".join(parts), _usage(usage)
    raise StreamFailed("cut off before message_stop")
