"""Which agents speak in a turn (pure routing), and the offline voices."""

from __future__ import annotations

from shared.game.dice import Dice
from shared.game.narrator import OfflineNarrator
from shared.game.rules import choices_for, resolve_turn
from shared.game.rules.agents import Agent, agents_for, jester_due
from shared.game.rules.outcome import Outcome
from shared.models import GamePhase, GameState


def exploring() -> GameState:
    state = GameState(session_id="a" * 24, seed=3)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    for action in ("Play Pip, a halfling rogue", "Accept: The Lost Lantern"):
        state = resolve_turn(state, action, Dice(state.seed, state.version)).state
        state = state.model_copy(update={"version": state.version + 1})
    assert state.phase is GamePhase.EXPLORATION
    return state


def test_the_narrator_always_speaks_last() -> None:
    state = exploring()
    for kind in ("looked", "combat_round", "epilogue", "interview"):
        crew = agents_for(state, Outcome(kind, []), Dice(1, 1), cooldown=3)
        assert crew[-1] is Agent.NARRATOR


def test_the_keeper_speaks_for_rolls_and_fights() -> None:
    state = exploring()
    rolled = Outcome("objective_done", ["x"], checks=["Wisdom: d20 12 + 1 = 13 vs 12, success"])
    assert Agent.KEEPER in agents_for(state, rolled, Dice(1, 1), cooldown=99)
    assert Agent.KEEPER not in agents_for(state, Outcome("looked", []), Dice(1, 1), cooldown=99)


def test_the_innkeeper_speaks_for_the_interview_and_quest_hooks() -> None:
    fresh = GameState(session_id="a" * 24)
    assert Agent.INNKEEPER in agents_for(fresh, Outcome("interview", []), Dice(1, 1), cooldown=9)
    choosing = fresh.model_copy(update={"phase": GamePhase.QUEST_SELECTION})
    assert Agent.INNKEEPER in agents_for(choosing, Outcome("x", []), Dice(1, 1), cooldown=9)


def test_the_chronicler_tells_the_epilogue() -> None:
    crew = agents_for(exploring(), Outcome("epilogue", []), Dice(1, 1), cooldown=1)
    assert crew == [Agent.CHRONICLER, Agent.NARRATOR]


def test_the_jester_speaks_now_and_then_with_a_seeded_cooldown() -> None:
    state = exploring()

    def turns_the_jester_speaks() -> list[int]:
        spoke: list[int] = []
        for turn in range(3, 40):
            last = spoke[-1] if spoke else -1000
            current = state.model_copy(update={"adventure_turn": turn, "jester_last_turn": last})
            if jester_due(current, Outcome("looked", []), Dice(current.seed, turn), 3):
                spoke.append(turn)
        return spoke

    spoke = turns_the_jester_speaks()
    assert spoke, "the jester never spoke"
    assert all(b - a >= 3 for a, b in zip(spoke, spoke[1:], strict=False))
    assert len(spoke) < 37 // 3 + 1  # now and then, not whenever allowed
    assert turns_the_jester_speaks() == spoke  # seeded: the same game, the same jokes


def test_the_jester_keeps_quiet_over_a_death() -> None:
    state = exploring().model_copy(update={"adventure_turn": 30})
    assert not any(jester_due(state, Outcome("defeated", []), Dice(s, 1), 1) for s in range(50))


def test_the_offline_narration_names_who_spoke() -> None:
    state = exploring()
    state = state.model_copy(update={"jester_last_turn": state.adventure_turn})  # cooling down
    outcome = Outcome("objective_done", ["You find it."], checks=["Wisdom: d20 15 + 1 = 16 vs 12"])
    narration = OfflineNarrator(jester_cooldown=100).narrate(state, "Search", outcome, Dice(2, 2))
    assert narration.agents == ("keeper", "narrator")
    assert "You find it." in narration.narrative
    assert "The Game Keeper notes: Wisdom: d20 15" in narration.narrative
