"""The real node's network: the pod bridge `ferry0` (10.88.0.1/16) and its CNI config.

Owns: creating the bridge and its gateway address before anything binds to it, recording
which cluster directory owns it (/run/ferry/ferry0.owner: one real node per machine),
writing the CNI config (bridge + host-local + portmap, no IP masquerade, no default route),
and on teardown deleting the bridge (if this cluster made it) and putting back the sysctls
the kubelet changed.

Must not: route pods anywhere beyond the bridge (no forwarding, no masquerade), or remove a
bridge that another live cluster's real node uses.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import BRIDGE_OWNER, POD_BRIDGE, POD_CIDR, POD_GATEWAY, ClusterState
from ferrydev.processes import alive


def bridge_owner() -> str | None:
    """The cluster dir whose real node still runs on the pod bridge, if any."""
    try:
        owner = Path(BRIDGE_OWNER.read_text().strip())
    except OSError:
        return None
    try:
        pids = ClusterState.load(owner).pids
    except (OSError, ValueError, TypeError):
        return None
    if any(alive(pids[n]) for n in ("kubelet", "containerd") if n in pids):
        return str(owner)
    return None


def setup_bridge(c: Runner) -> None:
    """The pod bridge with the gateway address, before MinIO binds to it."""
    ip = shutil.which("ip") or "ip"
    exists = subprocess.run([ip, "link", "show", POD_BRIDGE], capture_output=True)
    if exists.returncode != 0:
        subprocess.run(
            [ip, "link", "add", POD_BRIDGE, "type", "bridge"], check=True, capture_output=True
        )
        c.state.bridge_created = True
    addrs = subprocess.run(
        [ip, "-4", "-o", "addr", "show", "dev", POD_BRIDGE], capture_output=True, text=True
    ).stdout
    if f" {POD_GATEWAY}/" not in addrs:
        prefix = POD_CIDR.split("/")[1]
        subprocess.run(
            [ip, "addr", "add", f"{POD_GATEWAY}/{prefix}", "dev", POD_BRIDGE],
            check=True,
            capture_output=True,
        )
    subprocess.run([ip, "link", "set", POD_BRIDGE, "up"], check=True, capture_output=True)
    BRIDGE_OWNER.parent.mkdir(parents=True, exist_ok=True)
    BRIDGE_OWNER.write_text(str(c.root))
    # The kubelet's node IP: not loopback (it refuses that), and on the pod bridge, so that
    # nothing of the node listens on the machine's own network.
    c.state.node_ip = POD_GATEWAY
    c.state.save()


def write_cni_config(c: Runner) -> Path:
    conf_dir = c.root / "cni" / "net.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "1.0.0",
        "name": "ferry",
        "plugins": [
            {
                "type": "bridge",
                "bridge": POD_BRIDGE,
                # The bridge and its gateway address are ours (see setup_bridge): no IP
                # forwarding, no masquerading, no default route. Pods reach each other and
                # the host's addresses on the bridge (MinIO, the kubelet), nothing beyond.
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [
                        [
                            {
                                "subnet": POD_CIDR,
                                "gateway": POD_GATEWAY,
                                "rangeStart": "10.88.0.10",
                            }
                        ]
                    ],
                    "dataDir": str(c.root / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    # containerd's CRI plugin brings up each pod's `lo` with the loopback plugin itself.
    (conf_dir / "10-ferry.conflist").write_text(json.dumps(conflist, indent=2))
    return conf_dir


def release(state: ClusterState) -> None:
    """After MinIO has stopped: the bridge (if this cluster made it) and the sysctls."""
    if bridge_owner() is None:
        with contextlib.suppress(OSError):
            if BRIDGE_OWNER.read_text().strip() == state.root:
                BRIDGE_OWNER.unlink()
        if state.bridge_created:
            subprocess.run(["ip", "link", "delete", POD_BRIDGE], capture_output=True)
    for key, value in state.saved_sysctls.items():
        with contextlib.suppress(OSError):
            Path("/proc/sys", *key.split(".")).write_text(value)
