"""Ferry's local Kubernetes cluster and MinIO, built from registry parts, on loopback only.

Owns (one module each): etcd, kube-apiserver with its credentials and kubeconfig
(`apiserver`), kube-controller-manager, kube-scheduler and kwok with the simulated nodes
(`controllers`), MinIO (`minio`), and with `real_node=True` one real node, `ferry-node`:
containerd with the images of `ferrydev.images` (`containerd`), the kubelet (`kubelet`), the
pod bridge `ferry0` on 10.88.0.0/16 (`network`), the cluster DNS (`dns`: CoreDNS on the
bridge's gateway), the Kubeflow MPI Operator as a pod with its CRD (`mpioperator`, the CRD
from `mpicrd`; an exact Go module version's source, for it and for Kueue, from `gomodule`) and
their order (`node`); MinIO and the
apiserver then listen on the bridge's gateway (10.88.0.1), which both the host and the pods
reach, and the kwok nodes are tainted so that pods land on the real node. `local` puts them
in order (`LocalCluster.up()`, `stop()`, `status()`); `runner` spawns and waits for each
child process (its log in the cluster directory, its pid in state.json); `state` holds what a
running cluster is made of. Not part of `up`: a real Kueue (`kueue`, with its object builders
and label names in `kueueobjects`), started on a running cluster by the tests that need it.
See "A real node" and "Kueue" in docs/development.md.

Used by `hack/cluster up|down|status|env` (`ferrydev.cli`), the pytest fixtures in
tests/conftest.py and tests/e2e/conftest.py, and bench/lifecycle.py. Binaries come from
`hack/build-tools.sh` (cached under ~/.cache/ferry/bin), etcd included: Debian's etcd 3.4.23
lacks the watch-progress support that current clients (kwok's) need.

Must not: listen on anything but loopback and the pod bridge, or stop processes that the
cluster's state.json does not name.
"""

from ferrydev.cluster.local import LocalCluster, status, stop
from ferrydev.cluster.state import (
    KWOK_NODE_ANNOTATION,
    POD_GATEWAY,
    REAL_NODE_LABEL,
    REAL_NODE_NAME,
    ClusterError,
    ClusterState,
    binary,
)

__all__ = [
    "KWOK_NODE_ANNOTATION",
    "POD_GATEWAY",
    "REAL_NODE_LABEL",
    "REAL_NODE_NAME",
    "ClusterError",
    "ClusterState",
    "LocalCluster",
    "binary",
    "status",
    "stop",
]
