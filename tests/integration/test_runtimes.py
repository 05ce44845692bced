"""Runtimes on a real kube-apiserver: an MPI App runs as a Kubeflow MPIJob, never as one pod.

Without the MPIJob CRD an MPI Job is Blocked/MPIOperatorMissing. With the real CRD of the
pinned MPI Operator installed (`ferrydev.cluster.mpicrd`, applied server-side) but no MPI
controller running, each attempt is exactly one MPIJob (and its workspace), owned by the Job,
whose launcher and worker templates Pod Security `restricted` admits; a foreign MPIJob holding
the attempt's name is never adopted (Blocked/NameTaken); cancel deletes the MPIJob; an MPIJob
deleted under the Job is an infrastructure failure retried as attempt 2. The MPI Operator
itself runs in the real-node tests."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ferry.api import names
from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    Watcher,
    app_manifest,
    conditions,
    get_job,
    job_manifest,
    patch,
    pods,
    pvcs,
    states,
    status,
)
from tests.integration.mpi_support import (
    foreign_mpijob,
    install_mpijob_crd,
    mpijobs,
    remove_mpijob_crd,
)

pytestmark = pytest.mark.integration

MPI_APP = {"type": "MPI", "mpi": {"workers": 2, "slotsPerWorker": 2}}


def _reason(kube: Kube, namespace: str, name: str) -> str:
    job = get_job(kube, namespace, name)
    return str(status(job).get("reason")) if job else ""


def _queued_on(kube: Kube, ns: str, job: str, mpijob: str) -> dict[str, Any]:
    """The Job once its MPIJob stands and it waits for the MPI Operator (none runs here)."""

    def check() -> dict[str, Any] | None:
        found = get_job(kube, ns, job)
        if not found or (status(found).get("state"), status(found).get("reason")) != (
            "Queued",
            "PodPending",
        ):
            return None
        return found if mpijob in str(status(found).get("message")) else None

    found: dict[str, Any] = kube.wait_for(check, timeout=90, what=f"{job} Queued on {mpijob}")
    return found


def test_an_mpi_app_is_blocked_without_the_crd_and_runs_as_one_mpijob_with_it(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    ns = namespace
    remove_mpijob_crd(kube)
    kube.create(app_manifest("mpi-sim", runtime=MPI_APP), "-n", ns)
    kube.create(job_manifest("ring", app="mpi-sim"), "-n", ns)
    kube.wait_for(
        lambda: _reason(kube, ns, "ring") == "MPIOperatorMissing",
        what="Blocked/MPIOperatorMissing without the MPIJob CRD",
    )
    job = get_job(kube, ns, "ring")
    assert job is not None
    assert conditions(job)["Accepted"]["reason"] == "MPIOperatorMissing"

    install_mpijob_crd(kube)
    try:
        # The operator looks for the CRD at most every 30 s and a Blocked Job is looked at
        # again within the resync (10 s here).
        job = _queued_on(kube, ns, "ring", "MPIJob ring-1")
        st = status(job)
        assert st["attempt"] == 1
        assert st["podName"] == "ring-1"
        assert "MPI Operator" in st["message"]
        (mpijob,) = mpijobs(kube, ns)
        meta = mpijob["metadata"]
        assert meta["name"] == "ring-1"
        uid = job["metadata"]["uid"]
        (ref,) = meta["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("Job", uid, True)
        assert meta["labels"][names.LABEL_JOB_UID] == uid
        spec = mpijob["spec"]
        assert spec["runPolicy"]["backoffLimit"] == 0
        assert spec["mpiReplicaSpecs"]["Worker"]["replicas"] == 2
        assert spec["slotsPerWorker"] == 2
        # Never run as one plain pod: its workspace and its MPIJob, nothing else.
        assert pods(kube, ns, "ring") == []
        assert [p["metadata"]["name"] for p in pvcs(kube, ns, "ring")] == ["ring-1"]
        assert "Running" not in states(job)
        # Later passes find the MPIJob, and make no other.
        assert [m["metadata"]["name"] for m in mpijobs(kube, ns)] == ["ring-1"]
        _templates_admitted_by_restricted(kube, mpijob)
    finally:
        remove_mpijob_crd(kube)


def _as_pod(mpijob: dict[str, Any], role: str) -> dict[str, Any]:
    """A pod as the MPI Operator v0.8.2 makes it from the MPIJob's `role` template: its SSH
    keys (a Secret) mounted in the first container, the launcher's hostfile (a ConfigMap)."""
    name = mpijob["metadata"]["name"]
    template = copy.deepcopy(mpijob["spec"]["mpiReplicaSpecs"][role]["template"])
    spec = template["spec"]
    spec["restartPolicy"] = "Never"
    spec["hostname"] = f"{name}-{role.lower()}"
    spec["subdomain"] = name
    first = spec["containers"][0]
    spec["volumes"].append(
        {
            "name": "ssh-auth",
            "secret": {
                "secretName": f"{name}-ssh",
                "items": [{"key": "ssh-privatekey", "path": "id_rsa"}],
            },
        }
    )
    first.setdefault("volumeMounts", []).append(
        {"name": "ssh-auth", "mountPath": mpijob["spec"]["sshAuthMountPath"]}
    )
    if role == "Launcher":
        spec["volumes"].append({"name": "mpi-job-config", "configMap": {"name": f"{name}-config"}})
        first["volumeMounts"].append({"name": "mpi-job-config", "mountPath": "/etc/mpi"})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": spec["hostname"], "labels": template["metadata"]["labels"]},
        "spec": spec,
    }


