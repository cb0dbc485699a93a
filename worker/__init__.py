"""Celery workers: `celery -A worker worker` runs the turn pipeline.

`worker.app` (also `worker.celery_app`) is the Celery application; importing this package
does not import CrewAI.
"""

from worker.application import PROCESS_SESSION, app, celery_app

__all__ = ["PROCESS_SESSION", "app", "celery_app"]
