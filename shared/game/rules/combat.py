"""Combat: a fight is rounds of d20 rolls until someone falls, flees, or the foe gives up."""

from __future__ import annotations

from shared.game.content import CLASSES, ENEMIES
from shared.game.dice import Dice, modifier
from shared.game.rules.character import player_armor
from shared.game.rules.intents import Intent, intent_of
from shared.game.rules.outcome import Outcome, Resolution
from shared.game.rules.quests import complete_objective
from shared.models import CharacterSheet, CombatState, GamePhase, GameState

__all__ = ["MAX_ROUNDS", "combat_round", "start_combat"]

# A foe that has not fallen by then breaks off: every fight ends.
MAX_ROUNDS = 12


def start_combat(
    state: GameState, enemy_name: str, *, objective: str | None, player_first: bool
) -> GameState:
    enemy = ENEMIES[enemy_name]
    combat = CombatState(
        enemy_name=enemy.name,
        enemy_health=enemy.health,
        enemy_health_max=enemy.health,
        enemy_armor=enemy.armor,
        enemy_attack_bonus=enemy.attack_bonus,
        enemy_damage=enemy.damage,
        player_first=player_first,
        objective=objective,
    )
    return state.model_copy(update={"phase": GamePhase.COMBAT, "combat_state": combat})


def _player_attack(
    sheet: CharacterSheet, combat: CombatState, dice: Dice, log: list[str]
) -> CombatState:
    template = CLASSES[sheet.character_class]
    bonus = modifier(getattr(sheet, template.attack_stat)) + 2
    check = dice.check(bonus, combat.enemy_armor)
    log.append(check.describe(f"Your {template.weapon}"))
    if not check.success:
        log.append(f"You miss the {combat.enemy_name}.")
        return combat
    dice_count = 2 if check.roll == 20 else 1
    damage = max(
        1,
        dice.roll(template.damage_die, dice_count) + modifier(getattr(sheet, template.attack_stat)),
    )
    log.append(f"You hit the {combat.enemy_name} for {damage} damage.")
    return combat.model_copy(update={"enemy_health": max(0, combat.enemy_health - damage)})


def _enemy_attack(
    state: GameState, combat: CombatState, dice: Dice, *, defending: bool, log: list[str]
) -> int:
    assert state.character_sheet is not None
    armor = player_armor(state.character_sheet) + (4 if defending else 0)
    check = dice.check(combat.enemy_attack_bonus, armor)
    log.append(check.describe(f"The {combat.enemy_name}'s attack"))
    if not check.success:
        log.append(f"The {combat.enemy_name} misses you.")
        return state.health_current
    damage = dice.roll(combat.enemy_damage)
    log.append(f"The {combat.enemy_name} wounds you for {damage} damage.")
    return max(0, state.health_current - damage)


def _end_combat(state: GameState, log: list[str], dice: Dice) -> Resolution:
    combat = state.combat_state
    assert combat is not None
    won = state.model_copy(update={"combat_state": None, "phase": GamePhase.EXPLORATION})
    moment = f"defeated the {combat.enemy_name}"
    facts = [*log, f"The {combat.enemy_name} falls!"]
    if combat.objective is not None:
        won, more, quest_moment = complete_objective(won, dice)
        facts += more
        moment = quest_moment or moment
    return Resolution(won, Outcome("combat_won", facts, moment=moment, checks=log))


def combat_round(state: GameState, action: str, dice: Dice) -> Resolution:
    combat, sheet = state.combat_state, state.character_sheet
    assert combat is not None and sheet is not None
    intent = intent_of(action)
    log: list[str] = []
    if intent is Intent.FLEE:
        check = dice.check(modifier(sheet.dexterity), 12)
        log.append(check.describe("Escape (dexterity)"))
        if check.success:
            fled = state.model_copy(update={"combat_state": None, "phase": GamePhase.EXPLORATION})
            return Resolution(
                fled, Outcome("fled", [*log, f"You escape the {combat.enemy_name}."], checks=log)
            )
    elif intent is not Intent.DEFEND:
        combat = _player_attack(sheet, combat, dice, log)
    if combat.enemy_health == 0:
        return _end_combat(state.model_copy(update={"combat_state": combat}), log, dice)
    health = _enemy_attack(state, combat, dice, defending=intent is Intent.DEFEND, log=log)
    if intent is Intent.DEFEND:
        log.insert(0, "You raise your guard and wait for an opening.")
    if health == 0:
        fallen = state.model_copy(
            update={"health_current": 0, "combat_state": None, "adventure_completed": True}
        )
        return Resolution(
            fallen,
            Outcome(
                "defeated",
                [*log, f"You fall before the {combat.enemy_name}."],
                moment=f"fell in battle against the {combat.enemy_name}",
                checks=log,
            ),
        )
    combat = combat.model_copy(update={"round": combat.round + 1, "log": [*combat.log, *log][-12:]})
    if combat.round > MAX_ROUNDS:
        broke_off = state.model_copy(
            update={"health_current": health, "combat_state": None, "phase": GamePhase.EXPLORATION}
        )
        return Resolution(
            broke_off,
            Outcome(
                "enemy_fled",
                [*log, f"Bloodied, the {combat.enemy_name} breaks off and vanishes."],
                checks=log,
            ),
        )
    fighting = state.model_copy(update={"health_current": health, "combat_state": combat})
    return Resolution(fighting, Outcome("combat_round", log, checks=log))
