"""etcd for the local cluster: one member on loopback, throw-away data, no fsync.

Owns: starting etcd (client and peer ports free on 127.0.0.1, data in <cluster>/etcd, a 4 GiB
quota) and waiting for its /health.

Must not: be reached from anything but the local apiserver; keep data worth keeping.
"""

from __future__ import annotations

import urllib.request

from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import binary
from ferrydev.processes import free_port


def start(c: Runner) -> None:
    port, peer = free_port(), free_port()
    c.state.etcd_port = port
    c.spawn(
        "etcd",
        [
            binary("etcd"),
            "--data-dir",
            str(c.root / "etcd"),
            "--listen-client-urls",
            f"http://127.0.0.1:{port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
            "--quota-backend-bytes",
            str(4 * 1024**3),
            # Throw-away test data: durability is not wanted, speed is.
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        ],
    )

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return b"true" in r.read()

    c.wait("etcd", ready)
