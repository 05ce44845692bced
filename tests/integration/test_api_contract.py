"""The API contract on a real kube-apiserver: the CRDs install, good manifests are accepted,
kubectl shows and explains them, and malformed ones are refused with the field path."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, Kube

pytestmark = pytest.mark.integration

DESIGN_APP = yaml.safe_load(
    """
apiVersion: ferry.dev/v1alpha1
kind: App
metadata: {name: opensees}
spec:
  version: "3.5.0"
  description: OpenSees structural analysis
  image: registry.example.org/opensees:3.5.0
  command: ["OpenSees"]
  args: ["{{inputs.model}}", "--steps", "{{params.steps}}"]
  env: [{name: OMP_NUM_THREADS, value: "{{params.threads}}"}]
  parameters:
    - {name: steps, type: integer, default: 100, minimum: 1, maximum: 1000000}
    - {name: solver, type: string, enum: [direct, iterative], required: true}
    - {name: threads, type: integer, default: 1}
  inputs:
    - {name: model, required: true, description: Tcl model file}
  outputs: {include: ["results/**", "*.out"], exclude: ["tmp/**"]}
  resources: {cpu: "2", memory: 4Gi, gpu: 0}
  runtime: {type: Pod}
  maxRunSeconds: 3600
"""
)

DESIGN_JOB = yaml.safe_load(
    """
apiVersion: ferry.dev/v1alpha1
kind: Job
metadata: {name: frame-001, labels: {project: bridge}}
spec:
  appRef: {name: opensees}
  parameters: {steps: 500, solver: direct}
  inputs:
    - name: model
      source:
        s3: {bucket: models, key: frame.tcl}
  resources: {cpu: "4", memory: 8Gi, gpu: 1}
  parents: [mesh-001]
  maxRunSeconds: 1800
  retry: {appFailures: 0, infraFailures: 3}
  archive:
    s3: {bucket: results, prefix: bridge/}
    include: ["**"]
    onFailure: true
  workspace: {size: 1Gi, storageClassName: standard}
  suspend: true
  cancel: false
  ttlSecondsAfterFinished: 86400
"""
)


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `base` with the dotted `path` set to `value` (None deletes)."""
    obj = copy.deepcopy(base)
    keys = path.split(".")
    node = obj
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = keys[-1]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return obj


def _job(**spec: Any) -> dict[str, Any]:
    base = {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "bad"},
        "spec": {"appRef": {"name": "opensees"}},
    }
    base["spec"].update(spec)
    return base


def _app(**spec: Any) -> dict[str, Any]:
    base = {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "App",
        "metadata": {"name": "bad-app"},
        "spec": {"image": "example.org/app:1"},
    }
    base["spec"].update(spec)
    return base


