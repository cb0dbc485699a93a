"""Process logging for the gateway and workers: one format, the level from settings, and no
player token in any line (SSE clients send theirs in the query string)."""

from __future__ import annotations

import logging
import re

from shared.settings import Settings

__all__ = ["RedactTokens", "configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"']*")
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact(text: str) -> str:
    return _BEARER.sub(r"\1[redacted]", _TOKEN_IN_QUERY.sub(r"\1[redacted]", text))


class RedactTokens(logging.Filter):
    """Rewrites a record's message with tokens blanked out (uvicorn's access log puts the full
    path, query string included, in the record's arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(stream)
    root.setLevel(settings.log_level)
    for handler in root.handlers:
        if not any(isinstance(f, RedactTokens) for f in handler.filters):
            handler.addFilter(RedactTokens())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())
