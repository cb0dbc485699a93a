"""The agents' voices: what each says in a turn. One interface (`Voice.speak(scene)`) with an
offline implementation per agent here, drawn from fixed phrases by the turn's seeded dice,
and an LLM one (`LLMVoice` in `shared.game.llm.narrator`). Which agents speak is
`rules.agents.agents_for`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shared.game.dice import Dice
from shared.game.rules.agents import Agent
from shared.game.rules.ending import chronicle
from shared.game.rules.interview import next_question, question_text
from shared.game.rules.outcome import Outcome
from shared.models import AdventurePhase, GamePhase, GameState

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


_MOOD: dict[AdventurePhase, list[str]] = {
    AdventurePhase.SETUP: [
        "The morning smells of woodsmoke and possibility.",
        "A fresh wind carries the promise of the road.",
    ],
    AdventurePhase.RISING: [
        "Shadows lengthen, and the land grows stranger with every step.",
        "Somewhere far off, a crow laughs at your resolve.",
    ],
    AdventurePhase.MIDPOINT: [
        "You sense that the true shape of your task is only now revealed.",
        "The stakes have grown; there is no easy way back.",
    ],
    AdventurePhase.CLIMAX: [
        "Everything has led to this moment.",
        "Your heart pounds; the air itself seems to hold its breath.",
    ],
    AdventurePhase.DENOUEMENT: [
        "The worst is behind you, though its echoes linger.",
        "A quiet settles over the land like a blanket of snow.",
    ],
}

_REACTION: dict[str, list[str]] = {
    "combat_round": ["Steel rings against claw.", "The fight goes on, fierce and close."],
    "combat_won": ["Silence falls over the battlefield.", "You stand victorious, breathing hard."],
    "defeated": ["The world fades to grey."],
    "fled": ["You run until the sounds of pursuit fade."],
    "rested": ["For a little while, the world leaves you be."],
    "objective_done": ["Fortune favours the bold.", "One more step along the path."],
    "redirected": [
        "The tale gently turns another page.",
        "The storyteller clears their throat and begins again.",
    ],
}

_QUIPS = [
    "Bold plan, {name}. The bards will need a new word for it.",
    "Ah, {name}: proof that courage and good sense rarely share a saddle.",
    "If looks could kill, {name}, you'd still need a sharper sword.",
    "Another day, another heroic blunder. Carry on, {name}!",
    "I'd cheer, {name}, but I'm saving my breath for the eulogy.",
    "The dice love you, {name}. Not the way a mother does, but still.",
]


def _hero(state: GameState) -> str:
    return state.character_sheet.name if state.character_sheet else "stranger"


class NarratorVoice:
    def speak(self, scene: Scene) -> str:
        parts = [scene.dice.choice(_MOOD[scene.state.adventure_phase])]
        parts += [fact[:1].upper() + fact[1:] for fact in scene.outcome.facts]
        reaction = _REACTION.get(scene.outcome.kind)
        if reaction:
            parts.append(scene.dice.choice(reaction))
        return " ".join(parts)


class KeeperVoice:
    def speak(self, scene: Scene) -> str:
        state, parts = scene.state, []
        if scene.outcome.checks:
            parts.append("; ".join(check.rstrip(".") for check in scene.outcome.checks) + ".")
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
        return "Marta the innkeeper raises a cup to you as you pass."


class JesterVoice:
    def speak(self, scene: Scene) -> str:
        quip = scene.dice.choice(_QUIPS).format(name=_hero(scene.state))
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