# (id, manifest, text that must appear in the apiserver's refusal)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("job-without-appRef", _with(_job(), "spec.appRef", None), "spec.appRef: Required value"),
    ("app-without-image", _with(_app(), "spec.image", None), "spec.image: Required value"),
    ("appRef-name-wrong-type", _job(appRef={"name": 5}), "spec.appRef.name: Invalid value"),
    (
        "too-many-parameters",
        _job(parameters={f"p{i}": i for i in range(65)}),
        "spec.parameters: Too many: 65: must have at most 64 items",
    ),
    (
        "env-name-invalid",
        _app(env=[{"name": "A=B", "value": "x"}]),
        "spec.env[0].name: Invalid value",
    ),
    (
        "unknown-parameter-type",
        _app(parameters=[{"name": "x", "type": "float"}]),
        'spec.parameters[0].type: Unsupported value: "float"',
    ),
    (
        "unknown-runtime",
        _app(runtime={"type": "Slurm"}),
        'spec.runtime.type: Unsupported value: "Slurm"',
    ),
    (
        "two-input-sources",
        _job(inputs=[{"name": "m", "source": {"inline": "x", "http": {"url": "https://e.org/f"}}}]),
        "spec.inputs[0].source: Invalid value",
    ),
    (
        "no-input-source",
        _job(inputs=[{"name": "m", "source": {}}]),
        "spec.inputs[0].source: Invalid value",
    ),
    (
        "s3-key-and-prefix",
        _job(
            inputs=[{"name": "m", "source": {"s3": {"bucket": "abc", "key": "k", "prefix": "p/"}}}]
        ),
        "spec.inputs[0].source.s3: Invalid value",
    ),
    (
        "too-many-inputs",
        _job(inputs=[{"name": f"i{i}", "source": {"inline": "x"}} for i in range(33)]),
        "spec.inputs: Too many: 33: must have at most 32 items",
    ),
    ("duplicate-parents", _job(parents=["a", "a"]), "spec.parents[1]: Duplicate value"),
    ("own-parent", _job(parents=["a", "bad"]), "a Job cannot be its own parent"),
    (
        "duplicate-parameter-names",
        _app(parameters=[{"name": "x"}, {"name": "x"}]),
        "spec.parameters[1]: Duplicate value",
    ),
    ("negative-maxRunSeconds", _job(maxRunSeconds=-5), "spec.maxRunSeconds: Invalid value: -5"),
    (
        "negative-ttl",
        _job(ttlSecondsAfterFinished=-1),
        "spec.ttlSecondsAfterFinished: Invalid value: -1",
    ),
    (
        "bad-cpu-quantity",
        _job(resources={"cpu": "lots"}),
        'spec.resources.cpu: Invalid value: "lots"',
    ),
    ("too-many-gpus", _job(resources={"gpu": 1000}), "spec.resources.gpu: Invalid value: 1000"),
    (
        "http-url-without-scheme",
        _job(inputs=[{"name": "m", "source": {"http": {"url": "example.org/f"}}}]),
        "spec.inputs[0].source.http.url: Invalid value",
    ),
    (
        "bad-sha256",
        _job(
            inputs=[{"name": "m", "source": {"http": {"url": "https://e.org/f", "sha256": "xyz"}}}]
        ),
        "spec.inputs[0].source.http.sha256: Invalid value",
    ),
    (
        "input-name-uppercase",
        _job(inputs=[{"name": "Model", "source": {"inline": "x"}}]),
        "spec.inputs[0].name: Invalid value",
    ),
    (
        "pvc-path-escapes",
        _job(
            inputs=[{"name": "m", "source": {"pvc": {"claimName": "d", "path": "../etc/passwd"}}}]
        ),
        "spec.inputs[0].source.pvc.path: Invalid value",
    ),
    (
        "mpi-settings-on-pod-runtime",
        _app(runtime={"type": "Pod", "mpi": {"workers": 2}}),
        "spec.runtime: Invalid value",
    ),
    (
        "minimum-above-maximum",
        _app(parameters=[{"name": "x", "type": "integer", "minimum": 5, "maximum": 1}]),
        "spec.parameters[0]: Invalid value",
    ),
    ("oversized-args", _app(args=["x"] * 257), "spec.args: Too many: 257"),
    (
        "job-name-too-long",
        _with(_job(), "metadata.name", "j" * 53),
        "a Job name must be at most 52 characters",
    ),
    ("unknown-field-strict", _job(colour="blue"), 'unknown field "spec.colour"'),
]


def test_crds_are_established(kube: Kube) -> None:
    for crd in ("apps.ferry.dev", "jobs.ferry.dev"):
        obj = kube.get("crd", crd, "default")
        conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"


def test_design_examples_apply_and_show(kube: Kube, namespace: str) -> None:
    kube.apply(DESIGN_APP, "-n", namespace)
    kube.apply(DESIGN_JOB, "-n", namespace)
    job = kube.get("fjob", "frame-001", namespace)
    assert job["spec"]["parameters"] == {"steps": 500, "solver": "direct"}
    # Defaults from the schema are filled in by the apiserver.
    assert job["spec"]["inputs"][0]["source"]["s3"]["key"] == "frame.tcl"
    table = kube.run("get", "fjob", "-n", namespace).stdout
    assert table.split("\n")[0].split() == ["NAME", "STATE", "APP", "ATTEMPT", "AGE", "RUNTIME"]
    assert "frame-001" in table
    assert "opensees" in table
    wide = kube.run("get", "fjob", "-n", namespace, "-o", "wide").stdout
    assert "REASON" in wide.split("\n")[0]
    apps = kube.run("get", "fapp", "-n", namespace).stdout
    assert apps.split("\n")[0].split() == ["NAME", "VERSION", "IMAGE", "READY", "AGE"]
    assert "3.5.0" in apps
    both = kube.run("get", "ferry", "-n", namespace).stdout
    assert "app.ferry.dev/opensees" in both
    assert "job.ferry.dev/frame-001" in both


def explain(kube: Kube, what: str) -> str:
    """`kubectl explain what`, once the apiserver publishes the CRDs' OpenAPI (it lags the
    CRD's Established condition by a few seconds)."""
    proc = kube.wait_for(
        lambda: p if (p := kube.run("explain", what, check=False)).returncode == 0 else None,
        timeout=60,
        what=f"kubectl explain {what}",
    )
    return str(proc.stdout)


