"""A real Kueue (sigs.k8s.io/kueue) on a running local cluster: its CRDs, its manager as a
host process, its webhooks by URL, and builders for its queue objects.

Owns: Kueue's CRDs and webhook manifests from its Go module at `KUEUE_VERSION`
(hack/versions.env; cached under $FERRY_CACHE/kueue/<version>/, so a warm start touches no
network); a CA and a serving certificate for 127.0.0.1 (openssl, like the rest of the
cluster's PKI); the manager's Configuration; starting the `kueue` binary
(hack/build-tools.sh kueue) as a child process with its log `kueue.log` in the cluster
directory and its pid in state.json (so the cluster's `stop` stops it too, first); the
webhook configurations that point the apiserver at it by URL; waiting until it is ready
(`/readyz`, then a server-side dry run that passes through its webhooks); `KueueProcess.stop`
(the process and its webhook configurations); and plain dict builders for a ResourceFlavor,
ClusterQueue, LocalQueue and WorkloadPriorityClass are in `kueueobjects`, with Kueue's label names.

Why a host process and not the chart in a pod: it works unchanged on the kwok cluster (no
real node, so no pod could run it) and on the real-node cluster, and the apiserver reaches
its webhooks at https://127.0.0.1:<port> without a Service (there is no kube-proxy and no
aggregator routing). It runs with the cluster's admin kubeconfig (system:masters): it is a
test fixture, not a subject of Ferry's RBAC, and admin requests stay out of the audit log
that tests/integration/test_rbac_used.py reads.

What it is configured with: integrations `pod` and `kubeflow.org/mpijob` (when the MPIJob
CRD is absent Kueue registers the webhook and sets its controller up once the CRD appears,
polling with a backoff of up to 2 minutes: install the CRD before `start` where it matters);
`manageJobsWithoutQueueName: false`; `managedJobsNamespaceSelector` and the pod and MPIJob
webhooks' `namespaceSelector` both `NAMESPACE_LABEL=NAMESPACE_LABEL_VALUE`, so only
namespaces a test labels are touched (Kueue's webhooks fail closed); no leader election,
no internal certificate management, no visibility API server (`VisibilityOnDemand` off).
Its CRDs keep their versions' `conversion: None`: everyone here speaks v1beta2 (the storage
version), so no conversion webhook is registered.

Kueue reads its metrics serving certificate from the fixed path /etc/kueue/metrics/certs;
it is run in a mount namespace of its own (`unshare --mount`) where that directory is
bound to its certificate directory in the cluster directory, so the host gets only the empty
mount point.

Must not: listen on anything but loopback, register webhooks for other namespaces or kinds
than those above, or stop processes state.json does not name.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferrydev import kubectl
from ferrydev.cluster.gomodule import source_dir
from ferrydev.cluster.kueueobjects import NAMESPACE_LABEL, NAMESPACE_LABEL_VALUE, resource_flavor
from ferrydev.cluster.state import ClusterError, ClusterState, binary
from ferrydev.paths import CACHE, versions
from ferrydev.processes import alive, free_port, terminate

MODULE = "sigs.k8s.io/kueue"
FRAMEWORKS = ("pod", "kubeflow.org/mpijob")
#: Where Kueue v0.17 insists on reading its metrics certificate (cmd/kueue/main.go).
METRICS_CERT_PATH = Path("/etc/kueue/metrics/certs")
SYSTEM_NAMESPACE = "kueue-system"
WEBHOOK_CONFIG_NAMES = {
    "MutatingWebhookConfiguration": "ferry-kueue-mutating",
    "ValidatingWebhookConfiguration": "ferry-kueue-validating",
}
PID_NAME = "kueue"  # its entry in state.json's pids


def kueue_version() -> str:
    return versions()["KUEUE_VERSION"]


def module_files(version: str | None = None) -> Path:
    """A cached copy of the module's `config/components/{crd/bases,webhook}` (go mod download
    of the exact version when not cached yet)."""
    version = version or kueue_version()
    cached = CACHE / "kueue" / version
    if (cached / "webhook" / "manifests.yaml").exists():
        return cached
    source = source_dir(MODULE, version, CACHE / "kueue" / "download") / "config" / "components"
    partial = cached.with_name(f"{version}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    shutil.copytree(source / "crd" / "bases", partial / "crds")
    (partial / "webhook").mkdir()
    shutil.copyfile(source / "webhook" / "manifests.yaml", partial / "webhook" / "manifests.yaml")
    for p in partial.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)  # Go's module cache is read-only
    try:
        partial.rename(cached)
    except OSError:  # another process cached it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return cached


def write_pki(certs: Path) -> None:
    """A CA (`ca.crt`) and a serving certificate for 127.0.0.1 under it (`tls.crt`,
    `tls.key`: the names Kueue's webhook and metrics servers read)."""
    if (certs / "tls.crt").exists():
        return
    certs.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=certs)

    ssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=ferry-kueue-ca",
    )  # fmt: skip
    ssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key.partial",
        "-out", "tls.csr", "-subj", "/CN=127.0.0.1",
    )  # fmt: skip
    (certs / "tls.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    ssl(
        "x509", "-req", "-days", "30", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-extfile", "tls.ext", "-out", "tls.crt.partial",
    )  # fmt: skip
    (certs / "tls.key.partial").rename(certs / "tls.key")
    (certs / "tls.crt.partial").rename(certs / "tls.crt")


