"""Hostile objects on real containers: a user's claim named like a workspace, a forged
archive pod, an App changed between attempts, an app writing fake staging records.

Each ran wrong before children were checked by UID, the App pinned at acceptance and the
staging records moved out of the app's reach: the user's claim was mounted and then deleted,
a forged archive pod's success finished the Job, a retry ran the changed App, and the manifest
reported whatever the app wrote under logs/inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferry.api import names
from tests.conftest import Kube
from tests.e2e.conftest import RealNodeOperator
from tests.e2e.test_ferry_e2e import fjob, verified_archive, wait_state

pytestmark = pytest.mark.e2e

BUSYBOX = "localhost/ferry/busybox:1.36"
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _app(name: str, script: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "1.0",
        "image": BUSYBOX,
        "command": ["sh", "-c"],
        "args": [script],
        "outputs": {"include": ["results/**"]},
        "resources": {"cpu": "100m", "memory": "64Mi"},
    }
    body.update(spec)
    return {
        "apiVersion": names.API_VERSION,
        "kind": "App",
        "metadata": {"name": name},
        "spec": body,
    }


def _job(name: str, app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"appRef": {"name": app}, **spec},
    }


def _reason(kube: Kube, ns: str, name: str, reason: str, timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job = fjob(kube, ns, name)
        return job if job.get("status", {}).get("reason") == reason else None

    found: dict[str, Any] = kube.wait_for(check, timeout=timeout, what=f"{name}: {reason}")
    return found


def test_a_users_claim_named_like_the_workspace_survives_the_job(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "frame-1"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Mi"}}},
    }
    kube.create(claim, "-n", ns)
    uid = kube.get("pvc", "frame-1", ns)["metadata"]["uid"]
    kube.create(_app("frame-app", "mkdir -p results && echo ok > results/ok"), "-n", ns)
    kube.create(_job("frame", "frame-app"), "-n", ns)
    job = _reason(kube, ns, "frame", "NameTaken")
    assert "PersistentVolumeClaim frame-1" in job["status"]["message"]
    kube.run("patch", "fjob", "frame", "-n", ns, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    wait_state(kube, ns, "frame", {"Cancelled"}, real_operator)
    kube.run("delete", "fjob", "frame", "-n", ns, "--wait=true")
    assert kube.get("pvc", "frame-1", ns)["metadata"]["uid"] == uid


def test_a_forged_archive_pod_does_not_finish_the_job(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    forged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "arch-1-archive-1",
            "labels": {
                names.LABEL_JOB: "arch",
                names.LABEL_ATTEMPT: "1",
                names.LABEL_ROLE: names.ROLE_ARCHIVE,
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": names.ARCHIVE_CONTAINER,
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", 'echo \'{"files": 99, "uri": "s3://evil/"}\''],
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }
    kube.create(forged, "-n", ns)
    kube.wait_for(
        lambda: kube.get("pod", "arch-1-archive-1", ns)["status"].get("phase") == "Succeeded",
        timeout=60,
        what="the forged archive pod succeeded",
    )
    kube.create(_app("arch-app", "mkdir -p results && echo ok > results/ok"), "-n", ns)
    kube.create(_job("arch", "arch-app"), "-n", ns)
    job = _reason(kube, ns, "arch", "NameTaken")
    assert "Pod arch-1-archive-1" in job["status"]["message"]
    assert "outputs" not in job["status"]
    kube.run("delete", "pod", "arch-1-archive-1", "-n", ns, "--wait=true")
    job = wait_state(kube, ns, "arch", {"Finished"}, real_operator)
    _, content = verified_archive(kube, job)
    assert content["results/ok"] == b"ok\n"


def test_a_retry_runs_the_app_as_accepted_and_the_app_cannot_forge_its_inputs(
    ferry_kube: Kube, ferry_namespace: str, real_operator: RealNodeOperator
) -> None:
    """Attempt 1 fails; the App is changed before attempt 2; attempt 2 runs the accepted
    script. Both attempts also write a fake staging record where they can (logs/inputs):
    the manifest keeps the real one."""
    kube, ns = ferry_kube, ferry_namespace
    forged = '{"name": "note", "files": [{"sha256": "forged"}]}'
    script = (
        "mkdir -p results /ferry/logs/inputs && "
        f"echo '{forged}' > /ferry/logs/inputs/note.json; "
        'echo "accepted attempt {{job.attempt}}" > results/who; '
        'if [ "{{job.attempt}}" -lt 2 ]; then sleep 6; exit 3; fi'
    )
    kube.create(_app("pin-app", script, inputs=[{"name": "note"}]), "-n", ns)
    job = _job(
        "pin",
        "pin-app",
        retry={"appFailures": 1},
        inputs=[{"name": "note", "source": {"inline": "real input"}}],
    )
    kube.create(job, "-n", ns)
    wait_state(kube, ns, "pin", {"Running"}, real_operator)
    changed = {"spec": {"args": ["mkdir -p results && echo changed > results/who"]}}
    kube.run("patch", "fapp", "pin-app", "-n", ns, "--type=merge", "-p", json.dumps(changed))
    done = wait_state(kube, ns, "pin", {"Finished"}, real_operator)
    st = done["status"]
    assert st["attempt"] == 2
    manifest, content = verified_archive(kube, done)
    assert content["results/who"] == b"accepted attempt 2\n"
    (record,) = manifest["inputs"]
    assert record["name"] == "note"
    assert all(f["sha256"] != "forged" for f in record["files"])
    # Where and what each attempt ran.
    attempts = st["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert all(a["nodeName"] and a["imageId"] for a in attempts)
    assert manifest["run"]["imageId"] == attempts[1]["imageId"]
