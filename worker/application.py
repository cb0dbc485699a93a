"""The Celery application. Importing it loads no game code, so the gateway can enqueue by
task name without importing CrewAI; workers load `worker.tasks` through `include`."""

from __future__ import annotations

import ssl
from typing import Any

import kombu.pools
from celery import Celery
from celery.signals import setup_logging

from shared.logs import configure_logging
from shared.redis_urls import kombu_sentinel, sentinel_target
from shared.settings import Settings, get_settings
from worker.broker import TRANSPORT

__all__ = [
    "PROCESS_SESSION",
    "READY_MARK",
    "TURN_PRIORITY",
    "URGENT_PRIORITY",
    "close_celery_app",
    "create_celery_app",
    "turn_priority",
    "urgent_priority",
]

PROCESS_SESSION = "pocket_portals.process_session"
# Message priorities, on a Redis broker only. kombu's Redis transport keeps a list per
# priority step (0, 3, 6, 9) and takes from the lowest number first: every task is sent at
# TURN_PRIORITY, and the one that gives back the session of a pool process that died mid-turn
# at URGENT_PRIORITY, so it does not wait behind a whole backlog (a rejected message goes
# back to the far end of its list). RabbitMQ needs no such help (it puts a rejected message
# back near the front) and reads priorities the other way round (higher first; quorum queues
# of RabbitMQ 4 always do): there, tasks carry no priority at all.
TURN_PRIORITY = 5
URGENT_PRIORITY = 0


def _redis_broker(settings: Settings) -> bool:
    return not settings.broker_url.startswith(("amqp://", "amqps://", "pyamqp://"))


def turn_priority(settings: Settings) -> int | None:
    return TURN_PRIORITY if _redis_broker(settings) else None


def urgent_priority(settings: Settings) -> int | None:
    return URGENT_PRIORITY if _redis_broker(settings) else None


# Logged by each pool process once it can run a turn at full speed (tests wait for it).
READY_MARK = "pocket-portals-turns"


def create_celery_app(settings: Settings) -> Celery:
    broker_url, transport, use_ssl = _broker(settings.broker_url)
    app = Celery("pocket_portals", broker=broker_url, include=["worker.tasks"])
    transport |= {
        # An unacknowledged turn is handed to another worker after this long; it must exceed
        # the longest turn (the hard time limit), or a slow turn would run twice.
        "visibility_timeout": settings.celery_visibility_timeout,
        # Look for such abandoned tasks often enough that recovery takes about the visibility
        # timeout, not kombu's default of up to 100 s more.
        "unacked_restore_interval": max(1, min(10, settings.celery_visibility_timeout // 10)),
        "unacked_restore_throttle": 1,
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_socket_timeout,
    }
    if broker_url.startswith("redis://"):
        # kombu's own transport with a redis-py client kept per channel (see worker.broker).
        app.conf.broker_transport = TRANSPORT
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A task that fails (not a turn: turn failures are handled inside) is left
        # unacknowledged so the broker re-delivers it; the turn's attempt count bounds repeats.
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.turn_time_limit,
        # No soft limit: it would interrupt the task while its drain goes on in the loop
        # thread. Drains stop by themselves after DRAIN_TIME_BUDGET; the hard limit kills a
        # stuck process, and its task is delivered again.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.celery_queue,
        task_default_priority=turn_priority(settings),
        task_always_eager=settings.celery_task_always_eager,
        task_eager_propagates=True,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # Publishing is on the gateway's request path: fail fast and answer 503 instead of
        # holding the request while kombu retries for a long time.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        broker_use_ssl=use_ssl,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def close_celery_app(app: Celery) -> None:
    """Close the app and the broker connections its producers used. Those live in kombu's
    process-wide pools, which `Celery.close` leaves open (an AMQP socket then lingers until
    the process exits); `pools.reset` closes them and lets the next app open fresh ones."""
    app.close()
    kombu.pools.reset()  # type: ignore[no-untyped-call]


def _broker(url: str) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """The broker URL, transport options and TLS options for Celery; a Sentinel URL (the
    form REDIS_URL takes) becomes kombu's own `sentinel://` form."""
    target = sentinel_target(url)
    if target is None:
        return url, {}, None
    broker_url, options = kombu_sentinel(target)
    return broker_url, options, {"ssl_cert_reqs": ssl.CERT_REQUIRED} if target.tls else None


@setup_logging.connect  # type: ignore[untyped-decorator]
def _setup_logging(**_: Any) -> None:
    # Connected, so Celery leaves the root logger to us: the pipeline's own records (turn
    # failures, lost races) reach the worker's log in the same format as Celery's.
    configure_logging(get_settings())


app = create_celery_app(get_settings())
celery_app = app
