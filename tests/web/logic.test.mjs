// The player page's logic (api/web/logic.js), with Node's own test runner: `node --test
// tests/web/` (tests/web/test_page_logic.py runs it in the suite).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  SPEAKERS,
  THEMES,
  choiceForKey,
  combatView,
  contrastRatio,
  heardDelta,
  parseRoll,
  politely,
  progressLine,
  questItems,
  retryWait,
  streamQuery,
  themeToApply,
  timeLeft,
} from "../../api/web/logic.js";

test("a stream picks up after the last event seen, or from the start", () => {
  const adventure = { token: "t/k+n", lastEventId: "17-0" };
  assert.equal(streamQuery(adventure), "token=t%2Fk%2Bn&last_event_id=17-0");
  assert.equal(streamQuery({ token: "t", lastEventId: null }), "token=t&last_event_id=0");
  assert.equal(streamQuery(adventure, "20-1"), "token=t%2Fk%2Bn&last_event_id=20-1");
});

test("deltas join their speaker's words and a new speaker starts a new line", () => {
  const lines = [];
  heardDelta(lines, { text: "The door " });
  heardDelta(lines, { text: "opens.", speaker: "narrator" });
  heardDelta(lines, { text: "\n\nThe Game Keeper notes: d20 12.", speaker: "keeper" });
  heardDelta(lines, { text: "\n\nHa!", speaker: "jester" });
  assert.deepEqual(lines, [
    { speaker: "narrator", text: "The door opens." },
    { speaker: "keeper", text: "The Game Keeper notes: d20 12." },
    { speaker: "jester", text: "Ha!" },
  ]);
  assert.equal(SPEAKERS.keeper, "Game Keeper");
  assert.equal(SPEAKERS.narrator, undefined);
});

test("only a digit picks a choice, and never while typing or with a modifier", () => {
  assert.equal(choiceForKey({ key: "3" }), 3);
  for (const key of ["0", "a", "'", "\\", "Enter", "10", " "]) {
    assert.equal(choiceForKey({ key }), null, key);
  }
  assert.equal(choiceForKey({ key: "2", typing: true }), null);
  for (const modifier of ["altKey", "ctrlKey", "metaKey"]) {
    assert.equal(choiceForKey({ key: "2", [modifier]: true }), null, modifier);
  }
});

test("refusals are waited out politely, within 1 to 60 seconds", () => {
  assert.equal(retryWait({ retryAfter: 0 }), 1);
  assert.equal(retryWait({ retryAfter: 7 }), 7);
  assert.equal(retryWait({ retryAfter: 600 }), 60);
  assert.match(politely({ status: 429 }, 1), /catch up\. Trying again in 1 second…$/);
  assert.match(politely({ status: 0 }, 5), /^The connection dropped\. Trying again in 5 seconds/);
  assert.match(politely({ status: 503 }, 2), /^The storytellers are busy/);
});

const quest = {
  objectives: ["Ask Mother Ysolde", "Find the way down", "Defeat 3 crypt ghouls"],
  completed_objectives: ["Ask Mother Ysolde", "Find the way down"],
  progress: "1/3",
  deadline: 20,
};

test("the quest panel shows what is done, a counted objective's count, and the time left", () => {
  assert.deepEqual(questItems(quest), [
    { text: "Ask Mother Ysolde", done: true },
    { text: "Find the way down", done: true },
    { text: "Defeat 3 crypt ghouls (1/3)", done: false },
  ]);
  // The deadline is the last turn: at turn 12 of a deadline of 20, turns 13 to 20 are left.
  assert.equal(timeLeft(quest, 12), "8 turns left to finish it.");
  assert.equal(timeLeft(quest, 19), "One turn left to finish it.");
  assert.equal(timeLeft(quest, 20), "Time is running out.");
  assert.equal(timeLeft({ ...quest, deadline: null }, 3), null);
  const state = { adventure_turn: 9, max_turns: 40, adventure_phase: "rising", completed_quests: [{}], failed_quests: [{}, {}] };
  assert.equal(progressLine(state), "Turn 9 of 40, rising. Quests done: 1. Quests lost: 2");
  assert.equal(progressLine({ ...state, completed_quests: [], failed_quests: undefined }), "Turn 9 of 40, rising");
});

