"""Ferry's lifecycle benchmark: a burst (or a steady stream, --rate) of Jobs against
kube-controller-manager's Job controller, and the operator's memory and resume time with
10,000 finished Jobs present.

Runs on its own local cluster (hack/localcluster.py: etcd, kube-apiserver with an audit log,
kube-controller-manager, kube-scheduler and kwok's simulated nodes), which it starts in --root
and tears down at the end. Each round runs a burst of --jobs Ferry Jobs (with the operator
running only for that burst) and the same number of batch/v1 Jobs (driven by the Job
controller) in fresh namespaces, alternating which goes first; both controllers get the same
client QPS and burst. See docs/benchmarks.md for the method and the results.

    .venv/bin/python bench/lifecycle.py --jobs 1000 --rounds 3 --qps 50
    .venv/bin/python bench/lifecycle.py --jobs 1200 --rate 20 --qps 150 --population 0
    .venv/bin/python bench/lifecycle.py --jobs 100 --rounds 1 --population 1000   # quick look

It never fails CI: every goal is reported as "pass" or "short of goal", and the exit code is 0
unless the harness itself could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))

from localcluster import (  # noqa: E402
    ClusterState,
    LocalCluster,
    free_port,
    kubectl_binary,
)
from localcluster import stop as stop_cluster  # noqa: E402

GROUP, VERSION = "ferry.dev", "v1alpha1"
IMAGE = "example.org/bench:1"
APP_NAME = "bench"
# Requests of every benchmark pod (Ferry's run pods get them from the App): small, so that
# scheduling never waits for capacity.
RESOURCES = {"cpu": "10m", "memory": "16Mi"}
SIM_DURATION = "sim.ferry.dev/duration"

# The Job's archive setting for the burst: no inputs, no archive. The `enabled` field is being
# added to the Job API; until the installed CRD knows it, the harness leaves `archive` out (so
# Ferry archives, with one extra pod per Job) and says so in its output.
ARCHIVE_SPEC: dict[str, Any] = {"enabled": False}

FERRY_TERMINAL = frozenset({"Finished", "Failed", "TimedOut", "Cancelled"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
BENCH_USER_AGENT = "ferry-bench/lifecycle"
OPERATOR_USER = "ferry-admin"  # the local cluster's admin token (hack/localcluster.py)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Goals (issue text); measured values are compared with these, never assumed.
GOAL_THROUGHPUT_RATIO = 1.0
GOAL_P99_POD_TO_JOB_S = 1.0
GOAL_RSS_MB = 200.0


def results_markers(stream: bool) -> tuple[str, str]:
    """The markers around the results block this workload writes into docs/benchmarks.md."""
    name = "lifecycle-stream-results" if stream else "lifecycle-results"
    return (
        f"<!-- {name}:begin (written by bench/lifecycle.py --update-docs) -->",
        f"<!-- {name}:end -->",
    )


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


@dataclass
class ProcSample:
    cpu_seconds: float
    rss_bytes: int
    hwm_bytes: int


def proc_sample(pid: int) -> ProcSample:
    """CPU seconds (utime + stime) and resident memory (now, peak) of a live process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return ProcSample(cpu, rss, hwm)


LIVE_OPERATORS: set[Operator] = set()  # stopped by main() whatever happens


class Operator:
    """The Ferry operator as a child process, watching one namespace, as tests/conftest.py
    starts it (python -m ferry operator run, FERRY_* settings)."""

    def __init__(
        self,
        state: ClusterState,
        namespace: str,
        qps: float,
        workers: int | None,
        log: Path,
        code: Path | None = None,
    ) -> None:
        self.metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        env.update(
            FERRY_KUBECONFIG=str(state.kubeconfig),
            FERRY_QPS=f"{qps:g}",
            FERRY_BURST=str(int(2 * qps)),
            FERRY_METRICS_PORT=str(self.metrics_port),
            FERRY_HEALTH_PORT="0",
            FERRY_NAMESPACES=namespace,
            # No object store in this cluster: archive pods (if any) are simulated by kwok.
            FERRY_DEFAULT_S3_ENDPOINT="http://127.0.0.1:9",
        )
        if workers:
            env["FERRY_WORKERS"] = str(workers)
        if code is not None:
            # The snapshot of operator/ taken at the start of the run comes first on the path.
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(code), env.get("PYTHONPATH", "")) if p
            )
        self.log_path = log
        self.started = time.monotonic()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ferry", "operator", "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(ROOT),
            )
        LIVE_OPERATORS.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"the operator exited ({self.proc.returncode}); its log ends:\n{tail}"
            )

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def jobs_in_state(self, state: str) -> int | None:
        try:
            text = self.metrics()
        except OSError:
            return None
        m = re.search(r'^ferry_jobs\{state="' + state + r'"\} ([0-9.e+]+)$', text, re.M)
        return int(float(m.group(1))) if m else None

    def api_requests(self) -> dict[str, int]:
        """ferry_api_requests_total by "verb resource" (the operator's own count, reads too)."""
        try:
            text = self.metrics()
        except OSError:
            return {}
        out: dict[str, int] = {}
        for labels, n in re.findall(r"^ferry_api_requests_total\{([^}]*)\} (\S+)$", text, re.M):
            kv = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            out[f"{kv.get('verb', '?')} {kv.get('resource', '?')}"] = int(float(n))
        return out

    def sample(self) -> ProcSample:
        return proc_sample(self.pid)

    def stop(self) -> None:
        LIVE_OPERATORS.discard(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- API


def api_client(state: ClusterState) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(state.kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = 64
    api = k8s.ApiClient(cfg)
    api.user_agent = BENCH_USER_AGENT
    return api


def kubectl(state: ClusterState, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(state.kubeconfig), *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def create_namespace(api: k8s.ApiClient, name: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name, "labels": {"ferry.dev/bench": "lifecycle"}}})

    def sa_ready() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException:
            return False
        return True

    wait_until(sa_ready, 60, f"the default ServiceAccount in {name}")


def archive_supported(state: ClusterState) -> bool:
    """Whether the installed Job CRD has every field of ARCHIVE_SPEC under spec.archive."""
    crd = json.loads(kubectl(state, "get", "crd", "jobs.ferry.dev", "-o", "json"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == VERSION)
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]["archive"].get("properties") or {}
    return all(k in props for k in ARCHIVE_SPEC)


def snapshot_operator(root: Path) -> tuple[Path, str]:
    """Copy operator/ferry into the run's directory, so that every round runs the same code
    even while operator/ is being edited; returns the copy and a digest of its sources."""
    dest = root / "operator-snapshot"
    shutil.copytree(
        ROOT / "operator" / "ferry", dest / "ferry", ignore=shutil.ignore_patterns("__pycache__")
    )
    digest = hashlib.sha256()
    for path in sorted((dest / "ferry").rglob("*.py")):
        digest.update(str(path.relative_to(dest)).encode())
        digest.update(path.read_bytes())
    return dest, digest.hexdigest()[:12]


def install_crds(root: Path) -> str:
    """The CRDs generated from the operator's own models (ferry.crdgen), so that the API the
    benchmark installs is the one the operator under test was built with, even when the
    committed crds/ lag; the committed files when the generator cannot be imported."""
    sys.path.insert(0, str(root / "operator-snapshot"))
    try:
        from ferry import crdgen
    except ImportError:
        return str(ROOT / "crds")
    path = root / "crds.yaml"
    path.write_text("---\n".join(crdgen.render(c) for c in (crdgen.app_crd(), crdgen.job_crd())))
    return str(path)


def app_manifest(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "App",
        "metadata": {"name": APP_NAME, "namespace": namespace},
        "spec": {"version": "1", "image": IMAGE, "resources": dict(RESOURCES)},
    }


def ferry_job(name: str, duration: str, archive: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"appRef": {"name": APP_NAME}}
    if archive is not None:
        spec["archive"] = archive
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name, "annotations": {SIM_DURATION: duration}},
        "spec": spec,
    }


