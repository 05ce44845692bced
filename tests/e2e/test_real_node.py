"""Real containers on the local real node (`ferry-node`: kubelet, containerd, runc, CNI).

Every pod here runs under the restricted Pod Security Standard (enforced on the namespace),
with images built by ferrydev.images and `imagePullPolicy: Never`. The simulated kwok nodes
carry a NoSchedule taint on a real-node cluster, so these pods land on `ferry-node`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlparse

import pytest

from ferrydev.cluster import REAL_NODE_NAME, ClusterState
from tests.conftest import Kube

pytestmark = pytest.mark.e2e

BUSYBOX = "localhost/ferry/busybox:1.36"
TOOLS = "localhost/ferry/tools:0.1.0"
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(
    name: str,
    image: str,
    command: list[str],
    *,
    volumes: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": command,
        "securityContext": RESTRICTED_CONTAINER,
    }
    if mounts:
        container["volumeMounts"] = mounts
    if env:
        container["env"] = env
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def run_to_end(
    kube: Kube, namespace: str, obj: dict[str, Any], timeout: float = 120
) -> dict[str, Any]:
    """Create the pod and wait until it has Succeeded or Failed; returns the final pod."""
    kube.create(obj, "-n", namespace)
    name = obj["metadata"]["name"]

    def finished() -> dict[str, Any] | None:
        current = kube.get("pod", name, namespace)
        if current.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return current
        return None

    try:
        final: dict[str, Any] = kube.wait_for(finished, timeout=timeout, what=f"pod {name} to end")
    except AssertionError:
        events = kube.run("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"pod {name} did not end; events:\n{events}") from None
    assert final["spec"]["nodeName"] == REAL_NODE_NAME
    return final


def logs(kube: Kube, namespace: str, name: str) -> str:
    return kube.run("logs", name, "-n", namespace).stdout


def test_busybox_says_hello(real_kube: Kube, real_namespace: str) -> None:
    final = run_to_end(real_kube, real_namespace, pod("hello", BUSYBOX, ["echo", "hello"]))
    assert final["status"]["phase"] == "Succeeded"
    terminated = final["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    assert logs(real_kube, real_namespace, "hello") == "hello\n"


def test_exit_code_is_reported(real_kube: Kube, real_namespace: str) -> None:
    final = run_to_end(
        real_kube, real_namespace, pod("fails", BUSYBOX, ["sh", "-c", "echo failing; exit 3"])
    )
    assert final["status"]["phase"] == "Failed"
    terminated = final["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert logs(real_kube, real_namespace, "fails") == "failing\n"


def test_pvc_survives_between_pods(real_kube: Kube, real_namespace: str) -> None:
    real_kube.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "work"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "10Mi"}},
            },
        },
        "-n",
        real_namespace,
    )
    volume = [{"name": "work", "persistentVolumeClaim": {"claimName": "work"}}]
    mount = [{"name": "work", "mountPath": "/work"}]
    token = uuid.uuid4().hex
    writer = run_to_end(
        real_kube,
        real_namespace,
        pod(
            "writer",
            BUSYBOX,
            ["sh", "-c", f"mkdir -p /work/out && echo {token} > /work/out/token && id -u"],
            volumes=volume,
            mounts=mount,
        ),
    )
    assert writer["status"]["phase"] == "Succeeded", logs(real_kube, real_namespace, "writer")
    reader = run_to_end(
        real_kube,
        real_namespace,
        pod("reader", BUSYBOX, ["cat", "/work/out/token"], volumes=volume, mounts=mount),
    )
    assert reader["status"]["phase"] == "Succeeded"
    assert logs(real_kube, real_namespace, "reader") == f"{token}\n"


def test_busybox_reaches_minio(
    real_kube: Kube, real_namespace: str, real_cluster: ClusterState
) -> None:
    url = f"{real_cluster.minio_pod_endpoint}/minio/health/live"
    final = run_to_end(
        real_kube,
        real_namespace,
        pod("wget", BUSYBOX, ["sh", "-c", f"wget -q -S -O /dev/null {url} 2>&1; echo done"]),
    )
    assert final["status"]["phase"] == "Succeeded"
    out = logs(real_kube, real_namespace, "wget")
    assert "200 OK" in out, out


def test_tools_image_writes_to_minio(
    real_kube: Kube, real_namespace: str, real_cluster: ClusterState
) -> None:
    """Python, the minio library and Ferry's venv in the tools image; the object is then read
    back from the host."""
    from minio import Minio

    real_kube.run(
        "create", "secret", "generic", "s3", "-n", real_namespace,
        f"--from-literal=accessKey={real_cluster.minio_access_key}",
        f"--from-literal=secretKey={real_cluster.minio_secret_key}",
    )  # fmt: skip
    endpoint = urlparse(real_cluster.minio_pod_endpoint).netloc
    bucket = f"e2e-{uuid.uuid4().hex[:8]}"
    script = (
        "import os, io\n"
        "from minio import Minio\n"
        f"m = Minio({endpoint!r}, os.environ['AK'], os.environ['SK'], secure=False)\n"
        f"m.make_bucket({bucket!r})\n"
        "data = b'from a real pod'\n"
        f"m.put_object({bucket!r}, 'hello.txt', io.BytesIO(data), len(data))\n"
        "print('uploaded')\n"
    )
    secret_env = [
        {"name": n, "valueFrom": {"secretKeyRef": {"name": "s3", "key": k}}}
        for n, k in (("AK", "accessKey"), ("SK", "secretKey"))
    ]
    final = run_to_end(
        real_kube,
        real_namespace,
        pod("upload", TOOLS, ["python3", "-c", script], env=secret_env),
    )
    assert final["status"]["phase"] == "Succeeded", logs(real_kube, real_namespace, "upload")
    assert logs(real_kube, real_namespace, "upload") == "uploaded\n"
    host = Minio(
        urlparse(real_cluster.minio_endpoint).netloc,
        real_cluster.minio_access_key,
        real_cluster.minio_secret_key,
        secure=False,
    )
    response = host.get_object(bucket, "hello.txt")
    try:
        assert response.read() == b"from a real pod"
    finally:
        response.close()
        response.release_conn()


def test_tools_image_has_ferry(real_kube: Kube, real_namespace: str) -> None:
    """The venv's python3 is first on PATH, Ferry's stager imports, ferry-launch is there."""
    script = (
        "set -e\n"
        "command -v python3\n"
        "id -u\n"
        "python3 -m ferry --help >/dev/null && echo cli-ok\n"
        "if python3 -c 'import importlib.util as u, sys;"
        ' sys.exit(u.find_spec("ferry.stager.__main__") is None)\'; then\n'
        "  python3 -m ferry.stager --help >/dev/null && echo stager-ok\n"
        "else\n"
        "  python3 -c 'import ferry.stager' && echo stager-ok\n"
        "fi\n"
        "ferry-launch 2>&1 | grep -q usage && echo launcher-ok\n"
    )
    final = run_to_end(real_kube, real_namespace, pod("tools", TOOLS, ["sh", "-c", script]))
    out = logs(real_kube, real_namespace, "tools")
    assert final["status"]["phase"] == "Succeeded", out
    assert out.split() == ["/opt/ferry/bin/python3", "1000", "cli-ok", "stager-ok", "launcher-ok"]


def test_simulated_nodes_refuse_real_pods(real_kube: Kube) -> None:
    nodes = json.loads(real_kube.run("get", "nodes", "-o", "json").stdout)["items"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        by_kind.setdefault(node["metadata"]["labels"].get("ferry.dev/node", ""), []).append(node)
    assert [n["metadata"]["name"] for n in by_kind["real"]] == [REAL_NODE_NAME]
    for node in by_kind["kwok"]:
        taints = node["spec"].get("taints", [])
        assert {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"} in taints
