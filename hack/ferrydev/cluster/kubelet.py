"""The real node's kubelet (`ferry-node`), and what it leaves behind: sysctls, cgroups, and
host-path volumes that pods running as non-root cannot write.

Owns: the KubeletConfiguration (API only on the pod bridge, healthz on loopback, x509 authn
by the apiserver's client CA, cgroupfs, no image GC, the cluster DNS and domain), saving the
sysctls the kubelet changes (`network.release` puts them back), starting the kubelet and
waiting until its Node is Ready with a fresh heartbeat, the host-path permissions watcher
(hostpath.py, run as a script), and removing the kubelet's empty cgroups on teardown.

Must not: run without containerd (`containerd.start` comes first), or remove a busy cgroup.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import (
    CLUSTER_DNS,
    CLUSTER_DOMAIN,
    KUBELET_SYSCTLS,
    REAL_NODE_LABEL,
    REAL_NODE_NAME,
    binary,
)
from ferrydev.processes import free_port

HOSTPATH_SCRIPT = Path(__file__).with_name("hostpath.py")


def save_sysctls(c: Runner) -> None:
    for key in KUBELET_SYSCTLS:
        path = Path("/proc/sys", *key.split("."))
        with contextlib.suppress(OSError):
            c.state.saved_sysctls[key] = path.read_text().strip()
    c.state.save()


def start(c: Runner) -> None:
    kubelet_dir = c.root / "kubelet"
    kubelet_dir.mkdir(parents=True, exist_ok=True)
    healthz = free_port()
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # The kubelet's API only on the pod bridge; its health check on loopback.
        "address": c.state.node_ip,
        "port": free_port(),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(c.root / "pki" / "kubelet-ca.crt")},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{c.state.containerd_socket}",
        "failSwapOn": False,
        "registerNode": True,
        "podLogsDir": str(kubelet_dir / "pod-logs"),
        "volumePluginDir": str(kubelet_dir / "volume-plugins"),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
        "maxPods": 110,
        "resolvConf": "/etc/resolv.conf",
        # Pods (dnsPolicy ClusterFirst) resolve through the cluster DNS (`dns`: CoreDNS on
        # the bridge's gateway), with the cluster domain's search path.
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": CLUSTER_DOMAIN,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }
    path = c.root / "kubelet.yaml"
    path.write_text(json.dumps(config, indent=2))
    save_sysctls(c)
    since = time.time() - 1
    c.spawn(
        "kubelet",
        [
            binary("kubelet"),
            "--config",
            str(path),
            "--kubeconfig",
            str(c.state.kubeconfig),
            "--root-dir",
            str(kubelet_dir),
            "--hostname-override",
            REAL_NODE_NAME,
            "--node-ip",
            c.state.node_ip,
            "--node-labels",
            f"{REAL_NODE_LABEL}=real",
            "--v",
            "1",
        ],
    )
    c.wait("kubelet", lambda: node_ready(c, REAL_NODE_NAME, since), timeout=120)


def node_ready(c: Runner, name: str, since: float) -> bool:
    """Ready, with a heartbeat after `since` (a Node that an earlier run of this directory
    left in etcd is Ready already)."""
    code, body = c.api_get(f"/api/v1/nodes/{name}")
    if code != 200:
        return False
    for cond in json.loads(body).get("status", {}).get("conditions", []):
        if cond["type"] == "Ready" and cond["status"] == "True":
            beat = datetime.fromisoformat(cond["lastHeartbeatTime"].replace("Z", "+00:00"))
            return beat.timestamp() >= since
    return False


def start_hostpath_perms(c: Runner) -> None:
    """kube-controller-manager's host-path provisioner makes each volume directory 0750
    root:root, which pods running as non-root (Ferry's, under the restricted Pod Security
    Standard) cannot write; a small watcher opens each new one up (0777)."""
    # Run as a file (it needs only the standard library), so that it works whichever Python
    # runs the cluster, with or without ferrydev installed.
    c.spawn("hostpath-perms", [sys.executable, str(HOSTPATH_SCRIPT), str(time.time())])


def remove_kubepods_cgroups() -> None:
    """The kubelet's (now empty) cgroups, deepest first; busy ones are left alone."""
    base = Path("/sys/fs/cgroup")
    for controller in base.iterdir() if base.is_dir() else []:
        top = controller / "kubepods"
        if not top.is_dir():
            continue
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, top]:
            with contextlib.suppress(OSError):
                d.rmdir()
