"""The local cluster's simulated nodes run pods through Ferry's kwok stages."""

from __future__ import annotations

import pytest

from tests.conftest import Kube

pytestmark = pytest.mark.integration


def _pod(name: str, annotations: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"ferry.dev/role": "run"}, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "app", "image": "example.org/sim:1"}],
        },
    }


def _phases(kube: Kube, namespace: str, name: str, until: str) -> list[str]:
    seen: list[str] = []

    def ended() -> bool:
        phase = kube.get("pod", name, namespace).get("status", {}).get("phase", "")
        if not seen or seen[-1] != phase:
            seen.append(phase)
        return phase == until

    kube.wait_for(ended, timeout=60, interval=0.1, what=f"pod {name} {until}")
    return seen


def test_pod_runs_then_succeeds(kube: Kube, namespace: str) -> None:
    kube.create(_pod("ok", {"sim.ferry.dev/duration": "2s"}), "-n", namespace)
    phases = _phases(kube, namespace, "ok", "Succeeded")
    assert "Running" in phases
    state = kube.get("pod", "ok", namespace)["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 0


def test_pod_runs_then_fails_with_exit_code_3(kube: Kube, namespace: str) -> None:
    kube.create(
        _pod("bad", {"sim.ferry.dev/duration": "2s", "sim.ferry.dev/exit-code": "3"}),
        "-n",
        namespace,
    )
    phases = _phases(kube, namespace, "bad", "Failed")
    assert "Running" in phases
    state = kube.get("pod", "bad", namespace)["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 3


def test_pod_is_evicted(kube: Kube, namespace: str) -> None:
    kube.create(
        _pod("evicted", {"sim.ferry.dev/duration": "1s", "sim.ferry.dev/evict": "true"}),
        "-n",
        namespace,
    )
    _phases(kube, namespace, "evicted", "Failed")
    assert kube.get("pod", "evicted", namespace)["status"]["reason"] == "Evicted"


def test_workspace_pvc_is_provisioned(kube: Kube, namespace: str) -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "ws"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kube.create(pvc, "-n", namespace)
    kube.wait_for(
        lambda: kube.get("pvc", "ws", namespace).get("status", {}).get("phase") == "Bound",
        what="PVC bound by the host-path provisioner",
    )
