"""Reasons are typed constants, each explained once, and docs/api.md says the same."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ferry.api.reasons import EXPLAINED, NOT_ACCEPTED, Reason, markdown_table

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DECISIONS = ROOT / "operator" / "ferry" / "decisions"


def test_every_reason_is_explained() -> None:
    assert set(EXPLAINED) == set(Reason)
    assert all(text.strip() for text in EXPLAINED.values())
    assert set(Reason) >= NOT_ACCEPTED


def test_docs_api_reason_table_is_the_generated_one() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    begin, end = "<!-- reasons:begin -->\n", "\n<!-- reasons:end -->"
    documented = text[text.index(begin) + len(begin) : text.index(end)]
    assert documented == markdown_table(), "regenerate with ferry.api.reasons.markdown_table()"


def test_the_decisions_write_no_bare_reason() -> None:
    """A Draft's reason is always a Reason constant (or a runner's, which is one too): no
    string literal of a reason's spelling appears in the decision code."""
    spelled = {r.value for r in Reason}
    found = []
    for path in sorted(DECISIONS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Draft":
                for arg in node.args[1:2]:
                    if isinstance(arg, ast.Constant) and arg.value in spelled:
                        found.append(f"{path.name}:{node.lineno} {arg.value}")
    assert found == []
