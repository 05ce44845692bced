"""Parameter sweeps: N Jobs of one App, one per parameter set, sharing the label
`ferry.dev/sweep=<name>`, with an aggregate view and wait/download over all of them.

Owns: turning a grid (mapping of lists; the first key varies slowest) or a list of parameter
dicts into Jobs named `<sweep>-001`…, and the Sweep handle. Must not: decide Job states.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferry.api import Job, names
from ferry.sdk import query, watching
from ferry.sdk.errors import UsageError
from ferry.sdk.progress import Progress
from ferry.sdk.translate import translated

if TYPE_CHECKING:
    from ferry.sdk.client import Client
    from ferry.sdk.transfer import DownloadResult


@dataclass(frozen=True)
class SweepSummary:
    """How many of the sweep's Jobs are in each state."""

    sweep: str
    total: int
    counts: dict[str, int]

    @property
    def done(self) -> bool:
        ended = sum(self.counts.get(s, 0) for s in ("Finished", "Failed", "TimedOut", "Cancelled"))
        return self.total > 0 and ended == self.total

    @property
    def ok(self) -> bool:
        return self.done and self.counts.get("Finished", 0) == self.total

    def __str__(self) -> str:
        shown = ", ".join(f"{n} {s}" for s, n in self.counts.items()) or "no Jobs"
        return f"sweep {self.sweep}: {self.total} Jobs: {shown}"


class Sweep:
    """A handle on the Jobs labelled ferry.dev/sweep=<name> in one namespace."""

    def __init__(self, client: Client, name: str, namespace: str) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace

    @property
    def selector(self) -> str:
        return f"{names.LABEL_SWEEP}={self.name}"

    def jobs(self) -> list[Job]:
        return self.client.list(labels={names.LABEL_SWEEP: self.name}, namespace=self.namespace)

    def summary(self) -> SweepSummary:
        with translated():
            items = (
                self.client.kube.list_objects("Job", self.namespace, self.selector).get("items")
                or []
            )
        return SweepSummary(self.name, len(items), query.counts_by_state(items))

    def wait(
        self,
        timeout: float | None = None,
        *,
        raise_on_failure: bool = False,
        on_change: Callable[[SweepSummary], None] | None = None,
    ) -> list[Job]:
        """Block until every Job of the sweep has ended (one watch over the label)."""

        def changed(items: list[dict[str, Any]]) -> None:
            if on_change is not None:
                on_change(SweepSummary(self.name, len(items), query.counts_by_state(items)))

        with translated():
            done = watching.until_all(
                self.client.kube,
                self.namespace,
                self.selector,
                query.is_terminal,
                timeout,
                changed,
            )
        if raise_on_failure:
            watching.raise_if_failed(done)
        from ferry.sdk.client import to_job

        return [to_job(o) for o in done]

    def download(
        self,
        dest: str | Path = ".",
        files: Sequence[str] | str | None = None,
        *,
        progress: bool | Progress = False,
    ) -> dict[str, DownloadResult]:
        """Each Finished Job's outputs below dest/<job name>/."""
        out: dict[str, DownloadResult] = {}
        for job in self.jobs():
            if job.status is None or job.status.outputs is None:
                continue
            name = str(job.metadata["name"])
            out[name] = self.client.download(
                job, Path(dest) / name, files, progress=progress, namespace=self.namespace
            )
        return out


def parameter_sets(grid: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(grid, Mapping):
        return query.expand_grid(grid)
    sets = [dict(p) for p in grid]
    if not sets or not all(isinstance(p, dict) for p in sets):
        raise UsageError("a sweep needs a grid (mapping of lists) or a non-empty list of dicts")
    return sets


def submit_sweep(
    client: Client,
    app: str,
    grid: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    namespace: str | None = None,
    **submit: Any,
) -> Sweep:
    """One Job per parameter set (each merged over `params`), labelled with the sweep."""
    sets = parameter_sets(grid)
    sweep = name or query.generated_name(app)
    query.check_label(names.LABEL_SWEEP, sweep)
    ns = namespace or client.namespace
    all_labels = {**(labels or {}), names.LABEL_SWEEP: sweep}
    for job_name, values in zip(query.sweep_names(sweep, len(sets)), sets, strict=True):
        client.submit(
            app,
            {**(params or {}), **values},
            name=job_name,
            labels=all_labels,
            namespace=ns,
            **submit,
        )
    return Sweep(client, sweep, ns)
