"""`ferry submit` turns flags into a Job manifest; bad flags are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ferry.cli.submit import UsageError, job_manifest, parse_input, parse_parameter

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps=500", ("steps", 500)),
        ("tol=1e-3", ("tol", 1e-3)),
        ("ratio=2.5", ("ratio", 2.5)),
        ("fast=true", ("fast", True)),
        ("solver=direct", ("solver", "direct")),
        ("label=", ("label", "")),
        ("expr=[1, 2]", ("expr", "[1, 2]")),
        ("v='007'", ("v", "007")),
    ],
)
def test_parameters_are_typed_like_yaml(text: str, expected: tuple[str, object]) -> None:
    assert parse_parameter(text) == expected


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("model=s3://models/frame.tcl", {"s3": {"bucket": "models", "key": "frame.tcl"}}),
        ("mesh=s3://models/mesh/", {"s3": {"bucket": "models", "prefix": "mesh/"}}),
        ("m=https://e.org/f.tcl", {"http": {"url": "https://e.org/f.tcl"}}),
        (
            "m=https://e.org/f#sha256=" + "a" * 64,
            {"http": {"url": "https://e.org/f", "sha256": "a" * 64}},
        ),
        ("d=pvc://data/runs/1", {"pvc": {"claimName": "data", "path": "runs/1"}}),
        ("c=configmap://cfg/input.txt", {"configMap": {"name": "cfg", "key": "input.txt"}}),
    ],
)
def test_input_sources(text: str, source: dict[str, object]) -> None:
    assert parse_input(text)["source"] == source


def test_inline_input_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "model.tcl").write_text("model basic")
    assert parse_input("model=@model.tcl", base=tmp_path)["source"] == {"inline": "model basic"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model", "expected NAME=SOURCE"),
        ("model=ftp://x/y", "SOURCE is s3://"),
        ("model=s3://bucket", "s3://BUCKET/KEY"),
        ("model=pvc://claim", "pvc://CLAIM/PATH"),
        ("model=@/nonexistent/file", "cannot read"),
    ],
)
def test_bad_inputs_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_input(text)


def test_job_manifest_is_checked_against_the_models() -> None:
    job = job_manifest(
        "run-1", "opensees", ["steps=5"], ["model=s3://models/frame.tcl"], max_run_seconds=60
    )
    assert job["spec"] == {
        "appRef": {"name": "opensees"},
        "parameters": {"steps": 5},
        "inputs": [{"name": "model", "source": {"s3": {"bucket": "models", "key": "frame.tcl"}}}],
        "maxRunSeconds": 60,
    }
    with pytest.raises(ValidationError, match="maxRunSeconds"):
        job_manifest("run-1", "opensees", [], [], max_run_seconds=-1)
    with pytest.raises(UsageError):
        parse_parameter("=5")
