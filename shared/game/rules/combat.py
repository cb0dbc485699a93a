"""Combat: initiative, then rounds of d20 rolls until someone falls, flees, or the foe gives
up. Foes come from templates scaled to the hero's level.

Advantage (two d20, the higher kept) goes to a hero who holds an edge (rested, inspired by
a bard's song, or a rogue striking unseen) on their next attack, and to a foe whose prey
just failed to flee. Fleeing the quest's final fight loses the quest."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.game.content import CLASSES, ENEMIES, EnemyTemplate
from shared.game.dice import Dice, Edge, modifier, parse_notation
from shared.game.phrases import FACTS
from shared.game.phrasing import say
from shared.game.rules.clarify import clarify
from shared.game.rules.intents import Intent, read_action
from shared.game.rules.outcome import Outcome, Resolution, moment
from shared.game.rules.quests import complete_objective, fail_quest
from shared.game.rules.stats import player_armor
from shared.models import CharacterSheet, CombatState, GamePhase, GameState, Moment

__all__ = ["MAX_ROUNDS", "combat_round", "scaled_enemy", "start_combat"]

# A foe that has not fallen by then breaks off: every fight ends.
MAX_ROUNDS = 12
FLEE_DIFFICULTY = 10


def scaled_enemy(template: EnemyTemplate, level: int) -> CombatState:
    """The foe as this hero meets it: tougher and surer of hand as the hero grows."""
    health = template.health + 4 * (level - 1)
    return CombatState(
        enemy_name=template.name,
        enemy_health=health,
        enemy_health_max=health,
        enemy_armor=template.armor + (level - 1) // 3,
        enemy_attack_bonus=template.attack_bonus + (level - 1) // 2,
        enemy_damage=template.damage,
    )


def start_combat(
    state: GameState,
    enemy_name: str,
    dice: Dice,
    *,
    lead: str,
    objective: str | None,
    surprise: bool | None = None,
    kind: str = "combat_started",
    checks: list[str] | None = None,
) -> tuple[GameState, Outcome]:
    """The state with a fight begun, and how it began (what `lead` says, then who acts
    first; the initiative roll as a check). `surprise`: True when the hero strikes unseen,
    False when ambushed; otherwise initiative is rolled (d20 + dexterity modifier against the
    foe's d20 + its initiative)."""
    sheet = state.character_sheet
    assert sheet is not None
    template = ENEMIES[enemy_name]
    combat = scaled_enemy(template, sheet.level)
    opening = _Round(rolls=list(checks or []), entries=list(checks or []))
    opening.tell(lead)
    state = _class_edge(state, sheet, surprise=surprise is True, log=opening)
    if surprise is None:
        yours, theirs = dice.d20() + modifier(sheet.dexterity), dice.d20() + template.initiative
        player_first = yours >= theirs
        opening.roll(f"Initiative: you {yours}, the {template.name} {theirs}")
        first = FACTS["you_first"] if player_first else FACTS["foe_first"]
        opening.tell(say(state, "first", first, foe=template.name))
    else:
        player_first = surprise
        jump = FACTS["you_jump"] if surprise else FACTS["foe_jumps"]
        opening.tell(say(state, "jump", jump, foe=template.name))
    combat = combat.model_copy(
        update={"player_first": player_first, "objective": objective, "log": opening.entries}
    )
    fighting = state.model_copy(update={"phase": GamePhase.COMBAT, "combat_state": combat})
    return fighting, opening.outcome(kind)


def _class_edge(
    state: GameState, sheet: CharacterSheet, *, surprise: bool, log: _Round
) -> GameState:
    """A bard's song before a fight, or a rogue's unseen first strike: the next attack has
    advantage."""
    if sheet.character_class == "bard":
        log.tell("You strike up a fighting song; your blood quickens.")
        return state.model_copy(update={"hero_edge": "inspired"})
    if sheet.character_class == "rogue" and surprise:
        return state.model_copy(update={"hero_edge": "unseen"})
    return state


@dataclass
class _Round:
    """What a round told (story), rolled (rolls), and both in order (the combat log)."""

    story: list[str] = field(default_factory=list)
    rolls: list[str] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)

    def tell(self, line: str) -> None:
        self.story.append(line)
        self.entries.append(line)

    def roll(self, line: str) -> None:
        self.rolls.append(line)
        self.entries.append(line)

    def outcome(self, kind: str, last: str | None = None, moment: Moment | None = None) -> Outcome:
        story = [*self.story, last] if last else self.story
        return Outcome(kind, story, moment=moment, checks=self.rolls)


