"""Which Redis errors mean the session store is out of service for now: those are raised as
`BackendUnavailable` (an outage to wait out); any other error is a bug and stays one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.errors import BackendUnavailable

__all__ = ["store_guard"]


# Refusals of a server that cannot take the command now: out of memory under noeviction, a
# replica after a failover (read-only), a cluster slot moving or down, a server loading its
# data. redis-py raises its own class for most and strips the code from the message; the
# rest keep their code as the message's first word (MISCONF: a failed snapshot; UNBLOCKED: a
# blocked read on a primary that was demoted).
_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,
    ClusterError,
)
_UNAVAILABLE_REPLIES = {
    "OOM",
    "READONLY",
    "MISCONF",
    "LOADING",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "BUSY",
    "NOREPLICAS",
    "UNBLOCKED",
}


@asynccontextmanager
async def store_guard() -> AsyncIterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise BackendUnavailable("session store") from exc
    except _UNAVAILABLE_ERRORS as exc:
        raise BackendUnavailable("session store") from exc
    except RedisClusterException as exc:
        # Not RedisErrors: a slot no node serves, or no node reachable at all (its cause
        # is the connection error); anything else (cluster mode off) is a setup bug.
        if isinstance(exc, SlotNotCoveredError) or isinstance(
            exc.__cause__, RedisConnectionError | RedisTimeoutError | OSError
        ):
            raise BackendUnavailable("session store") from exc
        raise
    except ResponseError as exc:
        # An outage to wait out; any other error is a bug and stays one.
        if str(exc).split(" ", 1)[0] in _UNAVAILABLE_REPLIES:
            raise BackendUnavailable("session store") from exc
        raise