def batch_job(name: str, duration: str) -> dict[str, Any]:
    """A batch/v1 Job with one pod shaped like Ferry's run pod of the bench App."""
    container_security = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": {SIM_DURATION: duration}},
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "template": {
                "metadata": {"annotations": {SIM_DURATION: duration}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "app",
                            "image": IMAGE,
                            "workingDir": "/ferry/work",
                            "securityContext": container_security,
                            "resources": {"requests": RESOURCES, "limits": RESOURCES},
                            "volumeMounts": [{"name": "workspace", "mountPath": "/ferry/work"}],
                        }
                    ],
                    "volumes": [{"name": "workspace", "emptyDir": {}}],
                },
            },
        },
    }


# --------------------------------------------------------------------------- watching


class Watcher(threading.Thread):
    """One watch (list, then watch from its resourceVersion, re-established on timeout) that
    hands each raw event to `on_event` with the monotonic time of its receipt."""

    def __init__(
        self,
        api: k8s.ApiClient,
        path: str,
        on_event: Callable[[str, dict[str, Any], float], None],
    ) -> None:
        super().__init__(daemon=True, name=f"watch {path}")
        self.api = api
        self.path = path
        self.on_event = on_event
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def _get(self, query: list[tuple[str, Any]], timeout: float) -> Any:
        return self.api.call_api(
            self.path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )[0]

    def _list(self) -> str:
        resp = self._get([("limit", 500)], 60)
        data = json.loads(resp.data)
        now = time.monotonic()
        for item in data.get("items", []):
            self.on_event("ADDED", item, now)
        return str(data["metadata"]["resourceVersion"])

    def run(self) -> None:
        try:
            rv = self._list()
            self.ready.set()
            while not self.stopping.is_set():
                query = [
                    ("watch", "true"),
                    ("resourceVersion", rv),
                    ("allowWatchBookmarks", "true"),
                    ("timeoutSeconds", 10),
                ]
                resp = self._get(query, 30)
                try:
                    for line in iter_resp_lines(resp):
                        now = time.monotonic()
                        event = json.loads(line)
                        obj = event["object"]
                        kind = event["type"]
                        if kind == "ERROR":
                            if obj.get("code") == 410:
                                rv = self._list()
                                break
                            raise RuntimeError(f"watch {self.path}: {obj}")
                        rv = obj["metadata"]["resourceVersion"]
                        if kind != "BOOKMARK":
                            self.on_event(kind, obj, now)
                        if self.stopping.is_set():
                            break
                finally:
                    resp.release_conn()
        except BaseException as exc:
            self.error = exc
            self.ready.set()


@dataclass
class Timeline:
    """Receipt times (monotonic) of the events the benchmark measures, per Job name."""

    job_added: dict[str, float] = field(default_factory=dict)
    job_terminal: dict[str, float] = field(default_factory=dict)
    job_outcome: dict[str, str] = field(default_factory=dict)
    pod_added: dict[str, float] = field(default_factory=dict)
    pod_terminal: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def ferry_outcome(obj: dict[str, Any]) -> str | None:
    state = (obj.get("status") or {}).get("state")
    return str(state) if state in FERRY_TERMINAL else None


def batch_outcome(obj: dict[str, Any]) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def ferry_pod_job(pod: dict[str, Any]) -> str | None:
    labels = pod["metadata"].get("labels") or {}
    if labels.get("ferry.dev/role") != "run":
        return None
    job = labels.get("ferry.dev/job")
    return str(job) if job else None


def batch_pod_job(pod: dict[str, Any]) -> str | None:
    labels = pod["metadata"].get("labels") or {}
    job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    return str(job) if job else None


@dataclass(frozen=True)
class System:
    name: str  # "ferry" | "batch"
    jobs_path: str  # a format string with {ns}
    outcome: Callable[[dict[str, Any]], str | None]
    pod_job: Callable[[dict[str, Any]], str | None]


FERRY = System(
    "ferry", f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/jobs", ferry_outcome, ferry_pod_job
)
BATCH = System("batch", "/apis/batch/v1/namespaces/{ns}/jobs", batch_outcome, batch_pod_job)