_EDGE_WORDS = {
    "rested": "rested and steady",
    "studied": "knowing its moves",
    "inspired": "inspired by your song",
    "unseen": "striking unseen",
}


def _player_attack(
    state: GameState, combat: CombatState, dice: Dice, log: _Round
) -> tuple[GameState, CombatState]:
    """The hero's attack; spends the hero's edge, if they held one."""
    sheet = state.character_sheet
    assert sheet is not None
    template = CLASSES[sheet.character_class]
    ability = modifier(getattr(sheet, template.attack_stat))
    edge = Edge.ADVANTAGE if state.hero_edge else Edge.NONE
    if state.hero_edge:
        log.tell(f"You attack with advantage, {_EDGE_WORDS.get(state.hero_edge, 'ready')}.")
        state = state.model_copy(update={"hero_edge": None})
    check = dice.check(ability + 2, combat.enemy_armor, edge)
    log.roll(check.describe(f"Your {template.weapon}"))
    if not check.success:
        log.tell(say(state, f"miss{combat.round}", FACTS["you_miss"], foe=combat.enemy_name))
        return state, combat
    # A natural 20 doubles the dice, not the bonus.
    notation = parse_notation(template.damage).times(2 if check.roll == 20 else 1).plus(ability)
    rolled = dice.throw(notation)
    damage = max(1, rolled.total)
    log.roll(f"Damage {rolled.describe()}")
    critical = " A critical hit!" if check.roll == 20 else ""
    hit = say(state, f"hit{combat.round}", FACTS["you_hit"], foe=combat.enemy_name, damage=damage)
    log.tell(hit + critical)
    return state, combat.model_copy(update={"enemy_health": max(0, combat.enemy_health - damage)})


def _enemy_attack(
    state: GameState, combat: CombatState, dice: Dice, *, defending: bool, log: _Round
) -> tuple[int, CombatState]:
    """The hero's health after the foe's attack; spends the foe's advantage."""
    assert state.character_sheet is not None
    armor = player_armor(state.character_sheet) + (4 if defending else 0)
    edge = Edge.ADVANTAGE if combat.foe_advantage else Edge.NONE
    combat = combat.model_copy(update={"foe_advantage": False})
    check = dice.check(combat.enemy_attack_bonus, armor, edge)
    log.roll(check.describe(f"The {combat.enemy_name}'s attack"))
    if not check.success:
        log.tell(say(state, f"parry{combat.round}", FACTS["foe_misses"], foe=combat.enemy_name))
        return state.health_current, combat
    rolled = dice.throw(combat.enemy_damage)
    damage = max(1, rolled.total)
    log.roll(f"Damage {rolled.describe()}")
    log.tell(
        say(state, f"hurt{combat.round}", FACTS["foe_hits"], foe=combat.enemy_name, damage=damage)
    )
    return max(0, state.health_current - damage), combat


def _end_combat(state: GameState, log: _Round, dice: Dice) -> Resolution:
    combat = state.combat_state
    assert combat is not None
    won = state.model_copy(
        update={"combat_state": None, "phase": GamePhase.EXPLORATION, "hero_edge": None}
    )
    beaten = moment("fight", f"defeated the {combat.enemy_name}", 1)
    log.tell(say(state, "falls", FACTS["falls"], foe=combat.enemy_name))
    if combat.objective is not None:
        won, more, quest_moment = complete_objective(won, dice)
        log.story.extend(more)
        beaten = quest_moment or beaten.model_copy(update={"kind": "victory", "significance": 2})
    return Resolution(won, log.outcome("combat_won", moment=beaten))


def _fallen(state: GameState, combat: CombatState, log: _Round) -> Resolution:
    # The story closes on the hero's death: the next turn is the epilogue.
    fallen = state.model_copy(
        update={"health_current": 0, "combat_state": None, "phase": GamePhase.EPILOGUE}
    )
    return Resolution(
        fallen,
        log.outcome(
            "defeated",
            f"You fall before the {combat.enemy_name}.",
            moment=moment("death", f"fell in battle against the {combat.enemy_name}", 5),
        ),
    )


