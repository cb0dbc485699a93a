"""`python -m worker.health`: is this worker alive and connected? For a container health
check (docker-compose.yml, a Kubernetes liveness probe); it needs neither the gateway nor
the pool.

Alive: the worker's main process touches `WORKER_HEARTBEAT_FILE` after every sweeper pass,
which needs the session store, so a fresh file means the process runs and reaches the store.
Connected: the broker answers, within two seconds. Exit 0 when both hold, 1 otherwise, with
the reason on stderr.
"""

from __future__ import annotations

import sys
import time

from shared.settings import Settings, get_settings

__all__ = ["heartbeat_age", "main", "problems"]

_BROKER_TIMEOUT = 2.0


def heartbeat_age(settings: Settings, now: float | None = None) -> float | None:
    try:
        touched = settings.worker_heartbeat_file.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - touched


def problems(settings: Settings) -> list[str]:
    found = []
    age = heartbeat_age(settings)
    # A few missed passes are a slow store, not a dead worker.
    allowed = 3 * settings.sweep_interval + 2
    if age is None:
        found.append(f"no heartbeat at {settings.worker_heartbeat_file} (not started yet?)")
    elif age > allowed:
        found.append(f"last heartbeat {age:.0f} s ago (more than {allowed:.0f} s)")
    from worker.application import create_celery_app

    try:
        with create_celery_app(settings).connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=_BROKER_TIMEOUT)
    except Exception as exc:
        found.append(f"broker does not answer: {type(exc).__name__}")
    return found


def main() -> int:
    found = problems(get_settings())
    for problem in found:
        sys.stderr.write(f"unhealthy: {problem}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