def configuration(
    webhook_port: int, health_port: int, metrics_port: int, certs: Path
) -> dict[str, Any]:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2), as JSON (which is YAML)."""
    selector = {"matchLabels": {NAMESPACE_LABEL: NAMESPACE_LABEL_VALUE}}
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": SYSTEM_NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(certs)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "managedJobsNamespaceSelector": selector,
        "integrations": {"frameworks": list(FRAMEWORKS)},
        "featureGates": {"VisibilityOnDemand": False},
        "clientConnection": {"qps": 50, "burst": 100},
    }


def webhook_configurations(
    manifests: Path, kubeconfig: Path, port: int, ca: bytes
) -> list[dict[str, Any]]:
    """Kueue's webhook manifests (read through kubectl, so no YAML parser is needed) cut down
    to Kueue's own kinds, pods and MPIJobs, pointed at https://127.0.0.1:<port> with `ca`;
    the pod and MPIJob webhooks only for namespaces labelled NAMESPACE_LABEL."""
    text = kubectl.output(
        kubeconfig, "create", "--dry-run=client", "-o", "json", "-f", str(manifests)
    )
    items, decoder, at = [], json.JSONDecoder(), 0
    while text[at:].strip():  # one JSON document per object
        obj, at = decoder.raw_decode(text, len(text) - len(text[at:].lstrip()))
        items.append(obj)
    bundle = base64.b64encode(ca).decode()
    out = []
    for item in items:
        hooks = []
        for hook in item["webhooks"]:
            rule = hook["rules"][0]
            kueue_own = rule["apiGroups"] == ["kueue.x-k8s.io"]
            job = (rule["apiGroups"], rule["resources"][0]) in (
                ([""], "pods"),
                (["kubeflow.org"], "mpijobs"),
            )
            if not (kueue_own or job):
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": bundle}
            if job:
                hook["namespaceSelector"] = {
                    "matchLabels": {NAMESPACE_LABEL: NAMESPACE_LABEL_VALUE}
                }
            hook["timeoutSeconds"] = 10
            hooks.append(hook)
        name = WEBHOOK_CONFIG_NAMES[item["kind"]]
        out.append({**item, "metadata": {"name": name}, "webhooks": hooks})
    return out


@dataclass
class KueueProcess:
    """A running Kueue manager of one cluster."""

    state: ClusterState
    pid: int
    webhook_port: int
    health_port: int
    metrics_port: int
    log: Path
    timings: dict[str, float] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        """Running. For the process this run started, its Popen says so: its cmdline is empty or
        another program's while unshare and sh exec their way to Kueue, so reading it then would
        call a starting Kueue dead. For a pid from an earlier run's state.json, running and a
        Kueue (that pid may name another process now)."""
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            ours = b"kueue" in Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return ours and alive(self.pid)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """Its webhook configurations first (they fail closed), then the process."""
        for kind, name in WEBHOOK_CONFIG_NAMES.items():
            kubectl.run(
                self.state.kubeconfig,
                "delete",
                kind.lower(),
                name,
                "--ignore-not-found",
                check=False,
            )
        if self.alive():
            terminate(self.pid, timeout=15)
        if self.state.pids.get(PID_NAME) == self.pid:
            del self.state.pids[PID_NAME]
            self.state.save()


def start_kueue(state: ClusterState, timeout: float = 120) -> KueueProcess:
    """Kueue's CRDs, namespace, Configuration, manager process and webhooks on the running
    cluster `state`; returns when its webhooks answer through the apiserver. A Kueue that
    state.json names already (an earlier session's) is stopped first."""
    t0 = time.monotonic()
    kueue_bin = binary("kueue")
    files = module_files()
    root = state.dir / "kueue"
    certs = root / "certs"
    write_pki(certs)
    old = state.pids.get(PID_NAME)
    if old:
        KueueProcess(state, old, 0, 0, 0, state.dir / "kueue.log").stop()
    apply(state, "--server-side", "--force-conflicts", "-f", str(files / "crds"))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
    apply(state, "-f", "-", stdin=json.dumps(namespace))
    ports = free_port(), free_port(), free_port()
    config = root / "config.yaml"
    config.write_text(json.dumps(configuration(*ports, certs), indent=2))
    wait(None, lambda: crds_established(state), 60, "Kueue's CRDs Established")
    t1 = time.monotonic()
    log = state.dir / "kueue.log"
    proc = subprocess.Popen(
        [*mount_namespace(certs), kueue_bin, "--config", str(config), "--zap-log-level", "2"],
        stdout=open(log, "ab"),  # noqa: SIM115 - the child's
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "KUBECONFIG": str(state.kubeconfig)},
        start_new_session=True,
    )
    state.pids[PID_NAME] = proc.pid
    state.save()
    kueue = KueueProcess(state, proc.pid, *ports, log, popen=proc)
    try:
        wait(kueue, lambda: readyz(ports[1]), timeout, "Kueue's /readyz")
        for obj in webhook_configurations(
            files / "webhook" / "manifests.yaml", state.kubeconfig, ports[0],
            (certs / "ca.crt").read_bytes(),
        ):  # fmt: skip
            apply(state, "-f", "-", stdin=json.dumps(obj))
        probe = json.dumps(resource_flavor("ferry-kueue-probe"))
        wait(
            kueue,
            lambda: kubectl.run(
                state.kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=probe, check=False
            ).returncode == 0,
            timeout,
            "its webhooks (a server-side dry run of a ResourceFlavor)",
        )  # fmt: skip
    except BaseException:
        kueue.stop()
        raise
    kueue.timings = {
        "total": round(time.monotonic() - t0, 2),
        "process": round(time.monotonic() - t1, 2),
    }
    return kueue


