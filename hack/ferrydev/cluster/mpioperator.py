"""The Kubeflow MPI Operator on the real node: its CRD, RBAC, and its controller as a pod.

Owns: installing the MPIJob CRD from the operator's module (`mpicrd.mpijob_crd_path`; about
650 kB, so server-side apply) and its own RBAC from the same module's manifests
(`mpicrd.module_dir`: the
`mpi-operator` ClusterRole and ServiceAccount; the binding to that ServiceAccount in
`MPI_OPERATOR_NAMESPACE`, since the manifests leave its namespace to kustomize), the
controller's Deployment (image `localhost/ferry/mpi-operator:<version>`, restricted Pod
Security, the apiserver by its bridge address since there is no kube-proxy), and waiting
until its pod is Ready and holds the leader Lease (it runs its controller only then).

Why a pod: the controller binds its health server to :8080 on every interface, which in a
pod is the pod's own network namespace; a pod also gets its ServiceAccount token, a restart
policy and `kubectl logs` as on any cluster, with nothing on the host to clean up.

Must not: run before the kubelet is Ready (the pod needs the real node), or grant the
controller more than its manifests' ClusterRole.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from ferrydev.cluster.mpicrd import module_dir, mpijob_crd_path
from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import MPI_OPERATOR_NAMESPACE, REAL_NODE_LABEL, ClusterError
from ferrydev.images import MPI_OPERATOR_IMAGE

NAME = "mpi-operator"  # Deployment, ServiceAccount, ClusterRole, its binding and the Lease
CRD = "mpijobs.kubeflow.org"
USER = 65532
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
}


def deployment(apiserver_host: str, apiserver_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": MPI_OPERATOR_NAMESPACE, "labels": {"app": NAME}},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {
                    "serviceAccountName": NAME,
                    "nodeSelector": {REAL_NODE_LABEL: "real"},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": USER,
                        "runAsGroup": USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": NAME,
                            "image": MPI_OPERATOR_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": [
                                "-alsologtostderr",
                                "--lock-namespace",
                                MPI_OPERATOR_NAMESPACE,
                                "--kube-api-qps",
                                "50",
                                "--kube-api-burst",
                                "100",
                            ],
                            # In-cluster login at the apiserver's bridge address: the
                            # `kubernetes` Service's ClusterIP does not route (no kube-proxy).
                            "env": [
                                {"name": "KUBERNETES_SERVICE_HOST", "value": apiserver_host},
                                {"name": "KUBERNETES_SERVICE_PORT", "value": str(apiserver_port)},
                            ],
                            "securityContext": RESTRICTED,
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8080},
                                "periodSeconds": 2,
                            },
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                        }
                    ],
                },
            },
        },
    }


def start(c: Runner) -> None:
    """The CRD, the namespace, RBAC and the Deployment; waits until the controller leads."""
    crd = mpijob_crd_path()
    manifests = module_dir() / "manifests" / "base"
    apply(c, "--server-side", "--force-conflicts", "-f", str(crd))
    # Polled here: kubectl 1.32's `wait` fails on a CRD whose status has no conditions yet.
    c.wait("kube-apiserver", lambda: crd_established(c), timeout=60)
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": MPI_OPERATOR_NAMESPACE,
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        },
    }
    c.kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
    c.kubectl("apply", "-f", str(manifests / "cluster-role.yaml"))
    c.kubectl("apply", "-n", MPI_OPERATOR_NAMESPACE, "-f", str(manifests / "service-account.yaml"))
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": NAME, "labels": {"app": NAME}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": MPI_OPERATOR_NAMESPACE}],
    }
    apply(c, "-f", "-", stdin=json.dumps(binding))
    apply(
        c, "-f", "-", stdin=json.dumps(deployment(c.state.apiserver_host, c.state.apiserver_port))
    )
    wait_leading(c, timeout=120)


def apply(c: Runner, *args: str, stdin: str | None = None) -> None:
    proc = c.kubectl("apply", *args, stdin=stdin, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"kubectl apply {' '.join(args)}: {proc.stderr.strip()}")


def crd_established(c: Runner) -> bool:
    code, body = c.api_get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")
    # A new CRD's status is {"conditions": null} at first.
    status = (json.loads(body).get("status") or {}) if code == 200 else {}
    conditions = status.get("conditions") or []
    return any(x["type"] == "Established" and x["status"] == "True" for x in conditions)


def leader_pod(c: Runner) -> str | None:
    """The Ready pod of the Deployment that holds the leader Lease, if any."""
    code, body = c.api_get(
        f"/api/v1/namespaces/{MPI_OPERATOR_NAMESPACE}/pods?labelSelector=app%3D{NAME}"
    )
    if code != 200:
        return None
    ready = [
        p["metadata"]["name"]
        for p in json.loads(body)["items"]
        if any(
            cond["type"] == "Ready" and cond["status"] == "True"
            for cond in p.get("status", {}).get("conditions", [])
        )
    ]
    code, body = c.api_get(
        f"/apis/coordination.k8s.io/v1/namespaces/{MPI_OPERATOR_NAMESPACE}/leases/{NAME}"
    )
    if code != 200:
        return None
    holder = json.loads(body).get("spec", {}).get("holderIdentity", "")
    # The identity is `<hostname>_<uuid>`; a pod's hostname is its name.
    return next((p for p in ready if holder.startswith(f"{p}_")), None)


def wait_leading(c: Runner, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c.check_alive("kubelet")
        if leader_pod(c):
            return
        time.sleep(0.5)
    raise ClusterError(
        f"the MPI Operator did not become ready (pod Ready, leader Lease held) within "
        f"{timeout:.0f}s:\n{diagnose(c)}"
    )


def diagnose(c: Runner) -> str:
    """Its pods and the end of their logs, for an error message."""
    ns = ["-n", MPI_OPERATOR_NAMESPACE]
    out = []
    for args in (
        ["get", "pods", "-o", "wide", *ns],
        ["logs", f"deployment/{NAME}", "--tail", "30", *ns],
        ["get", "events", "--sort-by=.lastTimestamp", *ns],
    ):
        try:
            proc = c.kubectl(*args, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            out.append(f"kubectl {' '.join(args)}: {exc}")
            continue
        out.append(f"$ kubectl {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(out)
