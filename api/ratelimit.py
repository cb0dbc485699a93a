"""Per-client request rate limit, counted in the session store so that every gateway process
shares one count. Answers carry the IETF `RateLimit-*` headers; a refusal is
`429 rate_limited` with `Retry-After`."""

from __future__ import annotations

import math

from fastapi import Request, Response

from api.deps import Backend, SettingsDep
from shared.errors import BackendUnavailable, RateLimited
from shared.metrics import RATE_LIMIT_FAILED_OPEN

__all__ = ["WINDOW_SECONDS", "rate_limit"]

WINDOW_SECONDS = 60


def _client(request: Request) -> str:
    # Behind a proxy, run uvicorn with --proxy-headers and --forwarded-allow-ips so this is
    # the player's address and not the proxy's.
    return request.client.host if request.client else "unknown"


async def rate_limit(
    request: Request, response: Response, backend: Backend, settings: SettingsDep
) -> None:
    limit = settings.rate_limit_per_minute
    if not limit:
        return
    try:
        count, reset = await backend.count_request(_client(request), WINDOW_SECONDS)
    except BackendUnavailable:
        # The count is a write: a store out of memory or read-only refuses it while it still
        # serves reads. Fail open, so players keep reading their games; the route itself
        # answers 503 if it needs what the store cannot do.
        RATE_LIMIT_FAILED_OPEN.inc()
        return
    reset_seconds = max(1, math.ceil(reset))
    if count > limit:
        raise RateLimited(limit, retry_after=reset_seconds)
    response.headers["RateLimit-Limit"] = str(limit)
    response.headers["RateLimit-Remaining"] = str(limit - count)
    response.headers["RateLimit-Reset"] = str(reset_seconds)
