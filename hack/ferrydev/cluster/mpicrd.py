"""The Kubeflow MPI Operator's MPIJob CRD, from its Go module at the pinned version.

Owns: fetching `github.com/kubeflow/mpi-operator` at `MPI_OPERATOR_VERSION` (hack/versions.env)
from the Go module proxy (`go mod download` of that exact version: the proxy refuses the
module's version list) and keeping its `manifests/base/kubeflow.org_mpijobs.yaml` under
$FERRY_CACHE/mpi-operator/<version>/, so a warm start touches no network. The CRD is large
(~320 kB): apply it server-side. Must not: talk to a cluster.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ferrydev.cluster.gomodule import source_dir
from ferrydev.paths import CACHE, versions

MODULE = "github.com/kubeflow/mpi-operator"
#: The CRD inside the module.
CRD_IN_MODULE = Path("manifests/base/kubeflow.org_mpijobs.yaml")


def mpi_operator_version() -> str:
    return versions()["MPI_OPERATOR_VERSION"]


def module_dir(version: str | None = None) -> Path:
    """The module's source directory at `version` (downloaded into Go's module cache when
    not there yet); read-only, as Go keeps it."""
    version = version or mpi_operator_version()
    return source_dir(MODULE, version, CACHE / "mpi-operator" / version / "download")


def mpijob_crd_path(version: str | None = None) -> Path:
    """The MPIJob CRD (`kubeflow.org_mpijobs.yaml`) of the pinned MPI Operator, cached."""
    version = version or mpi_operator_version()
    cached = CACHE / "mpi-operator" / version / CRD_IN_MODULE.name
    if not cached.exists():
        source = module_dir(version) / CRD_IN_MODULE
        partial = cached.with_suffix(".partial")
        shutil.copyfile(source, partial)
        partial.replace(cached)
    return cached
