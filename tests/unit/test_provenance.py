"""Provenance that tells the truth: what each attempt ran (node, image digest, times, exit
code) in status.attempts and the manifest, and the states it went through at the time they
happened, even when the operator saw them late."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ferry.api.job import State
from ferry.decisions.plan import CreateObject

from .factories import JOB, at, decide, exited, job_view, observe, with_status

pytestmark = pytest.mark.unit

DIGEST = "registry.example.org/solver@sha256:" + "ab" * 32


def _ran_on_node(code: int = 0) -> object:
    pod = exited(1, code=code, started=at(-30), finished=at(-5))
    assert pod.main is not None
    main = dataclasses.replace(pod.main, image="registry.example.org/solver:1.0", image_id=DIGEST)
    return dataclasses.replace(pod, main=main, node_name="node-7")


def test_a_quick_run_seen_only_after_it_ended_records_running_when_it_started() -> None:
    """The first pass after the pod was created sees the app already ended: the history
    says Running at the app's own start time, then the next state; one status write."""
    queued = decide(dataclasses.replace(observe(job_view()), now=at(-60)))
    assert queued.state == State.QUEUED
    plan = decide(with_status(observe(job_view()), queued.status, pods=[_ran_on_node()]))
    states = [(h.state, h.time) for h in plan.status.history]
    assert [s for s, _ in states] == [State.QUEUED, State.RUNNING, State.ARCHIVING]
    assert states[1][1] == at(-30)
    assert "waiting for pod" not in (plan.status.message or "")


def test_a_running_entry_never_precedes_the_entry_before_it() -> None:
    """An operator killed between creating the run pod and recording Queued records Queued
    after the app started: the backfilled Running entry is at Queued's time, not before it,
    so the history stays in order (test_jobs_survive_operator_kills saw it out of order)."""
    queued = decide(observe(job_view()))
    assert queued.status.history[-1].time == at(0)
    plan = decide(with_status(observe(job_view()), queued.status, pods=[_ran_on_node()]))
    times = [h.time for h in plan.status.history]
    assert [h.state for h in plan.status.history][:2] == [State.QUEUED, State.RUNNING]
    assert times == sorted(times)
    assert times[1] == at(0)


def test_a_run_seen_running_is_not_recorded_twice() -> None:
    from .factories import running

    queued = decide(observe(job_view()))
    run = decide(with_status(observe(job_view()), queued.status, pods=[running(started=at(-30))]))
    assert run.state == State.RUNNING
    plan = decide(with_status(observe(job_view()), run.status, pods=[_ran_on_node()]))
    assert [h.state for h in plan.status.history].count(State.RUNNING) == 1


def test_each_ended_attempt_records_node_image_digest_times_and_exit_code() -> None:
    queued = decide(observe(job_view()))
    plan = decide(with_status(observe(job_view()), queued.status, pods=[_ran_on_node(code=0)]))
    (record,) = plan.status.attempts
    assert record.attempt == 1
    assert record.pod_name == f"{JOB}-1"
    assert record.node_name == "node-7"
    assert record.image_id == DIGEST
    assert record.exit_code == 0
    assert record.outcome == "Succeeded"
    assert (record.start_time, record.end_time) == (at(-30), at(-5))


def test_the_manifest_names_the_digest_the_attempt_ran() -> None:
    queued = decide(observe(job_view()))
    plan = decide(with_status(observe(job_view()), queued.status, pods=[_ran_on_node()]))
    (archive,) = [a for a in plan.actions if isinstance(a, CreateObject)]
    env = {e["name"]: e.get("value") for e in archive.manifest["spec"]["containers"][0]["env"]}
    extra = json.loads(env["FERRY_ARCHIVE"])["extra"]
    assert extra["run"]["imageId"] == DIGEST
    assert extra["run"]["nodeName"] == "node-7"
    assert "spec" not in extra["app"]  # the App as accepted is named by its hash
