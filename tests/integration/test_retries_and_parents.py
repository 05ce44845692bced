"""Backoff between attempts and the rules for parents, on a real kube-apiserver with the real
operator and kwok pods: attempt N+1 starts no earlier than the backoff after attempt N failed
(also across an operator restart), a parent deleted by its TTL after it finished still lets
its children run (also across a restart, from what the child recorded), a parent deleted
before it finished fails its child, and a dependency cycle fails the Jobs in it.

An operator of its own per test, with a 4 s backoff base (10 s in production) and an 8 s
grace for missing parents (300 s in production), so that each test takes well under a
minute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    Recorder,
    Watcher,
    app_manifest,
    check_order,
    get_job,
    job_manifest,
    parse_time,
    pods,
    sim,
    states,
    status,
)

pytestmark = pytest.mark.integration

BASE = 4.0
GRACE = 8.0


class TunedOperator(OperatorProcess):
    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            FERRY_RETRY_BACKOFF_BASE_SECONDS=str(BASE),
            FERRY_PARENT_GRACE_SECONDS=str(GRACE),
        )
        return env


@pytest.fixture
def tuned(alone: Any, kube: Kube, tmp_path: Path) -> Iterator[TunedOperator]:
    op = TunedOperator(kube.state, tmp_path)
    op.start()
    yield op
    op.stop()


def _create(kube: Kube, namespace: str, *objs: dict[str, Any]) -> None:
    for obj in objs:
        kube.create(obj, "-n", namespace)


def _entries(job: dict[str, Any], state: str) -> list[dict[str, Any]]:
    return [h for h in status(job)["history"] if h["state"] == state]


# --------------------------------------------------------------------------- backoff


@pytest.fixture
def seen(kube: Kube, namespace: str) -> Iterator[Recorder]:
    """Every version of every pod in the test's namespace (pods go when a Job ends)."""
    with Recorder(kube, namespace, "pods") as rec:
        yield rec


def test_each_attempt_waits_for_the_backoff_after_the_previous_failed(
    kube: Kube, namespace: str, tuned: TunedOperator, seen: Recorder
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest(
            "flaky",
            annotations=sim(duration="1s", exit_code="3"),
            retry={"appFailures": 2},
            archive={"onFailure": False},
        ),
    )
    w = Watcher(kube, namespace, "flaky")
    retrying = w.state("Retrying", timeout=30)
    st = status(retrying)
    assert st["attempt"] == 1
    assert "attempt 2 starts at" in st["message"], st["message"]
    assert f"after a {int(BASE)}s backoff" in st["message"], st["message"]
    assert pods(kube, namespace, "flaky", "run")[0]["metadata"]["name"] == "flaky-1"
    # A restarted operator waits until the same time: it reads it from the status.
    tuned.kill()
    tuned.start()
    job = w.terminal(timeout=90)
    st = status(job)
    assert (st["state"], st["reason"], st["attempt"]) == ("Failed", "AppFailed", 3), st
    assert st["retries"]["appFailures"] == 2
    check_order(st["history"], "flaky")
    retried = _entries(job, "Retrying")
    queued = _entries(job, "Queued")
    assert len(retried) == 2, states(job)
    assert len(queued) == 3, states(job)
    for k, wait in enumerate((BASE, 2 * BASE)):
        waited = (
            parse_time(queued[k + 1]["time"]) - parse_time(retried[k]["time"])
        ).total_seconds()
        assert wait <= waited < wait + 10, (k, waited, st["history"])
    # Measured on the objects too: each run pod was created no earlier than the backoff after
    # the previous attempt's app ended (timestamps in whole seconds: 1 s of slack).
    ended = {r["attempt"]: parse_time(r["endTime"]) for r in st["attempts"]}
    seen.stop()
    created = {
        name: parse_time(versions[0]["metadata"]["creationTimestamp"])
        for name, versions in seen.by_name().items()
    }
    assert seen.names("flaky", "run") == ["flaky-1", "flaky-2", "flaky-3"]
    for n, wait in ((2, BASE), (3, 2 * BASE)):
        start = created[f"flaky-{n}"]
        assert start >= ended[n - 1] + timedelta(seconds=wait - 1), (n, start, ended)


# --------------------------------------------------------------------------- parents


