"""Liveness and readiness."""

from __future__ import annotations

import contextlib
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.deps import Backend, Queue, SettingsDep
from api.metrics import CONTENT_TYPE_LATEST, exposition
from api.openapi import errors
from shared.errors import BackendUnavailable
from shared.metrics import ACTIVE_SESSIONS, QUEUE_DEPTH

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=errors(503))
async def readyz(backend: Backend, queue: Queue) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, probe in (("session_store", backend.ping), ("broker", queue.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except BackendUnavailable:
            checks[name] = "unavailable"
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
async def metrics(queue: Queue, backend: Backend, settings: SettingsDep) -> Response:
    # The other metrics still matter when a store does not answer, most of all then.
    with contextlib.suppress(BackendUnavailable):
        QUEUE_DEPTH.set(await queue.depth())  # sampled at most once a second
    with contextlib.suppress(BackendUnavailable):
        since = time.time() - settings.active_session_window
        ACTIVE_SESSIONS.set(await backend.active_sessions(since))
    return Response(exposition(settings), media_type=CONTENT_TYPE_LATEST)