def watch_namespace(api: k8s.ApiClient, system: System, ns: str) -> tuple[Timeline, list[Watcher]]:
    tl = Timeline()

    def on_job(kind: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        with tl.lock:
            if kind == "ADDED":
                tl.job_added.setdefault(name, now)
            outcome = system.outcome(obj)
            if outcome and name not in tl.job_terminal:
                tl.job_terminal[name] = now
                tl.job_outcome[name] = outcome

    def on_pod(kind: str, obj: dict[str, Any], now: float) -> None:
        job = system.pod_job(obj)
        if job is None:
            return
        with tl.lock:
            tl.pod_added.setdefault(job, now)
            phase = (obj.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                tl.pod_terminal.setdefault(job, now)

    watchers = [
        Watcher(api, system.jobs_path.format(ns=ns), on_job),
        Watcher(api, f"/api/v1/namespaces/{ns}/pods", on_pod),
    ]
    for w in watchers:
        w.start()
    for w in watchers:
        w.ready.wait(60)
        if w.error:
            raise RuntimeError(f"watch {w.path} failed: {w.error}")
    return tl, watchers


# --------------------------------------------------------------------------- audit log


def actor_of(event: dict[str, Any]) -> str:
    """Who made an audited request: by user agent, since the local cluster's components and
    the operator share the admin token."""
    ua = str(event.get("userAgent") or "")
    user = str((event.get("user") or {}).get("username") or "")
    if ua.startswith(BENCH_USER_AGENT):
        return "bench"
    if ua.startswith("kube-controller-manager") or user.startswith("system:kube-controller"):
        return "kube-controller-manager"
    if ua.startswith("kube-scheduler") or user == "system:kube-scheduler":
        return "kube-scheduler"
    if ua.lower().startswith("kwok"):
        return "kwok"
    if ua.startswith("kubectl"):
        return "kubectl"
    if user.startswith("system:serviceaccount:kube-system:"):
        return "kube-controller-manager"
    if user == OPERATOR_USER and ("kopf" in ua or "OpenAPI-Generator" in ua or "ferry" in ua):
        return "operator"
    return f"other ({user}, {ua[:40]})"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class AuditCounts:
    by_key: Counter[tuple[str, str, str, str]] = field(
        default_factory=Counter
    )  # actor,user,verb,resource
    failed: Counter[str] = field(default_factory=Counter)  # actor -> non-2xx responses
    failed_by_key: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    user_agents: dict[str, str] = field(default_factory=dict)  # actor -> an example user agent

    def per_actor(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (actor, _, _, _), n in self.by_key.items():
            out[actor] += n
        return out

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "actor": a,
                "user": u,
                "verb": v,
                "resource": r,
                "count": n,
                "failed": self.failed_by_key[(a, u, v, r)],
            }
            for (a, u, v, r), n in sorted(self.by_key.items())
        ]


@dataclass(frozen=True)
class AuditMark:
    """Where the audit log stood: the file then current (its inode) and its size."""

    inode: int
    offset: int

    #: Everything there is: every rotated file and the current one, from their starts.
    @classmethod
    def beginning(cls) -> AuditMark:
        return cls(inode=-1, offset=0)


class AuditLog:
    """Reads the apiserver's JSON audit log from a mark on, across rotations: the apiserver
    (lumberjack) renames the full file to audit-<time>.log and starts a new audit.log. The
    local cluster makes rotation rare (--audit-log-maxsize), this makes it harmless."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> AuditMark:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return AuditMark(inode=0, offset=0)
        return AuditMark(inode=st.st_ino, offset=st.st_size)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def settle(self, quiet: float = 2.0, limit: float = 20.0) -> None:
        """Wait until the log stops growing (the apiserver writes it in batches)."""
        deadline = time.monotonic() + limit
        size = -1
        while time.monotonic() < deadline:
            now = self.size()
            if now == size:
                return
            size = now
            time.sleep(quiet)

    def files(self, start: AuditMark) -> list[tuple[Path, int]]:
        """The files holding what was written since `start`, oldest first, each with the
        offset to read it from."""
        rotated = sorted(self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"))
        chain = [*rotated, self.path] if self.path.exists() else rotated
        inodes = [p.stat().st_ino for p in chain]
        if start.inode in inodes:
            at = inodes.index(start.inode)
            return [(chain[at], start.offset)] + [(p, 0) for p in chain[at + 1 :]]
        return [(p, 0) for p in chain]

    def events(self, start: AuditMark, needle: str = "") -> Iterator[dict[str, Any]]:
        """The records since `start` (only lines containing `needle`, when given)."""
        raw = needle.encode()
        for path, offset in self.files(start):
            with open(path, "rb") as f:
                f.seek(offset)
                for line in f:
                    if raw and raw not in line:
                        continue
                    with contextlib.suppress(ValueError):
                        yield json.loads(line)

    def first_create(self, namespace: str) -> float | None:
        """When the benchmark's first create in `namespace` was received (a burst's start)."""
        for ev in self.events(AuditMark.beginning(), f'"{namespace}"'):
            ref = ev.get("objectRef") or {}
            if (
                ev.get("verb") == "create"
                and ref.get("namespace") == namespace
                and ref.get("resource") == "jobs"
                and actor_of(ev) == "bench"
            ):
                return _ts(ev["requestReceivedTimestamp"])
        return None

    def writes(self, start: AuditMark, namespace: str, t0: float, t1: float) -> AuditCounts:
        counts = AuditCounts()
        for ev in self.events(start, f'"{namespace}"'):
            if ev.get("stage") != "ResponseComplete" or ev.get("verb") not in WRITE_VERBS:
                continue
            ref = ev.get("objectRef") or {}
            if ref.get("namespace") != namespace:
                continue
            t = _ts(ev["requestReceivedTimestamp"])
            if not t0 <= t <= t1:
                continue
            resource = str(ref.get("resource", ""))
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            actor = actor_of(ev)
            user = str((ev.get("user") or {}).get("username") or "")
            counts.by_key[(actor, user, ev["verb"], resource)] += 1
            counts.user_agents.setdefault(actor, str(ev.get("userAgent") or ""))
            code = int((ev.get("responseStatus") or {}).get("code") or 0)
            if not 200 <= code < 300:
                counts.failed[actor] += 1
                counts.failed_by_key[(actor, user, ev["verb"], resource)] += 1
        return counts


def record_writes(result: BurstResult, counts: AuditCounts) -> None:
    """Put a burst's audited writes into its result."""
    per_actor = counts.per_actor()
    controller = "operator" if result.system == FERRY.name else "kube-controller-manager"
    total = sum(v for a, v in per_actor.items() if a != "bench")
    result.writes = counts.table()
    result.writes_per_actor = dict(per_actor)
    result.failed_writes = dict(counts.failed)
    result.user_agents = counts.user_agents
    result.writes_per_job = total / result.jobs
    result.controller_writes_per_job = per_actor.get(controller, 0) / result.jobs


# --------------------------------------------------------------------------- statistics


