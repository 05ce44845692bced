"""The API models refuse bad manifests with the field's path, and accept DESIGN.md's examples."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ferry.api import App, Job, JobSpec, State
from ferry.api.app import AppSpec, ParameterType
from ferry.api.common import Condition, ConditionStatus
from ferry.api.job import TERMINAL_STATES, JobStatus

from .factories import app_dict, job_dict

pytestmark = pytest.mark.unit

DESIGN_APP = """
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

DESIGN_JOB = """
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
  suspend: false
  cancel: false
  ttlSecondsAfterFinished: 86400
"""

OTHER_SOURCES = [
    {"http": {"url": "https://example.org/a.tcl", "sha256": "ab" * 32}},
    {"pvc": {"claimName": "data", "path": "models/frame.tcl"}},
    {"configMap": {"name": "cfg", "key": "frame.tcl"}},
    {"inline": "small text"},
    {"s3": {"bucket": "models", "prefix": "meshes/", "endpoint": "https://s3.example.org:9000"}},
]


def locs(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


def errors_text(exc: ValidationError) -> str:
    return str(exc)


# --------------------------------------------------------------------------- the examples


def test_design_app_parses_and_round_trips() -> None:
    raw = yaml.safe_load(DESIGN_APP)
    app = App.model_validate(raw)
    assert app.spec.image == "registry.example.org/opensees:3.5.0"
    assert [p.name for p in app.spec.parameters] == ["steps", "solver", "threads"]
    assert app.spec.parameters[0].type == ParameterType.INTEGER
    assert app.spec.parameters[1].enum == ["direct", "iterative"]
    assert app.spec.parameters[1].required is True
    assert app.spec.runtime.type == "Pod"
    assert app.spec.max_run_seconds == 3600
    assert app.spec.outputs.exclude == ["tmp/**"]
    wire = app.wire()
    assert wire["spec"]["maxRunSeconds"] == 3600  # camelCase on the wire
    assert "max_run_seconds" not in wire["spec"]
    assert App.model_validate(wire) == app
    assert App.model_validate(yaml.safe_load(yaml.safe_dump(wire))) == app


def test_design_job_parses_and_round_trips() -> None:
    job = Job.model_validate(yaml.safe_load(DESIGN_JOB))
    spec = job.spec
    assert spec.app_ref.name == "opensees"
    assert spec.parameters == {"steps": 500, "solver": "direct"}
    assert isinstance(spec.parameters["steps"], int)
    assert spec.inputs[0].source.kind == "s3"
    assert spec.inputs[0].source.s3 is not None
    assert spec.inputs[0].source.s3.key == "frame.tcl"
    assert spec.resources is not None
    assert spec.resources.gpu == 1
    assert spec.parents == ["mesh-001"]
    assert spec.archive is not None
    assert spec.archive.s3 is not None
    assert (spec.archive.s3.bucket, spec.archive.s3.prefix) == ("results", "bridge/")
    assert spec.workspace is not None
    assert spec.workspace.storage_class_name == "standard"
    assert spec.ttl_seconds_after_finished == 86400
    wire = job.wire()
    assert wire["spec"]["archive"]["onFailure"] is True
    assert wire["spec"]["ttlSecondsAfterFinished"] == 86400
    assert Job.model_validate(wire) == job
    assert Job.model_validate(yaml.safe_load(yaml.safe_dump(wire))) == job


@pytest.mark.parametrize("source", OTHER_SOURCES, ids=lambda s: next(iter(s)))
def test_each_input_source_kind_parses(source: dict[str, Any]) -> None:
    spec = JobSpec.model_validate(job_dict(inputs=[{"name": "model", "source": source}]))
    kind = next(iter(source))
    assert spec.inputs[0].source.kind == kind
    assert JobSpec.model_validate(spec.wire()) == spec


def test_defaults() -> None:
    spec = JobSpec.model_validate({"appRef": {"name": "a"}})
    assert spec.effective_retry.app_failures == 0
    assert spec.effective_retry.infra_failures == 3
    assert (spec.suspend, spec.cancel) == (False, False)
    app = AppSpec.model_validate({"image": "busybox"})
    assert app.outputs.include == ["**"]
    assert app.runtime.type == "Pod"
    assert app.inputs == []


def test_terminal_states() -> None:
    assert {State.FINISHED, State.FAILED, State.TIMED_OUT, State.CANCELLED} == TERMINAL_STATES
    assert all(s.terminal == (s in TERMINAL_STATES) for s in State)


# --------------------------------------------------------------------------- refusals


def set_path(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


APP_BAD: list[tuple[str, Any, str]] = [
    ("image", 42, "image"),
    ("image", "", "image"),
    ("image", "has space:1", "image"),
    ("parameters.0.type", "complex", "parameters.0.type"),
    ("parameters.0.name", "", "parameters.0.name"),
    ("parameters.0.name", "bad-name", "parameters.0.name"),
    ("parameters.0.name", "1st", "parameters.0.name"),
    ("parameters.0.required", "maybe", "parameters.0.required"),
    ("parameters.0.minimum", "low", "parameters.0.minimum"),
    ("parameters.0.pattern", "x" * 257, "parameters.0.pattern"),
    ("parameters.0.description", "x" * 257, "parameters.0.description"),
    ("runtime.type", "Slurm", "runtime.type"),
    ("runtime.mpi", {"workers": 0}, "runtime.mpi.workers"),
    ("inputs.0.name", "Model", "inputs.0.name"),
    ("inputs.0.name", "", "inputs.0.name"),
    ("inputs.0.name", "a" * 64, "inputs.0.name"),
    ("resources.cpu", "lots", "resources.cpu"),
    ("resources.memory", "-1Gi", "resources.memory"),
    ("resources.gpu", -1, "resources.gpu"),
    ("resources.gpu", 65, "resources.gpu"),
    ("maxRunSeconds", -5, "maxRunSeconds"),
    ("maxRunSeconds", 0, "maxRunSeconds"),
    ("maxRunSeconds", "soon", "maxRunSeconds"),
    ("args", "not-a-list", "args"),
    ("args", ["x" * 4097], "args.0"),
    ("env.0.name", "BAD NAME", "env.0.name"),
    ("outputs.include", [""], "outputs.include.0"),
    ("version", "v" * 65, "version"),
    ("colour", "blue", "colour"),
    ("parameters.0.colour", "blue", "parameters.0.colour"),
    ("resources.tpu", 1, "resources.tpu"),
]


@pytest.mark.parametrize(
    ("path", "value", "loc"), APP_BAD, ids=[f"{p}={v!r}"[:40] for p, v, _ in APP_BAD]
)
def test_bad_app_spec_is_refused_naming_the_field(path: str, value: Any, loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        AppSpec.model_validate(set_path(app_dict(), path, value))
    assert any(where.startswith(loc) for where in locs(info.value)), locs(info.value)


JOB_BAD: list[tuple[str, Any, str]] = [
    ("appRef", {}, "appRef.name"),
    ("appRef.name", "", "appRef.name"),
    ("appRef.name", "Not_A_Name", "appRef.name"),
    ("appRef.name", "a" * 254, "appRef.name"),
    ("appRef.namespace", "other", "appRef.namespace"),
    ("parameters", {"bad-key": 1}, "parameters"),
    ("parameters", {"steps": [1, 2]}, "parameters.steps"),
    ("parameters", {"steps": None}, "parameters.steps"),
    ("inputs.0.name", "", "inputs.0.name"),
    ("inputs.0.name", "in put", "inputs.0.name"),
    ("inputs.0.source", {}, "inputs.0.source"),
    (
        "inputs.0.source",
        {"inline": "x", "configMap": {"name": "cfg", "key": "k"}},
        "inputs.0.source",
    ),
    ("inputs.0.source", {"s3": {"bucket": "models"}}, "inputs.0.source.s3"),
    (
        "inputs.0.source",
        {"s3": {"bucket": "models", "key": "a", "prefix": "b/"}},
        "inputs.0.source.s3",
    ),
    ("inputs.0.source", {"s3": {"bucket": "M", "key": "a"}}, "inputs.0.source.s3.bucket"),
    (
        "inputs.0.source",
        {"s3": {"bucket": "models", "key": "a", "endpoint": "s3.example.org"}},
        "inputs.0.source.s3.endpoint",
    ),
    (  # user info in an endpoint
        "inputs.0.source",
        {"s3": {"bucket": "models", "key": "a", "endpoint": "http://u:p@s3.example.org"}},
        "inputs.0.source.s3.endpoint",
    ),
    (  # an endpoint has no path
        "inputs.0.source",
        {"s3": {"bucket": "models", "key": "a", "endpoint": "http://s3.example.org/x"}},
        "inputs.0.source.s3.endpoint",
    ),
    (  # nor another scheme
        "inputs.0.source",
        {"s3": {"bucket": "models", "key": "a", "endpoint": "file://s3.example.org"}},
        "inputs.0.source.s3.endpoint",
    ),
    (  # the credential keys are fixed: no other key of a Secret becomes a request header
        "inputs.0.source",
        {"s3": {"bucket": "b3", "key": "a", "secretRef": {"name": "x", "accessKeyKey": "token"}}},
        "inputs.0.source.s3.secretRef.accessKeyKey",
    ),
    (
        "inputs.0.source",
        {"s3": {"bucket": "b3", "key": "a", "secretRef": {"name": "x", "secretKeyKey": "pw"}}},
        "inputs.0.source.s3.secretRef.secretKeyKey",
    ),
    ("inputs.0.source", {"http": {"url": "example.org/a"}}, "inputs.0.source.http.url"),
    ("inputs.0.source", {"http": {"url": "ftp://example.org/a"}}, "inputs.0.source.http.url"),
    (
        "inputs.0.source",
        {"http": {"url": "https://example.org/a", "sha256": "abc"}},
        "inputs.0.source.http.sha256",
    ),
    (
        "inputs.0.source",
        {"http": {"url": "https://example.org/a", "sha256": "g" * 64}},
        "inputs.0.source.http.sha256",
    ),
    ("inputs.0.source", {"inline": "x" * 65537}, "inputs.0.source.inline"),
    ("inputs.0.source", {"pvc": {"claimName": "data"}}, "inputs.0.source.pvc.path"),
    ("inputs.0.source", {"ftp": {"url": "ftp://x"}}, "inputs.0.source.ftp"),
    ("parents", ["Bad_Parent"], "parents.0"),
    ("parents", [""], "parents.0"),
    ("maxRunSeconds", -1, "maxRunSeconds"),
    ("maxRunSeconds", 30 * 24 * 3600 + 1, "maxRunSeconds"),
    ("ttlSecondsAfterFinished", -1, "ttlSecondsAfterFinished"),
    ("retry", {"appFailures": -1}, "retry.appFailures"),
    ("retry", {"infraFailures": 21}, "retry.infraFailures"),
    ("retry", {"app": 1}, "retry.app"),
    ("resources", {"cpu": "lots"}, "resources.cpu"),
    ("resources", {"memory": "4 Gi"}, "resources.memory"),
    ("workspace", {"size": "big"}, "workspace.size"),
    ("archive", {"onFailure": "sometimes"}, "archive.onFailure"),
    ("archive", {"include": ["x"] * 65}, "archive.include"),
    ("archive", {"s3": {"bucket": "results", "key": "x"}}, "archive.s3.key"),
    ("suspend", "yes please", "suspend"),
    ("cancel", [], "cancel"),
    ("priority", 5, "priority"),
]


@pytest.mark.parametrize(
    ("path", "value", "loc"), JOB_BAD, ids=[f"{p}={v!r}"[:40] for p, v, _ in JOB_BAD]
)
def test_bad_job_spec_is_refused_naming_the_field(path: str, value: Any, loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(set_path(job_dict(), path, value))
    assert any(where.startswith(loc) for where in locs(info.value)), locs(info.value)


def test_zero_and_two_sources_say_exactly_one() -> None:
    for source in ({}, {"inline": "a", "http": {"url": "https://example.org/x"}}):
        with pytest.raises(ValidationError, match="exactly one of s3, http, pvc, configMap"):
            JobSpec.model_validate(job_dict(inputs=[{"name": "model", "source": source}]))


def test_s3_key_and_prefix_say_exactly_one() -> None:
    source = {"s3": {"bucket": "models", "key": "a", "prefix": "b/"}}
    with pytest.raises(ValidationError, match="exactly one of key or prefix"):
        JobSpec.model_validate(job_dict(inputs=[{"name": "model", "source": source}]))


def test_app_missing_image_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        AppSpec.model_validate({"version": "1"})
    assert "image" in locs(info.value)


def test_job_missing_app_ref_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({})
    assert "appRef" in locs(info.value)


@pytest.mark.parametrize(
    ("field", "count", "loc"),
    [
        ("parameters", 65, "parameters"),
        ("inputs", 33, "inputs"),
        ("env", 65, "env"),
        ("args", 257, "args"),
        ("command", 65, "command"),
    ],
)
def test_oversized_app_lists_are_refused(field: str, count: int, loc: str) -> None:
    items: list[Any]
    if field == "parameters":
        items = [{"name": f"p{i}"} for i in range(count)]
    elif field == "inputs":
        items = [{"name": f"in{i}"} for i in range(count)]
    elif field == "env":
        items = [{"name": f"E{i}", "value": ""} for i in range(count)]
    else:
        items = ["x"] * count
    with pytest.raises(ValidationError) as info:
        AppSpec.model_validate(app_dict(**({"args": [], "env": []} | {field: items})))
    assert loc in locs(info.value)
    assert "at most" in errors_text(info.value)


def test_largest_allowed_lists_are_accepted() -> None:
    AppSpec.model_validate(
        app_dict(
            parameters=[{"name": f"p{i}"} for i in range(64)],
            inputs=[{"name": f"in{i}"} for i in range(32)],
            args=[],
            env=[],
        )
    )


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("parameters", {f"p{i}": i for i in range(65)}, "parameters"),
        (
            "inputs",
            [{"name": f"in{i}", "source": {"inline": "x"}} for i in range(33)],
            "inputs",
        ),
        ("parents", [f"job-{i}" for i in range(33)], "parents"),
    ],
)
def test_oversized_job_lists_are_refused(field: str, value: Any, loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(job_dict(**{field: value}))
    assert loc in locs(info.value)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (app_dict(parameters=[{"name": "a"}, {"name": "b"}, {"name": "a"}]), "spec.parameters"),
        (app_dict(inputs=[{"name": "model"}, {"name": "model"}]), "spec.inputs"),
        (app_dict(env=[{"name": "X"}, {"name": "X"}]), "spec.env"),
    ],
    ids=["parameters", "inputs", "env"],
)
def test_duplicate_app_names_are_refused(doc: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        AppSpec.model_validate(doc)
    assert needle in errors_text(info.value)
    assert "duplicate" in errors_text(info.value)


def test_duplicate_job_inputs_and_parents_are_refused() -> None:
    dup_inputs = [{"name": "model", "source": {"inline": str(i)}} for i in range(2)]
    with pytest.raises(ValidationError, match=r"spec\.inputs: duplicate name\(s\) model"):
        JobSpec.model_validate(job_dict(inputs=dup_inputs))
    with pytest.raises(ValidationError, match=r"spec\.parents"):
        JobSpec.model_validate(job_dict(parents=["a", "a"]))


def test_unknown_top_level_fields_are_refused() -> None:
    raw = yaml.safe_load(DESIGN_JOB)
    raw["extra"] = 1
    with pytest.raises(ValidationError) as info:
        Job.model_validate(raw)
    assert "extra" in locs(info.value)


def test_status_state_must_be_known() -> None:
    with pytest.raises(ValidationError) as info:
        JobStatus.model_validate({"state": "Exploded"})
    assert "state" in locs(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("reason", "has space"), ("reason", ""), ("type", "1bad"), ("status", "Maybe")],
)
def test_condition_shape_is_enforced(field: str, value: str) -> None:
    raw = {
        "type": "Ready",
        "status": "True",
        "reason": "Done",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    raw[field] = value
    with pytest.raises(ValidationError) as info:
        Condition.model_validate(raw)
    assert field in locs(info.value)


def test_condition_accepts_the_wire_form() -> None:
    c = Condition.model_validate(
        {
            "type": "Ready",
            "status": "True",
            "reason": "Done",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    )
    assert c.status == ConditionStatus.TRUE
    assert c.wire()["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_integer_values_stay_integers_and_floats_floats() -> None:
    spec = JobSpec.model_validate(job_dict(parameters={"a": 5, "b": 5.0, "c": True, "d": "5"}))
    assert [type(v) for v in spec.parameters.values()] == [int, float, bool, str]
