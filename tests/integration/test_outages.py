"""Outages waited out, on a real kube-apiserver with the real operator and kwok pods.

kwok's pods do not run the stager: their fate is the annotation `sim.ferry.dev/archive-exit-code`
or `stage-fail` (exit 75 is the stager's "store unavailable"), which the Job passes on to the
pods it makes, so that removing it from the Job is the store coming back. The same with the real
stager and a MinIO that is stopped and started is tests/e2e/test_outages_e2e.py.

Before, an archive pod that found the store down three times in a row (~30 s of the stager's
own retries each) ended the Job ArchiveFailed and deleted its workspace; a stage-in outage
ended it StageInFailed at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    Watcher,
    app_manifest,
    events,
    events_with,
    job_manifest,
    pods,
    pvcs,
    sim,
    status,
)

pytestmark = pytest.mark.integration

UNAVAILABLE = "75"
S3_INPUT = [{"name": "model", "source": {"s3": {"bucket": "models", "key": "frame.tcl"}}}]


class OutageOperator(OperatorProcess):
    """The operator with a short backoff (1 s doubling to 2 s) and an outage deadline."""

    deadline = "600"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            FERRY_OUTAGE_BACKOFF_SECONDS="1",
            FERRY_OUTAGE_BACKOFF_MAX_SECONDS="2",
            FERRY_OUTAGE_DEADLINE_SECONDS=self.deadline,
        )
        return env


@pytest.fixture
def outage_operator(alone: Any, kube: Kube, tmp_path: Path) -> Iterator[OutageOperator]:
    op = OutageOperator(kube.state, tmp_path)
    op.start()
    yield op
    op.stop()


@pytest.fixture
def short_deadline_operator(alone: Any, kube: Kube, tmp_path: Path) -> Iterator[OutageOperator]:
    op = OutageOperator(kube.state, tmp_path)
    op.deadline = "6"
    op.start()
    yield op
    op.stop()


def archive_try(job: dict[str, Any]) -> int:
    return int(status(job).get("archiveTry") or 0)


def test_a_store_outage_longer_than_the_archive_tries_is_waited_out_then_finished(
    kube: Kube, namespace: str, outage_operator: OutageOperator
) -> None:
    kube.create(app_manifest(), "-n", namespace)
    kube.create(
        job_manifest("down", annotations=sim(archive_exit_code=UNAVAILABLE)), "-n", namespace
    )
    watch = Watcher(kube, namespace, "down")
    job = watch.until(
        lambda j: status(j).get("reason") == "StoreUnavailable",
        timeout=60,
        what="Archiving/StoreUnavailable",
    )
    st = status(job)
    assert st["state"] == "Archiving"
    assert "the store at" in st["message"]
    assert "unavailable since" in st["message"]
    # Past today's three tries (FERRY_ARCHIVE_TRIES): still Archiving, the workspace kept.
    job = watch.until(lambda j: archive_try(j) >= 5, timeout=90, what="a fifth archive try")
    assert status(job)["state"] == "Archiving"
    assert "Failed" not in watch.seen_states
    assert [p["metadata"]["name"] for p in pvcs(kube, namespace, "down")] == ["down-1"]
    standing = [p["metadata"]["name"] for p in pods(kube, namespace, "down", "archive")]
    assert len(standing) <= 2, f"spent archive pods are deleted: {standing}"
    outage = status(job)["outage"]
    assert outage["phase"] == "Archive"
    assert outage["tries"] >= 4

    # The store is back: the next archive pod succeeds.
    kube.run("annotate", "fjob", "down", "-n", namespace, "sim.ferry.dev/archive-exit-code-")
    done = watch.terminal(timeout=90)
    st = status(done)
    assert (st["state"], st["reason"]) == ("Finished", "Succeeded")
    assert "outage" not in st
    assert st["attempt"] == 1
    archived = {c["type"]: c for c in st["conditions"]}["Archived"]
    assert archived["status"] == "True"
    # One Warning when the outage was first met, none for each try after it.
    said = [e for e in events(kube, namespace, "down") if e["reason"] == "StoreUnavailable"]
    assert [(e["type"], e.get("count", 1)) for e in said] == [("Warning", 1)]


def test_past_the_outage_deadline_archive_failed_says_since_when(
    kube: Kube, namespace: str, short_deadline_operator: OutageOperator
) -> None:
    kube.create(app_manifest(), "-n", namespace)
    kube.create(
        job_manifest("gone", annotations=sim(archive_exit_code=UNAVAILABLE)), "-n", namespace
    )
    watch = Watcher(kube, namespace, "gone")
    watch.until(lambda j: status(j).get("reason") == "StoreUnavailable", timeout=60, what="waiting")
    done = watch.terminal(timeout=90)
    st = status(done)
    assert (st["state"], st["reason"]) == ("Failed", "ArchiveFailed")
    assert "was unreachable since" in st["message"]
    assert "past FERRY_OUTAGE_DEADLINE_SECONDS (6s)" in st["message"]
    said = events_with(kube, namespace, "gone", "ArchiveFailed")
    warnings = [e for e in said if e["reason"] == "ArchiveFailed"]
    assert warnings
    assert warnings[0]["type"] == "Warning"


def test_a_stage_in_outage_stages_again_in_new_attempts_then_finishes(
    kube: Kube, namespace: str, outage_operator: OutageOperator
) -> None:
    kube.create(app_manifest(), "-n", namespace)
    kube.create(
        job_manifest("stage", annotations=sim(stage_fail=UNAVAILABLE), inputs=S3_INPUT),
        "-n",
        namespace,
    )
    watch = Watcher(kube, namespace, "stage")
    job = watch.until(
        lambda j: (
            status(j).get("reason") == "StoreUnavailable" and status(j).get("attempt", 0) >= 3
        ),
        timeout=90,
        what="StoreUnavailable in attempt 3",
    )
    st = status(job)
    assert st["state"] in ("StagingInputs", "Queued")
    assert "retries" not in st  # the infrastructure budget is not spent on an outage
    assert "Failed" not in watch.seen_states

    kube.run("annotate", "fjob", "stage", "-n", namespace, "sim.ferry.dev/stage-fail-")
    done = watch.terminal(timeout=90)
    st = status(done)
    assert (st["state"], st["reason"]) == ("Finished", "Succeeded")
    assert "outage" not in st
    # Earlier attempts' pods and workspaces were let go as each new one stood in.
    assert st["attempt"] >= 3
