"""`kubectl explain` explains every field: each property and array item of both CRDs, spec and
status, carries a description (taken from the pydantic models' Field descriptions and
docstrings by ferry.crdgen)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = ("crds/ferry.dev_apps.yaml", "crds/ferry.dev_jobs.yaml")


def fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field below `node` with its path: properties, array items (`[]`) and map
    values (`{}`), depth first."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from fields(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from fields(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from fields(node["additionalProperties"], f"{path}{{}}")


def undescribed(crd: dict[str, Any]) -> list[str]:
    """Paths of the spec's and status's fields that have no (non-blank) description."""
    (version,) = crd["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    return [
        path
        for top in ("spec", "status")
        for path, node in fields(root["properties"][top], top)
        if not str(node.get("description") or "").strip()
    ]


def load(name: str) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return crd


@pytest.mark.parametrize("name", CRD_FILES)
def test_every_field_has_a_description(name: str) -> None:
    missing = undescribed(load(name))
    assert missing == [], f"{name}: fields without a description: {', '.join(missing)}"


@pytest.mark.parametrize("name", CRD_FILES)
def test_the_walk_reaches_status_and_nested_items(name: str) -> None:
    (version,) = load(name)["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    paths = {p for top in ("spec", "status") for p, _ in fields(root["properties"][top], top)}
    assert "status.conditions[].lastTransitionTime" in paths
    assert len(paths) > 40


def test_a_field_without_description_is_named_by_its_path() -> None:
    crd = load("crds/ferry.dev_jobs.yaml")
    (version,) = crd["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["appRef"]["properties"]["name"]["description"]
    item = spec["properties"]["inputs"]["items"]
    item["properties"]["source"]["properties"]["s3"]["properties"]["bucket"]["description"] = " "
    assert undescribed(crd) == ["spec.appRef.name", "spec.inputs[].source.s3.bucket"]
