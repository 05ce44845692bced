"""Ferry's local Kubernetes cluster and MinIO, built from registry parts, on loopback only.

Owns: starting and stopping etcd, kube-apiserver (RBAC, service-account token signing),
kube-controller-manager (with its host-path PVC provisioner), kube-scheduler, kwok (simulated
nodes with Ferry's pod stages) and a MinIO server, each as a child process with its log in the
cluster directory; writing a kubeconfig; recording pids so that another process can stop them.

With `real_node=True` it also runs one real node, `ferry-node`: containerd (runc, the CNI
bridge plugin on the `ferry0` bridge, 10.88.0.0/16) and the kubelet, with the images of
hack/images.py imported; MinIO then listens on the bridge's gateway address (10.88.0.1), which
both the host and the pods reach, and the kwok nodes are tainted so that pods land on the real
node. See "A real node" in docs/development.md.

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
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HACK = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("FERRY_CACHE", Path.home() / ".cache" / "ferry"))
BIN = CACHE / "bin"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

# The real node (real_node=True). One per machine at a time: the bridge and range are fixed.
REAL_NODE_NAME = "ferry-node"
REAL_NODE_LABEL = "ferry.dev/node"  # =real on ferry-node, =kwok on the simulated nodes
KWOK_TAINT = {"key": KWOK_NODE_ANNOTATION, "value": "fake", "effect": "NoSchedule"}
POD_BRIDGE = "ferry0"
POD_CIDR = "10.88.0.0/16"
POD_GATEWAY = "10.88.0.1"
CNI_BIN_DIR = "/usr/lib/cni"
BRIDGE_OWNER = Path("/run/ferry") / f"{POD_BRIDGE}.owner"  # the cluster dir using the bridge
HOSTPATH_PV_DIR = Path("/tmp/hostpath_pv")  # noqa: S108 - kube-controller-manager's, fixed
# The kubelet sets these at start (it is not asked to protect kernel defaults); they are put
# back on `down`.
KUBELET_SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)


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
    # Where kube-apiserver listens: loopback, or on a real-node cluster the pod bridge's
    # gateway address (so that pods, the in-cluster operator among them, reach it too).
    apiserver_host: str = "127.0.0.1"
    etcd_port: int = 0
    minio_port: int = 0
    token: str = ""
    minio_access_key: str = ""
    minio_secret_key: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    started_seconds: float = 0.0
    minio_host: str = "127.0.0.1"
    # MinIO as pods on the real node reach it (http://10.88.0.1:PORT); empty without one.
    minio_pod_endpoint: str = ""
    real_node: bool = False
    node_ip: str = ""
    containerd_socket: str = ""
    bridge_created: bool = False
    saved_sysctls: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return Path(self.root)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.apiserver_host}:{self.apiserver_port}"

    @property
    def minio_endpoint(self) -> str:
        """MinIO as the host reaches it (on a real-node cluster, pods reach it too)."""
        return f"http://{self.minio_host}:{self.minio_port}"

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
        # On a real-node cluster the pods must reach the apiserver, and without kube-proxy the
        # `kubernetes` Service IP does not route: listen on the pod bridge (made by
        # _setup_bridge before this), never on 0.0.0.0. Host clients use that address too.
        host = POD_GATEWAY if self.real_node else "127.0.0.1"
        self.state.apiserver_host = host
        pki = self.root / "pki"
        argv = [
            binary("kube-apiserver"),
            "--etcd-servers",
            f"http://127.0.0.1:{self.state.etcd_port}",
            "--bind-address",
            host,
            "--advertise-address",
            host,
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
        if self.real_node:
            # `kubectl logs/exec` go to the kubelet at its InternalIP (its hostname does not
            # resolve), with a client certificate that the kubelet's x509 authn accepts.
            argv += [
                "--kubelet-client-certificate",
                str(pki / "kubelet-client.crt"),
                "--kubelet-client-key",
                str(pki / "kubelet-client.key"),
                "--kubelet-preferred-address-types",
                "InternalIP,Hostname",
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
                # The apiserver rotates at 100 MB unless told otherwise (a 0 here means that
                # too); one file keeps the benchmark's reading by offset simple and cheap.
                "--audit-log-maxsize",
                "100000",
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
                f"{self.controller_qps:g}",
                "--kube-api-burst",
                str(self.controller_burst),
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
                # Node leases renewed every 10 s, as a kubelet does. Without them the nodes'
                # only heartbeat is a status patch about every 55 s, longer than the node
                # lifecycle controller's 50 s grace: every node went NotReady for 5 s each
                # minute, and every running pod was marked not ready and patched back.
                "--node-lease-duration-seconds",
                "40",
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
        if self.real_node:
            # On the pod bridge: the host reaches it, and so do the pods (never 0.0.0.0).
            self.state.minio_host = POD_GATEWAY
            self.state.minio_pod_endpoint = f"http://{POD_GATEWAY}:{port}"
        host = self.state.minio_host
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
                f"{host}:{port}",
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
            # /minio/health/ready answers 200 before the object layer is up; /cluster does not.
            url = f"http://{host}:{port}/minio/health/cluster"
            with urllib.request.urlopen(url, timeout=2) as r:
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
                            REAL_NODE_LABEL: "kwok",
                            "kubernetes.io/hostname": f"kwok-node-{i}",
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                        },
                    },
                    "status": {
                        "allocatable": {
                            "cpu": self.node_cpu,
                            "memory": self.node_memory,
                            "pods": str(self.node_pods),
                            "nvidia.com/gpu": "4",
                        },
                        "capacity": {
                            "cpu": self.node_cpu,
                            "memory": self.node_memory,
                            "pods": str(self.node_pods),
                            "nvidia.com/gpu": "4",
                        },
                    },
                }
            )
        if self.real_node:
            # Real pods must land on the real node: the simulated nodes refuse them unless
            # they tolerate this taint.
            for node in nodes:
                node["spec"] = {"taints": [KWOK_TAINT]}
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

    # ------------------------------------------------------------------ the real node

    def _check_node_prerequisites(self) -> None:
        missing = [
            c for c in ("containerd", "runc", "ctr", "ip", "iptables") if not shutil.which(c)
        ]
        missing += [
            p
            for p in ("bridge", "host-local", "portmap", "loopback")
            if not Path(CNI_BIN_DIR, p).exists()
        ]
        if missing:
            raise ClusterError(
                f"the real node needs {', '.join(missing)}: "
                "run FERRY_WITH_NODE=1 hack/install-deps.sh"
            )
        if os.geteuid() != 0:
            raise ClusterError("the real node needs root (containerd, the kubelet, a bridge)")
        binary("kubelet")
        other = _bridge_owner()
        if other and other != str(self.root):
            raise ClusterError(
                f"{POD_BRIDGE} belongs to the real-node cluster in {other}; run "
                f"`hack/cluster down --dir {other}` first (one real node per machine)"
            )

    def _write_node_pki(self) -> None:
        """A CA for the kubelet's x509 authn and the apiserver's client certificate under it."""
        pki = self.root / "pki"
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

    def _setup_bridge(self) -> None:
        """The pod bridge with the gateway address, before MinIO binds to it."""
        ip = shutil.which("ip") or "ip"
        exists = subprocess.run([ip, "link", "show", POD_BRIDGE], capture_output=True)
        if exists.returncode != 0:
            subprocess.run(
                [ip, "link", "add", POD_BRIDGE, "type", "bridge"], check=True, capture_output=True
            )
            self.state.bridge_created = True
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
        BRIDGE_OWNER.write_text(str(self.root))
        # The kubelet's node IP: not loopback (it refuses that), and on the pod bridge, so that
        # nothing of the node listens on the machine's own network.
        self.state.node_ip = POD_GATEWAY
        self.state.save()

    def _write_cni_config(self) -> Path:
        conf_dir = self.root / "cni" / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "1.0.0",
            "name": "ferry",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": POD_BRIDGE,
                    # The bridge and its gateway address are ours (see _setup_bridge): no IP
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
                        "dataDir": str(self.root / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        # containerd's CRI plugin brings up each pod's `lo` with the loopback plugin itself.
        (conf_dir / "10-ferry.conflist").write_text(json.dumps(conflist, indent=2))
        return conf_dir

    def _start_containerd(self) -> None:
        from images import PAUSE_IMAGE

        base = self.root / "containerd"
        base.mkdir(parents=True, exist_ok=True)
        sock = base / "containerd.sock"
        self.state.containerd_socket = str(sock)
        conf_dir = self._write_cni_config()
        config = f"""\
