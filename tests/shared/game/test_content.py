"""The original game's content: six classes, seven peoples, quests suited to each class,
counted objectives, quests that fail, advantage where the rules call for it, and an
epilogue told as prose from the most significant moments."""

from __future__ import annotations

import re

import pytest

from shared.game.content import CLASSES, ENEMIES, QUESTS, RACES
from shared.game.dice import Dice
from shared.game.rules import begin_turn, choices_for, conclude_turn, resolve_turn
from shared.game.rules.combat import combat_round, start_combat
from shared.game.rules.ending import chronicle
from shared.game.rules.exploration import explore
from shared.game.rules.interview import CREATE_OWN
from shared.game.rules.quests import quest_from
from shared.game.voices import epilogue_text
from shared.models import GamePhase, GameState, Moment, state_view


def fresh(seed: int = 1, max_turns: int = 40) -> GameState:
    state = GameState(session_id="c" * 24, seed=seed, max_turns=max_turns)
    return state.model_copy(update={"current_choices": choices_for(state)})


def play(state: GameState, action: str) -> GameState:
    resolved = resolve_turn(state, action, Dice.for_turn(state.seed, state.version))
    return resolved.state.model_copy(update={"version": state.version + 1})


def hero(description: str, seed: int = 1) -> GameState:
    state = play(fresh(seed), description)
    assert state.character_sheet is not None, description
    return state


def on_quest(state: GameState, quest_id: str) -> GameState:
    """`state`'s hero with `quest_id` taken from the notice board."""
    quest = quest_from(QUESTS[quest_id])
    offered = state.model_copy(update={"quest_options": [quest]})
    return play(
        offered.model_copy(update={"current_choices": choices_for(offered)}),
        "Accept: " + quest.title,
    )


class LoadedDice(Dice):
    """Every die shows `face` (clamped to its sides)."""

    def __init__(self, face: int) -> None:
        super().__init__(0, 0)
        self.face = face

    def roll(self, sides: int, count: int = 1) -> int:
        return min(self.face, sides) * count


def test_the_original_six_classes_each_have_a_quest_that_suits_them() -> None:
    assert set(CLASSES) == {"fighter", "wizard", "rogue", "cleric", "ranger", "bard"}
    for name, template in CLASSES.items():
        assert sorted(template.priorities) == sorted(CLASSES["fighter"].priorities)
        # A wizard's weapon is a spell, not something carried.
        assert template.weapon in template.equipment or name == "wizard"
        assert template.feature
        assert any(name in quest.suits for quest in QUESTS.values()), name


@pytest.mark.parametrize(
    ("said", "race", "craft", "weapon"),
    [
        ("I'm Sera, a tiefling cleric of the dawn", "tiefling", "cleric", "blessed mace"),
        ("My name is Arkhan, a dragonborn bard", "dragonborn", "bard", "rapier"),
        ("Call me Wren, an elvish huntress with a bow", "elf", "ranger", "longbow"),
        ("I am Grusk, a half-orc priest", "orc", "cleric", "blessed mace"),
    ],
)
def test_the_new_peoples_and_crafts_are_read_from_a_description(
    said: str, race: str, craft: str, weapon: str
) -> None:
    sheet = hero(said).character_sheet
    assert sheet is not None
    assert (sheet.race, sheet.character_class) == (race, craft)
    assert weapon in sheet.equipment
    # The best roll goes to the class's first ability.
    first = CLASSES[craft].priorities[0]
    assert getattr(sheet, first) == max(getattr(sheet, a) for a in CLASSES[craft].priorities)


def test_the_interview_offers_every_people_and_craft_over_the_seeds_four_choices_at_most() -> None:
    races, crafts = set(), set()
    for seed in range(40):
        asked = play(play(fresh(seed), CREATE_OWN), "Ash")
        assert len(asked.current_choices) <= 4
        races |= {c.lower() for c in asked.current_choices[:-1]}
        asked = play(asked, asked.current_choices[0])
        assert len(asked.current_choices) <= 4
        crafts |= {c.lower() for c in asked.current_choices[:-1]}
    assert races == set(RACES) and crafts == set(CLASSES)


@pytest.mark.parametrize("craft", ["cleric", "ranger", "bard"])
def test_the_notice_board_offers_the_new_classes_their_quests(craft: str) -> None:
    for seed in range(10):
        state = hero(f"I am Ash, a human {craft}", seed)
        assert any(craft in QUESTS[q.quest_id].suits for q in state.quest_options)


