"""Settings that contradict each other are refused at start-up, with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_defaults_agree() -> None:
    defaults = settings()
    assert defaults.turn_records_kept > 0 and defaults.max_pending_turns > 0


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"turn_time_limit": 60, "celery_visibility_timeout": 60}, "CELERY_VISIBILITY_TIMEOUT"),
        ({"redis_url": "redis+cluster://10.0.0.1:7000/0"}, "CELERY_BROKER_URL"),
        ({"session_backend": "memory", "celery_task_always_eager": False}, "ALWAYS_EAGER"),
    ],
)
def test_contradictions_are_refused(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        settings(**values)


def test_kept_records_events_and_history_are_each_settable_alone() -> None:
    # A finished turn carries its own narrative: nothing ties these to the history.
    alone = settings(
        max_pending_turns=64, turn_records_kept=100, events_maxlen=200, history_limit=20
    )
    assert (alone.turn_records_kept, alone.events_maxlen, alone.history_limit) == (100, 200, 20)
    # Pending turns' records are kept besides TURN_RECORDS_KEPT finished ones.
    assert settings(max_pending_turns=64).turn_records_kept == 12


def test_api_docs_are_off_in_production_unless_asked_for() -> None:
    assert settings().serves_api_docs
    production = {"environment": "production"}
    assert not settings(**production).serves_api_docs
    assert settings(**production, api_docs=True).serves_api_docs
    assert not settings(api_docs=False).serves_api_docs
