"""Ownership on a real kube-apiserver with the real operator and kwok pods: Ferry never
adopts, reads outcomes from, mounts or deletes an object it did not make for this Job.

Each case here went wrong before children were checked by UID: a user's PVC named like a
workspace was mounted and then deleted; a pod made beforehand with Ferry's labels and the run
pod's (or archive pod's) name decided the Job's outcome; a deleted Job's children were adopted
by a new Job of the same name."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferry.api import names
from tests.conftest import Kube, OperatorProcess
from tests.integration.lifecycle_support import (
    app_manifest,
    get_job,
    job_manifest,
    patch,
    sim,
    states,
    status,
)

pytestmark = pytest.mark.integration


def _forged_pod(name: str, job: str, role: str, **annotations: str) -> dict[str, Any]:
    """A pod made by someone else, with Ferry's labels and a child's name."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                names.LABEL_JOB: job,
                names.LABEL_ATTEMPT: "1",
                names.LABEL_ROLE: role,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
            "annotations": annotations,
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": names.APP_CONTAINER if role == "run" else names.ARCHIVE_CONTAINER,
                    "image": "example.org/forged:1",
                }
            ],
        },
    }


def _wait_reason(
    kube: Kube, ns: str, name: str, *reasons: str, timeout: float = 60, state: str = ""
) -> dict[str, Any]:
    """The Job once its reason is one of `reasons` (and its state is `state`, if given)."""

    def check() -> dict[str, Any] | None:
        job = get_job(kube, ns, name)
        if not job or status(job).get("reason") not in reasons:
            return None
        return job if not state or status(job).get("state") == state else None

    found: dict[str, Any] = kube.wait_for(check, timeout=timeout, what=f"{name}: {reasons}")
    return found


def _exists(kube: Kube, kind: str, ns: str, name: str) -> dict[str, Any] | None:
    proc = kube.run("get", kind, name, "-n", ns, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    obj: dict[str, Any] = json.loads(proc.stdout)
    return obj


def test_a_users_pvc_named_like_a_workspace_is_never_mounted_or_deleted(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "frame-1", "labels": {"data": "precious"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    kube.create(claim, "-n", namespace)
    before = _exists(kube, "pvc", namespace, "frame-1")
    assert before is not None
    kube.create(app_manifest(), "-n", namespace)
    kube.create(job_manifest("frame"), "-n", namespace)

    job = _wait_reason(kube, namespace, "frame", "NameTaken")
    st = status(job)
    assert st["state"] == "Blocked"
    assert "PersistentVolumeClaim frame-1" in st["message"]
    assert _exists(kube, "pod", namespace, "frame-1") is None  # nothing mounts it

    patch(kube, namespace, "frame", {"cancel": True})
    _wait_reason(kube, namespace, "frame", "Cancelled")
    kube.run("delete", "fjob", "frame", "-n", namespace, "--wait=true")
    after = _exists(kube, "pvc", namespace, "frame-1")
    assert after is not None, "the user's claim was deleted"
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert not after["metadata"].get("ownerReferences")


def test_a_forged_run_pod_that_exits_0_does_not_finish_a_failing_job(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """Made beforehand with the run pod's name and Ferry's labels, it exits 0; the Job's app
    always exits 3. The Job is blocked while the name is held, then fails as its app does."""
    kube.create(_forged_pod("forge-1", "forge", "run"), "-n", namespace)
    kube.wait_for(
        lambda: (
            (p := _exists(kube, "pod", namespace, "forge-1"))
            and p["status"].get("phase") == "Succeeded"
        ),
        what="the forged pod Succeeded",
    )
    kube.create(app_manifest(), "-n", namespace)
    kube.create(job_manifest("forge", annotations=sim(exit_code="3")), "-n", namespace)
    job = _wait_reason(kube, namespace, "forge", "NameTaken")
    assert "Pod forge-1" in status(job)["message"]
    assert "Finished" not in states(job)

    kube.run("delete", "pod", "forge-1", "-n", namespace, "--wait=true")
    job = _wait_reason(kube, namespace, "forge", "AppFailed", timeout=90)
    st = status(job)
    assert st["state"] == "Failed"
    assert st["exitCode"] == 3
    assert "Finished" not in states(job)


def test_a_forged_archive_pod_does_not_archive_the_job(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(_forged_pod("arch-1-archive-1", "arch", "archive"), "-n", namespace)
    kube.create(app_manifest(), "-n", namespace)
    kube.create(job_manifest("arch"), "-n", namespace)
    job = _wait_reason(kube, namespace, "arch", "NameTaken", timeout=90)
    st = status(job)
    assert "Pod arch-1-archive-1" in st["message"]
    assert "outputs" not in st
    assert "Finished" not in states(job)

    kube.run("delete", "pod", "arch-1-archive-1", "-n", namespace, "--wait=true")
    job = _wait_reason(kube, namespace, "arch", "Succeeded", timeout=90)
    assert status(job)["state"] == "Finished"


def test_a_deleted_jobs_children_are_not_adopted_by_a_new_job_of_the_same_name(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """`kubectl delete fjob x --cascade=orphan; kubectl apply x`: the old run pod and
    workspace stand, with no controller. The new x does not take them as its own."""
    kube.create(app_manifest(), "-n", namespace)
    kube.create(job_manifest("redo", annotations=sim(duration="120s")), "-n", namespace)
    _wait_reason(kube, namespace, "redo", "AppRunning", timeout=60)
    old = get_job(kube, namespace, "redo")
    assert old is not None
    kube.run("delete", "fjob", "redo", "-n", namespace, "--cascade=orphan", "--wait=true")
    kube.create(job_manifest("redo", annotations=sim(duration="1s")), "-n", namespace)
    job = _wait_reason(kube, namespace, "redo", "NameTaken")
    assert job["metadata"]["uid"] != old["metadata"]["uid"]
    assert "redo-1" in status(job)["message"]
    assert "Running" not in states(job)


def test_an_app_changed_between_attempts_does_not_change_what_runs(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """Attempt 2 (an app retry) and the archive run the App as accepted, not the live one."""
    kube.create(app_manifest(), "-n", namespace)
    kube.create(
        job_manifest(
            "pinned",
            annotations=sim(exit_code="3", duration="3s"),
            retry={"appFailures": 1},
        ),
        "-n",
        namespace,
    )
    _wait_reason(kube, namespace, "pinned", "AppRunning", timeout=60)
    accepted = get_job(kube, namespace, "pinned")
    assert accepted is not None
    image = status(accepted)["app"]["image"]
    kube.run(
        "patch",
        "fapp",
        "sim",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"image": "example.org/changed:2", "args": ["--changed"]}}),
    )
    # AppFailed is also the reason of the Retrying that starts attempt 2: wait for the end.
    job = _wait_reason(kube, namespace, "pinned", "AppFailed", timeout=120, state="Failed")
    st = status(job)
    assert st["attempt"] == 2
    assert st["app"]["image"] == image
    # What each attempt's pod ran, as recorded from the pods themselves.
    assert _seen_images(kube, namespace, "pinned") == {image}
    records = st["attempts"]
    assert [r["attempt"] for r in records] == [1, 2]


def _seen_images(kube: Kube, namespace: str, job: str) -> set[str]:
    """The app images of the Job's run pods, as status.attempts recorded them."""
    found = get_job(kube, namespace, job)
    assert found is not None
    return {r["image"] for r in status(found).get("attempts") or [] if r.get("image")}
