"""A synchronous Redis client for any URL the service takes: for operator tools, and for
what runs in step threads rather than on the worker's event loop (the LLM provider gate)."""

from __future__ import annotations

from typing import Any

import redis
import redis.sentinel

from shared.backends.codec import CLIENT_OPTIONS
from shared.redis_urls import cluster_url, sentinel_target

__all__ = ["connect"]


def connect(url: str, *, socket_timeout: float = 10) -> redis.Redis | redis.RedisCluster:
    """A client for a standalone Redis, a cluster (`redis+cluster://any-node:port`) or the
    master of a Sentinel service (`redis+sentinel://s1:26379,s2:26379/service`)."""
    cluster = cluster_url(url)
    if cluster is not None:
        return redis.RedisCluster.from_url(cluster, socket_timeout=socket_timeout, **CLIENT_OPTIONS)
    sentinel = sentinel_target(url)
    if sentinel is not None:
        monitor = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinel.sentinels,
            sentinel_kwargs={"socket_timeout": socket_timeout, **sentinel.sentinel_auth},
        )
        connection: dict[str, Any] = {
            **CLIENT_OPTIONS,
            **sentinel.master_auth,
            "socket_timeout": socket_timeout,
            "db": sentinel.db,
            "ssl": sentinel.tls,
        }
        master: redis.Redis = monitor.master_for(  # type: ignore[no-untyped-call]
            sentinel.service, **connection
        )
        return master
    client: redis.Redis = redis.Redis.from_url(url, socket_timeout=socket_timeout, **CLIENT_OPTIONS)
    return client
