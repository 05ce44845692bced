"""Ferry through a real Kueue (fixture `kueue`: Kueue v0.17 on the kwok cluster, pod
integration): only the run pod is queued (the workspace PVC and the archive pod carry no Kueue
label and are never gated, even when the Job has Kueue labels), a Job waiting for quota is
Queued/AwaitingAdmission with Kueue's own words, it runs once admitted, and a run pod Kueue
preempts is requeued without cost."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.api import names
from tests.conftest import Kube
from tests.integration.lifecycle_support import (
    Recorder,
    Watcher,
    app_manifest,
    events,
    job_manifest,
    parse_time,
    pods,
    sim,
    status,
)
from tests.kueue_support import KueueEnv

pytestmark = pytest.mark.integration

#: One run pod of the App below takes the whole quota (its app requests 1 CPU).
QUOTA = {"cpu": "1", "memory": "4Gi"}


def _app() -> dict[str, Any]:
    return app_manifest(resources={"cpu": "1", "memory": "64Mi"})


def _kueue_keys(obj: dict[str, Any]) -> list[str]:
    meta = obj["metadata"]
    keys = [*(meta.get("labels") or {}), *(meta.get("annotations") or {})]
    return [k for k in keys if k.startswith(names.KUEUE_PREFIX)]


def _gates(pod: dict[str, Any]) -> list[str]:
    return [g["name"] for g in pod["spec"].get("schedulingGates") or []]


def _running_span(job: dict[str, Any]) -> tuple[float, float]:
    st = status(job)
    return parse_time(st["startTime"]).timestamp(), parse_time(st["runEndTime"]).timestamp()


@pytest.mark.usefixtures("operator")
def test_only_the_run_pod_is_queued_and_a_job_waits_with_kueues_words(
    kube: Kube, namespace: str, kueue: KueueEnv
) -> None:
    ns = namespace
    queue = kueue.queue(ns, QUOTA)
    kube.create(_app(), "-n", ns)
    first = job_manifest(
        "first",
        annotations=sim(duration="8s"),
        queueName=queue,
        inputs=[{"name": "model", "source": {"inline": "node 1"}}],
    )
    # The second is queued by its own label; a Kueue annotation on it goes nowhere.
    second = job_manifest("second", annotations=sim(duration="4s"))
    second["metadata"]["labels"] = {names.LABEL_KUEUE_QUEUE: queue, "project": "bridge"}
    second["metadata"]["annotations"]["kueue.x-k8s.io/note"] = "never copied"
    kube.create(first, "-n", ns)
    Watcher(kube, ns, "first").until(
        lambda j: bool(pods(kube, ns, "first", "run")), timeout=60, what="first's run pod"
    )
    kube.create(second, "-n", ns)
    held = Watcher(kube, ns, "second").until(
        lambda j: (
            status(j).get("reason") == "AwaitingAdmission"
            and "insufficient unused quota" in status(j).get("message", "")
        ),
        timeout=60,
        what="second awaiting admission, in Kueue's words",
    )
    message = status(held)["message"]
    assert message.startswith(f"pod second-1 waits for Kueue to admit it (queue {queue}): ")
    assert status(held)["state"] == "Queued"
    (gated,) = pods(kube, ns, "second", "run")
    assert names.KUEUE_ADMISSION_GATE in _gates(gated), "Kueue's webhook gated it"
    assert gated["metadata"]["labels"]["project"] == "bridge"

    assert kueue.workload_of(ns, gated["metadata"]["uid"]) is not None

    # Every version of every child while the Jobs run (a terminal Job releases them).
    selector = ("-l", "app.kubernetes.io/managed-by=ferry")
    with (
        Recorder(kube, ns, "pods", *selector) as pod_log,
        Recorder(kube, ns, "pvc", *selector) as pvc_log,
    ):
        done = [Watcher(kube, ns, n).state("Finished", timeout=120) for n in ("first", "second")]
        seen = [*pod_log.stop(), *pvc_log.stop()]
    # One at a time: the second ran only once the first's pod ended and freed the quota.
    (_, first_end), (second_start, _) = (_running_span(j) for j in done)
    assert second_start >= first_end - 1, (first_end, second_start)
    roles = [o["metadata"]["labels"][names.LABEL_ROLE] for o in seen]
    for role in ("archive", "workspace", "run"):
        names_of = {o["metadata"]["name"] for o, r in zip(seen, roles, strict=True) if r == role}
        assert len(names_of) == 2, (role, names_of)
    for obj, role in zip(seen, roles, strict=True):
        meta = obj["metadata"]
        if role == "run":
            assert meta["labels"][names.LABEL_KUEUE_QUEUE] == queue, meta
            assert "kueue.x-k8s.io/note" not in meta.get("annotations", {})
        else:
            assert _kueue_keys(obj) == [], meta
            if obj["kind"] == "Pod":
                assert _gates(obj) == [], obj["spec"]


@pytest.mark.usefixtures("operator")
def test_a_run_pod_preempted_by_kueue_is_requeued_without_cost(
    kube: Kube, namespace: str, kueue: KueueEnv
) -> None:
    ns = namespace
    queue = kueue.queue(ns, QUOTA)
    low = kueue.priority_class("ferry-low", 100)
    high = kueue.priority_class("ferry-high", 1000)
    kube.create(_app(), "-n", ns)
    victim = job_manifest(
        "victim", annotations=sim(duration="20s"), queueName=queue, archive={"enabled": False}
    )
    victim["metadata"]["labels"] = {names.LABEL_KUEUE_PRIORITY_CLASS: low}
    kube.create(victim, "-n", ns)
    watcher = Watcher(kube, ns, "victim")
    watcher.state("Running", timeout=60)
    urgent = job_manifest(
        "urgent", annotations=sim(duration="2s"), queueName=queue, archive={"enabled": False}
    )
    urgent["metadata"]["labels"] = {names.LABEL_KUEUE_PRIORITY_CLASS: high}
    kube.create(urgent, "-n", ns)
    requeued = watcher.until(
        lambda j: status(j).get("reason") == "Preempted" or (status(j).get("attempt") or 0) > 1,
        timeout=60,
        what="victim requeued",
    )
    st = status(requeued)
    assert st["attempt"] == 2, st
    assert "not counted against retry.infraFailures" in next(
        h["message"] for h in st["history"] if h["reason"] == "Preempted"
    )
    first = next(r for r in st["attempts"] if r["attempt"] == 1)
    assert first["outcome"] == "Preempted"
    assert Watcher(kube, ns, "urgent").state("Finished", timeout=60)
    done = watcher.state("Finished", timeout=120)
    st = status(done)
    assert st["attempt"] == 2
    assert (st.get("retries") or {}).get("infraFailures", 0) == 0
    assert [e["reason"] for e in events(kube, ns, "victim") if e["type"] == "Warning"] == [
        "Preempted"
    ]
