"""`GET /metrics`: the gateway's requests and turns, and (dev mode) the in-process worker's."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_network

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.player import Player

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(base_url: str) -> dict[Sample, float]:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_played_turn_is_counted_by_route_status_and_outcome(player: Player) -> None:
    base = player.base_url
    before = scrape(base)
    turn = player.play({"choice_index": 1})
    again = player.submit({"choice_index": 1}, **{"Idempotency-Key": "m1"})
    duplicate = player.submit({"choice_index": 1}, **{"Idempotency-Key": "m1"})
    assert again.json()["turn_id"] == duplicate.json()["turn_id"]
    player.turn(again.json()["turn_id"], wait=30)
    httpx.get(f"{base}/no/such/route", timeout=10)
    after = scrape(base)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/sessions/{session_id}/turns"
    assert grew("pocket_portals_http_requests_total", method="POST", route=route, status="202") == 3
    assert (
        grew("pocket_portals_http_request_duration_seconds_count", method="POST", route=route) == 3
    )
    assert grew("pocket_portals_turns_accepted_total") == 2
    assert grew("pocket_portals_turns_deduplicated_total") == 1
    # Dev mode: the eager worker runs in this process, so its metrics are here too.
    assert grew("pocket_portals_turns_completed_total") == 2
    assert grew("pocket_portals_turn_processing_seconds_count", narrator="offline") == 2
    assert grew("pocket_portals_turn_queue_wait_seconds_count") == 2
    assert (
        grew("pocket_portals_http_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    assert value(after, "pocket_portals_active_sessions") >= 1
    assert turn["turn_id"] not in httpx.get(f"{base}/metrics", timeout=10).text
    assert player.session_id not in httpx.get(f"{base}/metrics", timeout=10).text


def test_docs_schema_and_refused_bodies_are_counted_under_their_routes(player: Player) -> None:
    base = player.base_url
    before = scrape(base)
    assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
    assert httpx.get(f"{base}/openapi.json", timeout=10).status_code == 200
    too_large = player.http.post(
        f"/sessions/{player.session_id}/turns",
        content=b"x" * 20_000,
        headers={**player.auth, "Content-Type": "application/json"},
    )
    assert too_large.status_code == 413
    after = scrape(base)

    def grew(**labels: str) -> float:
        name = "pocket_portals_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(method="GET", route="/docs", status="200") == 1
    assert grew(method="GET", route="/openapi.json", status="200") == 1
    route = "/sessions/{session_id}/turns"
    assert grew(method="POST", route=route, status="413") == 1
    assert grew(method="POST", route="unmatched", status="413") == 0


def test_a_made_up_method_is_counted_as_other(player: Player) -> None:
    base = player.base_url
    before = scrape(base)
    # Methods every HTTP parser passes on (under h11 any token would do).
    for method in ("PROPFIND", "MKCOL", "LOCK"):
        httpx.request(method, f"{base}/healthz", timeout=10)
    after = scrape(base)
    exposition = httpx.get(f"{base}/metrics", timeout=10).text
    assert "PROPFIND" not in exposition and "MKCOL" not in exposition
    grown = sum(
        value(after, name, **dict(labels)) - value(before, name, **dict(labels))
        for name, labels in after
        if name == "pocket_portals_http_requests_total" and ("method", "other") in labels
    )
    assert grown == 3


def test_metrics_are_only_for_the_networks_allowed(
    gateway_url_factory: Callable[..., str],
) -> None:
    url = gateway_url_factory(metrics_allowed_networks=[ip_network("127.0.0.2/32")])
    refused = httpx.get(f"{url}/metrics", timeout=10)  # from 127.0.0.1
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=url, transport=transport, timeout=10) as scraper:
        allowed = scraper.get("/metrics")
    assert allowed.status_code == 200
    assert "pocket_portals_http_requests_total" in allowed.text
