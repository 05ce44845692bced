"""Ferry through a real Kueue on the real node (fixture `real_kueue`): six Jobs of the sleeper
example against a ClusterQueue whose quota fits two run pods. At no moment are more than two
run pods ungated and not ended; every Job waits as Queued/AwaitingAdmission with Kueue's words
and all six finish, archived. The `kubectl get fjob -o wide` transcript (the Reason column
included) is printed and saved as the test's output (docs/kueue-transcript.txt is one). And an
MPI Job through Kueue's MPIJob integration, and a preemption: a low-priority Job's running pod
stopped by Kueue for a high-priority one is requeued without cost and finishes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ferry.api import names
from tests.conftest import Kube
from tests.e2e.conftest import RealNodeOperator
from tests.e2e.test_ferry_e2e import EXAMPLES, assert_admitted, verified_archive, wait_state
from tests.e2e.test_mpi_e2e import mpi_app, mpi_job
from tests.integration.lifecycle_support import events
from tests.kueue_support import KueueEnv

pytestmark = pytest.mark.e2e

JOBS = [f"sleep-{i}" for i in range(1, 7)]
#: A run pod of the sleeper App requests 100m CPU (its app, and its tools init containers):
#: the quota fits two.
QUOTA = {"cpu": "200m", "memory": "2Gi"}


def _job(name: str, queue: str, seconds: int = 4, priority: str = "") -> dict[str, Any]:
    job: dict[str, Any] = {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "appRef": {"name": "sleeper"},
            "parameters": {"seconds": seconds},
            "queueName": queue,
        },
    }
    if priority:
        job["metadata"]["labels"] = {names.LABEL_KUEUE_PRIORITY_CLASS: priority}
    return job


def _released(pod: dict[str, Any]) -> bool:
    """Ungated and not ended: holding (or about to hold) the node's resources."""
    gates = [g["name"] for g in pod["spec"].get("schedulingGates") or []]
    return names.KUEUE_ADMISSION_GATE not in gates and pod["status"].get("phase") not in (
        "Succeeded",
        "Failed",
    )


