"""Worker metrics: Prometheus multiprocess mode over a Celery pool.

Every pool process (with `-P threads`, the worker itself) counts into files under
`PROMETHEUS_MULTIPROC_DIR`. prometheus-client picks the mode up from that variable when it is
first imported, so it must be in the worker's environment from the start, as
docker-compose.yml sets it. The worker's main process empties the directory of other
processes' files before the pool starts (counts of a previous run would otherwise be added
in) and serves the sum of its pool on `WORKER_METRICS_PORT`. Give each worker replica a
directory of its own.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from shared.directories import ensure_directory
from shared.settings import Settings

__all__ = ["prepare_metrics_dir", "serve_worker_metrics"]

logger = logging.getLogger(__name__)


def prepare_metrics_dir(settings: Settings) -> Path | None:
    """Before the pool forks: an empty metrics directory, or None when metrics are off."""
    directory = settings.prometheus_multiproc_dir
    if directory is None or not settings.worker_metrics_port:
        return None
    ensure_directory(directory, "PROMETHEUS_MULTIPROC_DIR")
    # This process's own files stay: its metrics opened them on import, and a thread-pool
    # worker counts its turns into them (deleted, they would be written but never read).
    own = f"_{os.getpid()}.db"
    for stale in directory.glob("*.db"):
        if not stale.name.endswith(own):
            stale.unlink()
    return directory


def serve_worker_metrics(settings: Settings) -> None:
    """In the main process, once the pool is up."""
    if settings.prometheus_multiproc_dir is None:
        logger.info("worker metrics off: PROMETHEUS_MULTIPROC_DIR is not set")
        return
    if not settings.worker_metrics_port:
        return
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.prometheus_multiproc_dir))  # type: ignore[no-untyped-call]
    try:
        start_http_server(settings.worker_metrics_port, registry=registry)
    except OSError as exc:
        # Another worker on this host has the port: the turns matter more than the metrics.
        logger.warning(
            "worker metrics not served on port %d: %s", settings.worker_metrics_port, exc
        )
        return
    logger.info("worker metrics on port %d", settings.worker_metrics_port)
