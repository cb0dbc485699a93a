// The Pocket Portals player page: a client of the public HTTP API (docs/api.md) and nothing
// else. The session id and token live in this browser's localStorage; the story streams over
// EventSource and resumes where it left off after a network drop or a reload.
"use strict";

import {
  SPEAKERS,
  THEMES,
  choiceForKey,
  combatView,
  heardDelta,
  politely,
  progressLine,
  questItems,
  retryWait,
  streamQuery,
  themeToApply,
  timeLeft,
} from "./logic.js";

const STORE = "pocket-portals:adventure";
const THEME_STORE = "pocket-portals:theme";
const READING_STORE = "pocket-portals:reading";
const MAX_RETRIES = 8;

const $ = (id) => document.getElementById(id);
const saved = () => JSON.parse(localStorage.getItem(STORE) || "null");
const save = (adventure) => localStorage.setItem(STORE, JSON.stringify(adventure));

// {sessionId, token, lastEventId, pending: {turnId, action, cursor} | null}; `cursor` is the
// last event id seen before the turn was sent, where a reload picks its narration up again.
let adventure = null;
let source = null; // the EventSource
let reconnectTimer = null;
let reconnectDelay = 1;
// Narration of a turn whose POST has not been answered yet (the stream can be faster):
// turn id -> { raw, lines }.
const early = new Map();
// The pending turn's words so far, by speaker: turn id -> [{ speaker, text }].
const spoken = new Map();

// crypto.randomUUID exists only on HTTPS and localhost; a phone on plain HTTP at a LAN address
// has getRandomValues alone.
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------
// HTTP

class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function call(method, path, { body, idempotencyKey } = {}) {
  const headers = { Accept: "application/json" };
  if (adventure) headers.Authorization = `Bearer ${adventure.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "The connection dropped.", 2);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    const retryAfter = Number(response.headers.get("Retry-After") || "0");
    throw new ApiError(response.status, error.code, error.message || response.statusText, retryAfter);
  }
  return data;
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

// Busy (429), briefly unavailable (503) or offline: say so politely and try again after
// Retry-After. Anything else is for the caller.
async function patiently(request) {
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await request();
      clearNotice("request");
      return result;
    } catch (error) {
      const passing = error.status === 429 || error.status === 503 || error.status === 0;
      if (!passing || attempt >= MAX_RETRIES) throw error;
      const wait = retryWait(error);
      notice(politely(error, wait), "request");
      await sleep(wait);
    }
  }
}

// Each notice belongs to whoever raised it, so the stream reconnecting does not wipe a
// "busy, trying again" notice that a request is still waiting out, nor the other way round.
let noticeOwner = null;

function notice(text, owner = "request") {
  const element = $("notice");
  element.textContent = text;
  element.hidden = !text;
  noticeOwner = text ? owner : null;
}

function clearNotice(owner) {
  if (noticeOwner === owner) notice("");
}

// ---------------------------------------------------------------------------------------
// Rendering (text only: never HTML from the server)

function paragraphs(container, text) {
  container.replaceChildren(
    ...text.split(/\n{2,}/).filter(Boolean).map((part) => {
      const p = document.createElement("p");
      p.textContent = part;
      return p;
    }),
  );
}

function spokenLines(container, lines) {
  container.replaceChildren(
    ...lines.flatMap(({ speaker, text }) =>
      text.split(/\n{2,}/).filter(Boolean).map((part, index) => {
        const p = document.createElement("p");
        p.dataset.speaker = speaker;
        if (index === 0 && SPEAKERS[speaker]) {
          const name = document.createElement("span");
          name.className = "speaker";
          name.textContent = SPEAKERS[speaker];
          p.append(name, " ");
        }
        p.append(part);
        return p;
      }),
    ),
  );
}

function storyItem(turnId, action) {
  let item = document.querySelector(`#story li[data-turn="${CSS.escape(turnId)}"]`);
  if (item) return item;
  item = document.createElement("li");
  item.dataset.turn = turnId;
  const said = document.createElement("p");
  said.className = "said";
  said.textContent = action;
  const told = document.createElement("div");
  told.className = "told";
  item.append(said, told);
  $("story").append(item);
  return item;
}

