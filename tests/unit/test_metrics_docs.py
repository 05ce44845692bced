"""docs/metrics.md lists exactly the metric families the operator exports, with their types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ferry.handlers.metrics import Metrics

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def documented() -> dict[str, str]:
    text = DOC.read_text()
    table = text[text.index("<!-- metrics:begin -->") : text.index("<!-- metrics:end -->")]
    return dict(re.findall(r"^\| `(\w+)` \| (\w+) \|", table, re.M))


def exported() -> dict[str, str]:
    metrics = Metrics()
    metrics.attach(lambda: {}, {})
    out = {}
    for family in metrics.registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        out[family.name + suffix] = family.type
    return out


def test_the_docs_table_is_what_the_operator_exports() -> None:
    assert documented() == exported()


def test_the_table_is_read() -> None:
    assert {"ferry_queue_wait_seconds", "ferry_run_duration_seconds"} <= set(documented())
