"""Per-client request rate limits, counted in the session store so that every gateway process
shares one count: every request (RATE_LIMIT_PER_MINUTE), and new sessions apart
(SESSION_CREATE_PER_MINUTE). Answers carry the IETF `RateLimit-*` headers; a refusal is
`429 rate_limited` with `Retry-After`. A client is its address; an IPv6 client is its /64, the
block one subscriber is usually given (counting single addresses would let one host rotate
through billions)."""

from __future__ import annotations

import ipaddress
import math

from fastapi import Request, Response

from api.deps import services_of
from shared.backends import SessionBackend
from shared.errors import BackendUnavailable, RateLimited
from shared.metrics import RATE_LIMIT_FAILED_OPEN

__all__ = [
    "WINDOW_SECONDS",
    "client_address",
    "client_key",
    "rate_limit",
    "session_creation_limit",
]

WINDOW_SECONDS = 60


def client_address(request: Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's IP address (an IPv4-mapped IPv6 one as IPv4), or None when it is not an
    address. Behind a proxy, run uvicorn with --proxy-headers and --forwarded-allow-ips
    naming only that proxy, so this is the player's address and not the proxy's."""
    try:
        address = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(request: Request) -> str:
    address = client_address(request)
    if address is None:
        return request.client.host if request.client else "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


# Every request meets this one: it takes the services off the request rather than as
# dependencies of its own, which FastAPI would solve again for it on each request.
async def rate_limit(request: Request, response: Response) -> None:
    services = services_of(request)
    limit = services.settings.rate_limit_per_minute
    if limit:
        await _count(services.backend, client_key(request), limit, response, "requests")


async def session_creation_limit(request: Request, response: Response) -> None:
    services = services_of(request)
    limit = services.settings.session_create_per_minute
    if limit:
        key = f"new-session:{client_key(request)}"
        await _count(services.backend, key, limit, response, "new sessions")


async def _count(
    backend: SessionBackend, key: str, limit: int, response: Response, what: str
) -> None:
    try:
        count, reset = await backend.count_request(key, WINDOW_SECONDS)
    except BackendUnavailable:
        # The count is a write: a store out of memory or read-only refuses it while it still
        # serves reads. Fail open, so players keep reading their games; the route itself
        # answers 503 if it needs what the store cannot do.
        RATE_LIMIT_FAILED_OPEN.inc()
        return
    reset_seconds = max(1, math.ceil(reset))
    if count > limit:
        raise RateLimited(limit, retry_after=reset_seconds, what=what)
    # Two budgets may count one request (POST /sessions): the headers tell the tighter.
    shown = response.headers.get("RateLimit-Remaining")
    if shown is None or limit - count < int(shown):
        response.headers["RateLimit-Limit"] = str(limit)
        response.headers["RateLimit-Remaining"] = str(limit - count)
        response.headers["RateLimit-Reset"] = str(reset_seconds)
