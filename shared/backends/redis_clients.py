"""The Redis clients of a `RedisBackend`, as the settings' URL says: a Redis Cluster, a
Sentinel-managed master, or a standalone server (TLS and auth as the URL gives them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from shared.backends.codec import CLIENT_OPTIONS
from shared.backends.redis_base import Client
from shared.redis_urls import cluster_url, sentinel_target
from shared.settings import Settings

__all__ = ["Clients", "clients_from_settings"]


@dataclass(frozen=True)
class Clients:
    """A backend's clients: `client` for commands, `stream_client` for blocking reads (None:
    `client` serves those too), and `also_close`, clients that only serve the others."""

    client: Client
    stream_client: Client | None = None
    also_close: Sequence[aioredis.Redis] = ()


def clients_from_settings(settings: Settings, url: str) -> Clients:
    timeouts = {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_socket_timeout,
    }
    cluster = cluster_url(url)
    if cluster is not None:
        # Every key of a session carries its id as a hash tag, so each script and
        # pipeline of the backend stays in one slot; the client routes it there.
        client = aioredis.RedisCluster.from_url(
            cluster,
            **CLIENT_OPTIONS,
            **timeouts,
            max_connections=settings.redis_max_connections + settings.redis_max_stream_connections,
        )
        return Clients(client)

    sentinel = sentinel_target(url)
    if sentinel is not None:
        # The clients ask the Sentinels for the current master on each new connection
        # and drop their connections when a failover demotes it (READONLY).
        monitor = aioredis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinel.sentinels, sentinel_kwargs={**timeouts, **sentinel.sentinel_auth}
        )
        connection: dict[str, Any] = {
            **CLIENT_OPTIONS,
            **timeouts,
            **sentinel.master_auth,
            "db": sentinel.db,
            "ssl": sentinel.tls,
        }

        def master(size: int) -> aioredis.Redis:
            client = monitor.master_for(sentinel.service, **connection, max_connections=size)
            return cast(aioredis.Redis, client)

        return Clients(
            master(settings.redis_max_connections),
            stream_client=master(settings.redis_max_stream_connections),
            also_close=monitor.sentinels,
        )

    def pool(size: int) -> aioredis.BlockingConnectionPool:
        # Blocking: when every connection is busy, a caller waits up to the socket
        # timeout for one instead of failing at once.
        return aioredis.BlockingConnectionPool.from_url(
            url,
            **CLIENT_OPTIONS,
            **timeouts,
            max_connections=size,
            timeout=settings.redis_socket_timeout,
            health_check_interval=30,
        )

    return Clients(
        aioredis.Redis.from_pool(pool(settings.redis_max_connections)),
        stream_client=aioredis.Redis.from_pool(pool(settings.redis_max_stream_connections)),
    )
