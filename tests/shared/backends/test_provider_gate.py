"""The LLM provider gate's contract: the same answers in the process (`LocalGate`) and in the
store (`RedisGate` on fakeredis, a real Redis, a cluster), where every worker shares them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import fakeredis
import pytest

from shared.backends.codec import CLIENT_OPTIONS
from shared.backends.provider_gate import RedisGate, gate_key
from shared.backends.sync_client import connect
from shared.game.llm.limits import Admission, Budget, GateLimits, LocalGate, ProviderGate
from tests.support.ports import free_port

GateFactory = Callable[[GateLimits], ProviderGate]


@pytest.fixture(params=["local", "fakeredis", "redis", "cluster"])
def make_gate(request: pytest.FixtureRequest) -> Iterator[GateFactory]:
    if request.param == "local":
        yield LocalGate
        return
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()
        yield lambda limits: RedisGate(fakeredis.FakeRedis(server=server, **CLIENT_OPTIONS), limits)
        return
    url = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    clients = []

    def make(limits: GateLimits) -> ProviderGate:
        client = connect(url, socket_timeout=5)
        clients.append(client)
        return RedisGate(client, limits)

    yield make
    for client in clients:
        client.close()


def endpoint() -> str:
    return uuid.uuid4().hex[:16]


def test_calls_within_the_burst_go_at_once_then_at_the_budgets_pace(
    make_gate: GateFactory,
) -> None:
    gate, name = make_gate(GateLimits(max_wait=15, burst=1)), endpoint()
    budget = Budget(rpm=6)  # one call every 10 s
    assert gate.admit(name, 100, budget) == Admission(0.0)
    second = gate.admit(name, 100, budget)
    assert second.refused is None and second.reason == "budget"
    assert 7 < second.wait <= 10  # its slot is booked ten seconds on
    third = gate.admit(name, 100, budget)
    assert third.refused == "over_budget" and 17 < third.wait <= 20  # beyond LLM_MAX_WAIT
    assert gate.admit(name, 100, Budget()) == Admission(0.0)  # no budget: nothing to wait for
    assert gate.admit(endpoint(), 100, budget) == Admission(0.0)  # another endpoint: its own


def test_gates_on_one_store_share_the_budget(make_gate: GateFactory) -> None:
    limits = GateLimits(max_wait=30, burst=1)
    first, second, name = make_gate(limits), make_gate(limits), endpoint()
    budget = Budget(rpm=6)
    assert first.admit(name, 10, budget).wait == 0
    if isinstance(first, LocalGate):  # a process's own gate: each process has its own
        assert second.admit(name, 10, budget).wait == 0
        return
    assert 7 < second.admit(name, 10, budget).wait <= 10
    assert 17 < first.admit(name, 10, budget).wait <= 20


def test_tokens_are_booked_at_the_estimate_and_settled_to_use(make_gate: GateFactory) -> None:
    gate, name = make_gate(GateLimits(max_wait=60, burst=1)), endpoint()
    budget = Budget(tpm=600)  # 10 tokens a second: 100 tokens take 10 s of budget
    assert gate.admit(name, 100, budget).wait == 0
    booked = gate.admit(name, 100, budget)
    assert 7 < booked.wait <= 10
    gate.settle(name, booked=100, used=20, budget=budget)  # 8 s of budget given back
    assert 9 < gate.admit(name, 100, budget).wait <= 12  # 10 + 10 - 8 = 12 s on


def test_a_retry_after_holds_every_call_to_the_endpoint(make_gate: GateFactory) -> None:
    gate, name = make_gate(GateLimits(max_wait=20)), endpoint()
    gate.failed(name, retry_after=12)
    held = gate.admit(name, 10, Budget())
    assert held.refused is None and held.reason == "cooldown" and 9 < held.wait <= 12
    gate.failed(name, retry_after=40)
    refused = gate.admit(name, 10, Budget())
    assert refused.refused == "over_budget" and refused.reason == "cooldown"


def _when_closed(gate: ProviderGate, name: str) -> Admission:
    deadline = time.monotonic() + 30
    while (admission := gate.admit(name, 10, Budget())).refused == "circuit_open":
        assert time.monotonic() < deadline, "the circuit never closed"
        time.sleep(0.05)
    return admission


def test_the_circuit_opens_after_failures_and_one_more_reopens_it(
    make_gate: GateFactory,
) -> None:
    gate, name = make_gate(GateLimits(circuit_failures=3, circuit_open=0.5)), endpoint()
    for _ in range(2):
        gate.failed(name, None)
    assert gate.admit(name, 10, Budget()).refused is None
    gate.failed(name, None)
    opened = gate.admit(name, 10, Budget())
    assert opened.refused == "circuit_open" and 0 < opened.wait <= 0.5
    assert _when_closed(gate, name).refused is None  # half-open: a call may try
    gate.failed(name, None)
    assert gate.admit(name, 10, Budget()).refused == "circuit_open"
    _when_closed(gate, name)
    gate.succeeded(name)  # closed for good: the count starts again
    gate.failed(name, None)
    assert gate.admit(name, 10, Budget()).refused is None


def test_an_unreachable_store_lets_calls_through() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1)
    gate = RedisGate(client, GateLimits())
    try:
        assert gate.admit(endpoint(), 10, Budget(rpm=1)) == Admission(0.0)
        gate.failed(endpoint(), 5)
        gate.settle(endpoint(), 10, 5, Budget(tpm=10))
        gate.succeeded(endpoint())
    finally:
        client.close()


# In a store only: a process's own gate keeps nothing there.
@pytest.mark.parametrize("make_gate", ["fakeredis", "redis", "cluster"], indirect=True)
def test_an_endpoints_hash_lives_an_hour_past_its_last_write(make_gate: GateFactory) -> None:
    gate = make_gate(GateLimits())
    assert isinstance(gate, RedisGate)
    unbudgeted, budgeted, failing = endpoint(), endpoint(), endpoint()
    # No budget and no failure: nothing to keep, nothing written.
    assert gate.admit(unbudgeted, 10, Budget()) == Admission(0.0)
    assert gate.client.exists(gate_key(unbudgeted)) == 0
    gate.admit(budgeted, 10, Budget(rpm=60, tpm=1000))
    assert gate.client.hget(gate_key(budgeted), "rt") is not None
    assert 3_590_000 < int(gate.client.pttl(gate_key(budgeted))) <= 3_600_000
    gate.failed(failing, 30)
    gate.client.pexpire(gate_key(failing), 60_000)
    # An unbudgeted call writes nothing, so leaves the TTL the failure's write gave.
    assert gate.admit(failing, 10, Budget()).reason == "cooldown"
    assert int(gate.client.pttl(gate_key(failing))) <= 60_000