function tell(turnId, action, narrative, { pending = false, lines = null } = {}) {
  const item = storyItem(turnId, action);
  // A turn's end may arrive on the stream before the answer to its POST: what the player
  // said is filled in when it is known.
  if (action) item.querySelector(".said").textContent = action;
  item.classList.toggle("pending", pending);
  const told = item.querySelector(".told");
  told.dataset.raw = narrative;
  if (lines && lines.length) spokenLines(told, lines);
  else paragraphs(told, narrative);
  item.scrollIntoView({ block: "end", behavior: "smooth" });
}

function renderChoices(choices, completed) {
  const box = $("choices");
  box.replaceChildren(
    ...choices.map((choice, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.dataset.index = String(index + 1);
      button.textContent = `${index + 1}. ${choice}`;
      button.addEventListener("click", () => play({ choice_index: index + 1 }, choice));
      return button;
    }),
  );
  $("action-form").hidden = completed;
  if (completed) {
    const end = document.createElement("p");
    end.className = "the-end";
    end.textContent = "The End.";
    const after = document.createElement("div");
    after.className = "after-end";
    after.setAttribute("role", "group");
    after.setAttribute("aria-label", "After the tale");
    after.append(
      endButton("View character sheet", viewSheet),
      endButton("Share story", () => shareStory().catch((e) => notice(e.message))),
      endButton("Begin a new adventure", () => begin().catch((e) => notice(e.message))),
    );
    box.append(end, after);
  }
}

function endButton(label, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", onClick);
  return button;
}

function viewSheet() {
  // The reading mode folds the panel away: the sheet asked for unfolds it.
  if (document.documentElement.classList.contains("reading")) {
    localStorage.setItem(READING_STORE, "off");
    applyReading(false);
  }
  const heading = $("hero-name");
  $("panel").scrollIntoView({ block: "start", behavior: "smooth" });
  heading.focus();
}

