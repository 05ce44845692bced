"""`hack/cluster up|down|status|env`: Ferry's local cluster from the command line.

Owns: the arguments of hack/cluster (the cluster directory, default $FERRY_CLUSTER_DIR or
.cluster/ in the repository; nodes; MinIO; audit log; real node), refusing to start a second
cluster in a directory whose processes run, and printing what a user needs (KUBECONFIG,
MinIO's endpoint, the real node's timings).

Must not: start or stop any process itself (`ferrydev.cluster` does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ferrydev.cluster import ClusterError, ClusterState, LocalCluster, status, stop
from ferrydev.cluster.state import CLUSTER_DNS, CLUSTER_DOMAIN, MPI_OPERATOR_NAMESPACE
from ferrydev.paths import ROOT

DEFAULT_DIR = Path(os.environ.get("FERRY_CLUSTER_DIR", ROOT / ".cluster"))
DESCRIPTION = """hack/cluster up|down|status|env: Ferry's local cluster (see docs/development.md).

The cluster lives in $FERRY_CLUSTER_DIR (default: .cluster/ in the repository).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=DESCRIPTION)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--no-minio", action="store_true")
    parser.add_argument("--audit", action="store_true", help="write the apiserver audit log")
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="also run a real node (containerd + kubelet, root only; see docs/development.md)",
    )
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    if args.command == "up":
        if (root / "state.json").exists() and any(status(root).values()):
            print(
                f"a cluster is already running in {root}; run `hack/cluster down` first",
                file=sys.stderr,
            )
            return 1
        try:
            state = LocalCluster(
                root,
                nodes=args.nodes,
                with_minio=not args.no_minio,
                audit=args.audit,
                real_node=args.real_node,
            ).up()
        except ClusterError as exc:
            print(f"cluster failed to start: {exc}", file=sys.stderr)
            return 1
        print(f"cluster up in {state.started_seconds}s")
        print(f"  export KUBECONFIG={state.kubeconfig}")
        if state.minio_port:
            print(f"  MinIO: {state.minio_endpoint} (credentials in {root}/state.json)")
        if state.real_node:
            print(
                f"  real node: ferry-node at {state.node_ip}; timings {json.dumps(state.timings)}"
            )
            print(f"  MinIO for pods: {state.minio_pod_endpoint}")
            print(
                f"  cluster DNS: CoreDNS on {CLUSTER_DNS}:53 ({CLUSTER_DOMAIN}), "
                f"log {root}/coredns.log"
            )
            print(
                f"  MPI Operator: kubectl logs -n {MPI_OPERATOR_NAMESPACE} deployment/mpi-operator"
            )
        return 0
    if args.command == "down":
        stop(root)
        print(f"cluster in {root} stopped")
        return 0
    if args.command == "env":
        state = ClusterState.load(root)
        print(f"export KUBECONFIG={state.kubeconfig}")
        print(f"export FERRY_TEST_S3_ENDPOINT={state.minio_endpoint}")
        if state.minio_pod_endpoint:
            print(f"export FERRY_DEFAULT_S3_ENDPOINT={state.minio_pod_endpoint}")
        return 0
    try:
        print(json.dumps(status(root), indent=2))
    except FileNotFoundError:
        print("no cluster", file=sys.stderr)
        return 1
    return 0
