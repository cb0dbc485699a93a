"""How the benchmarks' players post a turn: as a careful client would, with an
Idempotency-Key, so a request lost on a closing keep-alive connection is sent again without
risking a second turn."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.player import CLIENT_LIMITS

__all__ = ["CLIENT_LIMITS", "post_turn"]

_ATTEMPTS = 3


def post_turn(
    http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """POST a turn, retried on a transport error (a connection can still fail under a
    request, CLIENT_LIMITS notwithstanding; on two busy cores that is not rare).
    Returns the response, raising for an HTTP error status."""
    keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            response = http.post(path, json=body, headers=keyed)
        except httpx.TransportError:
            if attempt == _ATTEMPTS:
                raise
            continue
        response.raise_for_status()
        return response
    raise AssertionError("unreachable")