// The story as Markdown (GET /sessions/{id}/story), shown to copy, download or share.
async function shareStory() {
  const sessionId = adventure.sessionId;
  const response = await fetch(`/sessions/${sessionId}/story`, {
    headers: { Authorization: `Bearer ${adventure.token}`, Accept: "text/markdown" },
  }).catch(() => null);
  if (!response || !response.ok) throw new Error("The story could not be fetched; try again.");
  const text = await response.text();
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const dialog = $("story-dialog");
  $("story-text").value = text;
  $("story-download").onclick = () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/markdown" }));
    link.download = name ? name[1] : "pocket-portals-story.md";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  };
  $("story-copy").onclick = () =>
    navigator.clipboard.writeText(text).then(
      () => notice("The story is copied: paste it wherever you like.", "share"),
      () => $("story-text").select(),
    );
  $("story-share").hidden = !navigator.share;
  $("story-share").onclick = () =>
    navigator.share({ title: text.split("\n", 1)[0].replace(/^# /, ""), text }).catch(() => undefined);
  dialog.showModal();
}

function renderPanel(state) {
  const sheet = state.character_sheet;
  $("panel").hidden = false;
  $("hero-name").textContent = sheet ? sheet.name : "Your hero";
  $("hero-line").textContent = sheet
    ? `Level ${sheet.level} ${sheet.race} ${sheet.character_class}. ${sheet.backstory}`
    : "Not yet known: the innkeeper is asking.";
  $("health").max = state.health_max;
  $("health").value = state.health_current;
  $("health-text").textContent = `${state.health_current} / ${state.health_max}`;
  const stats = ["strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma"];
  $("stats").replaceChildren(
    ...(sheet
      ? stats.flatMap((name) => {
          const term = document.createElement("dt");
          term.textContent = name.slice(0, 3).toUpperCase();
          const value = document.createElement("dd");
          value.textContent = String(sheet[name]);
          return [term, value];
        })
      : []),
  );
  $("equipment").textContent = sheet ? `Carrying: ${sheet.equipment.join(", ")}` : "";
  renderQuest(state);
  renderCombat(combatView(state));
  $("progress").textContent = progressLine(state);
}

function renderQuest(state) {
  const box = $("quest");
  const quest = state.active_quest;
  if (!quest) {
    const p = document.createElement("p");
    p.textContent = state.quest_options.length
      ? `${state.quest_options.length} quests on offer at the inn.`
      : "None yet.";
    box.replaceChildren(p);
    return;
  }
  const title = document.createElement("p");
  title.className = "quest-title";
  title.textContent = quest.title;
  const list = document.createElement("ul");
  list.append(
    ...questItems(quest).map(({ text, done }) => {
      const item = document.createElement("li");
      item.textContent = text;
      if (done) item.className = "done";
      return item;
    }),
  );
  const parts = [title, list];
  const left = timeLeft(quest, state.adventure_turn);
  if (left) {
    const line = document.createElement("p");
    line.className = "deadline";
    line.textContent = left;
    parts.push(line);
  }
  box.replaceChildren(...parts);
}

function renderCombat(fight) {
  $("combat").hidden = !fight;
  if (!fight) return;
  $("foe").textContent = `${fight.foe}, round ${fight.round}`;
  $("foe-health").max = fight.foeMax;
  $("foe-health").value = fight.foeHealth;
  $("foe-health-text").textContent = `${fight.foeHealth} / ${fight.foeMax}`;
  $("combat-log").replaceChildren(
    ...fight.log.map(({ line, roll }) => {
      const item = document.createElement("li");
      if (roll) item.append(rollView(roll));
      else item.textContent = line;
      return item;
    }),
  );
}

// A roll as it fell: each die (the one not kept, with advantage, struck through), the
// modifier, the total, and against what.
function rollView(roll) {
  const box = document.createElement("span");
  box.className = "roll";
  const label = document.createElement("span");
  label.className = "roll-label";
  label.textContent = `${roll.label} (${roll.edge ? `${roll.notation} with ${roll.edge}` : roll.notation}):`;
  box.append(label);
  for (const die of roll.dice) {
    const face = document.createElement("span");
    face.className = die.kept ? "die" : "die dropped";
    face.textContent = String(die.face);
    face.setAttribute("aria-label", `d${die.sides} showing ${die.face}${die.kept ? "" : ", not kept"}`);
    box.append(" ", face);
  }
  const sum = document.createElement("span");
  sum.className = "roll-sum";
  const bonus = roll.bonus ? ` ${roll.bonus < 0 ? "−" : "+"} ${Math.abs(roll.bonus)}` : "";
  const against = roll.target === null ? "" : ` vs ${roll.target}, ${roll.success ? "success" : "failure"}`;
  sum.textContent = `${bonus} = ${roll.total}${against}`;
  if (roll.success !== null) box.classList.add(roll.success ? "success" : "failure");
  box.append(sum);
  return box;
}

function setWorking(working) {
  $("working").hidden = !working;
  for (const button of document.querySelectorAll("#choices button, #action-form button")) {
    button.disabled = working;
  }
}

function show(playing) {
  $("start").hidden = playing;
  $("play").hidden = !playing;
  $("forget").hidden = !playing;
  if (!playing) $("panel").hidden = true;
}

// ---------------------------------------------------------------------------------------
// The adventure

async function refresh() {
  const sessionId = adventure.sessionId;
  const view = await patiently(() => call("GET", `/sessions/${sessionId}`));
  if (!adventure || adventure.sessionId !== sessionId) return view.state; // began anew since
  const state = view.state;
  for (const entry of state.conversation_history) {
    if (adventure.pending && adventure.pending.turnId === entry.turn_id) continue;
    // A turn told on this page keeps its rendering (who said what); the history has only
    // the narrative, for turns told before a reload.
    const shown = document.querySelector(`#story li[data-turn="${CSS.escape(entry.turn_id)}"]`);
    if (shown && !shown.classList.contains("pending") && shown.querySelector(".told").dataset.raw) {
      // What the player said is still filled in: a turn's end may have come on the stream
      // before the answer to its POST.
      const said = shown.querySelector(".said");
      if (!said.textContent) said.textContent = entry.action;
      continue;
    }
    tell(entry.turn_id, entry.action, entry.narrative);
  }
  renderPanel(state);
  if (!adventure.pending) renderChoices(state.current_choices, state.adventure_completed);
  return state;
}

async function begin() {
  if (adventure) {
    // Starting over lets go of this adventure for good: delete it rather than strand it.
    if (!confirm("Start a new adventure? This one will be forgotten.")) return;
    const old = adventure;
    call("DELETE", `/sessions/${old.sessionId}`).catch(() => undefined);
  }
  forgetLocally();
  const created = await patiently(() => call("POST", "/sessions", { body: {} }));
  adventure = {
    sessionId: created.session_id,
    token: created.player_token,
    lastEventId: null,
    pending: null,
  };
  save(adventure);
  $("story").replaceChildren();
  show(true);
  connect();
  renderPanel(created.state);
  renderChoices(created.state.current_choices, false);
  $("choices").querySelector("button")?.focus();
}

async function play(body, shownAs) {
  if (!adventure || adventure.pending) return;
  const key = newKey(); // the same key on every retry: one turn, however often sent
  const cursor = adventure.lastEventId;
  const sessionId = adventure.sessionId;
  setWorking(true);
  try {
    const accepted = await patiently(() =>
      call("POST", `/sessions/${sessionId}/turns`, { body, idempotencyKey: key }),
    );
    if (!adventure || adventure.sessionId !== sessionId) return;
    const shown = document.querySelector(`#story li[data-turn="${CSS.escape(accepted.turn_id)}"]`);
    const told = shown && !shown.classList.contains("pending");
    if (told || accepted.status === "completed" || accepted.status === "failed") {
      // Told already: its end came on the stream before this answer, or it is a retry of a
      // turn whose first answer never arrived.
      setWorking(false);
      await refresh();
      focusChoice();
      return;
    }
    adventure.pending = { turnId: accepted.turn_id, action: shownAs, cursor };
    save(adventure);
    const heard = early.get(accepted.turn_id);
    if (heard) spoken.set(accepted.turn_id, heard.lines);
    tell(accepted.turn_id, shownAs, heard ? heard.raw : "", {
      pending: true,
      lines: heard ? heard.lines : null,
    });
    early.clear();
    watch(accepted.turn_id);
  } catch (error) {
    setWorking(false);
    if (error.code === "adventure_completed") {
      notice("This adventure has ended. Start a new one whenever you like.");
      await refresh();
    } else if (error.status === 404 || error.status === 401) {
      lost();
    } else {
      notice(`That did not work: ${error.message}`);
    }
  }
}

function focusChoice() {
  // Only when nothing else has the focus: never pull it out of the action box.
  if (document.activeElement && document.activeElement !== document.body) return;
  $("choices").querySelector("button")?.focus();
}

let refreshTimer = null;

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => adventure && refresh().catch(() => undefined), 200);
}

