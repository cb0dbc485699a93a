"""Per-client request rate limit, counted in the session store so that every gateway process
shares one count. Answers carry the IETF `RateLimit-*` headers; a refusal is
`429 rate_limited` with `Retry-After`."""

from __future__ import annotations

import math

from fastapi import Request, Response

from api.deps import Backend, SettingsDep
from shared.errors import RateLimited

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
    count, reset = await backend.count_request(_client(request), WINDOW_SECONDS)
    reset_seconds = max(1, math.ceil(reset))
    if count > limit:
        raise RateLimited(limit, retry_after=reset_seconds)
    response.headers["RateLimit-Limit"] = str(limit)
    response.headers["RateLimit-Remaining"] = str(limit - count)
    response.headers["RateLimit-Reset"] = str(reset_seconds)
