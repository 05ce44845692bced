"""The Helm chart against the real apiserver: lint, server-side validation of what it
renders, install / upgrade / uninstall without orphans, least-privilege RBAC, and the
`restricted` Pod Security Standard admitting every pod Ferry creates."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, Kube, OperatorProcess, helm

pytestmark = pytest.mark.integration

CHART = ROOT / "charts" / "ferry"


@pytest.fixture
def release_ns(kube: Kube) -> Iterator[str]:
    name = f"ferry-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


def test_helm_lint(kube: Kube) -> None:
    out = helm(kube, "lint", str(CHART), "--strict").stdout
    assert "0 chart(s) failed" in out


def test_values_schema_refuses_bad_values(kube: Kube) -> None:
    proc = helm(kube, "template", "t", str(CHART), "--set", "operator.workers=0", check=False)
    assert proc.returncode != 0
    assert "workers" in proc.stderr
    proc = helm(
        kube, "template", "t", str(CHART), "--set", "objectStore.endpoint=ftp://x", check=False
    )
    assert proc.returncode != 0


@pytest.mark.parametrize(
    "values",
    [[], ["--set", "minio.enabled=true"], ["--set", "watchNamespaces={a-ns,b-ns}"]],
    ids=["defaults", "with-minio", "namespaced"],
)
def test_rendered_manifests_pass_server_side_validation(
    kube: Kube, release_ns: str, values: list[str]
) -> None:
    for ns in ("a-ns", "b-ns"):
        kube.run("create", "namespace", ns, check=False)
    rendered = helm(kube, "template", "t", str(CHART), "--namespace", release_ns, *values).stdout
    proc = kube.run(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=rendered, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_server_side_validation_refuses_an_unknown_field(kube: Kube, release_ns: str) -> None:
    """The check above can fail: the apiserver's strict field validation names the field."""
    rendered = helm(kube, "template", "t", str(CHART), "--namespace", release_ns).stdout
    broken = rendered.replace("  replicas: 1\n", "  replicas: 1\n  replicaz: 2\n", 1)
    assert broken != rendered
    proc = kube.run(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=broken, check=False
    )
    assert proc.returncode != 0
    assert 'unknown field "spec.replicaz"' in proc.stderr


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_service_monitor_is_off_by_default(kube: Kube) -> None:
    rendered = _documents(helm(kube, "template", "t", str(CHART)).stdout)
    assert "ServiceMonitor" not in {d["kind"] for d in rendered}


