"""Runners: one implementation of `ferry.decisions.runner.Runner` per backend.

Owns: the registry of runtimes Ferry can run (`RUNNERS`, by `App.spec.runtime.type`): a pod
(`pod.PodRunner`) or a Kubeflow MPIJob (`mpi.MPIRunner`). An App whose runtime has no runner
here is Blocked with RuntimeUnavailable, never run some other way.
Must not: do I/O or import the handlers (import-linter checks it).
"""

from __future__ import annotations

from collections.abc import Mapping

from ferry.decisions.runner import Runner
from ferry.runners.mpi import MPIRunner
from ferry.runners.pod import PodRunner

#: The runtimes this Ferry runs.
RUNNERS: Mapping[str, Runner] = {PodRunner.runtime: PodRunner(), MPIRunner.runtime: MPIRunner()}

__all__ = ["RUNNERS", "MPIRunner", "PodRunner"]
