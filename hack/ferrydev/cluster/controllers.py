"""The controllers of the local cluster and its first objects: kube-controller-manager,
kube-scheduler, kwok (simulated nodes with Ferry's pod stages), the kwok Nodes and the
default StorageClass.

Owns: the flags of those three processes (kube-controller-manager's client rate limit comes
from the cluster's settings; its host-path PVC provisioner is on, with volumes under
<cluster>/hostpath), copying hack/kwok-stages.yaml into the cluster directory, waiting until
the controllers hand out the `default` ServiceAccount, and creating the simulated nodes
(tainted on a real-node cluster, so that real pods land on the real node).

Must not: run any real pod (kwok only simulates them), or bind to anything but loopback.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import KWOK_NODE_ANNOTATION, KWOK_TAINT, REAL_NODE_LABEL, binary
from ferrydev.paths import KWOK_STAGES
from ferrydev.processes import free_port


def _serving_flags(kubeconfig: str) -> list[str]:
    """What the controller manager and the scheduler share: the kubeconfig for the API and
    for authenticating their own serving port (loopback, a free port), no leader election."""
    return [
        "--kubeconfig",
        kubeconfig,
        "--authentication-kubeconfig",
        kubeconfig,
        "--authorization-kubeconfig",
        kubeconfig,
        "--bind-address",
        "127.0.0.1",
        "--secure-port",
        str(free_port()),
        "--leader-elect=false",
    ]


def start(c: Runner) -> None:
    pki = c.root / "pki"
    kubeconfig = str(c.state.kubeconfig)
    c.spawn(
        "kube-controller-manager",
        [
            binary("kube-controller-manager"),
            *_serving_flags(kubeconfig),
            "--service-account-private-key-file",
            str(pki / "sa.key"),
            "--root-ca-file",
            str(pki / "serving" / "apiserver.crt"),
            "--enable-hostpath-provisioner=true",
            "--kube-api-qps",
            f"{c.controller_qps:g}",
            "--kube-api-burst",
            str(c.controller_burst),
            "--concurrent-job-syncs",
            "20",
            "--v",
            "1",
        ],
        env={"TMPDIR": str(c.root / "hostpath")},
    )
    c.spawn(
        "kube-scheduler",
        [
            binary("kube-scheduler"),
            *_serving_flags(kubeconfig),
            "--v",
            "1",
        ],
    )
    kwok_config = c.root / "kwok.yaml"
    shutil.copyfile(KWOK_STAGES, kwok_config)
    c.spawn(
        "kwok",
        [
            binary("kwok"),
            "--kubeconfig",
            kubeconfig,
            "--config",
            str(kwok_config),
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            # Node leases renewed every 10 s, as a kubelet does. Without them the nodes'
            # only heartbeat is a status patch about every 55 s, longer than the node
            # lifecycle controller's 50 s grace: every node went NotReady for 5 s each
            # minute, and every running pod was marked not ready and patched back.
            "--node-lease-duration-seconds",
            "40",
            "--node-ip",
            "10.250.0.1",
            "--cidr",
            "10.251.0.0/16",
            "--server-address",
            f"127.0.0.1:{free_port()}",
        ],
    )
    c.wait("kube-controller-manager", lambda: sa_ready(c, "default"), timeout=90)


def sa_ready(c: Runner, namespace: str) -> bool:
    return c.api_get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")[0] == 200


def bootstrap_objects(c: Runner) -> None:
    nodes: list[dict[str, Any]] = []
    for i in range(c.nodes):
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{i}",
                    "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                    "labels": {
                        "type": "kwok",
                        REAL_NODE_LABEL: "kwok",
                        "kubernetes.io/hostname": f"kwok-node-{i}",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
                "status": {
                    "allocatable": {
                        "cpu": c.node_cpu,
                        "memory": c.node_memory,
                        "pods": str(c.node_pods),
                        "nvidia.com/gpu": "4",
                    },
                    "capacity": {
                        "cpu": c.node_cpu,
                        "memory": c.node_memory,
                        "pods": str(c.node_pods),
                        "nvidia.com/gpu": "4",
                    },
                },
            }
        )
    if c.real_node:
        # Real pods must land on the real node: the simulated nodes refuse them unless
        # they tolerate this taint.
        for node in nodes:
            node["spec"] = {"taints": [KWOK_TAINT]}
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    items = {"apiVersion": "v1", "kind": "List", "items": [*nodes, storage_class]}
    c.kubectl("apply", "-f", "-", stdin=json.dumps(items))
