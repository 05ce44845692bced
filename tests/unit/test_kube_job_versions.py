"""The liveness probe's fresh read of Job versions stays inside the watched namespaces: with
`watchNamespaces` the operator has a Role in each of them only, so a cluster-wide list would be
forbidden and /healthz would fail (found by tests/e2e/test_helm_install.py)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from ferry.clients.kube import KubeClient

pytestmark = pytest.mark.unit


def _item(ns: str, name: str, rv: int) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": str(rv)}}


class FakeCustom:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, int]] = []

    def list_cluster_custom_object(
        self, group: str, version: str, plural: str, limit: int
    ) -> dict[str, Any]:
        self.calls.append(("cluster", None, limit))
        return {"items": [_item("a", "j1", 5), _item("b", "j2", 7)]}

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, limit: int
    ) -> dict[str, Any]:
        self.calls.append(("namespaced", namespace, limit))
        return {"items": [_item(namespace, "j", 3)]}


def kube_with(fake: FakeCustom) -> KubeClient:
    kube = KubeClient(client.ApiClient(client.Configuration()), qps=1000, burst=1000)
    kube.custom = fake  # type: ignore[assignment]
    return kube


def test_cluster_wide_without_namespaces() -> None:
    fake = FakeCustom()
    assert kube_with(fake).list_job_versions((), 200) == {("a", "j1"): 5, ("b", "j2"): 7}
    assert fake.calls == [("cluster", None, 200)]


def test_only_the_watched_namespaces() -> None:
    fake = FakeCustom()
    versions = kube_with(fake).list_job_versions(("x", "y"), 200)
    assert versions == {("x", "j"): 3, ("y", "j"): 3}
    assert fake.calls == [("namespaced", "x", 200), ("namespaced", "y", 200)]
