"""Process logging for the gateway and workers: one format, the level from settings."""

from __future__ import annotations

import logging

from shared.settings import Settings

__all__ = ["configure_logging"]

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
