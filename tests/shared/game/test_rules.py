"""The pure game rules: no I/O, deterministic under a seed."""

from __future__ import annotations

import random

import pytest

from shared.game.content import ENEMIES, QUESTS
from shared.game.dice import Dice, modifier
from shared.game.rules import begin_turn, choices_for, resolve_turn
from shared.game.rules.combat import MAX_ROUNDS, combat_round, scaled_enemy, start_combat
from shared.game.rules.intents import Intent, intent_of
from shared.game.rules.interview import CREATE_OWN, MAX_INTERVIEW_TURNS, ROLL_REST
from shared.game.rules.pacing import adventure_phase_for
from shared.models import AdventurePhase, GamePhase, GameState


def fresh(seed: int = 1, max_turns: int = 40) -> GameState:
    state = GameState(session_id="s" * 24, seed=seed, max_turns=max_turns)
    return state.model_copy(update={"current_choices": choices_for(state)})


def play(state: GameState, action: str) -> GameState:
    resolved = resolve_turn(state, action, Dice.for_turn(state.seed, state.version))
    return resolved.state.model_copy(update={"version": state.version + 1})


def test_dice_are_reproducible_per_seed_and_version() -> None:
    assert [Dice(7, 3).d20() for _ in range(5)] == [Dice(7, 3).d20() for _ in range(5)]
    rolls = {tuple(Dice(7, v).roll(20, 1) for _ in range(3)) for v in range(20)}
    assert len(rolls) > 1
    assert all(3 <= Dice(s, 0).ability_score() <= 18 for s in range(200))


def test_modifier_follows_the_usual_table() -> None:
    assert [modifier(s) for s in (3, 8, 10, 11, 12, 18)] == [-4, -1, 0, 0, 1, 4]


def test_quick_pick_creates_a_character_and_offers_quests() -> None:
    state = play(fresh(), "Play Elowen, an elf wizard")
    sheet = state.character_sheet
    assert sheet is not None
    assert (sheet.name, sheet.race, sheet.character_class) == ("Elowen", "elf", "wizard")
    assert state.phase is GamePhase.QUEST_SELECTION
    assert len(state.quest_options) == 3
    assert state.current_choices == [f"Accept: {q.title}" for q in state.quest_options]
    assert state.health_current == state.health_max >= 6


def test_free_text_description_is_understood() -> None:
    state = play(fresh(), "My name is Torva, a dwarven knight sworn to the mountain")
    sheet = state.character_sheet
    assert sheet is not None
    assert (sheet.name, sheet.race, sheet.character_class) == ("Torva", "dwarf", "fighter")
    assert "mountain" in sheet.backstory


def test_quest_accepted_by_words_not_only_by_choice() -> None:
    state = play(fresh(), "Play Pip, a halfling rogue")
    title = state.quest_options[1].title
    accepted = play(state, f"I will help with {title.split()[-1].lower()}")
    assert accepted.active_quest is not None and accepted.active_quest.title == title
    assert accepted.phase is GamePhase.EXPLORATION
    unclear = play(state, "hmm")
    assert unclear.active_quest is None and unclear.phase is GamePhase.QUEST_SELECTION


@pytest.mark.parametrize("seed", range(30))
def test_combat_always_ends_and_health_stays_in_bounds(seed: int) -> None:
    state = play(fresh(seed), "Play Brannoc, a dwarf fighter")
    state, _ = start_combat(state, "barrow king", Dice(seed, 99), lead="", objective=None)
    for version in range(MAX_ROUNDS + 1):
        action = random.Random(seed * 100 + version).choice(["Attack", "Defend", "Flee"])
        state = combat_round(state, action, Dice(seed, version)).state
        assert 0 <= state.health_current <= state.health_max
        if state.combat_state is None:
            break
    assert state.combat_state is None


@pytest.mark.parametrize("max_turns", [5, 6, 7, 9, 12, 24, 40, 100])
def test_every_phase_gets_a_turn_however_short_the_adventure(max_turns: int) -> None:
    phases = [adventure_phase_for(t, max_turns) for t in range(1, max_turns + 1)]
    assert list(dict.fromkeys(phases)) == list(AdventurePhase)