def test_six_jobs_drain_through_a_quota_of_two(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_kueue: KueueEnv,
    real_operator: RealNodeOperator,
    tmp_path: Path,
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    queue = real_kueue.queue(ns, QUOTA)
    kube.run("apply", "-n", ns, "-f", str(EXAMPLES / "timeout" / "app.yaml"))
    for name in JOBS:
        kube.create(_job(name, queue), "-n", ns)
    transcript: list[str] = []
    last: list[Any] = []
    most = 0
    awaited: set[str] = set()
    words: set[str] = set()
    deadline = time.monotonic() + 150
    started = time.monotonic()
    while True:
        runs = kube.list("pods", ns, "-l", f"{names.LABEL_ROLE}={names.ROLE_RUN}")
        released = [p["metadata"]["name"] for p in runs if _released(p)]
        most = max(most, len(released))
        assert len(released) <= 2, f"more than the quota's two run pods released: {released}"
        jobs = {j["metadata"]["name"]: j.get("status") or {} for j in kube.list("fjob", ns)}
        shown = sorted(
            (n, st.get("state"), st.get("attempt"), st.get("reason")) for n, st in jobs.items()
        )
        if shown != last:  # a row changed (not only the AGE column): the table again
            last = shown
            table = kube.run("get", "fjob", "-n", ns, "-o", "wide").stdout.rstrip()
            transcript.append(
                f"# t+{time.monotonic() - started:.0f}s\n$ kubectl get fjob -o wide\n{table}"
            )
        for name, st in jobs.items():
            if st.get("reason") == "AwaitingAdmission":
                assert st["message"].startswith(
                    f"pod {name}-1 waits for Kueue to admit it (queue {queue})"
                ), st
                awaited.add(name)
                if "insufficient" in st["message"] and not any("insufficient" in w for w in words):
                    transcript.append(
                        f"$ kubectl get fjob {name} -o jsonpath='{{.status.message}}'\n"
                        f"{st['message']}"
                    )
                words.add(st["message"].split(": ", 1)[-1])
        if all(st.get("state") == "Finished" for st in jobs.values()) and len(jobs) == 6:
            break
        if any(st.get("state") in ("Failed", "TimedOut", "Cancelled") for st in jobs.values()):
            raise AssertionError(f"a Job ended otherwise: {jobs}")
        assert time.monotonic() < deadline, "\n\n".join(transcript[-3:])
        time.sleep(0.5)
    text = "\n\n".join(transcript) + "\n"
    (tmp_path / "kueue-transcript.txt").write_text(text)
    print(f"\n{text}")
    assert most == 2, f"at most {most} run pods ran at once: the quota should allow two"
    assert len(awaited) >= 4, f"only {sorted(awaited)} were seen waiting for admission"
    assert "AwaitingAdmission" in text
    assert any("insufficient unused quota" in w for w in words), words
    done = [kube.get("jobs.ferry.dev", n, ns) for n in JOBS]
    for job in done:
        _manifest, content = verified_archive(kube, job)
        assert b"woke up" in content["logs/app.log"]
    assert_admitted(kube, ns, real_operator)


def test_a_preempted_job_is_requeued_without_cost_and_finishes(
    ferry_kube: Kube,
    ferry_namespace: str,
    real_kueue: KueueEnv,
    real_operator: RealNodeOperator,
    tmp_path: Path,
) -> None:
    """The quota fits one run pod. A low-priority Job runs; a high-priority one arrives, Kueue
    stops the first one's pod: attempt 2 is queued at once (outcome Preempted, a Warning
    Event, no infrastructure retry counted), runs once the urgent Job is done, and finishes."""
    kube, ns = ferry_kube, ferry_namespace
    queue = real_kueue.queue(ns, {"cpu": "100m", "memory": "2Gi"})
    low = real_kueue.priority_class("ferry-e2e-low", 100)
    high = real_kueue.priority_class("ferry-e2e-high", 1000)
    kube.run("apply", "-n", ns, "-f", str(EXAMPLES / "timeout" / "app.yaml"))
    kube.create(_job("victim", queue, seconds=20, priority=low), "-n", ns)
    wait_until(kube, ns, "victim", lambda st: st.get("state") == "Running", timeout=90)
    transcript = [_table(kube, ns, "victim (priority 100) running on the whole quota")]
    kube.create(_job("urgent", queue, seconds=2, priority=high), "-n", ns)
    started, last = time.monotonic(), ""
    while True:
        jobs = {j["metadata"]["name"]: j.get("status") or {} for j in kube.list("fjob", ns)}
        shown = repr(sorted((n, st.get("state"), st.get("attempt")) for n, st in jobs.items()))
        if shown != last:
            last = shown
            transcript.append(
                _table(kube, ns, f"t+{time.monotonic() - started:.0f}s after urgent (1000)")
            )
        if all(st.get("state") == "Finished" for st in jobs.values()):
            break
        if any(st.get("state") in ("Failed", "TimedOut", "Cancelled") for st in jobs.values()):
            raise AssertionError(f"a Job ended otherwise: {jobs}")
        assert time.monotonic() - started < 180, "\n\n".join(transcript[-3:])
        time.sleep(0.5)
    victim = kube.get("jobs.ferry.dev", "victim", ns)
    st = victim["status"]
    transcript.append(
        "$ kubectl get fjob victim -o jsonpath='{.status.history[*].reason}'\n"
        + " ".join(h["reason"] for h in st["history"])
    )
    text = "\n\n".join(transcript) + "\n"
    (tmp_path / "kueue-preemption-transcript.txt").write_text(text)
    print(f"\n{text}")
    assert (st["reason"], st["attempt"]) == ("Succeeded", 2), st
    assert (st.get("retries") or {}).get("infraFailures", 0) == 0
    first = next(r for r in st["attempts"] if r["attempt"] == 1)
    assert first["outcome"] == "Preempted", st["attempts"]
    preempted = next(h for h in st["history"] if h["reason"] == "Preempted")
    assert preempted["state"] == "Queued"
    assert "Kueue stopped pod victim-1" in preempted["message"], preempted
    assert "not counted against retry.infraFailures" in preempted["message"], preempted
    warnings = [e["reason"] for e in events(kube, ns, "victim") if e["type"] == "Warning"]
    assert warnings == ["Preempted"], warnings
    urgent = kube.get("jobs.ferry.dev", "urgent", ns)["status"]
    assert (urgent["reason"], urgent["attempt"]) == ("Succeeded", 1), urgent
    _manifest, content = verified_archive(kube, victim)
    assert b"woke up" in content["logs/app.log"]
    assert_admitted(kube, ns, real_operator)


def _table(kube: Kube, ns: str, label: str) -> str:
    table = kube.run("get", "fjob", "-n", ns, "-o", "wide").stdout.rstrip()
    return f"# {label}\n$ kubectl get fjob -o wide\n{table}"


def test_an_mpi_job_goes_through_kueues_mpijob_integration(
    ferry_kube: Kube,
    ferry_namespace: str,
    openmpi_image: str,
    real_kueue: KueueEnv,
    real_operator: RealNodeOperator,
) -> None:
    """Its MPIJob is created suspended with the queue label (its pods carry none); with too
    little quota it waits with Kueue's words; once the ClusterQueue is given enough, Kueue
    resumes it and it finishes."""
    kube, ns = ferry_kube, ferry_namespace
    queue = real_kueue.queue(ns, {"cpu": "100m", "memory": "4Gi"})
    kube.create(mpi_app(openmpi_image), "-n", ns)
    job = mpi_job("ring-q", sleep=1)
    job["spec"]["queueName"] = queue
    kube.create(job, "-n", ns)
    held = wait_until(
        kube,
        ns,
        "ring-q",
        lambda st: st.get("reason") == "AwaitingAdmission" and "quota" in st.get("message", ""),
        timeout=60,
    )
    message = held["status"]["message"]
    assert message.startswith(f"MPIJob ring-q-1 waits for Kueue to admit it (queue {queue}): ")
    (mpijob,) = kube.list("mpijobs.kubeflow.org", ns)
    assert mpijob["metadata"]["labels"][names.LABEL_KUEUE_QUEUE] == queue
    assert mpijob["spec"]["runPolicy"]["suspend"] is True
    assert kube.list("pods", ns) == [], "nothing runs before admission"
    real_kueue.queue(ns, {"cpu": "2", "memory": "4Gi"}, name=queue)  # more quota
    done = wait_state(kube, ns, "ring-q", {"Finished"}, real_operator, timeout=240)
    assert (done["status"]["reason"], done["status"]["attempt"]) == ("Succeeded", 1)
    assert (done["status"].get("retries") or {}).get("infraFailures", 0) == 0
    _manifest, content = verified_archive(kube, done)
    assert "sum 3" in content["rank-0.txt"].decode()
    assert_admitted(kube, ns, real_operator)


def wait_until(kube: Kube, ns: str, name: str, predicate: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = kube.get("jobs.ferry.dev", name, ns)
        if predicate(job.get("status") or {}):
            return job
        assert time.monotonic() < deadline, job.get("status")
        time.sleep(0.5)
