"""Process logging for the gateway and workers: JSON lines (or text for a terminal), the level
from settings, and no player token in any line (SSE clients send theirs in the query string).

A JSON line carries `time`, `level`, `logger`, `message`, `process`, and whatever ids the
record has: `session_id`, `turn_id` (passed with `extra=`), `correlation_id` (the
gateway's, from a context variable), `duration_ms`, and `exc_info` as text.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from shared.settings import Settings

__all__ = [
    "CORRELATION_ID",
    "JsonFormatter",
    "RedactTokens",
    "TextFormatter",
    "configure_logging",
    "redact",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
# The correlation id of the request being handled (set by the gateway's middleware).
CORRELATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
# Every query parameter: the name is compared once percent-decoded (`?%74oken=` is `token` to
# the gateway, so it must be to the redaction too).
_QUERY_PARAMETER = re.compile(r"([?&])([^=&\s\"'#]+)=([^&\s\"'#]*)")
# And a literal token= anywhere, even inside another parameter's value (a `next=` URL).
_TOKEN_ANYWHERE = re.compile(r"([?&;]token=)[^&\s\"'#]*", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_CONTEXT_FIELDS = ("session_id", "turn_id", "correlation_id", "duration_ms")


def _redact_parameter(match: re.Match[str]) -> str:
    if unquote_plus(match.group(2)).strip().lower() != "token":
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}=[redacted]"


def redact(text: str) -> str:
    text = _TOKEN_ANYWHERE.sub(r"\1[redacted]", _QUERY_PARAMETER.sub(_redact_parameter, text))
    return _BEARER.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Rewrites a record's message with tokens blanked out (uvicorn's access log puts the full
    path, query string included, in the record's arguments), and stamps the correlation id."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = CORRELATION_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.processName,
            "pid": record.process,
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal; tracebacks are blanked of tokens too."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))


# Libraries that log each request or task at INFO: the HTTP clients' every call, Celery's
# "Task … received" and "Task … succeeded" for every task (the pipeline logs each turn's
# start and end itself, with its ids; Celery's failures are logged at ERROR, still shown).
_PER_CALL_LOGGERS = ("httpx", "httpcore", "celery.app.trace", "celery.worker.strategy")


def configure_logging(settings: Settings) -> None:
    """Root handler on stderr in the configured format; uvicorn's and Celery's loggers go
    through it too, so every line of a process has the same shape."""
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json" else TextFormatter()
    )
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(settings.log_level)
    for handler in root.handlers:
        handler.setFormatter(formatter)
        if not any(isinstance(f, RedactTokens) for f in handler.filters):
            handler.addFilter(RedactTokens())
    # uvicorn installs handlers of its own before the app exists: route them to the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())
    # An INFO line per HTTP call (every LLM request) is noise at the service's volume, and
    # formatting it costs CPU on every turn; at DEBUG they come back.
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for name in _PER_CALL_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
