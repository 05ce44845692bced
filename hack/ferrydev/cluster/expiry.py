"""Forcing watch expiry on a local cluster: a spare kube-apiserver, and etcd compaction.

Owns: `SpareApiserver`, a second kube-apiserver on the cluster's etcd (its own port and
kubeconfig, the cluster's serving certificate and tokens, no audit log, no `kubernetes`
Service endpoints of its own) that a process under test is pointed at and that can be stopped
and started again without disturbing the cluster's own components; and `compact_etcd`, which
compacts etcd to its current revision. Stopping the spare, changing objects through the
cluster's apiserver, compacting and starting the spare again makes every watch the process
had resume from a version that is gone: 410 Gone, as after a long outage or an apiserver
upgrade (the spare's fresh watch cache starts after the changes, and etcd no longer has them).

Must not: stop or change the cluster's own processes; listen anywhere but the cluster's
apiserver host.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from ferrydev.cluster.apiserver import serving_flags
from ferrydev.cluster.state import ClusterError, ClusterState, binary
from ferrydev.processes import free_port, stop_groups


def compact_etcd(state: ClusterState) -> int:
    """Compact the cluster's etcd to its current revision (physically); the revision."""
    base = f"http://127.0.0.1:{state.etcd_port}/v3/kv"

    def post(path: str, body: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(  # noqa: S310 - the cluster's own loopback etcd
            f"{base}/{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
            answer: dict[str, object] = json.loads(resp.read())
        return answer

    header = post("range", {"key": "AA==", "limit": 1})["header"]
    revision = int(header["revision"])  # type: ignore[index]
    post("compaction", {"revision": revision, "physical": True})
    return revision


class SpareApiserver:
    """A second kube-apiserver on the cluster's etcd, stoppable and restartable."""

    def __init__(
        self, state: ClusterState, workdir: Path, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.state = state
        self.workdir = workdir
        self.extra_args = extra_args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.kubeconfig = workdir / "spare-kubeconfig"
        config = json.loads(state.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = self.server
        self.kubeconfig.write_text(json.dumps(config, indent=2))

    @property
    def server(self) -> str:
        return f"https://{self.state.apiserver_host}:{self.port}"

    def argv(self) -> list[str]:
        pki = self.state.dir / "pki"
        return [
            binary("kube-apiserver"),
            *serving_flags(self.state.etcd_port, self.state.apiserver_host, self.port, pki),
            # The cluster's apiserver owns the `kubernetes` Service's endpoints.
            "--endpoint-reconciler-type",
            "none",
            "--profiling=false",
            "--v",
            "1",
            *self.extra_args,
        ]

    def start(self, timeout: float = 120) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        log = open(self.workdir / "spare-apiserver.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ClusterError(f"the spare apiserver exited; see {self.workdir}")
            if self.ready():
                return
            time.sleep(0.2)
        raise ClusterError(f"the spare apiserver was not ready in {timeout:.0f}s")

    def ready(self) -> bool:
        ctx = ssl.create_default_context(
            cafile=str(self.state.dir / "pki" / "serving" / "apiserver.crt")
        )
        req = urllib.request.Request(  # noqa: S310 - our own https loopback URL
            self.server + "/readyz", headers={"Authorization": f"Bearer {self.state.token}"}
        )
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:  # noqa: S310
                return int(resp.status) == 200
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_groups([self.proc.pid], timeout=15)
            self.proc.wait(timeout=10)
