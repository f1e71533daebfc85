"""The catalogue's style, checked on its source (pure: nothing imported, no root).

- No bare `assert` in a conformance case: every observed value is judged by a recorded check
  (`lab.expect_equal`, `lab.expect_errno`, `lab.wire.expect`, ...), so that it is evidence in results.json and can
  be decided again.
- No `expect_no(..., during=0)`: a negative check over an empty window proves nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"
CASE_FILES = sorted(CONFORMANCE.glob("test_*.py"))


def bare_asserts(source: str) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assert)]


def empty_negative_windows(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "expect_no"):
            continue
        for kw in node.keywords:
            if (kw.arg == "during" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, int | float)
                    and not isinstance(kw.value.value, bool) and kw.value.value <= 0):
                lines.append(node.lineno)
    return lines


def test_the_catalogue_is_found():
    assert CASE_FILES, f"no conformance/test_*.py under {CONFORMANCE}"


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.name for p in CASE_FILES])
def test_no_bare_assert_in_a_case_file(path: Path):
    found = bare_asserts(path.read_text(encoding="utf-8"))
    assert not found, (f"{path.name}: bare assert at line(s) {found}; record the check instead "
                       "(lab.expect_equal / lab.expect_errno / lab.wire.expect ...)")


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.name for p in CASE_FILES])
def test_no_expect_no_with_an_empty_window(path: Path):
    found = empty_negative_windows(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: expect_no(during=0) at line(s) {found}: an empty window proves nothing"


def test_the_checkers_see_what_they_forbid():
    assert bare_asserts("def test_x(lab):\n    assert lab.client.recv() == b''\n") == [2]
    assert bare_asserts("def test_x(lab):\n    lab.expect_equal('recv', lab.client.recv(), b'')\n") == []
    assert empty_negative_windows("lab.wire.expect_no('client', during=0)\n") == [1]
    assert empty_negative_windows("lab.wire.conn(1).expect_no('client', has='R', during=0.0)\n") == [1]
    assert empty_negative_windows("lab.wire.expect_no('client', during=0.05)\n") == []
