"""The adventure as a Markdown document (GET /sessions/{id}/story)."""

from __future__ import annotations

from shared.game.dice import Dice
from shared.game.rules import choices_for, resolve_turn
from shared.game.story import story_filename, story_markdown
from shared.models import GameState, HistoryEntry, Moment


def played(*actions: str, seed: int = 5) -> GameState:
    state = GameState(session_id="t" * 24, seed=seed)
    state = state.model_copy(update={"current_choices": choices_for(state)})
    for number, action in enumerate(actions):
        resolved = resolve_turn(state, action, Dice(state.seed, state.version))
        entry = HistoryEntry(turn_id=f"{number:016d}", action=action, narrative=f"Told {number}.")
        state = resolved.state.model_copy(
            update={
                "version": state.version + 1,
                "conversation_history": [*resolved.state.conversation_history, entry],
            }
        )
    return state


def test_an_unplayed_adventure_is_an_untold_tale() -> None:
    text = story_markdown(played())
    assert text.startswith("# An untold tale\n") and "*Nothing told yet.*" in text
    assert story_filename(played()) == "pocket-portals-untold.md"


def test_the_hero_the_quests_the_chronicle_and_every_turn_kept() -> None:
    state = played("I'm Zoë, a tiefling bard", "Roll the rest for me")
    state = played("I'm Zoë, a tiefling bard", "Roll the rest for me", state.current_choices[0])
    text = story_markdown(state)
    assert text.startswith("# The tale of Zoë\n")
    assert "| STR | DEX | CON | INT | WIS | CHA |" in text and "rapier" in text
    assert "Gift: inspiration" in text
    assert state.active_quest is not None
    assert f"- **{state.active_quest.title}**, still under way." in text
    assert "- Turn 0: Zoë set out from the crossroads inn." in text
    for number in range(3):
        assert f"Told {number}." in text
    assert "remembered only by the chronicle" not in text
    assert story_filename(state) == "pocket-portals-zo.md"


def test_turns_beyond_the_history_kept_are_said_to_be_left_to_the_chronicle() -> None:
    state = played("Play Pip, a halfling rogue", "Accept: " + "x", "Look around")
    lost = state.model_copy(
        update={
            "version": 30,
            "conversation_history": state.conversation_history[-2:],
            "adventure_moments": [Moment(kind="beginning", text="set out", significance=2)],
        }
    )
    text = story_markdown(lost)
    assert "*The first 28 turns are remembered only by the chronicle; the last 2 follow" in text
    assert "Told 0." not in text and "Told 2." in text


def test_a_lost_quest_says_why() -> None:
    state = played("Play Pip, a halfling rogue")
    quest = state.quest_options[0].model_copy(update={"failed": "Too late."})
    text = story_markdown(state.model_copy(update={"failed_quests": [quest]}))
    assert f"- **{quest.title}**, lost: Too late." in text
