"""The real node, `ferry-node`, as a whole: what it needs, its PKI, starting it in order and
stopping it (containers, mounts, cgroups) before the rest of the cluster.

Owns: the prerequisite check (containerd, runc, ctr, ip, iptables, the CNI plugins, root, a
free pod bridge), the kubelet client CA and the apiserver's client certificate under it,
the start order (containerd, images, the cluster DNS, kubelet, host-path watcher, the MPI
Operator) with its timings, and the
stop order (watcher and kubelet, then containerd and its containers, then mounts and
cgroups under the cluster directory).

Must not: run twice on one machine (the bridge is fixed: `network.bridge_owner` says who
has it), or release the network here (`network.release`, after MinIO has stopped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from ferrydev.cluster import containerd, dns, kubelet, mpioperator, network
from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import CNI_BIN_DIR, POD_BRIDGE, ClusterError, ClusterState, binary
from ferrydev.mounts import unmount_under
from ferrydev.processes import terminate


def check_prerequisites(c: Runner) -> None:
    missing = [
        cmd for cmd in ("containerd", "runc", "ctr", "ip", "iptables") if not shutil.which(cmd)
    ]
    missing += [
        p
        for p in ("bridge", "host-local", "portmap", "loopback")
        if not Path(CNI_BIN_DIR, p).exists()
    ]
    if missing:
        raise ClusterError(
            f"the real node needs {', '.join(missing)}: run FERRY_WITH_NODE=1 hack/install-deps.sh"
        )
    if os.geteuid() != 0:
        raise ClusterError("the real node needs root (containerd, the kubelet, a bridge)")
    for name in ("kubelet", "coredns"):
        binary(name)
    other = network.bridge_owner()
    if other and other != str(c.root):
        raise ClusterError(
            f"{POD_BRIDGE} belongs to the real-node cluster in {other}; run "
            f"`hack/cluster down --dir {other}` first (one real node per machine)"
        )


def write_pki(c: Runner) -> None:
    """A CA for the kubelet's x509 authn and the apiserver's client certificate under it."""
    pki = c.root / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "kubelet-client.crt").exists():
        return

    def ssl_cmd(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ssl_cmd(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-keyout", str(pki / "kubelet-ca.key"), "-out", str(pki / "kubelet-ca.crt"),
        "-subj", "/CN=ferry-kubelet-client-ca",
    )  # fmt: skip
    ssl_cmd(
        "req", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(pki / "kubelet-client.key"), "-out", str(pki / "kubelet-client.csr"),
        "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client",
    )  # fmt: skip
    ssl_cmd(
        "x509", "-req", "-days", "30", "-in", str(pki / "kubelet-client.csr"),
        "-CA", str(pki / "kubelet-ca.crt"), "-CAkey", str(pki / "kubelet-ca.key"),
        "-CAcreateserial", "-out", str(pki / "kubelet-client.crt"),
    )  # fmt: skip


def start(c: Runner) -> None:
    t0 = time.monotonic()
    containerd.start(c)
    containerd.import_images(c)
    t1 = time.monotonic()
    dns.start(c)
    c.state.timings["coredns_ready"] = round(time.monotonic() - t1, 2)
    t1 = time.monotonic()
    kubelet.start(c)
    kubelet.start_hostpath_perms(c)
    c.state.timings["kubelet_ready"] = round(time.monotonic() - t1, 2)
    t1 = time.monotonic()
    mpioperator.start(c)
    c.state.timings["mpi_operator_ready"] = round(time.monotonic() - t1, 2)
    c.state.timings["real_node"] = round(time.monotonic() - t0, 2)


def stop(state: ClusterState) -> None:
    """Stop the kubelet, then every container it started, then containerd; undo the node's
    mounts and cgroups (`network.release` does the bridge and sysctls, after MinIO)."""
    pids = state.pids
    for name in ("hostpath-perms", "kubelet"):
        if name in pids:
            terminate(pids[name], timeout=15)
    containerd.stop(state)
    unmount_under(Path(state.root))
    kubelet.remove_kubepods_cgroups()
