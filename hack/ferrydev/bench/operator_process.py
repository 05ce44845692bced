"""The Ferry operator under test, as a child process, and the snapshot of its code.

Owns: starting `python -m ferry operator run` for one namespace with the benchmark's client
rate limit (FERRY_* settings, as tests/conftest.py starts it), reading its metrics (Jobs by
state, its own count of API requests), sampling its CPU and memory, stopping it; copying
operator/ferry into the run's directory so that every round runs the same code while
operator/ is edited, and generating the CRDs from that copy's models. Both the operator and
the CRD generator run as child processes with the snapshot first on their PYTHONPATH: this
process never imports the snapshot.

Must not: leave an operator running (`LIVE_OPERATORS` lists the live ones for the run's
cleanup), or import `ferry` from the snapshot into this process.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ferrydev.cluster import ClusterState
from ferrydev.paths import ROOT
from ferrydev.processes import ProcSample, free_port, proc_sample

LIVE_OPERATORS: set[Operator] = set()  # stopped by the run's cleanup whatever happens

# Run in a child Python with the snapshot first on its path: writes the CRDs of the
# snapshot's models to argv[1]; exit code 3 when the snapshot has no generator.
_CRDGEN = """\
import sys
try:
    from ferry import crdgen
except ImportError:
    sys.exit(3)
text = "---\\n".join(crdgen.render(c) for c in (crdgen.app_crd(), crdgen.job_crd()))
with open(sys.argv[1], "w") as out:
    out.write(text)
"""


def with_code(env: dict[str, str], code: Path | None) -> dict[str, str]:
    """`env` with the operator snapshot `code` (if any) first on PYTHONPATH."""
    if code is None:
        return env
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(p for p in (str(code), env.get("PYTHONPATH", "")) if p),
    }


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
        kubeconfig: Path | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        env.update(
            FERRY_KUBECONFIG=str(kubeconfig or state.kubeconfig),
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
        env.update(settings or {})  # FERRY_* settings of the caller's (the fault suite's)
        # The snapshot of operator/ taken at the start of the run comes first on the path.
        env = with_code(env, code)
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

    def events_pending(self) -> int | None:
        """ferry_events_pending: the Events the operator owes and has not posted yet."""
        try:
            text = self.metrics()
        except OSError:
            return None
        m = re.search(r"^ferry_events_pending ([0-9.e+]+)$", text, re.M)
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

    def started_up(self) -> bool:
        """Whether its log says it has started (kopf's watches are up)."""
        return "Ferry operator started" in self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a node or OOM killer would: no cleanup of any kind."""
        LIVE_OPERATORS.discard(self)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def pause(self) -> None:
        """SIGSTOP: the process holds its connections but does nothing (a partition)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        LIVE_OPERATORS.discard(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one would never see SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


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
    """The CRDs generated from the operator's own models (ferry.crdgen of the snapshot in
    <root>/operator-snapshot, run in a child Python), so that the API the benchmark installs
    is the one the operator under test was built with, even when the committed crds/ lag;
    the committed files when the generator cannot be imported."""
    path = root / "crds.yaml"
    env = with_code(dict(os.environ), root / "operator-snapshot")
    proc = subprocess.run(
        [sys.executable, "-c", _CRDGEN, str(path)],
        env=env,
        cwd=str(root),
        capture_output=True,
        text=True,
    )
    if proc.returncode == 3:
        return str(ROOT / "crds")
    if proc.returncode != 0:
        raise RuntimeError(f"generating the CRDs from the snapshot failed:\n{proc.stderr}")
    return str(path)
