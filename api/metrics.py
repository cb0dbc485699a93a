"""Request metrics for the gateway, and the `/metrics` exposition.

`RequestMetrics` is the outermost middleware, so it also counts the `500`s the correlation
middleware makes of unexpected errors. A request's route is its template
(`/sessions/{session_id}/turns`), never the concrete path: ids must not become label values.
A request answered before routing (a `413` from the body limit) or by one of FastAPI's own
routes (`/docs`, `/openapi.json`) is matched against the app's routes to find its template;
only a path that no route has is `unmatched`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from shared.settings import Settings

__all__ = ["CONTENT_TYPE_LATEST", "RequestMetrics", "exposition"]


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        # Every route the app serves, its own and its routers' (filled in by create_app).
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        matched = scope.get("route")
        if matched is not None:
            return str(matched.path)
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "unmatched"))
            if match is Match.PARTIAL and partial is None:
                partial = str(getattr(route, "path", "unmatched"))
        return partial or "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # The method is the client's word: under h11 any token is one, so only the standard
        # methods are label values (anything else would grow the exposition without bound).
        method = scope["method"] if scope["method"] in _METHODS else "other"

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Timed to the start of the response: an event stream's body never ends.
                route = self._route(scope)
                HTTP_REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
                HTTP_REQUESTS.labels(method, route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_timed)


def exposition(settings: Settings) -> bytes:
    """The metrics in Prometheus text format: this process's, or with several gateway
    processes (PROMETHEUS_MULTIPROC_DIR set), all of theirs."""
    if settings.prometheus_multiproc_dir is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.prometheus_multiproc_dir))  # type: ignore[no-untyped-call]
    return generate_latest(registry)
