"""The store's spans: with TRACE_STORE_COMMANDS=scripts (the default) redis-py's
instrumentation traces the commands that run one of the service's scripts, alone or in a
pipeline, and none of the plain reads and writes around them, which leave the current span as
it was."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.tracing import _ScriptsOnlyProvider

pytestmark = pytest.mark.integration


@pytest.fixture
def traced(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A provider of the test's own (not the process's), its spans kept in memory, and
    redis-py instrumented through the service's filter until the test ends."""
    # A suite that has loaded the game carries CrewAI's OTEL_SDK_DISABLED=true, which makes
    # every provider built after it record nothing.
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=_ScriptsOnlyProvider(provider))
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
