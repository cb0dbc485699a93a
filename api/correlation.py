"""A correlation id per request: taken from `X-Request-ID` when it is sane, made otherwise,
echoed on every response, so a player's report of an error can be matched to the server's log.

This middleware is also where an unexpected exception ends: it is logged with the id and
answered with the JSON error format, never a stack trace."""

from __future__ import annotations

import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import internal_error_response
from shared.logs import CORRELATION_ID

__all__ = ["HEADER", "CorrelationId", "current_correlation_id"]

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")

logger = logging.getLogger(__name__)


def current_correlation_id() -> str:
    return CORRELATION_ID.get() or "-"


class CorrelationId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == HEADER.lower().encode()),
            "",
        )
        correlation_id = given if _VALID.fullmatch(given) else uuid.uuid4().hex
        token = CORRELATION_ID.set(correlation_id)

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((HEADER.lower().encode(), correlation_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception(
                "unhandled error on %s %s [correlation_id=%s]",
                scope.get("method"),
                scope.get("path"),
                correlation_id,
            )
            if not started:
                await internal_error_response(correlation_id)(scope, receive, send_with_id)
        finally:
            CORRELATION_ID.reset(token)
