"""Cluster DNS on the real node: CoreDNS (hack/coredns) on the pod bridge, the kubelet's
clusterDNS pointing pods at it (ferrydev.cluster.dns).

Pods resolve through their own libc resolver (Python's `socket.gethostbyname` in the tools
image), with the search path and ndots the kubelet writes, as an MPI launcher resolving its
hostfile does. Every pod runs under the restricted Pod Security Standard.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferrydev.cluster import POD_GATEWAY
from ferrydev.cluster.dns import query_a
from tests.conftest import Kube
from tests.e2e.test_real_node import BUSYBOX, TOOLS, logs, pod, run_to_end

pytestmark = pytest.mark.e2e

RESOLVE = """
import json, socket, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = socket.gethostbyname(name)
    except OSError as exc:
        out[name] = "error: " + type(exc).__name__
print(json.dumps(out))
print(open("/etc/resolv.conf").read())
"""


def _service(name: str, selector: dict[str, str], headless: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": selector, "ports": [{"name": "x", "port": 80}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def test_a_pod_resolves_a_service_and_a_headless_pod_name(
    real_kube: Kube, real_namespace: str
) -> None:
    kube, ns = real_kube, real_namespace
    kube.create(_service("web", {"app": "web"}, headless=False), "-n", ns)
    kube.create(_service("grp", {"app": "grp"}, headless=True), "-n", ns)
    member = pod("member", BUSYBOX, ["sleep", "600"])
    member["metadata"]["labels"] = {"app": "grp"}
    member["spec"].update(hostname="member-0", subdomain="grp")
    kube.create(member, "-n", ns)

    def member_ip() -> str | None:
        status = kube.get("pod", "member", ns).get("status", {})
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
        )
        return status.get("podIP") if ready else None

    ip = kube.wait_for(member_ip, timeout=90, what="pod member Ready")
    cluster_ip = kube.get("service", "web", ns)["spec"]["clusterIP"]
    # The host asks CoreDNS directly first: the headless record exists once the EndpointSlice
    # controller has published the Ready pod.
    kube.wait_for(
        lambda: query_a(POD_GATEWAY, f"member-0.grp.{ns}.svc.cluster.local")[1] == [ip],
        timeout=30,
        what="CoreDNS to publish member-0.grp",
    )
    names = [
        f"web.{ns}.svc.cluster.local",
        "web",  # the pod's search path: <ns>.svc.cluster.local
        f"member-0.grp.{ns}.svc",  # as the MPI Operator's hostfile names workers
        f"member-0.grp.{ns}.svc.cluster.local",
        f"absent.{ns}.svc.cluster.local",
    ]
    client = pod("client", TOOLS, ["python3", "-c", RESOLVE, *names])
    final = run_to_end(kube, ns, client)
    out = logs(kube, ns, "client")
    assert final["status"]["phase"] == "Succeeded", out
    resolved = json.loads(out.splitlines()[0])
    assert resolved == {
        names[0]: cluster_ip,
        names[1]: cluster_ip,
        names[2]: ip,
        names[3]: ip,
        names[4]: "error: gaierror",
    }, out
    assert f"nameserver {POD_GATEWAY}" in out
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in out


def test_names_outside_the_cluster_are_refused_at_once(real_kube: Kube) -> None:
    """No forward plugin: pods reach nothing beyond the bridge, so CoreDNS refuses other
    names (rcode 5) instead of letting a resolver wait for an upstream it cannot reach
    (`query_a` waits 2 s at most)."""
    assert query_a(POD_GATEWAY, "example.org") == (5, [])
    assert query_a(POD_GATEWAY, "kubernetes.default.svc.cluster.local")[1] == [
        real_kube.get("service", "kubernetes", "default")["spec"]["clusterIP"]
    ]
