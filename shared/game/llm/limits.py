"""Provider limits shared by every worker that calls one LLM endpoint.

Hosted models enforce requests and tokens per minute per key. A worker holding 100 turns in
flight, times N workers, would each find that out alone, by 429s. Instead every call first
asks the endpoint's **gate**:

- **budget** (`LLM_RPM`, `LLM_TPM`): two token buckets (GCRA: a "theoretical arrival time"
  per bucket, a burst of `LLM_BURST_SECONDS` of budget). A call is scheduled, not refused: the
  gate answers how long to wait for its slot and books it, so the fleet's calls go out at the
  budget's pace in the order they asked. Tokens are booked at the call's estimate (prompt
  characters / 4 + its `max_tokens`) and settled to what the reply used;
- **cool-down**: a provider's `Retry-After` (on a `429`/`503`) holds every call to the
  endpoint until it passes, fleet-wide;
- **circuit**: `LLM_CIRCUIT_FAILURES` failures in a row (within a minute) open it for
  `LLM_CIRCUIT_OPEN` seconds: calls are refused at once, so turns go to the next endpoint or
  the offline voice instead of each timing out. When it closes, one more failure opens it
  again; a success resets the count.

A wait beyond `LLM_MAX_WAIT` is refused rather than booked. `EndpointState` holds the math,
pure, on a clock of milliseconds; `LocalGate` keeps it in the process (dev mode, a memory
backend), `shared.backends.provider_gate.RedisGate` in the store, shared by the fleet (the
same math in one Lua script, on the store's clock).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Admission",
    "Budget",
    "EndpointState",
    "GateLimits",
    "LocalGate",
    "ProviderGate",
    "endpoint_id",
]

FAILURE_WINDOW_MS = 60_000


def endpoint_id(base_url: str, model: str) -> str:
    """A short stable name for an endpoint and model (store keys, metric labels)."""
    return hashlib.sha256(f"{base_url}|{model}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Budget:
    """One endpoint's provider limits, per minute (None: none)."""

    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class GateLimits:
    max_wait: float = 20.0
    burst: float = 10.0  # seconds of budget that may go at once
    circuit_failures: int = 5
    circuit_open: float = 30.0


@dataclass(frozen=True)
class Admission:
    wait: float  # seconds to wait before calling (the slot is booked)
    refused: str | None = None  # "circuit_open" or "over_budget": do not call
    reason: str = ""  # what the wait is for: "budget" or "cooldown"


class ProviderGate(Protocol):
    """Called from step threads, around each LLM call to an endpoint."""

    def admit(self, endpoint: str, tokens: int, budget: Budget) -> Admission: ...

    def settle(self, endpoint: str, booked: int, used: int, budget: Budget) -> None: ...

    def failed(self, endpoint: str, retry_after: float | None) -> None: ...

    def succeeded(self, endpoint: str) -> None: ...


@dataclass
class EndpointState:
    """One endpoint's gate, in milliseconds of a clock every caller shares."""

    req_tat: float = 0.0
    tok_tat: float = 0.0
    cooldown_until: float = 0.0
    open_until: float = 0.0
    failures: int = 0
    failed_at: float = 0.0

    def admit(self, now: float, tokens: int, budget: Budget, limits: GateLimits) -> Admission:
        if self.open_until > now:
            return Admission((self.open_until - now) / 1000, "circuit_open")
        start = max(now, self.cooldown_until)
        burst = limits.burst * 1000
        at, req_cost, tok_cost = start, 0.0, 0.0
        if budget.rpm:
            req_cost = 60_000 / budget.rpm
            at = max(at, self.req_tat - max(burst, req_cost) + req_cost)
        if budget.tpm:
            tok_cost = tokens * 60_000 / budget.tpm
            cap = max(burst, tok_cost)
            at = max(at, self.tok_tat - cap + min(tok_cost, cap))
        wait = (at - now) / 1000
        reason = "cooldown" if self.cooldown_until > now and at == start else "budget"
        if wait > limits.max_wait:
            return Admission(wait, "over_budget", reason)
        if budget.rpm:
            self.req_tat = max(self.req_tat, at) + req_cost
        if budget.tpm:
            self.tok_tat = max(self.tok_tat, at) + tok_cost
        return Admission(max(0.0, wait), None, reason if wait > 0 else "")

    def settle(self, now: float, booked: int, used: int, budget: Budget) -> None:
        if budget.tpm and used != booked:
            self.tok_tat = max(now, self.tok_tat + (used - booked) * 60_000 / budget.tpm)

    def failed(self, now: float, retry_after: float | None, limits: GateLimits) -> None:
        if retry_after is not None:
            self.cooldown_until = max(self.cooldown_until, now + retry_after * 1000)
        if now - self.failed_at > FAILURE_WINDOW_MS and self.open_until <= self.failed_at:
            self.failures = 0
        self.failures += 1
        self.failed_at = now
        if self.failures >= limits.circuit_failures:
            self.open_until = now + limits.circuit_open * 1000
            self.failures = limits.circuit_failures - 1  # half-open: one failure reopens it

    def succeeded(self) -> None:
        self.failures = 0


class LocalGate:
    """The gate in this process only: for dev mode and a memory backend, where there is no
    fleet to share it with."""

    def __init__(self, limits: GateLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._endpoints: dict[str, EndpointState] = {}

    def _now(self) -> float:
        return time.time() * 1000

    def _state(self, endpoint: str) -> EndpointState:
        return self._endpoints.setdefault(endpoint, EndpointState())

    def admit(self, endpoint: str, tokens: int, budget: Budget) -> Admission:
        with self._lock:
            return self._state(endpoint).admit(self._now(), tokens, budget, self.limits)

    def settle(self, endpoint: str, booked: int, used: int, budget: Budget) -> None:
        with self._lock:
            self._state(endpoint).settle(self._now(), booked, used, budget)

    def failed(self, endpoint: str, retry_after: float | None) -> None:
        with self._lock:
            self._state(endpoint).failed(self._now(), retry_after, self.limits)

    def succeeded(self, endpoint: str) -> None:
        with self._lock:
            self._state(endpoint).succeeded()
