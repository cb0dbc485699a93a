"""The service's one typed configuration, read from the environment and `.env`.

Every process (gateway, worker, CLI, tests) builds a `Settings`; logic receives it as an
argument instead of reading `os.environ`.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigurationError
from shared.redis_urls import cluster_url, sentinel_target

__all__ = ["BackendKind", "Environment", "LLMEndpoint", "Settings", "get_settings"]


def _private_networks() -> list[IPv4Network | IPv6Network]:
    """Loopback and the private ranges (RFC 1918, IPv6 unique local)."""
    cidrs = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7"]
    return [ip_network(cidr) for cidr in cidrs]


class BackendKind(StrEnum):
    REDIS = "redis"
    MEMORY = "memory"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


Seconds = Annotated[float, Field(gt=0)]
PerMinute = Annotated[int, Field(gt=0)]


class LLMEndpoint(BaseModel):
    """A further endpoint for the narrator (`LLM_FALLBACKS`), with its own budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    protocol: Literal["auto", "openai", "anthropic"] = "auto"
    rpm: PerMinute | None = None
    tpm: PerMinute | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    debug: bool = False
    # Swagger UI (/docs) and ReDoc (/redoc) load their scripts from a CDN, on the origin that
    # holds the player's token: on in development, off in production unless set here.
    # /openapi.json is always served.
    api_docs: bool | None = None
    # Origins allowed to call the API from a browser (CORS), as a JSON list:
    # CORS_ORIGINS='["https://play.example.com"]'. Empty: no cross-origin access.
    cors_origins: list[str] = Field(default_factory=list)
    # Client networks that may read the gateway's /metrics, as a JSON list of CIDRs; any
    # other client gets 404, as for a route that does not exist. The default lets in loopback
    # and private networks (a Prometheus beside the service), not the public internet.
    metrics_allowed_networks: list[IPvAnyNetwork] = Field(default_factory=_private_networks)

    session_backend: BackendKind = BackendKind.REDIS
    redis_url: str = "redis://localhost:6379/0"
    redis_session_ttl: Annotated[int, Field(gt=0)] = 86400
    # Accepting a turn refreshes all of a session's keys only once their TTL has run down by
    # this much (at most half of REDIS_SESSION_TTL is used): a session lives between
    # REDIS_SESSION_TTL minus this and REDIS_SESSION_TTL after its last turn, and a turn
    # costs five store commands fewer. 0: every accepted turn refreshes every key.
    redis_session_ttl_slack: Annotated[int, Field(ge=0)] = 600
    # A session that has never had a turn accepted lives this long; its first turn gives it
    # REDIS_SESSION_TTL. Anonymous creation is cheap: abandoned ones must not fill the store.
    unplayed_session_ttl: Annotated[int, Field(gt=0)] = 900
    redis_socket_timeout: Seconds = 5.0
    redis_max_connections: Annotated[int, Field(gt=0)] = 50
    # Connections for waiting readers (each open SSE stream or long-poll holds one while it
    # waits): the number of such readers one process serves at once.
    redis_max_stream_connections: Annotated[int, Field(gt=0)] = 500
    # How new states and turn records are stored: compressed with a preset dictionary by
    # zlib or zstd, or "none"; values under the threshold (bytes) are stored as they are.
    # Every format is always read, so this may change on a live store. zstd: a fifth of
    # zlib's CPU for a state some turns in, for about 5 % more bytes (README, Compression).
    store_compression: Literal["zlib", "zstd", "none"] = "zstd"
    store_compression_threshold: Annotated[int, Field(ge=0)] = 48

    celery_broker_url: str | None = None
    celery_task_always_eager: bool = False
    celery_queue: str = "pocket_portals.turns"
    # The Redis broker re-delivers an unacknowledged task after this long: it bounds how long
    # the turns of a whole worker that died stay stuck. Turns must finish well before it (the
    # hard time limit is kept under it, checked below).
    celery_visibility_timeout: Annotated[int, Field(gt=0)] = 300
    # One task drains a session's turns for about this long, then hands the session to a
    # fresh task: task durations stay bounded however many turns keep arriving.
    drain_time_budget: Seconds = 30.0
    turn_time_limit: Seconds = 120.0
    # Threads that run flow steps in one worker process: the most turns it keeps in flight.
    # With the prefork pool each child runs one turn at a time; with `-P threads -c N` make
    # it at least N (the default covers N up to 256).
    worker_step_threads: Annotated[int, Field(ge=1, le=4096)] = 256
    # An LLM's narration is published in pieces at most this often (what came in between is
    # sent together): a reader sees words as they come, and a turn costs a few stream
    # writes instead of one per token chunk. 0 publishes every chunk.
    narration_delta_interval: Annotated[float, Field(ge=0, le=5)] = 0.1
    # SIGTERM lets running turns finish for this long; the rest go back to the queue.
    worker_shutdown_timeout: Annotated[float, Field(ge=0)] = 30.0

    # The lease only keeps two workers from paying for the same step; correctness comes from
    # the version-checked commit. A dead holder delays its session by at most lease_ttl.
    lease_ttl: Seconds = 15.0
    lease_retry_delay: Seconds = 1.0
    # Workers re-enqueue sessions whose turns have waited this long without progress (a
    # gateway that died between recording a turn and queueing it, a task that was lost).
    sweep_interval: Seconds = 10.0
    sweep_stale_after: Seconds = 30.0

    # A step that raises is tried again (with exponential backoff) up to this many attempts
    # in all, counting attempts that died with their worker; then the turn fails.
    turn_max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    turn_retry_backoff: Annotated[float, Field(ge=0)] = 0.5

    max_pending_turns: Annotated[int, Field(gt=0)] = 8
    # Turns accepted and not yet finished, all sessions together, before new ones get
    # 503 overloaded: a bound on how far behind the workers may fall. Counted atomically in
    # the session store by admission tickets, which every gateway process shares.
    max_queue_depth: Annotated[int, Field(gt=0)] = 10_000
    # Turns one client (address; an IPv6 client is its /64) may have accepted and not yet
    # finished across all its sessions; beyond it, 429 too_many_turns_in_flight, so a flood
    # of sessions from one client meets its own limit long before the service is full.
    # 0 turns the limit off.
    max_turns_in_flight_per_client: Annotated[int, Field(ge=0)] = 32
    # A ticket its turn never gave back (its gateway or worker died, its session was deleted)
    # lapses after this long. Longer than turns may wait in the queue: a ticket that lapses
    # while its turn still waits no longer counts against the bounds above.
    admission_ticket_ttl: Seconds = 3600.0
    # Requests per client (IP address) per minute, shared by every gateway process through
    # the session store; 0 turns the limit off.
    rate_limit_per_minute: Annotated[int, Field(ge=0)] = 600
    # New sessions per client per minute (an IPv6 client is its /64), apart from the request
    # budget above; 0 turns the limit off.
    session_create_per_minute: Annotated[int, Field(ge=0)] = 10
    # New sessions are refused (503 overloaded) while the session store uses more than this
    # share of its maxmemory (read from INFO, at most every STORE_MEMORY_CHECK_INTERVAL
    # seconds); players of existing sessions go on. 0 turns the guard off.
    session_store_memory_watermark: Annotated[float, Field(ge=0, le=1)] = 0.9
    store_memory_check_interval: Seconds = 1.0
    # Entries of conversation_history kept in the state (the narrator's memory).
    history_limit: Annotated[int, Field(ge=1)] = 20
    # Finished turns whose final event (turn.completed or turn.failed) a session keeps for
    # resuming streams; every event of a turn in flight is kept.
    events_maxlen: Annotated[int, Field(gt=0)] = 8
    # Events dropped from a session's stream are deleted where they lie; their memory stays
    # taken (inside a node of up to 100 entries) until the stream is rebuilt, once more than
    # this many may be lying there: fewer store commands per turn for a little memory
    # (0: rebuilt after every turn).
    events_rebuild_after: Annotated[int, Field(ge=0)] = 12
    # Records of the newest finished turns kept for polling, besides those of every turn
    # still pending (never pruned).
    turn_records_kept: Annotated[int, Field(gt=0)] = 12
    max_request_bytes: Annotated[int, Field(gt=0)] = 16 * 1024
    long_poll_max: Seconds = 30.0
    # /readyz answers within this long: each check (store, broker) that has not answered by
    # then counts as failed.
    readiness_timeout: Seconds = 2.0
    sse_ping_interval: Seconds = 15.0
    # Open event streams one gateway process keeps: per session (a new one beyond it closes
    # that session's oldest) and per client (a new one beyond it is 429 too_many_streams).
    sse_max_streams_per_session: Annotated[int, Field(gt=0)] = 4
    sse_max_streams_per_client: Annotated[int, Field(gt=0)] = 64

    max_turns: Annotated[int, Field(ge=5)] = 40
    # The narrator: "offline" (deterministic, no network) or "llm" (CrewAI agents on any
    # OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, an OpenRouter-style gateway).
    narrator: Literal["offline", "llm"] = "offline"
    llm_model: str = "openai/gpt-4o-mini"
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    # The key for `LLM_MODEL=anthropic/…` (and Anthropic fallbacks) when LLM_API_KEY is unset,
    # under the name Anthropic's own tools read.
    anthropic_api_key: SecretStr | None = None
    # The wire protocol: "auto" speaks Anthropic's Messages API for anthropic/<model> with no
    # LLM_BASE_URL (or Anthropic's own), chat completions otherwise; "anthropic" for a proxy
    # of the Messages API at LLM_BASE_URL; "openai" for chat completions whatever the name.
    llm_protocol: Literal["auto", "openai", "anthropic"] = "auto"
    llm_timeout: Seconds = 30.0
    # Completion tokens one turn may spend, all agents together.
    llm_max_tokens: Annotated[int, Field(ge=64)] = 600
    # Completion tokens the quest designer may spend writing a notice board's quests (on the
    # turns that fill the board, on top of LLM_MAX_TOKENS); 0 keeps the template quests.
    llm_design_max_tokens: Annotated[int, Field(ge=0)] = 900
    llm_temperature: Annotated[float, Field(ge=0, le=2)] = 0.8
    llm_retries: Annotated[int, Field(ge=0, le=5)] = 2
    llm_retry_backoff: Annotated[float, Field(ge=0)] = 0.5
    # When the LLM still fails after its retries: "offline" tells the turn with the offline
    # narrator (and says so in the result), "fail" ends the turn failed.
    llm_fallback: Literal["offline", "fail"] = "offline"
    # Provider limits, shared by every worker through the session store (per endpoint and
    # model): requests and tokens per minute (unset: none), and the longest a call waits for
    # its slot or a provider's Retry-After before the turn goes to the next endpoint.
    llm_rpm: PerMinute | None = None
    llm_tpm: PerMinute | None = None
    llm_max_wait: Seconds = 20.0
    # How much of a minute's budget may go out at once (seconds' worth).
    llm_burst_seconds: Seconds = 10.0
    # The circuit: this many failed calls in a row (within a minute) stop calls to the
    # endpoint for LLM_CIRCUIT_OPEN seconds; turns go to the next endpoint at once.
    llm_circuit_failures: Annotated[int, Field(ge=1)] = 5
    llm_circuit_open: Seconds = 30.0
    # Further endpoints tried in order when one is down, open or over budget, as a JSON list:
    # LLM_FALLBACKS='[{"model": "openai/llama3.1", "base_url": "http://ollama:11434/v1"}]'
    # (each may have "api_key", "rpm", "tpm"). Then LLM_FALLBACK decides.
    llm_fallbacks: list[LLMEndpoint] = Field(default_factory=list)
    # LLM tokens a session, and a client address (all its sessions), may use per UTC day
    # (unset: no limit). Past it, turns are told by the offline narrator and the result says
    # `narrator: offline_budget`: the service is a game, not a free general-purpose LLM.
    llm_tokens_per_session_per_day: Annotated[int, Field(gt=0)] | None = None
    llm_tokens_per_client_per_day: Annotated[int, Field(gt=0)] | None = None
    # Content safety: each action a player types (not a choice picked) is checked before the
    # rules see it; a flagged one becomes an in-story redirect. MODERATION_URL: an
    # OpenAI-compatible moderations endpoint (https://api.openai.com/v1/moderations), called
    # with MODERATION_API_KEY (else LLM_API_KEY, if the endpoint is on the LLM's host); unset,
    # or when it fails, a small built-in rule set decides. MODERATION=off skips the check.
    moderation: Literal["on", "off"] = "on"
    moderation_url: str | None = None
    moderation_api_key: SecretStr | None = None
    moderation_model: str = "omni-moderation-latest"
    moderation_timeout: Seconds = 5.0
    # An operator's YAML file over the LLM agents' roles and prompts (any field of any agent;
    # the service's own is shared/game/llm/config/agents.yaml). Checked at a worker's start.
    agents_file: Path | None = None
    # The jester speaks at most once in this many turns (when the seeded dice allow).
    jester_cooldown: Annotated[int, Field(ge=1)] = 3

    # Drills: the offline narrator pauses this long per turn (a slow LLM), and fails every
    # turn whose action contains NARRATOR_FAIL_ON (a broken one). Off by default.
    narrator_delay: Annotated[float, Field(ge=0)] = 0.0
    narrator_fail_on: str = ""

    crewai_storage_dir: Path = Path(".crewai").absolute()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # JSON lines for log collectors; "text" for a terminal (dev mode's default).
    log_format: Literal["json", "text"] = "json"
    # Prometheus multiprocess mode: where every process of a gateway with several processes
    # writes its samples (prometheus-client reads the same variable). Unset: one process.
    prometheus_multiproc_dir: Path | None = None
    # Traces (OpenTelemetry, shared/tracing.py): off unless the standard OTLP endpoint is set,
    # e.g. http://jaeger:4318; the SDK reads the other standard variables itself
    # (OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES, ...).
    otel_exporter_otlp_endpoint: str | None = None
    # The service name in traces; unset: pocket-portals-gateway / pocket-portals-worker.
    otel_service_name: str | None = None
    # Which store commands get a span of their own: "scripts" (the service's steps: admit,
    # accept, claim, commit, ... each one round trip), or "all" (every read and write too, at
    # about 0.1 ms of CPU each).
    trace_store_commands: Literal["scripts", "all"] = "scripts"
    # Each worker's main process serves its pool's metrics on this port (0: off).
    worker_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9808
    # A session counts as active (pocket_portals_active_sessions) this long after a turn.
    active_session_window: Seconds = 300.0
    # Touched by each worker's main process after every sweep (python -m worker.health).
    worker_heartbeat_file: Path = Path("/tmp/pocket-portals-worker.heartbeat")

    @model_validator(mode="after")
    def _check_production(self) -> Self:
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        if self.session_backend is BackendKind.MEMORY:
            problems.append("SESSION_BACKEND=memory (sessions would vanish with the process)")
        if self.celery_task_always_eager:
            problems.append("CELERY_TASK_ALWAYS_EAGER=true (turns would run in the gateway)")
        if "*" in self.cors_origins:
            problems.append("a wildcard in CORS_ORIGINS (any site could call the API)")
        if self.debug:
            problems.append("DEBUG=true")
        if problems:
            raise ConfigurationError(
                "ENVIRONMENT=production refuses to start with " + "; ".join(problems) + "."
            )
        return self

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.session_backend is BackendKind.MEMORY and not self.celery_task_always_eager:
            raise ConfigurationError(
                "SESSION_BACKEND=memory keeps sessions inside one process, so separate Celery "
                "workers could never see them. Set CELERY_TASK_ALWAYS_EAGER=true (dev mode) or "
                "use SESSION_BACKEND=redis with real workers."
            )
        if self.turn_time_limit >= self.celery_visibility_timeout:
            raise ConfigurationError(
                "TURN_TIME_LIMIT must be below CELERY_VISIBILITY_TIMEOUT, otherwise the broker "
                "hands a still-running turn to a second worker."
            )
        # Refuse a malformed Sentinel URL now, not on the first turn.
        sentinel_target(self.redis_url)
        sentinel_target(self.broker_url)
        if cluster_url(self.redis_url) is not None and not self.celery_broker_url:
            raise ConfigurationError(
                "REDIS_URL names a Redis Cluster, which Celery cannot use as a broker: set "
                "CELERY_BROKER_URL to a standalone (or Sentinel-managed) Redis."
            )
        if not self.crewai_storage_dir.is_absolute():
            object.__setattr__(self, "crewai_storage_dir", self.crewai_storage_dir.absolute())
        return self

    @property
    def serves_api_docs(self) -> bool:
        if self.api_docs is not None:
            return self.api_docs
        return self.environment is not Environment.PRODUCTION

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
