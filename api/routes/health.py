"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import Backend, Queue
from api.openapi import errors
from shared.errors import BackendUnavailable

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
