"""The FastAPI gateway: `uvicorn api.main:app`, or `create_app()` for a configured instance.

It validates, authorises, records and enqueues; it never runs a game step on its event loop.
In non-eager mode nothing here imports CrewAI.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.admission import StoreMemoryGuard
from api.correlation import CorrelationId
from api.deps import Services
from api.enqueue import CeleryEnqueuer, EagerEnqueuer, Enqueuer
from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.metrics import RequestMetrics
from api.routes import events, health, player, sessions, turns
from api.streams import StreamRegistry
from shared.backends import SessionBackend, create_backend
from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.tracing import flush_traces, redact_request, setup_tracing

__all__ = ["app", "create_app"]


def _enqueuer_for(settings: Settings, backend: SessionBackend) -> Enqueuer:
    if settings.celery_task_always_eager:
        from worker.runtime import WorkerRuntime, install_runtime

        install_runtime(WorkerRuntime(settings, loop=asyncio.get_running_loop(), backend=backend))
        eager = EagerEnqueuer()
        eager.warm_up()
        return eager
    from worker.application import PROCESS_SESSION, create_celery_app, turn_priority

    app = create_celery_app(settings)
    return CeleryEnqueuer(app, PROCESS_SESSION, priority=turn_priority(settings))


async def _flush_spans() -> None:
    """uvicorn ends by raising the signal it caught again, past atexit: the spans still
    pending go out now or never (within 2 s, off the event loop)."""
    await asyncio.to_thread(flush_traces, 2.0)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = create_backend(settings)
        enqueuer = _enqueuer_for(settings, backend)
        memory_guard = StoreMemoryGuard(backend, settings)
        streams = StreamRegistry(
            settings.sse_max_streams_per_session, settings.sse_max_streams_per_client
        )
        app.state.services = Services(
            settings=settings,
            backend=backend,
            enqueuer=enqueuer,
            memory_guard=memory_guard,
            streams=streams,
        )
        try:
            yield
        finally:
            try:
                memory_guard.close()
                await enqueuer.aclose()
                await backend.close()
            finally:
                await _flush_spans()
            if settings.celery_task_always_eager:
                from worker.runtime import reset_runtime

                reset_runtime()

    app = FastAPI(
        title="Pocket Portals turn service",
        version="1.0.0",
        description="Turns of an LLM-narrated text adventure, queued to workers. See docs/api.md.",
        lifespan=lifespan,
        debug=settings.debug,
        docs_url="/docs" if settings.serves_api_docs else None,
        redoc_url="/redoc" if settings.serves_api_docs else None,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=[
                "Retry-After",
                "X-Request-ID",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
            ],
        )
    # Last added, outermost: every response, even a 413 or a 500, carries the id.
    app.add_middleware(CorrelationId)
    routers = (sessions.router, turns.router, events.router, health.router, player.router)
    # FastAPI's own routes (docs, schema) and every router's, for the metrics' route label.
    routes = [*app.routes, *(route for router in routers for route in router.routes)]
    for router in routers:
        app.include_router(router)
    app.add_middleware(RequestMetrics, routes=routes)  # outermost: it sees the 500s too
    if setup_tracing(settings, "pocket-portals-gateway"):
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # Probes and scrapes would bury the turns' traces.
        # The ASGI layer's span for every message received and sent would triple the request's
        # spans (an SSE stream sends one per event) and tell nothing the request's does not.
        if getattr(app, "_is_instrumented_by_opentelemetry", False):
            # Instrumented as it was made (`opentelemetry-instrument` swaps in a FastAPI that
            # does so) without the exclusions and the redaction below, and the event stream's
            # ?token= would be recorded: again, with them.
            FastAPIInstrumentor.uninstrument_app(app)
            app.middleware_stack = None  # built by that call: built again, instrumented
        FastAPIInstrumentor.instrument_app(
            app,
            # Matched against the whole URL, host included: anchored on the path alone.
            excluded_urls=r"^https?://[^/]+/(healthz|readyz|metrics)$,^https?://[^/]+/(play/.*)?$",
            exclude_spans=["receive", "send"],
            server_request_hook=redact_request,  # the event stream's ?token= stays out
        )
        # The publish: its span, and the trace context in the task's headers.
        celery = CeleryInstrumentor()  # type: ignore[no-untyped-call]
        if not celery.is_instrumented_by_opentelemetry:
            celery.instrument()
    return app


app = create_app()
