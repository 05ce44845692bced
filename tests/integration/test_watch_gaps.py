"""Watch gaps on the real apiserver: deletions the operator's watches never delivered.

A forced watch expiry: the operator under test talks to a spare kube-apiserver on the
cluster's etcd (`ferrydev.cluster.expiry`); the spare is stopped, a run pod and a whole Job are
deleted through the cluster's own apiserver, etcd is compacted and the spare started again, so
every watch of the operator resumes from a version that is gone (410). The Jobs whose pods
went must notice (attempt 2; or Failed/InfraFailed without retries), and the deleted Job must
get no child. And restarts: pods deleted while the operator is down or starting (between its
listing and its watch), and SIGUSR1, which asks for a listing of everything."""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ferrydev.cluster.expiry import SpareApiserver, compact_etcd
from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    Recorder,
    Watcher,
    app_manifest,
    job_manifest,
    patch,
    pods,
    sim,
    status,
)

pytestmark = pytest.mark.integration


class SpareOperator(OperatorProcess):
    """The operator, pointed at the spare apiserver."""

    def __init__(self, spare: SpareApiserver, log_dir: Path) -> None:
        super().__init__(spare.state, log_dir)
        self.spare = spare

    def env(self) -> dict[str, str]:
        env = super().env()
        env["FERRY_KUBECONFIG"] = str(self.spare.kubeconfig)
        return env


@pytest.fixture
def spare(kube: Kube, tmp_path: Path) -> Iterator[SpareApiserver]:
    server = SpareApiserver(kube.state, tmp_path)
    server.start()
    yield server
    server.stop()


def _listings(operator: OperatorProcess) -> dict[tuple[str, str], float]:
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.labels["resource"], s.labels["cause"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "ferry_watch_listings_total"
    }


def _started(kube: Kube, operator: OperatorProcess) -> None:
    log = operator.log_dir / f"operator-{operator.starts}.log"
    kube.wait_for(
        lambda: log.exists() and "Ferry operator started" in log.read_text(errors="replace"),
        timeout=30,
        interval=0.05,
        what=f"operator start {operator.starts}",
    )


def test_deletions_in_an_expired_watch_gap_are_seen(
    kube: Kube, namespace: str, alone: Any, spare: SpareApiserver, tmp_path: Path
) -> None:
    operator = SpareOperator(spare, tmp_path)
    operator.start()
    try:
        with Recorder(kube, namespace, "pods") as recorder:
            kube.create(app_manifest(), "-n", namespace)
            for name in ("stay", "gone"):
                kube.create(job_manifest(name, annotations=sim(duration="300s")), "-n", namespace)
            # No infrastructure retries: losing its run pod ends it (Failed/InfraFailed).
            last = job_manifest(
                "last", annotations=sim(duration="300s"), retry={"infraFailures": 0}
            )
            kube.create(last, "-n", namespace)
            stay, ends = Watcher(kube, namespace, "stay"), Watcher(kube, namespace, "last")
            for w in (stay, ends, Watcher(kube, namespace, "gone")):
                w.state("Running", timeout=30)

            # The operator's apiserver goes away; meanwhile a run pod and a Job are deleted.
            spare.stop()
            kube.run("delete", "pod", "stay-1", "last-1", "-n", namespace, "--wait=true")
            kube.run("delete", "fjob", "gone", "-n", namespace, "--wait=true")
            kube.wait_for(
                lambda: pods(kube, namespace, "gone") == [],
                timeout=30,
                what="the deleted Job's pods collected",
            )
            compact_etcd(kube.state)  # nothing before now can be watched from
            spare.start()

            # The Job whose run pod went notices: an infrastructure failure, attempt 2.
            job = stay.until(lambda j: status(j).get("attempt") == 2, timeout=40, what="attempt 2")
            st = status(job)
            assert st["retries"]["infraFailures"] == 1, st
            retry = next(h for h in st["history"] if h["state"] == "Retrying")
            assert "stay-1" in retry["message"], retry
            st = status(ends.terminal(timeout=30))
            assert (st["state"], st["reason"]) == ("Failed", "InfraFailed"), st
            # The watches did expire and were listed again (not just resumed).
            kube.wait_for(
                lambda: all(_listings(operator).get((r, "expired")) for r in ("pods", "jobs")),
                timeout=20,
                what="both watches expired and listed again",
            )
            time.sleep(3)  # time for a wrong pass on the deleted Job to show
            seen = recorder.stop()
        gone = {
            p["metadata"]["name"]
            for p in seen
            if (p["metadata"].get("labels") or {}).get("ferry.dev/job") == "gone"
        }
        assert gone == {"gone-1"}, f"children made for the deleted Job: {gone}"
        assert pods(kube, namespace, "gone") == []
        failed = f"Job {namespace}/gone: reconcile failed"
        assert failed not in operator.log_text(), "passes retried on the deleted Job"
    finally:
        operator.stop()


def test_pods_deleted_while_the_operator_is_down_or_starting_are_seen(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(app_manifest(), "-n", namespace)
    for name in ("lost", "halt", "late"):
        kube.create(job_manifest(name, annotations=sim(duration="300s")), "-n", namespace)
    watchers = {n: Watcher(kube, namespace, n) for n in ("lost", "halt", "late")}
    for w in watchers.values():
        w.state("Running", timeout=30)
    operator.kill()
    # While it is down: a run pod goes, and a Job is cancelled.
    kube.run("delete", "pod", "lost-1", "-n", namespace, "--wait=true")
    patch(kube, namespace, "halt", {"cancel": True})
    operator.start()
    # While it starts (its listings and first watches): another run pod goes.
    _started(kube, operator)
    kube.run("delete", "pod", "late-1", "-n", namespace, "--wait=false")
    for name in ("lost", "late"):
        job = watchers[name].until(
            lambda j: status(j).get("attempt") == 2, timeout=40, what="attempt 2"
        )
        assert status(job)["retries"]["infraFailures"] == 1, (name, status(job))
    job = watchers["halt"].terminal(timeout=40)
    assert status(job)["state"] == "Cancelled", status(job)
    kube.wait_for(
        lambda: pods(kube, namespace, "halt") == [], timeout=30, what="pods of halt deleted"
    )
    # SIGUSR1 asks for a listing of everything (the hook a chaos run can use).
    assert operator.proc is not None
    operator.proc.send_signal(signal.SIGUSR1)
    kube.wait_for(
        lambda: all(_listings(operator).get((r, "asked")) for r in ("pods", "jobs")),
        timeout=20,
        what="both resources listed again when asked",
    )