def _flee(state: GameState, combat: CombatState, dice: Dice, log: _Round) -> Resolution | None:
    """The escape: the fight ends if it works (and, fleeing the quest's last foe, the quest is
    lost); if not, the foe's next attack has advantage and None is returned."""
    sheet = state.character_sheet
    assert sheet is not None
    check = dice.check(modifier(sheet.dexterity), FLEE_DIFFICULTY)
    log.roll(check.describe("Escape (dexterity)"))
    if not check.success:
        log.tell(say(state, "cut_off", FACTS["cut_off"], foe=combat.enemy_name))
        return None
    fled = state.model_copy(
        update={"combat_state": None, "phase": GamePhase.EXPLORATION, "hero_edge": None}
    )
    quest = state.active_quest
    final = quest is not None and len(quest.completed_objectives) == len(quest.objectives) - 1
    if combat.objective is not None and final:
        why = f"You escape the {combat.enemy_name}, and with it goes your last chance."
        fled, facts, lost = fail_quest(fled, why, dice)
        log.story.extend(facts)
        return Resolution(fled, log.outcome("fled", moment=lost))
    return Resolution(
        fled,
        log.outcome(
            "fled",
            say(state, "escape", FACTS["escape"], foe=combat.enemy_name),
            moment=moment("flight", f"fled from the {combat.enemy_name}", 1),
        ),
    )


def _holding_back(state: GameState, combat: CombatState, intent: Intent, log: _Round) -> GameState:
    """A round the hero does not attack in: they guard, catch their breath, study the foe
    (their next attack has advantage) or call out to it (it is not listening)."""
    foe = combat.enemy_name
    if intent is Intent.LOOK:
        log.tell(say(state, f"study{combat.round}", FACTS["study"], foe=foe))
        return state.model_copy(update={"hero_edge": "studied"})
    if intent is Intent.TALK:
        log.tell(say(state, f"parley{combat.round}", FACTS["parley"], foe=foe))
    elif intent is Intent.REST:
        log.tell(say(state, f"breath{combat.round}", FACTS["breath"], foe=foe))
    else:
        log.tell(say(state, f"guard{combat.round}", FACTS["guard"], foe=foe))
    return state


def combat_round(state: GameState, action: str, dice: Dice) -> Resolution:
    combat, sheet = state.combat_state, state.character_sheet
    assert combat is not None and sheet is not None
    reading = read_action(action, GamePhase.COMBAT)
    if reading.intent is Intent.UNSURE:
        return clarify(state, reading)
    intent = reading.intent
    # Catching one's breath is done behind one's guard.
    defending = intent in (Intent.DEFEND, Intent.REST)
    holding_back = intent in (Intent.DEFEND, Intent.REST, Intent.LOOK, Intent.TALK)
    log = _Round()
    if holding_back:
        state = _holding_back(state, combat, intent, log)
    # A foe that won the initiative strikes before the hero's first move.
    enemy_first = combat.round == 1 and not combat.player_first
    if enemy_first:
        health, combat = _enemy_attack(state, combat, dice, defending=defending, log=log)
        if health == 0:
            return _fallen(state, combat, log)
        state = state.model_copy(update={"health_current": health})
    if intent is Intent.FLEE:
        escaped = _flee(state, combat, dice, log)
        if escaped is not None:
            return escaped
        combat = combat.model_copy(update={"foe_advantage": True})
    elif not holding_back:
        state, combat = _player_attack(state, combat, dice, log)
    if combat.enemy_health == 0:
        return _end_combat(state.model_copy(update={"combat_state": combat}), log, dice)
    health = state.health_current
    if not enemy_first:
        health, combat = _enemy_attack(state, combat, dice, defending=defending, log=log)
        if health == 0:
            return _fallen(state, combat, log)
    combat = combat.model_copy(
        update={"round": combat.round + 1, "log": [*combat.log, *log.entries][-12:]}
    )
    if combat.round > MAX_ROUNDS:
        broke_off = state.model_copy(
            update={
                "health_current": health,
                "combat_state": None,
                "phase": GamePhase.EXPLORATION,
                "hero_edge": None,
            }
        )
        return Resolution(
            broke_off,
            log.outcome(
                "enemy_fled", f"Bloodied, the {combat.enemy_name} breaks off and vanishes."
            ),
        )
    fighting = state.model_copy(update={"health_current": health, "combat_state": combat})
    return Resolution(fighting, log.outcome("combat_round"))
