"""The player page at `/` and its assets: served from the package, with headers that let the
page load nothing but itself."""

from __future__ import annotations

import re

import httpx
import pytest


def test_the_page_is_served_with_a_strict_policy(gateway_url: str) -> None:
    page = httpx.get(f"{gateway_url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/play/app.js", "text/javascript"), ("/play/style.css", "text/css")],
)
def test_assets_are_served_with_their_types(gateway_url: str, path: str, media_type: str) -> None:
    asset = httpx.get(f"{gateway_url}{path}", timeout=10)
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith(media_type)
    assert "content-security-policy" in asset.headers


def test_the_page_loads_nothing_from_elsewhere(gateway_url: str) -> None:
    for path in ("/", "/play/app.js", "/play/style.css"):
        text = httpx.get(f"{gateway_url}{path}", timeout=10).text
        assert not re.search(r"https?://", text), f"{path} refers to another origin"
        assert "<script>" not in text and " style=" not in text  # nothing inline for the CSP


def test_unknown_assets_are_404(gateway_url: str) -> None:
    for path in ("/play/nope.js", "/play/index.html", "/play/..%2Fmain.py"):
        response = httpx.get(f"{gateway_url}{path}", timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