function finish(turnId, result, error) {
  if (!adventure) return;
  if (!adventure.pending || adventure.pending.turnId !== turnId) {
    // A turn this page did not send or no longer waits for (its POST's answer was lost in a
    // reload): show it, and bring the choices up to date.
    early.delete(turnId);
    if (result && !adventure.pending) {
      const said = storyItem(turnId, "").querySelector(".said").textContent;
      tell(turnId, said, result.narrative, { lines: result.lines });
      refreshSoon();
    }
    return;
  }
  const action = adventure.pending.action;
  adventure.pending = null;
  spoken.delete(turnId);
  save(adventure);
  setWorking(false);
  if (error) {
    tell(turnId, action, "");
    storyItem(turnId, action).classList.add("failed");
    notice(`That turn could not be told (${error.code}). Try again.`);
  } else {
    tell(turnId, action, result.narrative, { lines: result.lines });
    renderChoices(result.choices, result.choices.length === 0);
  }
  // The refresh redraws the choices, so the focus goes to them once it is done.
  focusChoice();
  refresh()
    .catch(() => undefined)
    .then(focusChoice);
}

// A second route to a turn's end, next to the stream: a long poll, so a turn in flight
// during a reload or a dropped connection is never left hanging.
async function watch(turnId) {
  const waiting = () => adventure && adventure.pending && adventure.pending.turnId === turnId;
  while (waiting()) {
    let turn;
    try {
      turn = await call("GET", `/sessions/${adventure.sessionId}/turns/${turnId}?wait=25`);
    } catch (error) {
      if (error.status === 404 || error.status === 401) return;
      await sleep(Math.max(error.retryAfter || 2, 1));
      continue;
    }
    // The player may have started another adventure while this poll was out.
    if (!waiting()) return;
    if (turn.status === "completed") return finish(turnId, turn.result, null);
    if (turn.status === "failed") return finish(turnId, null, turn.error);
  }
}

