"""The local cluster's MinIO server: the object store Ferry's Jobs stage from and archive to.

Owns: starting MinIO with generated root credentials (kept in state.json), on a free
loopback port, or on a real-node cluster on the pod bridge's gateway so that pods reach it
too, and waiting until its object layer is up.

Must not: listen on 0.0.0.0; be stopped by one test (tests that take a store down start a
server of their own: `ferrydev.minio.MinioServer`).
"""

from __future__ import annotations

import secrets
import urllib.request

from ferrydev.cluster.runner import Runner
from ferrydev.cluster.state import POD_GATEWAY, binary
from ferrydev.processes import free_port


def start(c: Runner) -> None:
    port = free_port()
    c.state.minio_port = port
    if c.real_node:
        # On the pod bridge: the host reaches it, and so do the pods (never 0.0.0.0).
        c.state.minio_host = POD_GATEWAY
        c.state.minio_pod_endpoint = f"http://{POD_GATEWAY}:{port}"
    host = c.state.minio_host
    c.state.minio_access_key = "ferry" + secrets.token_hex(4)
    c.state.minio_secret_key = secrets.token_hex(20)
    data = c.root / "minio"
    data.mkdir(exist_ok=True)
    c.spawn(
        "minio",
        [
            binary("minio"),
            "server",
            str(data),
            "--address",
            f"{host}:{port}",
            "--console-address",
            f"127.0.0.1:{free_port()}",
            "--quiet",
        ],
        env={
            "MINIO_ROOT_USER": c.state.minio_access_key,
            "MINIO_ROOT_PASSWORD": c.state.minio_secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        },
    )

    def ready() -> bool:
        # /minio/health/ready answers 200 before the object layer is up; /cluster does not.
        url = f"http://{host}:{port}/minio/health/cluster"
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status) == 200

    c.wait("minio", ready, timeout=60)
