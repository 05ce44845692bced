"""Flux's verdict on Ferry's objects: kstatus (sigs.k8s.io/cli-utils/pkg/kstatus, the library
Flux's health checks use) run on live Jobs and Apps, through hack/kstatus.

Jobs: InProgress while active (Blocked included: it recovers by itself), Current when
Finished, Failed when Failed, TimedOut or Cancelled. Apps: Current when valid, Failed when
invalid, InProgress while Ferry has not judged the latest spec."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest

from ferry.api.common import ConditionStatus
from ferry.api.job import TERMINAL_STATES, JobStatus, State
from ferry.decisions.conditions import set_condition
from ferry.decisions.plan import Draft
from ferry.decisions.status import conditions_for
from ferrydev.paths import BIN
from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    Watcher,
    app_manifest,
    job_manifest,
    patch,
    sim,
    status,
)

pytestmark = pytest.mark.integration

KSTATUS = BIN / "kstatus"
FAILED_STATES = {State.FAILED, State.TIMED_OUT, State.CANCELLED}
TERMINAL_NAMES = {s.value for s in TERMINAL_STATES}


def kstatus(objects: str) -> dict[str, tuple[str, str]]:
    """kstatus's (status, message) per object name, for JSON as `kubectl get -o json` prints."""
    assert KSTATUS.exists(), f"{KSTATUS} missing: run hack/build-tools.sh kstatus"
    proc = subprocess.run(
        [str(KSTATUS)], input=objects, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return {v["name"]: (v["status"], v["message"]) for v in lines}


def live(kube: Kube, kind: str, namespace: str) -> dict[str, tuple[str, str]]:
    return kstatus(kube.run("get", kind, "-n", namespace, "-o", "json").stdout)


def test_kstatus_reads_every_state_as_ferry_means_it() -> None:
    """Every state's conditions, as Ferry's decisions write them, on kstatus (no cluster)."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    objects = []
    for state in State:
        conditions: list[Any] = []
        for type_, (st, reason, msg) in conditions_for(
            JobStatus(), Draft(state, "SomeReason", "m")
        ).items():
            conditions, _ = set_condition(conditions, type_, st, reason, msg, now, 1)
        job_status = JobStatus(state=state, observed_generation=1, conditions=conditions)
        objects.append(
            {
                "apiVersion": "ferry.dev/v1alpha1",
                "kind": "Job",
                "metadata": {"name": state.value, "namespace": "n", "generation": 1},
                "status": job_status.wire(),
            }
        )
    verdicts = kstatus(json.dumps({"kind": "List", "items": objects}))
    expected = {
        s.value: "Current"
        if s == State.FINISHED
        else "Failed"
        if s in FAILED_STATES
        else "InProgress"
        for s in State
    }
    assert {k: v[0] for k, v in verdicts.items()} == expected
    assert FAILED_STATES | {State.FINISHED} == TERMINAL_STATES


def test_a_status_older_than_the_spec_is_in_progress() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "x", "generation": 2},
        "status": {
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": ConditionStatus.TRUE.value}],
        },
    }
    assert kstatus(json.dumps(job))["x"][0] == "InProgress"


def test_an_object_without_status_is_current_to_kstatus() -> None:
    """kstatus's rule for kinds it does not know (docs/gitops.md warns of it): no status at
    all reads as Current, so a Job or App Ferry has not looked at yet is briefly Current."""
    job = {"kind": "Job", "metadata": {"name": "new", "generation": 1}, "spec": {}}
    assert kstatus(json.dumps(job))["new"][0] == "Current"


def test_live_jobs_through_their_lives(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(app_manifest(), "-n", namespace)
    for job in (
        job_manifest("ok", annotations=sim(duration="4s")),
        job_manifest("crash", annotations=sim(duration="1s", exit_code="3")),
        job_manifest("slow", annotations=sim(duration="60s"), maxRunSeconds=3),
        job_manifest("stop", annotations=sim(duration="60s")),
        job_manifest("orphan", app="missing"),
    ):
        kube.create(job, "-n", namespace)
    seen: dict[str, set[tuple[str, str]]] = {}  # Job -> {(state, kstatus)}
    finals: dict[str, tuple[str, str]] = {}  # Job -> the last (state, kstatus)

    def sample() -> dict[str, str]:
        jobs = json.loads(kube.run("get", "fjob", "-n", namespace, "-o", "json").stdout)
        verdicts = kstatus(json.dumps(jobs))
        states = {}
        for job in jobs["items"]:
            name = job["metadata"]["name"]
            state = status(job).get("state") or "-"
            states[name] = state
            finals[name] = (state, verdicts[name][0])
            seen.setdefault(name, set()).add(finals[name])
        return states

    Watcher(kube, namespace, "stop").state("Running", timeout=60)
    # Sampled while "stop" runs (its run is 60 s): the samples after the cancel may all come
    # after it ended (a loaded CI machine once saw only Cancelled and the orphan's Blocked).
    sample()
    patch(kube, namespace, "stop", {"cancel": True})
    kube.wait_for(
        lambda: all(s in TERMINAL_NAMES for n, s in sample().items() if n != "orphan"),
        timeout=120,
        interval=0.5,
        what="every Job but the orphan terminal",
    )
    sample()
    print("kstatus seen:", json.dumps({k: sorted(v) for k, v in seen.items()}, indent=1))
    assert finals["ok"] == ("Finished", "Current")
    assert finals["crash"] == ("Failed", "Failed")
    assert finals["slow"] == ("TimedOut", "Failed")
    assert finals["stop"] == ("Cancelled", "Failed")
    assert seen["orphan"] >= {("Blocked", "InProgress")}
    active = {(s, v) for pairs in seen.values() for s, v in pairs if s not in TERMINAL_NAMES}
    assert {v for _, v in active} == {"InProgress"}, active
    assert {"Running", "Blocked"} <= {s for s, _ in active}, active


def test_live_apps(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    kube.create(app_manifest("good"), "-n", namespace)
    kube.create(app_manifest("bad", args=["--steps", "{{params.stepz}}"]), "-n", namespace)
    verdicts = kube.wait_for(
        lambda: (
            v
            if (v := live(kube, "fapp", namespace)).get("good", ("",))[0] == "Current"
            and v.get("bad", ("",))[0] == "Failed"
            else None
        ),
        timeout=60,
        what="good App Current, bad App Failed",
    )
    print("kstatus Apps:", verdicts)
    assert "stepz" in verdicts["bad"][1]
    # Fixing the spec: kstatus follows (InProgress until Ferry judges it, then Current).
    kube.run(
        "patch",
        "fapp",
        "bad",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"args": ["--steps", "{{params.steps}}"]}}),
    )
    kube.wait_for(
        lambda: live(kube, "fapp", namespace)["bad"][0] == "Current",
        timeout=60,
        what="fixed App Current",
    )
