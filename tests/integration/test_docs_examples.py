"""Every YAML example of Ferry's kinds in the README, docs/ and examples/ is applied to the
real apiserver: examples must be accepted (server-side dry run), and blocks marked
`# refused: TEXT` must be refused with TEXT in the message. Other tools' objects (Flux, Argo CD)
are checked to be well-formed."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT, Kube

pytestmark = pytest.mark.integration

FENCE = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
CHART_VALUES = "# chart values:"


def _blocks() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, match in enumerate(FENCE.finditer(doc.read_text())):
            if match.group(1).startswith(CHART_VALUES):
                continue  # Helm values, not objects: tests/integration/test_chart.py
            found.append((f"{doc.relative_to(ROOT)}#{i}", match.group(1)))
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        found.append((str(path.relative_to(ROOT)), path.read_text()))
    return found


BLOCKS = _blocks()


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 6
    assert any(name.startswith("examples/") for name, _ in BLOCKS)


@pytest.mark.parametrize("text", [t for _, t in BLOCKS], ids=[n for n, _ in BLOCKS])
def test_example(kube: Kube, namespace: str, text: str) -> None:
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs, "empty example"
    if not all(str(d.get("apiVersion", "")).startswith("ferry.dev/") for d in docs):
        # Other tools' objects (Flux, Argo CD): well-formed YAML with a kind is all we can check.
        assert all(d.get("kind") and d.get("apiVersion") for d in docs)
        return
    refused = re.match(r"#\s*refused:\s*(.+)", text.strip())
    proc = kube.run(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=text,
        check=False,
    )
    if refused:
        assert proc.returncode != 0, "a refused example was accepted"
        assert refused.group(1).strip() in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