def test_kubectl_explain_teaches(kube: Kube) -> None:
    spec = explain(kube, "fjob.spec")
    for field in (
        "appRef",
        "parameters",
        "inputs",
        "maxRunSeconds",
        "retry",
        "archive",
        "suspend",
        "cancel",
    ):
        assert field in spec
    retry = explain(kube, "fjob.spec.retry")
    assert "appFailures" in retry
    assert "infraFailures" in retry
    assert "eviction" in retry  # the description says what counts as an infrastructure failure
    app = explain(kube, "fapp.spec.args")
    assert "{{params.X}}" in app


def _described(kind_file: str, path: str) -> str:
    """The description the committed CRD gives the field at `path` (dots; lists see through)."""
    crd = yaml.safe_load((ROOT / "crds" / kind_file).read_text())
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in path.split("."):
        while "items" in node:
            node = node["items"]
        node = node["properties"][part]
    return str(node["description"])


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        ("fjob", "spec.appRef.name"),
        ("fjob", "spec.inputs.source.s3.bucket"),
        ("fjob", "spec.inputs.source.http.url"),
        ("fjob", "spec.inputs.source.pvc.claimName"),
        ("fjob", "spec.workspace.size"),
        ("fjob", "status.state"),
        ("fjob", "status.history.reason"),
        ("fjob", "status.conditions.lastTransitionTime"),
        ("fapp", "spec.runtime.mpi.workers"),
        ("fapp", "status.conditions"),
    ],
)
def test_kubectl_explain_prints_the_field_description(kube: Kube, resource: str, path: str) -> None:
    """What tests/unit/test_crd_descriptions.py checks in the files, the apiserver serves."""
    kind_file = "ferry.dev_jobs.yaml" if resource == "fjob" else "ferry.dev_apps.yaml"
    expected = " ".join(_described(kind_file, path).split())
    out = explain(kube, f"{resource}.{path}")
    assert expected in " ".join(out.split()), out


@pytest.mark.parametrize(
    ("manifest", "expected"), [(m, e) for _, m, e in REFUSED], ids=[i for i, _, _ in REFUSED]
)
def test_malformed_manifest_is_refused(
    kube: Kube, namespace: str, manifest: dict[str, Any], expected: str
) -> None:
    proc = kube.run(
        "apply",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps(manifest),
        check=False,
    )
    assert proc.returncode != 0, f"accepted: {manifest}"
    assert expected in proc.stderr, proc.stderr


IMMUTABLE_CHANGES = [
    ("appRef", "spec.appRef", {"name": "other"}, "appRef is immutable after creation"),
    (
        "parameters",
        "spec.parameters",
        {"steps": 7, "solver": "direct"},
        "parameters is immutable after creation",
    ),
    ("parents", "spec.parents", ["mesh-002"], "parents is immutable after creation"),
    (
        "inputs",
        "spec.inputs",
        [{"name": "model", "source": {"inline": "x"}}],
        "inputs is immutable after creation",
    ),
    ("retry-removed", "spec.retry", None, "retry cannot be added or removed after creation"),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [c[1:] for c in IMMUTABLE_CHANGES],
    ids=[c[0] for c in IMMUTABLE_CHANGES],
)
def test_immutable_fields_refuse_changes(
    kube: Kube, namespace: str, path: str, value: Any, expected: str
) -> None:
    kube.create(DESIGN_JOB, "-n", namespace)
    changed = _with(kube.get("fjob", "frame-001", namespace), path, value)
    proc = kube.run("replace", "-n", namespace, "-f", "-", stdin=json.dumps(changed), check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr, proc.stderr


def test_mutable_fields_accept_changes(kube: Kube, namespace: str) -> None:
    kube.create(DESIGN_JOB, "-n", namespace)
    patch = {
        "spec": {
            "suspend": False,
            "cancel": True,
            "maxRunSeconds": 7200,
            "ttlSecondsAfterFinished": 60,
        }
    }
    kube.run("patch", "fjob", "frame-001", "-n", namespace, "--type=merge", "-p", json.dumps(patch))
    spec = kube.get("fjob", "frame-001", namespace)["spec"]
    assert (
        spec["suspend"],
        spec["cancel"],
        spec["maxRunSeconds"],
        spec["ttlSecondsAfterFinished"],
    ) == (False, True, 7200, 60)
