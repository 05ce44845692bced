"""What every scenario of the fault suite shares: the cluster it runs on, its operators, its
namespaces and its result.

Owns: `Suite` (the cluster's state and an API client of the suite's own, a working directory
for operator logs, the operator code under test and its FERRY_* settings, one namespace per
scenario, starting operators that watch only it, and cleaning up a scenario: its Jobs deleted
while an operator still runs, so that their finalizers go, then the namespace), `Result` (a
scenario's printed lines, its headline figures and its wall time) and `wait_for` (polling
with a deadline that returns what it got instead of raising).

Must not: start or stop the cluster (the caller owns it: bench/chaos.py or the test
fixtures), or leave an operator running.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from ferrydev.bench import log
from ferrydev.bench.chaos_cluster import prepare_namespace
from ferrydev.bench.operator_process import LIVE_OPERATORS, Operator
from ferrydev.bench.workloads import GROUP, VERSION
from ferrydev.cluster import ClusterState

T = TypeVar("T")


@dataclass
class Result:
    scenario: str
    figures: dict[str, float] = field(default_factory=dict)  # the headline numbers
    lines: list[str] = field(default_factory=list)  # one line per figure, printed
    details: list[str] = field(default_factory=list)  # what went wrong, when anything did
    seconds: float = 0.0

    def say(self, line: str) -> None:
        self.lines.append(line)
        log(f"{self.scenario}: {line}")


def wait_for(predicate: Callable[[], T], timeout: float, step: float = 0.5) -> T | None:
    """`predicate()` once it is truthy, or None when `timeout` seconds passed first."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            return None
        time.sleep(step)


class Suite:
    """The fault suite's context: one cluster, one operator code, FERRY_* settings."""

    def __init__(
        self,
        state: ClusterState,
        api: k8s.ApiClient,
        workdir: Path,
        code: Path | None = None,
        qps: float = 50,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.state = state
        self.api = api
        self.workdir = workdir
        self.code = code
        self.qps = qps
        self.settings = dict(settings or {})
        self.settings.setdefault("FERRY_DEFAULT_S3_ENDPOINT", state.minio_endpoint)
        workdir.mkdir(parents=True, exist_ok=True)

    def namespace(self, scenario: str) -> str:
        name = f"chaos-{scenario}-{uuid.uuid4().hex[:6]}"
        prepare_namespace(self.api, self.state, name)
        return name

    def operator(self, namespace: str, label: str, kubeconfig: Path | None = None) -> Operator:
        return Operator(
            self.state,
            namespace,
            self.qps,
            None,
            self.workdir / f"operator-{label}.log",
            self.code,
            kubeconfig=kubeconfig,
            settings=self.settings,
        )

    def started(self, op: Operator, timeout: float = 60) -> None:
        if wait_for(lambda: op.started_up() or op.proc.poll() is not None, timeout) is None:
            raise RuntimeError(f"the operator did not start in {timeout}s: {op.log_path}")
        op.check()

    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        got = k8s.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, "jobs"
        )
        items: list[dict[str, Any]] = got["items"]
        return items

    def cleanup(self, namespace: str, op: Operator | None) -> None:
        """Delete the scenario's Jobs with an operator running (their finalizers go), then
        stop every operator and delete the namespace without waiting."""
        co = k8s.CustomObjectsApi(self.api)
        try:
            if op is None or op.proc.poll() is not None:
                op = self.operator(namespace, "cleanup")
            op.resume()
            co.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, "jobs")
            wait_for(lambda: not self.jobs(namespace), 90, 1.0)
        except ApiException as exc:
            log(f"cleanup of {namespace}: {exc.status} {exc.reason}")
        finally:
            for live in list(LIVE_OPERATORS):
                live.stop()
            try:
                k8s.CoreV1Api(self.api).delete_namespace(namespace)
            except ApiException as exc:
                log(f"deleting {namespace}: {exc.status} {exc.reason}")
