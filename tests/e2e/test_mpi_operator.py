"""The Kubeflow MPI Operator on the real node (ferrydev.cluster.mpioperator), given MPIJobs
directly (no Ferry): it makes the launcher Job, the worker pods and the headless Service,
the launcher resolves every hostfile name through the cluster DNS, and the MPIJob's
conditions advance to Succeeded, or to Failed when the launcher exits non-zero.

The namespace enforces the restricted Pod Security Standard, so every pod the operator makes
is admitted under it (a refused pod would leave the MPIJob without its launcher or workers).
"""

from __future__ import annotations

from typing import Any

import pytest

from ferrydev.cluster.state import MPI_OPERATOR_NAMESPACE, REAL_NODE_NAME
from tests.conftest import Kube
from tests.e2e.test_real_node import BUSYBOX, RESTRICTED_CONTAINER, TOOLS

pytestmark = pytest.mark.e2e

# The launcher: print the hostfile, then resolve each worker's name as mpirun would (libc).
LAUNCHER = """
import socket, sys, time
text = open("/etc/mpi/hostfile").read()
print(text, flush=True)
deadline = time.time() + 90
for host in [line.split()[0] for line in text.splitlines() if line.strip()]:
    while True:
        try:
            print("resolved", host, socket.gethostbyname(host), flush=True)
            break
        except OSError:
            if time.time() > deadline:
                print("unresolved", host, flush=True)
                sys.exit(1)
            time.sleep(1)
sys.exit(int(sys.argv[1]))
"""
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _template(image: str, command: list[str]) -> dict[str, Any]:
    return {
        "spec": {
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": RESTRICTED_CONTAINER,
                }
            ],
        }
    }


def mpijob(name: str, workers: int, launcher_exit: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": name},
        "spec": {
            "slotsPerWorker": 1,
            "mpiImplementation": "OpenMPI",
            "sshAuthMountPath": "/home/user/.ssh",
            "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "Running"},
            "mpiReplicaSpecs": {
                "Launcher": {
                    "replicas": 1,
                    # Never (not the default OnFailure): the failed launcher pod stays, with
                    # its exit code; with OnFailure the Job controller deletes the pod it
                    # restarted in place once backoffLimit is reached.
                    "restartPolicy": "Never",
                    "template": _template(TOOLS, ["python3", "-c", LAUNCHER, str(launcher_exit)]),
                },
                "Worker": {
                    "replicas": workers,
                    "template": _template(BUSYBOX, ["sleep", "600"]),
                },
            },
        },
    }


def _conditions(kube: Kube, ns: str, name: str) -> dict[str, dict[str, Any]]:
    obj = kube.get("mpijob", name, ns)
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def _true(kube: Kube, ns: str, name: str, ctype: str) -> bool:
    cond = _conditions(kube, ns, name).get(ctype)
    return cond is not None and cond["status"] == "True"


def test_the_operator_runs_as_a_pod_that_leads(real_kube: Kube) -> None:
    """One Ready pod in its namespace, holding the leader Lease; its health server's :8080
    is the pod's own, and its ServiceAccount is bound to the manifests' ClusterRole only."""
    pods = real_kube.list("pods", MPI_OPERATOR_NAMESPACE)
    assert len(pods) == 1
    name = pods[0]["metadata"]["name"]
    assert pods[0]["spec"]["nodeName"] == REAL_NODE_NAME
    assert "hostNetwork" not in pods[0]["spec"]
    lease = real_kube.get("lease", "mpi-operator", MPI_OPERATOR_NAMESPACE)
    assert lease["spec"]["holderIdentity"].startswith(f"{name}_")
    binding = real_kube.get("clusterrolebinding", "mpi-operator", "")
    assert binding["roleRef"]["name"] == "mpi-operator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mpi-operator", "namespace": MPI_OPERATOR_NAMESPACE}
    ]
    can = real_kube.run(
        "auth", "can-i", "create", "clusterroles",
        f"--as=system:serviceaccount:{MPI_OPERATOR_NAMESPACE}:mpi-operator",
        check=False,
    )  # fmt: skip
    assert can.stdout.strip() == "no"


def test_an_mpijob_gets_its_launcher_workers_and_service_and_succeeds(
    real_kube: Kube, real_namespace: str
) -> None:
    kube, ns = real_kube, real_namespace
    kube.create(mpijob("hello", workers=2), "-n", ns)

    def children() -> dict[str, Any] | None:
        pods = {p["metadata"]["name"]: p for p in kube.list("pods", ns)}
        workers = [pods.get(f"hello-worker-{i}") for i in range(2)]
        if not all(w and w.get("status", {}).get("podIP") for w in workers):
            return None
        jobs = [j["metadata"]["name"] for j in kube.list("jobs.batch", ns)]
        services = {s["metadata"]["name"]: s for s in kube.list("services", ns)}
        if "hello-launcher" not in jobs or "hello" not in services:
            return None
        return {"workers": workers, "service": services["hello"]}

    try:
        seen = kube.wait_for(children, timeout=120, what="launcher Job, 2 workers, Service")
    except AssertionError:
        events = kube.run("get", "events", "-n", ns, check=False).stdout
        raise AssertionError(f"the MPIJob's children did not appear; events:\n{events}") from None
    assert seen["service"]["spec"]["clusterIP"] == "None"
    worker_ips = {w["metadata"]["name"]: w["status"]["podIP"] for w in seen["workers"]}
    for worker in seen["workers"]:
        refs = worker["metadata"]["ownerReferences"]
        assert [(r["kind"], r["name"]) for r in refs] == [("MPIJob", "hello")]
    kube.wait_for(
        lambda: _true(kube, ns, "hello", "Succeeded"), timeout=150, what="MPIJob Succeeded"
    )
    conditions = _conditions(kube, ns, "hello")
    assert conditions["Created"]["status"] == "True"
    assert conditions["Running"]["status"] == "False"  # it ran, and is over
    order = [conditions[t]["lastTransitionTime"] for t in ("Created", "Running", "Succeeded")]
    assert order == sorted(order), conditions
    launcher = kube.list("pods", ns, "-l", "training.kubeflow.org/job-role=launcher")
    log = kube.run("logs", launcher[0]["metadata"]["name"], "-n", ns).stdout
    for i in range(2):
        host = f"hello-worker-{i}.hello.{ns}.svc"
        assert f"{host} slots=1" in log
        assert f"resolved {host} {worker_ips[f'hello-worker-{i}']}" in log, log
    # cleanPodPolicy Running: the workers go when the MPIJob ends.
    kube.wait_for(
        lambda: not [p for p in kube.list("pods", ns) if "worker" in p["metadata"]["name"]],
        timeout=60,
        what="workers removed",
    )


def test_a_launcher_exiting_non_zero_fails_the_mpijob(real_kube: Kube, real_namespace: str) -> None:
    kube, ns = real_kube, real_namespace
    kube.create(mpijob("bad", workers=1, launcher_exit=3), "-n", ns)
    kube.wait_for(lambda: _true(kube, ns, "bad", "Failed"), timeout=150, what="MPIJob Failed")
    assert not _true(kube, ns, "bad", "Succeeded")
    launcher = kube.list("pods", ns, "-l", "training.kubeflow.org/job-role=launcher")
    terminated = launcher[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
