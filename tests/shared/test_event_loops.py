"""`new_event_loop`: the kind of loop a worker's runtime and step threads run on."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from shared.errors import ConfigurationError
from shared.event_loops import EventLoopKind, new_event_loop


@pytest.mark.parametrize(("kind", "uv"), [("auto", True), ("uvloop", True), ("asyncio", False)])
def test_each_kind_makes_a_working_loop_of_its_own(kind: EventLoopKind, uv: bool) -> None:
    loop = new_event_loop(kind)
    try:
        assert isinstance(loop, uvloop.Loop) is uv
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: import fails
    loop = new_event_loop("auto")
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    with pytest.raises(ConfigurationError, match="WORKER_EVENT_LOOP"):
        new_event_loop("uvloop")
