"""The agents' voices: what each says in a turn. One interface (`Voice.speak(scene)`) with an
offline implementation per agent here, drawn from fixed phrases by the turn's seeded dice,
and an LLM one (`LLMVoice` in `shared.game.llm.narrator`). Which agents speak is
`rules.agents.agents_for`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shared.game.dice import Dice
from shared.game.phrases import MOODS, QUIPS, REACTIONS, WELCOMES
from shared.game.phrasing import say
from shared.game.rules.agents import Agent
from shared.game.rules.ending import chronicle
from shared.game.rules.interview import next_question, question_text
from shared.game.rules.outcome import Outcome
from shared.models import GamePhase, GameState

__all__ = ["OFFLINE_VOICES", "Scene", "Voice", "epilogue_text"]


@dataclass(frozen=True)
class Scene:
    """A turn as the agents see it: the state after the rules, the player's action, what
    the rules decided, the turn's dice, and what the agents before this one said."""

    state: GameState
    action: str
    outcome: Outcome
    dice: Dice
    said: dict[Agent, str] = field(default_factory=dict)


class Voice(Protocol):
    def speak(self, scene: Scene) -> str: ...


def _hero(state: GameState) -> str:
    return state.character_sheet.name if state.character_sheet else "stranger"


class NarratorVoice:
    """Opens with the arc's mood, tells what the rules decided, closes with a reaction: each
    worded afresh (`phrasing`), naming the place, the quest, the hero's gear and the foe."""

    def speak(self, scene: Scene) -> str:
        state = scene.state
        parts = [say(state, "mood", MOODS[state.adventure_phase])]
        parts += [fact[:1].upper() + fact[1:] for fact in scene.outcome.facts]
        reaction = REACTIONS.get(scene.outcome.kind)
        if reaction:
            foe = _foe_of(scene)
            parts.append(say(state, "reaction", reaction, foe=foe))
        return " ".join(parts)


def _foe_of(scene: Scene) -> str:
    combat = scene.state.combat_state
    if combat is not None:
        return combat.enemy_name
    moment = scene.outcome.moment
    if moment is not None and moment.text.startswith(("defeated the ", "fled from the ")):
        return moment.text.split(" the ", 1)[1]
    return "enemy"


class KeeperVoice:
    def speak(self, scene: Scene) -> str:
        state, parts = scene.state, []
        rolls = [check.rstrip(".") for check in scene.outcome.checks]
        if rolls and state.combat_state is None and state.character_sheet:
            # Where the rolls leave the hero (and two equal rolls still read differently).
            rolls.append(f"health {state.health_current} of {state.health_max}")
        if rolls:
            parts.append("; ".join(rolls) + ".")
        if state.combat_state is not None:
            foe = state.combat_state
            parts.append(
                f"Round {foe.round}: the {foe.enemy_name} has {foe.enemy_health} of "
                f"{foe.enemy_health_max} health, you have {state.health_current} of "
                f"{state.health_max}."
            )
        return "The Game Keeper notes: " + " ".join(parts) if parts else ""


class InnkeeperVoice:
    def speak(self, scene: Scene) -> str:
        state = scene.state
        if state.phase is GamePhase.CHARACTER_CREATION:
            draft = state.character_draft
            question = next_question(draft) if draft is not None else None
            if question is None:
                return (
                    "The innkeeper wipes a tankard: 'Pick one of these ready-made heroes, "
                    "or tell me who you are.'"
                )
            return question_text(question)
        if state.quest_options:
            hook = state.quest_options[scene.dice.roll(len(state.quest_options)) - 1]
            return (
                f"Marta the innkeeper taps the notice board: '{hook.title}. "
                f"{hook.description} Pays {hook.reward}, they say.'"
            )
        return say(state, "welcome", WELCOMES)


class JesterVoice:
    def speak(self, scene: Scene) -> str:
        quip = say(scene.state, "quip", QUIPS)
        return f"The Jester pipes up: '{quip}'"


_THEN = ["Soon after,", "Later,", "Then", "In time,", "After that,", "Before long,"]


def _hero_line(state: GameState) -> str:
    sheet = state.character_sheet
    if sheet is None:
        return "the wanderer"
    article = "an" if sheet.race[:1] in "aeiou" else "a"
    return f"{sheet.name}, {article} {sheet.race} {sheet.character_class}"


def _fate(state: GameState, name: str) -> str:
    if state.health_current == 0:
        return f"Here the tale of {name} ends, far from home, and the road keeps the rest."
    done, lost = state.completed_quests, state.failed_quests
    if done and not lost:
        titles = " and ".join(q.title for q in done)
        return f"And so {name} came home to the crossroads inn, remembered for {titles}."
    if done:
        return (
            f"And so {name} came home, with {len(done)} quest{'s' if len(done) > 1 else ''} "
            f"won and {len(lost)} lost, and wiser for both."
        )
    if lost:
        return f"And so {name} came home with nothing but the road's hard lessons."
    return f"And so {name}'s road comes to an end, the tale unfinished but not forgotten."


def epilogue_text(state: GameState) -> str:
    """The ending as prose: who the hero was, the chronicle's moments told in order, and how
    it all came out (pure)."""
    name = _hero(state) if state.character_sheet else "the wanderer"
    told = [f"Epilogue. At the crossroads inn they still tell of {_hero_line(state)}."]
    for index, remembered in enumerate(chronicle(state)):
        if index == 0:
            told.append(f"It began when {name} {remembered.text}.")
        else:
            told.append(f"{_THEN[(index - 1) % len(_THEN)]} {name} {remembered.text}.")
    told.append(_fate(state, name))
    return " ".join(told)


class ChroniclerVoice:
    def speak(self, scene: Scene) -> str:
        return epilogue_text(scene.state)


OFFLINE_VOICES: dict[Agent, Voice] = {
    Agent.NARRATOR: NarratorVoice(),
    Agent.KEEPER: KeeperVoice(),
    Agent.INNKEEPER: InnkeeperVoice(),
    Agent.JESTER: JesterVoice(),
    Agent.CHRONICLER: ChroniclerVoice(),
}