version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # This machine's root lacks CAP_SYS_RESOURCE, so runc cannot lower a process's
  # oom_score_adj (the sandbox asks for -998): clamp to containerd's own instead.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"""
        path = self.root / "containerd.toml"
        path.write_text(config)
        self._spawn(
            "containerd", [shutil.which("containerd") or "containerd", "--config", str(path)]
        )

        def ready() -> bool:
            return (
                sock.exists()
                and subprocess.run(
                    ["ctr", "--address", str(sock), "version"], capture_output=True
                ).returncode
                == 0
            )

        self._wait("containerd", ready, timeout=60)

    def _import_images(self) -> None:
        import images

        t0 = time.monotonic()
        try:
            built = images.build()
        except images.ImageError as exc:
            raise ClusterError(f"the node's images could not be built: {exc}") from exc
        self.state.timings["images_build"] = round(time.monotonic() - t0, 2)
        try:
            seconds = images.import_images(self.state.containerd_socket, built)
        except images.ImageError as exc:
            raise ClusterError(f"the node's images could not be imported: {exc}") from exc
        self.state.timings["images_import"] = round(seconds, 2)

    def _save_sysctls(self) -> None:
        for key in KUBELET_SYSCTLS:
            path = Path("/proc/sys", *key.split("."))
            with contextlib.suppress(OSError):
                self.state.saved_sysctls[key] = path.read_text().strip()
        self.state.save()

    def _start_kubelet(self) -> None:
        kubelet_dir = self.root / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        healthz = free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # The kubelet's API only on the pod bridge; its health check on loopback.
            "address": self.state.node_ip,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.root / "pki" / "kubelet-ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.state.containerd_socket}",
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
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "20s",
            "shutdownGracePeriod": "0s",
            "logging": {"format": "text"},
        }
        path = self.root / "kubelet.yaml"
        path.write_text(json.dumps(config, indent=2))
        self._save_sysctls()
        since = time.time() - 1
        self._spawn(
            "kubelet",
            [
                binary("kubelet"),
                "--config",
                str(path),
                "--kubeconfig",
                str(self.state.kubeconfig),
                "--root-dir",
                str(kubelet_dir),
                "--hostname-override",
                REAL_NODE_NAME,
                "--node-ip",
                self.state.node_ip,
                "--node-labels",
                f"{REAL_NODE_LABEL}=real",
                "--v",
                "1",
            ],
        )
        self._wait("kubelet", lambda: self._node_ready(REAL_NODE_NAME, since), timeout=120)

    def _node_ready(self, name: str, since: float) -> bool:
        """Ready, with a heartbeat after `since` (a Node that an earlier run of this directory
        left in etcd is Ready already)."""
        code, body = self._api_get(f"/api/v1/nodes/{name}")
        if code != 200:
            return False
        for c in json.loads(body).get("status", {}).get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "True":
                beat = datetime.fromisoformat(c["lastHeartbeatTime"].replace("Z", "+00:00"))
                return beat.timestamp() >= since
        return False

    def _start_hostpath_perms(self) -> None:
        """kube-controller-manager's host-path provisioner makes each volume directory 0750
        root:root, which pods running as non-root (Ferry's, under the restricted Pod Security
        Standard) cannot write; a small watcher opens each new one up (0777)."""
        self._spawn(
            "hostpath-perms",
            [sys.executable, str(Path(__file__).resolve()), "hostpath-perms", str(time.time())],
        )

    def _start_real_node(self) -> None:
        t0 = time.monotonic()
        self._start_containerd()
        self._import_images()
        t1 = time.monotonic()
        self._start_kubelet()
        self._start_hostpath_perms()
        self.state.timings["kubelet_ready"] = round(time.monotonic() - t1, 2)
        self.state.timings["real_node"] = round(time.monotonic() - t0, 2)

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
            if self.real_node:
                self._check_node_prerequisites()
                self._write_node_pki()
                self._setup_bridge()
            self._write_credentials()
            self._start_etcd()
            self._start_apiserver()
            self._start_controllers()
            self._bootstrap_objects()
            if self.with_minio:
                self._start_minio()
            if self.real_node:
                self._start_real_node()
        except BaseException:
            self.down()
            raise
        self.state.started_seconds = round(time.monotonic() - t0, 2)
        self.state.save()
        return self.state

    def down(self) -> None:
        stop(self.root, state=self.state)


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie: this machine's init reaps orphans only every few
    seconds); reaps it if it is our child."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _terminate(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _bridge_owner() -> str | None:
    """The cluster dir whose real node still runs on the pod bridge, if any."""
    try:
        owner = Path(BRIDGE_OWNER.read_text().strip())
    except OSError:
        return None
    try:
        pids = ClusterState.load(owner).pids
    except (OSError, ValueError, TypeError):
        return None
    if any(_alive(pids[n]) for n in ("kubelet", "containerd") if n in pids):
        return str(owner)
    return None


