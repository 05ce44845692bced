"""The operator run as its chart's ServiceAccount, with exactly the chart's RBAC, and what it
did as read from the apiserver's audit log.

`ChartIdentity` renders the chart's rbac.yaml and serviceaccount.yaml (watching one namespace),
applies them, and writes a kubeconfig holding a token of that ServiceAccount
(`kubectl create token`); `SAOperator` is `OperatorProcess` logged in with it, leader election
on. `granted` reads the (group, resource, verb) pairs the rendered Roles allow; `audited` the
pairs the ServiceAccount's requests used (the local cluster audits every request of a service
account: ferrydev.cluster.apiserver).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ferrydev.cluster import ClusterState
from tests.conftest import ROOT, Kube, OperatorProcess, helm

CHART = ROOT / "charts" / "ferry"
RELEASE = "rb"

#: (API group, resource[/subresource], verb)
Pair = tuple[str, str, str]


@dataclass
class ChartIdentity:
    release_ns: str
    sa: str
    kubeconfig: Path
    rendered: list[dict[str, Any]]

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.release_ns}:{self.sa}"


def install_identity(kube: Kube, watched: str, tmp: Path, *values: str) -> ChartIdentity:
    """The chart's ServiceAccount and RBAC (watching `watched`), applied; a token for it."""
    release_ns = f"ferry-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", release_ns)
    text = helm(
        kube,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        release_ns,
        "--set",
        f"watchNamespaces={{{watched}}}",
        *values,
        "--show-only",
        "templates/rbac.yaml",
        "--show-only",
        "templates/serviceaccount.yaml",
    ).stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        doc["metadata"].setdefault("namespace", release_ns)
    kube.apply({"apiVersion": "v1", "kind": "List", "items": docs})
    (sa,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    token = kube.run("create", "token", sa, "-n", release_ns, "--duration=2h").stdout.strip()
    config = json.loads(Path(kube.kubeconfig).read_text())
    config["users"] = [{"name": "ferry-admin", "user": {"token": token}}]
    path = tmp / f"{sa}.kubeconfig"
    path.write_text(json.dumps(config))
    return ChartIdentity(release_ns, sa, path, docs)


class SAOperator(OperatorProcess):
    """The operator logged in as the chart's ServiceAccount, watching one namespace, with
    leader election as the chart sets it up (the Lease named after the release)."""

    def __init__(
        self, state: ClusterState, log_dir: Path, identity: ChartIdentity, watched: str
    ) -> None:
        super().__init__(state, log_dir)
        self.identity = identity
        self.watched = watched
        self.name = "operator"
        #: More FERRY_* settings for the next start.
        self.settings: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            FERRY_KUBECONFIG=str(self.identity.kubeconfig),
            FERRY_NAMESPACES=self.watched,
            FERRY_LEASE_NAMESPACE=self.identity.release_ns,
            FERRY_LEASE_NAME=self.identity.sa,
            FERRY_LEASE_IDENTITY=f"{self.name}-{self.starts}",
        )
        env.update(self.settings)
        return env


def granted(rendered: list[dict[str, Any]], sa: str) -> set[Pair]:
    """Every (group, resource, verb) the Roles and ClusterRoles bound to `sa` allow."""
    bound = {
        d["roleRef"]["name"]
        for d in rendered
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(s["name"] == sa for s in d["subjects"])
    }
    pairs: set[Pair] = set()
    for doc in rendered:
        if doc["kind"] in ("Role", "ClusterRole") and doc["metadata"]["name"] in bound:
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        pairs |= {(group, resource, verb) for verb in rule["verbs"]}
    return pairs


def audit_entries(state: ClusterState, username: str) -> list[dict[str, Any]]:
    """The audit log's entries for `username` (one per request: RequestReceived is omitted)."""
    path = Path(state.root) / "audit.log"
    assert path.exists(), (
        f"{path} missing: the cluster predates service-account auditing; start it afresh"
    )
    out = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("user", {}).get("username") == username:
            out.append(entry)
    return out


def audited(entries: list[dict[str, Any]]) -> set[Pair]:
    """The (group, resource, verb) pairs the requests used."""
    pairs: set[Pair] = set()
    for entry in entries:
        ref = entry.get("objectRef")
        if not ref:
            continue  # discovery (/apis, /version): open to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        pairs.add((ref.get("apiGroup", ""), resource, entry["verb"]))
    return pairs


def forbidden(entries: list[dict[str, Any]]) -> list[str]:
    return [
        f"{e['verb']} {e.get('requestURI')}"
        for e in entries
        if (e.get("responseStatus") or {}).get("code") == 403
    ]
