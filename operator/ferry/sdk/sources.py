"""Turning what a user writes for a parameter or an input into Job spec fields.

Owns: typed parameter values (`5`, `2.5`, `1e-3`, `true`, `'quoted text'`, text), input
sources written as text — `s3://bucket/key`, `s3://bucket/prefix/` (a trailing slash means a
prefix), `http(s)://url[#sha256=HEX]`, `pvc://claim/path`, `configmap://name/key`, `@file` (its
text inline) — and recognising a local file or directory, which the client uploads. Must not:
talk to the cluster or the store.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.sdk.errors import UsageError

_SCHEMES = ("s3://", "http://", "https://", "pvc://", "configmap://")


@dataclass(frozen=True)
class LocalInput:
    """A local file or directory to upload, then stage as an s3 key or prefix input."""

    name: str
    path: Path

    @property
    def is_dir(self) -> bool:
        return self.path.is_dir()


def scalar(raw: str) -> str | int | float | bool:
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
    return name, scalar(raw)


def parse_source(name: str, source: str, base: Path | None = None) -> dict[str, Any]:
    """The `source` of input `name` written as text (see the module docstring)."""
    text = f"{name}={source}"
    if source.startswith("s3://"):
        bucket, _, key = source[5:].partition("/")
        if not bucket or not key:
            raise UsageError(f"-i {text!r}: s3://BUCKET/KEY or s3://BUCKET/PREFIX/")
        return {"s3": {"bucket": bucket, ("prefix" if key.endswith("/") else "key"): key}}
    if source.startswith(("http://", "https://")):
        url, _, fragment = source.partition("#")
        http: dict[str, Any] = {"url": url}
        if fragment.startswith("sha256="):
            http["sha256"] = fragment[len("sha256=") :]
        return {"http": http}
    if source.startswith("pvc://"):
        claim, _, path = source[6:].partition("/")
        if not claim or not path:
            raise UsageError(f"-i {text!r}: pvc://CLAIM/PATH")
        return {"pvc": {"claimName": claim, "path": path}}
    if source.startswith("configmap://"):
        cm, _, key = source[12:].partition("/")
        if not cm or not key:
            raise UsageError(f"-i {text!r}: configmap://NAME/KEY")
        return {"configMap": {"name": cm, "key": key}}
    if source.startswith("@"):
        file = (base or Path.cwd()) / source[1:]
        try:
            content = file.read_text()
        except OSError as exc:
            raise UsageError(f"-i {text!r}: cannot read {file}: {exc.strerror}") from exc
        return {"inline": content}
    raise UsageError(f"-i {text!r}: SOURCE is s3://, http(s)://, pvc://, configmap:// or @file")


def parse_input_text(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise UsageError(f"-i {text!r}: expected NAME=SOURCE")
    return name, source


def classify(name: str, value: Any, base: Path | None = None) -> dict[str, Any] | LocalInput:
    """An input value as the SDK accepts it: a source mapping (`{"s3": {...}}`), a
    pathlib.Path or os.PathLike (local, uploaded), or text: a URL-like source, `@file`, or
    else a local path that must exist."""
    if isinstance(value, dict):
        return value
    if isinstance(value, os.PathLike):
        return _local(name, Path(value), base)
    if not isinstance(value, str):
        raise UsageError(f"input {name}: expected a source mapping, a path or text")
    if value.startswith(_SCHEMES) or value.startswith("@") or "://" in value:
        return parse_source(name, value, base)
    return _local(name, Path(value), base)


def _local(name: str, path: Path, base: Path | None) -> LocalInput:
    full = path if path.is_absolute() else (base or Path.cwd()) / path
    if not full.exists():
        raise UsageError(
            f"input {name}: {path} is not a file or directory here (and not s3://, "
            "http(s)://, pvc://, configmap:// or @file)"
        )
    if not (full.is_file() or full.is_dir()):
        raise UsageError(f"input {name}: {path} is neither a regular file nor a directory")
    return LocalInput(name, full)


def local_files(directory: Path) -> list[tuple[str, Path]]:
    """Every regular file below `directory` as (relative `/` path, path), sorted; symlinks
    and special files are not uploaded."""
    out: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        for file in sorted(files):
            full = Path(root) / file
            if full.is_symlink() or not full.is_file():
                continue
            out.append((full.relative_to(directory).as_posix(), full))
    return sorted(out)
