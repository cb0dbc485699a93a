"""Reading what a Redis URL names: one server, a cluster, or a Sentinel service."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.redis_urls import SentinelTarget, cluster_url, kombu_sentinel, sentinel_target
from shared.settings import Settings


def test_a_plain_or_cluster_url_names_no_sentinel() -> None:
    assert sentinel_target("redis://localhost:6379/0") is None
    assert sentinel_target("redis+cluster://node:7000") is None
    assert cluster_url("redis+sentinel://s1/mymaster") is None


def test_a_sentinel_url_names_its_sentinels_service_db_and_credentials() -> None:
    target = sentinel_target(
        "redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/mymaster/3?sentinel_password=spw"
    )
    assert target == SentinelTarget(
        sentinels=[("s1", 26380), ("s2", 26379), ("::1", 26381)],
        service="mymaster",
        db=3,
        tls=False,
        master_auth={"username": "app", "password": "p@ss"},
        sentinel_auth={"password": "spw"},
    )


def test_a_sentinel_url_defaults_to_database_0_and_reads_tls_from_the_scheme() -> None:
    target = sentinel_target("rediss+sentinel://s1:26379/mymaster")
    assert target is not None and target.db == 0 and target.tls
    assert target.master_auth == {} and target.sentinel_auth == {}


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379",  # no service name
        "redis+sentinel:///mymaster",  # no Sentinel
        "redis+sentinel://s1:port/mymaster",
        "redis+sentinel://s1/mymaster/zero",
        "redis+sentinel://s1/mymaster/0/extra",
    ],
)
def test_a_malformed_sentinel_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        sentinel_target(url)


def test_settings_refuse_a_malformed_sentinel_url_at_start() -> None:
    with pytest.raises(ConfigurationError):
        Settings(_env_file=None, redis_url="redis+sentinel://s1:26379")  # type: ignore[call-arg]


def test_kombu_gets_its_own_sentinel_url_form_and_the_master_name() -> None:
    target = sentinel_target(
        "redis+sentinel://:p%40ss@s1:26380,s2/mymaster/2?sentinel_password=spw"
    )
    assert target is not None
    broker, options = kombu_sentinel(target)
    assert broker == "sentinel://:p%40ss@s1:26380/2;sentinel://:p%40ss@s2:26379/2"
    assert options == {"master_name": "mymaster", "sentinel_kwargs": {"password": "spw"}}