def test_a_quest_finished_at_the_midpoint_brings_the_climax_not_the_epilogue() -> None:
    # As seen in play: MAX_TURNS=40, the second quest done on turn 22 closed the story from
    # its midpoint. Now the climax comes to the hero, and the story closes after it.
    state = play(fresh(3, max_turns=40), "Play Brannoc, a dwarf fighter")
    quest = state.quest_options[0]
    state = play(state, f"Accept: {quest.title}")
    state = state.model_copy(
        update={"adventure_turn": 19, "adventure_phase": AdventurePhase.MIDPOINT}
    )
    last = state.active_quest
    assert last is not None
    almost = last.model_copy(
        update={"completed_objectives": [o.text for o in last.objectives[:-1]]}
    )
    state = state.model_copy(update={"active_quest": almost})
    final = almost.objectives[-1]
    state = state.model_copy(update={"location": final.location})
    while state.active_quest is not None and state.active_quest.quest_id == quest.quest_id:
        state = play(state, state.current_choices[0])
        assert state.health_current > 0
    assert state.phase is not GamePhase.EPILOGUE
    assert state.active_quest is not None and state.active_quest.quest_id == "finale"
    # The turn that finished the quest was the midpoint's; the next is the climax.
    assert state.adventure_phase is AdventurePhase.MIDPOINT
    state = play(state, state.current_choices[0])
    assert state.adventure_phase is AdventurePhase.CLIMAX
    for _ in range(60):
        if state.phase is GamePhase.EPILOGUE or state.health_current == 0:
            break
        state = play(state, state.current_choices[0])
    if state.health_current == 0:
        pytest.skip("the hero fell in the finale")
    assert state.phase is GamePhase.EPILOGUE
    assert state.completed_quests[-1].quest_id == "finale"
    ended = play(state, state.current_choices[0])
    assert ended.adventure_completed and ended.adventure_phase is AdventurePhase.DENOUEMENT


def test_pacing_is_monotonic_and_reaches_the_end() -> None:
    phases = [adventure_phase_for(t, 40) for t in range(41)]
    order = list(AdventurePhase)
    assert [order.index(p) for p in phases] == sorted(order.index(p) for p in phases)
    assert phases[0] is AdventurePhase.SETUP and phases[-1] is AdventurePhase.DENOUEMENT
    # The interview before the story does not count towards it.
    assert begin_turn(fresh()).adventure_turn == 0
    created = play(fresh(), "Play Pip, a halfling rogue")
    assert begin_turn(created).adventure_turn == 1


def test_intents_of_common_words() -> None:
    assert intent_of("I swing my sword at it") is Intent.ATTACK
    assert intent_of("Flee!") is Intent.FLEE
    assert intent_of("Ask Hilda the smith for help") is Intent.TALK
    assert intent_of("Search for a hidden passage") is Intent.SEARCH
    assert intent_of("Sneak up on the bog wight") is Intent.SNEAK
    assert intent_of("dance a little jig") is Intent.OTHER


def playthrough(seed: int, max_turns: int = 40) -> list[tuple[str, str]]:
    state, chooser, log = fresh(seed, max_turns), random.Random(seed), []
    while not state.adventure_completed:
        choices = state.current_choices
        assert 1 <= len(choices) <= 4 and len(set(choices)) == len(choices)
        action = chooser.choice(choices)
        resolved = resolve_turn(state, action, Dice.for_turn(state.seed, state.version))
        # The game's own choices are always read as meant: it never has to ask about them.
        assert resolved.outcome.kind != "unsure", action
        log.append((action, resolved.outcome.kind))
        state = resolved.state.model_copy(update={"version": state.version + 1})
        assert 0 <= state.health_current <= state.health_max
        # The interview, the story's turns, a last fight, and the epilogue.
        assert len(log) <= MAX_INTERVIEW_TURNS + max_turns + MAX_ROUNDS + 1
    assert state.current_choices == [] and log[-1][1] == "epilogue"
    return log


@pytest.mark.parametrize("seed", range(20))
def test_every_adventure_ends_within_max_turns(seed: int) -> None:
    assert playthrough(seed, max_turns=30)


def test_same_seed_and_actions_give_the_same_story() -> None:
    assert playthrough(11) == playthrough(11)
    assert playthrough(11) != playthrough(12)


