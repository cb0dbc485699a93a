"""Schemathesis against the gateway's own OpenAPI document: no request it can generate, valid
or not, may get a 5xx or a response that breaks the document. Bounded and deterministic (a
fixed number of examples per operation, derandomized), so it runs in every test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from shared.settings import Settings

EXAMPLES = 50  # per operation, per generation mode, per pass
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Read by tests/api/conftest.py to print the totals at the end of the run.
STATS: dict[str, int] = {"requests": 0, "operations": 0}


def _settings(storage: Path) -> Settings:
    return Settings(
        session_backend="memory",  # type: ignore[arg-type]
        celery_task_always_eager=True,
        crewai_storage_dir=storage,
        rate_limit_per_minute=0,
        session_create_per_minute=0,
        max_turns_in_flight_per_client=0,
        _env_file=None,  # type: ignore[call-arg]
    )


# The document the app serves, built without starting it, to name one test per operation.
_DOCUMENT = create_app(_settings(Path("/tmp/pocket-portals-openapi"))).openapi()
OPERATIONS = [(m.upper(), p) for p, ops in _DOCUMENT["paths"].items() for m in ops]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tests.support.server import serve

    with serve(create_app(_settings(tmp_path_factory.mktemp("crewai")))) as url:
        created = httpx.post(f"{url}/sessions", json={"seed": 1}).json()
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        yield {
            "url": url,
            "schema": schema,
            "session_id": created["session_id"],
            "token": created["player_token"],
        }


def _fuzz(target: dict[str, Any], method: str, path: str, *, real_session: bool) -> None:
    operation = target["schema"][path][method]
    overrides: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if real_session:
        headers["Authorization"] = f"Bearer {target['token']}"
        if "{session_id}" in path:
            overrides["path_parameters"] = {"session_id": target["session_id"]}
    STATS["operations"] += 1
    modes = [GenerationMode.POSITIVE]
    if list(operation.iter_parameters()) or operation.body:
        modes.append(GenerationMode.NEGATIVE)  # nothing to get wrong otherwise
    for mode in modes:

        @given(case=operation.as_strategy(generation_mode=mode, **overrides))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            STATS["requests"] += 1
            case.call_and_validate(
                base_url=target["url"], headers=headers or None, checks=CHECKS, timeout=30
            )

        run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_random_requests_never_break_the_contract(
    target: dict[str, Any], method: str, path: str
) -> None:
    _fuzz(target, method, path, real_session=False)


@pytest.mark.parametrize(
    ("method", "path"), [(m, p) for m, p in OPERATIONS if not p.endswith("/events")]
)
def test_requests_on_a_real_session_never_break_the_contract(
    target: dict[str, Any], method: str, path: str
) -> None:
    """With a real session and its token, bodies reach the game's validation instead of
    stopping at authentication. (The event stream is left out: with a real token it streams
    until the client leaves.)"""
    _fuzz(target, method, path, real_session=True)
