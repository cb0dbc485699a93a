"""The store's spans: with TRACE_STORE_COMMANDS=scripts (the default) redis-py's
instrumentation traces the commands that run one of the service's scripts, alone or in a
pipeline, and none of the plain reads and writes around them, which leave the current span as
it was; with `all`, every command. A script's span is named after the script the store runs
(`EVALSHA ACCEPT`), the session store's real scripts included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.backends.codec import CLIENT_OPTIONS
from shared.backends.provider_gate import RedisGate, gate_key
from shared.backends.redis import RedisBackend
from shared.game.llm.limits import Budget, GateLimits
from shared.ids import new_session_id
from shared.models import GameState
from shared.tracing import _StoreTracerProvider, store_script
from tests.support.processes import run_python

pytestmark = pytest.mark.integration


@pytest.fixture(params=[True], ids=["scripts"])
def traced(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A provider of the test's own (not the process's), its spans kept in memory, and
    redis-py instrumented through the service's tracer until the test ends (scripts only,
    unless the test's parameter says otherwise)."""
    # A suite that has loaded the game carries CrewAI's OTEL_SDK_DISABLED=true, which makes
    # every provider built after it record nothing.
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(
        tracer_provider=_StoreTracerProvider(provider, scripts_only=request.param)
    )
    try:
        yield provider, exporter
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    connected = aioredis.Redis.from_url(redis_url)
    yield connected
    await connected.aclose()


async def test_only_commands_that_run_a_script_are_traced(
    traced: tuple[TracerProvider, InMemorySpanExporter], client: aioredis.Redis
) -> None:
    provider, exporter = traced
    key = "pocket-portals-test:tracing"
    script = client.register_script("return redis.call('GET', KEYS[1])")
    with provider.get_tracer("test").start_as_current_span("turn") as turn:
        await client.set(key, "v", ex=60)
        assert trace.get_current_span() is turn  # a skipped command changes nothing
        assert await client.get(key) == b"v"
        assert await script(keys=[key]) == b"v"
        pipe = client.pipeline(transaction=False)
        pipe.expire(key, 60)
        pipe.evalsha(script.sha, 1, key)
        assert (await pipe.execute())[-1] == b"v"
        plain = client.pipeline(transaction=False)
        plain.get(key)
        plain.delete(key)
        await plain.execute()
    spans = exporter.get_finished_spans()
    names = [span.name for span in spans]
    assert "turn" in names and "EXPIRE EVALSHA" in names
    assert {"SET", "GET", "DELETE", "GET DELETE", "EXPIRE"}.isdisjoint(names), names
    scripts = [span for span in spans if span.name == "EVALSHA"]
    assert scripts and all(
        span.parent and span.parent.span_id == turn.get_span_context().span_id for span in scripts
    )
    assert all(span.attributes and span.attributes.get("db.system") == "redis" for span in scripts)


async def test_a_script_span_is_named_after_the_script_the_store_runs(
    traced: tuple[TracerProvider, InMemorySpanExporter], client: aioredis.Redis
) -> None:
    _, exporter = traced
    key = "pocket-portals-test:tracing-names"
    body = "return redis.call('SET', KEYS[1], ARGV[1])"
    script = client.register_script(body)
    await client.script_load(body)  # else its first run is an EVALSHA refused, then another
    with store_script("ACCEPT"):
        await script(keys=[key], args=["v"])
        pipe = client.pipeline(transaction=False)
        pipe.expire(key, 60)
        pipe.evalsha(script.sha, 1, key, "w")
        await pipe.execute()
        await client.delete(key)  # not a script: no span, whatever the context says
    await script(keys=[key], args=["x"])  # outside: the command's name alone
    await client.delete(key)
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == ["EVALSHA ACCEPT", "EXPIRE EVALSHA ACCEPT", "EVALSHA"]


