"""Faults on a real kube-apiserver with the real operator and kwok pods.

A create the apiserver refuses (here a ResourceQuota of no pods) used to raise out of the pass
and be retried every 5 s forever with no status, condition or Event: now the Job is
Blocked/CreateRefused with the apiserver's words and goes on once the cause is gone."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import app_manifest, get_job, job_manifest, status

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
    events = kube.list("events", namespace, "--field-selector", "involvedObject.name=capped")
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
