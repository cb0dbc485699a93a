"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Network, IPv6Network

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from api.deps import Backend, Queue, SettingsDep
from api.metrics import CONTENT_TYPE_LATEST, exposition
from api.openapi import errors
from api.ratelimit import client_address
from shared.errors import BackendUnavailable
from shared.metrics import (
    ACTIVE_SESSIONS,
    QUEUE_DEPTH,
    STORE_MAXMEMORY_BYTES,
    STORE_USED_MEMORY_BYTES,
)

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _probe(probe: Callable[[], Awaitable[None]], timeout: float) -> str:
    try:
        await asyncio.wait_for(probe(), timeout)
    except BackendUnavailable:
        return "unavailable"
    except TimeoutError:
        return "timeout"
    except Exception:  # a bug in a probe still gets an answer, and the other probe's
        logger.exception("readiness probe failed")
        return "error"
    return "ok"


@router.get("/readyz", responses=errors(503))
async def readyz(backend: Backend, queue: Queue, settings: SettingsDep) -> JSONResponse:
    # Both at once, each within READINESS_TIMEOUT: an orchestrator's probe must get its
    # answer before its own timeout, whatever a hung store or broker does.
    probes = {"session_store": backend.ping, "broker": queue.ping}
    answers = await asyncio.gather(
        *(_probe(probe, settings.readiness_timeout) for probe in probes.values())
    )
    checks = dict(zip(probes, answers, strict=True))
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failed = ", ".join(k for k, v in checks.items() if v != "ok")
    return JSONResponse(
        {
            "error": {
                "code": "backend_unavailable",
                "message": f"Not ready: {failed}.",
                "details": checks,
            }
        },
        status_code=503,
        headers={"Retry-After": "2"},
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(
    request: Request, queue: Queue, backend: Backend, settings: SettingsDep
) -> Response:
    if not _may_scrape(request, settings.metrics_allowed_networks):
        # As for a route that does not exist: nothing to learn from probing it.
        raise HTTPException(status_code=404)
    # The other metrics still matter when a store does not answer, most of all then.
    with contextlib.suppress(BackendUnavailable):
        QUEUE_DEPTH.set(await queue.depth())  # sampled at most once a second
    with contextlib.suppress(BackendUnavailable):
        since = time.time() - settings.active_session_window
        ACTIVE_SESSIONS.set(await backend.active_sessions(since))
    with contextlib.suppress(BackendUnavailable):
        memory = await backend.memory_usage()
        if memory is not None:
            STORE_USED_MEMORY_BYTES.set(memory[0])
            STORE_MAXMEMORY_BYTES.set(memory[1])
    return Response(exposition(settings), media_type=CONTENT_TYPE_LATEST)


def _may_scrape(request: Request, allowed: Sequence[IPv4Network | IPv6Network]) -> bool:
    """Whether the client (the player's address behind a trusted proxy) is in a network
    allowed to read the metrics: the exposition tells an attacker how loaded the service is."""
    address = client_address(request)
    return address is not None and any(address in network for network in allowed)
