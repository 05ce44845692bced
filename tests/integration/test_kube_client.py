"""`KubeClient`'s hot calls on the real apiserver: a pod's create, a Job's status write and an
Event go through `clients.direct` (the ApiClient's pool, not the generated client), and answer
as the rest of the client does: "already exists" is False, a refusal is RefusedError with the
apiserver's words, a stale resourceVersion is ConflictError, a missing Job NotFoundError; a
ServiceAccount's bearer token is sent with every request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ferry.clients.kube import KubeClient, load_config
from ferry.clients.protocol import ConflictError, NotFoundError, RefusedError
from tests.conftest import Kube
from tests.integration.lifecycle_support import app_manifest, job_manifest

pytestmark = pytest.mark.integration


def client_for(kubeconfig: Path | str) -> KubeClient:
    return KubeClient(load_config(str(kubeconfig)), qps=100, burst=200)


def pod(namespace: str, name: str, container: str = "main") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"t": "direct"}},
        "spec": {"containers": [{"name": container, "image": "busybox"}]},
    }


def test_a_pods_create_and_its_answers(kube: Kube, namespace: str) -> None:
    client = client_for(kube.state.kubeconfig)
    assert client.create(pod(namespace, "made")) is True
    assert kube.get("pod", "made", namespace)["spec"]["containers"][0]["image"] == "busybox"
    assert client.create(pod(namespace, "made")) is False, "already exists"
    with pytest.raises(RefusedError, match=r"spec\.containers\[0\]\.name"):
        client.create(pod(namespace, "bad", container="Not_A_Name"))
    assert client.calls.counts["create pods"] == 3


def test_a_status_write_conflicts_on_a_stale_version(kube: Kube, namespace: str) -> None:
    kube.apply(app_manifest(), "-n", namespace)
    kube.create(job_manifest("written"), "-n", namespace)
    client = client_for(kube.state.kubeconfig)
    job = client.get_job(namespace, "written")
    status = {"state": "Pending", "message": "née 東京"}  # not ASCII: written as UTF-8
    written = client.replace_status("jobs", job, status)
    assert written["status"]["message"] == "née 東京"
    assert int(written["metadata"]["resourceVersion"]) > int(job["metadata"]["resourceVersion"])
    assert kube.get("fjob", "written", namespace)["status"]["message"] == "née 東京"
    with pytest.raises(ConflictError, match=f"jobs {namespace}/written"):
        client.replace_status("jobs", job, {"state": "Pending", "message": "stale"})
    kube.run("delete", "fjob", "written", "-n", namespace, "--wait=true")
    with pytest.raises(NotFoundError):
        client.replace_status("jobs", written, {"state": "Pending"})


def test_an_event_about_a_job(kube: Kube, namespace: str) -> None:
    kube.apply(app_manifest(), "-n", namespace)
    kube.create(job_manifest("told"), "-n", namespace)
    client = client_for(kube.state.kubeconfig)
    job = client.get_job(namespace, "told")
    client.post_event(job, "Normal", "Checked", "x" * 2000, "ferry-test")
    events = kube.list("events", namespace)
    [event] = [e for e in events if e["reason"] == "Checked"]
    assert event["involvedObject"]["uid"] == job["metadata"]["uid"]
    assert event["message"] == "x" * 1024, "cut to 1 KiB"
    assert event["source"]["component"] == "ferry-test"


def test_a_service_accounts_token_is_sent(kube: Kube, namespace: str, tmp_path: Path) -> None:
    """Anonymous requests cannot create pods: the create succeeds only with the token sent,
    and a token the apiserver does not know is refused as such (401)."""
    kube.run("create", "serviceaccount", "maker", "-n", namespace)
    kube.run(
        "create", "role", "maker", "--verb=create", "--resource=pods", "-n", namespace
    )  # fmt: skip
    kube.run(
        "create", "rolebinding", "maker", "--role=maker",
        f"--serviceaccount={namespace}:maker", "-n", namespace,
    )  # fmt: skip
    token = kube.run("create", "token", "maker", "-n", namespace).stdout.strip()
    config = json.loads(Path(kube.kubeconfig).read_text())
    user = config["users"][0]["name"]
    config["users"] = [{"name": user, "user": {"token": token}}]
    path = tmp_path / "maker.kubeconfig"
    path.write_text(json.dumps(config))
    assert client_for(path).create(pod(namespace, "by-token")) is True
    assert kube.get("pod", "by-token", namespace)["metadata"]["name"] == "by-token"
    config["users"] = [{"name": user, "user": {"token": token[:-8] + "AAAAAAAA"}}]
    path.write_text(json.dumps(config))
    with pytest.raises(ApiException) as refused:
        client_for(path).create(pod(namespace, "forged"))
    assert refused.value.status == 401