def test_a_counted_objective_shows_its_progress_and_ends_at_its_count() -> None:
    state = on_quest(hero("I'm Sera, a tiefling cleric"), "sleeping-sickness")
    quest = state.active_quest
    assert quest is not None
    done = quest.model_copy(update={"completed_objectives": [o.text for o in quest.objectives[:2]]})
    state = state.model_copy(update={"active_quest": done, "location": "the catacombs"})
    assert state_view(state).active_quest is not None
    assert state_view(state).active_quest.progress == "0/3"  # type: ignore[union-attr]
    told = []
    for fight in range(3):
        fighting, _ = start_combat(state, "crypt ghoul", Dice(1, fight), lead="", objective="x")
        fighting = fighting.model_copy(
            update={
                "combat_state": fighting.combat_state.model_copy(  # type: ignore[union-attr]
                    update={"enemy_health": 1, "objective": "Defeat 3 crypt ghouls"}
                )
            }
        )
        won = combat_round(fighting, "Attack", LoadedDice(20))
        assert won.outcome.kind == "combat_won"
        told.append(" ".join(won.outcome.facts))
        state = won.state
        if fight < 2:
            assert state.active_quest is not None
            assert state_view(state).active_quest.progress == f"{fight + 1}/3"  # type: ignore[union-attr]
    assert "Defeat 3 crypt ghouls: 1/3. 2 more crypt ghouls to go." in told[0]
    assert "Defeat 3 crypt ghouls: 2/3. 1 more crypt ghoul to go." in told[1]
    assert "Quest complete: The Sleeping Sickness" in told[2]
    assert state.completed_quests[-1].quest_id == "sleeping-sickness"


def test_a_quest_with_a_time_limit_fails_when_its_time_runs_out() -> None:
    state = on_quest(hero("I'm Sera, a tiefling cleric"), "sleeping-sickness")
    quest = state.active_quest
    assert quest is not None and quest.time_limit == 16
    assert quest.deadline == state.adventure_turn + 16
    assert state_view(state).active_quest.deadline == quest.deadline  # type: ignore[union-attr]
    while state.active_quest is not None:
        state = play(state, "Look around")
    # "Within 16 turns": the deadline is the last of them.
    assert state.adventure_turn == quest.deadline
    lost = state.failed_quests[-1]
    assert lost.quest_id == "sleeping-sickness" and lost.failed and "run out" in lost.failed
    assert state.phase is GamePhase.QUEST_SELECTION
    assert "sleeping-sickness" not in {q.quest_id for q in state.quest_options}
    assert state.adventure_moments[-1].kind == "quest_failed"
    assert state_view(state).failed_quests[-1].failed == lost.failed


def test_fleeing_the_final_fight_loses_the_quest_but_not_an_earlier_one() -> None:
    state = on_quest(hero("I am Ash, a human fighter"), "white-stag")
    quest = state.active_quest
    assert quest is not None
    # The counted scouts are not the last step: fleeing them is only a retreat.
    fighting, _ = start_combat(state, "poacher scout", Dice(1, 1), lead="", objective="x")
    fled = combat_round(fighting, "Flee", LoadedDice(20))
    assert fled.outcome.kind == "fled" and fled.state.active_quest is not None
    last = quest.model_copy(update={"completed_objectives": [o.text for o in quest.objectives[:2]]})
    state = state.model_copy(update={"active_quest": last})
    fighting, _ = start_combat(
        state, "poacher captain", Dice(1, 1), lead="", objective="Defeat the poacher captain"
    )
    fled = combat_round(fighting, "Flee", LoadedDice(20))
    assert fled.outcome.kind == "fled" and fled.state.active_quest is None
    assert fled.state.failed_quests[-1].quest_id == "white-stag"
    assert "The quest is lost: The White Stag." in fled.outcome.facts


def test_a_failed_flight_gives_the_foe_advantage_on_its_next_attack() -> None:
    fighting, _ = start_combat(
        hero("I am Ash, a human fighter"),
        "barrow king",
        Dice(1, 1),
        lead="",
        objective=None,
        surprise=True,
    )
    caught = combat_round(fighting, "Flee", LoadedDice(2))
    assert caught.state.combat_state is not None
    foe = [c for c in caught.outcome.checks if c.startswith("The barrow king's attack")]
    assert foe and "with advantage" in foe[0]
    assert not caught.state.combat_state.foe_advantage  # spent on that attack
    again = combat_round(caught.state, "Defend", LoadedDice(2))
    assert all("advantage" not in c for c in again.outcome.checks)


def test_a_rested_hero_attacks_with_advantage_once() -> None:
    state = on_quest(hero("I am Ash, a human fighter"), "barrow-king")
    rested = explore(begin_turn(state), "Rest for a moment", Dice(1, 3)).state
    assert rested.hero_edge == "rested"
    assert state_view(rested).hero_edge == "rested"
    fighting, _ = start_combat(
        rested, "ash wolf", Dice(1, 4), lead="", objective=None, surprise=True
    )
    first = combat_round(fighting, "Attack", LoadedDice(3))
    mine = [c for c in first.outcome.checks if c.startswith("Your longsword")]
    assert "with advantage" in mine[0] and first.state.hero_edge is None
    second = combat_round(first.state, "Attack", LoadedDice(3))
    assert all("advantage" not in c for c in second.outcome.checks)


