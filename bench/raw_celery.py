"""The baseline a user would compare us with: a raw Celery task of the same shape as a turn
(GET the state, modify it, SET it back with a TTL, publish the result), on an app configured
exactly like the service's (`create_celery_app`), with no game, lease, inbox or commit script.

    celery -A bench.raw_celery worker      (started by `python -m bench.turns`)
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import redis
from celery.signals import worker_process_init

from shared.settings import get_settings
from worker.application import READY_MARK, create_celery_app

__all__ = ["RAW_TASK", "app", "raw_turn"]

RAW_TASK = "bench.raw_turn"

settings = get_settings()
app = create_celery_app(settings)
app.conf.include = []  # no game code: only the task below
_client: redis.Redis | None = None
_client_pid = 0


def _redis() -> redis.Redis:
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client, _client_pid = redis.Redis.from_url(settings.redis_url), os.getpid()
    return _client


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _ready(**_: Any) -> None:
    logging.getLogger(__name__).info("%s: pool process ready", READY_MARK)


@app.task(name=RAW_TASK, acks_late=True)  # type: ignore[untyped-decorator]
def raw_turn(key: str, channel: str, token: str) -> None:
    client = _redis()
    raw = client.get(key)
    state: dict[str, Any] = json.loads(raw) if raw else {}
    state["adventure_turn"] = int(state.get("adventure_turn", 0)) + 1
    client.set(key, json.dumps(state), ex=settings.redis_session_ttl)
    client.publish(channel, token)
