"""The CRDs generated from ferry.api: committed copies current, schemas structural."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry import crdgen
from ferry.api.job import MAX_JOB_NAME

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CRDS = {"App": crdgen.app_crd(), "Job": crdgen.job_crd()}


def schema(kind: str) -> dict[str, Any]:
    (version,) = CRDS[kind]["spec"]["versions"]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path or "<root>", node
    for name, child in (node.get("properties") or {}).items():
        yield from schema_nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from schema_nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}{{}}")


def all_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from all_keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_keys(value)


def rules(node: dict[str, Any]) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


# --------------------------------------------------------------------------- committed files


def test_committed_crds_match_the_generated_ones() -> None:
    files = crdgen.generated_files(ROOT)
    assert {p.relative_to(ROOT).as_posix() for p in files} == {
        "crds/ferry.dev_apps.yaml",
        "crds/ferry.dev_jobs.yaml",
        "charts/ferry/crds/ferry.dev_apps.yaml",
        "charts/ferry/crds/ferry.dev_jobs.yaml",
        "charts/ferry/values.schema.json",
        "charts/ferry/README.md",
    }
    stale = [
        str(p.relative_to(ROOT))
        for p, text in files.items()
        if not p.exists() or p.read_text() != text
    ]
    assert stale == [], f"out of date, run `python -m ferry.crdgen`: {stale}"


def _hand_written_parts(root: Path) -> None:
    """What generation starts from: values.schema.json and README.md (generated in part) and
    values.yaml (the table's defaults)."""
    chart = root / "charts" / "ferry"
    chart.mkdir(parents=True, exist_ok=True)
    for name in ("values.schema.json", "README.md", "values.yaml"):
        (chart / name).write_text((ROOT / "charts" / "ferry" / name).read_text())


def test_check_mode_fails_on_a_difference(tmp_path: Path) -> None:
    # values.schema.json and README.md are generated in part: the rest must be there.
    assert crdgen.main(["--root", str(tmp_path)]) == 1
    _hand_written_parts(tmp_path)
    assert crdgen.main(["--root", str(tmp_path)]) == 0  # writes
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 0
    target = tmp_path / "charts" / "ferry" / "crds" / "ferry.dev_jobs.yaml"
    target.write_text(target.read_text() + "# edited\n")
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1
    target.unlink()
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1


def test_check_mode_covers_the_values_schema(tmp_path: Path) -> None:
    _hand_written_parts(tmp_path)
    values_schema = tmp_path / "charts" / "ferry" / "values.schema.json"
    committed = (ROOT / "charts" / "ferry" / "values.schema.json").read_text()
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 0
    # A hand edit of the operator section...
    document = json.loads(committed)
    document["properties"]["operator"]["properties"]["workers"]["maximum"] = 128
    values_schema.write_text(json.dumps(document, indent=2) + "\n")
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert crdgen.main(["--root", str(tmp_path)]) == 0  # ...is overwritten,
    assert values_schema.read_text() == committed
    # while an edit elsewhere is kept, but only in the generator's formatting.
    document = json.loads(committed)
    document["properties"]["toolsImage"]["minLength"] = 1
    values_schema.write_text(json.dumps(document))
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 0
    assert json.loads(values_schema.read_text()) == document


def test_rendered_files_are_yaml_of_the_crd() -> None:
    for crd in CRDS.values():
        text = crdgen.render(crd)
        assert text.startswith("# Generated")
        assert yaml.safe_load(text) == crd


# --------------------------------------------------------------------------- structural


@pytest.mark.parametrize("kind", ["App", "Job"])
def test_schema_is_structural(kind: str) -> None:
    root = schema(kind)
    keys = set(all_keys(root))
    assert "$ref" not in keys
    assert "anyOf" not in keys
    assert "oneOf" not in keys
    assert "allOf" not in keys
    assert "patternProperties" not in keys
    assert "$defs" not in keys
    for path, node in schema_nodes(root):
        assert (
            "type" in node
            or node.get("x-kubernetes-preserve-unknown-fields") is True
            or node.get("x-kubernetes-int-or-string") is True
        ), f"{kind} {path} has no type"
        if "properties" in node:
            assert node["type"] == "object", path
            assert "additionalProperties" not in node, path
        if node.get("type") == "array":
            assert "items" in node, path
        for required in node.get("required", []):
            assert required in node.get("properties", {}), f"{path} requires unknown {required}"
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key]


@pytest.mark.parametrize("kind", ["App", "Job"])
def test_every_string_and_list_is_bounded(kind: str) -> None:
    unbounded = []
    for path, node in schema_nodes(schema(kind)["properties"]["spec"], ".spec"):
        if node.get("type") == "string" and "maxLength" not in node and "enum" not in node:
            unbounded.append(path)
        if node.get("type") == "array" and "maxItems" not in node:
            unbounded.append(path)
    assert unbounded == []


