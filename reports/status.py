"""How a run ended, in words: one sentence shared by the report header, the JUnit XML and compare.

``complete: all 260 selected cases finished`` /
``INTERRUPTED by SIGINT after 85 of 260 selected cases`` /
``INCOMPLETE: rebuilt after the run was killed; 120 of 260 cases finished; 1 case's evidence was lost (truncated)``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .load import Run


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


def attention(run: Run) -> bool:
    """The run's results are not the whole story: it did not complete, or some evidence was lost."""
    return not run.complete or bool(run.lost)


def summary(run: Run) -> str:
    """One line: how the run ended, with the counts of cases selected and finished, and the evidence lost."""
    selected, finished, status = run.selected, run.finished, run.status
    of_selected = f"{finished} of {selected}" if selected is not None else f"{finished}"
    if status == "complete":
        if selected is None or selected == finished:
            text = f"complete: all {plural(finished, 'selected case')} finished"
        else:
            text = f"complete: {of_selected} selected cases finished"
    elif status == "interrupted":
        by = f" by {run.meta['signal']}" if run.meta.get("signal") else ""
        text = f"INTERRUPTED{by} after {of_selected} selected cases"
    elif status == "incomplete":
        text = "INCOMPLETE: rebuilt after the run was killed"
        if run.meta.get("header_lost"):
            text += "; the run header was lost"
        if selected is None:
            text += f"; {plural(finished, 'case')} finished (how many were selected is unknown)"
        else:
            text += f"; {of_selected} cases finished"
    else:  # running: a results document written before the run ended
        text = f"RUNNING (or killed) when this was written: {of_selected} selected cases had finished"
    lost = lost_summary(run.lost)
    return f"{text}; {lost}" if lost else text


def short(run: Run) -> str:
    """A word for a table column: complete, interrupted (SIGINT), incomplete, running."""
    if run.status == "interrupted" and run.meta.get("signal"):
        return f"interrupted ({run.meta['signal']})"
    return run.status


def lost_summary(lost: list[dict[str, Any]]) -> str:
    """``1 case's evidence was lost (truncated)``; "" when nothing was lost."""
    if not lost:
        return ""
    kinds = Counter(lost_kind(str(item.get("reason") or "")) for item in lost)
    how = next(iter(kinds)) if len(kinds) == 1 else ", ".join(f"{n} {k}" for k, n in kinds.items())
    whose = plural(len(lost), "case's", "cases'")
    return f"{whose} evidence was lost ({how})"


def lost_kind(reason: str) -> str:
    """A reason given for lost evidence, in a word or two."""
    r = reason.lower()
    if "temporary" in r or ".tmp" in r:
        return "never renamed into place"
    if "truncated" in r:
        return "truncated"
    if "duplicate" in r:
        return "duplicate"
    if "write" in r or "written" in r:
        return "not written"
    return "unreadable"