def test_a_bard_starts_every_fight_inspired() -> None:
    bard = hero("My name is Arkhan, a dragonborn bard")
    fighting, opening = start_combat(bard, "ash wolf", Dice(1, 4), lead="", objective=None)
    assert fighting.hero_edge == "inspired"
    assert any("song" in line for line in opening.facts)


def test_damage_is_rolled_in_notation_and_told_die_by_die() -> None:
    fighting, _ = start_combat(
        hero("I am Ash, a human fighter"),
        "barrow king",
        Dice(1, 1),
        lead="",
        objective=None,
        surprise=True,
    )
    hit = combat_round(fighting, "Attack", LoadedDice(19))
    sheet = fighting.character_sheet
    assert sheet is not None
    bonus = (sheet.strength - 10) // 2
    damage = [c for c in hit.outcome.checks if c.startswith("Damage")]
    sign = "+" if bonus >= 0 else "-"
    expected = f"Damage 1d8{sign}{abs(bonus)}: 8 {sign} {abs(bonus)} = {8 + bonus}"
    assert damage[0] == (expected if bonus else "Damage 1d8: 8")
    assert all(re.fullmatch(r"\d+d\d+([+-]\d+)?", e.damage) for e in ENEMIES.values())


def test_a_talk_that_succeeds_gives_the_clue_in_words_that_name_it() -> None:
    state = on_quest(hero("I'm Lute, a human bard"), "stolen-song")
    talking = play(state, "Talk to the old chorister")
    assert talking.phase is GamePhase.DIALOGUE
    told = resolve_turn(talking, "Ask the old chorister for help", LoadedDice(20))
    assert told.outcome.kind == "objective_done"
    text = " ".join(told.outcome.facts)
    assert "ruined amphitheatre" in text and "masked piper" in text


def moments_of(*significances: int) -> list[Moment]:
    return [
        Moment(kind="k", text=f"did thing {i}", significance=s, turn=i)
        for i, s in enumerate(significances)
    ]


def test_the_chronicle_tells_the_most_significant_moments_in_their_order() -> None:
    state = fresh().model_copy(update={"adventure_moments": moments_of(1, 4, 2, 5, 1, 3, 2, 1)})
    # How it began, then the four most significant of the rest (the later of equals).
    assert [m.text for m in chronicle(state)] == [
        "did thing 0",
        "did thing 1",
        "did thing 3",
        "did thing 5",
        "did thing 6",
    ]


def test_the_epilogue_is_prose_not_a_list() -> None:
    state = hero("I'm Sera, a tiefling cleric").model_copy(
        update={"adventure_moments": moments_of(2, 4, 2, 5, 1, 3)}
    )
    told = epilogue_text(state)
    assert ";" not in told
    assert told.startswith(
        "Epilogue. At the crossroads inn they still tell of Sera, a tiefling cleric."
    )
    assert "It began when Sera did thing 0." in told and "did thing 4" not in told
    sentences = [s for s in re.split(r"(?<=[.!])\s+", told) if s]
    assert len(sentences) >= 6 and len(set(s.split()[0] for s in sentences[2:-1])) > 1


def test_the_least_significant_moment_is_forgotten_first() -> None:
    state = fresh().model_copy(
        update={"adventure_moments": moments_of(5, 1, 4, 1, 3, 3, 3, 3, 3, 3, 3, 3)}
    )
    resolved = resolve_turn(state, CREATE_OWN, Dice(1, 1))
    wrapped = conclude_turn(
        resolved.__class__(
            state,
            resolved.outcome.__class__(
                "x", [], moment=Moment(kind="k", text="new", significance=2)
            ),
        ),
        Dice(1, 1),
    )
    texts = [m.text for m in wrapped.state.adventure_moments]
    assert len(texts) == 12 and "did thing 1" not in texts and "did thing 3" in texts
    assert texts[-1] == "new" and texts[0] == "did thing 0"


def test_asking_what_was_meant_loses_no_quest_and_its_choices_go_with_the_quest() -> None:
    state = on_quest(hero("I am Ash, a human fighter"), "ember-thief")
    quest = state.active_quest
    assert quest is not None and quest.deadline is not None
    at_the_last_turn = state.model_copy(update={"adventure_turn": quest.deadline - 1})
    asked = play(at_the_last_turn, "I give up on this quest and go home")
    # The asking turn closes nothing, though it was the quest's last.
    assert asked.active_quest is not None and asked.adventure_turn == quest.deadline
    assert asked.current_choices == ["Give up on The Ember Thief", "Press on carefully"]
    answered = play(asked, "Press on carefully")
    # The quest's time ran out with that answer: the board, not the old question.
    assert answered.active_quest is None and answered.clarify_choices == []
    assert answered.current_choices[0].startswith("Accept: ")