@pytest.mark.parametrize("traced", [False], ids=["all"], indirect=True)
async def test_every_command_is_traced_when_asked(
    traced: tuple[TracerProvider, InMemorySpanExporter], client: aioredis.Redis
) -> None:
    _, exporter = traced
    key = "pocket-portals-test:tracing-all"
    body = "return redis.call('GET', KEYS[1])"
    script = client.register_script(body)
    await client.script_load(body)
    with store_script("HEAD"):
        await client.set(key, "v", ex=60)
        await script(keys=[key])
    await client.delete(key)
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == ["SCRIPT LOAD", "SET", "EVALSHA HEAD", "DEL"]


async def test_the_session_store_names_its_scripts_spans(
    traced: tuple[TracerProvider, InMemorySpanExporter], redis_url: str
) -> None:
    _, exporter = traced
    backend = RedisBackend(aioredis.Redis.from_url(redis_url, **CLIENT_OPTIONS), session_ttl=600)
    state = GameState(session_id=new_session_id(), seed=7)
    try:
        await backend.create(state, owner_hash="owner")
        await backend.delete(state.session_id)
    finally:
        await backend.close()
    names = [span.name for span in exporter.get_finished_spans()]
    assert "EVALSHA CREATE" in names, names


def test_the_llm_gates_scripts_spans_are_named_after_them(
    traced: tuple[TracerProvider, InMemorySpanExporter], redis_url: str
) -> None:
    """The LLM gate (a sync client, in the step's thread) names its scripts' spans too."""
    _, exporter = traced
    client = redis.Redis.from_url(redis_url, **CLIENT_OPTIONS)
    gate = RedisGate(client, GateLimits())
    endpoint = f"test-{new_session_id()}"
    try:
        assert gate.admit(endpoint, 10, Budget(rpm=600, tpm=60_000)).refused is None
        client.delete(gate_key(endpoint))
    finally:
        client.close()
    names = [span.name for span in exporter.get_finished_spans()]
    assert "EVALSHA LLM_GATE_ADMIT" in names, names


# What `opentelemetry-instrument` does before the program runs (the SDK set up, then each
# instrumentation), then the service's own setup.
_UNDER_AUTO_INSTRUMENTATION = """
import asyncio, json, sys
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
RedisInstrumentor().instrument()

from shared.settings import Settings
from shared.tracing import setup_tracing, store_script

assert setup_tracing(Settings(), "test")

async def main():
    client = aioredis.Redis.from_url(sys.argv[1])
    body = "return 1"
    await client.script_load(body)
    script = client.register_script(body)
    with trace.get_tracer("test").start_as_current_span("turn"):
        await client.get("pocket-portals-test:auto")
        with store_script("HEAD"):
            await script()
    await client.aclose()

asyncio.run(main())
print(json.dumps([span.name for span in exporter.get_finished_spans()]))
"""


def test_under_opentelemetry_instrument_the_services_store_tracer_replaces_the_plain_one(
    redis_url: str,
) -> None:
    done = run_python(
        ["-c", _UNDER_AUTO_INSTRUMENTATION, redis_url],
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_SDK_DISABLED": "false",
            "TRACE_STORE_COMMANDS": "scripts",
        },
    )
    assert done.returncode == 0, done.stderr
    # Its provider kept (no second exporter), the plain GET untraced, the script named.
    assert json.loads(done.stdout.splitlines()[-1]) == ["EVALSHA HEAD", "turn"]


def test_without_a_tracer_provider_a_span_touches_no_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With tracing off (no provider in the process) `span` makes nothing: the non-recording
    span it would make current carries the current context only, at ~10 us a span."""
    from opentelemetry import context

    from shared.tracing import current_traceparent, span, turn_context

    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    parent = f"00-{'ab' * 16}-{'cd' * 8}-01"
    with turn_context(parent):
        outer = trace.get_current_span()
        attached: list[object] = []
        attach = context.attach
        monkeypatch.setattr(context, "attach", lambda ctx: attached.append(ctx) or attach(ctx))
        with span("flow.begin") as opened:
            assert opened is outer
            assert current_traceparent() == parent
        with pytest.raises(ValueError), span("flow.narrate"):
            raise ValueError("the error goes through")
        assert attached == []
        assert trace.get_current_span() is outer
