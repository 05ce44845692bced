"""Pure helpers over Jobs as the apiserver returns them: label parsing and selectors,
filters and ordering for `list`, generated names, sweep grids and summaries.

Owns: what `list(state=, app=, labels=, last_n=)` means (newest first by creation time, then
name) and how a sweep's grid becomes parameter sets and names. Must not: do I/O.
"""

from __future__ import annotations

import itertools
import re
import secrets
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ferry.api.job import MAX_JOB_NAME, TERMINAL_STATES, State
from ferry.sdk.errors import UsageError

Obj = dict[str, Any]

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_ALPHABET = string.ascii_lowercase + string.digits


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """`key=value` strings into a dict; a malformed one is a UsageError naming it."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"label {item!r}: expected KEY=VALUE")
        check_label(key, value)
        out[key] = value
    return out


def check_label(key: str, value: str) -> None:
    if len(key) > 316 or not _LABEL_KEY.match(key):
        raise UsageError(f"label key {key!r} is not a valid Kubernetes label key")
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise UsageError(f"label {key}={value!r}: not a valid label value")


def selector(labels: Mapping[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def state_of(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("state") or "")


def is_terminal(obj: Obj) -> bool:
    return state_of(obj) in {s.value for s in TERMINAL_STATES}


def check_state(state: str) -> str:
    """A state name, case-insensitive (`failed`, `timedout`) → its canonical spelling."""
    for s in State:
        if s.value.lower() == state.lower():
            return s.value
    raise UsageError(f"state {state!r}: one of {', '.join(s.value for s in State)}")


def newest_first(items: Iterable[Obj]) -> list[Obj]:
    def key(obj: Obj) -> tuple[str, str, str]:
        meta = obj.get("metadata") or {}
        return (
            meta.get("creationTimestamp") or "",
            meta.get("name") or "",
            meta.get("namespace") or "",
        )

    return sorted(items, key=key, reverse=True)


def filter_jobs(
    items: Iterable[Obj],
    *,
    states: Sequence[str] = (),
    app: str | None = None,
    last_n: int | None = None,
) -> list[Obj]:
    """Jobs in any of `states`, of App `app` (by spec.appRef), newest first, at most last_n."""
    wanted = {check_state(s) for s in states}
    out = [
        obj
        for obj in newest_first(items)
        if (not wanted or state_of(obj) in wanted)
        and (app is None or (obj.get("spec") or {}).get("appRef", {}).get("name") == app)
    ]
    if last_n is not None:
        if last_n < 0:
            raise UsageError("last_n must be >= 0")
        out = out[:last_n]
    return out


def token(n: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def generated_name(base: str, suffix: str | None = None) -> str:
    """`<base>-<suffix>` (a random one by default), within the Job name limit."""
    tail = suffix or token()
    head = base[: MAX_JOB_NAME - len(tail) - 1].rstrip("-.")
    return f"{head}-{tail}"


def expand_grid(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest:
    {"a": [1, 2], "b": ["x", "y"]} → a=1,b=x; a=1,b=y; a=2,b=x; a=2,b=y. A scalar is one value."""
    if not grid:
        raise UsageError("a sweep grid needs at least one parameter")
    keys = list(grid)
    values: list[list[Any]] = []
    for key in keys:
        value = grid[key]
        options = list(value) if isinstance(value, list | tuple | range) else [value]
        if not options:
            raise UsageError(f"sweep parameter {key!r} has no values")
        values.append(options)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """`-p steps=10,20,30` style: NAME=V1,V2,... into a grid (values typed like -p)."""
    from ferry.sdk.sources import scalar

    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise UsageError(f"-p {item!r}: expected NAME=V1,V2,...")
        grid[name] = [scalar(v) for v in raw.split(",")]
    return grid


def sweep_names(sweep: str, count: int) -> list[str]:
    width = max(3, len(str(count)))
    return [generated_name(sweep, str(i).zfill(width)) for i in range(1, count + 1)]


def counts_by_state(items: Iterable[Obj]) -> dict[str, int]:
    """How many Jobs are in each state (a Job not yet seen by the operator is Pending)."""
    counted = Counter(state_of(o) or State.PENDING.value for o in items)
    order = [s.value for s in State]
    return {s: counted[s] for s in order if counted[s]}


def parse_duration(text: str) -> int:
    """Seconds from `600`, `90s`, `30m`, `2h`, `1d` (or combinations like `1h30m`)."""
    match = re.fullmatch(r"\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*", text)
    if not text.strip() or match is None or not any(match.groups()):
        raise UsageError(f"duration {text!r}: expected seconds or e.g. 90s, 30m, 2h, 1h30m")
    d, h, m, s = (int(g) if g else 0 for g in match.groups())
    return d * 86400 + h * 3600 + m * 60 + s