def _stop_real_node(state: ClusterState) -> None:
    """Stop the kubelet, then every container it started, then containerd; undo the node's
    mounts, bridge and sysctls."""
    pids = state.pids
    for name in ("hostpath-perms", "kubelet"):
        if name in pids:
            _terminate(pids[name], timeout=15)
    sock = state.containerd_socket
    if sock and "containerd" in pids and _alive(pids["containerd"]):

        def ctr(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ctr", "--address", sock, "--namespace", "k8s.io", *args],
                capture_output=True,
                text=True,
                timeout=60,
            )

        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            tasks = [line.split()[0] for line in ctr("tasks", "ls").stdout.splitlines()[1:] if line]
            for task in tasks:
                ctr("tasks", "kill", "--signal", "SIGKILL", task)
            for task in tasks:
                for _ in range(50):
                    if ctr("tasks", "delete", task).returncode == 0:
                        break
                    time.sleep(0.1)
            for container in ctr("containers", "ls", "-q").stdout.split():
                ctr("containers", "delete", container)
        _terminate(pids["containerd"], timeout=15)
    # Shims that outlived containerd (each serves our socket's namespace): stop them by pid.
    if sock:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"containerd-shim" in cmdline[0] and sock.encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
    _unmount_under(Path(state.root))
    _remove_kubepods_cgroups()


