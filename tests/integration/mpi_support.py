"""The MPIJob CRD of the pinned Kubeflow MPI Operator on the test cluster, for the tests of
MPI Apps: installed (server-side: it is large) and removed (with every MPIJob) by the
`mpijob_crd` fixture (tests/integration/conftest.py) or by a test itself."""

from __future__ import annotations

from typing import Any

from ferry.api import names
from ferrydev.cluster.mpicrd import mpijob_crd_path
from tests.conftest import Kube

ESTABLISHED = '{.status.conditions[?(@.type=="Established")].status}'


def install_mpijob_crd(kube: Kube) -> None:
    """The real MPIJob CRD, Established."""
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(mpijob_crd_path()))
    kube.wait_for(
        lambda: (
            kube.run(
                "get", "crd", names.MPIJOB_CRD, "-o", f"jsonpath={ESTABLISHED}", check=False
            ).stdout.strip()
            == "True"
        ),
        what="the MPIJob CRD Established",
    )


def remove_mpijob_crd(kube: Kube) -> None:
    kube.run("delete", "crd", names.MPIJOB_CRD, "--wait=true", "--ignore-not-found", check=False)


def mpijobs(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return kube.list("mpijobs.kubeflow.org", namespace)


def foreign_mpijob(name: str, job: str) -> dict[str, Any]:
    """An MPIJob made by someone else, with Ferry's labels (forged) and an attempt's name."""
    return {
        "apiVersion": names.MPI_API_VERSION,
        "kind": "MPIJob",
        "metadata": {"name": name, "labels": {names.LABEL_JOB: job, names.LABEL_ATTEMPT: "1"}},
        "spec": {
            "slotsPerWorker": 1,
            "runPolicy": {"cleanPodPolicy": "Running"},
            "mpiReplicaSpecs": {
                "Launcher": {
                    "replicas": 1,
                    "template": {"spec": {"containers": [{"name": "c", "image": "x.org/y:1"}]}},
                }
            },
        },
    }
