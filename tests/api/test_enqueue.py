"""`CeleryEnqueuer.depth`: one measurement at a time, shared by every request that arrives
while it runs, and a failure kept as long as a value would be, so a hung broker costs one
timeout a second rather than one per request, one request after another."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from api.enqueue import CeleryEnqueuer
from shared.errors import BackendUnavailable
from shared.settings import Settings
from worker.application import PROCESS_SESSION, create_celery_app


class HungBroker:
    """Stands in for the broker's queue declaration: each call blocks until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.answer: int | None = None

    def __call__(self) -> int:
        self.calls += 1
        self.release.wait(30)
        if self.answer is None:
            raise ConnectionError("the broker did not answer")
        return self.answer


@pytest.fixture
async def enqueuer() -> AsyncIterator[CeleryEnqueuer]:
    settings = Settings(_env_file=None, redis_url="redis://127.0.0.1:9/0")  # type: ignore[call-arg]
    made = CeleryEnqueuer(
        create_celery_app(settings), PROCESS_SESSION, timeout=0.5, depth_max_age=60
    )
    yield made
    await made.aclose()


async def test_requests_during_a_hang_share_one_measurement_and_its_failure(
    enqueuer: CeleryEnqueuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = HungBroker()
    monkeypatch.setattr(enqueuer, "_measure_depth", broker)
    answers = await asyncio.gather(*(enqueuer.depth() for _ in range(10)), return_exceptions=True)
    assert all(isinstance(answer, BackendUnavailable) for answer in answers), answers
    assert broker.calls == 1
    # Within the sample's age the failure is the answer: nobody waits on the broker again.
    with pytest.raises(BackendUnavailable):
        await enqueuer.depth()
    assert broker.calls == 1
    broker.release.set()


async def test_a_value_is_shared_and_kept_for_its_age(
    enqueuer: CeleryEnqueuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = HungBroker()
    broker.answer = 7
    broker.release.set()
    monkeypatch.setattr(enqueuer, "_measure_depth", broker)
    assert await asyncio.gather(*(enqueuer.depth() for _ in range(5))) == [7] * 5
    assert await enqueuer.depth() == 7
    assert broker.calls == 1


async def test_a_request_that_gives_up_does_not_cancel_the_measurement(
    enqueuer: CeleryEnqueuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = HungBroker()
    broker.answer = 3
    monkeypatch.setattr(enqueuer, "_measure_depth", broker)
    impatient = asyncio.ensure_future(enqueuer.depth())
    patient = asyncio.ensure_future(enqueuer.depth())
    await asyncio.sleep(0)
    impatient.cancel()
    broker.release.set()
    assert await patient == 3
    assert broker.calls == 1
