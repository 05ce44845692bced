"""Fixtures for tests on the real node: a local cluster with `real_node=True` (containerd,
runc and the kubelet; see hack/localcluster.py and "A real node" in docs/development.md).

The cluster is started once per session, unless FERRY_TEST_CLUSTER_DIR names a running one
started with `hack/cluster up --real-node`, which is then reused. The real node needs root.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))

from localcluster import REAL_NODE_NAME, ClusterError, ClusterState, LocalCluster

from tests.conftest import Kube


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
