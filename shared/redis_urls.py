"""What a Redis URL names: one server, a Redis Cluster, or a master watched by Sentinels.

    redis://[[user]:password@]host:port/db                         one server
    redis+cluster://[[user]:password@]any-node:port                 a cluster (nodes discovered)
    redis+sentinel://[[user]:password@]s1:26379,s2:26379/service[/db][?sentinel_password=…]

`rediss+…` asks for TLS. In a Sentinel URL the credentials are the master's (and its
replicas'); `sentinel_password` (and `sentinel_username`) authenticate to the Sentinels
themselves, when they require it.

Kept apart from the backend so that settings can check a URL without importing a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

from shared.errors import ConfigurationError

__all__ = ["SentinelTarget", "cluster_url", "kombu_sentinel", "sentinel_target", "shown_url"]

_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
_SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
_SENTINEL_PORT = 26379


_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")
_QUERY_SECRET = re.compile(r"([?&][a-z_]*password=)[^&]*", re.I)


def shown_url(url: str) -> str:
    """The URL with its passwords blanked, to tell an operator which server is meant."""
    return _QUERY_SECRET.sub(r"\1***", _PASSWORD.sub(r"\1***@", url))


def cluster_url(url: str) -> str | None:
    """For a cluster URL, the plain URL of the node it names (the rest are discovered);
    None for a URL of one server."""
    if url.startswith(_CLUSTER_SCHEMES):
        return url.replace("+cluster", "", 1)
    return None


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    tls: bool = False
    master_auth: dict[str, str] = field(default_factory=dict)
    sentinel_auth: dict[str, str] = field(default_factory=dict)


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    try:
        return host, int(port) if port else _SENTINEL_PORT
    except ValueError:
        raise ConfigurationError(f"bad Sentinel address {text!r} in a Redis URL") from None


def sentinel_target(url: str) -> SentinelTarget | None:
    """The Sentinels and master a Sentinel URL names; None for any other URL."""
    if not url.startswith(_SENTINEL_SCHEMES):
        return None
    # urlsplit refuses several host:port pairs in one netloc: split it by hand.
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(f"bad Sentinel URL: {exc}") from None
    credentials, _, hosts = parts.netloc.rpartition("@")
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not path or len(path) > 2:
        raise ConfigurationError(
            "a Sentinel URL reads redis+sentinel://host:port[,host:port…]/service-name[/db]"
        )
    master_auth: dict[str, str] = {}
    if credentials:
        username, has_password, password = credentials.partition(":")
        if username:
            master_auth["username"] = unquote(username)
        if has_password:
            master_auth["password"] = unquote(password)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    sentinel_auth = {
        option: query[f"sentinel_{option}"]
        for option in ("username", "password")
        if f"sentinel_{option}" in query
    }
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ConfigurationError(f"bad database number {path[1]!r} in a Sentinel URL") from None
    return SentinelTarget(
        sentinels=[_host_port(host) for host in hosts.split(",") if host],
        service=unquote(path[0]),
        db=db,
        tls=url.startswith("rediss+"),
        master_auth=master_auth,
        sentinel_auth=sentinel_auth,
    )


def kombu_sentinel(target: SentinelTarget) -> tuple[str, dict[str, object]]:
    """The broker URL and transport options kombu's Sentinel transport reads for `target`
    (`sentinel://s1;sentinel://s2` and `master_name`). TLS to the master is Celery's
    `broker_use_ssl`, set from `target.tls`."""
    credentials = ""
    if target.master_auth:
        credentials = quote(target.master_auth.get("username", ""), safe="")
        if "password" in target.master_auth:
            credentials += ":" + quote(target.master_auth["password"], safe="")
        credentials += "@"
    broker = ";".join(
        f"sentinel://{credentials}{f'[{host}]' if ':' in host else host}:{port}/{target.db}"
        for host, port in target.sentinels
    )
    options: dict[str, object] = {"master_name": target.service}
    if target.sentinel_auth:
        options["sentinel_kwargs"] = dict(target.sentinel_auth)
    return broker, options
