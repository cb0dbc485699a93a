"""A picture of the Grafana dashboard's panels, for the README, where Grafana cannot run (it is
not in Debian and this machine reaches no image registry): each panel's queries, fetched from
a real Prometheus with query_range, drawn as SVG lines in a page that headless Chromium
photographs. Only the drawing is ours; the figures are Prometheus's."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

__all__ = ["Series", "page"]

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"]
_WIDTH, _HEIGHT, _PAD = 520, 170, 28


@dataclass(frozen=True)
class Series:
    legend: str
    points: list[tuple[float, float]]


def _polyline(series: Series, x0: float, x1: float, top: float, colour: str) -> str:
    def x(t: float) -> float:
        return _PAD + (t - x0) / max(x1 - x0, 1e-9) * (_WIDTH - 2 * _PAD)

    def y(v: float) -> float:
        return _HEIGHT - _PAD - v / top * (_HEIGHT - 2 * _PAD)

    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in series.points if math.isfinite(v))
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'


def _panel(title: str, unit: str, lines: list[Series]) -> str:
    times = [t for s in lines for t, _ in s.points]
    values = [v for s in lines for _, v in s.points if math.isfinite(v)]
    x0, x1 = (min(times), max(times)) if times else (0.0, 1.0)
    top = max(values, default=1.0) * 1.1 or 1.0
    drawn = "".join(
        _polyline(s, x0, x1, top, _COLOURS[i % len(_COLOURS)]) for i, s in enumerate(lines)
    )
    legend = "".join(
        f'<span style="color:{_COLOURS[i % len(_COLOURS)]}">■</span> {html.escape(s.legend)} '
        for i, s in enumerate(lines)
    )
    return (
        f'<section><h2>{html.escape(title)}</h2><svg width="{_WIDTH}" height="{_HEIGHT}">'
        f'<line x1="{_PAD}" y1="{_HEIGHT - _PAD}" x2="{_WIDTH - _PAD}" y2="{_HEIGHT - _PAD}" '
        f'stroke="#888"/><text x="{_PAD}" y="14" font-size="11" fill="#555">max '
        f"{top / 1.1:.3g} {html.escape(unit)}</text>{drawn}</svg><p>{legend}</p></section>"
    )


def page(title: str, panels: list[tuple[str, str, list[Series]]]) -> str:
    """An HTML page of `panels` (title, unit, series)."""
    body = "".join(_panel(name, unit, lines) for name, unit, lines in panels)
    return (
        "<!doctype html><meta charset='utf-8'><style>"
        "body{font:13px system-ui,sans-serif;margin:12px;background:#fff;color:#222}"
        "main{display:grid;grid-template-columns:repeat(2,540px);gap:8px}"
        "section{border:1px solid #ddd;border-radius:6px;padding:4px 8px}"
        "h1{font-size:17px}h2{font-size:14px;margin:2px 0}p{margin:2px 0;font-size:12px}"
        f"</style><h1>{html.escape(title)}</h1><main>{body}</main>"
    )
