"""Dice notation, rolls told die by die, and advantage."""

from __future__ import annotations

import pytest

from shared.game.dice import Dice, Edge, Notation, parse_notation


@pytest.mark.parametrize(
    ("text", "notation"),
    [
        ("2d6+3", Notation(2, 6, 3)),
        ("d20", Notation(1, 20, 0)),
        ("1d8-1", Notation(1, 8, -1)),
        (" 3 D 4 + 0 ", Notation(3, 4, 0)),
        ("10d10", Notation(10, 10, 0)),
    ],
)
def test_notation_is_read(text: str, notation: Notation) -> None:
    assert parse_notation(text) == notation


@pytest.mark.parametrize("text", ["", "d", "2d", "2x6", "2d6+", "0d6", "2d1", "101d6", "2d6*2"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_notation(text)


def test_notation_writes_back_as_read() -> None:
    for text in ("2d6+3", "1d8-1", "1d20"):
        assert str(parse_notation(text)) == text
    assert str(parse_notation("1d8").plus(2).times(2)) == "2d8+2"


def test_a_roll_is_told_die_by_die_as_the_original_game_did() -> None:
    rolled = Dice(5, 1).throw("2d6+3")
    assert len(rolled.dice) == 2 and all(1 <= d <= 6 for d in rolled.dice)
    assert rolled.total == sum(rolled.dice) + 3
    first, second = rolled.dice
    assert rolled.describe() == f"2d6+3: {first} + {second} + 3 = {rolled.total}"
    lone = Dice(5, 1).throw("1d20")
    assert lone.describe() == f"1d20: {lone.total}"
    negative = Dice(5, 1).throw("1d4-1")
    assert negative.describe() == f"1d4-1: {negative.dice[0]} - 1 = {negative.total}"


def test_throws_are_seeded_like_every_other_roll() -> None:
    assert Dice(9, 4).throw("4d6") == Dice(9, 4).throw("4d6")
    assert len({Dice(9, v).throw("4d6").dice for v in range(20)}) > 1


@pytest.mark.parametrize("seed", range(30))
def test_advantage_keeps_the_higher_and_disadvantage_the_lower(seed: int) -> None:
    high = Dice(seed, 0).check(2, 12, Edge.ADVANTAGE)
    low = Dice(seed, 0).check(2, 12, Edge.DISADVANTAGE)
    assert high.rolls == low.rolls and len(high.rolls) == 2
    assert high.roll == max(high.rolls) and low.roll == min(low.rolls)
    assert high.describe("Attack").startswith(
        f"Attack: d20 with advantage ({high.rolls[0]}, {high.rolls[1]}: {high.roll}) + 2 ="
    )


def test_advantage_wins_more_often() -> None:
    plain = sum(Dice(s, 0).check(0, 15).success for s in range(400))
    edged = sum(Dice(s, 0).check(0, 15, Edge.ADVANTAGE).success for s in range(400))
    worse = sum(Dice(s, 0).check(0, 15, Edge.DISADVANTAGE).success for s in range(400))
    assert worse < plain < edged
