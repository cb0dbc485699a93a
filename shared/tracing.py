"""Traces: one per turn, from `POST /turns` through the queue to the worker and back.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set; then each process exports its spans over
OTLP/HTTP in batches, and the standard `OTEL_*` variables (sampler, headers, resource) apply
as the SDK reads them. FastAPI, Celery, redis-py and httpx are traced by their OpenTelemetry
instrumentations (a store script's span named after the script: `EVALSHA COMMIT`); the
service adds the turn's own spans (the turn, its queue wait and start, flow stages, LLM calls
with the `gen_ai.*` attributes, narration flushes, delivery) and none around a step an
instrumentation's span already covers.

A Celery task drains a session, and may run turns other than the one whose request published
it; so a turn carries its own context (`TurnRecord.traceparent`, W3C) from the request that
accepted it, and the worker's spans for that turn are children of it, whichever task runs it,
after a retry or a sweeper's re-queue too. Spans carry ids and measures, never a token, the
player's text or a prompt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from shared.settings import Settings

__all__ = [
    "DELIVERY_FRESH_FOR",
    "current_link",
    "current_traceparent",
    "flush_traces",
    "mark_failed",
    "past_span",
    "redact_request",
    "setup_tracing",
    "span",
    "store_script",
    "tracer",
    "tracing_enabled",
    "turn_context",
]

logger = logging.getLogger(__name__)
_installed: dict[str, bool] = {}

# A turn's end handed over within this many seconds of its finishing is its delivery (a span
# of its trace); later, by the long poll or a stream resumed from 0, it is a replay.
DELIVERY_FRESH_FOR = 60.0


def tracing_enabled(settings: Settings) -> bool:
    return bool(settings.otel_exporter_otlp_endpoint)


def setup_tracing(settings: Settings, service: str) -> bool:
    """In a process that is about to serve (after any fork): a tracer provider exporting to
    the OTLP endpoint, and redis-py and httpx instrumented. Idempotent; False when off."""
    if not tracing_enabled(settings):
        return False
    if _installed.get("provider"):
        return True
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    configured = trace.get_tracer_provider()
    if isinstance(configured, TracerProvider):
        # Run under `opentelemetry-instrument`, which set up the SDK first (a second provider
        # could not be installed).
        provider = configured
        logger.warning(
            "tracing was set up before the service (opentelemetry-instrument): its exporter, "
            "sampler and resource apply (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_PROTOCOL, "
            "OTEL_SERVICE_NAME), not the service's"
        )
    else:
        resource = Resource.create({SERVICE_NAME: settings.otel_service_name or service})
        provider = TracerProvider(resource=resource, sampler=_TurnsOnly(_sampler_from_env()))
        # The endpoint as the settings read it (an .env file too), with the standard's path.
        endpoint = str(settings.otel_exporter_otlp_endpoint).rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)
    store = RedisInstrumentor()
    if store.is_instrumented_by_opentelemetry:
        # Instrumented before this ran (`opentelemetry-instrument`), with a tracer that gives
        # every command a span and names no script: again, with the service's.
        store.uninstrument()
    store.instrument(
        tracer_provider=_StoreTracerProvider(
            provider, scripts_only=settings.trace_store_commands == "scripts"
        )
    )
    HTTPXClientInstrumentor().instrument()
    _installed["provider"] = True
    if provider is not configured:
        logger.info("traces exported to %s", settings.otel_exporter_otlp_endpoint)
    return True


def _sampler_from_env() -> Sampler:
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    return _get_from_env_or_default()


class _TurnsOnly(Sampler):
    """The standard sampler (OTEL_TRACES_SAMPLER), but a client span with no parent (a store
    command of the sweeper, of a probe or of the broker's bookkeeping) starts no trace of its
    own: those would bury the turns' traces and cost more than they tell."""

    def __init__(self, standard: Sampler) -> None:
        self.standard = standard

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if (
            kind is SpanKind.CLIENT
            and not trace.get_current_span(parent_context).get_span_context().is_valid
        ):
            return SamplingResult(Decision.DROP)
        return self.standard.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"TurnsOnly({self.standard.get_description()})"


# A proxy until a provider is installed, then the provider's tracer, looked up once: a
# lookup per span builds an instrumentation scope and compares it with the provider's.
_TRACER = trace.get_tracer("pocket_portals")


_SCRIPT_COMMANDS = frozenset({"EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "FCALL", "FCALL_RO"})

# The store script being run, if any: it names the span of the command that runs it.
_STORE_SCRIPT: ContextVar[str | None] = ContextVar("pocket_portals_store_script", default=None)


class store_script:  # a context manager, used as a function
    """Inside, the store's command that runs a script is named after it (`EVALSHA ACCEPT`,
    `ZADD ZADD EVALSHA ACCEPT` for a pipeline) rather than `EVALSHA` alone: the script is
    the step of the turn an operator looks for. Costs a context variable's set and reset
    when tracing is off; a class, not a generator, for that."""

    __slots__ = ("_name", "_token")

    def __init__(self, name: str) -> None:
        self._name = name

    def __enter__(self) -> None:
        self._token = _STORE_SCRIPT.set(self._name)

    def __exit__(self, *_: object) -> None:
        _STORE_SCRIPT.reset(self._token)


def _runs_a_script(name: str) -> bool:
    # A command's span is named after it; a pipeline's, after its commands, space-separated.
    return not _SCRIPT_COMMANDS.isdisjoint(name.split())


class _StoreTracer(trace.Tracer):
    """The redis-py instrumentation's tracer. It names a script's span after the script
    (`store_script`), and with `scripts_only` gives spans only to the commands that run
    one of the service's scripts (each a step of a turn: admission, accept, claim, commit...)
    and none to plain reads and writes: a store command's span costs about 0.1 ms of CPU,
    and a turn makes a dozen such commands; traced, they cost more than the rest of its trace."""

    def __init__(self, inner: trace.Tracer, *, scripts_only: bool) -> None:
        self._inner = inner
        self._scripts_only = scripts_only

    def _name(self, name: str) -> str | None:
        """The span's name, or None for no span."""
        if not _runs_a_script(name):
            return None if self._scripts_only else name
        script = _STORE_SCRIPT.get()
        return f"{name} {script}" if script else name

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Span:
        named = self._name(name)
        if named is None:
            return trace.INVALID_SPAN
        return self._inner.start_span(named, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # the API types its own helper
        self, name: str, *args: Any, **kwargs: Any
    ) -> Iterator[Span]:
        named = self._name(name)
        if named is None:
            yield trace.INVALID_SPAN  # not recording: the instrumentation sets nothing on it
            return
        with self._inner.start_as_current_span(named, *args, **kwargs) as opened:
            yield opened


class _StoreTracerProvider(trace.TracerProvider):
    def __init__(self, inner: trace.TracerProvider, *, scripts_only: bool) -> None:
        self._inner = inner
        self._scripts_only = scripts_only

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _StoreTracer(
            self._inner.get_tracer(*args, **kwargs), scripts_only=self._scripts_only
        )


def tracer() -> trace.Tracer:
    return _TRACER


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (None when nothing is traced)."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def turn_context(traceparent: str | None) -> Iterator[None]:
    """Spans started inside belong to the turn whose context `traceparent` is (a link to
    the span current before, the task that runs the turn, keeps that path too)."""
    if not traceparent:
        yield
        return
    token = otel_context.attach(extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def span(
    name: str,
    *,
    attributes: dict[str, Any] | None = None,
    start_time: float | None = None,
    links: Sequence[Link] = (),
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A span of the service's own (a no-op when tracing is off). `start_time`: epoch
    seconds, for a span that began before it could be opened (the queue wait)."""
    if isinstance(_TRACER, trace.ProxyTracer) and isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider
    ):
        # No tracer provider in this process: the span would be a non-recording one carrying
        # the current span's context, made current in its place (about 10 us, several a turn).
        yield trace.get_current_span()
        return
    started = int(start_time * 1e9) if start_time is not None else None
    # An exception's message may quote a request: the span records its type only.
    with tracer().start_as_current_span(
        name,
        attributes=attributes,
        start_time=started,
        links=links,
        kind=kind,
        record_exception=False,
        set_status_on_exception=False,
    ) as opened:
        try:
            yield opened
        except BaseException as exc:
            opened.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def past_span(
    name: str, started: float, ended: float, *, links: Sequence[Link] = (), **attributes: Any
) -> None:
    """A span for something that already happened, between two epoch times (the queue wait:
    from the turn's acceptance to its start)."""
    opened = tracer().start_span(
        name, start_time=int(started * 1e9), attributes=attributes, links=links
    )
    opened.end(end_time=int(max(started, ended) * 1e9))


def mark_failed(error: BaseException) -> None:
    """The current span (a turn's attempt) ends in error: the error's type, and its code if
    it has one (never its message, which may quote the player), for an error the code
    catches and handles rather than lets through the span."""
    code = getattr(error, "code", None)
    reason = f"{type(error).__name__} ({code})" if isinstance(code, str) else type(error).__name__
    trace.get_current_span().set_status(Status(StatusCode.ERROR, reason))


def current_link() -> list[Link]:
    """A link to the current span, if one is being recorded (to join two traces)."""
    here = trace.get_current_span().get_span_context()
    return [Link(here)] if here.is_valid else []


_PLAYER_ATTRIBUTES = (
    "net.peer.ip",
    "client.address",
    "http.client_ip",
    "http.user_agent",
    "user_agent.original",
)


def redact_request(opened: Span, scope: dict[str, Any]) -> None:
    """FastAPI's server request hook: the request's path without its query string, in every
    attribute that carries it (old and new semantic conventions), and no address or browser
    of the player. The event stream takes the player's token as `?token=` (EventSource cannot
    set a header): never recorded."""
    if not opened.is_recording():
        return
    # One not recorded is not added (each attribute is exported); a span that does not say
    # what it holds gets them all.
    recorded = getattr(opened, "attributes", None)
    for name in _PLAYER_ATTRIBUTES:
        if recorded is None or name in recorded:
            opened.set_attribute(name, "(redacted)")
    if not scope.get("query_string"):
        return
    path = str(scope.get("path", ""))
    opened.set_attribute("http.target", path)
    opened.set_attribute("url.query", "(redacted)")
    server = scope.get("server") or ("", 0)
    scheme = str(scope.get("scheme", "http"))
    opened.set_attribute("http.url", f"{scheme}://{server[0]}:{server[1]}{path}")
    opened.set_attribute("url.full", f"{scheme}://{server[0]}:{server[1]}{path}")


def flush_traces(timeout: float) -> None:
    """Export what is pending, waiting `timeout` seconds at most (before a process ends at
    once). The SDK's own flush waits for every queued batch whatever timeout it is given,
    and a collector that is down would hold a stopping process for tens of seconds: it runs
    in a thread of its own, left behind when the time is up."""
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if not _installed.get("provider") or flush is None:
        return
    flushing = threading.Thread(
        target=flush, args=(int(timeout * 1000),), name="trace-flush", daemon=True
    )
    flushing.start()
    flushing.join(timeout)
