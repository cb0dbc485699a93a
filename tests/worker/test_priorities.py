"""Message priorities: a Redis broker's tasks carry them, a RabbitMQ broker's do not, and an
urgent delivery is urgent once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.settings import Settings
from worker.application import TURN_PRIORITY, URGENT_PRIORITY, turn_priority, urgent_priority
from worker.tasks import _back_in_line


@pytest.mark.parametrize(
    ("broker", "turns", "urgent"),
    [
        ("redis://127.0.0.1:6379/0", TURN_PRIORITY, URGENT_PRIORITY),
        ("rediss://cache.example:6380/0", TURN_PRIORITY, URGENT_PRIORITY),
        ("amqp://guest:guest@127.0.0.1:5672//", None, None),
        ("pyamqp://guest:guest@127.0.0.1//", None, None),
    ],
)
def test_only_a_redis_broker_gets_priorities(
    broker: str, turns: int | None, urgent: int | None
) -> None:
    settings = Settings(celery_broker_url=broker, _env_file=None)  # type: ignore[call-arg]
    assert turn_priority(settings) == turns
    assert urgent_priority(settings) == urgent


def test_the_redis_transport_takes_the_urgent_list_first() -> None:
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    steps = sorted(PRIORITY_STEPS)
    urgent = steps[max(i for i, s in enumerate(steps) if s <= URGENT_PRIORITY)]
    turns = steps[max(i for i, s in enumerate(steps) if s <= TURN_PRIORITY)]
    assert urgent < turns and list(PRIORITY_STEPS) == steps  # BRPOP asks in this order
    assert Channel.sep  # the lists are "<queue>" and "<queue><sep><step>"


@pytest.mark.parametrize(
    ("delivered", "follow_ups"),
    [(URGENT_PRIORITY, TURN_PRIORITY), (TURN_PRIORITY, TURN_PRIORITY), (None, None)],
)
def test_an_urgent_delivery_is_urgent_once(delivered: int | None, follow_ups: int | None) -> None:
    request = SimpleNamespace(delivery_info={"priority": delivered, "routing_key": "q"})
    _back_in_line(request)
    assert request.delivery_info == {"priority": follow_ups, "routing_key": "q"}