def test_a_parent_deleted_by_its_ttl_after_it_finished_lets_the_child_run(
    kube: Kube, namespace: str, tuned: TunedOperator
) -> None:
    """`ttlSecondsAfterFinished: 0` deletes a parent right after it finished, and another
    parent is still running; the operator restarts meanwhile (its memory of deleted parents is
    gone): the child remembered the first parent Finished in its status and runs once the
    second finishes, staging the first one's outputs."""
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("mesh", annotations=sim(duration="1s"), ttlSecondsAfterFinished=0),
        job_manifest("prep", annotations=sim(duration="12s")),
        job_manifest(
            "solve",
            annotations=sim(duration="1s"),
            parents=["mesh", "prep"],
            inputs=[{"name": "model", "source": {"jobOutput": {"job": "mesh", "path": "m.tcl"}}}],
        ),
    )
    child = Watcher(kube, namespace, "solve")
    kube.wait_for(
        lambda: get_job(kube, namespace, "mesh") is None, timeout=60, what="mesh deleted by TTL"
    )
    waiting = child.poll()
    assert waiting is not None
    st = status(waiting)
    assert st["state"] == "AwaitingParents", st
    assert [p["name"] for p in st.get("parents") or []] == ["mesh"], st
    assert "mesh" not in st["message"], st["message"]
    assert "prep" in st["message"], st["message"]
    tuned.kill()
    tuned.start()
    job = child.terminal(timeout=60)
    st = status(job)
    assert st["state"] == "Finished", st
    assert [p["name"] for p in st["parents"]] == ["mesh", "prep"]
    mesh_uri = st["parents"][0]["outputsUri"]
    assert "/mesh/" in mesh_uri, mesh_uri
    assert "attempt-1" in mesh_uri, mesh_uri
    assert "ParentNotFound" not in [h["reason"] for h in st["history"]]
    check_order(st["history"], "solve")


def test_a_parent_deleted_before_it_finished_fails_the_child(
    kube: Kube, namespace: str, tuned: TunedOperator
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("mesh", annotations=sim(duration="60s")),
        job_manifest("solve", parents=["mesh"]),
    )
    Watcher(kube, namespace, "mesh").state("Running", timeout=30)
    kube.run("delete", "fjob", "mesh", "-n", namespace, "--wait=false")
    job = Watcher(kube, namespace, "solve").terminal(timeout=60)
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "ParentNotFound"), st
    assert "mesh (deleted while Running)" in st["message"], st["message"]
    created = parse_time(job["metadata"]["creationTimestamp"])
    failed = parse_time(st["completionTime"])
    assert failed >= created + timedelta(seconds=GRACE - 1), (created, failed)
    assert states(job) == ["AwaitingParents", "Failed"]
    assert pods(kube, namespace, "solve") == []


def test_a_parent_never_created_fails_the_child_after_the_grace(
    kube: Kube, namespace: str, tuned: TunedOperator
) -> None:
    _create(kube, namespace, app_manifest(), job_manifest("orphan", parents=["typo"]))
    job = Watcher(kube, namespace, "orphan").terminal(timeout=60)
    st = status(job)
    assert (st["state"], st["reason"]) == ("Failed", "ParentNotFound"), st
    assert "typo (not found)" in st["message"]
    created = parse_time(job["metadata"]["creationTimestamp"])
    assert parse_time(st["completionTime"]) >= created + timedelta(seconds=GRACE - 1)
    assert pods(kube, namespace, "orphan") == []


def test_a_dependency_cycle_fails_the_jobs_in_it(
    kube: Kube, namespace: str, tuned: TunedOperator
) -> None:
    _create(
        kube,
        namespace,
        app_manifest(),
        job_manifest("a", parents=["b"]),
        job_manifest("b", parents=["c"]),
        job_manifest("c", parents=["a"]),
        job_manifest("after", parents=["a"]),
    )
    for name, cycle in (("a", "a → b → c → a"), ("b", "b → c → a → b"), ("c", "c → a → b → c")):
        job = Watcher(kube, namespace, name).terminal(timeout=30)
        st = status(job)
        assert (st["state"], st["reason"]) == ("Failed", "DependencyCycle"), (name, st)
        assert cycle in st["message"], st["message"]
    after = status(Watcher(kube, namespace, "after").terminal(timeout=30))
    assert (after["state"], after["reason"]) == ("Failed", "ParentFailed"), after
    assert "DependencyCycle" in after["message"]
    assert pods(kube, namespace, "a") == []
    # A Job naming itself is refused at admission (a cycle of one).
    refused = kube.create(job_manifest("self", parents=["self"]), "-n", namespace, check=False)
    assert refused.returncode != 0
    assert "a Job cannot be its own parent" in refused.stderr, refused.stderr
