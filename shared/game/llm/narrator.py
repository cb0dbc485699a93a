"""`LLMNarrator`: the original game's agents on an LLM, behind the `Narrator` interface.

Per turn, after the rules have decided what happened, the agents `rules.agents.agents_for`
routes to speak, each as an `LLMVoice` (the `Voice` interface of the offline voices):

- the **Game Keeper** (when dice were rolled or a fight is on) states the mechanical outcome
  in a sentence;
- the **Innkeeper** (the creation interview, quests on offer) asks or hooks in a line;
- **The Jester** (now and then: seeded dice, and a cooldown of `JESTER_COOLDOWN` turns) adds a
  quip;
- the **Chronicler** (the epilogue turn) recalls the adventure's moments;
- the **Narrator** (always, last) tells the turn, seeing the game state, what happened, and
  the others' words, then rewords the rules' choices. Its reply is streamed to the player as
  it is generated.

The narrator is asked for a structured reply (`narrative`, `###`, numbered choices) and
`reply.parse_reply` reads whatever shape it answers in; choices that do not match the rules'
in number, or that could have been planted, are dropped for the rules' own words; an empty
narrative is replaced by the offline narrator's. Player text and the model's earlier words
reach the prompts only inside `fence.fenced`, and every role says fenced text is data. When
the LLM keeps failing, `LLM_FALLBACK` decides: the offline narrator tells the turn (the result
says so), or the turn fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from shared.errors import NarratorUnavailable
from shared.game.dice import Dice
from shared.game.llm.agents_config import AgentConfig, load_agents
from shared.game.llm.client import ChatClient
from shared.game.llm.fence import DATA_NOTICE, clean_text, fenced
from shared.game.llm.quest_designer import (
    QUESTS_REJECTED,
    design_prompt,
    designer_due,
    read_designed,
)
from shared.game.llm.reply import ParsedReply
from shared.game.llm.streaming import ReplyStream
from shared.game.narrator import Narration, NarrationStream, OfflineNarrator
from shared.game.rules import Outcome
from shared.game.rules.agents import Agent, agents_for
from shared.game.rules.ending import chronicle
from shared.game.rules.interview import next_question, question_text
from shared.game.rules.quests import quest_choices
from shared.game.rules.safety import REDIRECTED
from shared.game.voices import Scene
from shared.models import GamePhase, GameState, Quest, TokenUsage
from shared.settings import Settings

__all__ = ["LLMNarrator", "LLMVoice", "narrator_prompt"]

# Phases whose choices the rules match word for word: an LLM may not reword them.
_LITERAL_PHASES = {GamePhase.CHARACTER_CREATION, GamePhase.QUEST_SELECTION}

REDIRECT_CUE = (
    "The player's action was set aside by the content check and is not shown to you. Do not "
    "guess at it, repeat it or describe it; in a sentence or two, gently steer the story back "
    "to the hero's quest, in the tale's own voice, without scolding."
)
_WITHHELD = "(withheld)"


def _keeper_prompt(config: AgentConfig, scene: Scene) -> str:
    return config.prompt.format(rolls="; ".join(scene.outcome.checks or scene.outcome.facts))


def _jester_prompt(config: AgentConfig, scene: Scene) -> str:
    return config.prompt.format(
        action=fenced("player_action", scene.action), happened=" ".join(scene.outcome.facts)
    )


def _innkeeper_prompt(config: AgentConfig, scene: Scene) -> str:
    state = scene.state
    draft = state.character_draft
    if state.phase is GamePhase.CHARACTER_CREATION and config.interview is not None:
        question = next_question(draft) if draft is not None else None
        asked = question_text(question) if question else "who they are, with a warm greeting"
        return config.interview.format(question=asked)
    quests = "; ".join(f"{q.title}: {q.description}" for q in state.quest_options)
    return config.prompt.format(quests=quests or "none today")


def _chronicler_prompt(config: AgentConfig, scene: Scene) -> str:
    state = scene.state
    return config.prompt.format(
        context=_context(state),
        fate="fell in battle" if state.health_current == 0 else "lived to tell it",
        moments="; ".join(m.text for m in chronicle(state)) or "a short, quiet road",
    )


class LLMVoice:
    """One agent on the LLM, on the offline voices' interface: its configured role and
    prompt template (`agents_config`) filled from the scene, and a share of the turn's token
    budget."""

    def __init__(
        self,
        turn: _Turn,
        agent: Agent,
        config: AgentConfig,
        prompt: Callable[[AgentConfig, Scene], str],
    ) -> None:
        self.turn = turn
        self.agent = agent
        self.config = config
        self.prompt = prompt

    def speak(self, scene: Scene) -> str:
        # One line of visible text: model output, which the Narrator's prompt quotes.
        config = self.config
        said = self.turn.ask(self.agent, config.system, self.prompt(config, scene), config.share)
        return clean_text(said, 400)


# How each supporting agent's prompt is filled in from the scene.
_PROMPTS: dict[Agent, Callable[[AgentConfig, Scene], str]] = {
    Agent.KEEPER: _keeper_prompt,
    Agent.INNKEEPER: _innkeeper_prompt,
    Agent.JESTER: _jester_prompt,
    Agent.CHRONICLER: _chronicler_prompt,
}


def _context(state: GameState) -> str:
    sheet = state.character_sheet
    hero = (
        f"{fenced('hero_name', sheet.name, 60)}, a {sheet.race} {sheet.character_class}"
        if sheet
        else "a new adventurer"
    )
    quest = state.active_quest.title if state.active_quest else "none yet"
    recent = " / ".join(h.narrative[:200] for h in state.conversation_history[-2:])
    return (
        f"Hero: {hero}. Health {state.health_current}/{state.health_max}. "
        f"Location: {state.location}. Quest: {quest}. Phase: {state.phase.value}, "
        f"story arc: {state.adventure_phase.value}, turn {state.adventure_turn} of "
        f"{state.max_turns}. Recently: "
        f"{fenced('recent_story', recent, 420) if recent else 'the story begins'}."
    )


def narrator_prompt(
    config: AgentConfig,
    state: GameState,
    action: str,
    happened: str,
    notes: list[str],
    *,
    redirected: bool = False,
) -> str:
    """The Narrator's prompt from its template: the game's context, the player's action
    (fenced), what the rules decided, the other agents' words, and the options to reword (or
    the epilogue cue). For a turn the moderation step redirected, the action is withheld and
    the Narrator is told to steer back."""
    options = "\n".join(f"{n}. {c}" for n, c in enumerate(state.current_choices, start=1))
    ending = (
        "The story ends with this turn: write its epilogue from the Chronicler's record."
        if state.adventure_completed
        else f"The player's options now:\n{options}"
    )
    told = [*notes, REDIRECT_CUE] if redirected else notes
    prompt = config.prompt.format(
        context=_context(state),
        action=_WITHHELD if redirected else fenced("player_action", action),
        happened=happened,
        notes="\n".join(told),
        options=options,
        ending=ending,
    )
    # An agent that said nothing leaves no blank line behind.
    return "\n".join(line for line in prompt.split("\n") if line.strip())


class _Turn:
    """One turn's conversation with the agents: its budget, usage and stream."""

    def __init__(self, client: ChatClient, stream: NarrationStream, budget: int) -> None:
        self.client = client
        self.stream = stream
        self.budget = budget
        self.usage = TokenUsage()

    def ask(self, agent: Agent, role: str, content: str, share: float) -> str:
        tokens = max(32, int(self.budget * share))
        reply = self.client.complete(
            [
                {"role": "system", "content": f"{role} {DATA_NOTICE}"},
                {"role": "user", "content": content},
            ],
            max_tokens=tokens,
            on_wait=self.stream.waiting,
            agent=agent.value,
        )
        self.usage = self.usage + reply.usage
        self.budget -= reply.usage.completion_tokens or tokens
        return reply.text.strip()

    def design(self, system: str, content: str, max_tokens: int) -> str:
        """The quest designer's answer: its own token limit, outside the turn's budget."""
        reply = self.client.complete(
            [
                {"role": "system", "content": f"{system} {DATA_NOTICE}"},
                {"role": "user", "content": content},
            ],
            max_tokens=max_tokens,
            on_wait=self.stream.waiting,
            agent=Agent.QUEST_DESIGNER.value,
        )
        self.usage = self.usage + reply.usage
        return reply.text

    def tell(self, system: str, content: str, expected: int, player_text: str) -> ParsedReply:
        """The Narrator's reply to `content`, its narrative streamed as it is generated."""
        reader = ReplyStream()
        streamed = False

        def on_chunk(chunk: str) -> None:
            nonlocal streamed
            piece = reader.feed(chunk)
            if piece:
                streamed = True
                self.stream.delta(piece)

        def on_retry(attempt: int) -> None:
            nonlocal reader, streamed
            if streamed:
                self.stream.restart("llm_retry")
            reader, streamed = ReplyStream(), False

        reply = self.client.complete(
            [
                {"role": "system", "content": f"{system} {DATA_NOTICE}"},
                {"role": "user", "content": content},
            ],
            max_tokens=max(64, self.budget),
            on_chunk=on_chunk,
            on_retry=on_retry,
            on_wait=self.stream.waiting,
            agent=Agent.NARRATOR.value,
        )
        self.usage = self.usage + reply.usage
        if not reader.received:  # a server that ignored streaming: the whole reply at once
            on_chunk(reply.text)
        finished = reader.finish(expected, player_text)
        if finished.restart:
            self.stream.restart("llm_reformatted")
        if finished.last:
            self.stream.delta(finished.last)
        return finished.reply