def test_job_status_fields_the_lifecycle_writes_are_in_the_schema() -> None:
    status = schema("Job")["properties"]["status"]["properties"]
    for field in (
        "state",
        "reason",
        "message",
        "observedGeneration",
        "attempt",
        "app",
        "submitTime",
        "startTime",
        "completionTime",
        "exitCode",
        "podName",
        "outputs",
        "history",
        "conditions",
        "runOutcome",
        "archiveTry",
        "retries",
        "runtime",
        "runEndTime",
    ):
        assert field in status, field
    assert status["history"]["maxItems"] == 50
    assert status["conditions"]["x-kubernetes-list-type"] == "map"
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    states = status["state"]["enum"]
    assert "Finished" in states
    assert "AwaitingParents" in states
    assert len(states) == 14


def test_required_fields() -> None:
    assert "image" in schema("App")["properties"]["spec"]["required"]
    job_spec = schema("Job")["properties"]["spec"]
    assert "appRef" in job_spec["required"]
    assert "name" in job_spec["properties"]["appRef"]["required"]


# --------------------------------------------------------------------------- names, columns


@pytest.mark.parametrize(
    ("kind", "plural", "short"), [("App", "apps", "fapp"), ("Job", "jobs", "fjob")]
)
def test_names_and_subresources(kind: str, plural: str, short: str) -> None:
    crd = CRDS[kind]
    assert crd["metadata"]["name"] == f"{plural}.ferry.dev"
    spec = crd["spec"]
    assert spec["group"] == "ferry.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["ferry"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("App", [("Version", 0), ("Image", 0), ("Ready", 0), ("Age", 0)]),
        (
            "Job",
            [("State", 0), ("App", 0), ("Attempt", 0), ("Age", 0), ("Runtime", 0), ("Reason", 1)],
        ),
    ],
)
def test_printer_columns(kind: str, columns: list[tuple[str, int]]) -> None:
    (version,) = CRDS[kind]["spec"]["versions"]
    got = [(c["name"], c.get("priority", 0)) for c in version["additionalPrinterColumns"]]
    assert got == columns
    by_name = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert by_name["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    if kind == "Job":
        assert by_name["State"]["jsonPath"] == ".status.state"
        assert by_name["App"]["jsonPath"] == ".spec.appRef.name"
        assert by_name["Attempt"]["jsonPath"] == ".status.attempt"
        assert by_name["Reason"]["jsonPath"] == ".status.reason"
    else:
        assert by_name["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


# --------------------------------------------------------------------------- CEL rules


IMMUTABLE = [
    "appRef",
    "parameters",
    "inputs",
    "queueName",
    "resources",
    "parents",
    "retry",
    "archive",
    "workspace",
]
MUTABLE = ["suspend", "cancel", "maxRunSeconds", "ttlSecondsAfterFinished"]


def test_spec_is_immutable_except_the_documented_fields() -> None:
    spec = schema("Job")["properties"]["spec"]
    assert sorted(spec["properties"]) == sorted(IMMUTABLE + MUTABLE)
    for field in IMMUTABLE:
        assert "self == oldSelf" in rules(spec["properties"][field]), field
    for field in MUTABLE:
        assert not any("oldSelf" in r for r in rules(spec["properties"][field])), field
    spec_rules = rules(spec)
    for field in IMMUTABLE:
        if field == "appRef":
            continue  # required: always present
        assert f"has(self.{field}) == has(oldSelf.{field})" in spec_rules, field


def test_admission_rules_present() -> None:
    job = schema("Job")
    assert any(f"size(self.metadata.name) <= {MAX_JOB_NAME}" in r for r in rules(job))
    source = job["properties"]["spec"]["properties"]["inputs"]["items"]["properties"]["source"]
    assert any("size() == 1" in r for r in rules(source))
    assert any("has(self.key) != has(self.prefix)" in r for r in rules(source["properties"]["s3"]))
    app_param = schema("App")["properties"]["spec"]["properties"]["parameters"]["items"]
    assert any("self.minimum <= self.maximum" in r for r in rules(app_param))


def test_scalar_unions_are_free_form_but_typed_elsewhere() -> None:
    """A parameter value is a string, number or boolean: structural schemas cannot say so,
    so the node preserves unknown fields and the operator checks it against the App."""
    params = schema("Job")["properties"]["spec"]["properties"]["parameters"]
    assert params["type"] == "object"
    assert params["x-kubernetes-preserve-unknown-fields"] is True
    default = schema("App")["properties"]["spec"]["properties"]["parameters"]["items"]
    assert default["properties"]["default"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "type" not in default["properties"]["default"]


def test_check_mode_covers_the_chart_readme_table(tmp_path: Path) -> None:
    _hand_written_parts(tmp_path)
    chart = tmp_path / "charts" / "ferry"
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 0
    # A new value in values.yaml and the schema, not yet in the table: --check fails.
    values = (chart / "values.yaml").read_text()
    (chart / "values.yaml").write_text(values.replace("    port: 8080\n", "    port: 9090\n", 1))
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert "| `metrics.service.port` | integer | `9090` |" in (chart / "README.md").read_text()
    assert crdgen.main(["--check", "--root", str(tmp_path)]) == 0
