"""The Redis broker transport: kombu's, with one redis-py client kept per channel, for plain
`redis://` brokers only; messages go and come as with kombu's own."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis
from kombu import Connection

from shared.settings import Settings
from tests.support.redis_server import RedisServer
from worker.application import close_celery_app, create_celery_app
from worker.broker import Channel, Transport


def _transport(broker: str) -> type:
    app = create_celery_app(Settings(celery_broker_url=broker, _env_file=None))  # type: ignore[call-arg]
    try:
        with app.connection_for_write() as connection:
            cls: type = (
                connection.transport_cls
                if isinstance(connection.transport_cls, type)
                else type(connection.transport)
            )
            return cls
    finally:
        close_celery_app(app)


@pytest.mark.parametrize(
    ("broker", "ours"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("rediss://cache.example:6380/0", False),
        ("amqp://guest:guest@127.0.0.1:5672//", False),
    ],
)
def test_only_a_plain_redis_broker_uses_it(broker: str, ours: bool) -> None:
    assert (_transport(broker) is Transport) is ours


def test_a_channel_keeps_one_client_until_its_pool_is_replaced(redis_url: str) -> None:
    with Connection(redis_url, transport=Transport) as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
        channel._pool = None  # as kombu does after a connection error
        with channel.conn_or_acquire() as third:
            assert third is not first and third.connection_pool is channel.pool


def test_messages_go_and_come_back_acknowledged(redis_url: str) -> None:
    queue = f"test.broker.{uuid.uuid4().hex[:8]}"
    with Connection(redis_url, transport=Transport) as connection:
        with connection.SimpleQueue(queue) as simple:
            for n in range(3):
                simple.put({"n": n})
            received = []
            for _ in range(3):
                message = simple.get(timeout=10)
                received.append(message.payload["n"])
                message.ack()
            assert received == [0, 1, 2]
            with pytest.raises(simple.Empty):
                simple.get_nowait()
        channel = connection.default_channel
        with channel.conn_or_acquire() as client:
            # Nothing left unacknowledged in kombu's bookkeeping.
            assert client.hlen(channel.unacked_key) == 0
            client.delete(queue)


def test_a_delivered_tasks_bookkeeping_takes_no_transaction(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Taken: an index entry and the message kept; acknowledged: both deleted. Each pair in a
    plain pipeline: 4 commands, where MULTI/EXEC made them 8."""
    server = redis_server_factory()
    queue = f"test.broker.{uuid.uuid4().hex[:8]}"
    with redis.Redis.from_url(server.url) as store:
        with Connection(server.url, transport=Transport) as connection:
            with connection.SimpleQueue(queue) as simple:
                simple.put({"n": 1})
                store.config_resetstat()
                message = simple.get(timeout=10)
                channel = connection.default_channel
                assert store.hlen(channel.unacked_key) == 1
                assert store.zcard(channel.unacked_index_key) == 1
                message.ack()
                assert store.hlen(channel.unacked_key) == 0
                assert store.zcard(channel.unacked_index_key) == 0
        stats = store.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    assert "multi" not in calls and "exec" not in calls, calls
    assert [calls.get(c) for c in ("zadd", "hset", "zrem", "hdel")] == [1, 1, 1, 1], calls


def test_a_task_taken_and_never_acknowledged_is_restored(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """The restore keeps kombu's own WATCH/MULTI transaction: a channel closed with a task
    unacknowledged puts it back on the queue, once, and leaves no bookkeeping behind."""
    server = redis_server_factory()
    queue = f"test.broker.{uuid.uuid4().hex[:8]}"
    with redis.Redis.from_url(server.url) as store:
        with Connection(server.url, transport=Transport) as connection:
            channel = connection.default_channel
            with connection.SimpleQueue(queue) as simple:
                simple.put({"n": 7})
                taken = simple.get(timeout=10)
                assert taken.payload == {"n": 7}  # and never acknowledged
                store.config_resetstat()
        assert store.hlen(channel.unacked_key) == 0
        assert store.zcard(channel.unacked_index_key) == 0
        assert store.llen(queue) == 1
        stats = store.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        assert [calls.get(c) for c in ("watch", "multi", "exec")] == [1, 1, 1], calls
        with Connection(server.url, transport=Transport) as connection:
            with connection.SimpleQueue(queue) as simple:
                again = simple.get(timeout=10)
                assert again.payload == {"n": 7}
                again.ack()
                with pytest.raises(simple.Empty):
                    simple.get_nowait()
