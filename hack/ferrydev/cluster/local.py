"""The local cluster as a whole: `LocalCluster.up()` in order, `stop()` and `status()` by pid.

Owns: the start order (binaries present; the real node's prerequisites, PKI and bridge;
credentials, etcd, apiserver, controllers, the first objects, MinIO, the real node), tearing
everything down when any step fails, the start-up time, and stopping a cluster from its
state.json alone (the real node first, then the rest in reverse start order, then the
node's network), which `hack/cluster down` and other processes rely on.

Must not: know a component's flags (its module does), or stop processes not recorded in the
cluster's state.json.
"""

from __future__ import annotations

import time
from pathlib import Path

from ferrydev.cluster import apiserver, controllers, etcd, minio, network, node
from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import ClusterState, binary
from ferrydev.processes import alive, stop_groups


class LocalCluster(Runner):
    """Start, check and stop the local cluster rooted at `root` (settings: see `Runner`)."""

    def up(self) -> ClusterState:
        """Start everything; returns the state with the start-up time in it."""
        t0 = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "hostpath").mkdir(exist_ok=True)
        try:
            for name in (
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kwok",
            ):
                binary(name)
            if self.with_minio:
                binary("minio")
            if self.real_node:
                node.check_prerequisites(self)
                node.write_pki(self)
                network.setup_bridge(self)
            apiserver.write_credentials(self)
            etcd.start(self)
            apiserver.start(self)
            controllers.start(self)
            controllers.bootstrap_objects(self)
            if self.with_minio:
                minio.start(self)
            if self.real_node:
                node.start(self)
        except BaseException:
            self.down()
            raise
        self.state.started_seconds = round(time.monotonic() - t0, 2)
        self.state.save()
        return self.state

    def down(self) -> None:
        stop(self.root, state=self.state)


def stop(root: Path, pids: dict[str, int] | None = None, state: ClusterState | None = None) -> None:
    """Stop every process of the cluster in `root` (the real node first, then the rest in
    reverse start order)."""
    if state is None:
        try:
            state = ClusterState.load(root)
        except FileNotFoundError:
            state = None
    if pids is None:
        if state is None:
            return
        pids = state.pids
    if state is not None and state.real_node:
        node.stop(state)
    stop_groups([pids[name] for name in reversed(list(pids))], timeout=15)
    if state is not None and state.real_node:
        network.release(state)


def status(root: Path) -> dict[str, bool]:
    state = ClusterState.load(root)
    alive_by_name = {}
    for name, pid in state.pids.items():
        alive_by_name[name] = alive(pid)
    return alive_by_name
