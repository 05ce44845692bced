"""The real Kueue of the local cluster (ferrydev.cluster.kueue, fixture `kueue`) on plain pods:
its webhook gates pods of opted-in namespaces, it admits them within a ClusterQueue's quota,
explains the one left waiting on its Workload, admits it when quota frees, preempts a
lower-priority pod for a higher one, and leaves namespaces that are not opted in alone."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ferrydev.cluster import kueue as kq
from ferrydev.kubectl import kubectl_binary
from tests.conftest import Kube
from tests.kueue_support import KueueEnv, condition

pytestmark = pytest.mark.integration


def pod(name: str, queue: str = "", cpu: str = "500m", priority_class: str = "") -> dict[str, Any]:
    """A plain pod that runs (on a kwok node) for 10 minutes unless stopped."""
    labels = {"app": "kueue-test"}
    if queue:
        labels[KueueEnv.queue_label] = queue
    if priority_class:
        labels[KueueEnv.priority_class_label] = priority_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"sim.ferry.dev/duration": "600s"},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                }
            ],
        },
    }


def gated(kube: Kube, namespace: str, name: str) -> bool:
    spec = kube.get("pod", name, namespace)["spec"]
    return {"name": KueueEnv.admission_gate} in spec.get("schedulingGates", [])


def workload(kube: Kube, kueue: KueueEnv, namespace: str, name: str) -> dict[str, Any]:
    """The Workload of pod `name` (found by the pod's UID in its `kueue.x-k8s.io/job-uid`)."""
    found = kueue.workload_of(namespace, kube.get("pod", name, namespace)["metadata"]["uid"])
    assert found is not None, f"no Workload for pod {namespace}/{name}"
    return found


def is_true(obj: dict[str, Any] | None, kind: str) -> bool:
    c = condition(obj, kind)
    return c is not None and c["status"] == "True"


def record(name: str, obj: Any) -> None:
    """Keep a Workload as seen, for the notes on Kueue's API (FERRY_KUEUE_RECORD=dir)."""
    where = os.environ.get("FERRY_KUEUE_RECORD")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        (Path(where) / f"{name}.json").write_text(json.dumps(obj, indent=2))


def test_quota_admits_two_and_the_third_waits_with_a_reason(
    kube: Kube, kueue: KueueEnv, namespace: str
) -> None:
    queue = kueue.queue(namespace, {"cpu": "1", "memory": "1Gi"})
    names = ["p1", "p2", "p3"]
    for name in names:
        kube.create(pod(name, queue), "-n", namespace)
    # The webhook gates every pod at creation; Kueue lifts the gate of those it admits.
    admitted = kube.wait_for(
        lambda: (
            open_ := [n for n in names if not gated(kube, namespace, n)],
            open_ if len(open_) == 2 else None,
        )[1],
        timeout=30,
        what="two of three pods admitted (gate removed)",
    )
    (waiting,) = set(names) - set(admitted)
    assert gated(kube, namespace, waiting)
    for name in admitted:
        wl = workload(kube, kueue, namespace, name)
        assert is_true(wl, "QuotaReserved"), wl
        assert is_true(wl, "Admitted"), wl
        assert wl["status"]["admission"]["clusterQueue"] == f"{namespace}-{queue}"
    record("admitted", workload(kube, kueue, namespace, admitted[0]))
    pending = kube.wait_for(
        lambda: (
            wl := workload(kube, kueue, namespace, waiting),
            wl if condition(wl, "QuotaReserved") else None,
        )[1],
        timeout=20,
        what=f"the Workload of {waiting} with a QuotaReserved condition",
    )
    record("pending", pending)
    reserved = condition(pending, "QuotaReserved")
    assert reserved is not None
    assert reserved["status"] == "False", pending
    assert reserved["reason"] == "Pending"
    assert "insufficient unused quota for cpu" in reserved["message"], reserved
    assert not is_true(pending, "Admitted")
    # The pod's labels point at its Workload, and the Workload at the pod.
    assert pending["metadata"]["ownerReferences"][0]["name"] == waiting

    # An admitted pod goes away: its quota comes back, and the waiting pod is admitted.
    kube.run("delete", "pod", admitted[0], "-n", namespace, "--wait=false")
    kube.wait_for(
        lambda: not gated(kube, namespace, waiting), timeout=30, what=f"{waiting} admitted"
    )
    assert is_true(workload(kube, kueue, namespace, waiting), "Admitted")


def test_higher_priority_pod_preempts_a_lower_one(
    kube: Kube, kueue: KueueEnv, namespace: str
) -> None:
    low = kueue.priority_class("ferry-test-low", 100)
    high = kueue.priority_class("ferry-test-high", 1000)
    queue = kueue.queue(namespace, {"cpu": "1", "memory": "1Gi"})
    for name in ("low-1", "low-2"):
        kube.create(pod(name, queue, priority_class=low), "-n", namespace)
    kube.wait_for(
        lambda: not gated(kube, namespace, "low-1") and not gated(kube, namespace, "low-2"),
        timeout=30,
        what="both low-priority pods admitted",
    )
    low_uids = {kube.get("pod", n, namespace)["metadata"]["uid"] for n in ("low-1", "low-2")}
    # Watched: a preempted pod and its Workload may be gone by the time the high pod is in.
    with (
        Watch(kube, "workloads.kueue.x-k8s.io", namespace) as workloads,
        Watch(kube, "pods", namespace) as pods,
    ):
        kube.create(pod("high", queue, priority_class=high), "-n", namespace)
        kube.wait_for(
            lambda: not gated(kube, namespace, "high"), timeout=30, what="the high pod admitted"
        )
    high_wl = workload(kube, kueue, namespace, "high")
    assert high_wl["spec"]["priority"] == 1000
    evicted = {
        wl["metadata"]["labels"][KueueEnv.job_uid_label]: wl
        for wl in workloads.seen()
        if is_true(wl, "Evicted") and wl["metadata"]["labels"][KueueEnv.job_uid_label] in low_uids
    }
    assert len(evicted) == 1, workloads.seen()
    ((victim_uid, victim_wl),) = evicted.items()
    record("preempted", victim_wl)
    assert (condition(victim_wl, "Evicted") or {}).get("reason") == "Preempted", victim_wl
    assert is_true(victim_wl, "Preempted")
    # Kueue stops a preempted plain pod: a TerminationTarget condition, then deletion.
    victim_pods = [p for p in pods.seen() if p["metadata"]["uid"] == victim_uid]
    record("preempted-pod", victim_pods[-1])
    assert any(is_true(p, "TerminationTarget") for p in victim_pods), victim_pods[-1]
    assert victim_uid not in {p["metadata"]["uid"] for p in kube.list("pods", namespace)}
    survivor = (low_uids - {victim_uid}).pop()
    assert is_true(kueue.workload_of(namespace, survivor), "Admitted")


class Watch:
    """`kubectl get KIND -w -o json` in the background: every version of every object seen."""

    def __init__(self, kube: Kube, kind: str, namespace: str) -> None:
        self.argv = [
            kubectl_binary(),
            "--kubeconfig",
            kube.kubeconfig,
            "get",
            kind,
            "-n",
            namespace,
        ]
        self.out = b""

    def __enter__(self) -> Watch:
        self.proc = subprocess.Popen(
            [*self.argv, "-w", "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        time.sleep(1)  # the initial list
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(1)
        self.proc.terminate()
        self.out = self.proc.communicate(timeout=10)[0]

    def seen(self) -> list[dict[str, Any]]:
        """The objects printed, in order (the last may be cut short by the stop: dropped)."""
        text, decoder, objs, at = self.out.decode(), json.JSONDecoder(), [], 0
        while text[at:].strip():
            try:
                obj, at = decoder.raw_decode(text, len(text) - len(text[at:].lstrip()))
            except json.JSONDecodeError:
                break
            objs.append(obj)
        return objs


def test_namespaces_not_opted_in_are_left_alone(kube: Kube, kueue: KueueEnv) -> None:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.run("create", "namespace", name)
    try:
        kube.wait_for(
            lambda: kube.run("get", "sa", "default", "-n", name, check=False).returncode == 0,
            what="default ServiceAccount",
        )
        created = json.loads(
            kube.create(pod("free", "some-queue"), "-n", name, "-o", "json").stdout
        )
        assert "schedulingGates" not in created["spec"], created["spec"]
        assert "finalizers" not in created["metadata"]
        kube.wait_for(
            lambda: kube.get("pod", "free", name)["status"].get("phase") == "Running",
            timeout=30,
            what="the pod running without Kueue",
        )
        assert kube.list("workloads.kueue.x-k8s.io", name) == []
    finally:
        kube.run("delete", "namespace", name, "--wait=false", check=False)


def test_kueue_is_a_host_process_of_the_cluster_on_loopback(kube: Kube, kueue: KueueEnv) -> None:
    """Its pid is in state.json (so the cluster's stop stops it), its webhooks are reached by
    URL on loopback, the pod and MPIJob ones only in opted-in namespaces, and the host's
    /etc/kueue/metrics/certs stays an empty mount point (Kueue sees its own certificates in
    its mount namespace)."""
    process = kueue.process
    assert process.alive()
    saved = json.loads((kube.state.dir / "state.json").read_text())
    assert saved["pids"][kq.PID_NAME] == process.pid
    assert kq.readyz(process.health_port)
    assert list(kq.METRICS_CERT_PATH.iterdir()) == []
    hooks = [
        hook
        for kind, name in kq.WEBHOOK_CONFIG_NAMES.items()
        for hook in kube.get(kind.lower(), name, "")["webhooks"]
    ]
    assert {h["clientConfig"]["url"].split("/")[2] for h in hooks} == {
        f"127.0.0.1:{process.webhook_port}"
    }
    narrowed = {h["name"] for h in hooks if h.get("namespaceSelector")}
    assert narrowed == {"mpod.kb.io", "vpod.kb.io", "mmpijob.kb.io", "vmpijob.kb.io"}
    for hook in hooks:
        if hook["name"] in narrowed:
            assert hook["namespaceSelector"] == {"matchLabels": {kueue.label: kueue.label_value}}
        else:
            assert hook["rules"][0]["apiGroups"] == ["kueue.x-k8s.io"], hook["name"]