def _templates_admitted_by_restricted(kube: Kube, mpijob: dict[str, Any]) -> None:
    """Pod Security `restricted` (enforced on a namespace) admits the launcher and worker pods
    (a server-side dry run: admission runs, nothing is made)."""
    psa = f"t-psa-{mpijob['metadata']['uid'][:8]}"
    kube.run("create", "namespace", psa)
    try:
        kube.wait_for(
            lambda: (
                kube.run("get", "serviceaccount", "default", "-n", psa, check=False).returncode == 0
            ),
            what=f"default ServiceAccount in {psa}",
        )
        kube.run(
            "label",
            "namespace",
            psa,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        )
        for role in ("Launcher", "Worker"):
            pod = _as_pod(mpijob, role)
            done = kube.run(
                "create",
                "--dry-run=server",
                "-n",
                psa,
                "-f",
                "-",
                stdin=json.dumps(pod),
                check=False,
            )
            assert done.returncode == 0, f"{role}: {done.stderr}"
        # The check bites: a root worker is refused.
        root = _as_pod(mpijob, "Worker")
        root["spec"]["securityContext"]["runAsNonRoot"] = False
        refused = kube.run(
            "create", "--dry-run=server", "-n", psa, "-f", "-", stdin=json.dumps(root), check=False
        )
        assert refused.returncode != 0
        assert "violates PodSecurity" in refused.stderr
    finally:
        kube.run("delete", "namespace", psa, "--wait=false", check=False)


@pytest.mark.usefixtures("mpijob_crd")
def test_a_foreign_mpijob_with_the_attempts_name_is_not_adopted(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    ns = namespace
    foreign = foreign_mpijob("taken-1", "taken")
    kube.create(foreign, "-n", ns)
    kube.create(app_manifest("mpi-sim", runtime=MPI_APP), "-n", ns)
    kube.create(job_manifest("taken", app="mpi-sim"), "-n", ns)
    job = Watcher(kube, ns, "taken").state("Blocked", timeout=90)
    st = status(job)
    assert st["reason"] == "NameTaken", st
    assert "MPIJob taken-1" in st["message"]
    (left,) = mpijobs(kube, ns)
    assert left["metadata"]["uid"] == kube.get("mpijob", "taken-1", ns)["metadata"]["uid"]
    assert not left["metadata"].get("ownerReferences")
    assert "deletionTimestamp" not in left["metadata"]


@pytest.mark.usefixtures("mpijob_crd")
def test_cancel_deletes_the_mpijob_and_a_deleted_one_is_retried(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    ns = namespace
    kube.create(app_manifest("mpi-sim", runtime=MPI_APP), "-n", ns)
    kube.create(job_manifest("lost", app="mpi-sim"), "-n", ns)
    kube.create(job_manifest("stop", app="mpi-sim"), "-n", ns)
    _queued_on(kube, ns, "lost", "MPIJob lost-1")
    _queued_on(kube, ns, "stop", "MPIJob stop-1")

    # Deleted under the Job (by someone else): the platform's failure, retried as attempt 2.
    kube.run("delete", "mpijob", "lost-1", "-n", ns)
    job = _queued_on(kube, ns, "lost", "MPIJob lost-2")
    st = status(job)
    assert st["attempt"] == 2
    assert st["retries"]["infraFailures"] == 1
    assert "Retrying" in states(job)
    retry = next(h for h in st["history"] if h["state"] == "Retrying")
    assert "MPIJob lost-1 disappeared" in retry["message"]

    patch(kube, ns, "stop", {"cancel": True})
    done = Watcher(kube, ns, "stop").terminal()
    assert status(done)["state"] == "Cancelled"
    left = [m["metadata"]["name"] for m in mpijobs(kube, ns)]
    assert left == ["lost-2"]
    assert pvcs(kube, ns, "stop") == [] or all(
        p["metadata"].get("deletionTimestamp") for p in pvcs(kube, ns, "stop")
    )
