"""Celery's Redis transport (kombu's), with one redis-py client per channel.

kombu's Redis channel builds a new `redis.Redis` for each publish and for each step of its
bookkeeping of unacknowledged tasks (two per delivered task); every build fills redis-py's
table of ~170 response callbacks, about 0.3 ms of CPU. That was a quarter of a worker's
Celery overhead per task, and half of the gateway's publish. A channel is used by one thread
at a time and a redis-py client over a connection pool is safe to share anyway, so this
channel keeps one client over its pool, made again if kombu replaces the pool (after a
connection error). Everything else, wire format and keys included, is kombu's: workers of
either transport share one queue.

Its bookkeeping of a delivered task (an index entry and the message, written as the task is
taken and deleted as it is acknowledged) goes in plain pipelines, not MULTI/EXEC
transactions: 6 broker commands per task instead of 10. The transactions bought little. A
worker that dies mid-write loses the task either way (it was popped off the queue first),
and the restore of a task past its visibility timeout keeps its own WATCH/MULTI transaction,
which every write to the messages' hash (an acknowledgement's included) still aborts. A
restore racing an acknowledgement may deliver the task again either way; turns are
idempotent against that. What a plain pipeline adds: a connection cut between the two
commands of a pair leaves half of it. Half an append (an index entry without its message)
is cleared by the next restore; half an acknowledgement (a message without its index entry)
stays in the hash, a message body of garbage, where the transaction would have delivered
the finished task again after the visibility timeout.

Used for `redis://` brokers (see `worker.application`); TLS (`rediss://`) and Sentinel
brokers keep kombu's own transport.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

__all__ = ["TRANSPORT", "Channel", "QoS", "Transport"]

# How Celery's `broker_transport` setting names this transport.
TRANSPORT = "worker.broker:Transport"


class QoS(kombu_redis.QoS):
    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        if pipe:
            yield pipe  # a caller's own (a restore's transaction)
            return
        with self.channel.conn_or_acquire(client) as acquired:
            yield acquired.pipeline(transaction=False)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _kept_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        kept = self._kept_client
        if kept is None or kept.connection_pool is not self.pool:
            kept = self._kept_client = self._create_client()  # type: ignore[no-untyped-call]
        yield kept


class Transport(kombu_redis.Transport):
    Channel = Channel
