"""Small formatting helpers shared by the HTML, SVG, JUnit and terminal output."""

from __future__ import annotations

import html
import re


def esc(value: object) -> str:
    """Escape text for HTML/SVG element content and double-quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_t(seconds: float) -> str:
    """A relative time, compact: 31µs, 12.3ms, 1.031s, 61.2s."""
    a = abs(seconds)
    if a < 1e-3:
        return f"{seconds * 1e6:.0f}µs"
    if a < 1:
        return f"{seconds * 1e3:.3g}ms"
    if a < 100:
        return f"{seconds:.3f}s"
    return f"{seconds:.1f}s"


def fmt_runtime(seconds: float) -> str:
    """A run's wall time: 61.2 s, 12 min 03 s."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def slug(text: str) -> str:
    """An HTML id derived from a case id (stable, readable in URLs)."""
    return "c-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def segment_label(seg: dict) -> str:
    """``FA seq=1 ack=1 len=0`` for one segment."""
    flags = seg.get("flags") or "."
    return f"{flags} seq={seg.get('seq', '?')} ack={seg.get('ack', '?')} len={seg.get('len', 0)}"