def test_a_quest_can_be_finished() -> None:
    finished = 0
    for seed in range(20):
        state, chooser = fresh(seed), random.Random(seed)
        while not state.adventure_completed:
            state = play(state, chooser.choice(state.current_choices))
        finished += bool(state.completed_quests)
    assert finished > 0


def test_the_interview_asks_what_is_missing_and_ends_within_five_turns() -> None:
    state = play(fresh(3), CREATE_OWN)
    assert state.phase is GamePhase.CHARACTER_CREATION and state.character_draft is not None
    assert state.current_choices[-1] == ROLL_REST and len(state.current_choices) == 4
    state = play(state, "I'm Kestrel, an elf")  # answers two questions at once
    assert state.character_draft is not None
    assert (state.character_draft.name, state.character_draft.race) == ("Kestrel", "elf")
    state = play(state, "Wizard")
    state = play(state, "An apprentice who read a forbidden book")
    sheet = state.character_sheet
    assert sheet is not None and state.character_draft is None
    assert (sheet.name, sheet.race, sheet.character_class) == ("Kestrel", "elf", "wizard")
    assert "master forbade" in sheet.backstory
    assert all(3 <= getattr(sheet, a) <= 18 for a in ("strength", "wisdom", "charisma"))
    assert state.phase is GamePhase.QUEST_SELECTION and len(state.quest_options) == 3


@pytest.mark.parametrize("seed", range(10))
def test_unreadable_answers_are_rolled_and_the_interview_still_ends(seed: int) -> None:
    state = play(fresh(seed), "???")
    for _ in range(MAX_INTERVIEW_TURNS - 1):
        if state.character_sheet is not None:
            break
        state = play(state, "hmm")
    assert state.character_sheet is not None
    assert state.phase is GamePhase.QUEST_SELECTION


def test_roll_the_rest_finishes_the_hero_at_once() -> None:
    state = play(play(fresh(5), CREATE_OWN), ROLL_REST)
    assert state.character_sheet is not None and state.phase is GamePhase.QUEST_SELECTION


def test_quests_on_offer_suit_the_hero() -> None:
    for seed in range(20):
        state = play(fresh(seed), "Play Pip, a halfling rogue")
        assert any("rogue" in QUESTS[q.quest_id].suits for q in state.quest_options)


def test_foes_grow_with_the_hero() -> None:
    wolf = ENEMIES["ash wolf"]
    first, fifth = scaled_enemy(wolf, 1), scaled_enemy(wolf, 5)
    assert first.enemy_health == wolf.health
    assert fifth.enemy_health > first.enemy_health
    assert fifth.enemy_attack_bonus > first.enemy_attack_bonus


def test_a_completed_quest_levels_the_hero_up_and_offers_new_quests() -> None:
    for seed in range(40):
        state, chooser = fresh(seed), random.Random(seed)
        while not state.adventure_completed and not state.completed_quests:
            state = play(state, chooser.choice(state.current_choices))
        if state.completed_quests and state.phase is GamePhase.QUEST_SELECTION:
            assert state.character_sheet is not None and state.character_sheet.level == 2
            assert state.health_current == state.health_max
            done = {q.quest_id for q in state.completed_quests}
            assert state.quest_options and not done & {q.quest_id for q in state.quest_options}
            return
    pytest.fail("no seed finished a quest early")


def test_death_closes_the_story_and_the_epilogue_ends_it() -> None:
    state = play(fresh(1), "Play Elowen, an elf wizard")
    state = state.model_copy(update={"health_current": 1})
    state, _ = start_combat(state, "barrow king", Dice(1, 50), lead="", objective=None)
    version = 0
    while state.phase is GamePhase.COMBAT:
        version += 1
        state = combat_round(state, "Defend", Dice(1, 100 + version)).state
    if state.health_current > 0:
        pytest.skip("the hero survived this fight")
    assert state.phase is GamePhase.EPILOGUE and not state.adventure_completed
    state = state.model_copy(update={"current_choices": choices_for(state)})
    assert state.current_choices == ["Hear how the tale ends"]
    ended = resolve_turn(state, "anything", Dice(1, 999))
    assert ended.outcome.kind == "epilogue" and ended.state.adventure_completed
    assert ended.state.current_choices == []


