"""The real Kueue on the real-node cluster (fixture `real_kueue`) with the real MPI Operator:
an MPIJob with a queue is suspended at creation by Kueue's webhook, admitted within its
ClusterQueue's quota, unsuspended, run by the MPI Operator to Succeeded, and its Workload
(found by the MPIJob's UID) ends Finished."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Kube
from tests.e2e.test_mpi_operator import mpijob
from tests.kueue_support import KueueEnv, condition

pytestmark = pytest.mark.e2e


def test_an_mpijob_queued_in_kueue_is_admitted_and_runs(
    real_kube: Kube, real_kueue: KueueEnv, real_namespace: str
) -> None:
    kube, ns = real_kube, real_namespace
    queue = real_kueue.queue(ns, {"cpu": "1", "memory": "1Gi"})
    job = mpijob("queued", workers=2)
    job["metadata"]["labels"] = {real_kueue.queue_label: queue}
    for replica in job["spec"]["mpiReplicaSpecs"].values():
        container = replica["template"]["spec"]["containers"][0]
        container["resources"] = {"requests": {"cpu": "200m", "memory": "64Mi"}}
    created = json.loads(kube.create(job, "-n", ns, "-o", "json").stdout)
    assert created["spec"]["runPolicy"]["suspend"] is True  # Kueue's webhook
    uid = created["metadata"]["uid"]

    workload = kube.wait_for(
        lambda: (
            wl := real_kueue.workload_of(ns, uid),
            wl if (condition(wl, "Admitted") or {}).get("status") == "True" else None,
        )[1],
        timeout=60,
        what="the MPIJob's Workload admitted",
    )
    usage = {
        a["name"]: a["resourceUsage"] for a in workload["status"]["admission"]["podSetAssignments"]
    }
    assert usage == {
        "launcher": {"cpu": "200m", "memory": "64Mi"},
        "worker": {"cpu": "400m", "memory": "128Mi"},
    }
    kube.wait_for(
        lambda: not kube.get("mpijob", "queued", ns)["spec"]["runPolicy"].get("suspend"),
        timeout=30,
        what="the MPIJob unsuspended",
    )

    def succeeded() -> bool:
        conditions = kube.get("mpijob", "queued", ns).get("status", {}).get("conditions", [])
        return any(c["type"] == "Succeeded" and c["status"] == "True" for c in conditions)

    kube.wait_for(succeeded, timeout=150, what="the MPIJob Succeeded")
    kube.wait_for(
        lambda: (
            (condition(real_kueue.workload_of(ns, uid), "Finished") or {}).get("status") == "True"
        ),
        timeout=30,
        what="its Workload Finished",
    )
