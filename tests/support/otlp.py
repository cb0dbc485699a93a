"""A small OTLP/HTTP trace receiver on 127.0.0.1, for tests of the service's traces: it takes
what the OpenTelemetry exporters of real gateway and worker processes send to `/v1/traces`
(protobuf) and keeps each span with its service, ids, parent, attributes and links."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["Receiver", "Span", "otlp_receiver"]


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    links: tuple[str, ...]
    start: int
    end: int


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@dataclass
class Receiver:
    port: int = 0
    spans: list[Span] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self, body: bytes) -> None:
        # Decoded when read, not as it arrives: a benchmark's receiver shares the machine
        # with the service it measures, and a collector's work is not the service's.
        with self.lock:
            self.bodies.append(body)

    def _decode(self, body: bytes) -> list[Span]:
        request = ExportTraceServiceRequest.FromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for sent in scope.spans:
                    received.append(
                        Span(
                            service=str(resource.get("service.name", "")),
                            name=sent.name,
                            trace_id=sent.trace_id.hex(),
                            span_id=sent.span_id.hex(),
                            parent_id=sent.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in sent.attributes},
                            links=tuple(link.span_id.hex() for link in sent.links),
                            start=sent.start_time_unix_nano,
                            end=sent.end_time_unix_nano,
                        )
                    )
        return received

    def snapshot(self) -> list[Span]:
        with self.lock:
            bodies, self.bodies = self.bodies, []
            for body in bodies:
                self.spans.extend(self._decode(body))
            return list(self.spans)


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            receiver.take(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
