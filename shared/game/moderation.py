"""The moderation step before the rules: is what the player typed fit for the tale?

Two checks behind one interface (`Moderator.check(text) -> Verdict`):

- `RuleModerator`: the built-in rule set (`rules.safety.unsafe_categories`), no network;
- `HttpModerator`: an OpenAI-compatible `/v1/moderations` endpoint (`MODERATION_URL`; OpenAI,
  or a self-hosted one). When it fails (timeout, error status, a reply not in the protocol)
  the turn is not held up or failed: the built-in rules decide, and
  `pocket_portals_moderation_errors_total` counts it.

A verdict names categories only; the text is never logged or kept by the check.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from shared.game.rules.safety import unsafe_categories
from shared.metrics import MODERATION_ERRORS
from shared.settings import Settings

__all__ = ["HttpModerator", "Moderator", "RuleModerator", "Verdict", "moderator_for"]

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Verdict:
    categories: tuple[str, ...] = ()
    source: str = "rules"  # "rules" or "endpoint"

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


class Moderator(Protocol):
    def check(self, text: str) -> Verdict: ...


class RuleModerator:
    def check(self, text: str) -> Verdict:
        return Verdict(unsafe_categories(text), "rules")


class AllowAll:
    """MODERATION=off."""

    def check(self, text: str) -> Verdict:
        return Verdict((), "off")


def _flagged_categories(data: Any) -> tuple[str, ...] | None:
    """The flagged categories in a moderations reply, None if it is not one."""
    try:
        result = data["results"][0]
        flagged = bool(result["flagged"])
        categories = result.get("categories") or {}
    except (KeyError, IndexError, TypeError):
        return None
    if not flagged:
        return ()
    named = tuple(sorted(str(name) for name, hit in categories.items() if hit))
    return named or ("flagged",)


class HttpModerator:
    def __init__(self, url: str, *, api_key: str | None, model: str, timeout: float) -> None:
        self.url = url
        self.model = model
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout))
        self._fallback = RuleModerator()

    def close(self) -> None:
        self._client.close()

    def check(self, text: str) -> Verdict:
        try:
            response = self._client.post(self.url, json={"model": self.model, "input": text})
            categories = (
                _flagged_categories(response.json()) if response.status_code < 400 else None
            )
            reason = f"HTTP {response.status_code}" if categories is None else ""
        except (httpx.HTTPError, ValueError) as exc:
            categories, reason = None, type(exc).__name__
        if categories is None:
            MODERATION_ERRORS.inc()
            logger.warning("moderation endpoint failed (%s): the built-in rules decide", reason)
            return self._fallback.check(text)
        return Verdict(categories, "endpoint")


def _llm_key_for(settings: Settings, url: str) -> SecretStr | None:
    """LLM_API_KEY, only for a moderation endpoint on the LLM's own host: a key is never sent
    to another provider's server."""
    llm_host = urlsplit(settings.llm_base_url or OPENAI_BASE_URL).hostname
    return settings.llm_api_key if urlsplit(url).hostname == llm_host else None


_moderators: dict[tuple[Any, ...], Moderator] = {}
_lock = threading.Lock()


def moderator_for(settings: Settings) -> Moderator:
    """The process's moderator for these settings (an endpoint's client is kept and shared:
    it is thread-safe and keeps its connections open)."""
    if settings.moderation == "off":
        return AllowAll()
    if settings.moderation_url is None:
        return RuleModerator()
    secret = settings.moderation_api_key or _llm_key_for(settings, settings.moderation_url)
    api_key = secret.get_secret_value() if secret else None
    key = (settings.moderation_url, api_key, settings.moderation_model, os.getpid())
    with _lock:
        moderator = _moderators.get(key)
        if moderator is None:
            moderator = _moderators[key] = HttpModerator(
                settings.moderation_url,
                api_key=api_key,
                model=settings.moderation_model,
                timeout=settings.moderation_timeout,
            )
        return moderator
