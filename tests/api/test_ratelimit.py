"""Who counts as one client for the rate limits: an address, and an IPv6 client's /64."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from api.ratelimit import client_key


def _request(host: str | None) -> Request:
    return Request(
        {"type": "http", "client": None if host is None else (host, 50000), "headers": []}
    )


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_client_keys(host: str | None, key: str) -> None:
    assert client_key(_request(host)) == key


def test_neighbouring_ipv6_subnets_are_different_clients() -> None:
    assert client_key(_request("2001:db8:1:2::1")) != client_key(_request("2001:db8:1:3::1"))
