"""The cluster's settings and its child processes: spawning with a log, waiting until ready.

Owns: `Runner`, the base of `LocalCluster`: the settings of one cluster (directory, nodes,
rate limits, MinIO, audit log, real node), its `ClusterState`, spawning each component as a
child process in its own session with its log in the cluster directory (its pid recorded in
state.json at once), waiting for a readiness check while the child is alive, GET requests to
the apiserver and kubectl with the cluster's kubeconfig.

Must not: know any component's flags (the component modules do), or stop processes
(`ferrydev.cluster.local.stop` does, from state.json, so that another process can).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ferrydev import kubectl
from ferrydev.cluster.state import ClusterError, ClusterState


class Runner:
    """One cluster's settings, state and child processes."""

    def __init__(
        self,
        root: Path,
        *,
        nodes: int = 3,
        node_cpu: str = "32",
        node_memory: str = "256Gi",
        with_minio: bool = True,
        audit: bool = False,
        real_node: bool = False,
        node_pods: int = 1000,
        controller_qps: float = 200,
        controller_burst: int = 400,
    ) -> None:
        self.root = root
        self.nodes = nodes
        self.node_cpu = node_cpu
        self.node_memory = node_memory
        # Pod capacity of each simulated node; the lifecycle benchmark needs thousands.
        self.node_pods = node_pods
        # kube-controller-manager's client rate limit (the benchmark's baseline sets it equal
        # to the operator's).
        self.controller_qps = controller_qps
        self.controller_burst = controller_burst
        self.with_minio = with_minio
        self.audit = audit
        self.real_node = real_node
        self.state = ClusterState(root=str(root), real_node=real_node)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self._procs[name] = proc
        self.state.pids[name] = proc.pid
        self.state.save()

    def check_alive(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:
            tail = (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
            raise ClusterError(f"{name} exited with code {proc.returncode}; its log ends:\n{tail}")

    def wait(self, name: str, ready: Callable[[], Any], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive(name)
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError, ssl.SSLError):
                pass
            time.sleep(0.2)
        raise ClusterError(
            f"{name} did not become ready within {timeout:.0f}s; see {self.root}/{name}.log"
        )

    def api_get(self, path: str) -> tuple[int, bytes]:
        ctx = ssl.create_default_context(
            cafile=str(self.root / "pki" / "serving" / "apiserver.crt")
        )
        req = urllib.request.Request(  # noqa: S310 - our own https loopback URL
            self.state.server + path, headers={"Authorization": f"Bearer {self.state.token}"}
        )
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:  # noqa: S310 - loopback
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return kubectl.run(self.state.kubeconfig, *args, stdin=stdin, check=check)
