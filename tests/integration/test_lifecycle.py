"""The Job lifecycle on a real kube-apiserver with the real operator and kwok pods.

Each test applies Apps and Jobs with kubectl, picks the simulated pods' fate with
sim.ferry.dev/* annotations (hack/kwok-stages.yaml), and checks what a user sees: the
state, reason and message, status.history, the conditions, Events and the children."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    Recorder,
    Watcher,
    app_manifest,
    check_order,
    conditions,
    events_with,
    get_job,
    job_manifest,
    parse_time,
    patch,
    pods,
    pvcs,
    sim,
    states,
    status,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def seen_pods(kube: Kube, namespace: str) -> Iterator[Recorder]:
    """Every version of every pod in the test's namespace (pods go when a Job ends)."""
    with Recorder(kube, namespace, "pods") as rec:
        yield rec


def _create(kube: Kube, namespace: str, *objs: dict[str, Any]) -> None:
    for obj in objs:
        kube.create(obj, "-n", namespace)


def _cond(job: dict[str, Any], type_: str) -> str:
    return str(conditions(job).get(type_, {}).get("status"))


# --------------------------------------------------------------------------- success


def test_hello_job_runs_to_finished(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    app = app_manifest(resources={"cpu": "250m", "memory": "128Mi"})
    job = job_manifest(
        "hello",
        annotations=sim(duration="2s", start_delay="1s"),
        parameters={"steps": 7},
        inputs=[{"name": "model", "source": {"inline": "node 1 0 0"}}],
        resources={"memory": "256Mi"},
    )
    managed = "app.kubernetes.io/managed-by=ferry"
    with (
        Recorder(kube, namespace, "pods", "-l", managed) as pod_rec,
        Recorder(kube, namespace, "pvc", "-l", managed) as pvc_rec,
    ):
        _create(kube, namespace, app, job)
        w = Watcher(kube, namespace, "hello")
        # Running is in the history as soon as it is recorded; the state itself may never
        # show it (a 2 s run within the operator's 2 s hold of routine progress).
        w.until(lambda j: "Running" in states(j), timeout=60, what="Running in status.history")
        proc = kube.run(
            "wait",
            "--for=condition=Ready",
            "fjob/hello",
            "-n",
            namespace,
            "--timeout=60s",
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        done = w.poll()
        assert done is not None
        # The workspace and the pods are released once the Job has ended.
        kube.wait_for(
            lambda: pvcs(kube, namespace, "hello") == [],
            timeout=30,
            what="workspace PVC deleted",
        )
        kube.wait_for(lambda: pods(kube, namespace, "hello") == [], timeout=30, what="pods deleted")
        seen_pods = pod_rec.stop()
        seen_pvcs = pvc_rec.stop()

    st = status(done)
    assert st["state"] == "Finished", st
    assert st["reason"] == "Succeeded"
    assert st["attempt"] == 1
    assert st["podName"] == "hello-1"
    assert st.get("exitCode") == 0
    assert st["outputs"]["uri"].startswith("s3://")

    history = st["history"]
    assert states(done) == ["Queued", "StagingInputs", "Running", "Archiving", "Finished"]
    check_order(history, "hello")
    times = [parse_time(h["time"]) for h in history]
    assert times == sorted(times)

    cond = conditions(done)
    expected = {
        "Ready": "True",
        "Succeeded": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "Accepted": "True",
        "Archived": "True",
        "InputsStaged": "True",
    }
    assert {k: cond[k]["status"] for k in expected} == expected, cond
    for c in cond.values():
        assert c["reason"], c
        assert c["reason"][0].isupper(), c
        assert " " not in c["reason"], c
        assert c["observedGeneration"] == done["metadata"]["generation"], c
    assert st["observedGeneration"] == done["metadata"]["generation"]

    snap = st["app"]
    assert snap["name"] == "sim"
    assert snap["version"] == "1.0.0"
    assert snap["image"] == "example.org/sim:1"
    assert len(snap["specHash"]) >= 8
    app_obj = kube.get("fapp", "sim", namespace)
    assert app_obj["status"]["specHash"] == snap["specHash"]

    reasons = [e["reason"] for e in events_with(kube, namespace, "hello", "Succeeded")]
    assert "Succeeded" in reasons, reasons
    for routine in ("PodCreated", "AppRunning"):
        assert routine not in reasons, "routine steps are history, not Events"

    # Children: one workspace, one run pod, one archive pod; owned by the Job (controller),
    # labelled, named deterministically, each created once.
    job_uid = done["metadata"]["uid"]
    uids: dict[str, set[str]] = {}
    for obj in [*seen_pods, *seen_pvcs]:
        uids.setdefault(obj["kind"] + "/" + obj["metadata"]["name"], set()).add(
            obj["metadata"]["uid"]
        )
    assert {k: len(v) for k, v in uids.items()} == {
        "Pod/hello-1": 1,
        "Pod/hello-1-archive-1": 1,
        "PersistentVolumeClaim/hello-1": 1,
    }
    for obj in [*seen_pods, *seen_pvcs]:
        meta = obj["metadata"]
        refs = meta["ownerReferences"]
        assert len(refs) == 1
        assert refs[0]["kind"] == "Job"
        assert refs[0]["name"] == "hello"
        assert refs[0]["uid"] == job_uid
        assert refs[0]["controller"] is True
        assert meta["labels"]["ferry.dev/job"] == "hello"
        assert meta["labels"]["ferry.dev/attempt"] == "1"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "ferry"

    for pod in seen_pods:
        spec = pod["spec"]
        assert spec.get("automountServiceAccountToken") is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert not spec.get("hostNetwork")
        assert not any("hostPath" in v for v in spec.get("volumes", []))
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["runAsNonRoot"] is True, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", c["name"]
            assert not sc.get("privileged"), c["name"]

    run = next(p for p in seen_pods if p["metadata"]["name"] == "hello-1")
    spec = run["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["ferry-setup", "stage-model"]
    main = next(c for c in spec["containers"] if c["name"] == "app")
    assert main["image"] == "example.org/sim:1"
    assert main["args"] == ["--steps", "7"]
    # App cpu, Job memory override.
    assert main["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert "nvidia.com/gpu" not in main["resources"]["requests"]


def test_resources_from_app_and_job_override_with_gpu(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    app = app_manifest(resources={"cpu": "2", "memory": "1Gi", "gpu": 0})
    plain = job_manifest("plain", annotations=sim(duration="1s"))
    gpu = job_manifest("gpu", annotations=sim(duration="1s"), resources={"cpu": "3", "gpu": 2})
    with Recorder(kube, namespace, "pods", "-l", "ferry.dev/role=run") as rec:
        _create(kube, namespace, app, plain, gpu)
        for name in ("plain", "gpu"):
            Watcher(kube, namespace, name).state("Finished", timeout=60)
        seen = {p["metadata"]["name"]: p for p in rec.stop()}

    def app_resources(pod: str) -> dict[str, Any]:
        res: dict[str, Any] = next(
            c for c in seen[pod]["spec"]["containers"] if c["name"] == "app"
        )["resources"]
        return res

    plain_res = app_resources("plain-1")
    assert plain_res["requests"] == {"cpu": "2", "memory": "1Gi"}
    gpu_res = app_resources("gpu-1")
    assert gpu_res["requests"] == {"cpu": "3", "memory": "1Gi", "nvidia.com/gpu": "2"}
    assert gpu_res["limits"]["nvidia.com/gpu"] == "2"


# --------------------------------------------------------------------------- refused specs

MODEL = [{"name": "model", "source": {"inline": "node 1"}}]
INVALID = [
    ("unknown-parameter", {"parameters": {"stepz": 5}, "inputs": MODEL}, "spec.parameters.stepz"),
    ("wrong-type", {"parameters": {"steps": "many"}, "inputs": MODEL}, "spec.parameters.steps"),
    ("out-of-range", {"parameters": {"steps": 0}, "inputs": MODEL}, "spec.parameters.steps"),
    ("missing-required-input", {"parameters": {"steps": 5}}, "spec.inputs"),
    (
        "object-parameter",
        {"parameters": {"steps": {"n": 5}}, "inputs": MODEL},
        "spec.parameters.steps",
    ),
]


@pytest.mark.parametrize(
    ("spec", "field"), [(s, f) for _, s, f in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_spec_fails_naming_the_field(
    kube: Kube, namespace: str, operator: OperatorProcess, spec: dict[str, Any], field: str
) -> None:
    app = app_manifest(inputs=[{"name": "model", "required": True}])
    _create(kube, namespace, app, job_manifest("bad", **spec))
    w = Watcher(kube, namespace, "bad")
    job = w.terminal(timeout=30)
    st = status(job)
    assert st["state"] == "Failed", st
    assert st["reason"] == "InvalidSpec"
    assert field in st["message"], st["message"]
    assert _cond(job, "Accepted") == "False"
    assert _cond(job, "Stalled") == "True"
    assert pods(kube, namespace, "bad") == []
    assert pvcs(kube, namespace, "bad") == []


# --------------------------------------------------------------------------- Blocked


def test_blocked_until_app_exists_then_finishes(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(kube, namespace, job_manifest("orphan", annotations=sim(duration="1s")))
    w = Watcher(kube, namespace, "orphan")
    job = w.state("Blocked", timeout=30)
    st = status(job)
    assert st["reason"] == "AppNotFound"
    assert "'sim'" in st["message"]
    assert _cond(job, "Accepted") == "False"
    assert _cond(job, "Reconciling") == "True"
    time.sleep(1.5)
    assert pods(kube, namespace, "orphan") == []
    assert status(w.poll() or {}).get("state") == "Blocked"

    _create(kube, namespace, app_manifest())
    job = w.state("Finished", timeout=60)
    assert states(job)[0] == "Blocked"
    assert states(job)[-1] == "Finished"
    check_order(status(job)["history"], "orphan")
    assert job["metadata"]["generation"] == 1  # nobody touched the Job's spec
    assert _cond(job, "Accepted") == "True"


def test_app_with_undeclared_template_parameter_blocks_its_jobs(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    app = app_manifest(args=["--steps", "{{params.stepz}}"])
    _create(kube, namespace, app, job_manifest("user"))
    kube.wait_for(
        lambda: any(
            c["type"] == "Ready" and c["status"] == "False" and c["reason"] == "InvalidSpec"
            for c in (kube.get("fapp", "sim", namespace).get("status") or {}).get("conditions", [])
        ),
        timeout=30,
        what="App Ready False (InvalidSpec)",
    )
    ready = next(
        c
        for c in kube.get("fapp", "sim", namespace)["status"]["conditions"]
        if c["type"] == "Ready"
    )
    assert "stepz" in ready["message"]
    table = kube.run("get", "fapp", "sim", "-n", namespace).stdout
    assert "False" in table.splitlines()[1]

    job = Watcher(kube, namespace, "user").state("Blocked", timeout=30)
    assert status(job)["reason"] == "AppInvalid"
    assert "stepz" in status(job)["message"]
    assert pods(kube, namespace, "user") == []


# --------------------------------------------------------------------------- parents


def test_child_awaits_parent_then_starts(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("parent", annotations=sim(duration="3s")),
        job_manifest("child", annotations=sim(duration="1s"), parents=["parent"]),
    )
    child = Watcher(kube, namespace, "child")
    parent = Watcher(kube, namespace, "parent")
    job = child.state("AwaitingParents", timeout=30)
    assert status(job)["reason"] == "AwaitingParents"
    assert "parent" in status(job)["message"]
    parent.app_running(timeout=30)
    assert status(child.poll() or {})["state"] == "AwaitingParents"
    assert pods(kube, namespace, "child") == []

    parent_done = parent.state("Finished", timeout=60)
    child_done = child.state("Finished", timeout=60)
    hist = status(child_done)["history"]
    assert hist[0]["state"] == "AwaitingParents"
    assert hist[1]["state"] == "Queued"
    # The child started only after the parent finished.
    assert parse_time(hist[1]["time"]) >= parse_time(status(parent_done)["completionTime"])
    check_order(hist, "child")


def test_child_fails_when_parent_fails(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("parent", annotations=sim(duration="1s", exit_code="3")),
        job_manifest("child", parents=["parent"]),
    )
    parent = Watcher(kube, namespace, "parent").terminal()
    assert status(parent)["state"] == "Failed"
    job = Watcher(kube, namespace, "child").terminal(timeout=60)
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "ParentFailed"), st
    assert "parent" in st["message"]
    assert states(job) == ["AwaitingParents", "Failed"]
    assert pods(kube, namespace, "child") == []


# --------------------------------------------------------------------------- suspend


def test_suspended_job_starts_when_resumed(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("held", annotations=sim(duration="1s"), suspend=True),
    )
    w = Watcher(kube, namespace, "held")
    job = w.state("Suspended", timeout=30)
    assert status(job)["reason"] == "Suspended"
    time.sleep(1.5)
    assert pods(kube, namespace, "held") == []
    assert pvcs(kube, namespace, "held") == []
    assert status(w.poll() or {})["state"] == "Suspended"

    patch(kube, namespace, "held", {"suspend": False})
    job = w.state("Finished", timeout=60)
    assert states(job)[0] == "Suspended"
    assert status(job)["attempt"] == 1
    check_order(status(job)["history"], "held")
    assert status(job)["observedGeneration"] == job["metadata"]["generation"] == 2


def test_suspending_running_job_stops_pod_and_resume_starts_attempt_2(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("pause", annotations=sim(duration="4s", start_delay="1s")),
    )
    w = Watcher(kube, namespace, "pause")
    w.app_running(timeout=30)
    patch(kube, namespace, "pause", {"suspend": True})
    job = w.state("Suspended", timeout=30)
    kube.wait_for(
        lambda: (
            not any(
                p["metadata"]["name"] == "pause-1" for p in pods(kube, namespace, "pause", "run")
            )
        ),
        timeout=30,
        what="pod pause-1 deleted",
    )
    time.sleep(1)
    job = w.poll() or {}
    assert status(job)["state"] == "Suspended"
    assert status(job)["attempt"] == 1

    patch(kube, namespace, "pause", {"suspend": False})
    job = w.state("Finished", timeout=60)
    st = status(job)
    assert st["attempt"] == 2
    assert st["podName"] == "pause-2"
    seq = states(job)
    assert seq[:4] == ["Queued", "StagingInputs", "Running", "Suspended"], seq
    assert seq[-1] == "Finished"
    assert seq.count("Running") == 2
    check_order(st["history"], "pause")
    # Suspension is not a failure: no retry budget used.
    assert (st.get("retries") or {}).get("infraFailures", 0) == 0
    assert (st.get("retries") or {}).get("appFailures", 0) == 0


# --------------------------------------------------------------------------- Queued


def test_queued_with_scheduler_message_when_nothing_fits(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(kube, namespace, app_manifest(), job_manifest("huge", resources={"cpu": "1000"}))
    w = Watcher(kube, namespace, "huge")
    # The scheduler first waits for the workspace to be bound, then finds no node.
    job = w.until(
        lambda j: "insufficient cpu" in (status(j).get("message") or "").lower(),
        timeout=60,
        what="the scheduler's Insufficient cpu message",
    )
    st = status(job)
    assert st["state"] == "Queued"
    assert st["reason"] == "Unschedulable"
    assert states(job) == ["Queued"]
    assert _cond(job, "Ready") == "False"
    assert _cond(job, "Reconciling") == "True"
    # It stays Queued.
    time.sleep(2)
    assert status(w.poll() or {})["state"] == "Queued"


# --------------------------------------------------------------------------- app failure


def test_app_failure_fails_with_exit_code(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("crash", annotations=sim(duration="1s", exit_code="3", start_delay="1s")),
    )
    job = Watcher(kube, namespace, "crash").terminal()
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "AppFailed"), st
    assert st["exitCode"] == 3
    assert st["attempt"] == 1
    assert "3" in st["message"]
    assert _cond(job, "Stalled") == "True"
    assert _cond(job, "Ready") == "False"
    assert _cond(job, "Succeeded") == "False"
    # Logs and partial outputs are archived on failure by default.
    assert _cond(job, "Archived") == "True"
    assert states(job) == ["Queued", "StagingInputs", "Running", "Archiving", "Failed"]
    assert "Finished" not in states(job)


def test_app_failure_retried_once_then_failed(
    kube: Kube, namespace: str, operator: OperatorProcess, seen_pods: Recorder
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest(
            "flaky",
            annotations=sim(duration="1s", exit_code="3"),
            retry={"appFailures": 1, "infraFailures": 3},
        ),
    )
    w = Watcher(kube, namespace, "flaky")
    job = w.terminal()
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "AppFailed"), st
    assert st["attempt"] == 2
    assert st["exitCode"] == 3
    assert st["retries"]["appFailures"] == 1
    assert st["retries"].get("infraFailures", 0) == 0
    seq = states(job)
    assert seq.count("Retrying") == 1
    retry = next(h for h in st["history"] if h["state"] == "Retrying")
    assert retry["reason"] == "AppFailed"
    check_order(st["history"], "flaky")
    seen_pods.stop()
    names = seen_pods.names("flaky", "run")
    assert names == ["flaky-1", "flaky-2"]


# --------------------------------------------------------------------------- timeouts


def test_max_run_seconds_times_out(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("slow", annotations=sim(duration="60s"), maxRunSeconds=3),
    )
    w = Watcher(kube, namespace, "slow")
    job = w.terminal(timeout=60)
    st = status(job)
    assert (st["state"], st["reason"]) == ("TimedOut", "MaxRunSecondsExceeded"), st
    assert "3" in st["message"]
    assert "Running" in states(job)
    ran = parse_time(st["completionTime"]) - parse_time(st["startTime"])
    assert 2.5 <= ran.total_seconds() < 20, ran
    assert _cond(job, "Stalled") == "True"
    assert _cond(job, "Ready") == "False"
    kube.wait_for(
        lambda: pods(kube, namespace, "slow", "run") == [], timeout=30, what="run pod deleted"
    )
    check_order(st["history"], "slow")


def test_raising_max_run_seconds_while_running_extends_it(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("extend", annotations=sim(duration="8s"), maxRunSeconds=4),
    )
    patch(kube, namespace, "extend", {"maxRunSeconds": 60})
    w = Watcher(kube, namespace, "extend")
    job = w.terminal(timeout=60)
    st = status(job)
    assert st["state"] == "Finished", st
    assert "Running" in states(job)
    assert "TimedOut" not in states(job)
    assert st["attempt"] == 1
    assert job["spec"]["maxRunSeconds"] == 60


def test_raising_max_run_seconds_after_start_extends_it(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("extend2", annotations=sim(duration="9s"), maxRunSeconds=5),
    )
    w = Watcher(kube, namespace, "extend2")
    w.app_running(timeout=30)
    patch(kube, namespace, "extend2", {"maxRunSeconds": 60})
    job = w.terminal(timeout=60)
    assert status(job)["state"] == "Finished", status(job)
    assert "TimedOut" not in states(job)


# --------------------------------------------------------------------------- cancel


def test_cancel_while_running(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    _create(kube, namespace, app_manifest(), job_manifest("stop", annotations=sim(duration="30s")))
    w = Watcher(kube, namespace, "stop")
    w.state("Running", timeout=30)
    patch(kube, namespace, "stop", {"cancel": True})
    job = w.terminal(timeout=30)
    st = status(job)
    assert (st["state"], st["reason"]) == ("Cancelled", "Cancelled"), st
    assert _cond(job, "Stalled") == "True"
    assert _cond(job, "Ready") == "False"
    assert _cond(job, "Reconciling") == "False"
    assert "Cancelling" in states(job)
    assert states(job)[-2:] == ["Cancelling", "Cancelled"]
    kube.wait_for(
        lambda: pods(kube, namespace, "stop") == [], timeout=30, what="pods of stop deleted"
    )
    kube.wait_for(lambda: pvcs(kube, namespace, "stop") == [], timeout=30, what="workspace deleted")


# --------------------------------------------------------------------------- infra failures


def test_eviction_is_retried_with_separate_budget(
    kube: Kube, namespace: str, operator: OperatorProcess, seen_pods: Recorder
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest(
            "evicted",
            annotations=sim(duration="1s", evict="true"),
            retry={"appFailures": 5, "infraFailures": 1},
        ),
    )
    job = Watcher(kube, namespace, "evicted").terminal(timeout=60)
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "InfraFailed"), st
    assert st["attempt"] == 2
    assert st["retries"]["infraFailures"] == 1
    assert st["retries"].get("appFailures", 0) == 0
    assert "Evicted" in st["message"]
    retry = next(h for h in st["history"] if h["state"] == "Retrying")
    assert retry["reason"] == "InfraFailure"
    check_order(st["history"], "evicted")
    seen_pods.stop()
    names = seen_pods.names("evicted", "run")
    assert names == ["evicted-1", "evicted-2"]


def test_eviction_without_infra_budget_fails(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest(
            "evicted0",
            annotations=sim(duration="1s", evict="true"),
            retry={"appFailures": 3, "infraFailures": 0},
        ),
    )
    job = Watcher(kube, namespace, "evicted0").terminal(timeout=60)
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "InfraFailed"), st
    assert st["attempt"] == 1
    assert "Retrying" not in states(job)


def test_deleting_the_run_pod_is_an_infra_failure(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(kube, namespace, app_manifest(), job_manifest("lost", annotations=sim(duration="4s")))
    w = Watcher(kube, namespace, "lost")
    w.app_running(timeout=30)
    kube.run("delete", "pod", "lost-1", "-n", namespace, "--wait=false")
    job = w.state("Retrying", "Finished", timeout=30)
    job = w.state("Finished", timeout=60)
    st = status(job)
    assert st["attempt"] == 2
    assert st["retries"]["infraFailures"] == 1
    assert st["retries"].get("appFailures", 0) == 0
    retry = next(h for h in st["history"] if h["state"] == "Retrying")
    assert retry["reason"] == "InfraFailure"
    assert "lost-1" in retry["message"]
    check_order(st["history"], "lost")


# --------------------------------------------------------------------------- archive, stage-in


def test_archive_failure_is_retried_then_fails(
    kube: Kube, namespace: str, operator: OperatorProcess, seen_pods: Recorder
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("noarch", annotations=sim(duration="1s", archive_exit_code="1")),
    )
    w = Watcher(kube, namespace, "noarch")
    job = w.terminal(timeout=90)
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "ArchiveFailed"), st
    assert "Finished" not in states(job)
    assert "Finished" not in w.seen_states
    assert _cond(job, "Archived") == "False"
    assert _cond(job, "Ready") == "False"
    assert st["attempt"] == 1
    kube.wait_for(lambda: pvcs(kube, namespace, "noarch") == [], what="workspace deleted")
    seen_pods.stop()
    archive = seen_pods.names("noarch", "archive")
    assert archive == ["noarch-1-archive-1", "noarch-1-archive-2", "noarch-1-archive-3"]
    # The computation is not re-run to retry the archive.
    assert seen_pods.names("noarch", "run") == ["noarch-1"]


def test_stage_in_failure_names_the_input(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest(
            "nostage",
            annotations=sim(stage_fail="2"),
            inputs=[{"name": "model", "source": {"inline": "node 1"}}],
        ),
    )
    job = Watcher(kube, namespace, "nostage").terminal(timeout=60)
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "StageInFailed"), st
    assert "model" in st["message"]
    assert _cond(job, "InputsStaged") == "False"
    assert "Running" not in states(job)


def _kubelet_warning(
    pod: dict[str, Any], reason: str, message: str, uid: str = ""
) -> dict[str, Any]:
    """A Warning Event about `pod` as the kubelet posts one (kwok's nodes post none)."""
    meta = pod["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}."},
        "involvedObject": {
            "apiVersion": "v1", "kind": "Pod", "name": meta["name"],
            "namespace": meta["namespace"], "uid": uid or meta["uid"],
        },
        "type": "Warning", "reason": reason, "message": message,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
    }  # fmt: skip


def test_a_pod_that_does_not_start_blocks_with_the_kubelets_warning(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """A scheduled pod whose containers never start (start-delay far away) and a FailedMount
    Event about it: Blocked/PodNotStarting with the kubelet's words and the input's name
    (FERRY_POD_START_GRACE_SECONDS is 4 in the tests). A Warning about an earlier pod of the
    same name (another uid) is not taken for it."""
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest(
            "nomount",
            annotations=sim(start_delay="600s"),
            inputs=[{"name": "model", "source": {"configMap": {"name": "frames", "key": "m"}}}],
        ),
    )
    watcher = Watcher(kube, namespace, "nomount")
    watcher.state("StagingInputs", timeout=60)
    (pod,) = pods(kube, namespace, "nomount")
    assert pod["spec"].get("nodeName"), "the pod should be scheduled"
    mount = 'MountVolume.SetUp failed for volume "in-model" : configmap "frames" not found'
    kube.create(_kubelet_warning(pod, "FailedMount", mount), "-n", namespace)
    kube.create(
        _kubelet_warning(pod, "FailedMount", "an earlier pod's", uid="0000-old"), "-n", namespace
    )
    job = watcher.state("Blocked", timeout=60)
    st = status(job)
    assert st["reason"] == "PodNotStarting"
    assert st["message"] == f"input 'model': pod nomount-1 has not started: FailedMount: {mount}"
    assert _cond(job, "Accepted") == "True"
    patch(kube, namespace, "nomount", {"cancel": True})
    job = watcher.terminal(timeout=60)
    assert status(job)["state"] == "Cancelled"
    check_order(status(job)["history"], "nomount")


# --------------------------------------------------------------------------- TTL


def test_ttl_deletes_the_job_after_it_finishes(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("brief", annotations=sim(duration="1s"), ttlSecondsAfterFinished=2),
    )
    w = Watcher(kube, namespace, "brief")
    job = w.state("Finished", timeout=60)
    completed = parse_time(status(job)["completionTime"])
    kube.wait_for(
        lambda: get_job(kube, namespace, "brief") is None,
        timeout=30,
        interval=0.1,
        what="Job deleted by its TTL",
    )
    gone = time.time()
    after = gone - completed.timestamp()
    assert 1.5 <= after <= 12, f"deleted {after:.1f}s after completion"


# --------------------------------------------------------------------------- status writes


def test_history_is_bounded_and_never_goes_back(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("toggle", annotations=sim(start_delay="600s"), suspend=True),
    )
    w = Watcher(kube, namespace, "toggle")
    w.state("Suspended", timeout=30)
    cycles = 27
    for i in range(cycles):
        patch(kube, namespace, "toggle", {"suspend": False})
        w.until(
            lambda j, n=i + 1: (
                status(j).get("attempt") == n
                and status(j).get("state") in ("Queued", "StagingInputs")
            ),
            timeout=30,
            what=f"attempt {i + 1} started",
            interval=0.1,
        )
        patch(kube, namespace, "toggle", {"suspend": True})
        w.until(
            lambda j: status(j).get("state") == "Suspended",
            timeout=30,
            what="suspended again",
            interval=0.1,
        )
    job = w.poll() or {}
    history = status(job)["history"]
    assert len(history) == 50, len(history)
    # The oldest entries were dropped: the first Suspended (before attempt 1) is gone.
    assert status(job)["attempt"] == cycles
    check_order(history, "toggle")
    assert states(job)[-2:] == ["Queued", "Suspended"] or states(job)[-3:] == [
        "Queued",
        "StagingInputs",
        "Suspended",
    ]
    patch(kube, namespace, "toggle", {"cancel": True})
    job = w.terminal(timeout=30)
    assert status(job)["state"] == "Cancelled"
    assert len(status(job)["history"]) == 50
    assert status(job)["history"][-1]["state"] == "Cancelled"


def test_one_status_write_per_change_and_quiet_after_finish(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    _create(kube, namespace, app_manifest())
    kube.create(job_manifest("quiet", annotations=sim(duration="1s")), "-n", namespace)
    with Recorder(kube, namespace, "fjob", "--field-selector", "metadata.name=quiet") as rec:
        w = Watcher(kube, namespace, "quiet")
        job = w.state("Finished", timeout=60)
        rv = job["metadata"]["resourceVersion"]
        time.sleep(4)
        later = w.poll() or {}
        assert later["metadata"]["resourceVersion"] == rv, "the Job was written after it ended"
        versions = rec.stop()
    assert versions, "the watch saw nothing"
    # Every write changed the status: no write repeats what was already there.
    statuses = [v.get("status") for v in versions]
    for before, after in itertools.pairwise(statuses):
        assert before != after, f"a write that changed nothing: {json.dumps(after)[:400]}"
    writes = len({v["metadata"]["resourceVersion"] for v in versions})
    transitions = len(status(job)["history"])
    # A few writes per state at most (reason/message changes within a state).
    assert writes <= 3 * transitions + 2, (writes, transitions)
