"""Fixtures for tests on the real node: a local cluster with `real_node=True` (containerd,
runc and the kubelet; see ferrydev.cluster and "A real node" in docs/development.md).

The cluster is started once per session, unless FERRY_TEST_CLUSTER_DIR names a running one
started with `hack/cluster up --real-node`, which is then reused. The real node needs root.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ferrydev.cluster import REAL_NODE_NAME, ClusterError, ClusterState, LocalCluster
from tests.conftest import ROOT, Kube, OperatorProcess

if TYPE_CHECKING:
    from tests.kueue_support import KueueEnv

#: The default store's bucket on the real-node cluster; Ferry's archive does not create buckets.
DEFAULT_BUCKET = "ferry"
TOOLS_IMAGE = "localhost/ferry/tools:0.1.0"


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    existing = os.environ.get("FERRY_TEST_CLUSTER_DIR")
    if existing:
        state = ClusterState.load(Path(existing))
        if not state.real_node:
            pytest.fail(
                f"the cluster in {existing} has no real node: `hack/cluster up --real-node`"
            )
        yield state
        return
    root = tmp_path_factory.mktemp("realcluster")
    local = LocalCluster(root, real_node=True)
    try:
        state = local.up()
    except ClusterError as exc:
        pytest.fail(
            f"the local cluster with a real node did not start: {exc}\n"
            "(run `FERRY_WITH_NODE=1 hack/install-deps.sh` as root to get what it needs)"
        )
    print(
        f"\nlocal cluster with a real node up in {state.started_seconds}s "
        f"(timings {state.timings})",
        file=sys.stderr,
    )
    try:
        yield state
    finally:
        local.down()


def node_image(cluster: ClusterState, name: str) -> str:
    """Build (or reuse, by its inputs' hash) an image that the cluster does not start with and
    import it into the real node's containerd unless it is there already; returns its name."""
    from ferrydev import images

    assert cluster.containerd_socket, "the real node's containerd socket is not recorded"
    try:
        built = images.build([name])
        images.import_images(cluster.containerd_socket, built)
    except images.ImageError as exc:
        pytest.fail(f"{name} could not be built or imported: {exc}")
    return name


@pytest.fixture(scope="session")
def openmpi_image(real_cluster: ClusterState) -> str:
    """localhost/ferry/openmpi:4.1.4 on the real node (ferrydev.images.mpi)."""
    from ferrydev.images import OPENMPI_IMAGE

    return node_image(real_cluster, OPENMPI_IMAGE)


@pytest.fixture(scope="session")
def lammps_image(real_cluster: ClusterState) -> str:
    """localhost/ferry/lammps:20220106 on the real node (ferrydev.images.mpi)."""
    from ferrydev.images import LAMMPS_IMAGE

    return node_image(real_cluster, LAMMPS_IMAGE)


@pytest.fixture(scope="session")
def real_kube(real_cluster: ClusterState) -> Kube:
    kube = Kube(real_cluster)
    kube.wait_for(
        lambda: "True" in kube.run(
            "get", "node", REAL_NODE_NAME, "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False,
        ).stdout,
        timeout=60,
        what=f"node {REAL_NODE_NAME} Ready",
    )  # fmt: skip
    return kube


@pytest.fixture(scope="session")
def real_kueue(real_kube: Kube) -> Iterator[KueueEnv]:
    """A real Kueue on the real-node cluster (tests.kueue_support.KueueEnv), started by the
    first test that asks for it (after the MPI Operator, so its MPIJob integration is set up
    at once) and stopped at the end of the session."""
    from tests import kueue_support

    process = kueue_support.start(real_kube)
    print(f"\nKueue up in {process.timings}", file=sys.stderr)
    try:
        yield kueue_support.KueueEnv(real_kube, process)
    finally:
        process.stop()


@pytest.fixture
def real_namespace(real_kube: Kube) -> Iterator[str]:
    """A fresh namespace that enforces the restricted Pod Security Standard."""
    name = f"r-{uuid.uuid4().hex[:10]}"
    real_kube.run("create", "namespace", name)
    real_kube.run("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    real_kube.wait_for(
        lambda: (
            real_kube.run("get", "serviceaccount", "default", "-n", name, check=False).returncode
            == 0
        ),
        what=f"default ServiceAccount in {name}",
    )
    yield name
    real_kube.run("delete", "namespace", name, "--wait=false", check=False)


class RealNodeOperator(OperatorProcess):
    """The operator for the real-node cluster: pods reach MinIO on the pod bridge, the tools
    image is the locally imported one and nothing is pulled."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            FERRY_DEFAULT_S3_ENDPOINT=self.state.minio_pod_endpoint,
            FERRY_DEFAULT_S3_BUCKET=DEFAULT_BUCKET,
            FERRY_TOOLS_IMAGE=TOOLS_IMAGE,
            FERRY_IMAGE_PULL_POLICY="Never",
            FERRY_RESYNC_SECONDS="5",
            FERRY_POD_START_GRACE_SECONDS="10",
        )
        return env


@pytest.fixture(scope="session")
def ferry_kube(real_kube: Kube) -> Kube:
    """The real-node cluster with Ferry's CRDs installed and the default bucket created."""
    from ferry.clients.s3 import S3Client

    real_kube.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    real_kube.run(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/apps.ferry.dev", "crd/jobs.ferry.dev",
    )  # fmt: skip
    state = real_kube.state
    S3Client(state.minio_endpoint, state.minio_access_key, state.minio_secret_key).make_bucket(
        DEFAULT_BUCKET
    )
    return real_kube


@pytest.fixture(scope="session")
def _real_operator_process(
    ferry_kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNodeOperator]:
    pidfile = ferry_kube.state.dir / "operator.pid"  # `make demo`'s operator, if any
    if pidfile.exists():
        pid = pidfile.read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline")
        if pid.isdigit() and cmdline.exists() and b"operator" in cmdline.read_bytes():
            pytest.fail(
                f"make demo's operator (pid {pid}) runs on this cluster and would reconcile the "
                f"tests' Jobs too: stop it first (kill {pid})"
            )
    op = RealNodeOperator(ferry_kube.state, tmp_path_factory.mktemp("real-operator"))
    yield op
    op.stop()


@pytest.fixture
def real_operator(_real_operator_process: RealNodeOperator) -> RealNodeOperator:
    """Ferry's operator as a process against the real-node cluster (its own, never the kwok
    cluster's), restarted if an earlier test stopped it."""
    _real_operator_process.start()
    return _real_operator_process


@pytest.fixture
def ferry_namespace(ferry_kube: Kube, real_namespace: str) -> str:
    """A restricted-PSS namespace with the default store's Secret `ferry-s3`."""
    state = ferry_kube.state
    ferry_kube.run(
        "create", "secret", "generic", "ferry-s3", "-n", real_namespace,
        f"--from-literal=accessKey={state.minio_access_key}",
        f"--from-literal=secretKey={state.minio_secret_key}",
    )  # fmt: skip
    return real_namespace
