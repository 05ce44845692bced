"""Building a Job manifest from `ferry submit` arguments.

Owns: parsing `-p name=value` (typed: 5, 2.5, 1e-3, true, 'quoted text', text) and
`-i name=SOURCE` where SOURCE is s3://bucket/key, s3://bucket/prefix/ (a trailing slash means
a prefix), http(s)://url[#sha256=HEX], pvc://claim/path, configmap://name/key or @file (its
text inline), into a Job the apiserver then validates. Must not: talk to the cluster.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ferry.api.common import API_VERSION
from ferry.api.job import JobSpec


class UsageError(ValueError):
    """A command-line argument that cannot be turned into a Job field."""


def _scalar(raw: str) -> str | int | float | bool:
    """true/false, an integer, a finite decimal number, a quoted string, or the text."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw


def parse_parameter(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageError(f"-p {text!r}: expected NAME=VALUE")
    return name, _scalar(raw)


def parse_input(text: str, base: Path | None = None) -> dict[str, Any]:
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise UsageError(f"-i {text!r}: expected NAME=SOURCE")
    if source.startswith("s3://"):
        bucket, _, key = source[5:].partition("/")
        if not bucket or not key:
            raise UsageError(f"-i {text!r}: s3://BUCKET/KEY or s3://BUCKET/PREFIX/")
        s3 = {"bucket": bucket, ("prefix" if key.endswith("/") else "key"): key}
        return {"name": name, "source": {"s3": s3}}
    if source.startswith(("http://", "https://")):
        url, _, fragment = source.partition("#")
        http: dict[str, Any] = {"url": url}
        if fragment.startswith("sha256="):
            http["sha256"] = fragment[len("sha256=") :]
        return {"name": name, "source": {"http": http}}
    if source.startswith("pvc://"):
        claim, _, path = source[6:].partition("/")
        if not claim or not path:
            raise UsageError(f"-i {text!r}: pvc://CLAIM/PATH")
        return {"name": name, "source": {"pvc": {"claimName": claim, "path": path}}}
    if source.startswith("configmap://"):
        cm, _, key = source[12:].partition("/")
        if not cm or not key:
            raise UsageError(f"-i {text!r}: configmap://NAME/KEY")
        return {"name": name, "source": {"configMap": {"name": cm, "key": key}}}
    if source.startswith("@"):
        file = (base or Path.cwd()) / source[1:]
        try:
            content = file.read_text()
        except OSError as exc:
            raise UsageError(f"-i {text!r}: cannot read {file}: {exc.strerror}") from exc
        return {"name": name, "source": {"inline": content}}
    raise UsageError(f"-i {text!r}: SOURCE is s3://, http(s)://, pvc://, configmap:// or @file")


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
