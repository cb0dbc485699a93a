"""/healthz, /readyz and the OpenAPI document."""

from __future__ import annotations

import httpx


def test_health_and_readiness(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"session_store": "ok", "broker": "ok"}


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