def test_service_monitor_when_enabled_selects_the_metrics_service(kube: Kube) -> None:
    rendered = _documents(
        helm(
            kube, "template", "t", str(CHART), "--namespace", "mon",
            "--set", "metrics.serviceMonitor.enabled=true",
            "--set", "metrics.serviceMonitor.labels.release=prometheus",
            "--set", "metrics.serviceMonitor.scrapeTimeout=5s",
        ).stdout
    )  # fmt: skip
    (monitor,) = [d for d in rendered if d["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    services = [d for d in rendered if d["kind"] == "Service"]
    selected = [
        s for s in services
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]  # fmt: skip
    assert [s["metadata"]["name"] for s in selected] == ["t-ferry-metrics"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in selected[0]["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == (
        "/metrics",
        "30s",
        "5s",
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mon"]}


def test_install_md_values_render_and_pass_server_side_validation(
    kube: Kube, release_ns: str, tmp_path: Path
) -> None:
    """docs/install.md's values file for an existing S3 store, as the page shows it."""
    text = (ROOT / "docs" / "install.md").read_text()
    (block,) = re.findall(r"^```yaml\n(# chart values:.*?)^```", text, re.S | re.M)
    values = tmp_path / "ferry-values.yaml"
    values.write_text(block)
    for ns in yaml.safe_load(block)["watchNamespaces"]:
        kube.run("create", "namespace", ns, check=False)
    rendered = _documents(
        helm(kube, "template", "ferry", str(CHART), "-n", release_ns, "-f", str(values)).stdout
    )
    (monitor,) = [d for d in rendered if d["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.org/ferry/tools:0.1.0"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FERRY_DEFAULT_S3_BUCKET"] == "my-group-results"
    # The apiserver has no ServiceMonitor CRD: everything else is validated strictly.
    others = [d for d in rendered if d["kind"] != "ServiceMonitor"]
    proc = kube.run(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-",
        stdin=yaml.safe_dump_all(others), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_service_monitor_needs_the_metrics_service(kube: Kube) -> None:
    proc = helm(
        kube, "template", "t", str(CHART), "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.service.enabled=false", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in proc.stderr
    proc = helm(
        kube, "template", "t", str(CHART), "--set", "metrics.serviceMonitor.interval=soon",
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "serviceMonitor/interval" in proc.stderr


def _owned(kube: Kube, release: str, namespace: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={release}"
    names = []
    for kinds, ns_args in (
        (
            "deployments,services,serviceaccounts,secrets,persistentvolumeclaims,roles,rolebindings",
            ["-n", namespace],
        ),
        ("clusterroles,clusterrolebindings", []),
    ):
        out = kube.run("get", kinds, *ns_args, "-l", selector, "-o", "name").stdout
        names += [line for line in out.splitlines() if line]
    return names


def test_install_upgrade_uninstall_leave_no_orphans(kube: Kube, release_ns: str) -> None:
    release = f"r{uuid.uuid4().hex[:6]}"
    helm(
        kube,
        "install",
        release,
        str(CHART),
        "--namespace",
        release_ns,
        "--set",
        "minio.enabled=true",
        "--skip-crds",
    )
    installed = _owned(kube, release, release_ns)
    assert any(n.startswith("deployment.apps/") for n in installed)
    assert any("clusterrole.rbac.authorization.k8s.io/" in n for n in installed)
    helm(
        kube,
        "upgrade",
        release,
        str(CHART),
        "--namespace",
        release_ns,
        "--set",
        "minio.enabled=false",
        "--set",
        "operator.workers=4",
    )
    # The MinIO PVC lingers (Terminating) until its pod is gone.
    kube.wait_for(
        lambda: not [n for n in _owned(kube, release, release_ns) if "minio" in n],
        timeout=90,
        what="MinIO objects removed by the upgrade",
    )
    deployment = kube.get("deployment", f"{release}-ferry", release_ns)
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["FERRY_WORKERS"] == "4"
    helm(kube, "uninstall", release, "--namespace", release_ns, "--wait")
    assert _owned(kube, release, release_ns) == []


def test_operator_service_account_is_least_privilege(kube: Kube, release_ns: str) -> None:
    release = f"r{uuid.uuid4().hex[:6]}"
    helm(kube, "install", release, str(CHART), "--namespace", release_ns, "--skip-crds")
    sa = f"system:serviceaccount:{release_ns}:{release}-ferry"
    try:
        table = kube.run("auth", "can-i", "--list", f"--as={sa}", "-n", release_ns).stdout
        print(table)
        rows = {line.split()[0]: line for line in table.splitlines()[1:] if line.strip()}
        assert "jobs.ferry.dev" in rows
        assert "pods" in rows
        assert not [r for r in rows if r.startswith("secrets")], (
            "the operator must not read Secrets"
        )
        assert "*.*" not in rows
        # MPIJobs (their CRD need not be installed, so `can-i` for them is read from the list).
        assert rows["mpijobs.kubeflow.org"].split()[-4:] == ["[get", "list", "create", "delete]"]
        assert rows["jobs.batch"].split()[-1] == "[get]"
        for verb, resource, allowed in [
            ("get", "secrets", "no"),
            ("list", "secrets", "no"),
            ("create", "pods", "yes"),
            ("delete", "pods", "yes"),
            ("update", "jobs.ferry.dev --subresource=status", "yes"),
            ("patch", "jobs.ferry.dev --subresource=status", "no"),
            ("list", "namespaces", "no"),
            ("create", "jobs.batch", "no"),
            ("create", "leases.coordination.k8s.io", "yes"),
            ("update", "jobs.ferry.dev", "no"),
            ("create", "deployments.apps", "no"),
            ("get", "nodes", "no"),
            ("create", "pods --subresource=exec", "no"),
            ("get", "pods --subresource=log", "no"),
        ]:
            answer = kube.run(
                "auth",
                "can-i",
                verb,
                *resource.split(),
                f"--as={sa}",
                "-n",
                release_ns,
                check=False,
            )
            assert answer.stdout.strip() == allowed, f"{verb} {resource}: {answer.stdout}"
    finally:
        helm(kube, "uninstall", release, "--namespace", release_ns, "--wait")


def test_restricted_namespace_admits_every_pod_ferry_creates(
    kube: Kube, operator: OperatorProcess
) -> None:
    """Pods are refused at admission when they break the standard, so a Job that gets through
    staging, running and archiving in an enforcing namespace proves every pod complied."""
    ns = f"restricted-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", ns)
    kube.run(
        "label",
        "namespace",
        ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    try:
        kube.wait_for(
            lambda: (
                kube.run("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0
            ),
            what="default ServiceAccount",
        )
        app = {
            "apiVersion": "ferry.dev/v1alpha1",
            "kind": "App",
            "metadata": {"name": "psa"},
            "spec": {
                "image": "example.org/psa:1",
                "command": ["run"],
                "inputs": [{"name": "data", "required": True}],
            },
        }
        job = {
            "apiVersion": "ferry.dev/v1alpha1",
            "kind": "Job",
            "metadata": {"name": "psa-1", "annotations": {"sim.ferry.dev/duration": "1s"}},
            "spec": {
                "appRef": {"name": "psa"},
                "inputs": [{"name": "data", "source": {"inline": "x"}}],
            },
        }
        kube.run(
            "apply",
            "-n",
            ns,
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [app, job]}),
        )
        kube.run("wait", "--for=condition=Ready", "fjob/psa-1", "-n", ns, "--timeout=90s")
        events = kube.run("get", "events", "-n", ns, "-o", "json").stdout
        assert "violates PodSecurity" not in events
        history = [h["state"] for h in kube.get("fjob", "psa-1", ns)["status"]["history"]]
        assert "Archiving" in history  # the archive pod was admitted and ran too
    finally:
        kube.run("delete", "namespace", ns, "--wait=false", check=False)


def test_chart_crds_are_the_generated_ones() -> None:
    for name in ("ferry.dev_apps.yaml", "ferry.dev_jobs.yaml"):
        assert (CHART / "crds" / name).read_text() == (ROOT / "crds" / name).read_text()


def test_argocd_health_check_ships_in_the_chart() -> None:
    assert (CHART / "health" / "argocd-job.lua").is_file()
    assert (CHART / "health" / "argocd-app.lua").is_file()
    assert Path(CHART / "values.schema.json").is_file()
