"""`RedisGate`: the LLM provider gate (`shared.game.llm.limits`) kept in the session store, so
every worker of the fleet draws on one budget, one cool-down and one circuit per endpoint.

Each endpoint is one hash (`pocket_portals:llm:{<endpoint id>}`, one slot in a cluster) and
each step one Lua script: the same math as `EndpointState`, on the store's clock (`TIME`), so
workers on hosts whose clocks differ still share one schedule. The hash lives an hour past its
last use.

Called from step threads with a synchronous client of its own (the worker's event loop is
not theirs to block). When the store cannot be reached the gate lets the call through: the
provider's own limits still hold, and a turn is not failed for want of a counter.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import redis.exceptions

from shared.game.llm.limits import (
    FAILURE_WINDOW_MS,
    Admission,
    Budget,
    GateLimits,
)
from shared.tracing import store_script

__all__ = ["RedisGate", "gate_key"]

logger = logging.getLogger(__name__)

_KEEP_MS = 3_600_000

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function num(field)
  return tonumber(redis.call('HGET', KEYS[1], field) or '0') or 0
end
"""

# ARGV: tokens, rpm (0: none), tpm (0: none), max_wait_ms, burst_ms, keep_ms
# -> {wait_ms, refused ('' or reason), reason}. The hash's fields in one read; its TTL moves
# only with what is written (an endpoint with no budget has only its failures to keep, and
# FAILED gives those their own).
ADMIT = (
    _NOW
    + """
local stored = redis.call('HMGET', KEYS[1], 'ou', 'cd', 'rt', 'tt')
local function field(i) return tonumber(stored[i] or '0') or 0 end
local tokens, rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_wait, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
local open_until = field(1)
if open_until > now then
  return {tostring(open_until - now), 'circuit_open', ''}
end
local cooldown = field(2)
local start = math.max(now, cooldown)
local at, req_cost, tok_cost = start, 0, 0
local req_tat, tok_tat = field(3), field(4)
if rpm > 0 then
  req_cost = 60000 / rpm
  at = math.max(at, req_tat - math.max(burst, req_cost) + req_cost)
end
if tpm > 0 then
  tok_cost = tokens * 60000 / tpm
  local cap = math.max(burst, tok_cost)
  at = math.max(at, tok_tat - cap + math.min(tok_cost, cap))
end
local wait = at - now
local reason = 'budget'
if cooldown > now and at == start then reason = 'cooldown' end
if wait > max_wait then
  return {tostring(wait), 'over_budget', reason}
end
local booked = {}
if rpm > 0 then
  booked[#booked + 1] = 'rt'
  booked[#booked + 1] = tostring(math.max(req_tat, at) + req_cost)
end
if tpm > 0 then
  booked[#booked + 1] = 'tt'
  booked[#booked + 1] = tostring(math.max(tok_tat, at) + tok_cost)
end
if #booked > 0 then
  redis.call('HSET', KEYS[1], unpack(booked))
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
if wait <= 0 then return {'0', '', ''} end
return {tostring(wait), '', reason}
"""
)

# ARGV: booked, used, tpm
SETTLE = (
    _NOW
    + """
local tpm = tonumber(ARGV[3])
local delta = tonumber(ARGV[2]) - tonumber(ARGV[1])
if tpm > 0 and delta ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'tt', tostring(math.max(now, num('tt') + delta * 60000 / tpm)))
end
return 1
"""
)

# ARGV: pause_ms (-1: no cool-down), threshold, open_ms, window_ms, keep_ms
FAILED = (
    _NOW
    + """
local pause = tonumber(ARGV[1])
if pause >= 0 then
  redis.call('HSET', KEYS[1], 'cd', tostring(math.max(num('cd'), now + pause)))
end
local failures, failed_at = num('f'), num('fa')
if now - failed_at > tonumber(ARGV[4]) and num('ou') <= failed_at then failures = 0 end
failures = failures + 1
local threshold = tonumber(ARGV[2])
if failures >= threshold then
  redis.call('HSET', KEYS[1], 'ou', tostring(now + tonumber(ARGV[3])))
  failures = threshold - 1
end
redis.call('HSET', KEYS[1], 'f', failures, 'fa', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return failures
"""
)

SUCCEEDED = """
if redis.call('HEXISTS', KEYS[1], 'f') == 1 then redis.call('HSET', KEYS[1], 'f', 0) end
return 1
"""


def gate_key(endpoint: str) -> str:
    return f"pocket_portals:llm:{{{endpoint}}}"


class RedisGate:
    def __init__(self, client: redis.Redis | redis.RedisCluster, limits: GateLimits) -> None:
        self.client = client
        self.limits = limits
        self._scripts = {
            name: client.register_script(body)
            for name, body in (
                ("admit", ADMIT),
                ("settle", SETTLE),
                ("failed", FAILED),
                ("succeeded", SUCCEEDED),
            )
        }

    def _run(self, name: str, endpoint: str, *args: Any) -> Any:
        with store_script(f"LLM_GATE_{name.upper()}"):
            return self._scripts[name](keys=[gate_key(endpoint)], args=list(args))

    def admit(self, endpoint: str, tokens: int, budget: Budget) -> Admission:
        try:
            wait, refused, reason = self._run(
                "admit",
                endpoint,
                tokens,
                budget.rpm or 0,
                budget.tpm or 0,
                self.limits.max_wait * 1000,
                self.limits.burst * 1000,
                _KEEP_MS,
            )
        except redis.exceptions.RedisError as exc:
            logger.warning("LLM gate unavailable (%s): the call goes ahead", type(exc).__name__)
            return Admission(0.0)
        return Admission(float(wait) / 1000, refused or None, reason)

    def settle(self, endpoint: str, booked: int, used: int, budget: Budget) -> None:
        if not budget.tpm or booked == used:
            return
        try:
            self._run("settle", endpoint, booked, used, budget.tpm)
        except redis.exceptions.RedisError:
            pass  # the estimate stays booked: the budget errs on the safe side

    def failed(self, endpoint: str, retry_after: float | None) -> None:
        pause = -1.0 if retry_after is None else retry_after * 1000
        try:
            self._run(
                "failed",
                endpoint,
                pause,
                self.limits.circuit_failures,
                self.limits.circuit_open * 1000,
                FAILURE_WINDOW_MS,
                _KEEP_MS,
            )
        except redis.exceptions.RedisError as exc:
            reason = type(exc).__name__
            logger.warning("LLM gate unavailable (%s): a failure went uncounted", reason)

    def succeeded(self, endpoint: str) -> None:
        try:
            self._run("succeeded", endpoint)
        except redis.exceptions.RedisError:
            pass
