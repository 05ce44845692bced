"""Runtimes on a real kube-apiserver: an App whose runtime Ferry cannot run is never run as
something else.

An MPI App without the MPIJob CRD is Blocked/MPIOperatorMissing; with the CRD installed (a
CRD of the real one's name, group, version and kind) but no MPI runner in this Ferry, it is
Blocked/RuntimeUnavailable, and no PVC or pod is ever made for it."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.api import names
from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    app_manifest,
    conditions,
    get_job,
    job_manifest,
    pods,
    pvcs,
    states,
    status,
)

pytestmark = pytest.mark.integration

MPIJOB_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": names.MPIJOB_CRD},
    "spec": {
        "group": "kubeflow.org",
        "scope": "Namespaced",
        "names": {"plural": "mpijobs", "singular": "mpijob", "kind": "MPIJob"},
        "versions": [
            {
                "name": "v2beta1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def _reason(kube: Kube, namespace: str, name: str) -> str:
    job = get_job(kube, namespace, name)
    return str(status(job).get("reason")) if job else ""


def test_an_mpi_app_is_blocked_with_the_reason_that_applies(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    app = app_manifest("mpi-sim", runtime={"type": "MPI", "mpi": {"workers": 2}})
    kube.create(app, "-n", namespace)
    kube.create(job_manifest("ring", app="mpi-sim"), "-n", namespace)
    kube.wait_for(
        lambda: _reason(kube, namespace, "ring") == "MPIOperatorMissing",
        what="Blocked/MPIOperatorMissing without the MPIJob CRD",
    )

    kube.create(MPIJOB_CRD)
    try:
        kube.run("wait", "--for=condition=Established", f"crd/{names.MPIJOB_CRD}")
        # The operator looks for the CRD at most every 30 s and a Blocked Job is looked at
        # again within the resync (10 s here).
        kube.wait_for(
            lambda: _reason(kube, namespace, "ring") == "RuntimeUnavailable",
            timeout=90,
            what="Blocked/RuntimeUnavailable once the CRD exists",
        )
        job = get_job(kube, namespace, "ring")
        assert job is not None
        st = status(job)
        assert st["state"] == "Blocked"
        assert "runs as MPI" in st["message"]
        assert conditions(job)["Accepted"]["status"] == "False"
        assert conditions(job)["Accepted"]["reason"] == "RuntimeUnavailable"
        # Never run as one plain pod: nothing was made for it, and it was never Queued.
        assert pods(kube, namespace, "ring") == []
        assert pvcs(kube, namespace, "ring") == []
        assert "Queued" not in states(job)
    finally:
        kube.run("delete", "crd", names.MPIJOB_CRD, "--wait=true", check=False)