test("rolls read as the Game Keeper tells them, die by die", () => {
  assert.deepEqual(parseRoll("Your longsword: d20 15 + 5 = 20 vs 13, success"), {
    label: "Your longsword", notation: "d20", edge: null,
    dice: [{ sides: 20, face: 15, kept: true }], bonus: 5, total: 20, target: 13, success: true,
  });
  const edged = parseRoll("The bog wight's attack: d20 with advantage (4, 11: 11) - 1 = 10 vs 15, failure");
  assert.deepEqual(edged.dice, [{ sides: 20, face: 4, kept: false }, { sides: 20, face: 11, kept: true }]);
  assert.equal(edged.edge, "advantage");
  assert.equal(edged.bonus, -1);
  assert.equal(edged.success, false);
  const low = parseRoll("Escape (dexterity): d20 with disadvantage (9, 9: 9) + 0 = 9 vs 10, failure");
  assert.deepEqual(low.dice.map((d) => d.kept), [true, false]);
  assert.deepEqual(parseRoll("Damage 2d6+3: 4 + 2 + 3 = 9"), {
    label: "Damage", notation: "2d6+3", edge: null,
    dice: [{ sides: 6, face: 4, kept: true }, { sides: 6, face: 2, kept: true }],
    bonus: 3, total: 9, target: null, success: null,
  });
  assert.deepEqual(parseRoll("Damage 1d8: 8").dice, [{ sides: 8, face: 8, kept: true }]);
  assert.equal(parseRoll("Damage 1d4-1: 1 - 1 = 0").bonus, -1);
  assert.equal(parseRoll("The bog wight misses you."), null);
  assert.equal(parseRoll("Initiative: you 14, the bog wight 9"), null);
});

test("the combat panel shows both sides' health and the latest entries with their dice", () => {
  const state = {
    health_current: 12, health_max: 20,
    combat_state: {
      enemy_name: "bog wight", enemy_health: 5, enemy_health_max: 14, round: 3,
      log: ["a", "b", "c", "You miss the bog wight.", "Your longsword: d20 3 + 5 = 8 vs 12, failure"],
    },
  };
  const view = combatView(state, 2);
  assert.equal(view.foe, "bog wight");
  assert.deepEqual([view.heroHealth, view.heroMax, view.foeHealth, view.foeMax], [12, 20, 5, 14]);
  assert.equal(view.log.length, 2);
  assert.equal(view.log[0].roll, null);
  assert.equal(view.log[1].roll.total, 8);
  assert.equal(combatView({ ...state, combat_state: null }), null);
});

test("a theme is applied only when one was picked", () => {
  assert.equal(themeToApply(null), null);
  assert.equal(themeToApply("system"), null);
  assert.equal(themeToApply("nonsense"), null);
  assert.equal(themeToApply("mono"), "mono");
  assert.deepEqual(Object.keys(THEMES), ["system", "parchment", "light", "dark", "mono"]);
});

test("contrast is measured as WCAG does", () => {
  assert.equal(Math.round(contrastRatio("#000000", "#ffffff")), 21);
  assert.equal(contrastRatio("#777777", "#777777"), 1);
  assert.ok(Math.abs(contrastRatio("#767676", "#ffffff") - 4.54) < 0.01);
});

// Each theme's colours, as style.css sets them (the dark mode the system asks for included).
function themes() {
  const css = readFileSync(new URL("../../api/web/style.css", import.meta.url), "utf8");
  const found = {};
  const block = /([^{}]*)\{([^{}]*--paper:\s*#[^{}]*)\}/g;
  for (const [, selector, body] of css.matchAll(block)) {
    const colours = Object.fromEntries([...body.matchAll(/--(\w+):\s*(#[0-9a-fA-F]{6})/g)].map(([, k, v]) => [k, v]));
    const named = /data-theme="(\w+)"/.exec(selector);
    // The first block is both the system's light default and the parchment theme.
    const name = selector.includes(":not([data-theme])") ? "system-dark" : named[1];
    found[name] = colours;
  }
  return found;
}

test("every theme meets WCAG AA: text 4.5:1 against its paper, the focus ring 3:1", () => {
  const all = themes();
  assert.deepEqual(Object.keys(all).sort(), ["dark", "light", "mono", "parchment", "system-dark"]);
  for (const [name, colours] of Object.entries(all)) {
    for (const text of ["ink", "muted", "accent"]) {
      const ratio = contrastRatio(colours[text], colours.paper);
      assert.ok(ratio >= 4.5, `${name}: --${text} on --paper is ${ratio.toFixed(2)}:1`);
    }
    const focus = contrastRatio(colours.focus, colours.paper);
    assert.ok(focus >= 3, `${name}: --focus on --paper is ${focus.toFixed(2)}:1`);
  }
});
