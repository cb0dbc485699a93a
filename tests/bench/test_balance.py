"""The balance table runs and every adventure it plays ends (a smoke test, not a target)."""

from __future__ import annotations

import pytest

from bench.balance import STYLES, main, play
from shared.models import GamePhase


def test_the_balance_table_prints_a_row_per_style(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "5", "--max-turns", "10"]) == 0
    table = capsys.readouterr().out
    assert all(f"| {style} |" in table for style in STYLES)


def test_every_style_plays_to_the_epilogue() -> None:
    for style in STYLES.values():
        final, turns, _ = play(3, 8, style)
        assert final.adventure_completed and final.phase is GamePhase.EPILOGUE and turns > 1