def test_the_story_closes_at_max_turns_with_an_epilogue_turn() -> None:
    state = play(fresh(2, max_turns=5), "Play Brannoc, a dwarf fighter")
    while state.phase is not GamePhase.EPILOGUE:
        assert state.adventure_turn <= 5 + MAX_ROUNDS
        state = play(state, "Rest for a moment" if state.combat_state is None else "Flee")
    assert not state.adventure_completed
    ended = play(state, "Look around")
    assert ended.adventure_completed and ended.adventure_moments == state.adventure_moments


@pytest.mark.parametrize(
    ("said", "name", "race"),
    [
        ("My name is Zoë, a human thief who works by herself", "Zoë", "human"),
        ("I’m Torva, a dwarven knight", "Torva", "dwarf"),
        ("Call me McAllister, an elvish scholar", "McAllister", "elf"),
        ("I am a half-orc barbarian named Grusk", "Grusk", "orc"),
    ],
)
def test_descriptions_are_read_word_by_word_in_any_script(said: str, name: str, race: str) -> None:
    state = play(fresh(), said)
    hero = state.character_sheet or state.character_draft
    assert hero is not None and (hero.name, hero.race) == (name, race)


def test_a_quest_is_not_taken_by_part_of_a_word() -> None:
    state = play(fresh(), "Play Pip, a halfling rogue")
    assert play(state, "I'm still looking at the board").active_quest is None


def test_roll_the_rest_on_the_first_turn_makes_a_whole_hero() -> None:
    state = play(fresh(4), ROLL_REST)
    assert state.character_sheet is not None and state.phase is GamePhase.QUEST_SELECTION
    assert state.character_description.startswith(state.character_sheet.name)


class LoadedDice(Dice):
    """Every die shows `face` (clamped to its sides): a fight whose rolls the test chooses."""

    def __init__(self, face: int) -> None:
        super().__init__(0, 0)
        self.face = face

    def roll(self, sides: int, count: int = 1) -> int:
        return min(self.face, sides) * count


def a_fight(surprise: bool | None = None) -> GameState:
    hero = play(fresh(), "Play Brannoc, a dwarf fighter")
    fighting, _ = start_combat(
        hero, "barrow king", LoadedDice(10), lead="", objective=None, surprise=surprise
    )
    return fighting


def test_a_natural_twenty_escapes_and_the_fight_is_over() -> None:
    state = a_fight(surprise=True)
    fled = combat_round(state, "Flee!", LoadedDice(20))
    assert fled.outcome.kind == "fled"
    assert fled.state.combat_state is None and fled.state.phase is GamePhase.EXPLORATION
    assert fled.state.health_current == state.health_current
    assert any("Escape (dexterity): d20 20" in check for check in fled.outcome.checks)


def test_a_foe_that_cannot_be_beaten_breaks_off_after_the_last_round() -> None:
    state = a_fight(surprise=True)
    health = state.health_current
    for _ in range(MAX_ROUNDS):
        resolved = combat_round(state, "Attack", LoadedDice(1))  # every blow misses, both ways
        state = resolved.state
        if state.combat_state is None:
            break
    assert resolved.outcome.kind == "enemy_fled"
    assert state.combat_state is None and state.phase is GamePhase.EXPLORATION
    assert state.health_current == health


def test_an_ambush_lets_the_foe_strike_first_and_the_log_keeps_every_roll() -> None:
    state = a_fight(surprise=False)
    assert state.combat_state is not None and state.combat_state.player_first is False
    assert state.combat_state.log[-1] == "The barrow king has the jump on you."
    hit = combat_round(state, "Attack", LoadedDice(20))  # the foe hits first, then the hero
    combat = hit.state.combat_state
    assert combat is not None and combat.round == 2
    rolls = [line for line in combat.log if ": d20 " in line]
    assert rolls[0].startswith("The barrow king's attack") and rolls[1].startswith("Your ")
    assert hit.state.health_current < state.health_current
    assert combat.enemy_health < state.combat_state.enemy_health
    for _ in range(MAX_ROUNDS):
        if hit.state.combat_state is None:
            break
        hit = combat_round(hit.state, "Defend", LoadedDice(1))
        if hit.state.combat_state is not None:
            assert len(hit.state.combat_state.log) <= 12  # the newest lines kept
