"""The frozen context one decision pass works in.

Owns: `Ctx`, the value every lifecycle phase takes instead of a long argument list: the
observation, the Job's spec, its App and parameters once accepted, and the runner of the App's
runtime. Must not: decide anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ferry.api.app import AppSpec, Scalar
from ferry.api.job import JobSpec, JobStatus
from ferry.config import OperatorConfig
from ferry.decisions import builders
from ferry.decisions.observation import Observation, PodView
from ferry.decisions.runner import Runner


@dataclass(frozen=True)
class Ctx:
    """One pass over one Job whose spec parsed and that is not cancelled."""

    obs: Observation
    spec: JobSpec
    #: The App, when it is known (None once accepted and then deleted).
    app: AppSpec | None
    params: Mapping[str, Scalar]
    runner: Runner

    @property
    def status(self) -> JobStatus:
        return self.obs.job.status

    @property
    def now(self) -> datetime:
        return self.obs.now

    @property
    def config(self) -> OperatorConfig:
        return self.obs.config

    @property
    def attempt(self) -> int:
        """The current attempt (0 before the first)."""
        return self.status.attempt or 0

    @property
    def meta(self) -> builders.JobMeta:
        return job_meta(self.obs)

    @property
    def max_run_seconds(self) -> int | None:
        """The Job's limit, else its App's."""
        if self.spec.max_run_seconds is not None:
            return self.spec.max_run_seconds
        return self.app.max_run_seconds if self.app is not None else None


def job_meta(obs: Observation) -> builders.JobMeta:
    job = obs.job
    return builders.JobMeta(
        job.name,
        job.namespace,
        job.uid,
        job.labels,
        job.annotations,
        queue=builders.queue_name(job.spec, job.labels),
    )


def find_pod(obs: Observation, attempt: int, role: str, try_: int | None = None) -> PodView | None:
    for pod in obs.pods:
        if (
            pod.attempt == attempt
            and pod.role == role
            and (try_ is None or pod.archive_try == try_)
        ):
            return pod
    return None