def percentile(values: Iterable[float], q: float) -> float | None:
    data = sorted(values)
    if not data:
        return None
    k = (len(data) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: Iterable[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- one burst


@dataclass
class BurstResult:
    system: str
    round: int
    namespace: str
    jobs: int
    terminal: int
    succeeded: int
    seconds_to_all_terminal: float | None
    completions_per_second: float | None
    create_seconds: float
    p50_create_to_pod: float | None
    p99_create_to_pod: float | None
    p50_pod_to_job: float | None
    p99_pod_to_job: float | None
    writes: list[dict[str, Any]]
    writes_per_actor: dict[str, int]
    failed_writes: dict[str, int]
    user_agents: dict[str, str]
    writes_per_job: float
    controller_writes_per_job: float
    operator_cpu_seconds: float | None = None
    operator_cpu_seconds_total: float | None = None
    operator_peak_rss_bytes: int | None = None
    controller_manager_cpu_seconds: float | None = None
    archive_spec: dict[str, Any] | None = None
    # The operator's own count of its API requests over its life (reads included).
    operator_requests: dict[str, int] = field(default_factory=dict)
    completions: list[float] = field(default_factory=list)  # seconds since the first create
    wall_start: float | None = None  # time.time() of the first create


@dataclass
class Bench:
    state: ClusterState
    api: k8s.ApiClient
    audit: AuditLog
    args: argparse.Namespace
    archive: dict[str, Any] | None
    code: Path | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    template_job: dict[str, Any] | None = None

    def remove(self, ns: str) -> None:
        """Delete a finished burst's namespace and wait until it is gone, so that the next
        burst shares the cluster with none of its objects (kwok keeps every pod it sees, the
        Job controller's finished pods stay) and the garbage collector works before the next
        round, not during it."""
        core = k8s.CoreV1Api(self.api)
        t = time.monotonic()
        core.delete_namespace(ns)

        def gone() -> bool:
            try:
                core.read_namespace(ns)
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            return False

        wait_until(gone, self.args.timeout, f"namespace {ns} deleted", step=1.0)
        log(f"{ns}: deleted in {time.monotonic() - t:.0f}s")

    def kcm_cpu(self) -> float | None:
        pid = self.state.pids.get("kube-controller-manager")
        try:
            return proc_sample(pid).cpu_seconds if pid else None
        except OSError:
            return None

    def create_all(
        self,
        create: Callable[[dict[str, Any]], Any],
        bodies: list[dict[str, Any]],
        rate: float = 0.0,
    ) -> None:
        """Create every body: at once, or (rate > 0) the i-th at i/rate seconds."""
        start = time.monotonic()

        def one(indexed: tuple[int, dict[str, Any]]) -> None:
            i, body = indexed
            if rate > 0:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            for attempt in range(5):
                try:
                    create(body)
                    return
                except ApiException as exc:
                    if exc.status == 409:
                        return
                    if attempt == 4 or exc.status not in (429, 500, 503, 504):
                        raise
                    time.sleep(0.5 * (attempt + 1))

        with ThreadPoolExecutor(max_workers=self.args.create_threads) as pool:
            list(pool.map(one, enumerate(bodies)))

    def burst(self, system: System, round_no: int) -> BurstResult:
        args = self.args
        n = args.jobs
        ns = f"bench-{self.run_id}-{system.name}-r{round_no}"
        create_namespace(self.api, ns)
        custom = k8s.CustomObjectsApi(self.api)
        operator: Operator | None = None
        if system is FERRY:
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "apps", app_manifest(ns))
            operator = Operator(
                self.state,
                ns,
                args.qps,
                args.workers,
                Path(args.root) / f"operator-{ns}.log",
                self.code,
            )

            def app_ready() -> bool:
                assert operator is not None
                operator.check()
                app = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "apps", APP_NAME)
                conds = (app.get("status") or {}).get("conditions") or []
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
                return ready and operator.jobs_in_state("Finished") is not None

            wait_until(app_ready, 120, "the operator to start and mark the App Ready")
            bodies = [ferry_job(f"j{i:05d}", args.duration, self.archive) for i in range(n)]

            def create(body: dict[str, Any]) -> Any:
                return custom.create_namespaced_custom_object(GROUP, VERSION, ns, "jobs", body)
        else:
            batch = k8s.BatchV1Api(self.api)
            bodies = [batch_job(f"j{i:05d}", args.duration) for i in range(n)]

            def create(body: dict[str, Any]) -> Any:
                return batch.create_namespaced_job(ns, body)

        tl, watchers = watch_namespace(self.api, system, ns)
        audit_start = self.audit.mark()
        kcm0 = self.kcm_cpu()
        op0 = operator.sample() if operator else None
        log(f"round {round_no} {system.name}: creating {n} Jobs in {ns}")
        wall0 = time.time()
        t0 = time.monotonic()
        self.create_all(create, bodies, args.rate)
        create_seconds = time.monotonic() - t0
        log(f"round {round_no} {system.name}: created in {create_seconds:.1f}s; waiting")
        deadline = t0 + args.timeout
        last_report = t0
        while time.monotonic() < deadline:
            with tl.lock:
                done = len(tl.job_terminal)
            if done >= n:
                break
            if operator:
                operator.check()
            for w in watchers:
                if w.error:
                    raise RuntimeError(f"watch {w.path} failed: {w.error}")
            if time.monotonic() - last_report > 15:
                log(f"round {round_no} {system.name}: {done}/{n} terminal")
                last_report = time.monotonic()
            time.sleep(0.2)
        t_end = time.monotonic()
        with tl.lock:
            terminal_times = dict(tl.job_terminal)
        if len(terminal_times) < n:
            log(
                f"round {round_no} {system.name}: only {len(terminal_times)}/{n} terminal "
                "by the timeout"
            )
        # A short grace for writes that belong to the burst but land after the last terminal
        # state (e.g. cleanup of the last pods), then the figures.
        time.sleep(args.grace)
        kcm1 = self.kcm_cpu()
        op1 = operator.sample() if operator else None
        op_requests = operator.api_requests() if operator else {}
        if operator:
            operator.stop()
        for w in watchers:
            w.stopping.set()
        wall1 = wall0 + (max(terminal_times.values(), default=t_end) - t0) + args.grace
        self.audit.settle()
        counts = self.audit.writes(audit_start, ns, wall0 - 1.0, wall1)
        with tl.lock:
            create_to_pod = [
                tl.pod_added[j] - tl.job_added[j] for j in tl.pod_added if j in tl.job_added
            ]
            pod_to_job = [
                tl.job_terminal[j] - tl.pod_terminal[j]
                for j in tl.job_terminal
                if j in tl.pod_terminal
            ]
            succeeded = sum(1 for o in tl.job_outcome.values() if o in ("Finished", "Complete"))
        all_done = len(terminal_times) >= n
        seconds = (max(terminal_times.values()) - t0) if all_done else None
        result = BurstResult(
            system=system.name,
            round=round_no,
            namespace=ns,
            jobs=n,
            terminal=len(terminal_times),
            succeeded=succeeded,
            seconds_to_all_terminal=seconds,
            completions_per_second=(n / seconds) if seconds else None,
            create_seconds=create_seconds,
            p50_create_to_pod=percentile(create_to_pod, 50),
            p99_create_to_pod=percentile(create_to_pod, 99),
            p50_pod_to_job=percentile(pod_to_job, 50),
            p99_pod_to_job=percentile(pod_to_job, 99),
            writes=[],
            writes_per_actor={},
            failed_writes={},
            user_agents={},
            writes_per_job=0.0,
            controller_writes_per_job=0.0,
            controller_manager_cpu_seconds=(kcm1 - kcm0) if kcm0 is not None and kcm1 else None,
            archive_spec=self.archive if system is FERRY else None,
            operator_requests=op_requests,
            completions=sorted(t - t0 for t in terminal_times.values()),
            wall_start=wall0,
        )
        record_writes(result, counts)
        if operator and op0 and op1:
            result.operator_cpu_seconds = op1.cpu_seconds - op0.cpu_seconds
            result.operator_cpu_seconds_total = op1.cpu_seconds
            result.operator_peak_rss_bytes = op1.hwm_bytes
        if system is FERRY and succeeded:
            name = next(j for j, o in tl.job_outcome.items() if o == "Finished")
            self.template_job = custom.get_namespaced_custom_object(
                GROUP, VERSION, ns, "jobs", name
            )
        log(
            f"round {round_no} {system.name}: {result.terminal}/{n} terminal "
            f"({succeeded} succeeded) in {fmt(seconds)}s, {fmt(result.completions_per_second)}/s, "
            f"writes/Job {result.writes_per_job:.2f} "
            f"(controller {result.controller_writes_per_job:.2f})"
        )
        return result

    # ----------------------------------------------------------------------- population

    def finished_status(self, name: str) -> dict[str, Any]:
        """The status of a Finished Job: a copy of one Ferry itself finished (in a burst
        round, or `make_template` when none ran), so that there is nothing to correct."""
        assert self.template_job is not None
        status: dict[str, Any] = json.loads(json.dumps(self.template_job["status"]))
        if status.get("podName"):
            status["podName"] = f"{name}-1"
        return status

    def make_template(self, ns: str) -> None:
        """With no burst round run, have the operator finish one Job in `ns` to copy."""
        custom = k8s.CustomObjectsApi(self.api)
        operator = Operator(
            self.state,
            ns,
            self.args.qps,
            self.args.workers,
            Path(self.args.root) / f"operator-{ns}-template.log",
            self.code,
        )
        try:
            custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, "jobs", ferry_job("template", self.args.duration, self.archive)
            )

            def finished() -> dict[str, Any] | None:
                operator.check()
                job = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "jobs", "template")
                return job if (job.get("status") or {}).get("state") == "Finished" else None

            self.template_job = wait_until(finished, 120, "the template Job to finish")
        finally:
            operator.stop()

    def population(self) -> dict[str, Any]:
        args = self.args
        n = args.population
        ns = f"bench-{self.run_id}-population"
        create_namespace(self.api, ns)
        custom = k8s.CustomObjectsApi(self.api)
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "apps", app_manifest(ns))
        extra = 0  # Finished Jobs in the namespace besides the population
        if self.template_job is None:
            self.make_template(ns)
            extra = 1
        template = self.template_job
        assert template is not None
        meta = template.get("metadata") or {}
        names = [f"p{i:05d}" for i in range(n)]
        bodies = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Job",
                "metadata": {
                    "name": name,
                    "labels": meta.get("labels") or {},
                    "annotations": meta.get("annotations") or {},
                    **({"finalizers": meta["finalizers"]} if meta.get("finalizers") else {}),
                },
                "spec": template["spec"],
            }
            for name in names
        ]
        log(f"population: creating {n} Jobs in {ns}")
        t = time.monotonic()
        self.create_all(
            lambda b: custom.create_namespaced_custom_object(GROUP, VERSION, ns, "jobs", b), bodies
        )
        log(f"population: created in {time.monotonic() - t:.0f}s; writing their status as Finished")
        t = time.monotonic()

        def finish(name: str) -> None:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, "jobs", name, {"status": self.finished_status(name)}
            )

        with ThreadPoolExecutor(max_workers=args.create_threads) as pool:
            list(pool.map(finish, names))
        log(f"population: statuses written in {time.monotonic() - t:.0f}s; starting the operator")
        time.sleep(2)
        audit_start = self.audit.mark()
        wall0 = time.time()
        operator = Operator(
            self.state,
            ns,
            args.qps,
            args.workers,
            Path(args.root) / f"operator-{ns}.log",
            self.code,
        )
        t_start = operator.started

        def synced() -> bool:
            operator.check()
            return operator.jobs_in_state("Finished") == n + extra

        wait_until(synced, args.timeout, f'ferry_jobs{{state="Finished"}} == {n + extra}', step=0.1)
        t_synced = time.monotonic()
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, "jobs", ferry_job("probe", args.duration, self.archive)
        )
        t_probe = time.monotonic()

        def probe_finished() -> bool:
            operator.check()
            job = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "jobs", "probe")
            return (job.get("status") or {}).get("state") == "Finished"

        wait_until(probe_finished, args.timeout, "the probe Job to finish", step=0.05)
        t_done = time.monotonic()
        log("population: resumed; letting the operator settle before sampling its memory")
        # Settled: no CPU used for 3 s in a row (or 60 s at most).
        last = operator.sample()
        quiet_since = time.monotonic()
        settle_deadline = time.monotonic() + 60
        while time.monotonic() < settle_deadline:
            time.sleep(1)
            now = operator.sample()
            if now.cpu_seconds - last.cpu_seconds > 0.05:
                quiet_since = time.monotonic()
            last = now
            if time.monotonic() - quiet_since >= 3:
                break
        sample = operator.sample()
        wall1 = time.time()
        operator.stop()
        self.audit.settle()
        counts = self.audit.writes(audit_start, ns, wall0 - 1.0, wall1 + 1.0)
        result = {
            "namespace": ns,
            "jobs": n,
            "status_from": "a Job Ferry finished",
            "seconds_to_resume": t_synced - t_start,
            "seconds_probe_create_to_finished": t_done - t_probe,
            "seconds_start_to_probe_finished": t_done - t_start,
            "rss_bytes_settled": sample.rss_bytes,
            "peak_rss_bytes": sample.hwm_bytes,
            "cpu_seconds": sample.cpu_seconds,
            "operator_writes": {
                f"{v} {r}": c
                for (a, _, v, r), c in sorted(counts.by_key.items())
                if a == "operator"
            },
        }
        log(
            f"population: resumed {n} Jobs in {result['seconds_to_resume']:.1f}s, probe Job "
            f"finished {result['seconds_probe_create_to_finished']:.1f}s after creation; RSS "
            f"{sample.rss_bytes / 1e6:.0f} MB (peak {sample.hwm_bytes / 1e6:.0f} MB)"
        )
        return result


