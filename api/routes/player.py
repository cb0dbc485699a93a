"""The player page at `/`: a small browser client of the public API, served from `api/web/`
with headers that let it load nothing but itself.

Static files, no build step and no CDN: the page works on a machine without internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

__all__ = ["PAGE_HEADERS", "router"]

_WEB = Path(__file__).resolve().parent.parent / "web"
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Read once: the files ship with the package and never change while it runs.
_ASSETS: Final = {
    path.name: (path.read_bytes(), _TYPES[path.suffix])
    for path in _WEB.iterdir()
    if path.suffix in _TYPES
}

PAGE_HEADERS: Final = {
    # Only this origin's own script, styles and API; no inline code, no frames, no plugins.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Revalidate each time: a new release is picked up on the next load.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _serve(name: str) -> Response:
    asset = _ASSETS.get(name)
    if asset is None:
        raise HTTPException(404)
    body, media_type = asset
    return Response(body, media_type=media_type, headers=PAGE_HEADERS)


@router.get("/")
async def player_page() -> Response:
    return _serve("index.html")


@router.get("/play/{name}")
async def player_asset(name: str) -> Response:
    if name == "index.html":
        raise HTTPException(404)
    return _serve(name)
