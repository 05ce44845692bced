"""Building a Job manifest from `ferry submit`-style arguments (`-p NAME=VALUE`,
`-i NAME=SOURCE`), for tools that want the manifest rather than the Job.

Owns: the flags-to-manifest mapping; the meaning of a value or a source is ferry.sdk.sources'
(this module re-exports its parsers). Must not: talk to the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferry.api.common import API_VERSION
from ferry.api.job import JobSpec
from ferry.sdk.errors import UsageError
from ferry.sdk.sources import parse_input_text, parse_parameter, parse_source

__all__ = ["UsageError", "job_manifest", "parse_input", "parse_parameter"]


def parse_input(text: str, base: Path | None = None) -> dict[str, Any]:
    """`NAME=SOURCE` (a remote source or @file; local paths are the SDK's to upload)."""
    name, source = parse_input_text(text)
    return {"name": name, "source": parse_source(name, source, base)}


def job_manifest(
    name: str,
    app: str,
    parameters: list[str],
    inputs: list[str],
    *,
    max_run_seconds: int | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Job to create; checked against the models so mistakes show before the apiserver."""
    spec: dict[str, Any] = {"appRef": {"name": app}}
    if parameters:
        spec["parameters"] = dict(parse_parameter(p) for p in parameters)
    if inputs:
        spec["inputs"] = [parse_input(i) for i in inputs]
    if max_run_seconds is not None:
        spec["maxRunSeconds"] = max_run_seconds
    JobSpec.model_validate(spec)
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": "Job", "metadata": metadata, "spec": spec}
