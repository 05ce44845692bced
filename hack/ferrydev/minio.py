"""A MinIO server process of a test's (or benchmark's) own, killable and restartable in place.

Owns: `MinioServer`: the cached minio binary (hack/build-tools.sh puts it in
~/.cache/ferry/bin) on a free loopback port with generated root credentials and a data dir
kept across restarts; readiness, kill (as when the store's node dies) and stop.

Must not: be the shared cluster's MinIO (`ferrydev.cluster.minio` starts that one; one test
must never stop it), or listen on anything but 127.0.0.1 or, for a test whose pods must reach
it on a real-node cluster, the pod bridge's gateway (never 0.0.0.0).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

from ferrydev.cluster.state import POD_GATEWAY, binary
from ferrydev.processes import ChildProcess, free_port


class MinioServer(ChildProcess):
    def __init__(
        self, data_dir: Path, log_path: Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        if host not in ("127.0.0.1", POD_GATEWAY):
            raise ValueError(f"MinioServer listens on 127.0.0.1 or {POD_GATEWAY}, not {host}")
        self.host = host
        self.data_dir = data_dir
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}.log"
        self.port = free_port()
        self.access_key = "test" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(20)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                binary("minio"),
                "server",
                str(self.data_dir),
                "--address",
                f"{self.host}:{self.port}",
                "--console-address",
                f"127.0.0.1:{free_port()}",
                "--quiet",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self.wait_ready(timeout)

    def ready(self) -> bool:
        """True once the store can serve S3 calls.

        /minio/health/ready answers 200 a few milliseconds before the object layer is up (an
        S3 call then gets XMinioServerNotInitialized); /minio/health/cluster answers 503 until
        it is, so that is the one to wait on.
        """
        try:
            url = f"{self.endpoint}/minio/health/cluster"
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - a local http URL
                return int(r.status) == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"minio exited ({self.proc.returncode}); see {self.log_path}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"minio not ready after {timeout}s; see {self.log_path}")
