// The player page's logic that needs no page: how the story's stream is pieced together, which
// key picks which choice, what the panels say, how a roll reads, and the themes' colours.
// Pure functions over plain data, tested with Node's own test runner (tests/web/).
"use strict";

// Who speaks besides the Narrator: each agent's words carry its name.
export const SPEAKERS = {
  keeper: "Game Keeper",
  innkeeper: "Innkeeper",
  jester: "Jester",
  chronicler: "Chronicler",
};

// A delta joins its speaker's words; another speaker's begins a new line of the story.
export function heardDelta(lines, data) {
  const speaker = data.speaker || "narrator";
  const last = lines[lines.length - 1];
  if (last && last.speaker === speaker) last.text += data.text;
  else lines.push({ speaker, text: data.text.replace(/^\n+/, "") });
  return lines;
}

// Where the story's stream picks up again: after the last event this page saw ("0": from
// the start of what the server keeps).
export function streamQuery(adventure, from = adventure.lastEventId) {
  return new URLSearchParams({ token: adventure.token, last_event_id: from || "0" }).toString();
}

// How long to wait before asking again after a refusal: the server's Retry-After, within 1..60.
export function retryWait(error) {
  return Math.min(Math.max(error.retryAfter || 1, 1), 60);
}

export function politely(error, wait) {
  const when = `Trying again in ${wait} second${wait === 1 ? "" : "s"}…`;
  if (error.status === 429) return `Easy there, the story needs a moment to catch up. ${when}`;
  if (error.status === 0) return `The connection dropped. ${when}`;
  return `The storytellers are busy right now. ${when}`;
}

// The choice a key picks (1..9), or null: never while typing, never with a modifier, and only
// a digit (any other key, a quote or a backslash, must never reach a selector).
export function choiceForKey({ key, altKey, ctrlKey, metaKey, typing }) {
  if (typing || altKey || ctrlKey || metaKey || !/^[1-9]$/.test(key)) return null;
  return Number(key);
}

// The quest panel's lines: each objective, whether done, and the count of a counted one.
export function questItems(quest) {
  const current = quest.objectives.find((o) => !quest.completed_objectives.includes(o));
  return quest.objectives.map((objective) => ({
    text: objective === current && quest.progress ? `${objective} (${quest.progress})` : objective,
    done: quest.completed_objectives.includes(objective),
  }));
}

// The turns left to finish a quest: the deadline is the last of them.
export function timeLeft(quest, adventureTurn) {
  if (quest.deadline === null || quest.deadline === undefined) return null;
  const turns = quest.deadline - adventureTurn;
  if (turns > 1) return `${turns} turns left to finish it.`;
  return turns === 1 ? "One turn left to finish it." : "Time is running out.";
}

export function progressLine(state) {
  const done = state.completed_quests.length;
  const lost = (state.failed_quests || []).length;
  return (
    `Turn ${state.adventure_turn} of ${state.max_turns}, ${state.adventure_phase}` +
    (done ? `. Quests done: ${done}` : "") +
    (lost ? `. Quests lost: ${lost}` : "")
  );
}

const CHECK =
  /^(.+?): d20 (?:with (advantage|disadvantage) \((\d+), (\d+): (\d+)\)|(\d+)) ([+-]) (\d+) = (-?\d+) vs (\d+), (success|failure)$/;
const DAMAGE = /^(Damage|Rest) (\d+d\d+(?:[+-]\d+)?): (.+?)(?: = (-?\d+))?$/;

// A roll as the Game Keeper tells it ("Your longsword: d20 15 + 5 = 20 vs 13, success",
// "Damage 2d6+3: 4 + 2 + 3 = 9"), as data to draw: each die, which were kept, the modifier,
// the total; null for a line that is not a roll.
export function parseRoll(line) {
  const check = CHECK.exec(line.trim());
  if (check) {
    const [, label, edge, first, second, kept, plain, sign, bonus, total, target, verdict] = check;
    const dice = edge
      ? [Number(first), Number(second)].map((face, index, both) => ({
          sides: 20,
          face,
          kept: index === both.indexOf(Number(kept)),
        }))
      : [{ sides: 20, face: Number(plain), kept: true }];
    return {
      label,
      notation: "d20",
      edge: edge || null,
      dice,
      bonus: (sign === "-" ? -1 : 1) * Number(bonus),
      total: Number(total),
      target: Number(target),
      success: verdict === "success",
    };
  }
  const damage = DAMAGE.exec(line.trim());
  if (!damage) return null;
  const [, label, notation, terms, total] = damage;
  const sides = Number(notation.split("d")[1].split(/[+-]/)[0]);
  const count = Number(notation.split("d")[0]);
  const numbers = terms.split(/ [+-] /).map(Number);
  const faces = numbers.slice(0, count);
  const bonusMatch = /([+-])(\d+)$/.exec(notation);
  const bonus = bonusMatch ? (bonusMatch[1] === "-" ? -1 : 1) * Number(bonusMatch[2]) : 0;
  return {
    label,
    notation,
    edge: null,
    dice: faces.map((face) => ({ sides, face, kept: true })),
    bonus,
    total: total === undefined ? faces[0] : Number(total),
    target: null,
    success: null,
  };
}

// The fight as the combat panel shows it: the foe and both sides' health, and the latest
// entries of the log with the rolls among them as data.
export function combatView(state, entries = 6) {
  const combat = state.combat_state;
  if (!combat) return null;
  return {
    foe: combat.enemy_name,
    foeHealth: combat.enemy_health,
    foeMax: combat.enemy_health_max,
    heroHealth: state.health_current,
    heroMax: state.health_max,
    round: combat.round,
    log: combat.log.slice(-entries).map((line) => ({ line, roll: parseRoll(line) })),
  };
}

// Themes: the page follows the system's light or dark mode until a player picks one.
export const THEMES = {
  system: "Follow the system",
  parchment: "Parchment",
  light: "Modern light",
  dark: "Midnight dark",
  mono: "High contrast",
};

export function themeToApply(stored) {
  return stored && stored !== "system" && THEMES[stored] ? stored : null;
}

// WCAG's contrast ratio of two "#rrggbb" colours (1 to 21).
export function contrastRatio(first, second) {
  const luminance = (hex) => {
    const channels = [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16) / 255);
    const linear = channels.map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2];
  };
  const [light, dark] = [luminance(first), luminance(second)].sort((a, b) => b - a);
  return (light + 0.05) / (dark + 0.05);
}
