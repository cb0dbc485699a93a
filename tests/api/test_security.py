"""Hostile input and ownership: rate limits, overload, correlation ids, CORS, production
safety, and what the OpenAPI document promises."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from api.main import create_app
from shared.errors import ConfigurationError
from shared.settings import Settings
from tests.support.player import Player
from tests.support.processes import run_python
from tests.support.server import serve


def test_rate_limit_answers_429_with_standard_headers(
    gateway_url_factory: Callable[..., str],
) -> None:
    url = gateway_url_factory(rate_limit_per_minute=3)
    with httpx.Client(base_url=url) as http:
        answers = [http.post("/sessions") for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "3"
    with httpx.Client(base_url=url) as http:  # health is never limited
        assert http.get("/healthz").status_code == 200


def test_overload_is_503_with_retry_after(gateway_url_factory: Callable[..., str]) -> None:
    url = gateway_url_factory(max_queue_depth=1, narrator_delay=2.0)
    first, second = Player(url), Player(url)
    try:
        assert first.submit({"choice_index": 1}).status_code == 202
        refused = second.submit({"choice_index": 1})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        assert int(refused.headers["Retry-After"]) >= 1
    finally:
        first.close()
        second.close()


def _app_with_a_bug(settings: Settings) -> FastAPI:
    app = create_app(settings)

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internals: /etc/passwd at line 42")

    return app


def test_unexpected_errors_are_500_json_with_a_correlation_id(memory_settings: Settings) -> None:
    with serve(_app_with_a_bug(memory_settings)) as url:
        answer = httpx.get(f"{url}/bug")
        given = httpx.get(f"{url}/bug", headers={"X-Request-ID": "client-chosen.id-1"})
        ok = httpx.get(f"{url}/healthz")
    assert answer.status_code == 500
    body = answer.json()["error"]
    assert body["code"] == "internal_error"
    assert body["details"]["correlation_id"] == answer.headers["X-Request-ID"]
    assert "secret internals" not in answer.text and "Traceback" not in answer.text
    assert given.headers["X-Request-ID"] == "client-chosen.id-1"
    assert given.json()["error"]["details"]["correlation_id"] == "client-chosen.id-1"
    assert len(ok.headers["X-Request-ID"]) == 32


def test_insane_request_ids_are_replaced(gateway_url: str) -> None:
    answer = httpx.get(f"{gateway_url}/healthz", headers={"X-Request-ID": "x" * 65})
    assert answer.headers["X-Request-ID"] != "x" * 65


def test_cors_allows_only_configured_origins(gateway_url_factory: Callable[..., str]) -> None:
    url = gateway_url_factory(cors_origins=["https://play.example"])
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = httpx.options(
        f"{url}/sessions", headers={**preflight, "Origin": "https://play.example"}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://play.example"
    other = httpx.options(
        f"{url}/sessions", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    "unsafe",
    [
        {"session_backend": "memory", "celery_task_always_eager": True},
        {"celery_task_always_eager": True},
        {"cors_origins": ["*"]},
        {"debug": True},
    ],
)
def test_production_refuses_unsafe_settings(unsafe: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="ENVIRONMENT=production"):
        Settings(environment="production", _env_file=None, **unsafe)  # type: ignore[arg-type]
    Settings(environment="development", _env_file=None, **unsafe)  # type: ignore[arg-type]


def test_production_gateway_will_not_start_in_dev_mode() -> None:
    env = {
        "ENVIRONMENT": "production",
        "SESSION_BACKEND": "memory",
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    result = run_python(["-c", "import api.main"], env)
    assert result.returncode != 0
    assert "ENVIRONMENT=production refuses to start" in result.stderr


def test_openapi_states_auth_and_errors_truthfully(gateway_url: str) -> None:
    spec = httpx.get(f"{gateway_url}/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["PlayerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The player_token returned by POST /sessions.",
    }
    assert schemes["PlayerTokenQuery"]["in"] == "query"
    paths = spec["paths"]
    assert paths["/sessions/{session_id}"]["get"]["security"] == [{"PlayerToken": []}]
    assert {"PlayerTokenQuery": []} in paths["/sessions/{session_id}/events"]["get"]["security"]
    assert "security" not in paths["/sessions"]["post"]
    assert "401" not in paths["/healthz"]["get"]["responses"]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == error_ref, (path, method, status)


def test_api_docs_can_be_turned_off_and_the_schema_stays(
    gateway_url_factory: Callable[..., str],
) -> None:
    # Swagger UI's scripts come from a CDN: no third-party script on the token's origin.
    off = gateway_url_factory(api_docs=False)
    on = gateway_url_factory()
    for url, served in ((off, False), (on, True)):
        for path in ("/docs", "/redoc"):
            status = httpx.get(f"{url}{path}", timeout=10).status_code
            assert status == (200 if served else 404), (url, path)
        assert httpx.get(f"{url}/openapi.json", timeout=10).status_code == 200