// ---------------------------------------------------------------------------------------
// The event stream

function connect(from = adventure.lastEventId) {
  if (source) source.close();
  clearTimeout(reconnectTimer);
  const opened = new EventSource(`/sessions/${adventure.sessionId}/events?${streamQuery(adventure, from)}`);
  source = opened;
  opened.onopen = () => {
    reconnectDelay = 1;
    clearNotice("stream");
  };
  opened.onerror = () => {
    if (source !== opened) return;
    notice("Lost the connection to the story. Reconnecting…", "stream");
    // EventSource reconnects by itself (sending Last-Event-ID) unless the server refused
    // (a 404 for a session that is gone, a 503, a 429): then find out which, and try again
    // later, waiting longer each time.
    if (opened.readyState === EventSource.CLOSED) reconnectLater();
  };
  const handle = (name, onEvent) =>
    opened.addEventListener(name, (event) => {
      adventure.lastEventId = event.lastEventId;
      save(adventure);
      onEvent(JSON.parse(event.data));
    });
  handle("turn.queued", () => undefined);
  handle("turn.started", () => undefined);
  handle("narration.delta", (data) => {
    if (!adventure.pending) {
      const heard = early.get(data.turn_id) || { raw: "", lines: [] };
      heard.raw += data.text;
      heardDelta(heard.lines, data);
      early.set(data.turn_id, heard);
      return;
    }
    if (adventure.pending.turnId !== data.turn_id) return;
    const told = storyItem(data.turn_id, adventure.pending.action).querySelector(".told");
    const lines = spoken.get(data.turn_id) || [];
    heardDelta(lines, data);
    spoken.set(data.turn_id, lines);
    tell(data.turn_id, adventure.pending.action, (told.dataset.raw || "") + data.text, {
      pending: true,
      lines,
    });
  });
  handle("turn.restarted", (data) => {
    early.delete(data.turn_id); // words of the attempt that starts over
    spoken.delete(data.turn_id);
    if (adventure.pending && adventure.pending.turnId === data.turn_id) {
      tell(data.turn_id, adventure.pending.action, "", { pending: true });
    }
  });
  handle("turn.completed", (data) => finish(data.turn_id, data.result, null));
  handle("turn.failed", (data) => finish(data.turn_id, null, data.error));
}