class LLMNarrator:
    def __init__(
        self,
        client: ChatClient,
        settings: Settings,
        stream: NarrationStream,
        fallback: OfflineNarrator | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.stream = stream
        self.fallback = fallback or OfflineNarrator()
        self.agents = load_agents(settings.agents_file)

    def narrate(self, state: GameState, action: str, outcome: Outcome, dice: Dice) -> Narration:
        turn = _Turn(self.client, self.stream, self.settings.llm_max_tokens)
        # Chosen once: an offline fallback tells the turn with the same agents.
        crew = agents_for(state, outcome, dice, cooldown=self.settings.jester_cooldown)
        scene = Scene(state, action, outcome, dice)
        try:
            return self._narrate(turn, scene, crew)
        except NarratorUnavailable:
            if self.settings.llm_fallback == "fail":
                raise
            return self._fall_back(turn, scene, crew)

    def _design(self, turn: _Turn, scene: Scene) -> tuple[Scene, tuple[Quest, ...] | None, bool]:
        """The scene with the designer's quests on the board, when this turn fills it and the
        designer's answer passes the rules' checks; whether it was refused."""
        limit = self.settings.llm_design_max_tokens
        if not limit or not designer_due(scene.state, scene.outcome):
            return scene, None, False
        config = self.agents.quest_designer
        answer = turn.design(
            config.system, design_prompt(config.prompt, scene.state, _context(scene.state)), limit
        )
        designed = read_designed(answer, scene.state)
        if designed is None:
            return scene, None, True
        state = scene.state.model_copy(
            update={"quest_options": designed, "current_choices": quest_choices(designed)}
        )
        return replace(scene, state=state), tuple(designed), False

    def _narrate(self, turn: _Turn, scene: Scene, crew: list[Agent]) -> Narration:
        scene, quests, rejected = self._design(turn, scene)
        state, action, outcome, dice = scene.state, scene.action, scene.outcome, scene.dice
        spoken: list[tuple[str, str]] = []
        notes: list[str] = []
        for agent in crew:
            if agent is Agent.NARRATOR:
                continue
            config = getattr(self.agents, agent.value)
            said = LLMVoice(turn, agent, config, _PROMPTS[agent]).speak(scene)
            if said:  # an agent with nothing to say is not shown, nor quoted
                spoken.append((agent.value, f"{config.label}: {said}"))
                # Quoted to the Narrator as data: the Jester may have echoed the player.
                notes.append(f"{config.label}: {fenced('agent_words', said, 400)}")
        canonical = state.current_choices
        prompt = narrator_prompt(
            self.agents.narrator,
            state,
            action,
            " ".join(outcome.facts),
            notes,
            redirected=outcome.kind == REDIRECTED,
        )
        literal = state.phase in _LITERAL_PHASES
        reply = turn.tell(
            self.agents.narrator.system, prompt, 0 if literal else len(canonical), action
        )
        if reply.narrative:
            # The Narrator's story first (streamed as it came), then the others' words.
            lines = (("narrator", reply.narrative), *spoken)
            self._tell_lines(lines[1:], after_others=True)
        else:  # garbage or silence: the offline words
            lines = self.fallback.narrate(state, action, outcome, dice, crew).lines
            self._tell_lines(lines)
        return Narration(
            "\n\n".join(text for _, text in lines),
            choices=reply.choices,
            source="llm",
            repairs=(*reply.repairs, QUESTS_REJECTED) if rejected else reply.repairs,
            quests=quests,
            usage=turn.usage,
            jester_spoke=Agent.JESTER in crew,
            agents=tuple(agent.value for agent in crew),
            lines=lines,
        )

    def _tell_lines(self, lines: tuple[tuple[str, str], ...], after_others: bool = False) -> None:
        for number, (speaker, text) in enumerate(lines):
            self.stream.delta(("\n\n" if number or after_others else "") + text, speaker)

    def _fall_back(self, turn: _Turn, scene: Scene, crew: list[Agent]) -> Narration:
        self.stream.restart("offline_fallback")
        narration = self.fallback.narrate(
            scene.state, scene.action, scene.outcome, scene.dice, crew
        )
        self._tell_lines(narration.lines)
        return Narration(
            narration.narrative,
            source="offline_fallback",
            usage=turn.usage,
            jester_spoke=narration.jester_spoke,
            agents=narration.agents,
            lines=narration.lines,
        )
