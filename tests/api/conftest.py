"""The gateway over real HTTP, in dev mode (memory backend, eager Celery) by default."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api.main import create_app
from shared.settings import Settings
from tests.support.player import Player
from tests.support.server import serve


@pytest.fixture
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Where the gateway keeps sessions: the memory backend, unless a test is parametrized
    over `store` (indirect) to run on a Redis server too, with a task queue of its own."""
    if getattr(request, "param", "memory") == "memory":
        return {}
    return {
        "session_backend": "redis",
        "redis_url": request.getfixturevalue("redis_url"),
        "celery_queue": f"pocket_portals.test.{uuid.uuid4().hex[:12]}",
    }


EVERY_STORE = pytest.mark.parametrize("store", ["memory", "redis"], indirect=True)


@pytest.fixture
def gateway_url_factory(
    memory_settings: Settings, store: dict[str, Any]
) -> Iterator[Callable[..., str]]:
    """Start an in-process gateway with settings overrides; stopped after the test."""
    stack: list[Any] = []

    def start(**overrides: Any) -> str:
        settings = memory_settings.model_copy(update={**store, **overrides})
        context = serve(create_app(settings))
        url = context.__enter__()
        stack.append(context)
        return url

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def gateway_url(gateway_url_factory: Callable[..., str]) -> str:
    return gateway_url_factory()


@pytest.fixture
def player(gateway_url: str) -> Iterator[Player]:
    created = Player(gateway_url, seed=42)
    yield created
    created.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.api import test_fuzz

    if test_fuzz.STATS["requests"]:
        terminalreporter.write_line(
            f"schemathesis fuzzing: {test_fuzz.STATS['requests']} generated requests over "
            f"{test_fuzz.STATS['operations']} operation runs"
        )
