"""The Helm chart on the real node: the operator runs IN the cluster, as a pod on `ferry-node`,
logs in with its ServiceAccount and takes the hello example to Finished; upgrade keeps it
working and uninstall leaves nothing of the release behind.

The local cluster has no kube-proxy, so the `kubernetes` Service IP does not route; its
apiserver listens on the pod bridge (10.88.0.1, see ferrydev.cluster.apiserver), and the chart's
`apiServer.host/port` values point the operator there.

Isolation from the host operator (the process the other e2e tests use): it is stopped for the
duration of this test (the `real_operator` fixture restarts it for the next test that needs
it), and the release watches only its own namespace (`watchNamespaces`), so neither operator
ever handles the other's Jobs — not even those of earlier tests' namespaces still being
deleted.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ferrydev.cluster import POD_GATEWAY, REAL_NODE_NAME
from tests.conftest import ROOT, Kube, helm
from tests.e2e.conftest import DEFAULT_BUCKET, TOOLS_IMAGE, RealNodeOperator

pytestmark = pytest.mark.e2e

CHART = ROOT / "charts" / "ferry"
HELLO = ROOT / "examples" / "hello"
INSTANCE = "app.kubernetes.io/instance"
# Everything the chart can create, namespaced and cluster-scoped.
KINDS = (
    "deployments,replicasets,pods,services,serviceaccounts,secrets,configmaps,"
    "persistentvolumeclaims,roles,rolebindings,clusterroles,clusterrolebindings"
)


@pytest.fixture
def host_operator_stopped(
    _real_operator_process: RealNodeOperator,
) -> Iterator[RealNodeOperator]:
    """The host operator process, stopped for this test (restarted by `real_operator`)."""
    _real_operator_process.stop()
    yield _real_operator_process
    assert _real_operator_process.proc is None or _real_operator_process.proc.poll() is not None


def operator_pods(kube: Kube, ns: str, release: str) -> list[dict[str, Any]]:
    out = kube.run(
        "get", "pods", "-n", ns, "-l", f"{INSTANCE}={release},app.kubernetes.io/component=operator",
        "-o", "json",
    ).stdout  # fmt: skip
    pods: list[dict[str, Any]] = json.loads(out)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ready_operator_pod(kube: Kube, ns: str, release: str) -> dict[str, Any]:
    """The operator Deployment Available; its one pod Running and Ready on the real node, never
    restarted, and its /healthz (kopf's probes, the liveness check) passing."""
    deployment = f"deployment/{release}-ferry"
    kube.run(
        "wait", "--for=condition=Available", deployment, "-n", ns, "--timeout=180s",
        timeout=200,
    )  # fmt: skip
    kube.run("rollout", "status", deployment, "-n", ns, "--timeout=180s", timeout=200)
    pods = kube.wait_for(
        lambda: (
            [p for p in operator_pods(kube, ns, release) if p["status"].get("phase") == "Running"]
            if len(operator_pods(kube, ns, release)) == 1
            else None
        ),
        timeout=60,
        what="one Running operator pod",
    )
    pod: dict[str, Any] = pods[0]
    assert pod["spec"]["nodeName"] == REAL_NODE_NAME
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] is True
    assert status["restartCount"] == 0, status
    url = f"http://{pod['status']['podIP']}:8081/healthz"
    with urllib.request.urlopen(url, timeout=20) as resp:
        assert resp.status == 200
        print(f"{url}: {resp.read().decode()}")
    return pod


def run_hello(kube: Kube, ns: str, job_name: str) -> dict[str, Any]:
    job = json.loads(
        kube.run("create", "--dry-run=client", "-o", "json", "-f", str(HELLO / "job.yaml")).stdout
    )
    job["metadata"]["name"] = job_name
    job["metadata"].pop("namespace", None)  # kubectl's client-side default
    kube.apply(job, "-n", ns)
    kube.run(
        "wait", "--for=condition=Ready", f"fjob/{job_name}", "-n", ns, "--timeout=180s",
        timeout=200,
    )  # fmt: skip
    done = kube.get("jobs.ferry.dev", job_name, ns)
    st = done["status"]
    assert st["state"] == "Finished", st
    assert st["outputs"]["files"] >= 1, st
    return done


def test_chart_runs_the_operator_in_cluster(
    ferry_kube: Kube, ferry_namespace: str, host_operator_stopped: RealNodeOperator
) -> None:
    kube, ns = ferry_kube, ferry_namespace
    state = kube.state
    assert state.apiserver_host == POD_GATEWAY, "the apiserver must listen on the pod bridge"
    release = f"h-{uuid.uuid4().hex[:6]}"
    values = [
        "--set", "image.repository=localhost/ferry/tools",
        "--set-string", "image.tag=0.1.0",
        "--set", "image.pullPolicy=Never",
        "--set", f"toolsImage={TOOLS_IMAGE}",
        "--set", f"objectStore.endpoint={state.minio_pod_endpoint}",
        "--set", f"objectStore.bucket={DEFAULT_BUCKET}",
        "--set", f"watchNamespaces={{{ns}}}",
        "--set", f"apiServer.host={state.apiserver_host}",
        "--set", f"apiServer.port={state.apiserver_port}",
    ]  # fmt: skip
    try:
        helm(
            kube, "install", release, str(CHART), "-n", ns, "--skip-crds",
            "--wait", "--timeout", "3m", *values,
        )  # fmt: skip
        first = ready_operator_pod(kube, ns, release)

        kube.run("apply", "-n", ns, "-f", str(HELLO / "app.yaml"))
        run_hello(kube, ns, "hello-1")
        # The Job's own pods ran on the real node too.
        pods = json.loads(
            kube.run("get", "pods", "-n", ns, "-l", "ferry.dev/job=hello-1", "-o", "json").stdout
        )["items"]
        assert {p["spec"].get("nodeName") for p in pods} <= {REAL_NODE_NAME}

        sa = f"system:serviceaccount:{ns}:{release}-ferry"
        can_i = kube.run("auth", "can-i", "--list", f"--as={sa}", "-n", ns).stdout
        print(f"\nkubectl auth can-i --list --as={sa} -n {ns}\n{can_i}")
        assert "secrets" not in can_i

        helm(
            kube, "upgrade", release, str(CHART), "-n", ns, "--skip-crds",
            "--wait", "--timeout", "3m", *values, "--set", "operator.workers=4",
        )  # fmt: skip
        second = ready_operator_pod(kube, ns, release)
        assert second["metadata"]["uid"] != first["metadata"]["uid"], "the pod was not replaced"
        env = {e["name"]: e.get("value") for e in second["spec"]["containers"][0]["env"]}
        assert env["FERRY_WORKERS"] == "4"
        run_hello(kube, ns, "hello-2")
        logs = kube.run("logs", "-n", ns, f"deployment/{release}-ferry").stdout
        assert "Ferry operator started: 4 workers" in logs, logs[-3000:]
    except BaseException:
        print(kube.run("get", "all", "-n", ns, "-o", "wide", check=False).stdout)
        print(kube.run("logs", "-n", ns, f"deployment/{release}-ferry", check=False).stdout[-5000:])
        raise
    finally:
        helm(kube, "uninstall", release, "-n", ns, "--wait", "--timeout", "2m", check=False)

    def leftovers() -> str:
        return kube.run(
            "get", KINDS, "-A", "-l", f"{INSTANCE}={release}", "-o", "name"
        ).stdout.strip()

    assert kube.wait_for(lambda: leftovers() == "", timeout=60, what="no release objects") is True