async function reconnectLater() {
  const sessionId = adventure.sessionId;
  try {
    await call("GET", `/sessions/${sessionId}`);
  } catch (error) {
    if (error.status === 404 || error.status === 401) {
      if (adventure && adventure.sessionId === sessionId) lost();
      return;
    }
    if (error.retryAfter) reconnectDelay = Math.max(reconnectDelay, error.retryAfter);
  }
  const wait = reconnectDelay;
  reconnectDelay = Math.min(reconnectDelay * 2, 30);
  reconnectTimer = setTimeout(() => adventure && adventure.sessionId === sessionId && connect(), wait * 1000);
}

// ---------------------------------------------------------------------------------------
// Start, resume, forget

function forgetLocally() {
  if (source) source.close();
  source = null;
  clearTimeout(reconnectTimer);
  early.clear();
  spoken.clear();
  setWorking(false); // a turn of the adventure let go of no longer keeps the page busy
  adventure = null;
  localStorage.removeItem(STORE);
}

function lost() {
  forgetLocally();
  show(false);
  notice("That adventure is no longer here (it ended long ago or was forgotten).");
}

async function forget() {
  if (!adventure || !confirm("Forget this adventure for good?")) return;
  try {
    await call("DELETE", `/sessions/${adventure.sessionId}`);
  } catch (error) {
    if (error.status !== 404) {
      notice(`Could not forget it: ${error.message}`);
      return;
    }
  }
  forgetLocally();
  $("story").replaceChildren();
  show(false);
  $("begin").focus();
}

async function resume() {
  adventure = saved();
  if (!adventure) return show(false);
  show(true);
  try {
    await refresh();
  } catch (error) {
    if (error.status === 404 || error.status === 401) return lost();
    notice(`Could not load the adventure: ${error.message}`);
    return;
  }
  if (adventure.pending) {
    // The stream picks up from before the turn was sent, so its narration is told again
    // from the first word (a turn in flight keeps all its events).
    spoken.delete(adventure.pending.turnId);
    tell(adventure.pending.turnId, adventure.pending.action, "", { pending: true });
    setWorking(true);
    watch(adventure.pending.turnId);
    connect(adventure.pending.cursor);
  } else {
    connect();
  }
}

function onKey(event) {
  const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement;
  const index = choiceForKey({ ...keyOf(event), typing });
  if (index === null) return;
  const button = document.querySelector(`#choices button[data-index="${index}"]`);
  if (button && !button.disabled) {
    event.preventDefault();
    button.click();
  }
}

function keyOf(event) {
  return { key: event.key, altKey: event.altKey, ctrlKey: event.ctrlKey, metaKey: event.metaKey };
}

// ---------------------------------------------------------------------------------------
// Themes and the reading mode, remembered in this browser

function applyTheme(stored) {
  const theme = themeToApply(stored);
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme; // the system's light or dark
  $("theme").value = theme || "system";
}

function applyReading(on) {
  document.documentElement.classList.toggle("reading", on);
  $("reading").setAttribute("aria-pressed", String(on));
}

function initLook() {
  const select = $("theme");
  select.replaceChildren(
    ...Object.entries(THEMES).map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      return option;
    }),
  );
  applyTheme(localStorage.getItem(THEME_STORE));
  select.addEventListener("change", () => {
    localStorage.setItem(THEME_STORE, select.value);
    applyTheme(select.value);
  });
  applyReading(localStorage.getItem(READING_STORE) === "on");
  $("reading").addEventListener("click", () => {
    const on = !document.documentElement.classList.contains("reading");
    localStorage.setItem(READING_STORE, on ? "on" : "off");
    applyReading(on);
  });
}

function init() {
  initLook();
  $("new-adventure").addEventListener("click", () => begin().catch((e) => notice(e.message)));
  $("begin").addEventListener("click", () => begin().catch((e) => notice(e.message)));
  $("forget").addEventListener("click", () => forget());
  $("story-close").addEventListener("click", () => $("story-dialog").close());
  $("action-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("action").value.trim();
    if (!text) return;
    $("action").value = "";
    play({ action: text }, text);
  });
  document.addEventListener("keydown", onKey);
  resume();
}

init();
