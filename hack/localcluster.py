"""Ferry's local Kubernetes cluster and MinIO, built from registry parts, on loopback only.

Owns: starting and stopping etcd, kube-apiserver (RBAC, service-account token signing),
kube-controller-manager (with its host-path PVC provisioner), kube-scheduler, kwok (simulated
nodes with Ferry's pod stages) and a MinIO server, each as a child process with its log in the
cluster directory; writing a kubeconfig; recording pids so that another process can stop them.

Used by `hack/cluster up|down|status` and by the pytest fixtures in tests/conftest.py.
Binaries come from `hack/build-tools.sh` (cached under ~/.cache/ferry/bin), etcd included:
Debian's etcd 3.4.23 lacks the watch-progress support that current clients (kwok's) need.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HACK = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("FERRY_CACHE", Path.home() / ".cache" / "ferry"))
BIN = CACHE / "bin"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str) -> str:
    """Path of a cluster binary, or a ClusterError that says how to get it."""
    path = BIN / name
    if path.exists():
        return str(path)
    raise ClusterError(f"{path} not found: run hack/build-tools.sh (builds and caches it)")


def kubectl_binary() -> str:
    """The kubectl built with the cluster (same version), else the one on PATH."""
    built = BIN / "kubectl"
    return str(built) if built.exists() else "kubectl"


@dataclass
class ClusterState:
    """What a running cluster is made of; saved as state.json in its directory."""

    root: str
    apiserver_port: int = 0
    etcd_port: int = 0
    minio_port: int = 0
    token: str = ""
    minio_access_key: str = ""
    minio_secret_key: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    started_seconds: float = 0.0

    @property
    def dir(self) -> Path:
        return Path(self.root)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def minio_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.minio_port}"

    def save(self) -> None:
        (self.dir / "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, root: Path) -> ClusterState:
        data = json.loads((root / "state.json").read_text())
        return cls(**data)


class LocalCluster:
    """Start, check and stop the local cluster rooted at `root`."""

    def __init__(
        self,
        root: Path,
        *,
        nodes: int = 3,
        node_cpu: str = "32",
        node_memory: str = "256Gi",
        with_minio: bool = True,
        audit: bool = False,
    ) -> None:
        self.root = root
        self.nodes = nodes
        self.node_cpu = node_cpu
        self.node_memory = node_memory
        self.with_minio = with_minio
        self.audit = audit
        self.state = ClusterState(root=str(root))
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
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

    def _check_alive(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:
            tail = (self.root / f"{name}.log").read_text(errors="replace")[-3000:]
            raise ClusterError(f"{name} exited with code {proc.returncode}; its log ends:\n{tail}")

    def _wait(self, name: str, ready: Any, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError, ssl.SSLError):
                pass
            time.sleep(0.2)
        raise ClusterError(
            f"{name} did not become ready within {timeout:.0f}s; see {self.root}/{name}.log"
        )

    # ------------------------------------------------------------------ pieces

    def _write_credentials(self) -> None:
        pki = self.root / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        key = pki / "sa.key"
        if not key.exists():
            subprocess.run(
                ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
            )
            subprocess.run(
                ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pki / "sa.pub")],
                check=True,
                capture_output=True,
            )
        self.state.token = secrets.token_hex(24)
        (pki / "tokens.csv").write_text(
            f'{self.state.token},ferry-admin,ferry-admin,"system:masters"\n'
        )

    def _write_kubeconfig(self) -> None:
        ca = self.root / "pki" / "serving" / "apiserver.crt"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ferry-local",
                    "cluster": {"server": self.state.server, "certificate-authority": str(ca)},
                }
            ],
            "users": [{"name": "ferry-admin", "user": {"token": self.state.token}}],
            "contexts": [
                {
                    "name": "ferry-local",
                    "context": {"cluster": "ferry-local", "user": "ferry-admin"},
                }
            ],
            "current-context": "ferry-local",
        }
        self.state.kubeconfig.write_text(json.dumps(config, indent=2))

    def _api_get(self, path: str) -> tuple[int, bytes]:
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

    def _start_etcd(self) -> None:
        port, peer = free_port(), free_port()
        self.state.etcd_port = port
        self._spawn(
            "etcd",
            [
                binary("etcd"),
                "--data-dir",
                str(self.root / "etcd"),
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

        self._wait("etcd", ready)

    def _start_apiserver(self) -> None:
        port = free_port()
        self.state.apiserver_port = port
        pki = self.root / "pki"
        argv = [
            binary("kube-apiserver"),
            "--etcd-servers",
            f"http://127.0.0.1:{self.state.etcd_port}",
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(port),
            "--cert-dir",
            str(pki / "serving"),
            "--token-auth-file",
            str(pki / "tokens.csv"),
            "--authorization-mode",
            "Node,RBAC",
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file",
            str(pki / "sa.pub"),
            "--service-account-signing-key-file",
            str(pki / "sa.key"),
            "--service-cluster-ip-range",
            "10.96.0.0/16",
            "--allow-privileged=true",
            "--max-requests-inflight",
            "800",
            "--max-mutating-requests-inflight",
            "400",
            "--profiling=false",
            "--v",
            "1",
        ]
        if self.audit:
            policy = self.root / "audit-policy.yaml"
            policy.write_text(
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
                "rules:\n- level: None\n  verbs: [get, list, watch]\n- level: Metadata\n"
            )
            argv += [
                "--audit-policy-file",
                str(policy),
                "--audit-log-path",
                str(self.root / "audit.log"),
                "--audit-log-format",
                "json",
                "--audit-log-mode",
                "batch",
            ]
        self._spawn("kube-apiserver", argv)
        self._wait(
            "kube-apiserver", lambda: (pki / "serving" / "apiserver.crt").exists(), timeout=30
        )
        self._write_kubeconfig()
        self._wait("kube-apiserver", lambda: self._api_get("/readyz")[0] == 200, timeout=120)

    def _start_controllers(self) -> None:
        pki = self.root / "pki"
        kubeconfig = str(self.state.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                binary("kube-controller-manager"),
                "--kubeconfig",
                kubeconfig,
                "--authentication-kubeconfig",
                kubeconfig,
                "--authorization-kubeconfig",
                kubeconfig,
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(free_port()),
                "--leader-elect=false",
                "--service-account-private-key-file",
                str(pki / "sa.key"),
                "--root-ca-file",
                str(pki / "serving" / "apiserver.crt"),
                "--enable-hostpath-provisioner=true",
                "--kube-api-qps",
                "200",
                "--kube-api-burst",
                "400",
                "--concurrent-job-syncs",
                "20",
                "--v",
                "1",
            ],
            env={"TMPDIR": str(self.root / "hostpath")},
        )
        self._spawn(
            "kube-scheduler",
            [
                binary("kube-scheduler"),
                "--kubeconfig",
                kubeconfig,
                "--authentication-kubeconfig",
                kubeconfig,
                "--authorization-kubeconfig",
                kubeconfig,
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(free_port()),
                "--leader-elect=false",
                "--v",
                "1",
            ],
        )
        kwok_config = self.root / "kwok.yaml"
        shutil.copyfile(HACK / "kwok-stages.yaml", kwok_config)
        self._spawn(
            "kwok",
            [
                binary("kwok"),
                "--kubeconfig",
                kubeconfig,
                "--config",
                str(kwok_config),
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--node-ip",
                "10.250.0.1",
                "--cidr",
                "10.251.0.0/16",
                "--server-address",
                f"127.0.0.1:{free_port()}",
            ],
        )
        self._wait("kube-controller-manager", lambda: self._sa_ready("default"), timeout=90)

    def _sa_ready(self, namespace: str) -> bool:
        return self._api_get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")[0] == 200

    def _start_minio(self) -> None:
        port = free_port()
        self.state.minio_port = port
        self.state.minio_access_key = "ferry" + secrets.token_hex(4)
        self.state.minio_secret_key = secrets.token_hex(20)
        data = self.root / "minio"
        data.mkdir(exist_ok=True)
        self._spawn(
            "minio",
            [
                binary("minio"),
                "server",
                str(data),
                "--address",
                f"127.0.0.1:{port}",
                "--console-address",
                f"127.0.0.1:{free_port()}",
                "--quiet",
            ],
            env={
                "MINIO_ROOT_USER": self.state.minio_access_key,
                "MINIO_ROOT_PASSWORD": self.state.minio_secret_key,
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
            },
        )

        def ready() -> bool:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/minio/health/ready", timeout=2
            ) as r:
                return int(r.status) == 200

        self._wait("minio", ready, timeout=60)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(self.state.kubeconfig), *args],
            input=stdin,
            text=True,
            capture_output=True,
            check=check,
        )

    def _bootstrap_objects(self) -> None:
        nodes = []
        for i in range(self.nodes):
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"kwok-node-{i}",
                        "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                        "labels": {
                            "type": "kwok",
                            "kubernetes.io/hostname": f"kwok-node-{i}",
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                        },
                    },
                    "status": {
                        "allocatable": {
                            "cpu": self.node_cpu,
                            "memory": self.node_memory,
                            "pods": "1000",
                            "nvidia.com/gpu": "4",
                        },
                        "capacity": {
                            "cpu": self.node_cpu,
                            "memory": self.node_memory,
                            "pods": "1000",
                            "nvidia.com/gpu": "4",
                        },
                    },
                }
            )
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/host-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        items = {"apiVersion": "v1", "kind": "List", "items": [*nodes, storage_class]}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(items))

    # ------------------------------------------------------------------ public

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
            self._write_credentials()
            self._start_etcd()
            self._start_apiserver()
            self._start_controllers()
            self._bootstrap_objects()
            if self.with_minio:
                self._start_minio()
        except BaseException:
            self.down()
            raise
        self.state.started_seconds = round(time.monotonic() - t0, 2)
        self.state.save()
        return self.state

    def down(self) -> None:
        stop(self.root, self.state.pids)


def stop(root: Path, pids: dict[str, int] | None = None) -> None:
    """Stop every process of the cluster in `root` (reverse start order)."""
    if pids is None:
        try:
            pids = ClusterState.load(root).pids
        except FileNotFoundError:
            return
    for name in reversed(list(pids)):
        pid = pids[name]
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + 15
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                # Reap it if it is our child.
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def status(root: Path) -> dict[str, bool]:
    state = ClusterState.load(root)
    alive = {}
    for name, pid in state.pids.items():
        try:
            os.kill(pid, 0)
            alive[name] = True
        except ProcessLookupError:
            alive[name] = False
    return alive
