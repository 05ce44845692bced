"""Runners: one implementation of `ferry.decisions.runner.Runner` per backend.

Owns: the registry of runtimes Ferry can run (`RUNNERS`, by `App.spec.runtime.type`). An App
whose runtime has no runner here is Blocked with RuntimeUnavailable, never run some other way.
Must not: do I/O or import the handlers (import-linter checks it).
"""

from __future__ import annotations

from collections.abc import Mapping

from ferry.decisions.runner import Runner
from ferry.runners.pod import PodRunner

#: The runtimes this Ferry runs. MPI is not here until its runner exists.
RUNNERS: Mapping[str, Runner] = {PodRunner.runtime: PodRunner()}

__all__ = ["RUNNERS", "PodRunner"]
