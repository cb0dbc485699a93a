"""A turn as the service tracks it: request, status and outcome."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# Turn records are read by every process of a deployment, of whatever version: a field a newer
# version writes is ignored by an older one (extra="ignore") rather than failing its reads.

__all__ = [
    "AgentTokens",
    "SpokenLine",
    "TokenUsage",
    "TurnError",
    "TurnRecord",
    "TurnResult",
    "TurnStatus",
]


class TurnStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TurnStatus.COMPLETED, TurnStatus.FAILED)


class AgentTokens(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0


class TokenUsage(BaseModel):
    """An LLM turn's (or call's) tokens: in all, and per agent that spoke; the model that
    answered (the last, when a turn went to a fallback endpoint) and the Narrator's time to
    first token (seconds, streamed replies)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    model: str | None = None
    time_to_first_token: float | None = None
    agents: dict[str, AgentTokens] = Field(default_factory=dict)

    def __add__(self, other: TokenUsage) -> TokenUsage:
        agents = dict(self.agents)
        for name, tokens in other.agents.items():
            mine = agents.get(name, AgentTokens())
            agents[name] = AgentTokens(
                prompt_tokens=mine.prompt_tokens + tokens.prompt_tokens,
                completion_tokens=mine.completion_tokens + tokens.completion_tokens,
            )
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            model=other.model or self.model,
            time_to_first_token=(
                other.time_to_first_token
                if other.time_to_first_token is not None
                else self.time_to_first_token
            ),
            agents=agents,
        )

    def by(self, agent: str) -> TokenUsage:
        """This usage, as spoken by `agent`."""
        tokens = AgentTokens(
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens
        )
        return self.model_copy(update={"agents": {agent: tokens}})


class SpokenLine(BaseModel):
    """What one agent said in a turn (`narrator`, `keeper`, `innkeeper`, `jester`,
    `chronicler`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    speaker: str
    text: str


class TurnResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    narrative: str
    choices: list[str]
    state_version: int = Field(ge=0)
    # Who told it: "offline", "llm", or "offline_fallback" (the LLM failed; see docs/api.md).
    narrator: str = "offline"
    usage: TokenUsage | None = None
    # Each agent's words in the order the narrative tells them ("\n\n" between them).
    lines: list[SpokenLine] = Field(default_factory=list)


class TurnError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str
    message: str


class TurnRecord(BaseModel):
    """Stored per turn. `action` is what the worker applies: for a choice, the text of the
    choice the player saw when the gateway accepted it (later turns may change the list)."""

    model_config = ConfigDict(extra="ignore")

    turn_id: str
    session_id: str
    status: TurnStatus = TurnStatus.QUEUED
    action: str
    choice_index: int | None = None
    accepted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    result: TurnResult | None = None
    error: TurnError | None = None
    # The request id of the POST that accepted it: the worker logs the turn's lines with it,
    # so one id follows a turn from the gateway through the worker.
    correlation_id: str | None = None
    # Who sent it, as the gateway's per-client budgets name them (a hash, not the address):
    # the worker counts the turn's LLM tokens against that client's daily budget.
    client: str | None = None
    # The W3C trace context of the request that accepted it (traces on): the worker's spans
    # for the turn join that trace, whichever task runs it (shared/tracing.py).
    traceparent: str | None = None

    def next_attempt(self, started_at: float | None) -> TurnRecord:
        """The record while its next attempt runs, started at `started_at` (None: not known
        yet, for a first attempt's record made ahead, when the turn is accepted)."""
        return self.model_copy(
            update={
                "status": TurnStatus.RUNNING,
                "started_at": started_at,
                "attempts": self.attempts + 1,
            }
        )