# --------------------------------------------------------------------------- report


def summarize(bursts: list[BurstResult]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for system in ("ferry", "batch"):
        rs = [b for b in bursts if b.system == system]
        if not rs:
            continue
        out[system] = {
            "seconds_to_all_terminal": median(b.seconds_to_all_terminal for b in rs),
            "completions_per_second": median(b.completions_per_second for b in rs),
            "p50_create_to_pod": median(b.p50_create_to_pod for b in rs),
            "p99_create_to_pod": median(b.p99_create_to_pod for b in rs),
            "p50_pod_to_job": median(b.p50_pod_to_job for b in rs),
            "p99_pod_to_job": median(b.p99_pod_to_job for b in rs),
            "writes_per_job": median(b.writes_per_job for b in rs),
            "controller_writes_per_job": median(b.controller_writes_per_job for b in rs),
            "operator_cpu_seconds": median(b.operator_cpu_seconds for b in rs),
            "operator_peak_rss_mb": median(
                b.operator_peak_rss_bytes / 1e6 if b.operator_peak_rss_bytes else None for b in rs
            ),
            "controller_manager_cpu_seconds": median(b.controller_manager_cpu_seconds for b in rs),
        }
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def goals(summary: dict[str, dict[str, float | None]], pop: dict[str, Any] | None) -> list[str]:
    f, b = summary.get("ferry", {}), summary.get("batch", {})
    lines = []

    def line(name: str, ok: bool | None, detail: str) -> None:
        verdict = "n/a (not measured)" if ok is None else ("pass" if ok else "short of goal")
        lines.append(f"goal {name}: {verdict} — {detail}")

    tr = ratio(f.get("completions_per_second"), b.get("completions_per_second"))
    line(
        f"throughput ratio >= {GOAL_THROUGHPUT_RATIO:.1f}",
        None if tr is None else tr >= GOAL_THROUGHPUT_RATIO,
        f"measured {fmt(tr)}",
    )
    fw, bw = f.get("controller_writes_per_job"), b.get("controller_writes_per_job")
    line(
        "API writes per Job <= the Job controller's",
        None if fw is None or bw is None else fw <= bw,
        f"operator {fmt(fw)} vs kube-controller-manager {fmt(bw)} writes/Job "
        f"(all components: Ferry {fmt(f.get('writes_per_job'))} vs batch "
        f"{fmt(b.get('writes_per_job'))})",
    )
    p99 = f.get("p99_pod_to_job")
    line(
        f"p99 pod terminal -> Job terminal <= {GOAL_P99_POD_TO_JOB_S:g} s",
        None if p99 is None else p99 <= GOAL_P99_POD_TO_JOB_S,
        f"measured {fmt(p99, 3)} s (Job controller: {fmt(b.get('p99_pod_to_job'), 3)} s)",
    )
    rss = pop["rss_bytes_settled"] / 1e6 if pop else None
    line(
        f"RSS <= {GOAL_RSS_MB:g} MB with {pop['jobs'] if pop else 'N'} Jobs",
        None if rss is None else rss <= GOAL_RSS_MB,
        f"measured {fmt(rss, 0)} MB settled "
        f"(peak {fmt(pop['peak_rss_bytes'] / 1e6 if pop else None, 0)} MB)",
    )
    return lines


def markdown(
    args: argparse.Namespace,
    bursts: list[BurstResult],
    summary: dict[str, dict[str, float | None]],
    pop: dict[str, Any] | None,
    goal_lines: list[str],
    meta: dict[str, Any],
) -> str:
    out: list[str] = []
    out.append(
        f"Measured {meta['date']} on commit `{meta['commit']}`{meta['dirty']} (operator "
        f"sources sha256 `{meta['operator_digest']}`), {meta['cpus']} CPUs "
        f"(shared with other work), `--jobs {args.jobs} --rounds {args.rounds} --qps {args.qps:g}"
        f"{f' --rate {args.rate:g}' if args.rate else ''}"
        f"{f' --workers {args.workers}' if args.workers else ''}`, kwok run time "
        f"{args.duration}; Ferry Jobs' archive setting: `{meta['archive']}`."
        + (
            f" Writes counted again on {meta['recounted']} from every audit log file "
            "(`--recount`).\n"
            if meta.get("recounted")
            else "\n"
        )
    )
    out.append(
        "| round | system | all terminal (s) | completions/s | create→pod p50 / p99 (s) "
        "| pod terminal→Job terminal p50 / p99 (s) | writes/Job (all) | writes/Job (controller) "
        "| operator CPU (s) | operator peak RSS (MB) | kube-controller-manager CPU (s) |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for b in bursts:
        out.append(
            f"| {b.round} | {b.system} | {fmt(b.seconds_to_all_terminal, 1)} "
            f"| {fmt(b.completions_per_second)} "
            f"| {fmt(b.p50_create_to_pod)} / {fmt(b.p99_create_to_pod)} "
            f"| {fmt(b.p50_pod_to_job, 3)} / {fmt(b.p99_pod_to_job, 3)} "
            f"| {b.writes_per_job:.2f} | {b.controller_writes_per_job:.2f} "
            f"| {fmt(b.operator_cpu_seconds, 1)} "
            f"| {fmt(b.operator_peak_rss_bytes / 1e6 if b.operator_peak_rss_bytes else None, 0)} "
            f"| {fmt(b.controller_manager_cpu_seconds, 1)} |"
        )
    for system, s in summary.items():
        out.append(
            f"| median | {system} | {fmt(s['seconds_to_all_terminal'], 1)} "
            f"| {fmt(s['completions_per_second'])} "
            f"| {fmt(s['p50_create_to_pod'])} / {fmt(s['p99_create_to_pod'])} "
            f"| {fmt(s['p50_pod_to_job'], 3)} / {fmt(s['p99_pod_to_job'], 3)} "
            f"| {fmt(s['writes_per_job'])} | {fmt(s['controller_writes_per_job'])} "
            f"| {fmt(s['operator_cpu_seconds'], 1)} | {fmt(s['operator_peak_rss_mb'], 0)} "
            f"| {fmt(s['controller_manager_cpu_seconds'], 1)} |"
        )
    f, b = summary.get("ferry", {}), summary.get("batch", {})
    out.append("")
    out.append("Ferry / baseline (medians):\n")
    for label, key in (
        ("completions/s", "completions_per_second"),
        ("time to all terminal", "seconds_to_all_terminal"),
        ("p99 create→pod", "p99_create_to_pod"),
        ("p99 pod terminal→Job terminal", "p99_pod_to_job"),
        ("writes/Job, all components", "writes_per_job"),
        ("writes/Job, the controller's own", "controller_writes_per_job"),
        ("controller CPU seconds (operator / kube-controller-manager)", None),
    ):
        if key is None:
            value = ratio(f.get("operator_cpu_seconds"), b.get("controller_manager_cpu_seconds"))
        else:
            value = ratio(f.get(key), b.get(key))
        out.append(f"- {label}: {fmt(value)}")
    tr = ratio(f.get("completions_per_second"), b.get("completions_per_second"))
    out.append(f"\n**throughput ratio: {fmt(tr)}**\n")
    # Writes of the median-ish (last) round per system, by component, verb and resource.
    for system in ("ferry", "batch"):
        rs = [x for x in bursts if x.system == system]
        if not rs:
            continue
        last = rs[-1]
        out.append(
            f"API writes per Job, {system}, round {last.round} (audit log; by component, "
            f"user, verb, resource):\n"
        )
        out.append("| component | user | verb | resource | count | of which failed | per Job |")
        out.append("|---|---|---|---|---|---|---|")
        for row in last.writes:
            out.append(
                f"| {row['actor']} | {row['user']} | {row['verb']} | {row['resource']} "
                f"| {row['count']} | {row.get('failed', 0)} | {row['count'] / last.jobs:.2f} |"
            )
        out.append("")
        if last.operator_requests:
            reqs = ", ".join(
                f"{k} {v / last.jobs:.2f}" for k, v in sorted(last.operator_requests.items())
            )
            total = sum(last.operator_requests.values()) / last.jobs
            out.append(
                f"The operator's own count of its requests in that round "
                f"(`ferry_api_requests_total`, reads included, per Job): {reqs}; "
                f"total {total:.2f}.\n"
            )
    if pop:
        out.append(
            f"Population ({pop['jobs']} finished Ferry Jobs, status from {pop['status_from']}):\n"
        )
        out.append(
            "| operator start → all Finished Jobs known (s) | new Job create → Finished (s) "
            "| start → new Job Finished (s) | RSS settled (MB) | peak RSS (MB) "
            "| CPU (s) | operator writes |"
        )
        out.append("|---|---|---|---|---|---|---|")
        writes = ", ".join(f"{k}: {v}" for k, v in pop["operator_writes"].items()) or "none"
        out.append(
            f"| {pop['seconds_to_resume']:.1f} | {pop['seconds_probe_create_to_finished']:.2f} "
            f"| {pop['seconds_start_to_probe_finished']:.1f} "
            f"| {pop['rss_bytes_settled'] / 1e6:.0f} "
            f"| {pop['peak_rss_bytes'] / 1e6:.0f} | {pop['cpu_seconds']:.1f} | {writes} |"
        )
        out.append("")
    out.append("Goals:\n")
    out.extend(f"- {g}" for g in goal_lines)
    out.append("")
    if args.plot:
        out.append(f"![Completions over time]({Path(args.plot).name})")
    return "\n".join(out) + "\n"


def plot(bursts: list[BurstResult], path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    colors = {"ferry": "tab:blue", "batch": "tab:orange"}
    labels = {"ferry": "Ferry operator", "batch": "batch/v1 Job controller"}
    seen: set[str] = set()
    for b in bursts:
        xs = [0.0, *b.completions]
        ys = list(range(len(xs)))
        label = labels[b.system] if b.system not in seen else None
        seen.add(b.system)
        ax.step(xs, ys, where="post", color=colors[b.system], alpha=0.85, lw=1.4, label=label)
    ax.set_xlabel("seconds since the first create")
    ax.set_ylabel("Jobs terminal (cumulative)")
    shape = f"{args.rate:g} Jobs/s" if args.rate else "at once"
    ax.set_title(f"{args.jobs} Jobs {shape}, client QPS {args.qps:g}, {args.rounds} round(s) each")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def update_docs(path: Path, text: str, stream: bool) -> None:
    """Replace this workload's results block between its markers (appending a section if
    absent), leaving the rest of the file (other workloads' and benchmarks' sections) as is."""
    begin, end = results_markers(stream)
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{text}{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + block + tail
    else:
        title = "Lifecycle results, steady stream" if stream else "Lifecycle results"
        new = current.rstrip("\n") + f"\n\n## {title}\n\n" + block + "\n"
    path.write_text(new)


def git_meta() -> dict[str, str]:
    def git(*a: str) -> str:
        proc = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip()

    dirty = git("status", "--porcelain", "--", "operator")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": " with uncommitted changes under operator/" if dirty else "",
        "operator_changes": " ".join(line.split(maxsplit=1)[-1] for line in dirty.splitlines()),
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=1000, help="Jobs per burst (default 1000)")
    p.add_argument("--rounds", type=int, default=3, help="Ferry/baseline round pairs (default 3)")
    p.add_argument("--qps", type=float, default=50, help="client QPS of both controllers; burst 2x")
    p.add_argument("--workers", type=int, default=None, help="FERRY_WORKERS (operator default)")
    p.add_argument("--duration", default="1s", help="simulated run time of every pod (kwok)")
    p.add_argument(
        "--population", type=int, default=10000, help="finished Jobs for the memory test (0: skip)"
    )
    p.add_argument("--root", default="/tmp/ferry-bench", help="cluster directory (recreated)")  # noqa: S108
    p.add_argument("--nodes", type=int, default=3, help="simulated nodes")
    p.add_argument("--create-threads", type=int, default=16, help="threads creating the Jobs")
    p.add_argument("--timeout", type=float, default=None, help="per burst (default: 300 + Jobs s)")
    p.add_argument("--grace", type=float, default=3.0, help="seconds after the last terminal Job")
    p.add_argument("--systems", default="ferry,batch", help="which systems to run")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="create the Jobs at this steady rate (Jobs/s) instead of all at once",
    )
    p.add_argument(
        "--plot",
        default=None,
        help="PNG path (default docs/bench-completions.png, docs/bench-stream.png with --rate; "
        "'' for none)",
    )
    p.add_argument("--json", default=None, help="results JSON (default <root>/lifecycle.json)")
    p.add_argument(
        "--update-docs", action="store_true", help="write the results into docs/benchmarks.md"
    )
    p.add_argument("--keep-cluster", action="store_true", help="leave the cluster running")
    p.add_argument(
        "--keep-namespaces",
        action="store_true",
        help="keep each burst's namespace (default: deleted, and gone, before the next burst)",
    )
    p.add_argument(
        "--recount",
        default=None,
        metavar="JSON",
        help="count the writes of a finished run (its results JSON, its --root) again",
    )
    args = p.parse_args(argv)
    if args.timeout is None:
        args.timeout = 300 + args.jobs
    if args.plot is None:
        name = "bench-stream.png" if args.rate else "bench-completions.png"
        args.plot = str(ROOT / "docs" / name)
    return args


def recount(args: argparse.Namespace) -> int:
    """Count each burst's writes again from every audit log file in --root (rotated ones
    included) and print the report anew; the results JSON is rewritten. For a run whose
    counts the audit log's rotation spoiled (the reader before AuditMark)."""
    path = Path(args.recount)
    data = json.loads(path.read_text())
    audit = AuditLog(Path(args.root) / "audit.log")
    grace = float(data["args"]["grace"])
    bursts = [BurstResult(**b) for b in data["bursts"]]
    for b in bursts:
        start = b.wall_start if b.wall_start is not None else audit.first_create(b.namespace)
        if start is None or b.seconds_to_all_terminal is None:
            log(f"round {b.round} {b.system}: no window to count in; left as it was")
            continue
        before = (b.writes_per_job, b.controller_writes_per_job)
        counts = audit.writes(
            AuditMark.beginning(),
            b.namespace,
            start - 1.0,
            start + b.seconds_to_all_terminal + grace,
        )
        record_writes(b, counts)
        log(
            f"round {b.round} {b.system}: writes/Job {before[0]:.2f} -> {b.writes_per_job:.2f}, "
            f"controller {before[1]:.2f} -> {b.controller_writes_per_job:.2f}"
        )
    summary = summarize(bursts)
    pop = data.get("population")
    goal_lines = goals(summary, pop)
    meta = {**data["meta"], "recounted": datetime.now(UTC).strftime("%Y-%m-%d")}
    run_args = argparse.Namespace(**data["args"])
    text = markdown(run_args, bursts, summary, pop, goal_lines, meta)
    print(text)
    data.update(bursts=[asdict(x) for x in bursts], summary=summary, goals=goal_lines, meta=meta)
    path.write_text(json.dumps(data, indent=2))
    return 0


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.recount:
        return recount(args)
    root = Path(args.root)
    if root.exists():
        if any(root.iterdir()) and not (root / "state.json").exists():
            log(f"{root} exists and is not a cluster directory; choose another --root")
            return 2
        stop_cluster(root)
        subprocess.run(["rm", "-rf", str(root)], check=True)
    pods_per_node = max(1000, math.ceil((args.rounds * args.jobs * 3 + 2000) / args.nodes))
    cluster = LocalCluster(
        root,
        nodes=args.nodes,
        node_cpu="100000",
        node_memory="100Ti",
        node_pods=pods_per_node,
        with_minio=False,
        audit=True,
        controller_qps=args.qps,
        controller_burst=int(2 * args.qps),
    )
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C: operators stopped, cluster torn down.
    signal.signal(signal.SIGTERM, _interrupted)
    log(f"starting the local cluster in {root}")
    state = cluster.up()
    log(f"cluster up in {state.started_seconds}s")
    try:
        code, digest = snapshot_operator(root)
        code_meta = git_meta()  # of the tree the snapshot was taken from
        kubectl(state, "apply", "--server-side", "--force-conflicts", "-f", install_crds(root))
        kubectl(
            state,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/apps.ferry.dev",
            "crd/jobs.ferry.dev",
        )
        api = api_client(state)
        archive = ARCHIVE_SPEC if archive_supported(state) else None
        if archive is None:
            log(
                f"NOTE: the Job CRD has no spec.archive.{'/'.join(ARCHIVE_SPEC)} yet: Ferry Jobs "
                "run with the default archive step (one archive pod per Job)"
            )
        bench = Bench(state, api, AuditLog(root / "audit.log"), args, archive, code)
        systems = [FERRY if s == "ferry" else BATCH for s in args.systems.split(",") if s]
        bursts: list[BurstResult] = []
        for r in range(1, args.rounds + 1):
            order = systems if r % 2 == 1 else list(reversed(systems))
            for system in order:
                bursts.append(bench.burst(system, r))
                if not args.keep_namespaces:
                    bench.remove(bursts[-1].namespace)
                time.sleep(3)
        pop = bench.population() if args.population > 0 else None
        summary = summarize(bursts)
        goal_lines = goals(summary, pop)
        meta = {
            **code_meta,
            "operator_digest": digest,
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "cpus": os.cpu_count(),
            "archive": json.dumps(archive) if archive is not None else "default (archives)",
        }
        text = markdown(args, bursts, summary, pop, goal_lines, meta)
        print(text)
        f, b = summary.get("ferry", {}), summary.get("batch", {})
        tr = ratio(f.get("completions_per_second"), b.get("completions_per_second"))
        for g in goal_lines:
            print(g)
        print(f"throughput ratio: {fmt(tr)}")
        results = {
            "args": vars(args),
            "meta": meta,
            "bursts": [asdict(x) for x in bursts],
            "summary": summary,
            "population": pop,
            "goals": goal_lines,
            "throughput_ratio": tr,
        }
        Path(args.json or root / "lifecycle.json").write_text(json.dumps(results, indent=2))
        if bursts and args.plot:
            plot(bursts, Path(args.plot), args)
            log(f"plot written to {args.plot}")
        if args.update_docs:
            update_docs(ROOT / "docs" / "benchmarks.md", text, bool(args.rate))
            log("docs/benchmarks.md updated")
    finally:
        for op in list(LIVE_OPERATORS):
            op.stop()
        if args.keep_cluster:
            log(f"cluster left running in {root} (stop: hack/cluster down --dir {root})")
        else:
            cluster.down()
            log("cluster stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