def _release_node_network(state: ClusterState) -> None:
    """After MinIO has stopped: the bridge (if this cluster made it) and the sysctls."""
    if _bridge_owner() is None:
        with contextlib.suppress(OSError):
            if BRIDGE_OWNER.read_text().strip() == state.root:
                BRIDGE_OWNER.unlink()
        if state.bridge_created:
            subprocess.run(["ip", "link", "delete", POD_BRIDGE], capture_output=True)
    for key, value in state.saved_sysctls.items():
        with contextlib.suppress(OSError):
            Path("/proc/sys", *key.split(".")).write_text(value)


def _unmount_under(path: Path) -> None:
    from images import unmount_under

    unmount_under(path)


def _remove_kubepods_cgroups() -> None:
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


def stop(root: Path, pids: dict[str, int] | None = None, state: ClusterState | None = None) -> None:
    """Stop every process of the cluster in `root` (the real node first, then the rest in
    reverse start order)."""
    if state is None:
        try:
            state = ClusterState.load(root)
        except FileNotFoundError:
            state = None
    if pids is None:
        if state is None:
            return
        pids = state.pids
    if state is not None and state.real_node:
        _stop_real_node(state)
    for name in reversed(list(pids)):
        pid = pids[name]
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + 15
    for pid in pids.values():
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    if state is not None and state.real_node:
        _release_node_network(state)


def status(root: Path) -> dict[str, bool]:
    state = ClusterState.load(root)
    alive = {}
    for name, pid in state.pids.items():
        alive[name] = _alive(pid)
    return alive


def _hostpath_perms(since: float) -> None:
    """Loop: make host-path volume directories created after `since` writable by any uid."""
    while True:
        with contextlib.suppress(OSError):
            for d in HOSTPATH_PV_DIR.iterdir():
                with contextlib.suppress(OSError):
                    st = d.stat()
                    if st.st_ctime >= since - 1 and d.is_dir() and st.st_mode & 0o777 != 0o777:
                        d.chmod(0o777)
        time.sleep(0.2)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "hostpath-perms":
        _hostpath_perms(float(sys.argv[2]))
