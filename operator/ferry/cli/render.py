"""How the CLI prints: rich tables (kubectl-like, no box), `-o json|yaml|wide`, ages and the
one-line error format.

Owns: columns and formats of every listing `ferry` prints. Must not: call the SDK.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from ferry.api import App, Job
from ferry.api.common import parse_time
from ferry.api.job import HistoryEntry

FORMATS = ("table", "wide", "json", "yaml", "name")
_STATE_STYLE = {
    "Finished": "green",
    "Failed": "red",
    "TimedOut": "red",
    "Cancelled": "yellow",
    "Blocked": "yellow",
    "Running": "cyan",
}


def console() -> Console:
    # Wide enough that messages do not wrap in pipes and tests; rich sizes to a terminal.
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def age(when: Any, now: datetime | None = None) -> str:
    start = parse_time(when)
    if start is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - start).total_seconds())
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], header: bool = True) -> Table:
    t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", show_header=header)
    for h in headers:
        t.add_column(h, overflow="fold" if h == "MESSAGE" else "ellipsis", no_wrap=h != "MESSAGE")
    for row in rows:
        t.add_row(*[str(c) if c is not None else "" for c in row])
    return t


def _state(state: str) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/{style}]" if style else state


def job_rows(
    jobs: Sequence[Job], wide: bool, namespaces: bool
) -> tuple[list[str], list[list[Any]]]:
    headers = ["NAME", "STATE", "APP", "ATTEMPT", "AGE", "RUNTIME"]
    if wide:
        headers += ["REASON", "MESSAGE"]
    if namespaces:
        headers = ["NAMESPACE", *headers]
    rows: list[list[Any]] = []
    for job in jobs:
        st = job.status
        meta = job.metadata
        row: list[Any] = [
            meta.get("name"),
            _state(st.state.value if st and st.state else ""),
            job.spec.app_ref.name,
            st.attempt if st and st.attempt else "",
            age(meta.get("creationTimestamp")),
            st.runtime if st and st.runtime else "",
        ]
        if wide:
            row += [st.reason if st else "", st.message if st else ""]
        if namespaces:
            row = [meta.get("namespace"), *row]
        rows.append(row)
    return headers, rows


def print_jobs(jobs: Sequence[Job], fmt: str, namespaces: bool = False) -> None:
    out = console()
    if fmt in ("json", "yaml"):
        data = {"apiVersion": "v1", "kind": "List", "items": [j.wire() for j in jobs]}
        click_echo(dump(data, fmt))
        return
    if fmt == "name":
        for job in jobs:
            click_echo(f"job.ferry.dev/{job.metadata.get('name')}")
        return
    if not jobs:
        click_echo("No Jobs found.", err=True)
        return
    headers, rows = job_rows(jobs, fmt == "wide", namespaces)
    out.print(table(headers, rows))


def print_job(job: Job, fmt: str) -> None:
    if fmt in ("json", "yaml"):
        click_echo(dump(job.wire(), fmt))
        return
    print_jobs([job], fmt)


def print_timeline(job: Job, history: Sequence[HistoryEntry], fmt: str) -> None:
    if fmt in ("json", "yaml"):
        click_echo(dump([h.wire() for h in history], fmt))
        return
    st = job.status
    out = console()
    name = job.metadata.get("name")
    if st is not None:
        out.print(
            f"Job {job.metadata.get('namespace')}/{name}: {_state(st.state or '')} ({st.reason})",
            highlight=False,
        )
        if st.message:
            out.print(f"  {st.message}", highlight=False, markup=False)
    rows = [
        [h.time.strftime("%Y-%m-%dT%H:%M:%SZ"), _state(h.state.value), h.reason, h.message]
        for h in history
    ]
    out.print(table(["TIME", "STATE", "REASON", "MESSAGE"], rows))
    if st is not None and st.outputs is not None:
        o = st.outputs
        out.print(f"outputs: {o.uri} ({o.files} files, {o.bytes} bytes)", highlight=False)


def print_apps(apps: Sequence[App], fmt: str) -> None:
    if fmt in ("json", "yaml"):
        click_echo(
            dump([a.model_dump(by_alias=True, exclude_none=True, mode="json") for a in apps], fmt)
        )
        return
    rows = []
    for app in apps:
        ready = ""
        for cond in (app.status.conditions if app.status else []) or []:
            if cond.type == "Ready":
                ready = cond.status.value
        rows.append(
            [app.metadata.get("name"), app.spec.version, app.spec.image, ready,
             age(app.metadata.get("creationTimestamp"))]
        )  # fmt: skip
    if not rows:
        click_echo("No Apps found.", err=True)
        return
    console().print(table(["NAME", "VERSION", "IMAGE", "READY", "AGE"], rows))


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def click_echo(text: str, err: bool = False) -> None:
    import click

    click.echo(text.rstrip("\n"), err=err)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
