"""Faults on a real kube-apiserver with the real operator and kwok pods.

A create the apiserver refuses (here a ResourceQuota of no pods) used to raise out of the pass
and be retried every 5 s forever with no status, condition or Event: now the Job is
Blocked/CreateRefused with the apiserver's words and goes on once the cause is gone."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    app_manifest,
    events_with,
    get_job,
    job_manifest,
    sim,
    status,
)

pytestmark = pytest.mark.integration


def test_a_refused_create_is_blocked_with_the_apiservers_words_then_recovers(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    }
    kube.create(quota, "-n", namespace)
    kube.wait_for(
        lambda: kube.get("resourcequota", "no-pods", namespace).get("status", {}).get("hard"),
        what="the quota controller filled in the quota's status",
    )
    kube.create(app_manifest(), "-n", namespace)
    kube.create(job_manifest("capped"), "-n", namespace)

    def blocked() -> dict[str, object] | None:
        job = get_job(kube, namespace, "capped")
        return job if job and status(job).get("reason") == "CreateRefused" else None

    job = kube.wait_for(blocked, timeout=60, what="Blocked/CreateRefused")
    st = status(job)
    assert st["state"] == "Blocked"
    assert "exceeded quota" in st["message"]
    assert "capped-1" in st["message"]
    # The pass's Event follows its status write (posted after the pass).
    events = events_with(kube, namespace, "capped", "CreateRefused")
    assert any(e["reason"] == "CreateRefused" and e["type"] == "Warning" for e in events)

    kube.run("delete", "resourcequota", "no-pods", "-n", namespace)

    def finished() -> dict[str, object] | None:
        job = get_job(kube, namespace, "capped")
        return job if job and status(job).get("state") == "Finished" else None

    done = kube.wait_for(finished, timeout=120, what="Finished once the quota is gone")
    assert status(done)["attempt"] == 1  # a refusal is not a failed attempt


def test_a_new_job_reads_pending_before_any_pass(kube: Kube, namespace: str) -> None:
    """The apiserver fills in status.state Pending (a schema default): `kubectl get` shows a
    state from the start, and no API write is spent on it."""
    made = kube.run(
        "create", "-f", "-", "-n", namespace, "-o", "json", stdin=json.dumps(job_manifest("new"))
    )
    assert json.loads(made.stdout)["status"] == {"state": "Pending"}
    out = kube.run("get", "fjob", "new", "-n", namespace, "--no-headers").stdout
    assert out.split()[1] in ("Pending", "Blocked")  # Blocked once the operator, if up, looked


def test_a_workspace_deleted_mid_run_ends_archive_failed_not_archiving_forever(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(app_manifest(), "-n", namespace)
    kube.create(job_manifest("lost", annotations=sim(duration="6s")), "-n", namespace)

    def running() -> dict[str, object] | None:
        job = get_job(kube, namespace, "lost")
        return job if job and status(job).get("state") == "Running" else None

    kube.wait_for(running, timeout=60, what="Running")
    kube.run("delete", "pvc", "lost-1", "-n", namespace, "--wait=false")

    def ended() -> dict[str, object] | None:
        job = get_job(kube, namespace, "lost")
        return job if job and status(job).get("state") == "Failed" else None

    job = kube.wait_for(ended, timeout=120, what="Failed/ArchiveFailed")
    st = status(job)
    assert st["reason"] == "ArchiveFailed"
    assert "PersistentVolumeClaim lost-1 was deleted" in str(st["message"])


def test_inline_inputs_are_refused_at_admission_by_bytes(kube: Kube, namespace: str) -> None:
    def inline(*texts: str) -> dict[str, object]:
        inputs = [{"name": f"i{n}", "source": {"inline": t}} for n, t in enumerate(texts)]
        return job_manifest("big", inputs=inputs)

    one = kube.create(inline("€" * 30000), "-n", namespace, check=False)
    assert one.returncode != 0
    assert "bytes of UTF-8" in one.stderr
    together = kube.create(inline(*["x" * 60000] * 5), "-n", namespace, check=False)
    assert together.returncode != 0
    assert "together" in together.stderr
    assert kube.create(inline("€" * 21845), "-n", namespace, check=False).returncode == 0
