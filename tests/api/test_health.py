"""/healthz, /readyz and the OpenAPI document."""

from __future__ import annotations

import asyncio

import httpx

from api.main import create_app
from shared.settings import Settings
from tests.support.server import serve


def test_health_and_readiness(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"session_store": "ok", "broker": "ok"}


def test_readiness_names_a_check_that_hangs_and_still_answers(memory_settings: Settings) -> None:
    app = create_app(memory_settings.model_copy(update={"readiness_timeout": 0.5}))

    async def hung() -> None:
        await asyncio.sleep(60)

    with serve(app) as url:
        app.state.services.backend.ping = hung  # a store that accepts and never answers
        answer = httpx.get(f"{url}/readyz", timeout=30)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    error = answer.json()["error"]
    assert error["code"] == "backend_unavailable"
    assert error["details"] == {"session_store": "timeout", "broker": "ok"}


def test_openapi_describes_every_route(gateway_url: str) -> None:
    paths = httpx.get(f"{gateway_url}/openapi.json").json()["paths"]
    assert set(paths) >= {
        "/sessions",
        "/sessions/{session_id}",
        "/sessions/{session_id}/turns",
        "/sessions/{session_id}/turns/{turn_id}",
        "/sessions/{session_id}/events",
        "/healthz",
        "/readyz",
    }


def test_unknown_route_and_method_use_the_error_format(gateway_url: str) -> None:
    missing = httpx.get(f"{gateway_url}/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.put(f"{gateway_url}/sessions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