def mount_namespace(certs: Path) -> list[str]:
    """The argv prefix that runs Kueue where /etc/kueue/metrics/certs is `certs`."""
    try:
        METRICS_CERT_PATH.mkdir(parents=True, exist_ok=True)
    except PermissionError as exc:
        raise ClusterError(
            f"Kueue reads its metrics certificate from {METRICS_CERT_PATH}: create that "
            f"(empty) directory as root once ({exc})"
        ) from exc
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    script = 'd="$1"; shift; mount --bind "$d" "$0" && exec "$@"'
    return ["unshare", *user, "--mount", "--propagation", "private", "sh", "-c", script,
            str(METRICS_CERT_PATH), str(certs)]  # fmt: skip


def wait(kueue: KueueProcess | None, ready: Any, timeout: float, what: str) -> None:
    """Poll `ready` until true; a ClusterError with Kueue's log tail if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kueue is not None and not kueue.alive():
            raise ClusterError(f"kueue exited; its log ends:\n{kueue.log_tail()}")
        if ready():
            return
        time.sleep(0.3)
    tail = f"; its log ends:\n{kueue.log_tail()}" if kueue else ""
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def readyz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def apply(state: ClusterState, *args: str, stdin: str | None = None) -> None:
    proc = kubectl.run(state.kubeconfig, "apply", *args, stdin=stdin, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"kubectl apply {' '.join(args)}: {proc.stderr.strip()}")


def crds_established(state: ClusterState) -> bool:
    proc = kubectl.run(state.kubeconfig, "get", "crd", "-o", "json", check=False)
    if proc.returncode != 0:
        return False
    kueue_crds = [
        c for c in json.loads(proc.stdout)["items"] if c["spec"]["group"] == "kueue.x-k8s.io"
    ]
    return bool(kueue_crds) and all(
        any(
            x["type"] == "Established" and x["status"] == "True"
            for x in (c.get("status") or {}).get("conditions") or []
        )
        for c in kueue_crds
    )
