"""The gateway's app as `api.main` makes it: traced under `opentelemetry-instrument` with the
service's own exclusions and redaction, not the tool's plain instrumentation."""

from __future__ import annotations

import json

from tests.support.processes import run_python

# What `opentelemetry-instrument` does before the program runs (the SDK set up, then each
# instrumentation: FastAPI's swaps in a FastAPI that instruments itself as it is made), then
# the service's app, asked for a probe and for an event stream with its token in the URL.
_UNDER_AUTO_INSTRUMENTATION = """
import json
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
FastAPIInstrumentor().instrument()

from api.main import create_app

with TestClient(create_app()) as client:
    assert client.get("/healthz").status_code == 200
    stream = client.get("/sessions/1u2dAo_6B68YnsGfED4v05Mz/events?token=SECRET-TOKEN-42")
    assert stream.status_code in (401, 404), stream.status_code
spans = exporter.get_finished_spans()
print(json.dumps([[span.name, dict(span.attributes or {})] for span in spans]))
"""


def test_under_opentelemetry_instrument_the_gateway_keeps_its_exclusions_and_redaction() -> None:
    done = run_python(
        ["-c", _UNDER_AUTO_INSTRUMENTATION],
        {
            "SESSION_BACKEND": "memory",
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_SDK_DISABLED": "false",
        },
    )
    assert done.returncode == 0, done.stderr
    spans = json.loads(done.stdout.splitlines()[-1])
    names = [name for name, _ in spans]
    # One span for the stream's request: none for the probe, none per message sent.
    assert names == ["GET /sessions/{session_id}/events"], names
    [(_, attributes)] = spans
    assert "SECRET-TOKEN-42" not in json.dumps(attributes)
    assert attributes.get("url.query", "(redacted)") == "(redacted)"
