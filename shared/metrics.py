"""The service's Prometheus metrics: names, units and labels in one place.

Gateway processes serve them on `GET /metrics`. Worker processes are Celery prefork
children, so the workers use prometheus-client's multiprocess mode: every process writes its
samples to files under `PROMETHEUS_MULTIPROC_DIR` and each worker's main process serves the
aggregate on `WORKER_METRICS_PORT` (see `worker.metrics`). Names follow Prometheus
conventions: `_total` counters, `_seconds` histograms, base units.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.directories import ensure_directory
from shared.settings import get_settings

__all__ = [
    "ACTIVE_SESSIONS",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_SECONDS",
    "LLM_CALL_SECONDS",
    "LLM_REPLY_REPAIRS",
    "LLM_TIME_TO_FIRST_TOKEN",
    "LLM_TOKENS",
    "LLM_WAITS",
    "MODERATION_ERRORS",
    "MODERATION_FLAGGED",
    "ORPHANED_LEASES_RELEASED",
    "QUEUE_DEPTH",
    "STORE_MAXMEMORY_BYTES",
    "STORE_USED_MEMORY_BYTES",
    "WORKER_HEARTBEAT",
    "RATE_LIMIT_FAILED_OPEN",
    "SESSIONS_CREATED",
    "TURNS_ACCEPTED",
    "TURNS_COMPLETED",
    "TURNS_DEDUPLICATED",
    "TURNS_FAILED",
    "TURNS_RETRIED",
    "TURN_PROCESSING_SECONDS",
    "TURN_QUEUE_WAIT_SECONDS",
]

# In multiprocess mode prometheus-client opens a file for a metric as soon as it is defined,
# so a missing directory would fail the import of this module (a worker crash loop in a
# fresh container): make it first, or refuse with the setting's name.
if (_multiproc_dir := get_settings().prometheus_multiproc_dir) is not None:
    ensure_directory(_multiproc_dir, "PROMETHEUS_MULTIPROC_DIR")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# A turn with an LLM narrator takes seconds; with the offline one, milliseconds.
_TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)

# -- gateway ---------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "pocket_portals_http_requests_total",
    "HTTP requests answered by the gateway, by route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "pocket_portals_http_request_duration_seconds",
    "Time from a request's arrival to the start of its response (SSE: to the first byte).",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
RATE_LIMIT_FAILED_OPEN = Counter(
    "pocket_portals_rate_limit_failed_open_total",
    "Requests let through unlimited because the session store refused the limiter's count.",
)
SESSIONS_CREATED = Counter("pocket_portals_sessions_created_total", "Sessions created.")
TURNS_ACCEPTED = Counter("pocket_portals_turns_accepted_total", "Turns accepted (202).")
TURNS_DEDUPLICATED = Counter(
    "pocket_portals_turns_deduplicated_total",
    "Turn submissions answered with an earlier turn (same Idempotency-Key and body).",
)
ACTIVE_SESSIONS = Gauge(
    "pocket_portals_active_sessions",
    "Sessions with a turn accepted within ACTIVE_SESSION_WINDOW seconds (all gateways).",
    # Each gateway process samples the same shared figure: the newest sample is the truth.
    multiprocess_mode="mostrecent",
)
QUEUE_DEPTH = Gauge(
    "pocket_portals_queue_depth",
    "Tasks waiting in the broker queue (what to scale workers on), sampled at most once a second.",
    multiprocess_mode="mostrecent",
)

STORE_USED_MEMORY_BYTES = Gauge(
    "pocket_portals_store_used_memory_bytes",
    "Memory the session store uses (Redis used_memory; a cluster's fullest node), sampled when "
    "the gateway is scraped.",
    multiprocess_mode="mostrecent",
)
STORE_MAXMEMORY_BYTES = Gauge(
    "pocket_portals_store_maxmemory_bytes",
    "The session store's memory limit (Redis maxmemory; 0: none), sampled with its use.",
    multiprocess_mode="mostrecent",
)
# -- workers ---------------------------------------------------------------------------------
TURNS_COMPLETED = Counter("pocket_portals_turns_completed_total", "Turns applied.")
WORKER_HEARTBEAT = Gauge(
    "pocket_portals_worker_heartbeat_timestamp_seconds",
    "When the worker's main process last finished a sweeper pass (which needs the session "
    "store): the same beat as WORKER_HEARTBEAT_FILE.",
    multiprocess_mode="max",
)
TURNS_FAILED = Counter(
    "pocket_portals_turns_failed_total", "Turns that ended failed, by error code.", ["code"]
)
TURNS_RETRIED = Counter(
    "pocket_portals_turns_retried_total",
    "Attempts of a turn after its first (a worker died, or the step raised).",
)
ORPHANED_LEASES_RELEASED = Counter(
    "pocket_portals_orphaned_leases_released_total",
    "Session leases released by a worker's main process when the pool process holding one died.",
)
TURN_QUEUE_WAIT_SECONDS = Histogram(
    "pocket_portals_turn_queue_wait_seconds",
    "Time from a turn's acceptance to the start of its first attempt.",
    buckets=_TURN_BUCKETS,
)
TURN_PROCESSING_SECONDS = Histogram(
    "pocket_portals_turn_processing_seconds",
    "Time from an attempt's start to the turn's commit, by narrator.",
    ["narrator"],
    buckets=_TURN_BUCKETS,
)
LLM_REPLY_REPAIRS = Counter(
    "pocket_portals_llm_reply_repairs_total",
    "Repairs made to LLM narrator replies so the player reads clean narration, by kind "
    "(agent_scaffolding, markdown_fence, json_object, preamble, choice_count, …).",
    ["kind"],
)
MODERATION_FLAGGED = Counter(
    "pocket_portals_moderation_flagged_total",
    "Typed actions the moderation step turned into an in-story redirect, by category and by "
    "the check that flagged them (rules, endpoint).",
    ["category", "source"],
)
MODERATION_ERRORS = Counter(
    "pocket_portals_moderation_errors_total",
    "Calls to the moderation endpoint that failed (the built-in rules decided instead).",
)
LLM_WAITS = Counter(
    "pocket_portals_llm_waits_total",
    "LLM calls that waited for the fleet's provider budget (budget) or a provider's "
    "Retry-After (cooldown).",
    ["reason"],
)
LLM_TOKENS = Counter(
    "pocket_portals_llm_tokens_total",
    "LLM tokens used, by model, agent and kind (prompt, completion).",
    ["model", "agent", "kind"],
)
LLM_CALL_SECONDS = Histogram(
    "pocket_portals_llm_call_seconds",
    "Time one LLM call took, from request to the reply's end, by model and agent.",
    ["model", "agent"],
    buckets=_TURN_BUCKETS,
)
LLM_TIME_TO_FIRST_TOKEN = Histogram(
    "pocket_portals_llm_time_to_first_token_seconds",
    "Time from a streamed LLM request to its first piece of text, by model.",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
