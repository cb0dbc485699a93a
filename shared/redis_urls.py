"""What a Redis URL names: one server, or a Redis Cluster (`redis+cluster://any-node:port`).

Kept apart from the backend so that settings can check a URL without importing a client."""

from __future__ import annotations

__all__ = ["cluster_url"]

_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def cluster_url(url: str) -> str | None:
    """For a cluster URL, the plain URL of the node it names (the rest are discovered);
    None for a URL of one server."""
    if url.startswith(_CLUSTER_SCHEMES):
        return url.replace("+cluster", "", 1)
    return None
