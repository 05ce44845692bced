"""A local cluster's fixed facts, its saved state (state.json) and its error type.

Owns: `ClusterState` (ports, credentials, pids, timings; saved as state.json in the cluster
directory so that another process can find and stop the cluster), `ClusterError`, `binary()`
(a cached cluster binary or an error saying how to build it) and the constants of the
simulated and the real node (labels, taint, the pod bridge and its range).

Must not: start, stop or wait for anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ferrydev.paths import BIN

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

# The real node (real_node=True). One per machine at a time: the bridge and range are fixed.
REAL_NODE_NAME = "ferry-node"
REAL_NODE_LABEL = "ferry.dev/node"  # =real on ferry-node, =kwok on the simulated nodes
KWOK_TAINT = {"key": KWOK_NODE_ANNOTATION, "value": "fake", "effect": "NoSchedule"}
POD_BRIDGE = "ferry0"
POD_CIDR = "10.88.0.0/16"
POD_GATEWAY = "10.88.0.1"
CNI_BIN_DIR = "/usr/lib/cni"
# Cluster DNS (real node): CoreDNS on the bridge's gateway, port 53 (`dns`); the kubelet's
# clusterDNS and clusterDomain. Its own user (token auth) reads Services and EndpointSlices.
CLUSTER_DOMAIN = "cluster.local"
CLUSTER_DNS = POD_GATEWAY
DNS_USER = "ferry-dns"
# The Kubeflow MPI Operator (real node): a Deployment in this namespace (`mpioperator`).
MPI_OPERATOR_NAMESPACE = "mpi-operator"
BRIDGE_OWNER = Path("/run/ferry") / f"{POD_BRIDGE}.owner"  # the cluster dir using the bridge
# The kubelet sets these at start (it is not asked to protect kernel defaults); they are put
# back on `down`.
KUBELET_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says what to do."""


def binary(name: str) -> str:
    """Path of a cluster binary, or a ClusterError that says how to get it."""
    path = BIN / name
    if path.exists():
        return str(path)
    raise ClusterError(f"{path} not found: run hack/build-tools.sh (builds and caches it)")


@dataclass
class ClusterState:
    """What a running cluster is made of; saved as state.json in its directory."""

    root: str
    apiserver_port: int = 0
    # Where kube-apiserver listens: loopback, or on a real-node cluster the pod bridge's
    # gateway address (so that pods, the in-cluster operator among them, reach it too).
    apiserver_host: str = "127.0.0.1"
    etcd_port: int = 0
    minio_port: int = 0
    token: str = ""
    # The cluster DNS's own token (user ferry-dns: read-only, see `dns`).
    dns_token: str = ""
    minio_access_key: str = ""
    minio_secret_key: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    started_seconds: float = 0.0
    minio_host: str = "127.0.0.1"
    # MinIO as pods on the real node reach it (http://10.88.0.1:PORT); empty without one.
    minio_pod_endpoint: str = ""
    real_node: bool = False
    node_ip: str = ""
    containerd_socket: str = ""
    bridge_created: bool = False
    saved_sysctls: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return Path(self.root)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.apiserver_host}:{self.apiserver_port}"

    @property
    def minio_endpoint(self) -> str:
        """MinIO as the host reaches it (on a real-node cluster, pods reach it too)."""
        return f"http://{self.minio_host}:{self.minio_port}"

    def save(self) -> None:
        (self.dir / "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, root: Path) -> ClusterState:
        data = json.loads((root / "state.json").read_text())
        return cls(**data)
