"""Shared fixtures: the real local cluster and MinIO for integration and e2e tests.

The cluster is started once per test session (ferrydev.cluster), unless
FERRY_TEST_CLUSTER_DIR names one already running (`hack/cluster up`), which is then reused.
Only loopback clusters are accepted: a kubeconfig pointing anywhere else is refused, so the
tests never touch a real cluster by mistake. A missing prerequisite fails with a message that
says how to get it; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pytest

from ferrydev.cluster import POD_GATEWAY, ClusterError, ClusterState, LocalCluster
from ferrydev.kubectl import kubectl_binary
from ferrydev.paths import BIN
from ferrydev.processes import ChildProcess, free_port

if TYPE_CHECKING:
    from tests.kueue_support import KueueEnv

ROOT = Path(__file__).resolve().parent.parent


class Kube:
    """kubectl bound to the test cluster, with JSON helpers."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.kubeconfig = str(state.kubeconfig)
        server = urlparse(state.server)
        local = {"127.0.0.1", "localhost", "::1"}
        if state.real_node:
            local.add(POD_GATEWAY)  # the local pod bridge's address (ferrydev.cluster.network)
        if server.hostname not in local:
            raise RuntimeError(f"refusing to test against a non-loopback cluster: {state.server}")

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [kubectl_binary(), "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def apply(
        self, obj: dict[str, Any] | str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.run("apply", "-f", "-", *extra, stdin=text, check=check)

    def create(
        self, obj: dict[str, Any] | str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.run("create", "-f", "-", *extra, stdin=text, check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        out = self.run("get", kind, name, "-n", namespace, "-o", "json").stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def list(self, kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
        out = self.run("get", kind, "-n", namespace, "-o", "json", *selector).stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def wait_for(
        self, predicate: Any, timeout: float = 60, interval: float = 0.3, what: str = ""
    ) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what or predicate}; last: {last}"
        )


def helm(kube: Kube, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The cached helm binary against the test cluster; fails the test on an error."""
    binary = BIN / "helm"
    assert binary.exists(), f"{binary} missing: run hack/build-tools.sh helm"
    proc = subprocess.run(
        [str(binary), "--kubeconfig", kube.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: {proc.stderr}{proc.stdout}")
    return proc


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    existing = os.environ.get("FERRY_TEST_CLUSTER_DIR")
    if existing:
        yield ClusterState.load(Path(existing))
        return
    root = tmp_path_factory.mktemp("cluster")
    local = LocalCluster(root)
    try:
        state = local.up()
    except ClusterError as exc:
        pytest.fail(
            f"the local cluster did not start: {exc}\n(run `make deps` to build what it needs)"
        )
    print(f"\nlocal cluster up in {state.started_seconds}s at {state.server}", file=sys.stderr)
    try:
        yield state
    finally:
        local.down()


@pytest.fixture(scope="session")
def kube(cluster: ClusterState) -> Kube:
    k = Kube(cluster)
    k.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    k.run(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/apps.ferry.dev",
        "crd/jobs.ferry.dev",
    )
    return k


@pytest.fixture(scope="session")
def kueue(kube: Kube) -> Iterator[KueueEnv]:
    """A real Kueue on the kwok cluster (tests.kueue_support.KueueEnv), started by the first
    test that asks for it and stopped at the end of the session; tests that do not ask for it
    never start it. Only namespaces a test opts in (`kueue.enable(ns)`, `kueue.queue(ns)`) are
    touched by its webhooks."""
    from tests import kueue_support

    process = kueue_support.start(kube)
    print(f"\nKueue up in {process.timings}", file=sys.stderr)
    try:
        yield kueue_support.KueueEnv(kube, process)
    finally:
        process.stop()


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace per test, with the default object store's Secret in it."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.run("create", "namespace", name)
    kube.wait_for(
        lambda: (
            kube.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0
        ),
        what=f"default ServiceAccount in {name}",
    )
    state = kube.state
    kube.run(
        "create",
        "secret",
        "generic",
        "ferry-s3",
        "-n",
        name,
        f"--from-literal=accessKey={state.minio_access_key}",
        f"--from-literal=secretKey={state.minio_secret_key}",
    )
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


class OperatorProcess(ChildProcess):
    """The Ferry operator as a real process against the test cluster; killable and restartable."""

    def __init__(self, state: ClusterState, log_dir: Path) -> None:
        self.state = state
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.metrics_port = free_port()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        env.update(
            FERRY_KUBECONFIG=str(self.state.kubeconfig),
            FERRY_HEALTH_PORT="0",
            FERRY_METRICS_PORT=str(self.metrics_port),
            FERRY_RESYNC_SECONDS="10",
            FERRY_POD_START_GRACE_SECONDS="4",
            # Retries back off 1 s, 2 s, 4 s ... (10 s, 20 s ... in production) so that the
            # tests of retries stay quick; test_retries_and_parents.py checks the backoff.
            FERRY_RETRY_BACKOFF_BASE_SECONDS="1",
            FERRY_DEFAULT_S3_ENDPOINT=self.state.minio_endpoint,
        )
        return env

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.starts += 1
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferry", "operator", "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            cwd=str(ROOT),
        )

    def log_text(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log"))
        )


@pytest.fixture(scope="session")
def _operator_process(
    kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kube.state, tmp_path_factory.mktemp("operator"))
    yield op
    op.stop()


@pytest.fixture
def operator(_operator_process: OperatorProcess) -> OperatorProcess:
    """The operator, running (restarted if an earlier test killed it)."""
    _operator_process.start()
    return _operator_process
